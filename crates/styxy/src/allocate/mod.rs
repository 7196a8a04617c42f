//! The allocation engine (spec §4): pure functions from the registry *as read under the
//! lock* to the changed registry and the events that record the change. No files, no
//! clock; whether a port is listening comes in through [`Probe`].

pub mod gc;
pub mod leases;
pub mod manage;
pub mod place;
mod release;
pub mod slots;
mod tidy;

use serde::Serialize;

use crate::error::{AllocError, AllocResult as Result};

use crate::model::validate;
use crate::model::{
    Instance, InstanceBehavior, Origin, Placement, PortRange, Registry, Rule, ServiceType,
};

pub use crate::model::Event;
pub use place::Space;
pub use release::{Released, release, release_where};
pub use tidy::tidy;

/// Tells whether something listens on a port right now.
pub trait Probe {
    /// Whether a server could not take `port` now: the check before a port is handed out.
    fn is_listening(&self, port: u16) -> bool;

    /// The ports of `range` that something listens on now, lowest first: the check of a new
    /// range's ports. One port at a time unless the machine can list its listeners at once.
    fn listeners_in(&self, range: PortRange) -> Vec<u16> {
        (range.start..=range.end)
            .filter(|p| self.is_listening(*p))
            .collect()
    }
}

impl<F: Fn(u16) -> bool> Probe for F {
    fn is_listening(&self, port: u16) -> bool {
        self(port)
    }
}

/// Facts about this machine, read at the edge and passed in.
#[derive(Clone, Copy)]
pub struct Machine<'a> {
    /// The OS ephemeral port range (`crate::probe::ephemeral_range`), asked only when a
    /// range is placed: on Windows the answer costs a `netsh`.
    pub ephemeral: fn() -> Option<PortRange>,
    pub probe: &'a dyn Probe,
    /// Which of these checkout roots (absolute paths) have been removed from disk, one
    /// answer each (their instances give their ports back before an allocation places one
    /// in their type).
    pub checkouts_gone: fn(&[&str]) -> Vec<bool>,
}

impl std::fmt::Debug for Machine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine").finish_non_exhaustive()
    }
}

/// The highest port auto-allocation may use when `max_port` is not set.
pub const IANA_REGISTERED_MAX: u16 = 49151;

/// The span auto-allocation works in: `[min_port, max_port]`, where an unset `max_port`
/// means the lower of 49151 and the port below the ephemeral range.
pub fn space(reg: &Registry, machine: &Machine<'_>) -> Space {
    let ephemeral = (machine.ephemeral)();
    let default_hi = ephemeral.map_or(IANA_REGISTERED_MAX, |e| {
        e.start.saturating_sub(1).min(IANA_REGISTERED_MAX)
    });
    Space {
        lo: reg.settings.min_port.max(1024),
        hi: reg.settings.max_port.unwrap_or(default_hi),
        ephemeral,
    }
}

/// A request for an instance port.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    pub service_type: &'a str,
    pub instance: &'a str,
    pub workspace: Option<&'a str>,
    /// A wished-for port: taken when free (and, for a new type, its range starts there);
    /// otherwise a warning and the normal slot.
    pub port: Option<u16>,
    /// The wished-for port or an error naming what holds it, never another port.
    pub strict: bool,
    /// Recorded on a type this request creates.
    pub requested_by: Option<&'a str>,
    /// Instance behaviour of a type this request creates (a rule may also set it).
    pub instance_behavior: Option<InstanceBehavior>,
    /// The workspace service (`package/bin`) the instance is for, if any.
    pub service: Option<&'a str>,
    /// The zone a type this request creates is placed in (a rule may also name one).
    pub zone: Option<&'a str>,
}

/// What an allocation gave. Its JSON is the `allocate` output (spec §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub service_type: String,
    pub instance: String,
    pub port: u16,
    pub ranges: Vec<PortRange>,
    pub instance_behavior: InstanceBehavior,
    /// This request created the type.
    pub auto_allocated: bool,
    /// The instance already held this port; nothing changed.
    pub existing: bool,
}

/// The result of a registry change: what it gave, what it changed, what the user should hear.
#[derive(Debug, Clone, Default)]
pub struct Outcome<T> {
    pub value: T,
    pub events: Vec<Event>,
    pub warnings: Vec<String>,
}

/// The rule that applies to a type name: among the matching patterns, the longest (the most
/// specific) wins; equal lengths go to the pattern that sorts first.
pub fn rule_for<'r>(reg: &'r Registry, name: &str) -> Option<(&'r str, &'r Rule)> {
    reg.rules
        .iter()
        .filter(|(p, _)| glob::Pattern::new(p).is_ok_and(|g| g.matches(name)))
        .min_by_key(|(p, _)| std::cmp::Reverse(p.len()))
        .map(|(p, r)| (p.as_str(), r))
}

