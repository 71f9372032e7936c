//! Breaking things on purpose: which of the project's containers a `scale chaos` target
//! names. Pure: the roles of database nodes are looked up by the caller and passed in.

use std::collections::BTreeMap;

use crate::observed::{ObservedContainer, ObservedState, RunState};

/// What `scale chaos` does to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// SIGKILL: the process dies at once, as in a crash.
    Kill,
    /// A clean stop (SIGTERM, then SIGKILL after the grace period).
    Stop,
    /// Freeze every process: the container still exists but answers nothing.
    Pause,
    /// Cut it off every network: alive but unreachable, as in a partition.
    Disconnect,
}

impl Fault {
    /// The past participle the messages use (`killed shop-web-1 ...`).
    pub fn done(self) -> &'static str {
        match self {
            Fault::Kill => "killed",
            Fault::Stop => "stopped",
            Fault::Pause => "paused",
            Fault::Disconnect => "disconnected",
        }
    }

    /// Whether `--for` can restore this fault afterwards.
    pub fn is_reversible(self) -> bool {
        matches!(self, Fault::Pause | Fault::Disconnect)
    }
}

/// Finds the container a target names, among the project's containers only:
/// - a container name (`shop-web-2`) or its short form (`web-2`);
/// - `<svc>-primary` / `<svc>-replica`: the current primary / a running replica of a
///   `kind: postgres` service (`roles` maps container name → `primary` or `replica`);
/// - a service name (`web`): one of its running containers, picked with `pick`.
pub fn resolve<'a>(
    project: &str,
    observed: &'a ObservedState,
    target: &str,
    roles: &BTreeMap<String, String>,
    pick: usize,
) -> Result<&'a ObservedContainer, String> {
    let by_name = |name: &str| observed.containers.get(name);
    if let Some(c) = by_name(target).or_else(|| by_name(&format!("{project}-{target}"))) {
        return Ok(c);
    }
    let running = |c: &&ObservedContainer| c.state == RunState::Running;
    for (suffix, role) in [("-primary", "primary"), ("-replica", "replica")] {
        if let Some(service) = target.strip_suffix(suffix) {
            let nodes: Vec<&ObservedContainer> = observed
                .containers
                .values()
                .filter(|c| c.service() == Some(service))
                .filter(running)
                .filter(|c| roles.get(&c.name).map(String::as_str) == Some(role))
                .collect();
            if !nodes.is_empty() {
                return Ok(nodes[pick % nodes.len()]);
            }
            if observed.containers.values().any(|c| c.service() == Some(service)) {
                return Err(format!("no running {role} of service {service} right now (see `scale status`)"));
            }
        }
    }
    let replicas: Vec<&ObservedContainer> =
        observed.containers.values().filter(|c| c.service() == Some(target)).filter(running).collect();
    if !replicas.is_empty() {
        return Ok(replicas[pick % replicas.len()]);
    }
    if observed.containers.values().any(|c| c.service() == Some(target)) {
        return Err(format!("service {target} has no running container to break"));
    }
    let mut known: Vec<String> = observed.containers.keys().cloned().collect();
    known.extend(observed.containers.values().filter_map(|c| c.service().map(str::to_string)));
    known.sort();
    known.dedup();
    let hint = match crate::diag::did_you_mean(target, known.iter().map(String::as_str)) {
        Some(best) => format!("; did you mean `{best}`?"),
        None if known.is_empty() => format!("; project {project} has no containers"),
        None => format!("; targets: {}", known.join(", ")),
    };
    Err(format!("no container or service `{target}` in project {project}{hint}"))
}

/// The prefix of a target that names a whole data centre: `dc:dc-a`.
pub const ZONE_PREFIX: &str = "dc:";

/// The data centre a `dc:NAME` target names, if it is one.
pub fn zone_target(target: &str) -> Option<&str> {
    target.strip_prefix(ZONE_PREFIX)
}

