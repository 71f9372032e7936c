//! Asking running kinds how they are: each load balancer's pool (HAProxy's runtime API), each
//! PostgreSQL node's role and replication position, each cache's hit counters and each
//! queue's depth and consumers. Used by `status`, failover and the autoscaler.

use std::collections::BTreeMap;

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

/// The replicas of each `kind: postgres` service that cannot stream because the WAL they
/// need is gone from the primary (their slot was dropped, or the WAL outlived
/// `wal_keep_size`), with why. One query on each running primary; a replica whose slot is
/// active streams and is not asked. A replica that is merely behind (its WAL is still there)
/// is not stale: it catches up by itself.
pub async fn stale_replicas<E: Engine>(engine: &E, observed: &ObservedState) -> BTreeMap<String, String> {
    use crate::kinds::postgres::{psql, slot_name};
    let mut stale = BTreeMap::new();
    let primaries = observed.primaries();
    let nodes: Vec<_> = running_of_kind(observed, crate::model::Kind::Postgres)
        .filter(|c| c.state == RunState::Running && !c.name.ends_with(crate::plan::TEMP_SUFFIX))
        .collect();
    for primary in &nodes {
        let (Some(service), Some(n)) = (primary.service(), primary.replica()) else { continue };
        if primaries.get(service).map_or(1, |(p, _)| *p) != n {
            continue;
        }
        let active = match engine.exec(&primary.id, &primary.name, &psql(ACTIVE_SLOTS)).await {
            Ok(out) if out.exit_code == 0 => out.output,
            _ => continue,
        };
        for replica in nodes.iter().filter(|c| c.service() == Some(service) && c.name != primary.name) {
            let Some(m) = replica.replica() else { continue };
            if active.lines().any(|l| l.trim() == slot_name(&observed.project, service, m)) {
                continue;
            }
            let Ok(out) = engine.exec(&replica.id, &replica.name, &status_command()).await else { continue };
            let Some(status) = parse_status(&out.output) else { continue };
            let Some(lsn) = status.lsn.filter(|l| is_lsn(l)) else { continue };
            if status.role != "replica" || status.streaming == Some(true) {
                continue;
            }
            let gone = format!(
                "SELECT '{lsn}'::pg_lsn < pg_current_wal_lsn() AND NOT EXISTS \
                 (SELECT 1 FROM pg_ls_waldir() WHERE name = pg_walfile_name('{lsn}'::pg_lsn))"
            );
            if let Ok(out) = engine.exec(&primary.id, &primary.name, &psql(&gone)).await
                && out.output.trim() == "t"
            {
                let why =
                    format!("cannot stream: the WAL it needs (from {lsn}) is gone from the primary {}", primary.name);
                stale.insert(replica.name.clone(), why);
            }
        }
    }
    stale
}

/// The replication slots a replica streams through right now, one per line.
const ACTIVE_SLOTS: &str = "SELECT slot_name FROM pg_replication_slots WHERE active";

/// `0/3000148`: what a WAL position looks like (and nothing that could change a query).
fn is_lsn(text: &str) -> bool {
    let mut parts = text.split('/');
    let hex =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.len() <= 8 && p.chars().all(|c| c.is_ascii_hexdigit()));
    hex(parts.next()) && hex(parts.next()) && parts.next().is_none()
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
/// ([`labels::STATS`](crate::labels::STATS)).
pub async fn cache_stats<E: Engine>(engine: &E, observed: &ObservedState) -> Vec<CacheReport> {
    let mut out = Vec::new();
    for (c, command) in labelled(observed, crate::labels::STATS) {
        let (stats, error) = match run_labelled(engine, c, crate::labels::STATS, command).await {
            Ok(output) => match parse_cache_stats(&output) {
                Some(stats) => (Some(stats), None),
                None => (None, Some(format!("{command} printed no counters: {}", output.trim()))),
            },
            Err(why) => (None, Some(why)),
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

/// A queue and what its image's queue command says about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueReport {
    pub container: String,
    pub service: String,
    /// `None` when the queue could not be read (then `error` says why).
    pub stats: Option<QueueStats>,
    pub error: Option<String>,
}

/// A queue's state at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct QueueStats {
    /// Messages not yet acknowledged: waiting plus in flight (what `metric: queue_depth`
    /// autoscaling divides by the workers).
    pub depth: u64,
    /// Of those, handed to a consumer and not acknowledged yet.
    pub pending: u64,
    /// Consumers that asked for work recently.
    pub consumers: u64,
}

/// The last line of a queue command's output that is a `{"depth":…,"pending":…,"consumers":…}`
/// object (other fields are ignored).
pub fn parse_queue_stats(output: &str) -> Option<QueueStats> {
    output.lines().rev().find_map(|line| serde_json::from_str(line.trim()).ok())
}

/// The state of every running container whose image names a queue command
/// ([`labels::QUEUE`](crate::labels::QUEUE)).
pub async fn queue_stats<E: Engine>(engine: &E, observed: &ObservedState) -> Vec<QueueReport> {
    let mut out = Vec::new();
    for (c, command) in labelled(observed, crate::labels::QUEUE) {
        let (stats, error) = match run_labelled(engine, c, crate::labels::QUEUE, command).await {
            Ok(output) => match parse_queue_stats(&output) {
                Some(stats) => (Some(stats), None),
                None => (None, Some(format!("{command} printed no queue state: {}", output.trim()))),
            },
            Err(why) => (None, Some(why)),
        };
        out.push(QueueReport {
            container: c.name.clone(),
            service: c.service().unwrap_or_default().to_string(),
            stats,
            error,
        });
    }
    out
}

/// The running containers whose (image's) `label` names a command, with the command.
fn labelled<'o>(
    observed: &'o ObservedState,
    label: &'o str,
) -> impl Iterator<Item = (&'o crate::observed::ObservedContainer, &'o String)> {
    observed
        .containers
        .values()
        .filter(|c| c.state == RunState::Running)
        .filter_map(move |c| c.labels.get(label).map(|command| (c, command)))
}

