//! `scale ui`'s page model, without a browser or an engine: the stage-4 topology with a
//! hand-made engine snapshot (everything up; a web server killed; a failover), checked for
//! what the page must show (states, roles, lag, the pool's counters, links), for a layout
//! that reads left to right without overlaps and stays put when states change, and for the
//! events a learner sees; the healthy document is snapshot-tested.

use std::collections::BTreeMap;
use std::path::Path;

use scale::cli::graph::live_facts;
use scale::engine::live::{NodeReport, PoolReport};
use scale::kinds::load_balancer::ServerState;
use scale::kinds::postgres::NodeStatus;
use scale::model::{Env, Protocol};
use scale::observed::{Health, ObservedContainer, ObservedState, PublishedPort, RunState};
use scale::topology::{EdgeKind, LiveState, Role, Topology, topology};
use scale::ui_model::{DatabaseInput, EventKind, PageModel, PoolInput, Snapshot, page_model, transitions};

const STAGE4: &str = "blueprints/04-database-replication.yaml";

fn stage4() -> Topology {
    let bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(STAGE4)).expect("stage 4 is readable");
    let bp = scale::model::load_bytes(Path::new(STAGE4), &bytes, &Env::from_pairs(Vec::<(String, String)>::new()))
        .unwrap_or_else(|d| panic!("{STAGE4} does not load:\n{d}"));
    let hasher = |_: &scale::model::Build| Ok("0".repeat(64));
    let desired = scale::desired::desired_state(&bp, "shop", &hasher).expect("stage 4 expands");
    topology(&bp, &desired)
}

/// How the engine sees one container of the shop.
fn container(service: &str, n: u32, kind: Option<&str>, state: RunState, health: Option<Health>) -> ObservedContainer {
    let mut labels = BTreeMap::from([
        ("io.scale.project".to_string(), "shop".to_string()),
        ("io.scale.service".to_string(), service.to_string()),
        ("io.scale.replica".to_string(), n.to_string()),
    ]);
    if let Some(kind) = kind {
        labels.insert("io.scale.kind".into(), kind.into());
    }
    let name = format!("shop-{service}-{n}");
    let ports = if service == "lb" {
        vec![PublishedPort { container_port: 80, protocol: Protocol::Tcp, host_ip: "0.0.0.0".into(), host_port: 8080 }]
    } else {
        Vec::new()
    };
    let networks =
        if service == "lb" { vec!["shop_public".into(), "shop_private".into()] } else { vec!["shop_private".into()] };
    ObservedContainer {
        id: format!("id-{name}"),
        name,
        labels,
        image: format!("shop/{service}:1"),
        state,
        health,
        exit_code: (state == RunState::Exited).then_some(137),
        ports,
        networks,
    }
}

/// The whole shop as the engine and the kinds report it; `web1_killed` and `failed_over`
/// change it as `scale chaos kill web-1` and a failover to db-2 would.
struct World {
    observed: ObservedState,
    pools: Vec<PoolReport>,
    nodes: Vec<NodeReport>,
}

fn world(web1_killed: bool, failed_over: bool) -> World {
    let healthy = Some(Health::Healthy);
    let web1 = if web1_killed { (RunState::Exited, None) } else { (RunState::Running, healthy) };
    let db1 = if failed_over { (RunState::Exited, None) } else { (RunState::Running, healthy) };
    let containers = vec![
        container("lb", 1, Some("load-balancer"), RunState::Running, None),
        container("web", 1, None, web1.0, web1.1),
        container("web", 2, None, RunState::Running, healthy),
        container("db", 1, Some("postgres"), db1.0, db1.1),
        container("db", 2, Some("postgres"), RunState::Running, healthy),
        container("db", 3, Some("postgres"), RunState::Running, healthy),
    ];
    let observed = ObservedState {
        project: "shop".into(),
        containers: containers.into_iter().map(|c| (c.name.clone(), c)).collect(),
        ..ObservedState::default()
    };
    let server = |name: &str, up: bool, total: u64| ServerState {
        server: name.into(),
        status: if up { "UP".into() } else { "DOWN".into() },
        current_sessions: 0,
        total_sessions: total,
    };
    let pools = vec![PoolReport {
        container: "shop-lb-1".into(),
        backend: "web".into(),
        servers: vec![server("shop-web-1", !web1_killed, 10), server("shop-web-2", true, 9)],
        error: None,
    }];
    let status = |role: &str, lag: Option<u64>| NodeStatus {
        role: role.into(),
        timeline: Some(1),
        lsn: Some("0/3000148".into()),
        lsn_bytes: Some(50_331_976),
        receive_lsn_bytes: None,
        lag_bytes: lag,
        lag_seconds: lag.map(|_| 0.2),
        streaming: lag.map(|_| true),
    };
    let node = |n: u32, status: Option<NodeStatus>| NodeReport {
        container: format!("shop-db-{n}"),
        id: format!("id-shop-db-{n}"),
        service: "db".into(),
        status,
    };
    let nodes = if failed_over {
        vec![node(1, None), node(2, Some(status("primary", None))), node(3, Some(status("replica", Some(0))))]
    } else {
        vec![
            node(1, Some(status("primary", None))),
            node(2, Some(status("replica", Some(0)))),
            node(3, Some(status("replica", Some(4096)))),
        ]
    };
    World { observed, pools, nodes }
}

