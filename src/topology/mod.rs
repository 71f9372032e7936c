//! The project's topology as a graph a learner can read: one node per container (and per
//! named volume and the user), clustered by network, with the edges the book draws (the
//! published entry, the load balancer's pool, writes to the primary, reads from the
//! replicas, the WAL stream). Computed from the blueprint and its desired state alone, so
//! `scale graph` and the README's diagrams need no engine; `--live` overlays what the engine
//! says with [`Topology::overlay`]. Part of the pure core; the renderers are [`mermaid`] and [`dot`].

pub mod dot;
pub mod mermaid;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::kinds::postgres::{primary_alias, replica_alias};
use crate::model::{Blueprint, Kind};
use crate::spec::{ContainerSpec, DesiredState, MountSourceSpec, PortSpec};

/// Everything a picture of the project shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Topology {
    pub project: String,
    /// One per network that has a node of its own (a node on several networks sits outside).
    pub clusters: Vec<Cluster>,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

/// A network, drawn as a box around the containers attached to it alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cluster {
    pub id: String,
    /// The engine name (`<project>_<network>`).
    pub network: String,
    /// No route out, and no host port leads in.
    pub internal: bool,
}

/// What a node is, which decides its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Whoever sends requests to the published ports.
    User,
    Server,
    LoadBalancer,
    Primary,
    Replica,
    Volume,
}

/// How the engine says a container is (only with `--live`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LiveState {
    Up,
    Starting,
    Down,
    Missing,
}

/// One thing in the picture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// An identifier safe in Mermaid and DOT (`[a-z0-9_]`).
    pub id: String,
    /// What the user calls it (container name, volume name, `user`).
    pub name: String,
    pub role: Role,
    /// The cluster (network) it sits in, if it is on exactly one.
    pub cluster: Option<String>,
    /// Extra lines under the name: the kind, the networks of a bridging node, live facts.
    pub details: Vec<String>,
    pub live: Option<LiveState>,
}

/// What an arrow means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EdgeKind {
    /// The user reaches a published port.
    Publish,
    /// A load balancer sends to a server in its pool.
    Pool,
    /// Writes go to a database primary.
    Write,
    /// Reads go to the replicas.
    Read,
    /// A primary streams its WAL to a replica.
    Replication,
    /// Any other `depends_on`.
    Uses,
    /// A container mounts a named volume.
    Mount,
}

/// An arrow between two nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
    pub label: Option<String>,
    /// With `--live`: the arrow leads to or from something down (a server out of the pool).
    pub down: bool,
}

/// An identifier for Mermaid and DOT from any name.
pub fn node_id(name: &str) -> String {
    let mut id = String::from("n_");
    id.extend(name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }));
    id
}

/// The topology of a valid blueprint and the desired state made from it.
pub fn topology(bp: &Blueprint, desired: &DesiredState) -> Topology {
    let mut t =
        Topology { project: desired.project.clone(), clusters: Vec::new(), nodes: Vec::new(), edges: Vec::new() };
    let containers: Vec<&ContainerSpec> = ordered_containers(desired);
    if containers.iter().any(|c| !c.ports.is_empty()) {
        t.nodes.push(plain_node("user", Role::User, None));
    }
    for c in &containers {
        t.nodes.push(container_node(c, desired));
    }
    add_volumes(bp, desired, &containers, &mut t);
    add_clusters(desired, &mut t);
    for c in &containers {
        for p in &c.ports {
            t.edges.push(edge("user", &c.name, EdgeKind::Publish, Some(port_label(p))));
        }
    }
    add_pools(bp, desired, &mut t);
    add_dependencies(desired, &containers, &mut t);
    t
}

/// Containers in the desired state's service order (dependencies first), replicas in order.
fn ordered_containers(desired: &DesiredState) -> Vec<&ContainerSpec> {
    let mut out: Vec<&ContainerSpec> = Vec::with_capacity(desired.containers.len());
    for s in &desired.services {
        let mut of_service: Vec<&ContainerSpec> = desired.containers.values().filter(|c| c.service == s.name).collect();
        of_service.sort_by_key(|c| c.replica);
        out.extend(of_service);
    }
    out
}

fn plain_node(name: &str, role: Role, cluster: Option<String>) -> Node {
    Node { id: node_id(name), name: name.to_string(), role, cluster, details: Vec::new(), live: None }
}

