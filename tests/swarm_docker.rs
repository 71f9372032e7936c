//! The ladder on a real three-node Swarm (`scale cluster up`, Docker engines in containers of
//! the local engine): stage 3 applied with `--target swarm`, web tasks spread over nodes and
//! answering through the load balancer on the manager's published port, a second apply with
//! nothing to do, a refused target switch, a rolling `APP_VERSION` update and a lost node,
//! each under a bounded client loop with zero failed requests.
//!
//! One cluster serves the whole story (one test: bringing up a cluster is the cost), and it
//! is removed at the end by its label even when a step fails. Images are built on the local
//! engine (SCALE_BUILD_ENGINE, warm cache) and copied into the nodes. Cost on 2 shared cores:
//! printed per step; see the README ("Past one machine").

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{ClientLoop, Scale, docker, http_get_ok, remove_built_images, stage_copy};

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

fn step(started: Instant, what: &str) {
    eprintln!("[{:>6.1} s] {what}", started.elapsed().as_secs_f64());
}

#[test]
fn stage_3_on_a_three_node_swarm_spreads_rolls_and_survives_a_lost_node() {
    if !common::docker_or_skip("swarm_docker") {
        return;
    }
    let pid = std::process::id();
    let (cluster, project) = (format!("t-sw-{pid}"), format!("sw{pid}"));
    let _cleanup = Cleanup { cluster: cluster.clone(), project: project.clone() };
    let started = Instant::now();
    let port = free_port();
    let port_text = port.to_string();
    Scale::new(&["cluster", "up", "--nodes", "3", "--name", &cluster, "--publish", &port_text])
        .env_remove("DOCKER_HOST")
        .timeout(Duration::from_secs(1200))
        .run()
        .success();
    step(started, "cluster up");
    let env = Scale::new(&["cluster", "env", "--name", &cluster]).env_remove("DOCKER_HOST").run();
    let manager = env.success().all().trim().strip_prefix("export DOCKER_HOST=").expect("an export line").to_string();
    let builder = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let swarm = OnSwarm { manager, builder };

    let dir = tempfile::tempdir().expect("a temp dir");
    let file = stage_copy(dir.path(), 3, &[]);
    // The balancer publishes the port the manager node publishes on the host's loopback.
    let yaml = std::fs::read_to_string(&file).expect("the stage copy");
    assert_eq!(yaml.matches(r#"ports: ["80"]"#).count(), 1, "{yaml}");
    std::fs::write(&file, yaml.replace(r#"ports: ["80"]"#, &format!(r#"ports: ["{port}:80"]"#))).expect("rewrite");

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
    lost_node(&swarm, &project, &cluster, port, started);

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
/// printed.
fn lost_node(swarm: &OnSwarm, project: &str, cluster: &str, port: u16, started: Instant) {
    let manager_host = format!("{cluster}-node1");
    let answers = (0..20).filter_map(|_| http_get_ok(port, "/users/12", 20).header("X-Served-By").map(str::to_string));
    let nodes = nodes_of(answers, project);
    let victim = nodes.iter().find(|n| **n != manager_host).expect("a web task on a worker").clone();
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
        if unit["ready"] == 2 && !on.contains(&victim) { Ok(()) } else { Err(format!("{unit}")) }
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
