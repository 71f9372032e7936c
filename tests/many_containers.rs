//! 200 containers in one project against a real engine: apply brings exactly 200 up, the next
//! plan is empty, destroy removes them all. (How long that takes and how much memory it needs
//! is measured by bench/compose-vs-scale.sh, not asserted here.) See tests/common for the
//! rules: unique project, cleanup by label, fail without an engine unless
//! `SCALE_SKIP_DOCKER_TESTS=1`.

mod common;

use std::time::Duration;

use common::{DockerTest, Scale, TEST_IMAGE};

const SERVICES: [&str; 4] = ["alpha", "bravo", "charlie", "delta"];
const REPLICAS: usize = 50;

fn count(t: &DockerTest, extra: &[&str]) -> usize {
    let label = format!("label={}", t.label());
    let mut args = vec!["ps", "-q", "--filter", label.as_str()];
    args.extend_from_slice(extra);
    t.docker(&args).lines().filter(|l| !l.is_empty()).count()
}

#[test]
fn two_hundred_containers_come_up_plan_empty_and_go_away() {
    let Some(t) = DockerTest::start("many-containers") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::from("name: many\nservices:\n");
    for service in SERVICES {
        text.push_str(&format!(
            "  {service}:\n    image: {TEST_IMAGE}\n    command: [sleep, infinity]\n    replicas: {REPLICAS}\n    \
             stop_grace_period: 1s\n"
        ));
    }
    let file = dir.path().join("many.yaml");
    std::fs::write(&file, text).expect("write blueprint");
    let file = file.to_str().expect("utf-8 path");
    let p = t.project();

    let (code, out) = Scale::new(&["apply", "--yes", "--parallel", "8", "--timeout", "300s", "-p", p, file])
        .timeout(Duration::from_secs(900))
        .run()
        .code_and_output();
    assert_eq!(code, Some(0), "apply:\n{out}");
    assert_eq!(count(&t, &["--filter", "status=running"]), SERVICES.len() * REPLICAS, "running containers");
    assert_eq!(count(&t, &["-a"]), SERVICES.len() * REPLICAS, "containers in any state");

    let (code, out) = Scale::new(&["plan", "--detailed-exitcode", "-p", p, file]).run().code_and_output();
    assert_eq!(code, Some(0), "the plan after apply must be empty:\n{out}");

    let (code, out) = Scale::new(&["destroy", "--yes", "-p", p]).run().code_and_output();
    assert_eq!(code, Some(0), "destroy:\n{out}");
    assert_eq!(count(&t, &["-a"]), 0, "destroy must remove every container");
    let networks = t.docker(&["network", "ls", "-q", "--filter", &format!("label={}", t.label())]);
    assert!(networks.is_empty(), "destroy must remove the networks: {networks}");
}