/// Every running container placed in data centre `zone` (the `io.scale.zone` label its
/// service's `zones:` gave it), sorted by name: losing a data centre is losing all of them at
/// once. An error names the zones that exist when none is running there.
pub fn resolve_zone<'a>(
    project: &str,
    observed: &'a ObservedState,
    zone: &str,
) -> Result<Vec<&'a ObservedContainer>, String> {
    let zone_of = |c: &ObservedContainer| c.labels.get(crate::labels::ZONE).cloned();
    let placed: Vec<&ObservedContainer> =
        observed.containers.values().filter(|c| zone_of(c).as_deref() == Some(zone)).collect();
    let running: Vec<&ObservedContainer> = placed.iter().copied().filter(|c| c.state == RunState::Running).collect();
    if !running.is_empty() {
        return Ok(running);
    }
    if !placed.is_empty() {
        return Err(format!("data centre {zone} has no running container to break (see `scale status`)"));
    }
    let mut zones: Vec<String> = observed.containers.values().filter_map(zone_of).collect();
    zones.sort();
    zones.dedup();
    let hint = match crate::diag::did_you_mean(zone, zones.iter().map(String::as_str)) {
        Some(best) => format!("; did you mean `{ZONE_PREFIX}{best}`?"),
        None if zones.is_empty() => "; no service of it has `zones:`".to_string(),
        None => format!("; data centres: {}", zones.join(", ")),
    };
    Err(format!("no container of project {project} is placed in data centre `{zone}`{hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str, service: &str, state: RunState) -> ObservedContainer {
        ObservedContainer {
            id: format!("id-{name}"),
            name: name.into(),
            labels: BTreeMap::from([(crate::labels::SERVICE.to_string(), service.to_string())]),
            image: "x".into(),
            state,
            health: None,
            exit_code: None,
            ports: vec![],
            networks: vec![],
        }
    }

    fn observed() -> ObservedState {
        let mut o = ObservedState { project: "shop".into(), ..Default::default() };
        for (n, s, st) in [
            ("shop-web-1", "web", RunState::Running),
            ("shop-web-2", "web", RunState::Exited),
            ("shop-db-1", "db", RunState::Running),
            ("shop-db-2", "db", RunState::Running),
            ("shop-db-3", "db", RunState::Running),
        ] {
            o.containers.insert(n.into(), container(n, s, st));
        }
        o
    }

    #[test]
    fn names_short_names_services_and_roles() {
        let o = observed();
        let roles = BTreeMap::from([
            ("shop-db-1".to_string(), "replica".to_string()),
            ("shop-db-2".to_string(), "primary".to_string()),
            ("shop-db-3".to_string(), "replica".to_string()),
        ]);
        assert_eq!(resolve("shop", &o, "shop-web-2", &roles, 0).unwrap().name, "shop-web-2");
        assert_eq!(resolve("shop", &o, "web-2", &roles, 0).unwrap().name, "shop-web-2");
        assert_eq!(resolve("shop", &o, "web", &roles, 7).unwrap().name, "shop-web-1", "only running ones");
        assert_eq!(resolve("shop", &o, "db-primary", &roles, 3).unwrap().name, "shop-db-2");
        let replica = resolve("shop", &o, "db-replica", &roles, 1).unwrap().name.clone();
        assert!(replica == "shop-db-1" || replica == "shop-db-3");
    }

    #[test]
    fn a_data_centre_is_every_running_container_placed_in_it() {
        let mut o = observed();
        for (name, zone) in
            [("shop-web-1", "dc-a"), ("shop-web-2", "dc-a"), ("shop-db-1", "dc-a"), ("shop-db-2", "dc-b")]
        {
            o.containers.get_mut(name).unwrap().labels.insert(crate::labels::ZONE.into(), zone.into());
        }
        assert_eq!(zone_target("dc:dc-a"), Some("dc-a"));
        assert_eq!(zone_target("web"), None);
        let names: Vec<&str> = resolve_zone("shop", &o, "dc-a").unwrap().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["shop-db-1", "shop-web-1"], "shop-web-2 is not running");
        o.containers.get_mut("shop-db-2").unwrap().state = RunState::Exited;
        assert!(resolve_zone("shop", &o, "dc-b").unwrap_err().contains("no running container"));
        let err = resolve_zone("shop", &o, "dc-c").unwrap_err();
        assert!(err.contains("did you mean `dc:dc-"), "{err}");
    }

    #[test]
    fn unknown_targets_say_what_exists() {
        let o = observed();
        let err = resolve("shop", &o, "wbe", &BTreeMap::new(), 0).unwrap_err();
        assert!(err.contains("did you mean `web`"), "{err}");
        let err = resolve("shop", &o, "db-primary", &BTreeMap::new(), 0).unwrap_err();
        assert!(err.contains("no running primary"), "{err}");
    }
}
