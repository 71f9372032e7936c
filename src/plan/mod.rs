//! The planner: a pure diff of the desired state against an observed snapshot. Each action
//! carries its reason and the actions it must wait for, so the executor decides nothing and
//! `scale plan` prints exactly what `scale apply` runs.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::spec::{ContainerSpec, ImageSpec, NetworkSpec, Readiness, VolumeSpec};

pub mod autoscale;
mod checks;
mod destroy;
mod migrate;
mod planner;
mod primaries;
pub mod reason;
mod render;
mod replicas;
pub mod rollout;
mod scope;
mod shards;
pub mod units;

use checks::stop_grace;
pub use destroy::destroy_plan;
pub use migrate::{MIGRATING_LABEL, Migration, migrations};
pub use planner::plan;
pub use primaries::assign_primaries;
pub use render::{render_json, render_text};
pub use replicas::{assign_replicas, scaled_markers, set_replicas};
pub use rollout::{Rollout, rollback_plan};
pub use scope::{Scope, ScopeError, needed_services, plan_scoped};
pub use shards::{Reshard, ShardMove, reshard};

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Index of an action within its plan.
pub type ActionId = usize;

/// What one action does.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Build {
        image: ImageSpec,
    },
    Pull {
        reference: String,
    },
    CreateNetwork {
        spec: NetworkSpec,
    },
    RemoveNetwork {
        name: String,
    },
    CreateVolume {
        spec: VolumeSpec,
    },
    /// Create, write `files` into it, start, and wait until ready.
    CreateContainer {
        spec: ContainerSpec,
        readiness: Readiness,
        files: Vec<FileSpec>,
    },
    /// Drain it from load balancers, stop and remove the old container, then create, start
    /// and wait for the new one, and put it back into rotation.
    RecreateContainer {
        old_id: String,
        old_grace_secs: u64,
        spec: ContainerSpec,
        readiness: Readiness,
        files: Vec<FileSpec>,
        drains: Vec<Drain>,
        /// Start the new container under a temporary name before the old one stops; false
        /// when a fixed host port or a writable volume forces stopping the old one first.
        start_first: bool,
        /// How long the new container must stay ready before it counts (the rollout's
        /// `monitor`), in milliseconds.
        #[serde(default, skip_serializing_if = "is_zero")]
        monitor_ms: u64,
        /// Pause before starting (the rollout's `delay` between batches), in milliseconds.
        #[serde(default, skip_serializing_if = "is_zero")]
        delay_ms: u64,
    },
    /// A replacement was interrupted after its old container was removed: give the new one
    /// its final name, start it if needed, and wait until ready.
    FinishReplacement {
        id: String,
        temp_name: String,
        spec: ContainerSpec,
        readiness: Readiness,
    },
    /// Write a new configuration into a running load balancer and reload it without drops.
    ReloadLoadBalancer {
        id: String,
        name: String,
        files: Vec<FileSpec>,
    },
    /// A database replica whose WAL is gone: mark its volume for re-seeding and restart it,
    /// so its entrypoint sets the old data aside (kept, never deleted) and takes a fresh base
    /// backup; wait until ready.
    ReseedReplica {
        id: String,
        name: String,
        grace_secs: u64,
        readiness: Readiness,
    },
    /// Attach a running container again to networks it was cut off from, with its aliases.
    Reconnect {
        id: String,
        name: String,
        networks: Vec<crate::spec::AttachmentSpec>,
    },
    /// Start (or unpause) an existing container and wait until ready.
    StartContainer {
        id: String,
        name: String,
        paused: bool,
        readiness: Readiness,
    },
    /// Drain it from load balancers, then stop and remove it (its volumes stay).
    RemoveContainer {
        id: String,
        name: String,
        grace_secs: u64,
        drains: Vec<Drain>,
        /// A database replica that leaves for good gives up its replication slot.
        #[serde(skip_serializing_if = "Option::is_none")]
        release_slot: Option<SlotRelease>,
        /// Delete its anonymous volumes too (`destroy --volumes`).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        anonymous_volumes: bool,
    },
    /// Delete a volume and its data (only `scale destroy --volumes` plans this).
    RemoveVolume {
        name: String,
    },
    /// Copy the users between the embedded SQLite file (`volume`) and the data tier by
    /// running the web image's `app.py migrate` in container `name` (an upsert: running it
    /// again gives the same result), then remove the pending-migration `marker` if any.
    MigrateData {
        name: String,
        direction: MigrationDirection,
        volume: String,
        /// The data tier's primary, for the messages.
        database: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        marker: Option<String>,
    },
    /// Move the users' buckets between shards online by running the web image's `shards.py`
    /// in container `runner`: create the map if asked, each move (lock the bucket, copy,
    /// switch the map, delete), then drop the map if asked. Every step is safe to repeat.
    Reshard {
        runner: String,
        directory: String,
        shards: Vec<String>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        create_map: bool,
        moves: Vec<ShardMove>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        drop_map: bool,
    },
}

