//! `cluster up` and `cluster down`: the steps in order, each one's wait, and cleanup by label.

use std::time::{Duration, Instant};

use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptions,
};
use futures_util::StreamExt;

use super::nodes::{self, ClusterNodes, label_filter, network_name, node_name};
use super::{BASE_IMAGE, ClusterError, MAX_NODES, Wait, check_name, image, swarm};
use crate::engine::docker::DockerEngine;

/// What `up` made.
#[derive(Debug, Clone)]
pub struct Up {
    pub name: String,
    /// The manager's API on the host's loopback.
    pub port: u16,
    pub nodes: Vec<swarm::NodeRow>,
    pub took: Duration,
}

/// What `down` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Down {
    pub containers: usize,
    pub networks: usize,
    pub volumes: usize,
}

/// Starts cluster `name` with `count` nodes on the host engine and joins them into one
/// swarm; the manager publishes `publish` on the host's loopback. On failure, what was
/// created is removed again (by label) before the error returns.
pub async fn up(
    host: &DockerEngine,
    name: &str,
    count: usize,
    publish: &[u16],
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Up, ClusterError> {
    check_name(name)?;
    if count == 0 || count > MAX_NODES {
        return Err(ClusterError::InvalidNodeCount { nodes: count });
    }
    match nodes::find(host, name).await {
        Ok(_) => return Err(ClusterError::Exists { name: name.to_string() }),
        Err(ClusterError::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    let start = Instant::now();
    let image = image::ensure(host, progress).await?;
    match build(host, name, count, &image, publish, progress).await {
        Ok((port, nodes)) => Ok(Up { name: name.to_string(), port, nodes, took: start.elapsed() }),
        Err(e) => {
            progress(&format!("cluster {name} did not come up; removing what was created"));
            // The first error is the one to report; a failed cleanup is said, not hidden.
            if let Err(cleanup) = down(host, name).await {
                progress(&format!("cleanup failed too: {cleanup}"));
            }
            Err(e)
        }
    }
}

async fn build(
    host: &DockerEngine,
    name: &str,
    count: usize,
    image: &str,
    publish: &[u16],
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(u16, Vec<swarm::NodeRow>), ClusterError> {
    nodes::create_network(host, name).await?;
    let mut ids = Vec::new();
    for index in 1..=count {
        progress(&format!("starting node {}", node_name(name, index)));
        ids.push(nodes::start_node(host, name, index, image, publish).await?);
    }
    let port = nodes::find(host, name).await?.manager_port.ok_or(ClusterError::NoManagerPort { name: name.into() })?;
    let manager = connect_manager(port, &node_name(name, 1)).await?;
    for (index, id) in ids.iter().enumerate().skip(1) {
        let node = node_name(name, index + 1);
        Wait::engine(&node)
            .until(|| async {
                swarm::run_in_node(host, id, &node, &["docker", "version"]).await.map(|_| (true, String::new()))
            })
            .await?;
    }
    progress(&format!("loading {BASE_IMAGE} into the nodes"));
    load_base_image(host, &manager, name, &ids).await?;
    let address = node_address(host, &ids[0], name).await?;
    progress(&format!("swarm init on {} ({address})", node_name(name, 1)));
    let token = swarm::init(&manager, &address).await?;
    for (index, id) in ids.iter().enumerate().skip(1) {
        let node = node_name(name, index + 1);
        progress(&format!("swarm join from {node}"));
        swarm::join(host, id, &node, &token, &address).await?;
    }
    Wait::nodes_ready(count)
        .until(|| async {
            let rows = swarm::status(&manager).await?;
            let ready = rows.iter().filter(|r| r.is_ready()).count();
            Ok((rows.len() == count && ready == count, format!("{ready} of {} nodes Ready", rows.len())))
        })
        .await?;
    let found = nodes::find(host, name).await?;
    swarm::label_engines(&manager, &found.api_ports).await?;
    Ok((port, swarm::status(&manager).await?))
}

/// Connects to the manager's published API once its engine answers.
async fn connect_manager(port: u16, node: &str) -> Result<DockerEngine, ClusterError> {
    let address = format!("tcp://127.0.0.1:{port}");
    Wait::engine(node)
        .until(|| async { DockerEngine::connect_to(&address).await.map(|_| (true, String::new())).map_err(Into::into) })
        .await?;
    Ok(DockerEngine::connect_to(&address).await?)
}

/// The node's IP address on the cluster network (what the swarm advertises).
async fn node_address(host: &DockerEngine, id: &str, cluster: &str) -> Result<String, ClusterError> {
    let inspect: ContainerInspectResponse = host
        .client()
        .inspect_container(id, None::<bollard::query_parameters::InspectContainerOptions>)
        .await
        .map_err(ClusterError::docker(format!("inspect node {}", node_name(cluster, 1))))?;
    let networks = inspect.network_settings.and_then(|s| s.networks).unwrap_or_default();
    networks.get(&network_name(cluster)).and_then(|n| n.ip_address.clone()).filter(|ip| !ip.is_empty()).ok_or_else(
        || ClusterError::Docker {
            what: format!("find the manager's address on network {}", network_name(cluster)),
            cause: crate::engine::classify::Cause::local("the node has no IP address there"),
        },
    )
}

/// Copies the base image from the host engine into the manager through its API, then from
/// the manager into each worker over the cluster network (`docker save | docker -H … load`
/// inside the manager): workers publish nothing on the host.
async fn load_base_image(
    host: &DockerEngine,
    manager: &DockerEngine,
    cluster: &str,
    ids: &[String],
) -> Result<(), ClusterError> {
    let mut archive = Vec::new();
    let mut export = host.client().export_image(BASE_IMAGE);
    while let Some(chunk) = export.next().await {
        archive.extend_from_slice(
            &chunk.map_err(ClusterError::docker(format!("export {BASE_IMAGE} from the host engine")))?,
        );
    }
    let what = format!("load {BASE_IMAGE} into the manager");
    let options = bollard::query_parameters::ImportImageOptionsBuilder::new().quiet(true).build();
    let mut load = manager.client().import_image(options, bollard::body_full(archive.into()), None);
    while let Some(item) = load.next().await {
        let info = item.map_err(ClusterError::docker(what.clone()))?;
        if let Some(message) = info.error_detail.and_then(|d| d.message) {
            let cause = crate::engine::classify::Cause::Stream { message };
            return Err(ClusterError::Docker { what, cause });
        }
    }
    let manager_node = node_name(cluster, 1);
    for index in 2..=ids.len() {
        let pipe = format!(
            "docker save {BASE_IMAGE} | docker -H tcp://{}:{} load",
            node_name(cluster, index),
            nodes::API_PORT
        );
        swarm::run_in_node(host, &ids[0], &manager_node, &["sh", "-c", &pipe]).await?;
    }
    Ok(())
}

/// Removes everything labelled with cluster `name` on the host engine: node containers
/// (forced), then the network, then the volumes. Nothing without the label is touched.
pub async fn down(host: &DockerEngine, name: &str) -> Result<Down, ClusterError> {
    check_name(name)?;
    let client = host.client();
    let mut removed = Down::default();
    let found = match nodes::find(host, name).await {
        Ok(found) => found,
        Err(ClusterError::NotFound { .. }) => {
            ClusterNodes { nodes: Vec::new(), manager_port: None, api_ports: Default::default() }
        }
        Err(e) => return Err(e),
    };
    for (node, id, _) in &found.nodes {
        let options = RemoveContainerOptionsBuilder::new().force(true).v(true).build();
        client
            .remove_container(id, Some(options))
            .await
            .map_err(ClusterError::docker(format!("remove node {node}")))?;
        removed.containers += 1;
    }
    let filter = label_filter(name);
    let networks = client
        .list_networks(Some(ListNetworksOptionsBuilder::new().filters(&filter).build()))
        .await
        .map_err(ClusterError::docker("list the cluster's networks"))?;
    for network in networks {
        let id = network.id.unwrap_or_default();
        client.remove_network(&id).await.map_err(ClusterError::docker(format!("remove network {id}")))?;
        removed.networks += 1;
    }
    let volumes = client
        .list_volumes(Some(ListVolumesOptionsBuilder::new().filters(&filter).build()))
        .await
        .map_err(ClusterError::docker("list the cluster's volumes"))?;
    for volume in volumes.volumes.unwrap_or_default() {
        client
            .remove_volume(&volume.name, None::<RemoveVolumeOptions>)
            .await
            .map_err(ClusterError::docker(format!("remove volume {}", volume.name)))?;
        removed.volumes += 1;
    }
    Ok(removed)
}
