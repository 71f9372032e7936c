//! Rollouts on a real engine: a load balancer in front of four web replicas (stage 3's
//! images, SQLite so no database), `rollout: { parallelism: 2, order: start-first }`. A new
//! version whose healthcheck fails on replicas 3 and 4 passes the first batch and fails the
//! second: with `on_failure: rollback` the apply exits 1 saying it rolled back, the first
//! batch runs its old spec again, and a client loop through the load balancer sees no failed
//! request; a second apply does the same again. With `on_failure: pause` it stops and says
//! so, the first batch new, the rest old. HTTP goes only to 127.0.0.1:<published port>.

mod common;

use std::time::Duration;

use common::{BuildGuard, ClientLoop, DockerTest, LoopEnd, Scale, project_containers, repo_path, write_blueprint};

const HEALTHY: &str = r#"{ test: ["CMD", "curl", "-fsS", "http://localhost:8000/healthz"], interval: 1s, timeout: 2s, retries: 3, start_period: 20s }"#;
/// Healthy only on replicas whose hostname does not end in -3 or -4.
const BROKEN_ON_3_AND_4: &str = r#"{ test: ["CMD-SHELL", "curl -fsS http://localhost:8000/healthz && ! hostname | grep -q -- '-[34]$$'"], interval: 1s, timeout: 2s, retries: 2, start_period: 15s }"#;

fn blueprint(project: &str, version: &str, health: &str, on_failure: &str) -> String {
    let images = repo_path("blueprints/images");
    let images = images.to_str().expect("UTF-8 repository path");
    format!(
        r#"name: {project}
networks:
  public: {{}}
  private: {{ internal: true }}
services:
  lb:
    kind: load-balancer
    build: {images}/haproxy
    backends: {{ service: web, port: 8000 }}
    ports: ["80"]
    networks: [public, private]
    stop_grace_period: 5s
  web:
    build: {images}/web
    replicas: 4
    environment:
      APP_VERSION: "{version}"
    networks: [private]
    healthcheck: {health}
    stop_grace_period: 5s
    rollout: {{ parallelism: 2, order: start-first, on_failure: {on_failure} }}
"#
    )
}

/// The APP_VERSION each web replica's stored spec says, by name; panics on leftovers.
fn versions(project: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, c) in project_containers(project) {
        if !name.contains("-web-") {
            continue;
        }
        let inspect = common::inspect(&name);
        let spec: serde_json::Value = serde_json::from_str(
            inspect["Config"]["Labels"]["io.scale.spec"].as_str().unwrap_or_else(|| panic!("{name}: no spec label")),
        )
        .expect("a JSON spec");
        out.push((name.clone(), format!("{} {}", spec["env"]["APP_VERSION"].as_str().unwrap_or("?"), c.state)));
    }
    out
}

fn lb_port(file: &str) -> u16 {
    let status = Scale::new(&["status", file, "--output", "json"]).run();
    let status = status.success().json();
    let port = status["endpoints"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["service"] == "lb" && e["protocol"] == "tcp"))
        .and_then(|e| e["host_port"].as_u64())
        .unwrap_or_else(|| panic!("no public port of lb in {status:#}"));
    u16::try_from(port).expect("a port number")
}

#[test]
fn a_broken_rollout_rolls_back_with_no_failed_request_or_pauses_when_told() {
    let Some(t) = DockerTest::start("rollout") else { return };
    let project = t.project().to_string();
    let _guard = BuildGuard(Some(t));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let v1 = write_blueprint(dir.path(), &blueprint(&project, "1", HEALTHY, "rollback"));
    Scale::new(&["apply", "-y", &v1]).run().success();
    let port = lb_port(&v1);
    let old: Vec<(String, String)> = (1..=4).map(|n| (format!("{project}-web-{n}"), "1 running".into())).collect();
    assert_eq!(versions(&project), old);

    let broken = blueprint(&project, "2", BROKEN_ON_3_AND_4, "rollback");
    for attempt in 1..=2 {
        let v2 = write_blueprint(dir.path(), &broken);
        let load = ClientLoop::start(port, "/users/12", Duration::from_millis(50), 20_000, Duration::from_secs(240));
        let run = Scale::new(&["apply", "-y", &v2]).run();
        let report = load.stop();
        let out = run.expect_code(1).all();
        assert!(out.contains("rollout of web failed on"), "attempt {attempt}: {out}");
        assert!(
            out.contains(&format!("rolled back: {project}-web-1, {project}-web-2 run their previous spec again")),
            "attempt {attempt}: {out}"
        );
        assert!(out.contains("on failure: put the previous spec back"), "the plan says what a failure does: {out}");
        assert_eq!(report.ended, LoopEnd::Stopped);
        let failures = report.failures();
        println!(
            "attempt {attempt}: {} requests through the load balancer, {} failed",
            report.samples.len(),
            failures.len()
        );
        assert!(failures.is_empty(), "attempt {attempt}: failed requests: {:#?}", &failures[..failures.len().min(5)]);
        assert!(report.samples.len() > 20, "too few requests to tell: {}", report.samples.len());
        assert_eq!(versions(&project), old, "attempt {attempt}: every replica back on the old spec\n{out}");
    }

    let paused = write_blueprint(dir.path(), &blueprint(&project, "2", BROKEN_ON_3_AND_4, "pause"));
    let out = Scale::new(&["apply", "-y", &paused]).run().expect_code(1).all();
    assert!(out.contains("paused (on_failure: pause)"), "{out}");
    assert!(out.contains("`scale rollback web`"), "{out}");
    let now: Vec<(String, String)> =
        versions(&project).into_iter().filter(|(name, _)| !name.ends_with(".next")).collect();
    let expected: Vec<(String, String)> = (1..=4)
        .map(|n| (format!("{project}-web-{n}"), if n <= 2 { "2 running" } else { "1 running" }.to_string()))
        .collect();
    assert_eq!(now, expected, "{out}");

    // `scale rollback` takes the paused replicas back to the spec they ran before.
    let out = Scale::new(&["rollback", "web", "-y", "-f", &paused]).run().success().all();
    assert_eq!(versions(&project).into_iter().filter(|(n, _)| !n.ends_with(".next")).collect::<Vec<_>>(), old, "{out}");
}
