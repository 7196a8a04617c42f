//! Changes made by hand: service types, rules and settings, each validated against the whole
//! registry before it is applied.

use crate::allocate::{Event, Outcome, Released, release};
use crate::error::{AllocError, AllocResult as Result};

use crate::model::validate;
use crate::model::{
    InstanceBehavior, Origin, Placement, PortRange, Registry, Rule, ServiceType, TypeFields,
};

/// Refuses ranges of `name` that overlap each other or another type's ranges.
fn check_ranges(reg: &Registry, name: &str, ranges: &[PortRange]) -> Result<()> {
    if ranges.is_empty() {
        return Err(AllocError::InvalidValue {
            what: "range",
            value: String::new(),
            reason: "a type needs at least one range; pass --range A-B".into(),
        });
    }
    for (i, r) in ranges.iter().enumerate() {
        validate::range_ok(*r)?;
        if let Some(o) = ranges[..i].iter().find(|o| o.overlaps(r)) {
            return Err(AllocError::Overlap {
                name: name.to_owned(),
                range: *r,
                other: name.to_owned(),
                other_range: *o,
            });
        }
        for (other, t) in reg.types.iter().filter(|(n, _)| n.as_str() != name) {
            if let Some(o) = t.ranges.iter().find(|o| o.overlaps(r)) {
                return Err(AllocError::Overlap {
                    name: name.to_owned(),
                    range: *r,
                    other: other.clone(),
                    other_range: *o,
                });
            }
        }
    }
    Ok(())
}

/// Adds a user-declared type.
pub fn add_type(reg: &mut Registry, name: &str, fields: TypeFields) -> Result<Outcome<()>> {
    validate::name(name)?;
    if reg.types.contains_key(name) {
        return Err(AllocError::TypeExists {
            name: name.to_owned(),
        });
    }
    let ranges = fields.ranges.clone().unwrap_or_default();
    check_ranges(reg, name, &ranges)?;
    let mut t = ServiceType::new(ranges.clone(), Origin::User);
    apply(reg, &mut t, fields)?;
    reg.types.insert(name.to_owned(), t);
    Ok(Outcome {
        value: (),
        events: vec![Event::TypeAdded {
            service_type: name.to_owned(),
            ranges,
        }],
        warnings: Vec::new(),
    })
}

/// Sets `fields` on `t`, checked as a commit would check them; a zone must exist.
fn apply(reg: &Registry, t: &mut ServiceType, fields: TypeFields) -> Result<()> {
    if fields.removed {
        return Err(AllocError::InvalidValue {
            what: "field",
            value: "removed".into(),
            reason: "a type is removed with `cargo styxy type rm` (or DELETE /api/types/NAME)"
                .into(),
        });
    }
    if let Some(zone) = &fields.zone
        && reg.zone(zone).is_none()
    {
        return Err(AllocError::UnknownZone { zone: zone.clone() });
    }
    fields.apply_to(t);
    validate::type_fields(t)
}

