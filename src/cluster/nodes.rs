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

/// Creates and starts node `index`; returns its container ID.
pub async fn start_node(host: &DockerEngine, cluster: &str, index: usize, image: &str) -> Result<String, ClusterError> {
    let name = node_name(cluster, index);
    let volume = volume_name(cluster, index);
    let volume_request =
        VolumeCreateRequest { name: Some(volume.clone()), labels: Some(labels(cluster, None)), ..Default::default() };
    let client = host.client();
    client.create_volume(volume_request).await.map_err(ClusterError::docker(format!("create volume {volume}")))?;
    let role = if index == 1 { "manager" } else { "worker" };
    let body = node_body(cluster, index, image, role, &volume);
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

fn node_body(cluster: &str, index: usize, image: &str, role: &str, volume: &str) -> ContainerCreateBody {
    let network = network_name(cluster);
    // Only the manager's API is published, and on the host's loopback only (a random port).
    let port_bindings = (role == "manager").then(|| {
        HashMap::from([(
            format!("{API_PORT}/tcp"),
            Some(vec![PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(String::new()) }]),
        )])
    });
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
        hostname: Some(format!("{cluster}-node{index}")),
        labels: Some(labels(cluster, Some(role))),
        exposed_ports: Some(vec![format!("{API_PORT}/tcp")]),
        host_config: Some(host_config),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(network, EndpointSettings::default())])),
        }),
        ..Default::default()
    }
}

/// A cluster's node containers as found on the host engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNodes {
    /// (container name, ID, role label), manager first, then by name.
    pub nodes: Vec<(String, String, String)>,
    /// The host loopback port of the manager's API, when it is running.
    pub manager_port: Option<u16>,
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
    for c in listed {
        let name = c.names.as_ref().and_then(|n| n.first()).map(|n| n.trim_start_matches('/').to_string());
        let role = c.labels.as_ref().and_then(|l| l.get(ROLE_LABEL)).cloned().unwrap_or_default();
        if role == "manager" {
            let ports = c.ports.as_deref().unwrap_or_default();
            manager_port = ports.iter().find(|p| p.private_port == API_PORT).and_then(|p| p.public_port);
        }
        nodes.push((name.unwrap_or_default(), c.id.unwrap_or_default(), role));
    }
    nodes.sort_by(|a, b| (a.2 != "manager", &a.0).cmp(&(b.2 != "manager", &b.0)));
    Ok(ClusterNodes { nodes, manager_port })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_manager_publishes_its_api_and_only_on_loopback() {
        let manager = node_body("c", 1, "img", "manager", "v");
        let bindings = manager.host_config.as_ref().unwrap().port_bindings.as_ref().unwrap();
        let binding = &bindings["2375/tcp"].as_ref().unwrap()[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        let worker = node_body("c", 2, "img", "worker", "v");
        assert!(worker.host_config.unwrap().port_bindings.is_none());
    }

    #[test]
    fn nodes_carry_the_cluster_label_and_never_the_project_label() {
        let body = node_body("c", 2, "img", "worker", "v");
        let labels = body.labels.unwrap();
        assert_eq!(labels[CLUSTER_LABEL], "c");
        assert_eq!(labels[ROLE_LABEL], "worker");
        assert!(!labels.contains_key(crate::labels::PROJECT));
    }

    #[test]
    fn nodes_are_not_privileged_but_keep_what_dockerd_needs() {
        let config = node_body("c", 1, "img", "manager", "v").host_config.unwrap();
        assert_eq!(config.privileged, None);
        assert_eq!(config.cap_drop.unwrap(), ["SYS_RESOURCE"]);
        assert_eq!(config.cgroupns_mode, Some(HostConfigCgroupnsModeEnum::HOST));
    }
}
