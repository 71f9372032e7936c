//! Images without a registry: a `build:` image is built once (on the build engine), then
//! copied into every node that lacks it through the nodes' engine APIs (`docker save |
//! docker load`, done with the API), and services run it by image ID — a node never pulls,
//! and never runs another image under the same tag.

use std::collections::HashMap;

use bollard::models::{NodeSpecRoleEnum, NodeState};
use bollard::query_parameters::{ImportImageOptionsBuilder, ListNodesOptions};
use futures_util::StreamExt;

use super::{NODE_ENGINE_LABEL, SwarmError, SwarmOp, call};
use crate::engine::classify::Cause;
use crate::engine::docker::DockerEngine;
use crate::engine::{Engine, Progress};
use crate::plan::units::Placement;
use crate::spec::{ImageSource, ImageSpec};

/// A swarm node as the image copy needs it.
struct NodeEngine {
    hostname: String,
    id: String,
    /// Its engine's address (label [`NODE_ENGINE_LABEL`]).
    address: Option<String>,
}

async fn nodes(manager: &DockerEngine) -> Result<Vec<NodeEngine>, SwarmError> {
    let nodes = manager.client().list_nodes(None::<ListNodesOptions>).await.map_err(call(SwarmOp::ListNodes, ""))?;
    let mut out: Vec<NodeEngine> = nodes
        .into_iter()
        .filter(|n| n.status.as_ref().and_then(|s| s.state) == Some(NodeState::READY))
        .map(|n| NodeEngine {
            hostname: n.description.and_then(|d| d.hostname).unwrap_or_default(),
            address: n.spec.and_then(|s| s.labels).and_then(|l| l.get(NODE_ENGINE_LABEL).cloned()),
            id: n.id.unwrap_or_default(),
        })
        .collect();
    out.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    Ok(out)
}

/// Every node's hostname in placement order (database node n goes to the n-th): workers by
/// hostname, then managers, so database node 1 (the primary) is on a worker and losing its
/// node leaves the control plane a failover needs. Down nodes are included so a lost node
/// does not move the others' placements.
pub async fn node_hostnames(manager: &DockerEngine) -> Result<Vec<String>, SwarmError> {
    let nodes = manager.client().list_nodes(None::<ListNodesOptions>).await.map_err(call(SwarmOp::ListNodes, ""))?;
    let mut hosts: Vec<(bool, String)> = nodes
        .into_iter()
        .map(|n| {
            let manager = n.spec.and_then(|s| s.role) == Some(NodeSpecRoleEnum::MANAGER);
            (manager, n.description.and_then(|d| d.hostname).unwrap_or_default())
        })
        .collect();
    hosts.sort();
    Ok(hosts.into_iter().map(|(_, h)| h).collect())
}

/// The hostnames of the nodes Swarm does not see ready (down, unknown, disconnected).
pub async fn nodes_not_ready(manager: &DockerEngine) -> Result<std::collections::BTreeSet<String>, SwarmError> {
    let nodes = manager.client().list_nodes(None::<ListNodesOptions>).await.map_err(call(SwarmOp::ListNodes, ""))?;
    Ok(nodes
        .into_iter()
        .filter(|n| n.status.as_ref().and_then(|s| s.state) != Some(NodeState::READY))
        .filter_map(|n| n.description.and_then(|d| d.hostname))
        .collect())
}

/// The engine of the node `node_id` (the manager's own, or the one its label names).
pub async fn node_engine(manager: &DockerEngine, node_id: &str) -> Result<Option<DockerEngine>, SwarmError> {
    let info = manager.client().info().await.map_err(call(SwarmOp::Inspect, ""))?;
    if info.swarm.and_then(|s| s.node_id).as_deref() == Some(node_id) {
        return Ok(Some(manager.clone()));
    }
    let node = nodes(manager).await?.into_iter().find(|n| n.id == node_id);
    match node.and_then(|n| n.address) {
        Some(address) => Ok(Some(DockerEngine::connect_to(&address).await?)),
        None => Ok(None),
    }
}

