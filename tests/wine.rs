//! The Windows binary, run under Wine the way the other tests run the Linux one: built for
//! `x86_64-pc-windows-gnu` into a target dir of its own, driven with a temp registry, real
//! sockets on 127.0.0.1, real concurrent processes, a lock held by another Windows process,
//! `run`'s job object, and `cargo metadata` from the Windows `cargo.exe` on `WINEPATH`.
//!
//! Needs Debian's `wine64` and `gcc-mingw-w64-x86-64`, the `x86_64-pc-windows-gnu` rustup
//! target and the toolchain `1.95.0-x86_64-pc-windows-gnu` (`.ci/run` installs them), so it
//! runs only with the `wine-tests` feature (on with `--all-features`).
//!
//! Wine 8 lacks `bcryptprimitives.dll` (Rust's std imports its `ProcessPrng`): the tests
//! build a stand-in (`tests/wine/bcryptprimitives.c`) into their own Wine prefix, made once
//! a test run under `CARGO_TARGET_TMPDIR`. Windows processes cannot start Linux ones, so
//! the only cargo the `.exe` sees is the Windows one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::Home;

const TARGET: &str = "x86_64-pc-windows-gnu";
const WINDOWS_TOOLCHAIN: &str = "1.95.0-x86_64-pc-windows-gnu";
const WINE: &str = "/usr/lib/wine/wine64";
const MINGW_GCC: &str = "x86_64-w64-mingw32-gcc";

/// What every test shares: the `.exe`, the Wine prefix it runs in, the helper program and
/// the Windows cargo.
struct Wine {
    exe: PathBuf,
    prefix: PathBuf,
    helper: PathBuf,
    cargo_bin: PathBuf,
}

/// A Linux path as the Windows programs see it: drive Z: is the Linux root.
fn win(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

fn must(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot {what}: {e} ({cmd:?})"));
    assert!(
        out.status.success(),
        "cannot {what}: {cmd:?}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn wine() -> &'static Wine {
    static WINE_SETUP: OnceLock<Wine> = OnceLock::new();
    WINE_SETUP.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wine");
        let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wine");
        std::fs::create_dir_all(&root).unwrap();

        // The binary, as `cargo build --target x86_64-pc-windows-gnu` makes it.
        let target_dir = root.join("target");
        must(
            Command::new(env!("CARGO"))
                .args(["build", "--bin", "cargo-styxy", "--target", TARGET])
                .arg("--manifest-path")
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
                .env("CARGO_TARGET_DIR", &target_dir),
            "build the Windows binary (rustup target add x86_64-pc-windows-gnu; apt-get install gcc-mingw-w64-x86-64)",
        );
        let exe = target_dir.join(TARGET).join("debug/cargo-styxy.exe");

        let helper = root.join("helper.exe");
        must(
            Command::new(MINGW_GCC)
                .arg("-O")
                .arg("-o")
                .arg(&helper)
                .arg(sources.join("helper.c")),
            "build tests/wine/helper.c (apt-get install gcc-mingw-w64-x86-64)",
        );

        // One prefix a test run: a fresh one, with the stand-in DLL.
        let prefix = root.join(format!("prefix-{}", std::process::id()));
        for old in std::fs::read_dir(&root).unwrap().flatten() {
            if old.file_name().to_string_lossy().starts_with("prefix-") {
                let _ = std::fs::remove_dir_all(old.path());
            }
        }
        must(
            Command::new(WINE)
                .args(["wineboot", "-i"])
                .env("WINEPREFIX", &prefix)
                .env("WINEDEBUG", "-all")
                .stdin(Stdio::null()),
            "create a Wine prefix (apt-get install wine64)",
        );
        must(
            Command::new(MINGW_GCC)
                .arg("-shared")
                .arg("-o")
                .arg(prefix.join("drive_c/windows/system32/bcryptprimitives.dll"))
                .arg(sources.join("bcryptprimitives.c"))
                .arg("-ladvapi32"),
            "build tests/wine/bcryptprimitives.c",
        );

        let rustup_home = std::env::var_os("RUSTUP_HOME").map_or_else(
            || Path::new(&std::env::var_os("HOME").unwrap()).join(".rustup"),
            PathBuf::from,
        );
        let cargo_bin = rustup_home.join("toolchains").join(WINDOWS_TOOLCHAIN).join("bin");
        assert!(
            cargo_bin.join("cargo.exe").is_file(),
            "no Windows cargo in {}: rustup toolchain install {WINDOWS_TOOLCHAIN} --force-non-host --profile minimal",
            cargo_bin.display()
        );
        Wine {
            exe,
            prefix,
            helper,
            cargo_bin,
        }
    })
}

