//! The planner: one named step per kind of work, in the order their actions are numbered
//! (as omicron's `Planner::do_plan`). Each step records the action ids later steps wait
//! for; the steps share nothing else.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::checks::{
    SpecHashes, can_start_first, drains_for, files_for, finishable_leftover, hands_over, held_ports, missing_networks,
    needs_replacement, reload_needed, replacement_reason, slot_release, start_reason, stop_grace,
};
use super::{Action, ActionId, Op, Plan, PlanError, Rollout, TEMP_SUFFIX, assign_primaries};
use crate::model::RolloutOrder;
use crate::observed::{ObservedContainer, ObservedState, RunState};
use crate::spec::{ContainerSpec, DesiredState, ImageSource, MountSourceSpec, ServiceSpec};

/// Computes the plan that takes `observed` to `desired` (the blueprint's desired state: the
/// primaries a failover promoted are assigned here, see [`assign_primaries`]).
pub fn plan(desired: &DesiredState, observed: &ObservedState) -> Result<Plan, PlanError> {
    plan_replacing(desired, observed, &BTreeSet::new())
}

/// [`plan`], replacing the containers named in `replace` even when nothing about them
/// changed (`apply --replace`).
pub fn plan_replacing(
    desired: &DesiredState,
    observed: &ObservedState,
    replace: &BTreeSet<String>,
) -> Result<Plan, PlanError> {
    let scaled = super::assign_replicas(desired, observed);
    let notes = super::replicas::scaled_notes(desired, observed);
    let desired = &*assign_primaries(&scaled, observed);
    let mut planner = Planner::new(desired, observed);
    planner.replace = replace;
    let mut plan = planner.do_plan()?;
    plan.notes.splice(0..0, notes);
    Ok(plan)
}

/// Numbers actions as they are pushed; `after` is kept sorted and without repeats.
struct Builder {
    actions: Vec<Action>,
}

impl Builder {
    fn push(&mut self, op: Op, reason: impl Into<String>, after: Vec<ActionId>, service: Option<&str>) -> ActionId {
        let id = self.actions.len();
        let mut after = after;
        after.sort_unstable();
        after.dedup();
        self.actions.push(Action { id, op, reason: reason.into(), after, service: service.map(str::to_string) });
        id
    }
}

/// One planning pass: the inputs, the actions so far, and what each step left for the next.
struct Planner<'d> {
    desired: &'d DesiredState,
    observed: &'d ObservedState,
    hashes: SpecHashes<'d>,
    b: Builder,
    notes: Vec<String>,
    image_action: BTreeMap<&'d str, ActionId>,
    network_action: BTreeMap<&'d str, ActionId>,
    volume_action: BTreeMap<&'d str, ActionId>,
    /// Interrupted replacements that only need renaming, by their final name.
    finishable: BTreeMap<&'d str, &'d ObservedContainer>,
    removals: Vec<&'d ObservedContainer>,
    removal_action: BTreeMap<&'d str, ActionId>,
    /// Removals of leftovers of interrupted replacements, by the name they were meant to take.
    leftover_removal: HashMap<&'d str, ActionId>,
    /// Which actions free each fixed host port (removals, then recreations).
    port_freed_by: BTreeMap<u16, Vec<ActionId>>,
    /// Each service's container actions, for what depends on the service.
    service_actions: BTreeMap<&'d str, Vec<ActionId>>,
    /// Containers to replace whether or not they changed (`apply --replace`).
    replace: &'d BTreeSet<String>,
    rollouts: Vec<Rollout>,
    /// Data copies between stage 1's SQLite and the data tier (see `migrate.rs`).
    migrations: Vec<super::Migration>,
    /// What each container's (re)creation, and every removal, must wait for: a copy that
    /// reads the old state, or the marker that makes an interrupted copy resumable.
    gate_of: BTreeMap<String, Vec<ActionId>>,
    removal_gate: Vec<ActionId>,
    /// The users' move between shards, if `shards:` and the data disagree (see `shards.rs`).
    reshard: Option<super::Reshard>,
}

