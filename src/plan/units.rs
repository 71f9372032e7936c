//! The plan for an orchestrator target (Swarm today, Kubernetes later): the same desired state
//! as on one engine, grouped into *units* — one orchestrator service per blueprint service,
//! scaled by the orchestrator — and diffed against the units the target reports. Pure: the
//! target's engine code turns a [`UnitSpec`] into its own objects and reads them back into
//! [`ObservedUnit`]s; nothing here knows Swarm's types.
//!
//! A unit keeps the container spec of its replicas (a *template*) in its labels, like a
//! container does on one engine, so a changed unit is explained in the same words
//! ([`super::reason::container_changes`]); its hash decides whether anything changed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::reason::container_changes;
use crate::model::{Condition, Kind, RolloutPolicy};
use crate::observed::{ObservedState, ObservedVolume};
use crate::spec::{ContainerSpec, DesiredState, ImageSpec, NetworkSpec, Readiness, hex};

/// Where a unit's tasks may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "on", content = "node")]
pub enum Placement {
    /// Anywhere: the orchestrator spreads the replicas.
    Any,
    /// On the manager: a unit that publishes host ports publishes them there (no routing mesh).
    Manager,
    /// On the n-th node (1-based; workers by hostname, then managers): a database node keeps
    /// its volume. Workers first, so the primary (node 1) is not on the manager: a lost
    /// manager takes the control plane a failover needs with it.
    Node(u32),
}

/// A configuration file the target delivers into the unit's tasks (the load balancer's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitFile {
    pub path: String,
    pub text: String,
}

impl UnitFile {
    /// 12 hex of the text: part of the target object's name, so a new text is a new object.
    pub fn hash(&self) -> String {
        hex(&Sha256::digest(self.text.as_bytes()))[..12].to_string()
    }
}

/// One orchestrator service, fully specified. Stored whole with the service (a label), so
/// a failover without the blueprint can change a database node's role and nothing else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitSpec {
    /// `<project>-<service>`, or the container name for a database node.
    pub name: String,
    /// The blueprint service.
    pub service: String,
    pub kind: Option<Kind>,
    /// What each replica runs: the replicas' container spec, named after the unit.
    pub template: ContainerSpec,
    pub replicas: u32,
    pub rollout: RolloutPolicy,
    pub readiness: Readiness,
    pub placement: Placement,
    pub file: Option<UnitFile>,
    /// Blueprint services this one waits for, with the condition.
    pub depends_on: Vec<(String, Condition)>,
}

impl UnitSpec {
    /// A stable fingerprint of everything that needs a rolling update; the replica count is
    /// left out (scaling is its own, cheaper change).
    pub fn hash(&self) -> String {
        #[derive(Serialize)]
        struct Hashed<'a> {
            template: &'a ContainerSpec,
            placement: &'a Placement,
            file: Option<String>,
            parallelism: u32,
            monitor_ms: u64,
        }
        let hashed = Hashed {
            template: &self.template,
            placement: &self.placement,
            file: self.file.as_ref().map(UnitFile::hash),
            parallelism: self.rollout.parallelism,
            monitor_ms: self.rollout.monitor_ms,
        };
        let json = serde_json::to_vec(&hashed).expect("a unit always serializes");
        hex(&Sha256::digest(&json)[..8])
    }
}

/// What the target reports about one of the project's units.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedUnit {
    pub name: String,
    pub service: String,
    /// The hash label; empty when missing.
    pub hash: String,
    /// The template stored in its labels, when readable.
    pub template: Option<ContainerSpec>,
    pub replicas: u32,
    pub file_hash: Option<String>,
    /// The whole unit as the last apply made it, when readable.
    pub unit: Option<UnitSpec>,
}

/// What the target holds of a project.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObservedUnits {
    pub units: BTreeMap<String, ObservedUnit>,
    /// The project's networks by name.
    pub networks: BTreeSet<String>,
    /// The markers recording a database primary after a failover, by name: their labels
    /// (those of [`crate::kinds::postgres::marker_volume`]).
    pub markers: BTreeMap<String, BTreeMap<String, String>>,
}

impl ObservedUnits {
    /// The markers as an observed state, for [`crate::plan::assign_primaries`]: the primary
    /// after a failover is decided the same way on every target.
    pub fn marker_state(&self, project: &str) -> ObservedState {
        let volumes = self
            .markers
            .iter()
            .map(|(name, labels)| (name.clone(), ObservedVolume { name: name.clone(), labels: labels.clone() }))
            .collect();
        ObservedState { project: project.to_string(), volumes, ..Default::default() }
    }
}

