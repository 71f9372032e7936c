//! The planner: a pure diff of the desired state against an observed snapshot. Each action
//! carries its reason and the actions it must wait for, so the executor decides nothing and
//! `scale plan` prints exactly what `scale apply` runs.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;

use crate::observed::{ObservedContainer, ObservedState, RunState};
use crate::spec::{ContainerSpec, DesiredState, ImageSource, ImageSpec, NetworkSpec, Readiness, VolumeSpec};

mod destroy;
mod primaries;
pub mod reason;
mod render;

pub use destroy::destroy_plan;
pub use primaries::assign_primaries;
pub use render::{render_json, render_text};

/// Index of an action within its plan.
pub type ActionId = usize;

/// What one action does.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Build {
        image: ImageSpec,
    },
    Pull {
        reference: String,
    },
    CreateNetwork {
        spec: NetworkSpec,
    },
    RemoveNetwork {
        name: String,
    },
    CreateVolume {
        spec: VolumeSpec,
    },
    /// Create, write `files` into it, start, and wait until ready.
    CreateContainer {
        spec: ContainerSpec,
        readiness: Readiness,
        files: Vec<FileSpec>,
    },
    /// Drain it from load balancers, stop and remove the old container, then create, start
    /// and wait for the new one, and put it back into rotation.
    RecreateContainer {
        old_id: String,
        old_grace_secs: u64,
        spec: ContainerSpec,
        readiness: Readiness,
        files: Vec<FileSpec>,
        drains: Vec<Drain>,
        /// Start the new container under a temporary name before the old one stops; false
        /// when a fixed host port or a writable volume forces stopping the old one first.
        start_first: bool,
    },
    /// A replacement was interrupted after its old container was removed: give the new one
    /// its final name, start it if needed, and wait until ready.
    FinishReplacement {
        id: String,
        temp_name: String,
        spec: ContainerSpec,
        readiness: Readiness,
    },
    /// Write a new configuration into a running load balancer and reload it without drops.
    ReloadLoadBalancer {
        id: String,
        name: String,
        files: Vec<FileSpec>,
    },
    /// Attach a running container again to networks it was cut off from, with its aliases.
    Reconnect {
        id: String,
        name: String,
        networks: Vec<crate::spec::AttachmentSpec>,
    },
    /// Start (or unpause) an existing container and wait until ready.
    StartContainer {
        id: String,
        name: String,
        paused: bool,
        readiness: Readiness,
    },
    /// Drain it from load balancers, then stop and remove it (its volumes stay).
    RemoveContainer {
        id: String,
        name: String,
        grace_secs: u64,
        drains: Vec<Drain>,
        /// A database replica that leaves for good gives up its replication slot.
        #[serde(skip_serializing_if = "Option::is_none")]
        release_slot: Option<SlotRelease>,
        /// Delete its anonymous volumes too (`destroy --volumes`).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        anonymous_volumes: bool,
    },
    /// Delete a volume and its data (only `scale destroy --volumes` plans this).
    RemoveVolume {
        name: String,
    },
}