/// The actions of one service so far, for ordering its later containers.
#[derive(Default)]
struct ServiceProgress {
    /// The service's replacements so far, batch by batch (the rollout).
    batches: Vec<Vec<ActionId>>,
    leader_action: Option<ActionId>,
    mine: Vec<ActionId>,
}

impl ServiceProgress {
    /// What the next replacement waits for: the whole previous batch once the current one is
    /// full, else the same as its batch-mates.
    fn batch_waits(&self, parallelism: u32) -> (Vec<ActionId>, bool) {
        let full = self.batches.last().is_none_or(|b| b.len() >= parallelism.max(1) as usize);
        let waits = match (full, self.batches.len()) {
            (true, _) => self.batches.last().cloned().unwrap_or_default(),
            (false, n) if n >= 2 => self.batches[n - 2].clone(),
            _ => Vec::new(),
        };
        (waits, full && !self.batches.is_empty())
    }

    fn add_replacement(&mut self, id: ActionId, parallelism: u32) {
        match self.batches.last_mut() {
            Some(b) if b.len() < parallelism.max(1) as usize => b.push(id),
            _ => self.batches.push(vec![id]),
        }
    }
}

impl<'d> Planner<'d> {
    fn new(desired: &'d DesiredState, observed: &'d ObservedState) -> Self {
        Planner {
            desired,
            observed,
            hashes: SpecHashes::new(desired),
            b: Builder { actions: Vec::new() },
            notes: Vec::new(),
            image_action: BTreeMap::new(),
            network_action: BTreeMap::new(),
            volume_action: BTreeMap::new(),
            finishable: BTreeMap::new(),
            removals: Vec::new(),
            removal_action: BTreeMap::new(),
            leftover_removal: HashMap::new(),
            port_freed_by: BTreeMap::new(),
            service_actions: BTreeMap::new(),
            replace: const { &BTreeSet::new() },
            rollouts: Vec::new(),
            migrations: super::migrations(desired, observed),
            gate_of: BTreeMap::new(),
            removal_gate: Vec::new(),
            reshard: super::reshard(desired, observed),
        }
    }

    fn do_plan(mut self) -> Result<Plan, PlanError> {
        self.do_plan_images();
        self.do_plan_migrations_first();
        self.do_plan_reshard(true);
        self.do_plan_networks_and_volumes()?;
        self.do_plan_removals();
        self.do_plan_services();
        self.do_plan_migrations_last();
        self.do_plan_reshard(false);
        self.do_plan_network_removals();
        self.note_unused_volumes();
        Ok(Plan {
            project: self.desired.project.clone(),
            actions: self.b.actions,
            notes: self.notes,
            rollouts: self.rollouts,
        })
    }

    /// Builds and pulls of the images no container can start without.
    fn do_plan_images(&mut self) {
        let observed = self.observed;
        for (reference, image) in &self.desired.images {
            if observed.images.contains(reference) {
                continue;
            }
            let (op, why) = match &image.source {
                ImageSource::Build { .. } => {
                    let prefix = format!("{}:", image.repository);
                    let had_one = observed.images.iter().any(|i| i.starts_with(&prefix));
                    (Op::Build { image: image.clone() }, if had_one { "context changed" } else { "not built yet" })
                }
                ImageSource::Pull => (Op::Pull { reference: reference.clone() }, "not present locally"),
            };
            self.image_action.insert(reference, self.b.push(op, why, vec![], None));
        }
    }

    /// Networks and volumes to create; a network that changed cannot be planned at all.
    fn do_plan_networks_and_volumes(&mut self) -> Result<(), PlanError> {
        for (name, spec) in &self.desired.networks {
            match self.observed.networks.get(name) {
                Some(seen) if seen.internal != spec.internal => {
                    return Err(PlanError::NetworkChanged {
                        name: name.clone(),
                        observed: seen.internal,
                        desired: spec.internal,
                    });
                }
                Some(_) => {}
                None => {
                    let id = self.b.push(Op::CreateNetwork { spec: spec.clone() }, "missing", vec![], None);
                    self.network_action.insert(name, id);
                }
            }
        }
        for (name, spec) in &self.desired.volumes {
            if !self.observed.volumes.contains_key(name) {
                let id = self.b.push(Op::CreateVolume { spec: spec.clone() }, "missing", vec![], None);
                self.volume_action.insert(name, id);
            }
        }
        Ok(())
    }

