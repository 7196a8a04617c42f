//! The services of a cargo workspace (spec §3): which bins and extra services it runs, their
//! service type names, env names and instance ids. Fed by `cargo metadata` in the CLI, or by
//! reading the manifests directly in build scripts, which must never run cargo; the naming
//! rules below are the same for both.

#[cfg(feature = "tool")]
pub mod cache;
pub mod manifests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use styxy_build::rules;

use crate::error::{AllocError, Error, Result, WorkspaceError};
use crate::model::InstanceBehavior;
use crate::model::validate;

/// A workspace member as far as ports are concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub name: String,
    pub manifest_path: PathBuf,
    /// Names of its bin targets.
    pub bins: Vec<String>,
    /// `[package.metadata]`, as JSON.
    #[serde(default)]
    pub metadata: serde_json::Value,
}

/// A workspace: its canonical root and members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    /// The canonical workspace root: the instance id of its services.
    pub root: PathBuf,
    pub packages: Vec<Package>,
    /// `[workspace.metadata]`, as JSON.
    #[serde(default)]
    pub metadata: serde_json::Value,
    /// The packages cargo selects at the root with no `-p` (`cargo metadata`'s
    /// `workspace_default_members`: `default-members`, else the root package, else every
    /// member). Empty when not known (a build script reads the manifests, not cargo).
    #[serde(default)]
    pub default_members: Vec<String>,
}

/// The instance id of a checkout: its path, which must be UTF-8 (a lossy conversion would
/// give two checkouts whose paths differ only in invalid bytes one id, and so one port).
pub fn root_id(root: &Path) -> Result<String> {
    root.to_str().map(str::to_owned).ok_or_else(|| Error::from(AllocError::InvalidValue {
        what: "checkout path",
        value: root.to_string_lossy().into_owned(),
        reason: "it is not valid UTF-8, and instance ids are paths; rename the directory, or use `allocate --instance ID`".into(),
    }))
}

/// One service of a workspace and where its port comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    pub package: String,
    /// The bin target; `None` for a `[package.metadata.styxy] services` entry.
    pub bin: Option<String>,
    pub service_type: String,
    /// The instance id in its type: the workspace root, plus `#package/bin` for a service
    /// that joins a shared type with `type = …` (so two such bins get two ports).
    pub instance: String,
    /// Env var and constant name.
    pub env: String,
    /// A team-pinned port (`port = …`).
    pub pinned_port: Option<u16>,
    /// `strict = true`: the pinned port or an error, never another port.
    pub strict: bool,
    /// `url = "http://127.0.0.1:{port}/api"`: a URL variable beside the port's.
    pub url: Option<String>,
    /// `instance = "single" | "multi"`, for a type the service creates.
    pub instance_behavior: Option<InstanceBehavior>,
    /// Joined with `type = …`: the type must exist already.
    pub joins_type: bool,
    /// The zone a new type for it is placed in (`zone = …` of the package or workspace).
    pub zone: Option<String>,
}

impl Service {
    /// `package/bin`, `package` when they are equal, or the extra service's name.
    pub fn label(&self) -> String {
        match &self.bin {
            Some(b) if *b == self.package => b.clone(),
            Some(b) => format!("{}/{b}", self.package),
            None => self.service_type.clone(),
        }
    }

    /// The name of its URL variable, if it has a `url`: the env name with `_PORT` replaced
    /// by `_URL` (`SHOP_API_URL`), else with `_URL` added.
    pub fn url_env(&self) -> Option<String> {
        self.url.as_ref()?;
        Some(rules::url_env(&self.env))
    }

    /// Its URL with `port` in it, if it has a `url`.
    pub fn url_with(&self, port: u16) -> Option<String> {
        self.url
            .as_ref()
            .map(|u| u.replace("{port}", &port.to_string()))
    }