impl Op {
    /// The verb users see: create, recreate, start, remove, build, pull.
    pub fn verb(&self) -> &'static str {
        match self {
            Op::Build { .. } => "build",
            Op::Pull { .. } => "pull",
            Op::CreateNetwork { .. } | Op::CreateVolume { .. } | Op::CreateContainer { .. } => "create",
            Op::RecreateContainer { .. } | Op::FinishReplacement { .. } => "recreate",
            Op::ReloadLoadBalancer { .. } => "reload",
            Op::StartContainer { .. } => "start",
            Op::Reconnect { .. } => "reconnect",
            Op::RemoveNetwork { .. } | Op::RemoveContainer { .. } | Op::RemoveVolume { .. } => "remove",
        }
    }

    /// What kind of resource it acts on.
    pub fn resource(&self) -> &'static str {
        match self {
            Op::Build { .. } | Op::Pull { .. } => "image",
            Op::CreateNetwork { .. } | Op::RemoveNetwork { .. } => "network",
            Op::CreateVolume { .. } | Op::RemoveVolume { .. } => "volume",
            _ => "container",
        }
    }

    /// The resource's name as users see it (`shop-web-2`, `network shop_private`, `shop/web`).
    pub fn target(&self) -> String {
        match self {
            Op::Build { image } => image.repository.clone(),
            Op::Pull { reference } => reference.clone(),
            Op::CreateNetwork { spec } => format!("network {}", spec.name),
            Op::RemoveNetwork { name } => format!("network {name}"),
            Op::CreateVolume { spec } => format!("volume {}", spec.name),
            Op::RemoveVolume { name } => format!("volume {name}"),
            Op::CreateContainer { spec, .. }
            | Op::RecreateContainer { spec, .. }
            | Op::FinishReplacement { spec, .. } => spec.name.clone(),
            Op::StartContainer { name, .. } | Op::RemoveContainer { name, .. } => name.clone(),
            Op::ReloadLoadBalancer { name, .. } | Op::Reconnect { name, .. } => name.clone(),
        }
    }

    /// The bare name of the resource (no "network " prefix).
    pub fn name(&self) -> String {
        match self {
            Op::CreateNetwork { spec } => spec.name.clone(),
            Op::RemoveNetwork { name } => name.clone(),
            Op::CreateVolume { spec } => spec.name.clone(),
            Op::RemoveVolume { name } => name.clone(),
            _ => self.target(),
        }
    }

    /// The container spec this action brings into being, if any.
    pub fn container_spec(&self) -> Option<&ContainerSpec> {
        match self {
            Op::CreateContainer { spec, .. }
            | Op::RecreateContainer { spec, .. }
            | Op::FinishReplacement { spec, .. } => Some(spec),
            _ => None,
        }
    }

    /// Whether this action takes something away (asked about on a TTY).
    pub fn is_destructive(&self) -> bool {
        matches!(
            self,
            Op::RemoveContainer { .. }
                | Op::RemoveNetwork { .. }
                | Op::RemoveVolume { .. }
                | Op::RecreateContainer { .. }
        )
    }
}

/// A generated file written into a container (load-balancer configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSpec {
    pub path: String,
    pub contents: String,
}

/// Take `server` out of `backend` on a running load balancer before stopping it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drain {
    pub balancer_id: String,
    pub balancer: String,
    pub backend: String,
    pub server: String,
}

/// Drop a departed replica's replication slot on the primary, which would otherwise keep
/// WAL for it without end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotRelease {
    pub primary_id: String,
    pub primary: String,
    pub slot: String,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Action {
    pub id: ActionId,
    pub op: Op,
    /// Why, in a user's words ("environment GREETING changed (hello → hi)").
    pub reason: String,
    /// Actions that must finish first.
    pub after: Vec<ActionId>,
    /// The service a container action belongs to.
    pub service: Option<String>,
}

/// Everything `apply` will do, in order, with reasons.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Plan {
    pub project: String,
    pub actions: Vec<Action>,
    /// Things worth saying that are not actions (a volume left in place, ...).
    pub notes: Vec<String>,
}

impl Plan {
    /// Whether applying would change anything.
    pub fn has_changes(&self) -> bool {
        !self.actions.is_empty()
    }

    /// How many actions use each verb, for summaries.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for a in &self.actions {
            *counts.entry(a.op.verb()).or_insert(0) += 1;
        }
        counts
    }
}

/// A desired state that cannot be reached by actions alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "network {name} exists with internal: {observed}, but the blueprint says internal: {desired}; \
         a network cannot be changed in place: run `scale destroy` (volumes are kept) and apply again"
    )]
    NetworkChanged { name: String, observed: bool, desired: bool },
}

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

