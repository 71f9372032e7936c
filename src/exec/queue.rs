//! Which actions may run next: cargo's `DependencyQueue` idea, pure and synchronous.

use std::collections::BTreeSet;

use crate::plan::{ActionId, Plan};

/// Tracks finished, running and blocked actions of one plan.
#[derive(Debug)]
pub struct DependencyQueue {
    after: Vec<Vec<ActionId>>,
    pending: BTreeSet<ActionId>,
    running: BTreeSet<ActionId>,
    done: BTreeSet<ActionId>,
}

impl DependencyQueue {
    pub fn new(plan: &Plan) -> Self {
        DependencyQueue {
            after: plan.actions.iter().map(|a| a.after.clone()).collect(),
            pending: plan.actions.iter().map(|a| a.id).collect(),
            running: BTreeSet::new(),
            done: BTreeSet::new(),
        }
    }

    /// Takes up to `limit` actions whose prerequisites are all done, marking them running.
    pub fn take_ready(&mut self, limit: usize) -> Vec<ActionId> {
        let ready: Vec<ActionId> = self
            .pending
            .iter()
            .copied()
            .filter(|id| self.after[*id].iter().all(|dep| self.done.contains(dep)))
            .take(limit)
            .collect();
        for id in &ready {
            self.pending.remove(id);
            self.running.insert(*id);
        }
        ready
    }

    pub fn finish(&mut self, id: ActionId) {
        self.running.remove(&id);
        self.done.insert(id);
    }

    /// A failed action is no longer running; what waits on it stays pending forever.
    pub fn fail(&mut self, id: ActionId) {
        self.running.remove(&id);
    }

    /// Stops everything that has not started; returns what was dropped.
    pub fn drain_pending(&mut self) -> Vec<ActionId> {
        std::mem::take(&mut self.pending).into_iter().collect()
    }

    pub fn running_count(&self) -> usize {
        self.running.len()
    }

    pub fn is_idle(&self) -> bool {
        self.running.is_empty()
    }
}
