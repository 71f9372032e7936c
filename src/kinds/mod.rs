//! What each `kind:` adds to the desired state. A plain service is `replicas` copies of one
//! container template; a kind shapes its containers (roles, aliases, volumes, generated
//! configuration) from the same template. Pure: no engine here.

pub mod load_balancer;
pub mod postgres;
pub mod scaled;
pub mod shards;

use crate::spec::{ContainerSpec, container_name};

/// A plain service: `replicas` identical containers named `<project>-<service>-<n>`.
pub fn plain(project: &str, service: &str, replicas: u32, template: &ContainerSpec) -> Vec<ContainerSpec> {
    (1..=replicas).map(|n| numbered(project, service, n, template)).collect()
}

/// The template as replica `n` of `service`. Its hostname is its name, unless the template
/// has one (Compose's `hostname:`) or shares another's network stack (`network_mode`),
/// where the engine refuses a hostname.
pub fn numbered(project: &str, service: &str, n: u32, template: &ContainerSpec) -> ContainerSpec {
    use crate::model::NetworkMode;
    let name = container_name(project, service, n);
    let hostname = match &template.options.network_mode {
        Some(NetworkMode::Host | NetworkMode::Container(_) | NetworkMode::Service(_)) => String::new(),
        _ if !template.hostname.is_empty() => template.hostname.clone(),
        _ => name.clone(),
    };
    ContainerSpec { name, replica: n, hostname, ..template.clone() }
}
