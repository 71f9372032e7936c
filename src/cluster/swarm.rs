//! The Swarm on the node engines: `swarm init` on the manager (through its published API),
//! `swarm join` on each worker (through `docker exec` on the host engine: workers publish
//! nothing), and the node list as the manager reports it.

use bollard::models::{Node, NodeSpecRoleEnum, NodeState, SwarmInitRequest};
use bollard::query_parameters::ListNodesOptions;

use super::ClusterError;
use crate::engine::Engine;
use crate::engine::docker::DockerEngine;

/// The port managers listen on for joining nodes and for each other.
const SWARM_PORT: u16 = 2377;

/// Starts a one-manager swarm advertised on `address` (the manager's IP on the cluster
/// network); returns the worker join token.
pub async fn init(manager: &DockerEngine, address: &str) -> Result<String, ClusterError> {
    let request = SwarmInitRequest {
        listen_addr: Some(format!("0.0.0.0:{SWARM_PORT}")),
        advertise_addr: Some(address.to_string()),
        ..Default::default()
    };
    let client = manager.client();
    client.init_swarm(request).await.map_err(ClusterError::docker("initialise the swarm on the manager"))?;
    let swarm = client.inspect_swarm().await.map_err(ClusterError::docker("read the swarm's join token"))?;
    swarm.join_tokens.and_then(|t| t.worker).ok_or_else(|| ClusterError::Docker {
        what: "read the swarm's join token".into(),
        cause: crate::engine::classify::Cause::local("the manager reported no worker join token"),
    })
}

/// Joins the worker in container `id` to the swarm whose manager is at `manager_address`.
pub async fn join(
    host: &DockerEngine,
    id: &str,
    node: &str,
    token: &str,
    manager_address: &str,
) -> Result<(), ClusterError> {
    let command = ["docker", "swarm", "join", "--token", token, &format!("{manager_address}:{SWARM_PORT}")];
    run_in_node(host, id, node, &command).await.map(drop)
}

/// Runs a command in a node container; a non-zero exit is an error carrying its output.
pub async fn run_in_node(host: &DockerEngine, id: &str, node: &str, command: &[&str]) -> Result<String, ClusterError> {
    let cmd: Vec<String> = command.iter().map(|s| s.to_string()).collect();
    let out = host.exec(id, node, &cmd).await?;
    if out.exit_code == 0 {
        Ok(out.output)
    } else {
        // Never print a join token.
        let shown: Vec<&str> = command.iter().map(|a| if a.starts_with("SWMTKN-") { "<token>" } else { a }).collect();
        Err(ClusterError::NodeCommand {
            node: node.to_string(),
            command: shown.join(" "),
            exit_code: out.exit_code,
            output: out.output.trim().to_string(),
        })
    }
}

/// Labels each swarm node with the loopback address of its own engine's API
/// ([`crate::engine::swarm::NODE_ENGINE_LABEL`]): where `--target swarm` loads the images
/// the node's tasks run. A node's hostname is `<cluster>-node<i>`, its container
/// `scale-cluster-<cluster>-node<i>`.
pub async fn label_engines(
    manager: &DockerEngine,
    api_ports: &std::collections::BTreeMap<String, u16>,
) -> Result<(), ClusterError> {
    use crate::engine::swarm::NODE_ENGINE_LABEL;
    let client = manager.client();
    let nodes =
        client.list_nodes(None::<ListNodesOptions>).await.map_err(ClusterError::docker("list the swarm's nodes"))?;
    for node in nodes {
        let hostname = node.description.as_ref().and_then(|d| d.hostname.clone()).unwrap_or_default();
        let Some(port) = api_ports.get(&format!("scale-cluster-{hostname}")) else { continue };
        let (Some(id), Some(mut spec)) = (node.id.clone(), node.spec.clone()) else { continue };
        let version = node.version.as_ref().and_then(|v| v.index).unwrap_or(0);
        spec.labels
            .get_or_insert_with(Default::default)
            .insert(NODE_ENGINE_LABEL.into(), format!("tcp://127.0.0.1:{port}"));
        let options =
            bollard::query_parameters::UpdateNodeOptions { version: i64::try_from(version).unwrap_or(i64::MAX) };
        client
            .update_node(&id, spec, options)
            .await
            .map_err(ClusterError::docker(format!("label node {hostname} with its engine's address")))?;
    }
    Ok(())
}

