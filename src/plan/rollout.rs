//! Rollouts: a service's replacements in batches, and the plan that undoes the batches
//! already run when one fails. Both are decided here, from the plan and what is observed,
//! so the executor only runs what it is given.

use serde::Serialize;

use super::{Action, ActionId, Op, Plan, TEMP_SUFFIX};
use crate::model::{OnFailure, RolloutOrder, RolloutPolicy};
use crate::observed::ObservedState;

/// The replacements of one service's replicas, batch by batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollout {
    pub service: String,
    pub policy: RolloutPolicy,
    /// Replacement actions; each batch starts once the previous one's new replicas are ready
    /// (the executor releases it while the old ones drain and stop).
    pub batches: Vec<Vec<ActionId>>,
}

impl Rollout {
    /// One line for the plan text: how it rolls and what a failure does.
    pub fn describe(&self, plan: &Plan) -> String {
        let n: usize = self.batches.iter().map(Vec::len).sum();
        let start_first = self
            .batches
            .iter()
            .flatten()
            .filter(|id| matches!(plan.actions[**id].op, Op::RecreateContainer { start_first: true, .. }))
            .count();
        let order = match start_first {
            0 => RolloutOrder::StopFirst.as_str().to_string(),
            k if k == n => RolloutOrder::StartFirst.as_str().to_string(),
            k => format!("{k} start-first, {} stop-first", n - k),
        };
        let pace = match (self.policy.parallelism, self.batches.len()) {
            (_, 1) if n == 1 => String::new(),
            (_, 1) => ", all at once".to_string(),
            (1, _) => ", one at a time".to_string(),
            (p, b) => format!(", {p} at a time ({b} batches)"),
        };
        let mut line = format!("rollout {}: {n} replica{}{pace}, {order}", self.service, if n == 1 { "" } else { "s" });
        if self.policy.monitor_ms > 0 {
            line.push_str(&format!(", each monitored {}", ms(self.policy.monitor_ms)));
        }
        if self.policy.delay_ms > 0 {
            line.push_str(&format!(", {} between batches", ms(self.policy.delay_ms)));
        }
        line.push_str(match self.policy.on_failure {
            OnFailure::Rollback => "; on failure: put the previous spec back on the replicas already replaced",
            OnFailure::Pause => "; on failure: pause (replaced replicas stay new, the rest old)",
            OnFailure::Continue => "; on failure: continue with the other replicas",
        });
        line
    }
}

fn ms(ms: u64) -> String {
    if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{ms}ms") }
}

/// The plan that puts the previous spec back on every replica `rollout` already touched,
/// as observed after the failure: a replica running its new spec is replaced again (drained
/// and health-gated like any replacement, in the rollout's batches), a replica whose new
/// container failed is replaced stop-first, one left without a container is created, and the
/// leftover of a start-first replacement that never took over is removed.
pub fn rollback_plan(plan: &Plan, rollout: &Rollout, observed: &ObservedState) -> Plan {
    let mut actions: Vec<Action> = Vec::new();
    let mut batch: Vec<ActionId> = Vec::new();
    let mut previous_batch: Vec<ActionId> = Vec::new();
    let parallelism = rollout.policy.parallelism.max(1) as usize;
    for id in rollout.batches.iter().flatten() {
        let action = &plan.actions[*id];
        let Op::RecreateContainer { spec, readiness, files, drains, start_first, .. } = &action.op else { continue };
        let Some(back) = spec.previous.as_deref() else { continue };
        let temp = format!("{}{TEMP_SUFFIX}", spec.name);
        if let Some(left) = observed.containers.get(&temp) {
            let op = Op::RemoveContainer {
                id: left.id.clone(),
                name: temp.clone(),
                grace_secs: 1,
                drains: Vec::new(),
                release_slot: None,
                anonymous_volumes: true,
            };
            push(&mut actions, op, "new container never took over", Vec::new(), &rollout.service);
        }
        let mut back = back.clone();
        let reason = format!("roll back: {}", action.reason);
        let op = match observed.containers.get(&spec.name) {
            Some(seen) if seen.spec_hash() == Some(back.hash().as_str()) => continue,
            Some(seen) => {
                let healthy = seen.spec_hash() == Some(spec.hash().as_str()) && seen.is_ready();
                back.previous = seen.spec().map(Box::new);
                Op::RecreateContainer {
                    old_id: seen.id.clone(),
                    old_grace_secs: super::stop_grace(seen),
                    spec: back,
                    readiness: *readiness,
                    files: files.clone(),
                    drains: drains.clone(),
                    start_first: *start_first && healthy,
                    monitor_ms: 0,
                    delay_ms: 0,
                }
            }
            None => Op::CreateContainer { spec: back, readiness: *readiness, files: files.clone() },
        };
        let id = push(&mut actions, op, &reason, previous_batch.clone(), &rollout.service);
        batch.push(id);
        if batch.len() == parallelism {
            previous_batch = std::mem::take(&mut batch);
        }
    }
    Plan { project: plan.project.clone(), actions, notes: Vec::new(), rollouts: Vec::new() }
}

fn push(actions: &mut Vec<Action>, op: Op, reason: &str, after: Vec<ActionId>, service: &str) -> ActionId {
    let id = actions.len();
    actions.push(Action { id, op, reason: reason.to_string(), after, service: Some(service.to_string()) });
    id
}
