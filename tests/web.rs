//! The dashboard's server over real sockets on 127.0.0.1 and [::1]: every route, and the
//! security rules of spec §8.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

use common::{Home, Ui};

/// One HTTP/1.1 exchange: status, lower-cased headers, body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

fn send(addr: (impl Into<std::net::IpAddr>, u16), request: &str) -> Reply {
    let mut s = TcpStream::connect(std::net::SocketAddr::from((addr.0.into(), addr.1))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

impl Ui {
    /// A request from 127.0.0.1 with `Host: localhost:PORT`, the bearer token, and `extra`
    /// header lines.
    fn req(&self, method: &str, path: &str, extra: &[&str], body: Option<&str>) -> Reply {
        let mut r = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n",
            self.port
        );
        for h in extra {
            r.push_str(h);
            r.push_str("\r\n");
        }
        if let Some(b) = body {
            r.push_str(&format!("Content-Length: {}\r\n\r\n{b}", b.len()));
        } else {
            r.push_str("\r\n");
        }
        send((Ipv4Addr::LOCALHOST, self.port), &r)
    }

    fn bearer(&self) -> String {
        format!("Authorization: Bearer {}", self.token)
    }

    fn json_post(&self, method: &str, path: &str, body: &str) -> Reply {
        let auth = self.bearer();
        self.req(
            method,
            path,
            &[&auth, "Content-Type: application/json"],
            Some(body),
        )
    }
}

#[test]
fn routes_answer_with_the_token() {
    let home = Home::new();
    let ui = home.start_ui(9880, &[], &[]);
    let auth = ui.bearer();
    // The printed URL: token exchanged for an HttpOnly SameSite=Strict cookie, then `/`.
    let r = ui.req("GET", &format!("/?token={}", ui.token), &[], None);
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/"));
    let cookie = r.header("set-cookie").unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let cookie_header = format!("Cookie: {}", cookie.split(';').next().unwrap());
    let page = ui.req("GET", "/", &[&cookie_header], None);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<svg id=\"map\""));
    // Its icon is inline: no /favicon.ico request ends in an error.
    assert!(
        page.body
            .contains("<link rel=\"icon\" href=\"data:image/svg+xml,")
    );

    let state = ui.req("GET", "/api/state", &[&auth], None).json();
    assert!(state["service_types"].as_array().unwrap().len() >= 17);
    assert_eq!(state["settings"]["chunk_size"], 10);

    // Types: add, edit, remove — the same validation as the CLI, through the same write path.
    let r = ui.json_post(
        "POST",
        "/api/types",
        r#"{"name":"web-made","ranges":["20000-20009"],"preferred_ports":[20005]}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(home.ok(&["list", "web-made"]).contains("20000-20009"));
    let r = ui.json_post(
        "POST",
        "/api/types",
        r#"{"name":"clash","ranges":["20005-20015"]}"#,
    );
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("overlaps 20000-20009 of \"web-made\"")
    );
    // The fields are registry.toml's: an unknown one is refused, not ignored.
    let r = ui.json_post(
        "PUT",
        "/api/types/web-made",
        r#"{"ranges":["20000-20019"],"single":true}"#,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.json()["error"].as_str().unwrap().contains("single"),
        "{}",
        r.body
    );
    let r = ui.json_post(
        "PUT",
        "/api/types/web-made",
        r#"{"ranges":[[20000,20019]],"instance_behavior":"single"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        home.json(&["list", "web-made"])["service_types"][0]["instance_behavior"],
        "single"
    );
    let r = ui.json_post("DELETE", "/api/types/web-made", "{}");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        home.json(&["list", "web-made"])["service_types"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ui.json_post("DELETE", "/api/types/never-was", "{}").status,
        404
    );

    // Settings: all validated before any is saved.
    let before = home.read();
    let r = ui.json_post(
        "PUT",
        "/api/settings",
        r#"{"gap_size":"5","chunk_size":"-3"}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("chunk_size"));
    assert_eq!(
        home.read(),
        before,
        "a rejected settings change saved something"
    );
    assert_eq!(
        ui.json_post(
            "PUT",
            "/api/settings",
            r#"{"gap_size":5,"placement":"smart"}"#
        )
        .status,
        200
    );
    assert_eq!(
        home.json(&["config", "show"])["settings"]["placement"],
        "smart"
    );

    // Rules and zones (in a span nothing listens on now).
    let z = common::free_span_from(30600, 10);
    let zone = format!(
        r#"{{"strategy":"team","name":"front","min_port":{z},"max_port":{}}}"#,
        z + 99
    );
    assert_eq!(ui.json_post("PUT", "/api/zones", &zone).status, 200);
    assert_eq!(
        ui.json_post("POST", "/api/rules", r#"{"pattern":"fe-*","zone":"front"}"#)
            .status,
        201
    );
    assert_eq!(
        home.json(&["allocate", "--service", "fe-x", "--instance", "i"])["ranges"],
        serde_json::json!([[z, z + 9]])
    );
    assert_eq!(ui.json_post("DELETE", "/api/rules/fe-*", "{}").status, 200);
    assert_eq!(
        ui.json_post("POST", "/api/rules", r#"{"pattern":"x","zone":"nowhere"}"#)
            .status,
        400
    );
    // A zone goes only once nothing places ranges in it: here, the type allocated there.
    let r = ui.json_post("DELETE", "/api/zones/front", "{}");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("type \"fe-x\""),
        "{}",
        r.body
    );
    assert_eq!(
        ui.json_post("DELETE", "/api/types/fe-x?force=true", "{}")
            .status,
        200
    );
    assert_eq!(ui.json_post("DELETE", "/api/zones/front", "{}").status, 200);
    assert!(!home.read().contains("front = {"), "{}", home.read());
    assert_eq!(ui.json_post("DELETE", "/api/zones/front", "{}").status, 400);

    // Audit trail, filtered and paged, newest first.
    let a = ui
        .req(
            "GET",
            "/api/audit?event=type_added&limit=10",
            &[&auth],
            None,
        )
        .json();
    assert_eq!(a["total"], 1);
    assert_eq!(a["records"][0]["service_type"], "web-made");
    let a = ui
        .req("GET", "/api/audit?q=fe-x&limit=1", &[&auth], None)
        .json();
    // Its allocation (type, instance) and its removal above (instance, type).
    assert_eq!(
        (a["total"].as_u64(), a["records"].as_array().unwrap().len()),
        (Some(4), 1)
    );
    assert_eq!(
        ui.req("GET", "/api/audit?since=tomorrow-ish", &[&auth], None)
            .status,
        400
    );

    // Only a listed backup is restored: no path reaches another file.
    let json_type = "Content-Type: application/json";
    for name in ["../registry.toml", "/etc/passwd", ""] {
        let body = serde_json::json!({ "backup": name }).to_string();
        let r = ui.req("POST", "/api/restore", &[&auth, json_type], Some(&body));
        assert_eq!(r.status, 400, "{name}: {}", r.body);
        assert!(r.body.contains("no such backup"), "{}", r.body);
    }
    // A POST that asks for a dry run is one: what gc would drop is said, nothing written.
    let gone = tempfile::tempdir().unwrap();
    let made = home
        .cmd(&["allocate", "--service", "api"])
        .current_dir(gone.path())
        .status()
        .unwrap();
    assert!(made.success());
    drop(gone);
    let before = home.read();
    let dry = ui
        .json_post("POST", "/api/gc", r#"{"dry_run": true}"#)
        .json();
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(dry["dropped"].as_array().map(Vec::len), Some(1), "{dry}");
    assert_eq!(home.read(), before, "the dry run wrote");
    assert_eq!(
        ui.json_post("POST", "/api/gc", r#"{"dry": true}"#).status,
        400
    );
    let done = ui.json_post("POST", "/api/gc", "").json();
    assert_eq!(done["dry_run"], false, "{done}");
    assert_eq!(done["dropped"].as_array().map(Vec::len), Some(1), "{done}");

    // gc's preview changes nothing; doctor answers with its findings.
    let before = home.read();
    let preview = ui.req("GET", "/api/gc", &[&auth], None).json();
    assert_eq!(preview["dry_run"], true);
    assert_eq!(home.read(), before, "the preview wrote");
    let report = ui.req("GET", "/api/doctor", &[&auth], None).json();
    assert!(report["findings"].is_array(), "{report}");

    // The charts' history: a span it cannot read is refused, naming what it takes; the
    // charting library is served from the binary, behind the token too.
    let bad = ui.req("GET", "/api/history?span=forever", &[&auth], None);
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("1h, 24h, 7d"), "{}", bad.body);
    let h = ui
        .req("GET", "/api/history?span=2h&buckets=12", &[&auth], None)
        .json();
    assert_eq!(
        (h["step_s"].as_u64(), h["t"].as_array().map(Vec::len)),
        (Some(600), Some(12))
    );
    let js = ui.req("GET", "/assets/uPlot.min.js", &[&auth], None);
    assert_eq!(js.status, 200);
    assert!(
        js.header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(js.body.contains("uPlot"));
    assert_eq!(ui.req("GET", "/assets/uPlot.min.js", &[], None).status, 401);

    // Metrics: OpenMetrics when the scraper asks for it (as Prometheus does), else the
    // classic text format.
    let accept = "Accept: application/openmetrics-text; version=1.0.0,text/plain;q=0.5";
    let open = ui.req("GET", "/metrics", &[&auth, accept], None);
    assert_eq!(open.status, 200);
    assert!(
        open.header("content-type")
            .unwrap()
            .contains("openmetrics-text")
    );
    assert!(open.body.ends_with("# EOF\n"));
    let m = ui.req("GET", "/metrics", &[&auth], None);
    assert_eq!(m.status, 200);
    assert!(
        m.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        m.header("content-type")
    );
    assert!(m.body.contains("# TYPE styxy_events_total counter"));
    let scrape = prometheus_parse::Scrape::parse(m.body.lines().map(|l| Ok(l.to_owned()))).unwrap();
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "styxy_ports_reserved")
    );

    // No CORS header on any answer.
    for r in [&page, &m] {
        assert!(
            r.headers
                .iter()
                .all(|(k, _)| !k.starts_with("access-control-")),
            "{:?}",
            r.headers
        );
    }
}

/// The local addresses of the LISTEN rows of a `/proc/net/tcp{,6}` table on `port`.
fn listen_rows(table: &str, port: u16) -> Vec<String> {
    std::fs::read_to_string(table)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f[3] == "0A")
        .map(|f| f[1].to_owned())
        .filter(|local| local.ends_with(&format!(":{port:04X}")))
        .collect()
}