/// A Windows program under Wine, with the test's environment only: no Linux `CARGO` (the
/// `.exe` could not start it), the Windows cargo on `WINEPATH`.
fn windows(program: &Path) -> Command {
    let w = wine();
    let mut cmd = Command::new(WINE);
    cmd.arg(program)
        .env("WINEPREFIX", &w.prefix)
        .env("WINEDEBUG", "-all")
        .env("WINEPATH", win(&w.cargo_bin))
        .env_remove("CARGO")
        .env_remove("STYXY_HOME")
        .env_remove("RUSTUP_TOOLCHAIN")
        .stdin(Stdio::null());
    cmd
}

/// `cargo-styxy.exe styxy ARGS` on the registry in `home`.
fn styxy(home: &Home, args: &[&str]) -> Command {
    let mut cmd = windows(&wine().exe);
    cmd.arg("styxy")
        .args(args)
        .env("STYXY_HOME", win(home.path()))
        .current_dir(home.path());
    cmd
}

fn ok(cmd: &mut Command) -> String {
    String::from_utf8(must(cmd, "run cargo-styxy.exe").stdout).unwrap()
}

fn json(cmd: &mut Command) -> serde_json::Value {
    let out = ok(cmd.args(["--format", "json"]));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The (instance, port) pairs of `service_type` as `list --format json` has them.
fn instances(home: &Home, service_type: &str) -> Vec<(String, u64)> {
    let list = json(&mut styxy(home, &["list"]));
    list["service_types"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["service_type"] == service_type)
        .flat_map(|t| t["instances"].as_array().unwrap().clone())
        .map(|i| {
            (
                i["instance"].as_str().unwrap().to_owned(),
                i["port"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn allocates_releases_and_lists_with_the_checkout_path_as_windows_spells_it() {
    let home = Home::new();
    let a = json(&mut styxy(
        &home,
        &["allocate", "--service", "api", "--instance", "a"],
    ));
    // The default instance is this directory's canonical path: no `\\?\`, drive letter
    // upper-case, however the directory was reached.
    let here = json(&mut styxy(&home, &["allocate", "--service", "api"]));
    let expected = win(&std::fs::canonicalize(home.path()).unwrap());
    assert_eq!(here["instance"], expected.as_str(), "{here}");
    let link = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(home.path(), link.path().join("here")).unwrap();
    let linked =
        json(styxy(&home, &["allocate", "--service", "api"]).current_dir(link.path().join("here")));
    assert_eq!(linked["instance"], expected.as_str(), "{linked}");
    assert_eq!(linked["port"], here["port"]);
    assert_ne!(a["port"], here["port"]);
    assert_eq!(
        instances(&home, "api"),
        [
            (expected.clone(), here["port"].as_u64().unwrap()),
            ("a".to_owned(), a["port"].as_u64().unwrap()),
        ]
    );

    ok(&mut styxy(
        &home,
        &["release", "--service", "api", "--instance", "a"],
    ));
    assert_eq!(
        instances(&home, "api"),
        [(expected, here["port"].as_u64().unwrap())]
    );
}

#[test]
fn sees_a_port_a_linux_process_listens_on_and_allocates_around_it() {
    let home = Home::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let checked = json(&mut styxy(&home, &["check", &port.to_string()]));
    assert_eq!(checked["listening"], true, "{checked}");

    // A new type that starts on the held port gets the next one.
    let range = format!("{port}-{}", port.saturating_add(5));
    let out = must(
        styxy(
            &home,
            &["allocate", "--service", "held", "--instance", "x", "--port"],
        )
        .arg(port.to_string())
        .args(["--format", "json"]),
        "allocate around a held port",
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(got["port"], port, "{got} ({range})");
    drop(listener);
    let checked = json(&mut styxy(&home, &["check", &port.to_string()]));
    assert_eq!(checked["listening"], false, "{checked}");
}

#[test]
fn a_dozen_concurrent_allocations_get_a_dozen_ports() {
    let home = Home::new();
    let children: Vec<Child> = (0..12)
        .map(|i| {
            styxy(
                &home,
                &[
                    "allocate",
                    "--service",
                    "burst",
                    "--instance",
                    &format!("w{i}"),
                    "--format",
                    "json",
                ],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut ports: Vec<u64> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{out:?}");
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            v["port"].as_u64().unwrap()
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 12, "{ports:?}");
    assert_eq!(instances(&home, "burst").len(), 12);
}

/// A Windows process holding the lock as LockFileEx holds it; killed (it is a Wine
/// process, our child) when dropped.
struct HeldLock(Child);

impl HeldLock {
    fn take(home: &Home) -> Self {
        let mut child = windows(&wine().helper)
            .arg("lock")
            .arg(win(&home.path().join("registry.lock")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked");
        Self(child)
    }

    fn release(mut self) {
        drop(self.0.stdin.take());
        assert!(self.0.wait().unwrap().success());
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn a_lock_held_by_another_windows_process_times_out_with_exit_4() {
    let home = Home::new();
    ok(&mut styxy(
        &home,
        &["allocate", "--service", "x", "--instance", "i"],
    ));
    let held = HeldLock::take(&home);
    let out = styxy(&home, &["allocate", "--service", "y", "--instance", "i"])
        .env("STYXY_LOCK_TIMEOUT", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("registry.lock"), "{err}");
    held.release();
    ok(&mut styxy(
        &home,
        &["allocate", "--service", "y", "--instance", "i"],
    ));
}

/// A copy of the example workspace whose build helper is this repository's.
fn shop() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop");
    let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/styxy-build");
    copy_tree(&from, dir.path(), &|text| {
        text.replace(
            "path = \"../../../crates/styxy-build\"",
            &format!("path = {:?}", helper.display().to_string()),
        )
    });
    dir
}

fn copy_tree(from: &Path, to: &Path, edit: &dyn Fn(&str) -> String) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&src, &dst, edit);
        } else if name == "Cargo.toml" {
            std::fs::write(&dst, edit(&std::fs::read_to_string(&src).unwrap())).unwrap();
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

#[test]
fn assign_env_and_port_read_a_workspace_through_the_windows_cargo() {
    let home = Home::new();
    let ws = shop();
    let manifest = win(&ws.path().join("Cargo.toml"));
    // Reached through a lower-case drive letter, the checkout is still `Z:\…`.
    let lower = manifest.replacen("Z:", "z:", 1);
    let assigned = json(&mut styxy(&home, &["assign", "--manifest-path", &lower]));
    let services = assigned["services"].as_array().unwrap();
    assert_eq!(services.len(), 4, "{assigned}");
    let api = services
        .iter()
        .find(|s| s["env"] == "SHOP_API_PORT")
        .unwrap();
    let root = win(&std::fs::canonicalize(ws.path()).unwrap());
    assert_eq!(assigned["workspace"], root.as_str(), "{assigned}");

    let port = ok(&mut styxy(
        &home,
        &["port", "--manifest-path", &manifest, "shop-api"],
    ));
    assert_eq!(port.trim(), api["port"].to_string());
    let env = ok(&mut styxy(&home, &["env", "--manifest-path", &manifest]));
    assert!(
        env.lines()
            .any(|l| l == format!("SHOP_API_PORT={}", api["port"])),
        "{env}"
    );
    // PowerShell, the Windows shell, gets its own flavour.
    let ps = ok(&mut styxy(
        &home,
        &[
            "env",
            "--manifest-path",
            &manifest,
            "--format",
            "powershell",
        ],
    ));
    assert!(
        ps.contains(&format!("$env:SHOP_API_PORT = \"{}\"", api["port"])),
        "{ps}"
    );
}

/// Linux pids of the processes whose command line (arguments joined by spaces) holds
/// `marker`.
fn pids_with(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(marker)
            })
        })
        .collect()
}

/// Kills by pid, when dropped, the processes whose command line holds a marker that only
/// this test's processes carry.
struct KillMarked(String);

impl Drop for KillMarked {
    fn drop(&mut self) {
        for pid in pids_with(&self.0) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Adds 1 to the start time of every lease of `pid` in the state `v`; returns how many.
fn bump_start_time(v: &mut serde_json::Value, pid: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Object(o) if o.get("pid") == Some(pid) => {
            match o.get_mut("start_time") {
                Some(t) => {
                    *t = (t.as_u64().unwrap() + 1).into();
                    1
                }
                None => 0,
            }
        }
        serde_json::Value::Object(o) => o.values_mut().map(|x| bump_start_time(x, pid)).sum(),
        serde_json::Value::Array(a) => a.iter_mut().map(|x| bump_start_time(x, pid)).sum(),
        _ => 0,
    }
}

#[test]
fn run_leases_its_port_and_its_bin_dies_with_it_in_a_job_object() {
    let home = Home::new();
    let ws = shop();
    let manifest = win(&ws.path().join("Cargo.toml"));
    let w = wine();
    // `run` starts $CARGO run …: the helper plays cargo (and hands `cargo metadata` to the
    // real one); it writes the mark once it "serves", then sleeps until killed.
    let mark = ws.path().join("started");
    let run = |extra: &[(&str, &str)]| {
        let mut cmd = styxy(
            &home,
            &["run", "--manifest-path", &manifest, "-p", "shop-api"],
        );
        cmd.env("CARGO", win(&w.helper))
            .env("STYXY_TEST_CARGO", win(&w.cargo_bin.join("cargo.exe")))
            .env("STYXY_TEST_MARK", win(&mark))
            // Marks this test's processes, so that cleanup kills only them.
            .env("STYXY_TEST_ID", ws.path());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd
    };
    let _cleanup = KillMarked(win(ws.path()));

    // The bin's exit code is run's.
    let out = run(&[("STYXY_TEST_EXIT", "7")]).output().unwrap();
    assert_eq!(out.status.code(), Some(7), "{out:?}");

    let mut first = run(&[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the bin to start", || mark.exists());
    let leases = || -> Vec<serde_json::Value> {
        json(&mut styxy(&home, &["list"]))["service_types"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| t["leases"].as_array().cloned().unwrap_or_default())
            .collect()
    };
    let held = leases();
    assert_eq!(held.len(), 1, "{held:?}");

    // A second run of the same service in the same checkout is refused while the first
    // lives, naming the holder.
    let second = run(&[]).output().unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("pid {}", held[0]["pid"])),
        "{err} / {held:?}"
    );

    // A lease names a process by pid and start time: with the pid reused by another
    // process (the start time differs), the lease is dead and a run is not refused.
    let state_file = home.path().join("state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    assert_eq!(bump_start_time(&mut state, &held[0]["pid"]), 1, "{state}");
    std::fs::write(&state_file, state.to_string()).unwrap();
    let out = run(&[("STYXY_TEST_EXIT", "0")]).output().unwrap();
    assert!(out.status.success(), "{out:?}");

    // Killed outright, run takes the bin with it (the job closes), and its lease is dead:
    // the next run is not refused.
    let bins = || pids_with(&format!("{} run", win(&w.helper)));
    assert!(!bins().is_empty());
    first.kill().unwrap();
    first.wait().unwrap();
    wait_until("the bin to die with run", || bins().is_empty());
    std::fs::remove_file(&mark).unwrap();
    let out = run(&[("STYXY_TEST_EXIT", "0")]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(leases().is_empty());
}

#[test]
fn the_windows_binary_names_no_proc_path() {
    let exe = std::fs::read(&wine().exe).unwrap();
    assert!(
        !exe.windows(6).any(|w| w == b"/proc/"),
        "the Windows binary holds a /proc path: its answers must come from Windows calls"
    );
}

#[test]
fn a_port_file_held_open_by_a_reader_is_replaced_once_the_reader_lets_go() {
    let home = Home::new();
    let ws = shop();
    let manifest = win(&ws.path().join("Cargo.toml"));
    let assigned = json(&mut styxy(&home, &["assign", "--manifest-path", &manifest]));
    let root = assigned["workspace"].as_str().unwrap().to_owned();
    let file = std::fs::read_dir(home.path().join("ports"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("a port file");
    // A Windows reader holds the port file open without delete sharing for a second:
    // replacing it fails with a sharing violation until then, and the writer tries again.
    let mut reader = windows(&wine().helper)
        .arg("hold")
        .arg(win(&file))
        .arg("1000")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(reader.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "open");
    ok(&mut styxy(
        &home,
        &["release", "--service", "shop-api", "--instance", &root],
    ));
    assert!(reader.wait().unwrap().success());
    let text = std::fs::read_to_string(&file).unwrap();
    // Held now (the port file also remembers the released one, apart).
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    let held: Vec<&str> = file["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["service_type"].as_str())
        .collect();
    assert!(
        held.contains(&"postgres") && !held.contains(&"shop-api"),
        "{text}"
    );
}

#[test]
fn a_build_script_gets_the_workspace_ports_as_constants() {
    let home = Home::new();
    let ws = shop();
    let manifest = win(&ws.path().join("Cargo.toml"));
    let assigned = json(&mut styxy(&home, &["assign", "--manifest-path", &manifest]));
    let api = assigned["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["env"] == "SHOP_API_PORT")
        .unwrap()["port"]
        .clone();
    // What the build helper runs, with the environment cargo gives a build script.
    let out_dir = tempfile::tempdir().unwrap();
    let out = must(
        styxy(&home, &["build-script", "--format-version", "1"])
            .env("CARGO_MANIFEST_DIR", win(&ws.path().join("shop-cli")))
            .env("OUT_DIR", win(out_dir.path()))
            .env("CARGO_PKG_NAME", "shop-cli"),
        "run build-script",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("cargo:rerun-if-changed="), "{stdout}");
    let constants = std::fs::read_to_string(out_dir.path().join("styxy_ports.rs")).unwrap();
    assert!(
        constants.contains(&format!("pub const SHOP_API_PORT: u16 = {api};")),
        "{constants}"
    );
}

#[test]
fn metrics_audit_and_completions_answer_as_on_linux() {
    let home = Home::new();
    ok(&mut styxy(
        &home,
        &["allocate", "--service", "api", "--instance", "a"],
    ));
    let metrics = ok(&mut styxy(&home, &["metrics"]));
    assert!(
        metrics
            .lines()
            .any(|l| l == "styxy_allocations_total{result=\"assigned\"} 1"),
        "{metrics}"
    );
    let audit = json(&mut styxy(&home, &["audit"]));
    let events: Vec<&str> = audit
        .as_array()
        .unwrap_or_else(|| panic!("{audit}"))
        .iter()
        .filter_map(|r| r["event"].as_str())
        .collect();
    assert_eq!(events, ["INSTANCE_ASSIGNED"], "{audit}");
    // PowerShell's registration asks the binary itself on every TAB.
    let script = ok(&mut styxy(&home, &["completions", "powershell"]));
    assert!(script.contains("Register-ArgumentCompleter"), "{script}");
    let offered = ok(windows(&wine().exe)
        .args(["--", "cargo-styxy", "styxy", "allo"])
        .env("COMPLETE", "powershell"));
    assert!(offered.starts_with("allocate\t"), "{offered}");
}

#[test]
fn the_dashboard_serves_its_state_to_a_client_with_the_token() {
    use std::io::{Read, Write};
    let home = Home::new();
    ok(&mut styxy(
        &home,
        &["allocate", "--service", "api", "--instance", "a"],
    ));
    // It takes a free port of the `coordination` type, as it does on Linux.
    let mut ui = common::Reaped(
        styxy(&home, &["ui", "--format", "json"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(ui.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let started: serde_json::Value = serde_json::from_str(&line).unwrap();
    let token = started["url"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap()
        .to_owned();
    let served = started["port"].as_u64().unwrap();
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", served as u16)).unwrap();
    write!(
        conn,
        "GET /api/state HTTP/1.1\r\nHost: localhost:{served}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("\"service_types\""), "{reply}");
}

#[test]
fn without_styxy_home_the_registry_lives_in_appdata() {
    let out = ok(windows(&wine().exe).args(["styxy", "config", "path"]));
    let path = out.trim();
    assert!(
        path.ends_with(r"\AppData\Roaming\styxy\registry.toml") && path.starts_with("C:\\"),
        "{path}"
    );
}
