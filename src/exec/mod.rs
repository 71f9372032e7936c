//! Runs a plan against an engine: dependency order, independent work in parallel up to a
//! bound, every container health-gated. On the first failure nothing new starts; what is in
//! flight finishes; what had not started is left alone and reported.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::Either;
use futures_util::stream::FuturesUnordered;

use crate::desired::{ContainerSpec, Readiness};
use crate::engine::Engine;
use crate::model::OnFailure;
use crate::plan::{ActionId, FileSpec, Op, Plan, Resource};

mod balancer;
mod database;
mod migrate;
mod poll;
pub mod queue;
mod reshard;
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
    /// At most this many container removals at once, however many actions run (`None`:
    /// `parallel` bounds them). Destroy stops every container at once, since a stop mostly
    /// waits out the grace period the blueprint asks for, but removes a few at a time: Docker
    /// 20.10 leaked a network endpoint when 64 containers were removed at once.
    pub removals: Option<usize>,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            parallel: 8,
            ready_timeout: Duration::from_secs(120),
            log_lines: 20,
            settle: Duration::from_millis(500),
            removals: None,
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
    /// Rollouts that had a replica fail, and what their policy did about it.
    pub rollouts: Vec<RolloutFailure>,
}

impl ExecReport {
    pub fn succeeded(&self) -> bool {
        self.failed.is_empty() && self.not_started.is_empty()
    }
}

/// Receives events; must be callable from any action.
pub type EventSink<'a> = &'a (dyn Fn(ExecEvent) + Sync);

/// What happened to a rollout that failed, by its policy.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutFailure {
    pub service: String,
    pub policy: OnFailure,
    /// The replicas whose new container failed.
    pub failed: Vec<String>,
    /// The replicas put back on their previous spec (rollback only).
    pub rolled_back: Vec<String>,
    /// Replicas the rollback could not put back (it failed too); empty when it worked.
    pub rollback_failed: Vec<String>,
}

/// Executes `plan`. `cancel` set to true stops new actions from starting (Ctrl-C). A
/// replacement that fails inside a rollout does what the rollout's policy says: a rollback
/// runs the plan [`crate::plan::rollback_plan`] makes once what was in flight has finished
/// (its progress is reported as output of the failed action), a pause stops like any
/// failure, and a continue lets the other replicas go on.
pub async fn execute<E: Engine>(
    engine: &E,
    plan: &Plan,
    opts: &ExecOptions,
    sink: EventSink<'_>,
    cancel: &AtomicBool,
) -> ExecReport {
    let mut report = run_plan(engine, plan, opts, sink, cancel).await;
    let failed_rollouts = failed_rollouts(plan, &report);
    for (rollout, failed_ids) in failed_rollouts {
        let failed: Vec<String> = failed_ids.iter().map(|id| plan.actions[*id].op.target()).collect();
        let mut outcome = RolloutFailure {
            service: rollout.service.clone(),
            policy: rollout.policy.on_failure,
            failed,
            rolled_back: Vec::new(),
            rollback_failed: Vec::new(),
        };
        if rollout.policy.on_failure == OnFailure::Rollback && !report.interrupted {
            let trigger = failed_ids[0];
            roll_back(engine, plan, rollout, trigger, opts, sink, &mut outcome).await;
        }
        report.rollouts.push(outcome);
    }
    report
}

/// The rollouts with a failed replacement, with those replacements.
fn failed_rollouts<'p>(plan: &'p Plan, report: &ExecReport) -> Vec<(&'p crate::plan::Rollout, Vec<ActionId>)> {
    plan.rollouts
        .iter()
        .filter_map(|r| {
            let failed: Vec<ActionId> =
                r.batches.iter().flatten().copied().filter(|id| report.failed.contains(id)).collect();
            (!failed.is_empty()).then_some((r, failed))
        })
        .collect()
}

