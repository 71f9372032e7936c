//! `scale apply FILE`: plan, confirm removals on a terminal, execute with progress, print the
//! endpoints.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use super::interrupt::{self, Interrupt, Wording};
use super::locking::{parse_lock_timeout, with_lock};
use super::{Global, Loaded, connect, interactive, load_desired};
use crate::engine::Engine;
use crate::engine::docker::DockerEngine;
use crate::exec::{ExecOptions, ExecReport};
use crate::ops::{self, apply::Applied, apply::ApplyHooks, apply::Review};
use crate::plan::{Plan, render_json, render_text};
use crate::ui::Ui;
use crate::ui::status::endpoint_lines;

/// What apply says on Ctrl-C while its plan runs.
const WORDING: Wording<'static> = Wording {
    stopping: "interrupt: letting running actions finish, starting nothing new (Ctrl-C again to exit now)",
    resume: "scale apply",
};

/// Arguments of `scale apply`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The blueprint or Compose file (default: compose.yaml here, see -f).
    pub file: Option<PathBuf>,
    /// Don't ask before removing or replacing anything.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// How many actions may run at once (an action waiting for its container to turn
    /// healthy holds its place, so this is more than the engine's work at any moment).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// How long a container may take to become ready (healthy, running or completed).
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// How long to wait while another scale command (apply, destroy, failover, a watch pass)
    /// changes the project (0: don't wait).
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = parse_lock_timeout)]
    pub lock_timeout: Duration,
    /// Keep reconciling afterwards, like `scale watch FILE` (follow engine events, repair
    /// drift, fail over when `failover: auto`) until Ctrl-C.
    #[arg(long)]
    pub watch: bool,
    /// With --watch: observe and repair at least this often.
    #[arg(long, default_value = "10s", value_parser = parse_duration, requires = "watch")]
    pub resync: Duration,
    /// Mark what this apply creates to expire after DURATION (`2h`, `30m`): `scale reap`
    /// removes the project once it has passed (label io.scale.expires-at).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "watch")]
    pub ttl: Option<Duration>,
    /// Replace this container even if nothing about it changed (`web-2` or `shop-web-2`);
    /// may repeat.
    #[arg(long, value_name = "CONTAINER", conflicts_with = "watch")]
    pub replace: Vec<String>,
    /// Touch only this service and what it needs (its dependencies), nothing else.
    #[arg(long, value_name = "SERVICE", conflicts_with = "watch")]
    pub only: Option<String>,
    #[command(flatten)]
    pub target: super::swarm::TargetArg,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::model::duration::parse(text)
}

/// Plans and executes; exit 1 when any action failed, 130 when interrupted.
pub async fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let mut loaded = load_desired(args.file.as_deref(), global, ui)?;
    if let Some(ttl) = args.ttl {
        crate::expiry::stamp(&mut loaded.desired, std::time::SystemTime::now() + ttl);
    }
    let engine = connect().await?;
    if super::swarm::resolve(&engine, &loaded.project, &args.target).await? == crate::target::Target::Swarm {
        return super::swarm::apply(&loaded, &engine, ui, args.timeout, args.lock_timeout).await;
    }
    super::preflight::check(&engine, &loaded, ui, super::preflight::Strictness::Refuse).await?;
    if let Some(code) = in_sync_unlocked(&args, ui, &loaded, &engine).await? {
        return Ok(code);
    }
    let mut interrupt = Interrupt::listen()?;
    // Locked before observing, so an apply that waited plans against the converged state.
    with_lock(&engine, &loaded.project, "apply", args.lock_timeout, &mut interrupt, async |interrupt| {
        run_locked(&args, ui, &loaded, &engine, interrupt).await
    })
    .await
}