    /// Containers that go away free names and host ports; creations that need a port wait.
    /// One to be replaced while another container claims a host port it holds goes away here
    /// too, and is created again below: the claimant may be planned before its replacement
    /// (or be one of its dependencies), so waiting for a recreate would come too late.
    fn do_plan_removals(&mut self) {
        let (desired, observed) = (self.desired, self.observed);
        let claims = port_claims(desired);
        self.finishable = observed
            .containers
            .values()
            .filter_map(|c| finishable_leftover(c, desired, observed, &self.hashes).map(|real| (real, c)))
            .collect();
        let finishable = &self.finishable;
        let hashes = &self.hashes;
        self.removals = observed
            .containers
            .values()
            .filter(|c| !finishable.values().any(|f| f.id == c.id))
            .filter(|c| !desired.containers.contains_key(&c.name) || hands_over(c, desired, &claims, hashes).is_some())
            .collect();
        let removed_names: HashSet<&str> = self.removals.iter().map(|c| c.name.as_str()).collect();
        let mut observed_per_service: BTreeMap<&str, usize> = BTreeMap::new();
        for c in observed.containers.values() {
            if let Some(service) = c.service() {
                *observed_per_service.entry(service).or_insert(0) += 1;
            }
        }
        for c in self.removals.clone() {
            let release_slot = slot_release(c, desired, observed, &removed_names);
            let reason = match (hands_over(c, desired, &claims, &self.hashes), c.service()) {
                (Some((port, to)), _) => format!("frees host port {port} for {to} (created again below)"),
                (None, _) if c.name.ends_with(TEMP_SUFFIX) => "leftover of an interrupted replacement".to_string(),
                (None, _) if super::is_retired(&c.name) => "old container of an interrupted replacement".to_string(),
                (None, service) => self.removal_reason(service, &observed_per_service),
            };
            let reason = match &release_slot {
                Some(r) => format!("{reason}; drops its replication slot on {}", r.primary),
                None => reason,
            };
            let op = Op::RemoveContainer {
                id: c.id.clone(),
                name: c.name.clone(),
                grace_secs: stop_grace(c),
                drains: drains_for(&c.name, observed, desired, &self.hashes),
                release_slot,
                anonymous_volumes: false,
            };
            let id = self.b.push(op, reason, self.removal_gate.clone(), c.service());
            self.removal_action.insert(&c.name, id);
            // A load balancer that goes for good takes its pool record with it.
            let record = crate::kinds::load_balancer::record_volume_name(&observed.project, &c.name);
            if observed.pool_records.contains_key(&record) && !desired.containers.contains_key(&c.name) {
                let reason = format!("pool record of {}, removed above", c.name);
                self.b.push(Op::RemoveVolume { name: record }, reason, vec![id], c.service());
            }
            for port in held_ports(c) {
                self.port_freed_by.entry(port).or_default().push(id);
            }
        }
        self.leftover_removal = self
            .removal_action
            .iter()
            .filter_map(|(name, id)| name.strip_suffix(TEMP_SUFFIX).map(|real| (real, *id)))
            .collect();
    }

    /// Before anything changes: 2 → 1 copies run in the old web container while the data
    /// tier is still there, and 1 → 2 copies get their pending marker.
    fn do_plan_migrations_first(&mut self) {
        for m in self.migrations.clone() {
            let (op, reason) = match &m.marker {
                Some((marker, false)) => (
                    Op::CreateVolume { spec: marker.clone() },
                    format!("marks the copy of {} into {} as pending until it is done", m.volume, m.database),
                ),
                Some((_, true)) => continue,
                None => (
                    migrate_op(&m),
                    format!("{} goes back to one server: its users come home to {} first", m.database, m.volume),
                ),
            };
            let id = self.b.push(op, reason, vec![], None);
            self.gate_of.entry(m.container.clone()).or_default().push(id);
            if m.marker.is_none() {
                self.removal_gate.push(id);
            }
        }
    }

