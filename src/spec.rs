//! The fully specified state: every container, network, volume and image the project
//! should consist of, with nothing left for the executor to decide (the lesson of Oxide's
//! Reconfigurator, which keeps its blueprint types apart from planning and execution). A
//! leaf of the planning core: `desired` builds these, `observed` reads them back from
//! labels, `plan` diffs them, and none of them needs another to name a spec.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::model::IpamPool;
use crate::model::{Condition, ContainerOptions, Kind, Protocol, RestartPolicy, RolloutPolicy};

/// Everything the project should consist of.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DesiredState {
    pub project: String,
    /// Keyed by full engine name (`<project>_<network>`).
    pub networks: BTreeMap<String, NetworkSpec>,
    /// Keyed by full engine name (`<project>_<volume>`).
    pub volumes: BTreeMap<String, VolumeSpec>,
    /// Keyed by image reference.
    pub images: BTreeMap<String, ImageSpec>,
    /// In dependency order: a service comes after everything it depends on.
    pub services: Vec<ServiceSpec>,
    /// Keyed by container name (`<project>-<service>-<n>`).
    pub containers: BTreeMap<String, ContainerSpec>,
    /// Generated load-balancer configurations, keyed by load-balancer container name.
    pub load_balancers: BTreeMap<String, LoadBalancerSpec>,
    /// Networks and volumes made outside the project (`external: true`), by engine name: used
    /// as they are, never created or removed; apply checks first that they exist.
    pub external_networks: std::collections::BTreeSet<String>,
    pub external_volumes: std::collections::BTreeSet<String>,
    /// `shards: N`: the users are spread over several postgres services.
    pub sharding: Option<ShardingSpec>,
}

/// The users' shards and who moves them. A user lives in bucket `id % SHARD_BUCKETS`; the
/// shard map (a table in shard 0) says which shard holds each bucket. Resharding moves whole
/// buckets, so the map stays small and a move is a plain `WHERE id % 64 = b`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardingSpec {
    /// The postgres services, shard 0 (the map's home) first.
    pub shards: Vec<String>,
    /// The service whose containers run the moves: the app that reads and writes the users
    /// (the first one that depends on shard 0), so the move speaks the app's own protocol.
    pub runner: String,
}

/// How many buckets the users are hashed into (`id % 64`): the unit a reshard moves.
pub const SHARD_BUCKETS: u32 = 64;

/// A network the project needs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub name: String,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    /// `None`: a bridge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// Address pools (`ipam.config`); empty: the engine picks a subnet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipam: Vec<IpamPool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam_driver: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_ipv6: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub attachable: bool,
}

/// A named volume the project needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSpec {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ImageSource {
    /// Pulled from a registry when missing.
    Pull,
    /// Built from a context; the tag carries the context's hash, so an unchanged context is
    /// never rebuilt.
    Build {
        context: PathBuf,
        dockerfile: String,
        args: BTreeMap<String, String>,
        context_hash: String,
        /// The Dockerfile stage to build (`build.target`).
        #[serde(skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        /// More names for the built image (Compose's `image:` beside `build:`).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tags: Vec<String>,
    },
}

/// An image some container runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageSpec {
    /// Full reference with tag, e.g. `shop/web:3f2a9c1d0b7e`.
    pub reference: String,
    /// The reference without its tag, e.g. `shop/web` (how plans name builds).
    pub repository: String,
    pub source: ImageSource,
}

/// When a container counts as ready, so that what depends on it may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// Running (no healthcheck to wait for).
    Running,
    /// Its healthcheck passed.
    Healthy,
    /// It ran to completion with exit code 0 (one-shot jobs).
    Completed,
}

/// Per-service facts the planner orders work by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceSpec {
    pub name: String,
    pub kind: Option<Kind>,
    pub replicas: u32,
    pub depends_on: Vec<(String, Condition)>,
    /// What "ready" means for this service's containers.
    pub readiness: Readiness,
    /// This replica must be ready before the others start (a database primary before its
    /// replicas take their base backup from it).
    pub leader: Option<u32>,
    /// How a change rolls over the replicas.
    pub rollout: RolloutPolicy,
    /// `replicas: { min, max, target }`: the count may be what the autoscaler chose.
    pub autoscale: Option<crate::model::Autoscale>,
}

/// One published port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortSpec {
    pub container_port: u16,
    pub protocol: Protocol,
    pub host_ip: Option<String>,
    /// `None`: a random free host port.
    pub host_port: Option<u16>,
}

/// A container joining a network.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AttachmentSpec {
    pub network: String,
    pub aliases: Vec<String>,
    /// A fixed address (`ipv4_address`); `None`: the engine assigns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
}

/// The source of a mount, with volume names already made engine names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountSourceSpec {
    Volume(String),
    Bind(PathBuf),
    Anonymous,
}

/// A mount in a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    pub source: MountSourceSpec,
    pub target: String,
    pub read_only: bool,
    /// Bind propagation (`rshared`, …); `None` is the engine's `rprivate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
    /// Do not copy the image's files into a new volume.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nocopy: bool,
}

/// A healthcheck with durations in milliseconds (stable when serialized).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HealthSpec {
    pub test: Vec<String>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub retries: u32,
    pub start_period_ms: u64,
    /// Probe interval during `start_period` (Compose's `start_interval`): sent only to
    /// engines of API 1.44 and later, which know it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval_ms: Option<u64>,
}

