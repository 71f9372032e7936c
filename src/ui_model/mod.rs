//! What `scale ui`'s live page shows, as data: a pure function from one snapshot of the
//! running project (the topology with its live overlay, the engine's containers, each load
//! balancer's pool, each database node's answer) to the JSON document the page draws. The
//! browser only paints what this says (boxes at the positions [`layout`] gives, colours by
//! state), so everything a learner reads on the page is decided here and tested without a
//! browser or an engine; the HTTP server in `ui::page` only ships it. Part of the pure core.

pub mod events;
pub mod layout;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::kinds::load_balancer::ServerState;
use crate::kinds::postgres::NodeStatus;
use crate::observed::ObservedState;
use crate::topology::{LiveFacts, LiveState, Role, Topology};

pub use events::{EventKind, UiEvent, transitions};
pub use layout::{Picture, place};

/// One load balancer's pool as HAProxy reported it (the server maps the engine's report).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolInput {
    pub balancer: String,
    pub backend: String,
    pub servers: Vec<ServerState>,
    /// Why the pool could not be read.
    pub error: Option<String>,
}

/// One PostgreSQL node and what it said about itself (`None`: down or silent).
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseInput {
    pub container: String,
    pub status: Option<NodeStatus>,
}

/// Everything one refresh of the page knows.
#[derive(Debug, Clone)]
pub struct Snapshot<'a> {
    /// The topology (from the blueprint, or [`topology_from_engine`]), not yet overlaid.
    pub topology: Topology,
    pub observed: &'a ObservedState,
    /// What each container's node says (state, health, role, lag, the pool's verdict).
    pub facts: BTreeMap<String, LiveFacts>,
    pub pools: Vec<PoolInput>,
    pub databases: Vec<DatabaseInput>,
    /// Where the picture came from, for the page's subtitle ("blueprints/04-….yaml").
    pub source: String,
}

/// The page's whole document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PageModel {
    pub project: String,
    pub source: String,
    /// Why the last refresh failed (the page keeps the last picture and shows this).
    pub error: Option<String>,
    pub summary: Summary,
    pub picture: Picture,
    pub containers: Vec<ContainerRow>,
    pub pools: Vec<PoolRow>,
    pub endpoints: Vec<EndpointRow>,
    /// Newest last; filled by the server from [`transitions`] and the engine's event stream.
    pub events: Vec<UiEvent>,
}

/// How many containers are up, for the page's headline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub containers: usize,
    pub up: usize,
    pub down: usize,
    pub starting: usize,
}

/// One container in the table beside the picture.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerRow {
    pub name: String,
    pub service: String,
    pub role: Role,
    pub state: LiveState,
    /// `healthy`, `exited (137)`, `health: starting` …
    pub health: String,
    /// A replica's distance behind its primary (`0 B, 0.0 s`), or why it is not streaming.
    pub lag: Option<String>,
}

/// A load balancer's pool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolRow {
    pub balancer: String,
    pub backend: String,
    pub servers: Vec<PoolServerRow>,
    pub error: Option<String>,
}

/// One server as its load balancer sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolServerRow {
    pub server: String,
    /// HAProxy's word (`UP`, `DOWN`, `MAINT`, `UP 1/3` …).
    pub status: String,
    /// Whether HAProxy sends it requests.
    pub up: bool,
    /// Requests in flight.
    pub current: u64,
    /// Requests it has served since the load balancer started (the page animates the growth).
    pub total: u64,
}

/// A published port, as a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointRow {
    pub service: String,
    pub container: String,
    pub container_port: u16,
    /// `127.0.0.1:8080`.
    pub address: String,
    /// `http://127.0.0.1:8080` for TCP ports.
    pub url: Option<String>,
}

/// The document for one snapshot (without events: the server adds its own history).
pub fn page_model(snapshot: Snapshot<'_>) -> PageModel {
    let Snapshot { mut topology, observed, facts, pools, databases, source } = snapshot;
    topology.overlay(&facts);
    let mut containers = container_rows(&topology, observed, &facts, &databases);
    let pools: Vec<PoolRow> = pools.into_iter().map(pool_row).collect();
    let picture = place(&topology, &pools);
    // The table reads as the picture does: left to right, top to bottom; leftovers last.
    let position =
        |name: &str| picture.nodes.iter().find(|n| n.name == name).map_or((usize::MAX, 0), |n| (n.column, n.y));
    containers.sort_by_key(|c| position(&c.name));
    let count = |s: LiveState| containers.iter().filter(|c| c.state == s).count();
    let summary = Summary {
        containers: containers.len(),
        up: count(LiveState::Up),
        down: count(LiveState::Down) + count(LiveState::Missing),
        starting: count(LiveState::Starting),
    };
    let endpoints = observed
        .endpoints()
        .into_iter()
        .map(|e| EndpointRow {
            address: format!("{}:{}", e.host_ip, e.host_port),
            service: e.service,
            container: e.container,
            container_port: e.container_port,
            url: e.url,
        })
        .collect();
    PageModel {
        project: topology.project.clone(),
        source,
        error: None,
        summary,
        picture,
        containers,
        pools,
        endpoints,
        events: Vec::new(),
    }
}

