//! `scale watch FILE` (also `scale apply --watch`): a level-triggered controller. Each pass
//! observes the project afresh, plans, and runs the plan; engine events (a container died,
//! was removed, paused, cut off a network …) wake it at once, and a periodic resync catches
//! anything an event did not say. Every repair is logged with its reason. Ctrl-C lets the
//! running pass finish its actions in flight and stops.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use super::{Global, connect, load_desired};
use crate::exec::{ExecOptions, execute};
use crate::plan::render_text;
use crate::ui::Ui;
use crate::ui::progress::ProgressView;

/// Arguments of `scale watch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The blueprint file.
    pub file: PathBuf,
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
    Interrupted,
}

/// Runs the controller until Ctrl-C.
pub async fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let loaded = load_desired(&args.file, global, ui)?;
    let engine = connect().await?;
    let mut events = engine.subscribe(&loaded.project);
    let opts = ExecOptions { ready_timeout: args.timeout, ..Default::default() };
    log(
        ui,
        &format!("watching project {} (resync every {})", loaded.project, crate::model::duration::format(args.resync)),
        json!({"event": "watching", "project": loaded.project}),
    );
    // One listener for the whole run: a Ctrl-C that arrives while no `select!` is waiting
    // (observing, planning, failing over, settling a burst of events) is kept as a permit and
    // honoured at the next wait, instead of being lost as with a fresh `ctrl_c()` per wait.
    let interrupt = std::sync::Arc::new(tokio::sync::Notify::new());
    tokio::spawn({
        let interrupt = interrupt.clone();
        async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                interrupt.notify_one();
            }
        }
    });
    let mut failures = 0u32;
    let mut wake_reason = String::from("start");
    loop {
        match pass(&engine, &loaded, &opts, ui, &wake_reason, &interrupt).await? {
            Pass::Interrupted => break,
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
            _ = interrupt.notified() => break,
        }
    }
    log(ui, "stopped watching", json!({"event": "stopped"}));
    Ok(0)
}

async fn pass(
    engine: &crate::engine::docker::DockerEngine,
    loaded: &super::Loaded,
    opts: &ExecOptions,
    ui: Ui,
    why: &str,
    interrupt: &tokio::sync::Notify,
) -> anyhow::Result<Pass> {
    let mut observed = match crate::engine::observe_project(engine, &loaded.project).await {
        Ok(o) => o,
        Err(err) => {
            log(ui, &format!("cannot observe the project: {err}"), json!({"event": "error", "error": err.to_string()}));
            return Ok(Pass::Failed);
        }
    };
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
        observed = crate::engine::observe_project(engine, &loaded.project).await.context("cannot observe")?;
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
    let cancel = AtomicBool::new(false);
    let view = ProgressView::new(ui, &plan);
    let sink = |event| view.handle(event);
    let report = {
        let run = execute(engine, &plan, opts, &sink, &cancel);
        tokio::pin!(run);
        loop {
            tokio::select! {
                report = &mut run => break report,
                _ = interrupt.notified() => {
                    cancel.store(true, Ordering::SeqCst);
                    eprintln!("interrupt: finishing the actions in flight, then stopping");
                }
            }
        }
    };
    view.clear();
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

/// The `failover: auto` postgres services whose current primary container is not running
/// (killed, stopped, removed) while a replica is: the watch loop promotes one of them.
fn primaries_lost(loaded: &super::Loaded, observed: &crate::observed::ObservedState) -> Vec<String> {
    let marked = crate::kinds::postgres::primaries(observed);
    loaded
        .blueprint
        .services
        .iter()
        .filter(|s| s.postgres.as_ref().is_some_and(|pg| pg.failover == crate::model::FailoverMode::Auto))
        .filter(|s| {
            let primary = marked.get(&s.name).map_or(1, |(n, _)| *n);
            let name = crate::desired::container_name(&loaded.project, &s.name, primary);
            let running = |c: &crate::observed::ObservedContainer| c.state == crate::observed::RunState::Running;
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
