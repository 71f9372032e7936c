//! The typed blueprint (schema v1). Values that later checks may complain about keep their
//! position, so a semantic error can still say file:line:col.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::diag::Pos;

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct At<T> {
    pub value: T,
    #[serde(skip)]
    pub pos: Pos,
}

impl<T> At<T> {
    pub fn new(value: T, pos: Pos) -> Self {
        At { value, pos }
    }
}

/// A whole blueprint file, decoded. Paths in it are already absolute.
#[derive(Debug, Clone, PartialEq)]
pub struct Blueprint {
    /// The file it came from, as the user named it (used in every diagnostic).
    pub file: PathBuf,
    /// The directory that relative paths (build contexts, bind mounts) are resolved against.
    pub dir: PathBuf,
    /// The project name; `-p` overrides it and may stand in for it.
    pub name: Option<At<String>>,
    pub stage: Option<Stage>,
    pub networks: BTreeMap<String, NetworkDef>,
    pub volumes: BTreeMap<String, VolumeDef>,
    /// Services in the order the file declares them.
    pub services: Vec<Service>,
    /// Services declared but left out because they have problems of their own (only in a
    /// partial blueprint): other checks treat them as existing, so they add no false errors.
    pub incomplete_services: Vec<String>,
    /// Every file the project was read from, by the index positions carry (`Pos::file`):
    /// the first file, then override files, included and extended files.
    pub sources: Vec<PathBuf>,
    /// Where the project name comes from when neither `-p` nor `name:` gives one.
    pub implicit_name: Option<ImplicitName>,
    /// Top-level `secrets:` and `configs:` (Compose), by name.
    pub secrets: BTreeMap<String, FileObject>,
    pub configs: BTreeMap<String, FileObject>,
    /// Services left out because none of their `profiles` is active (Compose's rule).
    pub inactive_services: Vec<String>,
    /// What was read but is not acted on (a key scale does not support yet, an obsolete
    /// one): shown by validate and plan as warnings, never dropped silently.
    pub warnings: Vec<crate::diag::Diagnostic>,
    /// The `x-lesson:` checks a learner can run with `scale check` (empty without one).
    pub lesson: Vec<super::lesson::LessonCheck>,
}

/// A project name not written in the file: `COMPOSE_PROJECT_NAME`, or the directory's name
/// normalised as Compose normalises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImplicitName {
    pub value: String,
    pub source: NameSource,
}

/// Where an [`ImplicitName`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameSource {
    /// The `COMPOSE_PROJECT_NAME` variable (environment or `.env`); checked, not normalised.
    Environment,
    /// The project directory's name, normalised (lowercase, only `[a-z0-9_-]`).
    Directory,
}

/// A top-level Compose secret or config. Only file-based ones are supported on a single
/// engine; they are bind-mounted read-only, as Compose does without Swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileObject {
    pub pos: Pos,
    /// Absolute path of the file; `None` when the definition has no `file:`.
    pub file: Option<PathBuf>,
}

impl Blueprint {
    /// Looks a service up by name.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }
}

/// What a learner sees about the stage of the book this blueprint is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    pub number: u32,
    pub title: String,
    pub summary: String,
}

/// A user-declared network.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkDef {
    pub pos: Pos,
    /// No route out of the network and no published ports reach it.
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    /// `external: true`: the engine name of a network made outside the project, joined as it
    /// is (never created, changed or removed).
    pub external: Option<String>,
    /// `None`: a bridge.
    pub driver: Option<String>,
    pub driver_opts: BTreeMap<String, String>,
    pub ipam: Vec<super::options::IpamPool>,
    pub ipam_driver: Option<String>,
    pub enable_ipv6: bool,
    pub attachable: bool,
}

/// A user-declared named volume.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumeDef {
    pub pos: Pos,
    pub labels: BTreeMap<String, String>,
    /// `external: true`: the engine name of a volume made outside the project, mounted as it
    /// is (never created or removed).
    pub external: Option<String>,
}

