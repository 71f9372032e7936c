//! Throw-away projects: `apply --ttl` stamps an expiry on everything it creates, `scale reap`
//! removes the projects whose expiry passed, `status --all` lists every project on the engine.
//! Pure: the engine's resources come in as [`Resource`]s, decisions go out.
//!
//! A project counts as expiring only when **every one of its containers** carries the
//! expiry label: a container without it was made by an apply without `--ttl` (or by hand,
//! labelled like ours), and such a project is never reaped. Its expiry is the latest one its
//! resources carry, so an apply with a later `--ttl` extends it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::labels;
use crate::spec::DesiredState;

/// Stamps `expires_at` on every network, volume and container of the desired state. The
/// container spec hash leaves the label out, so stamping never forces a replacement.
pub fn stamp(desired: &mut DesiredState, expires_at: SystemTime) {
    let value = format_time(expires_at);
    for n in desired.networks.values_mut() {
        n.labels.insert(labels::EXPIRES_AT.into(), value.clone());
    }
    for v in desired.volumes.values_mut() {
        v.labels.insert(labels::EXPIRES_AT.into(), value.clone());
    }
    for c in desired.containers.values_mut() {
        c.labels.insert(labels::EXPIRES_AT.into(), value.clone());
    }
}

/// RFC 3339 in UTC to the second (`2026-11-30T05:13:18Z`), the label's format.
pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Reads the label's value back; `None` when it is not a time (left alone, never reaped).
pub fn parse_time(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(text.trim()).ok()
}

/// What a labelled resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    Container,
    Network,
    Volume,
}

/// One resource carrying `io.scale.project`, whatever its project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub kind: ResourceKind,
    pub name: String,
    pub project: String,
    pub labels: BTreeMap<String, String>,
    pub created: Option<SystemTime>,
    /// Containers only: whether it runs.
    pub running: bool,
}

/// One project on the engine, summed up from its resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectInfo {
    pub project: String,
    pub containers: usize,
    pub running: usize,
    pub networks: usize,
    pub volumes: usize,
    /// The oldest creation time among its resources.
    pub created: Option<SystemTime>,
    /// The latest expiry its resources carry.
    pub expires_at: Option<SystemTime>,
    /// Some container carries no (readable) expiry: the project never expires.
    pub pinned: bool,
}

impl ProjectInfo {
    /// Whether `scale reap` removes it at `now`.
    pub fn expired(&self, now: SystemTime) -> bool {
        !self.pinned && self.expires_at.is_some_and(|at| at <= now)
    }

    /// The expiry that counts: none when a container is pinned.
    pub fn effective_expiry(&self) -> Option<SystemTime> {
        if self.pinned { None } else { self.expires_at }
    }
}

/// Groups resources by project, ordered by project name.
pub fn summarize(resources: &[Resource]) -> Vec<ProjectInfo> {
    let mut by_project: BTreeMap<&str, ProjectInfo> = BTreeMap::new();
    for r in resources {
        let info = by_project.entry(&r.project).or_insert_with(|| ProjectInfo {
            project: r.project.clone(),
            containers: 0,
            running: 0,
            networks: 0,
            volumes: 0,
            created: None,
            expires_at: None,
            pinned: false,
        });
        let expiry = r.labels.get(labels::EXPIRES_AT).and_then(|t| parse_time(t));
        match r.kind {
            ResourceKind::Container => {
                info.containers += 1;
                info.running += usize::from(r.running);
                info.pinned |= expiry.is_none();
            }
            ResourceKind::Network => info.networks += 1,
            ResourceKind::Volume => info.volumes += 1,
        }
        if let Some(at) = expiry {
            info.expires_at = Some(info.expires_at.map_or(at, |seen| seen.max(at)));
        }
        if let Some(created) = r.created {
            info.created = Some(info.created.map_or(created, |seen| seen.min(created)));
        }
    }
    by_project.into_values().collect()
}

/// A short human duration: `45s`, `3m`, `2h 5m`, `4d 3h`.
pub fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// `in 1h 59m`, `expired 3m ago`, or `never`.
pub fn expiry_text(info: &ProjectInfo, now: SystemTime) -> String {
    match info.effective_expiry() {
        None => "never".into(),
        Some(at) => match at.duration_since(now) {
            Ok(left) => format!("in {}", short_duration(left)),
            Err(past) => format!("expired {} ago", short_duration(past.duration())),
        },
    }
}

