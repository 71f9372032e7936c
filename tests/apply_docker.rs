//! Acceptance tests of the core against a real Docker engine, driving the built `scale`
//! binary: a ten-container stack through its whole life (apply, no-op, rolling update,
//! scale-down, drift repair, destroy), no engine writes on a no-op apply, failures that name
//! the container and show its logs, a rollout that stops at a failed replacement, and an
//! unreachable engine. See tests/common for the rules (unique project per test, cleanup by
//! label, fail without an engine unless `SCALE_SKIP_DOCKER_TESTS=1`).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{
    DockerTest, Scale, TEST_IMAGE, docker_timestamp, project_containers, project_events, project_resources,
    write_blueprint,
};
use serde_json::Value;

/// The ten-container stack: proxy (publishes a random port) on both networks, `web_replicas`
/// web servers with a healthcheck on both, db (healthcheck, named volume), cache and worker
/// (waits for db to be healthy) on the internal network only.
fn stack(project: &str, greeting: &str, web_replicas: u32) -> String {
    format!(
        r#"name: {project}
networks:
  front: {{}}
  back: {{ internal: true }}
volumes:
  dbdata: {{}}
services:
  proxy:
    image: {TEST_IMAGE}
    command: ["sleep", "infinity"]
    stop_grace_period: 1s
    ports: ["80"]
    networks: [front, back]
    depends_on: [web]
  web:
    image: {TEST_IMAGE}
    command: ["sleep", "infinity"]
    stop_grace_period: 1s
    replicas: {web_replicas}
    environment:
      GREETING: {greeting}
    healthcheck: {{ test: ["CMD", "true"], interval: 1s, timeout: 2s, retries: 3 }}
    networks: [front, back]
  db:
    image: {TEST_IMAGE}
    command: ["sleep", "infinity"]
    stop_grace_period: 1s
    volumes: ["dbdata:/data"]
    healthcheck: {{ test: ["CMD", "test", "-d", "/data"], interval: 1s, timeout: 2s, retries: 3 }}
    networks: [back]
  cache:
    image: {TEST_IMAGE}
    command: ["sleep", "infinity"]
    stop_grace_period: 1s
    networks: [back]
  worker:
    image: {TEST_IMAGE}
    command: ["sleep", "infinity"]
    stop_grace_period: 1s
    networks: [back]
    depends_on: {{ db: {{ condition: service_healthy }} }}
"#
    )
}

/// name → ID of the project's containers, asserting every one of them is running.
fn running_ids(project: &str) -> BTreeMap<String, String> {
    let containers = project_containers(project);
    for (name, c) in &containers {
        assert_eq!(c.state, "running", "{name} is {} (all containers: {containers:#?})", c.state);
    }
    containers.into_iter().map(|(name, c)| (name, c.id)).collect()
}

/// The (index of `started`, index of `finished`) of each action in apply's JSON lines, by id.
fn action_spans(events: &[Value]) -> BTreeMap<u64, (Option<usize>, Option<usize>)> {
    let mut spans: BTreeMap<u64, (Option<usize>, Option<usize>)> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        let Some(id) = e["action"]["id"].as_u64() else { continue };
        let span = spans.entry(id).or_default();
        match e["event"].as_str() {
            Some("started") => span.0 = Some(i),
            Some("finished") => span.1 = Some(i),
            _ => {}
        }
    }
    spans
}

