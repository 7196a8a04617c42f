//! `cargo xtask bench`: whole-process figures of the release binary, against spec §10's
//! targets and against the alternatives, written to BENCHMARKS.md.

use std::process::{Command, Stdio};
use std::time::Instant;

mod against;
mod builds;
mod ctx;
mod measure;
mod peers;
mod report;

use builds::{build_cost, noop_builds};
use ctx::{
    CHECKOUTS, Ctx, Fixture, audit_lock_ms, big_registry, build_release, cargo, with_checkouts,
};
use measure::{Stats, at_once, finish, in_turns, repeat, run, side_by_side};
use peers::get_port;
use report::{Report, write_report};

type Result<T> = std::result::Result<T, String>;

/// The hook `hook install` writes, run as git runs it after a branch switch in the assigned
/// checkout `ws` (with this binary first on `PATH`, as an installed one is), and its floor:
/// a shell that runs what the hook runs, `env --write -q`, and goes on whatever it returns
/// (so the shell forks for it rather than `exec` it), in turns.
fn hook_cost(
    ctx: &Ctx,
    home: &std::path::Path,
    ws: &std::path::Path,
    path: &str,
) -> Result<(Stats, Stats)> {
    let git = Command::new("git")
        .args(["init", "-q"])
        .current_dir(ws)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .status()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !git.success() {
        return Err("git init failed".into());
    }
    let installed = run(ctx
        .styxy(home, &["hook", "install", "--format", "json"])
        .current_dir(ws)
        .env("GIT_CONFIG_GLOBAL", "/dev/null"))?;
    let hook = serde_json::from_str::<serde_json::Value>(&installed.stdout)
        .ok()
        .and_then(|v| v["hook"].as_str().map(std::path::PathBuf::from))
        .ok_or("hook install failed")?;
    let [(hook, _), (floor, _)] = side_by_side(
        ctx.n(100),
        [
            &mut || {
                let mut c = Command::new(&hook);
                c.args(["0000000", "0000000", "1"])
                    .current_dir(ws)
                    .env("PATH", path)
                    .env("STYXY_HOME", home);
                c
            },
            &mut || {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(r#""$0" styxy env --write -q || true"#)
                    .arg(&ctx.bin)
                    .current_dir(ws)
                    .env("STYXY_HOME", home);
                c
            },
        ],
    )?;
    Ok((hook, floor))
}

/// A copy of the binary at `path`, in `dir/bin/`, which is what every figure runs.
///
/// The same bytes run slower from the file the linker wrote: it wrote them through a
/// mapping, page by page, and those pages stay in the page cache as small folios, which
/// `exec` then faults in a few at a time (on this machine `port` took 14 more page faults
/// and 15 % longer from the linker's file than from a copy of it). A copy is written with
/// `write`, in large folios, as a binary that `cargo install` copied or that a reboot read
/// back from disk would be. Every binary measured (ours, the floors, the peers, another
/// revision's) is such a copy, so that none is measured in the linker's state.
fn fresh_copy(path: &std::path::Path, dir: &std::path::Path) -> Result<std::path::PathBuf> {
    let to = dir
        .join("bin")
        .join(path.file_name().ok_or("a binary's path")?);
    std::fs::create_dir_all(dir.join("bin")).map_err(|e| e.to_string())?;
    std::fs::copy(path, &to).map_err(|e| format!("cannot copy {}: {e}", path.display()))?;
    Ok(to)
}

pub fn main(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let root = crate::workspace_root();
    build_release(&root)?;
    let tmp = std::env::temp_dir().join(format!("styxy-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let ctx = Ctx {
        bin: fresh_copy(&root.join("target/release/cargo-styxy"), &tmp)?,
        pick_port: fresh_copy(&root.join("target/release/pick-port"), &tmp)?,
        floor: fresh_copy(&root.join("target/release/floor"), &tmp)?,
        root: root.clone(),
        quick,
        tmp: tmp.clone(),
    };
    if let Some(i) = args.iter().position(|a| a == "--against") {
        let rev = args
            .get(i + 1)
            .ok_or("--against needs a revision, such as HEAD~3")?;
        let outcome = against::main(&ctx, rev);
        let _ = std::fs::remove_dir_all(&tmp);
        return outcome;
    }
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
    match hook_cost(&ctx, &home, &ws, &path) {
        Ok((hook, floor)) => report.row(
            "the `post-checkout` hook in an assigned checkout (a branch switch)",
            format!(
                "{} = {:.2}× a shell that runs `cargo-styxy styxy env --write -q` and goes on (as any hook must, so that git does not fail with it): {}",
                hook.ms(),
                hook.median / floor.median,
                floor.ms()
            ),
            "≤ 1.1× (what `env` costs, from a shell)",
            Some(hook.median <= 1.1 * floor.median),
        ),
        Err(e) => report.notes.push(format!("hook figure skipped: {e}")),
    }

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

    // 3. One more instance of an existing type (which runs issue 26's removed-checkout check
    //    over the type's instances) in a registry of 100 types: of a type whose 99 instances
    //    are checkouts on disk (an `lstat` each, none gone), and of one whose 99 instance ids
    //    are not paths (none looked at), in turns. Before the large registries, whose pages
    //    this process holds would count in the children's peak RSS.
    let roots = ctx.home("checkout-roots");
    let fixture = Fixture::new(&ctx, &ctx.bin, "existing", with_checkouts(100, &roots)?)?;
    // The same new instance id in both: only the instances already there differ.
    let [(checkouts, checkouts_rss), (names, _)] = in_turns(ctx.n(100), |side, k| {
        let instance = format!("new-{k}");
        let service = ["checkouts", "names"][side];
        fixture.again(
            &ctx.bin,
            b"",
            &["allocate", "--service", service, "--instance", &instance],
        )
    })?;
    rss.push(("allocate in an existing type".into(), checkouts_rss));
    let ratio = checkouts.median / names.median;
    report.row(
        &format!(
            "one more instance of an existing type of {CHECKOUTS} checkouts, 100 types (the removed-checkout check looks at each)"
        ),
        format!(
            "{}; of a type of {CHECKOUTS} ids that are not checkouts (none looked at): {} — {ratio:.2}×",
            checkouts.ms(),
            names.ms()
        ),
        "≤ 1.1× (within noise)",
        Some(ratio <= 1.1),
    );

    // 4. One more allocation in registries of 100, 1,000 and 10,000 types: in the steady
    //    state (the registry and state as styxy last wrote them), and right after a hand
    //    edit of registry.toml (its content changed).
    for size in [100u32, 1_000, 10_000] {
        // 10,000 types hold 40,000 instances (spec §10); the smaller ones one each.
        let per_type = if size == 10_000 { 4 } else { 1 };
        let fixture = Fixture::new(
            &ctx,
            &ctx.bin,
            &format!("size-{size}"),
            big_registry(size, per_type),
        )?;
        // Each run starts from the same registry and state, as styxy wrote them or with
        // registry.toml edited by hand, and allocates one more new type.
        let mut k = 0;
        let mut one_more = |as_written: bool| {
            k += 1;
            let service = format!("extra-{k}");
            fixture.again(
                &ctx.bin,
                if as_written {
                    b""
                } else {
                    b"# edited by hand\n"
                },
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
            let (list, list_rss) = repeat(ctx.n(20), || {
                fixture.again(&ctx.bin, b"", &["list", "--format", "json"])
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

    // 5. No-op cargo build with and without the build integration.
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
                    "{:.1} s (min {:.1}, max {:.1}, n={}) with `styxy-build` as build-dependency, {:.1} s (min {:.1}, max {:.1}) without: {ratio:.3}× (fastest to fastest {:.3}×)",
                    with.median / 1e3,
                    with.min / 1e3,
                    with.max / 1e3,
                    with.n,
                    without.median / 1e3,
                    without.min / 1e3,
                    without.max / 1e3,
                    with.min / without.min,
                ),
                "≤ 1.05× without",
                Some(ratio <= 1.05),
            );
        }
        Err(e) => report.notes.push(format!("build cost skipped: {e}")),
    }

    // 6. Peers: a random free port (portpicker, get-port) against a stable one.
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
