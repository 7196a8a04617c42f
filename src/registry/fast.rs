//! Keeps large registries fast: TOML parses at ~15-20 MB/s, so a 10,000-type registry
//! (~1.7 MB) costs ~100 ms per parse. Two things avoid parsing it on every command:
//!
//! - a **snapshot**: the typed registry as JSON (fast to read), valid while the registry
//!   file's identity (inode, size, mtime) is the one it was taken of — a hand edit
//!   invalidates it;
//! - a **layout**: the byte span of every service type's tables in the file, taken from a
//!   real toml_edit parse, so that a write that changes only service types splices just
//!   those blocks (each re-rendered through toml_edit, keeping its comments) and leaves
//!   every other byte as it was.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml_edit::{DocumentMut, Item};

use crate::registry::edit;
use crate::registry::model::{Registry, ServiceType};

/// Where the snapshot lives, next to the metadata cache.
pub fn snapshot_path(registry_dir: &Path) -> PathBuf {
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

/// The byte ranges of each service type's tables (`[types.X]`, `[types.X.*]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub types: BTreeMap<String, Vec<Range<usize>>>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Snapshot {
    pub identity: Identity,
    pub registry: Registry,
    /// `None` when the file's types are not all standard tables (then writes take the full
    /// path).
    pub layout: Option<Layout>,
}

impl Snapshot {
    /// The snapshot of the registry whose bytes are `text`, if there is one.
    pub fn load(registry_dir: &Path, text: &[u8]) -> Option<Snapshot> {
        let identity = Identity::of(text);
        let text = std::fs::read(snapshot_path(registry_dir)).ok()?;
        let snap: Snapshot = serde_json::from_slice(&text).ok()?;
        (snap.identity == identity).then_some(snap)
    }

    /// Writes the snapshot (a cache: atomically, but without waiting for the disk).
    pub fn store(&self, registry_dir: &Path) {
        let path = snapshot_path(registry_dir);
        if let (Some(dir), Ok(text)) = (path.parent(), serde_json::to_vec(self)) {
            let _ = crate::fsx::create_private_dir(dir)
                .and_then(|()| crate::fsx::replace_cache(&path, &text));
        }
    }
}

/// Start of the line holding byte `at`.
fn line_start(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].rfind('\n').map_or(0, |i| i + 1)
}

/// Where a block that runs up to the header at `next` ends: before the comment and blank
/// lines directly above that header, which belong to it.
fn block_end(text: &str, next: usize) -> usize {
    let mut end = next;
    while end > 0 {
        let prev = line_start(text, end - 1);
        let line = text[prev..end].trim();
        if line.is_empty() || line.starts_with('#') {
            end = prev;
        } else {
            break;
        }
    }
    end
}

/// The layout of `text`, from a toml_edit parse with spans. `None` unless every service
/// type is a standard table (`[types.X]`), which is what the fast path can splice.
pub fn layout(text: &str) -> Option<Layout> {
    let doc = toml_edit::Document::parse(text.to_owned()).ok()?;
    // Every standard table header in the file, in file order, with its owning type.
    let mut headers: Vec<(usize, Option<String>)> = Vec::new();
    fn walk(item: &Item, owner: Option<&str>, out: &mut Vec<(usize, Option<String>)>, text: &str) {
        match item {
            Item::Table(table) => {
                if let Some(span) = table.span() {
                    out.push((line_start(text, span.start), owner.map(str::to_owned)));
                }
                for (_, child) in table.iter() {
                    walk(child, owner, out, text);
                }
            }
            Item::ArrayOfTables(tables) => {
                for t in tables.iter() {
                    if let Some(span) = t.span() {
                        out.push((line_start(text, span.start), owner.map(str::to_owned)));
                    }
                    for (_, child) in t.iter() {
                        walk(child, owner, out, text);
                    }
                }
            }
            _ => {}
        }
    }
    for (key, item) in doc.as_table().iter() {
        if key != "types" {
            walk(item, None, &mut headers, text);
            continue;
        }
        let types = item.as_table()?;
        if let Some(span) = types.span() {
            headers.push((line_start(text, span.start), None));
        }
        for (name, t) in types.iter() {
            // An inline or dotted type cannot be spliced as a block.
            let t_table = t.as_table()?;
            if t_table.is_dotted() || t_table.span().is_none() {
                return None;
            }
            walk(t, Some(name), &mut headers, text);
        }
    }
    headers.sort_by_key(|h| h.0);
    let mut types: BTreeMap<String, Vec<Range<usize>>> = BTreeMap::new();
    let mut i = 0;
    while i < headers.len() {
        let (start, owner) = &headers[i];
        // Consecutive tables of one type (`[types.X]`, `[types.X.instances]`) are one block.
        let mut j = i + 1;
        while j < headers.len() && headers[j].1.is_some() && headers[j].1 == *owner {
            j += 1;
        }
        if let Some(owner) = owner {
            let next = headers.get(j).map_or(text.len(), |h| h.0);
            let end = block_end(text, next).max(*start);
            types.entry(owner.clone()).or_default().push(*start..end);
        }
        i = j;
    }
    Some(Layout { types })
}

