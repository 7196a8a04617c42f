//! The local web dashboard (`cargo styxy ui`, spec §8): a live port map, service type
//! management, the audit trail, metrics and settings, served on 127.0.0.1 and `[::1]` only.
//! Every change goes through the same locked write path as the CLI.

pub mod security;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use styxy::allocate::manage::{self, TypeChange};
use styxy::allocate::{Event, Outcome};
use styxy::error::{AllocError, Error, StoreError};
use styxy::model::validate;
use styxy::model::{InstanceBehavior, Placement, PortRange, Registry, Rule, Strategy, Zone};
use styxy::registry::Store;

const PAGE: &str = include_str!("../../templates/dashboard.html");
/// The charting library the metrics tab draws with (see its README for where it comes from).
const UPLOT_JS: &str = include_str!("../../templates/vendor/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../../templates/vendor/uplot/uPlot.min.css");

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
async fn refresh(state: &AppState) {
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
pub fn snapshot(store: &Store) -> Value {
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

/// An error as the API answers it: status and `{"error": "…"}`.
struct ApiError(StatusCode, String);

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
async fn change<T: Send + 'static>(
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

async fn index(State(_): State<Arc<AppState>>, req: Request) -> Response {
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

async fn uplot_js() -> Response {
    asset("text/javascript; charset=utf-8", UPLOT_JS)
}

async fn uplot_css() -> Response {
    asset("text/css; charset=utf-8", UPLOT_CSS)
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TypeBody {
    name: Option<String>,
    #[serde(default)]
    ranges: Option<Vec<String>>,
    single: Option<bool>,
    preferred: Option<Vec<u16>>,
    description: Option<String>,
    max_instances: Option<u32>,
}

fn type_change(body: TypeBody) -> Result<TypeChange, ApiError> {
    let ranges = body
        .ranges
        .map(|rs| {
            rs.iter()
                .map(|r| validate::parse_range(r))
                .collect::<Result<Vec<PortRange>, AllocError>>()
        })
        .transpose()?;
    Ok(TypeChange {
        ranges,
        instance_behavior: body.single.map(|s| {
            if s {
                InstanceBehavior::Single
            } else {
                InstanceBehavior::Multi
            }
        }),
        preferred_ports: body.preferred,
        description: body.description,
        max_instances: body.max_instances,
    })
}

fn bad_json(e: axum::extract::rejection::JsonRejection) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e.body_text())
}

async fn add_type(
    State(state): State<Arc<AppState>>,
    body: Result<Json<TypeBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(bad_json)?;
    let name = body.name.clone().unwrap_or_default();
    let change_ = type_change(body)?;
    if change_.ranges.as_ref().is_none_or(Vec::is_empty) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "a new type needs a range, e.g. 20000-20009".into(),
        ));
    }
    let n = name.clone();
    change(&state, move |reg| manage::add_type(reg, &n, change_)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "service_type": name }))).into_response())
}

async fn set_type(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Result<Json<TypeBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(bad_json)?;
    let change_ = type_change(body)?;
    let n = name.clone();
    change(&state, move |reg| manage::set_type(reg, &n, change_)).await?;
    Ok(Json(json!({ "service_type": name })).into_response())
}

#[derive(Debug, Deserialize)]
struct Force {
    #[serde(default)]
    force: bool,
}

async fn remove_type(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<Force>,
) -> Result<Response, ApiError> {
    let n = name.clone();
    change(&state, move |reg| manage::remove_type(reg, &n, q.force)).await?;
    Ok(Json(json!({ "service_type": name, "removed": true })).into_response())
}

