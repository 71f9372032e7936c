//! `scale watch FILE` (also `scale apply --watch`): a level-triggered controller. Each pass
//! observes the project afresh, plans, and runs the plan; engine events (a container died,
//! was removed, paused, cut off a network …) wake it at once, and a periodic resync catches
//! anything an event did not say. Every repair is logged with its reason. Ctrl-C lets the
//! running pass finish its actions in flight and stops; a second Ctrl-C exits at once (130).
//!
//! A pass that changes something (a failover, a non-empty plan) holds the project lock, like
//! apply; an idle watcher holds nothing, so an apply from another shell never waits for it
//! longer than one repair. When the lock is taken, the pass says so once and **waits** for it
//! (Ctrl-C still stops), then observes again and plans against what the holder left, usually
//! to find nothing to do: exactly what a second `scale apply` does, and what a kubectl user
//! expects of a controller (it reconciles after the other writer, never over it). Waiting
//! rather than skipping matters because giving the lock back makes no project event: a
//! skipped pass would sit until the next resync, and an auto failover must not. Events that
//! arrive meanwhile are queued and folded into the next pass. There is no time limit: a
//! controller has nothing better to do, and the message names the holder.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use super::interrupt::{self, Interrupt, Wording};
use super::locking::{release_lock, wait_for_lock};
use super::{Global, Loaded, connect, load_desired};
use crate::engine::docker::DockerEngine;
use crate::engine::lock::LockEvent;
use crate::exec::ExecOptions;
use crate::observed::{ObservedContainer, ObservedState, RunState};
use crate::plan::render_text;
use crate::ui::Ui;

/// What watch says on Ctrl-C while a repair runs.
const WORDING: Wording<'static> = Wording {
    stopping: "interrupt: finishing the actions in flight, then stopping (Ctrl-C again to exit now)",
    resume: "scale watch",
};

/// Arguments of `scale watch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The blueprint or Compose file (default: compose.yaml here, see -f).
    pub file: Option<PathBuf>,
    /// Observe and repair at least this often, even without an engine event.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub resync: Duration,
    /// How long a container may take to become ready.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::model::duration::parse(text)
}

/// How long to wait before trying again after `failures` failed passes in a row: a pure
/// function of the failure count (as kube-rs's retry policies are of the error), doubling from
/// 2 s up to 60 s, so a broken blueprint is not hammered against the engine.
pub fn retry_delay(failures: u32) -> Duration {
    Duration::from_secs((1u64 << failures.min(6)).clamp(2, 60))
}

/// How a pass ended.
enum Pass {
    InSync,
    Repaired,
    Failed,
    /// Ctrl-C: stop watching once this pass is over.
    Interrupted,
    /// Ctrl-C twice: exit 130 now.
    ExitNow,
}

/// Runs the controller until Ctrl-C.
pub async fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let loaded = load_desired(args.file.as_deref(), global, ui)?;
    let engine = connect().await?;
    // One listener for the whole run: a Ctrl-C that arrives while no `select!` is waiting
    // (observing, planning, failing over, settling a burst of events) is honoured at the next
    // wait instead of being lost.
    let mut interrupt = Interrupt::listen()?;
    let mut events = engine.subscribe(&loaded.project);
    let opts = ExecOptions { ready_timeout: args.timeout, ..Default::default() };
    log(
        ui,
        &format!("watching project {} (resync every {})", loaded.project, crate::model::duration::format(args.resync)),
        json!({"event": "watching", "project": loaded.project}),
    );
    let mut failures = 0u32;
    let mut wake_reason = String::from("start");
    loop {
        match pass(&engine, &loaded, &opts, ui, &wake_reason, &mut interrupt).await? {
            Pass::Interrupted => break,
            Pass::ExitNow => return Ok(130),
            Pass::Failed => failures += 1,
            Pass::InSync | Pass::Repaired => failures = 0,
        }
        let wait = if failures > 0 { retry_delay(failures) } else { args.resync };
        tokio::select! {
            event = events.recv() => {
                let Some(first) = event else {
                    // The event stream ended (engine restarted?): resubscribe and resync.
                    events = engine.subscribe(&loaded.project);
                    wake_reason = "event stream reconnected".into();
                    continue;
                };
                // Let a burst of events (a container dying takes several) settle into one pass.
                tokio::time::sleep(Duration::from_millis(300)).await;
                let mut seen = vec![first];
                while let Ok(more) = events.try_recv() {
                    seen.push(more);
                }
                seen.dedup();
                log(ui, &format!("event: {}", seen.join("; ")), json!({"event": "engine_event", "events": seen}));
                wake_reason = seen.join("; ");
            }
            _ = tokio::time::sleep(wait) => {
                wake_reason = if failures > 0 { format!("retry after {} failed pass(es)", failures) } else { "resync".into() };
            }
            _ = interrupt.recv() => break,
        }
    }
    log(ui, "stopped watching", json!({"event": "stopped"}));
    Ok(0)
}