/// A container's node: its role from its kind (node 1 of a postgres service is the primary).
fn container_node(c: &ContainerSpec, desired: &DesiredState) -> Node {
    let role = match c.kind {
        Some(Kind::LoadBalancer) => Role::LoadBalancer,
        Some(Kind::Postgres) if c.replica == 1 => Role::Primary,
        Some(Kind::Postgres) => Role::Replica,
        None => Role::Server,
    };
    let cluster = match c.networks.as_slice() {
        [only] => Some(node_id(&only.network)),
        _ => None,
    };
    let mut node = plain_node(&c.name, role, cluster);
    match role {
        Role::LoadBalancer => node.details.push("load balancer".into()),
        Role::Primary => node.details.push("postgres primary".into()),
        Role::Replica => node.details.push("postgres replica".into()),
        _ => {}
    }
    if c.networks.len() > 1 {
        let short: Vec<&str> = c.networks.iter().map(|a| short_network(&desired.project, &a.network)).collect();
        node.details.push(format!("on {}", short.join(" + ")));
    }
    node
}

/// `shop_private` → `private`.
fn short_network<'a>(project: &str, full: &'a str) -> &'a str {
    full.strip_prefix(project).and_then(|r| r.strip_prefix('_')).unwrap_or(full)
}

/// A cluster per network that has a node of its own, in the desired state's order.
fn add_clusters(desired: &DesiredState, t: &mut Topology) {
    for net in desired.networks.values() {
        let id = node_id(&net.name);
        if t.nodes.iter().any(|n| n.cluster.as_deref() == Some(id.as_str())) {
            t.clusters.push(Cluster { id, network: net.name.clone(), internal: net.internal });
        }
    }
}

/// The blueprint's named volumes (not those a kind adds for itself) and who mounts them.
fn add_volumes(bp: &Blueprint, desired: &DesiredState, containers: &[&ContainerSpec], t: &mut Topology) {
    for name in bp.volumes.keys() {
        let full = crate::spec::scoped_name(&desired.project, name);
        let users: Vec<&&ContainerSpec> = containers
            .iter()
            .filter(|c| c.mounts.iter().any(|m| m.source == MountSourceSpec::Volume(full.clone())))
            .collect();
        let cluster =
            users.first().and_then(|c| t.nodes.iter().find(|n| n.name == c.name)).and_then(|n| n.cluster.clone());
        let cluster = if users.len() == 1 { cluster } else { None };
        t.nodes.push(plain_node(&full, Role::Volume, cluster));
        for c in users {
            let target =
                c.mounts.iter().find(|m| m.source == MountSourceSpec::Volume(full.clone())).map(|m| m.target.clone());
            t.edges.push(edge(&c.name, &full, EdgeKind::Mount, target));
        }
    }
}

fn edge(from: &str, to: &str, kind: EdgeKind, label: Option<String>) -> Edge {
    Edge { from: node_id(from), to: node_id(to), kind, label, down: false }
}

/// `localhost:8080 → :80`, `127.0.0.1:9000 → :80/udp`, `random port → :80`.
pub fn port_label(p: &PortSpec) -> String {
    let proto = if p.protocol == crate::model::Protocol::Udp { "/udp" } else { "" };
    let host = p.host_ip.as_deref().filter(|ip| *ip != "0.0.0.0").unwrap_or("localhost");
    match p.host_port {
        Some(port) => format!("{host}:{port} → :{}{proto}", p.container_port),
        None => format!("random port → :{}{proto}", p.container_port),
    }
}

/// Each load balancer's pool: an arrow to every server, labelled with the backend port.
fn add_pools(bp: &Blueprint, desired: &DesiredState, t: &mut Topology) {
    for (lb, spec) in &desired.load_balancers {
        let port = desired
            .containers
            .get(lb)
            .and_then(|c| bp.service(&c.service))
            .and_then(|s| s.load_balancer.as_ref())
            .map(|l| l.backend_port);
        for server in &spec.pool.servers {
            t.edges.push(edge(lb, server, EdgeKind::Pool, port.map(|p| format!("pool :{p}"))));
        }
    }
}

