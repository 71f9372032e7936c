//! Ctrl-C during an apply against a real engine: running actions finish, nothing new starts,
//! the exit code is 130, the output names what was not started, the lock is released, and the
//! next apply finishes the job. See tests/common for the rules (unique project, cleanup by
//! label, fail without an engine unless `SCALE_SKIP_DOCKER_TESTS=1`).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use common::{DockerTest, Scale, TEST_IMAGE, docker};
use scale::engine::lock::lock_name;

const REPLICAS: usize = 30;

fn event(line: &str) -> Option<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(line).ok()
}

#[test]
fn ctrl_c_stops_starting_new_work_exits_130_and_the_next_apply_finishes() {
    let Some(t) = DockerTest::start("interrupt") else { return };
    let p = t.project().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    // A healthcheck makes each container take about a second: the run is still busy when
    // the interrupt arrives.
    let text = format!(
        "name: interrupt\nservices:\n  app:\n    image: {TEST_IMAGE}\n    command: [sleep, infinity]\n    \
         replicas: {REPLICAS}\n    stop_grace_period: 1s\n    \
         healthcheck: {{ test: [CMD, \"true\"], interval: 1s, timeout: 10s, retries: 5 }}\n"
    );
    let file = dir.path().join("interrupt.yaml");
    std::fs::write(&file, text).expect("write blueprint");
    let file = file.to_str().expect("utf-8 path");

    let mut child = Command::new(env!("CARGO_BIN_EXE_scale"))
        .args(["apply", "--yes", "--output", "json", "-p", &p, file])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn apply");
    let mut stderr = child.stderr.take().expect("stderr");
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut lines = Vec::new();
    let mut signalled = false;
    for line in stdout.lines() {
        let line = line.expect("read stdout");
        let finished = event(&line).is_some_and(|e| e["event"] == "finished");
        lines.push(line);
        if finished && !signalled {
            let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("run kill");
            assert!(sent.success(), "kill -INT failed");
            signalled = true;
        }
    }
    let status = child.wait().expect("wait apply");
    let stderr = stderr.join().expect("stderr reader");
    let all = format!("{}\n--- stderr:\n{stderr}", lines.join("\n"));
    assert!(signalled, "no `finished` event ever came:\n{all}");
    assert_eq!(status.code(), Some(130), "{all}");
    assert!(stderr.contains("interrupt: letting running actions finish"), "{all}");

    let events: Vec<serde_json::Value> = lines.iter().filter_map(|l| event(l)).collect();
    let not_started: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "not_started").collect();
    assert!(!not_started.is_empty(), "the output must name what was not started:\n{all}");
    for e in &not_started {
        let name = e["action"]["name"].as_str().unwrap_or_default();
        assert!(name.starts_with(&format!("{p}-app-")), "{e}");
    }
    let result = events.iter().find(|e| e["event"] == "result").unwrap_or_else(|| panic!("no result event:\n{all}"));
    assert_eq!(result["status"], "interrupted", "{result}");
    assert_eq!(result["not_started"].as_u64(), Some(not_started.len() as u64), "{result}");
    assert!(docker(&["container", "inspect", &lock_name(&p)]).is_err(), "the lock must be released on exit 130");
    let created = t.docker(&["ps", "-aq", "--filter", &format!("label={}", t.label())]).lines().count();
    assert!(created < REPLICAS, "an interrupted apply must leave work undone, yet {created} containers exist");

    let (code, out) = Scale::new(&["apply", "--yes", "--lock-timeout", "0", "-p", &p, file]).run().code_and_output();
    assert_eq!(code, Some(0), "the next apply must finish the job:\n{out}");
    let (code, out) = Scale::new(&["plan", "--detailed-exitcode", "-p", &p, file]).run().code_and_output();
    assert_eq!(code, Some(0), "nothing may be left to do:\n{out}");
    let running = t.docker(&["ps", "-q", "--filter", &format!("label={}", t.label()), "--filter", "status=running"]);
    assert_eq!(running.lines().count(), REPLICAS);
}
