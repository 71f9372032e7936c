//! Data follows the learner between stage 1 (SQLite on the web server's volume) and stage 2
//! (PostgreSQL): which migrations a plan needs, read from the desired and observed state.
//!
//! - **1 → 2** (`to-postgres`): a desired web container has `DATABASE_URL` and mounts a
//!   volume that its running predecessor used as its embedded database (mounted, no
//!   `DATABASE_URL`). The plan first creates a pending marker volume (`<volume>-migrating`),
//!   then brings the tiers up as usual, then copies through the new web container and removes
//!   the marker. An apply interrupted anywhere in between finds the marker and copies again
//!   (the copy is an upsert).
//! - **2 → 1** (`to-sqlite`): a desired web container mounts the volume without
//!   `DATABASE_URL`, and its running predecessor has both: the copy back runs first, in the
//!   predecessor, and every removal and the web container's replacement wait for it, so the
//!   data tier is still there while it is read.

use std::collections::BTreeMap;

use super::MigrationDirection;
use crate::model::Kind;
use crate::observed::{ObservedState, RunState};
use crate::spec::{ContainerSpec, DesiredState, MountSourceSpec, VolumeSpec, container_name};

/// The label on a pending-migration marker volume: the volume whose data is on its way.
pub const MIGRATING_LABEL: &str = "io.scale.migrating";

/// One copy a plan makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The web container that runs the copy (the new one for 1 → 2, the old one for 2 → 1).
    pub container: String,
    pub direction: MigrationDirection,
    pub volume: String,
    pub database: String,
    /// 1 → 2 only: the pending marker, and whether it exists already.
    pub marker: Option<(VolumeSpec, bool)>,
}

fn volumes(spec: &ContainerSpec) -> impl Iterator<Item = &str> {
    spec.mounts.iter().filter_map(|m| match &m.source {
        MountSourceSpec::Volume(v) => Some(v.as_str()),
        _ => None,
    })
}

fn uses_database(spec: &ContainerSpec) -> bool {
    spec.env.contains_key("DATABASE_URL")
}

/// The pending marker of a copy of `volume` into the data tier.
pub fn marker_volume(project: &str, volume: &str) -> VolumeSpec {
    VolumeSpec {
        name: format!("{volume}-migrating"),
        labels: BTreeMap::from([
            (crate::labels::PROJECT.to_string(), project.to_string()),
            (MIGRATING_LABEL.to_string(), volume.to_string()),
        ]),
    }
}

/// The copies between embedded and tiered data this plan needs.
pub fn migrations(desired: &DesiredState, observed: &ObservedState) -> Vec<Migration> {
    let mut out = Vec::new();
    for spec in desired.containers.values().filter(|c| c.kind.is_none()) {
        let old = observed.containers.get(&spec.name);
        let old_spec = old.and_then(|c| c.spec());
        for volume in volumes(spec) {
            let old_mounts = old_spec.as_ref().is_some_and(|o| volumes(o).any(|v| v == volume));
            let old_uses_db = old_spec.as_ref().is_some_and(uses_database);
            if uses_database(spec) {
                let Some(database) = desired_primary(desired) else { continue };
                let marker = marker_volume(&desired.project, volume);
                let pending = observed.volumes.contains_key(&marker.name);
                if pending || (old_mounts && !old_uses_db) {
                    out.push(Migration {
                        container: spec.name.clone(),
                        direction: MigrationDirection::ToPostgres,
                        volume: volume.to_string(),
                        database,
                        marker: Some((marker, pending)),
                    });
                }
            } else if old_mounts && old_uses_db && old.is_some_and(|c| c.state == RunState::Running) {
                let Some(database) = observed_primary(observed) else { continue };
                out.push(Migration {
                    container: spec.name.clone(),
                    direction: MigrationDirection::ToSqlite,
                    volume: volume.to_string(),
                    database,
                    marker: None,
                });
            }
        }
    }
    out
}

/// The primary container of the blueprint's (first) postgres service.
fn desired_primary(desired: &DesiredState) -> Option<String> {
    let service = desired.services.iter().find(|s| s.kind == Some(Kind::Postgres))?;
    Some(container_name(&desired.project, &service.name, service.leader.unwrap_or(1)))
}

/// The running primary of the project's (first) postgres service, as its markers say.
fn observed_primary(observed: &ObservedState) -> Option<String> {
    let primaries = observed.primaries();
    observed
        .containers
        .values()
        .filter(|c| c.kind() == Some(Kind::Postgres) && c.state == RunState::Running)
        .find(|c| {
            let service = c.service().unwrap_or_default();
            c.replica() == Some(primaries.get(service).map_or(1, |(n, _)| *n))
        })
        .map(|c| c.name.clone())
}
