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

/// The template as replica `n` of `service`.
pub fn numbered(project: &str, service: &str, n: u32, template: &ContainerSpec) -> ContainerSpec {
    let name = container_name(project, service, n);
    ContainerSpec { name: name.clone(), replica: n, hostname: name, ..template.clone() }
}
