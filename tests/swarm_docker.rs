//! The ladder on a real three-node Swarm (`scale cluster up`, Docker engines in containers of
//! the local engine): stage 3 applied with `--target swarm`, web tasks spread over nodes and
//! answering through the load balancer on the manager's published port, a second apply with
//! nothing to do, a refused target switch, a rolling `APP_VERSION` update and a lost node,
//! each under a bounded client loop with zero failed requests; and stage 4, its primary's
//! node lost under a write loop, `scale failover`, no acknowledged write lost.
//!
//! Each story has one cluster (bringing up a cluster is the cost), one at a time, removed at
//! the end by its label even when a step fails. Images are built on the local engine
//! (SCALE_BUILD_ENGINE, warm cache) and copied into the nodes. Cost on 2 shared cores:
//! printed per step; see the README ("Past one machine").

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{
    ClientLoop, LoopEnd, Scale, WriteLoop, docker, http_get_ok, lost_writes, remove_built_images, stage_copy,
};

const LABEL: &str = "io.scale.cluster";

/// Removes the cluster (by its label, with the `docker` CLI) and the images built for the
/// project when dropped, so a failed step leaves nothing behind.
struct Cleanup {
    cluster: String,
    project: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let filter = format!("label={LABEL}={}", self.cluster);
        let list = |args: &[&str]| -> Vec<String> {
            docker(args).unwrap_or_default().lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
        };
        for id in list(&["ps", "-aq", "--filter", &filter]) {
            let _ = docker(&["rm", "-fv", &id]);
        }
        for id in list(&["network", "ls", "-q", "--filter", &filter]) {
            let _ = docker(&["network", "rm", &id]);
        }
        for id in list(&["volume", "ls", "-q", "--filter", &filter]) {
            let _ = docker(&["volume", "rm", &id]);
        }
        remove_built_images(&self.project);
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("its address").port()
}

/// The web tasks' nodes among `served_by` values (`<project>-web-<slot>-<node hostname>`).
fn nodes_of(served_by: impl IntoIterator<Item = String>, project: &str) -> BTreeSet<String> {
    let prefix = format!("{project}-web-");
    served_by
        .into_iter()
        .filter_map(|s| s.strip_prefix(&prefix).and_then(|rest| rest.split_once('-')).map(|(_, node)| node.to_string()))
        .collect()
}

/// Runs scale against the cluster's manager, building on the local engine.
struct OnSwarm {
    manager: String,
    builder: String,
}

impl OnSwarm {
    fn scale(&self, args: &[&str]) -> Scale {
        Scale::new(args)
            .isolated()
            .env("DOCKER_HOST", &self.manager)
            .env("SCALE_BUILD_ENGINE", &self.builder)
            .timeout(Duration::from_secs(900))
    }
}

/// A unit as `scale status --output json` lists it.
#[derive(Debug, Clone)]
struct UnitRow {
    name: String,
    ready: u64,
    nodes: Vec<String>,
}