/// Computes the plan that takes `observed` to `desired` (the blueprint's desired state: the
/// primaries a failover promoted are assigned here, see [`assign_primaries`]).
pub fn plan(desired: &DesiredState, observed: &ObservedState) -> Result<Plan, PlanError> {
    let desired = &*assign_primaries(desired, observed);
    let mut b = Builder { actions: Vec::new() };
    let mut notes = Vec::new();
    let hashes = SpecHashes::new(desired);

    // Images.
    let mut image_action: BTreeMap<&str, ActionId> = BTreeMap::new();
    for (reference, image) in &desired.images {
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
        image_action.insert(reference, b.push(op, why, vec![], None));
    }

    // Networks and volumes to create.
    let mut network_action: BTreeMap<&str, ActionId> = BTreeMap::new();
    for (name, spec) in &desired.networks {
        match observed.networks.get(name) {
            Some(seen) if seen.internal != spec.internal => {
                return Err(PlanError::NetworkChanged {
                    name: name.clone(),
                    observed: seen.internal,
                    desired: spec.internal,
                });
            }
            Some(_) => {}
            None => {
                network_action.insert(name, b.push(Op::CreateNetwork { spec: spec.clone() }, "missing", vec![], None));
            }
        }
    }
    let mut volume_action: BTreeMap<&str, ActionId> = BTreeMap::new();
    for (name, spec) in &desired.volumes {
        if !observed.volumes.contains_key(name) {
            volume_action.insert(name, b.push(Op::CreateVolume { spec: spec.clone() }, "missing", vec![], None));
        }
    }

    // Containers that go away free names and host ports; creations that need a port wait.
    // One to be replaced while another container claims a host port it holds goes away here
    // too, and is created again below: the claimant may be planned before its replacement
    // (or be one of its dependencies), so waiting for a recreate would come too late.
    let claims: BTreeMap<u16, &str> = desired
        .containers
        .values()
        .flat_map(|s| s.ports.iter().filter_map(|p| p.host_port).map(move |port| (port, s.name.as_str())))
        .collect();
    let finishable: BTreeMap<&str, &ObservedContainer> = observed
        .containers
        .values()
        .filter_map(|c| finishable_leftover(c, desired, observed, &hashes).map(|real| (real, c)))
        .collect();
    let removals: Vec<&ObservedContainer> = observed
        .containers
        .values()
        .filter(|c| !finishable.values().any(|f| f.id == c.id))
        .filter(|c| !desired.containers.contains_key(&c.name) || hands_over(c, desired, &claims, &hashes).is_some())
        .collect();
    let mut removal_action: BTreeMap<&str, ActionId> = BTreeMap::new();
    let service_replicas: BTreeMap<&str, u32> =
        desired.services.iter().map(|s| (s.name.as_str(), s.replicas)).collect();
    let mut observed_per_service: BTreeMap<&str, usize> = BTreeMap::new();
    for c in observed.containers.values() {
        if let Some(service) = c.service() {
            *observed_per_service.entry(service).or_insert(0) += 1;
        }
    }
    let removed_names: HashSet<&str> = removals.iter().map(|c| c.name.as_str()).collect();
    for c in &removals {
        let release_slot = slot_release(c, desired, observed, &removed_names);
        let reason = match (hands_over(c, desired, &claims, &hashes), c.service()) {
            (Some((port, to)), _) => format!("frees host port {port} for {to} (created again below)"),
            (None, _) if c.name.ends_with(TEMP_SUFFIX) => "leftover of an interrupted replacement".to_string(),
            (None, service) => match service {
                Some(service) => match service_replicas.get(service) {
                    Some(&want) => {
                        let have = observed_per_service.get(service).copied().unwrap_or(0);
                        format!("replicas {have} → {want}")
                    }
                    None => format!("service {service} is no longer in the blueprint"),
                },
                None => "not part of the blueprint".to_string(),
            },
        };
        let reason = match &release_slot {
            Some(r) => format!("{reason}; drops its replication slot on {}", r.primary),
            None => reason,
        };
        let op = Op::RemoveContainer {
            id: c.id.clone(),
            name: c.name.clone(),
            grace_secs: stop_grace(c),
            drains: drains_for(&c.name, observed, desired, &hashes),
            release_slot,
            anonymous_volumes: false,
        };
        let id = b.push(op, reason, vec![], c.service());
        removal_action.insert(&c.name, id);
    }

    // Removals of leftovers of interrupted replacements, by the name they were meant to take.
    let leftover_removal: HashMap<&str, ActionId> =
        removal_action.iter().filter_map(|(name, id)| name.strip_suffix(TEMP_SUFFIX).map(|real| (real, *id))).collect();

    // Which actions free each fixed host port (removals now; recreations below).
    let mut port_freed_by: BTreeMap<u16, Vec<ActionId>> = BTreeMap::new();
    for c in &removals {
        for port in held_ports(c) {
            port_freed_by.entry(port).or_default().push(removal_action[c.name.as_str()]);
        }
    }

    // Each service's containers, grouped once (a scan per service would be quadratic).
    let mut by_service: BTreeMap<&str, Vec<&ContainerSpec>> = BTreeMap::new();
    for spec in desired.containers.values() {
        by_service.entry(spec.service.as_str()).or_default().push(spec);
    }
    // Containers to create, recreate or start, service by service in dependency order.
    let mut service_actions: BTreeMap<&str, Vec<ActionId>> = BTreeMap::new();
    for service in &desired.services {
        let mut previous_replacement: Option<ActionId> = None;
        let mut leader_action: Option<ActionId> = None;
        let mut mine = Vec::new();
        let mut specs: Vec<&ContainerSpec> = by_service.remove(service.name.as_str()).unwrap_or_default();
        // The leader (a database primary) first, so the others can wait for it.
        specs.sort_by_key(|s| (service.leader != Some(s.replica), s.replica));
        for spec in specs {
            let mut after: Vec<ActionId> = Vec::new();
            after.extend(image_action.get(spec.image.as_str()));
            after.extend(spec.networks.iter().filter_map(|n| network_action.get(n.network.as_str())));
            after.extend(spec.mounts.iter().filter_map(|m| match &m.source {
                crate::spec::MountSourceSpec::Volume(v) => volume_action.get(v.as_str()),
                _ => None,
            }));
            for (dep, _) in &service.depends_on {
                after.extend(service_actions.get(dep.as_str()).into_iter().flatten());
            }
            for port in spec.ports.iter().filter_map(|p| p.host_port) {
                after.extend(port_freed_by.get(&port).into_iter().flatten());
            }
            // A leftover of an interrupted replacement holds the temporary name.
            after.extend(leftover_removal.get(spec.name.as_str()));
            let readiness = service.readiness;
            if service.leader.is_some_and(|leader| leader != spec.replica) {
                after.extend(leader_action);
            }
            let files = files_for(&spec.name, desired);
            let action = match observed.containers.get(&spec.name) {
                None if finishable.contains_key(spec.name.as_str()) => {
                    let temp = finishable[spec.name.as_str()];
                    let op = Op::FinishReplacement {
                        id: temp.id.clone(),
                        temp_name: temp.name.clone(),
                        spec: spec.clone(),
                        readiness,
                    };
                    Some((op, format!("finish an interrupted replacement: rename {} → {}", temp.name, spec.name)))
                }
                None => Some((Op::CreateContainer { spec: spec.clone(), readiness, files }, "missing".to_string())),
                Some(seen) if removal_action.contains_key(spec.name.as_str()) => {
                    after.push(removal_action[spec.name.as_str()]);
                    Some((Op::CreateContainer { spec: spec.clone(), readiness, files }, replacement_reason(seen, spec)))
                }
                Some(seen) if needs_replacement(seen, spec, &hashes) => {
                    let reason = replacement_reason(seen, spec);
                    if let Some(prev) = previous_replacement {
                        after.push(prev);
                    }
                    let op = Op::RecreateContainer {
                        old_id: seen.id.clone(),
                        old_grace_secs: stop_grace(seen),
                        spec: spec.clone(),
                        readiness,
                        files,
                        drains: drains_for(&spec.name, observed, desired, &hashes),
                        start_first: can_start_first(seen, spec),
                    };
                    Some((op, reason))
                }
                Some(seen) if reload_needed(seen, desired, observed).is_some() => {
                    let reason = reload_needed(seen, desired, observed).unwrap_or_default();
                    if let Some(lb) = desired.load_balancers.get(&spec.name) {
                        let backend = lb.pool.backend.as_str();
                        after.extend(service_actions.get(backend).into_iter().flatten());
                        after.extend(
                            removals
                                .iter()
                                .filter(|c| c.service() == Some(backend))
                                .map(|c| removal_action[c.name.as_str()]),
                        );
                    }
                    let op = Op::ReloadLoadBalancer { id: seen.id.clone(), name: seen.name.clone(), files };
                    Some((op, reason))
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
            };
            if let Some((op, reason)) = action {
                let recreate = matches!(op, Op::RecreateContainer { .. });
                let held: Vec<u16> = observed.containers.get(&spec.name).map(held_ports).unwrap_or_default();
                let id = b.push(op, reason, after, Some(&service.name));
                if recreate {
                    previous_replacement = Some(id);
                    for port in held {
                        port_freed_by.entry(port).or_default().push(id);
                    }
                }
                if service.leader == Some(spec.replica) {
                    leader_action = Some(id);
                }
                mine.push(id);
            }
        }
        service_actions.insert(&service.name, mine);
    }

    // Networks that are no longer wanted go last, once nothing of ours uses them.
    let container_changes: Vec<ActionId> = b
        .actions
        .iter()
        .filter(|a| matches!(a.op, Op::RemoveContainer { .. } | Op::RecreateContainer { .. }))
        .map(|a| a.id)
        .collect();
    for name in observed.networks.keys() {
        if !desired.networks.contains_key(name) {
            b.push(
                Op::RemoveNetwork { name: name.clone() },
                "no longer in the blueprint",
                container_changes.clone(),
                None,
            );
        }
    }
    for name in observed.volumes.keys() {
        if !desired.volumes.contains_key(name) {
            notes.push(format!("volume {name} is no longer used; kept (`scale destroy --volumes` deletes volumes)"));
        }
    }

    Ok(Plan { project: desired.project.clone(), actions: b.actions, notes })
}

/// Whether an existing container must give way to a new one built from `spec`.
fn needs_replacement(seen: &ObservedContainer, spec: &ContainerSpec, hashes: &SpecHashes) -> bool {
    seen.spec_hash() != Some(hashes.of(spec).as_ref()) || seen.state == RunState::Dead
}

/// Each desired container's spec hash, computed once per plan: serialising and hashing the
/// specs is most of what planning a large project costs, and several checks need the hash.
struct SpecHashes<'d>(HashMap<&'d str, String>);

