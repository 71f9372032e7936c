//! `scale exec SERVICE[-N] -- CMD…`: run a command in one of the project's containers
//! (a service's first replica, or the one named), its output streaming through; exits with
//! the command's status. No TTY and no stdin: for scripts and quick looks.

use std::path::PathBuf;

use anyhow::Context;

use super::logs::{pick, short_name};
use super::{Global, connect, project_of};
use crate::engine::Engine;
use crate::observed::RunState;
use crate::ui::Ui;

/// Arguments of `scale exec`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A service (its lowest-numbered running replica) or one container (`web-2`).
    pub target: String,
    /// The blueprint file naming the project (instead of -p).
    #[arg(long = "blueprint", value_name = "FILE")]
    pub blueprint: Option<PathBuf>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, num_args = 1.., value_name = "CMD")]
    pub command: Vec<String>,
}

/// Runs the command; its exit status (126 when it could not be started).
pub async fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let project = project_of(args.blueprint.as_ref(), global, ui)?;
    let engine = connect().await?;
    let observed = engine.observe(&project).await.context("cannot read the project's state from the engine")?;
    let mut chosen = pick(&observed, Some(&args.target))?;
    chosen.sort_by_key(|c| (c.state != RunState::Running, c.replica().unwrap_or(u32::MAX)));
    let container = chosen[0];
    if container.state != RunState::Running {
        anyhow::bail!(
            "{} is {}, not running: `scale apply` starts it again",
            short_name(&project, &container.name),
            container.state.as_str()
        );
    }
    let code = crate::engine::tools::exec_streaming(&engine, &container.id, &container.name, &args.command).await?;
    // The engine says 126/127 itself for a command it could not start.
    Ok(u8::try_from(code & 0xff).unwrap_or(1))
}
