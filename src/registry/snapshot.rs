//! The registry's snapshot: the parsed registry as JSON, a cache valid for one version of
//! the registry file (its [`Identity`]). JSON reads much faster than TOML, and the snapshot
//! is laid out so that a command that changes one service type parses only that one. It is
//! one line of JSON, the *index*, then the *body*:
//!
//! ```text
//! {"format":4,"identity":{"len":…,"hash":…},"settings":{…},"rules":{…},"strategies":{…},
//!  "names":"api auth …","ranges":[1,8000,8099,1,8100,8199,…],"body":[52,55,0,…],
//!  "layout":[0,120,310,1,311,400,…]}
//! {"ranges":[[8000,8099]],"origin":"builtin",…}{"/src/shop":{"port":8000,…}}…
//! ```
//!
//! The index is in columns, one entry per type in name order, because a load reads all of
//! it: `names` (valid names hold no space), `ranges` (per type, how many, then each start
//! and end), `body` (per type, the length in the body of its *head* — every field but
//! instances and leases — of its instances and of its leases; 0 for none, which is the
//! default) and `layout`, the file's [`Layout`] (per block, the type's position in `names`,
//! start and end; `null` when the file cannot be spliced).
//!
//! Every allocation looks at every type's name and ranges, which the index has; a load may
//! leave the rest of the types a command does not change unread: those types are *parked*
//! ([`Parked`]). The body is never scanned as a whole, and a write copies the JSON of every
//! unchanged type back as it was.
//!
//! At 10,000 types this is what keeps one allocation far below a full parse: instances are
//! most of a registry, and allocating their maps and strings was most of the cost.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::registry::fast::{Block, Layout};
use crate::registry::model::{
    InstanceBehavior, Origin, PortRange, Registry, Rule, ServiceType, Settings, Strategy,
    TypeChange,
};

/// The snapshot layout written by this version; a snapshot of any other is ignored (and
/// rewritten).
const FORMAT: u32 = 4;

/// Where the snapshot lives, next to the metadata cache.
pub fn path(registry_dir: &Path) -> PathBuf {
    registry_dir.join("cache").join("registry.snapshot.json")
}

/// What identifies one version of the registry file: its length and a hash of its bytes
/// (not its mtime, which ticks too coarsely to tell two quick writes apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub len: u64,
    pub hash: u64,
}

impl Identity {
    pub fn of(bytes: &[u8]) -> Identity {
        // Eight bytes at a time: ~1 ms for a 10,000-type registry. Not a defence against
        // an adversary, only a cache key.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
            h = (h ^ w).wrapping_mul(0x0100_0000_01b3).rotate_left(29);
        }
        for b in chunks.remainder() {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        Identity {
            len: bytes.len() as u64,
            hash: h,
        }
    }
}

/// The snapshot's index as read, borrowing the names from its text.
#[derive(Deserialize)]
struct Index<'a> {
    format: u32,
    identity: Identity,
    settings: Settings,
    rules: BTreeMap<String, Rule>,
    strategies: BTreeMap<String, Strategy>,
    names: &'a str,
    ranges: Vec<u32>,
    body: Vec<usize>,
    layout: Option<Vec<usize>>,
}

/// A type's head: every field but its instances and leases, borrowed for writing. (Reading
/// a head as a [`ServiceType`] gives a type with no instances and no leases.)
#[derive(Serialize)]
struct Head<'a> {
    ranges: &'a [PortRange],
    instance_behavior: InstanceBehavior,
    #[serde(skip_serializing_if = "<[u16]>::is_empty")]
    preferred_ports: &'a [u16],
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    origin: Origin,
    #[serde(skip_serializing_if = "Option::is_none")]
    requested_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_instances: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    zone: Option<&'a str>,
}

impl<'a> Head<'a> {
    fn of(t: &'a ServiceType) -> Self {
        // Every field named: a new field of ServiceType does not compile until it is here.
        let ServiceType {
            ranges,
            instance_behavior,
            preferred_ports,
            description,
            origin,
            requested_by,
            max_instances,
            instances: _,
            leases: _,
            zone,
        } = t;
        Head {
            ranges,
            instance_behavior: *instance_behavior,
            preferred_ports,
            description: description.as_deref(),
            origin: *origin,
            requested_by: requested_by.as_deref(),
            max_instances: *max_instances,
            zone: zone.as_deref(),
        }
    }
}

