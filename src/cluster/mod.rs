//! A multi-node test cluster on this machine: N Docker engines, each in a container of the
//! host's engine, joined into one Swarm (one manager, the others workers). It is for tests and
//! for learners who want to see scale "past one machine" without renting machines.
//!
//! Everything `cluster up` creates carries `io.scale.cluster=<name>` and never
//! `io.scale.project`, so no project plan, `destroy` or `reap` ever sees or touches it; `down`
//! removes by that label alone. The host's engine is never switched into swarm mode: only the
//! node engines are. The manager's API is published on the host's loopback, so scale (and the
//! `docker` CLI) reach it through `DOCKER_HOST=tcp://127.0.0.1:<port>` ([`env_line`]).
//!
//! The node engines run inside the sandbox without `--privileged` (which this sandbox refuses),
//! with every capability but `SYS_RESOURCE` instead; see [`nodes`].

use std::time::Duration;

use crate::engine::EngineError;
use crate::engine::classify::Cause;

mod image;
mod life;
mod nodes;
mod swarm;
mod wait;

pub use life::{Down, Up, down, up};
pub use nodes::{ClusterNodes, find, node_container};
pub use swarm::{NodeRow, status, status_table};
pub use wait::{Wait, WaitFor};

/// The label every resource of a cluster carries, valued with the cluster's name.
pub const CLUSTER_LABEL: &str = "io.scale.cluster";
/// The label saying whether a node container is the manager or a worker.
pub const ROLE_LABEL: &str = "io.scale.cluster.role";
/// The cluster name when none is given.
pub const DEFAULT_NAME: &str = "scale";
/// The image every node engine needs to build blueprints (the stage images are `FROM` it);
/// there is no registry to pull it from, so `up` copies it in from the host's engine.
pub const BASE_IMAGE: &str = "debian:bookworm-slim";
/// The most nodes `up` starts: each node is a whole engine (heavy).
pub const MAX_NODES: usize = 9;

/// Why a cluster command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "`{name}` is not a usable cluster name: use lower-case letters, digits, `-` and `_`, starting with a letter or digit, at most 40 characters"
    )]
    InvalidName { name: String },
    #[error("a cluster needs 1 to {MAX_NODES} nodes, not {nodes}")]
    InvalidNodeCount { nodes: usize },
    #[error("a cluster named `{name}` already exists; use it, or remove it with `scale cluster down --name {name}`")]
    Exists { name: String },
    #[error("there is no cluster named `{name}`; start one with `scale cluster up --name {name}`")]
    NotFound { name: String },
    #[error(
        "cluster `{name}` has no manager node container (it was partly removed); remove the rest with `scale cluster down --name {name}`"
    )]
    NoManager { name: String },
    #[error(
        "the manager of cluster `{name}` publishes no API port; remove it with `scale cluster down --name {name}` and start it again"
    )]
    NoManagerPort { name: String },
    #[error("no cluster node is named `{node}`; `scale cluster status` lists the nodes (HOSTNAME)")]
    NoSuchNode { node: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot {what}: {cause}")]
    Docker { what: String, cause: Cause },
    #[error("`{command}` failed in node {node} (exit {exit_code}): {output}")]
    NodeCommand { node: String, command: String, exit_code: i64, output: String },
    #[error("gave up after {} s waiting for {what}; last seen: {last}", waited.as_secs())]
    Timeout { what: String, waited: Duration, last: String },
}

impl ClusterError {
    fn docker(what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> ClusterError {
        let what = what.into();
        move |e| ClusterError::Docker { what, cause: e.into() }
    }
}

/// Checks a cluster name: it becomes part of container, network and volume names.
pub fn check_name(name: &str) -> Result<(), ClusterError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if first_ok && rest_ok && name.len() <= 40 {
        Ok(())
    } else {
        Err(ClusterError::InvalidName { name: name.to_string() })
    }
}

/// The `export DOCKER_HOST=…` line that points a shell (and scale) at the manager.
pub fn env_line(port: u16) -> String {
    format!("export DOCKER_HOST=tcp://127.0.0.1:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_become_resource_names_are_accepted() {
        for name in ["scale", "t-1", "a_b", "9lives"] {
            assert!(check_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn names_docker_would_refuse_or_that_could_clash_are_refused() {
        for name in ["", "-x", "Upper", "a b", "a/b", "a.b", &"x".repeat(41)] {
            assert!(matches!(check_name(name), Err(ClusterError::InvalidName { .. })), "{name:?}");
        }
    }

    #[test]
    fn env_line_points_at_the_loopback_port() {
        assert_eq!(env_line(32768), "export DOCKER_HOST=tcp://127.0.0.1:32768");
    }
}
