//! Checks on names, ports, settings and whole registries, done before anything is written.

use crate::error::{Error, Result};
use crate::registry::model::{PortRange, Registry, ServiceType, Settings, TypeChange};

/// The longest service type name accepted.
pub const MAX_NAME_LEN: usize = 100;
/// The longest instance id accepted (a workspace path fits).
pub const MAX_INSTANCE_LEN: usize = 4096;

/// A service type name: one or two `[A-Za-z0-9._-]` segments joined by a single `/`
/// (`package/bin`), no `.`/`..` segment, at most [`MAX_NAME_LEN`] characters.
pub fn name(name: &str) -> Result<()> {
    let fail = |reason: &str| {
        Err(Error::InvalidName {
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
        Err(Error::InvalidInstance {
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
    let bad = |reason: &str| Error::InvalidValue {
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
        return Err(Error::InvalidValue {
            what: "range",
            value: range.to_string(),
            reason: "port 0 is not a port; ports are 1-65535".into(),
        });
    }
    if range.start > range.end {
        return Err(Error::InvalidValue {
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
        Err(Error::InvalidSetting {
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
    let bad = |reason: String| Error::InvalidValue {
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

/// Everything a registry must satisfy before it is used or written: valid settings, names,
/// ranges and patterns; no two ranges overlapping; every instance inside its type.
/// Returns the first problem as a sentence.
pub fn registry(reg: &Registry) -> std::result::Result<(), String> {
    settings(&reg.settings).map_err(|e| e.to_string())?;
    for (n, t) in &reg.types {
        service_type(n, t)?;
    }
    let all = reg.all_ranges();
    for pair in all.windows(2) {
        let ((a, an), (b, bn)) = (pair[0], pair[1]);
        if a.overlaps(&b) {
            return Err(Error::Overlap {
                name: bn.to_owned(),
                range: b,
                other: an.to_owned(),
                other_range: a,
            }
            .to_string());
        }
    }
    strategies_and_rules(reg)
}

/// [`registry`] for `new`, a change of the valid registry `old` whose service types
/// `changes` differ ([`Registry::changed_types`]): the others are not checked again, only
/// whether a changed one now overlaps them. This is what a commit to a registry of 10,000
/// types can afford.
pub fn change(
    old: &Registry,
    new: &Registry,
    changes: &[TypeChange<'_>],
) -> std::result::Result<(), String> {
    if old.settings != new.settings || old.rules != new.rules || old.strategies != new.strategies {
        return registry(new);
    }
    for &(n, _, after) in changes {
        let Some(t) = after else { continue };
        service_type(n, t)?;
        for (i, r) in t.ranges.iter().enumerate() {
            let own = t.ranges[i + 1..].iter().map(|o| (n, o));
            let others = new
                .types
                .iter()
                .filter(|(other, _)| *other != n)
                .flat_map(|(other, o)| o.ranges.iter().map(move |r| (other, r)));
            if let Some((other, o)) = own.chain(others).find(|(_, o)| r.overlaps(o)) {
                return Err(Error::Overlap {
                    name: n.to_owned(),
                    range: *r,
                    other: other.to_owned(),
                    other_range: *o,
                }
                .to_string());
            }
        }
    }
    Ok(())
}

/// What one service type must satisfy on its own.
fn service_type(n: &str, t: &ServiceType) -> std::result::Result<(), String> {
    name(n).map_err(|e| e.to_string())?;
    if t.ranges.is_empty() {
        return Err(format!("service type {n:?} has no ranges"));
    }
    for r in &t.ranges {
        range_ok(*r).map_err(|e| format!("service type {n:?}: {e}"))?;
    }
    for (id, i) in &t.instances {
        instance(id).map_err(|e| format!("service type {n:?}: {e}"))?;
        if !t.contains(i.port) {
            return Err(format!(
                "instance {id:?} of {n:?} holds port {}, outside the type's ranges {}",
                i.port,
                t.ranges_text()
            ));
        }
    }
    if let Some(l) = t.leases.iter().find(|l| !t.contains(l.port)) {
        return Err(format!(
            "a lease of {n:?} (pid {}) holds port {}, outside the type's ranges",
            l.pid, l.port
        ));
    }
    Ok(())
}

/// Zones and rules: unique zone names, sane spans, valid patterns, known zones.
fn strategies_and_rules(reg: &Registry) -> std::result::Result<(), String> {
    let mut zone_names = std::collections::BTreeSet::new();
    for (strategy, st) in &reg.strategies {
        for (z, zone) in &st.zones {
            if !zone_names.insert(z.as_str()) {
                return Err(format!(
                    "zone {z:?} is defined in more than one strategy; zone names must be unique"
                ));
            }
            if zone.min_port < 1024 || zone.min_port > zone.max_port {
                return Err(format!(
                    "zone {z:?} of strategy {strategy:?}: {}-{} is not a span of ports from 1024 up, low to high",
                    zone.min_port, zone.max_port
                ));
            }
        }
    }
    for (p, rule) in &reg.rules {
        pattern(p).map_err(|e| e.to_string())?;
        if rule.chunk_size == Some(0) {
            return Err(format!("rule {p:?}: chunk_size must be at least 1"));
        }
        if let Some(z) = &rule.zone
            && reg.zone(z).is_none()
        {
            return Err(format!(
                "rule {p:?} names the zone {z:?}, which no [strategies.NAME.zones] defines"
            ));
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
                ServiceType::new(ranges, crate::registry::model::Origin::User),
            );
        }
        reg
    }

    /// [`change`] as a commit calls it.
    fn check(old: &Registry, new: &Registry) -> std::result::Result<(), String> {
        change(old, new, &old.changed_types(new).collect::<Vec<_>>())
    }

    /// `reg` with one more range for `name`.
    fn plus_range(reg: &Registry, name: &str, start: u16, end: u16) -> Registry {
        let mut new = reg.clone();
        let t = new.types.get_mut(name).unwrap();
        t.ranges.push(PortRange::new(start, end));
        new
    }

    #[test]
    fn a_change_that_overlaps_an_unchanged_type_is_refused() {
        let old = reg_of(&[("a", &[(2000, 2009)]), ("b", &[(3000, 3009)])]);
        let err = check(&old, &plus_range(&old, "b", 2005, 2006)).unwrap_err();
        assert!(err.contains("\"b\"") && err.contains("\"a\""), "{err}");
        assert!(
            check(&old, &plus_range(&old, "a", 2009, 2010)).is_err(),
            "a type's own ranges overlap"
        );
        assert!(check(&old, &plus_range(&old, "a", 2010, 2019)).is_ok());
    }

    proptest::proptest! {
        /// For a valid registry and any change of one type's ranges (or a new type),
        /// checking the change agrees with checking the whole result.
        #[test]
        fn checking_a_change_agrees_with_checking_the_whole(
            ranges in proptest::collection::vec((1024u16..1200, 0u16..20), 1..12),
            changed in proptest::collection::vec((1024u16..1200, 0u16..20), 1..3),
            target in 0usize..14,
        ) {
            let mut old = Registry::default();
            for (i, (start, len)) in ranges.iter().enumerate() {
                let r = PortRange::new(*start, start + len);
                if old.all_ranges().iter().all(|(o, _)| !o.overlaps(&r)) {
                    old.types.insert(format!("t{i}"), ServiceType::new(vec![r], crate::registry::model::Origin::User));
                }
            }
            proptest::prop_assume!(registry(&old).is_ok());
            let mut new = old.clone();
            let t = new
                .types
                .entry(format!("t{target}"))
                .or_insert_with(|| ServiceType::new(Vec::new(), crate::registry::model::Origin::User));
            t.ranges = changed.iter().map(|(s, l)| PortRange::new(*s, s + l)).collect();
            proptest::prop_assert_eq!(check(&old, &new).is_ok(), registry(&new).is_ok());
        }
    }

    #[test]
    fn ports_and_ranges() {
        assert_eq!(parse_port("8080").unwrap(), 8080);
        for bad in ["0", "70000", "-1", "abc", ""] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_range("10-20").unwrap(), PortRange::new(10, 20));
        assert_eq!(parse_range("10").unwrap(), PortRange::new(10, 10));
        assert!(parse_range("20-10").is_err());
        assert!(parse_range("0-10").is_err());
    }
}