/// The fast path of an apply with nothing to do: observe and plan without the lock, and when
/// the plan is empty and no other command holds the lock once we have looked (it is held for
/// the whole of any change, so a state observed half-way through one is not taken as the
/// answer), print it and conclude as the locked pass would. `None`: take the locked way.
async fn in_sync_unlocked(args: &Args, ui: Ui, loaded: &Loaded, engine: &DockerEngine) -> anyhow::Result<Option<u8>> {
    if args.ttl.is_some() {
        return Ok(None);
    }
    let scope = crate::plan::Scope::resolve(&loaded.desired, args.only.as_deref(), &args.replace)?;
    let Some((plan, observed)) = ops::apply::unlocked_in_sync(engine, &loaded.desired, &scope).await? else {
        return Ok(None);
    };
    if crate::engine::lock::held_in_docker(engine, &loaded.project).await? {
        return Ok(None);
    }
    print_plan(ui, &plan);
    Ok(Some(conclude(ui, &loaded.project, Applied::InSync { observed })))
}

/// Prints a plan as apply shows it (a JSON event under `--output json`).
fn print_plan(ui: Ui, plan: &Plan) {
    if ui.is_json() {
        ui.json(&json!({"event": "plan", "plan": render_json(plan)}));
    } else if !ui.quiet {
        print!("{}", render_text(plan));
    }
}

/// The terminal's side of an apply pass: print the plan, confirm removals, run with progress.
pub(super) struct TerminalApply<'a> {
    pub ui: Ui,
    pub interrupt: &'a mut Interrupt,
    pub opts: ExecOptions,
    pub wording: Wording<'static>,
    /// Ask before removing or replacing anything (on a terminal, without `--yes`).
    pub confirm: bool,
}

impl<E: Engine> ApplyHooks<E> for TerminalApply<'_> {
    fn planned(&mut self, plan: &Plan) {
        print_plan(self.ui, plan);
    }

    async fn review(&mut self, plan: &Plan) -> Review {
        let destructive = plan.actions.iter().filter(|a| a.op.is_destructive()).count();
        if destructive == 0 || !self.confirm || !interactive() || self.ui.is_json() {
            return Review::Proceed;
        }
        let question = format!("{destructive} container(s) or network(s) will be removed or replaced. Apply?");
        match self.interrupt.confirm(&question).await {
            Some(true) => Review::Proceed,
            Some(false) => Review::Declined,
            None => Review::Interrupted,
        }
    }

    async fn execute(&mut self, engine: &E, plan: &Plan) -> Option<ExecReport> {
        interrupt::execute(engine, plan, &self.opts, self.ui, self.interrupt, self.wording).await
    }
}

/// Everything apply does while holding the project lock: the pass, then what to say.
async fn run_locked(
    args: &Args,
    ui: Ui,
    loaded: &Loaded,
    engine: &DockerEngine,
    interrupt: &mut Interrupt,
) -> anyhow::Result<u8> {
    let opts = ExecOptions { parallel: args.parallel as usize, ready_timeout: args.timeout, ..Default::default() };
    let mut hooks = TerminalApply { ui, interrupt, opts, wording: WORDING, confirm: !args.yes };
    let scope = crate::plan::Scope::resolve(&loaded.desired, args.only.as_deref(), &args.replace)?;
    let applied = ops::apply::apply_scoped(engine, &loaded.desired, &scope, &mut hooks).await?;
    if args.ttl.is_some() {
        note_unstamped(ui, &loaded.desired, &applied);
    }
    Ok(conclude(ui, &loaded.project, applied))
}

/// What to say once an apply pass (or a rollback) ended; the exit code.
pub(super) fn conclude(ui: Ui, project: &str, applied: Applied) -> u8 {
    match applied {
        Applied::InSync { observed } => {
            print_endpoints(ui, &observed);
            if ui.is_json() {
                ui.json(&json!({"event": "result", "status": "ok", "changes": 0, "endpoints": observed.endpoints()}));
            }
            0
        }
        Applied::Stopped(Review::Declined) => {
            eprintln!("Nothing was changed.");
            1
        }
        Applied::Stopped(_) => {
            eprintln!("interrupted: nothing was changed");
            130
        }
        Applied::ExitNow => 130,
        Applied::Incomplete { plan, report } => report_incomplete(ui, &plan, &report),
        Applied::Done { report, after, .. } => {
            let after = after.unwrap_or_default();
            let done = report.finished.len();
            if ui.is_json() {
                ui.json(&json!({"event": "result", "status": "ok", "changes": done, "endpoints": after.endpoints()}));
            } else {
                ui.say(format!("Applied {done} change{} to project {}.", if done == 1 { "" } else { "s" }, project));
                print_endpoints(ui, &after);
            }
            0
        }
    }
}