    /// After everything: 1 → 2 copies, through the new web container, once it and the data
    /// tier are ready.
    fn do_plan_migrations_last(&mut self) {
        for m in self.migrations.clone().into_iter().filter(|m| m.marker.is_some()) {
            let mut after: Vec<ActionId> = self.gate_of.get(&m.container).cloned().unwrap_or_default();
            after.extend(self.service_actions.values().flatten());
            let reason = format!("the data tier is new: stage 1's users in {} follow into {}", m.volume, m.database);
            self.b.push(migrate_op(&m), reason, after, None);
        }
    }

    /// The reshard, in its place: before every removal when rows leave a shard that goes
    /// away (`first`; the runner's own replacement waits too), else after every container
    /// is up, so the new shards are there to receive.
    fn do_plan_reshard(&mut self, first: bool) {
        let Some(r) = self.reshard.clone().filter(|r| r.first == first) else { return };
        let reason = super::shards::describe(&r);
        let mut after: Vec<ActionId> = self.gate_of.get(&r.runner).cloned().unwrap_or_default();
        if !first {
            after.extend(self.service_actions.values().flatten());
        }
        let op = Op::Reshard {
            runner: r.runner.clone(),
            directory: r.directory,
            shards: r.shards,
            create_map: r.create_map,
            moves: r.moves,
            drop_map: r.drop_map,
        };
        let id = self.b.push(op, reason, after, None);
        if first {
            self.gate_of.entry(r.runner).or_default().push(id);
            self.removal_gate.push(id);
        }
    }

    /// Why a container of `service` (or of none) that is not wanted any more goes.
    fn removal_reason(&self, service: Option<&str>, observed_per_service: &BTreeMap<&str, usize>) -> String {
        let Some(service) = service else { return "not part of the blueprint".to_string() };
        match self.desired.services.iter().find(|s| s.name == service) {
            Some(spec) => {
                let have = observed_per_service.get(service).copied().unwrap_or(0);
                format!("replicas {have} → {}", spec.replicas)
            }
            None => format!("service {service} is no longer in the blueprint"),
        }
    }

    /// Containers to create, recreate, reload or start, service by service in dependency order.
    fn do_plan_services(&mut self) {
        // Each service's containers, grouped once (a scan per service would be quadratic).
        let mut by_service: BTreeMap<&str, Vec<&'d ContainerSpec>> = BTreeMap::new();
        for spec in self.desired.containers.values() {
            by_service.entry(spec.service.as_str()).or_default().push(spec);
        }
        for service in &self.desired.services {
            let mut specs = by_service.remove(service.name.as_str()).unwrap_or_default();
            // The leader (a database primary) first, so the others can wait for it.
            specs.sort_by_key(|s| (service.leader != Some(s.replica), s.replica));
            let mut progress = ServiceProgress::default();
            for spec in specs {
                self.plan_container(service, spec, &mut progress);
            }
            if !progress.batches.is_empty() {
                let batches = progress.batches;
                self.rollouts.push(Rollout { service: service.name.clone(), policy: service.rollout, batches });
            }
            self.service_actions.insert(&service.name, progress.mine);
        }
    }

