//! `scale reap`: remove every project on the engine whose `apply --ttl` expiry has passed
//! (containers, networks, volumes), as testcontainers' reaper does for leaked test
//! containers. A project with any container lacking an expiry is never touched.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use serde_json::json;

use super::Global;
use super::interrupt::{self, Interrupt, Wording};
use super::locking::{release_lock, wait_for_lock};
use crate::engine::Engine;
use crate::engine::docker::DockerEngine;
use crate::exec::ExecOptions;
use crate::expiry::{ProjectInfo, Resource, ResourceKind, summarize};
use crate::plan::{Plan, destroy_plan};
use crate::ui::Ui;

const WORDING: Wording<'static> = Wording {
    stopping: "interrupt: letting running removals finish, starting nothing new (Ctrl-C again to exit now)",
    resume: "scale reap",
};

/// Arguments of `scale reap`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Say what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// What happened to one expired project.
struct Outcome {
    project: String,
    expired_at: String,
    removed: Vec<String>,
    /// Why it was left (locked, renewed, a removal failed).
    skipped: Option<String>,
}

/// Finds the expired projects and removes each under its lock.
pub async fn run(args: Args, _global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let engine = super::connect().await?;
    let mut interrupt = Interrupt::listen()?;
    let resources = crate::engine::tools::all_resources(&engine).await.context("cannot list the engine's projects")?;
    let now = SystemTime::now();
    let expired: Vec<ProjectInfo> = summarize(&resources).into_iter().filter(|p| p.expired(now)).collect();
    let mut outcomes = Vec::new();
    for info in &expired {
        let expired_at = info.expires_at.map(crate::expiry::format_time).unwrap_or_default();
        let mut outcome = Outcome { project: info.project.clone(), expired_at, removed: Vec::new(), skipped: None };
        if args.dry_run {
            let mut mine: Vec<&Resource> = resources.iter().filter(|r| r.project == info.project).collect();
            mine.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
            outcome.removed = mine.into_iter().map(describe).collect();
        } else if let Some(code) = reap_one(&engine, &info.project, &mut interrupt, &mut outcome).await? {
            report(ui, args.dry_run, &outcomes);
            return Ok(code);
        }
        outcomes.push(outcome);
    }
    report(ui, args.dry_run, &outcomes);
    Ok(if outcomes.iter().any(|o| o.skipped.is_some()) { 1 } else { 0 })
}

/// `container ci-1-web-1`.
fn describe(r: &Resource) -> String {
    let kind = match r.kind {
        ResourceKind::Container => "container",
        ResourceKind::Network => "network",
        ResourceKind::Volume => "volume",
    };
    format!("{kind} {}", r.name)
}

/// Removes one project under its lock, if it is still expired once locked. `Some(code)`:
/// stop now (interrupted).
async fn reap_one(
    engine: &DockerEngine,
    project: &str,
    interrupt: &mut Interrupt,
    outcome: &mut Outcome,
) -> anyhow::Result<Option<u8>> {
    let mut lock = match wait_for_lock(engine, project, "reap", Duration::ZERO, interrupt, &|_| {}).await {
        Ok(Some(lock)) => lock,
        Ok(None) => return Ok(Some(130)),
        Err(err) => {
            outcome.skipped = Some(format!("left alone: {err}"));
            return Ok(None);
        }
    };
    let result = remove_if_expired(engine, project, interrupt, outcome).await;
    release_lock(&mut lock).await;
    result
}

/// The project's destroy plan (volumes too), run quietly: what was removed goes into
/// `outcome`, for one report at the end (one JSON document with `--output json`).
async fn remove_if_expired(
    engine: &DockerEngine,
    project: &str,
    interrupt: &mut Interrupt,
    outcome: &mut Outcome,
) -> anyhow::Result<Option<u8>> {
    let observed = engine.observe(project).await.context("cannot read the project's state from the engine")?;
    // Looked at again under the lock: an apply may have renewed it since the listing.
    let resources: Vec<Resource> = observed
        .containers
        .values()
        .map(|c| Resource {
            kind: ResourceKind::Container,
            name: c.name.clone(),
            project: project.into(),
            labels: c.labels.clone(),
            created: None,
            running: false,
        })
        .collect();
    if summarize(&resources).first().is_some_and(|p| !p.expired(SystemTime::now())) {
        outcome.skipped = Some("left alone: renewed or changed since it was listed".into());
        return Ok(None);
    }
    let plan: Plan = destroy_plan(&observed, true);
    let quiet = Ui { mode: crate::ui::Mode::Plain, quiet: true, color: false };
    let Some(exec) = interrupt::execute(engine, &plan, &ExecOptions::default(), quiet, interrupt, WORDING).await else {
        return Ok(Some(130));
    };
    outcome.removed = exec.finished.iter().map(|&id| plan.actions[id].op.target()).collect();
    outcome.removed.iter_mut().filter(|t| !t.contains(' ')).for_each(|t| *t = format!("container {t}"));
    // Containers, then networks, then volumes, whatever order the removals finished in.
    outcome.removed.sort_by_key(|t| (!t.starts_with("container"), !t.starts_with("network"), t.clone()));
    if exec.interrupted {
        return Ok(Some(130));
    }
    if !exec.succeeded() {
        outcome.skipped = Some(format!("{} removal(s) failed; `scale reap` tries again", exec.failed.len()));
    }
    Ok(None)
}

fn report(ui: Ui, dry_run: bool, outcomes: &[Outcome]) {
    if ui.is_json() {
        let projects: Vec<_> = outcomes
            .iter()
            .map(|o| json!({"project": o.project, "expired_at": o.expired_at, "removed": o.removed, "skipped": o.skipped}))
            .collect();
        ui.json(&json!({"dry_run": dry_run, "projects": projects}));
        return;
    }
    if outcomes.is_empty() {
        ui.say("No expired projects.");
    }
    for o in outcomes {
        let verb = if dry_run { "Would reap" } else { "Reaped" };
        match &o.skipped {
            Some(why) if o.removed.is_empty() => {
                ui.say(format!("Project {} (expired {}): {why}", o.project, o.expired_at))
            }
            _ => ui.say(format!("{verb} project {} (expired {}):", o.project, o.expired_at)),
        }
        for r in &o.removed {
            ui.say(format!("  {} {r}", if dry_run { "would remove" } else { "removed" }));
        }
        if let (Some(why), false) = (&o.skipped, o.removed.is_empty()) {
            ui.say(format!("  {why}"));
        }
    }
}
