//! Asking running kinds how they are: each load balancer's pool (HAProxy's runtime API), each
//! PostgreSQL node's role and replication position, and each cache's hit counters. Used by
//! `status` and failover.

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

/// A cache (or CDN edge) and its hit counters, as its image's stats command reports them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheReport {
    pub container: String,
    pub service: String,
    /// `None` when the counters could not be read (then `error` says why).
    pub stats: Option<CacheStats>,
    pub error: Option<String>,
}

/// Lookups answered from the cache and lookups that were not, since the cache started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

impl CacheStats {
    /// Hits over all lookups; `None` before the first lookup.
    pub fn hit_ratio(&self) -> Option<f64> {
        let total = self.hits + self.misses;
        (total > 0).then(|| self.hits as f64 / total as f64)
    }
}

/// The last line of a stats command's output that is a `{"hits":…,"misses":…}` object
/// (other fields are ignored).
pub fn parse_cache_stats(output: &str) -> Option<CacheStats> {
    output.lines().rev().find_map(|line| serde_json::from_str(line.trim()).ok())
}

/// The counters of every running container whose image names a stats command
/// ([`labels::STATS`]): a bare command name or path, run without a shell.
pub async fn cache_stats<E: Engine>(engine: &E, observed: &ObservedState) -> Vec<CacheReport> {
    let mut out = Vec::new();
    for c in observed.containers.values().filter(|c| c.state == RunState::Running) {
        let Some(command) = c.labels.get(crate::labels::STATS) else { continue };
        let plain = !command.is_empty() && command.chars().all(|ch| ch.is_ascii_alphanumeric() || "/_.-".contains(ch));
        let (stats, error) = if !plain {
            (None, Some(format!("the image's {} label is not a command name: {command:?}", crate::labels::STATS)))
        } else {
            match engine.exec(&c.id, &c.name, std::slice::from_ref(command)).await {
                Ok(run) if run.exit_code == 0 => match parse_cache_stats(&run.output) {
                    Some(stats) => (Some(stats), None),
                    None => (None, Some(format!("{command} printed no counters: {}", run.output.trim()))),
                },
                Ok(run) => (None, Some(format!("{command} exited {}: {}", run.exit_code, run.output.trim()))),
                Err(err) => (None, Some(err.to_string())),
            }
        };
        out.push(CacheReport {
            container: c.name.clone(),
            service: c.service().unwrap_or_default().to_string(),
            stats,
            error,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_counters_are_read_from_the_last_json_line() {
        let out = "warning: something\n{\"hits\":3,\"grace_hits\":1,\"misses\":1,\"objects\":2}\n";
        let stats = parse_cache_stats(out).expect("counters");
        assert_eq!(stats, CacheStats { hits: 3, misses: 1 });
        assert_eq!(stats.hit_ratio(), Some(0.75));
        assert_eq!(parse_cache_stats("Could not connect to Redis\n"), None);
        assert_eq!(CacheStats { hits: 0, misses: 0 }.hit_ratio(), None, "no lookups yet: no ratio");
    }
}
