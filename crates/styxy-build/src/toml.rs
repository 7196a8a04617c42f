//! Just enough TOML to read the parts of a `Cargo.toml` the offline constants need:
//! tables, arrays of tables, dotted and quoted keys, strings (basic, literal, multi-line),
//! integers, booleans, arrays and inline tables. Other values (floats, dates) are skipped
//! as [`Value::Other`]. A manifest it cannot read is an error naming the line; cargo itself
//! reports the same file better, so the build fails there anyway.

use std::collections::BTreeMap;

/// A TOML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Array(Vec<Value>),
    Table(Table),
    /// A float or a date: read past, not kept.
    Other,
}

pub type Table = BTreeMap<String, Value>;

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_table(&self) -> Option<&Table> {
        match self {
            Self::Table(t) => Some(t),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Self::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The value at the dotted `path` under this table.
    pub fn get(&self, path: &str) -> Option<&Value> {
        path.split('.')
            .try_fold(self, |v, key| v.as_table()?.get(key))
    }
}

/// Reads a document; the error says the line and what was expected.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let mut root = Table::new();
    // The table that `key = value` lines go into, as a path from the root (an array of
    // tables stands for its last element).
    let mut current: Vec<String> = Vec::new();
    loop {
        p.skip_blank_lines();
        let Some(c) = p.peek() else { break };
        if c == b'[' {
            let array = p.s.get(p.i + 1) == Some(&b'[');
            p.i += if array { 2 } else { 1 };
            let path = p.key()?;
            p.expect(b']')?;
            if array {
                p.expect(b']')?;
            }
            p.end_of_line()?;
            let (last, parents) = path.split_last().ok_or_else(|| p.error("a table name"))?;
            let parent = table_at(&mut root, parents).map_err(|e| p.error(&e))?;
            if array {
                let slot = parent
                    .entry(last.clone())
                    .or_insert_with(|| Value::Array(Vec::new()));
                match slot {
                    Value::Array(a) => a.push(Value::Table(Table::new())),
                    _ => return Err(p.error("an array of tables")),
                }
            } else {
                parent
                    .entry(last.clone())
                    .or_insert_with(|| Value::Table(Table::new()));
            }
            current = path;
        } else {
            let path = p.key()?;
            p.expect(b'=')?;
            let value = p.value()?;
            p.end_of_line()?;
            let table = table_at(&mut root, &current).map_err(|e| p.error(&e))?;
            insert(table, &path, value).map_err(|e| p.error(&e))?;
        }
    }
    Ok(Value::Table(root))
}

/// The table at `path` under `root`, made where missing (the last element of an array of
/// tables stands for the array).
fn table_at<'t>(root: &'t mut Table, path: &[String]) -> Result<&'t mut Table, String> {
    let mut t = root;
    for key in path {
        let slot = t
            .entry(key.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        t = match slot {
            Value::Table(inner) => inner,
            Value::Array(a) => match a.last_mut() {
                Some(Value::Table(inner)) => inner,
                _ => return Err(format!("`{key}` is not a table")),
            },
            _ => return Err(format!("`{key}` is not a table")),
        };
    }
    Ok(t)
}

fn insert(table: &mut Table, path: &[String], value: Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("a key")?;
    table_at(table, parents)?.insert(last.clone(), value);
    Ok(())
}