/// What a `kind:` adds on top of a plain service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    LoadBalancer,
    Postgres,
}

impl Kind {
    /// Every kind, as written in YAML, for "did you mean" hints.
    pub const ALL: [(&'static str, Kind); 2] = [("load-balancer", Kind::LoadBalancer), ("postgres", Kind::Postgres)];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::LoadBalancer => "load-balancer",
            Kind::Postgres => "postgres",
        }
    }
}

/// One service: a template for `replicas` identical containers.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    pub pos: Pos,
    pub kind: Option<At<Kind>>,
    pub image: Option<At<String>>,
    pub build: Option<At<Build>>,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub environment: BTreeMap<String, At<String>>,
    pub ports: Vec<At<PortMapping>>,
    pub networks: Vec<NetworkAttachment>,
    pub volumes: Vec<At<Mount>>,
    pub depends_on: Vec<Dependency>,
    pub healthcheck: Option<Healthcheck>,
    /// The policy's `min` when `replicas:` is an autoscaling map (see [`Autoscale`]).
    pub replicas: At<u32>,
    /// `replicas: { min, max, target, ... }`: the watch controller adds and removes servers.
    pub autoscale: Option<At<Autoscale>>,
    pub restart: RestartPolicy,
    /// How long a stop waits after SIGTERM before SIGKILL (Compose's `stop_grace_period`).
    pub stop_grace_period: Option<Duration>,
    pub labels: BTreeMap<String, String>,
    /// `zones: [dc-a, dc-b]`: the data centres its containers are spread over, replica (or
    /// database node) `n` in the `(n-1) % len`-th (see `desired::place_in_zones`).
    pub zones: Vec<At<String>>,
    /// How a change rolls over its replicas (`rollout:` or Compose's `deploy.update_config`).
    pub rollout: RolloutPolicy,
    pub load_balancer: Option<LoadBalancerDef>,
    pub postgres: Option<PostgresDef>,
    /// Compose attributes beyond scale's own schema.
    pub compose: ComposeSettings,
}

/// Compose service attributes read into the model. Those the desired state does not act on
/// yet are also reported as warnings ("not supported yet"), so none is dropped silently.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ComposeSettings {
    pub container_name: Option<At<String>>,
    /// Ports the service listens on (documentation only: on a shared network every port of a
    /// container is reachable, as with Compose).
    pub expose: Vec<String>,
    pub profiles: Vec<String>,
    /// `hostname:` (every replica gets it, as with Compose); without it a container's
    /// hostname is its name.
    pub hostname: Option<String>,
    /// The options that map onto the engine's create request (`user`, `cap_add`, …).
    pub options: super::options::ContainerOptions,
    /// `secrets:` of the service: each bind-mounted read-only at `target`.
    pub secrets: Vec<Grant>,
    pub configs: Vec<Grant>,
    /// `depends_on` entries with `required: false`: dropped when the service is not there.
    pub optional_dependencies: Vec<String>,
    /// `deploy.restart_policy.condition` as written, when it (not `restart`) set the policy.
    pub restart_condition: Option<String>,
    /// `healthcheck.start_interval`: sent to engines of API 1.44 and later, ignored (with a
    /// warning) by older ones.
    pub start_interval: Option<Duration>,
}

/// A service's use of a top-level secret or config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub source: At<String>,
    /// Absolute path inside the container.
    pub target: String,
}

/// An autoscaled service's policy (`replicas: { min: 2, max: 6, target: 50 }`): between
/// `min` and `max` containers, one more while the load balancer counts more than `target`
/// requests per second per server, fewer once the load stayed below `target × (1 −
/// hysteresis)` for `cooldown`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Autoscale {
    pub min: u32,
    pub max: u32,
    /// Requests per second per server.
    pub target: f64,
    /// How far below the target the load must fall before servers are removed (a fraction),
    /// so a load near the target does not add and remove servers in turn.
    pub hysteresis: f64,
    /// How long the load must stay low before servers are removed, and the least time between
    /// two removals.
    #[serde(serialize_with = "seconds")]
    pub cooldown: Duration,
    /// What the load is: requests through the load balancers (the default), or a queue's
    /// depth (`metric: queue_depth`, `queue: <service>`).
    #[serde(skip_serializing_if = "Metric::is_requests")]
    pub metric: Metric,
}