/// Runs the command an image's `label` names (a bare command name or path, run without a
/// shell): its output, or why there is none.
async fn run_labelled<E: Engine>(
    engine: &E,
    c: &crate::observed::ObservedContainer,
    label: &str,
    command: &str,
) -> Result<String, String> {
    let plain = !command.is_empty() && command.chars().all(|ch| ch.is_ascii_alphanumeric() || "/_.-".contains(ch));
    if !plain {
        return Err(format!("the image's {label} label is not a command name: {command:?}"));
    }
    match engine.exec(&c.id, &c.name, &[command.to_string()]).await {
        Ok(run) if run.exit_code == 0 => Ok(run.output),
        Ok(run) => Err(format!("{command} exited {}: {}", run.exit_code, run.output.trim())),
        Err(err) => Err(err.to_string()),
    }
}

/// Where the users are, for a plan that reshards them: one `psql` on the running primary of
/// each `kind: postgres` service (rows per bucket, and the shard map where there is one).
/// `None` when no primary runs (nothing to read, so nothing to move).
pub async fn shards<E: Engine>(engine: &E, observed: &ObservedState) -> Option<crate::observed::ObservedShards> {
    use crate::kinds::shards::{parse_shard_output, shard_query};
    let primaries = observed.primaries();
    let mut out = crate::observed::ObservedShards::default();
    let mut asked = false;
    for c in running_of_kind(observed, crate::model::Kind::Postgres)
        .filter(|c| c.state == RunState::Running && !c.name.ends_with(crate::plan::TEMP_SUFFIX))
    {
        let (Some(service), Some(n)) = (c.service(), c.replica()) else { continue };
        if primaries.get(service).map_or(1, |(p, _)| *p) != n {
            continue;
        }
        let database = c.spec().and_then(|s| s.env.get("POSTGRES_DB").cloned()).unwrap_or_else(|| "app".into());
        let Ok(answer) = engine.exec(&c.id, &c.name, &shard_query(&database)).await else { continue };
        asked = true;
        let (rows, map) = parse_shard_output(&answer.output);
        if !rows.is_empty() {
            out.rows.insert(service.to_string(), rows);
        }
        if let Some(map) = map {
            out.map = Some((service.to_string(), map));
        }
    }
    asked.then_some(out)
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

    #[test]
    fn queue_state_is_read_from_the_last_json_line() {
        let out = "Warning: something\n{\"depth\":12,\"pending\":2,\"consumers\":3}\n";
        assert_eq!(parse_queue_stats(out), Some(QueueStats { depth: 12, pending: 2, consumers: 3 }));
        assert_eq!(parse_queue_stats("Could not connect to Redis\n"), None);
        assert_eq!(parse_cache_stats("{\"depth\":1,\"pending\":0,\"consumers\":1}"), None, "not a cache's counters");
    }

    #[test]
    fn only_wal_positions_reach_the_query() {
        assert!(super::is_lsn("0/3000148") && super::is_lsn("1A/FF"));
        for bad in ["", "0/", "/1", "0/1/2", "0/1'; DROP TABLE x; --", "123456789/0"] {
            assert!(!super::is_lsn(bad), "{bad}");
        }
    }
}
