//! Bad input of every kind: a clear one-line error, a non-zero exit, no panic, and the
//! registry byte-for-byte unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Home;

/// (arguments, exit status, a phrase the error must contain)
const CASES: &[(&[&str], i32, &str)] = &[
    (
        &["allocate", "--service", "x", "--port", "0"],
        2,
        "ports are 1-65535",
    ),
    (
        &["allocate", "--service", "x", "--port", "70000"],
        2,
        "ports are 1-65535",
    ),
    (
        &["allocate", "--service", "x", "--port", "-1"],
        2,
        "1-65535",
    ),
    (
        &["allocate", "--service", "", "--instance", "i"],
        1,
        "it is empty",
    ),
    (
        &["allocate", "--service", "a\u{1}b", "--instance", "i"],
        1,
        "is not allowed",
    ),
    (
        &["allocate", "--service", "a\nb", "--instance", "i"],
        1,
        "is not allowed",
    ),
    (
        &["allocate", "--service", "/abs", "--instance", "i"],
        1,
        "between two non-empty parts",
    ),
    (
        &["allocate", "--service", "a/../b", "--instance", "i"],
        1,
        "only one `/`",
    ),
    (
        &["allocate", "--service", "pkg/..", "--instance", "i"],
        1,
        "are not names",
    ),
    (
        &["allocate", "--service", "ok", "--instance", "bad\u{7}id"],
        1,
        "control character",
    ),
    (
        &["allocate", "--service", "ok", "--instance", ""],
        1,
        "it is empty",
    ),
    (
        &["type", "add", "t", "--range", "9000-8000"],
        2,
        "start is above end",
    ),
    (
        &["type", "add", "t", "--range", "0-10"],
        2,
        "ports are 1-65535",
    ),
    (
        &["type", "add", "t", "--range", "65000-70000"],
        2,
        "ports are 1-65535",
    ),
    (
        &["type", "add", "t", "--range", "abc"],
        2,
        "not a whole number",
    ),
    (
        &["type", "add", "t", "--range", "8050-8060"],
        1,
        "overlaps 8000-8099 of \"api\"",
    ),
    (
        &["type", "add", "api", "--range", "30000-30001"],
        1,
        "already exists",
    ),
    (&["type", "add", "t"], 1, "needs a range"),
    (
        &["type", "set", "nope", "--single"],
        1,
        "unknown service type",
    ),
    (&["type", "rm", "nope"], 1, "unknown service type"),
    (
        &["config", "set", "placement", "sideways"],
        1,
        "after, before or smart",
    ),
    (
        &["config", "set", "chunk_size", "-5"],
        1,
        "expected ports per new range",
    ),
    (
        &["config", "set", "chunk_size", "ten"],
        1,
        "expected ports per new range",
    ),
    (&["config", "set", "chunk_size", "0"], 1, "at least 1 port"),
    (&["config", "set", "gap_size", "99999"], 1, "0-65535"),
    (&["config", "set", "min_port", "80"], 1, "privileged"),
    (&["config", "set", "max_port", "9000"], 1, "above min_port"),
    (
        &["config", "set", "colour", "red"],
        2,
        "possible values: min_port",
    ),
    (
        &["config", "set", "auto_allocate", "yes"],
        1,
        "true or false",
    ),
    (
        &["rule", "add", "x-*", "--placement", "sideways"],
        2,
        "[possible values: after, before, smart]",
    ),
    (
        &["rule", "add", "x-*", "--instance", "many"],
        2,
        "[possible values: single, multi]",
    ),
    (&["rule", "add", "x-*", "--chunk-size", "0"], 2, "0"),
    (
        &["rule", "add", "[", "--chunk-size", "3"],
        1,
        "invalid rule pattern",
    ),
    (&["rule", "rm", "never-added"], 1, "no rule for pattern"),
    (&["release", "--service", "nope"], 1, "unknown service type"),
    (&["release"], 2, "required"),
    (&["list", "["], 1, "invalid rule pattern"),
    (
        &["config", "restore", "/nonexistent/backup.toml"],
        6,
        "cannot read the backup",
    ),
];

