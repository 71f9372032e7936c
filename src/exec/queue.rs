//! Which actions may run next: cargo's `DependencyQueue` idea, pure and synchronous. Each
//! action counts the prerequisites it still waits for; finishing one wakes only its own
//! dependents, so a plan of n actions costs O(n + edges) in all, however it is scheduled.

use std::collections::BTreeSet;

use crate::plan::{ActionId, Op, Plan};

/// Tracks finished, running and blocked actions of one plan.
#[derive(Debug)]
pub struct DependencyQueue {
    /// For each action, the actions that wait for it.
    dependents: Vec<Vec<ActionId>>,
    /// For each action, how many of its prerequisites have not finished.
    waiting_for: Vec<usize>,
    /// Not started yet (ready or blocked).
    pending: BTreeSet<ActionId>,
    /// Not started and no longer waiting for anything, lowest id first (plan order).
    ready: BTreeSet<ActionId>,
    running: BTreeSet<ActionId>,
    /// For each action, how many of its prerequisites that are more than readiness gates
    /// have not finished (see [`DependencyQueue::take_early`]).
    hard_waiting: Vec<usize>,
    /// Edges (prerequisite, action) that only gate an action's start, not its creation.
    soft: BTreeSet<(ActionId, ActionId)>,
    /// Actions that may be created ahead of their start, not taken yet.
    early: BTreeSet<ActionId>,
    /// Edges from one batch of a rollout to the next that [`DependencyQueue::release`]
    /// satisfies before the prerequisite has finished.
    releasable: BTreeSet<(ActionId, ActionId)>,
    /// Those edges, once released.
    released: BTreeSet<(ActionId, ActionId)>,
}

/// Whether `op` makes a container ready (created or replaced, started, re-seeded): what a
/// container depending on it waits for before it *starts*, not before it is created.
fn readies_a_container(op: &Op) -> bool {
    matches!(
        op,
        Op::CreateContainer { .. }
            | Op::RecreateContainer { .. }
            | Op::StartContainer { .. }
            | Op::FinishReplacement { .. }
            | Op::ReseedReplica { .. }
    )
}

/// The edges between consecutive batches of one rollout: replacement to replacement of the
/// same service.
fn rollout_edges(plan: &Plan, dependents: &[Vec<ActionId>]) -> BTreeSet<(ActionId, ActionId)> {
    let mut edges = BTreeSet::new();
    for rollout in &plan.rollouts {
        let members: BTreeSet<ActionId> = rollout.batches.iter().flatten().copied().collect();
        for &id in &members {
            let replaces =
                |a: ActionId| matches!(plan.actions.get(a).map(|a| &a.op), Some(Op::RecreateContainer { .. }));
            for &next in dependents.get(id).into_iter().flatten() {
                if members.contains(&next) && replaces(id) && replaces(next) {
                    edges.insert((id, next));
                }
            }
        }
    }
    edges
}

impl DependencyQueue {
    pub fn new(plan: &Plan) -> Self {
        let n = plan.actions.len();
        let mut dependents = vec![Vec::new(); n];
        let mut waiting_for = vec![0; n];
        let mut hard_waiting = vec![0; n];
        let mut soft = BTreeSet::new();
        for action in &plan.actions {
            let mut after = action.after.clone();
            after.sort_unstable();
            after.dedup();
            let creates = matches!(action.op, Op::CreateContainer { .. });
            for dep in after.into_iter().filter(|dep| *dep < n && *dep != action.id) {
                dependents[dep].push(action.id);
                waiting_for[action.id] += 1;
                if creates && readies_a_container(&plan.actions[dep].op) {
                    soft.insert((dep, action.id));
                } else {
                    hard_waiting[action.id] += 1;
                }
            }
        }
        let pending: BTreeSet<ActionId> = plan.actions.iter().map(|a| a.id).collect();
        let ready = pending.iter().copied().filter(|id| waiting_for[*id] == 0).collect();
        let early = pending.iter().copied().filter(|id| waiting_for[*id] > 0 && hard_waiting[*id] == 0).collect();
        let running = BTreeSet::new();
        let releasable = rollout_edges(plan, &dependents);
        DependencyQueue {
            dependents,
            waiting_for,
            pending,
            ready,
            running,
            hard_waiting,
            soft,
            early,
            releasable,
            released: BTreeSet::new(),
        }
    }

    /// A replacement in a rollout whose new replica is ready and whose old one is now
    /// leaving (drained, then stopped): the next batch of the same rollout may start, as
    /// Kubernetes counts a terminating pod out of `maxSurge`. The action itself runs on and
    /// still [`DependencyQueue::finish`]es; what else waits for it waits for that.
    pub fn release(&mut self, id: ActionId) {
        for next in self.dependents[id].clone() {
            if self.releasable.remove(&(id, next)) {
                self.released.insert((id, next));
                self.satisfy(id, next);
            }
        }
    }

    /// Takes the container creations that wait only for other containers to be ready (a
    /// `depends_on` condition): they may be created now and *started* once those are ready,
    /// as Compose creates every container before it starts any. Each counts as waiting for
    /// its early creation too, until [`DependencyQueue::created_early`].
    pub fn take_early(&mut self) -> Vec<ActionId> {
        let taken: Vec<ActionId> = std::mem::take(&mut self.early).into_iter().collect();
        for id in &taken {
            self.waiting_for[*id] += 1;
        }
        taken
    }

    /// An early creation ended (either way): the action may run once its gates are done.
    pub fn created_early(&mut self, id: ActionId) {
        self.waiting_for[id] -= 1;
        if self.waiting_for[id] == 0 && self.pending.contains(&id) {
            self.ready.insert(id);
        }
    }

