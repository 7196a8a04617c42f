//! Keeps writes to large registries fast: TOML parses at ~15-20 MB/s, so a 10,000-type
//! registry (~1.7 MB) costs ~100 ms per parse. The snapshot ([`super::snapshot`]) spares
//! the parse on reading; the **layout** spares it on writing: the byte span of every service
//! type's tables in the file, taken from a real toml_edit parse, so that a write that
//! changes only service types splices just those blocks (each re-rendered through
//! toml_edit, keeping its comments) and leaves every other byte as it was.

use std::collections::BTreeMap;
use std::ops::Range;

use toml_edit::{DocumentMut, Item};

use crate::registry::edit;
use crate::registry::model::{Registry, ServiceType, TypeChange};

/// Where each service type's tables (`[types.X]`, `[types.X.*]`) are in the file: its
/// blocks, in file order. A block is one table or several consecutive ones of one type; a
/// type whose tables are spread out has several blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    pub blocks: Vec<Block>,
}

/// A byte span of the file that holds tables of the type `name` only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub name: String,
    pub span: Range<usize>,
}

impl Layout {
    /// The text of every block of `name`, in file order.
    fn text_of(&self, text: &str, name: &str) -> Option<String> {
        let mut blocks = self.blocks.iter().filter(|b| b.name == name).peekable();
        blocks.peek()?;
        Some(blocks.map(|b| &text[b.span.clone()]).collect())
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
    layout_of(&toml_edit::Document::parse(text).ok()?, text)
}

/// The layout of `doc`, parsed from `text`.
pub fn layout_of(doc: &toml_edit::Document<&str>, text: &str) -> Option<Layout> {
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
    let mut blocks = Vec::new();
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
            blocks.push(Block {
                name: owner.clone(),
                span: *start..end,
            });
        }
        i = j;
    }
    Some(Layout { blocks })
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

/// Applies the service type changes from `old` to `new` (`changes`, as
/// [`Registry::changed_types`] lists them) to `text` by splicing the changed types' blocks.
/// `None` when the fast path does not apply (settings or rules changed, or a changed type is
/// not in the layout); then the caller takes the full path.
pub fn splice(
    text: &str,
    layout: Layout,
    old: &Registry,
    new: &Registry,
    changes: &[TypeChange<'_>],
) -> Option<(String, Layout)> {
    if old.settings != new.settings || old.rules != new.rules || old.strategies != new.strategies {
        return None;
    }
    // The changed types found in the file, with their new text (empty: removed); and the
    // new types, appended at the end.
    let mut rendered: BTreeMap<&str, String> = BTreeMap::new();
    let mut added: Vec<&str> = Vec::new();
    for &(name, before, after) in changes {
        match layout.text_of(text, name) {
            Some(current) => {
                let block = render_type(name, &current, before, after).unwrap_or_default();
                rendered.insert(name, block);
            }
            None if before.is_none() => added.push(name),
            None => return None,
        }
    }
    let mut out = String::with_capacity(text.len() + 256 * added.len());
    let mut blocks = Vec::with_capacity(layout.blocks.len() + added.len());
    // Walk the file: copy unchanged bytes, put a changed type's new text in its first
    // block (and drop its others), and note where every block lands.
    let mut cursor = 0;
    for Block { name, span } in layout.blocks {
        out.push_str(&text[cursor..span.start]);
        let start = out.len();
        match rendered.get_mut(name.as_str()) {
            Some(replacement) => out.push_str(&std::mem::take(replacement)),
            None => out.push_str(&text[span.clone()]),
        }
        if out.len() > start {
            blocks.push(Block {
                name,
                span: start..out.len(),
            });
        }
        cursor = span.end;
    }
    out.push_str(&text[cursor..]);
    for name in added {
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push_str(if out.ends_with('\n') { "\n" } else { "\n\n" });
        }
        let after = changes.iter().find(|c| c.0 == name).and_then(|c| c.2);
        let rendered = render_type(name, "", None, after)?;
        let start = out.len();
        out.push_str(&rendered);
        blocks.push(Block {
            name: name.to_owned(),
            span: start..out.len(),
        });
    }
    Some((out, Layout { blocks }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::model::{Instance, Origin, PortRange};

    const TEXT: &str = "# top\n[settings] # s\nchunk_size = 3\n\n# about a\n[types.a] # a!\nranges = [[20000, 20009]] # keep\n\n[types.a.instances]\nx = { port = 20000 }\n\n[rules.\"r*\"]\nchunk_size = 2\n\n# about b\n[types.\"b\"]\nranges = [[21000, 21009]]\n";

    #[test]
    fn layout_finds_each_types_blocks_with_comments_above_headers_left_out() {
        let l = layout(TEXT).unwrap();
        let blocks: Vec<(&str, &str)> = l
            .blocks
            .iter()
            .map(|b| (b.name.as_str(), &TEXT[b.span.clone()]))
            .collect();
        assert_eq!(
            blocks,
            [
                (
                    "a",
                    "[types.a] # a!\nranges = [[20000, 20009]] # keep\n\n[types.a.instances]\nx = { port = 20000 }\n"
                ),
                ("b", "[types.\"b\"]\nranges = [[21000, 21009]]\n")
            ],
            "rules are not types"
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
        let (out, new_layout) = splice(
            TEXT,
            l,
            &old,
            &new,
            &old.changed_types(&new).collect::<Vec<_>>(),
        )
        .unwrap();
        assert_eq!(toml::from_str::<Registry>(&out).unwrap(), new, "{out}");
        for comment in ["# top", "# s", "# about a", "# a!", "# keep"] {
            assert!(out.contains(comment), "{comment} lost:\n{out}");
        }
        // The new layout is the layout of the new text: a second splice works on it.
        assert_eq!(Some(new_layout.clone()), layout(&out), "{out}");
        let mut newer = new.clone();
        newer.types.get_mut("c").unwrap().instances.clear();
        newer.types.remove("c");
        let (out2, _) = splice(
            &out,
            new_layout,
            &new,
            &newer,
            &new.changed_types(&newer).collect::<Vec<_>>(),
        )
        .unwrap();
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
                let (out, new_layout) = splice(&text, l, &reg, &new, &reg.changed_types(&new).collect::<Vec<_>>()).unwrap();
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
