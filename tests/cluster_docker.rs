//! `scale cluster up|env|status|down` against the real engine: three Docker engines in
//! containers joined into one Swarm, an overlay network and a dnsrr service across them, and
//! a clean teardown by the cluster's label. Costs about 30 s up and 10 s down on 2 cores
//! (printed; not asserted), plus the node image's first build (a few minutes, then cached).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bollard::models::{
    EndpointSpec, EndpointSpecModeEnum, NetworkAttachmentConfig, NetworkCreateRequest, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec, TaskState,
};
use bollard::query_parameters::{ListNodesOptions, ListTasksOptionsBuilder};
use common::{Scale, docker};
use scale::engine::docker::DockerEngine;

const LABEL: &str = "io.scale.cluster";

/// Removes everything with the cluster's label when dropped, with the `docker` CLI and not
/// with scale (whose `down` is under test), so a failed test leaves nothing behind.
struct ClusterGuard {
    name: String,
}

impl ClusterGuard {
    fn leftovers(&self) -> BTreeMap<&'static str, Vec<String>> {
        let filter = format!("label={LABEL}={}", self.name);
        let list = |args: &[&str]| -> Vec<String> {
            docker(args).unwrap_or_default().lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
        };
        BTreeMap::from([
            ("containers", list(&["ps", "-aq", "--filter", &filter])),
            ("networks", list(&["network", "ls", "-q", "--filter", &filter])),
            ("volumes", list(&["volume", "ls", "-q", "--filter", &filter])),
        ])
    }
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        let left = self.leftovers();
        for id in &left["containers"] {
            let _ = docker(&["rm", "-fv", id]);
        }
        for id in &left["networks"] {
            let _ = docker(&["network", "rm", id]);
        }
        for id in &left["volumes"] {
            let _ = docker(&["volume", "rm", id]);
        }
    }
}

fn cluster(args: &[&str]) -> common::ScaleRun {
    let mut all = vec!["cluster"];
    all.extend_from_slice(args);
    // The cluster lives on the local engine whatever DOCKER_HOST says.
    let run = Scale::new(&all).env_remove("DOCKER_HOST").timeout(Duration::from_secs(600)).run();
    run.success();
    run
}

#[tokio::test]
async fn three_nodes_come_up_as_one_swarm_run_a_service_across_nodes_and_go_away_cleanly() {
    if !common::docker_or_skip("cluster_docker") {
        return;
    }
    let name = format!("t-cl-{}", std::process::id());
    let guard = ClusterGuard { name: name.clone() };

    let started = Instant::now();
    cluster(&["up", "--nodes", "3", "--name", &name]);
    eprintln!("cluster up --nodes 3 took {:.1} s", started.elapsed().as_secs_f64());

    let env = cluster(&["env", "--name", &name]).all();
    let address = env
        .trim()
        .strip_prefix("export DOCKER_HOST=")
        .unwrap_or_else(|| panic!("cluster env printed no export line: {env:?}"))
        .to_string();
    assert!(address.starts_with("tcp://127.0.0.1:"), "the manager must be published on loopback only: {address}");
    let manager = DockerEngine::connect_to(&address).await.expect("the manager's API answers");

    let status = cluster(&["status", "--name", &name, "--output", "json"]).json();
    let nodes = status["nodes"].as_array().expect("status lists nodes");
    assert_eq!(nodes.len(), 3, "three swarm nodes: {status}");
    assert!(nodes.iter().all(|n| n["state"] == "ready"), "every node Ready: {status}");
    assert_eq!(nodes.iter().filter(|n| n["role"] == "manager").count(), 1, "one manager: {status}");
    let listed = manager.client().list_nodes(None::<ListNodesOptions>).await.expect("node ls on the manager");
    assert_eq!(listed.len(), 3, "the manager itself sees three nodes");
    let host_swarm = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]).expect("docker info");
    assert_eq!(host_swarm, "inactive", "the host engine must never be switched into swarm mode");

    let spread = service_across_nodes(&manager, &name).await;
    assert!(spread.len() >= 2, "the 2 replicas run on at least two nodes: {spread:?}");

    let started = Instant::now();
    cluster(&["down", "--name", &name]);
    eprintln!("cluster down took {:.1} s", started.elapsed().as_secs_f64());
    let left = guard.leftovers();
    assert!(left.values().all(Vec::is_empty), "cluster down left resources with its label: {left:?}");
}

