//! The plan `scale destroy` runs: every container of the project, then its networks, and its
//! volumes only when asked.

use super::{Action, Op, Plan, stop_grace};
use crate::observed::ObservedState;

/// Removes everything observed; volumes only with `volumes`.
pub fn destroy_plan(observed: &ObservedState, volumes: bool) -> Plan {
    let mut actions: Vec<Action> = Vec::new();
    for c in observed.containers.values() {
        let id = actions.len();
        actions.push(Action {
            id,
            op: Op::RemoveContainer {
                id: c.id.clone(),
                name: c.name.clone(),
                grace_secs: stop_grace(c),
                drains: vec![],
                release_slot: None,
                anonymous_volumes: volumes,
            },
            reason: "destroy".into(),
            after: vec![],
            service: c.service().map(str::to_string),
        });
    }
    let containers: Vec<usize> = (0..actions.len()).collect();
    for name in observed.networks.keys() {
        let id = actions.len();
        actions.push(Action {
            id,
            op: Op::RemoveNetwork { name: name.clone() },
            reason: "destroy".into(),
            after: containers.clone(),
            service: None,
        });
    }
    let mut notes = Vec::new();
    let mut remove_volume = |name: String, reason: &str| {
        let id = actions.len();
        let op = Op::RemoveVolume { name };
        actions.push(Action { id, op, reason: reason.into(), after: containers.clone(), service: None });
    };
    // Anonymous volumes carried over by a replacement are mounted by name, so the engine does
    // not remove them with their container: they go by the record on the container.
    for name in observed.containers.values().flat_map(|c| c.carried_volumes()) {
        if volumes && !observed.volumes.contains_key(&name) {
            remove_volume(name, "destroy --volumes (anonymous, carried over)");
        }
    }
    for name in observed.volumes.keys() {
        if volumes {
            remove_volume(name.clone(), "destroy --volumes");
        } else {
            notes.push(format!("volume {name} is kept (add --volumes to delete it and its data)"));
        }
    }
    // A load balancer's pool record holds no data, only what scale last told that load
    // balancer: it goes with the load balancer.
    for name in observed.pool_records.keys() {
        remove_volume(name.clone(), "destroy (a load balancer's pool record)");
    }
    Plan { project: observed.project.clone(), actions, notes, rollouts: Vec::new() }
}
