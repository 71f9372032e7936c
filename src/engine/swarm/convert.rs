//! A unit as a Swarm service and back: the service spec scale creates (labels carry the
//! template and its hash, as a container's do on one engine), and the observed unit read
//! from a listed service.

use std::collections::HashMap;

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum, EndpointSpec,
    EndpointSpecModeEnum, Mount, MountType, NetworkAttachmentConfig, Service, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, ServiceSpecRollbackConfig, ServiceSpecRollbackConfigFailureActionEnum,
    ServiceSpecRollbackConfigOrderEnum, ServiceSpecUpdateConfig, ServiceSpecUpdateConfigFailureActionEnum,
    ServiceSpecUpdateConfigOrderEnum, TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecConfigs,
    TaskSpecContainerSpecFile1, TaskSpecPlacement, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};

use crate::engine::docker::health_config;
use crate::labels;
use crate::model::{Protocol, RestartPolicy, RolloutOrder};
use crate::plan::units::{ObservedUnit, UnitSpec};
use crate::spec::{ContainerSpec, MountSourceSpec};
use crate::target::{TARGET_LABEL, Target};

/// Label on a unit with a delivered file (the load balancer's configuration): its hash.
pub const FILE_HASH_LABEL: &str = "io.scale.file-hash";

/// What [`service_spec`] needs beyond the unit: resolved at apply time.
pub struct Resolved<'a> {
    pub image_id: &'a str,
    pub project: &'a str,
    /// Placement constraints (`node.role==manager`, `node.hostname==…`).
    pub constraints: Vec<String>,
    /// The Swarm config holding the unit's file: (ID, name).
    pub config: Option<(String, String)>,
}

fn nanos(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX / 1_000_000).saturating_mul(1_000_000)
}

/// The labels of the service: the user's, then scale's, as on a container.
pub fn unit_labels(unit: &UnitSpec, project: &str) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = unit.template.labels.clone().into_iter().collect();
    out.insert(labels::PROJECT.into(), project.into());
    out.insert(labels::SERVICE.into(), unit.service.clone());
    out.insert(labels::KIND.into(), labels::kind_value(unit.kind).into());
    out.insert(labels::SPEC_HASH.into(), unit.hash());
    out.insert(labels::SPEC.into(), serde_json::to_string(&unit.template).expect("a ContainerSpec always serializes"));
    out.insert(TARGET_LABEL.into(), Target::Swarm.as_str().into());
    if let Some(file) = &unit.file {
        out.insert(FILE_HASH_LABEL.into(), file.hash());
    }
    out
}

/// How long Swarm watches a new task before calling an update a success: at least the
/// healthcheck's window (every retry failing once), at least what the blueprint asks.
pub fn monitor_ms(unit: &UnitSpec) -> u64 {
    let window = unit.template.healthcheck.as_ref().map_or(0, |h| {
        h.interval_ms.saturating_mul(u64::from(h.retries) + 1).saturating_add(h.timeout_ms)
    });
    unit.rollout.monitor_ms.max(window).max(5_000)
}

/// Start-first unless the blueprint says stop-first, or the unit cannot run two tasks side
/// by side (a host port on one node, a database's volume).
fn start_first(unit: &UnitSpec) -> bool {
    match unit.rollout.order {
        Some(RolloutOrder::StopFirst) => false,
        Some(RolloutOrder::StartFirst) => true,
        None => unit.template.ports.is_empty() && !has_volume(&unit.template),
    }
}

fn has_volume(template: &ContainerSpec) -> bool {
    template.mounts.iter().any(|m| matches!(m.source, MountSourceSpec::Volume(_)) && !m.read_only)
}