    /// The action (if any) one desired container needs, ordered after what it waits for.
    fn plan_container(&mut self, service: &'d ServiceSpec, spec: &'d ContainerSpec, progress: &mut ServiceProgress) {
        let mut after = self.waits_of(service, spec);
        if service.leader.is_some_and(|leader| leader != spec.replica) {
            after.extend(progress.leader_action);
        }
        let Some((op, reason)) = self.container_op(service, spec, &mut after, progress) else {
            return;
        };
        let recreate = matches!(op, Op::RecreateContainer { .. });
        let held: Vec<u16> = self.observed.containers.get(&spec.name).map(held_ports).unwrap_or_default();
        let id = self.b.push(op, reason, after, Some(&service.name));
        if recreate {
            progress.add_replacement(id, service.rollout.parallelism);
            for port in held {
                self.port_freed_by.entry(port).or_default().push(id);
            }
        }
        if service.leader == Some(spec.replica) {
            progress.leader_action = Some(id);
        }
        progress.mine.push(id);
    }

    /// What a container of `service` waits for whatever happens to it: its image, networks and
    /// volumes, its service's dependencies, the host ports it needs, and its own name.
    fn waits_of(&self, service: &ServiceSpec, spec: &ContainerSpec) -> Vec<ActionId> {
        let mut after: Vec<ActionId> = Vec::new();
        after.extend(self.image_action.get(spec.image.as_str()));
        after.extend(spec.networks.iter().filter_map(|n| self.network_action.get(n.network.as_str())));
        after.extend(spec.mounts.iter().filter_map(|m| match &m.source {
            MountSourceSpec::Volume(v) => self.volume_action.get(v.as_str()),
            _ => None,
        }));
        for (dep, _) in &service.depends_on {
            after.extend(self.service_actions.get(dep.as_str()).into_iter().flatten());
        }
        for port in spec.ports.iter().filter_map(|p| p.host_port) {
            after.extend(self.port_freed_by.get(&port).into_iter().flatten());
        }
        // A leftover of an interrupted replacement holds the temporary name.
        after.extend(self.leftover_removal.get(spec.name.as_str()));
        after.extend(self.gate_of.get(&spec.name).into_iter().flatten());
        after
    }

    /// What to do with one desired container and why; `None` when it is as it should be.
    fn container_op(
        &self,
        service: &ServiceSpec,
        spec: &ContainerSpec,
        after: &mut Vec<ActionId>,
        progress: &ServiceProgress,
    ) -> Option<(Op, String)> {
        let (desired, observed) = (self.desired, self.observed);
        let readiness = service.readiness;
        let files = files_for(&spec.name, desired);
        match observed.containers.get(&spec.name) {
            None if self.finishable.contains_key(spec.name.as_str()) => {
                let temp = self.finishable[spec.name.as_str()];
                let op = Op::FinishReplacement {
                    id: temp.id.clone(),
                    temp_name: temp.name.clone(),
                    spec: spec.clone(),
                    readiness,
                };
                Some((op, format!("finish an interrupted replacement: rename {} → {}", temp.name, spec.name)))
            }
            None => Some((Op::CreateContainer { spec: spec.clone(), readiness, files }, "missing".to_string())),
            Some(seen) if self.removal_action.contains_key(spec.name.as_str()) => {
                after.push(self.removal_action[spec.name.as_str()]);
                Some((Op::CreateContainer { spec: spec.clone(), readiness, files }, replacement_reason(seen, spec)))
            }
            Some(seen) if needs_replacement(seen, spec, &self.hashes) || self.replace.contains(&spec.name) => {
                let mut reason = match needs_replacement(seen, spec, &self.hashes) {
                    true => replacement_reason(seen, spec),
                    false => "replace requested".to_string(),
                };
                let policy = service.rollout;
                let (waits, new_batch) = progress.batch_waits(policy.parallelism);
                after.extend(waits);
                let safe = can_start_first(seen, spec);
                let start_first = match policy.order {
                    Some(RolloutOrder::StopFirst) => false,
                    Some(RolloutOrder::StartFirst) if !safe => {
                        reason.push_str(" (stop-first: a fixed host port or a shared writable volume)");
                        false
                    }
                    _ => safe,
                };
                let mut spec = spec.clone();
                spec.previous = seen.spec().map(Box::new);
                let op = Op::RecreateContainer {
                    old_id: seen.id.clone(),
                    old_grace_secs: stop_grace(seen),
                    spec,
                    readiness,
                    files,
                    drains: drains_for(&seen.name, observed, desired, &self.hashes),
                    start_first,
                    monitor_ms: policy.monitor_ms,
                    delay_ms: if new_batch { policy.delay_ms } else { 0 },
                };
                Some((op, reason))
            }
            Some(seen) if observed.stale_replicas.contains_key(&seen.name) => {
                let why = &observed.stale_replicas[&seen.name];
                let reason = format!("{why}; a fresh base backup (its old data is set aside in its volume, kept)");
                let op = Op::ReseedReplica {
                    id: seen.id.clone(),
                    name: seen.name.clone(),
                    grace_secs: stop_grace(seen),
                    readiness,
                };
                Some((op, reason))
            }
            Some(seen) if reload_needed(seen, desired, observed).is_some() => {
                let reason = reload_needed(seen, desired, observed).unwrap_or_default();
                after.extend(self.reload_waits(&spec.name));
                Some((Op::ReloadLoadBalancer { id: seen.id.clone(), name: seen.name.clone(), files }, reason))
            }
            Some(seen) if seen.state == RunState::Running && !missing_networks(seen, spec).is_empty() => {
                let missing = missing_networks(seen, spec);
                let names: Vec<&str> = missing.iter().map(|n| n.network.as_str()).collect();
                let reason = format!("disconnected from {}", names.join(", "));
                Some((Op::Reconnect { id: seen.id.clone(), name: seen.name.clone(), networks: missing }, reason))
            }
            Some(seen) => start_reason(seen, readiness).map(|why| {
                let op = Op::StartContainer {
                    id: seen.id.clone(),
                    name: seen.name.clone(),
                    paused: seen.state == RunState::Paused,
                    readiness,
                };
                (op, why)
            }),
        }
    }

