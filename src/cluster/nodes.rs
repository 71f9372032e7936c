//! The node containers, their network and volumes on the host engine: names, how a node is
//! run without `--privileged`, and finding a cluster's nodes again by label.
//!
//! `--privileged` fails in this sandbox (it asks for CAP_SYS_RESOURCE, which the sandbox does
//! not hold). What a dockerd inside needs and gets instead: every capability but
//! SYS_RESOURCE, no seccomp/AppArmor confinement, writable /proc and /sys paths
//! (`systempaths=unconfined`, empty masked and read-only paths), the host's cgroup namespace with /sys/fs/cgroup mounted
//! writable, and its own volume for /var/lib/docker (vfs: no overlay on overlay).

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, HostConfigCgroupnsModeEnum, Mount, MountType,
    NetworkCreateRequest, NetworkingConfig, PortBinding, VolumeCreateRequest,
};
use bollard::query_parameters::{CreateContainerOptionsBuilder, ListContainersOptionsBuilder};

use super::{CLUSTER_LABEL, ClusterError, ROLE_LABEL};
use crate::engine::docker::DockerEngine;

/// The port dockerd listens on inside each node (plain HTTP; published on loopback only).
pub const API_PORT: u16 = 2375;

/// How each node's dockerd runs. overlay2, not the image's default vfs: the node's
/// /var/lib/docker is a volume on the host's own filesystem (not on overlayfs), so overlay2
/// works, copies no whole layers, and keeps an image's root directory at 0755 (vfs applies
/// a layer's `./` entry to the root: an image whose first layer was tarred from a 0700
/// `mktemp -d` directory then made `/` unreadable to every user but root).
const DOCKERD: [&str; 5] = [
    "dockerd",
    "--storage-driver=overlay2",
    "--host=unix:///var/run/docker.sock",
    "--host=tcp://0.0.0.0:2375",
    "--tls=false",
];

/// The cluster's bridge network on the host engine.
pub fn network_name(cluster: &str) -> String {
    format!("scale-cluster-{cluster}")
}

/// Node `index` (1-based) of a cluster; node 1 is the manager. Also its hostname prefix.
pub fn node_name(cluster: &str, index: usize) -> String {
    format!("scale-cluster-{cluster}-node{index}")
}

fn volume_name(cluster: &str, index: usize) -> String {
    format!("{}-docker", node_name(cluster, index))
}

fn labels(cluster: &str, role: Option<&str>) -> HashMap<String, String> {
    let mut labels = HashMap::from([(CLUSTER_LABEL.to_string(), cluster.to_string())]);
    if let Some(role) = role {
        labels.insert(ROLE_LABEL.to_string(), role.to_string());
    }
    labels
}

/// The filter selecting everything of `cluster`.
pub fn label_filter(cluster: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![format!("{CLUSTER_LABEL}={cluster}")])])
}

/// Creates the cluster's network.
pub async fn create_network(host: &DockerEngine, cluster: &str) -> Result<(), ClusterError> {
    let name = network_name(cluster);
    let request = NetworkCreateRequest {
        name: name.clone(),
        driver: Some("bridge".into()),
        labels: Some(labels(cluster, None)),
        ..Default::default()
    };
    host.client().create_network(request).await.map_err(ClusterError::docker(format!("create network {name}")))?;
    Ok(())
}

/// Creates and starts node `index`; returns its container ID. The manager also publishes
/// `publish` (each port on the host's loopback to the same port of the node), where services
/// publishing in host mode on the manager are reached.
pub async fn start_node(
    host: &DockerEngine,
    cluster: &str,
    index: usize,
    image: &str,
    publish: &[u16],
) -> Result<String, ClusterError> {
    let name = node_name(cluster, index);
    let volume = volume_name(cluster, index);
    let volume_request =
        VolumeCreateRequest { name: Some(volume.clone()), labels: Some(labels(cluster, None)), ..Default::default() };
    let client = host.client();
    client.create_volume(volume_request).await.map_err(ClusterError::docker(format!("create volume {volume}")))?;
    let role = if index == 1 { "manager" } else { "worker" };
    let body = node_body(cluster, index, image, role, &volume, publish);
    let options = CreateContainerOptionsBuilder::new().name(&name).build();
    let created = client
        .create_container(Some(options), body)
        .await
        .map_err(ClusterError::docker(format!("create node container {name}")))?;
    client
        .start_container(&created.id, None::<bollard::query_parameters::StartContainerOptions>)
        .await
        .map_err(ClusterError::docker(format!("start node container {name}")))?;
    Ok(created.id)
}

