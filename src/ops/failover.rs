//! Promoting a replica when a `kind: postgres` primary is lost (or on request): the book's
//! "if the master database goes offline, a slave database will be promoted to be the new
//! master". Steps: pick the most advanced running replica (most WAL received), fence the old
//! primary (its container is removed so it can never come back as a second primary; its data
//! stays in its volume and is set aside when it rejoins as a replica), promote, give the other
//! nodes their replication slots on the new primary, and record the new primary in the engine
//! (a marker volume) so every later plan keeps it.

use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::engine::live::{NodeReport, database_nodes};
use crate::kinds::postgres::{MARKER_SERVICE_LABEL, marker_volume, psql, slot_name};
use crate::observed::{ObservedState, RunState};

/// What a failover did, for the user and for `--output json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FailoverReport {
    pub service: String,
    pub old_primary: Option<String>,
    pub promoted: String,
    pub promoted_node: u32,
    /// WAL position of the promoted node when it was chosen.
    pub promoted_lsn: Option<String>,
    /// How far behind the old primary the promoted node was at its last report, when known
    /// (asynchronous replication can lose that much).
    pub lag_bytes: Option<u64>,
    pub other_replicas: Vec<String>,
}

/// Why a failover could not happen.
#[derive(Debug, thiserror::Error)]
pub enum FailoverError {
    #[error("service {0} has no PostgreSQL nodes in this project")]
    NoSuchService(String),
    #[error("no running replica of {0} to promote")]
    NoCandidate(String),
    /// The engine's own error, as it is: `transparent`, so that printing the chain does not
    /// repeat it (it is both this error's text and its source otherwise).
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error("promoting {name} failed: {reason}")]
    Promote { name: String, reason: String },
}

impl FailoverError {
    /// Whether the engine failed (rather than the project having nothing to promote).
    pub fn is_engine(&self) -> bool {
        matches!(self, FailoverError::Engine(_))
    }

    /// What the user should do about it: an engine error's own hint (the error is
    /// transparent, so callers looking for an `EngineError` in the chain would not find it).
    pub fn hint(&self) -> Option<String> {
        match self {
            FailoverError::Engine(err) => err.hint(),
            _ => None,
        }
    }
}

/// The replica to promote: the one that received the most WAL (ties: the lowest node).
pub fn choose(nodes: &[NodeReport]) -> Option<&NodeReport> {
    nodes.iter().filter(|n| n.status.as_ref().is_some_and(|s| s.role == "replica")).max_by_key(|n| {
        let s = n.status.as_ref().expect("filtered");
        (s.receive_lsn_bytes.or(s.lsn_bytes).unwrap_or(0), std::cmp::Reverse(n.container.clone()))
    })
}

/// Why no service to fail over could be picked from the project.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("project {0} has no kind: postgres service")]
    None(String),
    #[error("project {project} has several postgres services ({}); name one", .services.join(", "))]
    Several { project: String, services: Vec<String> },
}

/// The service to fail over: the one asked for, else the project's only `kind: postgres`
/// service.
pub fn target_service(observed: &ObservedState, requested: Option<&str>) -> Result<String, TargetError> {
    if let Some(service) = requested {
        return Ok(service.to_string());
    }
    // A set, not `dedup`: containers come in name order, which interleaves services whose
    // names share a prefix (`shop-db-1`, `shop-db-1-1`, `shop-db-2`).
    let services: std::collections::BTreeSet<String> = observed
        .containers
        .values()
        .filter(|c| c.kind() == Some(crate::model::Kind::Postgres))
        .filter_map(|c| c.service().map(str::to_string))
        .collect();
    let services: Vec<String> = services.into_iter().collect();
    match services.as_slice() {
        [only] => Ok(only.clone()),
        [] => Err(TargetError::None(observed.project.clone())),
        _ => Err(TargetError::Several { project: observed.project.clone(), services }),
    }
}

/// Why `scale failover` could not promote anything.
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error("cannot read the project's state")]
    Observe(#[source] crate::engine::EngineError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Failover(#[from] FailoverError),
}