fn update_configs(unit: &UnitSpec) -> (ServiceSpecUpdateConfig, ServiceSpecRollbackConfig) {
    let first = start_first(unit);
    let update = ServiceSpecUpdateConfig {
        parallelism: Some(i64::from(unit.rollout.parallelism.max(1))),
        delay: Some(nanos(unit.rollout.delay_ms)),
        failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
        monitor: Some(nanos(monitor_ms(unit))),
        max_failure_ratio: Some(0.0),
        order: Some(if first {
            ServiceSpecUpdateConfigOrderEnum::START_FIRST
        } else {
            ServiceSpecUpdateConfigOrderEnum::STOP_FIRST
        }),
    };
    let rollback = ServiceSpecRollbackConfig {
        parallelism: Some(i64::from(unit.rollout.parallelism.max(1))),
        delay: Some(0),
        failure_action: Some(ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
        monitor: Some(nanos(monitor_ms(unit))),
        max_failure_ratio: Some(0.0),
        order: Some(if first {
            ServiceSpecRollbackConfigOrderEnum::START_FIRST
        } else {
            ServiceSpecRollbackConfigOrderEnum::STOP_FIRST
        }),
    };
    (update, rollback)
}

fn mounts(template: &ContainerSpec) -> Vec<Mount> {
    template
        .mounts
        .iter()
        .map(|m| {
            let (typ, source) = match &m.source {
                MountSourceSpec::Volume(name) => (MountType::VOLUME, Some(name.clone())),
                MountSourceSpec::Bind(path) => (MountType::BIND, Some(path.to_string_lossy().into_owned())),
                MountSourceSpec::Anonymous => (MountType::VOLUME, None),
            };
            Mount { target: Some(m.target.clone()), source, typ: Some(typ), read_only: Some(m.read_only), ..Default::default() }
        })
        .collect()
}

/// Published ports in host mode: no routing mesh (this sandbox has no IPVS, and scale's
/// load balancer is the one entry anyway); the port opens on the node the task runs on.
fn endpoint(template: &ContainerSpec) -> EndpointSpec {
    let ports = template
        .ports
        .iter()
        .map(|p| EndpointPortConfig {
            protocol: Some(match p.protocol {
                Protocol::Udp => EndpointPortConfigProtocolEnum::UDP,
                _ => EndpointPortConfigProtocolEnum::TCP,
            }),
            target_port: Some(i64::from(p.container_port)),
            published_port: p.host_port.map(i64::from),
            publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
            ..Default::default()
        })
        .collect::<Vec<_>>();
    EndpointSpec { mode: Some(EndpointSpecModeEnum::DNSRR), ports: (!ports.is_empty()).then_some(ports) }
}

fn container_spec(unit: &UnitSpec, resolved: &Resolved<'_>) -> TaskSpecContainerSpec {
    let t = &unit.template;
    let configs = resolved.config.as_ref().zip(unit.file.as_ref()).map(|((id, name), file)| {
        vec![TaskSpecContainerSpecConfigs {
            file: Some(TaskSpecContainerSpecFile1 {
                name: Some(file.path.clone()),
                uid: Some("0".into()),
                gid: Some("0".into()),
                mode: Some(0o444),
            }),
            config_id: Some(id.clone()),
            config_name: Some(name.clone()),
            ..Default::default()
        }]
    });
    let mounts = mounts(t);
    TaskSpecContainerSpec {
        image: Some(resolved.image_id.to_string()),
        // The hash on each task says which spec it runs, for the waits.
        labels: Some(HashMap::from([(labels::SPEC_HASH.to_string(), unit.hash())])),
        command: t.entrypoint.clone(),
        args: t.command.clone(),
        hostname: (!t.hostname.is_empty()).then(|| t.hostname.clone()),
        env: Some(t.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        mounts: (!mounts.is_empty()).then_some(mounts),
        stop_grace_period: t.stop_grace_secs.map(|s| nanos(s.saturating_mul(1000))),
        health_check: t.healthcheck.as_ref().map(health_config),
        configs,
        ..Default::default()
    }
}

/// The Swarm service for `unit`.
pub fn service_spec(unit: &UnitSpec, resolved: &Resolved<'_>) -> ServiceSpec {
    let t = &unit.template;
    let condition = match t.restart {
        RestartPolicy::No => TaskSpecRestartPolicyConditionEnum::NONE,
        RestartPolicy::OnFailure => TaskSpecRestartPolicyConditionEnum::ON_FAILURE,
        RestartPolicy::Always | RestartPolicy::UnlessStopped => TaskSpecRestartPolicyConditionEnum::ANY,
    };
    let networks = t
        .networks
        .iter()
        .map(|n| NetworkAttachmentConfig {
            target: Some(n.network.clone()),
            aliases: Some(n.aliases.clone()),
            ..Default::default()
        })
        .collect();
    let (update, rollback) = update_configs(unit);
    ServiceSpec {
        name: Some(unit.name.clone()),
        labels: Some(unit_labels(unit, resolved.project)),
        task_template: Some(TaskSpec {
            container_spec: Some(container_spec(unit, resolved)),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(condition),
                delay: Some(nanos(1_000)),
                ..Default::default()
            }),
            placement: Some(TaskSpecPlacement {
                constraints: Some(resolved.constraints.clone()),
                ..Default::default()
            }),
            networks: Some(networks),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(i64::from(unit.replicas)) }),
            ..Default::default()
        }),
        update_config: Some(update),
        rollback_config: Some(rollback),
        endpoint_spec: Some(endpoint(t)),
        ..Default::default()
    }
}

/// A listed service as a unit, when it is one of scale's.
pub fn observed_unit(service: &Service) -> Option<ObservedUnit> {
    let spec = service.spec.as_ref()?;
    let labels = spec.labels.as_ref()?;
    let replicas = spec.mode.as_ref().and_then(|m| m.replicated.as_ref()).and_then(|r| r.replicas).unwrap_or(0);
    Some(ObservedUnit {
        name: spec.name.clone()?,
        service: labels.get(labels::SERVICE).cloned().unwrap_or_default(),
        hash: labels.get(labels::SPEC_HASH).cloned().unwrap_or_default(),
        template: labels.get(labels::SPEC).and_then(|s| serde_json::from_str(s).ok()),
        replicas: u32::try_from(replicas).unwrap_or(0),
        file_hash: labels.get(FILE_HASH_LABEL).cloned(),
    })
}