/// Where one type's JSON is in the snapshot's text (the body's spans, made absolute).
#[derive(Debug, Clone)]
struct Entry {
    name: Range<usize>,
    /// Its ranges, in [`Parked::ranges`].
    ranges: Range<usize>,
    head: Range<usize>,
    instances: Option<Range<usize>>,
    leases: Option<Range<usize>>,
    parked: bool,
}

/// The snapshot's text, kept while a command runs: the JSON of every type, to parse a parked
/// type when it is needed and to write unchanged types back as they were.
///
/// A *parked* type is in the registry with its name and ranges only: every other field is
/// at its default, its instances and leases empty. A command must not change a parked type
/// (the guard refuses to write one), and a reader of instances must ask
/// [`Parked::holding`] too.
#[derive(Debug, Default)]
pub struct Parked {
    text: String,
    /// In name order.
    entries: Vec<Entry>,
    ranges: Vec<PortRange>,
    parked: usize,
}

impl Parked {
    /// Whether no type is parked.
    pub fn is_empty(&self) -> bool {
        self.parked == 0
    }

    fn name(&self, e: &Entry) -> &str {
        &self.text[e.name.clone()]
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.entries
            .binary_search_by(|e| self.name(e).cmp(name))
            .ok()
    }

    pub fn is_parked(&self, name: &str) -> bool {
        self.find(name).is_some_and(|i| self.entries[i].parked)
    }

    /// Parses the parked type `name` in full, and stops counting it as parked. `None` if it
    /// is not parked, or does not parse (a damaged snapshot; then it stays parked, so it
    /// cannot be changed).
    pub fn unpark(&mut self, name: &str) -> Option<ServiceType> {
        let i = self.find(name).filter(|i| self.entries[*i].parked)?;
        let t = self.parse(&self.entries[i])?;
        self.entries[i].parked = false;
        self.parked -= 1;
        Some(t)
    }

    /// The whole type of `e`.
    fn parse(&self, e: &Entry) -> Option<ServiceType> {
        Self::parse_in(&self.text, e)
    }

    /// The whole type of `e`, whose spans are in `text`.
    fn parse_in(text: &str, e: &Entry) -> Option<ServiceType> {
        let json = |r: &Range<usize>| &text[r.clone()];
        let mut t: ServiceType = serde_json::from_str(json(&e.head)).ok()?;
        if let Some(r) = &e.instances {
            t.instances = serde_json::from_str(json(r)).ok()?;
        }
        if let Some(r) = &e.leases {
            t.leases = serde_json::from_str(json(r)).ok()?;
        }
        Some(t)
    }

    fn parked_entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.parked)
    }

    /// Every parked type's name and ranges, in name order.
    pub fn stubs(&self) -> impl Iterator<Item = (&str, &[PortRange])> {
        self.parked_entries()
            .map(|e| (self.name(e), &self.ranges[e.ranges.clone()]))
    }

    /// Checks that every parked type is in `reg` as it was read: its ranges, nothing else.
    /// `Err` names one that is not (changed or removed).
    pub fn unchanged_in(&self, reg: &Registry) -> Result<(), String> {
        // Both in name order: one merge.
        let mut types = reg.types.iter().peekable();
        for (name, ranges) in self.stubs() {
            while types.next_if(|(n, _)| n.as_str() < name).is_some() {}
            match types.next_if(|(n, _)| n.as_str() == name) {
                Some((_, t)) if t.ranges == ranges && t.is_bare() => {}
                _ => return Err(name.to_owned()),
            }
        }
        Ok(())
    }

    /// Drops from `changes` (in name order) the parked types, which appear as added when
    /// the registry is compared with its loaded types only.
    pub fn without_stubs(&self, changes: &mut Vec<TypeChange<'_>>) {
        let mut stubs = self.stubs().map(|(n, _)| n).peekable();
        changes.retain(|(name, before, _)| {
            while stubs.next_if(|p| *p < name.as_str()).is_some() {}
            before.is_some() || stubs.next_if(|p| *p == name.as_str()).is_none()
        });
    }

    /// Every parked type's name.
    pub fn names(&self) -> Vec<String> {
        self.parked_entries()
            .map(|e| self.name(e).to_owned())
            .collect()
    }

    /// The parked types that have leases (few: one per running service at most).
    pub fn leased(&self) -> Vec<String> {
        self.parked_entries()
            .filter(|e| e.leases.is_some())
            .map(|e| self.name(e).to_owned())
            .collect()
    }

    /// The parked types that hold an instance of the workspace `root`, parsed in full; or
    /// the name of one that does not parse (a damaged snapshot).
    pub fn holding(&self, root: &str) -> Result<Vec<(String, ServiceType)>, String> {
        // Instances are written by serde_json in compact form: `"workspace":"<root>"`.
        let root_json = serde_json::to_string(root).map_err(|e| e.to_string())?;
        let needle = format!("\"workspace\":{root_json}");
        self.parked_entries()
            .filter(|e| {
                e.instances
                    .as_ref()
                    .is_some_and(|r| self.text[r.clone()].contains(&needle))
            })
            .map(|e| {
                let name = self.name(e).to_owned();
                match self.parse(e) {
                    Some(t) => Ok((name, t)),
                    None => Err(name),
                }
            })
            .collect()
    }
}

