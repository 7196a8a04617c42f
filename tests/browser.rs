//! The dashboard in a real headless Chromium (Debian's `chromium` and `chromium-driver`,
//! which `.ci/run` installs), driven over WebDriver: the map draws a band per service type
//! (checked on the screenshot's pixels) and marks a listening instance, a type added through
//! the form reaches the registry,
//! a CLI allocation appears without a reload, the audit view filters, and an invalid setting
//! shows its error inline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Home;
use fantoccini::{ClientBuilder, Locator};
use serde_json::{Value, json};

/// A child process started in a process group of its own, the whole group killed when
/// dropped: chromedriver and the chromium it starts go even when the test fails.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0.id() as i32) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} never listened on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tool(name: &str) -> PathBuf {
    let path = Path::new("/usr/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: install Debian's chromium and chromium-driver (bash .ci/run does)",
        path.display()
    );
    path
}

/// Polls `check` (a JS expression) in the page until it is truthy.
async fn until(client: &fantoccini::Client, what: &str, check: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = client
            .execute(&format!("return {check};"), vec![])
            .await
            .unwrap();
        if v.as_bool() != Some(false) && !v.is_null() && v != json!(0) && v != json!("") {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn click(client: &fantoccini::Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn type_into(client: &fantoccini::Client, css: &str, text: &str) {
    let input = client.find(Locator::Css(css)).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

/// Pixels of the screenshot whose colour is within a small distance of `rgb`.
fn count_colour(png_bytes: &[u8], rgb: [u8; 3]) -> usize {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(channels)
        .filter(|p| (0..3).all(|i| p[i].abs_diff(rgb[i]) <= 6))
        .count()
}

#[tokio::test(flavor = "current_thread")]
async fn the_dashboard_works_in_a_real_browser() {
    let (chromium, chromedriver) = (tool("chromium"), tool("chromedriver"));
    let home = Home::new();
    let alpha = home.json(&["allocate", "--service", "alpha", "--instance", "one"])["port"]
        .as_u64()
        .unwrap();
    home.ok(&["allocate", "--service", "beta", "--instance", "one"]);
    // alpha's server is up (this test listens on its port): the map marks it listening.
    let _alpha_server = std::net::TcpListener::bind(("127.0.0.1", alpha as u16))
        .expect("the port allocate found free");

    // A checkout with one server bin, assigned: its own view, with the server up.
    let checkout = common::one_bin_workspace(
        "viewed",
        "[package.metadata.styxy.bins.viewed]\nurl = \"http://127.0.0.1:{port}/health\"",
        common::LISTENING_BIN,
    );
    let manifest = checkout.path().join("Cargo.toml");
    let viewed = home.json(&["assign", "--manifest-path", manifest.to_str().unwrap()]);
    let root = viewed["workspace"].as_str().unwrap().to_owned();
    let viewed_port = viewed["services"][0]["port"].as_u64().unwrap();
    // Its server runs under `cargo styxy run` (in a process group of its own, killed whole
    // at the end, even if the test fails).
    let _run = Killed(
        home.cmd(&["run"])
            .current_dir(checkout.path())
            .env(
                "CARGO_TARGET_DIR",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fixture-browser"),
            )
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(180);
    let server_pid = loop {
        let i = &home.json(&["list", "viewed"])["service_types"][0]["instances"][0];
        if i["listening"] == true {
            break i["listener_pid"].as_u64().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the server under run never listened"
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    // A checkout deleted since it was assigned: gc's to drop.
    let gone = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(gone.path().join("src")).unwrap();
    std::fs::write(
        gone.path().join("Cargo.toml"),
        "[package]\nname = \"gone\"\nversion = \"0.1.0\"\nedition = \"2024\"\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(gone.path().join("src/main.rs"), "fn main() {}\n").unwrap();
    let gone_manifest = gone.path().join("Cargo.toml");
    home.ok(&["assign", "--manifest-path", gone_manifest.to_str().unwrap()]);
    drop(gone);

    let ui = home.start_ui(9895, &[], &[]);
    let url = ui.url.clone();

    let driver_port = free_port();
    let _driver = Killed(
        Command::new(chromedriver)
            .arg(format!("--port={driver_port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(driver_port, "chromedriver");
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--window-size=1280,900",
                     format!("--user-data-dir={}", profile.path().display())],
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("a WebDriver session in headless chromium");

    // The printed URL: the token is traded for a cookie and leaves the address bar.
    client.goto(&url).await.unwrap();
    until(
        &client,
        "the map",
        "document.querySelectorAll('#map rect.band').length",
    )
    .await;
    let current = client.current_url().await.unwrap();
    assert!(!current.as_str().contains("token="), "{current}");

    // A band per service type.
    let listed: Vec<String> = home.json(&["list"])["service_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["service_type"].as_str().unwrap().to_owned())
        .collect();
    let missing = client
        .execute(
            "return arguments[0].filter(n => !document.querySelector(`#map rect.band[data-type=\"${n}\"]`));",
            vec![json!(listed)],
        )
        .await
        .unwrap();
    assert_eq!(missing, json!([]), "types without a band");
    // Each type has its row and its name, every range at least 4 px wide (so it keeps its
    // colour), and the ticks fall on round numbers.
    let map = client
        .execute(
            r#"const labels = new Set([...document.querySelectorAll('#map text.label')].map(t => t.dataset.type));
               const narrow = [...document.querySelectorAll('#map rect.band')].filter(b => b.getBBox().width < 4).length;
               const ticks = [...document.querySelectorAll('#map text.axis')].map(t => +t.textContent);
               return [arguments[0].filter(n => !labels.has(n)), narrow, ticks];"#,
            vec![json!(listed)],
        )
        .await
        .unwrap();
    assert_eq!(map[0], json!([]), "types without a label");
    assert_eq!(map[1], json!(0), "ranges drawn under 4 px");
    let ticks: Vec<u64> = map[2]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap())
        .collect();
    let step = ticks[1] - ticks[0];
    let digit = step / 10u64.pow(step.ilog10());
    assert!(
        [1, 2, 5].contains(&digit)
            && ticks.windows(2).all(|w| w[1] - w[0] == step)
            && ticks.iter().all(|t| t % step == 0),
        "{ticks:?}"
    );
    // Grouped by checkout: the checkout's own row holds its instance, and the types no
    // checkout holds come under "no checkout".
    let grouped = client
        .execute(
            r#"const select = document.querySelector('#map-group');
               select.value = 'checkout'; select.dispatchEvent(new Event('input'));
               const groups = [...document.querySelectorAll('#map text.group')].map(g => g.textContent);
               const labels = [...document.querySelectorAll('#map text.group, #map text.label')].map(t => t.textContent);
               const after = labels.indexOf(arguments[0]);
               select.value = 'origin'; select.dispatchEvent(new Event('input'));
               return [groups, labels[after + 1]];"#,
            vec![json!(root)],
        )
        .await
        .unwrap();
    assert_eq!(
        grouped[0].as_array().unwrap().last(),
        Some(&json!("no checkout")),
        "{grouped}"
    );
    assert!(
        grouped[0].as_array().unwrap().contains(&json!(root)),
        "{grouped}"
    );
    assert_eq!(
        grouped[1],
        json!("viewed"),
        "the row after the checkout's heading"
    );

    // The map's filter is in the URL: a reload keeps it.
    type_into(&client, "#map-filter", "alph").await;
    let here = client.current_url().await.unwrap();
    assert_eq!(here.fragment(), Some("map?filter=alph"), "{here}");
    client.refresh().await.unwrap();
    let kept = until(
        &client,
        "the filtered map after a reload",
        "document.querySelectorAll('#map text.label').length === 1 && document.querySelector('#map-filter').value",
    )
    .await;
    assert_eq!(kept, json!("alph"));
    until(
        &client,
        "the whole map again",
        "(() => { const f = document.querySelector('#map-filter'); f.value = ''; f.dispatchEvent(new Event('input')); return document.querySelectorAll('#map text.label').length > 1; })()",
    )
    .await;

    // Dragging across the map zooms into that span.
    let zoomed = client
        .execute(
            r#"const map = document.querySelector('#map'), r = map.getBoundingClientRect();
               const at = (type, f) => map.dispatchEvent(new MouseEvent(type, { clientX: r.left + r.width * f, clientY: r.top + 30, bubbles: true }));
               at('mousedown', 0.5); at('mousemove', 0.7); at('mouseup', 0.7);
               return [+document.querySelector('#zoom-from').value, +document.querySelector('#zoom-to').value];"#,
            vec![],
        )
        .await
        .unwrap();
    let (from, to) = (zoomed[0].as_u64().unwrap(), zoomed[1].as_u64().unwrap());
    assert!(from > 0 && to > from, "{zoomed}");
    click(&client, "#zoom-reset").await;
    click(&client, "#zoom-reset").await;
    let marked = client
        .execute(
            "return [...document.querySelectorAll('#map line.instance.listening')].map(l => [l.dataset.port, l.textContent]);",
            vec![],
        )
        .await
        .unwrap();
    let me = std::process::id();
    // The checkout's server, and the dashboard's own port: an instance of `coordination`.
    let ui_pid = ui.child.id();
    assert_eq!(
        marked,
        json!([
            [
                alpha.to_string(),
                format!("{alpha} one (listening, pid {me})")
            ],
            [
                viewed_port.to_string(),
                format!("{viewed_port} {root} (listening, pid {server_pid})")
            ],
            [
                ui.port.to_string(),
                format!("{} cargo-styxy ui (listening, pid {ui_pid})", ui.port)
            ]
        ]),
        "the listening instances' marks"
    );

    // The screenshot shows them: pixels in the band colours.
    let shot = client.screenshot().await.unwrap();
    std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-map.png"),
        &shot,
    )
    .unwrap();
    let band = count_colour(&shot, [0x9e, 0xc1, 0xf7]);
    let auto = count_colour(&shot, [0xa7, 0xe0, 0xb4]);
    assert!(
        band > 300 && auto > 30,
        "the map drew {band} range pixels and {auto} auto-range pixels"
    );

    // A CLI allocation appears on the open page, without a reload.
    client
        .execute("window.__sameLoad = true;", vec![])
        .await
        .unwrap();
    home.ok(&["allocate", "--service", "from-cli", "--instance", "x"]);
    until(
        &client,
        "the new band",
        "document.querySelector('#map rect.band[data-type=\"from-cli\"]')",
    )
    .await;
    let same = client
        .execute("return window.__sameLoad === true;", vec![])
        .await
        .unwrap();
    assert_eq!(same, json!(true), "the page was reloaded");

    // The checkout's view: its service, port, live status and a link; release asks first.
    // A temp file of a killed writer, for doctor to find.
    std::fs::write(home.path().join(".state.json.kiLLed.tmp"), "").unwrap();
    click(&client, "nav button[data-tab=checkouts]").await;
    let row = until(
        &client,
        "the checkout's row",
        &format!(
            r#"(() => {{ const tr = document.querySelector('#checkouts section[data-workspace="{root}"] tr[data-port="{viewed_port}"]');
                 return tr && tr.children[1].textContent && [tr.children[0].textContent, tr.children[1].textContent, tr.querySelector('.status').textContent, tr.querySelector('a')?.href]; }})()"#
        ),
    )
    .await;
    // Its env name and its `url` template, which the registry does not keep, come from its
    // manifest.
    assert_eq!(
        row,
        json!([
            "viewed",
            "VIEWED_PORT",
            format!("listening, pid {server_pid}"),
            format!("http://127.0.0.1:{viewed_port}/health")
        ])
    );

    // Health: doctor's findings with their fixes, and gc with a preview first.
    let finding = until(
        &client,
        "doctor's finding",
        "document.querySelector('#findings li[data-check=\"temp-files\"]')?.textContent",
    )
    .await;
    assert!(
        finding.as_str().unwrap().contains("fix: `cargo styxy gc`"),
        "{finding}"
    );
    click(&client, "#gc-preview").await;
    let preview = until(
        &client,
        "gc's preview",
        "document.querySelector('#gc-list')?.textContent",
    )
    .await;
    assert!(preview.as_str().unwrap().contains("is gone"), "{preview}");
    assert_eq!(home.holders("gone").len(), 1, "dropped by the preview");
    click(&client, "#gc-actions button.danger").await;
    until(
        &client,
        "gc's report",
        "document.querySelector('#gc-actions .done')?.textContent",
    )
    .await;
    let left = home.json(&["list", "gone"]);
    assert!(
        left["service_types"].as_array().unwrap().is_empty(),
        "gc kept the gone checkout: {left}"
    );
    let release = format!(r#"#checkouts section[data-workspace="{root}"] .actions button"#);
    click(&client, &release).await;
    let ask = until(
        &client,
        "the release confirmation",
        &format!(r#"document.querySelector('#checkouts section[data-workspace="{root}"] .confirm')?.textContent"#),
    )
    .await;
    assert!(
        ask.as_str().unwrap().contains("Release the 1 port of"),
        "{ask}"
    );
    assert_eq!(
        home.holders("viewed").len(),
        1,
        "released before confirming"
    );
    click(&client, &format!("{release}.danger")).await;
    until(
        &client,
        "the released checkout",
        &format!(r#"!document.querySelector('#checkouts section[data-workspace="{root}"]')"#),
    )
    .await;
    // Its port is free again, and its auto-allocated type, left empty, is gone.
    let listed = home.json(&["list", "viewed"]);
    assert!(
        listed["service_types"].as_array().unwrap().is_empty(),
        "{listed}"
    );

    // A type added through the form reaches the registry.
    click(&client, "nav button[data-tab=types]").await;
    type_into(&client, "#type-form input[name=name]", "from-browser").await;
    type_into(&client, "#type-form input[name=ranges]", "23000-23009").await;
    click(&client, "#type-form button[type=submit]").await;
    until(
        &client,
        "the new row",
        "document.querySelector('#types-table tr[data-type=\"from-browser\"]')",
    )
    .await;
    let list = home.json(&["list", "from-browser"]);
    assert_eq!(list["service_types"][0]["ranges"], json!([[23000, 23009]]));
    // The same validation as the CLI, shown inline.
    type_into(&client, "#type-form input[name=name]", "overlapping").await;
    type_into(&client, "#type-form input[name=ranges]", "23005-23020").await;
    click(&client, "#type-form button[type=submit]").await;
    let err = until(
        &client,
        "the type error",
        "document.querySelector('#type-error').textContent",
    )
    .await;
    assert!(
        err.as_str().unwrap().contains("overlaps 23000-23009"),
        "{err}"
    );

    // Typing into a range while another process changes the registry: the text and the
    // focus survive the live update, and the row says what changed underneath.
    let field =
        r#"#types-table tr[data-type="from-browser"] input[aria-label="ranges of from-browser"]"#;
    type_into(&client, field, "23000-23019").await;
    let revision = |client: &fantoccini::Client| {
        let client = client.clone();
        async move {
            client
                .execute("return +document.body.dataset.revision;", vec![])
                .await
                .unwrap()
                .as_u64()
                .unwrap()
        }
    };
    let seen = revision(&client).await;
    home.ok(&["type", "set", "from-browser", "--range", "23000-23014"]);
    until(
        &client,
        "the live update",
        &format!("+document.body.dataset.revision > {seen}"),
    )
    .await;
    let kept = client
        .execute(
            &format!(
                "const f = document.querySelector('{field}'); return [f.value, document.activeElement === f, f.closest('tr').querySelector('.row-note').textContent];"
            ),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(kept[0], "23000-23019", "{kept}");
    assert_eq!(kept[1], true, "the field lost its focus: {kept}");
    assert!(
        kept[2].as_str().unwrap().contains("now 23000-23014"),
        "{kept}"
    );
    // A rejected save shows its error beside the field, not at the top of the table.
    type_into(&client, field, "9-1").await;
    click(
        &client,
        r#"#types-table tr[data-type="from-browser"] td.actions button"#,
    )
    .await;
    let err = until(
        &client,
        "the row's error",
        r#"document.querySelector('#types-table tr[data-type="from-browser"] .row-error').textContent"#,
    )
    .await;
    assert!(err.as_str().unwrap().contains("9-1"), "{err}");
    assert_eq!(
        home.json(&["list", "from-browser"])["service_types"][0]["ranges"],
        json!([[23000, 23014]])
    );
    // Remove asks first, saying what goes with the type; one click removes nothing.
    let remove = r#"#types-table tr[data-type="from-cli"] button.danger"#;
    click(&client, remove).await;
    let ask = until(
        &client,
        "the confirmation",
        r#"document.querySelector('#types-table tr[data-type="from-cli"] .confirm')?.textContent"#,
    )
    .await;
    assert!(
        ask.as_str()
            .unwrap()
            .contains("Remove from-cli and its 1 instance"),
        "{ask}"
    );
    let still = home.json(&["list", "from-cli"]);
    assert_eq!(still["service_types"].as_array().unwrap().len(), 1);
    click(&client, remove).await;
    until(
        &client,
        "the removed row",
        r#"!document.querySelector('#types-table tr[data-type="from-cli"]')"#,
    )
    .await;
    let gone = home.json(&["list", "from-cli"]);
    assert!(gone["service_types"].as_array().unwrap().is_empty());

    // The audit view filters.
    click(&client, "nav button[data-tab=audit]").await;
    type_into(&client, "#audit-form input[name=service]", "from-cli").await;
    click(&client, "#audit-form button[type=submit]").await;
    let rows = until(
        &client,
        "the filtered audit",
        "(() => { const r = [...document.querySelectorAll('#audit-table tbody tr')].map(tr => tr.children[2].textContent); return r.length >= 2 && r; })()",
    )
    .await;
    // Its allocation, and its removal above.
    let rows = rows.as_array().unwrap();
    assert!(
        rows.len() >= 3 && rows.iter().all(|r| r == "from-cli"),
        "{rows:?}"
    );
    // One page of records: neither "older" nor "newer" leads anywhere.
    let paging = client
        .execute(
            "return [document.querySelector('#audit-next').disabled, document.querySelector('#audit-prev').disabled];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(paging, json!([true, true]));
    // A filter that cannot be read: its error, and no stale rows under it.
    type_into(&client, "#audit-form input[name=since]", "yesterday-ish").await;
    click(&client, "#audit-form button[type=submit]").await;
    let err = until(
        &client,
        "the audit filter error",
        "document.querySelector('#audit-error').textContent",
    )
    .await;
    assert!(err.as_str().unwrap().contains("yesterday-ish"), "{err}");
    let left = client
        .execute(
            "return document.querySelectorAll('#audit-table tbody tr').length;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(left, json!(0));
    // Live: a change by another process shows on the open first page, unasked.
    type_into(&client, "#audit-form input[name=since]", "").await;
    type_into(&client, "#audit-form input[name=service]", "live-*").await;
    click(&client, "#audit-form button[type=submit]").await;
    until(
        &client,
        "the empty filter",
        "document.querySelector('#audit-page').textContent === 'no records'",
    )
    .await;
    home.ok(&["allocate", "--service", "live-one", "--instance", "x"]);
    until(
        &client,
        "the live audit rows",
        "document.querySelectorAll('#audit-table tbody tr').length >= 2",
    )
    .await;
    // The tab and the filters are in the URL: a reload opens the same view.
    let here = client.current_url().await.unwrap();
    assert!(
        here.fragment()
            .is_some_and(|f| f.starts_with("audit?") && f.contains("service=live-*")),
        "{here}"
    );
    client.refresh().await.unwrap();
    let view = until(
        &client,
        "the same view after a reload",
        "!document.querySelector('#tab-audit').hidden && document.querySelectorAll('#audit-table tbody tr').length >= 2 && document.querySelector('#audit-form input[name=service]').value",
    )
    .await;
    assert_eq!(view, json!("live-*"));

    // Metrics: charts of the past from the audit trail, so a reload keeps it; the span's use
    // on a 0-100 % scale; the last point is the registry as it is now.
    client
        .goto(&format!(
            "{}#metrics?span=1h",
            url.split('?').next().unwrap()
        ))
        .await
        .unwrap();
    client.refresh().await.unwrap();
    let drawn = until(
        &client,
        "the four charts",
        "document.querySelectorAll('#charts .chart canvas').length === 4 && charts.allocations && charts.allocations.data[0].length",
    )
    .await;
    assert_eq!(drawn, json!(60), "intervals in the last hour");
    let assigned = home
        .json(&["audit", "--event", "INSTANCE_ASSIGNED"])
        .as_array()
        .unwrap()
        .len();
    let instances: usize = home.json(&["list"])["service_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["instances"].as_array().unwrap().len())
        .sum();
    let metrics = home.ok(&["metrics"]);
    let ratio: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("styxy_port_space_utilization_ratio "))
        .unwrap()
        .parse()
        .unwrap();
    let charted = client
        .execute(
            r#"const sum = a => a.reduce((x, y) => x + (y || 0), 0), last = a => a[a.length - 1];
               const u = charts.utilization;
               return [sum(charts.allocations.data[1]), last(charts.instances.data[1]),
                       u.scales.y.min, u.scales.y.max, last(u.data[1]),
                       [...document.querySelectorAll('#chart-lock .u-legend .u-label')].map(l => l.textContent)];"#,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(charted[0], json!(assigned), "assignments charted");
    assert_eq!(charted[1], json!(instances), "instances now");
    assert_eq!(
        (charted[2].clone(), charted[3].clone()),
        (json!(0), json!(100))
    );
    let charted_ratio = charted[4].as_f64().unwrap() / 100.0;
    assert!(
        (charted_ratio - ratio).abs() < 1e-9,
        "{charted_ratio} vs {ratio}"
    );
    assert_eq!(
        charted[5],
        json!(["time", "mean wait", "longest wait", "mean hold"])
    );

    // An invalid setting is refused with its error inline, and nothing is saved.
    let before = home.read();
    click(&client, "nav button[data-tab=settings]").await;
    type_into(&client, "#settings-form input[name=chunk_size]", "-5").await;
    click(&client, "#settings-form button[type=submit]").await;
    let err = until(
        &client,
        "the settings error",
        "document.querySelector('#settings-error').textContent",
    )
    .await;
    assert!(err.as_str().unwrap().contains("chunk_size"), "{err}");
    assert_eq!(home.read(), before);
    // The audit trail's settings are there too.
    type_into(&client, "#settings-form input[name=chunk_size]", "10").await;
    type_into(&client, "#settings-form input[name=audit_files]", "5").await;
    click(&client, "#settings-form button[type=submit]").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while home.json(&["config", "show"])["settings"]["audit_files"] != 5 {
        assert!(Instant::now() < deadline, "audit_files was never saved");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Restoring a backup of registry.toml: asked first, then the file is that version.
    let backups = home.json(&["config", "restore", "--list"]);
    let oldest = std::path::PathBuf::from(
        backups
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .as_str()
            .unwrap(),
    );
    let name = oldest.file_name().unwrap().to_str().unwrap().to_owned();
    let button = format!(r#"#backups-table tr[data-backup="{name}"] button"#);
    until(
        &client,
        "the backups",
        &format!("document.querySelector('{button}')"),
    )
    .await;
    let before = home.config();
    assert_ne!(
        std::fs::read_to_string(&oldest).unwrap(),
        before,
        "a backup that differs"
    );
    click(&client, &button).await;
    assert_eq!(home.config(), before, "restored before confirming");
    click(&client, &format!("{button}.danger")).await;
    until(
        &client,
        "the restored backup",
        "document.querySelector('#backup-note').textContent || document.querySelector('#backup-error').textContent",
    )
    .await;
    assert_eq!(
        home.config(),
        std::fs::read_to_string(&oldest).unwrap(),
        "{}",
        client
            .execute(
                "return document.querySelector('#backup-error').textContent",
                vec![]
            )
            .await
            .unwrap()
    );

    // A restarted dashboard has a new token: the open tab says so plainly.
    let port = ui.port;
    drop(ui);
    let again = home.start_ui(port, &[], &[]);
    assert_eq!(again.port, port);
    let told = until(
        &client,
        "the restarted notice",
        "!document.querySelector('#restarted').hidden && document.querySelector('#restarted').textContent",
    )
    .await;
    assert!(told.as_str().unwrap().contains("cargo styxy ui"), "{told}");

    client.close().await.unwrap();
}