impl<'d> SpecHashes<'d> {
    fn new(desired: &'d DesiredState) -> Self {
        SpecHashes(desired.containers.iter().map(|(name, spec)| (name.as_str(), spec.hash())).collect())
    }

    fn of(&self, spec: &ContainerSpec) -> Cow<'_, str> {
        match self.0.get(spec.name.as_str()) {
            Some(hash) => Cow::Borrowed(hash),
            None => Cow::Owned(spec.hash()),
        }
    }
}

/// Why an existing container is replaced, in a user's words.
fn replacement_reason(seen: &ObservedContainer, spec: &ContainerSpec) -> String {
    match (seen.state, seen.spec()) {
        (RunState::Dead, _) => "dead".to_string(),
        (_, Some(old)) => reason::container_changes(&old, spec).join("; "),
        (_, None) => "created by an older scale or by hand (no stored spec)".to_string(),
    }
}

/// A host port that `c`, due for replacement, holds and another desired container claims.
fn hands_over<'d>(
    c: &ObservedContainer,
    desired: &DesiredState,
    claims: &BTreeMap<u16, &'d str>,
    hashes: &SpecHashes,
) -> Option<(u16, &'d str)> {
    let spec = desired.containers.get(&c.name)?;
    if !needs_replacement(c, spec, hashes) {
        return None;
    }
    held_ports(c).into_iter().find_map(|port| claims.get(&port).filter(|to| **to != c.name).map(|to| (port, *to)))
}

