//! `cargo styxy mcp` driven by a real MCP client: the Python SDK's (`mcp` from PyPI) stdio
//! client in `tests/mcp/client.py`, from the virtualenv that `.ci/run` makes
//! (`target/mcp-venv`, or `$STYXY_MCP_PYTHON`). Runs with the `mcp-tests` feature (on with
//! `--all-features`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::Home;

fn python() -> PathBuf {
    std::env::var_os("STYXY_MCP_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/mcp-venv/bin/python"),
        PathBuf::from,
    )
}

#[test]
fn an_mcp_client_reads_ports_starts_waits_for_and_stops_a_service() {
    let home = Home::new();
    home.ok(&["rule", "add", "echo", "--preferred-start", "31500"]);
    let ws = common::one_bin_workspace("echo", "", common::LISTENING_BIN);
    let manifest = ws.path().join("Cargo.toml");
    let python = python();
    assert!(
        python.exists(),
        "no {}: python3 -m venv target/mcp-venv && target/mcp-venv/bin/pip install mcp (.ci/run does it)",
        python.display()
    );
    let out = std::process::Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/client.py"))
        .arg(common::BIN)
        .arg(&manifest)
        .env("STYXY_HOME", home.path())
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fixture-mcp"),
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ok = |step: &str| -> String {
        assert_eq!(r[step]["error"], false, "{step}: {}", r[step]);
        r[step]["text"].as_str().unwrap().to_owned()
    };
    // A step answered with a tool error (not a crash of the server) that says `needle`.
    let tool_error = |step: &str, needle: &str| {
        assert_eq!(r[step]["error"], true, "{step}: {}", r[step]);
        let text = r[step]["text"].as_str().unwrap();
        assert!(text.contains(needle), "{step}: {text}");
    };

    // Every tool is there, each saying what it returns.
    let tools = r["tools"].as_object().unwrap();
    let mut names: Vec<&str> = tools.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "env", "list", "port", "ports", "release", "start", "stop", "wait"
        ]
    );
    assert!(
        tools
            .values()
            .all(|d| d.as_str().unwrap().contains("Returns"))
    );

    // The ports are what `assign --format json` says (which only the first call created).
    let without_created = |mut v: serde_json::Value| {
        for s in v["services"].as_array_mut().unwrap() {
            s.as_object_mut().unwrap().remove("auto_allocated");
        }
        v
    };
    let ports: serde_json::Value = serde_json::from_str(&ok("ports")).unwrap();
    assert_eq!(ports["services"][0]["auto_allocated"], true);
    let assigned = home.json(&["assign", "--manifest-path", manifest.to_str().unwrap()]);
    assert_eq!(without_created(ports), without_created(assigned.clone()));
    let port = assigned["services"][0]["port"].as_u64().unwrap();
    assert_eq!(ok("port").trim(), port.to_string());
    let env: serde_json::Value = serde_json::from_str(&ok("env")).unwrap();
    assert_eq!(env["ECHO_PORT"], port);

    // Started, refused a second time, listening, stopped with nothing left behind.
    let started: serde_json::Value = serde_json::from_str(&ok("start")).unwrap();
    assert_eq!(started["port"], port);
    tool_error("start_again", "runs already");
    let waited: serde_json::Value = serde_json::from_str(&ok("wait")).unwrap();
    assert_eq!(waited["services"][0]["listening"], true, "{waited}");
    let stopped: serde_json::Value = serde_json::from_str(&ok("stop")).unwrap();
    assert_eq!(stopped["pid"], started["pid"]);
    let group = started["pid"].as_u64().unwrap();
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')?
                        .1
                        .split_whitespace()
                        .nth(2)?
                        .parse::<u64>()
                        .ok()
                })
                == Some(group)
        })
        .map(|pid| pid.to_string())
        .collect();
    assert!(left.is_empty(), "processes of the stopped group: {left:?}");
    assert!(
        !styxy::probe::is_listening(port as u16),
        "port {port} still listens"
    );

    // Errors are tool errors with the fix, and the server goes on answering.
    tool_error("bad_argument", "unknown field");
    tool_error("unknown_service", "its services are echo");
    let list: serde_json::Value = serde_json::from_str(&ok("list")).unwrap();
    assert!(list["service_types"].is_array());
}
