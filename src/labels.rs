//! The labels that make engine state scale's state: every resource carries its project, and
//! containers carry enough to be planned against without a local state file.

use std::collections::BTreeMap;

use crate::model::Kind;
use crate::spec::ContainerSpec;

/// Project that owns a resource. Nothing without it is ever touched.
pub const PROJECT: &str = "io.scale.project";
/// Service a container belongs to.
pub const SERVICE: &str = "io.scale.service";
/// Replica number (1, 2, ...) of a container within its service.
pub const REPLICA: &str = "io.scale.replica";
/// Hash of the container's full spec: equal hash, nothing to do.
pub const SPEC_HASH: &str = "io.scale.spec-hash";
/// `service`, `load-balancer`, `postgres`, ...
pub const KIND: &str = "io.scale.kind";
/// The container's full spec as JSON, so a plan can say what changed and why.
pub const SPEC: &str = "io.scale.spec";
/// The spec of the container this one replaced, as JSON: what `scale rollback` goes back to.
pub const PREVIOUS_SPEC: &str = "io.scale.previous-spec";
/// The volumes a container took over from the one it replaced (its anonymous mounts), comma
/// separated: mounted by name, the engine no longer counts them as the container's own, so
/// `destroy --volumes` removes them by this record (and never any other volume).
pub const CARRIED_VOLUMES: &str = "io.scale.carried-volumes";
/// Set by an *image* (Dockerfile `LABEL`, inherited by its containers): the command inside it
/// that prints a cache's counters as one JSON line, `{"hits":…,"misses":…}`; `status` runs
/// it to show the hit ratio (the stage-5 cache and the stage-6 CDN edge carry it).
pub const STATS: &str = "io.scale.stats";
/// Set by an *image*: the command inside it that prints the project's key numbers (request
/// rate, error rate, p95 latency, replication lag, queue depth, alerts firing) as one JSON
/// line, from a metrics store; `status` runs it so nobody has to open the store's UI (the
/// stage-10 Prometheus carries it).
pub const METRICS: &str = "io.scale.metrics";
/// Set by an *image*: the command inside it that prints a queue's state as one JSON line,
/// `{"depth":…,"pending":…,"consumers":…}`; `status` shows it, and a service autoscaled with
/// `metric: queue_depth` scales on its `depth` (the stage-9 queue carries it).
pub const QUEUE: &str = "io.scale.queue";

/// Set by a *blueprint* on a service: what the service is, as a noun phrase in the book's
/// words (`a Redis read-through cache`); `scale diff` names a new or removed service with it
/// instead of "a plain service". Only a description: nothing else reads it.
pub const ROLE: &str = "io.scale.role";
/// On a container that shares another's network stack (`network_mode: service:NAME`): that
/// container's spec hash, so replacing it (a new network namespace) replaces this one too, as
/// Compose recreates it.
pub const NETWORK_FROM: &str = "io.scale.network-from";

/// The data centre (zone) a container is placed in, from its service's `zones:` list:
/// `scale chaos stop dc:dc-a` breaks every container carrying `dc-a`.
pub const ZONE: &str = "io.scale.zone";

/// When the project may be reaped (RFC 3339), on everything `apply --ttl` creates.
pub const EXPIRES_AT: &str = crate::spec::EXPIRES_AT_LABEL;

/// Label on a primary marker volume: the service whose primary it names.
pub const MARKER_SERVICE_LABEL: &str = "io.scale.primary-of";
/// Label on a primary marker volume: the node number that is primary.
pub const MARKER_NODE_LABEL: &str = "io.scale.primary-node";
/// Label on a primary marker volume: when the failover made it (Unix seconds), newest wins.
pub const MARKER_SINCE_LABEL: &str = "io.scale.primary-since";

/// Label on a load balancer's pool-record volume: the ID of the container whose pool it
/// records (a record left by a replaced load balancer counts for nobody).
pub const POOL_OF_LABEL: &str = "io.scale.pool-of";
/// Label on a load balancer's pool-record volume: the pool, as JSON.
pub const POOL_RECORD_LABEL: &str = "io.scale.pool";

/// Label on a replica-count marker volume: the autoscaled service it counts.
pub const SCALED_SERVICE_LABEL: &str = "io.scale.replicas-of";
/// Label on a replica-count marker volume: how many containers the autoscaler chose.
pub const SCALED_COUNT_LABEL: &str = "io.scale.replicas";
/// Label on a replica-count marker volume: when that was decided (Unix seconds), newest wins;
/// also the last change the cooldown counts from.
pub const SCALED_SINCE_LABEL: &str = "io.scale.replicas-since";

/// The labels a container is created with: the user's, then scale's (which win).
pub fn container_labels(spec: &ContainerSpec, project: &str) -> BTreeMap<String, String> {
    let mut labels = spec.labels.clone();
    labels.insert(PROJECT.into(), project.into());
    labels.insert(SERVICE.into(), spec.service.clone());
    labels.insert(REPLICA.into(), spec.replica.to_string());
    labels.insert(SPEC_HASH.into(), spec.hash());
    labels.insert(KIND.into(), kind_value(spec.kind).into());
    labels.insert(SPEC.into(), serde_json::to_string(spec).expect("a ContainerSpec always serializes"));
    if !spec.carried.is_empty() {
        labels.insert(CARRIED_VOLUMES.into(), spec.carried.values().cloned().collect::<Vec<_>>().join(","));
    }
    if let Some(previous) = &spec.previous {
        labels
            .insert(PREVIOUS_SPEC.into(), serde_json::to_string(previous).expect("a ContainerSpec always serializes"));
    }
    labels
}

/// The label filter that selects a project's resources.
pub fn project_filter(project: &str) -> String {
    format!("{PROJECT}={project}")
}

/// The [`KIND`] label's value for a container of `kind` (`service` for a plain one).
pub fn kind_value(kind: Option<Kind>) -> &'static str {
    kind.map_or("service", Kind::as_str)
}

/// The kind a resource's [`KIND`] label names; `None` for a plain service or no label.
pub fn kind_of(labels: &BTreeMap<String, String>) -> Option<Kind> {
    let value = labels.get(KIND)?;
    Kind::ALL.iter().find(|(name, _)| name == value).map(|(_, kind)| *kind)
}
