//! The audit trail and the metrics derived from it, through the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;

use common::Home;

fn events(home: &Home, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    home.json(&all).as_array().unwrap().clone()
}

fn names(records: &[serde_json::Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["event"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_change_is_recorded_once_with_its_fields() {
    let home = Home::new();
    let steps: &[(&[&str], &[&str])] = &[
        (&["config", "set", "chunk_size", "2"], &["CONFIG_CHANGED"]),
        (
            &["allocate", "--service", "web", "--instance", "a"],
            &["TYPE_ALLOCATED", "INSTANCE_ASSIGNED"],
        ),
        (&["allocate", "--service", "web", "--instance", "a"], &[]),
        (
            &["allocate", "--service", "web", "--instance", "b"],
            &["INSTANCE_ASSIGNED"],
        ),
        (
            &["allocate", "--service", "web", "--instance", "c"],
            &["TYPE_GREW", "INSTANCE_ASSIGNED"],
        ),
        (
            &["type", "add", "mine", "--range", "20000-20001"],
            &["TYPE_ADDED"],
        ),
        (&["type", "set", "mine", "--single"], &["TYPE_EDITED"]),
        (
            &["rule", "add", "x-*", "--chunk-size", "3"],
            &["RULE_CHANGED"],
        ),
        (
            &["release", "--service", "web"],
            &[
                "INSTANCE_RELEASED",
                "INSTANCE_RELEASED",
                "INSTANCE_RELEASED",
                "TYPE_REMOVED",
            ],
        ),
        (
            &["config", "set", "max_instances", "1"],
            &["CONFIG_CHANGED"],
        ),
        (
            &["allocate", "--service", "tight", "--instance", "a"],
            &["TYPE_ALLOCATED", "INSTANCE_ASSIGNED"],
        ),
        (&["type", "rm", "mine"], &["TYPE_REMOVED"]),
    ];
    let mut expected: Vec<&str> = Vec::new();
    for (args, new) in steps {
        home.ok(args);
        expected.extend_from_slice(new);
        assert_eq!(names(&events(&home, &[])), expected, "after {args:?}");
    }
    // A refused allocation is recorded too, and changes nothing else.
    home.fails(&["allocate", "--service", "tight", "--instance", "b"], 1);
    let all = events(&home, &[]);
    let failed = all.last().unwrap();
    assert_eq!(failed["event"], "ALLOCATION_FAILED");
    assert!(
        failed["error"].as_str().unwrap().contains("is full"),
        "{failed}"
    );

    let allocated = all.iter().find(|r| r["event"] == "TYPE_ALLOCATED").unwrap();
    assert_eq!(allocated["service_type"], "web");
    let start = allocated["ranges"][0][0].as_u64().unwrap();
    assert_eq!(allocated["ranges"], serde_json::json!([[start, start + 1]]));
    assert_eq!(
        (allocated["placement"].as_str(), allocated["chunk"].as_u64()),
        (Some("after"), Some(2))
    );
    assert!(
        allocated["lock_wait_ms"].is_f64() && allocated["lock_hold_ms"].is_f64(),
        "{allocated}"
    );
    assert!(humantime::parse_rfc3339(allocated["ts"].as_str().unwrap()).is_ok());
    assert!(allocated["pid"].as_u64().unwrap() > 0 && allocated["user"].is_string());
    // With no user in the environment (a service, cron), the uid names the user.
    common::succeeded(
        home.cmd(&["allocate", "--service", "web", "--instance", "no-env"])
            .env_remove("USER")
            .env_remove("LOGNAME")
            .env_remove("USERNAME"),
    );
    let id = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    let me = String::from_utf8(id.stdout).unwrap();
    let record = &home.json(&["audit", "--instance", "no-env"])[0];
    assert_eq!(record["user"], me.trim(), "{record}");
    let assigned = all
        .iter()
        .find(|r| r["event"] == "INSTANCE_ASSIGNED")
        .unwrap();
    assert_eq!(
        (assigned["instance"].as_str(), assigned["port"].as_u64()),
        (Some("a"), Some(start))
    );
}

#[test]
fn filters_combine_and_reach_into_rotated_files() {
    let home = Home::new();
    home.ok(&["config", "set", "audit_max_bytes", "1500"]);
    home.ok(&["config", "set", "audit_files", "3"]);
    for i in 0..12 {
        home.ok(&[
            "allocate",
            "--service",
            &format!("svc-{}", i % 3),
            "--instance",
            &format!("i{i}"),
        ]);
    }
    let rotated: Vec<String> = std::fs::read_dir(home.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("audit."))
        .collect();
    assert!(rotated.iter().any(|n| n == "audit.1.jsonl"), "{rotated:?}");
    assert!(
        !rotated.iter().any(|n| n == "audit.4.jsonl"),
        "more than 3 kept: {rotated:?}"
    );

    let first = events(&home, &["--event", "type_allocated", "--service", "svc-0"]);
    assert_eq!(
        first.len(),
        1,
        "the creation of svc-0 sits in a rotated file"
    );
    let by_instance = events(&home, &["--instance", "i4"]);
    assert_eq!(names(&by_instance), ["INSTANCE_ASSIGNED"]);
    assert_eq!(by_instance[0]["service_type"], "svc-1");
    let glob = events(
        &home,
        &[
            "--service",
            "svc-*",
            "--event",
            "INSTANCE_ASSIGNED",
            "--limit",
            "2",
        ],
    );
    let last_two: Vec<&str> = glob
        .iter()
        .map(|r| r["instance"].as_str().unwrap())
        .collect();
    assert_eq!(last_two, ["i10", "i11"]);
    assert_eq!(
        events(&home, &["--since", "1h", "--instance", "i0"]).len(),
        1
    );
    assert!(events(&home, &["--until", "1h", "--instance", "i0"]).is_empty());
    // --instance is a glob, as --service is.
    assert_eq!(
        events(
            &home,
            &["--instance", "i1*", "--event", "INSTANCE_ASSIGNED"]
        )
        .len(),
        3,
        "i1, i10, i11"
    );
    assert!(events(&home, &["--since", "2999-01-01T00:00:00Z"]).is_empty());
    let err = home.fails(&["audit", "--since", "yesterday-ish"], 2);
    assert!(err.contains("neither an RFC 3339 time"), "{err}");
    // RFC 3339 with an offset: an hour ago, written an hour east of UTC, and an hour ahead.
    let now = std::time::SystemTime::now();
    let east = |t: std::time::SystemTime| {
        let utc = humantime::format_rfc3339_seconds(t + std::time::Duration::from_secs(3600));
        format!("{}+01:00", utc.to_string().trim_end_matches('Z'))
    };
    let hour = std::time::Duration::from_secs(3600);
    let an_hour_ago = east(now - hour);
    assert_eq!(
        events(&home, &["--since", &an_hour_ago, "--instance", "i0"]).len(),
        1,
        "{an_hour_ago}"
    );
    assert!(events(&home, &["--since", &east(now + hour)]).is_empty());
    // Filters that cannot match are usage errors, not an empty answer.
    let err = home.fails(&["audit", "--event", "NOPE"], 2);
    assert!(
        err.contains("TYPE_ALLOCATED"),
        "the valid events are listed: {err}"
    );
    let err = home.fails(&["audit", "--since", "1h", "--until", "2h"], 2);
    assert!(err.contains("--since is after --until"), "{err}");
}

#[test]
fn a_torn_last_line_is_skipped_with_a_warning() {
    let home = Home::new();
    home.ok(&["allocate", "--service", "a", "--instance", "i"]);
    let log = home.path().join("audit.jsonl");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(b"{\"ts\":\"2026-11-27T")
        .unwrap();
    let out = home.run(&["audit", "--format", "json"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("torn last line"));
    let before: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(before.len(), 2);
    // The next change is recorded whole, after the torn line.
    home.ok(&["allocate", "--service", "a", "--instance", "j"]);
    let after = events(&home, &["--instance", "j"]);
    assert_eq!(names(&after), ["INSTANCE_ASSIGNED"]);
}

fn scrape(home: &Home) -> prometheus_parse::Scrape {
    // The classic text format by default; OpenMetrics (with its EOF marker) on request. The
    // same registry gives the same text: families and series in a fixed order.
    let text = home.ok(&["metrics"]);
    assert!(!text.contains("# EOF"), "{text}");
    assert_eq!(
        home.ok(&["metrics"]),
        text,
        "the order changed between two runs"
    );
    let open = home.ok(&["metrics", "--format", "openmetrics"]);
    assert!(open.ends_with("# EOF\n"), "{open}");
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

fn value(scrape: &prometheus_parse::Scrape, metric: &str, label: Option<(&str, &str)>) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .unwrap_or_else(|| panic!("no {metric} {label:?}"));
    match sample.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        _ => panic!("{metric} is not a number"),
    }
}

#[test]
fn metrics_parse_and_agree_with_list() {
    let home = Home::new();
    // No built-in types: only our own ranges, so foreign listeners are the test's alone.
    home.without_builtins("");
    // A span nothing listens on now: the foreign listener below is the only one there.
    let s = common::free_span_from(30900, 10);
    home.ok(&["type", "add", "mine", "--range", &format!("{s}-{}", s + 9)]);
    home.ok(&["allocate", "--service", "mine", "--instance", "a"]);
    for i in 0..3 {
        home.ok(&[
            "allocate",
            "--service",
            "auto-x",
            "--instance",
            &i.to_string(),
        ]);
    }
    home.ok(&["config", "set", "max_instances", "3"]);
    home.fails(
        &["allocate", "--service", "auto-x", "--instance", "full"],
        1,
    );
    // A foreign listener inside our range: a port of `mine` that no instance holds.
    let foreign = (s + 1..=s + 9)
        .find_map(|p| TcpListener::bind(("127.0.0.1", p)).ok())
        .expect("a free port of `mine`");

    let list = home.json(&["list"]);
    let types = list["service_types"].as_array().unwrap();
    let by_origin = |o: &str| types.iter().filter(|t| t["origin"] == o).count() as f64;
    let reserved: u64 = types
        .iter()
        .flat_map(|t| t["ranges"].as_array().unwrap())
        .map(|r| r[1].as_u64().unwrap() - r[0].as_u64().unwrap() + 1)
        .sum();
    let instances: BTreeMap<&str, f64> = types
        .iter()
        .map(|t| {
            (
                t["service_type"].as_str().unwrap(),
                t["instances"].as_array().unwrap().len() as f64,
            )
        })
        .collect();

    let s = scrape(&home);
    assert_eq!(
        value(&s, "styxy_service_types", Some(("origin", "user"))),
        by_origin("user")
    );
    assert_eq!(
        value(&s, "styxy_service_types", Some(("origin", "auto"))),
        by_origin("auto")
    );
    assert_eq!(
        value(&s, "styxy_service_types", Some(("origin", "builtin"))),
        0.0
    );
    assert_eq!(value(&s, "styxy_ports_reserved", None), reserved as f64);
    for (name, n) in &instances {
        assert_eq!(
            value(&s, "styxy_instances", Some(("service_type", name))),
            *n,
            "{name}"
        );
    }
    assert_eq!(
        value(&s, "styxy_allocations_total", Some(("result", "assigned"))),
        4.0
    );
    assert_eq!(
        value(&s, "styxy_allocations_total", Some(("result", "failed"))),
        1.0
    );
    assert_eq!(
        value(&s, "styxy_events_total", Some(("event", "TYPE_ALLOCATED"))),
        1.0
    );
    assert_eq!(value(&s, "styxy_foreign_listeners", None), 1.0);
    let span = list["settings"]["max_port"].as_f64().unwrap()
        - list["settings"]["min_port"].as_f64().unwrap()
        + 1.0;
    let ratio = value(&s, "styxy_port_space_utilization_ratio", None);
    assert!((ratio - reserved as f64 / span).abs() < 1e-9, "{ratio}");
    let hist = s
        .samples
        .iter()
        .find(|x| x.metric == "styxy_lock_hold_seconds")
        .unwrap();
    match &hist.value {
        prometheus_parse::Value::Histogram(buckets) => {
            // Every locked change (type add, 4 allocations, config set, the refusal) observed once.
            assert_eq!(buckets.last().unwrap().count, 7.0);
        }
        other => panic!("not a histogram: {other:?}"),
    }
    drop(foreign);

    // -o writes the same text atomically, readable by a collector running as another user.
    let file = home.path().join("styxy.prom");
    home.ok(&["metrics", "-o", file.to_str().unwrap()]);
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("styxy_ports_reserved")
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
}

/// The real node_exporter (Debian's prometheus-node-exporter), as another user, on a file
/// written by `metrics -o`: no scrape error, and the counters arrive typed `counter`.
#[test]
fn node_exporters_textfile_collector_reads_metrics_o() {
    const EXPORTER: &str = "/usr/bin/prometheus-node-exporter";
    assert!(
        std::path::Path::new(EXPORTER).exists(),
        "{EXPORTER} is missing: install Debian's prometheus-node-exporter (bash .ci/run does)"
    );
    let home = Home::new();
    for i in ["a", "b", "c"] {
        home.ok(&["allocate", "--service", "exported", "--instance", i]);
    }
    let dir = tempfile::tempdir().unwrap();
    home.ok(&[
        "metrics",
        "-o",
        dir.path().join("styxy.prom").to_str().unwrap(),
    ]);
    // The collector runs as a user of its own: as root, run it as `nobody` (setpriv execs
    // it, so its pid is the one this test kills), in a directory it may enter, so that the
    // file's own mode is what lets it read. A non-root developer runs it as themselves.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = rustix::process::geteuid().is_root();
    let (program, prefix): (&str, &[&str]) = if as_nobody {
        (
            "/usr/bin/setpriv",
            &[
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                EXPORTER,
            ],
        )
    } else {
        eprintln!("not root: node_exporter runs as this user");
        (EXPORTER, &[])
    };

    // A port the OS picks, then handed to the exporter; retried if another process takes it
    // in between.
    let scrape = (0..5).find_map(|_| {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(program)
            .args(prefix)
            .args([
                "--collector.disable-defaults",
                "--collector.textfile",
                &format!("--collector.textfile.directory={}", dir.path().display()),
                &format!("--web.listen-address=127.0.0.1:{port}"),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut exporter = common::Reaped(child);
        // Until it answers, or exits (its port was taken); a bound, so that a broken
        // exporter fails the test rather than hanging it.
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < give_up {
            if exporter.0.try_wait().unwrap().is_some() {
                return None;
            }
            if let Some(text) = http_get(port, "/metrics") {
                return Some(text);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    });
    let text = scrape.expect("node_exporter never answered on 127.0.0.1");
    assert!(text.contains("node_textfile_scrape_error 0"), "{text}");
    assert!(text.contains("# TYPE styxy_events_total counter"), "{text}");
    assert!(
        text.contains("styxy_events_total{event=\"INSTANCE_ASSIGNED\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE styxy_lock_hold_seconds histogram"),
        "{text}"
    );
}

/// The body of `GET path` on 127.0.0.1:`port`, if something answers 200.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    // "HTTP/1.0 200 OK" (Go answers in the request's version) or 1.1.
    let status = head.split_whitespace().nth(1)?;
    (head.starts_with("HTTP/1.") && status == "200").then(|| body.to_owned())
}

/// `promtool check metrics` (Debian's prometheus package) finds nothing to say about what
/// `metrics` prints: valid, typed, and clean of its lint problems.
#[test]
fn promtool_finds_the_metrics_clean() {
    const PROMTOOL: &str = "/usr/bin/promtool";
    assert!(
        std::path::Path::new(PROMTOOL).exists(),
        "{PROMTOOL} is missing: install Debian's prometheus (bash .ci/run does)"
    );
    let home = Home::new();
    for i in ["a", "b"] {
        home.ok(&["allocate", "--service", "checked", "--instance", i]);
    }
    let text = home.ok(&["metrics"]);
    let mut child = std::process::Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "{said}\n{text}"
    );
}