/// What an autoscaled service's load is measured in (`metric:` in its `replicas:` map); the
/// decision is the same for each: load per replica against `target`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Requests per second per server, from the counters of the load balancers in front of
    /// the service (a web tier).
    #[default]
    Requests,
    /// Messages waiting or in flight per worker, from the stats command of the `queue`
    /// service's image (its `io.scale.queue` label): workers that consume a queue.
    QueueDepth { queue: String },
}

impl Metric {
    pub fn is_requests(&self) -> bool {
        matches!(self, Metric::Requests)
    }

    /// What one replica's share of the load reads as in a reason ("req/s per server").
    pub fn per_replica(&self) -> &'static str {
        match self {
            Metric::Requests => "req/s per server",
            Metric::QueueDepth { .. } => "messages queued per worker",
        }
    }

    /// The word for a replica in a reason.
    pub fn replica_noun(&self) -> &'static str {
        match self {
            Metric::Requests => "server(s)",
            Metric::QueueDepth { .. } => "worker(s)",
        }
    }
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The decoder only accepts finite numbers, so `target` and `hysteresis` are never NaN.
impl Eq for Autoscale {}

impl Autoscale {
    pub const DEFAULT_HYSTERESIS: f64 = 0.2;
    pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(60);
}

/// How to build a service's image from a directory.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Build {
    /// Absolute path of the build context.
    pub context: PathBuf,
    /// Dockerfile path relative to the context.
    pub dockerfile: String,
    pub args: BTreeMap<String, String>,
    /// The stage of a multi-stage Dockerfile to build (`build.target`); `None`: the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Network protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// `"8080:80"`, `"80"` (random host port), `"127.0.0.1:8080:80/udp"` or the long form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortMapping {
    pub host_ip: Option<String>,
    /// `None`: the engine picks a free host port.
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub protocol: Protocol,
}

/// A service joining a network, optionally under extra DNS names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAttachment {
    pub name: At<String>,
    pub aliases: Vec<String>,
    /// A fixed address on the network (`ipv4_address`, `ipv6_address`).
    pub ipv4_address: Option<String>,
    pub ipv6_address: Option<String>,
}

/// Where a mount's data comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MountSource {
    /// A named volume declared under `volumes:`.
    Volume(String),
    /// A host path (absolute, resolved against the blueprint's directory).
    Bind(PathBuf),
    /// An anonymous volume (`"/data"` alone).
    Anonymous,
}

/// `"uploads:/data"`, `"./conf:/etc/app:ro"`, `"/cache"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub source: MountSource,
    pub target: String,
    pub read_only: bool,
    /// `bind.propagation` of a long-form bind mount (`rprivate`, `shared`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
    /// `volume.nocopy`: the image's files at the target are not copied into a new volume.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub nocopy: bool,
}

/// When a dependency counts as ready (Compose's `depends_on` conditions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    ServiceStarted,
    ServiceHealthy,
    ServiceCompletedSuccessfully,
}

impl Condition {
    pub const ALL: [(&'static str, Condition); 3] = [
        ("service_started", Condition::ServiceStarted),
        ("service_healthy", Condition::ServiceHealthy),
        ("service_completed_successfully", Condition::ServiceCompletedSuccessfully),
    ];
}

/// `depends_on: { db: { condition: service_healthy } }` or `depends_on: [db]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub service: At<String>,
    pub condition: Condition,
}