/// Changes an existing type (built-in ones included). Instances must stay inside the new
/// ranges, and a type turned `single` must not have instances on different ports.
pub fn set_type(reg: &mut Registry, name: &str, fields: TypeFields) -> Result<Outcome<()>> {
    let Some(current) = reg.types.get(name) else {
        return Err(AllocError::UnknownType {
            name: name.to_owned(),
            hint: format!("add it with `cargo styxy type add {name} --range A-B`"),
        });
    };
    if let Some(ranges) = &fields.ranges {
        check_ranges(reg, name, ranges)?;
    }
    let mut t = current.clone();
    apply(reg, &mut t, fields)?;
    // Changed by a person, an auto-allocated type becomes theirs: it moves to registry.toml
    // and is no longer removed with its last instance.
    if t.origin == Origin::Auto {
        t.origin = Origin::User;
        t.requested_by = None;
    }
    if let Some((id, i)) = t.instances.iter().find(|(_, i)| !t.contains(i.port)) {
        return Err(AllocError::InvalidValue {
            what: "range",
            value: t.ranges_text(),
            reason: format!(
                "instance {id:?} holds port {}, which it would leave; release it first with `cargo styxy release --service {name} --instance {id}`",
                i.port
            ),
        });
    }
    if t.instance_behavior == InstanceBehavior::Single {
        let mut ports: Vec<u16> = t.instances.values().map(|i| i.port).collect();
        ports.dedup();
        if ports.len() > 1 {
            return Err(AllocError::InvalidValue {
                what: "instance behavior",
                value: "single".into(),
                reason: format!(
                    "its instances hold different ports ({}); release them first with `cargo styxy release --service {name}`",
                    ports
                        .iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
    let (ranges, from_ranges) = (t.ranges.clone(), current.ranges.clone());
    reg.types.insert(name.to_owned(), t);
    Ok(Outcome {
        value: (),
        events: vec![Event::TypeEdited {
            service_type: name.to_owned(),
            ranges,
            from_ranges,
        }],
        warnings: Vec::new(),
    })
}

/// Removes a type. One that still has instances is refused unless `force`, which releases
/// them first.
pub fn remove_type(reg: &mut Registry, name: &str, force: bool) -> Result<Outcome<Vec<Released>>> {
    let Some(t) = reg.types.get(name) else {
        return Err(AllocError::UnknownType {
            name: name.to_owned(),
            hint: "see `cargo styxy list` for the types".into(),
        });
    };
    let mut out = Outcome::default();
    if !t.instances.is_empty() {
        if !force {
            return Err(AllocError::InvalidValue {
                what: "service type",
                value: name.to_owned(),
                reason: format!(
                    "it still has {} instance(s) ({}); release them, or pass --force to drop them",
                    t.instances.len(),
                    t.instances.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            });
        }
        out = release(reg, Some(name), None)?;
    }
    if let Some(t) = reg.types.remove(name) {
        out.events.push(Event::TypeRemoved {
            service_type: name.to_owned(),
            ranges: t.ranges,
        });
    }
    Ok(out)
}

/// Adds a rule, or replaces the rule of the same pattern.
pub fn set_rule(reg: &mut Registry, pattern: &str, rule: Rule) -> Result<Outcome<()>> {
    validate::pattern(pattern)?;
    if rule.chunk_size == Some(0) {
        return Err(AllocError::InvalidValue {
            what: "chunk size",
            value: "0".into(),
            reason: "a range holds at least 1 port".into(),
        });
    }
    if let Some(z) = &rule.zone
        && reg.zone(z).is_none()
    {
        return Err(AllocError::UnknownZone { zone: z.clone() });
    }
    reg.rules.insert(pattern.to_owned(), rule);
    Ok(Outcome {
        value: (),
        events: vec![Event::RuleChanged {
            pattern: pattern.to_owned(),
        }],
        warnings: Vec::new(),
    })
}

pub fn remove_rule(reg: &mut Registry, pattern: &str) -> Result<Outcome<()>> {
    if reg.rules.remove(pattern).is_none() {
        return Err(AllocError::UnknownRule {
            pattern: pattern.to_owned(),
        });
    }
    Ok(Outcome {
        value: (),
        events: vec![Event::RuleChanged {
            pattern: pattern.to_owned(),
        }],
        warnings: Vec::new(),
    })
}

/// The settings `config set` knows, with what each takes.
pub const SETTING_KEYS: [(&str, &str); 9] = [
    ("min_port", "a port, 1024-65535"),
    (
        "max_port",
        "a port above min_port, or `auto` (just below the OS ephemeral range)",
    ),
    ("chunk_size", "ports per new range, 1-65535"),
    ("gap_size", "free ports between ranges, 0-65535"),
    ("placement", "after, before or smart"),
    ("max_instances", "instances per multi type, 1 or more"),
    ("auto_allocate", "true or false"),
    (
        "audit_max_bytes",
        "size at which the audit log is rotated, in bytes",
    ),
    ("audit_files", "rotated audit logs kept, 1 or more"),
];

/// Sets one setting from its text form, validating the result as a whole.
pub fn set_setting(reg: &mut Registry, key: &str, value: &str) -> Result<Outcome<()>> {
    let bad = |reason: &str| AllocError::InvalidSetting {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let expects = SETTING_KEYS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, e)| *e)
        .ok_or_else(|| {
            bad(&format!(
                "no such setting; the settings are {}",
                SETTING_KEYS.map(|(k, _)| k).join(", ")
            ))
        })?;
    let expected = format!("expected {expects}");
    let int = |max: u64| -> Result<u64> {
        value
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| bad(&expected))
    };
    let mut s = reg.settings.clone();
    match key {
        "min_port" => s.min_port = int(65535)? as u16,
        "max_port" if value == "auto" => s.max_port = None,
        "max_port" => s.max_port = Some(int(65535)? as u16),
        "chunk_size" => s.chunk_size = int(65535)? as u16,
        "gap_size" => s.gap_size = int(65535)? as u16,
        "placement" => s.placement = Placement::parse(value).ok_or_else(|| bad(&expected))?,
        "max_instances" => s.max_instances = int(u64::from(u32::MAX))? as u32,
        "auto_allocate" => s.auto_allocate = value.parse().map_err(|_| bad(&expected))?,
        "audit_max_bytes" => s.audit_max_bytes = int(u64::MAX)?,
        "audit_files" => s.audit_files = int(1000)? as u32,
        _ => unreachable!("key checked against SETTING_KEYS"),
    }
    validate::settings(&s)?;
    reg.settings = s;
    Ok(Outcome {
        value: (),
        events: vec![Event::ConfigChanged {
            key: key.to_owned(),
            value: value.to_owned(),
        }],
        warnings: Vec::new(),
    })
}
