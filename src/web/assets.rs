//! The page and the vendored charting library, embedded in the binary.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

use super::AppState;
use super::security;

const PAGE: &str = include_str!("../../templates/dashboard.html");
/// The charting library the metrics tab draws with (see its README for where it comes from).
const UPLOT_JS: &str = include_str!("../../templates/vendor/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../../templates/vendor/uplot/uPlot.min.css");

pub(super) async fn index(State(_): State<Arc<AppState>>, req: Request) -> Response {
    if security::query_token(&req).is_some() {
        return security::strip_token_redirect();
    }
    ([(header::CACHE_CONTROL, "no-store")], Html(PAGE)).into_response()
}

/// A vendored asset, cached by the browser for as long as this binary serves it.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "private, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

pub(super) async fn uplot_js() -> Response {
    asset("text/javascript; charset=utf-8", UPLOT_JS)
}

pub(super) async fn uplot_css() -> Response {
    asset("text/css; charset=utf-8", UPLOT_CSS)
}
