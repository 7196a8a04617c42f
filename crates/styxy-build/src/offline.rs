//! The constants without cargo-styxy: the workspace's services read from its manifests (the
//! same rules as cargo-styxy's `workspace` module, for what a manifest can say: bins as
//! cargo finds them, `[package.metadata.styxy]`, `[workspace.metadata.styxy] prefix`), each
//! with its pinned port or the port derived from its type's name. The tests check that
//! this says what cargo-styxy says offline.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::rules::{self, Constant};
use crate::toml::{self, Value};

/// A service as the manifests describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Service {
    package: String,
    bin: Option<String>,
    service_type: String,
    env: String,
    pinned: Option<u16>,
    url: Option<String>,
}

impl Service {
    fn label(&self) -> String {
        match &self.bin {
            Some(b) if *b == self.package => b.clone(),
            Some(b) => format!("{}/{b}", self.package),
            None => self.service_type.clone(),
        }
    }
}

/// What the offline constants are made of: the file's text, the ports of the package
/// `package`'s own services (env name, port), and the manifests read (to watch).
#[derive(Debug)]
pub struct Offline {
    pub text: String,
    pub own: Vec<(String, u16)>,
    pub manifests: Vec<PathBuf>,
}

/// The constants of the workspace of the package in `package_dir`.
pub fn constants(package_dir: &Path, package: &str) -> Result<Offline, String> {
    let mut read = Vec::new();
    let (root, services) = services(package_dir, &mut read)?;
    let ports: Vec<u16> = services
        .iter()
        .map(|s| rules::fallback_port(&s.service_type, s.pinned))
        .collect();
    let constants: Vec<Constant<'_>> = services
        .iter()
        .zip(&ports)
        .map(|(s, port)| Constant {
            package: &s.package,
            bin: s.bin.as_deref(),
            service_type: &s.service_type,
            env: &s.env,
            port: *port,
            url: s.url.as_deref(),
        })
        .collect();
    let text = rules::render(&root.to_string_lossy(), &constants);
    let own = constants
        .iter()
        .filter(|c| c.package == package)
        .map(|c| (c.env.to_owned(), c.port))
        .collect();
    read.sort();
    read.dedup();
    Ok(Offline {
        text,
        own,
        manifests: read,
    })
}

/// The most a manifest may hold.
const MANIFEST_CAP: u64 = 1 << 20;

/// A manifest's text, if it is a regular file (a FIFO would hang the build) of at most
/// [`MANIFEST_CAP`].
fn read_text(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let fail = |why: &dyn std::fmt::Display| format!("cannot read {}: {why}", path.display());
    if !fs::metadata(path).map_err(|e| fail(&e))?.is_file() {
        return Err(fail(&"it is not a regular file"));
    }
    let mut text = String::new();
    fs::File::open(path)
        .and_then(|f| f.take(MANIFEST_CAP + 1).read_to_string(&mut text))
        .map_err(|e| fail(&e))?;
    if text.len() as u64 > MANIFEST_CAP {
        return Err(fail(&"it is larger than 1 MiB"));
    }
    Ok(text)
}