/// A registry read from its snapshot.
#[derive(Debug)]
pub struct Loaded {
    /// The registry, with parked types as [`Parked`] describes.
    pub registry: Registry,
    /// A copy of the registry without its parked types: what a diff compares with.
    pub loaded: Registry,
    /// `None` when the file's types are not all standard tables (then writes take the
    /// full path).
    pub layout: Option<Layout>,
    pub parked: Parked,
}

/// Reads the snapshot of the registry file whose bytes are `file`, if there is a valid one.
/// `wanted` names the types to parse in full (`None`: all); the others are parked. A
/// registry whose layout is unknown is always parsed in full.
pub fn load(registry_dir: &Path, file: &[u8], wanted: Option<&[&str]>) -> Option<Loaded> {
    let identity = Identity::of(file);
    let text = std::fs::read_to_string(path(registry_dir)).ok()?;
    let (registry, loaded, layout, entries, ranges) = {
        // serde_json writes no raw newline: the first one ends the index.
        let body_start = text.find('\n')? + 1;
        let index: Index<'_> = serde_json::from_str(&text[..body_start]).ok()?;
        if index.format != FORMAT || index.identity != identity {
            return None;
        }
        let names: Vec<&str> = match index.names {
            "" => Vec::new(),
            all => all.split(' ').collect(),
        };
        // Names in order, each once: what the lookups rely on.
        if index.body.len() != 3 * names.len() || !names.is_sorted_by(|a, b| a < b) {
            return None;
        }
        let wanted = wanted.filter(|_| index.layout.is_some());
        let base = text.as_ptr().addr();
        let mut next_range = index.ranges.iter().map(|n| u16::try_from(*n).ok());
        let mut offset = body_start;
        let mut piece = |len: usize| -> Option<Option<Range<usize>>> {
            let r = offset..offset.checked_add(len)?;
            text.get(r.clone())?;
            offset = r.end;
            Some((len > 0).then_some(r))
        };
        let mut types = Vec::with_capacity(names.len());
        let mut loaded = Vec::new();
        let mut entries: Vec<Entry> = Vec::with_capacity(names.len());
        let mut pool = Vec::with_capacity(names.len());
        for (name, lens) in names.iter().zip(index.body.chunks_exact(3)) {
            let n = next_range.next()??;
            let ranges = (0..n)
                .map(|_| Some(PortRange::new(next_range.next()??, next_range.next()??)))
                .collect::<Option<Vec<_>>>()?;
            let start = name.as_ptr().addr() - base;
            let in_pool = pool.len()..pool.len() + ranges.len();
            pool.extend_from_slice(&ranges);
            let mut entry = Entry {
                name: start..start + name.len(),
                ranges: in_pool,
                head: piece(lens[0])??,
                instances: piece(lens[1])?,
                leases: piece(lens[2])?,
                parked: false,
            };
            let t = if wanted.is_none_or(|w| w.contains(name)) {
                let t = Parked::parse_in(&text, &entry)?;
                loaded.push(((*name).to_owned(), t.clone()));
                t
            } else {
                entry.parked = true;
                ServiceType::new(ranges, Origin::default())
            };
            types.push(((*name).to_owned(), t));
            entries.push(entry);
        }
        let layout = match index.layout {
            Some(blocks) => Some(Layout {
                blocks: blocks
                    .chunks_exact(3)
                    .map(|b| {
                        Some(Block {
                            name: (*names.get(b[0])?).to_owned(),
                            span: b[1]..b[2],
                        })
                    })
                    .collect::<Option<Vec<_>>>()?,
            }),
            None => None,
        };
        let registry = Registry {
            settings: index.settings,
            // Sorted already: built in bulk, without a search per key.
            types: types.into_iter().collect(),
            rules: index.rules,
            strategies: index.strategies,
        };
        let loaded = Registry {
            types: loaded.into_iter().collect(),
            ..registry.clone_head()
        };
        (registry, loaded, layout, entries, pool)
    };
    let parked = entries.iter().filter(|e| e.parked).count();
    Some(Loaded {
        registry,
        loaded,
        layout,
        parked: Parked {
            text,
            entries,
            ranges,
            parked,
        },
    })
}

