//! What one blueprint adds to another, as data and in the book's words: "stage 3 adds a load
//! balancer (lb) in front of web; web becomes private: it no longer publishes 8080; web 1 → 2
//! replicas". Both sides are expanded for the same project, so the containers they share are
//! compared field by field exactly as the planner explains a replacement
//! ([`crate::plan::reason::container_changes`]). Pure: no engine, no terminal.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde::Serialize;

use crate::model::{Blueprint, Kind, Service};
use crate::plan::reason::container_changes;
use crate::spec::DesiredState;

/// One side of the comparison.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    pub blueprint: &'a Blueprint,
    pub desired: &'a DesiredState,
}

/// One thing B does differently from A.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// `role` is the service's [`crate::labels::ROLE`] label; `publishes` its host ports
    /// (or `random → 80`), which a learner must know to reach it.
    ServiceAdded {
        service: String,
        kind: Option<Kind>,
        role: Option<String>,
        in_front_of: Option<String>,
        replicas: u32,
        publishes: Vec<String>,
    },
    ServiceRemoved {
        service: String,
        kind: Option<Kind>,
        role: Option<String>,
    },
    KindChanged {
        service: String,
        from: Option<Kind>,
        to: Option<Kind>,
    },
    Replicas {
        service: String,
        from: u32,
        to: u32,
    },
    ReadReplicas {
        service: String,
        from: u32,
        to: u32,
    },
    /// The number of clusters a `shards:` service spreads the users over changed (1: not
    /// sharded); `shards` names them all on B's side, shard 0 first.
    Sharded {
        service: String,
        from: u32,
        to: u32,
        shards: Vec<String>,
    },
    /// Host ports (or `random → 80`) B no longer publishes; `now_private` when none is left.
    Unpublished {
        service: String,
        ports: Vec<String>,
        now_private: bool,
    },
    Published {
        service: String,
        ports: Vec<String>,
        was_private: bool,
    },
    NetworkAdded {
        network: String,
        internal: bool,
    },
    NetworkRemoved {
        network: String,
    },
    NetworkInternal {
        network: String,
        internal: bool,
    },
    Joins {
        service: String,
        network: String,
    },
    Leaves {
        service: String,
        network: String,
    },
    VolumeAdded {
        volume: String,
    },
    VolumeRemoved {
        volume: String,
    },
    /// A container both sides have whose spec differs: the plan would replace it.
    Replaced {
        container: String,
        because: Vec<String>,
    },
    ContainersCreated {
        containers: Vec<String>,
    },
    ContainersRemoved {
        containers: Vec<String>,
    },
}

/// The difference between two blueprints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageDiff {
    /// How B is named in sentences: `stage 3`, or its file name.
    pub subject: String,
    pub changes: Vec<Change>,
}

