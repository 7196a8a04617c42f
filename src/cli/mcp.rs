//! `mcp`: the Model Context Protocol server for coding agents.

use clap::Args;

use crate::cli::Ctx;

/// Serve the Model Context Protocol on stdio, for coding agents
///
/// An agent's tools: `ports` (the checkout's services, env names and ports, assigning as
/// needed), `port`, `env` (the env file's text in a flavour), `start` (a bin in the
/// background as `run` starts it: pid, port, log file), `wait`, `stop` (its whole process
/// group), `list` and `release`. Errors come back as tool errors with the fix. Register it
/// with the agent, e.g. `claude mcp add styxy -- cargo styxy mcp`.
#[derive(Debug, Args)]
pub struct McpArgs {}

pub fn run(ctx: &Ctx, _args: McpArgs) -> anyhow::Result<()> {
    crate::mcp::serve(Some(ctx.store.dir().to_path_buf()))
}