/// One swarm node as `docker node ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeRow {
    pub id: String,
    pub hostname: String,
    /// `manager` or `worker`.
    pub role: String,
    /// `ready`, `down`, `unknown`, `disconnected`.
    pub state: String,
    /// `active`, `pause`, `drain`.
    pub availability: String,
    pub leader: bool,
    /// The node's address as the swarm sees it.
    pub address: String,
}

impl NodeRow {
    pub fn is_ready(&self) -> bool {
        self.state == NodeState::READY.to_string()
    }

    fn from_node(node: Node) -> NodeRow {
        let spec = node.spec.unwrap_or_default();
        let status = node.status.unwrap_or_default();
        let role = match spec.role {
            Some(NodeSpecRoleEnum::MANAGER) => "manager",
            Some(NodeSpecRoleEnum::WORKER) => "worker",
            _ => "",
        };
        NodeRow {
            id: node.id.unwrap_or_default(),
            hostname: node.description.and_then(|d| d.hostname).unwrap_or_default(),
            role: role.to_string(),
            state: status.state.map(|s| s.to_string()).unwrap_or_default(),
            availability: spec.availability.map(|a| a.to_string()).unwrap_or_default(),
            leader: node.manager_status.and_then(|m| m.leader).unwrap_or(false),
            address: status.addr.unwrap_or_default(),
        }
    }
}

/// `scale cluster status`'s table, `docker node ls`'s columns plus the address; the leader's
/// role is starred.
pub fn status_table(rows: &[NodeRow]) -> String {
    let mut out =
        format!("{:<26} {:<16} {:<9} {:<7} {:<12} ADDRESS\n", "ID", "HOSTNAME", "ROLE", "STATUS", "AVAILABILITY");
    for r in rows {
        let role = if r.leader { format!("{} *", r.role) } else { r.role.clone() };
        out.push_str(&format!(
            "{:<26} {:<16} {:<9} {:<7} {:<12} {}\n",
            r.id, r.hostname, role, r.state, r.availability, r.address
        ));
    }
    out
}

/// The swarm's nodes as the manager lists them, managers first, then by hostname.
pub async fn status(manager: &DockerEngine) -> Result<Vec<NodeRow>, ClusterError> {
    let nodes = manager
        .client()
        .list_nodes(None::<ListNodesOptions>)
        .await
        .map_err(ClusterError::docker("list the swarm's nodes"))?;
    let mut rows: Vec<NodeRow> = nodes.into_iter().map(NodeRow::from_node).collect();
    rows.sort_by(|a, b| (a.role != "manager", &a.hostname).cmp(&(b.role != "manager", &b.hostname)));
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use bollard::models::{ManagerStatus, NodeDescription, NodeSpec, NodeSpecAvailabilityEnum, NodeStatus};

    use super::*;

    fn node(id: &str, host: &str, role: NodeSpecRoleEnum, state: NodeState, leader: Option<bool>) -> Node {
        Node {
            id: Some(id.into()),
            description: Some(NodeDescription { hostname: Some(host.into()), ..Default::default() }),
            spec: Some(NodeSpec {
                role: Some(role),
                availability: Some(NodeSpecAvailabilityEnum::ACTIVE),
                ..Default::default()
            }),
            status: Some(NodeStatus { state: Some(state), addr: Some("10.0.0.2".into()), ..Default::default() }),
            manager_status: leader.map(|l| ManagerStatus { leader: Some(l), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn the_manager_is_starred_and_a_down_worker_shows_as_down() {
        let rows = [
            NodeRow::from_node(node("m1", "c-node1", NodeSpecRoleEnum::MANAGER, NodeState::READY, Some(true))),
            NodeRow::from_node(node("w2", "c-node2", NodeSpecRoleEnum::WORKER, NodeState::DOWN, None)),
        ];
        assert!(rows[0].is_ready() && !rows[1].is_ready());
        insta::assert_snapshot!(status_table(&rows), @r"
        ID                         HOSTNAME         ROLE      STATUS  AVAILABILITY ADDRESS
        m1                         c-node1          manager * ready   active       10.0.0.2
        w2                         c-node2          worker    down    active       10.0.0.2
        ");
    }
}
