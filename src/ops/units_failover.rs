//! `scale failover` on an orchestrator target (Swarm): the same promotion as on one engine
//! (the replica that received the most WAL, the old primary fenced, slots for the others, a
//! marker recording the new primary), with the orchestrator's own means for what a container
//! cannot do there. A database node is a one-replica service pinned to its cluster node, and
//! its role lives in the service's spec, which (unlike a container's) can change:
//!
//! - the old primary is fenced by giving its service the replica's spec: Swarm stops its task,
//!   or, when its node is lost, keeps the replica spec pending there, so the node that comes
//!   back starts it as a replica (its entrypoint sets the old data aside and re-seeds) and
//!   never as a second primary;
//! - the promoted node's service gets the primary's spec, aliases (`db`, `db-primary`) and
//!   role variables, after `pg_promote()`: Swarm restarts its task on the same node with the
//!   same volume, and the next plan finds exactly that spec (no change).
//!
//! Nothing is ever placed on another node: a database node's data is where its node is.

use std::time::{Duration, Instant};

use super::failover::{FailoverReport, TargetError, choose};
use super::units::{UnitOptions, wait_converged};
use crate::engine::live::NodeReport;
use crate::engine::orchestrator::{Orchestrator, OrchestratorError};
use crate::kinds::postgres::{marker_volume, parse_status, psql, slot_name, status_command};
use crate::labels::MARKER_SERVICE_LABEL;
use crate::model::Kind;
use crate::plan::units::{ObservedUnits, Placement, UnitSpec, role_of, with_role};

/// Why a failover on an orchestrator could not happen.
#[derive(Debug, thiserror::Error)]
pub enum UnitFailoverError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("service {0} has no database nodes scale can read on this target; apply the blueprint again first")]
    NoSuchService(String),
    #[error("no running replica of {0} to promote")]
    NoCandidate(String),
    #[error("promoting {name} failed: {reason}")]
    Promote { name: String, reason: String },
    #[error(transparent)]
    Orchestrator(#[from] OrchestratorError),
}

/// The service to fail over: the one asked for, else the project's only postgres one.
fn unit_service(observed: &ObservedUnits, project: &str, requested: Option<&str>) -> Result<String, TargetError> {
    if let Some(service) = requested {
        return Ok(service.to_string());
    }
    let services: std::collections::BTreeSet<String> = observed
        .units
        .values()
        .filter_map(|u| u.unit.as_ref())
        .filter(|u| u.kind == Some(Kind::Postgres))
        .map(|u| u.service.clone())
        .collect();
    let services: Vec<String> = services.into_iter().collect();
    match services.as_slice() {
        [only] => Ok(only.clone()),
        [] => Err(TargetError::None(project.to_string())),
        _ => Err(TargetError::Several { project: project.to_string(), services }),
    }
}

/// Each database node's replication state, read in its running task (`None`: no task runs
/// on a node scale reaches, or it did not answer).
async fn statuses<O: Orchestrator>(target: &O, units: &[UnitSpec]) -> Vec<NodeReport> {
    let mut out = Vec::new();
    for unit in units {
        let status = match target.exec_in_unit(&unit.name, &status_command()).await {
            Ok(Some(run)) => parse_status(&run.output),
            _ => None,
        };
        out.push(NodeReport {
            container: unit.name.clone(),
            id: unit.name.clone(),
            service: unit.service.clone(),
            status,
        });
    }
    out
}

fn node_of(unit: &UnitSpec) -> u32 {
    match unit.placement {
        Placement::Node(n) => n,
        _ => 0,
    }
}

/// Runs one SQL statement as the superuser in `unit`'s task; its output.
async fn sql<O: Orchestrator>(target: &O, unit: &str, statement: &str) -> Result<String, UnitFailoverError> {
    let promote_error = |reason: String| UnitFailoverError::Promote { name: unit.to_string(), reason };
    let run = target
        .exec_in_unit(unit, &psql(statement))
        .await?
        .ok_or_else(|| promote_error("its task is not running".into()))?;
    if run.exit_code != 0 {
        return Err(promote_error(format!("`{statement}`: {}", run.output.trim())));
    }
    Ok(run.output.trim().to_string())
}