#[test]
fn ten_container_stack() {
    let Some(t) = DockerTest::start("stack") else { return };
    let p = t.project();
    let dir = tempfile::tempdir().expect("tempdir");
    let web = |n: u32| format!("{p}-web-{n}");

    // First apply: ten running containers, and nothing left to do.
    let file = write_blueprint(dir.path(), &stack(p, "hello", 6));
    Scale::new(&["apply", &file]).run().success();
    let first = running_ids(p);
    let mut expected: Vec<String> = ["proxy", "db", "cache", "worker"].iter().map(|s| format!("{p}-{s}-1")).collect();
    expected.extend((1..=6).map(web));
    expected.sort();
    assert_eq!(first.keys().cloned().collect::<Vec<_>>(), expected);
    assert_eq!(project_resources("network", p), vec![format!("{p}_back"), format!("{p}_front")]);
    assert_eq!(project_resources("volume", p), vec![format!("{p}_dbdata")]);
    Scale::new(&["plan", "--detailed-exitcode", &file]).run().expect_code(0);

    // One environment variable of web changes: six recreates, one at a time.
    let file = write_blueprint(dir.path(), &stack(p, "hi", 6));
    let plan = Scale::new(&["plan", "--output", "json", &file]).run().success().json();
    let actions = plan["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 6, "{plan:#}");
    let mut recreated: Vec<&str> = Vec::new();
    for a in actions {
        assert_eq!(a["action"], "recreate", "{a}");
        assert_eq!(a["resource"], "container", "{a}");
        assert_eq!(a["service"], "web", "{a}");
        let reason = a["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("environment GREETING changed (hello → hi)"), "reason: {reason}");
        recreated.push(a["name"].as_str().expect("name"));
    }
    recreated.sort();
    let mut webs: Vec<String> = (1..=6).map(web).collect();
    webs.sort();
    assert_eq!(recreated, webs);
    assert_eq!(plan["changes"], true);

    let run = Scale::new(&["apply", "--output", "json", &file]).run();
    run.success();
    let events = run.json_lines();
    assert_eq!(events.first().map(|e| &e["event"]), Some(&Value::from("plan")), "{}", run.stdout);
    let last = events.last().expect("events");
    assert_eq!((&last["event"], &last["status"]), (&Value::from("result"), &Value::from("ok")), "{last}");
    let spans = action_spans(&events);
    let mut rollout: Vec<(usize, usize)> =
        spans.values().map(|&(s, f)| (s.expect("every action started"), f.expect("every action finished"))).collect();
    assert_eq!(rollout.len(), 6, "{}", run.stdout);
    rollout.sort();
    // One at a time (parallelism 1): a replacement starts only once the previous one's new
    // container was waited on until ready; old containers may still be stopping then, which
    // (as in Kubernetes) no longer count toward the surge.
    let waited: Vec<usize> = {
        let mut at: Vec<(usize, usize)> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| e["event"] == "output" && e["line"] == "waiting until healthy")
            .filter_map(|(i, e)| Some((spans.get(&e["action"]["id"].as_u64()?)?.0?, i)))
            .collect();
        at.sort();
        at.into_iter().map(|(_, i)| i).collect()
    };
    assert_eq!(waited.len(), 6, "every new web container was waited on:\n{}", run.stdout);
    for (n, pair) in rollout.windows(2).enumerate() {
        assert!(
            pair[1].0 > waited[n],
            "a web replacement started (line {}) before the previous one's new container was waited on (line {}):\n{}",
            pair[1].0,
            waited[n],
            run.stdout
        );
    }
    let second = running_ids(p);
    assert_eq!(second.keys().collect::<Vec<_>>(), first.keys().collect::<Vec<_>>());
    for (name, id) in &second {
        if name.starts_with(&format!("{p}-web-")) {
            assert_ne!(id, &first[name], "{name} was not recreated");
        } else {
            assert_eq!(id, &first[name], "{name} was touched by a change to web");
        }
    }
    Scale::new(&["plan", "--detailed-exitcode", &file]).run().expect_code(0);

    // Scale down 6 → 3: the last three go, nothing else is touched.
    let file = write_blueprint(dir.path(), &stack(p, "hi", 3));
    let plan = Scale::new(&["plan", "--output", "json", &file]).run().success().json();
    let removes: Vec<&str> =
        plan["actions"].as_array().expect("actions").iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(removes, vec!["remove"; 3], "{plan:#}");
    Scale::new(&["apply", &file]).run().success();
    let third = running_ids(p);
    let gone: Vec<&String> = second.keys().filter(|n| !third.contains_key(*n)).collect();
    assert_eq!(gone, vec![&web(4), &web(5), &web(6)]);
    for (name, id) in &third {
        assert_eq!(id, &second[name], "{name} changed while scaling down");
    }
    assert_eq!(third.len(), 7);

    // Drift: one container removed, one stopped behind scale's back.
    let (cache, worker) = (format!("{p}-cache-1"), format!("{p}-worker-1"));
    t.docker(&["rm", "-f", &cache]);
    t.docker(&["stop", "-t", "1", &worker]);
    let plan = Scale::new(&["plan", &file]).run().success().stdout.clone();
    assert!(plan.contains(&format!("create {cache}: missing")), "{plan}");
    assert!(plan.contains(&format!("start {worker}: stopped")), "{plan}");
    Scale::new(&["plan", "--detailed-exitcode", &file]).run().expect_code(2);
    Scale::new(&["apply", &file]).run().success();
    let repaired = running_ids(p);
    assert_eq!(repaired.keys().collect::<Vec<_>>(), third.keys().collect::<Vec<_>>());
    assert_eq!(repaired[&worker], third[&worker], "a stopped container is started, not replaced");
    Scale::new(&["plan", "--detailed-exitcode", &file]).run().expect_code(0);

    // Destroy: containers and networks go, the volume stays until --volumes.
    Scale::new(&["destroy", "--yes", &file]).run().success();
    assert_eq!(project_containers(p), BTreeMap::new());
    assert_eq!(project_resources("network", p), Vec::<String>::new());
    assert_eq!(project_resources("volume", p), vec![format!("{p}_dbdata")]);
    Scale::new(&["destroy", "--yes", "-p", p]).run().success();
    Scale::new(&["destroy", "--yes", "--volumes", "-p", p]).run().success();
    assert_eq!(project_resources("volume", p), Vec::<String>::new());
}

/// A second apply of an unchanged blueprint says so and writes nothing to the engine: the
/// only events allowed are the engine's own healthcheck execs.
fn no_op_apply(test: &str, with_healthchecks: bool) {
    let Some(t) = DockerTest::start(test) else { return };
    let p = t.project();
    let dir = tempfile::tempdir().expect("tempdir");
    let health = if with_healthchecks {
        r#"healthcheck: { test: ["CMD", "true"], interval: 1s, timeout: 2s, retries: 3 }"#
    } else {
        ""
    };
    let yaml = format!(
        r#"name: {p}
networks:
  private: {{ internal: true }}
volumes:
  data: {{}}
services:
  web:
    image: {TEST_IMAGE}
    command: ["sleep", "infinity"]
    stop_grace_period: 1s
    replicas: 2
    ports: ["80"]
    {health}
  db:
    image: {TEST_IMAGE}
    command: ["sleep", "infinity"]
    stop_grace_period: 1s
    volumes: ["data:/data"]
    networks: [private]
    {health}
"#
    );
    let file = write_blueprint(dir.path(), &yaml);
    Scale::new(&["apply", &file]).run().success();
    let before = running_ids(p);
    assert_eq!(before.len(), 3, "{before:?}");

    let since = docker_timestamp();
    let again = Scale::new(&["apply", &file]).run();
    again.success();
    // Let a last healthcheck exec that overlapped the run finish reporting before the window
    // closes (events are only read afterwards; the window is what counts).
    std::thread::sleep(Duration::from_millis(200));
    let until = docker_timestamp();
    assert!(again.stdout.contains("No changes"), "{}", again.stdout);
    assert!(again.stdout.contains("http://127.0.0.1:"), "a no-op apply still prints the endpoints: {}", again.stdout);
    let events = project_events(p, &since, &until);
    let writes: Vec<&String> = events
        .iter()
        .filter(|e| {
            let action = e.split_once(' ').map_or(e.as_str(), |(_, a)| a);
            let action = action.split(':').next().unwrap_or_default();
            !(with_healthchecks && matches!(action, "exec_create" | "exec_start" | "exec_die"))
        })
        .collect();
    assert!(writes.is_empty(), "a no-op apply caused engine events {writes:?} (all events: {events:?})");
    assert_eq!(running_ids(p), before);
}

#[test]
fn second_apply_makes_no_engine_writes() {
    no_op_apply("noop-hc", true);
}

#[test]
fn second_apply_without_healthchecks_makes_no_engine_events() {
    no_op_apply("noop-plain", false);
}

#[test]
fn failed_start_shows_logs_and_stops() {
    let Some(t) = DockerTest::start("failstart") else { return };
    let p = t.project();
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        r#"name: {p}
services:
  app:
    image: {TEST_IMAGE}
    command: ["sh", "-c", "echo boom-from-app; exit 3"]
    stop_grace_period: 1s
  client:
    image: {TEST_IMAGE}
    command: ["sleep", "infinity"]
    stop_grace_period: 1s
    depends_on: [app]
"#
    );
    let file = write_blueprint(dir.path(), &yaml);
    let run = Scale::new(&["apply", &file]).run();
    run.expect_code(1);
    let app = format!("{p}-app-1");
    assert!(run.stderr.contains(&app), "stderr names the container:\n{}", run.stderr);
    assert!(run.stderr.contains("exited with code 3"), "stderr says how it ended:\n{}", run.stderr);
    assert!(run.stderr.contains("boom-from-app"), "stderr shows its logs:\n{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    // A dependant may be created while its dependencies start (as Compose creates every
    // container before starting them), but it is never started when one of them failed.
    let client = format!("{p}-client-1");
    if t.container_exists(&client) {
        let state = common::inspect(&client)["State"].clone();
        assert_eq!(state["Status"], "created", "{client} was started although what it depends on failed: {state}");
    }
}

#[test]
fn rollout_stops_at_a_failed_replacement() {
    let Some(t) = DockerTest::start("rollout") else { return };
    let p = t.project();
    let dir = tempfile::tempdir().expect("tempdir");
    // `on_failure: pause`: stop where the rollout failed (the default, rollback, is
    // tests/rollout_docker.rs's), leaving the failed replacement for `docker logs`.
    let blueprint = |check: &str, retries: u32| {
        format!(
            r#"name: {p}
services:
  web:
    image: {TEST_IMAGE}
    command: ["sleep", "infinity"]
    stop_grace_period: 1s
    replicas: 3
    healthcheck: {{ test: ["CMD", "{check}"], interval: 1s, timeout: 2s, retries: {retries} }}
    rollout: {{ on_failure: pause }}
"#
        )
    };
    let file = write_blueprint(dir.path(), &blueprint("true", 3));
    Scale::new(&["apply", &file]).run().success();
    let before = project_containers(p);
    assert_eq!(before.len(), 3, "{before:#?}");
    assert!(before.values().all(|c| !c.spec_hash.is_empty() && c.state == "running"), "{before:#?}");

    // Each replica's spec (so its hash) differs by name; "old spec" is per container.
    let file = write_blueprint(dir.path(), &blueprint("false", 1));
    let run = Scale::new(&["apply", "--timeout", "60s", &file]).run();
    run.expect_code(1);
    assert!(run.stderr.contains("unhealthy"), "stderr says why:\n{}", run.stderr);
    // The replacement started beside the old container (no fixed port, no volume): every old
    // replica is still running untouched, and the failed new one waits under its temporary
    // name for `docker logs`; the next apply removes it as a leftover.
    let after = project_containers(p);
    for (name, old) in &before {
        let now = &after[name];
        assert_eq!(now.id, old.id, "{name} was left alone: {after:#?}");
        assert_eq!(now.spec_hash, old.spec_hash, "{name} keeps the old spec: {after:#?}");
        assert_eq!(now.state, "running", "{name}: {after:#?}");
    }
    let leftovers: Vec<&String> = after.keys().filter(|n| !before.contains_key(*n)).collect();
    assert_eq!(leftovers.len(), 1, "exactly one replacement was tried: {after:#?}");
    assert!(leftovers[0].ends_with(".next"), "{after:#?}");
    assert!(run.stderr.contains(leftovers[0].as_str()), "stderr names the failed replacement:\n{}", run.stderr);
    let plan = Scale::new(&["plan", &file]).run();
    assert!(
        plan.stdout.contains(&format!("remove {}: leftover of an interrupted replacement", leftovers[0])),
        "{}",
        plan.stdout
    );
}

/// No engine at DOCKER_HOST: plan and apply fail fast, say where they looked and what to do.
/// Needs no engine, so it is never skipped.
#[test]
fn unreachable_engine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "name: t-unreachable-{}\nservices:\n  web:\n    image: {TEST_IMAGE}\n    command: [\"sleep\", \"infinity\"]\n",
        std::process::id()
    );
    let file = write_blueprint(dir.path(), &yaml);
    for (host, shown) in
        [("tcp://127.0.0.1:9", "127.0.0.1:9"), ("unix:///nonexistent/docker.sock", "/nonexistent/docker.sock")]
    {
        for command in ["plan", "apply"] {
            let run = Scale::new(&[command, &file]).envs(&[("DOCKER_HOST", host), ("DOCKER_TLS_VERIFY", "")]).run();
            run.expect_code(1);
            assert!(
                run.elapsed < Duration::from_secs(5),
                "`scale {command}` with DOCKER_HOST={host} took {:?}",
                run.elapsed
            );
            assert!(run.stderr.contains(shown), "DOCKER_HOST={host}: stderr names the address:\n{}", run.stderr);
            assert!(run.stderr.contains("hint:"), "DOCKER_HOST={host}: stderr has a hint:\n{}", run.stderr);
            assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        }
    }
}