/// Observes the project and runs the rollback plan of `rollout`, reporting each step as
/// output of the action that failed (`trigger`).
async fn roll_back<E: Engine>(
    engine: &E,
    plan: &Plan,
    rollout: &crate::plan::Rollout,
    trigger: ActionId,
    opts: &ExecOptions,
    sink: EventSink<'_>,
    outcome: &mut RolloutFailure,
) {
    let say = |line: String| sink(ExecEvent::Output { id: trigger, line });
    let observed = match engine.observe(&plan.project).await {
        Ok(observed) => observed,
        Err(err) => {
            say(format!("cannot roll back {}: {err}", rollout.service));
            outcome.rollback_failed.push(rollout.service.clone());
            return;
        }
    };
    let back = crate::plan::rollback_plan(plan, rollout, &observed);
    say(format!("rolling back {}: {} step(s)", rollout.service, back.actions.len()));
    let relay = |event: ExecEvent| match event {
        ExecEvent::Started { id } => {
            say(format!("rollback: {} {}", back.actions[id].op.verb(), back.actions[id].op.target()))
        }
        ExecEvent::Output { line, .. } => say(format!("rollback: {line}")),
        ExecEvent::Failed { id, failure, .. } => {
            say(format!("rollback of {} failed: {}", back.actions[id].op.target(), failure.message))
        }
        ExecEvent::Finished { .. } | ExecEvent::NotStarted { .. } => {}
    };
    let never = AtomicBool::new(false);
    let result = run_plan(engine, &back, opts, &relay, &never).await;
    for a in &back.actions {
        if !matches!(a.op, Op::RecreateContainer { .. } | Op::CreateContainer { .. }) {
            continue;
        }
        let name = a.op.target();
        if result.finished.contains(&a.id) {
            outcome.rolled_back.push(name);
        } else {
            outcome.rollback_failed.push(name);
        }
    }
}

/// Runs a plan's actions in dependency order; what a failure means is the caller's.
async fn run_plan<E: Engine>(
    engine: &E,
    plan: &Plan,
    opts: &ExecOptions,
    sink: EventSink<'_>,
    cancel: &AtomicBool,
) -> ExecReport {
    let mut queue = DependencyQueue::new(plan);
    let (released, mut releases) = tokio::sync::mpsc::unbounded_channel();
    let run = Shared {
        removals: tokio::sync::Semaphore::new(opts.removals.unwrap_or(opts.parallel).clamp(1, MAX_PERMITS)),
        balancers: balancer::Balancers::new(&plan.project),
        released,
    };
    let run = &run;
    let mut report = ExecReport::default();
    let mut in_flight = FuturesUnordered::new();
    let mut created_early: HashMap<ActionId, Result<String, ActionFailure>> = HashMap::new();
    let mut stopping = false;
    loop {
        if cancel.load(Ordering::SeqCst) && !stopping {
            stopping = true;
            report.interrupted = true;
        }
        if !stopping {
            for id in queue.take_early() {
                in_flight.push(Either::Left(async move { Done::Created(id, create_early(engine, plan, id).await) }));
            }
            let free = opts.parallel.max(1).saturating_sub(queue.running_count());
            for id in queue.take_ready(free) {
                sink(ExecEvent::Started { id });
                let started = Instant::now();
                let early = created_early.remove(&id);
                in_flight.push(Either::Right(async move {
                    let result = run_action(engine, plan, id, opts, run, early, sink).await;
                    Done::Ran(id, result, started.elapsed())
                }));
            }
        }
        let next = tokio::select! {
            biased;
            Some(id) = releases.recv() => {
                queue.release(id);
                continue;
            }
            next = in_flight.next() => next,
        };
        let (id, result, elapsed) = match next {
            None => break,
            Some(Done::Created(id, created)) => {
                created_early.insert(id, created);
                queue.created_early(id);
                continue;
            }
            Some(Done::Ran(id, result, elapsed)) => (id, result, elapsed),
        };
        match result {
            Ok(()) => {
                queue.finish(id);
                report.finished.push(id);
                sink(ExecEvent::Finished { id, elapsed });
            }
            Err(failure) => {
                report.failed.push(id);
                // `continue`: the rollout goes on as if this replica were done.
                if plan.rollout_of(id).is_some_and(|r| r.policy.on_failure == OnFailure::Continue) {
                    queue.finish(id);
                } else {
                    queue.fail(id);
                    stopping = true;
                }
                sink(ExecEvent::Failed { id, failure, elapsed });
            }
        }
    }
    let say = |id: ActionId, line: &str| sink(ExecEvent::Output { id, line: line.to_string() });
    balancer::await_rejoined(engine, &run.balancers, balancer::Scope::All, &say).await;
    for id in queue.drain_pending() {
        report.not_started.push(id);
        sink(ExecEvent::NotStarted { id });
    }
    report
}