#[test]
fn the_guard_refuses_what_it_must() {
    let home = Home::new();
    let ui = home.start_ui(9885, &[], &[]);
    let auth = ui.bearer();
    let before = home.read();
    let with_host = |host: &str| {
        let request = format!(
            "GET /api/state HTTP/1.1\r\nHost: {host}:{}\r\n{auth}\r\nConnection: close\r\n\r\n",
            ui.port
        );
        send((Ipv4Addr::LOCALHOST, ui.port), &request).status
    };
    // A DNS rebinding host, and a path dressed as a subdomain (not one of ours).
    for host in ["evil.example", "evil.com/.localhost"] {
        assert_eq!(with_host(host), 403, "{host}");
    }
    let no_host = format!("GET /api/state HTTP/1.0\r\n{auth}\r\n\r\n");
    assert_eq!(send((Ipv4Addr::LOCALHOST, ui.port), &no_host).status, 403);
    for host in ["127.0.0.1", "[::1]", "app.localhost"] {
        assert_eq!(with_host(host), 200, "{host}");
    }
    // No token, a wrong token, the token in the query anywhere but `/`.
    assert_eq!(ui.req("GET", "/api/state", &[], None).status, 401);
    assert_eq!(
        ui.req(
            "GET",
            "/api/state",
            &["Authorization: Bearer 00000000000000000000000000000000"],
            None
        )
        .status,
        401
    );
    assert_eq!(
        ui.req("GET", &format!("/api/state?token={}", ui.token), &[], None)
            .status,
        401
    );
    assert_eq!(
        ui.req("GET", "/", &["Cookie: styxy_token=wrong"], None)
            .status,
        401
    );
    assert_eq!(
        ui.req("GET", "/api/events", &[], None).status,
        401,
        "the event stream checks the token"
    );
    assert_eq!(ui.req("GET", "/metrics", &[], None).status, 401);
    let body = r#"{"name":"sneaky","ranges":["20000-20009"]}"#;
    assert_eq!(
        ui.req(
            "POST",
            "/api/types",
            &["Content-Type: application/json"],
            Some(body)
        )
        .status,
        401
    );
    assert_eq!(
        ui.req(
            "POST",
            "/api/types",
            &[&auth, "Content-Type: application/json"],
            None
        )
        .status,
        400
    );
    assert_eq!(
        ui.req(
            "POST",
            "/api/types",
            &[&auth, "Content-Type: text/plain"],
            Some(body)
        )
        .status,
        415
    );
    assert_eq!(
        ui.req("POST", "/api/types", &[&auth], Some(body)).status,
        415
    );
    let foreign = ui.req(
        "POST",
        "/api/types",
        &[
            &auth,
            "Content-Type: application/json",
            "Origin: http://evil.example",
        ],
        Some(body),
    );
    assert_eq!(foreign.status, 403);
    let https = ui.req(
        "POST",
        "/api/types",
        &[
            &auth,
            "Content-Type: application/json",
            &format!("Origin: https://localhost:{}", ui.port),
        ],
        Some(body),
    );
    assert_eq!(https.status, 403);
    assert_eq!(
        ui.req(
            "PATCH",
            "/api/settings",
            &[&auth, "Content-Type: application/json"],
            Some("{}")
        )
        .status,
        405
    );
    assert_eq!(
        home.read(),
        before,
        "a refused request changed the registry"
    );
    let same_origin = ui.req(
        "POST",
        "/api/types",
        &[
            &auth,
            "Content-Type: application/json",
            &format!("Origin: http://localhost:{}", ui.port),
        ],
        Some(body),
    );
    assert_eq!(same_origin.status, 201, "{}", same_origin.body);

    // The token file is private, and the server is on loopback only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(home.path().join("ui.token"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        std::fs::read_to_string(home.path().join("ui.token")).unwrap(),
        ui.token
    );
    let listening = listen_rows("/proc/net/tcp", ui.port);
    assert_eq!(
        listening,
        [format!("0100007F:{:04X}", ui.port)],
        "bound beyond 127.0.0.1"
    );
    let listening6 = listen_rows("/proc/net/tcp6", ui.port);
    if TcpStream::connect(("::1", ui.port)).is_ok() {
        assert_eq!(listening6.len(), 1, "{listening6:?}");
    }
    for local in &listening6 {
        // ::1 as /proc/net/tcp6 writes it; never :: (every address).
        assert_eq!(
            local,
            &format!("00000000000000000000000001000000:{:04X}", ui.port),
            "bound beyond [::1]"
        );
    }
    if TcpStream::connect(("::1", ui.port)).is_ok() {
        let r = format!(
            "GET /api/state HTTP/1.1\r\nHost: [::1]:{}\r\n{auth}\r\nConnection: close\r\n\r\n",
            ui.port
        );
        assert_eq!(
            send((std::net::Ipv6Addr::LOCALHOST, ui.port), &r).status,
            200
        );
    }
}

