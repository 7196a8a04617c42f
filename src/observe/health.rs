//! The registry's health, as `doctor` prints it and the dashboard shows it: each finding
//! with the command that fixes it.

use serde::Serialize;

use styxy::model::Origin;
use styxy::registry::Store;

/// One problem, and its fix.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Which check found it: `registry`, `gaps`, `ephemeral`, `foreign-listeners`,
    /// `overlaps`, `instances`, `leases`, `temp-files` or `lock`.
    pub check: &'static str,
    /// What is wrong.
    pub message: String,
    /// The command (or step) that fixes it.
    pub fix: String,
}

/// Every finding.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// No finding.
    pub healthy: bool,
    pub findings: Vec<Finding>,
}

fn findings(store: &Store) -> Vec<Finding> {
    let mut out = Vec::new();
    let reg = match store.read() {
        Ok(reg) => reg,
        Err(e) => {
            let (check, fix) = match &e {
                styxy::Error::Store(styxy::error::StoreError::UnsafeDir { fix, .. }) => {
                    ("registry-dir", fix.clone())
                }
                _ => (
                    "registry",
                    "fix the file by hand, or `cargo styxy config restore`".into(),
                ),
            };
            out.push(Finding {
                check,
                message: e.to_string(),
                fix,
            });
            return out;
        }
    };
    let machine = styxy::this_machine();
    let gap = i64::from(reg.settings.gap_size);
    let all = reg.all_ranges();
    for pair in all.windows(2) {
        let ((a, an), (b, bn)) = (pair[0], pair[1]);
        let auto = |n: &str| reg.types[n].origin == Origin::Auto;
        let free = i64::from(b.start) - i64::from(a.end) - 1;
        if (auto(an) || auto(bn)) && free < gap {
            let which = if auto(bn) { bn } else { an };
            out.push(Finding {
                check: "gaps",
                message: format!(
                    "{a} of {an:?} and {b} of {bn:?} are {free} ports apart, less than gap_size {gap}"
                ),
                fix: format!(
                    "move {which:?}: `cargo styxy release --service {which}`, then assign it again"
                ),
            });
        }
    }
    if let Some(eph) = (machine.ephemeral)() {
        for (r, name) in &all {
            if r.overlaps(&eph) {
                out.push(Finding {
                    check: "ephemeral",
                    message: format!(
                        "{r} of {name:?} lies in the OS ephemeral range {eph}, where the kernel picks ports for outgoing connections"
                    ),
                    fix: format!("`cargo styxy type set {name} --range A-B` with B below {}", eph.start),
                });
            }
        }
    }
    if let Some(listening) = styxy::probe::listening_ports() {
        let ours: Vec<(u16, String)> = crate::observe::metrics::foreign_listeners(&reg, &listening)
            .into_iter()
            .filter(|(_, n)| reg.types[n].origin != Origin::Builtin)
            .collect();
        let who = styxy::probe::listeners_by_port(|p| ours.iter().any(|(q, _)| *q == p));
        for (port, name) in ours {
            let procs: Vec<String> = who
                .get(&port)
                .map(|ls| {
                    ls.iter()
                        .map(|l| format!("pid {} ({})", l.pid, l.command))
                        .collect()
                })
                .unwrap_or_default();
            let by = if procs.is_empty() {
                "a process the OS does not name".to_owned()
            } else {
                procs.join(", ")
            };
            out.push(Finding {
                check: "foreign-listeners",
                message: format!("port {port} of {name:?} is taken by {by}, which no instance of the registry is"),
                fix: format!(
                    "stop it, or move {name:?} elsewhere with `cargo styxy type set {name} --range A-B`"
                ),
            });
        }
    }
    let overlaps = styxy::model::validate::overlaps(&reg);
    for o in &overlaps {
        out.push(Finding {
            check: "overlaps",
            message: format!("{}, after a hand edit", o.describe()),
            fix: format!(
                "give {:?} ranges of its own: `cargo styxy type set {} --range A-B`",
                o.b, o.b
            ),
        });
    }
    for (name, id, port) in styxy::model::validate::misplaced(&reg, &overlaps) {
        out.push(Finding {
            check: "instances",
            message: format!(
                "instance {id:?} of {name:?} holds port {port}, which its ranges {} cannot give it (another instance's, or outside them), after a hand edit",
                reg.types[name].ranges_text()
            ),
            fix: "any write moves it to a free port of its type, e.g. `cargo styxy gc`".into(),
        });
    }
    let stale: Vec<(&str, &styxy::model::Lease)> = reg
        .types
        .iter()
        .flat_map(|(name, t)| t.leases.iter().map(move |l| (name.as_str(), l)))
        .filter(|(_, l)| !styxy::probe::lease_is_live(l))
        .collect();
    // A stale lease whose port still listens: a server that outlived its `run`.
    let serving = styxy::probe::serving(&stale.iter().map(|(_, l)| l.port).collect(), true);
    for (name, l) in stale {
        let (still, fix) = match serving.get(&l.port) {
            None => (String::new(), "`cargo styxy gc`".to_owned()),
            Some(pid) => {
                let who = pid.map_or_else(|| "a process".to_owned(), |p| format!("pid {p}"));
                (
                    format!(", yet {who} still listens on it"),
                    format!("stop {who}, then `cargo styxy gc`"),
                )
            }
        };
        out.push(Finding {
            check: "leases",
            message: format!(
                "the lease of pid {} on port {} of {name:?} outlived its process{still}",
                l.pid, l.port
            ),
            fix,
        });
    }
    let temps: Vec<String> = std::fs::read_dir(store.dir())
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| styxy::fsx::is_temp_name(n))
                .collect()
        })
        .unwrap_or_default();
    if !temps.is_empty() {
        out.push(Finding {
            check: "temp-files",
            message: format!(
                "{} temp file(s) of killed writers in {}: {}",
                temps.len(),
                store.dir().display(),
                temps.join(", ")
            ),
            fix: "`cargo styxy gc` (every registry write sweeps them)".into(),
        });
    }
    let lock_path = store.lock_file();
    if let Ok(file) = std::fs::File::open(&lock_path)
        && let Err(std::fs::TryLockError::WouldBlock) = file.try_lock()
    {
        let holder = styxy::os::lock_holder(&file);
        let who = match holder {
            Some(pid) => {
                let alive = styxy::os::process_start_time(pid).is_some();
                if alive {
                    format!("pid {pid} ({})", styxy::probe::command_line(pid))
                } else {
                    format!("pid {pid}, which is gone")
                }
            }
            None => "a process the OS does not name".into(),
        };
        out.push(Finding {
            check: "lock",
            message: format!("the registry lock {} is held by {who}", lock_path.display()),
            fix: match holder {
                Some(pid) => format!("wait for it to finish, or stop pid {pid}"),
                None => "wait for it to finish".into(),
            },
        });
    }
    out
}

/// Checks that the registry parses and validates, gaps between auto-allocated ranges, ranges
/// inside the OS ephemeral span, foreign listeners inside our (non-built-in) ranges, stale
/// leases, temp files of killed writers, and who holds the lock.
pub fn check(store: &Store) -> Report {
    let findings = findings(store);
    Report {
        healthy: findings.is_empty(),
        findings,
    }
}