/// What ended among a run's futures.
enum Done {
    /// A container created ahead of its start, or why it could not be.
    Created(ActionId, Result<String, ActionFailure>),
    Ran(ActionId, Result<(), ActionFailure>, Duration),
}

/// Creates the container of a `CreateContainer` action and writes its files, before the
/// containers it depends on are ready; its action starts it later. A failure is the action's
/// when it runs.
async fn create_early<E: Engine>(engine: &E, plan: &Plan, id: ActionId) -> Result<String, ActionFailure> {
    let Op::CreateContainer { spec, files, .. } = &plan.actions[id].op else {
        unreachable!("only container creations are created early");
    };
    let cid = engine.create_named(&spec.name, spec, &plan.project).await.map_err(failure)?;
    balancer::write_files(engine, &plan.project, &cid, &spec.name, files).await?;
    Ok(cid)
}

/// What the actions of one run share.
struct Shared {
    /// Bounds container removals ([`ExecOptions::removals`]).
    removals: tokio::sync::Semaphore,
    balancers: balancer::Balancers,
    /// Rollout replacements whose new replica is ready ([`DependencyQueue::release`]).
    released: tokio::sync::mpsc::UnboundedSender<ActionId>,
}

fn failure(err: crate::engine::EngineError) -> ActionFailure {
    let output = match &err {
        crate::engine::EngineError::Build { output, .. } => output.clone(),
        _ => Vec::new(),
    };
    ActionFailure { hint: err.hint(), message: err.to_string(), logs: Vec::new(), output }
}

/// More removals at once than anyone asks for (the semaphore's own bound is far above).
const MAX_PERMITS: usize = 1 << 16;

async fn run_action<E: Engine>(
    engine: &E,
    plan: &Plan,
    id: ActionId,
    opts: &ExecOptions,
    run: &Shared,
    early: Option<Result<String, ActionFailure>>,
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
        Op::Reshard { runner, directory, create_map, moves, drop_map, .. } => {
            let steps = reshard::Steps { runner, directory, create_map: *create_map, moves, drop_map: *drop_map };
            reshard::run(engine, &plan.project, &steps, &say).await
        }
        Op::MigrateData { name, direction, marker, .. } => {
            migrate::run(engine, &plan.project, name, *direction, marker.as_deref(), &say).await
        }
        Op::CreateContainer { spec, readiness, files } => {
            let name = spec.name.as_str();
            let cid = early.transpose()?;
            bring_up_as(engine, plan, id, name, spec, *readiness, files, cid, opts, &say).await.map(|_| ())
        }
        Op::RecreateContainer { .. } => {
            let release = || {
                // The run loop is there until every action has ended: a send cannot fail.
                let _ = run.released.send(id);
            };
            recreate(engine, plan, id, opts, &run.balancers, &release, &say).await
        }
        Op::FinishReplacement { id: cid, temp_name, spec, readiness } => {
            engine.rename_container(cid, temp_name, &spec.name).await.map_err(failure)?;
            engine.start_container(cid, &spec.name).await.map_err(failure)?;
            let context = wait_context(plan, id, spec.healthcheck.as_ref().map(|h| h.retries));
            await_ready(engine, cid, &spec.name, *readiness, opts, &context, &say).await
        }
        Op::ReseedReplica { id: cid, name, grace_secs, readiness } => {
            say("marking its data for a fresh base backup and restarting it");
            let marker = crate::kinds::postgres::reseed_marker();
            engine.write_file(cid, name, &marker, b"requested by scale\n").await.map_err(failure)?;
            engine.stop_container(cid, name, Duration::from_secs(*grace_secs)).await.map_err(failure)?;
            engine.start_container(cid, name).await.map_err(failure)?;
            await_ready(engine, cid, name, *readiness, opts, &wait_context(plan, id, None), &say).await
        }
        Op::Reconnect { id: cid, name, networks } => {
            for n in networks {
                engine.connect(cid, name, &n.network, &n.aliases).await.map_err(failure)?;
            }
            Ok(())
        }
        Op::ReloadLoadBalancer { id: cid, name, files } => {
            balancer::reload(engine, cid, name, files, &run.balancers, &say).await
        }
        Op::StartContainer { id: cid, name, paused, readiness } => {
            if *paused {
                engine.unpause_container(cid, name).await.map_err(failure)?;
            } else {
                engine.start_container(cid, name).await.map_err(failure)?;
            }
            await_ready(engine, cid, name, *readiness, opts, &wait_context(plan, id, None), &say).await
        }
        Op::RemoveContainer { .. } => remove(engine, plan, id, run, &say).await,
    }
}