impl HealthSpec {
    /// The healthcheck's test as a command to run in the container (`CMD` as it is,
    /// `CMD-SHELL` through `/bin/sh -c`, as the engine runs them); `None` for `NONE` or an
    /// empty test. scale runs it itself while a new container starts ([`crate::exec`]),
    /// because engines before API 1.44 have no `start_interval`: their first check comes a
    /// whole `interval` after the start.
    pub fn probe_command(&self) -> Option<Vec<String>> {
        match self.test.split_first() {
            Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
            Some((kind, [script])) if kind == "CMD-SHELL" => Some(vec!["/bin/sh".into(), "-c".into(), script.clone()]),
            _ => None,
        }
    }
}

/// A container, fully specified. Its JSON is stored in a label, so a later run can explain
/// exactly what changed; its hash decides *whether* anything changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub name: String,
    pub service: String,
    pub replica: u32,
    /// `None` for a plain service (the label says `service`).
    pub kind: Option<Kind>,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub ports: Vec<PortSpec>,
    pub networks: Vec<AttachmentSpec>,
    pub mounts: Vec<MountSpec>,
    pub healthcheck: Option<HealthSpec>,
    pub restart: RestartPolicy,
    /// Seconds between SIGTERM and SIGKILL when stopping; `None` is the engine's 10 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_secs: Option<u64>,
    pub labels: BTreeMap<String, String>,
    pub hostname: String,
    /// Compose's engine options (`user`, `cap_add`, `tmpfs`, limits …); left out of the stored
    /// spec (and so of the hash) while nothing is set.
    #[serde(default, skip_serializing_if = "ContainerOptions::is_default")]
    pub options: ContainerOptions,
    /// The spec of the container this one replaces, kept in the engine (label
    /// [`crate::labels::PREVIOUS_SPEC`]) so a rollout can be undone on purpose. Outside the
    /// hash and the stored spec: where a container came from is not what it is.
    #[serde(skip)]
    pub previous: Option<Box<ContainerSpec>>,
    /// The volumes of the container this one replaces that its anonymous (`"/path"`) mounts
    /// take over, by target (as Compose carries anonymous volumes over). A runtime fact the
    /// executor fills in, outside the hash and the stored spec; recorded in the label
    /// [`crate::labels::CARRIED_VOLUMES`] so that `destroy --volumes` can remove them.
    #[serde(skip)]
    pub carried: BTreeMap<String, String>,
}

impl ContainerSpec {
    /// A stable fingerprint of everything that would require a new container.
    /// The expiry label (`apply --ttl`) is left out: renewing a project's expiry must not
    /// replace its containers.
    pub fn hash(&self) -> String {
        if self.labels.contains_key(EXPIRES_AT_LABEL) {
            let mut bare = self.clone();
            bare.labels.remove(EXPIRES_AT_LABEL);
            return bare.hash();
        }
        let json = serde_json::to_vec(self).expect("a ContainerSpec always serializes");
        hex(&Sha256::digest(&json)[..8])
    }
}

/// Lower-case hex of some bytes (a table lookup: hashing thousands of specs per plan made a
/// `format!` per byte the planner's largest cost).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// The label `apply --ttl` puts on everything it creates: when the project may be reaped
/// (RFC 3339). Defined here, in the leaf, because [`ContainerSpec::hash`] leaves it out;
/// `labels::EXPIRES_AT` names it for everyone else.
pub const EXPIRES_AT_LABEL: &str = "io.scale.expires-at";

/// The engine name of a project's network or volume.
pub fn scoped_name(project: &str, name: &str) -> String {
    format!("{project}_{name}")
}

/// The engine name of a service's n-th container.
pub fn container_name(project: &str, service: &str, replica: u32) -> String {
    format!("{project}-{service}-{replica}")
}

/// Adds `:latest` to an untagged reference, the way the engine stores it.
pub fn normalize_reference(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if reference.contains('@') || last.contains(':') { reference.to_string() } else { format!("{reference}:latest") }
}

/// The network services join when they name none (as Compose does).
pub const DEFAULT_NETWORK: &str = "default";

/// The pool as scale last wrote it into a load balancer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// Hash of the whole configuration text.
    pub hash: String,
    /// The HAProxy backend (named after the backend service).
    pub backend: String,
    /// Backend container names, which are also the HAProxy server names.
    pub servers: Vec<String>,
    /// Servers taken out of rotation by a replacement still under way. Left non-empty only
    /// by an interrupted run; a reload (fresh worker, every server ready) repairs it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub draining: Vec<String>,
}

/// The generated configuration of one load-balancer container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancerSpec {
    pub container: String,
    pub pool: Pool,
    pub config: String,
    /// The backends' port and the ports it listens on: what a new pool is rendered with.
    pub port: u16,
    pub listen: Vec<u16>,
}

/// A plain container spec for unit tests: no ports, mounts, healthcheck or options.
#[cfg(test)]
pub(crate) fn test_spec(name: &str, service: &str, replica: u32) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        service: service.into(),
        replica,
        kind: None,
        image: format!("{service}:1"),
        command: None,
        entrypoint: None,
        env: BTreeMap::new(),
        ports: vec![],
        networks: vec![],
        mounts: vec![],
        healthcheck: None,
        restart: crate::model::RestartPolicy::No,
        stop_grace_secs: None,
        options: Default::default(),
        labels: BTreeMap::new(),
        hostname: name.into(),
        previous: None,
        carried: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::hex;

    #[test]
    fn hex_is_lower_case_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(hex(&[]), "");
    }
}
