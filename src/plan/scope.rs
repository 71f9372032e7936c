//! Narrowing a plan: `apply --only SERVICE` touches one service and what it needs, nothing
//! else; `apply --replace NAME` forces one container's replacement (Terraform's `-replace`).
//! Both are pure rewrites of the planner's inputs, so the plan still says exactly what runs.

use std::collections::{BTreeMap, BTreeSet};

use super::{Plan, PlanError};
use crate::observed::ObservedState;
use crate::spec::{DesiredState, MountSourceSpec};

/// How far a plan reaches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Only this service and its dependencies (transitively; a load balancer's backends too).
    pub only: Option<String>,
    /// Containers (full names) to replace even when nothing about them changed.
    pub replace: BTreeSet<String>,
}

/// A scope that names something the blueprint does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("--only {0}: the blueprint has no service {0} (services: {1})")]
    UnknownService(String, String),
    #[error("--replace {0}: the blueprint has no container {0} (containers: {1})")]
    UnknownContainer(String, String),
    #[error("--replace {0} is outside --only {1}, which touches only {2}")]
    OutsideOnly(String, String, String),
}

impl Scope {
    /// Checks the names against the blueprint; `--replace web-2` may leave out the project.
    pub fn resolve(desired: &DesiredState, only: Option<&str>, replace: &[String]) -> Result<Scope, ScopeError> {
        if let Some(service) = only
            && !desired.services.iter().any(|s| s.name == service)
        {
            let names: Vec<&str> = desired.services.iter().map(|s| s.name.as_str()).collect();
            return Err(ScopeError::UnknownService(service.into(), names.join(", ")));
        }
        let mut names = BTreeSet::new();
        for name in replace {
            let full = format!("{}-{name}", desired.project);
            let found = [name.as_str(), full.as_str()].into_iter().find(|n| desired.containers.contains_key(*n));
            let Some(found) = found else {
                let prefix = format!("{}-", desired.project);
                let known: Vec<&str> =
                    desired.containers.keys().map(|k| k.strip_prefix(&prefix).unwrap_or(k)).collect();
                return Err(ScopeError::UnknownContainer(name.clone(), known.join(", ")));
            };
            if let Some(service) = only {
                let keep = needed_services(desired, service);
                if !keep.contains(&desired.containers[found].service) {
                    let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
                    return Err(ScopeError::OutsideOnly(name.clone(), service.into(), keep.join(", ")));
                }
            }
            names.insert(found.to_string());
        }
        Ok(Scope { only: only.map(str::to_string), replace: names })
    }
}

/// The plan taking `observed` to `desired` within `scope`.
pub fn plan_scoped(desired: &DesiredState, observed: &ObservedState, scope: &Scope) -> Result<Plan, PlanError> {
    match &scope.only {
        None => super::planner::plan_replacing(desired, observed, &scope.replace),
        Some(service) => {
            let (desired, observed) = restrict(desired, observed, service);
            super::planner::plan_replacing(&desired, &observed, &scope.replace)
        }
    }
}

/// `service` and everything it needs: its `depends_on`, and a load balancer's backends.
pub fn needed_services(desired: &DesiredState, service: &str) -> BTreeSet<String> {
    let backends: BTreeMap<&str, &str> = desired
        .load_balancers
        .values()
        .filter_map(|lb| Some((desired.containers.get(&lb.container)?.service.as_str(), lb.pool.backend.as_str())))
        .collect();
    let mut keep = BTreeSet::new();
    let mut todo = vec![service.to_string()];
    while let Some(next) = todo.pop() {
        if !keep.insert(next.clone()) {
            continue;
        }
        if let Some(spec) = desired.services.iter().find(|s| s.name == next) {
            todo.extend(spec.depends_on.iter().map(|(dep, _)| dep.clone()));
        }
        todo.extend(backends.get(next.as_str()).map(|b| b.to_string()));
    }
    keep
}

/// The desired and observed states seen through `--only service`: other services'
/// containers, and networks, volumes and images only they use, are out of sight, so the
/// planner neither creates nor removes them.
fn restrict(desired: &DesiredState, observed: &ObservedState, service: &str) -> (DesiredState, ObservedState) {
    let keep = needed_services(desired, service);
    let mut d = desired.clone();
    d.services.retain(|s| keep.contains(&s.name));
    d.containers.retain(|_, c| keep.contains(&c.service));
    d.load_balancers.retain(|name, _| d.containers.contains_key(name));
    d.images.retain(|reference, _| d.containers.values().any(|c| &c.image == reference));
    d.networks.retain(|name, _| d.containers.values().any(|c| c.networks.iter().any(|n| &n.network == name)));
    let mounted = |c: &crate::spec::ContainerSpec, name: &str| {
        c.mounts.iter().any(|m| matches!(&m.source, MountSourceSpec::Volume(v) if v == name))
    };
    let dropped_volumes: BTreeSet<String> = desired
        .volumes
        .keys()
        .filter(|v| {
            let used_by_others = desired.containers.values().any(|c| !keep.contains(&c.service) && mounted(c, v));
            let used_here = d.containers.values().any(|c| mounted(c, v));
            used_by_others && !used_here
        })
        .cloned()
        .collect();
    d.volumes.retain(|name, _| !dropped_volumes.contains(name));
    let mut o = observed.clone();
    o.containers.retain(|_, c| c.service().is_some_and(|s| keep.contains(s)));
    o.networks.retain(|name, _| d.networks.contains_key(name));
    o.volumes.retain(|name, _| !dropped_volumes.contains(name));
    o.load_balancers.retain(|name, _| o.containers.contains_key(name));
    (d, o)
}