fn node_body(
    cluster: &str,
    index: usize,
    image: &str,
    role: &str,
    volume: &str,
    publish: &[u16],
) -> ContainerCreateBody {
    let network = network_name(cluster);
    // Every node's API is published on the host's loopback only (a random port): scale loads
    // images into each node through it (there is no registry). Only the manager publishes
    // the service ports, each to the same port on the host's loopback.
    let loopback =
        |port: &str| Some(vec![PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(port.into()) }]);
    let mut bindings = HashMap::from([(format!("{API_PORT}/tcp"), loopback(""))]);
    if role == "manager" {
        for port in publish {
            bindings.insert(format!("{port}/tcp"), loopback(&port.to_string()));
        }
    }
    let exposed: Vec<String> = bindings.keys().cloned().collect();
    let port_bindings = Some(bindings);
    let mounts = vec![
        Mount {
            target: Some("/var/lib/docker".into()),
            source: Some(volume.to_string()),
            typ: Some(MountType::VOLUME),
            ..Default::default()
        },
        Mount {
            target: Some("/sys/fs/cgroup".into()),
            source: Some("/sys/fs/cgroup".into()),
            typ: Some(MountType::BIND),
            read_only: Some(false),
            ..Default::default()
        },
        // Run-time state is gone when a node restarts, as on a machine that reboots: a killed
        // node left dockerd's pid file there, and `docker start` then failed ("pid file found").
        Mount { target: Some("/run".into()), typ: Some(MountType::TMPFS), ..Default::default() },
    ];
    let host_config = HostConfig {
        cap_add: Some(vec!["ALL".into()]),
        cap_drop: Some(vec!["SYS_RESOURCE".into()]),
        security_opt: Some(["seccomp=unconfined", "apparmor=unconfined"].map(String::from).to_vec()),
        // The CLI's `--security-opt systempaths=unconfined`: nothing masked, nothing read-only.
        masked_paths: Some(Vec::new()),
        readonly_paths: Some(Vec::new()),
        cgroupns_mode: Some(HostConfigCgroupnsModeEnum::HOST),
        mounts: Some(mounts),
        port_bindings,
        network_mode: Some(network.clone()),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(DOCKERD.iter().map(|a| a.to_string()).collect()),
        hostname: Some(format!("{cluster}-node{index}")),
        labels: Some(labels(cluster, Some(role))),
        exposed_ports: Some(exposed),
        host_config: Some(host_config),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(network, EndpointSettings::default())])),
        }),
        ..Default::default()
    }
}

/// The node container of any cluster whose node has swarm hostname `hostname`
/// (`<cluster>-node<i>`); `NotFound` when none does.
pub async fn node_container(host: &DockerEngine, hostname: &str) -> Result<(String, String), ClusterError> {
    let name = format!("scale-cluster-{hostname}");
    let filters = HashMap::from([("label".to_string(), vec![CLUSTER_LABEL.to_string()])]);
    let options = ListContainersOptionsBuilder::new().all(true).filters(&filters).build();
    let listed = host
        .client()
        .list_containers(Some(options))
        .await
        .map_err(ClusterError::docker("list the cluster node containers"))?;
    listed
        .into_iter()
        .find(|c| c.names.iter().flatten().any(|n| n.trim_start_matches('/') == name))
        .and_then(|c| c.id)
        .map(|id| (id, name))
        .ok_or_else(|| ClusterError::NoSuchNode { node: hostname.to_string() })
}