/// Every setting is validated before any is saved: one bad value saves nothing.
async fn set_settings(
    State(state): State<Arc<AppState>>,
    body: Result<Json<BTreeMap<String, Value>>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(bad_json)?;
    change(&state, move |reg| {
        let mut events = Vec::new();
        for (key, value) in &body {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            events.extend(manage::set_setting(reg, key, &text)?.events);
        }
        Ok(Outcome {
            value: (),
            events,
            warnings: Vec::new(),
        })
    })
    .await?;
    Ok(Json(json!({ "saved": true })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    pattern: String,
    chunk_size: Option<u16>,
    placement: Option<String>,
    preferred_range_start: Option<u16>,
    instance_behavior: Option<String>,
    zone: Option<String>,
}

async fn add_rule(
    State(state): State<Arc<AppState>>,
    body: Result<Json<RuleBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body.map_err(bad_json)?;
    let placement = b
        .placement
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(|p| {
            Placement::parse(p).ok_or_else(|| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("unknown placement {p:?}; use after, before or smart"),
                )
            })
        })
        .transpose()?;
    let instance_behavior = match b.instance_behavior.as_deref() {
        None | Some("") => None,
        Some("single") => Some(InstanceBehavior::Single),
        Some("multi") => Some(InstanceBehavior::Multi),
        Some(other) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("unknown instance behavior {other:?}; use single or multi"),
            ));
        }
    };
    let rule = Rule {
        chunk_size: b.chunk_size,
        placement,
        preferred_range_start: b.preferred_range_start,
        instance_behavior,
        zone: b.zone.filter(|z| !z.is_empty()),
    };
    let pattern = b.pattern.clone();
    change(&state, move |reg| manage::set_rule(reg, &pattern, rule)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "pattern": b.pattern }))).into_response())
}

