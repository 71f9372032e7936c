//! `plan`, `apply`, `status` and `destroy` on the Swarm target (`--target swarm`, or a
//! project recorded there): the same blueprint and words, run as Swarm services through
//! [`crate::ops::units`]. Which target a command uses is decided once here ([`resolve`]).

use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use super::Loaded;
use super::interrupt::Interrupt;
use super::locking::with_lock;
use crate::engine::docker::DockerEngine;
use crate::engine::orchestrator::Orchestrator;
use crate::engine::swarm::SwarmEngine;
use crate::kinds::load_balancer::{CONFIG_PATH, task_pool_config};
use crate::ops::units::{UnitOptions, apply_units, destroy_units};
use crate::plan::assign_primaries;
use crate::plan::units::{UnitFile, UnitPlan, plan_units, render_units, render_units_json, units};
use crate::target::{Target, choose};
use crate::ui::Ui;

/// `--target`, on the commands that act on a project's resources.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TargetArg {
    /// Where the project runs: `docker` (containers on DOCKER_HOST) or `swarm` (services of the
    /// Swarm whose manager DOCKER_HOST names). Recorded with the project; later commands
    /// use the recorded one.
    #[arg(long, value_enum, value_name = "TARGET")]
    pub target: Option<Target>,
}

/// The target for `project`: the recorded one, or the requested one for a new project.
pub async fn resolve(engine: &DockerEngine, project: &str, arg: &TargetArg) -> anyhow::Result<Target> {
    let recorded = crate::engine::swarm::recorded_target(engine, project)
        .await
        .context("cannot read where the project runs from the engine")?;
    Ok(choose(project, arg.target, recorded)?)
}

async fn swarm(engine: &DockerEngine) -> anyhow::Result<SwarmEngine> {
    Ok(SwarmEngine::new(engine.clone()).await?)
}

/// The unit plan of a loaded blueprint against what the swarm holds.
async fn unit_plan(target: &SwarmEngine, loaded: &Loaded) -> anyhow::Result<UnitPlan> {
    let balancer = |unit: &str, port: u16, listen: &[u16]| UnitFile {
        path: CONFIG_PATH.to_string(),
        text: task_pool_config(unit, port, listen),
    };
    let observed = target.observe_units(&loaded.project).await.context("cannot read the project's services")?;
    // A database keeps the primary its last failover promoted, as on one engine.
    let desired = assign_primaries(&loaded.desired, &observed.marker_state(&loaded.project));
    let wanted = units(&desired, &balancer);
    Ok(plan_units(&desired, wanted, &observed))
}

/// Says which database primaries are on lost nodes, and what to do: a plan has nothing to do
/// about them (nothing moves a database node), yet writes fail until a failover.
async fn note_lost_primaries(target: &SwarmEngine, project: &str, ui: Ui) -> anyhow::Result<()> {
    let lost = crate::ops::units_failover::lost_primaries(target, project)
        .await
        .context("cannot read the database nodes' state")?;
    for l in lost {
        ui.say(format!(
            "note: the primary of {} ({}) is on node {}, which is down: writes fail until `scale failover {} -p {project}` \
             (`failover: auto` needs `scale watch`, which does not run on Swarm yet)",
            l.service, l.unit, l.node, l.service
        ));
    }
    Ok(())
}

/// `scale plan --target swarm`.
pub async fn plan(loaded: &Loaded, engine: &DockerEngine, ui: Ui, detailed_exitcode: bool) -> anyhow::Result<u8> {
    let target = swarm(engine).await?;
    note_lost_primaries(&target, &loaded.project, ui).await?;
    let plan = unit_plan(&target, loaded).await?;
    if ui.is_json() {
        ui.json(&render_units_json(&plan));
    } else if !ui.quiet {
        print!("{}", render_units(&plan));
    }
    Ok(if detailed_exitcode && plan.has_changes() { 2 } else { 0 })
}

