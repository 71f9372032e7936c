//! Runs a plan against an engine: dependency order, independent work in parallel up to a
//! bound, every container health-gated. On the first failure nothing new starts; what is in
//! flight finishes; what had not started is left alone and reported.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use crate::desired::{ContainerSpec, Readiness};
use crate::engine::Engine;
use crate::plan::{ActionId, FileSpec, Op, Plan};

mod balancer;
mod database;
mod migrate;
mod poll;
pub mod queue;
pub mod wait;

use queue::DependencyQueue;

/// Knobs for one run.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// At most this many actions run at once.
    pub parallel: usize,
    /// How long a container may take to become ready.
    pub ready_timeout: Duration,
    /// How many log lines to show of a container that failed.
    pub log_lines: usize,
    /// How long a container without a healthcheck must keep running to count as started:
    /// long enough to catch a command that fails at once (not found, bad flag, import error),
    /// short enough that a chain of such containers does not start much slower than Compose,
    /// which does not check at all.
    pub settle: Duration,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            parallel: 8,
            ready_timeout: Duration::from_secs(120),
            log_lines: 20,
            settle: Duration::from_millis(500),
        }
    }
}

/// Something that happened while executing, for the UI.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecEvent {
    Started {
        id: ActionId,
    },
    /// A line of build or pull output, or a step ("waiting until healthy").
    Output {
        id: ActionId,
        line: String,
    },
    Finished {
        id: ActionId,
        elapsed: Duration,
    },
    Failed {
        id: ActionId,
        failure: ActionFailure,
        elapsed: Duration,
    },
    /// Not started because an earlier action failed or the run was interrupted.
    NotStarted {
        id: ActionId,
    },
}

/// Why an action failed, with what to do and the container's last words.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionFailure {
    pub message: String,
    pub hint: Option<String>,
    /// The failing container's last log lines, when a container was involved.
    pub logs: Vec<String>,
    /// Build output, when a build failed.
    pub output: Vec<String>,
}

/// How a run ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecReport {
    pub finished: Vec<ActionId>,
    pub failed: Vec<ActionId>,
    pub not_started: Vec<ActionId>,
    pub interrupted: bool,
}

impl ExecReport {
    pub fn succeeded(&self) -> bool {
        self.failed.is_empty() && self.not_started.is_empty()
    }
}

/// Receives events; must be callable from any action.
pub type EventSink<'a> = &'a (dyn Fn(ExecEvent) + Sync);

/// Executes `plan`. `cancel` set to true stops new actions from starting (Ctrl-C).
pub async fn execute<E: Engine>(
    engine: &E,
    plan: &Plan,
    opts: &ExecOptions,
    sink: EventSink<'_>,
    cancel: &AtomicBool,
) -> ExecReport {
    let mut queue = DependencyQueue::new(plan);
    let mut report = ExecReport::default();
    let mut in_flight = FuturesUnordered::new();
    let mut stopping = false;
    loop {
        if cancel.load(Ordering::SeqCst) && !stopping {
            stopping = true;
            report.interrupted = true;
        }
        if !stopping {
            let free = opts.parallel.max(1).saturating_sub(queue.running_count());
            for id in queue.take_ready(free) {
                sink(ExecEvent::Started { id });
                let started = Instant::now();
                in_flight.push(async move {
                    let result = run_action(engine, plan, id, opts, sink).await;
                    (id, result, started.elapsed())
                });
            }
        }
        let Some((id, result, elapsed)) = in_flight.next().await else { break };
        match result {
            Ok(()) => {
                queue.finish(id);
                report.finished.push(id);
                sink(ExecEvent::Finished { id, elapsed });
            }
            Err(failure) => {
                queue.fail(id);
                report.failed.push(id);
                stopping = true;
                sink(ExecEvent::Failed { id, failure, elapsed });
            }
        }
    }
    for id in queue.drain_pending() {
        report.not_started.push(id);
        sink(ExecEvent::NotStarted { id });
    }
    report
}

fn failure(err: crate::engine::EngineError) -> ActionFailure {
    let output = match &err {
        crate::engine::EngineError::Build { output, .. } => output.clone(),
        _ => Vec::new(),
    };
    ActionFailure { hint: err.hint(), message: err.to_string(), logs: Vec::new(), output }
}