/// The units of blueprint service `service` on the swarm, from `scale status`.
fn units_of(swarm: &OnSwarm, project: &str, service: &str) -> Vec<UnitRow> {
    let doc = swarm.scale(&["status", "-p", project, "--output", "json"]).run().success().json();
    doc["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|u| u["service"] == service)
        .map(|u| UnitRow {
            name: u["name"].as_str().unwrap_or_default().to_string(),
            ready: u["ready"].as_u64().unwrap_or(0),
            nodes: u["nodes"].as_array().into_iter().flatten().filter_map(|n| n.as_str().map(str::to_string)).collect(),
        })
        .collect()
}

fn step(started: Instant, what: &str) {
    eprintln!("[{:>6.1} s] {what}", started.elapsed().as_secs_f64());
}

/// One cluster at a time in this binary: each is three whole Docker engines, and the machine
/// has 2 shared cores. Held for a test's whole story.
static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Brings up a three-node cluster whose manager publishes `port`; returns how to reach it.
fn cluster_up(cluster: &str, port: u16, started: Instant) -> OnSwarm {
    let port_text = port.to_string();
    Scale::new(&["cluster", "up", "--nodes", "3", "--name", cluster, "--publish", &port_text])
        .env_remove("DOCKER_HOST")
        .timeout(Duration::from_secs(1200))
        .run()
        .success();
    step(started, "cluster up");
    let env = Scale::new(&["cluster", "env", "--name", cluster]).env_remove("DOCKER_HOST").run();
    let manager = env.success().all().trim().strip_prefix("export DOCKER_HOST=").expect("an export line").to_string();
    let builder = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    OnSwarm { manager, builder }
}

/// A copy of stage `n` (with `edits`) whose balancer publishes `port`, the port the manager
/// node publishes on the host's loopback.
fn stage_on_port(dir: &std::path::Path, n: usize, edits: &[(&str, &str)], port: u16) -> String {
    let file = stage_copy(dir, n, edits);
    let yaml = std::fs::read_to_string(&file).expect("the stage copy");
    assert_eq!(yaml.matches(r#"ports: ["80"]"#).count(), 1, "{yaml}");
    std::fs::write(&file, yaml.replace(r#"ports: ["80"]"#, &format!(r#"ports: ["{port}:80"]"#))).expect("rewrite");
    file
}

#[test]
fn stage_3_on_a_three_node_swarm_spreads_rolls_and_survives_a_lost_node() {
    if !common::docker_or_skip("swarm_docker") {
        return;
    }
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    let (cluster, project) = (format!("t-sw-{pid}"), format!("sw{pid}"));
    let _cleanup = Cleanup { cluster: cluster.clone(), project: project.clone() };
    let started = Instant::now();
    let port = free_port();
    let swarm = cluster_up(&cluster, port, started);

    let dir = tempfile::tempdir().expect("a temp dir");
    let file = stage_on_port(dir.path(), 3, &[], port);

    swarm.scale(&["apply", "--yes", "--target", "swarm", "-p", &project, &file]).run().success();
    step(started, "stage 3 applied on the swarm");
    let first = http_get_ok(port, "/users/12", 120);
    let served_by = first.header("X-Served-By").unwrap_or_default().to_string();
    assert!(served_by.contains("-web-"), "{first:?}");
    assert!(first.body.contains("\"firstName\""), "{first:?}");

    // Tasks spread over at least two nodes, seen from the answers themselves.
    let answers: Vec<String> =
        (0..20).filter_map(|_| http_get_ok(port, "/users/12", 20).header("X-Served-By").map(str::to_string)).collect();
    let nodes = nodes_of(answers.clone(), &project);
    assert!(nodes.len() >= 2, "web tasks on {nodes:?}; answers {answers:?}");
    step(started, &format!("web answers from nodes {nodes:?}"));

    // Nothing to do the second time; the recorded target is used without the flag.
    let again = swarm.scale(&["apply", "--yes", "-p", &project, &file]).run();
    assert!(again.success().all().contains("No changes: project"), "{}", again.all());
    // Switching the project to one engine is refused, with what to do.
    let switch = swarm.scale(&["plan", "--target", "docker", "-p", &project, &file]).run();
    let (code, text) = switch.code_and_output();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("runs on target swarm") && text.contains("--target swarm"), "{text}");

    rolling_update(&swarm, &project, &file, port, started);
    lost_node(&swarm, &project, &file, &cluster, port, started);

    swarm.scale(&["destroy", "--yes", "-p", &project]).run().success();
    step(started, "destroyed");
    let status = swarm.scale(&["status", "--target", "swarm", "-p", &project, "--output", "json"]).run();
    let doc = status.success().json();
    assert_eq!(doc["services"].as_array().map(Vec::len), Some(0), "{doc}");
    Scale::new(&["cluster", "down", "--name", &cluster]).env_remove("DOCKER_HOST").run().success();
    step(started, "cluster down");
}

/// APP_VERSION=2 under a client loop: every request answered, the new version seen.
fn rolling_update(swarm: &OnSwarm, project: &str, file: &str, port: u16, started: Instant) {
    let client = ClientLoop::start(port, "/users/12", Duration::from_millis(50), 20_000, Duration::from_secs(900));
    let update = swarm.scale(&["apply", "--yes", "-p", project, file]).env("APP_VERSION", "2").run();
    assert!(update.success().all().contains("update service"), "{}", update.all());
    let done = Instant::now();
    common::poll(Duration::from_secs(30), "answers after the update", || {
        if client.answers_after(done) >= 20 { Ok(()) } else { Err("fewer than 20 answers".into()) }
    });
    let report = client.stop();
    step(started, &format!("rolling update under {} requests", report.samples.len()));
    let failures = report.failures();
    assert!(failures.is_empty(), "{} of {} requests failed: {:?}", failures.len(), report.samples.len(), failures);
    let after: BTreeSet<Option<String>> = report.after(done).iter().map(|s| s.version.clone()).collect();
    assert_eq!(after, BTreeSet::from([Some("2".to_string())]), "versions after the update");
}

/// A worker holding a web task is killed under a client loop: Swarm puts the task on the
/// remaining nodes and no request fails once the service is whole again and one health window
/// (10 s: HAProxy's checks and DNS) has passed; the failures inside the switch window are
/// printed. Not the database's worker (stage 3 has one database node, nothing to fail over
/// to): web is first scaled to three tasks, which Swarm spreads one per node, so the other
/// worker surely holds one.
fn lost_node(swarm: &OnSwarm, project: &str, file: &str, cluster: &str, port: u16, started: Instant) {
    let manager_host = format!("{cluster}-node1");
    let scale_up =
        swarm.scale(&["apply", "--yes", "-p", project, file]).env("APP_VERSION", "2").env("WEB_REPLICAS", "3").run();
    assert!(scale_up.success().all().contains("replicas 2 → 3"), "{}", scale_up.all());
    let web_nodes: BTreeSet<String> = units_of(swarm, project, "web").into_iter().flat_map(|u| u.nodes).collect();
    let db_nodes: BTreeSet<String> = units_of(swarm, project, "db").into_iter().flat_map(|u| u.nodes).collect();
    assert_eq!(web_nodes.len(), 3, "three web tasks, one per node: {web_nodes:?}");
    let victim = web_nodes
        .iter()
        .find(|n| **n != manager_host && !db_nodes.contains(*n))
        .unwrap_or_else(|| {
            panic!("no web task on a worker without the database: web on {web_nodes:?}, db on {db_nodes:?}")
        })
        .clone();
    step(started, &format!("web on {web_nodes:?}, db on {db_nodes:?}"));
    let client = ClientLoop::start(port, "/users/12", Duration::from_millis(50), 20_000, Duration::from_secs(600));
    std::thread::sleep(Duration::from_secs(2));
    let killed = Instant::now();
    Scale::new(&["chaos", "kill", &format!("node:{victim}")]).env_remove("DOCKER_HOST").run().success();
    step(started, &format!("killed node {victim}"));
    let web = format!("{project}-web");
    common::poll(Duration::from_secs(180), "web restored on the remaining nodes", || {
        let run = swarm.scale(&["status", "-p", project, "--output", "json"]).run();
        let doc = run.json();
        let unit = doc["services"].as_array().and_then(|s| s.iter().find(|u| u["name"] == web.as_str()).cloned());
        let unit = unit.ok_or_else(|| format!("no {web} in {doc}"))?;
        let on: Vec<String> =
            unit["nodes"].as_array().into_iter().flatten().filter_map(|n| n.as_str().map(str::to_string)).collect();
        if unit["ready"] == 3 && !on.contains(&victim) { Ok(()) } else { Err(format!("{unit}")) }
    });
    let restored = Instant::now();
    step(started, &format!("web restored {:.1} s after the kill", (restored - killed).as_secs_f64()));
    // The switch window: Swarm's node-down detection and the replacement task's start, then
    // one health window (HAProxy's checks and DNS) once the service is whole again.
    let window = restored + Duration::from_secs(10);
    common::poll(Duration::from_secs(60), "answers after the switch window", || {
        if client.answers_after(window) >= 20 { Ok(()) } else { Err("fewer than 20 answers".into()) }
    });
    let report = client.stop();
    let all = report.failures();
    let (during, total) = (all.len(), report.samples.len());
    eprintln!("lost node: {during} of {total} requests failed in the switch window (kill → restored + 10 s)");
    let late: Vec<_> = report.after(window).into_iter().filter(|s| s.failed()).collect();
    assert!(late.is_empty(), "{} requests failed after the health window: {late:?}", late.len());
}

/// The engine address of cluster node `host` (its `io.scale.engine` label), for the `docker`
/// CLI: what a person uses to look inside a task on that node.
fn node_engine(swarm: &OnSwarm, host: &str) -> String {
    let format = format!("{{{{index .Spec.Labels \"{}\"}}}}", "io.scale.engine");
    docker(&["-H", &swarm.manager, "node", "inspect", host, "--format", &format])
        .unwrap_or_else(|e| panic!("node inspect {host}: {e}"))
}

/// Runs SQL as the superuser in unit `unit`'s task on node `host`, through that node's engine.
fn psql_in(swarm: &OnSwarm, unit: &str, host: &str, sql: &str) -> Result<String, String> {
    let engine = node_engine(swarm, host);
    let filter = format!("label=com.docker.swarm.service.name={unit}");
    let id = docker(&["-H", &engine, "ps", "-q", "--filter", &filter])?;
    let id = id.lines().next().ok_or_else(|| format!("no running task of {unit} on {host}"))?.to_string();
    docker(&["-H", &engine, "exec", &id, "psql", "-X", "-At", "-U", "postgres", "-d", "postgres", "-c", sql])
}

/// The replicas streaming from `primary` (on `host`), as its `pg_stat_replication` says.
fn streaming_from(swarm: &OnSwarm, primary: &str, host: &str) -> Result<BTreeSet<String>, String> {
    let sql = "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'";
    Ok(psql_in(swarm, primary, host, sql)?.lines().map(str::to_string).collect())
}

/// The one node a database unit runs on, once it is ready there.
fn node_of_unit(swarm: &OnSwarm, project: &str, unit: &str) -> String {
    let rows = units_of(swarm, project, "db");
    let row = rows.iter().find(|u| u.name == unit).unwrap_or_else(|| panic!("no unit {unit} in {rows:?}"));
    assert_eq!((row.ready, row.nodes.len()), (1, 1), "{row:?}");
    row.nodes[0].clone()
}

/// Stage 4 (synchronous replication, as tests/failover_docker.rs runs it on one engine) on a
/// three-node swarm: each database node on its own cluster node, replication streaming, then
/// the primary's whole node killed under a write loop and a read loop. `scale failover`
/// promotes the replica on another node and moves `db-primary` to it; the next apply changes
/// nothing; no acknowledged write is lost, and no write or read fails after the switch window
/// (the kill until `scale failover` returned, plus 10 s of health window). The write gap is
/// printed, not asserted. Then the lost node comes back and its database node rejoins as a
/// replica of the new primary.
#[test]
fn stage_4_on_a_three_node_swarm_fails_over_a_lost_primary_node_without_losing_a_write() {
    if !common::docker_or_skip("swarm_docker") {
        return;
    }
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    let (cluster, project) = (format!("t-sw4-{pid}"), format!("sw4x{pid}"));
    let _cleanup = Cleanup { cluster: cluster.clone(), project: project.clone() };
    let started = Instant::now();
    let port = free_port();
    let swarm = cluster_up(&cluster, port, started);
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = stage_on_port(dir.path(), 4, &[("synchronous: false", "synchronous: true")], port);
    let p = project.as_str();

    swarm.scale(&["apply", "--yes", "--target", "swarm", "-p", p, &file]).run().success();
    step(started, "stage 4 applied on the swarm");
    let [db1, db2, db3] = [1, 2, 3].map(|n| format!("{p}-db-{n}"));
    let hosts: Vec<String> = [&db1, &db2, &db3].iter().map(|u| node_of_unit(&swarm, p, u)).collect();
    let distinct: BTreeSet<&String> = hosts.iter().collect();
    assert_eq!(distinct.len(), 3, "each database node on its own cluster node: {hosts:?}");
    assert_ne!(hosts[0], format!("{cluster}-node1"), "the primary is on a worker, not the manager");
    let streaming = common::poll(Duration::from_secs(60), "both replicas streaming", || {
        let seen = streaming_from(&swarm, &db1, &hosts[0])?;
        if seen.len() == 2 { Ok(seen) } else { Err(format!("streaming: {seen:?}")) }
    });
    assert_eq!(streaming, BTreeSet::from([db2.clone(), db3.clone()]), "application names are the nodes' hostnames");
    let first = http_get_ok(port, "/users/12", 120);
    assert!(first.body.contains("\"firstName\""), "{first:?}");
    assert_eq!(first.header("X-Db-Role"), Some("replica"), "reads go to a replica: {first:?}");
    let again = swarm.scale(&["apply", "--yes", "-p", p, &file]).run();
    assert!(again.success().all().contains("No changes: project"), "{}", again.all());
    step(started, &format!("db-1..3 on {hosts:?}, replicas streaming, a second apply with no changes"));

    let writes = WriteLoop::start(port, 800_000, Duration::from_millis(100), 6000, Duration::from_secs(600));
    let reads = ClientLoop::start(port, "/users/12", Duration::from_millis(100), 6000, Duration::from_secs(600));
    std::thread::sleep(Duration::from_secs(3));
    Scale::new(&["chaos", "kill", &format!("node:{}", hosts[0])]).env_remove("DOCKER_HOST").run().success();
    // Once the kill returned: a write started while the command ran may still be the old
    // primary's (and is counted among the acknowledged ones that must not be lost).
    let killed = Instant::now();
    step(started, &format!("killed node {} (the primary's)", hosts[0]));
    let failover = swarm.scale(&["failover", "-p", p]).run();
    let failed_over = Instant::now();
    let out = failover.success().all();
    step(started, &format!("failover returned {:.1} s after the kill", (failed_over - killed).as_secs_f64()));
    let promoted = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("promoting ")?.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| panic!("failover does not name the promoted node:\n{out}"));
    assert!(promoted == db2 || promoted == db3, "{out}");
    assert!(out.contains(&format!("{promoted} answers as db, db-primary")), "{out}");
    let promoted_host = node_of_unit(&swarm, p, &promoted);
    assert_ne!(promoted_host, hosts[0], "promoted on another node");

    // Writes are acknowledged by the promoted node once the failover returned.
    common::poll(Duration::from_secs(60), "writes acknowledged after the failover", || {
        let n = writes.acknowledged_after(failed_over);
        if n >= 5 { Ok(()) } else { Err(format!("{n} acknowledged")) }
    });
    // The next apply has nothing to do: the promoted node is the primary the marker names, and
    // the old one already has the replica's spec, pending on its lost node.
    let after = swarm.scale(&["apply", "--yes", "-p", p, &file]).run();
    let after_out = after.success().all();
    assert!(after_out.contains("No changes: project"), "{after_out}");
    swarm.scale(&["plan", "--detailed-exitcode", "-p", p, &file]).run().expect_code(0);
    let other = if promoted == db2 { &db3 } else { &db2 };
    let other_host = node_of_unit(&swarm, p, other);
    common::poll(Duration::from_secs(90), "the other replica streams from the new primary", || {
        let seen = streaming_from(&swarm, &promoted, &promoted_host)?;
        if seen.contains(other) { Ok(()) } else { Err(format!("streaming: {seen:?}")) }
    });
    step(started, &format!("{other} (on {other_host}) streams from {promoted}; the apply after it: no changes"));

    let window = failed_over + Duration::from_secs(10);
    common::poll(Duration::from_secs(60), "writes and reads after the switch window", || {
        let (w, r) = (writes.acknowledged_after(window), reads.answers_after(window));
        if w >= 20 && r >= 20 { Ok(()) } else { Err(format!("{w} writes, {r} reads")) }
    });
    let (write_report, read_report) = (writes.stop(), reads.stop());
    assert_eq!(write_report.ended, LoopEnd::Stopped, "the write loop ran out");
    let acked = write_report.acknowledged();
    let lost = lost_writes(port, acked.iter().map(|w| (w.id, w.body.as_str())));
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    for w in acked.iter().filter(|w| w.started > killed) {
        assert_eq!(w.db_node.as_deref(), Some(promoted.as_str()), "a write after the kill went elsewhere: {w:?}");
    }
    let late_writes: Vec<_> = write_report.writes.iter().filter(|w| w.started > window && !w.acknowledged()).collect();
    assert!(late_writes.is_empty(), "writes failed after the switch window: {late_writes:?}");
    let late_reads: Vec<_> = read_report.after(window).into_iter().filter(|s| s.failed()).collect();
    assert!(late_reads.is_empty(), "reads failed after the switch window: {late_reads:?}");
    let first_after_kill =
        acked.iter().filter(|w| w.started > killed).map(|w| w.at).min().expect("writes after the kill");
    let failed_writes = write_report.writes.iter().filter(|w| !w.acknowledged()).count();
    eprintln!(
        "lost primary node: write gap {:.1} s (kill → first acknowledged write; `scale failover` took {:.1} s); \
         {} writes, {} acknowledged, {failed_writes} failed (all inside the switch window), none lost; \
         {} of {} reads failed inside the window",
        (first_after_kill - killed).as_secs_f64(),
        (failed_over - killed).as_secs_f64(),
        write_report.writes.len(),
        acked.len(),
        read_report.failures().len(),
        read_report.samples.len()
    );

    // The lost node comes back: its database node starts there with the replica's spec the
    // failover gave it (never as a second primary), sets the old data aside and streams from
    // the new primary; the plan still has nothing to do.
    docker(&["start", &format!("scale-cluster-{}", hosts[0])]).expect("the lost node's container starts again");
    common::poll(Duration::from_secs(300), "the old primary streams from the new one", || {
        let seen = streaming_from(&swarm, &promoted, &promoted_host)?;
        if seen.contains(&db1) { Ok(()) } else { Err(format!("streaming: {seen:?}")) }
    });
    step(started, &format!("node {} back: {db1} re-seeded and streams from {promoted}", hosts[0]));
    swarm.scale(&["plan", "--detailed-exitcode", "-p", p, &file]).run().expect_code(0);

    swarm.scale(&["destroy", "--yes", "-p", p]).run().success();
    Scale::new(&["cluster", "down", "--name", &cluster]).env_remove("DOCKER_HOST").run().success();
    step(started, "destroyed, cluster down");
}
