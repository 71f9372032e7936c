//! What the engine reports about a project: a read-only snapshot taken once per run, built
//! only from resources that carry the project's label.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::labels;
use crate::model::Protocol;
use crate::spec::ContainerSpec;

/// The project as the engine sees it right now.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ObservedState {
    pub project: String,
    /// Keyed by container name.
    pub containers: BTreeMap<String, ObservedContainer>,
    /// Keyed by network name.
    pub networks: BTreeMap<String, ObservedNetwork>,
    /// Keyed by volume name.
    pub volumes: BTreeMap<String, ObservedVolume>,
    /// Image references (`repo:tag`) present in the engine.
    pub images: BTreeSet<String>,
    /// The pool each running load balancer was last given, keyed by container name.
    pub load_balancers: BTreeMap<String, crate::spec::Pool>,
    /// The load balancers' pool-record volumes (scale's bookkeeping, not the user's: kept
    /// out of `volumes`), by the name of the volume: the container ID each is for, and the
    /// pool it records (`None`: unreadable, which counts as no record).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub pool_records: BTreeMap<String, (String, Option<crate::spec::Pool>)>,
    /// Where ports published on every address are reached, when that is not this machine:
    /// the host of a `tcp://HOST:PORT` engine. `None`: 127.0.0.1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_host: Option<String>,
    /// Database replicas that cannot stream because the WAL they need is gone from their
    /// primary, by container name, with why (they are re-seeded by the next plan).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub stale_replicas: BTreeMap<String, String>,
    /// The users' shards as the databases hold them (`None`: no postgres primary runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<ObservedShards>,
}

/// Where the users are: the shard map (if one exists) and how many rows each running
/// primary holds per bucket. Read through `docker exec` (one `psql` per primary), so a plan
/// can say how many rows a reshard moves where.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ObservedShards {
    /// The postgres service whose primary holds a shard map, and the map (bucket → shard).
    pub map: Option<(String, BTreeMap<u32, String>)>,
    /// Rows per bucket, per postgres service (its running primary's `users` table).
    pub rows: BTreeMap<String, BTreeMap<u32, u64>>,
}

impl ObservedShards {
    /// How many users a service's primary holds.
    pub fn total(&self, service: &str) -> u64 {
        self.rows.get(service).map_or(0, |r| r.values().sum())
    }
}

/// The lifecycle state the engine reports for a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl RunState {
    /// Parses the engine's `State` word.
    pub fn from_engine(state: &str) -> RunState {
        match state {
            "running" => RunState::Running,
            "paused" => RunState::Paused,
            "restarting" => RunState::Restarting,
            "removing" => RunState::Removing,
            "exited" => RunState::Exited,
            "dead" => RunState::Dead,
            _ => RunState::Created,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Created => "created",
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Restarting => "restarting",
            RunState::Removing => "removing",
            RunState::Exited => "exited",
            RunState::Dead => "dead",
        }
    }
}

/// A container's healthcheck verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// A host port the engine bound for a container.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PublishedPort {
    pub container_port: u16,
    pub protocol: Protocol,
    pub host_ip: String,
    pub host_port: u16,
}

/// One of the project's containers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub image: String,
    pub state: RunState,
    pub health: Option<Health>,
    pub exit_code: Option<i64>,
    pub ports: Vec<PublishedPort>,
    /// Networks it is attached to right now (a `chaos disconnect` shows here).
    pub networks: Vec<String>,
}

impl ObservedContainer {
    pub fn service(&self) -> Option<&str> {
        self.labels.get(labels::SERVICE).map(String::as_str)
    }

    pub fn replica(&self) -> Option<u32> {
        self.labels.get(labels::REPLICA)?.parse().ok()
    }

    /// Its kind, from the label (`None`: a plain service).
    pub fn kind(&self) -> Option<crate::model::Kind> {
        labels::kind_of(&self.labels)
    }