async fn run_action<E: Engine>(
    engine: &E,
    plan: &Plan,
    id: ActionId,
    opts: &ExecOptions,
    sink: EventSink<'_>,
) -> Result<(), ActionFailure> {
    let say = |line: &str| sink(ExecEvent::Output { id, line: line.to_string() });
    match &plan.actions[id].op {
        Op::Build { image } => engine.build_image(image, &plan.project, &say).await.map_err(failure),
        Op::Pull { reference } => engine.pull_image(reference, &say).await.map_err(failure),
        Op::CreateNetwork { spec } => engine.create_network(spec).await.map_err(failure),
        Op::RemoveNetwork { name } => engine.remove_network(name).await.map_err(failure),
        Op::CreateVolume { spec } => engine.create_volume(spec).await.map_err(failure),
        Op::RemoveVolume { name } => engine.remove_volume(name).await.map_err(failure),
        Op::MigrateData { name, direction, marker, .. } => {
            migrate::run(engine, &plan.project, name, *direction, marker.as_deref(), &say).await
        }
        Op::CreateContainer { spec, readiness, files } => {
            bring_up(engine, plan, spec, *readiness, files, opts, &say).await
        }
        Op::RecreateContainer { old_id, old_grace_secs, spec, readiness, files, drains, start_first } => {
            let grace = Duration::from_secs(*old_grace_secs);
            if *start_first {
                // The new one runs beside the old one until ready; only then does the old
                // one leave, and the new one takes its name.
                let temp = format!("{}{}", spec.name, crate::plan::TEMP_SUFFIX);
                say(&format!("starting the new container as {temp}"));
                let cid = bring_up_as(engine, plan, &temp, spec, *readiness, files, opts, &say).await?;
                balancer::mark_draining(engine, drains, true).await;
                balancer::drain(engine, drains, &say).await;
                engine.stop_container(old_id, &spec.name, grace).await.map_err(failure)?;
                engine.remove_container(old_id, &spec.name).await.map_err(failure)?;
                engine.rename_container(&cid, &temp, &spec.name).await.map_err(failure)?;
            } else {
                balancer::mark_draining(engine, drains, true).await;
                balancer::drain(engine, drains, &say).await;
                say("stopping the old container first");
                engine.stop_container(old_id, &spec.name, grace).await.map_err(failure)?;
                engine.remove_container(old_id, &spec.name).await.map_err(failure)?;
                bring_up(engine, plan, spec, *readiness, files, opts, &say).await?;
            }
            balancer::undrain(engine, drains, &say).await;
            balancer::mark_draining(engine, drains, false).await;
            Ok(())
        }
        Op::FinishReplacement { id: cid, temp_name, spec, readiness } => {
            engine.rename_container(cid, temp_name, &spec.name).await.map_err(failure)?;
            engine.start_container(cid, &spec.name).await.map_err(failure)?;
            await_ready(engine, cid, &spec.name, *readiness, opts, &say).await
        }
        Op::Reconnect { id: cid, name, networks } => {
            for n in networks {
                engine.connect(cid, name, &n.network, &n.aliases).await.map_err(failure)?;
            }
            Ok(())
        }
        Op::ReloadLoadBalancer { id: cid, name, files } => balancer::reload(engine, cid, name, files, &say).await,
        Op::StartContainer { id: cid, name, paused, readiness } => {
            if *paused {
                engine.unpause_container(cid, name).await.map_err(failure)?;
            } else {
                engine.start_container(cid, name).await.map_err(failure)?;
            }
            await_ready(engine, cid, name, *readiness, opts, &say).await
        }
        Op::RemoveContainer { id: cid, name, grace_secs, drains, release_slot, anonymous_volumes } => {
            balancer::drain(engine, drains, &say).await;
            engine.stop_container(cid, name, Duration::from_secs(*grace_secs)).await.map_err(failure)?;
            if *anonymous_volumes {
                engine.remove_container_and_anonymous_volumes(cid, name).await.map_err(failure)?;
            } else {
                engine.remove_container(cid, name).await.map_err(failure)?;
            }
            if let Some(release) = release_slot {
                database::release_slot(engine, release, &say).await;
            }
            Ok(())
        }
    }
}

async fn bring_up<E: Engine>(
    engine: &E,
    plan: &Plan,
    spec: &ContainerSpec,
    readiness: Readiness,
    files: &[FileSpec],
    opts: &ExecOptions,
    say: &(dyn Fn(&str) + Sync),
) -> Result<(), ActionFailure> {
    bring_up_as(engine, plan, &spec.name, spec, readiness, files, opts, say).await.map(|_| ())
}

/// Creates `spec` under `name`, writes its files, starts it and waits until ready; returns
/// its ID.
#[allow(clippy::too_many_arguments)]
async fn bring_up_as<E: Engine>(
    engine: &E,
    plan: &Plan,
    name: &str,
    spec: &ContainerSpec,
    readiness: Readiness,
    files: &[FileSpec],
    opts: &ExecOptions,
    say: &(dyn Fn(&str) + Sync),
) -> Result<String, ActionFailure> {
    let cid = engine.create_named(name, spec, &plan.project).await.map_err(failure)?;
    balancer::write_files(engine, &cid, name, files).await?;
    if let Err(err) = engine.start_container(&cid, name).await {
        let mut f = failure(err);
        f.logs = engine.logs_tail(&cid, opts.log_lines).await.unwrap_or_default();
        return Err(f);
    }
    await_ready(engine, &cid, name, readiness, opts, say).await?;
    if let Some(pool) = balancer::pool_of(files) {
        balancer::await_pool_up(engine, &cid, name, &pool, say).await;
    }
    Ok(cid)
}

async fn await_ready<E: Engine>(
    engine: &E,
    cid: &str,
    name: &str,
    readiness: Readiness,
    opts: &ExecOptions,
    say: &(dyn Fn(&str) + Sync),
) -> Result<(), ActionFailure> {
    match readiness {
        Readiness::Healthy => say("waiting until healthy"),
        Readiness::Completed => say("waiting until it completes"),
        Readiness::Running => {}
    }
    match wait::wait_ready(engine, cid, name, readiness, opts.ready_timeout, opts.settle).await {
        Ok(()) => Ok(()),
        Err(err) => Err(ActionFailure {
            message: format!("{name}: {err}"),
            hint: Some(format!("see `docker logs {name}`; fix the blueprint or the image, then apply again")),
            logs: engine.logs_tail(cid, opts.log_lines).await.unwrap_or_default(),
            output: Vec::new(),
        }),
    }
}
