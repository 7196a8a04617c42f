//! `cargo styxy mcp`: a Model Context Protocol server on stdio (the `rmcp` crate), so that a
//! coding agent asks for ports, starts a service, waits for it and stops it without being
//! taught the CLI. Each tool runs this binary's own command with `--format json` (the same
//! answers, errors and exit codes as the CLI), and a failed command is a tool error whose
//! text is the command's error, fix included: the server itself never fails for it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData, ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

/// Serves the tools on stdin/stdout until the client goes away.
pub fn serve(registry: Option<PathBuf>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let server = Styxy::new(registry)?;
        let running = server.clone();
        let service = server.serve(rmcp::transport::stdio()).await?;
        let _ = service.waiting().await;
        running.stop_all();
        anyhow::Ok(())
    })
}

/// Where a tool works: a workspace by its manifest (the server's directory's when left out).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Checkout {
    /// Path to the workspace's (or a member's) Cargo.toml; the server's working directory's
    /// workspace when left out
    #[serde(default)]
    pub manifest_path: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortArgs {
    /// The service: a package name, `package/bin`, an env name (`SHOP_API_PORT`) or an
    /// extra service's name
    pub service: String,
    #[serde(default)]
    pub manifest_path: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvArgs {
    /// dotenv (the default), shell, fish, powershell, compose or json
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub manifest_path: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartArgs {
    /// The package of the bin to run (needed when the workspace has several)
    #[serde(default)]
    pub package: Option<String>,
    /// The bin to run (needed when the package has several)
    #[serde(default)]
    pub bin: Option<String>,
    /// Arguments for the bin
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub manifest_path: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitArgs {
    /// The services to wait for (as `port` names them)
    pub services: Vec<String>,
    /// How long at most: seconds or a duration (`30s`, `2m`); 30 s when left out
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub manifest_path: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StopArgs {
    /// The pid `start` returned
    pub pid: u32,
}

/// A service started by `start`: `cargo styxy run` in a process group of its own.
#[derive(Debug)]
struct Started {
    child: Child,
    log: PathBuf,
    key: String,
}

#[derive(Debug, Clone)]
pub struct Styxy {
    registry: Option<PathBuf>,
    /// Logs of started services.
    logs: PathBuf,
    started: Arc<Mutex<HashMap<u32, Started>>>,
    tool_router: ToolRouter<Self>,
}

/// The text of a tool's answer: the command's JSON, or its error as a tool error.
fn answer(out: std::process::Output) -> CallToolResult {
    if out.status.success() {
        CallToolResult::success(vec![ContentBlock::text(
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )])
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.trim();
        CallToolResult::error(vec![ContentBlock::text(if err.is_empty() {
            format!("the command failed ({})", out.status)
        } else {
            err.to_owned()
        })])
    }
}

fn failed(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

#[tool_router]
impl Styxy {
    fn new(registry: Option<PathBuf>) -> anyhow::Result<Self> {
        let logs = std::env::temp_dir().join(format!("cargo-styxy-mcp-{}", std::process::id()));
        Ok(Self {
            registry,
            logs,
            started: Arc::default(),
            tool_router: Self::tool_router(),
        })
    }

    /// This binary's `styxy ARGS` on the server's registry.
    fn command(&self, args: &[&str], manifest: Option<&str>) -> anyhow::Result<Command> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("styxy").args(args).stdin(Stdio::null());
        if let Some(dir) = &self.registry {
            cmd.arg("--registry").arg(dir);
        }
        if let Some(m) = manifest {
            cmd.args(["--manifest-path", m]);
        }
        Ok(cmd)
    }

    async fn run(&self, args: Vec<String>, manifest: Option<String>) -> CallToolResult {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let cmd = self.command(&args, manifest.as_deref());
        let out =
            tokio::task::spawn_blocking(move || cmd?.output().map_err(anyhow::Error::from)).await;
        match out {
            Ok(Ok(out)) => answer(out),
            Ok(Err(e)) => failed(format!("cannot run cargo-styxy: {e}")),
            Err(e) => failed(format!("the command did not finish: {e}")),
        }
    }

    #[tool(
        description = "The checkout's services and their ports, assigning any not assigned yet. Returns JSON {\"workspace\", \"services\": [{\"service_type\", \"package\", \"bin\", \"env\", \"port\", \"ranges\", \"instance_behavior\", \"auto_allocated\"}]}: `env` is the variable name (SHOP_API_PORT), `port` the port the service must listen on. The same ports every time for this checkout; other checkouts get others."
    )]
    async fn ports(
        &self,
        Parameters(c): Parameters<Checkout>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(self
            .run(
                vec!["assign".into(), "--format".into(), "json".into()],
                c.manifest_path,
            )
            .await)
    }

    #[tool(
        description = "Returns one service's port as a number alone (\"11550\"), assigning it if needed. The service is a package name, `package/bin`, an env name or an extra service's name."
    )]
    async fn port(&self, Parameters(a): Parameters<PortArgs>) -> Result<CallToolResult, ErrorData> {
        Ok(self
            .run(vec!["port".into(), a.service], a.manifest_path)
            .await)
    }

    #[tool(
        description = "The checkout's env file text: every service's port variable (and `…_URL` where the service has a URL template). `format`: dotenv (default), shell, fish, powershell, compose or json. Returns the text, to source or to write to a file."
    )]
    async fn env(&self, Parameters(a): Parameters<EnvArgs>) -> Result<CallToolResult, ErrorData> {
        let format = a.format.unwrap_or_else(|| "dotenv".into());
        Ok(self
            .run(
                vec!["env".into(), "--format".into(), format],
                a.manifest_path,
            )
            .await)
    }

    #[tool(
        description = "Starts a bin of the checkout in the background as `cargo styxy run` does (cargo run with the port variables and PORT set to its own port; it holds the port while it lives). Returns JSON {\"pid\", \"port\", \"log\"}: `pid` names it to `stop`, `log` is the file its output goes to. Then call `wait`. A second start of a service that runs is refused."
    )]
    async fn start(
        &self,
        Parameters(a): Parameters<StartArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let mut select = Vec::new();
        if let Some(p) = &a.package {
            select.extend(["-p".to_owned(), p.clone()]);
        }
        if let Some(b) = &a.bin {
            select.extend(["--bin".to_owned(), b.clone()]);
        }
        let key = format!(
            "{} {}",
            a.manifest_path.as_deref().unwrap_or("."),
            select.join(" ")
        );
        if let Ok(mut started) = self.started.lock() {
            started.retain(|_, s| s.child.try_wait().ok().flatten().is_none());
            if let Some((pid, _)) = started.iter().find(|(_, s)| s.key == key) {
                return Ok(failed(format!(
                    "it runs already as pid {pid}; stop it first (tool `stop` with that pid)"
                )));
            }
        }
        // Its port, assigned now: a refusal (no such bin, several) comes back here.
        let mut port_args = vec!["port".to_owned()];
        port_args.push(match (&a.package, &a.bin) {
            (Some(p), Some(b)) => format!("{p}/{b}"),
            (Some(p), None) => p.clone(),
            (None, Some(b)) => b.clone(),
            (None, None) => String::new(),
        });
        let port = if port_args[1].is_empty() {
            None
        } else {
            let answer = self.run(port_args, a.manifest_path.clone()).await;
            if answer.is_error == Some(true) {
                return Ok(answer);
            }
            text_of(&answer).trim().parse::<u16>().ok()
        };
        let mut args = vec!["run".to_owned()];
        args.extend(select);
        if !a.args.is_empty() {
            args.push("--".into());
            args.extend(a.args);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let spawned = (|| -> anyhow::Result<(Child, PathBuf)> {
            std::fs::create_dir_all(&self.logs)?;
            let log = self.logs.join(format!(
                "{}.log",
                a.bin
                    .as_deref()
                    .or(a.package.as_deref())
                    .unwrap_or("service")
            ));
            let out = std::fs::File::create(&log)?;
            let mut cmd = self.command(&args, a.manifest_path.as_deref())?;
            cmd.stdout(out.try_clone()?).stderr(out);
            // Its own process group: `stop` ends run, cargo and the bin together.
            styxy::os::own_process_group(&mut cmd);
            Ok((cmd.spawn()?, log))
        })();
        let (child, log) = match spawned {
            Ok(s) => s,
            Err(e) => return Ok(failed(format!("cannot start cargo-styxy run: {e}"))),
        };
        let pid = child.id();
        if let Ok(mut started) = self.started.lock() {
            started.insert(
                pid,
                Started {
                    child,
                    log: log.clone(),
                    key,
                },
            );
        }
        Ok(CallToolResult::success(vec![ContentBlock::text(
            serde_json::json!({ "pid": pid, "port": port, "log": log }).to_string(),
        )]))
    }

    #[tool(
        description = "Waits until the named services of the checkout listen on their ports. Returns JSON {\"services\": [{\"service\", \"port\", \"listening\", \"waited_ms\"}]} once all listen; a tool error naming what never came up after `timeout` (default 30 s)."
    )]
    async fn wait(&self, Parameters(a): Parameters<WaitArgs>) -> Result<CallToolResult, ErrorData> {
        if a.services.is_empty() {
            return Ok(failed("name at least one service in `services`"));
        }
        let mut args = vec!["wait".to_owned()];
        args.extend(a.services);
        args.extend(["--format".into(), "json".into()]);
        if let Some(t) = a.timeout {
            args.extend(["--timeout".into(), t]);
        }
        Ok(self.run(args, a.manifest_path).await)
    }

    #[tool(
        description = "Stops a service that `start` started (its whole process group: run, cargo and the bin) and frees its lease. Returns JSON {\"pid\", \"exit_code\", \"log\"}."
    )]
    async fn stop(&self, Parameters(a): Parameters<StopArgs>) -> Result<CallToolResult, ErrorData> {
        let started = self.started.lock().ok().and_then(|mut s| s.remove(&a.pid));
        let Some(mut s) = started else {
            return Ok(failed(format!(
                "no service started by this server has pid {}; `start` returns the pid to give",
                a.pid
            )));
        };
        let done = tokio::task::spawn_blocking(move || {
            let code = styxy::os::end_process_group(&mut s.child);
            (code, s.log)
        })
        .await;
        Ok(match done {
            Ok((code, log)) => CallToolResult::success(vec![ContentBlock::text(
                serde_json::json!({ "pid": a.pid, "exit_code": code, "log": log }).to_string(),
            )]),
            Err(e) => failed(format!("cannot stop pid {}: {e}", a.pid)),
        })
    }

    #[tool(
        description = "The whole registry: every service type with its ranges, instances (port, checkout, whether it listens now) and leases. Returns the JSON of `cargo styxy list --format json`."
    )]
    async fn list(&self) -> Result<CallToolResult, ErrorData> {
        Ok(self
            .run(vec!["list".into(), "--format".into(), "json".into()], None)
            .await)
    }

    #[tool(
        description = "Releases every port of the checkout (its instances leave the registry; another checkout may get them). Returns JSON of what was released."
    )]
    async fn release(
        &self,
        Parameters(c): Parameters<Checkout>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(self
            .run(
                vec![
                    "release".into(),
                    "--workspace".into(),
                    "--format".into(),
                    "json".into(),
                ],
                c.manifest_path,
            )
            .await)
    }
}

impl Styxy {
    /// Ends every service this server started (the client went away).
    fn stop_all(&self) {
        if let Ok(mut started) = self.started.lock() {
            for (_, mut s) in started.drain() {
                styxy::os::end_process_group(&mut s.child);
            }
        }
    }
}

fn text_of(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| match c {
            ContentBlock::Text(t) => Some(t.text.clone()),
            _ => None,
        })
        .collect()
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Styxy {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("cargo-styxy", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Ports for this machine's dev services, stable per checkout and unique across checkouts. Call `ports` for the checkout's services and ports (env names included), `start` to run a bin on its port, `wait` until it listens, `stop` with the pid `start` returned. Tools take `manifest_path` to work on another checkout than the server's directory.",
            )
    }
}