impl StageDiff {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// How a blueprint is named in a sentence.
pub fn subject(bp: &Blueprint) -> String {
    match &bp.stage {
        Some(stage) => format!("stage {}", stage.number),
        None => bp.file.display().to_string(),
    }
}

/// Everything B changes relative to A.
pub fn diff(a: Side, b: Side) -> StageDiff {
    let mut changes = Vec::new();
    service_changes(a, b, &mut changes);
    network_changes(a, b, &mut changes);
    // Networks are named before who joins them.
    let joins = |c: &Change| matches!(c, Change::Joins { .. } | Change::Leaves { .. });
    let (moves, mut changes): (Vec<Change>, Vec<Change>) = changes.into_iter().partition(joins);
    changes.extend(moves);
    volume_changes(a, b, &mut changes);
    container_changes_of(a, b, &mut changes);
    StageDiff { subject: subject(b.blueprint), changes }
}

fn kind_of(s: &Service) -> Option<Kind> {
    s.kind.as_ref().map(|k| k.value)
}

/// What the blueprint says the service is (its `io.scale.role` label), if it says; a copy
/// that `shards:` made is named as the shard it is (it shares shard 0's labels otherwise).
fn role_of(s: &Service) -> Option<String> {
    if let Some(shard) = s.postgres.as_ref().and_then(|pg| pg.shard.as_ref()).filter(|sh| sh.index > 0) {
        return Some(format!("shard {} of {}'s users", shard.index, shard.directory));
    }
    s.labels.get(crate::labels::ROLE).map(|r| r.trim().to_string()).filter(|r| !r.is_empty())
}

/// How many clusters the users of `s` are spread over: its `shards:`, 1 when it has none (a
/// copy that `shards:` made counts as 1: the change is named on shard 0).
fn shard_count(s: &Service) -> u32 {
    s.postgres.as_ref().and_then(|pg| pg.shard.as_ref()).filter(|sh| sh.index == 0).map_or(1, |sh| sh.count)
}

/// Read replicas of a postgres service, or the replicas of anything else.
fn size(s: &Service) -> u32 {
    s.postgres.as_ref().map_or(s.replicas.value, |pg| pg.read_replicas.value)
}

fn service_changes(a: Side, b: Side, out: &mut Vec<Change>) {
    for s in &a.blueprint.services {
        if b.blueprint.service(&s.name).is_none() {
            out.push(Change::ServiceRemoved { service: s.name.clone(), kind: kind_of(s), role: role_of(s) });
        }
    }
    let added = b.blueprint.services.iter().filter(|s| a.blueprint.service(&s.name).is_none());
    // A load balancer first: it is what a learner sees of the step.
    let (front, rest): (Vec<&Service>, Vec<&Service>) = added.partition(|s| s.load_balancer.is_some());
    for s in front.into_iter().chain(rest) {
        let in_front_of = s.load_balancer.as_ref().map(|lb| lb.backend_service.value.clone());
        out.push(Change::ServiceAdded {
            service: s.name.clone(),
            kind: kind_of(s),
            role: role_of(s),
            in_front_of,
            replicas: size(s),
            publishes: port_words(s).into_iter().collect(),
        });
    }
    for new in &b.blueprint.services {
        let Some(old) = a.blueprint.service(&new.name) else { continue };
        port_changes(old, new, out);
        if shard_count(old) != shard_count(new) {
            let (from, to) = (shard_count(old), shard_count(new));
            let shards = (0..to).map(|i| crate::model::shard_name(&new.name, i)).collect();
            out.push(Change::Sharded { service: new.name.clone(), from, to, shards });
        }
        if kind_of(old) != kind_of(new) {
            out.push(Change::KindChanged { service: new.name.clone(), from: kind_of(old), to: kind_of(new) });
        } else if size(old) != size(new) {
            let (service, from, to) = (new.name.clone(), size(old), size(new));
            out.push(if new.postgres.is_some() {
                Change::ReadReplicas { service, from, to }
            } else {
                Change::Replicas { service, from, to }
            });
        }
        // A service that names no network is on the implicit `default` one.
        let nets = |s: &Service| -> BTreeSet<String> {
            let named: BTreeSet<String> = s.networks.iter().map(|n| n.name.value.clone()).collect();
            if named.is_empty() { BTreeSet::from([crate::spec::DEFAULT_NETWORK.to_string()]) } else { named }
        };
        let (old_nets, new_nets) = (nets(old), nets(new));
        for n in new_nets.difference(&old_nets) {
            out.push(Change::Joins { service: new.name.clone(), network: n.clone() });
        }
        for n in old_nets.difference(&new_nets) {
            out.push(Change::Leaves { service: new.name.clone(), network: n.clone() });
        }
    }
}

/// A published port as a learner names it: its host port, or `random → 80`.
fn port_words(s: &Service) -> BTreeSet<String> {
    s.ports
        .iter()
        .map(|p| match p.value.host_port {
            Some(h) => h.to_string(),
            None => format!("random → {}", p.value.container_port),
        })
        .collect()
}

fn port_changes(old: &Service, new: &Service, out: &mut Vec<Change>) {
    let (before, after) = (port_words(old), port_words(new));
    let gone: Vec<String> = before.difference(&after).cloned().collect();
    let came: Vec<String> = after.difference(&before).cloned().collect();
    if !gone.is_empty() {
        out.push(Change::Unpublished { service: new.name.clone(), ports: gone, now_private: after.is_empty() });
    }
    if !came.is_empty() {
        out.push(Change::Published { service: new.name.clone(), ports: came, was_private: before.is_empty() });
    }
}

fn network_changes(a: Side, b: Side, out: &mut Vec<Change>) {
    for (name, def) in &b.blueprint.networks {
        match a.blueprint.networks.get(name) {
            None => out.push(Change::NetworkAdded { network: name.clone(), internal: def.internal }),
            Some(old) if old.internal != def.internal => {
                out.push(Change::NetworkInternal { network: name.clone(), internal: def.internal })
            }
            Some(_) => {}
        }
    }
    for name in a.blueprint.networks.keys().filter(|n| !b.blueprint.networks.contains_key(*n)) {
        out.push(Change::NetworkRemoved { network: name.clone() });
    }
}

fn volume_changes(a: Side, b: Side, out: &mut Vec<Change>) {
    for name in b.blueprint.volumes.keys().filter(|n| !a.blueprint.volumes.contains_key(*n)) {
        out.push(Change::VolumeAdded { volume: name.clone() });
    }
    for name in a.blueprint.volumes.keys().filter(|n| !b.blueprint.volumes.contains_key(*n)) {
        out.push(Change::VolumeRemoved { volume: name.clone() });
    }
}

/// What a plan from A to B would do to containers: create, remove, or replace (and why).
fn container_changes_of(a: Side, b: Side, out: &mut Vec<Change>) {
    let (old, new): (&BTreeMap<_, _>, &BTreeMap<_, _>) = (&a.desired.containers, &b.desired.containers);
    let created: Vec<String> = new.keys().filter(|n| !old.contains_key(*n)).cloned().collect();
    let removed: Vec<String> = old.keys().filter(|n| !new.contains_key(*n)).cloned().collect();
    for (name, spec) in new {
        if let Some(before) = old.get(name) {
            let because = container_changes(before, spec);
            if !because.is_empty() {
                out.push(Change::Replaced { container: name.clone(), because });
            }
        }
    }
    if !created.is_empty() {
        out.push(Change::ContainersCreated { containers: created });
    }
    if !removed.is_empty() {
        out.push(Change::ContainersRemoved { containers: removed });
    }
}

fn kind_words(kind: Option<Kind>) -> &'static str {
    match kind {
        Some(Kind::LoadBalancer) => "a load balancer",
        Some(Kind::Postgres) => "a PostgreSQL database",
        None => "a plain service",
    }
}