/// Writes the snapshot of `reg`, the registry file with `identity` (a cache: atomically, but
/// without waiting for the disk). The JSON of every type not in `changed` is copied from
/// `parked` where it has it; parked types must not be in `changed`.
pub fn store(
    registry_dir: &Path,
    identity: Identity,
    reg: &Registry,
    layout: Option<&Layout>,
    parked: &Parked,
    changed: &BTreeSet<String>,
) {
    let Ok(parts) = render(identity, reg, layout, parked, changed) else {
        return;
    };
    let parts: Vec<&[u8]> = parts.iter().map(|p| p.as_ref()).collect();
    let path = path(registry_dir);
    if let Some(dir) = path.parent() {
        let _ = crate::fsx::create_private_dir(dir)
            .and_then(|()| crate::fsx::replace_cache_parts(&path, &parts));
    }
}

/// The snapshot in parts: the index, then the body, where every run of unchanged types is
/// one slice of the old snapshot (at 10,000 types, a few large copies rather than 30,000
/// small ones).
fn render<'p>(
    identity: Identity,
    reg: &Registry,
    layout: Option<&Layout>,
    parked: &'p Parked,
    changed: &BTreeSet<String>,
) -> serde_json::Result<Vec<Cow<'p, [u8]>>> {
    use serde::ser::Error as _;
    use serde_json::to_writer;
    let plain =
        |n: &str| !n.is_empty() && !n.contains([' ', '"', '\\']) && !n.contains(char::is_control);
    if !reg.types.keys().all(|n| plain(n)) {
        return Err(serde_json::Error::custom(
            "a type name the index cannot hold",
        ));
    }
    let mut parts: Vec<Cow<'p, [u8]>> = vec![Cow::Owned(Vec::new())];
    let mut lens: Vec<usize> = Vec::with_capacity(3 * reg.types.len());
    let mut ranges: Vec<u32> = Vec::with_capacity(3 * reg.types.len());
    // The run of the old body being copied.
    let mut run: Option<Range<usize>> = None;
    let flush = |run: &mut Option<Range<usize>>, parts: &mut Vec<Cow<'p, [u8]>>| {
        if let Some(r) = run.take() {
            parts.push(Cow::Borrowed(&parked.text.as_bytes()[r]));
        }
    };
    // Both in name order: one merge finds each type's old JSON.
    let mut old = parked.entries.iter().peekable();
    for (name, t) in &reg.types {
        ranges.push(u32::try_from(t.ranges.len()).unwrap_or(u32::MAX));
        ranges.extend(
            t.ranges
                .iter()
                .flat_map(|r| [u32::from(r.start), u32::from(r.end)]),
        );
        while old.next_if(|e| parked.name(e) < name.as_str()).is_some() {}
        let kept = old
            .next_if(|e| parked.name(e) == name)
            .filter(|_| !changed.contains(name));
        match kept {
            Some(e) => {
                let len = |r: &Option<Range<usize>>| r.as_ref().map_or(0, |r| r.len());
                lens.extend([e.head.len(), len(&e.instances), len(&e.leases)]);
                let end = e.head.end + len(&e.instances) + len(&e.leases);
                match &mut run {
                    Some(r) if r.end == e.head.start => r.end = end,
                    _ => {
                        flush(&mut run, &mut parts);
                        run = Some(e.head.start..end);
                    }
                }
            }
            None => {
                debug_assert!(!parked.is_parked(name), "{name} changed while parked");
                flush(&mut run, &mut parts);
                let mut json = serde_json::to_vec(&Head::of(t))?;
                lens.push(json.len());
                for held in [
                    (!t.instances.is_empty())
                        .then(|| serde_json::to_vec(&t.instances))
                        .transpose()?,
                    (!t.leases.is_empty())
                        .then(|| serde_json::to_vec(&t.leases))
                        .transpose()?,
                ] {
                    let held = held.unwrap_or_default();
                    lens.push(held.len());
                    json.extend_from_slice(&held);
                }
                parts.push(Cow::Owned(json));
            }
        }
    }
    flush(&mut run, &mut parts);
    let names: Vec<&str> = reg.types.keys().map(String::as_str).collect();
    // A hash lookup per block: 10,000 binary searches over names cost more.
    let position: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let blocks: Option<Vec<usize>> = layout.and_then(|l| {
        l.blocks
            .iter()
            .map(|b| {
                let i = *position.get(b.name.as_str())?;
                Some([i, b.span.start, b.span.end])
            })
            .collect::<Option<Vec<_>>>()
            .map(|v| v.concat())
    });
    let mut index = Vec::with_capacity(32 * reg.types.len() + 4096);
    index.extend_from_slice(format!("{{\"format\":{FORMAT},\"identity\":").as_bytes());
    to_writer(&mut index, &identity)?;
    index.extend_from_slice(b",\"settings\":");
    to_writer(&mut index, &reg.settings)?;
    index.extend_from_slice(b",\"rules\":");
    to_writer(&mut index, &reg.rules)?;
    index.extend_from_slice(b",\"strategies\":");
    to_writer(&mut index, &reg.strategies)?;
    index.extend_from_slice(b",\"names\":");
    to_writer(&mut index, &names.join(" "))?;
    index.extend_from_slice(b",\"ranges\":");
    to_writer(&mut index, &ranges)?;
    index.extend_from_slice(b",\"body\":");
    to_writer(&mut index, &lens)?;
    index.extend_from_slice(b",\"layout\":");
    to_writer(&mut index, &blocks)?;
    index.extend_from_slice(b"}\n");
    parts[0] = Cow::Owned(index);
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::model::{Instance, Lease};

    fn sample() -> Registry {
        let mut full = ServiceType::new(vec![PortRange::new(20000, 20009)], Origin::Auto);
        full.instance_behavior = InstanceBehavior::Single;
        full.preferred_ports = vec![20001];
        full.description = Some("d".into());
        full.requested_by = Some("/w".into());
        full.max_instances = Some(3);
        full.zone = Some("z".into());
        full.instances.insert(
            "/w".into(),
            Instance {
                port: 20000,
                workspace: Some("/w \"quoted\"".into()),
                service: Some("p/b".into()),
            },
        );
        full.leases.push(Lease {
            port: 20000,
            pid: 1,
            start_time: 2,
            instance: "/w".into(),
            since: None,
        });
        let mut reg = Registry::default();
        reg.types.insert("full".into(), full);
        reg.types.insert(
            "bare".into(),
            ServiceType::new(vec![PortRange::new(21000, 21009)], Origin::User),
        );
        reg
    }

    fn round_trip(dir: &Path, reg: &Registry, wanted: Option<&[&str]>) -> Loaded {
        let file = b"registry text";
        store(
            dir,
            Identity::of(file),
            reg,
            Some(&Layout::default()),
            &Parked::default(),
            &BTreeSet::new(),
        );
        load(dir, file, wanted).expect("a fresh snapshot loads")
    }

    #[test]
    fn a_parked_type_has_its_ranges_and_parses_in_full_on_demand() {
        let dir = tempfile::tempdir().unwrap();
        let reg = sample();
        let mut loaded = round_trip(dir.path(), &reg, Some(&["bare"]));
        assert_eq!(
            loaded.registry.types["bare"], reg.types["bare"],
            "wanted: whole"
        );
        let stub = &loaded.registry.types["full"];
        assert_eq!(
            stub,
            &ServiceType::new(reg.types["full"].ranges.clone(), Origin::default())
        );
        assert!(loaded.parked.is_parked("full"));
        assert!(!loaded.parked.is_parked("bare"));
        assert_eq!(loaded.parked.leased(), ["full"]);
        assert_eq!(
            loaded.parked.holding("/w \"quoted\"").unwrap()[0].1,
            reg.types["full"],
            "found by its workspace, escaped as serde_json writes it"
        );
        assert!(loaded.parked.holding("/w").unwrap().is_empty());
        assert_eq!(
            loaded.parked.unpark("full").as_ref(),
            Some(&reg.types["full"])
        );
        assert!(loaded.parked.is_empty());
    }

    #[test]
    fn a_head_is_every_field_but_instances_and_leases() {
        let t = &sample().types["full"];
        let head: ServiceType =
            serde_json::from_str(&serde_json::to_string(&Head::of(t)).unwrap()).unwrap();
        let mut expected = t.clone();
        expected.instances.clear();
        expected.leases.clear();
        assert_eq!(head, expected);
    }

    #[test]
    fn a_full_load_is_the_registry_and_unchanged_types_are_copied_back() {
        let dir = tempfile::tempdir().unwrap();
        let reg = sample();
        assert_eq!(round_trip(dir.path(), &reg, None).registry, reg);
        // Written again from a load that parked "full": the parked JSON is copied back.
        let mut loaded = round_trip(dir.path(), &reg, Some(&["bare"]));
        assert!(loaded.parked.is_parked("full"));
        loaded.registry.types.get_mut("bare").unwrap().ranges[0].end = 21019;
        let file = b"next";
        store(
            dir.path(),
            Identity::of(file),
            &loaded.registry,
            None,
            &loaded.parked,
            &["bare".to_owned()].into(),
        );
        let mut expected = reg.clone();
        expected.types.get_mut("bare").unwrap().ranges[0].end = 21019;
        assert_eq!(load(dir.path(), file, None).unwrap().registry, expected);
        assert!(
            load(dir.path(), b"other", None).is_none(),
            "another file's snapshot"
        );
    }

    proptest::proptest! {
        /// A registry written, loaded with some types parked, changed in its other types
        /// and written again (unchanged types copied from the old snapshot) reads back in
        /// full as the changed registry.
        #[test]
        fn unchanged_types_copied_back_read_as_written(
            types in proptest::collection::btree_map(0u16..40, (0u8..3, proptest::bool::ANY), 0..20),
            wanted in proptest::collection::btree_set(0u16..40, 0..10),
            edits in proptest::collection::vec((0u16..40, 0u8..3), 0..8),
        ) {
            let make = |i: u16, instances: u8, leased: bool| {
                let start = 20000 + i * 10;
                let mut t = ServiceType::new(vec![PortRange::new(start, start + 9)], Origin::Auto);
                for k in 0..u16::from(instances) {
                    t.instances.insert(format!("/w{k}"), Instance { port: start + k, workspace: Some(format!("/w{k}")), service: None });
                }
                if leased {
                    t.leases.push(Lease { port: start, pid: 7, start_time: 1, instance: "/w0".into(), since: None });
                }
                t
            };
            let mut reg = Registry::default();
            for (i, (n, l)) in &types {
                reg.types.insert(format!("t{i:02}"), make(*i, *n, *l));
            }
            let dir = tempfile::tempdir().unwrap();
            let names: Vec<String> = wanted.iter().map(|i| format!("t{i:02}")).collect();
            let wanted: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut loaded = round_trip(dir.path(), &reg, Some(&wanted));
            let mut expected = reg.clone();
            for (i, n) in edits {
                let name = format!("t{i:02}");
                if !wanted.contains(&name.as_str()) {
                    continue;
                }
                for r in [&mut loaded.registry, &mut expected] {
                    match n {
                        0 => { r.types.remove(&name); }
                        n => { r.types.insert(name.clone(), make(i, n, false)); }
                    }
                }
            }
            let changed: BTreeSet<String> = reg
                .changed_types(&expected)
                .map(|(n, _, _)| n.clone())
                .collect();
            store(dir.path(), Identity::of(b"next"), &loaded.registry, Some(&Layout::default()), &loaded.parked, &changed);
            proptest::prop_assert_eq!(load(dir.path(), b"next", None).map(|l| l.registry), Some(expected));
        }
    }

    proptest::proptest! {
        /// A snapshot torn or garbled on disk is ignored (or read), never a panic.
        #[test]
        fn a_damaged_snapshot_never_panics(
            cut in proptest::option::of(0usize..4000),
            flips in proptest::collection::vec((0usize..4000, proptest::prelude::any::<u8>()), 0..4),
            wanted in proptest::prelude::any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let _ = round_trip(dir.path(), &sample(), None);
            let p = path(dir.path());
            let mut bytes = std::fs::read(&p).unwrap();
            for (at, b) in flips {
                let i = at % bytes.len();
                bytes[i] = b;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut);
            }
            std::fs::write(&p, &bytes).unwrap();
            let wanted: Option<&[&str]> = wanted.then_some(&["bare"]);
            let _ = load(dir.path(), b"registry text", wanted);
        }
    }
}
