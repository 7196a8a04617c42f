//! The handlers that read back (the audit trail, doctor, gc, checkouts, backups, history,
//! metrics) and the two that act on what they show (gc, restore).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use styxy::error::AllocError;
use styxy::model::validate;

use super::{ApiError, bad_json, blocking};
use crate::web::AppState;
use crate::web::state::refresh;

#[derive(Debug, Deserialize)]
pub(super) struct AuditQuery {
    event: Option<String>,
    service: Option<String>,
    instance: Option<String>,
    since: Option<String>,
    until: Option<String>,
    q: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

pub(super) async fn audit(
    State(state): State<Arc<AppState>>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let bad = |e: String| ApiError(StatusCode::BAD_REQUEST, e);
    let filter = styxy::audit::Filter {
        since: nonempty(q.since)
            .map(|s| styxy::audit::parse_time(&s))
            .transpose()
            .map_err(bad)?,
        until: nonempty(q.until)
            .map(|s| styxy::audit::parse_time(&s))
            .transpose()
            .map_err(bad)?,
        event: nonempty(q.event),
        service: nonempty(q.service)
            .map(|s| validate::pattern(&s))
            .transpose()?,
        instance: nonempty(q.instance)
            .map(|s| validate::pattern(&s))
            .transpose()?,
        text: nonempty(q.q),
    };
    let dir = state.store.dir().to_path_buf();
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let wanted = q.offset.unwrap_or(0).min(MAX_AUDIT_OFFSET);
    // Newest first: the page is among the last `offset + limit` matches, which are all that
    // is kept while the trail streams by.
    let (total, newest) = blocking(move || {
        let keep = wanted + limit;
        let mut newest = std::collections::VecDeque::with_capacity(keep.min(4096));
        let mut total = 0usize;
        styxy::audit::for_each(&dir, |r| {
            if filter.matches(&r) {
                total += 1;
                if newest.len() == keep {
                    newest.pop_front();
                }
                newest.push_back(r);
            }
        });
        Ok((total, newest))
    })
    .await?;
    let offset = wanted.min(total);
    let page: Vec<&styxy::audit::Record> = newest.iter().rev().skip(offset).take(limit).collect();
    Ok(Json(json!({ "total": total, "offset": offset, "records": page })).into_response())
}

/// The deepest page `/api/audit` serves: what it keeps while streaming is `offset + limit`
/// records.
const MAX_AUDIT_OFFSET: usize = 100_000;

/// `GET /api/doctor`: `doctor`'s findings, each with its fix.
pub(super) async fn doctor(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let report = blocking(move || Ok(crate::observe::health::check(&store))).await?;
    Ok(Json(report).into_response())
}

/// `GET /api/gc`: what `gc` would drop (`gc --dry-run`); `POST /api/gc` drops it.
pub(super) async fn gc_preview(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    gc(&state, true).await
}

/// What `POST /api/gc` may say: `{"dry_run": true}` only looks, as `GET` does. An empty
/// body drops.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GcBody {
    #[serde(default)]
    dry_run: bool,
}

pub(super) async fn gc_run(
    State(state): State<Arc<AppState>>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body: GcBody = if body.iter().all(u8::is_ascii_whitespace) {
        GcBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("the body is not {{\"dry_run\": true|false}}: {e}"),
            )
        })?
    };
    let done = gc(&state, body.dry_run).await;
    if !body.dry_run {
        refresh(&state).await;
    }
    done
}

async fn gc(state: &AppState, dry_run: bool) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let out = blocking(move || styxy::gc::gc(&store, dry_run)).await?;
    Ok(
        Json(json!({ "dry_run": dry_run, "dropped": out.value, "warnings": out.warnings }))
            .into_response(),
    )
}

/// `GET /api/checkouts`: each checkout's services as its manifests say now (read without
/// cargo): env names and the `url` template with the port the registry gives it.
/// `readable` is false where the manifests cannot be read or are invalid, and `error` says
/// why.
pub(super) async fn checkouts(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let found = blocking(move || {
        let reg = store.read()?;
        let mut roots: BTreeMap<String, BTreeMap<(String, String), u16>> = BTreeMap::new();
        for (name, t) in &reg.types {
            for (id, i) in t.instances.iter() {
                if let Some(ws) = i.workspace(id) {
                    roots
                        .entry(ws.to_owned())
                        .or_default()
                        .insert((name.clone(), id.clone()), i.port);
                }
            }
        }
        let checkouts: Vec<Value> = roots
            .into_iter()
            .map(|(root, ports)| {
                let services = styxy::workspace::services_at(std::path::Path::new(&root));
                let listed: Vec<Value> = services
                    .as_ref()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| {
                        let port = *ports.get(&(s.service_type.clone(), s.instance.clone()))?;
                        Some(json!({
                            "service_type": s.service_type,
                            "instance": s.instance,
                            "package": s.package,
                            "bin": s.bin,
                            "env": s.env,
                            "url": s.url_with(port),
                        }))
                    })
                    .collect();
                let error = services.as_ref().err().map(ToString::to_string);
                json!({
                    "workspace": root,
                    "readable": error.is_none(),
                    "error": error,
                    "services": listed,
                })
            })
            .collect();
        Ok(checkouts)
    })
    .await?;
    Ok(Json(json!({ "checkouts": found })).into_response())
}