/// A cluster's node containers as found on the host engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNodes {
    /// (container name, ID, role label), manager first, then by name.
    pub nodes: Vec<(String, String, String)>,
    /// The host loopback port of the manager's API, when it is running.
    pub manager_port: Option<u16>,
    /// Each running node's API port on the host's loopback, by container name.
    pub api_ports: std::collections::BTreeMap<String, u16>,
}

/// Finds `cluster`'s node containers (running or not); `NotFound` when there are none.
pub async fn find(host: &DockerEngine, cluster: &str) -> Result<ClusterNodes, ClusterError> {
    let options = ListContainersOptionsBuilder::new().all(true).filters(&label_filter(cluster)).build();
    let listed = host
        .client()
        .list_containers(Some(options))
        .await
        .map_err(ClusterError::docker(format!("list the containers of cluster {cluster}")))?;
    if listed.is_empty() {
        return Err(ClusterError::NotFound { name: cluster.to_string() });
    }
    let mut nodes = Vec::new();
    let mut manager_port = None;
    let mut api_ports = std::collections::BTreeMap::new();
    for c in listed {
        let name = c.names.as_ref().and_then(|n| n.first()).map(|n| n.trim_start_matches('/').to_string());
        let role = c.labels.as_ref().and_then(|l| l.get(ROLE_LABEL)).cloned().unwrap_or_default();
        let ports = c.ports.as_deref().unwrap_or_default();
        let api = ports.iter().find(|p| p.private_port == API_PORT).and_then(|p| p.public_port);
        if role == "manager" {
            manager_port = api;
        }
        if let (Some(name), Some(port)) = (&name, api) {
            api_ports.insert(name.clone(), port);
        }
        nodes.push((name.unwrap_or_default(), c.id.unwrap_or_default(), role));
    }
    nodes.sort_by(|a, b| (a.2 != "manager", &a.0).cmp(&(b.2 != "manager", &b.0)));
    Ok(ClusterNodes { nodes, manager_port, api_ports })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apis_are_published_on_loopback_and_service_ports_on_the_manager_only() {
        let manager = node_body("c", 1, "img", "manager", "v", &[18080]);
        let bindings = manager.host_config.as_ref().unwrap().port_bindings.as_ref().unwrap();
        let binding = &bindings["2375/tcp"].as_ref().unwrap()[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        let service = &bindings["18080/tcp"].as_ref().unwrap()[0];
        assert_eq!((service.host_ip.as_deref(), service.host_port.as_deref()), (Some("127.0.0.1"), Some("18080")));
        let worker = node_body("c", 2, "img", "worker", "v", &[18080]);
        let bindings = worker.host_config.unwrap().port_bindings.unwrap();
        assert_eq!(bindings.keys().collect::<Vec<_>>(), ["2375/tcp"]);
        assert_eq!(bindings["2375/tcp"].as_ref().unwrap()[0].host_ip.as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn nodes_carry_the_cluster_label_and_never_the_project_label() {
        let body = node_body("c", 2, "img", "worker", "v", &[]);
        let labels = body.labels.unwrap();
        assert_eq!(labels[CLUSTER_LABEL], "c");
        assert_eq!(labels[ROLE_LABEL], "worker");
        assert!(!labels.contains_key(crate::labels::PROJECT));
    }

    #[test]
    fn nodes_are_not_privileged_but_keep_what_dockerd_needs() {
        let config = node_body("c", 1, "img", "manager", "v", &[]).host_config.unwrap();
        assert_eq!(config.privileged, None);
        assert_eq!(config.cap_drop.unwrap(), ["SYS_RESOURCE"]);
        assert_eq!(config.cgroupns_mode, Some(HostConfigCgroupnsModeEnum::HOST));
        let run = config.mounts.unwrap().into_iter().find(|m| m.target.as_deref() == Some("/run"));
        assert_eq!(run.and_then(|m| m.typ), Some(MountType::TMPFS), "a restarted node starts with a clean /run");
    }
}
