//! `check`, `scan`, `doctor` and `gc` against real listeners on 127.0.0.1 and [::1], real
//! checkouts, and dead processes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{Ipv6Addr, TcpListener};

use common::Home;

/// A registry with no built-in types and one type `mine` of `start`..`start+9`, whose
/// instance `a` holds the first port.
fn home_with_range(start: u16) -> Home {
    let home = Home::new();
    home.without_builtins("");
    let range = format!("{start}-{}", start + 9);
    home.ok(&["type", "add", "mine", "--range", &range]);
    let g = home.json(&["allocate", "--service", "mine", "--instance", "a"]);
    assert_eq!(g["port"], start);
    home
}

/// Binds the first port from `ports` that is free on `bind`.
fn listen_on(
    ports: impl IntoIterator<Item = u16>,
    bind: impl Fn(u16) -> std::io::Result<TcpListener>,
) -> (TcpListener, u16) {
    ports
        .into_iter()
        .find_map(|p| bind(p).ok().map(|l| (l, p)))
        .expect("a free port")
}

#[test]
fn check_scan_and_doctor_see_our_listeners_on_both_loopbacks() {
    // A span nothing listens on now, and where the instance's own service can bind.
    let start = common::free_span_from(30300, 10);
    let home = home_with_range(start);
    // The instance's own service, a foreign squatter inside the range, and one outside.
    let _service = TcpListener::bind(("127.0.0.1", start)).expect("port free for the test");
    let (_squatter, foreign) = listen_on(start + 3..=start + 9, |p| {
        TcpListener::bind(("127.0.0.1", p))
    });
    let (_outside, outside) = listen_on(start + 100..start + 200, |p| {
        TcpListener::bind(("127.0.0.1", p))
    });
    let v6 = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).ok().map(|l| {
        let p = l.local_addr().unwrap().port();
        (l, p)
    });
    let me = u64::from(std::process::id());

    let c = home.json(&["check", &start.to_string()]);
    assert_eq!(
        (
            c["service_type"].as_str(),
            c["listening"].as_bool(),
            c["foreign"].as_bool()
        ),
        (Some("mine"), Some(true), Some(false))
    );
    assert_eq!(c["listener_pid"], me, "{c}");
    // `list` says the same of the instance.
    let listed = home.json(&["list", "mine"]);
    let a = &listed["service_types"][0]["instances"][0];
    assert_eq!(
        (&a["listening"], &a["listener_pid"]),
        (&true.into(), &me.into()),
        "{a}"
    );
    assert_eq!(c["instances"][0]["instance"], "a");
    assert!(
        c["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["pid"] == me),
        "{c}"
    );

    let c = home.json(&["check", &foreign.to_string()]);
    assert_eq!(
        (c["listening"].as_bool(), c["foreign"].as_bool()),
        (Some(true), Some(true))
    );
    assert!(c["instances"].as_array().unwrap().is_empty());

    let free = (start + 1..=start + 9)
        .find(|p| *p != foreign && TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .unwrap();
    let c = home.json(&["check", &free.to_string()]);
    assert_eq!(
        (
            c["listening"].as_bool(),
            c["listeners"].as_array().map(Vec::len)
        ),
        (Some(false), Some(0))
    );

    let end = (start + 199).to_string();
    let scan = home.json(&["scan", "--start", &start.to_string(), "--end", &end]);
    let status = |p: u16| {
        scan.as_array()
            .unwrap()
            .iter()
            .find(|e| e["port"] == p)
            .map(|e| e["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(status(start).as_deref(), Some("registered"));
    assert_eq!(status(foreign).as_deref(), Some("foreign"));
    assert_eq!(status(outside).as_deref(), Some("unmanaged"));
    assert_eq!(status(free), None);

    // [::1]: a listener there is listening for `check` too (`localhost` clients reach it).
    if let Some((_l, p)) = &v6 {
        let c = home.json(&["check", &p.to_string()]);
        assert_eq!(c["listening"], true, "{c}");
        let scan = home.json(&["scan", "--start", &p.to_string(), "--end", &p.to_string()]);
        assert_eq!(scan[0]["port"], *p);
    } else {
        eprintln!("no IPv6 loopback here; [::1] not checked");
    }

    let out = home.run(&["doctor", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["healthy"], false);
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    let f = &findings[0];
    assert_eq!(f["check"], "foreign-listeners");
    let msg = f["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("port {foreign}")) && msg.contains(&format!("pid {me}")),
        "{msg}"
    );
    assert!(f["fix"].as_str().unwrap().contains("type set mine"));
}

#[test]
fn doctor_finds_stale_leases_temp_files_and_a_held_lock() {
    let home = home_with_range(common::free_span_from(30700, 10));
    let healthy = home.ok(&["doctor"]);
    assert!(healthy.contains("is healthy"), "{healthy}");
    // A lease of a process that is gone (our pid with another start time), on a port that
    // something (this test) still listens on: a server that outlived its `run`.
    let port = home.json(&["allocate", "--service", "mine", "--instance", "b"])["port"]
        .as_u64()
        .unwrap() as u16;
    let _server = TcpListener::bind(("127.0.0.1", port)).expect("the port allocate found free");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(home.state()).unwrap()).unwrap();
    state["held"]["mine"]["leases"] = serde_json::json!([
        { "port": port, "pid": std::process::id(), "start_time": 1, "instance": "b" }
    ]);
    std::fs::write(home.state(), state.to_string()).unwrap();
    // As a writer killed before its rename leaves it.
    std::fs::write(home.path().join(".registry.toml.dEad01.tmp"), "torn").unwrap();
    let lock = std::fs::File::options()
        .write(true)
        .open(home.path().join("registry.lock"))
        .unwrap();
    lock.lock().unwrap();
    let out = home.run(&["doctor", "--format", "json"]);
    lock.unlock().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    assert_eq!(checks, ["leases", "temp-files", "lock"], "{report}");
    let lease = &report["findings"][0];
    let me = std::process::id();
    assert!(
        lease["message"]
            .as_str()
            .unwrap()
            .contains(&format!("pid {me} still listens on it"))
            && lease["fix"]
                .as_str()
                .unwrap()
                .contains(&format!("stop pid {me}")),
        "{lease}"
    );
    let lock_msg = report["findings"][2]["message"].as_str().unwrap();
    assert!(
        lock_msg.contains(&format!("pid {}", std::process::id())),
        "{lock_msg}"
    );
    // `list` never shows the dead lease; gc drops it and sweeps the temp file.
    assert!(
        home.json(&["list", "mine"])["service_types"][0]["leases"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let gc = home.json(&["gc"]);
    assert!(
        gc["dropped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("outlived its process"),
        "{gc}"
    );
    assert!(home.ok(&["doctor"]).contains("is healthy"));
}

#[test]
fn doctor_reports_a_registry_that_does_not_parse() {
    let home = Home::new();
    std::fs::write(home.registry(), "[settings\n").unwrap();
    let out = home.run(&["doctor", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["findings"][0]["check"], "registry");
    assert!(
        report["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("registry.toml:1:")
    );
}

fn checkout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src/bin")).unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"gcme\"\nversion = \"0.1.0\"\nedition = \"2024\"\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("src/bin/api.rs"), "fn main() {}\n").unwrap();
    std::fs::write(dir.path().join("src/bin/web.rs"), "fn main() {}\n").unwrap();
    dir
}

#[test]
fn gc_drops_gone_checkouts_and_lost_services_and_dry_run_changes_nothing() {
    let home = Home::new();
    let (kept, gone) = (checkout(), checkout());
    for ws in [&kept, &gone] {
        let m = ws.path().join("Cargo.toml");
        home.ok(&["assign", "--manifest-path", m.to_str().unwrap()]);
    }
    home.ok(&["allocate", "--service", "manual", "--instance", "by-hand"]);
    std::fs::remove_dir_all(gone.path()).unwrap();
    std::fs::remove_file(kept.path().join("src/bin/web.rs")).unwrap();

    let before = home.read();
    let dry = home.json(&["gc", "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(home.read(), before, "--dry-run changed the registry");
    let reasons: Vec<String> = dry["dropped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        reasons.iter().filter(|r| r.contains("is gone")).count(),
        2,
        "{reasons:?}"
    );
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.contains("no longer has the service gcme/web"))
            .count(),
        1,
        "{reasons:?}"
    );

    let done = home.json(&["gc"]);
    assert_eq!(done["dropped"], dry["dropped"]);
    let list = home.json(&["list", "--used"]);
    let left: Vec<(String, String)> = list["service_types"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| {
            let name = t["service_type"].as_str().unwrap().to_owned();
            t["instances"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |i| (name.clone(), i["instance"].as_str().unwrap().to_owned()))
        })
        .collect();
    let kept_root = kept
        .path()
        .canonicalize()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        left,
        [
            ("gcme/api".to_owned(), kept_root),
            ("manual".to_owned(), "by-hand".to_owned())
        ]
    );
    // gcme/web lost its last instance and was auto-allocated: its range is free again.
    assert!(
        home.json(&["list", "gcme/web"])["service_types"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(home.json(&["gc"])["dropped"], serde_json::json!([]));
    let events = home.json(&["audit", "--event", "GC"]);
    assert_eq!(events.as_array().unwrap().len(), 3);
}