/// Node ID → hostname, for every node.
pub async fn node_names_by_id(manager: &DockerEngine) -> Result<HashMap<String, String>, SwarmError> {
    let nodes = manager.client().list_nodes(None::<ListNodesOptions>).await.map_err(call(SwarmOp::ListNodes, ""))?;
    Ok(nodes
        .into_iter()
        .map(|n| (n.id.unwrap_or_default(), n.description.and_then(|d| d.hostname).unwrap_or_default()))
        .collect())
}

/// The image's ID on `engine`, when it is there.
async fn image_id(engine: &DockerEngine, reference: &str) -> Option<String> {
    engine.client().inspect_image(reference).await.ok().and_then(|i| i.id)
}

/// Builds or pulls `image` on the build engine unless it is there, copies it into every
/// ready node lacking it, and returns its ID.
pub async fn provide(
    manager: &DockerEngine,
    builder: &DockerEngine,
    image: &ImageSpec,
    placement: &Placement,
    project: &str,
    progress: Progress<'_>,
) -> Result<String, SwarmError> {
    let reference = &image.reference;
    if image_id(builder, reference).await.is_none() {
        // One line per image, not the build's own output (a failed build's error keeps its
        // last lines).
        let quiet = |_: &str| {};
        match image.source {
            ImageSource::Build { .. } => {
                progress(&format!("building {reference} on {}", builder.address()));
                builder.build_image(image, project, &quiet).await?
            }
            ImageSource::Pull => {
                progress(&format!("pulling {reference} on {}", builder.address()));
                builder.pull_image(reference, &quiet).await?
            }
        }
    }
    let id = image_id(builder, reference).await.ok_or_else(|| SwarmError::Call {
        op: SwarmOp::ExportImage,
        name: reference.clone(),
        cause: Cause::local("the image is missing right after its build"),
    })?;
    let info = manager.client().info().await.map_err(call(SwarmOp::Inspect, ""))?;
    let manager_node = info.swarm.and_then(|s| s.node_id).unwrap_or_default();
    let mut archive: Option<Vec<u8>> = None;
    let all = nodes(manager).await?;
    let hosts = node_hostnames(manager).await?;
    // Only the nodes the unit may run on: a copy into a node costs seconds to tens of seconds.
    let wanted = |node: &NodeEngine| match placement {
        Placement::Any => true,
        Placement::Manager => node.id == manager_node,
        Placement::Node(n) => hosts.get(*n as usize - 1) == Some(&node.hostname),
    };
    for node in all.into_iter().filter(wanted) {
        let engine = if node.id == manager_node {
            manager.clone()
        } else {
            match &node.address {
                Some(address) => DockerEngine::connect_to(address).await?,
                None => return Err(SwarmError::NodeUnreachable { image: reference.clone(), node: node.hostname }),
            }
        };
        if image_id(&engine, &id).await.is_some() {
            continue;
        }
        progress(&format!("loading {reference} into node {}", node.hostname));
        if archive.is_none() {
            archive = Some(export(builder, reference).await?);
        }
        load(&engine, reference, &node.hostname, archive.clone().unwrap_or_default()).await?;
    }
    Ok(id)
}

async fn export(engine: &DockerEngine, reference: &str) -> Result<Vec<u8>, SwarmError> {
    let mut archive = Vec::new();
    let mut stream = engine.client().export_image(reference);
    while let Some(chunk) = stream.next().await {
        archive.extend_from_slice(&chunk.map_err(call(SwarmOp::ExportImage, reference))?);
    }
    Ok(archive)
}

async fn load(engine: &DockerEngine, reference: &str, node: &str, archive: Vec<u8>) -> Result<(), SwarmError> {
    let what = format!("{reference} into node {node}");
    let options = ImportImageOptionsBuilder::new().quiet(true).build();
    let mut stream = engine.client().import_image(options, bollard::body_full(archive.into()), None);
    while let Some(item) = stream.next().await {
        let info = item.map_err(call(SwarmOp::LoadImage, &what))?;
        if let Some(message) = info.error_detail.and_then(|d| d.message) {
            return Err(SwarmError::Call { op: SwarmOp::LoadImage, name: what, cause: Cause::Stream { message } });
        }
    }
    Ok(())
}
