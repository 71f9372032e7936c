//! `scale apply FILE`: plan, confirm removals on a terminal, execute with progress, print the
//! endpoints.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use super::{Global, confirm, connect, interactive, load_desired};
use crate::exec::{ExecOptions, execute};
use crate::plan::{render_json, render_text};
use crate::ui::Ui;
use crate::ui::progress::ProgressView;
use crate::ui::status::endpoint_lines;

/// Arguments of `scale apply`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The blueprint file.
    pub file: PathBuf,
    /// Don't ask before removing or replacing anything.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// How many actions may run at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// How long a container may take to become ready (healthy, running or completed).
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::model::duration::parse(text)
}

/// Plans and executes; exit 1 when any action failed, 130 when interrupted.
pub async fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let loaded = load_desired(&args.file, global, ui)?;
    let engine = connect().await?;
    let observed = crate::engine::observe_project(&engine, &loaded.project)
        .await
        .context("cannot read the project's state from the engine")?;
    let plan = crate::plan::plan(&super::desired_for(&loaded, &observed), &observed)?;

    if ui.is_json() {
        ui.json(&json!({"event": "plan", "plan": render_json(&plan)}));
    } else if !ui.quiet {
        print!("{}", render_text(&plan));
    }
    if !plan.has_changes() {
        print_endpoints(ui, &observed);
        if ui.is_json() {
            ui.json(&json!({"event": "result", "status": "ok", "changes": 0, "endpoints": observed.endpoints()}));
        }
        return Ok(0);
    }
    let destructive = plan.actions.iter().filter(|a| a.op.is_destructive()).count();
    if destructive > 0 && !args.yes && interactive() && !ui.is_json() {
        let question = format!("{destructive} container(s) or network(s) will be removed or replaced. Apply?");
        if !confirm(&question) {
            eprintln!("Nothing was changed.");
            return Ok(1);
        }
    }

    let cancel = AtomicBool::new(false);
    let opts = ExecOptions { parallel: args.parallel as usize, ready_timeout: args.timeout, ..Default::default() };
    let view = ProgressView::new(ui, &plan);
    let sink = |event| view.handle(event);
    let report = {
        let run = execute(&engine, &plan, &opts, &sink, &cancel);
        tokio::pin!(run);
        let mut interrupts = 0;
        loop {
            tokio::select! {
                report = &mut run => break report,
                _ = tokio::signal::ctrl_c() => {
                    interrupts += 1;
                    if interrupts > 1 {
                        view.clear();
                        eprintln!("interrupted again: exiting now; `scale apply` will finish the job");
                        return Ok(130);
                    }
                    cancel.store(true, Ordering::SeqCst);
                    eprintln!("interrupt: letting running actions finish, starting nothing new (Ctrl-C again to exit now)");
                }
            }
        }
    };
    view.clear();

    let done = report.finished.len();
    let total = plan.actions.len();
    if !report.succeeded() {
        let status = if report.interrupted && report.failed.is_empty() { "interrupted" } else { "failed" };
        if ui.is_json() {
            ui.json(&json!({
                "event": "result", "status": status, "done": done, "failed": report.failed.len(),
                "not_started": report.not_started.len(),
            }));
        } else {
            eprintln!(
                "apply {status}: {done} of {total} actions done, {} failed, {} not started; run `scale apply` again once fixed",
                report.failed.len(),
                report.not_started.len()
            );
        }
        return Ok(if report.interrupted && report.failed.is_empty() { 130 } else { 1 });
    }
    let after = crate::engine::observe_project(&engine, &loaded.project)
        .await
        .context("cannot read the project's state after applying")?;
    if ui.is_json() {
        ui.json(&json!({"event": "result", "status": "ok", "changes": done, "endpoints": after.endpoints()}));
    } else {
        ui.say(format!("Applied {done} change{} to project {}.", if done == 1 { "" } else { "s" }, loaded.project));
        print_endpoints(ui, &after);
    }
    Ok(0)
}

fn print_endpoints(ui: Ui, observed: &crate::observed::ObservedState) {
    let lines = endpoint_lines(&observed.endpoints());
    if lines.is_empty() || ui.is_json() {
        return;
    }
    ui.say("Endpoints:");
    for line in lines {
        ui.say(format!("  {line}"));
    }
}
