//! The dashboard's server: the watcher that keeps every open page up to date, and the
//! HTTP/1 listeners with their connection cap and header timeout.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;

use styxy::registry::Store;

use super::routes::router;
use super::state::{AppState, refresh};

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