/// Known category words (Styxy's standard types) a name may contain.
const CATEGORY_WORDS: [&str; 18] = [
    "dev",
    "api",
    "database",
    "db",
    "auth",
    "functions",
    "ui",
    "hub",
    "storybook",
    "test",
    "proxy",
    "docs",
    "monitoring",
    "build",
    "infrastructure",
    "ai",
    "messaging",
    "coordination",
];

/// The categories of a type name, most specific first: the prefix before the first `-` or
/// `/`, then every known category word among its parts.
pub fn categories(name: &str) -> Vec<&str> {
    let mut parts = name.split(['-', '/', '_', '.']);
    let mut cats: Vec<&str> = Vec::new();
    if name.contains(['-', '/'])
        && let Some(prefix) = parts.next()
    {
        cats.push(prefix);
    }
    for part in name.split(['-', '/', '_', '.']) {
        if CATEGORY_WORDS.contains(&part) && !cats.contains(&part) {
            cats.push(part);
        }
    }
    cats
}

/// Ranges of other types that share a category with `name`, in category order then port.
fn category_ranges(reg: &Registry, name: &str) -> Vec<PortRange> {
    let mut out = Vec::new();
    for cat in categories(name) {
        let mut found: Vec<PortRange> = reg
            .types
            .iter()
            .filter(|(n, _)| n.as_str() != name && categories(n).contains(&cat))
            .flat_map(|(_, t)| t.ranges.iter().copied())
            .collect();
        found.sort_unstable();
        out.extend(found);
    }
    out
}

/// Finds a new range for type `name` by the settings and the matching rule, inside `zone`
/// when one is named. Returns the range, the placement and chunk used.
fn new_range(
    reg: &Registry,
    machine: &Machine<'_>,
    name: &str,
    exact_start: Option<u16>,
    zone: Option<&str>,
) -> Result<(PortRange, Placement, u16)> {
    let rule = rule_for(reg, name).map(|(_, r)| r);
    let chunk = rule
        .and_then(|r| r.chunk_size)
        .unwrap_or(reg.settings.chunk_size);
    let placement = rule
        .and_then(|r| r.placement)
        .unwrap_or(reg.settings.placement);
    let mut space = space(reg, machine);
    let zoned = match zone {
        Some(z) => {
            let (strategy, bounds) = reg
                .zone(z)
                .ok_or_else(|| AllocError::UnknownZone { zone: z.to_owned() })?;
            space.lo = bounds.min_port.max(1024);
            space.hi = bounds.max_port;
            Some((z, strategy))
        }
        None => None,
    };
    let existing: Vec<PortRange> = reg.all_ranges().into_iter().map(|(r, _)| r).collect();
    // Only `smart` looks at categories; the scan over every type is not free at 10,000.
    let cats = if placement == Placement::Smart {
        category_ranges(reg, name)
    } else {
        Vec::new()
    };
    let want = place::Want {
        name,
        chunk,
        gap: reg.settings.gap_size,
        placement,
        exact_start: None,
        min_start: rule.and_then(|r| r.preferred_range_start),
    };
    // In a zone, "after" and "before" are relative to the zone's own ranges; gaps are kept
    // from every range.
    let in_zone: Vec<PortRange> = existing
        .iter()
        .copied()
        .filter(|r| zoned.is_none() || (r.end >= space.lo && r.start <= space.hi))
        .collect();
    let pinned = exact_start.and_then(|p| {
        let exact = place::Want {
            exact_start: Some(p),
            ..want
        };
        place::place(&existing, &cats, space, exact, machine.probe)
    });
    let found = pinned
        .or_else(|| place::place_within(&existing, &in_zone, &cats, space, want, machine.probe));
    found
        .map(|r| (r, placement, chunk))
        .ok_or_else(|| match zoned {
            Some((z, strategy)) => AllocError::ZoneFull {
                zone: z.to_owned(),
                strategy: strategy.to_owned(),
                name: name.to_owned(),
                chunk,
                lo: space.lo,
                hi: space.hi,
                gap: reg.settings.gap_size,
            },
            None => AllocError::NoRoom {
                name: name.to_owned(),
                chunk,
                lo: space.lo,
                hi: space.hi,
                gap: reg.settings.gap_size,
            },
        })
}