/// Creates an overlay network and a 2-replica dnsrr service on it; waits for both tasks to
/// run, checks that one task resolves both through the overlay's DNS; returns the hostnames
/// of the nodes that run them.
async fn service_across_nodes(manager: &DockerEngine, cluster: &str) -> BTreeSet<String> {
    let client = manager.client();
    let network = NetworkCreateRequest {
        name: "t-overlay".into(),
        driver: Some("overlay".into()),
        attachable: Some(true),
        ..Default::default()
    };
    client.create_network(network).await.expect("an overlay network on the swarm");
    let spec = ServiceSpec {
        name: Some("sleeper".into()),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(common::TEST_IMAGE.into()),
                command: Some(vec!["sleep".into(), "infinity".into()]),
                ..Default::default()
            }),
            networks: Some(vec![NetworkAttachmentConfig { target: Some("t-overlay".into()), ..Default::default() }]),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(2) }),
            ..Default::default()
        }),
        endpoint_spec: Some(EndpointSpec { mode: Some(EndpointSpecModeEnum::DNSRR), ..Default::default() }),
        ..Default::default()
    };
    client.create_service(spec, None).await.expect("a dnsrr service (no IPVS here, so no VIP)");

    let hostnames: BTreeMap<String, String> = client
        .list_nodes(None::<ListNodesOptions>)
        .await
        .expect("node ls")
        .into_iter()
        .map(|n| (n.id.unwrap_or_default(), n.description.and_then(|d| d.hostname).unwrap_or_default()))
        .collect();
    let filters = std::collections::HashMap::from([
        ("service".to_string(), vec!["sleeper".to_string()]),
        ("desired-state".to_string(), vec!["running".to_string()]),
    ]);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let tasks =
            client.list_tasks(Some(ListTasksOptionsBuilder::new().filters(&filters).build())).await.expect("task ls");
        let running: Vec<(String, String)> = tasks
            .iter()
            .filter_map(|t| {
                let status = t.status.as_ref()?;
                (status.state == Some(TaskState::RUNNING)).then(|| {
                    let node = hostnames.get(t.node_id.as_deref()?)?.clone();
                    let container = status.container_status.as_ref()?.container_id.clone()?;
                    Some((node, container))
                })?
            })
            .collect();
        if running.len() == 2 {
            let (node, container) = &running[0];
            // The node's hostname is `<cluster>-nodeN`; its container `scale-cluster-<hostname>`.
            assert!(node.starts_with(cluster), "{node}");
            let resolved = docker(&[
                "exec",
                &format!("scale-cluster-{node}"),
                "docker",
                "exec",
                container,
                "getent",
                "ahostsv4",
                "tasks.sleeper",
            ])
            .expect("getent in a task");
            let addresses: BTreeSet<&str> = resolved.lines().filter_map(|l| l.split_whitespace().next()).collect();
            assert_eq!(addresses.len(), 2, "a task resolves both replicas over the overlay: {resolved}");
            return running.into_iter().map(|(node, _)| node).collect();
        }
        let seen: Vec<String> = tasks
            .iter()
            .map(|t| {
                format!(
                    "{:?} {:?}",
                    t.status.as_ref().and_then(|s| s.state),
                    t.status.as_ref().and_then(|s| s.err.clone())
                )
            })
            .collect();
        assert!(Instant::now() < deadline, "the 2 replicas never both ran within 180 s: {seen:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