    pub fn spec_hash(&self) -> Option<&str> {
        self.labels.get(labels::SPEC_HASH).map(String::as_str)
    }

    /// The spec it was created from, if its label is present and readable.
    pub fn spec(&self) -> Option<ContainerSpec> {
        serde_json::from_str(self.labels.get(labels::SPEC)?).ok()
    }

    /// The volumes it took over from the container it replaced ([`labels::CARRIED_VOLUMES`]).
    pub fn carried_volumes(&self) -> Vec<String> {
        let names = self.labels.get(labels::CARRIED_VOLUMES).map(String::as_str).unwrap_or_default();
        names.split(',').filter(|n| !n.is_empty()).map(str::to_string).collect()
    }

    /// Running, and healthy if it has a healthcheck.
    pub fn is_ready(&self) -> bool {
        self.state == RunState::Running && matches!(self.health, None | Some(Health::Healthy))
    }

    /// The spec of the container it replaced, if it replaced one (`scale rollback`'s target).
    pub fn previous_spec(&self) -> Option<ContainerSpec> {
        serde_json::from_str(self.labels.get(labels::PREVIOUS_SPEC)?).ok()
    }
}

/// One of the project's networks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedNetwork {
    pub id: String,
    pub name: String,
    pub internal: bool,
}

/// One of the project's volumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedVolume {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// Reads the health verdict from the engine's human status ("Up 5 seconds (healthy)").
pub fn health_from_status(status: &str) -> Option<Health> {
    if status.contains("(healthy)") {
        Some(Health::Healthy)
    } else if status.contains("(unhealthy)") {
        Some(Health::Unhealthy)
    } else if status.contains("(health: starting)") {
        Some(Health::Starting)
    } else {
        None
    }
}

/// Reads the exit code from the engine's human status ("Exited (137) 2 seconds ago").
pub fn exit_code_from_status(status: &str) -> Option<i64> {
    let rest = status.strip_prefix("Exited (")?;
    rest.split(')').next()?.parse().ok()
}

/// A published address a user or CI can reach a service at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Endpoint {
    pub service: String,
    pub container: String,
    pub container_port: u16,
    pub protocol: Protocol,
    pub host_ip: String,
    pub host_port: u16,
    /// `http://127.0.0.1:PORT` for TCP ports (what a user pastes into curl), the engine's
    /// host instead of 127.0.0.1 for a remote engine.
    pub url: Option<String>,
}

impl ObservedState {
    /// Moves the load balancers' pool-record volumes out of `volumes` into `pool_records`:
    /// every engine's `observe` ends with this, so no caller mistakes them for data.
    pub fn take_pool_records(mut self) -> Self {
        let records: Vec<String> = self
            .volumes
            .values()
            .filter(|v| v.labels.contains_key(labels::POOL_OF_LABEL))
            .map(|v| v.name.clone())
            .collect();
        for name in records {
            let Some(v) = self.volumes.remove(&name) else { continue };
            let of = v.labels.get(labels::POOL_OF_LABEL).cloned().unwrap_or_default();
            // One that does not parse counts as no record.
            let pool = v.labels.get(labels::POOL_RECORD_LABEL).and_then(|json| serde_json::from_str(json).ok());
            self.pool_records.insert(name, (of, pool));
        }
        self
    }

    /// The pool recorded for the load balancer container `id`, if a record volume is for it.
    pub fn pool_record_of(&self, id: &str) -> Option<&crate::spec::Pool> {
        self.pool_records.values().find(|(of, _)| of == id).and_then(|(_, pool)| pool.as_ref())
    }

    /// Whether any of the project's containers mounts an anonymous volume (by its spec): only
    /// then can unlabelled leftovers on the engine be this project's.
    pub fn mounts_anonymous_volumes(&self) -> bool {
        self.containers.values().any(|c| {
            c.spec().is_some_and(|s| s.mounts.iter().any(|m| m.source == crate::spec::MountSourceSpec::Anonymous))
        })
    }

