//! `assign`, `env`, `port`, `init` on real fixture workspaces, with real `cargo metadata`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Home;

/// Writes `files` (path, content) under a new temp dir: a real cargo workspace.
fn workspace(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    dir
}

const MAIN: &str = "fn main() {}\n";

/// Three members: a server, a web package with a single-instance `admin` bin and an extra
/// `postgres` service, and a tool that is skipped.
fn shop() -> tempfile::TempDir {
    workspace(&[
        (
            "Cargo.toml",
            "[workspace]\nmembers = [\"api\", \"web\", \"tools\"]\nresolver = \"3\"\n",
        ),
        (
            "api/Cargo.toml",
            "[package]\nname = \"shop-api\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
        ),
        ("api/src/main.rs", MAIN),
        (
            "web/Cargo.toml",
            "[package]\nname = \"shop-web\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [package.metadata.styxy.bins.admin]\ninstance = \"single\"\n\n\
             [package.metadata.styxy]\nservices = [\"postgres\"]\n",
        ),
        ("web/src/main.rs", MAIN),
        ("web/src/bin/admin.rs", MAIN),
        (
            "tools/Cargo.toml",
            "[package]\nname = \"tools\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [package.metadata.styxy.bins.tools]\nskip = true\n",
        ),
        ("tools/src/main.rs", MAIN),
    ])
}

fn manifest(dir: &Path) -> String {
    dir.join("Cargo.toml").to_str().unwrap().to_owned()
}

