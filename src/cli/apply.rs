//! `scale apply FILE`: plan, confirm removals on a terminal, execute with progress, print the
//! endpoints.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use futures_util::FutureExt;
use serde_json::json;

use tokio::signal::unix::{Signal, SignalKind, signal};

use super::{Global, Loaded, Reported, confirm, connect, interactive, load_desired};
use crate::engine::docker::DockerEngine;
use crate::engine::lock::{self, LockEvent, ProjectLock};
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
    /// How long to wait for another apply or destroy of the project to finish (0: don't wait).
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = parse_lock_timeout)]
    pub lock_timeout: Duration,
    /// Keep reconciling afterwards, like `scale watch FILE` (follow engine events, repair
    /// drift, fail over when `failover: auto`) until Ctrl-C.
    #[arg(long)]
    pub watch: bool,
    /// With --watch: observe and repair at least this often.
    #[arg(long, default_value = "10s", value_parser = parse_duration, requires = "watch")]
    pub resync: Duration,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::model::duration::parse(text)
}

/// `--lock-timeout`: a duration, or a bare `0` for "fail at once if the project is locked".
pub(super) fn parse_lock_timeout(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" { Ok(Duration::ZERO) } else { crate::model::duration::parse(text) }
}

/// Starts listening for Ctrl-C. From then on SIGINT no longer kills the process, so a held
/// lock is always released; the callers turn it into "start nothing new" and exit 130.
pub(super) fn listen_for_interrupts() -> anyhow::Result<Signal> {
    signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")
}

/// Takes the project lock (see `engine::lock`), saying on stderr whom we wait for. `None`:
/// interrupted while waiting, nothing was changed (exit 130).
pub(super) async fn take_lock(
    engine: &DockerEngine,
    project: &str,
    command: &str,
    timeout: Duration,
    interrupt: &mut Signal,
) -> anyhow::Result<Option<ProjectLock>> {
    let on_event = |event: LockEvent<'_>| match event {
        LockEvent::Waiting { project, holder } => {
            eprintln!("waiting for the lock on project {project} held by {}…", holder.describe());
        }
        LockEvent::BrokeStale { project, holder } => {
            eprintln!("breaking the stale lock on project {project}: its holder {} is gone", holder.describe());
        }
    };
    tokio::select! {
        taken = lock::acquire(engine, project, command, timeout, &on_event) => match taken {
            Ok(lock) => Ok(Some(lock)),
            Err(err) => {
                eprintln!("error: {err}");
                if let Some(hint) = err.hint() {
                    eprintln!("  hint: {hint}");
                }
                Err(Reported(err.to_string()).into())
            }
        },
        _ = interrupt.recv() => {
            // The engine may have created our lock just as we stopped waiting for its answer.
            lock::release_if_mine(engine, project).await;
            eprintln!("interrupted while waiting for the lock on project {project}; nothing was changed");
            Ok(None)
        }
    }
}

/// Gives the lock back; a failure is a warning (the work itself is done).
pub(super) async fn release_lock(lock: &mut ProjectLock) {
    if let Err(err) = lock.release().await {
        eprintln!("warning: {err}");
        if let Some(hint) = err.hint() {
            eprintln!("  hint: {hint}");
        }
    }
}

/// Asks `question` on the terminal; `None` when Ctrl-C came first. The question is read on a
/// thread of its own so that the interrupt listener stays responsive.
pub(super) async fn confirm_or_interrupt(question: &str, interrupt: &mut Signal) -> Option<bool> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let question = question.to_string();
    std::thread::spawn(move || {
        let _ = tx.send(confirm(&question));
    });
    tokio::select! {
        answer = rx => Some(answer.unwrap_or(false)),
        _ = interrupt.recv() => {
            eprintln!();
            None
        }
    }
}

/// Plans and executes; exit 1 when any action failed, 130 when interrupted.
pub async fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let loaded = load_desired(&args.file, global, ui)?;
    let engine = connect().await?;
    let mut interrupt = listen_for_interrupts()?;
    // Locked before observing, so an apply that waited plans against the converged state.
    let Some(mut lock) = take_lock(&engine, &loaded.project, "apply", args.lock_timeout, &mut interrupt).await? else {
        return Ok(130);
    };
    let result = run_locked(&args, ui, &loaded, &engine, &mut interrupt).await;
    release_lock(&mut lock).await;
    result
}

/// Everything apply does while holding the project lock.
async fn run_locked(
    args: &Args,
    ui: Ui,
    loaded: &Loaded,
    engine: &DockerEngine,
    interrupt: &mut Signal,
) -> anyhow::Result<u8> {
    let observed = crate::engine::observe_project(engine, &loaded.project)
        .await
        .context("cannot read the project's state from the engine")?;
    let plan = crate::plan::plan(&super::desired_for(loaded, &observed), &observed)?;

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
        match confirm_or_interrupt(&question, interrupt).await {
            Some(true) => {}
            Some(false) => {
                eprintln!("Nothing was changed.");
                return Ok(1);
            }
            None => {
                eprintln!("interrupted: nothing was changed");
                return Ok(130);
            }
        }
    }

    // A Ctrl-C while planning: start nothing.
    let cancel = AtomicBool::new(interrupt.recv().now_or_never().is_some());
    let opts = ExecOptions { parallel: args.parallel as usize, ready_timeout: args.timeout, ..Default::default() };
    let view = ProgressView::new(ui, &plan);
    let sink = |event| view.handle(event);
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
    let after = crate::engine::observe_project(engine, &loaded.project)
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