    /// The primary node of each postgres service, as the newest marker volume says (a
    /// service without a marker keeps node 1), with the marker's name.
    pub fn primaries(&self) -> BTreeMap<String, (u32, String)> {
        let mut out: BTreeMap<String, (u64, u32, String)> = BTreeMap::new();
        for v in self.volumes.values() {
            let (Some(service), Some(node)) =
                (v.labels.get(labels::MARKER_SERVICE_LABEL), v.labels.get(labels::MARKER_NODE_LABEL))
            else {
                continue;
            };
            let Ok(node) = node.parse::<u32>() else { continue };
            let since = v.labels.get(labels::MARKER_SINCE_LABEL).and_then(|s| s.parse().ok()).unwrap_or(0);
            let newer = out.get(service).is_none_or(|(t, _, _)| since >= *t);
            if newer {
                out.insert(service.clone(), (since, node, v.name.clone()));
            }
        }
        out.into_iter().map(|(service, (_, node, volume))| (service, (node, volume))).collect()
    }

    /// Every published port of the project's running containers, ordered by service.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        let mut out = Vec::new();
        for c in self.containers.values() {
            for p in &c.ports {
                let host_ip = match p.host_ip.as_str() {
                    "" | "0.0.0.0" | "::" => self.published_host.clone().unwrap_or_else(|| "127.0.0.1".to_string()),
                    ip => ip.to_string(),
                };
                let url = (p.protocol == Protocol::Tcp).then(|| {
                    if host_ip.contains(':') {
                        format!("http://[{host_ip}]:{}", p.host_port)
                    } else {
                        format!("http://{host_ip}:{}", p.host_port)
                    }
                });
                out.push(Endpoint {
                    service: c.service().unwrap_or("?").to_string(),
                    container: c.name.clone(),
                    container_port: p.container_port,
                    protocol: p.protocol,
                    host_ip,
                    host_port: p.host_port,
                    url,
                });
            }
        }
        out.sort();
        out.dedup_by(|a, b| {
            a.container == b.container && a.host_port == b.host_port && a.container_port == b.container_port
        });
        out
    }
}

#[cfg(test)]
mod endpoint_tests {
    use super::*;

    fn state(published_host: Option<&str>) -> ObservedState {
        let port = |host_ip: &str, host_port| PublishedPort {
            container_port: 80,
            protocol: Protocol::Tcp,
            host_ip: host_ip.into(),
            host_port,
        };
        let container = ObservedContainer {
            id: "1".into(),
            name: "shop-lb-1".into(),
            labels: BTreeMap::from([(crate::labels::SERVICE.to_string(), "lb".to_string())]),
            image: "shop/lb:1".into(),
            state: RunState::Running,
            health: None,
            exit_code: None,
            ports: vec![port("0.0.0.0", 8080), port("127.0.0.1", 9090)],
            networks: Vec::new(),
        };
        ObservedState {
            project: "shop".into(),
            containers: BTreeMap::from([(container.name.clone(), container)]),
            published_host: published_host.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn ports_on_every_address_are_reached_at_the_engines_host() {
        let urls = |s: &ObservedState| {
            let mut urls: Vec<String> = s.endpoints().into_iter().filter_map(|e| e.url).collect();
            urls.sort();
            urls
        };
        assert_eq!(urls(&state(None)), ["http://127.0.0.1:8080", "http://127.0.0.1:9090"]);
        // A remote engine (DOCKER_HOST=tcp://10.1.2.3:2375): 0.0.0.0 means its address, while
        // a port bound to its loopback stays on its loopback.
        assert_eq!(urls(&state(Some("10.1.2.3"))), ["http://10.1.2.3:8080", "http://127.0.0.1:9090"]);
        assert_eq!(urls(&state(Some("fd00::7"))), ["http://127.0.0.1:9090", "http://[fd00::7]:8080"]);
    }
}