/// `depends_on` as arrows: to a postgres service, writes to its primary and (when the
/// dependent names the replica alias) reads from its replicas, and the WAL stream from the
/// primary to each replica; to anything else, a plain "uses".
fn add_dependencies(desired: &DesiredState, containers: &[&ContainerSpec], t: &mut Topology) {
    let of = |service: &str| -> Vec<&ContainerSpec> {
        containers.iter().copied().filter(|c| c.service == service).collect()
    };
    for service in &desired.services {
        if service.kind == Some(Kind::Postgres) {
            let nodes = of(&service.name);
            if let Some(primary) = nodes.iter().find(|c| c.replica == 1) {
                for r in nodes.iter().filter(|c| c.replica != 1) {
                    t.edges.push(edge(&primary.name, &r.name, EdgeKind::Replication, Some("WAL stream".into())));
                }
            }
        }
        for (dep, _) in &service.depends_on {
            let Some(target) = desired.services.iter().find(|s| &s.name == dep) else { continue };
            for from in of(&service.name) {
                dependency_edges(from, target.kind == Some(Kind::Postgres), dep, &of(dep), t);
            }
        }
    }
    // `shards: N`: the app reaches shards 1..N-1 through the map in shard 0, not a setting.
    if let Some(sharding) = &desired.sharding {
        for from in of(&sharding.runner) {
            for shard in sharding.shards.iter().skip(1) {
                let Some(p) = of(shard).into_iter().find(|c| c.replica == 1) else { continue };
                let label = format!("users by id % 64: {}", primary_alias(shard));
                t.edges.push(edge(&from.name, &p.name, EdgeKind::Write, Some(label)));
            }
        }
    }
}

fn dependency_edges(from: &ContainerSpec, postgres: bool, dep: &str, targets: &[&ContainerSpec], t: &mut Topology) {
    if !postgres {
        for to in targets {
            t.edges.push(edge(&from.name, &to.name, EdgeKind::Uses, None));
        }
        return;
    }
    let names = |alias: &str| from.env.values().any(|v| v.contains(alias));
    let (primary, replica) = (primary_alias(dep), replica_alias(dep));
    let replicas: Vec<&&ContainerSpec> = targets.iter().filter(|c| c.replica != 1).collect();
    let reads_replicas = names(&replica) && !replicas.is_empty();
    if let Some(p) = targets.iter().find(|c| c.replica == 1) {
        let label = match (names(&primary), reads_replicas) {
            (true, true) => format!("writes: {primary}"),
            (true, false) => primary.clone(),
            (false, _) => dep.to_string(),
        };
        t.edges.push(edge(&from.name, &p.name, EdgeKind::Write, Some(label)));
    }
    if reads_replicas {
        for r in replicas {
            t.edges.push(edge(&from.name, &r.name, EdgeKind::Read, Some(format!("reads: {replica}"))));
        }
    }
}

/// What the engine says about one container, for [`Topology::overlay`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveFacts {
    pub state: Option<LiveState>,
    /// `primary` / `replica` when the database node answered (it may differ from the
    /// blueprint's after a failover).
    pub db_role: Option<String>,
    /// Lines to show under the name: health, lag, the pool's view.
    pub details: Vec<String>,
}

impl Topology {
    /// Marks each container with what the engine says; a container it does not know is
    /// missing. Roles follow the databases' own answers, and arrows to or from a node
    /// that is not up are drawn as down.
    pub fn overlay(&mut self, facts: &BTreeMap<String, LiveFacts>) {
        for node in self.nodes.iter_mut().filter(|n| !matches!(n.role, Role::User | Role::Volume)) {
            let f = facts.get(&node.name).cloned().unwrap_or_default();
            node.live = Some(f.state.unwrap_or(LiveState::Missing));
            match f.db_role.as_deref() {
                Some("primary") => node.role = Role::Primary,
                Some("replica") => node.role = Role::Replica,
                _ => {}
            }
            if matches!(node.role, Role::Primary | Role::Replica) {
                let word = if node.role == Role::Primary { "postgres primary" } else { "postgres replica" };
                if let Some(first) = node.details.first_mut() {
                    *first = word.to_string();
                }
            }
            node.details.extend(f.details);
        }
        let down: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| matches!(n.live, Some(LiveState::Down | LiveState::Missing)))
            .map(|n| n.id.clone())
            .collect();
        for e in &mut self.edges {
            e.down = down.contains(&e.from) || down.contains(&e.to);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Env, load_bytes};