#[test]
fn every_bad_input_is_refused_cleanly_and_changes_nothing() {
    let home = Home::new();
    home.ok(&["allocate", "--service", "existing", "--instance", "i"]);
    let before = std::fs::read(home.registry()).unwrap();
    for (args, code, phrase) in CASES {
        let err = home.fails(args, *code);
        assert!(err.starts_with("error:"), "{args:?}: {err}");
        assert!(
            err.contains(phrase),
            "{args:?}: expected {phrase:?} in {err}"
        );
        assert!(!err.contains("stack backtrace"), "{args:?}: {err}");
        assert_eq!(
            std::fs::read(home.registry()).unwrap(),
            before,
            "{args:?} changed the registry"
        );
    }
}

#[test]
fn a_hand_edited_registry_with_bad_values_names_the_place() {
    let home = Home::new();
    let cases = [
        ("[types.x]\nranges = [[70000, 70010]]\n", "registry.toml:2:"),
        (
            "[types.x]\nranges = [[20000, 20010, 20020]]\n",
            "expected a range [start, end]",
        ),
        ("[types.x]\nranges = [[20000]]\n", "registry.toml:2:"),
        ("[settings]\nplacement = \"sideways\"\n", "registry.toml:2:"),
        ("[settings]\nchunk_size = -3\n", "registry.toml:2:"),
        ("[settings]\nchunk_sise = 3\n", "registry.toml:2:"),
        (
            "[types.a]\nranges = [[20010, 20000]]\n",
            "start is above end",
        ),
        (
            "[types.\"a b\"]\nranges = [[20000, 20001]]\n",
            "is not allowed",
        ),
        // The fields `type add|set` refuse are refused in the file too.
        (
            "[types.x]\nranges = [[20000, 20001]]\nmax_instances = 0\n",
            "at least 1 instance",
        ),
        (
            "[types.x]\nranges = [[20000, 20001]]\npreferred_ports = [0]\n",
            "preferred port",
        ),
        (
            "[types.x]\nranges = [\"20010-20000\"]\n",
            "registry.toml:2:",
        ),
    ];
    for (text, phrase) in cases {
        std::fs::write(home.registry(), text).unwrap();
        let err = home.fails(&["allocate", "--service", "y", "--instance", "i"], 3);
        assert!(err.contains(phrase), "{text}: expected {phrase:?} in {err}");
        assert_eq!(std::fs::read_to_string(home.registry()).unwrap(), text);
        let err = home.fails(&["config", "validate"], 3);
        assert!(err.contains(phrase), "{text}: {err}");
    }
    // A range may be written as `type add` takes it.
    std::fs::write(home.registry(), "[types.x]\nranges = [\"20000-20001\"]\n").unwrap();
    assert!(home.ok(&["list", "x"]).contains("20000-20001"));
}

#[test]
fn a_newer_or_damaged_state_is_refused_and_never_overwritten() {
    let home = Home::new();
    home.ok(&["allocate", "--service", "x", "--instance", "i"]);
    for (text, phrase) in [
        ("{\"format\":99,\"future\":true}\n", "newer cargo-styxy"),
        ("{\"format\":1,\"types\":", "state file"),
    ] {
        std::fs::write(home.state(), text).unwrap();
        for args in [
            &["allocate", "--service", "y", "--instance", "i"][..],
            &["list"],
        ] {
            let err = home.fails(args, 3);
            assert!(err.contains(phrase), "{args:?}: {err}");
        }
        assert_eq!(std::fs::read_to_string(home.state()).unwrap(), text);
    }
}

#[test]
fn a_checkout_whose_path_is_not_utf8_is_refused_not_merged_with_another() {
    use std::os::unix::ffi::OsStrExt;
    let home = Home::new();
    let parent = tempfile::tempdir().unwrap();
    for name in [&b"co\xff"[..], &b"co\xfe"[..]] {
        let dir = parent.path().join(std::ffi::OsStr::from_bytes(name));
        std::fs::create_dir(&dir).unwrap();
        let out = home
            .cmd(&["allocate", "--service", "x"])
            .current_dir(&dir)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("UTF-8") && err.contains("--instance"), "{err}");
    }
    assert!(!home.state().exists(), "nothing written");
}
