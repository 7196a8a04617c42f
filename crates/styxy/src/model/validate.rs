//! Checks on names, ports, settings and whole registries, done before anything is written.

use std::collections::{BTreeMap, BTreeSet};

use super::{AllocError, AllocResult as Result, Invalid};

use crate::model::{InstanceBehavior, PortRange, Registry, ServiceType, Settings};

/// The longest service type name accepted.
pub const MAX_NAME_LEN: usize = 100;
/// The longest instance id accepted (a workspace path fits).
pub const MAX_INSTANCE_LEN: usize = 4096;

/// A service type name: one or two `[A-Za-z0-9._-]` segments joined by a single `/`
/// (`package/bin`), no `.`/`..` segment, at most [`MAX_NAME_LEN`] characters.
pub fn name(name: &str) -> Result<()> {
    let fail = |reason: &str| {
        Err(AllocError::InvalidName {
            name: name.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if name.is_empty() {
        return fail("it is empty; use letters, digits, `.`, `_` and `-`");
    }
    if name.chars().count() > MAX_NAME_LEN {
        return fail(&format!("it is longer than {MAX_NAME_LEN} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')))
    {
        return fail(&format!(
            "{c:?} is not allowed; use letters, digits, `.`, `_`, `-` and one `/` between package and bin"
        ));
    }
    let segments: Vec<&str> = name.split('/').collect();
    if segments.len() > 2 {
        return fail("only one `/` (between package and bin) is allowed");
    }
    if segments.iter().any(|s| s.is_empty()) {
        return fail("a `/` must stand between two non-empty parts (`package/bin`)");
    }
    if segments.iter().any(|s| *s == "." || *s == "..") {
        return fail("`.` and `..` are not names");
    }
    Ok(())
}

/// An instance id: non-empty, no control characters, at most [`MAX_INSTANCE_LEN`] bytes.
pub fn instance(id: &str) -> Result<()> {
    let fail = |reason: &str| {
        Err(AllocError::InvalidInstance {
            id: id.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if id.is_empty() {
        return fail("it is empty");
    }
    if id.len() > MAX_INSTANCE_LEN {
        return fail(&format!("it is longer than {MAX_INSTANCE_LEN} bytes"));
    }
    if id.chars().any(char::is_control) {
        return fail("it contains a control character");
    }
    Ok(())
}

/// A port number as typed by a user: 1..=65535.
pub fn parse_port(text: &str) -> Result<u16> {
    let bad = |reason: &str| AllocError::InvalidValue {
        what: "port",
        value: text.to_owned(),
        reason: reason.to_owned(),
    };
    let n: i64 = text
        .trim()
        .parse()
        .map_err(|_| bad("not a whole number; use 1-65535"))?;
    match u16::try_from(n) {
        Ok(0) | Err(_) => Err(bad("ports are 1-65535")),
        Ok(p) => Ok(p),
    }
}

/// A range as typed by a user: `A-B` (or a single port `A`).
pub fn parse_range(text: &str) -> Result<PortRange> {
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    let range = PortRange::new(parse_port(a)?, parse_port(b)?);
    range_ok(range)?;
    Ok(range)
}

/// Start not above end, no port 0.
pub fn range_ok(range: PortRange) -> Result<()> {
    if range.start == 0 {
        return Err(AllocError::InvalidValue {
            what: "range",
            value: range.to_string(),
            reason: "port 0 is not a port; ports are 1-65535".into(),
        });
    }
    if range.start > range.end {
        return Err(AllocError::InvalidValue {
            what: "range",
            value: range.to_string(),
            reason: format!(
                "start is above end; write it as {}-{}",
                range.end, range.start
            ),
        });
    }
    Ok(())
}

/// Settings that auto-allocation can work with.
pub fn settings(s: &Settings) -> Result<()> {
    let bad = |key: &str, value: String, reason: String| {
        Err(AllocError::InvalidSetting {
            key: key.to_owned(),
            value,
            reason,
        })
    };
    if s.min_port < 1024 {
        return bad(
            "min_port",
            s.min_port.to_string(),
            "ports below 1024 are privileged; use 1024 or more".into(),
        );
    }
    if let Some(max) = s.max_port
        && max <= s.min_port
    {
        return bad(
            "max_port",
            max.to_string(),
            format!("it must be above min_port ({})", s.min_port),
        );
    }
    if s.chunk_size == 0 {
        return bad(
            "chunk_size",
            "0".into(),
            "a range holds at least 1 port".into(),
        );
    }
    if s.audit_files == 0 {
        return bad(
            "audit_files",
            "0".into(),
            "keep at least 1 rotated audit log".into(),
        );
    }
    if s.max_instances == 0 {
        return bad(
            "max_instances",
            "0".into(),
            "a type holds at least 1 instance".into(),
        );
    }
    Ok(())
}

/// A glob pattern for `[rules."PATTERN"]`.
pub fn pattern(p: &str) -> Result<glob::Pattern> {
    let bad = |reason: String| AllocError::InvalidValue {
        what: "rule pattern",
        value: p.to_owned(),
        reason,
    };
    if p.is_empty() || p.chars().any(char::is_control) || p.len() > MAX_NAME_LEN {
        return Err(bad(format!(
            "use a glob of at most {MAX_NAME_LEN} printable characters, e.g. \"monitoring-*\""
        )));
    }
    glob::Pattern::new(p).map_err(|e| bad(format!("{e}; e.g. \"monitoring-*\"")))
}

/// What the registry's definitions must satisfy before they are used or written: valid
/// settings, names, ranges and patterns. Returns the first problem as a sentence. Ranges that
/// overlap are not refused here: a hand edit can leave them, and they are reported
/// ([`overlaps`]) and worked around ([`misplaced`]); no command writes a new one.
pub fn definitions(reg: &Registry) -> std::result::Result<(), Invalid> {
    settings(&reg.settings).map_err(Invalid::Value)?;
    for (n, t) in &reg.types {
        service_type(n, t)?;
    }
    strategies_and_rules(reg)
}

/// Two ranges that share ports: of two types, or two of one type's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overlap<'r> {
    pub a: &'r str,
    pub a_range: PortRange,
    pub b: &'r str,
    pub b_range: PortRange,
}

impl<'r> Overlap<'r> {
    /// The two types, in name order.
    pub fn names(&self) -> (&'r str, &'r str) {
        (self.a.min(self.b), self.a.max(self.b))
    }

    /// The overlap as an error, for a command that would write a new one.
    pub fn to_error(self) -> AllocError {
        AllocError::Overlap {
            name: self.b.to_owned(),
            range: self.b_range,
            other: self.a.to_owned(),
            other_range: self.a_range,
        }
    }

    /// The ports in both ranges.
    pub fn shared(&self) -> PortRange {
        PortRange::new(
            self.a_range.start.max(self.b_range.start),
            self.a_range.end.min(self.b_range.end),
        )
    }

    /// What a person reads about it: which ports, and how each is given out meanwhile.
    pub fn describe(&self) -> String {
        let shared = self.shared();
        if self.a == self.b {
            format!(
                "ranges {} and {} of {:?} overlap (ports {shared})",
                self.a_range, self.b_range, self.a
            )
        } else {
            let (first, _) = self.names();
            format!(
                "{} of {:?} and {} of {:?} overlap (ports {shared}); until one is changed, a port in both is given to one instance only, {first:?}'s first",
                self.a_range, self.a, self.b_range, self.b
            )
        }
    }
}

/// Every pair of overlapping ranges, in the order of their starts.
pub fn overlaps(reg: &Registry) -> Vec<Overlap<'_>> {
    let mut out = Vec::new();
    let mut open: Vec<(PortRange, &str)> = Vec::new();
    for (r, n) in reg.all_ranges() {
        open.retain(|(o, _)| o.end >= r.start);
        for &(o, on) in &open {
            out.push(Overlap {
                a: on,
                a_range: o,
                b: n,
                b_range: r,
            });
        }
        open.push((r, n));
    }
    out
}

/// Every instance whose port its type cannot give it: outside the type's ranges, the same
/// port as an instance before it (in a `multi` type), or a port that an instance of another
/// type holds where their ranges overlap (the type first in name order keeps it). A hand edit
/// leaves these; the next write moves them (`allocate::tidy`), and `config validate` and
/// `doctor` report them. `overlaps` are the registry's ([`overlaps`]), which every caller
/// reports too.
pub fn misplaced<'r>(reg: &'r Registry, overlaps: &[Overlap<'r>]) -> Vec<(&'r str, &'r str, u16)> {
    // The ports each type must leave to a type before it in name order.
    let mut claimed: BTreeMap<&str, BTreeSet<u16>> = BTreeMap::new();
    for o in overlaps.iter().filter(|o| o.a != o.b) {
        let (first, second) = o.names();
        let shared = o.shared();
        let ports = reg.types[first]
            .instances
            .values()
            .map(|i| i.port)
            .filter(|p| shared.contains(*p));
        claimed.entry(second).or_default().extend(ports);
    }
    let mut out = Vec::new();
    let mut ports: Vec<u16> = Vec::new();
    for (n, t) in &reg.types {
        let taken = claimed.get(n.as_str());
        // The common case, cheaply: every port inside, none claimed and (multi) none twice.
        ports.clear();
        ports.extend(t.instances.values().map(|i| i.port));
        ports.sort_unstable();
        let doubled = t.instance_behavior == InstanceBehavior::Multi
            && ports.windows(2).any(|w| w[0] == w[1]);
        let claimed = |p: u16| taken.is_some_and(|c| c.contains(&p));
        if !doubled && ports.iter().all(|p| t.contains(*p) && !claimed(*p)) {
            continue;
        }
        let mut seen = BTreeSet::new();
        for (id, i) in &t.instances {
            let twice = t.instance_behavior == InstanceBehavior::Multi && !seen.insert(i.port);
            if !t.contains(i.port) || twice || claimed(i.port) {
                out.push((n.as_str(), id.as_str(), i.port));
            }
        }
    }
    out
}

/// What the holders of the types `names` must satisfy before a commit writes them: every
/// instance id valid, in its type's ranges, on a port of its own (in a `multi` type) and not
/// on a port that another type's instance holds; every lease inside its type. A commit checks
/// the types it changed: one that it did not change it writes as it was.
pub fn holdings<'n>(
    reg: &Registry,
    names: impl IntoIterator<Item = &'n str>,
) -> std::result::Result<(), Invalid> {
    for n in names {
        let Some(t) = reg.types.get(n) else {
            continue;
        };
        for id in t.instances.keys() {
            instance(id).map_err(|error| Invalid::OfType {
                service_type: n.to_owned(),
                error,
            })?;
        }
        if let Some(l) = t.leases.iter().find(|l| !t.contains(l.port)) {
            return Err(Invalid::LeaseOutside {
                service_type: n.to_owned(),
                pid: l.pid,
                port: l.port,
            });
        }
        let elsewhere = reg.held_elsewhere(n);
        let mut seen = BTreeSet::new();
        for (id, i) in &t.instances {
            let twice = t.instance_behavior == InstanceBehavior::Multi && !seen.insert(i.port);
            if !t.contains(i.port) || twice || elsewhere.contains(&i.port) {
                return Err(Invalid::Misheld {
                    service_type: n.to_owned(),
                    instance: id.clone(),
                    port: i.port,
                    ranges: t.ranges_text(),
                });
            }
        }
    }
    Ok(())
}

/// What one service type must satisfy on its own.
fn service_type(n: &str, t: &ServiceType) -> std::result::Result<(), Invalid> {
    name(n).map_err(Invalid::Value)?;
    if t.ranges.is_empty() {
        return Err(Invalid::NoRanges {
            service_type: n.to_owned(),
        });
    }
    let of_type = |error| Invalid::OfType {
        service_type: n.to_owned(),
        error,
    };
    for r in &t.ranges {
        range_ok(*r).map_err(of_type)?;
    }
    type_fields(t).map_err(of_type)
}

/// What a type's fields must say beyond its ranges: preferred ports are ports, and it may
/// hold at least one instance.
pub fn type_fields(t: &ServiceType) -> Result<()> {
    if t.preferred_ports.contains(&0) {
        return Err(AllocError::InvalidValue {
            what: "preferred port",
            value: "0".into(),
            reason: "ports are 1-65535".into(),
        });
    }
    if t.max_instances == Some(0) {
        return Err(AllocError::InvalidValue {
            what: "max_instances",
            value: "0".into(),
            reason: "a type holds at least 1 instance".into(),
        });
    }
    Ok(())
}

/// Zones and rules: unique zone names, sane spans, valid patterns, known zones.
fn strategies_and_rules(reg: &Registry) -> std::result::Result<(), Invalid> {
    let mut zone_names = std::collections::BTreeSet::new();
    for (strategy, st) in &reg.strategies {
        for (z, zone) in &st.zones {
            if !zone_names.insert(z.as_str()) {
                return Err(Invalid::ZoneTwice { zone: z.clone() });
            }
            if zone.min_port < 1024 || zone.min_port > zone.max_port {
                return Err(Invalid::ZoneSpan {
                    strategy: strategy.clone(),
                    zone: z.clone(),
                    min_port: zone.min_port,
                    max_port: zone.max_port,
                });
            }
        }
    }
    for (p, rule) in &reg.rules {
        pattern(p).map_err(Invalid::Value)?;
        if rule.chunk_size == Some(0) {
            return Err(Invalid::RuleChunk { pattern: p.clone() });
        }
        if let Some(z) = &rule.zone
            && reg.zone(z).is_none()
        {
            return Err(Invalid::RuleZone {
                pattern: p.clone(),
                zone: z.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["api", "shop-web/admin", "a.b_c-1", &"x".repeat(100)] {
            assert!(name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/api",
            "api/",
            "a/b/c",
            "..",
            "a/..",
            "a b",
            "a\u{7}b",
            "a\nb",
            "é",
            &"x".repeat(101),
        ] {
            assert!(name(bad).is_err(), "{bad:?}");
        }
    }

    fn reg_of(types: &[(&str, &[(u16, u16)])]) -> Registry {
        let mut reg = Registry::default();
        for (n, ranges) in types {
            let ranges = ranges.iter().map(|(a, b)| PortRange::new(*a, *b)).collect();
            reg.types.insert(
                (*n).to_owned(),
                ServiceType::new(ranges, crate::model::Origin::User),
            );
        }
        reg
    }

    #[test]
    fn overlapping_ranges_are_found_not_refused() {
        let ok = reg_of(&[("a", &[(2000, 2009)]), ("b", &[(3000, 3009)])]);
        assert!(overlaps(&ok).is_empty());
        // b inside a, and c reaching over both: every pair, not only neighbours.
        let bad = reg_of(&[
            ("a", &[(2000, 2009)]),
            ("b", &[(2005, 2006)]),
            ("c", &[(2001, 2002), (2008, 2020)]),
        ]);
        assert!(
            definitions(&bad).is_ok(),
            "a hand edit's overlap is not fatal"
        );
        let pairs: Vec<_> = overlaps(&bad).iter().map(Overlap::names).collect();
        assert_eq!(pairs, [("a", "c"), ("a", "b"), ("a", "c")]);
        let own = reg_of(&[("a", &[(2000, 2009), (2009, 2010)])]);
        assert_eq!(overlaps(&own).len(), 1, "a type's own ranges overlap");
    }

    #[test]
    fn a_port_in_two_overlapping_types_stays_with_the_first() {
        use crate::model::Instance;
        let mut reg = reg_of(&[("a", &[(2000, 2009)]), ("b", &[(2005, 2014)])]);
        let at = |port| Instance::new("", port, None, None);
        reg.types
            .get_mut("a")
            .unwrap()
            .instances
            .insert("x".into(), at(2005));
        let b = reg.types.get_mut("b").unwrap();
        b.instances.insert("y".into(), at(2005));
        b.instances.insert("z".into(), at(2006));
        assert_eq!(misplaced(&reg, &overlaps(&reg)), [("b", "y", 2005)]);
    }

    /// What is wrong comes typed, for a caller to match, and says where.
    #[test]
    fn invalid_definitions_are_typed() {
        let mut reg = reg_of(&[("a", &[(2000, 2009)])]);
        reg.rules.insert(
            "web-*".into(),
            crate::model::Rule {
                zone: Some("nowhere".into()),
                ..Default::default()
            },
        );
        let e = definitions(&reg).unwrap_err();
        assert!(
            matches!(&e, Invalid::RuleZone { pattern, zone } if pattern == "web-*" && zone == "nowhere"),
            "{e:?}"
        );
        reg.rules.clear();
        reg.types.get_mut("a").unwrap().ranges.clear();
        let e = definitions(&reg).unwrap_err();
        assert!(
            matches!(&e, Invalid::NoRanges { service_type } if service_type == "a"),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "service type \"a\" has no ranges");
    }

    #[test]
    fn misplaced_instances_are_outside_or_doubled() {
        use crate::model::Instance;
        let mut reg = reg_of(&[("a", &[(2000, 2009)])]);
        let at = |port| Instance::new("", port, None, None);
        let t = reg.types.get_mut("a").unwrap();
        t.instances.insert("i1".into(), at(2000));
        t.instances.insert("i2".into(), at(2000));
        t.instances.insert("i3".into(), at(2100));
        t.instances.insert("i4".into(), at(2001));
        assert_eq!(
            misplaced(&reg, &overlaps(&reg)),
            [("a", "i2", 2000), ("a", "i3", 2100)]
        );
        let doubled = holdings(&reg, ["a"]);
        assert!(
            matches!(&doubled, Err(Invalid::Misheld { instance, port: 2000, .. }) if instance == "i2"),
            "{doubled:?}"
        );
        reg.types.get_mut("a").unwrap().instance_behavior = InstanceBehavior::Single;
        assert_eq!(
            misplaced(&reg, &overlaps(&reg)),
            [("a", "i3", 2100)],
            "single types share a port"
        );
    }
}