/// The suffix of a replacement's temporary name. Service names cannot contain a dot, so no
/// container of ours ends with it otherwise.
pub const TEMP_SUFFIX: &str = ".next";

/// The final name of a replacement whose old container is already gone, when the leftover is
/// exactly what is desired there (so finishing is renaming it).
fn finishable_leftover<'a>(
    c: &'a ObservedContainer,
    desired: &DesiredState,
    observed: &ObservedState,
    hashes: &SpecHashes,
) -> Option<&'a str> {
    let real = c.name.strip_suffix(TEMP_SUFFIX)?;
    let spec = desired.containers.get(real)?;
    let intact = c.state != RunState::Dead && c.state != RunState::Removing;
    (intact && !observed.containers.contains_key(real) && c.spec_hash() == Some(hashes.of(spec).as_ref()))
        .then_some(real)
}

/// Whether the new container may run beside the old one for a moment: not when either holds
/// a fixed host port (it would not start) or the new one writes to a volume or host path
/// (two processes on one database directory would corrupt it).
fn can_start_first(seen: &ObservedContainer, spec: &ContainerSpec) -> bool {
    let old_fixed = seen.spec().is_none_or(|old| old.ports.iter().any(|p| p.host_port.is_some()));
    let fixed_port = old_fixed || spec.ports.iter().any(|p| p.host_port.is_some());
    let writes_shared =
        spec.mounts.iter().any(|m| !m.read_only && !matches!(m.source, crate::spec::MountSourceSpec::Anonymous));
    !fixed_port && !writes_shared
}

/// The generated files a container gets at creation (a load balancer's configuration).
fn files_for(name: &str, desired: &DesiredState) -> Vec<FileSpec> {
    desired
        .load_balancers
        .get(name)
        .map(|lb| {
            lb.files()
                .into_iter()
                .map(|(path, contents)| FileSpec { path, contents: String::from_utf8_lossy(&contents).into_owned() })
                .collect()
        })
        .unwrap_or_default()
}