    /// Whether `query` names this service: its type, bin, `package/bin`, or env name.
    pub fn answers_to(&self, query: &str) -> bool {
        query == self.service_type
            || query == self.env
            || query == self.label()
            || self.bin.as_deref() == Some(query)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackageMeta {
    #[serde(default)]
    bins: BTreeMap<String, BinMeta>,
    #[serde(default)]
    services: Vec<String>,
    /// The placement zone of this package's new types.
    #[serde(default)]
    zone: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BinMeta {
    service: Option<String>,
    env: Option<String>,
    #[serde(rename = "type")]
    join: Option<String>,
    port: Option<i64>,
    #[serde(default)]
    strict: bool,
    url: Option<String>,
    instance: Option<String>,
    #[serde(default)]
    skip: bool,
}

/// A `url` template: `{port}` in a URL whose other characters need no quoting in any env
/// flavour (no space, quote, `$`, `#`, backslash or backtick), so that every dotenv parser,
/// compose and the shells read it as written.
fn check_url(url: &str) -> std::result::Result<(), String> {
    if !url.contains("{port}") {
        return Err("has no `{port}` to put the port in".into());
    }
    let rest = url.replace("{port}", "");
    if let Some(bad) = rest
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-._~:/?&=%+@,;!*()[]".contains(*c)))
    {
        return Err(format!(
            "holds {bad:?}; a URL template may hold letters, digits, `{{port}}` and -._~:/?&=%+@,;!*()[]"
        ));
    }
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
struct WorkspaceMeta {
    #[serde(default)]
    prefix: Option<String>,
    /// The placement zone of the workspace's new types.
    #[serde(default)]
    zone: Option<String>,
}

/// An env var and Rust constant name: `[A-Z_][A-Z0-9_]*`, not `PORT` (which `run` sets)
/// and not `CARGO_*` (cargo's own).
pub fn check_env_name(env: &str) -> std::result::Result<(), String> {
    let mut chars = env.chars();
    let ok_start = chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_');
    if !ok_start
        || !env
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(format!(
            "env name {env:?} is not an upper-case identifier ([A-Z_][A-Z0-9_]*)"
        ));
    }
    if env == "PORT" || env.starts_with("CARGO_") {
        return Err(format!(
            "env name {env:?} is reserved (PORT and CARGO_* are cargo's and `run`'s)"
        ));
    }
    Ok(())
}

fn meta_error(p: &Package, key: &str, reason: impl Into<String>) -> Error {
    Error::from(WorkspaceError::Metadata {
        package: p.name.clone(),
        key: key.to_owned(),
        reason: reason.into(),
        manifest: p.manifest_path.clone(),
    })
}

/// The services of the checkout at `root` as its manifests say now, read without cargo (for
/// `gc` and the dashboard, which look at many checkouts, each read as another user may have
/// made it: bounded, no FIFO). A root without a `Cargo.toml` has none; an error says why the
/// manifests cannot be read or are invalid.
pub fn services_at(root: &Path) -> Result<Vec<Service>> {
    if let Err(e) = std::fs::metadata(root.join("Cargo.toml"))
        && e.kind() == std::io::ErrorKind::NotFound
    {
        return Ok(Vec::new());
    }
    let (ws, _) = manifests::discover(root)?;
    services(&ws)
}

/// Checks, before cargo reads them, that the manifests of the workspace of the package in
/// `package_dir` can be read without hanging: each a regular file within the size cap, the
/// members' globs within theirs. Only such errors are returned (a manifest cargo would
/// refuse is cargo's to explain).
pub fn check_readable(package_dir: &Path) -> Result<()> {
    match manifests::discover(package_dir) {
        Err(e @ Error::Workspace(WorkspaceError::Read { .. })) => Err(e),
        _ => Ok(()),
    }
}

/// The workspace's env file: `[workspace.metadata.styxy] env-file`, a path relative to the
/// root that stays inside it (a checkout's metadata must not make the tool write in another
/// folder), else `.env` at the root.
pub fn env_file(ws: &Workspace) -> Result<PathBuf> {
    let named = ws
        .metadata
        .get("styxy")
        .and_then(|m| m.get("env-file"))
        .map(|v| {
            v.as_str().map(str::to_owned).ok_or_else(|| {
                Error::from(WorkspaceError::Manifest {
                    path: ws.root.join("Cargo.toml"),
                    reason: format!("[workspace.metadata.styxy] env-file = {v}: use a relative path such as \".env\""),
                })
            })
        })
        .transpose()?
        .unwrap_or_else(|| ".env".to_owned());
    let path = Path::new(&named);
    let inside = !named.is_empty()
        && path.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        });
    if !inside {
        return Err(Error::from(WorkspaceError::Manifest {
            path: ws.root.join("Cargo.toml"),
            reason: format!(
                "[workspace.metadata.styxy] env-file = {named:?}: the env file is a path inside the workspace (no `..`, not absolute), such as \".env\""
            ),
        }));
    }
    Ok(ws.root.join(path))
}

/// Every service of the workspace (bins not marked `skip`, then extra services), sorted by
/// env name. Errors on invalid metadata, on two services with one env name, and on two
/// services that would hold one instance of one type.
pub fn services(ws: &Workspace) -> Result<Vec<Service>> {
    let ws_meta: WorkspaceMeta = ws
        .metadata
        .get("styxy")
        .map(|v| serde_json::from_value(v.clone()))
        .transpose()
        .map_err(|e| {
            Error::from(WorkspaceError::Manifest {
                path: ws.root.join("Cargo.toml"),
                reason: format!("[workspace.metadata.styxy]: {e}"),
            })
        })?
        .unwrap_or_default();
    let prefix = ws_meta.prefix.unwrap_or_default();
    let ws_zone = ws_meta.zone;
    if !prefix.is_empty() {
        check_env_name(&format!("{prefix}X")).map_err(|reason| {
            Error::from(WorkspaceError::Manifest {
                path: ws.root.join("Cargo.toml"),
                reason: format!("[workspace.metadata.styxy] prefix = {prefix:?}: {reason}"),
            })
        })?;
    }
    let root = root_id(&ws.root)?;
    let mut out: Vec<Service> = Vec::new();
    for p in &ws.packages {
        let meta: PackageMeta = p
            .metadata
            .get("styxy")
            .map(|v| serde_json::from_value(v.clone()))
            .transpose()
            .map_err(|e| meta_error(p, "[package.metadata.styxy]", e.to_string()))?
            .unwrap_or_default();
        if let Some(unknown) = meta.bins.keys().find(|b| !p.bins.contains(b)) {
            return Err(meta_error(
                p,
                &format!("[package.metadata.styxy.bins.{unknown}]"),
                format!("names no bin of the package (bins: {})", p.bins.join(", ")),
            ));
        }
        for bin in &p.bins {
            let m = meta.bins.get(bin);
            let key = |k: &str| format!("[package.metadata.styxy.bins.{bin}] {k}");
            if m.is_some_and(|m| m.skip) {
                continue;
            }
            let m = m.cloned().unwrap_or_default();
            let default_name = if *bin == p.name {
                bin.clone()
            } else {
                format!("{}/{bin}", p.name)
            };
            if m.service.is_some() && m.join.is_some() {
                return Err(meta_error(
                    p,
                    &key("type"),
                    "and `service` both name a type; keep one",
                ));
            }
            let service_type = m
                .join
                .clone()
                .or_else(|| m.service.clone())
                .unwrap_or_else(|| default_name.clone());
            validate::name(&service_type)
                .map_err(|e| meta_error(p, &key("service"), e.to_string()))?;
            let env = match &m.env {
                Some(e) => e.clone(),
                None => rules::env_name(&prefix, bin),
            };
            check_env_name(&env).map_err(|reason| {
                meta_error(p, &key("env"), format!("{reason}; set `env = \"…\"`"))
            })?;
            let pinned_port = match m.port {
                None => None,
                Some(n) => Some(u16::try_from(n).ok().filter(|p| *p >= 1).ok_or_else(|| {
                    meta_error(
                        p,
                        &key(&format!("port = {n}")),
                        "is not a port: ports are 1-65535",
                    )
                })?),
            };
            if m.strict && pinned_port.is_none() {
                return Err(meta_error(
                    p,
                    &key("strict = true"),
                    "needs a pinned port: add `port = …`",
                ));
            }
            if let Some(url) = &m.url {
                check_url(url)
                    .map_err(|reason| meta_error(p, &key(&format!("url = {url:?}")), reason))?;
            }
            let instance_behavior = match m.instance.as_deref() {
                None => None,
                Some("single") => Some(InstanceBehavior::Single),
                Some("multi") => Some(InstanceBehavior::Multi),
                Some(other) => {
                    return Err(meta_error(
                        p,
                        &key(&format!("instance = {other:?}")),
                        "is not an instance behavior: use \"single\" or \"multi\"",
                    ));
                }
            };
            let instance = if m.join.is_some() {
                format!("{root}#{default_name}")
            } else {
                root.clone()
            };
            out.push(Service {
                package: p.name.clone(),
                bin: Some(bin.clone()),
                service_type,
                instance,
                env,
                pinned_port,
                strict: m.strict,
                url: m.url.clone(),
                instance_behavior,
                joins_type: m.join.is_some(),
                zone: meta.zone.clone().or_else(|| ws_zone.clone()),
            });
        }
        for name in &meta.services {
            validate::name(name)
                .map_err(|e| meta_error(p, "[package.metadata.styxy] services", e.to_string()))?;
            if out
                .iter()
                .any(|s| s.bin.is_none() && s.service_type == *name)
            {
                continue; // Another member runs the same extra service: one port for both.
            }
            let env = rules::env_name(&prefix, name);
            check_env_name(&env)
                .map_err(|reason| meta_error(p, "[package.metadata.styxy] services", reason))?;
            out.push(Service {
                package: p.name.clone(),
                bin: None,
                service_type: name.clone(),
                instance: root.clone(),
                env,
                pinned_port: None,
                strict: false,
                url: None,
                instance_behavior: None,
                joins_type: false,
                zone: meta.zone.clone().or_else(|| ws_zone.clone()),
            });
        }
    }
    out.sort_by(|a, b| a.env.cmp(&b.env).then_with(|| a.label().cmp(&b.label())));
    for pair in out.windows(2) {
        if pair[0].env == pair[1].env {
            return Err(Error::from(WorkspaceError::EnvClash {
                env: pair[0].env.clone(),
                first: pair[0].label(),
                second: pair[1].label(),
            }));
        }
    }
    let mut holders: BTreeMap<(&str, &str), &Service> = BTreeMap::new();
    for s in &out {
        if let Some(first) = holders.insert((&s.service_type, &s.instance), s) {
            return Err(Error::from(WorkspaceError::ServiceClash {
                service_type: s.service_type.clone(),
                first: first.label(),
                second: s.label(),
            }));
        }
    }
    if out.is_empty() {
        return Err(Error::from(WorkspaceError::NoServices {
            root: ws.root.clone(),
        }));
    }
    Ok(out)
}

/// The port a service gets when there is no registry (offline, CI, docs.rs): its pinned port,
/// else one derived from its type name, in 10000-32767.
pub fn fallback_port(s: &Service) -> u16 {
    rules::fallback_port(&s.service_type, s.pinned_port)
}

/// The nearest `Cargo.toml` at or above `dir`.
#[cfg(feature = "tool")]
pub fn find_manifest(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .map(|d| d.join("Cargo.toml"))
        .find(|m| m.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(packages: Vec<Package>, metadata: serde_json::Value) -> Workspace {
        Workspace {
            root: PathBuf::from("/ws"),
            packages,
            metadata,
            default_members: Vec::new(),
        }
    }

    fn pkg(name: &str, bins: &[&str], metadata: serde_json::Value) -> Package {
        Package {
            name: name.into(),
            manifest_path: PathBuf::from(format!("/ws/{name}/Cargo.toml")),
            bins: bins.iter().map(|b| (*b).to_owned()).collect(),
            metadata,
        }
    }

    #[test]
    fn default_names() {
        let w = ws(
            vec![
                pkg("shop-api", &["shop-api"], serde_json::Value::Null),
                pkg("shop-web", &["admin", "shop-web"], serde_json::Value::Null),
            ],
            serde_json::Value::Null,
        );
        let s = services(&w).unwrap();
        let got: Vec<(&str, &str)> = s
            .iter()
            .map(|s| (s.service_type.as_str(), s.env.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("shop-web/admin", "ADMIN_PORT"),
                ("shop-api", "SHOP_API_PORT"),
                ("shop-web", "SHOP_WEB_PORT")
            ]
        );
        assert!(s.iter().all(|s| s.instance == "/ws"));
    }

    #[test]
    fn metadata_keys_prefix_and_extras() {
        let meta = serde_json::json!({"styxy": {
            "bins": {
                "api": {"type": "api", "port": 8080, "env": "API_PORT"},
                "tool": {"skip": true},
                "cache": {"service": "my-cache", "instance": "single"}
            },
            "services": ["postgres"]
        }});
        let w = ws(
            vec![pkg("shop", &["api", "tool", "cache"], meta)],
            serde_json::json!({"styxy": {"prefix": "SHOP_"}}),
        );
        let s = services(&w).unwrap();
        let api = s.iter().find(|s| s.env == "API_PORT").unwrap();
        assert_eq!(api.service_type, "api");
        assert_eq!(api.instance, "/ws#shop/api");
        assert_eq!(api.pinned_port, Some(8080));
        let cache = s.iter().find(|s| s.service_type == "my-cache").unwrap();
        assert_eq!(cache.env, "SHOP_CACHE_PORT");
        assert_eq!(cache.instance_behavior, Some(InstanceBehavior::Single));
        assert!(
            s.iter()
                .any(|s| s.env == "SHOP_POSTGRES_PORT" && s.bin.is_none())
        );
        assert!(!s.iter().any(|s| s.bin.as_deref() == Some("tool")));
    }

    #[test]
    fn clashes_and_bad_values_are_errors() {
        let w = ws(
            vec![
                pkg("a", &["api"], serde_json::Value::Null),
                pkg("b", &["api"], serde_json::Value::Null),
            ],
            serde_json::Value::Null,
        );
        let e = services(&w).unwrap_err().to_string();
        assert!(
            e.contains("a/api and b/api") && e.contains("API_PORT"),
            "{e}"
        );
        for (meta, phrase) in [
            (serde_json::json!({"port": 70000}), "port = 70000"),
            (
                serde_json::json!({"instance": "maybe"}),
                "instance = \"maybe\"",
            ),
            (serde_json::json!({"prot": 1}), "unknown field `prot`"),
            (serde_json::json!({"env": "lower"}), "upper-case"),
            (serde_json::json!({"env": "CARGO_X"}), "reserved"),
        ] {
            let w = ws(
                vec![pkg(
                    "p",
                    &["x"],
                    serde_json::json!({"styxy": {"bins": {"x": meta}}}),
                )],
                serde_json::Value::Null,
            );
            let e = services(&w).unwrap_err().to_string();
            assert!(e.contains(phrase) && e.contains("package `p`"), "{e}");
        }
    }
}
