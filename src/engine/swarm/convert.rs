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
use crate::model::{Kind, Protocol, RestartPolicy, RolloutOrder};
use crate::plan::units::{ObservedUnit, UnitSpec};
use crate::spec::{ContainerSpec, MountSourceSpec};
use crate::target::{TARGET_LABEL, Target};

/// Label on a unit with a delivered file (the load balancer's configuration): its hash.
pub const FILE_HASH_LABEL: &str = "io.scale.file-hash";

/// Label on a unit: the whole [`UnitSpec`] as JSON, so a failover can change a database
/// node's role without the blueprint and land on the hash a plan computes.
pub const UNIT_LABEL: &str = "io.scale.unit";

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
    out.insert(UNIT_LABEL.into(), serde_json::to_string(unit).expect("a unit always serializes"));
    if let Some(file) = &unit.file {
        out.insert(FILE_HASH_LABEL.into(), file.hash());
    }
    out
}

/// How long Swarm watches a new task before calling an update a success: at least the
/// healthcheck's window (every retry failing once), at least what the blueprint asks.
pub fn monitor_ms(unit: &UnitSpec) -> u64 {
    let window = unit
        .template
        .healthcheck
        .as_ref()
        .map_or(0, |h| h.interval_ms.saturating_mul(u64::from(h.retries) + 1).saturating_add(h.timeout_ms));
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

/// What Swarm does when an update's new task fails: roll back, but never a database node.
/// Its data moves on with its spec (a fenced primary re-seeds as a replica, a promoted
/// replica's data becomes the primary's), so its previous spec no longer fits it: Swarm rolled
/// a fenced primary back to the primary's spec when its lost node returned (the task it had
/// placed there before the failover ended early). A failing database node is left to its
/// restart policy and shows as not ready.
fn failure_action(unit: &UnitSpec) -> ServiceSpecUpdateConfigFailureActionEnum {
    if unit.kind == Some(Kind::Postgres) {
        ServiceSpecUpdateConfigFailureActionEnum::CONTINUE
    } else {
        ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK
    }
}

fn update_configs(unit: &UnitSpec) -> (ServiceSpecUpdateConfig, ServiceSpecRollbackConfig) {
    let first = start_first(unit);
    let update = ServiceSpecUpdateConfig {
        parallelism: Some(i64::from(unit.rollout.parallelism.max(1))),
        delay: Some(nanos(unit.rollout.delay_ms)),
        failure_action: Some(failure_action(unit)),
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
            Mount {
                target: Some(m.target.clone()),
                source,
                typ: Some(typ),
                read_only: Some(m.read_only),
                ..Default::default()
            }
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
        unit: labels.get(UNIT_LABEL).and_then(|s| serde_json::from_str(s).ok()),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::plan::units::{Placement, UnitFile};
    use crate::spec::{HealthSpec, PortSpec, Readiness};

    fn unit(ports: Vec<PortSpec>) -> UnitSpec {
        let template = ContainerSpec {
            name: "shop-web".into(),
            service: "web".into(),
            replica: 0,
            kind: None,
            image: "shop/web:0123".into(),
            command: Some(vec!["python3".into(), "/app/app.py".into()]),
            entrypoint: None,
            env: BTreeMap::from([("APP_VERSION".into(), "1".into())]),
            ports,
            networks: Vec::new(),
            mounts: Vec::new(),
            healthcheck: Some(HealthSpec {
                test: vec!["CMD".into(), "true".into()],
                interval_ms: 1_000,
                timeout_ms: 2_000,
                retries: 3,
                start_period_ms: 30_000,
                start_interval_ms: None,
            }),
            restart: RestartPolicy::UnlessStopped,
            stop_grace_secs: Some(5),
            labels: BTreeMap::new(),
            hostname: crate::plan::units::TASK_HOSTNAME.into(),
            previous: None,
            carried: BTreeMap::new(),
            options: Default::default(),
        };
        UnitSpec {
            name: "shop-web".into(),
            service: "web".into(),
            kind: None,
            template,
            replicas: 2,
            rollout: crate::model::RolloutPolicy::default(),
            readiness: Readiness::Healthy,
            placement: Placement::Any,
            file: None,
            depends_on: Vec::new(),
        }
    }

    fn resolved() -> Resolved<'static> {
        Resolved { image_id: "sha256:abc", project: "shop", constraints: Vec::new(), config: None }
    }

    #[test]
    fn a_stateless_unit_rolls_start_first_with_rollback_and_a_monitor_over_the_health_window() {
        let spec = service_spec(&unit(Vec::new()), &resolved());
        let update = spec.update_config.unwrap();
        assert_eq!(update.order, Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST));
        assert_eq!(update.failure_action, Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK));
        // interval × (retries + 1) + timeout = 6 s.
        assert_eq!(update.monitor, Some(6_000_000_000));
        let task = spec.task_template.unwrap();
        let container = task.container_spec.unwrap();
        assert_eq!(container.image.as_deref(), Some("sha256:abc"), "run by ID: nodes never pull");
        assert_eq!(container.args, Some(vec!["python3".to_string(), "/app/app.py".to_string()]));
        assert_eq!(container.command, None, "the image's entrypoint stays");
        assert_eq!(spec.mode.unwrap().replicated.unwrap().replicas, Some(2));
        let labels = spec.labels.unwrap();
        assert_eq!(labels[TARGET_LABEL], "swarm");
        assert_eq!(labels[labels::PROJECT], "shop");
    }

    #[test]
    fn published_ports_are_host_mode_on_a_dnsrr_service_and_roll_stop_first() {
        let port = PortSpec { container_port: 80, protocol: Protocol::Tcp, host_ip: None, host_port: Some(8080) };
        let spec = service_spec(&unit(vec![port]), &resolved());
        let endpoint = spec.endpoint_spec.unwrap();
        assert_eq!(endpoint.mode, Some(EndpointSpecModeEnum::DNSRR));
        let ports = endpoint.ports.unwrap();
        assert_eq!(ports[0].publish_mode, Some(EndpointPortConfigPublishModeEnum::HOST));
        assert_eq!((ports[0].published_port, ports[0].target_port), (Some(8080), Some(80)));
        let order = spec.update_config.unwrap().order;
        assert_eq!(order, Some(ServiceSpecUpdateConfigOrderEnum::STOP_FIRST), "one node, one host port");
    }

    #[test]
    fn a_database_node_is_never_rolled_back_by_swarm() {
        let mut db = unit(Vec::new());
        db.kind = Some(Kind::Postgres);
        let update = service_spec(&db, &resolved()).update_config.unwrap();
        assert_eq!(update.failure_action, Some(ServiceSpecUpdateConfigFailureActionEnum::CONTINUE));
    }

    #[test]
    fn a_delivered_file_is_a_config_and_a_read_back_unit_keeps_its_hashes() {
        let mut u = unit(Vec::new());
        u.file = Some(UnitFile { path: "/etc/x.cfg".into(), text: "x".into() });
        let r = Resolved { config: Some(("cfgid".into(), "shop-web-abc".into())), ..resolved() };
        let spec = service_spec(&u, &r);
        let configs = spec.task_template.as_ref().unwrap().container_spec.as_ref().unwrap().configs.clone().unwrap();
        assert_eq!(configs[0].config_id.as_deref(), Some("cfgid"));
        assert_eq!(configs[0].file.as_ref().unwrap().name.as_deref(), Some("/etc/x.cfg"));
        let service = Service { spec: Some(spec), ..Default::default() };
        let seen = observed_unit(&service).unwrap();
        assert_eq!(seen.hash, u.hash());
        assert_eq!(seen.template.as_ref(), Some(&u.template));
        assert_eq!(seen.file_hash, u.file.as_ref().map(UnitFile::hash));
        assert_eq!(seen.replicas, 2);
        assert_eq!(seen.unit.as_ref(), Some(&u), "the whole unit comes back");
    }
}
