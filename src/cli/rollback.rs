//! `scale rollback SERVICE -f FILE`: put a service's replicas back on the spec they ran
//! before their last replacement, as a rollout (drained, batched, health-gated).

use std::time::Duration;

use super::apply::{TerminalApply, conclude};
use super::interrupt::{Interrupt, Wording};
use super::locking::{parse_lock_timeout, with_lock};
use super::{Global, connect, load_desired};
use crate::exec::ExecOptions;
use crate::ops;
use crate::ui::Ui;

const WORDING: Wording<'static> = Wording {
    stopping: "interrupt: letting running actions finish, starting nothing new (Ctrl-C again to exit now)",
    resume: "scale rollback",
};

/// Arguments of `scale rollback`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service to roll back.
    pub service: String,
    /// Don't ask before replacing anything.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// How long to wait while another scale command changes the project (0: don't wait).
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = parse_lock_timeout)]
    pub lock_timeout: Duration,
}

/// Rolls back; exit 1 when nothing could be rolled back or a step failed.
pub async fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    // The blueprint comes from the global `-f FILE` (or compose.yaml here): everything but
    // SERVICE's replicas stays as it says.
    let loaded = load_desired(None, global, ui)?;
    let engine = connect().await?;
    let mut interrupt = Interrupt::listen()?;
    with_lock(&engine, &loaded.project, "rollback", args.lock_timeout, &mut interrupt, async |interrupt| {
        let mut hooks =
            TerminalApply { ui, interrupt, opts: ExecOptions::default(), wording: WORDING, confirm: !args.yes };
        let applied = ops::rollback::rollback(&engine, &loaded.desired, &args.service, &mut hooks).await?;
        Ok(conclude(ui, &loaded.project, applied))
    })
    .await
}
