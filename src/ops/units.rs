//! The apply and destroy passes on an orchestrator target, generic over
//! [`Orchestrator`]: what Swarm does not do and scale adds — `depends_on` order with health
//! gating across services, images without a registry, waiting for each rolling update to
//! finish (and reporting Swarm's rollback as a failure).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::engine::orchestrator::{Orchestrator, OrchestratorError, UnitProgress, UpdatePhase};
use crate::model::Condition;
use crate::plan::units::{ObservedUnits, UnitOp, UnitPlan, UnitSpec};

/// How long to wait, and how often to look.
#[derive(Debug, Clone, Copy)]
pub struct UnitOptions {
    /// How long one unit may take to converge (its tasks running and healthy).
    pub timeout: Duration,
    pub poll: Duration,
}

impl Default for UnitOptions {
    fn default() -> Self {
        UnitOptions { timeout: Duration::from_secs(180), poll: Duration::from_millis(500) }
    }
}

/// Runs `plan`: networks, then each changed unit in dependency order once what it depends on
/// is ready, waiting for it to converge; then removals. Stops at the first failure.
pub async fn apply_units<O: Orchestrator>(
    target: &O,
    plan: &UnitPlan,
    opts: UnitOptions,
    say: &(dyn Fn(&str) + Sync),
) -> Result<usize, OrchestratorError> {
    let mut done = 0;
    for action in &plan.actions {
        if let UnitOp::CreateNetwork(spec) = &action.op {
            target.create_network(spec).await?;
            say(&format!("created network {}", spec.name));
            done += 1;
        }
    }
    let changed: BTreeMap<&str, &UnitOp> = plan
        .actions
        .iter()
        .filter_map(|a| match &a.op {
            UnitOp::Create(u) | UnitOp::Update(u) | UnitOp::Scale(u) => Some((u.name.as_str(), &a.op)),
            _ => None,
        })
        .collect();
    for unit in &plan.units {
        let Some(op) = changed.get(unit.name.as_str()) else { continue };
        for (dependency, condition) in &unit.depends_on {
            for dep in plan.units.iter().filter(|u| &u.service == dependency) {
                say(&format!("{}: waiting for {} ({})", unit.name, dep.name, condition_words(*condition)));
                if let Some(node) = wait_converged(target, dep, opts).await?.down_node {
                    say(&format!("{}: not waiting for {}: {}", unit.name, dep.name, pending_words(&node)));
                }
            }
        }
        // Idempotent: nodes that have the image are skipped, so each unit asks for its own.
        let image_id = match plan.images.iter().find(|i| i.reference == unit.template.image) {
            Some(spec) => target.provide_image(spec, &unit.placement, &plan.project, &|line| say(line)).await?,
            None => unit.template.image.clone(),
        };
        target.put_unit(unit, &image_id, &plan.project).await?;
        say(&format!("{} {}: waiting for {} task(s) ready", op.verb(), unit.name, unit.replicas));
        let seen = wait_converged(target, unit, opts).await?;
        if let Some(node) = &seen.down_node {
            say(&format!("{} {}: pending: {}", op.verb(), unit.name, pending_words(node)));
            done += 1;
            continue;
        }
        let nodes: Vec<&str> = seen.nodes.iter().map(String::as_str).collect();
        say(&format!("{} {}: {} ready on {}", op.verb(), unit.name, seen.ready, nodes.join(", ")));
        done += 1;
    }
    for action in &plan.actions {
        if let UnitOp::Remove(name) = &action.op {
            target.remove_unit(name).await?;
            say(&format!("removed service {name}"));
            done += 1;
        }
    }
    for action in &plan.actions {
        if let UnitOp::RemoveNetwork(name) = &action.op {
            remove_network(target, name, opts).await?;
            say(&format!("removed network {name}"));
            done += 1;
        }
    }
    Ok(done)
}

/// Why a unit pinned to a lost node is left pending rather than moved: its data is there.
fn pending_words(node: &str) -> String {
    format!("its node {node} is down; Swarm starts its task there when the node is back (its data lives there)")
}

fn condition_words(condition: Condition) -> &'static str {
    match condition {
        Condition::ServiceHealthy => "running and healthy",
        Condition::ServiceCompletedSuccessfully => "completed",
        _ => "running",
    }
}

/// Waits until every wanted task of `unit` runs its current spec (and passed its
/// healthcheck: Swarm reports a task running only once healthy) and no old one is left.
/// A unit pinned to a node the orchestrator sees down is not waited for (it returns at once
/// with `down_node` set): its task cannot start anywhere else.
pub async fn wait_converged<O: Orchestrator>(
    target: &O,
    unit: &UnitSpec,
    opts: UnitOptions,
) -> Result<UnitProgress, OrchestratorError> {
    let start = Instant::now();
    let hash = unit.hash();
    loop {
        let seen = target.unit_progress(&unit.name, &hash).await?;
        if seen.down_node.is_some() && seen.ready < unit.replicas {
            return Ok(seen);
        }
        match seen.phase {
            UpdatePhase::RolledBack | UpdatePhase::Paused => {
                let message = seen.message.clone().unwrap_or_else(|| "no reason given".into());
                return Err(OrchestratorError::RolledBack { unit: unit.name.clone(), message });
            }
            _ if seen.ready >= unit.replicas && seen.stale == 0 => return Ok(seen),
            _ => {}
        }
        if start.elapsed() > opts.timeout {
            let mut last = format!("{} of {} task(s) ready, {} old", seen.ready, unit.replicas, seen.stale);
            if let Some(message) = seen.message {
                last.push_str(&format!("; {message}"));
            }
            return Err(OrchestratorError::Timeout { unit: unit.name.clone(), secs: opts.timeout.as_secs(), last });
        }
        tokio::time::sleep(opts.poll).await;
    }
}

/// A network whose last service was just removed is released by the nodes a moment later:
/// removal is retried until the timeout.
async fn remove_network<O: Orchestrator>(target: &O, name: &str, opts: UnitOptions) -> Result<(), OrchestratorError> {
    let start = Instant::now();
    loop {
        match target.remove_network(name).await {
            Ok(()) => return Ok(()),
            Err(e) if start.elapsed() > opts.timeout.min(Duration::from_secs(60)) => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// Removes every unit of the project, then its networks.
pub async fn destroy_units<O: Orchestrator>(
    target: &O,
    project: &str,
    opts: UnitOptions,
    say: &(dyn Fn(&str) + Sync),
) -> Result<usize, OrchestratorError> {
    let ObservedUnits { units, networks, .. } = target.observe_units(project).await?;
    for name in units.keys() {
        target.remove_unit(name).await?;
        say(&format!("removed service {name}"));
    }
    for name in &networks {
        remove_network(target, name, opts).await?;
        say(&format!("removed network {name}"));
    }
    Ok(units.len() + networks.len())
}
