//! `cargo xtask bench`: whole-process figures of the release binary, against spec §10's
//! targets and against the alternatives, written to BENCHMARKS.md.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, String>;

/// Median, min and max of a sample.
#[derive(Debug, Clone, Copy)]
struct Stats {
    median: f64,
    min: f64,
    max: f64,
    p99: f64,
    n: usize,
}

impl Stats {
    fn of(mut v: Vec<f64>) -> Stats {
        v.sort_by(|a, b| a.total_cmp(b));
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Stats {
            median: at(0.5),
            min: v[0],
            max: v[v.len() - 1],
            p99: at(0.99),
            n: v.len(),
        }
    }

    fn ms(&self) -> String {
        format!(
            "{:.2} ms (min {:.2}, max {:.2}, n={})",
            self.median, self.min, self.max, self.n
        )
    }
}

/// A finished child: wall time from spawn to exit, peak RSS, output.
struct Run {
    wall_ms: f64,
    max_rss_kb: i64,
    stdout: String,
    ok: bool,
}

/// Spawns `cmd` and waits for it with `wait4`, which reports the child's peak RSS.
fn run(cmd: &mut Command) -> Result<Run> {
    let start = Instant::now();
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    finish(child, start)
}

fn finish(mut child: std::process::Child, start: Instant) -> Result<Run> {
    use std::io::Read;
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet waited for (std never waits on its own).
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall_ms = start.elapsed().as_secs_f64() * 1e3;
    if rc != pid {
        return Err(format!("wait4 failed for {pid}"));
    }
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    Ok(Run {
        wall_ms,
        max_rss_kb: usage.ru_maxrss,
        stdout,
        ok,
    })
}