    /// Takes up to `limit` actions whose prerequisites are all done, marking them running.
    pub fn take_ready(&mut self, limit: usize) -> Vec<ActionId> {
        let mut taken = Vec::with_capacity(limit.min(self.ready.len()));
        while taken.len() < limit {
            let Some(id) = self.ready.pop_first() else { break };
            self.pending.remove(&id);
            self.running.insert(id);
            taken.push(id);
        }
        taken
    }

    pub fn finish(&mut self, id: ActionId) {
        self.running.remove(&id);
        for next in self.dependents[id].clone() {
            // An edge `release` satisfied is not satisfied twice; one it did not is no
            // longer releasable.
            if self.released.contains(&(id, next)) {
                continue;
            }
            self.releasable.remove(&(id, next));
            self.satisfy(id, next);
        }
    }

    /// One prerequisite of `next` (`id`) is done.
    fn satisfy(&mut self, id: ActionId, next: ActionId) {
        self.waiting_for[next] -= 1;
        if self.waiting_for[next] == 0 && self.pending.contains(&next) {
            self.early.remove(&next);
            self.ready.insert(next);
        } else if !self.soft.contains(&(id, next)) {
            self.hard_waiting[next] -= 1;
            // Only soft edges left: a creation gated on other containers' readiness.
            if self.hard_waiting[next] == 0 && self.pending.contains(&next) {
                self.early.insert(next);
            }
        }
    }

    /// A failed action is no longer running; what waits on it stays pending forever.
    pub fn fail(&mut self, id: ActionId) {
        self.running.remove(&id);
    }

    /// Stops everything that has not started; returns what was dropped.
    pub fn drain_pending(&mut self) -> Vec<ActionId> {
        self.ready.clear();
        self.early.clear();
        std::mem::take(&mut self.pending).into_iter().collect()
    }

    pub fn running_count(&self) -> usize {
        self.running.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Action, Op};

    fn plan(afters: &[&[ActionId]]) -> Plan {
        let actions = afters
            .iter()
            .enumerate()
            .map(|(id, after)| Action {
                id,
                op: Op::RemoveNetwork { name: format!("n{id}") },
                reason: String::new(),
                after: after.to_vec(),
                service: None,
            })
            .collect();
        Plan { project: "p".into(), actions, notes: Vec::new(), rollouts: Vec::new() }
    }

    #[test]
    fn runs_in_dependency_order_within_the_limit() {
        // 0 and 1 are free; 2 waits for both; 3 waits for 2 (listed twice).
        let mut q = DependencyQueue::new(&plan(&[&[], &[], &[0, 1], &[2, 2]]));
        assert_eq!(q.take_ready(1), vec![0]);
        assert_eq!(q.take_ready(5), vec![1]);
        assert_eq!(q.running_count(), 2);
        q.finish(0);
        assert!(q.take_ready(5).is_empty(), "2 still waits for 1");
        q.finish(1);
        assert_eq!(q.take_ready(5), vec![2]);
        q.finish(2);
        assert_eq!(q.take_ready(5), vec![3]);
        q.finish(3);
        assert_eq!(q.running_count(), 0);
        assert!(q.drain_pending().is_empty());
    }

    #[test]
    fn a_failure_blocks_its_dependents_only() {
        let mut q = DependencyQueue::new(&plan(&[&[], &[0], &[], &[1]]));
        assert_eq!(q.take_ready(5), vec![0, 2]);
        q.fail(0);
        q.finish(2);
        assert!(q.take_ready(5).is_empty());
        assert_eq!(q.running_count(), 0);
        assert_eq!(q.drain_pending(), vec![1, 3]);
    }

    #[test]
    fn a_released_replacement_lets_the_next_batch_start_but_not_what_waits_for_it() {
        use crate::model::RolloutPolicy;
        use crate::plan::Rollout;
        let spec = crate::spec::test_spec("p-web-1", "web", 1);
        let recreate = || Op::RecreateContainer {
            old_id: "old".into(),
            old_grace_secs: 1,
            spec: spec.clone(),
            readiness: crate::desired::Readiness::Healthy,
            files: Vec::new(),
            drains: Vec::new(),
            start_first: true,
            monitor_ms: 0,
            delay_ms: 0,
        };
        // 0, 1: batch one; 2: batch two (after both); 3: a reload after the whole rollout.
        let mut p = plan(&[&[], &[], &[0, 1], &[0, 1, 2]]);
        for a in &mut p.actions[..3] {
            a.op = recreate();
        }
        p.rollouts.push(Rollout {
            service: "web".into(),
            policy: RolloutPolicy::default(),
            batches: vec![vec![0, 1], vec![2]],
        });
        let mut q = DependencyQueue::new(&p);
        assert_eq!(q.take_ready(8), vec![0, 1]);
        q.release(0);
        assert!(q.take_ready(8).is_empty(), "2 waits for 1 too");
        q.release(1);
        q.release(1);
        assert_eq!(q.take_ready(8), vec![2]);
        q.finish(0);
        q.finish(1);
        q.finish(2);
        assert_eq!(q.take_ready(8), vec![3], "3 waited for every replacement to finish");
        // Without a release, finishing alone still orders the batches.
        let mut q = DependencyQueue::new(&p);
        assert_eq!(q.take_ready(8), vec![0, 1]);
        q.finish(0);
        q.finish(1);
        assert_eq!(q.take_ready(8), vec![2]);
    }
}