/// How old a project is at `now` (`-` when the engine gave no creation time).
pub fn age_text(info: &ProjectInfo, now: SystemTime) -> String {
    info.created.map_or("-".into(), |c| short_duration(now.duration_since(c).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn res(kind: ResourceKind, project: &str, expires: Option<u64>, created: u64) -> Resource {
        let mut labels = BTreeMap::from([(labels::PROJECT.to_string(), project.to_string())]);
        if let Some(e) = expires {
            labels.insert(labels::EXPIRES_AT.into(), format_time(at(e)));
        }
        Resource {
            kind,
            name: format!("{project}-x"),
            project: project.into(),
            labels,
            created: Some(at(created)),
            running: true,
        }
    }

    #[test]
    fn the_label_round_trips_in_rfc3339() {
        let t = at(1_800_000_000);
        assert_eq!(format_time(t), "2027-01-15T08:00:00Z");
        assert_eq!(parse_time(&format_time(t)), Some(t));
        assert_eq!(parse_time("tomorrow"), None);
    }

    #[test]
    fn only_projects_whose_every_container_expires_are_reaped() {
        use ResourceKind::*;
        let resources = vec![
            res(Container, "ci-1", Some(100), 10),
            res(Network, "ci-1", Some(100), 5),
            res(Container, "dev", None, 10),
            res(Network, "dev", None, 10),
            res(Container, "mixed", Some(100), 10),
            res(Container, "mixed", None, 10),
            res(Container, "later", Some(100), 10),
            res(Container, "later", Some(500), 10),
        ];
        let infos = summarize(&resources);
        let names: Vec<&str> = infos.iter().map(|i| i.project.as_str()).collect();
        assert_eq!(names, ["ci-1", "dev", "later", "mixed"]);
        let expired: Vec<&str> = infos.iter().filter(|i| i.expired(at(200))).map(|i| i.project.as_str()).collect();
        assert_eq!(expired, ["ci-1"], "no TTL, a pinned container or a later expiry keeps a project");
        assert_eq!(infos[0].created, Some(at(5)), "age counts from the oldest resource");
        assert_eq!((infos[0].containers, infos[0].networks, infos[0].running), (1, 1, 1));
        assert!(infos[2].expired(at(500)), "the latest expiry counts");
    }

    #[test]
    fn stamping_labels_everything_but_keeps_the_spec_hash() {
        let mut desired = DesiredState::default();
        desired.networks.insert(
            "p_n".into(),
            crate::spec::NetworkSpec {
                name: "p_n".into(),
                internal: false,
                labels: BTreeMap::new(),
                ..Default::default()
            },
        );
        desired.volumes.insert("p_v".into(), crate::spec::VolumeSpec { name: "p_v".into(), labels: BTreeMap::new() });
        let spec: crate::spec::ContainerSpec = serde_json::from_value(serde_json::json!({
            "name": "p-web-1", "service": "web", "replica": 1, "kind": null, "image": "i:1",
            "command": null, "entrypoint": null, "env": {}, "ports": [], "networks": [], "mounts": [],
            "healthcheck": null, "restart": "no", "labels": {}, "hostname": "web"
        }))
        .expect("a container spec");
        let before = spec.hash();
        desired.containers.insert(spec.name.clone(), spec);
        stamp(&mut desired, at(1_800_000_000));
        let c = &desired.containers["p-web-1"];
        assert_eq!(c.labels[labels::EXPIRES_AT], "2027-01-15T08:00:00Z");
        assert_eq!(c.hash(), before);
        assert!(desired.networks["p_n"].labels.contains_key(labels::EXPIRES_AT));
        assert!(desired.volumes["p_v"].labels.contains_key(labels::EXPIRES_AT));
    }

    #[test]
    fn durations_read_short() {
        assert_eq!(short_duration(Duration::from_secs(45)), "45s");
        assert_eq!(short_duration(Duration::from_secs(180)), "3m");
        assert_eq!(short_duration(Duration::from_secs(7500)), "2h 5m");
        assert_eq!(short_duration(Duration::from_secs(4 * 86400 + 3 * 3600)), "4d 3h");
        let info = summarize(&[res(ResourceKind::Container, "p", Some(1000), 100)]).remove(0);
        assert_eq!(expiry_text(&info, at(880)), "in 2m");
        assert_eq!(expiry_text(&info, at(1180)), "expired 3m ago");
        assert_eq!(age_text(&info, at(160)), "1m");
    }
}