/// `unit` (a database node) as the primary or as a replica: its role variables and aliases,
/// as the blueprint's node `n` would have them (the slot name is the node's).
pub fn with_role(unit: &UnitSpec, project: &str, primary: bool, synchronous: bool) -> UnitSpec {
    let mut out = unit.clone();
    let n = match unit.placement {
        Placement::Node(n) => n,
        _ => unit.template.replica,
    };
    out.template.replica = n;
    crate::kinds::postgres::set_role(&mut out.template, project, &unit.service, primary, synchronous);
    out.template.replica = 0;
    out
}

/// The role a database unit was made with (`SCALE_PG_ROLE`).
pub fn role_of(unit: &UnitSpec) -> Option<&str> {
    unit.template.env.get("SCALE_PG_ROLE").map(String::as_str)
}

/// One step of a unit plan.
#[derive(Debug, Clone, PartialEq)]
pub enum UnitOp {
    CreateNetwork(NetworkSpec),
    Create(Box<UnitSpec>),
    /// A rolling update of the unit's tasks, under its update policy.
    Update(Box<UnitSpec>),
    Scale(Box<UnitSpec>),
    Remove(String),
    RemoveNetwork(String),
}

impl UnitOp {
    pub fn verb(&self) -> &'static str {
        match self {
            UnitOp::CreateNetwork(_) | UnitOp::Create(_) => "create",
            UnitOp::Update(_) => "update",
            UnitOp::Scale(_) => "scale",
            UnitOp::Remove(_) | UnitOp::RemoveNetwork(_) => "remove",
        }
    }

    pub fn target(&self) -> String {
        match self {
            UnitOp::CreateNetwork(n) => format!("network {}", n.name),
            UnitOp::RemoveNetwork(n) => format!("network {n}"),
            UnitOp::Create(u) | UnitOp::Update(u) | UnitOp::Scale(u) => format!("service {}", u.name),
            UnitOp::Remove(name) => format!("service {name}"),
        }
    }

    fn symbol(&self) -> char {
        match self {
            UnitOp::CreateNetwork(_) | UnitOp::Create(_) => '+',
            UnitOp::Update(_) | UnitOp::Scale(_) => '~',
            UnitOp::Remove(_) | UnitOp::RemoveNetwork(_) => '-',
        }
    }
}

/// A step and why.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitAction {
    pub op: UnitOp,
    pub reason: String,
}

/// What an apply on an orchestrator target does, in order: networks, then units in
/// dependency order (each waits for what it depends on), then removals.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UnitPlan {
    pub project: String,
    pub actions: Vec<UnitAction>,
    /// Every unit the blueprint wants, in dependency order (what apply waits for).
    pub units: Vec<UnitSpec>,
    /// The images the units run.
    pub images: Vec<ImageSpec>,
}

impl UnitPlan {
    pub fn has_changes(&self) -> bool {
        !self.actions.is_empty()
    }
}

/// The hostname of a replicated unit's tasks: names the task and the node it runs on
/// (Swarm's template syntax), so `X-Served-By` tells both.
pub const TASK_HOSTNAME: &str = "{{.Service.Name}}-{{.Task.Slot}}-{{.Node.Hostname}}";

/// The desired state as units, in dependency order. `balancer_file` renders a load
/// balancer's configuration for the target (backend unit name, backend port, listen ports).
pub fn units(desired: &DesiredState, balancer_file: &dyn Fn(&str, u16, &[u16]) -> UnitFile) -> Vec<UnitSpec> {
    let mut out = Vec::new();
    for service in &desired.services {
        let mut containers: Vec<&ContainerSpec> =
            desired.containers.values().filter(|c| c.service == service.name).collect();
        containers.sort_by_key(|c| c.replica);
        let Some(first) = containers.first() else { continue };
        let unit = |name: String, template: ContainerSpec, replicas: u32, placement: Placement| UnitSpec {
            name,
            service: service.name.clone(),
            kind: service.kind,
            template,
            replicas,
            rollout: service.rollout,
            readiness: service.readiness,
            placement,
            file: None,
            depends_on: service.depends_on.clone(),
        };
        if service.kind == Some(Kind::Postgres) {
            // Each database node its own one-replica unit, pinned to its own node.
            for c in &containers {
                let template = ContainerSpec { replica: 0, ..(*c).clone() };
                out.push(unit(c.name.clone(), template, 1, Placement::Node(c.replica)));
            }
            continue;
        }
        let name = format!("{}-{}", desired.project, service.name);
        let template =
            ContainerSpec { name: name.clone(), replica: 0, hostname: TASK_HOSTNAME.into(), ..(*first).clone() };
        let placement = if template.ports.is_empty() { Placement::Any } else { Placement::Manager };
        let mut spec = unit(name, template, service.replicas, placement);
        if let Some(lb) = desired.load_balancers.get(&first.name) {
            let backend = format!("{}-{}", desired.project, lb.pool.backend);
            spec.file = Some(balancer_file(&backend, lb.port, &lb.listen));
        }
        out.push(spec);
    }
    out
}