/// Observes `project`, picks the service (`requested`, else the only postgres one) and fails
/// it over: the promotion `scale failover` runs under the project lock.
pub async fn promote<E: Engine>(
    engine: &E,
    project: &str,
    requested: Option<&str>,
    say: &(dyn Fn(&str) + Sync),
) -> Result<FailoverReport, PromoteError> {
    let observed = crate::engine::observe_project(engine, project).await.map_err(PromoteError::Observe)?;
    let service = target_service(&observed, requested)?;
    Ok(failover(engine, &observed, &service, say).await?)
}

/// Fails `service` over to its most advanced replica. `observed` must be fresh.
pub async fn failover<E: Engine>(
    engine: &E,
    observed: &ObservedState,
    service: &str,
    say: &(dyn Fn(&str) + Sync),
) -> Result<FailoverReport, FailoverError> {
    let nodes: Vec<NodeReport> =
        database_nodes(engine, observed).await.into_iter().filter(|n| n.service == service).collect();
    if nodes.is_empty() {
        return Err(FailoverError::NoSuchService(service.to_string()));
    }
    let marked = observed.primaries().get(service).map(|(n, _)| *n).unwrap_or(1);
    let old_primary = nodes.iter().find(|n| n.status.as_ref().is_some_and(|s| s.role == "primary")).or_else(|| {
        nodes.iter().find(|n| observed.containers.get(&n.container).and_then(|c| c.replica()) == Some(marked))
    });
    let candidate = choose(&nodes).ok_or_else(|| FailoverError::NoCandidate(service.to_string()))?.clone();
    let candidate_node = observed.containers.get(&candidate.container).and_then(|c| c.replica()).unwrap_or(0);
    let status = candidate.status.clone().unwrap_or_else(|| unreachable!("choose() only returns nodes with a status"));
    say(&format!(
        "promoting {} (received WAL up to {}, {} bytes behind at its last report)",
        candidate.container,
        status.lsn.as_deref().unwrap_or("?"),
        status.lag_bytes.unwrap_or(0)
    ));

    // Fence: the old primary must never serve writes again. Removing its container (not its
    // volume) means no restart policy, `docker start` or plan can bring it back as it was.
    if let Some(old) = old_primary.filter(|o| o.container != candidate.container)
        && let Some(c) = observed.containers.get(&old.container)
    {
        if matches!(c.state, RunState::Running | RunState::Paused | RunState::Restarting) {
            let _ = engine.stop_container(&c.id, &c.name, Duration::from_secs(5)).await;
        }
        engine.remove_container(&c.id, &c.name).await?;
        say(&format!("fenced the old primary {}: container removed, its data kept in its volume", c.name));
    }

    let synchronous = observed.containers.values().any(|c| {
        c.service() == Some(service)
            && c.spec().is_some_and(|s| s.env.get("SCALE_PG_SYNCHRONOUS").map(String::as_str) == Some("true"))
    });
    promote_and_wait(engine, &candidate).await?;
    say(&format!("{} is the primary now", candidate.container));
    if synchronous {
        keep_synchronous(engine, &candidate).await?;
    }
    move_aliases(engine, observed, service, &candidate, synchronous, say).await?;

    let others = create_slots(engine, observed, service, &candidate, candidate_node).await?;
    record_primary(engine, observed, service, candidate_node).await?;
    Ok(FailoverReport {
        service: service.to_string(),
        old_primary: old_primary.map(|o| o.container.clone()),
        promoted: candidate.container.clone(),
        promoted_node: candidate_node,
        promoted_lsn: status.lsn.clone(),
        lag_bytes: status.lag_bytes,
        other_replicas: others,
    })
}

