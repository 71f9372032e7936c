//! `scale destroy [FILE]`: remove the project's containers and networks; volumes only with
//! `--volumes`. Running it twice is fine.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use serde_json::json;

use futures_util::FutureExt;
use tokio::signal::unix::Signal;

use super::{Global, apply, connect, interactive, project_of};
use crate::engine::Engine;
use crate::engine::docker::DockerEngine;
use crate::exec::{ExecOptions, execute};
use crate::ui::Ui;
use crate::ui::progress::ProgressView;

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
    /// How long to wait for another apply or destroy of the project to finish (0: don't wait).
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = super::apply::parse_lock_timeout)]
    pub lock_timeout: std::time::Duration,
}

/// Removes everything carrying the project's label.
pub async fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let project = project_of(args.file.as_ref(), global, ui)?;
    let engine = connect().await?;
    let mut interrupt = apply::listen_for_interrupts()?;
    let Some(mut lock) = apply::take_lock(&engine, &project, "destroy", args.lock_timeout, &mut interrupt).await?
    else {
        return Ok(130);
    };
    let result = run_locked(&args, ui, &project, &engine, &mut interrupt).await;
    apply::release_lock(&mut lock).await;
    result
}

/// Everything destroy does while holding the project lock.
async fn run_locked(
    args: &Args,
    ui: Ui,
    project: &str,
    engine: &DockerEngine,
    interrupt: &mut Signal,
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
        match apply::confirm_or_interrupt(&question, interrupt).await {
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
    let view = ProgressView::new(ui, &plan);
    let sink = |event| view.handle(event);
    // Ctrl-C: let running removals finish, start nothing new; again: exit now.
    let cancel = AtomicBool::new(interrupt.recv().now_or_never().is_some());
    let opts = ExecOptions::default();
    let report = {
        let run = execute(engine, &plan, &opts, &sink, &cancel);
        tokio::pin!(run);
        let mut interrupts = 0;
        loop {
            tokio::select! {
                report = &mut run => break report,
                _ = interrupt.recv() => {
                    interrupts += 1;
                    if interrupts > 1 {
                        view.clear();
                        eprintln!("interrupted again: exiting now; `scale destroy` will finish the job");
                        return Ok(130);
                    }
                    cancel.store(true, Ordering::SeqCst);
                    eprintln!("interrupt: letting running removals finish, starting nothing new (Ctrl-C again to exit now)");
                }
            }
        }
    };
    view.clear();
    if ui.is_json() {
        ui.json(&json!({
            "event": "result",
            "status": if report.succeeded() { "ok" } else { "failed" },
            "removed": report.finished.len(),
            "notes": plan.notes,
        }));
    } else if report.succeeded() {
        ui.say(format!("Destroyed project {project} ({} resource(s) removed).", report.finished.len()));
    }
    Ok(if report.succeeded() { 0 } else { 1 })
}
