//! Asking running kinds how they are: each load balancer's pool (HAProxy's runtime API) and
//! each PostgreSQL node's role and replication position. Used by `status` and failover.

use serde::Serialize;

use super::Engine;
use crate::kinds::load_balancer::{ServerState, parse_stat, show_stat};
use crate::kinds::postgres::{NodeStatus, parse_status, status_command};
use crate::observed::{ObservedState, RunState};

/// A load balancer and the state of each server in its pool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolReport {
    pub container: String,
    pub backend: String,
    pub servers: Vec<ServerState>,
    /// Why the pool could not be read, if it could not.
    pub error: Option<String>,
}

/// A PostgreSQL node and what it says about itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeReport {
    pub container: String,
    pub id: String,
    pub service: String,
    /// `None` when the node is not running or did not answer.
    pub status: Option<NodeStatus>,
}

fn running_of_kind(
    observed: &ObservedState,
    kind: crate::model::Kind,
) -> impl Iterator<Item = &crate::observed::ObservedContainer> {
    observed.containers.values().filter(move |c| c.kind() == Some(kind))
}

/// The pool of every running load balancer of the project.
pub async fn balancer_pools<E: Engine>(engine: &E, observed: &ObservedState) -> Vec<PoolReport> {
    let mut out = Vec::new();
    for c in running_of_kind(observed, crate::model::Kind::LoadBalancer).filter(|c| c.state == RunState::Running) {
        let backend = observed.load_balancers.get(&c.name).map(|p| p.backend.clone()).unwrap_or_default();
        let (servers, error) = match engine.exec(&c.id, &c.name, &show_stat()).await {
            Ok(out) if out.exit_code == 0 => (parse_stat(&out.output, &backend), None),
            Ok(out) => (Vec::new(), Some(out.output.trim().to_string())),
            Err(err) => (Vec::new(), Some(err.to_string())),
        };
        out.push(PoolReport { container: c.name.clone(), backend, servers, error });
    }
    out
}

/// Every PostgreSQL node of the project, running or not.
pub async fn database_nodes<E: Engine>(engine: &E, observed: &ObservedState) -> Vec<NodeReport> {
    let mut out = Vec::new();
    for c in running_of_kind(observed, crate::model::Kind::Postgres) {
        let status = if c.state == RunState::Running {
            match engine.exec(&c.id, &c.name, &status_command()).await {
                Ok(out) => parse_status(&out.output),
                Err(_) => None,
            }
        } else {
            None
        };
        out.push(NodeReport {
            container: c.name.clone(),
            id: c.id.clone(),
            service: c.service().unwrap_or_default().to_string(),
            status,
        });
    }
    out
}