/// Gives `req.instance` a port in `req.service_type`, creating the type (auto-allocation)
/// or growing it when needed. The same instance always gets the same port back.
pub fn allocate(
    reg: &mut Registry,
    machine: &Machine<'_>,
    req: &Request<'_>,
) -> Result<Outcome<Grant>> {
    validate::name(req.service_type)?;
    validate::instance(req.instance)?;
    let name = req.service_type;
    let mut events = Vec::new();
    let mut warnings = Vec::new();

    // Idempotence: an instance that holds a port keeps it.
    if let Some(t) = reg.types.get(name)
        && let Some(held) = t.instances.get(req.instance)
    {
        if req.strict
            && let Some(p) = req.port.filter(|p| *p != held.port)
        {
            return Err(pin_taken(
                req,
                p,
                format!(
                    "instance {:?} of {name:?} holds port {} already; release it with `cargo styxy release --service {name} --instance {}` to move it",
                    req.instance, held.port, req.instance
                ),
            ));
        }
        if let Some(p) = req.port.filter(|p| *p != held.port) {
            warnings.push(format!(
                "instance {:?} of {name:?} already holds port {}, not {p}; release it first to move it",
                req.instance, held.port
            ));
        }
        let grant = Grant {
            service_type: name.to_owned(),
            instance: req.instance.to_owned(),
            port: held.port,
            ranges: t.ranges.clone(),
            instance_behavior: t.instance_behavior,
            auto_allocated: false,
            existing: true,
        };
        return Ok(Outcome {
            value: grant,
            events,
            warnings,
        });
    }

    let mut created = false;
    if !reg.types.contains_key(name) {
        if !reg.settings.auto_allocate {
            return Err(AllocError::UnknownType {
                name: name.to_owned(),
                hint: format!(
                    "add it with `cargo styxy type add {name} --range A-B`, or turn auto-allocation on with `cargo styxy config set auto_allocate true`"
                ),
            });
        }
        let zone = req
            .zone
            .map(str::to_owned)
            .or_else(|| rule_for(reg, name).and_then(|(_, r)| r.zone.clone()));
        let (range, placement, chunk) = new_range(reg, machine, name, req.port, zone.as_deref())?;
        if req.strict
            && let Some(p) = req.port.filter(|p| range.start != *p)
        {
            return Err(pin_taken(req, p, holder_of(reg, machine, name, p)));
        }
        if let Some(p) = req.port.filter(|p| range.start != *p) {
            warnings.push(format!(
                "port {p} is not free for a new range of {name:?}; using {range} instead"
            ));
        }
        let behavior = req
            .instance_behavior
            .or_else(|| rule_for(reg, name).and_then(|(_, r)| r.instance_behavior))
            .unwrap_or_default();
        let mut t = ServiceType::new(vec![range], Origin::Auto);
        t.instance_behavior = behavior;
        t.requested_by = Some(req.requested_by.unwrap_or(req.instance).to_owned());
        t.zone = zone;
        reg.types.insert(name.to_owned(), t);
        events.push(Event::TypeAllocated {
            service_type: name.to_owned(),
            ranges: vec![range],
            placement: placement.as_str(),
            chunk,
        });
        created = true;
    }

    if !created {
        events.extend(release_removed_checkouts(reg, machine, name));
    }
    let max_instances = {
        let t = &reg.types[name];
        t.max_instances.unwrap_or(reg.settings.max_instances)
    };
    {
        let t = &reg.types[name];
        if t.instance_behavior == InstanceBehavior::Multi
            && t.instances.len() >= max_instances as usize
        {
            return Err(full_error(name, t));
        }
    }
    let elsewhere = reg.held_elsewhere(name);
    let picked = slots::pick(&reg.types[name], req.port, &elsewhere, machine.probe);
    if req.strict
        && let Some(p) = req.port.filter(|p| picked != Some(*p))
    {
        return Err(pin_taken(req, p, holder_of(reg, machine, name, p)));
    }
    let port = match picked {
        Some(p) => p,
        None => {
            let zone = reg.types[name].zone.clone();
            let (range, placement, chunk) = new_range(reg, machine, name, None, zone.as_deref())?;
            let t = reg.types.get_mut(name).expect("checked above");
            t.ranges.push(range);
            events.push(Event::TypeGrew {
                service_type: name.to_owned(),
                ranges: vec![range],
                placement: placement.as_str(),
                chunk,
            });
            slots::pick(t, None, &elsewhere, machine.probe).ok_or_else(|| full_error(name, t))?
        }
    };
    if let Some(p) = req.port.filter(|p| *p != port)
        && warnings.is_empty()
    {
        warnings.push(format!(
            "port {p} is not free in {name:?} ({}); using {port} instead",
            reg.types[name].ranges_text()
        ));
    }
    let t = reg.types.get_mut(name).expect("inserted or present");
    t.instances.insert(
        req.instance.to_owned(),
        Instance::new(req.instance, port, req.workspace, req.service),
    );
    events.push(Event::InstanceAssigned {
        service_type: name.to_owned(),
        instance: req.instance.to_owned(),
        port,
        workspace: req.workspace.map(str::to_owned),
    });
    Ok(Outcome {
        value: Grant {
            service_type: name.to_owned(),
            instance: req.instance.to_owned(),
            port,
            ranges: t.ranges.clone(),
            instance_behavior: t.instance_behavior,
            auto_allocated: created,
            existing: false,
        },
        events,
        warnings,
    })
}