/// `scale apply --target swarm`: under the project lock, plan and run.
pub async fn apply(
    loaded: &Loaded,
    engine: &DockerEngine,
    ui: Ui,
    timeout: Duration,
    lock_timeout: Duration,
) -> anyhow::Result<u8> {
    let target = swarm(engine).await?;
    let mut interrupt = Interrupt::listen()?;
    with_lock(engine, &loaded.project, "apply", lock_timeout, &mut interrupt, async |_| {
        note_lost_primaries(&target, &loaded.project, ui).await?;
        let plan = unit_plan(&target, loaded).await?;
        if ui.is_json() {
            ui.json(&json!({"event": "plan", "plan": render_units_json(&plan)}));
        } else if !ui.quiet {
            print!("{}", render_units(&plan));
        }
        if !plan.has_changes() {
            return Ok(0);
        }
        let say = |line: &str| ui.say(format!("  {line}"));
        let opts = UnitOptions { timeout, ..UnitOptions::default() };
        let done = apply_units(&target, &plan, opts, &say).await.context("apply on the swarm failed")?;
        if ui.is_json() {
            ui.json(&json!({"event": "result", "status": "ok", "changes": done}));
        } else {
            ui.say(format!(
                "Applied {done} change{} to project {} on the swarm.",
                if done == 1 { "" } else { "s" },
                loaded.project
            ));
        }
        Ok(0)
    })
    .await
}

/// `scale status --target swarm`: each unit, its ready tasks and the nodes they run on.
pub async fn status(project: &str, engine: &DockerEngine, ui: Ui) -> anyhow::Result<u8> {
    let target = swarm(engine).await?;
    let observed = target.observe_units(project).await.context("cannot read the project's services")?;
    let mut rows = Vec::new();
    for unit in observed.units.values() {
        let progress = target.unit_progress(&unit.name, &unit.hash).await?;
        rows.push((unit, progress));
    }
    if ui.is_json() {
        let units: Vec<_> = rows
            .iter()
            .map(|(u, p)| json!({"name": u.name, "service": u.service, "replicas": u.replicas, "ready": p.ready, "nodes": p.nodes}))
            .collect();
        ui.json(&json!({"project": project, "target": "swarm", "services": units, "networks": observed.networks}));
        return Ok(0);
    }
    println!("Project {project} (target swarm)");
    println!("{:<28} {:<8} NODES", "SERVICE", "READY");
    for (unit, progress) in rows {
        let nodes: Vec<&str> = progress.nodes.iter().map(String::as_str).collect();
        println!("{:<28} {:<8} {}", unit.name, format!("{}/{}", progress.ready, unit.replicas), nodes.join(", "));
    }
    Ok(0)
}

/// `scale failover` on a project that runs on the swarm: promote under the project lock;
/// with the blueprint, apply it afterwards (what is left to do, such as a replica to add).
pub async fn failover(
    project: &str,
    loaded: Option<&Loaded>,
    service: Option<&str>,
    engine: &DockerEngine,
    ui: Ui,
    lock_timeout: Duration,
) -> anyhow::Result<u8> {
    let target = swarm(engine).await?;
    let mut interrupt = Interrupt::listen()?;
    with_lock(engine, project, "failover", lock_timeout, &mut interrupt, async |_| {
        let say = |line: &str| {
            if !ui.is_json() {
                ui.say(line);
            }
        };
        let report =
            crate::ops::units_failover::failover_units(&target, project, service, UnitOptions::default(), &say)
                .await
                .context("failover on the swarm failed")?;
        if ui.is_json() {
            ui.json(&json!({"event": "failover", "report": report}));
        }
        if let Some(loaded) = loaded {
            let plan = unit_plan(&target, loaded).await?;
            if !ui.is_json() && !ui.quiet {
                print!("{}", render_units(&plan));
            }
            let say = |line: &str| ui.say(format!("  {line}"));
            apply_units(&target, &plan, UnitOptions::default(), &say)
                .await
                .context("the failover promoted a replica, but applying the blueprint afterwards failed")?;
        }
        ui.say(format!("Failover done: {} is the primary of {}.", report.promoted, report.service));
        Ok(0)
    })
    .await
}

/// `scale destroy --target swarm`: the project's services and networks. Volumes live on the
/// nodes (each database node's own); they are kept.
pub async fn destroy(project: &str, engine: &DockerEngine, ui: Ui, lock_timeout: Duration) -> anyhow::Result<u8> {
    let target = swarm(engine).await?;
    let mut interrupt = Interrupt::listen()?;
    with_lock(engine, project, "destroy", lock_timeout, &mut interrupt, async |_| {
        let say = |line: &str| ui.say(format!("  {line}"));
        let removed = destroy_units(&target, project, UnitOptions::default(), &say)
            .await
            .context("destroy on the swarm failed")?;
        if ui.is_json() {
            ui.json(&json!({"event": "result", "status": "ok", "removed": removed}));
        } else {
            ui.say(format!("Removed {removed} service(s) and network(s) of project {project} from the swarm."));
        }
        Ok(0)
    })
    .await
}