/// Diffs the wanted units against the observed ones.
pub fn plan_units(desired: &DesiredState, wanted: Vec<UnitSpec>, observed: &ObservedUnits) -> UnitPlan {
    let mut actions = Vec::new();
    for network in desired.networks.values() {
        if !observed.networks.contains(&network.name) {
            actions.push(UnitAction { op: UnitOp::CreateNetwork(network.clone()), reason: "missing".into() });
        }
    }
    for unit in &wanted {
        if let Some(action) = unit_action(unit, observed.units.get(&unit.name)) {
            actions.push(action);
        }
    }
    let names: BTreeSet<&str> = wanted.iter().map(|u| u.name.as_str()).collect();
    for seen in observed.units.values().filter(|u| !names.contains(u.name.as_str())) {
        let reason = if wanted.iter().any(|u| u.service == seen.service) {
            "no longer part of the service"
        } else {
            "service removed from the blueprint"
        };
        actions.push(UnitAction { op: UnitOp::Remove(seen.name.clone()), reason: reason.into() });
    }
    for network in observed.networks.iter().filter(|n| !desired.networks.contains_key(*n)) {
        let reason = "network removed from the blueprint".into();
        actions.push(UnitAction { op: UnitOp::RemoveNetwork(network.clone()), reason });
    }
    UnitPlan {
        project: desired.project.clone(),
        actions,
        units: wanted,
        images: desired.images.values().cloned().collect(),
    }
}

/// What to do about one wanted unit, given what the target holds under its name.
fn unit_action(unit: &UnitSpec, seen: Option<&ObservedUnit>) -> Option<UnitAction> {
    let Some(seen) = seen else {
        return Some(UnitAction { op: UnitOp::Create(Box::new(unit.clone())), reason: "missing".into() });
    };
    if seen.hash != unit.hash() {
        let mut changes = match &seen.template {
            Some(old) => container_changes(old, &unit.template),
            None => vec!["created by an older scale (no stored spec)".into()],
        };
        let file_hash = unit.file.as_ref().map(UnitFile::hash);
        if seen.file_hash != file_hash {
            changes.push("load-balancer configuration changed".into());
        }
        if changes.is_empty() {
            changes.push("placement or update policy changed".into());
        }
        if seen.replicas != unit.replicas {
            changes.push(format!("replicas {} → {}", seen.replicas, unit.replicas));
        }
        let reason = format!("{} (rolling update)", changes.join("; "));
        return Some(UnitAction { op: UnitOp::Update(Box::new(unit.clone())), reason });
    }
    (seen.replicas != unit.replicas).then(|| UnitAction {
        op: UnitOp::Scale(Box::new(unit.clone())),
        reason: format!("replicas {} → {}", seen.replicas, unit.replicas),
    })
}

/// The plan as a user reads it, in the words and layout of a plan on one engine.
pub fn render_units(plan: &UnitPlan) -> String {
    let mut out = String::new();
    if !plan.has_changes() {
        let _ = writeln!(out, "No changes: project {} matches the blueprint.", plan.project);
        return out;
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for action in &plan.actions {
        *counts.entry(action.op.verb()).or_default() += 1;
    }
    let summary: Vec<String> = ["create", "update", "scale", "remove"]
        .iter()
        .filter_map(|verb| counts.get(verb).map(|n| format!("{n} to {verb}")))
        .collect();
    let _ = writeln!(out, "Plan for project {} (target swarm): {}", plan.project, summary.join(", "));
    for action in &plan.actions {
        let _ =
            writeln!(out, "  {} {} {}: {}", action.op.symbol(), action.op.verb(), action.op.target(), action.reason);
    }
    out
}

/// The plan as JSON, shaped like a plan on one engine (`format_version`, `changes`, `actions`).
pub fn render_units_json(plan: &UnitPlan) -> serde_json::Value {
    let actions: Vec<serde_json::Value> = plan
        .actions
        .iter()
        .enumerate()
        .map(|(id, a)| serde_json::json!({"id": id, "action": a.op.verb(), "name": a.op.target(), "reason": a.reason}))
        .collect();
    serde_json::json!({
        "format_version": super::render::PLAN_FORMAT_VERSION,
        "project": plan.project,
        "target": "swarm",
        "changes": plan.has_changes(),
        "actions": actions,
    })
}
