//! The dashboard's server: its shared state, the watcher that keeps every open page up to
//! date, and the HTTP/1 listeners with their connection cap and header timeout.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use serde_json::{Value, json};

use styxy::registry::Store;

use super::routes::router;

/// What every request handler shares.
#[derive(Debug)]
pub struct AppState {
    pub store: Store,
    pub token: String,
    pub port: u16,
    /// The latest dashboard state as JSON; the event stream sends every new one.
    pub state: tokio::sync::watch::Sender<String>,
    /// Woken when a page subscribes to the event stream: with none open, nothing polls.
    pub watched: tokio::sync::Notify,
}

/// Reads the registry afresh into `state.state` (for a page that asks while nobody watched).
pub(super) async fn refresh(state: &AppState) {
    let store = state.store.clone();
    if let Ok(fresh) = tokio::task::spawn_blocking(move || snapshot(&store).to_string()).await {
        state.state.send_if_modified(|s| {
            let changed = *s != fresh;
            if changed {
                *s = fresh;
            }
            changed
        });
    }
}

/// The whole picture the map and tables draw: the listing, rules, zones, the managed span,
/// the ephemeral range, and foreign listeners inside our ranges.
pub(super) fn snapshot(store: &Store) -> Value {
    let reg = match store.read() {
        Ok(reg) => reg,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    let machine = styxy::this_machine();
    let space = styxy::allocate::space(&reg, &machine);
    let listing = crate::observe::view::listing(&reg, |_, _| true);
    let foreign: Vec<Value> = styxy::probe::listening_ports()
        .map(|l| crate::observe::metrics::foreign_listeners(&reg, &l))
        .unwrap_or_default()
        .into_iter()
        .map(|(port, t)| json!({ "port": port, "service_type": t }))
        .collect();
    let zones: Vec<Value> = reg
        .strategies
        .iter()
        .flat_map(|(s, st)| {
            st.zones.iter().map(move |(z, b)| {
                json!({ "strategy": s, "name": z, "min_port": b.min_port, "max_port": b.max_port })
            })
        })
        .collect();
    json!({
        "registry": store.file(),
        "service_types": listing.service_types,
        "settings": listing.settings,
        "audit_events": styxy::model::Event::NAMES,
        "space": { "min_port": space.lo, "max_port": space.hi },
        "ephemeral": machine.ephemeral,
        "rules": reg.rules,
        "zones": zones,
        "foreign": foreign,
    })
}

/// Connections served at once, on all listeners: well under a default limit of 1,024 open
/// files (or a tight 256), so that slow clients cannot take the last file descriptor.
const MAX_CONNECTIONS: usize = 128;

/// How long a client may take to send a request's headers; a connection that sends none
/// in time is closed, and its slot goes to the next.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts connections while a slot is free (at the cap, new clients wait in the kernel's
/// queue until one ends) and serves each over HTTP/1 with a header-read timeout.
async fn accept(
    listener: tokio::net::TcpListener,
    app: Router,
    slots: Arc<tokio::sync::Semaphore>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors, or a connection reset before it was accepted: the
            // next accept may well succeed once a connection ends.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            // A client that goes away, or never finishes its headers, ends only its own.
            let _ = connection.await;
        });
    }
}

/// Serves the dashboard on `listeners` until Ctrl-C or SIGTERM, watching the registry so
/// that every open page updates within half a second of any process's change.
pub fn serve(
    store: Store,
    token: String,
    port: u16,
    listeners: Vec<std::net::TcpListener>,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Filled when a page first asks (`refresh`): nothing is read before.
        let (tx, _) = tokio::sync::watch::channel(String::new());
        let state = Arc::new(AppState {
            store,
            token,
            port,
            state: tx,
            watched: tokio::sync::Notify::new(),
        });
        // Polls the registry while a page watches, and sleeps while none does.
        let watcher = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(400));
            loop {
                if watcher.state.receiver_count() == 0 {
                    watcher.watched.notified().await;
                    tick.reset();
                }
                tick.tick().await;
                refresh(&watcher).await;
            }
        });
        let app = router(state);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let mut servers = Vec::new();
        for l in listeners {
            l.set_nonblocking(true)?;
            let l = tokio::net::TcpListener::from_std(l)?;
            servers.push(tokio::spawn(accept(l, app.clone(), slots.clone())));
        }
        let (stop, stopped) = tokio::sync::oneshot::channel();
        styxy::os::on_termination(move || {
            let _ = stop.send(());
        })?;
        let _ = stopped.await;
        for s in servers {
            s.abort();
        }
        Ok(())
    })
}