/// The table rows: every container the picture has (a missing one too) and every one the
/// engine has that the picture does not (a leftover of an older blueprint), in picture order.
fn container_rows(
    topology: &Topology,
    observed: &ObservedState,
    facts: &BTreeMap<String, LiveFacts>,
    databases: &[DatabaseInput],
) -> Vec<ContainerRow> {
    let mut rows = Vec::new();
    for node in topology.nodes.iter().filter(|n| !matches!(n.role, Role::User | Role::Volume)) {
        let service = observed.containers.get(&node.name).and_then(|c| c.service()).unwrap_or_default();
        rows.push(row(&node.name, service, node.role, facts, databases));
    }
    let pictured: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
    for c in observed.containers.values().filter(|c| !pictured.contains(&c.name)) {
        let role = match facts.get(&c.name).and_then(|f| f.db_role.as_deref()) {
            Some("primary") => Role::Primary,
            Some("replica") => Role::Replica,
            _ if c.kind() == Some(crate::model::Kind::LoadBalancer) => Role::LoadBalancer,
            _ => Role::Server,
        };
        rows.push(row(&c.name, c.service().unwrap_or_default(), role, facts, databases));
    }
    rows
}

fn row(
    name: &str,
    service: &str,
    role: Role,
    facts: &BTreeMap<String, LiveFacts>,
    dbs: &[DatabaseInput],
) -> ContainerRow {
    let fact = facts.get(name);
    let state = fact.and_then(|f| f.state).unwrap_or(LiveState::Missing);
    let health = match state {
        LiveState::Missing => "not on the engine".to_string(),
        _ => fact.and_then(|f| f.details.first().cloned()).unwrap_or_default(),
    };
    let lag = dbs.iter().find(|d| d.container == name).and_then(|d| lag_text(d.status.as_ref()?));
    ContainerRow { name: name.to_string(), service: service.to_string(), role, state, health, lag }
}

/// A replica's lag in bytes and seconds, and whether it streams; nothing for a primary.
fn lag_text(status: &NodeStatus) -> Option<String> {
    if status.role != "replica" {
        return None;
    }
    let lag = format!("{} B, {:.1} s", status.lag_bytes.unwrap_or(0), status.lag_seconds.unwrap_or(0.0));
    Some(if status.streaming == Some(false) { format!("{lag}, not streaming") } else { lag })
}

fn pool_row(p: PoolInput) -> PoolRow {
    let servers = p
        .servers
        .into_iter()
        .map(|s| PoolServerRow {
            up: s.status.starts_with("UP") || s.status == "no check",
            server: s.server,
            status: s.status,
            current: s.current_sessions,
            total: s.total_sessions,
        })
        .collect();
    PoolRow { balancer: p.balancer, backend: p.backend, servers, error: p.error }
}

/// A picture of a project known only from the engine (`scale ui -p NAME` with no blueprint):
/// one node per container, with its role from its kind and the failover markers, the user's
/// arrows to published ports and each load balancer's pool. No `depends_on` arrows: only the
/// blueprint knows them.
pub fn topology_from_engine(observed: &ObservedState) -> Topology {
    use crate::topology::{Cluster, Edge, EdgeKind, Node, node_id};
    let primaries = observed.primaries();
    let mut t =
        Topology { project: observed.project.clone(), clusters: Vec::new(), nodes: Vec::new(), edges: Vec::new() };
    let plain = |name: &str, role: Role, cluster: Option<String>| Node {
        id: node_id(name),
        name: name.to_string(),
        role,
        cluster,
        details: Vec::new(),
        live: None,
    };
    let arrow = |from: &str, to: &str, kind: EdgeKind, label: Option<String>| Edge {
        from: node_id(from),
        to: node_id(to),
        kind,
        label,
        down: false,
    };
    if observed.containers.values().any(|c| !c.ports.is_empty()) {
        t.nodes.push(plain("user", Role::User, None));
    }
    for c in observed.containers.values() {
        let primary = c.service().map_or(1, |s| primaries.get(s).map_or(1, |(n, _)| *n));
        let role = match c.kind() {
            Some(crate::model::Kind::LoadBalancer) => Role::LoadBalancer,
            Some(crate::model::Kind::Postgres) if c.replica() == Some(primary) => Role::Primary,
            Some(crate::model::Kind::Postgres) => Role::Replica,
            None => Role::Server,
        };
        let cluster = match c.networks.as_slice() {
            [only] => Some(node_id(only)),
            _ => None,
        };
        t.nodes.push(plain(&c.name, role, cluster));
        for p in &c.ports {
            t.edges.push(arrow(
                "user",
                &c.name,
                EdgeKind::Publish,
                Some(format!(":{} → :{}", p.host_port, p.container_port)),
            ));
        }
    }
    for (name, net) in &observed.networks {
        let id = node_id(name);
        if t.nodes.iter().any(|n| n.cluster.as_deref() == Some(id.as_str())) {
            t.clusters.push(Cluster { id, network: name.clone(), internal: net.internal });
        }
    }
    for (lb, pool) in &observed.load_balancers {
        for server in &pool.servers {
            t.edges.push(arrow(lb, server, EdgeKind::Pool, Some("pool".into())));
        }
    }
    t
}