/// env name → port, from `assign --format json`.
fn assigned(home: &Home, ws: &Path) -> (String, BTreeMap<String, (String, u64)>) {
    let a = home.json(&["assign", "--manifest-path", &manifest(ws)]);
    let services = a["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["env"].as_str().unwrap().to_owned(),
                (
                    s["service_type"].as_str().unwrap().to_owned(),
                    s["port"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    (a["workspace"].as_str().unwrap().to_owned(), services)
}

#[test]
fn assign_gives_every_bin_a_port_and_is_idempotent() {
    let home = Home::new();
    let ws = shop();
    let json = home.json(&["assign", "--manifest-path", &manifest(ws.path())]);
    let root = ws.path().canonicalize().unwrap();
    assert_eq!(json["workspace"], root.to_str().unwrap());
    let services = json["services"].as_array().unwrap();
    let envs: Vec<&str> = services
        .iter()
        .map(|s| s["env"].as_str().unwrap())
        .collect();
    assert_eq!(
        envs,
        [
            "ADMIN_PORT",
            "POSTGRES_PORT",
            "SHOP_API_PORT",
            "SHOP_WEB_PORT"
        ]
    );
    let admin = &services[0];
    assert_eq!(admin["service_type"], "shop-web/admin");
    assert_eq!(admin["package"], "shop-web");
    assert_eq!(admin["bin"], "admin");
    assert_eq!(admin["instance_behavior"], "single");
    assert_eq!(admin["auto_allocated"], true);
    assert!(admin["ranges"].is_array() && admin["port"].is_u64());
    assert_eq!(
        services[1]["bin"],
        serde_json::Value::Null,
        "postgres is not a bin"
    );
    let ports: std::collections::BTreeSet<u64> = services
        .iter()
        .map(|s| s["port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports.len(), 4, "{services:?}");

    let registry = home.read();
    let again = home.json(&["assign", "--manifest-path", &manifest(ws.path())]);
    assert_eq!(home.read(), registry, "a second assign must change nothing");
    for (a, b) in services.iter().zip(again["services"].as_array().unwrap()) {
        assert_eq!(a["port"], b["port"]);
        assert_eq!(b["auto_allocated"], false);
    }
}

#[test]
fn a_second_checkout_gets_other_ports_of_the_same_types() {
    let home = Home::new();
    let (one, two) = (shop(), shop());
    let (_, a) = assigned(&home, one.path());
    let (_, b) = assigned(&home, two.path());
    for (env, (ty, port)) in &a {
        let (ty_b, port_b) = &b[env];
        assert_eq!(ty, ty_b, "{env}: same type in both checkouts");
        if env == "ADMIN_PORT" {
            assert_eq!(port, port_b, "single-instance admin shares its port");
        } else {
            assert_ne!(port, port_b, "{env}: both checkouts got {port}");
        }
    }
    let list = home.json(&["list", "shop-api"]);
    assert_eq!(
        list["service_types"][0]["instances"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        list["service_types"][0]["ranges"].as_array().unwrap().len(),
        1
    );
}

#[test]
fn env_in_every_format_and_port_say_the_assigned_ports() {
    let home = Home::new();
    let ws = shop();
    let (_, ports) = assigned(&home, ws.path());
    let m = manifest(ws.path());
    // Below the root, outside any member: the root's manifest is the nearest, as for cargo.
    std::fs::create_dir_all(ws.path().join("docs/notes")).unwrap();
    let run_in = |args: &[&str]| {
        let out = common::succeeded(home.cmd(args).current_dir(ws.path().join("docs/notes")));
        String::from_utf8(out.stdout).unwrap()
    };

    let dotenv = run_in(&["env"]);
    assert!(
        dotenv.starts_with("# generated by cargo-styxy\n"),
        "{dotenv}"
    );
    // `-o -` is stdout, as for most tools; JSON is one line when piped, as everywhere.
    assert_eq!(run_in(&["env", "-o", "-"]), dotenv);
    assert!(!ws.path().join("docs/notes/-").exists());
    let json = run_in(&["env", "--format", "json", "-o", "-"]);
    assert_eq!(json.lines().count(), 1, "{json}");
    let files = tempfile::tempdir().unwrap();
    for (format, shell) in [
        ("dotenv", "sh"),
        ("shell", "sh"),
        ("compose", "sh"),
        ("fish", "fish"),
        ("powershell", "pwsh"),
    ] {
        if Command::new(shell)
            .arg("-c")
            .arg("exit 0")
            .output()
            .is_err()
        {
            eprintln!("{shell} is not installed; {format} checked by content only");
            let text = run_in(&["env", "--format", format]);
            for (env, (_, port)) in &ports {
                assert!(
                    text.contains(env) && text.contains(&port.to_string()),
                    "{text}"
                );
            }
            continue;
        }
        let file = files.path().join(format!("ports.{format}"));
        home.ok(&[
            "env",
            "--manifest-path",
            &m,
            "--format",
            format,
            "-o",
            file.to_str().unwrap(),
        ]);
        for (env, (_, port)) in &ports {
            let script = match shell {
                "fish" => format!("source {}; echo ${env}", file.display()),
                "pwsh" => format!(". {}; $env:{env}", file.display()),
                _ => format!(". {}; echo ${env}", file.display()),
            };
            let out = Command::new(shell).arg("-c").arg(&script).output().unwrap();
            assert_eq!(
                String::from_utf8(out.stdout).unwrap().trim(),
                port.to_string(),
                "{format}: {env}"
            );
        }
    }
    let json: serde_json::Value =
        serde_json::from_str(&run_in(&["env", "--format", "json"])).unwrap();
    for (env, (ty, port)) in &ports {
        assert_eq!(json[env].as_u64(), Some(*port), "{env}");
        // `port` answers to the type, the env name and the bin.
        assert_eq!(run_in(&["port", ty]).trim(), port.to_string());
        assert_eq!(run_in(&["port", env]).trim(), port.to_string());
    }
    assert_eq!(
        run_in(&["port", "admin"]).trim(),
        ports["ADMIN_PORT"].1.to_string()
    );
    let err = home.fails(&["port", "nope", "--manifest-path", &m], 1);
    assert!(
        err.contains("shop-api") && err.contains("shop-web/admin"),
        "{err}"
    );
    // -p narrows, by name or, as with cargo, by glob.
    for spec in ["shop-web", "shop-w*"] {
        let only_web = run_in(&["env", "-p", spec, "--format", "json"]);
        let only_web: serde_json::Value = serde_json::from_str(&only_web).unwrap();
        assert!(
            only_web.get("SHOP_API_PORT").is_none() && only_web.get("ADMIN_PORT").is_some(),
            "{spec}: {only_web}"
        );
    }
    let err = home.fails(&["env", "--manifest-path", &m, "-p", "shop-x*"], 1);
    assert!(err.contains("matches no member"), "{err}");
    // --exclude only with --workspace, as cargo has it.
    let err = home.fails(&["env", "--manifest-path", &m, "--exclude", "shop-api"], 1);
    assert!(
        err.contains("only be used together with --workspace"),
        "{err}"
    );
    let all_but_api = run_in(&[
        "env",
        "--workspace",
        "--exclude",
        "shop-api",
        "--format",
        "json",
    ]);
    let all_but_api: serde_json::Value = serde_json::from_str(&all_but_api).unwrap();
    assert!(all_but_api.get("SHOP_API_PORT").is_none() && all_but_api.get("ADMIN_PORT").is_some());
}

#[test]
fn cargo_conventions_for_flags_colors_and_formats() {
    let home = Home::new();
    // -q with -v, and JSON from a command that has no JSON form, are usage errors.
    let err = home.fails(&["list", "-q", "-v"], 2);
    assert!(err.contains("cannot be used with"), "{err}");
    for args in [&["metrics"][..], &["completions", "bash"]] {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        let err = home.fails(&all, 2);
        assert!(err.contains("no JSON form"), "{args:?}: {err}");
    }
    // CARGO_TERM_COLOR as cargo reads it, and --color over it.
    let colored = |color: Option<&str>| {
        let mut cmd = home.cmd(&["release", "--service", "nope"]);
        cmd.env_remove("NO_COLOR").env("CARGO_TERM_COLOR", "always");
        if let Some(c) = color {
            cmd.args(["--color", c]);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8(out.stderr).unwrap().contains('\x1b')
    };
    assert!(
        colored(None),
        "CARGO_TERM_COLOR=always colors a piped error"
    );
    assert!(!colored(Some("never")), "--color never wins");
    // In cargo's own colours: the `error` prefix is styled as cargo styles its own.
    let prefix = |stderr: &[u8]| {
        let text = String::from_utf8_lossy(stderr).into_owned();
        text.split_once(": ")
            .map(|(p, _)| p.to_owned())
            .unwrap_or(text)
    };
    let ours = home
        .cmd(&["release", "--service", "nope", "--color", "always"])
        .output()
        .unwrap();
    let cargo = Command::new(env!("CARGO"))
        .args(["--color", "always", "locate-project", "--manifest-path"])
        .arg(home.path().join("none/Cargo.toml"))
        .output()
        .unwrap();
    assert_eq!(prefix(&ours.stderr), prefix(&cargo.stderr));
    assert!(prefix(&ours.stderr).contains('\x1b'));
}

/// The global options work before the command's name and after it, as cargo's do; given on
/// both sides, the one after the name wins, and either wins over `CARGO_TERM_COLOR`.
#[test]
fn global_options_go_before_or_after_the_command_name() {
    let home = Home::new();
    let is_json = |args: &[&str]| serde_json::from_str::<serde_json::Value>(&home.ok(args)).is_ok();
    for args in [
        &["--format", "json", "list"][..],
        &["list", "--format", "json"],
        &["--format", "json", "rule", "list"],
        &["rule", "--format", "json", "list"],
        &["rule", "list", "--format", "json"],
        &["--format", "human", "list", "--format", "json"],
    ] {
        assert!(is_json(args), "{args:?} did not print JSON");
    }
    assert!(!is_json(&["--format", "json", "list", "--format", "human"]));
    // Each side names a registry of its own: the one after the name is used.
    let (before, after) = (Home::new(), Home::new());
    let path = |args: &[&str]| home.ok(args).trim().to_owned();
    let file = |h: &Home| h.registry().display().to_string();
    let (b, a) = (
        before.path().to_str().unwrap(),
        after.path().to_str().unwrap(),
    );
    assert_eq!(path(&["--registry", b, "config", "path"]), file(&before));
    assert_eq!(path(&["config", "path", "--registry", a]), file(&after));
    assert_eq!(
        path(&["--registry", b, "config", "path", "--registry", a]),
        file(&after)
    );
    // -q and -v conflict wherever each is given.
    for args in [&["-q", "list", "-v"][..], &["-v", "rule", "list", "-q"]] {
        let err = home.fails(args, 2);
        assert!(err.contains("cannot be used with"), "{args:?}: {err}");
    }
    // --color before the name wins over CARGO_TERM_COLOR, which the command sees too.
    let colored = |env: &str, args: &[&str]| {
        let mut cmd = home.cmd(args);
        cmd.env_remove("NO_COLOR").env("CARGO_TERM_COLOR", env);
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        String::from_utf8(out.stderr).unwrap().contains('\x1b')
    };
    let release = ["release", "--service", "nope"];
    assert!(colored(
        "never",
        &[&["--color", "always"][..], &release].concat()
    ));
    assert!(!colored(
        "always",
        &[&["--color", "never"][..], &release].concat()
    ));
    assert!(colored(
        "never",
        &[&["--color", "never"][..], &release, &["--color", "always"]].concat()
    ));
}

#[test]
fn env_file_is_rewritten_only_when_it_changes() {
    let home = Home::new();
    let ws = shop();
    let m = manifest(ws.path());
    let file = ws.path().join(".env");
    let f = file.to_str().unwrap();
    home.ok(&["env", "--manifest-path", &m, "-o", f]);
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(old)
        .unwrap();
    home.ok(&["env", "--manifest-path", &m, "-o", f]);
    assert_eq!(
        std::fs::metadata(&file).unwrap().modified().unwrap(),
        old,
        "rewritten with no change"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode(&file),
        0o644,
        "a new env file holds ports, not secrets"
    );
    // A mode the user chose survives a rewrite, through a symlink too.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let link = ws.path().join("linked.env");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    home.ok(&["release", "--service", "shop-api"]);
    home.ok(&["config", "set", "placement", "before"]);
    home.ok(&["env", "--manifest-path", &m, "-o", link.to_str().unwrap()]);
    assert_ne!(
        std::fs::metadata(&file).unwrap().modified().unwrap(),
        old,
        "not rewritten after a change"
    );
    assert_eq!(mode(&file), 0o640);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // The registry's own files stay private.
    for own in [home.registry(), home.state()] {
        assert_eq!(mode(&own), 0o600, "{}", own.display());
    }
}

#[test]
fn an_assigned_workspace_needs_no_cargo() {
    let home = Home::new();
    let ws = shop();
    let m = manifest(ws.path());
    let (_, ports) = assigned(&home, ws.path());
    // With cargo unavailable, env and port still answer: from the metadata cache and the
    // port file.
    let out = common::succeeded(
        home.cmd(&["port", "shop-api", "--manifest-path", &m])
            .env("CARGO", "/nonexistent/cargo"),
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        ports["SHOP_API_PORT"].1.to_string()
    );
    // A changed manifest invalidates the cache: cargo is needed (and missing) again.
    std::fs::create_dir_all(ws.path().join("tools/src/bin")).unwrap();
    std::fs::write(ws.path().join("tools/src/bin/extra.rs"), MAIN).unwrap();
    let out = home
        .cmd(&["env", "--manifest-path", &m])
        .env("CARGO", "/nonexistent/cargo")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = home.ok(&["env", "--manifest-path", &m]);
    assert!(out.contains("EXTRA_PORT="), "{out}");
}

#[test]
fn the_port_file_follows_the_registry() {
    let home = Home::new();
    let ws = shop();
    let (root, ports) = assigned(&home, ws.path());
    let dir = home.path().join("ports");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(files.len(), 1);
    let pf: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert_eq!(pf["workspace"], root);
    assert_eq!(pf["ports"].as_array().unwrap().len(), ports.len());
    // Releasing through any command rewrites it.
    home.ok(&["release", "--service", "postgres"]);
    let pf: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert_eq!(pf["ports"].as_array().unwrap().len(), ports.len() - 1);
    // Another checkout's allocation leaves it alone.
    let before = std::fs::metadata(&files[0]).unwrap().modified().unwrap();
    home.ok(&["allocate", "--service", "elsewhere", "--instance", "x"]);
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().modified().unwrap(),
        before
    );
}

#[test]
fn bad_workspaces_get_clear_errors_and_change_nothing() {
    let home = Home::new();
    home.ok(&["allocate", "--service", "existing", "--instance", "i"]);
    let before = home.read();
    let pkg = |name: &str, extra: &str| {
        format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n{extra}")
    };
    let cases: Vec<(tempfile::TempDir, &str)> = vec![
        (
            workspace(&[("Cargo.toml", "[package\nname = ")]),
            "Cargo.toml",
        ),
        (
            workspace(&[("Cargo.toml", &pkg("lib-only", "")), ("src/lib.rs", "")]),
            "has no services",
        ),
        (
            workspace(&[
                ("Cargo.toml", "[workspace]\nmembers = [\"a\", \"b\"]\n"),
                ("a/Cargo.toml", &pkg("a", "")),
                ("a/src/bin/api.rs", MAIN),
                ("b/Cargo.toml", &pkg("b", "")),
                ("b/src/bin/api.rs", MAIN),
            ]),
            "a/api and b/api would both get the env name API_PORT",
        ),
        (
            workspace(&[
                (
                    "Cargo.toml",
                    &pkg("p", "[package.metadata.styxy.bins.p]\nport = 70000\n"),
                ),
                ("src/main.rs", MAIN),
            ]),
            "package `p`: `[package.metadata.styxy.bins.p] port = 70000` is not a port",
        ),
        (
            workspace(&[
                (
                    "Cargo.toml",
                    &pkg(
                        "p",
                        "[package.metadata.styxy.bins.p]\ninstance = \"maybe\"\n",
                    ),
                ),
                ("src/main.rs", MAIN),
            ]),
            "package `p`: `[package.metadata.styxy.bins.p] instance = \"maybe\"`",
        ),
        (
            workspace(&[
                (
                    "Cargo.toml",
                    &pkg("p", "[package.metadata.styxy.bins.nobin]\nport = 9000\n"),
                ),
                ("src/main.rs", MAIN),
            ]),
            "names no bin of the package",
        ),
        (
            workspace(&[
                (
                    "Cargo.toml",
                    &pkg(
                        "p",
                        "[package.metadata.styxy.bins.p]\ntype = \"nosuchtype\"\n",
                    ),
                ),
                ("src/main.rs", MAIN),
            ]),
            "type add nosuchtype",
        ),
    ];
    for (ws, phrase) in &cases {
        for cmd in ["assign", "env"] {
            // A joined type that does not exist is a refused request; the rest are the
            // workspace's errors.
            let code = if phrase.contains("type add") { 1 } else { 5 };
            let err = home.fails(&[cmd, "--manifest-path", &manifest(ws.path())], code);
            assert!(err.starts_with("error: "), "{err}");
            assert!(err.contains(phrase), "{cmd}: expected {phrase:?} in {err}");
            assert_eq!(home.read(), before, "{cmd} changed the registry");
        }
    }
    let err = home.fails(&["assign", "--manifest-path", "/nonexistent/Cargo.toml"], 5);
    assert!(err.contains("does not exist"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let out = home
        .cmd(&["env"])
        .current_dir(empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Cargo.toml"));
    let err = home.fails(&["env", "--format", "dotenv", "list"], 2);
    assert!(err.contains("unexpected argument"), "{err}");
    // A format the command has no form for is a usage error, named as it is typed.
    let err = home.fails(&["list", "--format", "dotenv"], 2);
    assert!(err.contains("--format dotenv is only for `env`"), "{err}");
}

/// A one-bin checkout whose bin `pinned` pins `port` in the new type `service`, with `extra`
/// metadata lines.
fn pinned_checkout(service: &str, port: u16, extra: &str) -> tempfile::TempDir {
    workspace(&[
        (
            "Cargo.toml",
            &format!(
                "[package]\nname = \"pinned\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
                 [package.metadata.styxy.bins.pinned]\nservice = \"{service}\"\nport = {port}\n{extra}"
            ),
        ),
        ("src/main.rs", MAIN),
    ])
}

#[test]
fn a_pinned_port_is_taken_when_free_and_strict_never_takes_another() {
    let home = Home::new();
    // Ports nothing listens on now: this machine may run a dev server on 8080.
    let pin = common::free_span_from(30600, 20);
    let first = pinned_checkout("pinned-api", pin, "");
    let (_, ports) = assigned(&home, first.path());
    assert_eq!(
        ports["PINNED_PORT"],
        ("pinned-api".to_owned(), u64::from(pin))
    );

    // A second checkout cannot have the port too: a warning and another port...
    let copy = pinned_checkout("pinned-api", pin, "");
    let out = home.run(&["assign", "--manifest-path", &manifest(copy.path())]);
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("warning:") && err.contains(&pin.to_string()),
        "{err}"
    );
    // ...or, with strict = true, an error naming the holder, and nothing assigned.
    let strict = pinned_checkout("pinned-api", pin, "strict = true\n");
    let err = home.fails(&["assign", "--manifest-path", &manifest(strict.path())], 1);
    let holder = std::fs::canonicalize(first.path()).unwrap();
    assert!(
        err.contains(&format!(
            "port {pin} is pinned with `strict = true` for pinned"
        )) && err.contains(&format!(
            "instance {:?} of \"pinned-api\" holds it",
            holder.display().to_string()
        )),
        "{err}"
    );
    assert_eq!(
        home.holders("pinned-api").len(),
        2,
        "the strict checkout got a port"
    );

    // A port something else listens on: the same refusal, naming that.
    let busy = pin + 15;
    let _listener = std::net::TcpListener::bind(("127.0.0.1", busy)).expect("a free port");
    let taken = pinned_checkout("pinned-web", busy, "strict = true\n");
    let err = home.fails(&["assign", "--manifest-path", &manifest(taken.path())], 1);
    assert!(err.contains("something listens on it now"), "{err}");
    assert!(
        home.json(&["audit", "--event", "ALLOCATION_FAILED"])
            .as_array()
            .unwrap()
            .len()
            >= 2
    );

    // strict without a pinned port means nothing: refused as a metadata error.
    let dir = workspace(&[
        (
            "Cargo.toml",
            "[package]\nname = \"pinned\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [package.metadata.styxy.bins.pinned]\nstrict = true\n",
        ),
        ("src/main.rs", MAIN),
    ]);
    let err = home.fails(&["assign", "--manifest-path", &manifest(dir.path())], 5);
    assert!(
        err.contains("strict = true") && err.contains("needs a pinned port"),
        "{err}"
    );
}

#[test]
fn url_variables_and_a_compose_project_name_per_checkout() {
    let home = Home::new();
    let checkout = || {
        workspace(&[
            (
                "Cargo.toml",
                "[package]\nname = \"shop-api\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
                 [package.metadata.styxy.bins.shop-api]\nurl = \"http://127.0.0.1:{port}/api?v=1&x=*\"\n",
            ),
            ("src/main.rs", MAIN),
        ])
    };
    let (a, b) = (checkout(), checkout());
    let (_, ports) = assigned(&home, a.path());
    let port = ports["SHOP_API_PORT"].1;
    let url = format!("http://127.0.0.1:{port}/api?v=1&x=*");
    let env = |ws: &Path, format: &str| {
        home.ok(&["env", "--manifest-path", &manifest(ws), "--format", format])
    };
    assert!(env(a.path(), "dotenv").contains(&format!("\nSHOP_API_URL={url}\n")));
    let json: serde_json::Value = serde_json::from_str(&env(a.path(), "json")).unwrap();
    assert_eq!(
        (&json["SHOP_API_PORT"], &json["SHOP_API_URL"]),
        (&port.into(), &url.clone().into())
    );
    // A real shell reads the URL as written (`&` and `*` are quoted).
    let file = a.path().join("ports.sh");
    std::fs::write(&file, env(a.path(), "shell")).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#". "$1" && printf %s "$SHOP_API_URL""#)
        .arg("sh")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), url);

    // compose: a project name of this checkout's own, valid for compose, stable.
    let name = |ws: &Path| -> String {
        env(ws, "compose")
            .lines()
            .find_map(|l| l.strip_prefix("COMPOSE_PROJECT_NAME=").map(str::to_owned))
            .expect("COMPOSE_PROJECT_NAME")
    };
    let (na, nb) = (name(a.path()), name(b.path()));
    for n in [&na, &nb] {
        assert!(
            n.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'),
            "{n}"
        );
    }
    assert_ne!(na, nb);
    assert_eq!(na, name(a.path()));
    assert!(!env(a.path(), "dotenv").contains("COMPOSE_PROJECT_NAME"));
    // The real docker compose reads the file: the port and the URL interpolated as written.
    let project = tempfile::tempdir().unwrap();
    home.ok(&[
        "env",
        "--manifest-path",
        &manifest(a.path()),
        "--format",
        "compose",
        "-o",
        project.path().join(".env").to_str().unwrap(),
    ]);
    std::fs::write(
        project.path().join("compose.yaml"),
        "services:\n  api:\n    image: busybox\n    ports: [\"127.0.0.1:${SHOP_API_PORT}:8080\"]\n    \
         environment:\n      API_URL: ${SHOP_API_URL}\n",
    )
    .unwrap();
    let out = Command::new("docker-compose")
        .arg("config")
        .current_dir(project.path())
        .output()
        .expect("docker-compose is installed (.ci/run installs Debian's docker-compose)");
    let config = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        config.contains(&format!("127.0.0.1:{port}:8080"))
            && config.contains(&format!("API_URL: {url}")),
        "{config}"
    );

    // A template the env files could not hold as written is refused, naming the key.
    let bad = workspace(&[
        (
            "Cargo.toml",
            "[package]\nname = \"bad\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [package.metadata.styxy.bins.bad]\nurl = \"http://x:{port}/$HOME\"\n",
        ),
        ("src/main.rs", MAIN),
    ]);
    let err = home.fails(&["env", "--manifest-path", &manifest(bad.path())], 5);
    assert!(err.contains("url = ") && err.contains("'$'"), "{err}");
}

#[test]
fn init_adds_the_build_integration_once() {
    let home = Home::new();
    let ws = shop();
    let m = manifest(ws.path());
    let library = concat!(env!("CARGO_MANIFEST_DIR"), "/crates/styxy-build");
    home.ok(&[
        "init",
        "--manifest-path",
        &m,
        "-p",
        "shop-api",
        "--path",
        library,
    ]);
    let toml = std::fs::read_to_string(ws.path().join("api/Cargo.toml")).unwrap();
    assert!(
        toml.contains("[build-dependencies]")
            && toml.contains(&format!("styxy-build = {{ path = {library:?}")),
        "{toml}"
    );
    let build = std::fs::read_to_string(ws.path().join("api/build.rs")).unwrap();
    assert!(build.contains("styxy_build::emit()"), "{build}");
    let err = home.fails(&["init", "--manifest-path", &m, "-p", "shop-api"], 1);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    home.ok(&["init", "--manifest-path", &m, "-p", "shop-api", "--force"]);
    assert_eq!(
        std::fs::read_to_string(ws.path().join("api/Cargo.toml")).unwrap(),
        toml
    );
    // cargo still reads the manifest, with the build dependency in it.
    let meta = common::succeeded(Command::new(env!("CARGO")).args([
        "metadata",
        "--no-deps",
        "--format-version",
        "1",
        "--manifest-path",
        &m,
    ]));
    assert!(String::from_utf8_lossy(&meta.stdout).contains(r#""name":"styxy-build""#));
}

#[test]
fn release_workspace_frees_this_checkout_only() {
    let home = Home::new();
    let (one, two) = (shop(), shop());
    let (root_one, _) = assigned(&home, one.path());
    let (_, ports_two) = assigned(&home, two.path());
    let before = home.json(&["list", "--used"]);
    let out = common::succeeded(
        home.cmd(&["release", "--workspace", "--format", "json"])
            .current_dir(one.path().join("api")),
    );
    let released: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(released.as_array().unwrap().len(), 4, "{released}");
    let after = home.json(&["list", "--used"]);
    for t in after["service_types"].as_array().unwrap() {
        for i in t["instances"].as_array().unwrap() {
            assert_ne!(i["workspace"], root_one.as_str(), "{t}");
        }
    }
    // The other checkout keeps every port.
    let (_, again) = assigned(&home, two.path());
    assert_eq!(again, ports_two);
    assert_ne!(before, after);
    let err = home.fails(
        &[
            "release",
            "--workspace",
            "--manifest-path",
            &manifest(one.path()),
        ],
        1,
    );
    assert!(err.contains("holds no port"), "{err}");
}

/// The one port file of `home`.
fn port_file(home: &Home) -> PathBuf {
    std::fs::read_dir(home.path().join("ports"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap()
}

#[test]
fn after_a_hand_edit_or_a_damaged_cache_port_and_env_say_what_the_registry_gives() {
    let home = Home::new();
    let ws = shop();
    let m = manifest(ws.path());
    let (_, ports) = assigned(&home, ws.path());
    let (api_type, api_port) = ports["SHOP_API_PORT"].clone();
    let port = || {
        home.ok(&["port", "shop-api", "--manifest-path", &m])
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(port(), api_port);

    // By hand, the type's range moves elsewhere: the port file no longer says the truth.
    let start = api_port + 300;
    let edit = format!(
        "\n[types.\"{api_type}\"]\nranges = [[{start}, {}]]\n",
        start + 9
    );
    let mut text = home.config();
    text.push_str(&edit);
    std::fs::write(home.registry(), text).unwrap();
    let moved = port();
    assert_ne!(moved, api_port, "served the port from before the edit");
    assert!((start..start + 10).contains(&moved), "{moved}");
    let env = home.ok(&["env", "--manifest-path", &m]);
    assert!(env.contains(&format!("SHOP_API_PORT={moved}\n")), "{env}");
    // A second instance of the type never gets the moved instance's port.
    let other = home.json(&["allocate", "--service", &api_type, "--instance", "other"]);
    assert_ne!(other["port"].as_u64(), Some(moved));

    // A port file or stamp damaged or deleted is rebuilt, never believed.
    let pf = port_file(&home);
    let stamp = pf.with_extension("stamp");
    let real = std::fs::read_to_string(&pf).unwrap();
    std::fs::write(&pf, real.replace(&moved.to_string(), "1234")).unwrap();
    std::fs::write(&stamp, "garbage").unwrap();
    assert_eq!(port(), moved);
    assert_eq!(std::fs::read_to_string(&pf).unwrap(), real);
    std::fs::remove_file(&pf).unwrap();
    std::fs::remove_file(&stamp).unwrap();
    assert_eq!(port(), moved);
    // The metadata cache too: damaged, it is rebuilt from cargo.
    for entry in std::fs::read_dir(home.path().join("cache"))
        .unwrap()
        .flatten()
    {
        std::fs::write(entry.path(), "{\"manifest\": 7").unwrap();
    }
    assert_eq!(port(), moved);
}

#[test]
fn a_manifest_edit_whose_mtime_is_restored_is_still_seen() {
    let home = Home::new();
    let ws = shop();
    let m = manifest(ws.path());
    assigned(&home, ws.path());
    let api = ws.path().join("api/Cargo.toml");
    let mtime = std::fs::metadata(&api).unwrap().modified().unwrap();
    let mut text = std::fs::read_to_string(&api).unwrap();
    text.push_str("\n[package.metadata.styxy.bins.shop-api]\nenv = \"RENAMED_PORT\"\n");
    std::fs::write(&api, text).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&api)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let env = home.ok(&["env", "--manifest-path", &m]);
    assert!(env.contains("RENAMED_PORT="), "{env}");
    assert!(!env.contains("SHOP_API_PORT="), "{env}");
}

#[test]
fn a_symlinked_port_file_stamp_or_cache_is_never_written_through() {
    let home = Home::new();
    let ws = shop();
    let m = manifest(ws.path());
    let (_, ports) = assigned(&home, ws.path());
    let victim = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(victim.path(), "precious").unwrap();
    let pf = port_file(&home);
    let cache: Vec<PathBuf> = std::fs::read_dir(home.path().join("cache"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    for path in [pf.clone(), pf.with_extension("stamp")]
        .into_iter()
        .chain(cache)
    {
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(victim.path(), &path).unwrap();
        // A change to this checkout's ports, so that the port file must be rewritten.
        if path == pf {
            // It is written before the change is committed: a link in its place refuses the
            // change, with the fix.
            let before = home.read();
            let err = home.fails(&["release", "--service", "postgres"], 6);
            assert!(
                err.contains("is a symlink") && err.contains("move it away"),
                "{err}"
            );
            assert_eq!(home.read(), before, "the refused change was made");
            std::fs::remove_file(&path).unwrap();
        }
        home.ok(&["release", "--service", "postgres"]);
        let out = home.cmd(&["env", "--manifest-path", &m]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {err}", path.display());
        let env = String::from_utf8(out.stdout).unwrap();
        assert!(
            env.contains(&format!("SHOP_API_PORT={}\n", ports["SHOP_API_PORT"].1)),
            "{env}"
        );
        assert_eq!(
            std::fs::read_to_string(victim.path()).unwrap(),
            "precious",
            "{}",
            path.display()
        );
        if path != pf {
            std::fs::remove_file(&path).unwrap();
        }
    }
}

/// The env names `env --format json` prints, run in `dir` with `args`.
fn env_names(home: &Home, dir: &Path, args: &[&str]) -> Vec<String> {
    let mut full = vec!["env", "--format", "json"];
    full.extend_from_slice(args);
    let out = common::succeeded(home.cmd(&full).current_dir(dir));
    let vars: BTreeMap<String, u64> = serde_json::from_slice(&out.stdout).unwrap();
    vars.into_keys().collect()
}

#[test]
fn a_member_selects_itself_as_cargo_does() {
    let home = Home::new();
    let ws = shop();
    let (root, api, web) = (ws.path(), ws.path().join("api"), ws.path().join("web"));
    let all = [
        "ADMIN_PORT",
        "POSTGRES_PORT",
        "SHOP_API_PORT",
        "SHOP_WEB_PORT",
    ];
    // At the root of a virtual workspace: every member.
    assert_eq!(env_names(&home, root, &[]), all);
    // A member's manifest, by --manifest-path or by its directory: that member only.
    let api_manifest = manifest(&api);
    assert_eq!(
        env_names(&home, root, &["--manifest-path", &api_manifest]),
        ["SHOP_API_PORT"]
    );
    assert_eq!(
        env_names(&home, &web, &[]),
        ["ADMIN_PORT", "POSTGRES_PORT", "SHOP_WEB_PORT"]
    );
    // -p and --workspace reach past it, as with cargo.
    assert_eq!(
        env_names(&home, &api, &["-p", "shop-web", "--bin", "admin"]),
        ["ADMIN_PORT"]
    );
    assert_eq!(env_names(&home, &api, &["--workspace"]), all);
    // cargo's hidden `--all` is `--workspace`, `--exclude` included.
    assert_eq!(env_names(&home, &api, &["--all"]), all);
    assert_eq!(
        env_names(&home, &api, &["--all", "--exclude", "shop-web"]),
        ["SHOP_API_PORT"]
    );
    // `cargo run` in a member runs that member's bin: so does `run` (no bin to choose).
    let out = home
        .cmd(&["run", "--reuse", "--bin", "nope"])
        .current_dir(&api)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bins: shop-api/shop-api"), "{err}");

    // default-members at the root select those.
    let text = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    std::fs::write(
        root.join("Cargo.toml"),
        text.replace("resolver", "default-members = [\"api\"]\nresolver"),
    )
    .unwrap();
    assert_eq!(env_names(&home, root, &[]), ["SHOP_API_PORT"]);
    assert_eq!(env_names(&home, root, &["--workspace"]), all);
}