/// `n` styxy processes started at once against `home`, the `i`th with `args(i)`; waits
/// for all of them.
fn at_once<const N: usize>(
    ctx: &Ctx,
    home: &Path,
    n: usize,
    args: impl Fn(usize) -> [String; N],
) -> Result<Vec<Run>> {
    let start = Instant::now();
    let children: Vec<_> = (0..n)
        .map(|i| {
            let args = args(i);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ctx.styxy(home, &args)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_>>()?;
    children.into_iter().map(|c| finish(c, start)).collect()
}

/// `n` runs of `make()`, after one untimed warm-up run.
fn repeat(n: usize, mut make: impl FnMut() -> Command) -> Result<(Stats, i64)> {
    let warm = run(&mut make())?;
    if !warm.ok {
        return Err(format!("{:?} failed", make()));
    }
    let mut times = Vec::new();
    let mut rss = warm.max_rss_kb;
    for _ in 0..n {
        let r = run(&mut make())?;
        if !r.ok {
            return Err(format!("{:?} failed", make()));
        }
        times.push(r.wall_ms);
        rss = rss.max(r.max_rss_kb);
    }
    Ok((Stats::of(times), rss))
}

/// [`repeat`] for several commands at once, taken in turns (one run of each per round), so
/// that a figure and its floor see the same moments of a noisy machine.
fn side_by_side<const N: usize>(
    n: usize,
    mut makers: [&mut dyn FnMut() -> Command; N],
) -> Result<[(Stats, i64); N]> {
    let mut times: [Vec<f64>; N] = std::array::from_fn(|_| Vec::with_capacity(n));
    let mut rss = [0i64; N];
    for round in 0..=n {
        for (i, make) in makers.iter_mut().enumerate() {
            let r = run(&mut make())?;
            if !r.ok {
                return Err(format!("{:?} failed", make()));
            }
            rss[i] = rss[i].max(r.max_rss_kb);
            // Round 0 warms up.
            if round > 0 {
                times[i].push(r.wall_ms);
            }
        }
    }
    let mut out = times.into_iter().zip(rss).map(|(t, r)| (Stats::of(t), r));
    Ok(std::array::from_fn(|_| out.next().expect("one per maker")))
}

struct Ctx {
    root: PathBuf,
    bin: PathBuf,
    pick_port: PathBuf,
    /// The floors: an empty binary, and `floor lock-write DIR`.
    floor: PathBuf,
    quick: bool,
    tmp: PathBuf,
}

impl Ctx {
    fn n(&self, full: usize) -> usize {
        if self.quick { (full / 5).max(5) } else { full }
    }

    fn home(&self, name: &str) -> PathBuf {
        let dir = self.tmp.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn styxy(&self, home: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("styxy").args(args).env("STYXY_HOME", home);
        c
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn build_release(root: &Path) -> Result<()> {
    let status = Command::new(cargo())
        .args([
            "build",
            "--release",
            "-p",
            "cargo-styxy",
            "-p",
            "xtask",
            "--bins",
        ])
        .current_dir(root)
        .status()
        .map_err(|e| e.to_string())?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| "release build failed".into())
}

/// The built-in service types.
const BUILTINS: [&str; 17] = [
    "dev",
    "api",
    "database",
    "auth",
    "functions",
    "ui",
    "hub",
    "storybook",
    "test",
    "proxy",
    "docs",
    "monitoring",
    "build",
    "infrastructure",
    "ai",
    "messaging",
    "coordination",
];

/// A registry of the single-file format (migrated by its first write) with `n`
/// auto-allocated types, each with `per_type` instances.
fn big_registry(n: u32, per_type: u32) -> String {
    // Packed from 1100 up, each range just big enough, one port apart. 10,000 types of four
    // instances reach past the ephemeral range, so new ones go above it (max_port 65535).
    let size = per_type.max(2);
    let mut s = String::from(
        "[settings]\nmin_port = 1024\nmax_port = 65535\nchunk_size = 2\ngap_size = 1\n\n",
    );
    // No built-in types: their ranges would sit among these.
    for t in BUILTINS {
        let _ = write!(s, "[types.{t}]\nremoved = true\n\n");
    }
    for i in 0..n {
        let start = 1100 + i * (size + 1);
        let _ = write!(
            s,
            "[types.\"bench-{i}\"]\nranges = [[{start}, {}]]\ninstance_behavior = \"multi\"\norigin = \"auto\"\n\n[types.\"bench-{i}\".instances]\n",
            start + size - 1
        );
        for k in 0..per_type {
            let _ = writeln!(
                s,
                "\"/ws/{i}/{k}\" = {{ port = {}, workspace = \"/ws/{i}/{k}\" }}",
                start + k
            );
        }
        s.push('\n');
    }
    s
}

fn audit_lock_ms(home: &Path, field: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(home.join("audit.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v[field].as_f64())
        .collect()
}

struct Report {
    rows: Vec<(String, String, String, String)>,
    notes: Vec<String>,
}

impl Report {
    fn row(&mut self, figure: &str, measured: String, target: &str, verdict: Option<bool>) {
        let v = match verdict {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "—",
        };
        println!("{figure}: {measured} [{target}] {v}");
        self.rows
            .push((figure.into(), measured, target.into(), v.into()));
    }
}

pub fn main(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let root = crate::workspace_root();
    build_release(&root)?;
    let tmp = std::env::temp_dir().join(format!("styxy-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let ctx = Ctx {
        bin: root.join("target/release/cargo-styxy"),
        pick_port: root.join("target/release/pick-port"),
        floor: root.join("target/release/floor"),
        root: root.clone(),
        quick,
        tmp: tmp.clone(),
    };
    let mut report = Report {
        rows: Vec::new(),
        notes: Vec::new(),
    };
    let mut rss: Vec<(String, i64)> = Vec::new();

    // 1. env and port on an assigned workspace, against cargo metadata and cargo's dispatch.
    let home = ctx.home("env");
    let ws = tmp.join("shop");
    crate::example(&ctx.root, &ws);
    let manifest = ws.join("Cargo.toml");
    let m = manifest.to_str().ok_or("path")?.to_owned();
    let assign = run(&mut ctx.styxy(&home, &["assign", "--manifest-path", &m]))?;
    if !assign.ok {
        return Err("assign failed".into());
    }
    let n = ctx.n(200);
    let [(empty, _), (env, env_rss), (port, port_rss), (direct, _)] = side_by_side(
        n,
        [
            &mut || Command::new(&ctx.floor),
            &mut || ctx.styxy(&home, &["env", "--manifest-path", &m]),
            &mut || ctx.styxy(&home, &["port", "shop-api", "--manifest-path", &m]),
            &mut || {
                let mut c = Command::new(&ctx.bin);
                c.args(["styxy", "--version"]);
                c
            },
        ],
    )?;
    let (meta, _) = repeat(ctx.n(30), || {
        let mut c = Command::new(cargo());
        c.args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
            &m,
        ]);
        c
    })?;
    let path = format!(
        "{}:{}",
        ctx.bin.parent().ok_or("bin dir")?.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let (via_cargo, _) = repeat(ctx.n(30), || {
        let mut c = Command::new(cargo());
        c.args(["styxy", "--version"]).env("PATH", &path);
        c
    })?;
    rss.push(("env".into(), env_rss));
    rss.push(("port".into(), port_rss));
    report.row(
        "an empty Rust binary (the floor of `env`/`port`)",
        empty.ms(),
        "floor",
        None,
    );
    report.row(
        "`cargo-styxy styxy env`, assigned workspace",
        format!(
            "{} = {:.2}× the empty binary",
            env.ms(),
            env.median / empty.median
        ),
        "≤ 1.7× an empty binary",
        Some(env.median <= 1.7 * empty.median),
    );
    report.row(
        "`cargo-styxy styxy port shop-api`",
        format!(
            "{} = {:.2}× the empty binary",
            port.ms(),
            port.median / empty.median
        ),
        "≤ 1.7× an empty binary",
        Some(port.median <= 1.7 * empty.median),
    );
    report.row(
        "`cargo metadata --no-deps` (what env would cost without the cache)",
        format!(
            "{} — env is {:.0}× faster",
            meta.ms(),
            meta.median / env.median
        ),
        "reference",
        None,
    );
    report.row(
        "`cargo styxy --version` (cargo's dispatch)",
        format!("{} vs {:.2} ms direct", via_cargo.ms(), direct.median),
        "reference",
        None,
    );

    // 2. One new allocation alone; then 64 new types at once.
    let home = ctx.home("one");
    let floor_dir = ctx.home("floor");
    let floor_arg = floor_dir.to_str().ok_or("path")?.to_owned();
    let mut k = 0;
    let [(one, one_rss), (writer, _)] = side_by_side(
        ctx.n(100),
        [
            &mut || {
                k += 1;
                ctx.styxy(
                    &home,
                    &[
                        "allocate",
                        "--service",
                        &format!("solo-{k}"),
                        "--instance",
                        "w",
                    ],
                )
            },
            &mut || {
                let mut c = Command::new(&ctx.floor);
                c.args(["lock-write", &floor_arg]);
                c
            },
        ],
    )?;
    rss.push(("allocate (new type)".into(), one_rss));
    report.row(
        "a minimal locked atomic writer (the floor of an allocation)",
        writer.ms(),
        "floor",
        None,
    );
    report.row(
        "one new allocation, whole process",
        format!(
            "{} = {:.2}× the minimal writer",
            one.ms(),
            one.median / writer.median
        ),
        "≤ 4 ms median, ≤ 2.5× the minimal writer",
        Some(one.median <= 4.0 && one.median <= 2.5 * writer.median),
    );
    let holds = Stats::of(audit_lock_ms(&home, "lock_hold_ms"));
    report.row(
        "lock hold time of one allocation (audit trail)",
        format!(
            "{:.3} ms median, p99 {:.3} ms (n={})",
            holds.median, holds.p99, holds.n
        ),
        "≤ 1.5 ms median",
        Some(holds.median <= 1.5),
    );

    let bursts = if quick { 3 } else { 10 };
    // The floor: 64 minimal writers that block on one lock, started at once; one floor
    // burst before each of ours, so that both see the same moments of the machine.
    let mut floor_walls = Vec::new();
    let mut floor_burst = || -> Result<()> {
        let start = Instant::now();
        let children: Vec<_> = (0..64)
            .map(|_| {
                Command::new(&ctx.floor)
                    .args(["lock-write", &floor_arg])
                    .stdout(Stdio::null())
                    .spawn()
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<_>>()?;
        for c in children {
            finish(c, start)?;
        }
        floor_walls.push(start.elapsed().as_secs_f64() * 1e3);
        Ok(())
    };
    let mut walls = Vec::new();
    let mut waits = Vec::new();
    let mut worst_gap = i64::MAX;
    let mut overlaps = 0;
    let mut failures = 0;
    for b in 0..bursts {
        floor_burst()?;
        let home = ctx.home(&format!("burst-{b}"));
        let _ = run(&mut ctx.styxy(&home, &["config", "set", "gap_size", "10"]))?;
        let start = Instant::now();
        let runs = at_once(&ctx, &home, 64, |i| {
            [
                "allocate",
                "--service",
                &format!("burst-{i}"),
                "--instance",
                "w",
            ]
            .map(String::from)
        })?;
        failures += runs.iter().filter(|r| !r.ok).count();
        walls.push(start.elapsed().as_secs_f64() * 1e3);
        waits.extend(audit_lock_ms(&home, "lock_wait_ms").into_iter().skip(1));
        let list = run(&mut ctx.styxy(&home, &["list", "burst-*", "--format", "json"]))?;
        let v: serde_json::Value = serde_json::from_str(&list.stdout).map_err(|e| e.to_string())?;
        let mut ranges: Vec<(i64, i64)> = v["service_types"]
            .as_array()
            .ok_or("list")?
            .iter()
            .flat_map(|t| t["ranges"].as_array().cloned().unwrap_or_default())
            .map(|r| (r[0].as_i64().unwrap_or(0), r[1].as_i64().unwrap_or(0)))
            .collect();
        ranges.sort();
        if ranges.len() != 64 {
            failures += 64 - ranges.len().min(64);
        }
        for w in ranges.windows(2) {
            let gap = w[1].0 - w[0].1 - 1;
            overlaps += usize::from(gap < 0);
            worst_gap = worst_gap.min(gap);
        }
    }
    let wall = Stats::of(walls);
    let wait = Stats::of(waits);
    let floor_burst = Stats::of(floor_walls);
    report.row(
        "64 minimal blocking-lock writers at once (the floor of the burst)",
        format!("{} over {bursts} bursts", floor_burst.ms()),
        "floor",
        None,
    );
    report.row(
        "64 processes auto-allocating 64 new types at once, whole burst",
        format!(
            "{} over {bursts} bursts = {:.2}× the floor",
            wall.ms(),
            wall.median / floor_burst.median
        ),
        "≤ 2× the floor's burst",
        Some(wall.median <= 2.0 * floor_burst.median),
    );
    report.row(
        "… correctness",
        format!("{failures} failures, {overlaps} overlaps, smallest gap {worst_gap} (gap_size 10)"),
        "0 failures, 0 overlaps, gaps ≥ 10",
        Some(failures == 0 && overlaps == 0 && worst_gap >= 10),
    );
    report.row(
        "… lock wait per process (audit trail)",
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            wait.median, wait.p99, wait.max
        ),
        "reference",
        None,
    );

    // 30 processes asking at once for instances of one type that does not exist yet: one
    // of them creates it, the others join it (and it grows).
    let rounds = if quick { 2 } else { 5 };
    let mut walls = Vec::new();
    let mut wrong = Vec::new();
    for round in 0..rounds {
        let home = ctx.home(&format!("shared-{round}"));
        let start = Instant::now();
        let runs = at_once(&ctx, &home, 30, |i| {
            let instance = format!("i{i}");
            [
                "allocate",
                "--service",
                "shared",
                "--instance",
                &instance,
                "--format",
                "json",
            ]
            .map(String::from)
        })?;
        let mut ports = std::collections::BTreeSet::new();
        for r in runs {
            let port = serde_json::from_str::<serde_json::Value>(&r.stdout)
                .ok()
                .and_then(|v| v["port"].as_u64());
            ports.extend(port.filter(|_| r.ok));
        }
        walls.push(start.elapsed().as_secs_f64() * 1e3);
        let audit = std::fs::read_to_string(home.join("audit.jsonl")).unwrap_or_default();
        let created = audit
            .lines()
            .filter(|l| l.contains("\"TYPE_ALLOCATED\"") && l.contains("\"shared\""))
            .count();
        if ports.len() != 30 || created != 1 {
            wrong.push(format!(
                "round {round}: {} distinct ports, {created} TYPE_ALLOCATED",
                ports.len()
            ));
        }
    }
    let wall = Stats::of(walls);
    report.row(
        "30 processes allocating instances of one new type at once",
        format!(
            "{} over {rounds} rounds; {}",
            wall.ms(),
            if wrong.is_empty() {
                "every round: 30 distinct ports, exactly one TYPE_ALLOCATED".to_owned()
            } else {
                wrong.join("; ")
            }
        ),
        "30 distinct ports, exactly one `TYPE_ALLOCATED`",
        Some(wrong.is_empty()),
    );

    // `metrics` with a long audit trail (42 MB, as measured in issue 11) against
    // `--version`: it reads the counters in the state, not the trail. Measured before the
    // large registries: a child's peak RSS counts the pages of this process it was forked
    // from, which holding them inflates.
    let home = ctx.home("metrics");
    let _ = run(&mut ctx.styxy(&home, &["allocate", "--service", "m", "--instance", "w"]))?;
    {
        use std::io::Write;
        let line = br#"{"ts":"2026-12-01T00:00:00.000000Z","event":"INSTANCE_ASSIGNED","service_type":"m","instance":"w","port":10000,"pid":1,"user":"bench","lock_wait_ms":0.01,"lock_hold_ms":1.2}"#;
        let mut trail = std::fs::OpenOptions::new()
            .append(true)
            .open(home.join("audit.jsonl"))
            .map_err(|e| e.to_string())?;
        let mut block = Vec::new();
        for _ in 0..1000 {
            block.extend_from_slice(line);
            block.push(b'\n');
        }
        while trail.metadata().map_or(0, |m| m.len()) < 42 << 20 {
            trail.write_all(&block).map_err(|e| e.to_string())?;
        }
    }
    let (metrics, metrics_rss) = repeat(ctx.n(50), || ctx.styxy(&home, &["metrics"]))?;
    rss.push(("metrics, 42 MB audit trail".into(), metrics_rss));
    report.row(
        "`metrics` with a 42 MB audit trail",
        format!(
            "{} = {:.2}× `--version`",
            metrics.ms(),
            metrics.median / direct.median
        ),
        "≤ 4× `--version`",
        Some(metrics.median <= 4.0 * direct.median),
    );

    // 3. One more allocation in registries of 100, 1,000 and 10,000 types: in the steady
    //    state (the registry and state as styxy last wrote them), and right after a hand
    //    edit of registry.toml (its content changed).
    for size in [100u32, 1_000, 10_000] {
        let home = ctx.home(&format!("size-{size}"));
        let reg = home.join("registry.toml");
        let state = home.join("state.json");
        // 10,000 types hold 40,000 instances (spec §10); the smaller ones one each.
        let per_type = if size == 10_000 { 4 } else { 1 };
        std::fs::write(&reg, big_registry(size, per_type)).map_err(|e| e.to_string())?;
        let warm = run(&mut ctx.styxy(
            &home,
            &["allocate", "--service", "warm-up", "--instance", "w"],
        ))?;
        if !warm.ok {
            return Err(format!("allocation in {size} types failed"));
        }
        let (text, saved) = (
            std::fs::read(&reg).map_err(|e| e.to_string())?,
            std::fs::read(&state).map_err(|e| e.to_string())?,
        );
        let mut edited_text = text.clone();
        edited_text.extend_from_slice(b"# edited by hand\n");
        // Each run starts from the same registry and state, as styxy wrote them or with
        // registry.toml edited by hand, and allocates one more new type.
        let mut k = 0;
        let mut one_more = |as_written: bool| {
            let config = if as_written { &text } else { &edited_text };
            std::fs::write(&reg, config).expect("write registry");
            std::fs::write(&state, &saved).expect("write state");
            k += 1;
            let service = format!("extra-{k}");
            ctx.styxy(
                &home,
                &["allocate", "--service", &service, "--instance", "w"],
            )
        };
        let runs = ctx.n(if size == 10_000 { 20 } else { 50 });
        let (steady, rss_kb) = repeat(runs, || one_more(true))?;
        let (edited, edited_rss) = repeat(ctx.n(10), || one_more(false))?;
        rss.push((format!("allocate in {size} types"), rss_kb));
        rss.push((
            format!("allocate in {size} types after a hand edit"),
            edited_rss,
        ));
        let ratio = edited.median / steady.median;
        let (target, verdict) = if size == 10_000 {
            (
                "≤ 50 ms; after a hand edit ≤ 1.5×",
                steady.median <= 50.0 && ratio <= 1.5,
            )
        } else {
            ("after a hand edit ≤ 1.5×", ratio <= 1.5)
        };
        report.row(
            &format!(
                "one more allocation, registry of {size} types, {} instances",
                size * per_type
            ),
            format!(
                "{}; right after a hand edit of the file: {} ({ratio:.2}×)",
                steady.ms(),
                edited.ms()
            ),
            target,
            Some(verdict),
        );
        if size == 10_000 {
            std::fs::write(&reg, &text).map_err(|e| e.to_string())?;
            std::fs::write(&state, &saved).map_err(|e| e.to_string())?;
            let (list, list_rss) = repeat(ctx.n(20), || {
                ctx.styxy(&home, &["list", "--format", "json"])
            })?;
            rss.push((format!("list in {size} types"), list_rss));
            report.row(
                "`list --format json`, 10,000 types, 40,000 instances",
                list.ms(),
                "≤ 50 ms",
                Some(list.median <= 50.0),
            );
        }
    }

    // Peak RSS of the commands above: up to 1,000 types against spec §10's 10 MB, and at
    // 10,000 types and 40,000 instances against its 32 MB.
    let large = |c: &str| c.contains("10000");
    let (usual, big): (Vec<_>, Vec<_>) = rss.iter().partition(|(c, _)| !large(c));
    for (figure, group, mb) in [
        ("peak RSS, registries up to 1,000 types", usual, 10),
        ("peak RSS, 10,000 types and 40,000 instances", big, 32),
    ] {
        let worst = group.iter().map(|(_, kb)| *kb).max().unwrap_or(0);
        report.row(
            figure,
            group
                .iter()
                .map(|(c, kb)| format!("{c} {:.1} MB", *kb as f64 / 1024.0))
                .collect::<Vec<_>>()
                .join(", "),
            &format!("≤ {mb} MB"),
            Some(worst <= mb * 1024),
        );
    }

    // 6. No-op cargo build with and without the build integration.
    match noop_builds(&ctx) {
        Ok((with, without, reruns)) => {
            report.row(
                "no-op `cargo build` of the example workspace",
                format!(
                    "{} with the integration, {} without: +{:.1} ms; build-script reruns: {reruns}",
                    with.ms(),
                    without.ms(),
                    with.median - without.median
                ),
                "0 reruns",
                Some(reruns == 0),
            );
        }
        Err(e) => report.notes.push(format!("no-op build skipped: {e}")),
    }

    match build_cost(&ctx) {
        Ok((with, without)) => {
            let ratio = with.median / without.median;
            report.row(
                "clean debug build of a small axum service (axum, tokio, serde, serde_json, toml)",
                format!(
                    "{:.1} s (min {:.1}, max {:.1}, n={}) with `styxy-build` as build-dependency, {:.1} s (min {:.1}, max {:.1}) without: {ratio:.3}×",
                    with.median / 1e3,
                    with.min / 1e3,
                    with.max / 1e3,
                    with.n,
                    without.median / 1e3,
                    without.min / 1e3,
                    without.max / 1e3,
                ),
                "≤ 1.05× without",
                Some(ratio <= 1.05),
            );
        }
        Err(e) => report.notes.push(format!("build cost skipped: {e}")),
    }

    // 7. Peers: a random free port (portpicker, get-port) against a stable one.
    let (pick, _) = repeat(ctx.n(100), || Command::new(&ctx.pick_port))?;
    report.row(
        "peer: `portpicker::pick_unused_port()` in a tiny bin (random port, not stable)",
        format!(
            "{} — styxy's stable `port` is {:.2}× its time",
            pick.ms(),
            port.median / pick.median
        ),
        "reference",
        None,
    );
    match get_port(&ctx) {
        Ok(stats) => report.row(
            "peer: npm `get-port` under node (random port, not stable)",
            format!(
                "{} — styxy's `port` is {:.1}× faster",
                stats.ms(),
                stats.median / port.median
            ),
            "reference",
            None,
        ),
        Err(e) => report.notes.push(format!("get-port skipped: {e}")),
    }

    write_report(&ctx, &report, quick)?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

/// Medians of no-op builds with the integration and without it (the same workspace with
/// the build scripts and the client removed), and the build-script reruns seen.
fn noop_builds(ctx: &Ctx) -> Result<(Stats, Stats, usize)> {
    let home = ctx.home("build-home");
    let with = ctx.tmp.join("build-with");
    crate::example(&ctx.root, &with);
    let without = ctx.tmp.join("build-without");
    crate::example(&ctx.root, &without);
    for member in ["shop-api", "shop-cli"] {
        let dir = without.join(member);
        let _ = std::fs::remove_file(dir.join("build.rs"));
        let m = dir.join("Cargo.toml");
        let text = std::fs::read_to_string(&m).map_err(|e| e.to_string())?;
        let cut = text.find("[build-dependencies]").unwrap_or(text.len());
        std::fs::write(&m, &text[..cut]).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").map_err(|e| e.to_string())?;
    }
    let target = ctx.tmp.join("build-target");
    let build = |dir: &Path| {
        let mut c = Command::new(cargo());
        c.args(["build", "--offline", "-v"])
            .current_dir(dir)
            .env("CARGO_TARGET_DIR", &target)
            .env("STYXY_HOME", &home)
            .env("STYXY_BIN", &ctx.bin);
        c
    };
    for dir in [&with, &without] {
        let status = build(dir)
            .stderr(Stdio::null())
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("cargo build failed in {}", dir.display()));
        }
    }
    let mut reruns = 0;
    for _ in 0..3 {
        let out = build(&with).output().map_err(|e| e.to_string())?;
        reruns += String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.contains("build-script-build") && l.contains("Running"))
            .count();
    }
    let n = ctx.n(20);
    let (w, _) = repeat(n, || build(&with))?;
    let (wo, _) = repeat(n, || build(&without))?;
    Ok((w, wo, reruns))
}

/// What `styxy-build` as a build-dependency adds to the clean debug build of a small axum
/// service: the same service with and without it (and its build.rs), each built from an
/// empty target dir, in turns, so that drift hits both alike. The lock file is ours, so
/// the service's crates are the versions already in the local registry.
fn build_cost(ctx: &Ctx) -> Result<(Stats, Stats)> {
    const MAIN: &str = r#"#[cfg(styxy)]
mod ports {
    include!(concat!(env!("OUT_DIR"), "/styxy_ports.rs"));
}

#[derive(serde::Deserialize, serde::Serialize)]
struct Config {
    greeting: String,
}

async fn hello(
    axum::extract::State(config): axum::extract::State<std::sync::Arc<Config>>,
) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "greeting": config.greeting }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let config: Config = toml::from_str("greeting = \"hello\"").expect("config");
    #[cfg(styxy)]
    let port = ports::SVC_PORT;
    #[cfg(not(styxy))]
    let port = 0;
    let app = axum::Router::new()
        .route("/", axum::routing::get(hello))
        .with_state(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
"#;
    let manifest = |with: bool| {
        let mut m = String::from(
            r#"[package]
name = "svc"
version = "0.1.0"
edition = "2024"

[dependencies]
axum = { version = "0.8", default-features = false, features = ["http1", "json", "tokio"] }
serde = { version = "1", features = ["derive"] }
serde_json = "1"
tokio = { version = "1", features = ["rt", "net", "macros"] }
toml = "1"

[lints.rust]
unexpected_cfgs = { level = "allow", check-cfg = ["cfg(styxy)"] }
"#,
        );
        if with {
            m.push_str(&format!(
                "
[build-dependencies]
styxy-build = {{ path = {:?} }}
",
                ctx.root.join("crates/styxy-build")
            ));
        }
        m
    };
    let home = ctx.home("build-cost-home");
    let mut dirs = Vec::new();
    for with in [true, false] {
        let dir = ctx.tmp.join(if with { "svc-with" } else { "svc-without" });
        std::fs::create_dir_all(dir.join("src")).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("Cargo.toml"), manifest(with)).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("src/main.rs"), MAIN).map_err(|e| e.to_string())?;
        if with {
            std::fs::write(
                dir.join("build.rs"),
                "fn main() {\n    styxy_build::emit().expect(\"styxy ports\");\n    println!(\"cargo:rustc-cfg=styxy\");\n}\n",
            )
            .map_err(|e| e.to_string())?;
        }
        std::fs::copy(ctx.root.join("Cargo.lock"), dir.join("Cargo.lock"))
            .map_err(|e| e.to_string())?;
        dirs.push(dir);
    }
    let target = ctx.tmp.join("build-cost-target");
    let clean_build = |dir: &Path| -> Result<f64> {
        let _ = std::fs::remove_dir_all(&target);
        let start = Instant::now();
        let out = Command::new(cargo())
            .args(["build", "--offline"])
            .current_dir(dir)
            .env("CARGO_TARGET_DIR", &target)
            .env("STYXY_HOME", &home)
            .env("STYXY_BIN", &ctx.bin)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "cargo build failed in {}: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(start.elapsed().as_secs_f64() * 1e3)
    };
    // A warm-up of each (the first build fills the OS's file cache).
    clean_build(&dirs[0])?;
    clean_build(&dirs[1])?;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..if ctx.quick { 1 } else { 3 } {
        with.push(clean_build(&dirs[0])?);
        without.push(clean_build(&dirs[1])?);
    }
    let _ = std::fs::remove_dir_all(&target);
    Ok((Stats::of(with), Stats::of(without)))
}

/// `get-port` from npm, installed in a temp dir: one call per node process.
fn get_port(ctx: &Ctx) -> Result<Stats> {
    let dir = ctx.tmp.join("get-port");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let ok = Command::new("npm")
        .args([
            "install",
            "--silent",
            "--no-audit",
            "--no-fund",
            "get-port@7",
        ])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("npm: {e}"))?
        .success();
    if !ok {
        return Err("npm install get-port failed".into());
    }
    std::fs::write(
        dir.join("pick.mjs"),
        "import getPort from 'get-port';\nconsole.log(await getPort());\n",
    )
    .map_err(|e| e.to_string())?;
    let (stats, _) = repeat(ctx.n(30), || {
        let mut c = Command::new("node");
        c.arg("pick.mjs").current_dir(&dir);
        c
    })?;
    Ok(stats)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or_else(
            || "?".into(),
            |kb| format!("{:.0} GiB", kb / 1024.0 / 1024.0),
        );
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {mem} RAM, Linux; {rustc}; release profile")
}

fn write_report(ctx: &Ctx, report: &Report, quick: bool) -> Result<()> {
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let mut md = String::from("# Benchmarks\n\n");
    let _ = writeln!(
        md,
        "Measured by `cargo xtask bench{}` on {date}.\n\n**Machine:** {}.\n",
        if quick { " --quick" } else { "" },
        machine()
    );
    md.push_str(
        "**Method:** release binaries; every figure is a whole process (spawn to exit, as a \
         shell or cargo sees it), the median of repeated runs after one warm-up run, with min \
         and max. A figure and its floor are measured in turns (one run of each per round; \
         a floor burst before each burst), so that both see the same moments of the machine. \
         Lock wait and hold times come from the audit trail of the runs. Peak RSS is \
         `ru_maxrss` from `wait4`. Temp registries under the system temp dir; the example \
         workspace is `examples/shop`. The pure allocator's own figures are criterion's \
         (`cargo bench --bench allocator`). Reproduce with `cargo xtask bench` (about six \
         minutes here; `--quick` for fewer runs).\n\n",
    );
    md.push_str("| figure | measured | target | |\n| --- | --- | --- | --- |\n");
    for (f, m, t, v) in &report.rows {
        let _ = writeln!(md, "| {f} | {m} | {t} | {v} |");
    }
    if !report.notes.is_empty() {
        md.push_str("\nNotes:\n\n");
        for n in &report.notes {
            let _ = writeln!(md, "- {n}");
        }
    }
    let path = ctx.root.join("BENCHMARKS.md");
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    // Keep hand-written sections after the generated table.
    let tail = existing
        .find("\n## ")
        .map(|i| existing[i..].to_owned())
        .unwrap_or_default();
    md.push_str(&tail);
    std::fs::write(&path, md).map_err(|e| e.to_string())?;
    println!("wrote {}", path.display());
    let _ = Duration::ZERO;
    Ok(())
}