async fn remove_rule(
    State(state): State<Arc<AppState>>,
    Path(pattern): Path<String>,
) -> Result<Response, ApiError> {
    let p = pattern.clone();
    change(&state, move |reg| manage::remove_rule(reg, &p)).await?;
    Ok(Json(json!({ "pattern": pattern, "removed": true })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseBody {
    /// The checkout whose instances go (its root, as `list` says `workspace`).
    workspace: String,
}

/// Frees every instance of a checkout, as `cargo styxy release --workspace` does there.
async fn release(
    State(state): State<Arc<AppState>>,
    body: Result<Json<ReleaseBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body.map_err(bad_json)?;
    let released = change(&state, move |reg| {
        styxy::allocate::release_where(reg, None, None, Some(&b.workspace))
    })
    .await?;
    Ok(Json(json!({ "released": released })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ZoneBody {
    strategy: String,
    name: String,
    min_port: u16,
    max_port: u16,
}

/// Removes a zone, refused while a rule or a type names it (their new ranges would have
/// nowhere to go).
async fn remove_zone(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let removed = name.clone();
    change(&state, move |reg| {
        let users: Vec<String> = reg
            .rules
            .iter()
            .filter(|(_, r)| r.zone.as_deref() == Some(name.as_str()))
            .map(|(p, _)| format!("rule {p:?}"))
            .chain(
                reg.types
                    .iter()
                    .filter(|(_, t)| t.zone.as_deref() == Some(name.as_str()))
                    .map(|(n, _)| format!("type {n:?}")),
            )
            .collect();
        if !users.is_empty() {
            return Err(AllocError::InvalidValue {
                what: "zone",
                value: name.clone(),
                reason: format!(
                    "{} place new ranges in it; change them first",
                    users.join(", ")
                ),
            });
        }
        let strategy = reg
            .strategies
            .iter()
            .find(|(_, st)| st.zones.contains_key(&name))
            .map(|(s, _)| s.clone())
            .ok_or_else(|| AllocError::UnknownZone { zone: name.clone() })?;
        let st = reg.strategies.get_mut(&strategy).expect("found above");
        st.zones.remove(&name);
        if st.zones.is_empty() {
            reg.strategies.remove(&strategy);
        }
        Ok(Outcome {
            value: (),
            events: vec![Event::ConfigChanged {
                key: format!("strategies.{strategy}.zones.{name}"),
                value: "removed".into(),
            }],
            warnings: Vec::new(),
        })
    })
    .await?;
    Ok(Json(json!({ "zone": removed, "removed": true })).into_response())
}

async fn set_zone(
    State(state): State<Arc<AppState>>,
    body: Result<Json<ZoneBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body.map_err(bad_json)?;
    let name = b.name.clone();
    change(&state, move |reg| {
        validate::name(&b.strategy)?;
        validate::name(&b.name)?;
        let mut next = reg.clone();
        for st in next.strategies.values_mut() {
            st.zones.remove(&b.name);
        }
        next.strategies
            .entry(b.strategy.clone())
            .or_insert_with(Strategy::default)
            .zones
            .insert(
                b.name.clone(),
                Zone {
                    min_port: b.min_port,
                    max_port: b.max_port,
                },
            );
        validate::definitions(&next).map_err(|invalid| AllocError::InvalidValue {
            what: "zone",
            value: b.name.clone(),
            reason: invalid.to_string(),
        })?;
        *reg = next;
        Ok(Outcome {
            value: (),
            events: vec![Event::ConfigChanged {
                key: format!("strategies.{}.zones.{}", b.strategy, b.name),
                value: format!("{}-{}", b.min_port, b.max_port),
            }],
            warnings: Vec::new(),
        })
    })
    .await?;
    Ok(Json(json!({ "zone": name })).into_response())
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
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

async fn audit(
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
    let (records, _) = blocking(move || Ok(styxy::audit::read(&dir))).await?;
    let mut picked: Vec<&styxy::audit::Record> =
        records.iter().filter(|r| filter.matches(r)).collect();
    picked.reverse();
    let total = picked.len();
    let offset = q.offset.unwrap_or(0).min(total);
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let page: Vec<&styxy::audit::Record> = picked.into_iter().skip(offset).take(limit).collect();
    Ok(Json(json!({ "total": total, "offset": offset, "records": page })).into_response())
}

/// Runs `f` off the async threads; a panic or a cancelled task is a 500.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, styxy::Error> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::from)
}

/// `GET /api/doctor`: `doctor`'s findings, each with its fix.
async fn doctor(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let report = blocking(move || Ok(crate::observe::health::check(&store))).await?;
    Ok(Json(report).into_response())
}

/// `GET /api/gc`: what `gc` would drop (`gc --dry-run`); `POST /api/gc` drops it.
async fn gc_preview(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    gc(&state, true).await
}

async fn gc_run(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let done = gc(&state, false).await;
    refresh(&state).await;
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
/// `readable` is false where the manifests are gone or cannot be read.
async fn checkouts(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
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
                    .iter()
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
                json!({ "workspace": root, "readable": services.is_some(), "services": listed })
            })
            .collect();
        Ok(checkouts)
    })
    .await?;
    Ok(Json(json!({ "checkouts": found })).into_response())
}

/// `GET /api/backups`: the backups of `registry.toml`, newest first, with their size and
/// time.
async fn backups(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
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
struct RestoreBody {
    /// A backup's name, as `GET /api/backups` lists it.
    backup: String,
}

/// `POST /api/restore`: replaces `registry.toml` with one of its backups, as `config
/// restore` does (the file replaced is kept as a backup). Only a listed backup is taken.
async fn restore(
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
struct HistoryQuery {
    /// How far back: `1h`, `24h`, `7d` (humantime); a day when left out.
    span: Option<String>,
    /// How many intervals; 60 when left out.
    buckets: Option<u32>,
}

/// `/api/history`: the charts' series over `span` (see [`crate::observe::metrics::History`]).
async fn history(
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
    let history = blocking(move || {
        let reg = store.read()?;
        let (records, _) = styxy::audit::read(store.dir());
        Ok(crate::observe::metrics::history(
            &reg,
            styxy::allocate::space(&reg, &styxy::this_machine()),
            &records,
            std::time::SystemTime::now(),
            span,
            buckets,
        ))
    })
    .await?;
    Ok(Json(history).into_response())
}

/// `/metrics`: OpenMetrics when the scraper asks for it (Prometheus sends
/// `Accept: application/openmetrics-text`), else the classic text format.
async fn metrics(
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

/// The routes, behind the security guard.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/api/state", get(api_state))
        .route("/api/events", get(events))
        .route("/api/types", post(add_type))
        .route("/api/types/{name}", put(set_type).delete(remove_type))
        .route("/api/settings", put(set_settings))
        .route("/api/rules", post(add_rule))
        .route("/api/rules/{pattern}", delete(remove_rule))
        .route("/api/zones", put(set_zone))
        .route("/api/zones/{name}", delete(remove_zone))
        .route("/api/release", post(release))
        .route("/api/audit", get(audit))
        .route("/metrics", get(metrics))
        .route("/api/history", get(history))
        .route("/api/doctor", get(doctor))
        .route("/api/gc", get(gc_preview).post(gc_run))
        .route("/api/checkouts", get(checkouts))
        .route("/api/backups", get(backups))
        .route("/api/restore", post(restore))
        .route("/assets/uPlot.min.js", get(uplot_js))
        .route("/assets/uPlot.min.css", get(uplot_css))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::guard,
        ))
        .with_state(state)
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
