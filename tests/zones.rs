//! Placement zones (`[strategies.NAME.zones]`), chosen by a rule or by a workspace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Home;

const ZONES: &str = "[settings]
chunk_size = 10
gap_size = 10

[strategies.by-team.zones]
team-frontend = { min_port = 13000, max_port = 13099 }
team-backend  = { min_port = 14000, max_port = 14099 }

[strategies.tiny.zones]
cramped = { min_port = 15000, max_port = 15015 }
";

fn home() -> Home {
    let home = Home::new();
    std::fs::write(home.registry(), ZONES).unwrap();
    home.ok(&["rule", "add", "web-*", "--zone", "team-frontend"]);
    home.ok(&["rule", "add", "api-*", "--zone", "team-backend"]);
    home
}

fn range(home: &Home, service: &str) -> serde_json::Value {
    home.json(&["allocate", "--service", service, "--instance", "i"])["ranges"].clone()
}

#[test]
fn allocations_land_inside_their_zone() {
    let home = home();
    assert_eq!(range(&home, "web-a"), serde_json::json!([[13000, 13009]]));
    assert_eq!(range(&home, "api-a"), serde_json::json!([[14000, 14009]]));
    assert_eq!(range(&home, "web-b"), serde_json::json!([[13020, 13029]]));
    // Outside any rule: the usual span, after the highest range.
    assert_eq!(range(&home, "other"), serde_json::json!([[14020, 14029]]));
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
    assert_eq!(g["ranges"], serde_json::json!([[13040, 13041]]));
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
        let (a, b) = (r[0].as_u64().unwrap(), r[1].as_u64().unwrap());
        assert!(
            (13000..=13099).contains(&a) && (13000..=13099).contains(&b),
            "{r}"
        );
    }
    let rules = home.json(&["rule", "list"]);
    assert_eq!(rules["web-*"]["zone"], "team-frontend");
    // The hand-written zones survived every write.
    assert!(
        home.read()
            .contains("team-backend  = { min_port = 14000, max_port = 14099 }")
    );
}

#[test]
fn a_full_zone_is_an_error_naming_it() {
    let home = home();
    home.ok(&["rule", "add", "db-*", "--zone", "cramped"]);
    assert_eq!(range(&home, "db-a"), serde_json::json!([[15000, 15009]]));
    let before = home.read();
    let err = home.fails(&["allocate", "--service", "db-b", "--instance", "i"], 1);
    assert!(
        err.contains("zone \"cramped\" (15000-15015) is full"),
        "{err}"
    );
    assert!(err.contains("[strategies.tiny.zones]"), "{err}");
    assert_eq!(home.read(), before);
    let err = home.fails(&["rule", "add", "x-*", "--zone", "nowhere"], 1);
    assert!(err.contains("no zone \"nowhere\""), "{err}");
}

#[test]
fn a_workspace_names_its_zone() {
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
    assert_eq!(
        a["services"][0]["ranges"],
        serde_json::json!([[14000, 14009]])
    );

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
        let err = home.fails(&["config", "validate"], 1);
        assert!(err.contains(phrase), "{text}: {err}");
    }
}