/// Which way a migration copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigrationDirection {
    /// Stage 1 → 2: from the SQLite file into PostgreSQL.
    ToPostgres,
    /// Stage 2 → 1: from PostgreSQL back into the SQLite file.
    ToSqlite,
}

impl MigrationDirection {
    /// The argument of `app.py migrate`.
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationDirection::ToPostgres => "to-postgres",
            MigrationDirection::ToSqlite => "to-sqlite",
        }
    }
}

/// What an action does, as users read it in a plan. The order is the plan summary's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    Build,
    Pull,
    Create,
    Recreate,
    Reseed,
    Reload,
    Start,
    Reconnect,
    Migrate,
    Reshard,
    Remove,
}

impl Verb {
    /// The word in plans, progress lines and the JSON documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Build => "build",
            Verb::Pull => "pull",
            Verb::Create => "create",
            Verb::Recreate => "recreate",
            Verb::Reseed => "reseed",
            Verb::Reload => "reload",
            Verb::Start => "start",
            Verb::Reconnect => "reconnect",
            Verb::Migrate => "migrate",
            Verb::Reshard => "reshard",
            Verb::Remove => "remove",
        }
    }
}

impl std::fmt::Display for Verb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of engine resource an action acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    Image,
    Network,
    Volume,
    Container,
    /// The rows of a sharded table (a reshard moves users between databases).
    Users,
}

impl Resource {
    /// The word in the JSON documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Image => "image",
            Resource::Network => "network",
            Resource::Volume => "volume",
            Resource::Container => "container",
            Resource::Users => "users",
        }
    }
}

impl Op {
    /// The verb users see: create, recreate, start, remove, build, pull.
    pub fn verb(&self) -> Verb {
        match self {
            Op::Build { .. } => Verb::Build,
            Op::Pull { .. } => Verb::Pull,
            Op::CreateNetwork { .. } | Op::CreateVolume { .. } | Op::CreateContainer { .. } => Verb::Create,
            Op::RecreateContainer { .. } | Op::FinishReplacement { .. } => Verb::Recreate,
            Op::ReloadLoadBalancer { .. } => Verb::Reload,
            Op::MigrateData { .. } => Verb::Migrate,
            Op::Reshard { .. } => Verb::Reshard,
            Op::StartContainer { .. } => Verb::Start,
            Op::ReseedReplica { .. } => Verb::Reseed,
            Op::Reconnect { .. } => Verb::Reconnect,
            Op::RemoveNetwork { .. } | Op::RemoveContainer { .. } | Op::RemoveVolume { .. } => Verb::Remove,
        }
    }

    /// What kind of resource it acts on.
    pub fn resource(&self) -> Resource {
        match self {
            Op::Build { .. } | Op::Pull { .. } => Resource::Image,
            Op::CreateNetwork { .. } | Op::RemoveNetwork { .. } => Resource::Network,
            Op::CreateVolume { .. } | Op::RemoveVolume { .. } | Op::MigrateData { .. } => Resource::Volume,
            Op::Reshard { .. } => Resource::Users,
            _ => Resource::Container,
        }
    }

    /// The resource's name as users see it (`shop-web-2`, `network shop_private`, `shop/web`).
    pub fn target(&self) -> String {
        match self {
            Op::Build { image } => image.repository.clone(),
            Op::Pull { reference } => reference.clone(),
            Op::CreateNetwork { spec } => format!("network {}", spec.name),
            Op::RemoveNetwork { name } => format!("network {name}"),
            Op::CreateVolume { spec } => format!("volume {}", spec.name),
            Op::RemoveVolume { name } => format!("volume {name}"),
            Op::CreateContainer { spec, .. }
            | Op::RecreateContainer { spec, .. }
            | Op::FinishReplacement { spec, .. } => spec.name.clone(),
            Op::StartContainer { name, .. } | Op::RemoveContainer { name, .. } | Op::ReseedReplica { name, .. } => {
                name.clone()
            }
            Op::ReloadLoadBalancer { name, .. } | Op::Reconnect { name, .. } => name.clone(),
            Op::MigrateData { direction: MigrationDirection::ToPostgres, volume, database, .. } => {
                format!("{volume} (SQLite) → {database}")
            }
            Op::MigrateData { direction: MigrationDirection::ToSqlite, volume, database, .. } => {
                format!("{database} → {volume} (SQLite)")
            }
            Op::Reshard { shards, .. } => format!("users over {}", shards.join(", ")),
        }
    }

