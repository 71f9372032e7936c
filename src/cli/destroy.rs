//! `scale destroy [FILE]`: remove the project's containers and networks; volumes only with
//! `--volumes`. Running it twice is fine.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;

use super::interrupt::{self, Interrupt, Wording};
use super::locking::{parse_lock_timeout, with_lock};
use super::{Global, connect, interactive, project_of};
use crate::engine::Engine;
use crate::engine::docker::DockerEngine;
use crate::exec::ExecOptions;
use crate::ui::Ui;

/// What destroy says on Ctrl-C while it removes things.
const WORDING: Wording<'static> = Wording {
    stopping: "interrupt: letting running removals finish, starting nothing new (Ctrl-C again to exit now)",
    resume: "scale destroy",
};

/// Arguments of `scale destroy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The blueprint file (optional with -p).
    pub file: Option<PathBuf>,
    /// Also delete the project's volumes and the data in them.
    #[arg(long)]
    pub volumes: bool,
    /// Don't ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// How long to wait while another scale command (apply, destroy, failover, a watch pass)
    /// changes the project (0: don't wait).
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = parse_lock_timeout)]
    pub lock_timeout: std::time::Duration,
    /// How many containers are stopped (each with its own grace period) and removed at
    /// once. Stopping tears a container's network endpoints down, and Docker 20.10 leaked an
    /// endpoint (the network then cannot be removed until dockerd restarts) with 16 or more
    /// at once, and with every container signalled first: 8 stops at once never did.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallel: u16,
    #[command(flatten)]
    pub target: super::swarm::TargetArg,
}

/// Removes everything carrying the project's label.
pub async fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let project = project_of(args.file.as_ref(), global, ui)?;
    let engine = connect().await?;
    if super::swarm::resolve(&engine, &project, &args.target).await? == crate::target::Target::Swarm {
        return super::swarm::destroy(&project, &engine, ui, args.lock_timeout).await;
    }
    let mut interrupt = Interrupt::listen()?;
    with_lock(&engine, &project, "destroy", args.lock_timeout, &mut interrupt, async |interrupt| {
        run_locked(&args, ui, &project, &engine, interrupt).await
    })
    .await
}

/// Everything destroy does while holding the project lock.
async fn run_locked(
    args: &Args,
    ui: Ui,
    project: &str,
    engine: &DockerEngine,
    interrupt: &mut Interrupt,
) -> anyhow::Result<u8> {
    let observed = engine.observe(project).await.context("cannot read the project's state from the engine")?;
    let plan = crate::plan::destroy_plan(&observed, args.volumes);
    if !plan.has_changes() {
        if ui.is_json() {
            ui.json(&json!({"event": "result", "status": "ok", "removed": 0, "notes": plan.notes}));
        } else {
            ui.say(format!("Project {project}: nothing to remove."));
            for note in &plan.notes {
                ui.say(format!("  note: {note}"));
            }
        }
        return Ok(0);
    }
    if !args.yes && interactive() && !ui.is_json() {
        let question = format!("Remove {} resource(s) of project {project}?", plan.actions.len());
        match interrupt.confirm(&question).await {
            Some(true) => {}
            Some(false) => {
                eprintln!("Nothing was removed.");
                return Ok(1);
            }
            None => {
                eprintln!("interrupted: nothing was removed");
                return Ok(130);
            }
        }
    }
    if !ui.is_json() {
        ui.say(crate::plan::render_text(&plan).trim_end());
    }
    let opts = ExecOptions {
        parallel: plan.actions.len().clamp(1, usize::from(args.parallel)),
        removals: Some(usize::from(args.parallel)),
        ..Default::default()
    };
    let Some(report) = interrupt::execute(engine, &plan, &opts, ui, interrupt, WORDING).await else {
        return Ok(130);
    };
    // Interrupted with nothing failed exits 130, as apply does; what is left, the next destroy removes.
    let (status, code) = match (report.succeeded(), report.interrupted && report.failed.is_empty()) {
        (true, _) => ("ok", 0),
        (false, true) => ("interrupted", 130),
        (false, false) => ("failed", 1),
    };
    if ui.is_json() {
        ui.json(&json!({"event": "result", "status": status, "removed": report.finished.len(), "notes": plan.notes}));
    } else if report.succeeded() {
        ui.say(format!("Destroyed project {project} ({} resource(s) removed).", report.finished.len()));
    }
    Ok(code)
}