/// One pass: observe, and when something needs doing, take the lock, observe again and
/// repair (see the module docs). The lock is given back on every path.
async fn pass(
    engine: &DockerEngine,
    loaded: &Loaded,
    opts: &ExecOptions,
    ui: Ui,
    why: &str,
    interrupt: &mut Interrupt,
) -> anyhow::Result<Pass> {
    let Some(observed) = observe(engine, loaded, ui).await else { return Ok(Pass::Failed) };
    let plan = crate::plan::plan(&super::desired_for(loaded, &observed), &observed).context("cannot plan")?;
    if primaries_lost(loaded, &observed).is_empty() && !plan.has_changes() {
        return Ok(Pass::InSync);
    }
    let on_event = |event: LockEvent<'_>| match event {
        LockEvent::Waiting { project, holder } => log(
            ui,
            &format!("project {project} is locked by {}; waiting", holder.describe()),
            json!({"event": "lock_waiting", "project": project, "holder": holder.describe()}),
        ),
        LockEvent::BrokeStale { project, holder } => log(
            ui,
            &format!("breaking the stale lock on project {project}: its holder {} is gone", holder.describe()),
            json!({"event": "lock_broken", "project": project, "holder": holder.describe()}),
        ),
    };
    let mut lock = match wait_for_lock(engine, &loaded.project, "watch", Duration::MAX, interrupt, &on_event).await {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            let text = format!("interrupted while waiting for the lock on project {}", loaded.project);
            log(ui, &text, json!({"event": "lock_interrupted", "project": loaded.project}));
            return Ok(Pass::Interrupted);
        }
        Err(err) => {
            log(ui, &format!("{err}; trying again later"), json!({"event": "error", "error": err.to_string()}));
            return Ok(Pass::Failed);
        }
    };
    let result = repair(engine, loaded, opts, ui, why, interrupt).await;
    release_lock(&mut lock).await;
    result
}

/// The locked part of a pass: observe afresh (the holder we waited for may have changed
/// everything), fail over where `failover: auto` says so, then plan and run the plan.
async fn repair(
    engine: &DockerEngine,
    loaded: &Loaded,
    opts: &ExecOptions,
    ui: Ui,
    why: &str,
    interrupt: &mut Interrupt,
) -> anyhow::Result<Pass> {
    let Some(mut observed) = observe(engine, loaded, ui).await else { return Ok(Pass::Failed) };
    for service in primaries_lost(loaded, &observed) {
        log(
            ui,
            &format!("{} the primary of {service} is down: failing over", clock()),
            json!({"event": "primary_lost", "service": service}),
        );
        let say = |line: &str| log(ui, line, json!({"event": "failover_step", "step": line}));
        match crate::failover::failover(engine, &observed, &service, &say).await {
            Ok(report) => log(
                ui,
                &format!("{} {} promoted", clock(), report.promoted),
                json!({"event": "failover", "report": report}),
            ),
            Err(err) => {
                log(
                    ui,
                    &format!("failover of {service} failed: {err}"),
                    json!({"event": "failover_failed", "error": err.to_string()}),
                );
                return Ok(Pass::Failed);
            }
        }
        let Some(after) = observe(engine, loaded, ui).await else { return Ok(Pass::Failed) };
        observed = after;
    }
    let plan = crate::plan::plan(&super::desired_for(loaded, &observed), &observed).context("cannot plan")?;
    if !plan.has_changes() {
        return Ok(Pass::InSync);
    }
    if ui.is_json() {
        ui.json(&json!({"event": "repair", "trigger": why, "plan": crate::plan::render_json(&plan)}));
    } else {
        ui.say(format!("{} repair ({why}):", clock()));
        print!("{}", render_text(&plan));
    }
    let Some(report) = interrupt::execute(engine, &plan, opts, ui, interrupt, WORDING).await else {
        return Ok(Pass::ExitNow);
    };
    if report.interrupted {
        return Ok(Pass::Interrupted);
    }
    if report.succeeded() {
        log(
            ui,
            &format!("{} repaired {} thing(s)", clock(), report.finished.len()),
            json!({"event": "repaired", "actions": report.finished.len()}),
        );
        Ok(Pass::Repaired)
    } else {
        log(
            ui,
            &format!("{} repair failed; trying again later", clock()),
            json!({"event": "repair_failed", "failed": report.failed.len()}),
        );
        Ok(Pass::Failed)
    }
}

/// Observes the project; an engine error is logged and fails the pass (tried again later),
/// not the watcher.
async fn observe(engine: &DockerEngine, loaded: &Loaded, ui: Ui) -> Option<ObservedState> {
    match crate::engine::observe_project(engine, &loaded.project).await {
        Ok(observed) => Some(observed),
        Err(err) => {
            log(ui, &format!("cannot observe the project: {err}"), json!({"event": "error", "error": err.to_string()}));
            None
        }
    }
}

/// The `failover: auto` postgres services whose current primary container is not running
/// (killed, stopped, removed) while a replica is: the watch loop promotes one of them.
fn primaries_lost(loaded: &Loaded, observed: &ObservedState) -> Vec<String> {
    let marked = crate::kinds::postgres::primaries(observed);
    loaded
        .blueprint
        .services
        .iter()
        .filter(|s| s.postgres.as_ref().is_some_and(|pg| pg.failover == crate::model::FailoverMode::Auto))
        .filter(|s| {
            let primary = marked.get(&s.name).map_or(1, |(n, _)| *n);
            let name = crate::desired::container_name(&loaded.project, &s.name, primary);
            let running = |c: &ObservedContainer| c.state == RunState::Running;
            let primary_up = observed.containers.get(&name).is_some_and(running);
            let replica_up =
                observed.containers.values().any(|c| c.service() == Some(&s.name) && c.name != name && running(c));
            !primary_up && replica_up
        })
        .map(|s| s.name.clone())
        .collect()
}

fn log(ui: Ui, text: &str, value: serde_json::Value) {
    if ui.is_json() {
        ui.json(&value);
    } else {
        ui.say(text);
    }
}

/// The wall-clock time as HH:MM:SS (UTC), for log lines.
fn clock() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("[{:02}:{:02}:{:02}]", (secs / 3600) % 24, (secs / 60) % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::retry_delay;
    use std::time::Duration;

    #[test]
    fn retry_delay_doubles_and_is_bounded() {
        let delays: Vec<u64> = (1..=8).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, vec![2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry_delay(u32::MAX), Duration::from_secs(60));
    }
}
