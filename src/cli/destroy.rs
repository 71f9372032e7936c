//! `scale destroy [FILE]`: remove the project's containers and networks; volumes only with
//! `--volumes`. Running it twice is fine.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use serde_json::json;

use super::{Global, confirm, connect, interactive, project_of};
use crate::engine::Engine;
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
}

/// Removes everything carrying the project's label.
pub async fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let project = project_of(args.file.as_ref(), global, ui)?;
    let engine = connect().await?;
    let observed = engine.observe(&project).await.context("cannot read the project's state from the engine")?;
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
        if !confirm(&question) {
            eprintln!("Nothing was removed.");
            return Ok(1);
        }
    }
    if !ui.is_json() {
        ui.say(crate::plan::render_text(&plan).trim_end());
    }
    let view = ProgressView::new(ui, &plan);
    let sink = |event| view.handle(event);
    let report = execute(&engine, &plan, &ExecOptions::default(), &sink, &AtomicBool::new(false)).await;
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