/// Fails the project's postgres service (`requested`, else its only one) over on the
/// orchestrator: fence, promote, slots, marker, then the promoted node's service gets the
/// primary's spec and is waited for (writes succeed once this returns).
pub async fn failover_units<O: Orchestrator>(
    target: &O,
    project: &str,
    requested: Option<&str>,
    opts: UnitOptions,
    say: &(dyn Fn(&str) + Sync),
) -> Result<FailoverReport, UnitFailoverError> {
    let observed = target.observe_units(project).await?;
    let service = unit_service(&observed, project, requested)?;
    let units: Vec<UnitSpec> = observed
        .units
        .values()
        .filter_map(|u| u.unit.clone())
        .filter(|u| u.service == service && u.kind == Some(Kind::Postgres))
        .collect();
    if units.is_empty() {
        return Err(UnitFailoverError::NoSuchService(service));
    }
    let synchronous = units.iter().any(|u| u.template.env.get("SCALE_PG_SYNCHRONOUS").is_some_and(|v| v == "true"));
    let mut reports = statuses(target, &units).await;
    if choose(&reports).is_none() {
        return Err(UnitFailoverError::NoCandidate(service));
    }
    let reported_primary = reports.iter().find(|r| r.status.as_ref().is_some_and(|s| s.role == "primary"));
    let old = reported_primary
        .and_then(|r| units.iter().find(|u| u.name == r.container))
        .or_else(|| units.iter().find(|u| role_of(u) == Some("primary")))
        .cloned();
    if let Some(old) = &old {
        let alive = reported_primary.is_some_and(|r| r.container == old.name);
        fence(target, project, old, synchronous, alive, say).await?;
        if alive {
            // It may have taken writes since the first reading: read again.
            reports = statuses(target, &units).await;
        }
    }
    let candidate = choose(&reports).ok_or_else(|| UnitFailoverError::NoCandidate(service.clone()))?.clone();
    let unit = units.iter().find(|u| u.name == candidate.container).expect("a report per unit").clone();
    let status = candidate.status.clone().unwrap_or_else(|| unreachable!("choose() only returns nodes with a status"));
    say(&format!(
        "promoting {} (received WAL up to {}, {} bytes behind at its last report)",
        unit.name,
        status.lsn.as_deref().unwrap_or("?"),
        status.lag_bytes.unwrap_or(0)
    ));
    promote_and_wait(target, &unit.name).await?;
    say(&format!("{} is the primary now", unit.name));
    let others = create_slots(target, project, &units, &unit).await?;
    if synchronous {
        for statement in ["ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (*)'", "SELECT pg_reload_conf()"] {
            sql(target, &unit.name, statement).await?;
        }
    }
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let marker = marker_volume(project, &service, node_of(&unit), since);
    let older: Vec<String> = observed
        .markers
        .iter()
        .filter(|(_, labels)| labels.get(MARKER_SERVICE_LABEL) == Some(&service))
        .map(|(name, _)| name.clone())
        .collect();
    target.record_marker(&marker, &older).await?;
    respec_primary(target, project, &unit, synchronous, opts, say).await?;
    reconnect_replicas(target, &units, &unit, say).await;
    Ok(FailoverReport {
        service,
        old_primary: old.map(|o| o.name),
        promoted: unit.name.clone(),
        promoted_node: node_of(&unit),
        promoted_lsn: status.lsn.clone(),
        lag_bytes: status.lag_bytes,
        other_replicas: others,
    })
}