/// `--ttl` labels only what the apply creates (the engine cannot relabel a container):
/// says which containers keep another expiry, or none, and so keep the project alive.
fn note_unstamped(ui: Ui, desired: &crate::spec::DesiredState, applied: &Applied) {
    let observed = match applied {
        Applied::InSync { observed } => observed,
        Applied::Done { after: Some(after), .. } => after,
        _ => return,
    };
    let wanted = desired.containers.values().next().and_then(|c| c.labels.get(crate::labels::EXPIRES_AT));
    let stale: Vec<&str> = observed
        .containers
        .values()
        .filter(|c| c.labels.get(crate::labels::EXPIRES_AT) != wanted)
        .map(|c| c.name.as_str())
        .collect();
    if let (Some(at), false) = (wanted, stale.is_empty()) {
        crate::cli::print_notes(
            ui,
            &[format!(
                "--ttl marks only what this apply created; {} created earlier keep their own expiry or none \
                 (the latest counts; a container without one keeps the project from being reaped): \
                 `scale apply --replace NAME` or `scale destroy` first to renew; wanted expiry {at}",
                stale.join(", ")
            )],
        );
    } else if let Some(at) = wanted {
        ui.say(format!("Project {} expires at {at}; `scale reap` removes it after that.", desired.project));
    }
}

/// Says how far a plan got that did not finish; the exit code (130 interrupted, 1 failed).
fn report_incomplete(ui: Ui, plan: &Plan, report: &ExecReport) -> u8 {
    let done = report.finished.len();
    let total = plan.actions.len();
    let status = if report.interrupted && report.failed.is_empty() { "interrupted" } else { "failed" };
    if ui.is_json() {
        let rollouts: Vec<serde_json::Value> = report
            .rollouts
            .iter()
            .map(|r| {
                json!({"service": r.service, "on_failure": r.policy.as_str(), "failed": r.failed,
                    "rolled_back": r.rolled_back, "rollback_failed": r.rollback_failed})
            })
            .collect();
        ui.json(&json!({
            "event": "result", "status": status, "done": done, "failed": report.failed.len(),
            "not_started": report.not_started.len(), "rollouts": rollouts,
        }));
    } else {
        for r in &report.rollouts {
            eprintln!("{}", rollout_outcome(r));
        }
        eprintln!(
            "apply {status}: {done} of {total} actions done, {} failed, {} not started; run `scale apply` again once fixed",
            report.failed.len(),
            report.not_started.len()
        );
    }
    if report.interrupted && report.failed.is_empty() { 130 } else { 1 }
}

/// One sentence on a failed rollout: what failed and what its policy did about it.
fn rollout_outcome(r: &crate::exec::RolloutFailure) -> String {
    use crate::model::OnFailure;
    let failed = format!("rollout of {} failed on {}", r.service, r.failed.join(", "));
    match r.policy {
        OnFailure::Rollback if r.rollback_failed.is_empty() && r.rolled_back.is_empty() => {
            format!("{failed}; rolled back: no replica had been replaced yet, all run their previous spec")
        }
        OnFailure::Rollback if r.rollback_failed.is_empty() => {
            format!("{failed}; rolled back: {} run their previous spec again", r.rolled_back.join(", "))
        }
        OnFailure::Rollback => format!(
            "{failed}; the rollback did not finish ({} not put back): run `scale rollback {}` or fix and apply again",
            r.rollback_failed.join(", "),
            r.service
        ),
        OnFailure::Pause => format!(
            "{failed}; paused (on_failure: pause): replaced replicas run the new spec, the others the old; \
             fix and apply again, or `scale rollback {}`",
            r.service
        ),
        OnFailure::Continue => format!("{failed}; the other replicas went on (on_failure: continue)"),
    }
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