    const STAGE: &str = "name: shop\nnetworks:\n  public: {}\n  private: { internal: true }\nservices:\n  lb:\n    kind: load-balancer\n    image: haproxy\n    backends: { service: web, port: 8000 }\n    ports: [\"8080:80\"]\n    networks: [public, private]\n  web:\n    image: web\n    replicas: 2\n    environment: { DATABASE_URL: postgres://db-primary/app, DATABASE_READ_URL: postgres://db-replica/app }\n    networks: [private]\n    depends_on: [db]\n  db:\n    kind: postgres\n    image: postgres\n    read_replicas: 1\n    networks: [private]\n";

    fn graph() -> Topology {
        let bp = load_bytes(std::path::Path::new("bp.yaml"), STAGE.as_bytes(), &Env::default()).expect("loads");
        let desired = crate::desired::desired_state(&bp, "shop", &|_| Ok(String::new())).expect("expands");
        topology(&bp, &desired)
    }

    fn facts(state: LiveState, db_role: Option<&str>) -> LiveFacts {
        LiveFacts { state: Some(state), db_role: db_role.map(String::from), details: Vec::new() }
    }

    #[test]
    fn roles_pool_and_replication_come_from_the_blueprint() {
        let g = graph();
        let node = |name: &str| g.nodes.iter().find(|n| n.name == name).unwrap_or_else(|| panic!("no {name}"));
        assert_eq!(node("shop-db-1").role, Role::Primary);
        assert_eq!(node("shop-db-2").role, Role::Replica);
        assert_eq!(node("shop-lb-1").cluster, None, "the load balancer bridges two networks");
        assert_eq!(node("shop-web-1").cluster.as_deref(), Some("n_shop_private"));
        assert_eq!(
            g.clusters,
            vec![Cluster { id: "n_shop_private".into(), network: "shop_private".into(), internal: true }]
        );
        let kinds = |from: &str, to: &str| -> Vec<EdgeKind> {
            g.edges.iter().filter(|e| e.from == node_id(from) && e.to == node_id(to)).map(|e| e.kind).collect()
        };
        assert_eq!(kinds("user", "shop-lb-1"), vec![EdgeKind::Publish]);
        assert_eq!(kinds("shop-lb-1", "shop-web-2"), vec![EdgeKind::Pool]);
        assert_eq!(kinds("shop-db-1", "shop-db-2"), vec![EdgeKind::Replication]);
        assert_eq!(kinds("shop-web-1", "shop-db-2"), vec![EdgeKind::Read]);
        assert_eq!(kinds("shop-web-1", "shop-db-1"), vec![EdgeKind::Write]);
    }

    #[test]
    fn the_live_overlay_marks_what_is_down_and_follows_a_failover() {
        let mut g = graph();
        let live = BTreeMap::from([
            ("shop-lb-1".to_string(), facts(LiveState::Up, None)),
            ("shop-web-1".to_string(), facts(LiveState::Down, None)),
            ("shop-web-2".to_string(), facts(LiveState::Up, None)),
            ("shop-db-1".to_string(), facts(LiveState::Down, None)),
            ("shop-db-2".to_string(), facts(LiveState::Up, Some("primary"))),
        ]);
        g.overlay(&live);
        let node = |name: &str| g.nodes.iter().find(|n| n.name == name).expect("node");
        assert_eq!(node("shop-web-1").live, Some(LiveState::Down));
        assert_eq!(node("shop-db-2").role, Role::Primary, "the promoted replica is drawn as the primary");
        assert_eq!(node("shop-db-2").details[0], "postgres primary");
        let pool_edge =
            |to: &str| g.edges.iter().find(|e| e.kind == EdgeKind::Pool && e.to == node_id(to)).expect("edge");
        assert!(pool_edge("shop-web-1").down && !pool_edge("shop-web-2").down);
        let text = mermaid::render(&g);
        assert!(text.contains("class n_shop_web_1 down") && text.contains("class n_shop_web_2 up"), "{text}");
        assert!(text.contains("linkStyle ") && text.contains("✖ down"), "{text}");
        let dot_text = dot::render(&g);
        assert!(
            dot_text.contains("n_shop_lb_1 -> n_shop_web_1 [label=\"pool :8000\", color=\"#cc0000\", style=dotted]"),
            "{dot_text}"
        );
    }
}