/// Removes a container: drained from its load balancers first, stopped with its grace
/// period, removed, its replication slot given up.
async fn remove<E: Engine>(
    engine: &E,
    plan: &Plan,
    id: ActionId,
    run: &Shared,
    say: &(dyn Fn(&str) + Sync),
) -> Result<(), ActionFailure> {
    let Op::RemoveContainer { id: cid, name, grace_secs, drains, release_slot, anonymous_volumes } =
        &plan.actions[id].op
    else {
        unreachable!("remove runs only RemoveContainer actions");
    };
    balancer::drain(engine, drains, &run.balancers, say).await;
    let stop = engine.stop_container(cid, name, Duration::from_secs(*grace_secs));
    futures_util::future::join(balancer::take_out(engine, drains), stop).await.1.map_err(failure)?;
    // Never closed, so acquiring cannot fail.
    let _permit = run.removals.acquire().await.ok();
    if *anonymous_volumes {
        engine.remove_container_and_anonymous_volumes(cid, name).await.map_err(failure)?;
    } else {
        engine.remove_container(cid, name).await.map_err(failure)?;
    }
    if let Some(release) = release_slot {
        database::release_slot(engine, release, say).await;
    }
    Ok(())
}

/// Replaces a container as its rollout says: start-first (the new one beside the old one
/// until ready, then the old one leaves and the new one takes its name) or stop-first (the
/// old one drained and stopped first, its anonymous volumes carried over); either way the
/// new one is watched for the rollout's `monitor` and the balancer's drain undone.
async fn recreate<E: Engine>(
    engine: &E,
    plan: &Plan,
    id: ActionId,
    opts: &ExecOptions,
    balancers: &balancer::Balancers,
    release: &(dyn Fn() + Sync),
    say: &(dyn Fn(&str) + Sync),
) -> Result<(), ActionFailure> {
    let Op::RecreateContainer {
        old_id,
        old_grace_secs,
        spec,
        readiness,
        files,
        drains,
        start_first,
        monitor_ms,
        delay_ms,
    } = &plan.actions[id].op
    else {
        unreachable!("recreate runs only RecreateContainer actions");
    };
    let grace = Duration::from_secs(*old_grace_secs);
    let monitor = Duration::from_millis(*monitor_ms);
    let mates = plan
        .rollout_of(id)
        .and_then(|r| r.batches.iter().find(|b| b.contains(&id)).cloned())
        .unwrap_or_else(|| vec![id]);
    if *delay_ms > 0 {
        say(&format!("waiting {delay_ms}ms before this batch"));
        tokio::time::sleep(Duration::from_millis(*delay_ms)).await;
    }
    if *start_first {
        let temp = format!("{}{}", spec.name, crate::plan::TEMP_SUFFIX);
        say(&format!("starting the new container as {temp}"));
        let cid = bring_up_as(engine, plan, id, &temp, spec, *readiness, files, None, opts, say).await?;
        watch_ready(engine, &cid, &temp, *readiness, monitor, opts, say).await?;
        // No drain record: the hand-over never leaves a server drained (it goes from ready
        // at the old address to ready on probation at the new one in one call), so a run
        // interrupted anywhere in it leaves nothing to repair.
        let (claim, addrs) = futures_util::future::join(
            balancer::claim_out(balancers, id, &mates, drains, say),
            balancer::resolve_all(engine, drains, &cid),
        )
        .await;
        let old = Retiring { id: old_id, name: &spec.name, grace };
        let new = Arriving { id: &cid, temp: &temp, addrs: &addrs };
        return hand_over(engine, old, new, drains, (balancers, claim), (id, &mates, release), say).await;
    }
    let spec = &carry_anonymous_volumes(engine, old_id, spec, say).await?;
    // Held until this replacement's servers are on probation (or it failed).
    let claim = balancer::claim_out(balancers, id, &mates, drains, say).await;
    balancer::mark_draining(engine, drains, balancers, true).await;
    balancer::drain(engine, drains, balancers, say).await;
    say("stopping the old container first");
    let stop = engine.stop_container(old_id, &spec.name, grace);
    futures_util::future::join(balancer::take_out(engine, drains), stop).await.1.map_err(failure)?;
    engine.remove_container(old_id, &spec.name).await.map_err(failure)?;
    let cid = bring_up_as(engine, plan, id, &spec.name, spec, *readiness, files, None, opts, say).await?;
    watch_ready(engine, &cid, &spec.name, *readiness, monitor, opts, say).await?;
    release();
    // The drain record is cleared once the server is back in rotation (`await_rejoined`).
    let addrs = balancer::resolve_all(engine, drains, &cid).await;
    balancer::undrain(engine, drains, &addrs, balancers, id, say).await;
    drop(claim);
    Ok(())
}

