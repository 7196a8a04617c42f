//! Many real processes at once, and writers killed with SIGKILL: the registry stays whole
//! and no two ranges or instances ever collide.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{Home, assert_disjoint_with_gaps};

/// Holds the registry lock while `spawn` starts every process, then lets them all go at
/// once: they contend for the lock from the same instant.
fn burst(home: &Home, n: usize, args: impl Fn(usize) -> Vec<String>) -> Vec<serde_json::Value> {
    // Create the registry first so the lock file exists.
    home.ok(&["config", "set", "gap_size", "10"]);
    let lock = std::fs::File::options()
        .write(true)
        .open(home.path().join("registry.lock"))
        .unwrap();
    lock.lock().unwrap();
    let children: Vec<Child> = (0..n)
        .map(|i| {
            let a = args(i);
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            home.cmd(&a)
                .args(["--format", "json", "-q"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    lock.unlock().unwrap();
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "a process failed: {err}");
            serde_json::from_slice(&out.stdout).unwrap()
        })
        .collect()
}

#[test]
fn sixty_four_new_types_at_once_get_disjoint_ranges_with_gaps() {
    let home = Home::new();
    let grants = burst(&home, 64, |i| {
        [
            "allocate",
            "--service",
            &format!("burst-{i}"),
            "--instance",
            "w",
        ]
        .map(String::from)
        .to_vec()
    });
    assert_eq!(grants.len(), 64);
    assert!(grants.iter().all(|g| g["auto_allocated"] == true));
    let ranges = home.ranges();
    let burst_ranges = ranges
        .iter()
        .filter(|(n, ..)| n.starts_with("burst-"))
        .count();
    assert_eq!(burst_ranges, 64);
    assert_disjoint_with_gaps(&ranges, 10, |n| n.starts_with("burst-"));
}

#[test]
fn thirty_instances_of_one_new_type_get_thirty_ports_and_one_creation() {
    let home = Home::new();
    let grants = burst(&home, 30, |i| {
        [
            "allocate",
            "--service",
            "shared-new",
            "--instance",
            &format!("w{i}"),
        ]
        .map(String::from)
        .to_vec()
    });
    let ports: BTreeSet<u64> = grants.iter().map(|g| g["port"].as_u64().unwrap()).collect();
    assert_eq!(ports.len(), 30);
    let created = grants
        .iter()
        .filter(|g| g["auto_allocated"] == true)
        .count();
    assert_eq!(created, 1);
    // The audit trail has exactly one line per change, from all 30 writers.
    let audit = home.json(&["audit"]);
    let count = |e: &str| {
        audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["event"] == e)
            .count()
    };
    assert_eq!(count("TYPE_ALLOCATED"), 1);
    assert_eq!(count("INSTANCE_ASSIGNED"), 30);
    assert_eq!(count("TYPE_GREW"), 2);
    // 30 instances in chunks of 10: the type grew twice, its ranges disjoint from the rest.
    let ranges = home.ranges();
    assert_eq!(ranges.iter().filter(|(n, ..)| n == "shared-new").count(), 3);
    assert_disjoint_with_gaps(&ranges, 10, |n| n == "shared-new");
}

fn random_below(n: u64) -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.finish() % n
}

#[test]
fn writers_killed_at_random_instants_never_tear_the_registry() {
    let home = Home::new();
    home.ok(&["config", "set", "gap_size", "1"]);
    let mut acknowledged: Vec<(String, u64)> = Vec::new();
    let mut killed = 0;
    for round in 0..60 {
        let service = format!("crash-{round}");
        let mut child = home
            .cmd(&[
                "allocate",
                "--service",
                &service,
                "--instance",
                "w",
                "--format",
                "json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill somewhere in the process's life: start-up, under the lock, mid-write, or
        // after it finished (then its answer counts as acknowledged).
        std::thread::sleep(Duration::from_micros(random_below(6000)));
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            let g: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            acknowledged.push((service, g["port"].as_u64().unwrap()));
        } else {
            killed += 1;
        }
        // The registry parses and validates after every kill, and the lock is free at once.
        let v = home
            .cmd(&["config", "validate"])
            .env("STYXY_LOCK_TIMEOUT", "2")
            .output()
            .unwrap();
        assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    }
    assert!(
        killed > 0,
        "no writer was killed; the test did not test anything"
    );
    // The next writer gets the lock without waiting for a dead holder.
    common::succeeded(
        home.cmd(&["allocate", "--service", "after", "--instance", "w"])
            .env("STYXY_LOCK_TIMEOUT", "2"),
    );
    // Every acknowledged allocation is still there with its port.
    let list = home.json(&["list", "crash-*"]);
    for (service, port) in &acknowledged {
        let t = list["service_types"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["service_type"] == service.as_str())
            .unwrap_or_else(|| panic!("acknowledged {service} lost"));
        assert_eq!(t["instances"][0]["port"].as_u64(), Some(*port));
    }
    // Temp files of killed writers were swept by the writes that followed.
    let leftovers: Vec<_> = std::fs::read_dir(home.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_disjoint_with_gaps(&home.ranges(), 1, |n| n.starts_with("crash-"));
}

#[test]
fn two_directories_reaching_one_registry_share_one_lock() {
    // A dotfiles setup: the real registry in one directory, a link to it in another.
    let real = Home::new();
    let linked = Home::new();
    real.ok(&["config", "set", "gap_size", "10"]);
    std::os::unix::fs::symlink(real.registry(), linked.registry()).unwrap();
    let lock = std::fs::File::options()
        .write(true)
        .open(real.path().join("registry.lock"))
        .unwrap();
    lock.lock().unwrap();
    let children: Vec<Child> = (0..32)
        .map(|i| {
            let home = if i % 2 == 0 { &real } else { &linked };
            let (service, instance) = (format!("two-dirs-{}", i % 4), format!("i{i}"));
            home.cmd(&["allocate", "--service", &service, "--instance", &instance])
                .args(["--format", "json", "-q"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    lock.unlock().unwrap();
    let mut acknowledged = BTreeSet::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "a writer failed: {err}");
        let g: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        acknowledged.insert((
            g["instance"].as_str().unwrap().to_owned(),
            g["port"].as_u64().unwrap(),
        ));
    }
    assert_eq!(acknowledged.len(), 32);
    // Every acknowledged allocation is there, read through either directory, on 32 ports.
    for home in [&real, &linked] {
        let list = home.json(&["list", "two-dirs-*"]);
        let held: BTreeSet<(String, u64)> = list["service_types"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| t["instances"].as_array().unwrap().clone())
            .map(|i| {
                (
                    i["instance"].as_str().unwrap().to_owned(),
                    i["port"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(held, acknowledged);
    }
    let ports: BTreeSet<u64> = acknowledged.iter().map(|(_, p)| *p).collect();
    assert_eq!(ports.len(), 32, "two holders of one port");
    assert!(!linked.state().exists(), "a second state beside the link");
}