struct Parser<'s> {
    s: &'s [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn error(&self, expected: &str) -> String {
        let line = self.s[..self.i.min(self.s.len())]
            .iter()
            .filter(|c| **c == b'\n')
            .count()
            + 1;
        format!("line {line}: expected {expected}")
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn skip_comment(&mut self) {
        if self.peek() == Some(b'#') {
            while !matches!(self.peek(), None | Some(b'\n')) {
                self.i += 1;
            }
        }
    }

    /// Spaces, comments and line ends.
    fn skip_blank_lines(&mut self) {
        loop {
            self.skip_spaces();
            self.skip_comment();
            match self.peek() {
                Some(b'\n' | b'\r') => self.i += 1,
                _ => return,
            }
        }
    }

    fn end_of_line(&mut self) -> Result<(), String> {
        self.skip_spaces();
        self.skip_comment();
        match self.peek() {
            None | Some(b'\n' | b'\r') => Ok(()),
            _ => Err(self.error("the end of the line")),
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        self.skip_spaces();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.error(&format!("`{}`", char::from(c))))
        }
    }

    /// A dotted key: `a.b."c d".'e'`.
    fn key(&mut self) -> Result<Vec<String>, String> {
        let mut path = Vec::new();
        loop {
            self.skip_spaces();
            let part = match self.peek() {
                Some(b'"') => self.basic_string()?,
                Some(b'\'') => self.literal_string()?,
                _ => {
                    let start = self.i;
                    while self
                        .peek()
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
                    {
                        self.i += 1;
                    }
                    if self.i == start {
                        return Err(self.error("a key"));
                    }
                    String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
                }
            };
            path.push(part);
            self.skip_spaces();
            if self.peek() == Some(b'.') {
                self.i += 1;
            } else {
                return Ok(path);
            }
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        self.skip_spaces();
        match self.peek() {
            Some(b'"') => self.basic_string().map(Value::Str),
            Some(b'\'') => self.literal_string().map(Value::Str),
            Some(b'[') => self.array(),
            Some(b'{') => self.inline_table(),
            Some(_) => {
                let start = self.i;
                while self
                    .peek()
                    .is_some_and(|c| !matches!(c, b',' | b']' | b'}' | b'#' | b'\n' | b'\r'))
                {
                    self.i += 1;
                }
                let word = String::from_utf8_lossy(&self.s[start..self.i])
                    .trim()
                    .to_owned();
                Ok(match word.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    "" => return Err(self.error("a value")),
                    w => w.replace('_', "").parse().map_or(Value::Other, Value::Int),
                })
            }
            None => Err(self.error("a value")),
        }
    }

    fn array(&mut self) -> Result<Value, String> {
        self.i += 1;
        let mut items = Vec::new();
        loop {
            self.skip_blank_lines();
            if self.peek() == Some(b']') {
                self.i += 1;
                return Ok(Value::Array(items));
            }
            items.push(self.value()?);
            self.skip_blank_lines();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {}
                _ => return Err(self.error("`,` or `]`")),
            }
        }
    }

    fn inline_table(&mut self) -> Result<Value, String> {
        self.i += 1;
        let mut table = Table::new();
        loop {
            self.skip_spaces();
            if self.peek() == Some(b'}') {
                self.i += 1;
                return Ok(Value::Table(table));
            }
            let path = self.key()?;
            self.expect(b'=')?;
            let value = self.value()?;
            insert(&mut table, &path, value).map_err(|e| self.error(&e))?;
            self.skip_spaces();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => return Err(self.error("`,` or `}`")),
            }
        }
    }

    /// `"…"` or `"""…"""`, with escapes.
    fn basic_string(&mut self) -> Result<String, String> {
        let multi = self.s[self.i..].starts_with(b"\"\"\"");
        self.i += if multi { 3 } else { 1 };
        if multi && self.peek() == Some(b'\n') {
            self.i += 1;
        }
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.error("the end of the string")),
                Some(b'"') if !multi => {
                    self.i += 1;
                    break;
                }
                Some(b'"') if self.s[self.i..].starts_with(b"\"\"\"") => {
                    self.i += 3;
                    break;
                }
                Some(b'\n') if !multi => return Err(self.error("the end of the string")),
                Some(b'\\') => {
                    self.i += 1;
                    let c = self.peek().ok_or_else(|| self.error("an escape"))?;
                    self.i += 1;
                    match c {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'"' | b'\\' => out.push(c),
                        b'u' | b'U' => {
                            let len = if c == b'u' { 4 } else { 8 };
                            let hex = self
                                .s
                                .get(self.i..self.i + len)
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .and_then(char::from_u32)
                                .ok_or_else(|| self.error("a unicode escape"))?;
                            self.i += len;
                            out.extend_from_slice(hex.encode_utf8(&mut [0; 4]).as_bytes());
                        }
                        // A line-ending backslash: the line break and leading spaces go.
                        b'\n' | b' ' | b'\t' | b'\r' if multi => {
                            while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                                self.i += 1;
                            }
                        }
                        _ => return Err(self.error("a known escape")),
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// `'…'` or `'''…'''`, taken as written.
    fn literal_string(&mut self) -> Result<String, String> {
        let multi = self.s[self.i..].starts_with(b"'''");
        let quote: &[u8] = if multi { b"'''" } else { b"'" };
        self.i += quote.len();
        if multi && self.peek() == Some(b'\n') {
            self.i += 1;
        }
        let start = self.i;
        loop {
            if self.s[self.i..].starts_with(quote) {
                let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += quote.len();
                return Ok(text);
            }
            match self.peek() {
                None => return Err(self.error("the end of the string")),
                Some(b'\n') if !multi => return Err(self.error("the end of the string")),
                _ => self.i += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_a_manifest_holds() {
        let doc = parse(
            r#"
# a comment
[package]
name = "shop-api" # trailing
version = "0.1.0"
description = """
Two lines, "quoted" \
  and joined."""
edition.workspace = true
autobins = false
rust = 1.5

[[bin]]
name = 'a'
path = "src/a.rs"

[[bin]]
name = "b"

[workspace]
members = [
  "crates/*", # a glob
  'tools',
]

[package.metadata.styxy.bins.a]
port = 8_080
url = "http://127.0.0.1:{port}/\u00e9"
"quoted key" = { skip = true, env = "X" }
"#,
        )
        .unwrap();
        assert_eq!(doc.get("package.name").unwrap().as_str(), Some("shop-api"));
        assert_eq!(
            doc.get("package.description").unwrap().as_str(),
            Some("Two lines, \"quoted\" and joined.")
        );
        assert_eq!(
            doc.get("package.edition.workspace"),
            Some(&Value::Bool(true))
        );
        assert_eq!(doc.get("package.rust"), Some(&Value::Other));
        let bins = doc.get("bin").unwrap().as_array().unwrap();
        assert_eq!(bins.len(), 2);
        assert_eq!(bins[1].get("name").unwrap().as_str(), Some("b"));
        let members = doc.get("workspace.members").unwrap().as_array().unwrap();
        assert_eq!(members[1].as_str(), Some("tools"));
        let a = doc.get("package.metadata.styxy.bins.a").unwrap();
        assert_eq!(a.get("port"), Some(&Value::Int(8080)));
        assert_eq!(
            a.get("url").unwrap().as_str(),
            Some("http://127.0.0.1:{port}/é")
        );
        assert_eq!(
            a.as_table().unwrap()["quoted key"]
                .get("env")
                .unwrap()
                .as_str(),
            Some("X")
        );
    }

    #[test]
    fn says_the_line_it_cannot_read() {
        let err = parse("[package]\nname = \"x\"\nversion = \"1\n").unwrap_err();
        assert!(err.starts_with("line 3:"), "{err}");
        assert!(parse("a = [1, 2").is_err());
        assert!(parse("[a]]\n").is_err());
    }
}
