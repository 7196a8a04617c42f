//! Releasing instances: the ones a request names, with the auto-allocated types they leave
//! empty.

use serde::Serialize;

use super::{Event, Outcome};
use crate::error::{AllocError, AllocResult as Result};
use crate::model::{Origin, Registry};

/// One freed instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Released {
    pub service_type: String,
    pub instance: String,
    pub port: u16,
    /// The instance was the last of an auto-allocated type, which is gone with it.
    pub type_removed: bool,
}

/// Frees the instances that match: `instance` in `service_type`, every instance of
/// `service_type`, or `instance` in every type. An auto-allocated type left with no instances
/// is removed, so its range returns to free space.
pub fn release(
    reg: &mut Registry,
    service_type: Option<&str>,
    instance: Option<&str>,
) -> Result<Outcome<Vec<Released>>> {
    release_where(reg, service_type, instance, None)
}

/// [`release`], further narrowed to the instances of the checkout `workspace` when given.
pub fn release_where(
    reg: &mut Registry,
    service_type: Option<&str>,
    instance: Option<&str>,
    workspace: Option<&str>,
) -> Result<Outcome<Vec<Released>>> {
    if let Some(name) = service_type
        && !reg.types.contains_key(name)
    {
        return Err(AllocError::UnknownType {
            name: name.to_owned(),
            hint: "see `cargo styxy list` for the types".into(),
        });
    }
    let mut out: Outcome<Vec<Released>> = Outcome::default();
    // Found first, so that only the types that lose an instance are copied (see `Types`).
    let found: Vec<(String, Vec<String>)> = reg
        .types
        .iter()
        .filter(|(n, _)| service_type.is_none_or(|s| s == n.as_str()))
        .filter_map(|(name, t)| {
            let ids: Vec<String> = t
                .instances
                .iter()
                .filter(|(id, _)| instance.is_none_or(|i| i == id.as_str()))
                .filter(|(id, i)| workspace.is_none_or(|w| i.workspace(id) == Some(w)))
                .map(|(id, _)| id.clone())
                .collect();
            (!ids.is_empty()).then(|| (name.clone(), ids))
        })
        .collect();
    for (name, ids) in found {
        let t = reg.types.get_mut(&name).expect("listed above");
        for id in &ids {
            let gone = t.instances.remove(id).expect("listed above");
            let port = gone.port;
            out.events.push(Event::InstanceReleased {
                service_type: name.clone(),
                instance: id.clone(),
                port,
                workspace: gone.workspace(id).map(str::to_owned),
            });
            out.value.push(Released {
                service_type: name.clone(),
                instance: id.clone(),
                port,
                type_removed: false,
            });
        }
        if t.origin == Origin::Auto && t.instances.is_empty() {
            let t = reg.types.remove(&name).expect("present");
            out.events.push(Event::TypeRemoved {
                service_type: name.clone(),
                ranges: t.ranges,
            });
            if let Some(last) = out.value.last_mut() {
                last.type_removed = true;
            }
        }
    }
    if out.value.is_empty() {
        let what = match (service_type, instance, workspace) {
            (_, _, Some(w)) => format!("the checkout {w} holds no port"),
            (Some(s), Some(i), None) => format!("instance {i:?} holds no port in {s:?}"),
            (Some(s), None, None) => format!("{s:?} has no instances"),
            (None, Some(i), None) => format!("instance {i:?} holds no port"),
            (None, None, None) => "nothing to release".to_owned(),
        };
        return Err(AllocError::NothingToRelease { what });
    }
    Ok(out)
}
