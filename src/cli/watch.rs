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
//! arrive meanwhile are queued and folded into the next pass. By default there is no time
//! limit (a controller has nothing better to do, and the message names the holder);
//! `--lock-timeout` bounds each wait, and a pass that gives up is tried again after back-off.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use super::interrupt::{self, Interrupt, Wording};
use super::locking::{release_lock, wait_for_lock};
use super::{Global, connect, load_desired};
use crate::engine::docker::DockerEngine;
use crate::engine::lock::{LockEvent, ProjectLock};
use crate::exec::{ExecOptions, ExecReport};
use crate::ops::{
    self,
    autoscale::Autoscaler,
    watch::{Backoff, Controller, Locked, Pass, clock},
};
use crate::plan::{Plan, render_text};
use crate::ui::Ui;

/// How often the autoscaler samples request rates (with an autoscaled service in the blueprint).
const SAMPLE_EVERY: Duration = Duration::from_secs(2);

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
    /// How long a pass that must repair waits while another scale command holds the project
    /// (0: don't wait); past it the pass gives up and is tried again later. Default: no limit.
    #[arg(long, value_name = "DURATION", value_parser = super::locking::parse_lock_timeout)]
    pub lock_timeout: Option<Duration>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::model::duration::parse(text)
}

/// Runs the controller until Ctrl-C.
pub async fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let loaded = load_desired(args.file.as_deref(), global, ui)?;
    let engine = connect().await?;
    // One listener for the whole run: a Ctrl-C that arrives while no `select!` is waiting
    // (observing, planning, failing over, settling a burst of events) is honoured at the next
    // wait instead of being lost.
    let mut interrupt = Interrupt::listen()?;
    let mut events = subscribe(&engine, &loaded.project);
    let opts = ExecOptions { ready_timeout: args.timeout, ..Default::default() };
    log(
        ui,
        &format!("watching project {} (resync every {})", loaded.project, crate::model::duration::format(args.resync)),
        json!({"event": "watching", "project": loaded.project}),
    );
    let mut backoff = Backoff::default();
    let mut wake_reason = String::from("start");
    let mut autoscaler = Autoscaler::default();
    let autoscaled = loaded.desired.services.iter().any(|s| s.autoscale.is_some());
    loop {
        let mut ctl =
            TerminalWatch { ui, interrupt: &mut interrupt, opts: opts.clone(), lock_timeout: args.lock_timeout };
        if let Some(scaled) = autoscaler.step(&engine, &loaded.desired, &mut ctl).await {
            wake_reason = scaled.describe();
        }
        let pass = ops::watch::pass(&engine, &loaded.blueprint, &loaded.desired, &mut ctl, &wake_reason)
            .await
            .context("cannot plan")?;
        match pass {
            Pass::Interrupted => break,
            Pass::ExitNow => return Ok(130),
            other => backoff.record(other),
        }
        let mut wait = backoff.wait(args.resync);
        if autoscaled && backoff.failures == 0 {
            // The autoscaler samples the load balancers' counters this often.
            wait = wait.min(SAMPLE_EVERY);
        }
        tokio::select! {
            event = events.recv() => {
                let Some(first) = event else {
                    // The event stream ended (engine restarted?): resubscribe and resync.
                    events = subscribe(&engine, &loaded.project);
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
                wake_reason = backoff.timeout_reason();
            }
            _ = interrupt.recv() => break,
        }
    }
    log(ui, "stopped watching", json!({"event": "stopped"}));
    Ok(0)
}

/// The project's engine events, as short descriptions: the only place watch subscribes.
fn subscribe(engine: &DockerEngine, project: &str) -> crate::engine::EventStream {
    crate::engine::Engine::subscribe(engine, project)
}

/// The terminal's side of the controller: the project lock, progress with Ctrl-C, the log.
struct TerminalWatch<'a> {
    ui: Ui,
    interrupt: &'a mut Interrupt,
    opts: ExecOptions,
    /// `--lock-timeout`; `None`: wait as long as it takes.
    lock_timeout: Option<Duration>,
}

impl Controller<DockerEngine> for TerminalWatch<'_> {
    type Lock = ProjectLock;

    async fn lock(&mut self, engine: &DockerEngine, project: &str) -> Locked<ProjectLock> {
        let ui = self.ui;
        let limit = match self.lock_timeout {
            Some(t) => format!(" (up to {})", crate::model::duration::format(t)),
            None => String::new(),
        };
        let on_event = |event: LockEvent<'_>| match event {
            LockEvent::Waiting { project, holder } => log(
                ui,
                &format!("project {project} is locked by {}; waiting{limit}", holder.describe()),
                json!({"event": "lock_waiting", "project": project, "holder": holder.describe()}),
            ),
            LockEvent::BrokeStale { project, holder } => log(
                ui,
                &format!("breaking the stale lock on project {project}: its holder {} is gone", holder.describe()),
                json!({"event": "lock_broken", "project": project, "holder": holder.describe()}),
            ),
        };
        let timeout = self.lock_timeout.unwrap_or(Duration::MAX);
        match wait_for_lock(engine, project, "watch", timeout, self.interrupt, &on_event).await {
            Ok(Some(lock)) => Locked::Taken(lock),
            Ok(None) => Locked::Interrupted,
            Err(err) => Locked::Failed(err.to_string()),
        }
    }

    async fn unlock(&mut self, mut lock: ProjectLock) {
        release_lock(&mut lock).await;
    }

    async fn execute(&mut self, engine: &DockerEngine, plan: &Plan) -> Option<ExecReport> {
        interrupt::execute(engine, plan, &self.opts, self.ui, self.interrupt, WORDING).await
    }

    fn log(&self, text: &str, value: serde_json::Value) {
        log(self.ui, text, value);
    }

    fn repairing(&self, why: &str, plan: &Plan) {
        if self.ui.is_json() {
            self.ui.json(&json!({"event": "repair", "trigger": why, "plan": crate::plan::render_json(plan)}));
        } else {
            self.ui.say(format!("{} repair ({why}):", clock()));
            print!("{}", render_text(plan));
        }
    }
}

fn log(ui: Ui, text: &str, value: serde_json::Value) {
    if ui.is_json() {
        ui.json(&value);
    } else {
        ui.say(text);
    }
}
