//! Placement zones (`[strategies.NAME.zones]`), chosen by a rule or by a workspace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Home;

/// The first port of each zone (frontend, backend, cramped): spans nothing listens on now,
/// found once for all the tests of this file before any allocates (the check binds each
/// port for a moment, which another test's allocation would take for a listener).
fn zones() -> (u16, u16, u16) {
    static ZONES: std::sync::OnceLock<(u16, u16, u16)> = std::sync::OnceLock::new();
    *ZONES.get_or_init(|| {
        let front = common::free_span_from(31000, 100);
        let back = common::free_span_from(front + 100, 100);
        (front, back, common::free_span_from(back + 100, 16))
    })
}

fn home() -> Home {
    let (front, back, cramped) = zones();
    let home = Home::new();
    let text = format!(
        "[settings]\nchunk_size = 10\ngap_size = 10\n\n\
         [strategies.by-team.zones]\n\
         team-frontend = {{ min_port = {front}, max_port = {} }}\n\
         team-backend  = {{ min_port = {back}, max_port = {} }}\n\n\
         [strategies.tiny.zones]\n\
         cramped = {{ min_port = {cramped}, max_port = {} }}\n",
        front + 99,
        back + 99,
        cramped + 15
    );
    std::fs::write(home.registry(), text).unwrap();
    home.ok(&["rule", "add", "web-*", "--zone", "team-frontend"]);
    home.ok(&["rule", "add", "api-*", "--zone", "team-backend"]);
    home
}

/// `[[start, start + len - 1]]`, as `allocate --format json` gives a type's ranges.
fn span(start: u16, len: u16) -> serde_json::Value {
    serde_json::json!([[start, start + len - 1]])
}

fn range(home: &Home, service: &str) -> serde_json::Value {
    home.json(&["allocate", "--service", service, "--instance", "i"])["ranges"].clone()
}

#[test]
fn allocations_land_inside_their_zone() {
    let (front, back, _) = zones();
    let home = home();
    assert_eq!(range(&home, "web-a"), span(front, 10));
    assert_eq!(range(&home, "api-a"), span(back, 10));
    assert_eq!(range(&home, "web-b"), span(front + 20, 10));
    // Outside any rule: the usual span, after the highest range.
    assert_eq!(range(&home, "other"), span(back + 20, 10));
    // --zone on allocate, and growth that stays in the zone.
    home.ok(&["config", "set", "chunk_size", "2"]);
    let g = home.json(&[
        "allocate",
        "--service",
        "grower",
        "--instance",
        "1",
        "--zone",
        "team-frontend",
    ]);
    assert_eq!(g["ranges"], span(front + 40, 2));
    for i in 2..=3 {
        home.ok(&[
            "allocate",
            "--service",
            "grower",
            "--instance",
            &i.to_string(),
        ]);
    }
    let list = home.json(&["list", "grower"]);
    for r in list["service_types"][0]["ranges"].as_array().unwrap() {
        let in_zone = |p: &serde_json::Value| {
            p.as_u64()
                .is_some_and(|p| (u64::from(front)..u64::from(front) + 100).contains(&p))
        };
        assert!(in_zone(&r[0]) && in_zone(&r[1]), "{r}");
    }
    let rules = home.json(&["rule", "list"]);
    assert_eq!(rules["web-*"]["zone"], "team-frontend");
    // The hand-written zones survived every write.
    assert!(home.read().contains(&format!(
        "team-backend  = {{ min_port = {back}, max_port = {} }}",
        back + 99
    )));
}

#[test]
fn a_full_zone_is_an_error_naming_it() {
    let (_, _, cramped) = zones();
    let home = home();
    home.ok(&["rule", "add", "db-*", "--zone", "cramped"]);
    assert_eq!(range(&home, "db-a"), span(cramped, 10));
    let before = home.read();
    let err = home.fails(&["allocate", "--service", "db-b", "--instance", "i"], 1);
    assert!(
        err.contains(&format!(
            "zone \"cramped\" ({cramped}-{}) is full",
            cramped + 15
        )),
        "{err}"
    );
    assert!(err.contains("[strategies.tiny.zones]"), "{err}");
    assert_eq!(home.read(), before);
    let err = home.fails(&["rule", "add", "x-*", "--zone", "nowhere"], 1);
    assert!(err.contains("no zone \"nowhere\""), "{err}");
}

#[test]
fn a_workspace_names_its_zone() {
    let (_, back, _) = zones();
    let home = home();
    let ws = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(ws.path().join("src")).unwrap();
    std::fs::write(
        ws.path().join("Cargo.toml"),
        "[package]\nname = \"backend\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
         [workspace]\n\n[workspace.metadata.styxy]\nzone = \"team-backend\"\n",
    )
    .unwrap();
    std::fs::write(ws.path().join("src/main.rs"), "fn main() {}\n").unwrap();
    let m = ws.path().join("Cargo.toml");
    let a = home.json(&["assign", "--manifest-path", m.to_str().unwrap()]);
    assert_eq!(a["services"][0]["ranges"], span(back, 10));

    std::fs::write(
        ws.path().join("Cargo.toml"),
        "[package]\nname = \"lost\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
         [workspace]\n\n[workspace.metadata.styxy]\nzone = \"atlantis\"\n",
    )
    .unwrap();
    let err = home.fails(&["assign", "--manifest-path", m.to_str().unwrap()], 1);
    assert!(err.contains("no zone \"atlantis\""), "{err}");
}

#[test]
fn bad_zones_written_by_hand_are_refused() {
    let home = Home::new();
    for (text, phrase) in [
        (
            "[strategies.s.zones]\nz = { min_port = 900, max_port = 2000 }\n",
            "from 1024 up",
        ),
        (
            "[strategies.s.zones]\nz = { min_port = 3000, max_port = 2000 }\n",
            "low to high",
        ),
        (
            "[strategies.a.zones]\nz = { min_port = 3000, max_port = 4000 }\n[strategies.b.zones]\nz = { min_port = 5000, max_port = 6000 }\n",
            "more than one strategy",
        ),
        (
            "[rules.\"x\"]\nzone = \"none\"\n",
            "which no [strategies.NAME.zones] defines",
        ),
    ] {
        std::fs::write(home.registry(), text).unwrap();
        let err = home.fails(&["config", "validate"], 3);
        assert!(err.contains(phrase), "{text}: {err}");
    }
}