/// The service's role when the blueprint names it, else what its kind makes it.
fn what(kind: Option<Kind>, role: &Option<String>) -> String {
    role.clone().unwrap_or_else(|| kind_words(kind).to_string())
}

/// "adds …", then "; cdn publishes 8081" when the new service is reachable from the host.
fn added(
    service: &str,
    kind: Option<Kind>,
    role: &Option<String>,
    in_front_of: &Option<String>,
    replicas: u32,
) -> String {
    let what = what(kind, role);
    match (kind, in_front_of) {
        (Some(Kind::LoadBalancer), Some(b)) => format!("adds {what} ({service}) in front of {b}"),
        (Some(Kind::Postgres), _) if replicas == 0 => format!("adds {what} ({service})"),
        (Some(Kind::Postgres), _) => format!("adds {what} ({service}) with {}", plural(replicas, "read replica")),
        _ => format!("adds {what} ({service}, {})", plural(replicas, "replica")),
    }
}

fn plural(n: u32, one: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{n} {one}s") }
}

/// One change as a phrase of the headline.
pub fn sentence(change: &Change) -> String {
    match change {
        Change::ServiceAdded { service, kind, role, in_front_of, replicas, publishes } => {
            let phrase = added(service, *kind, role, in_front_of, *replicas);
            if publishes.is_empty() {
                phrase
            } else {
                format!("{phrase}; {service} publishes {}", publishes.join(", "))
            }
        }
        Change::ServiceRemoved { service, kind, role } => format!("removes {} ({service})", what(*kind, role)),
        Change::KindChanged { service, from, to } => {
            format!("{service} becomes {} (was {})", kind_words(*to), kind_words(*from))
        }
        Change::Replicas { service, from, to } => format!("{service} {from} → {to} replicas"),
        Change::ReadReplicas { service, from, to } => format!("{service} {from} → {to} read replicas"),
        Change::Sharded { service, from: 1, to, shards } => {
            format!("shards {service}'s users by id over {to} databases ({})", shards.join(", "))
        }
        Change::Sharded { service, from, to: 1, .. } => {
            format!("{service}'s users are back in one database (were sharded over {from}; the rows move back)")
        }
        Change::Sharded { service, from, to, shards } => {
            format!("reshards {service}'s users {from} → {to} databases ({}; the rows move online)", shards.join(", "))
        }
        Change::Unpublished { service, ports, now_private: true } => {
            format!("{service} becomes private: it no longer publishes {}", ports.join(", "))
        }
        Change::Unpublished { service, ports, .. } => format!("{service} no longer publishes {}", ports.join(", ")),
        Change::Published { service, ports, was_private: true } => {
            format!("{service} becomes public: it publishes {}", ports.join(", "))
        }
        Change::Published { service, ports, .. } => format!("{service} also publishes {}", ports.join(", ")),
        Change::NetworkAdded { network, internal: true } => format!("adds the internal network {network}"),
        Change::NetworkAdded { network, .. } => format!("adds the network {network}"),
        Change::NetworkRemoved { network } => format!("removes the network {network}"),
        Change::NetworkInternal { network, internal: true } => format!("network {network} becomes internal"),
        Change::NetworkInternal { network, .. } => format!("network {network} is no longer internal"),
        Change::Joins { service, network } => format!("{service} joins {network}"),
        Change::Leaves { service, network } => format!("{service} leaves {network}"),
        Change::VolumeAdded { volume } => format!("adds the volume {volume}"),
        Change::VolumeRemoved { volume } => format!("drops the volume {volume} from the blueprint"),
        Change::Replaced { container, because } => format!("replaces {container} ({})", because.join("; ")),
        Change::ContainersCreated { containers } => format!("creates {}", containers.join(", ")),
        Change::ContainersRemoved { containers } => format!("removes {}", containers.join(", ")),
    }
}

