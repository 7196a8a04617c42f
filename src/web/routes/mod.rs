//! The routes behind the security guard, and what every handler shares: the error reply,
//! the change path off the async threads, the live state and its event stream.

mod edit;
mod read;

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde_json::json;

use styxy::allocate::Outcome;
use styxy::error::{AllocError, Error, StoreError};
use styxy::model::Registry;

use crate::web::security;
use crate::web::state::refresh;
use crate::web::{AppState, assets};

/// An error as the API answers it: status and `{"error": "…"}`.
pub(super) struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<AllocError> for ApiError {
    fn from(e: AllocError) -> Self {
        Self::from(Error::from(e))
    }
}

impl From<styxy::Error> for ApiError {
    fn from(e: styxy::Error) -> Self {
        let status = match e {
            Error::Store(StoreError::LockTimeout { .. } | StoreError::Io { .. }) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Error::Alloc(AllocError::UnknownType { .. } | AllocError::UnknownRule { .. }) => {
                StatusCode::NOT_FOUND
            }
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError(status, e.to_string())
    }
}

/// Runs `change` on the registry through the library's one change path, off the async
/// threads.
pub(super) async fn change<T: Send + 'static>(
    state: &AppState,
    change: impl FnOnce(&mut Registry) -> Result<Outcome<T>, AllocError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.store.clone();
    let done = blocking(move || {
        styxy::registry::change(&store, |c| {
            let out = change(c.registry)?;
            Ok::<_, styxy::Error>(c.apply(out))
        })
        .map(|changed| changed.value)
    })
    .await?;
    // The map updates at once for the browser that made the change.
    refresh(state).await;
    Ok(done)
}

async fn api_state(State(state): State<Arc<AppState>>) -> Response {
    refresh(&state).await;
    let body = state.state.borrow().clone();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn events(
    State(state): State<Arc<AppState>>,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    refresh(&state).await;
    let rx = state.state.subscribe();
    state.watched.notify_one();
    let stream = futures_util::stream::unfold((rx, true), |(mut rx, first)| async move {
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let data = rx.borrow_and_update().clone();
        Some((
            Ok(SseEvent::default().event("state").data(data)),
            (rx, false),
        ))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

pub(super) fn bad_json(e: axum::extract::rejection::JsonRejection) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e.body_text())
}

/// Runs `f` off the async threads; a panic or a cancelled task is a 500.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, styxy::Error> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::from)
}

/// The routes, behind the security guard.
pub(super) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/api/state", get(api_state))
        .route("/api/events", get(events))
        .route("/api/types", post(edit::add_type))
        .route(
            "/api/types/{name}",
            put(edit::set_type).delete(edit::remove_type),
        )
        .route("/api/settings", put(edit::set_settings))
        .route("/api/rules", post(edit::add_rule))
        .route("/api/rules/{pattern}", delete(edit::remove_rule))
        .route("/api/zones", put(edit::set_zone))
        .route("/api/zones/{name}", delete(edit::remove_zone))
        .route("/api/release", post(edit::release))
        .route("/api/audit", get(read::audit))
        .route("/metrics", get(read::metrics))
        .route("/api/history", get(read::history))
        .route("/api/doctor", get(read::doctor))
        .route("/api/gc", get(read::gc_preview).post(read::gc_run))
        .route("/api/checkouts", get(read::checkouts))
        .route("/api/backups", get(read::backups))
        .route("/api/restore", post(read::restore))
        .route("/assets/uPlot.min.js", get(assets::uplot_js))
        .route("/assets/uPlot.min.css", get(assets::uplot_css))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::guard,
        ))
        .with_state(state)
}