/// The old container of a start-first replacement, about to leave.
struct Retiring<'a> {
    id: &'a str,
    name: &'a str,
    grace: Duration,
}

/// The ready replacement of a start-first replacement: its ID, temporary name, and its
/// address on each drain's load balancer.
struct Arriving<'a> {
    id: &'a str,
    temp: &'a str,
    addrs: &'a [Option<String>],
}

/// Hands the old container's name, and its load balancer servers, over to its ready
/// replacement: the old one steps aside to a retired name, the new one takes the name, each
/// server moves to the new address on probation, and the old one stops once its requests
/// in flight are done, then is removed, while the load balancer's checks bring the servers
/// back into rotation. The old container's stop (the grace period its process takes) is off
/// the rollout's critical path, no separate drain is needed (the server leaves the old
/// address in the same call that puts it on probation), and the next batch may take its
/// servers out (`claim` released) as soon as these are on probation.
///
/// The next batch starts (`release`) once both renames are done, not before: Docker 20.10
/// serializes a rename with the network work of a container's start, so renames issued
/// while the next batch's containers start waited ~0.8 s for them, once per batch.
async fn hand_over<E: Engine>(
    engine: &E,
    old: Retiring<'_>,
    new: Arriving<'_>,
    drains: &[crate::plan::Drain],
    (balancers, claim): (&balancer::Balancers, balancer::OutClaim<'_>),
    action: (ActionId, &[ActionId], &(dyn Fn() + Sync)),
    say: &(dyn Fn(&str) + Sync),
) -> Result<(), ActionFailure> {
    balancer::await_previous(engine, drains, balancers, action.1, say).await;
    let retired = crate::plan::retired_name(old.name, old.id);
    engine.rename_container(old.id, old.name, &retired).await.map_err(failure)?;
    engine.rename_container(new.id, new.temp, old.name).await.map_err(failure)?;
    (action.2)();
    balancer::switch_over(engine, drains, new.addrs, balancers, action.0, say).await;
    drop(claim);
    let leave = async {
        engine.stop_container(old.id, &retired, old.grace).await?;
        engine.remove_container(old.id, &retired).await
    };
    let say_for = |_: ActionId, line: &str| say(line);
    let rejoin = balancer::await_rejoined(engine, balancers, balancer::Scope::Own(action.0), &say_for);
    futures_util::future::join(leave, rejoin).await.0.map_err(failure)
}

/// Creates `spec` under `name` and writes its files (unless `created`, the ID of a container
/// created early), starts it and waits until ready; returns its ID.
#[allow(clippy::too_many_arguments)]
async fn bring_up_as<E: Engine>(
    engine: &E,
    plan: &Plan,
    action: ActionId,
    name: &str,
    spec: &ContainerSpec,
    readiness: Readiness,
    files: &[FileSpec],
    created: Option<String>,
    opts: &ExecOptions,
    say: &(dyn Fn(&str) + Sync),
) -> Result<String, ActionFailure> {
    let cid = match created {
        Some(cid) => cid,
        None => {
            let cid = engine.create_named(name, spec, &plan.project).await.map_err(failure)?;
            balancer::write_files(engine, &plan.project, &cid, name, files).await?;
            cid
        }
    };
    if let Err(err) = engine.start_container(&cid, name).await {
        let mut f = failure(err);
        f.logs = engine.logs_tail(&cid, opts.log_lines).await.unwrap_or_default();
        return Err(f);
    }
    let mut context = wait_context(plan, action, spec.healthcheck.as_ref().map(|h| h.retries));
    context.probe = spec.healthcheck.as_ref().and_then(wait::Probe::of);
    // A load balancer's servers come UP while it proves it keeps running: both waits at once,
    // and a failed start ends both.
    let pool_up = async {
        if let Some(pool) = balancer::pool_of(files) {
            balancer::await_pool_up(engine, &cid, name, &pool, say).await;
        }
        Ok(())
    };
    let ready = await_ready(engine, &cid, name, readiness, opts, &context, say);
    futures_util::future::try_join(ready, pool_up).await?;
    Ok(cid)
}

/// What waiting for action `id` holds up: the containers of the actions that wait for it
/// (the plan's `after` edges), by their short names.
pub fn wait_context(plan: &Plan, id: ActionId, retries: Option<u32>) -> wait::WaitContext {
    let prefix = format!("{}-", plan.project);
    let mut blocks: Vec<String> = plan
        .actions
        .iter()
        .filter(|a| a.after.contains(&id) && a.op.resource() == Resource::Container)
        .map(|a| a.op.name().strip_prefix(&prefix).map(str::to_string).unwrap_or_else(|| a.op.name()))
        .collect();
    blocks.dedup();
    wait::WaitContext { retries, blocks, probe: None }
}

/// `spec` with the old container's anonymous volumes carried over to its anonymous mounts
/// (as Compose does), so a replacement keeps what it wrote there.
async fn carry_anonymous_volumes<E: Engine>(
    engine: &E,
    old_id: &str,
    spec: &ContainerSpec,
    say: &(dyn Fn(&str) + Sync),
) -> Result<ContainerSpec, ActionFailure> {
    let mut spec = spec.clone();
    let anonymous: Vec<&str> = spec
        .mounts
        .iter()
        .filter(|m| m.source == crate::spec::MountSourceSpec::Anonymous)
        .map(|m| m.target.as_str())
        .collect();
    if anonymous.is_empty() {
        return Ok(spec);
    }
    let mounted = engine.volume_mounts(old_id, &spec.name).await.map_err(failure)?;
    spec.carried = mounted.into_iter().filter(|(target, _)| anonymous.contains(&target.as_str())).collect();
    if !spec.carried.is_empty() {
        let targets: Vec<&str> = spec.carried.keys().map(String::as_str).collect();
        say(&format!("carrying the anonymous volume(s) of {} over", targets.join(", ")));
    }
    Ok(spec)
}

/// Keeps looking at a new container for `monitor` after it first turned ready (a rollout's
/// `monitor`): one that turns unhealthy or exits in that time fails its replacement.
async fn watch_ready<E: Engine>(
    engine: &E,
    cid: &str,
    name: &str,
    readiness: Readiness,
    monitor: Duration,
    opts: &ExecOptions,
    say: &(dyn Fn(&str) + Sync),
) -> Result<(), ActionFailure> {
    if monitor.is_zero() {
        return Ok(());
    }
    say(&format!("monitoring {name} for {}s", monitor.as_secs_f64()));
    let start = Instant::now();
    while start.elapsed() < monitor {
        tokio::time::sleep(Duration::from_millis(250).min(monitor)).await;
        let verdict = match engine.container_status(cid, name).await {
            Ok(status) => wait::judge(readiness, &status).map(|_| ()),
            Err(err) => Err(wait::WaitError::Engine(err.to_string())),
        };
        if let Err(err) = verdict {
            return Err(ActionFailure {
                message: format!("{name}: {err} within its monitor period"),
                hint: Some(format!("see `docker logs {name}`; fix the blueprint or the image, then apply again")),
                logs: engine.logs_tail(cid, opts.log_lines).await.unwrap_or_default(),
                output: Vec::new(),
            });
        }
    }
    Ok(())
}

async fn await_ready<E: Engine>(
    engine: &E,
    cid: &str,
    name: &str,
    readiness: Readiness,
    opts: &ExecOptions,
    context: &wait::WaitContext,
    say: &(dyn Fn(&str) + Sync),
) -> Result<(), ActionFailure> {
    match readiness {
        Readiness::Healthy => say("waiting until healthy"),
        Readiness::Completed => say("waiting until it completes"),
        Readiness::Running => {}
    }
    match wait::wait_ready_saying(engine, cid, name, readiness, opts.ready_timeout, opts.settle, context, say).await {
        Ok(()) => Ok(()),
        Err(err) => Err(ActionFailure {
            message: format!("{name}: {err}"),
            hint: Some(format!("see `docker logs {name}`; fix the blueprint or the image, then apply again")),
            logs: engine.logs_tail(cid, opts.log_lines).await.unwrap_or_default(),
            output: Vec::new(),
        }),
    }
}