fn model(w: &World) -> PageModel {
    let snapshot = Snapshot {
        topology: stage4(),
        observed: &w.observed,
        facts: live_facts(&w.observed, &w.pools, &w.nodes),
        pools: w
            .pools
            .iter()
            .map(|p| PoolInput {
                balancer: p.container.clone(),
                backend: p.backend.clone(),
                servers: p.servers.clone(),
                error: p.error.clone(),
            })
            .collect(),
        databases: w
            .nodes
            .iter()
            .map(|n| DatabaseInput { container: n.container.clone(), status: n.status.clone() })
            .collect(),
        source: STAGE4.into(),
    };
    page_model(snapshot)
}

fn node<'a>(m: &'a PageModel, name: &str) -> &'a scale::ui_model::layout::PlacedNode {
    m.picture.nodes.iter().find(|n| n.name == name).unwrap_or_else(|| panic!("no node {name} in {m:#?}"))
}

#[test]
fn the_healthy_shop_shows_roles_lag_counters_and_links() {
    let m = model(&world(false, false));
    for name in ["shop-lb-1", "shop-web-1", "shop-web-2", "shop-db-1", "shop-db-2", "shop-db-3"] {
        assert_eq!(node(&m, name).state, Some(LiveState::Up), "{name}");
    }
    assert_eq!(node(&m, "shop-db-1").role, Role::Primary);
    assert_eq!(node(&m, "shop-db-3").role, Role::Replica);
    let row = |name: &str| m.containers.iter().find(|c| c.name == name).expect("row");
    assert_eq!(row("shop-db-3").lag.as_deref(), Some("4096 B, 0.2 s"));
    assert_eq!(row("shop-db-1").lag, None, "a primary has no lag");
    assert_eq!(row("shop-web-1").health, "healthy");
    let pool: Vec<(&str, Option<u64>)> =
        m.picture.edges.iter().filter(|e| e.kind == EdgeKind::Pool).map(|e| (e.to.as_str(), e.requests)).collect();
    assert_eq!(pool, vec![("n_shop_web_1", Some(10)), ("n_shop_web_2", Some(9))]);
    assert_eq!(m.endpoints.len(), 1);
    assert_eq!(m.endpoints[0].url.as_deref(), Some("http://127.0.0.1:8080"));
    assert_eq!((m.summary.containers, m.summary.up, m.summary.down), (6, 6, 0));
    insta::assert_snapshot!("stage4_healthy", serde_json::to_string_pretty(&m).expect("serializes"));
}

#[test]
fn the_layout_reads_left_to_right_without_overlaps() {
    let m = model(&world(false, false));
    let column = |name: &str| node(&m, name).column;
    assert!(column("user") < column("shop-lb-1"));
    assert!(column("shop-lb-1") < column("shop-web-1"));
    assert_eq!(column("shop-web-1"), column("shop-web-2"));
    assert!(column("shop-web-1") < column("shop-db-1"));
    assert!(column("shop-db-1") < column("shop-db-2"), "replicas sit right of their primary");
    let nodes = &m.picture.nodes;
    for (i, a) in nodes.iter().enumerate() {
        assert!(a.x + a.w <= m.picture.width && a.y + a.h <= m.picture.height, "{} leaves the picture", a.name);
        for b in &nodes[i + 1..] {
            let apart = a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y;
            assert!(apart, "{} and {} overlap", a.name, b.name);
        }
    }
    let private = m.picture.clusters.iter().find(|c| c.id == "n_shop_private").expect("the private network's box");
    assert!(private.internal && private.label.contains("internal"));
    for name in ["shop-web-1", "shop-db-1", "shop-db-3"] {
        let n = node(&m, name);
        let inside = private.x < n.x
            && n.x + n.w < private.x + private.w
            && private.y < n.y
            && n.y + n.h < private.y + private.h;
        assert!(inside, "{name} is outside its network's box");
    }
    let lb = node(&m, "shop-lb-1");
    assert!(lb.x + lb.w < private.x, "the load balancer bridges the networks: outside the private box");
}

