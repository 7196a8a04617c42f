//! What every request handler shares: the registry, the token, and the latest picture of
//! the registry that the event stream sends to every open page.

use serde_json::{Value, json};

use styxy::registry::Store;

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
    /// Held by the one `/api/history` request reading the trail.
    pub history_pass: tokio::sync::Mutex<()>,
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
        "ephemeral": space.ephemeral,
        "rules": reg.rules,
        "zones": zones,
        "foreign": foreign,
    })
}