#[test]
fn the_event_stream_sends_changes_made_by_any_process() {
    let home = Home::new();
    let ui = home.start_ui(9890, &[], &[]);
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, ui.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET /api/events HTTP/1.1\r\nHost: localhost:{}\r\n{}\r\n\r\n",
        ui.port,
        ui.bearer()
    )
    .unwrap();
    let mut lines = BufReader::new(s).lines();
    let mut next_state = || -> serde_json::Value {
        loop {
            let line = lines
                .next()
                .expect("stream open")
                .expect("a line before the timeout");
            if let Some(data) = line.strip_prefix("data: ") {
                return serde_json::from_str(data).unwrap();
            }
        }
    };
    let first = next_state();
    assert!(
        !first["service_types"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["service_type"] == "from-cli")
    );
    // Another process changes the registry; the stream sends the new state unasked.
    home.ok(&["allocate", "--service", "from-cli", "--instance", "x"]);
    let next = next_state();
    assert!(
        next["service_types"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["service_type"] == "from-cli"),
        "{next}"
    );
}

#[test]
fn open_starts_the_browser_with_the_url() {
    let home = Home::new();
    let seen = home.path().join("browser-saw");
    let browser = home.path().join("fake-browser");
    std::fs::write(
        &browser,
        format!("#!/bin/sh\necho \"$1\" > {}\n", seen.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ui = home.start_ui(9893, &["--open"], &[("BROWSER", &browser)]);
    let url = ui.url.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !seen.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the browser was not started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let opened = loop {
        let text = std::fs::read_to_string(&seen).unwrap();
        if text.ends_with('\n') || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(opened.trim(), url.trim());
    assert!(
        url.starts_with("http://127.0.0.1:") && url.contains("/?token="),
        "{url}"
    );
    drop(ui);
}

#[test]
fn a_symlinked_token_file_is_refused_not_written_through() {
    let home = Home::new();
    home.ok(&["allocate", "--service", "x", "--instance", "i"]);
    let victim = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(victim.path(), "precious").unwrap();
    std::os::unix::fs::symlink(victim.path(), home.path().join("ui.token")).unwrap();
    let out = home.cmd(&["ui"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("symlink"), "{err}");
    assert_eq!(std::fs::read_to_string(victim.path()).unwrap(), "precious");
}

/// Reads of the registry (`openat` of a file in `dir`) in an strace log so far.
fn registry_reads(log: &std::path::Path, dir: &std::path::Path) -> usize {
    let dir = dir.display().to_string();
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("openat(") && l.contains(&dir))
        .count()
}

#[test]
fn an_idle_dashboard_reads_nothing_until_a_page_watches() {
    let home = Home::new();
    let trace = tempfile::tempdir().unwrap();
    let log = trace.path().join("ui.strace");
    // Under strace from the start (a tracer may always trace its own child).
    let mut strace = std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=openat", "-o"])
        .arg(&log)
        .arg(common::BIN)
        .args(["styxy", "ui", "--format", "json", "--port", "9875"])
        .env("STYXY_HOME", home.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("strace is installed (.ci/run installs it)");
    let mut line = String::new();
    BufReader::new(strace.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let started: serde_json::Value = serde_json::from_str(&line).expect("ui prints its URL");
    let ui_pid = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", strace.id()))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse::<u32>()
        .unwrap();
    // Stopped (by pid) and reaped whatever happens below: the ui first, then strace.
    struct Stop(u32, std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill")
                .arg(self.0.to_string())
                .status();
            let _ = self.1.wait();
        }
    }
    let _stop = Stop(ui_pid, strace);

    // Serving: it answers (a request without the token, which reads nothing).
    let port = started["port"].as_u64().unwrap() as u16;
    let answer = send(
        (Ipv4Addr::LOCALHOST, port),
        &format!("GET / HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(answer.status, 401);
    // No page: nothing is read, however long it stays open (the old server read the
    // registry every 400 ms).
    let idle_from = registry_reads(&log, home.path());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        registry_reads(&log, home.path()),
        idle_from,
        "the idle dashboard read the registry"
    );

    // A page opens the event stream: now it watches the registry.
    let token = started["url"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap();
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    write!(
        s,
        "GET /api/events HTTP/1.1\r\nHost: localhost:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut first = String::new();
    let mut reader = BufReader::new(s);
    while !first.starts_with("data: ") {
        first.clear();
        reader.read_line(&mut first).unwrap();
    }
    let watching_from = registry_reads(&log, home.path());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while registry_reads(&log, home.path()) == watching_from {
        assert!(
            std::time::Instant::now() < deadline,
            "a watched dashboard never looked at the registry"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_second_ui_prints_the_running_ones_url() {
    let home = Home::new();
    let ui = home.start_ui(9877, &[], &[]);
    let out = home
        .cmd(&["ui", "--format", "json", "--port", &ui.port.to_string()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["url"], ui.url.as_str());
    assert!(
        err.contains(&format!("already runs (pid {})", ui.child.id())),
        "{err}"
    );
}

#[test]
fn slow_clients_cannot_starve_a_normal_request() {
    let home = Home::new();
    // The dashboard with 256 open files at most, as on a tight system.
    let (_ui, port, token) = ui_process(&home, 9873, Some(256));
    let addr = std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, port));

    // 300 clients that send half a request and then nothing, more than it has files for.
    let slow: Vec<TcpStream> = (0..300)
        .filter_map(|_| {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
            s.write_all(b"GET /api/state HTTP/1.1\r\nHost: local")
                .ok()?;
            Some(s)
        })
        .collect();
    assert!(slow.len() > 128, "only {} slow clients got in", slow.len());

    // A normal request is still answered: the oldest slow ones make room.
    let status = answered_within_2s(port, &token);
    assert!(status.starts_with("HTTP/1.1 200"), "{status:?}");
    drop(slow);
}

/// Starts `ui` on `home` in its own process (with at most `files` open files, if given) and
/// returns it with its port and token.
fn ui_process(home: &Home, wish: u16, files: Option<u32>) -> (common::Reaped, u16, String) {
    let wish = wish.to_string();
    let args = ["styxy", "ui", "--format", "json", "--port", wish.as_str()];
    let mut cmd = match files {
        Some(n) => {
            let mut c = std::process::Command::new("sh");
            c.args([
                "-c",
                &format!(r#"ulimit -n {n} && exec "$0" "$@""#),
                common::BIN,
            ])
            .args(args);
            c
        }
        None => {
            let mut c = std::process::Command::new(common::BIN);
            c.args(args);
            c
        }
    };
    let mut child = cmd
        .env("STYXY_HOME", home.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let started: serde_json::Value = serde_json::from_str(&line).expect("ui prints its URL");
    let token = started["url"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap()
        .to_owned();
    (
        common::Reaped(child),
        started["port"].as_u64().unwrap() as u16,
        token,
    )
}

/// `count` clients that connect and send nothing, and `slow` that send a POST's headers
/// with the token and 1 of its 1,000 body bytes: all held open until dropped.
fn flood(port: u16, token: &str, count: usize, slow: usize) -> Vec<TcpStream> {
    let addr = std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut held = Vec::new();
    for _ in 0..count {
        if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            held.push(s);
        }
    }
    for _ in 0..slow {
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            let head = format!(
                "POST /api/release HTTP/1.1\r\nHost: localhost:{port}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
            );
            if s.write_all(head.as_bytes()).is_ok() {
                held.push(s);
            }
        }
    }
    held
}

/// The status line of a normal `GET /api/state`, which must come within 2 s.
fn answered_within_2s(port: u16, token: &str) -> String {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    write!(
        s,
        "GET /api/state HTTP/1.1\r\nHost: localhost:{port}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut status = String::new();
    BufReader::new(s)
        .read_line(&mut status)
        .expect("an answer within 2 s");
    status
}

#[test]
fn idle_and_slow_floods_do_not_keep_a_normal_request_waiting() {
    let home = Home::new();
    let (_ui, port, token) = ui_process(&home, 9874, None);
    // 400 connections that send nothing (no token needed for that), then 130 that send a
    // token-bearing POST's headers and 1 byte of its body: far past the 128 it serves.
    let held = flood(port, &token, 400, 130);
    assert!(held.len() > 128, "only {} got in", held.len());
    let status = answered_within_2s(port, &token);
    assert!(status.starts_with("HTTP/1.1 200"), "{status:?}");
    // Again, with the slow ones now the oldest.
    let more = flood(port, &token, 0, 130);
    let status = answered_within_2s(port, &token);
    assert!(status.starts_with("HTTP/1.1 200"), "{status:?}");
    drop((held, more));
}

/// Writes an audit trail of about `mb` MiB of allocation records over the last hour.
fn big_trail(home: &Home, mb: usize) {
    let now = std::time::SystemTime::now();
    let mut text = String::with_capacity(mb << 20);
    let mut i = 0u64;
    while text.len() < mb << 20 {
        let ts = humantime::format_rfc3339_micros(now - Duration::from_millis(i % 3_600_000));
        text.push_str(&format!(
            "{{\"ts\":\"{ts}\",\"event\":\"INSTANCE_ASSIGNED\",\"service_type\":\"api-{}\",\"instance\":\"/home/dev/src/checkout-{i}\",\"port\":{},\"pid\":{},\"user\":\"dev\",\"lock_wait_ms\":0.004,\"lock_hold_ms\":1.25,\"commit\":\"18eea3f301373aa0-{i}\"}}\n",
            i % 50,
            10000 + i % 5000,
            1000 + i % 30000
        ));
        i += 1;
    }
    std::fs::write(home.path().join("audit.jsonl"), text).unwrap();
}

/// The peak resident memory of process `pid`, in MiB (`VmHWM`).
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap()
        / 1024
}

#[test]
fn parallel_history_requests_over_a_50_mb_trail_stay_within_bounded_memory() {
    let home = Home::new();
    home.ok(&["allocate", "--service", "api", "--instance", "a"]);
    big_trail(&home, 50);
    let (ui, port, token) = ui_process(&home, 9876, None);
    let requests: Vec<_> = (0..16)
        .map(|_| {
            let token = token.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
                write!(
                    s,
                    "GET /api/history?span=24h&buckets=60 HTTP/1.1\r\nHost: localhost:{port}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
                )
                .unwrap();
                let mut reply = String::new();
                s.read_to_string(&mut reply).unwrap();
                reply
            })
        })
        .collect();
    for r in requests {
        let reply = r.join().unwrap();
        assert!(
            reply.starts_with("HTTP/1.1 200"),
            "{}",
            &reply[..reply.len().min(300)]
        );
        assert!(
            reply.contains("\"assigned\""),
            "{}",
            &reply[..reply.len().min(300)]
        );
    }
    let peak = peak_rss_mib(ui.0.id());
    eprintln!("ui's peak RSS after 16 history requests over 50 MiB: {peak} MiB");
    // One pass over the window at a time; 16 at once held 16 copies (2 GB at 50 MB).
    assert!(peak < 400, "peak RSS {peak} MiB");
}

#[test]
fn sigterm_ends_the_dashboard_within_2s_whatever_its_requests_do() {
    let home = Home::new();
    home.ok(&["allocate", "--service", "api", "--instance", "a"]);
    big_trail(&home, 50);
    let (mut ui, port, token) = ui_process(&home, 9877, None);
    let mut held = flood(port, &token, 20, 5);
    // A request at work on a blocking thread (a pass over the trail).
    let mut busy = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    write!(
        busy,
        "GET /api/history?span=7d HTTP/1.1\r\nHost: localhost:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    held.push(busy);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &ui.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while ui.0.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "ui still runs 2 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(held);
}

#[test]
fn a_squatter_on_the_dashboards_port_never_sees_the_token() {
    let home = Home::new();
    // The dashboard's port (its own instance keeps it), then something else listens there,
    // with the last token still in `ui.token`, and answers anything with 200.
    let first = home.start_ui(9878, &[], &[]);
    let (port, token) = (first.port, first.token.clone());
    drop(first);
    let squatter = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .expect("the port the dashboard just left");
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let ear = heard.clone();
    std::thread::spawn(move || {
        for stream in squatter.incoming().flatten() {
            let mut stream = stream;
            stream
                .set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            // All the request's head, however it comes in pieces.
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            ear.lock().unwrap().extend_from_slice(&got);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    let out = home
        .cmd(&["ui", "--format", "json", "--port", &port.to_string()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("it is not a `cargo styxy ui` of this registry"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "printed a URL: {:?}", out.stdout);
    let heard = String::from_utf8_lossy(&heard.lock().unwrap()).into_owned();
    assert!(heard.contains("/api/identify?nonce="), "{heard}");
    assert!(
        !heard.contains(&token),
        "the squatter saw the token: {heard}"
    );
}