/// Gives the old primary's service the replica's spec. When its task still runs (`alive`),
/// waits (up to 60 s) until Swarm has stopped it, so it takes no write after the candidate
/// is chosen; a lost node's task is not waited for.
async fn fence<O: Orchestrator>(
    target: &O,
    project: &str,
    old: &UnitSpec,
    synchronous: bool,
    alive: bool,
    say: &(dyn Fn(&str) + Sync),
) -> Result<(), UnitFailoverError> {
    let fenced = with_role(old, project, false, synchronous);
    if fenced.hash() == old.hash() && !alive {
        return Ok(());
    }
    let image = target.unit_image(&old.name).await?.unwrap_or_else(|| old.template.image.clone());
    target.put_unit(&fenced, &image, project).await?;
    say(&format!(
        "fenced the old primary {}: its service now runs it as a replica (when it starts again its old data is set \
         aside in its volume and it re-seeds from the new primary)",
        old.name
    ));
    if !alive {
        return Ok(());
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let seen = target.unit_progress(&fenced.name, &fenced.hash()).await?;
        if seen.stale == 0 || seen.down_node.is_some() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    say(&format!("{}: its old task was still stopping after 60 s; promoting anyway", old.name));
    Ok(())
}

/// Promotes the unit's PostgreSQL and waits (up to 30 s) until it has left recovery.
async fn promote_and_wait<O: Orchestrator>(target: &O, name: &str) -> Result<(), UnitFailoverError> {
    let out = sql(target, name, "SELECT pg_promote(true, 60)").await?;
    if out != "t" {
        return Err(UnitFailoverError::Promote { name: name.to_string(), reason: out });
    }
    let started = Instant::now();
    while sql(target, name, "SELECT pg_is_in_recovery()").await? != "f" {
        if started.elapsed() > Duration::from_secs(30) {
            let reason = "still in recovery 30 s after pg_promote()".to_string();
            return Err(UnitFailoverError::Promote { name: name.to_string(), reason });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Every other node's slot on the new primary (slots are not replicated), and the primary's
/// own former slot dropped.
async fn create_slots<O: Orchestrator>(
    target: &O,
    project: &str,
    units: &[UnitSpec],
    primary: &UnitSpec,
) -> Result<Vec<String>, UnitFailoverError> {
    let mut others = Vec::new();
    for unit in units.iter().filter(|u| u.name != primary.name) {
        let slot = slot_name(project, &unit.service, node_of(unit));
        let statement = format!(
            "SELECT count(pg_create_physical_replication_slot('{slot}')) \
             WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '{slot}')"
        );
        sql(target, &primary.name, &statement).await?;
        others.push(unit.name.clone());
    }
    let own = slot_name(project, &primary.service, node_of(primary));
    let drop = format!(
        "SELECT pg_drop_replication_slot('{own}') FROM pg_replication_slots WHERE slot_name = '{own}' AND NOT active"
    );
    let _ = sql(target, &primary.name, &drop).await;
    Ok(others)
}

/// The SQL that says how a node's WAL receiver stands (`streaming`, `starting`, …; `none`).
const RECEIVER_STATUS: &str = "SELECT coalesce((SELECT status FROM pg_stat_wal_receiver), 'none')";

/// Ends a node's WAL receiver (the startup process starts a new one a second later).
const RECEIVER_RESTART: &str = "pid=$(psql -X -At -U postgres -d postgres -c \
    \"SELECT pid FROM pg_stat_activity WHERE backend_type = 'walreceiver'\") && [ -n \"$pid\" ] && kill -TERM $pid; true";

/// Makes every other running replica stream from the new primary. On Swarm a lost node's DNS
/// records outlive it by seconds, so a WAL receiver that reconnected meanwhile may be stuck
/// connecting to the lost primary's address, where nothing answers: it waits out TCP's
/// retries (libpq's `connect_timeout` does not apply to it), up to two minutes, and with
/// synchronous replication no commit is acknowledged all that time. A receiver not streaming
/// is restarted (it looks the name up again) until all stream, for at most 60 s.
async fn reconnect_replicas<O: Orchestrator>(
    target: &O,
    units: &[UnitSpec],
    primary: &UnitSpec,
    say: &(dyn Fn(&str) + Sync),
) {
    let started = Instant::now();
    loop {
        let mut waiting = Vec::new();
        for unit in units.iter().filter(|u| u.name != primary.name) {
            let status = match target.exec_in_unit(&unit.name, &psql(RECEIVER_STATUS)).await {
                Ok(Some(run)) if run.exit_code == 0 => run.output.trim().to_string(),
                _ => continue, // not running (its node may be lost): nothing to reconnect
            };
            if status != "streaming" {
                let restart = ["bash".to_string(), "-c".to_string(), RECEIVER_RESTART.to_string()];
                let _ = target.exec_in_unit(&unit.name, &restart).await;
                waiting.push(unit.name.clone());
            }
        }
        if waiting.is_empty() {
            return;
        }
        if started.elapsed() > Duration::from_secs(60) {
            say(&format!("{} not streaming from {} yet; they keep trying", waiting.join(", "), primary.name));
            return;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

/// The promoted node's service gets the primary's spec (its aliases and role variables): Swarm
/// restarts its task on the same node and volume, now started as the primary. Waited for.
async fn respec_primary<O: Orchestrator>(
    target: &O,
    project: &str,
    unit: &UnitSpec,
    synchronous: bool,
    opts: UnitOptions,
    say: &(dyn Fn(&str) + Sync),
) -> Result<(), UnitFailoverError> {
    let primary = with_role(unit, project, true, synchronous);
    let image = target.unit_image(&unit.name).await?.unwrap_or_else(|| unit.template.image.clone());
    target.put_unit(&primary, &image, project).await?;
    wait_converged(target, &primary, opts).await?;
    let aliases = primary.template.networks.first().map(|n| n.aliases.join(", ")).unwrap_or_default();
    say(&format!("{} answers as {aliases} now (its service runs it as the primary)", unit.name));
    Ok(())
}

/// A database primary whose node the orchestrator sees down while a replica of it runs:
/// writes fail until a failover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostPrimary {
    pub service: String,
    pub unit: String,
    pub node: String,
}

/// The project's database primaries on lost nodes. Nothing re-creates them elsewhere (their
/// data is on the lost node), so a plan has nothing to say about them: this says it instead.
pub async fn lost_primaries<O: Orchestrator>(target: &O, project: &str) -> Result<Vec<LostPrimary>, OrchestratorError> {
    let observed = target.observe_units(project).await?;
    let db: Vec<&UnitSpec> =
        observed.units.values().filter_map(|u| u.unit.as_ref()).filter(|u| u.kind == Some(Kind::Postgres)).collect();
    let mut out = Vec::new();
    for primary in db.iter().filter(|u| role_of(u) == Some("primary")) {
        let seen = target.unit_progress(&primary.name, &primary.hash()).await?;
        let Some(node) = seen.down_node.filter(|_| seen.ready == 0) else { continue };
        for replica in db.iter().filter(|u| u.service == primary.service && u.name != primary.name) {
            if target.unit_progress(&replica.name, &replica.hash()).await?.ready > 0 {
                out.push(LostPrimary { service: primary.service.clone(), unit: primary.name.clone(), node });
                break;
            }
        }
    }
    Ok(out)
}
