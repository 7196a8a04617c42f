//! The handlers that change the registry: types, settings, rules, zones, releases.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use styxy::allocate::manage;
use styxy::allocate::{Event, Outcome};
use styxy::error::AllocError;
use styxy::model::validate;
use styxy::model::{InstanceBehavior, Placement, Rule, Strategy, TypeFields, Zone};

use super::{ApiError, bad_json, change};
use crate::web::AppState;

/// A type as the API takes it: its name (for `POST`) and its fields, as `registry.toml`'s
/// `[types.NAME]` tables and `type add|set` have them. Read in two steps, not with serde's
/// `flatten`, which would let an unknown field pass unnoticed.
#[derive(Debug)]
pub(super) struct TypeBody {
    name: Option<String>,
    fields: TypeFields,
}

impl<'de> Deserialize<'de> for TypeBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut body = serde_json::Map::deserialize(d)?;
        let name = match body.remove("name") {
            None => None,
            Some(serde_json::Value::String(name)) => Some(name),
            Some(other) => return Err(D::Error::custom(format!("name: not a string: {other}"))),
        };
        let fields =
            TypeFields::deserialize(serde_json::Value::Object(body)).map_err(D::Error::custom)?;
        Ok(Self { name, fields })
    }
}

pub(super) async fn add_type(
    State(state): State<Arc<AppState>>,
    body: Result<Json<TypeBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(bad_json)?;
    let name = body.name.unwrap_or_default();
    let fields = body.fields;
    if fields.ranges.as_ref().is_none_or(Vec::is_empty) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "a new type needs a range, e.g. 20000-20009".into(),
        ));
    }
    let n = name.clone();
    change(&state, move |reg| manage::add_type(reg, &n, fields)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "service_type": name }))).into_response())
}

pub(super) async fn set_type(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Result<Json<TypeBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(bad_json)?;
    let n = name.clone();
    change(&state, move |reg| manage::set_type(reg, &n, body.fields)).await?;
    Ok(Json(json!({ "service_type": name })).into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct Force {
    #[serde(default)]
    force: bool,
}

pub(super) async fn remove_type(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<Force>,
) -> Result<Response, ApiError> {
    let n = name.clone();
    change(&state, move |reg| manage::remove_type(reg, &n, q.force)).await?;
    Ok(Json(json!({ "service_type": name, "removed": true })).into_response())
}

/// Every setting is validated before any is saved: one bad value saves nothing.
pub(super) async fn set_settings(
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
pub(super) struct RuleBody {
    pattern: String,
    chunk_size: Option<u16>,
    placement: Option<String>,
    preferred_range_start: Option<u16>,
    instance_behavior: Option<String>,
    zone: Option<String>,
}

pub(super) async fn add_rule(
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

pub(super) async fn remove_rule(
    State(state): State<Arc<AppState>>,
    Path(pattern): Path<String>,
) -> Result<Response, ApiError> {
    let p = pattern.clone();
    change(&state, move |reg| manage::remove_rule(reg, &p)).await?;
    Ok(Json(json!({ "pattern": pattern, "removed": true })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReleaseBody {
    /// The checkout whose instances go (its root, as `list` says `workspace`).
    workspace: String,
}

/// Frees every instance of a checkout, as `cargo styxy release --workspace` does there.
pub(super) async fn release(
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
pub(super) struct ZoneBody {
    strategy: String,
    name: String,
    min_port: u16,
    max_port: u16,
}

/// Removes a zone, refused while a rule or a type names it (their new ranges would have
/// nowhere to go).
pub(super) async fn remove_zone(
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

pub(super) async fn set_zone(
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