    /// A load balancer reloads once its backend's containers are in place and gone.
    fn reload_waits(&self, balancer: &str) -> Vec<ActionId> {
        let Some(lb) = self.desired.load_balancers.get(balancer) else { return Vec::new() };
        let backend = lb.pool.backend.as_str();
        let mut after: Vec<ActionId> = self.service_actions.get(backend).into_iter().flatten().copied().collect();
        after.extend(
            self.removals.iter().filter(|c| c.service() == Some(backend)).map(|c| self.removal_action[c.name.as_str()]),
        );
        after
    }

    /// Networks that are no longer wanted go last, once nothing of ours uses them.
    fn do_plan_network_removals(&mut self) {
        let container_changes: Vec<ActionId> = self
            .b
            .actions
            .iter()
            .filter(|a| matches!(a.op, Op::RemoveContainer { .. } | Op::RecreateContainer { .. }))
            .map(|a| a.id)
            .collect();
        for name in self.observed.networks.keys() {
            if !self.desired.networks.contains_key(name) {
                let op = Op::RemoveNetwork { name: name.clone() };
                self.b.push(op, "no longer in the blueprint", container_changes.clone(), None);
            }
        }
    }

    /// Volumes are never removed by a plan; one no longer used is only mentioned.
    fn note_unused_volumes(&mut self) {
        for name in self.observed.volumes.keys() {
            if !self.desired.volumes.contains_key(name) {
                self.notes
                    .push(format!("volume {name} is no longer used; kept (`scale destroy --volumes` deletes volumes)"));
            }
        }
    }
}

/// Which desired container claims each fixed host port.
fn port_claims(desired: &DesiredState) -> BTreeMap<u16, &str> {
    desired
        .containers
        .values()
        .flat_map(|s| s.ports.iter().filter_map(|p| p.host_port).map(move |port| (port, s.name.as_str())))
        .collect()
}

/// The action that runs one copy.
fn migrate_op(m: &super::Migration) -> Op {
    Op::MigrateData {
        name: m.container.clone(),
        direction: m.direction,
        volume: m.volume.clone(),
        database: m.database.clone(),
        marker: m.marker.as_ref().map(|(v, _)| v.name.clone()),
    }
}