/// A container healthcheck, as the engine runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Healthcheck {
    #[serde(skip)]
    pub pos: Pos,
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]` (disabled).
    pub test: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
}

/// The engine's restart policy for a service's containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    No,
    Always,
    OnFailure,
    UnlessStopped,
}

impl RestartPolicy {
    pub const ALL: [(&'static str, RestartPolicy); 4] = [
        ("no", RestartPolicy::No),
        ("always", RestartPolicy::Always),
        ("on-failure", RestartPolicy::OnFailure),
        ("unless-stopped", RestartPolicy::UnlessStopped),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }
}

/// `kind: load-balancer` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancerDef {
    /// The service whose replicas receive the traffic.
    pub backend_service: At<String>,
    pub backend_port: u16,
}

/// Whether a lost primary is replaced automatically by the watch loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailoverMode {
    #[default]
    Manual,
    Auto,
}

/// `kind: postgres` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresDef {
    pub read_replicas: At<u32>,
    pub synchronous: bool,
    pub failover: FailoverMode,
    pub database: String,
    pub user: String,
    pub password: String,
    /// No `password:` was given, so `password` is [`DEFAULT_POSTGRES_PASSWORD`] (validate and
    /// plan say so: a default password is fine on a laptop and wrong anywhere else).
    pub password_is_default: bool,
    /// `shards: N`: the users are spread over N clusters like this one (see [`Shard`]).
    pub shard: Option<Shard>,
}

/// Where a `kind: postgres` cluster stands among the shards of `shards: N`. The service that
/// declares `shards:` is shard 0 and holds the shard map; shards 1..N are copies of it named
/// `<service>-s1`, `<service>-s2`... (made by the model, so every later step sees plain
/// services).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// The service that declared `shards:` (shard 0, the map's home).
    pub directory: String,
    pub index: u32,
    pub count: u32,
}

/// The password a `kind: postgres` service gets without `password:` (as `database` and
/// `user` default to `app`).
pub const DEFAULT_POSTGRES_PASSWORD: &str = "app";

/// Which of old and new runs while a replica is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutOrder {
    /// The new container starts (under a temporary name) and turns ready before the old one
    /// stops: capacity never drops (max_surge = parallelism, max_unavailable = 0).
    StartFirst,
    /// The old container stops first (max_surge = 0, max_unavailable = parallelism).
    StopFirst,
}

impl RolloutOrder {
    pub const ALL: [(&'static str, RolloutOrder); 2] =
        [("start-first", RolloutOrder::StartFirst), ("stop-first", RolloutOrder::StopFirst)];

    pub fn as_str(self) -> &'static str {
        match self {
            RolloutOrder::StartFirst => "start-first",
            RolloutOrder::StopFirst => "stop-first",
        }
    }
}

/// What a rollout does when a new replica fails to turn (or stay) ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Put the previous spec back on every replica already replaced, then fail.
    #[default]
    Rollback,
    /// Stop where it is: replaced replicas stay new, the others old.
    Pause,
    /// Go on with the other replicas; the apply still fails at the end.
    Continue,
}

impl OnFailure {
    pub const ALL: [(&'static str, OnFailure); 3] =
        [("rollback", OnFailure::Rollback), ("pause", OnFailure::Pause), ("continue", OnFailure::Continue)];

    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Rollback => "rollback",
            OnFailure::Pause => "pause",
            OnFailure::Continue => "continue",
        }
    }
}

/// How a change rolls over a service's replicas. Not part of any container's spec: changing
/// the policy replaces nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RolloutPolicy {
    /// How many replicas are replaced at once (a batch).
    pub parallelism: u32,
    /// `None`: start-first where it is safe (no fixed host port, no shared writable volume),
    /// stop-first otherwise.
    pub order: Option<RolloutOrder>,
    /// How long a new replica must stay ready after its first ready reading (ms).
    pub monitor_ms: u64,
    /// Pause between batches (ms), Compose's `delay`.
    pub delay_ms: u64,
    pub on_failure: OnFailure,
}

impl Default for RolloutPolicy {
    fn default() -> Self {
        RolloutPolicy { parallelism: 1, order: None, monitor_ms: 0, delay_ms: 0, on_failure: OnFailure::Rollback }
    }
}