/// `GET /api/backups`: the backups of `registry.toml`, newest first, with their size and
/// time.
pub(super) async fn backups(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let list = blocking(move || {
        Ok(store
            .backups()
            .iter()
            .filter_map(|b| {
                let meta = std::fs::metadata(b).ok()?;
                let modified = meta
                    .modified()
                    .ok()
                    .map(|t| humantime::format_rfc3339_seconds(t).to_string());
                Some(json!({
                    "name": b.file_name()?.to_str()?,
                    "bytes": meta.len(),
                    "modified": modified,
                }))
            })
            .collect::<Vec<Value>>())
    })
    .await?;
    Ok(Json(json!({ "backups": list })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RestoreBody {
    /// A backup's name, as `GET /api/backups` lists it.
    backup: String,
}

/// `POST /api/restore`: replaces `registry.toml` with one of its backups, as `config
/// restore` does (the file replaced is kept as a backup). Only a listed backup is taken.
pub(super) async fn restore(
    State(state): State<Arc<AppState>>,
    body: Result<Json<RestoreBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body.map_err(bad_json)?;
    let store = state.store.clone();
    let restored = blocking(move || {
        let chosen = store
            .backups()
            .into_iter()
            .find(|p| p.file_name().and_then(|n| n.to_str()) == Some(b.backup.as_str()))
            .ok_or_else(|| {
                styxy::Error::from(AllocError::InvalidValue {
                    what: "backup",
                    value: b.backup.clone(),
                    reason: "no such backup; see GET /api/backups".into(),
                })
            })?;
        styxy::registry::restore(&store, Some(&chosen)).map(|changed| changed.value)
    })
    .await?;
    refresh(&state).await;
    Ok(Json(json!({ "restored": restored })).into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct HistoryQuery {
    /// How far back: `1h`, `24h`, `7d` (humantime); a day when left out.
    span: Option<String>,
    /// How many intervals; 60 when left out.
    buckets: Option<u32>,
}

/// `/api/history`: the charts' series over `span` (see [`crate::observe::metrics::History`]).
pub(super) async fn history(
    State(state): State<Arc<AppState>>,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, ApiError> {
    let span = match nonempty(q.span) {
        None => Duration::from_secs(86_400),
        Some(s) => humantime::parse_duration(&s)
            .ok()
            .filter(|d| (60..=366 * 86_400).contains(&d.as_secs()))
            .ok_or_else(|| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("span {s:?} is not a time span between 1m and 366d (1h, 24h, 7d)"),
                )
            })?,
    };
    let buckets = q.buckets.unwrap_or(60).clamp(1, 1000);
    let store = state.store.clone();
    // One pass over the trail at a time, whatever the number of requests: memory is one
    // window's records, not one per request.
    let _one_at_a_time = state.history_pass.lock().await;
    let history = blocking(move || {
        let reg = store.read()?;
        let now = std::time::SystemTime::now();
        let from = now.checked_sub(span).unwrap_or(std::time::UNIX_EPOCH);
        // Only the window's records count (the counts fall in it; the walk back from now
        // undoes only what happened in it).
        let mut records = Vec::new();
        styxy::audit::for_each(store.dir(), |r| {
            if r.time().is_some_and(|t| t > from) {
                records.push(r);
            }
        });
        Ok(crate::observe::metrics::history(
            &reg,
            styxy::allocate::space(&reg, &styxy::this_machine()),
            &records,
            now,
            span,
            buckets,
        ))
    })
    .await?;
    Ok(Json(history).into_response())
}

/// `/metrics`: OpenMetrics when the scraper asks for it (Prometheus sends
/// `Accept: application/openmetrics-text`), else the classic text format.
pub(super) async fn metrics(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let exposition = if headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"))
    {
        crate::observe::metrics::Exposition::OpenMetrics
    } else {
        crate::observe::metrics::Exposition::Classic
    };
    let store = state.store.clone();
    let text = blocking(move || crate::observe::metrics::of_store(&store, exposition)).await?;
    Ok(([(header::CONTENT_TYPE, exposition.content_type())], text).into_response())
}