    /// The bare name of the resource (no "network " prefix).
    pub fn name(&self) -> String {
        match self {
            Op::CreateNetwork { spec } => spec.name.clone(),
            Op::RemoveNetwork { name } => name.clone(),
            Op::CreateVolume { spec } => spec.name.clone(),
            Op::RemoveVolume { name } => name.clone(),
            _ => self.target(),
        }
    }

    /// The container spec this action brings into being, if any.
    pub fn container_spec(&self) -> Option<&ContainerSpec> {
        match self {
            Op::CreateContainer { spec, .. }
            | Op::RecreateContainer { spec, .. }
            | Op::FinishReplacement { spec, .. } => Some(spec),
            _ => None,
        }
    }

    /// Whether this action takes something away (asked about on a TTY).
    pub fn is_destructive(&self) -> bool {
        matches!(
            self,
            Op::RemoveContainer { .. }
                | Op::RemoveNetwork { .. }
                | Op::RemoveVolume { .. }
                | Op::RecreateContainer { .. }
        )
    }
}

/// A generated file written into a container (load-balancer configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSpec {
    pub path: String,
    pub contents: String,
}

/// Take `server` out of `backend` on a running load balancer before stopping it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drain {
    pub balancer_id: String,
    pub balancer: String,
    pub backend: String,
    pub server: String,
}

/// Drop a departed replica's replication slot on the primary, which would otherwise keep
/// WAL for it without end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotRelease {
    pub primary_id: String,
    pub primary: String,
    pub slot: String,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Action {
    pub id: ActionId,
    pub op: Op,
    /// Why, in a user's words ("environment GREETING changed (hello → hi)").
    pub reason: String,
    /// Actions that must finish first.
    pub after: Vec<ActionId>,
    /// The service a container action belongs to.
    pub service: Option<String>,
}

/// Everything `apply` will do, in order, with reasons.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Plan {
    pub project: String,
    pub actions: Vec<Action>,
    /// Things worth saying that are not actions (a volume left in place, ...).
    pub notes: Vec<String>,
    /// Each service whose replicas are replaced: its batches and what a failure does.
    pub rollouts: Vec<Rollout>,
}

impl Plan {
    /// The rollout an action belongs to, if it replaces a replica.
    pub fn rollout_of(&self, id: ActionId) -> Option<&Rollout> {
        self.rollouts.iter().find(|r| r.batches.iter().flatten().any(|a| *a == id))
    }

    /// Whether applying would change anything.
    pub fn has_changes(&self) -> bool {
        !self.actions.is_empty()
    }

    /// How many actions use each verb, for summaries.
    pub fn counts(&self) -> BTreeMap<Verb, usize> {
        let mut counts = BTreeMap::new();
        for a in &self.actions {
            *counts.entry(a.op.verb()).or_insert(0) += 1;
        }
        counts
    }
}

/// A desired state that cannot be reached by actions alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "network {name} exists with internal: {observed}, but the blueprint says internal: {desired}; \
         a network cannot be changed in place: run `scale destroy` (volumes are kept) and apply again"
    )]
    NetworkChanged { name: String, observed: bool, desired: bool },
}

/// The suffix of a replacement's temporary name. Service names cannot contain a dot, so no
/// container of ours ends with it otherwise.
pub const TEMP_SUFFIX: &str = ".next";

/// What a start-first replacement renames the old container to (followed by the start of
/// its ID) once it is drained, so the new one takes the name, and the load balancer's server
/// its address, while the old one stops. A container left so by an interrupted run is
/// removed by the next plan.
pub const RETIRED_MARK: &str = ".old-";

/// The name a drained old container steps aside to.
pub fn retired_name(name: &str, id: &str) -> String {
    format!("{name}{RETIRED_MARK}{}", &id[..id.len().min(12)])
}

/// Whether a container is the old one of a replacement, stepped aside (see [`RETIRED_MARK`]).
pub fn is_retired(name: &str) -> bool {
    name.contains(RETIRED_MARK)
}

/// Docker's default time between SIGTERM and SIGKILL.
pub const DEFAULT_STOP_GRACE_SECS: u64 = 10;