/// Why a running, up-to-date load balancer needs its configuration rewritten, if it does.
fn reload_needed(seen: &ObservedContainer, desired: &DesiredState, observed: &ObservedState) -> Option<String> {
    let want = desired.load_balancers.get(&seen.name)?;
    if seen.state != RunState::Running {
        return None;
    }
    match observed.load_balancers.get(&seen.name) {
        Some(have) if have.hash == want.pool.hash && !have.draining.is_empty() => Some(format!(
            "put {} back in rotation (an interrupted replacement left it drained)",
            have.draining.join(", ")
        )),
        Some(have) if have.hash == want.pool.hash => None,
        Some(have) => Some(crate::kinds::load_balancer::pool_change(have, &want.pool)),
        None => Some("configuration missing".into()),
    }
}

/// The running load balancers (staying in place) that route to `server`: drain it there first.
fn drains_for(server: &str, observed: &ObservedState, desired: &DesiredState, hashes: &SpecHashes) -> Vec<Drain> {
    observed
        .load_balancers
        .iter()
        .filter(|(_, pool)| pool.servers.iter().any(|s| s == server))
        .filter_map(|(balancer, pool)| {
            let seen = observed.containers.get(balancer)?;
            let stays = desired.containers.get(balancer).is_some_and(|spec| !needs_replacement(seen, spec, hashes));
            (stays && seen.state == RunState::Running).then(|| Drain {
                balancer_id: seen.id.clone(),
                balancer: balancer.clone(),
                backend: pool.backend.clone(),
                server: server.to_string(),
            })
        })
        .collect()
}

/// The slot to give up when `c`, a replica of a `kind: postgres` service, leaves for good
/// (not replaced, not a leftover of a replacement) while its primary runs on.
fn slot_release(
    c: &ObservedContainer,
    desired: &DesiredState,
    observed: &ObservedState,
    removed: &HashSet<&str>,
) -> Option<SlotRelease> {
    use crate::kinds::postgres;
    if c.kind() != Some(crate::model::Kind::Postgres)
        || c.name.ends_with(TEMP_SUFFIX)
        || desired.containers.contains_key(&c.name)
    {
        return None;
    }
    let (service, node) = (c.service()?, c.replica()?);
    let primary_node = observed.primaries().get(service).map_or(1, |(n, _)| *n);
    if node == primary_node {
        return None;
    }
    let primary = crate::spec::container_name(&desired.project, service, primary_node);
    let seen = observed.containers.get(&primary)?;
    (seen.state == RunState::Running && !removed.contains(primary.as_str())).then(|| SlotRelease {
        primary_id: seen.id.clone(),
        primary: primary.clone(),
        slot: postgres::slot_name(&desired.project, service, node),
    })
}

/// The desired networks a running container is not attached to (cut off by hand or chaos).
fn missing_networks(seen: &ObservedContainer, spec: &ContainerSpec) -> Vec<crate::spec::AttachmentSpec> {
    spec.networks.iter().filter(|n| !seen.networks.contains(&n.network)).cloned().collect()
}

/// Docker's default time between SIGTERM and SIGKILL.
pub const DEFAULT_STOP_GRACE_SECS: u64 = 10;

/// How long stopping this container may take, from the spec it was created with.
fn stop_grace(c: &ObservedContainer) -> u64 {
    c.spec().and_then(|s| s.stop_grace_secs).unwrap_or(DEFAULT_STOP_GRACE_SECS)
}

/// Host ports a container holds now or is specified to hold.
fn held_ports(c: &ObservedContainer) -> Vec<u16> {
    let mut ports: BTreeSet<u16> = c.ports.iter().map(|p| p.host_port).collect();
    if let Some(spec) = c.spec() {
        ports.extend(spec.ports.iter().filter_map(|p| p.host_port));
    }
    ports.into_iter().collect()
}

/// Why an up-to-date container still needs starting, if it does.
fn start_reason(seen: &ObservedContainer, readiness: Readiness) -> Option<String> {
    match seen.state {
        RunState::Running | RunState::Restarting | RunState::Removing | RunState::Dead => None,
        RunState::Paused => Some("paused".into()),
        RunState::Exited if readiness == Readiness::Completed && seen.exit_code == Some(0) => None,
        RunState::Exited => Some(match seen.exit_code {
            Some(code) => format!("stopped (exited with code {code})"),
            None => "stopped".into(),
        }),
        RunState::Created => Some("created but never started".into()),
    }
}
