//! The dashboard's server: the watcher that keeps every open page up to date, and the
//! HTTP/1 listeners with their connection cap (the oldest idle or slow connection makes
//! room for a new one), header and body timeouts.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;

use styxy::registry::Store;

use super::routes::router;
use super::state::{AppState, refresh};

/// Connections served at once, on all listeners: well under a default limit of 1,024 open
/// files (or a tight 256), so that slow clients cannot take the last file descriptor.
const MAX_CONNECTIONS: usize = 128;

/// How long a client may take to send a request's headers; a connection that sends none
/// in time is closed.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a client may take to send a request's body, and the most it may send.
const BODY_TIMEOUT: Duration = Duration::from_secs(5);
const BODY_LIMIT: usize = 1 << 20;

/// Whether a connection has a request being worked on: its headers and body in, its
/// response not yet sent in full. Only such a connection is safe from [`Connections`]'s
/// eviction.
#[derive(Debug, Clone, Default)]
pub(super) struct Working(Arc<AtomicBool>);

/// The connections being served, oldest first. At the cap, a new client is served in
/// place of the oldest connection that is not [`Working`] (idle, or still sending its
/// request): a flood of idle or slow clients delays nobody's real request.
#[derive(Debug, Default)]
struct Connections(Mutex<VecDeque<(u64, Working, tokio::task::AbortHandle)>>);

impl Connections {
    /// Room for one more: ends the oldest connection with nothing being worked on if the
    /// cap is reached. False when every connection is at work.
    fn make_room(&self) -> bool {
        let Ok(mut live) = self.0.lock() else {
            return false;
        };
        if live.len() < MAX_CONNECTIONS {
            return true;
        }
        let Some(i) = live
            .iter()
            .position(|(_, w, _)| !w.0.load(Ordering::SeqCst))
        else {
            return false;
        };
        if let Some((_, _, task)) = live.remove(i) {
            task.abort();
        }
        true
    }

    fn add(&self, id: u64, working: Working, task: tokio::task::AbortHandle) {
        if let Ok(mut live) = self.0.lock() {
            live.push_back((id, working, task));
        }
    }

    fn remove(&self, id: u64) {
        if let Ok(mut live) = self.0.lock() {
            live.retain(|(i, _, _)| *i != id);
        }
    }
}

/// Accepts every connection (making room at the cap, see [`Connections`]) and serves each
/// over HTTP/1 with a header-read timeout.
async fn accept(listener: tokio::net::TcpListener, app: Router, live: Arc<Connections>) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let mut next_id = 0u64;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors, or a connection reset before it was accepted: the
            // next accept may well succeed once a connection ends.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if !live.make_room() {
            continue; // Every connection is at work: this one is closed.
        }
        next_id += 1;
        let id = next_id;
        let working = Working::default();
        let app = app
            .clone()
            .layer(axum::middleware::from_fn(mark_working))
            .layer(axum::Extension(working.clone()));
        let service = hyper_util::service::TowerToHyperService::new(app);
        let ended = live.clone();
        // The runtime has one thread: the task cannot run (and end) before it is added.
        let task = tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            // A client that goes away, or never finishes its request, ends only its own.
            let _ = connection.await;
            ended.remove(id);
        });
        live.add(id, working, task.abort_handle());
    }
}

/// Reads the request's body in full (within [`BODY_TIMEOUT`] and [`BODY_LIMIT`]), then
/// marks the connection [`Working`] until the response's body is sent or dropped.
async fn mark_working(
    axum::Extension(working): axum::Extension<Working>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let (parts, body) = request.into_parts();
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, BODY_LIMIT))
        .await
    {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                "the body is larger than 1 MiB",
            )
                .into_response();
        }
        Err(_) => {
            return (StatusCode::REQUEST_TIMEOUT, "the body took longer than 5 s").into_response();
        }
    };
    working.0.store(true, Ordering::SeqCst);
    let done = Done(working);
    let response = next
        .run(axum::extract::Request::from_parts(
            parts,
            axum::body::Body::from(bytes),
        ))
        .await;
    let (parts, body) = response.into_parts();
    axum::response::Response::from_parts(parts, axum::body::Body::new(Finish { body, done }))
}

/// Clears [`Working`] when dropped.
struct Done(Working);

impl Drop for Done {
    fn drop(&mut self) {
        (self.0).0.store(false, Ordering::SeqCst);
    }
}

/// A response body that clears its connection's [`Working`] once sent (or dropped).
struct Finish {
    body: axum::body::Body,
    done: Done,
}

impl hyper::body::Body for Finish {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        if let std::task::Poll::Ready(None) = polled {
            (self.done.0).0.store(false, Ordering::SeqCst);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Serves the dashboard on `listeners` until Ctrl-C or SIGTERM (then returns at once,
/// leaving requests at work behind), watching the registry so that every open page updates
/// within half a second of any process's change.
pub fn serve(
    store: Store,
    token: String,
    port: u16,
    listeners: Vec<std::net::TcpListener>,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let served = runtime.block_on(async move {
        // Filled when a page first asks (`refresh`): nothing is read before.
        let (tx, _) = tokio::sync::watch::channel(String::new());
        let state = Arc::new(AppState {
            store,
            token,
            port,
            state: tx,
            watched: tokio::sync::Notify::new(),
            history_pass: tokio::sync::Mutex::new(()),
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
        let live = Arc::new(Connections::default());
        let mut servers = Vec::new();
        for l in listeners {
            l.set_nonblocking(true)?;
            let l = tokio::net::TcpListener::from_std(l)?;
            servers.push(tokio::spawn(accept(l, app.clone(), live.clone())));
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
    });
    // Whatever the requests are doing (a read of a huge trail on a blocking thread): the
    // process ends now, not when they do.
    runtime.shutdown_timeout(Duration::from_millis(200));
    served
}