fn read_manifest(path: &Path, read: &mut Vec<PathBuf>) -> Result<Value, String> {
    read.push(path.to_path_buf());
    let text = read_text(path)?;
    toml::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The workspace root (canonical) and its services, sorted by env name.
fn services(
    package_dir: &Path,
    read: &mut Vec<PathBuf>,
) -> Result<(PathBuf, Vec<Service>), String> {
    let own_path = package_dir.join("Cargo.toml");
    let own = read_manifest(&own_path, read)?;
    let root_dir = match own.get("package.workspace").and_then(Value::as_str) {
        Some(w) => package_dir.join(w),
        None => {
            let mut found = None;
            for dir in package_dir.ancestors() {
                let m = dir.join("Cargo.toml");
                let has_workspace = if m == own_path {
                    own.get("workspace").is_some()
                } else {
                    m.is_file()
                        && read_text(&m)
                            .ok()
                            .and_then(|t| toml::parse(&t).ok())
                            .is_some_and(|t| t.get("workspace").is_some())
                };
                if has_workspace {
                    found = Some(dir.to_path_buf());
                    break;
                }
            }
            found.unwrap_or_else(|| package_dir.to_path_buf())
        }
    };
    let root_path = root_dir.join("Cargo.toml");
    let root = if root_path == own_path {
        own.clone()
    } else {
        read_manifest(&root_path, read)?
    };
    let strings = |key: &str| -> Vec<String> {
        root.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut member_dirs = Vec::new();
    if root.get("workspace").is_none() {
        member_dirs.push(root_dir.clone());
    } else {
        if root.get("package").is_some() {
            member_dirs.push(root_dir.clone());
        }
        let excluded: Vec<PathBuf> = strings("workspace.exclude")
            .iter()
            .map(|e| root_dir.join(e))
            .collect();
        for pattern in strings("workspace.members") {
            for dir in rules::member_dirs(&root_dir, &pattern)? {
                if dir.join("Cargo.toml").is_file() && !excluded.iter().any(|x| dir.starts_with(x))
                {
                    member_dirs.push(dir);
                }
            }
        }
    }
    member_dirs.sort();
    member_dirs.dedup();
    let prefix = root
        .get("workspace.metadata.styxy.prefix")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut out: Vec<Service> = Vec::new();
    for dir in member_dirs {
        let path = dir.join("Cargo.toml");
        let manifest = if path == own_path {
            own.clone()
        } else if path == root_path {
            root.clone()
        } else {
            read_manifest(&path, read)?
        };
        let Some(name) = manifest.get("package.name").and_then(Value::as_str) else {
            continue; // A virtual manifest.
        };
        let meta = manifest.get("package.metadata.styxy");
        let bin_meta = |bin: &str| meta.and_then(|m| m.get("bins")?.as_table()?.get(bin));
        for bin in bins(&dir, &manifest, name) {
            let m = bin_meta(&bin);
            let text = |key: &str| m.and_then(|m| m.get(key)).and_then(Value::as_str);
            if m.and_then(|m| m.get("skip")) == Some(&Value::Bool(true)) {
                continue;
            }
            let default_name = if bin == name {
                bin.clone()
            } else {
                format!("{name}/{bin}")
            };
            let service_type = text("type")
                .or_else(|| text("service"))
                .map_or(default_name, str::to_owned);
            let pinned = match m.and_then(|m| m.get("port")) {
                Some(Value::Int(n)) => u16::try_from(*n).ok().filter(|p| *p >= 1),
                _ => None,
            };
            out.push(Service {
                package: name.to_owned(),
                env: text("env").map_or_else(|| rules::env_name(&prefix, &bin), str::to_owned),
                bin: Some(bin.clone()),
                service_type,
                pinned,
                url: text("url").map(str::to_owned),
            });
        }
        let extras = meta
            .and_then(|m| m.get("services"))
            .and_then(Value::as_array)
            .unwrap_or_default();
        for extra in extras.iter().filter_map(Value::as_str) {
            if out
                .iter()
                .any(|s| s.bin.is_none() && s.service_type == extra)
            {
                continue; // Another member runs the same extra service: one port for both.
            }
            out.push(Service {
                package: name.to_owned(),
                bin: None,
                service_type: extra.to_owned(),
                env: rules::env_name(&prefix, extra),
                pinned: None,
                url: None,
            });
        }
    }
    out.sort_by(|a, b| a.env.cmp(&b.env).then_with(|| a.label().cmp(&b.label())));
    let root = rules::canonicalize(&root_dir).unwrap_or(root_dir);
    Ok((root, out))
}

/// The bins of the package in `dir` as cargo finds them: `[[bin]]` targets, and unless
/// `autobins = false`, `src/main.rs` (named after the package), `src/bin/NAME.rs` and
/// `src/bin/NAME/main.rs`. Sorted.
fn bins(dir: &Path, manifest: &Value, package: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let explicit = manifest
        .get("bin")
        .and_then(Value::as_array)
        .unwrap_or_default();
    for b in explicit {
        let name = b
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                let path = Path::new(b.get("path")?.as_str()?);
                Some(path.file_stem()?.to_string_lossy().into_owned())
            });
        out.extend(name);
    }
    if manifest.get("package.autobins") == Some(&Value::Bool(false)) {
        return out;
    }
    if dir.join("src/main.rs").is_file() {
        out.insert(package.to_owned());
    }
    if let Ok(entries) = fs::read_dir(dir.join("src/bin")) {
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_some_and(|x| x == "rs") && path.is_file() {
                out.extend(path.file_stem().map(|s| s.to_string_lossy().into_owned()));
            } else if path.join("main.rs").is_file() {
                out.extend(path.file_name().map(|s| s.to_string_lossy().into_owned()));
            }
        }
    }
    out
}