#[test]
fn a_killed_web_server_turns_down_and_says_so() {
    let before = model(&world(false, false));
    let after = model(&world(true, false));
    assert_eq!(node(&after, "shop-web-1").state, Some(LiveState::Down));
    assert_eq!(node(&after, "shop-web-2").state, Some(LiveState::Up));
    let edge = after.picture.edges.iter().find(|e| e.kind == EdgeKind::Pool && e.to == "n_shop_web_1").expect("edge");
    assert!(edge.down, "the pool arrow to the killed server is drawn down");
    assert_eq!((after.summary.up, after.summary.down), (5, 1));
    let events = transitions(&before, &after);
    assert_eq!(
        events,
        vec![
            (EventKind::Down, "shop-web-1 is down: exited (137)".to_string()),
            (EventKind::Down, "shop-lb-1 took shop-web-1 out of the pool (DOWN)".to_string()),
        ]
    );
    let repaired = transitions(&after, &before);
    assert_eq!(
        repaired,
        vec![
            (EventKind::Up, "shop-web-1 is up: healthy".to_string()),
            (EventKind::Up, "shop-lb-1 sends requests to shop-web-1 again (UP)".to_string()),
        ]
    );
    let same = |a: &PageModel, b: &PageModel| {
        a.picture.nodes.iter().zip(&b.picture.nodes).all(|(x, y)| (x.x, x.y) == (y.x, y.y))
    };
    assert!(same(&before, &after), "a state change moves no box");
}

#[test]
fn a_failover_redraws_the_roles_and_is_an_event() {
    let before = model(&world(false, false));
    let after = model(&world(false, true));
    assert_eq!(node(&after, "shop-db-2").role, Role::Primary);
    assert_eq!(node(&after, "shop-db-2").lines[0], "postgres primary");
    assert_eq!(node(&after, "shop-db-1").state, Some(LiveState::Down));
    let events = transitions(&before, &after);
    assert!(events.contains(&(EventKind::Role, "shop-db-2 is now the primary (failover)".to_string())), "{events:?}");
    assert!(events.contains(&(EventKind::Down, "shop-db-1 is down: exited (137)".to_string())), "{events:?}");
}

#[test]
fn a_project_known_only_from_the_engine_still_has_a_picture() {
    let mut w = world(false, false);
    w.observed.load_balancers.insert(
        "shop-lb-1".into(),
        scale::spec::Pool {
            hash: String::new(),
            backend: "web".into(),
            servers: vec!["shop-web-1".into(), "shop-web-2".into()],
            draining: Vec::new(),
        },
    );
    let t = scale::ui_model::topology_from_engine(&w.observed);
    let role = |name: &str| t.nodes.iter().find(|n| n.name == name).map(|n| n.role);
    assert_eq!(role("user"), Some(Role::User));
    assert_eq!(role("shop-lb-1"), Some(Role::LoadBalancer));
    assert_eq!(role("shop-db-1"), Some(Role::Primary));
    assert_eq!(role("shop-db-2"), Some(Role::Replica));
    let pool = t.edges.iter().filter(|e| e.kind == EdgeKind::Pool).count();
    assert_eq!(pool, 2, "{:?}", t.edges);
}

/// The page has no login: `scale ui` refuses to listen anywhere but on loopback, and says
/// why and what to do instead (before it needs an engine).
#[test]
fn scale_ui_refuses_an_address_other_machines_reach() {
    let out = assert_cmd::Command::cargo_bin("scale")
        .expect("the scale binary")
        .args(["ui", "-p", "shop", "--bind", "0.0.0.0", "--port", "0"])
        .env("NO_COLOR", "1")
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .expect("scale ui runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("loopback address only") && stderr.contains("0.0.0.0"), "{stderr}");
    assert!(stderr.contains("ssh -L"), "no way out offered: {stderr}");
}