/// The blocks of `name` rendered for `new` (`None`: removed), from their current text.
fn render_type(
    name: &str,
    current: &str,
    old: Option<&ServiceType>,
    new: Option<&ServiceType>,
) -> Option<String> {
    let new = new?;
    let mut doc: DocumentMut = current.parse().ok()?;
    let mini = |t: Option<&ServiceType>| Registry {
        types: t
            .map(|t| [(name.to_owned(), t.clone())].into())
            .unwrap_or_default(),
        ..Registry::default()
    };
    edit::sync(&mut doc, &mini(old), &mini(Some(new)));
    let mut out = doc.to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Some(out)
}

/// Applies the service type changes from `old` to `new` to `text` by splicing the changed
/// types' blocks. `None` when the fast path does not apply (settings or rules changed, or a
/// changed type is not in the layout); then the caller takes the full path.
pub fn splice(
    text: &str,
    layout: &Layout,
    old: &Registry,
    new: &Registry,
) -> Option<(String, Layout)> {
    if old.settings != new.settings || old.rules != new.rules || old.strategies != new.strategies {
        return None;
    }
    // Every block of the file that belongs to a changed type, with its replacement.
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    let mut added: Vec<&str> = Vec::new();
    for (name, before, after) in old.changed_types(new) {
        match layout.types.get(name) {
            Some(blocks) => {
                let current: String = blocks.iter().map(|b| &text[b.clone()]).collect();
                let rendered = render_type(name, &current, before, after).unwrap_or_default();
                for (i, b) in blocks.iter().enumerate() {
                    let replacement = if i == 0 {
                        rendered.clone()
                    } else {
                        String::new()
                    };
                    edits.push((b.clone(), replacement));
                }
            }
            None if before.is_none() => added.push(name),
            None => return None,
        }
    }
    edits.sort_by_key(|e| e.0.start);
    let mut out = String::with_capacity(text.len() + 256 * added.len());
    let mut spans: BTreeMap<String, Vec<Range<usize>>> = BTreeMap::new();
    // Walk the file: copy unchanged bytes, substitute edited blocks, track new spans.
    let mut blocks: Vec<(Range<usize>, &str)> = layout
        .types
        .iter()
        .flat_map(|(n, bs)| bs.iter().map(move |b| (b.clone(), n.as_str())))
        .collect();
    blocks.sort_by_key(|b| b.0.start);
    let mut cursor = 0;
    let mut edit_iter = edits.iter().peekable();
    for (range, name) in &blocks {
        out.push_str(&text[cursor..range.start]);
        let start = out.len();
        match edit_iter.peek() {
            Some((r, replacement)) if r.start == range.start => {
                out.push_str(replacement);
                edit_iter.next();
            }
            _ => out.push_str(&text[range.clone()]),
        }
        if out.len() > start {
            spans
                .entry((*name).to_owned())
                .or_default()
                .push(start..out.len());
        }
        cursor = range.end;
    }
    out.push_str(&text[cursor..]);
    for name in added {
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push_str(if out.ends_with('\n') { "\n" } else { "\n\n" });
        }
        let rendered = render_type(name, "", None, new.types.get(name))?;
        let start = out.len();
        out.push_str(&rendered);
        spans
            .entry(name.to_owned())
            .or_default()
            .push(start..out.len());
    }
    spans.retain(|n, _| new.types.contains_key(n));
    Some((out, Layout { types: spans }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::model::{Instance, Origin, PortRange};

    const TEXT: &str = "# top\n[settings] # s\nchunk_size = 3\n\n# about a\n[types.a] # a!\nranges = [[20000, 20009]] # keep\n\n[types.a.instances]\nx = { port = 20000 }\n\n[rules.\"r*\"]\nchunk_size = 2\n\n# about b\n[types.\"b\"]\nranges = [[21000, 21009]]\n";

    #[test]
    fn layout_finds_each_types_blocks_with_comments_above_headers_left_out() {
        let l = layout(TEXT).unwrap();
        let a: Vec<&str> = l.types["a"].iter().map(|r| &TEXT[r.clone()]).collect();
        assert_eq!(
            a,
            [
                "[types.a] # a!\nranges = [[20000, 20009]] # keep\n\n[types.a.instances]\nx = { port = 20000 }\n"
            ]
        );
        assert!(!l.types.contains_key("r*"), "rules are not types");
        assert_eq!(
            &TEXT[l.types["b"][0].clone()],
            "[types.\"b\"]\nranges = [[21000, 21009]]\n"
        );
        assert!(layout("[types]\na = { ranges = [[1, 2]] }\n").is_none());
    }

    #[test]
    fn splice_matches_a_full_parse_and_keeps_every_comment() {
        let old: Registry = toml::from_str(TEXT).unwrap();
        let mut new = old.clone();
        new.types.get_mut("a").unwrap().instances.insert(
            "y".into(),
            Instance {
                port: 20001,
                workspace: Some("/w".into()),
                service: None,
            },
        );
        new.types.remove("b");
        let mut c = ServiceType::new(vec![PortRange::new(22000, 22009)], Origin::Auto);
        c.instances.insert(
            "z".into(),
            Instance {
                port: 22000,
                workspace: None,
                service: None,
            },
        );
        new.types.insert("c".into(), c);
        let l = layout(TEXT).unwrap();
        let (out, new_layout) = splice(TEXT, &l, &old, &new).unwrap();
        assert_eq!(toml::from_str::<Registry>(&out).unwrap(), new, "{out}");
        for comment in ["# top", "# s", "# about a", "# a!", "# keep"] {
            assert!(out.contains(comment), "{comment} lost:\n{out}");
        }
        // The new layout is the layout of the new text: a second splice works on it.
        assert_eq!(Some(new_layout.clone()), layout(&out), "{out}");
        let mut newer = new.clone();
        newer.types.get_mut("c").unwrap().instances.clear();
        newer.types.remove("c");
        let (out2, _) = splice(&out, &new_layout, &new, &newer).unwrap();
        assert_eq!(toml::from_str::<Registry>(&out2).unwrap(), newer, "{out2}");
    }

    #[derive(Debug, Clone)]
    enum Op {
        AddType(u8),
        RemoveType(u8),
        AddInstance(u8, u8),
        RemoveInstance(u8, u8),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0u8..20).prop_map(Op::AddType),
            (0u8..20).prop_map(Op::RemoveType),
            (0u8..20, 0u8..4).prop_map(|(t, i)| Op::AddInstance(t, i)),
            (0u8..20, 0u8..4).prop_map(|(t, i)| Op::RemoveInstance(t, i)),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Any sequence of type changes spliced into the template text reads back as the
        /// registry, keeps every comment of the template, and leaves a layout that is the
        /// layout of the new text.
        #[test]
        fn splices_agree_with_full_parses(ops in proptest::collection::vec(op(), 1..25)) {
            let mut text = crate::registry::store::TEMPLATE.to_owned();
            let mut reg: Registry = toml::from_str(&text).unwrap();
            let mut l = layout(&text).unwrap();
            for op in ops {
                let mut new = reg.clone();
                match op {
                    Op::AddType(t) => {
                        let start = 20000 + u16::from(t) * 10;
                        new.types.entry(format!("t{t}")).or_insert_with(|| {
                            ServiceType::new(vec![PortRange::new(start, start + 3)], Origin::Auto)
                        });
                    }
                    Op::RemoveType(t) => {
                        new.types.remove(&format!("t{t}"));
                    }
                    Op::AddInstance(t, i) => {
                        if let Some(ty) = new.types.get_mut(&format!("t{t}")) {
                            let port = ty.ranges[0].start + u16::from(i);
                            ty.instances.insert(format!("/w{i}"), Instance { port, workspace: Some(format!("/w{i}")), service: Some(format!("p/b{i}")) });
                        }
                    }
                    Op::RemoveInstance(t, i) => {
                        if let Some(ty) = new.types.get_mut(&format!("t{t}")) {
                            ty.instances.remove(&format!("/w{i}"));
                        }
                    }
                }
                let (out, new_layout) = splice(&text, &l, &reg, &new).unwrap();
                proptest::prop_assert_eq!(&toml::from_str::<Registry>(&out).unwrap(), &new);
                let relaid = layout(&out);
                proptest::prop_assert_eq!(Some(&new_layout), relaid.as_ref(), "{}", out);
                for line in crate::registry::store::TEMPLATE.lines().filter(|l| l.trim_start().starts_with('#')) {
                    proptest::prop_assert!(out.contains(line), "lost {:?}", line);
                }
                text = out;
                reg = new;
                l = new_layout;
            }
        }
    }
}
