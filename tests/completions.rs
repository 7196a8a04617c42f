//! Shell completions, driven in the real shells: bash through its completion function with
//! `COMP_WORDS`, as bash calls it on TAB (and as cargo's own completion hands `cargo styxy …`
//! over to it), and fish through `complete -C`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::Home;

/// The completion script for `shell`, in a file under `dir`.
fn script(home: &Home, shell: &str, dir: &Path) -> std::path::PathBuf {
    let path = dir.join(format!("cargo-styxy.{shell}"));
    std::fs::write(&path, home.ok(&["completions", shell])).unwrap();
    path
}

/// What bash offers on TAB after `words` (the last one is the word being completed).
fn bash_offers(script: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        r#"source "$1"
COMP_WORDS=({words}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="${{COMP_WORDS[*]}}"; COMP_POINT=${{#COMP_LINE}}
_cargo__styxy cargo-styxy "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        words = quoted.join(" ")
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program, "bash"])
        .arg(script)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What fish offers for the command line `line` (its completions' first column).
fn fish_offers(script: &Path, line: &str) -> Vec<String> {
    let out = Command::new("fish")
        .args(["--no-config", "-c", "source $argv[1]; complete -C $argv[2]"])
        .arg(script)
        .arg(line)
        .output()
        .expect("fish is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn bash_completes_subcommands_flags_and_values() {
    let home = Home::new();
    let dir = tempfile::tempdir().unwrap();
    let bash = script(&home, "bash", dir.path());
    assert_eq!(bash_offers(&bash, &["cargo-styxy", "al"]), ["allocate"]);
    // Below the top level: a subcommand's own flags, and a nested subcommand's.
    assert_eq!(
        bash_offers(&bash, &["cargo-styxy", "allocate", "--se"]),
        ["--service"]
    );
    assert_eq!(
        bash_offers(&bash, &["cargo-styxy", "type", "set", "x", "--max"]),
        ["--max-instances"]
    );
    assert_eq!(
        bash_offers(&bash, &["cargo-styxy", "run", "--rel"]),
        ["--release"]
    );
    // The values of enum arguments.
    assert_eq!(
        bash_offers(
            &bash,
            &["cargo-styxy", "rule", "add", "x-*", "--placement", ""]
        ),
        ["after", "before", "smart"]
    );
    assert_eq!(
        bash_offers(
            &bash,
            &["cargo-styxy", "rule", "add", "x-*", "--instance", "s"]
        ),
        ["single"]
    );
    assert_eq!(
        bash_offers(&bash, &["cargo-styxy", "list", "--format", "j"]),
        ["json"]
    );
    assert_eq!(
        bash_offers(&bash, &["cargo-styxy", "config", "set", "audit_"]),
        ["audit_max_bytes", "audit_files"]
    );
    assert_eq!(
        bash_offers(&bash, &["cargo-styxy", "audit", "--event", "LEASE_"]),
        ["LEASE_TAKEN", "LEASE_ENDED"]
    );
    assert_eq!(
        bash_offers(&bash, &["cargo-styxy", "completions", "fi"]),
        ["fish"]
    );
}

#[test]
fn fish_completes_subcommands_flags_and_values() {
    let home = Home::new();
    let dir = tempfile::tempdir().unwrap();
    let fish = script(&home, "fish", dir.path());
    assert!(fish_offers(&fish, "cargo-styxy al").contains(&"allocate".to_owned()));
    assert_eq!(
        fish_offers(&fish, "cargo-styxy allocate --se"),
        ["--service"]
    );
    assert_eq!(
        fish_offers(&fish, "cargo-styxy rule add x-* --placement "),
        ["after", "before", "smart"]
    );
    assert_eq!(
        fish_offers(&fish, "cargo-styxy audit --event LEASE_"),
        // fish sorts them.
        ["LEASE_ENDED", "LEASE_TAKEN"]
    );
}

#[test]
fn every_shell_gets_a_script_and_a_closed_pipe_ends_it_quietly() {
    let home = Home::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = home.ok(&["completions", shell]);
        assert!(
            out.contains("cargo-styxy") && out.contains("allocate") && out.contains("service"),
            "{shell}"
        );
        // A reader that is gone (`| head -1`) ends it quietly, as for every command.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = home
            .cmd(&["completions", shell])
            .stdout(writer)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{shell}: {err}");
        assert!(err.is_empty(), "{shell}: {err}");
    }
}