/// Whether a change belongs in the one-line summary (design changes do; the containers a
/// plan would touch follow below it).
fn in_headline(change: &Change) -> bool {
    !matches!(change, Change::Replaced { .. } | Change::ContainersCreated { .. } | Change::ContainersRemoved { .. })
}

/// The one-line summary: "stage 3 adds …; web becomes private: …".
pub fn headline(d: &StageDiff) -> String {
    let phrases: Vec<String> = d.changes.iter().filter(|c| in_headline(c)).map(sentence).collect();
    match phrases.first() {
        None if d.changes.is_empty() => format!("{} changes nothing", d.subject),
        None => format!("{}: the same design, but some containers change", d.subject),
        Some(first) if first.starts_with("adds ") || first.starts_with("removes ") => {
            format!("{} {}", d.subject, phrases.join("; "))
        }
        Some(_) => format!("{}: {}", d.subject, phrases.join("; ")),
    }
}

/// The headline, then what a plan from A to B would do to containers.
pub fn render_text(d: &StageDiff) -> String {
    let mut out = headline(d);
    out.push('\n');
    let plan: Vec<&Change> = d.changes.iter().filter(|c| !in_headline(c)).collect();
    if !plan.is_empty() {
        out.push_str("\nAs a plan:\n");
        for c in plan {
            let _ = writeln!(out, "  {}", sentence(c));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::model::{Env, load_bytes};

    fn side(yaml: &str) -> (Blueprint, DesiredState) {
        let env = Env::from_pairs(Vec::<(String, String)>::new());
        let bp = load_bytes(Path::new("bp.yaml"), yaml.as_bytes(), &env).expect("the blueprint loads");
        let desired = crate::desired::desired_state(&bp, "shop", &|_: &crate::model::Build| Ok("0".repeat(64)))
            .expect("it expands");
        (bp, desired)
    }

    fn headline_of(a: &str, b: &str) -> String {
        let ((ba, da), (bb, db)) = (side(a), side(b));
        headline(&diff(Side { blueprint: &ba, desired: &da }, Side { blueprint: &bb, desired: &db }))
    }

    const WEB: &str = "name: shop\nservices:\n  web:\n    image: web\n";

    #[test]
    fn a_new_service_is_named_by_its_role_label_and_its_published_ports() {
        let edge = format!(
            "{WEB}  edge:\n    image: v\n    ports: [\"8081:80\", \"90\"]\n    labels: {{ io.scale.role: a CDN edge }}\n"
        );
        assert_eq!(
            headline_of(WEB, &edge),
            "bp.yaml adds a CDN edge (edge, 1 replica); edge publishes 8081, random → 90"
        );
        assert_eq!(headline_of(&edge, WEB), "bp.yaml removes a CDN edge (edge)");
    }

    #[test]
    fn sharding_is_named_on_shard_0_and_each_copy_as_its_shard() {
        let db = |extra: &str| format!("{WEB}  db:\n    kind: postgres\n    image: pg\n{extra}");
        let (one, two, three) = (db(""), db("    shards: 2\n"), db("    shards: 3\n"));
        assert_eq!(
            headline_of(&one, &two),
            "bp.yaml adds shard 1 of db's users (db-s1); shards db's users by id over 2 databases (db, db-s1)"
        );
        assert_eq!(
            headline_of(&two, &three),
            "bp.yaml adds shard 2 of db's users (db-s2); reshards db's users 2 → 3 databases (db, db-s1, db-s2; \
             the rows move online)"
        );
        assert_eq!(
            headline_of(&two, &one),
            "bp.yaml removes shard 1 of db's users (db-s1); db's users are back in one database (were sharded \
             over 2; the rows move back)"
        );
    }

    #[test]
    fn without_a_role_label_a_service_is_named_by_its_kind() {
        let plain = format!("{WEB}  cache:\n    image: redis\n    replicas: 2\n");
        assert_eq!(headline_of(WEB, &plain), "bp.yaml adds a plain service (cache, 2 replicas)");
        let blank = format!("{WEB}  cache:\n    image: redis\n    labels: {{ io.scale.role: ' ' }}\n");
        assert_eq!(headline_of(WEB, &blank), "bp.yaml adds a plain service (cache, 1 replica)");
    }
}
