//! Shell completions, driven in the real shells: bash through its completion function with
//! `COMP_WORDS`, as bash calls it on TAB (and as cargo's own completion hands `cargo styxy …`
//! over to it), and fish through `complete -C`. The shell asks the binary on each TAB, so
//! values from the registry (`STYXY_HOME`) and the workspace in the current directory
//! complete too.
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

/// A shell run the way a user's would: `cargo-styxy` on its PATH, this registry, in `cwd`.
fn shell(home: &Home, program: &str, cwd: &Path) -> Command {
    let bin = Path::new(env!("CARGO_BIN_EXE_cargo-styxy"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(program);
    cmd.env("PATH", path)
        .env("STYXY_HOME", home.path())
        .env_remove("COMPLETE")
        .current_dir(cwd);
    cmd
}

/// What bash offers on TAB after `words` (the last one is the word being completed).
fn bash_offers(home: &Home, cwd: &Path, script: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        r#"source "$1"
COMP_WORDS=({words}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="${{COMP_WORDS[*]}}"; COMP_POINT=${{#COMP_LINE}}
_clap_complete_cargo_styxy cargo-styxy "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        words = quoted.join(" ")
    );
    let mut bash = shell(home, "bash", cwd);
    bash.args(["--norc", "--noprofile", "-c", &program, "bash"])
        .arg(script);
    offered(bash)
        .into_iter()
        .filter(|l| !l.is_empty())
        .collect()
}

/// The lines a shell printed, which must have succeeded.
fn offered(mut shell: Command) -> Vec<String> {
    let out = shell
        .output()
        .expect("the shell is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// What fish offers for the command line `line` (its completions' first column).
fn fish_offers(home: &Home, cwd: &Path, script: &Path, line: &str) -> Vec<String> {
    let mut fish = shell(home, "fish", cwd);
    fish.args(["--no-config", "-c", "source $argv[1]; complete -C $argv[2]"])
        .arg(script)
        .arg(line);
    offered(fish)
        .into_iter()
        .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
        .collect()
}

/// A registry with a type of its own and a zone, and a workspace of two packages.
fn fixtures() -> (Home, tempfile::TempDir) {
    let home = Home::new();
    home.ok(&["allocate", "--service", "shop-api", "--instance", "x"]);
    home.ok(&["allocate", "--service", "shop-db", "--instance", "x"]);
    let ws = tempfile::tempdir().unwrap();
    for (path, text) in [
        (
            "Cargo.toml",
            "[workspace]\nmembers = [\"front\", \"back\"]\nresolver = \"3\"\n",
        ),
        (
            "front/Cargo.toml",
            "[package]\nname = \"front\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
        ),
        ("front/src/main.rs", "fn main() {}\n"),
        ("front/src/bin/front-admin.rs", "fn main() {}\n"),
        (
            "back/Cargo.toml",
            "[package]\nname = \"back\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
        ),
        ("back/src/main.rs", "fn main() {}\n"),
    ] {
        let p = ws.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    (home, ws)
}

#[test]
fn bash_completes_subcommands_flags_and_values() {
    let (home, ws) = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let bash = script(&home, "bash", dir.path());
    let offers = |words: &[&str]| bash_offers(&home, ws.path(), &bash, words);
    assert_eq!(offers(&["cargo-styxy", "al"]), ["allocate"]);
    // Below the top level: a subcommand's own flags, and a nested subcommand's.
    assert_eq!(offers(&["cargo-styxy", "allocate", "--se"]), ["--service"]);
    assert_eq!(
        offers(&["cargo-styxy", "type", "set", "x", "--max"]),
        ["--max-instances"]
    );
    assert_eq!(offers(&["cargo-styxy", "run", "--rel"]), ["--release"]);
    // The values of enum arguments.
    assert_eq!(
        offers(&["cargo-styxy", "rule", "add", "x-*", "--placement", ""]),
        ["after", "before", "smart"]
    );
    assert_eq!(
        offers(&["cargo-styxy", "rule", "add", "x-*", "--instance", "s"]),
        ["single"]
    );
    assert_eq!(offers(&["cargo-styxy", "list", "--format", "j"]), ["json"]);
    assert_eq!(
        offers(&["cargo-styxy", "config", "set", "audit_"]),
        ["audit_max_bytes", "audit_files"]
    );
    assert_eq!(
        offers(&["cargo-styxy", "audit", "--event", "LEASE_"]),
        ["LEASE_TAKEN", "LEASE_ENDED"]
    );
    assert_eq!(offers(&["cargo-styxy", "completions", "fi"]), ["fish"]);
    // What the registry holds: its service types.
    assert_eq!(
        offers(&["cargo-styxy", "allocate", "--service", "shop-"]),
        ["shop-api", "shop-db"]
    );
    assert_eq!(
        offers(&["cargo-styxy", "type", "rm", "shop-d"]),
        ["shop-db"]
    );
    // What the workspace in the current directory has: packages, bins, services.
    assert_eq!(offers(&["cargo-styxy", "env", "-p", ""]), ["back", "front"]);
    assert_eq!(
        offers(&["cargo-styxy", "run", "--bin", "front"]),
        ["front", "front-admin"]
    );
    assert_eq!(
        offers(&["cargo-styxy", "port", "FRONT_"]),
        ["FRONT_ADMIN_PORT", "FRONT_PORT"]
    );
}

#[test]
fn fish_completes_subcommands_flags_and_values() {
    let (home, ws) = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let fish = script(&home, "fish", dir.path());
    let offers = |line: &str| fish_offers(&home, ws.path(), &fish, line);
    assert!(offers("cargo-styxy al").contains(&"allocate".to_owned()));
    assert_eq!(offers("cargo-styxy allocate --se"), ["--service"]);
    assert_eq!(
        offers("cargo-styxy rule add x-* --placement "),
        ["after", "before", "smart"]
    );
    assert_eq!(
        offers("cargo-styxy config set audit_"),
        ["audit_max_bytes", "audit_files"]
    );
    assert_eq!(
        offers("cargo-styxy allocate --service shop-"),
        ["shop-api", "shop-db"]
    );
    assert_eq!(offers("cargo-styxy wait b"), ["back"]);
}

#[test]
fn every_shell_gets_a_script_and_a_closed_pipe_ends_it_quietly() {
    let home = Home::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = home.ok(&["completions", shell]);
        assert!(
            out.contains("cargo-styxy") && out.contains("COMPLETE"),
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