/// Promotes `candidate` and waits (up to 30 s) until it has left recovery.
async fn promote_and_wait<E: Engine>(engine: &E, candidate: &NodeReport) -> Result<(), FailoverError> {
    let promote = engine
        .exec(&candidate.id, &candidate.container, &psql("SELECT pg_promote(true, 60)"))
        .await
        .map_err(|e| FailoverError::Promote { name: candidate.container.clone(), reason: e.to_string() })?;
    if promote.exit_code != 0 || promote.output.trim() != "t" {
        return Err(FailoverError::Promote {
            name: candidate.container.clone(),
            reason: promote.output.trim().to_string(),
        });
    }
    let started = Instant::now();
    loop {
        let out = engine.exec(&candidate.id, &candidate.container, &psql("SELECT pg_is_in_recovery()")).await?;
        if out.output.trim() == "f" {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(FailoverError::Promote {
                name: candidate.container.clone(),
                reason: "still in recovery 30 s after pg_promote()".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// A synchronous service stays synchronous on the promoted node, which was started as a
/// replica (its start-up configuration names no synchronous standby): set in the data
/// directory (`ALTER SYSTEM`), so it holds across restarts of the node too.
async fn keep_synchronous<E: Engine>(engine: &E, candidate: &NodeReport) -> Result<(), FailoverError> {
    for sql in ["ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (*)'", "SELECT pg_reload_conf()"] {
        let out = engine.exec(&candidate.id, &candidate.container, &psql(sql)).await?;
        if out.exit_code != 0 {
            return Err(FailoverError::Promote {
                name: candidate.container.clone(),
                reason: format!("keeping it synchronous: {}", out.output.trim()),
            });
        }
    }
    Ok(())
}

/// Gives the promoted node the primary's aliases (`<svc>`, `<svc>-primary`) in place, network
/// by network (disconnect, connect with the new aliases), so clients reach it as soon as the
/// failover returns, and the next apply, which finds it differing only in role, leaves it be.
async fn move_aliases<E: Engine>(
    engine: &E,
    observed: &ObservedState,
    service: &str,
    candidate: &NodeReport,
    synchronous: bool,
    say: &(dyn Fn(&str) + Sync),
) -> Result<(), FailoverError> {
    let Some(c) = observed.containers.get(&candidate.container) else { return Ok(()) };
    let Some(mut spec) = c.spec() else { return Ok(()) };
    crate::kinds::postgres::set_role(&mut spec, &observed.project, service, true, synchronous);
    for n in &spec.networks {
        // Not attached (cut off by chaos) is fine: the connect below attaches it.
        let _ = engine.disconnect(&c.id, &c.name, &n.network).await;
        engine.connect(&c.id, &c.name, &n.network, &n.aliases).await?;
    }
    let aliases = spec.networks.first().map(|n| n.aliases.join(", ")).unwrap_or_default();
    say(&format!("{} answers as {aliases} now", c.name));
    Ok(())
}

/// Gives every other node of `service` its slot on the new primary (the nodes it names),
/// and drops the primary's own former slot.
async fn create_slots<E: Engine>(
    engine: &E,
    observed: &ObservedState,
    service: &str,
    candidate: &NodeReport,
    candidate_node: u32,
) -> Result<Vec<String>, FailoverError> {
    let project = &observed.project;
    // Every other node (the old primary included, once it rejoins as a replica) streams
    // through its own slot; slots are not copied by replication, so make them here.
    let mut others = Vec::new();
    for c in observed.containers.values().filter(|c| c.service() == Some(service) && c.name != candidate.container) {
        let Some(n) = c.replica() else { continue };
        let slot = slot_name(project, service, n);
        let sql = format!(
            "SELECT count(pg_create_physical_replication_slot('{slot}')) \
             WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '{slot}')"
        );
        engine.exec(&candidate.id, &candidate.container, &psql(&sql)).await?;
        others.push(c.name.clone());
    }
    // The primary's own slot name must not linger on it as if it were a replica.
    let own = slot_name(project, service, candidate_node);
    let drop = format!(
        "SELECT pg_drop_replication_slot('{own}') FROM pg_replication_slots WHERE slot_name = '{own}' AND NOT active"
    );
    let _ = engine.exec(&candidate.id, &candidate.container, &psql(&drop)).await;

    Ok(others)
}

/// Records `node` as the primary of `service` in a marker volume, replacing older markers.
async fn record_primary<E: Engine>(
    engine: &E,
    observed: &ObservedState,
    service: &str,
    candidate_node: u32,
) -> Result<(), FailoverError> {
    let project = &observed.project;
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let marker = marker_volume(project, service, candidate_node, since);
    engine.create_volume(&marker).await?;
    for v in observed.volumes.values() {
        if v.labels.get(MARKER_SERVICE_LABEL).map(String::as_str) == Some(service) && v.name != marker.name {
            engine.remove_volume(&v.name).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::postgres::NodeStatus;

    fn with_postgres_containers(names: &[(&str, &str)]) -> ObservedState {
        let containers = names
            .iter()
            .map(|(name, service)| {
                let labels = [(crate::labels::SERVICE, *service), (crate::labels::KIND, "postgres")]
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .into();
                let c = crate::observed::ObservedContainer {
                    id: name.to_string(),
                    name: name.to_string(),
                    labels,
                    image: "pg".into(),
                    state: RunState::Running,
                    health: None,
                    exit_code: None,
                    ports: vec![],
                    networks: vec![],
                };
                (name.to_string(), c)
            })
            .collect();
        ObservedState { project: "shop".into(), containers, ..Default::default() }
    }

    #[test]
    fn several_postgres_services_are_each_named_once() {
        // Container names sort db, db-1, db: services `db` and `db-1` interleave.
        let observed = with_postgres_containers(&[("shop-db-1", "db"), ("shop-db-1-1", "db-1"), ("shop-db-2", "db")]);
        let err = target_service(&observed, None).unwrap_err();
        assert_eq!(err.to_string(), "project shop has several postgres services (db, db-1); name one");
        assert_eq!(target_service(&observed, Some("db-1")), Ok("db-1".to_string()));
    }

    #[test]
    fn the_only_postgres_service_is_the_default_and_none_is_an_error() {
        let one = with_postgres_containers(&[("shop-db-1", "db"), ("shop-db-2", "db")]);
        assert_eq!(target_service(&one, None), Ok("db".to_string()));
        let none = with_postgres_containers(&[]);
        assert_eq!(target_service(&none, None).unwrap_err().to_string(), "project shop has no kind: postgres service");
    }

    fn node(name: &str, role: &str, received: u64) -> NodeReport {
        NodeReport {
            container: name.into(),
            id: name.into(),
            service: "db".into(),
            status: Some(NodeStatus {
                role: role.into(),
                timeline: Some(1),
                lsn: None,
                lsn_bytes: Some(received / 2),
                receive_lsn_bytes: Some(received),
                lag_bytes: None,
                lag_seconds: None,
                streaming: Some(true),
            }),
        }
    }

    #[test]
    fn the_replica_with_the_most_wal_is_promoted() {
        let nodes = vec![
            node("shop-db-1", "primary", 900),
            node("shop-db-2", "replica", 500),
            node("shop-db-3", "replica", 700),
        ];
        assert_eq!(choose(&nodes).unwrap().container, "shop-db-3");
        let tie = vec![node("shop-db-2", "replica", 700), node("shop-db-3", "replica", 700)];
        assert_eq!(choose(&tie).unwrap().container, "shop-db-2");
        assert!(choose(&[node("shop-db-1", "primary", 1)]).is_none());
    }
}

#[cfg(test)]
mod error_tests {
    use super::FailoverError;
    use crate::engine::{Cause, EngineError};

    /// `main` prints errors with `{:#}` (each cause after a colon): an engine error inside a
    /// failover error must appear once, not once as the failover's text and again as its cause.
    #[test]
    fn an_engine_error_is_printed_once() {
        let engine = EngineError::Exec {
            name: "shop-db-2".into(),
            command: "pg_ctl promote".into(),
            cause: Cause::Status { code: 409, message: "container is not running".into() },
        };
        let printed = format!("{:#}", anyhow::Error::from(FailoverError::from(engine)));
        assert_eq!(printed.matches("container is not running").count(), 1, "{printed}");
        assert_eq!(printed, "cannot run `pg_ctl promote` in shop-db-2: container is not running");
    }

    #[test]
    fn an_engine_errors_hint_survives_the_wrapping() {
        let engine = EngineError::PortInUse { name: "shop-db-2".into(), port: "5432".into() };
        let hint = engine.hint();
        assert!(hint.is_some());
        assert_eq!(FailoverError::from(engine).hint(), hint);
        assert_eq!(FailoverError::NoCandidate("db".into()).hint(), None);
    }
}
