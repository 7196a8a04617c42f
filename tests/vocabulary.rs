//! One JSON vocabulary: every command's `--format json` output, run for real, uses only the
//! fields of the README's table (so a type's name is `service_type` everywhere, never
//! `name`), and the commands with no JSON form refuse it as a usage error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::Home;
use serde_json::Value;

/// The field names of the README's vocabulary table.
fn vocabulary() -> BTreeSet<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let table = readme
        .split("<!-- vocabulary -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- /vocabulary -->").next())
        .expect("the README's vocabulary table");
    let fields: BTreeSet<String> = table
        .lines()
        .filter_map(|row| row.strip_prefix("| `"))
        .flat_map(|row| {
            let first = row.split(" |").next().unwrap_or_default();
            format!("`{first}")
                .split(", ")
                .map(|f| f.trim_matches('`').to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(fields.len() > 40, "{fields:?}");
    fields
}

/// The field names in `v`, with where each was seen; `dynamic` levels (maps keyed by env
/// names or rule patterns) are looked into, not counted.
fn fields(v: &Value, dynamic: usize, at: &str, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                if dynamic == 0 {
                    out.entry(k.clone()).or_insert_with(|| at.to_owned());
                }
                fields(x, dynamic.saturating_sub(1), at, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|x| fields(x, dynamic, at, out)),
        _ => {}
    }
}

fn json_of(out: &std::process::Output, what: &str) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn every_command_speaks_the_readmes_vocabulary() {
    let home = Home::new();
    let start = common::free_span_from(31500, 40);
    let ws = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(ws.path().join("src")).unwrap();
    std::fs::write(
        ws.path().join("Cargo.toml"),
        "[package]\nname = \"vocab\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
         [package.metadata.styxy]\nservices = [\"postgres\"]\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(ws.path().join("src/main.rs"), "fn main() {}\n").unwrap();
    let manifest = ws.path().join("Cargo.toml");
    let manifest = manifest.to_str().unwrap();
    let range = format!("{start}-{}", start + 9);
    let wider = format!("{start}-{}", start + 19);
    let port = start.to_string();

    // (arguments, dynamic levels, exit codes it may end with: `doctor` and a timed-out
    // `wait` exit 1 with their JSON).
    let commands: Vec<(Vec<&str>, usize, &[i32])> = vec![
        (vec!["assign", "--manifest-path", manifest], 0, &[0]),
        (vec!["env", "--manifest-path", manifest], 1, &[0]),
        (vec!["port", "vocab", "--manifest-path", manifest], 0, &[0]),
        (vec!["type", "add", "vocab-t", "--range", &range], 0, &[0]),
        (vec!["type", "set", "vocab-t", "--range", &wider], 0, &[0]),
        (
            vec!["allocate", "--service", "vocab-t", "--instance", "x"],
            0,
            &[0],
        ),
        (vec!["allocate", "--service", "vocab-auto"], 0, &[0]),
        (vec!["list"], 0, &[0]),
        (vec!["check", &port], 0, &[0]),
        (vec!["scan", "--start", &port, "--end", &port], 0, &[0]),
        (
            vec!["rule", "add", "vocab-*", "--chunk-size", "20"],
            0,
            &[0],
        ),
        (vec!["rule", "list"], 1, &[0]),
        (vec!["rule", "rm", "vocab-*"], 0, &[0]),
        (vec!["config", "show"], 0, &[0]),
        (vec!["config", "set", "gap_size", "10"], 0, &[0]),
        (vec!["config", "validate"], 0, &[0]),
        (vec!["config", "path"], 0, &[0]),
        (vec!["config", "edit"], 0, &[0]),
        (vec!["config", "restore", "--list"], 0, &[0]),
        (
            vec![
                "wait",
                "postgres",
                "--timeout",
                "0",
                "--manifest-path",
                manifest,
            ],
            0,
            &[1],
        ),
        (vec!["doctor"], 0, &[0, 1]),
        (vec!["release", "--service", "vocab-auto"], 0, &[0]),
        (vec!["gc", "--dry-run"], 0, &[0]),
        (vec!["gc"], 0, &[0]),
        (vec!["type", "rm", "vocab-t", "--force"], 0, &[0]),
        (vec!["init", "--manifest-path", manifest], 0, &[0]),
        (vec!["audit"], 0, &[0]),
    ];
    let mut seen = BTreeMap::new();
    for (args, dynamic, codes) in &commands {
        let mut full = args.clone();
        full.extend(["--format", "json"]);
        let out = home.cmd(&full).env("EDITOR", "true").output().unwrap();
        let what = args.join(" ");
        assert!(
            codes.contains(&out.status.code().unwrap_or(-1)),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        fields(&json_of(&out, &what), *dynamic, &what, &mut seen);
    }
    {
        let ui = home.start_ui(9860, &[], &[]);
        fields(&ui.started, 0, "ui", &mut seen);
    }

    let known = vocabulary();
    let unknown: Vec<String> = seen
        .iter()
        .filter(|(f, _)| !known.contains(*f))
        .map(|(f, at)| format!("{f} (in `{at}`)"))
        .collect();
    assert!(
        unknown.is_empty(),
        "fields missing from the README's table: {unknown:?}"
    );
    // What the vocabulary is for: these words mean one thing each.
    for word in [
        "service_type",
        "instance",
        "origin",
        "listening",
        "leases",
        "pid",
    ] {
        assert!(seen.contains_key(word), "no command printed {word}");
    }
    assert!(!seen.contains_key("name"), "a type is a service_type");

    // Commands with no JSON form say so as a usage error.
    for args in [["metrics"], ["completions"]] {
        let mut full = args.to_vec();
        if args[0] == "completions" {
            full.push("bash");
        }
        full.extend(["--format", "json"]);
        let out = home.run(&full);
        assert_eq!(out.status.code(), Some(2), "{full:?}");
    }
}