/// Releases the instances of `name` whose checkout directory no longer exists: only
/// instances of a checkout (whose root is an absolute path), never one with an id of
/// another kind, and never one a lease holds. Each is a `GC` event with the reason.
fn release_removed_checkouts(reg: &mut Registry, machine: &Machine<'_>, name: &str) -> Vec<Event> {
    let Some(t) = reg.types.get_mut(name) else {
        return Vec::new();
    };
    let candidates: Vec<(String, String)> = t
        .instances
        .iter()
        .filter(|(id, _)| !t.leases.iter().any(|l| &l.instance == *id))
        .filter_map(|(id, i)| Some((id.clone(), i.workspace(id)?.to_owned())))
        .collect();
    if candidates.is_empty() {
        return Vec::new();
    }
    let roots: Vec<&str> = candidates.iter().map(|(_, root)| root.as_str()).collect();
    let gone = (machine.checkouts_gone)(&roots);
    candidates
        .into_iter()
        .zip(gone)
        .filter_map(|(candidate, gone)| gone.then_some(candidate))
        .filter_map(|(id, root)| {
            let i = t.instances.remove(&id)?;
            Some(Event::Gc {
                service_type: name.to_owned(),
                instance: Some(id),
                port: Some(i.port),
                reason: format!("its checkout {root} no longer exists"),
            })
        })
        .collect()
}

/// The audit event for a refused allocation, if the error is one (full, no room, unknown
/// type) rather than bad input.
pub fn failure_event(req: &Request<'_>, error: &AllocError) -> Option<Event> {
    matches!(
        error,
        AllocError::TypeFull { .. }
            | AllocError::NoRoom { .. }
            | AllocError::ZoneFull { .. }
            | AllocError::UnknownType { .. }
            | AllocError::PinTaken { .. }
    )
    .then(|| Event::AllocationFailed {
        service_type: req.service_type.to_owned(),
        instance: req.instance.to_owned(),
        error: error.to_string(),
    })
}

/// The refusal of a strict pin.
fn pin_taken(req: &Request<'_>, port: u16, holder: String) -> AllocError {
    AllocError::PinTaken {
        service: req.service.unwrap_or(req.service_type).to_owned(),
        port,
        holder,
    }
}

/// What keeps `port` from an instance of `name`: another instance, a listener, or the
/// type's ranges.
fn holder_of(reg: &Registry, machine: &Machine<'_>, name: &str, port: u16) -> String {
    let held = reg.types.iter().find_map(|(n, t)| {
        t.instances
            .iter()
            .find(|(_, i)| i.port == port)
            .map(|(id, _)| format!("instance {id:?} of {n:?} holds it"))
    });
    if let Some(held) = held {
        return held;
    }
    if machine.probe.is_listening(port) {
        return format!("something listens on it now (`cargo styxy check {port}` names it)");
    }
    match (reg.types.get(name), reg.owner_of(port)) {
        (_, Some((other, t))) if other != name => {
            format!("it lies in {other:?}'s ranges {}", t.ranges_text())
        }
        (Some(t), _) => format!("it is outside {name:?}'s ranges {}", t.ranges_text()),
        _ => "a range cannot start there (below min_port, in the ephemeral range, or too close to another range)".to_owned(),
    }
}

fn full_error(name: &str, t: &ServiceType) -> AllocError {
    const SHOWN: usize = 5;
    let mut holders: Vec<String> = t
        .instances
        .iter()
        .take(SHOWN)
        .map(|(id, i)| format!("{id} on {}", i.port))
        .collect();
    if t.instances.len() > SHOWN {
        holders.push(format!("and {} more", t.instances.len() - SHOWN));
    }
    AllocError::TypeFull {
        name: name.to_owned(),
        ranges: t.ranges_text(),
        count: t.instances.len(),
        holders: holders.join(", "),
    }
}

#[cfg(test)]
mod tests;
