//! The Swarm target over bollard: a manager's engine API (services, tasks, nodes, configs,
//! overlay networks), and the image copies that stand in for a registry ([`images`]).
//!
//! The host engine is never switched into swarm mode: scale only *uses* a swarm whose
//! manager `DOCKER_HOST` names, and says so when the engine is no manager.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bollard::models::{ConfigSpec, LocalNodeState, NetworkCreateRequest, ServiceUpdateStatusStateEnum, TaskState};
use bollard::query_parameters::{
    InspectServiceOptions, ListConfigsOptionsBuilder, ListNetworksOptionsBuilder, ListServicesOptionsBuilder,
    ListTasksOptionsBuilder, UpdateServiceOptions,
};

use super::classify::Cause;
use super::docker::DockerEngine;
use super::orchestrator::{Orchestrator, UnitProgress, UpdatePhase};
use super::{EngineError, ExecOutput, Progress};
use crate::labels;
use crate::labels::MARKER_SERVICE_LABEL;
use crate::plan::units::{ObservedUnits, Placement, UnitSpec};
use crate::spec::{ImageSpec, NetworkSpec, VolumeSpec};
use crate::target::{TARGET_LABEL, Target};

pub mod convert;
pub mod images;

/// Label on a swarm *node*: the address of that node's own engine API, where scale loads
/// the images the node's tasks run (there is no registry). `scale cluster up` sets it.
pub const NODE_ENGINE_LABEL: &str = "io.scale.engine";

/// What a Swarm call was doing when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwarmOp {
    Inspect,
    ListServices,
    ListTasks,
    ListNodes,
    CreateService,
    UpdateService,
    RemoveService,
    CreateNetwork,
    RemoveNetwork,
    CreateConfig,
    RemoveConfig,
    Exec,
    ExportImage,
    LoadImage,
}

impl std::fmt::Display for SwarmOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SwarmOp::Inspect => "inspect the swarm",
            SwarmOp::ListServices => "list the services",
            SwarmOp::ListTasks => "list the tasks of",
            SwarmOp::ListNodes => "list the swarm's nodes",
            SwarmOp::CreateService => "create service",
            SwarmOp::UpdateService => "update service",
            SwarmOp::RemoveService => "remove service",
            SwarmOp::CreateNetwork => "create overlay network",
            SwarmOp::RemoveNetwork => "remove network",
            SwarmOp::CreateConfig => "create config",
            SwarmOp::RemoveConfig => "remove config",
            SwarmOp::Exec => "run a command in the task of",
            SwarmOp::ExportImage => "export image",
            SwarmOp::LoadImage => "load image",
        })
    }
}

/// A failed Swarm operation, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    #[error(
        "the engine at {address} is not a Swarm manager; point DOCKER_HOST at a manager \
         (for the local test cluster: `eval $(scale cluster env)`), or use `--target docker`"
    )]
    NotAManager { address: String },
    #[error("cannot {op} {name}: {cause}")]
    Call { op: SwarmOp, name: String, cause: Cause },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(
        "image {image} is not on node {node} and scale cannot reach that node's engine: label the node with \
         its engine's address (`docker node update --label-add {NODE_ENGINE_LABEL}=tcp://HOST:2375 {node}`), \
         or load the image there yourself (`docker save | docker load`)"
    )]
    NodeUnreachable { image: String, node: String },
    #[error("{unit} needs node {wanted} of the swarm, which has {nodes} node(s)")]
    TooFewNodes { unit: String, wanted: u32, nodes: usize },
    #[error("the rolling update of {unit} failed and Swarm rolled it back: {message}")]
    RolledBack { unit: String, message: String },
    #[error("gave up after {secs} s waiting for {unit}: {last}")]
    Timeout { unit: String, secs: u64, last: String },
}

fn call(op: SwarmOp, name: &str) -> impl FnOnce(bollard::errors::Error) -> SwarmError {
    let name = name.to_string();
    move |e| SwarmError::Call { op, name, cause: e.into() }
}

/// A swarm manager's engine, with the engine images are built on.
pub struct SwarmEngine {
    manager: DockerEngine,
    /// Where `build:` images are built (the manager unless SCALE_BUILD_ENGINE names another
    /// engine, such as a laptop's, whose build cache is warm).
    builder: DockerEngine,
}

/// The environment variable naming the engine `build:` images are built on.
pub const BUILD_ENGINE_ENV: &str = "SCALE_BUILD_ENGINE";

impl SwarmEngine {
    /// Checks that `manager` is a swarm manager; connects to the build engine.
    pub async fn new(manager: DockerEngine) -> Result<SwarmEngine, SwarmError> {
        let info = manager.client().info().await.map_err(call(SwarmOp::Inspect, ""))?;
        let swarm = info.swarm.unwrap_or_default();
        let is_manager =
            swarm.local_node_state == Some(LocalNodeState::ACTIVE) && swarm.control_available == Some(true);
        if !is_manager {
            return Err(SwarmError::NotAManager { address: crate::engine::Engine::address(&manager) });
        }
        let builder = match std::env::var(BUILD_ENGINE_ENV).ok().filter(|a| !a.trim().is_empty()) {
            Some(address) => DockerEngine::connect_to(&address).await?,
            None => manager.clone(),
        };
        Ok(SwarmEngine { manager, builder })
    }

    pub fn manager(&self) -> &DockerEngine {
        &self.manager
    }

    /// The placement constraints of a unit; database nodes go to the n-th node by hostname.
    async fn constraints(&self, unit: &UnitSpec) -> Result<Vec<String>, SwarmError> {
        match unit.placement {
            Placement::Any => Ok(Vec::new()),
            Placement::Manager => Ok(vec!["node.role==manager".into()]),
            Placement::Node(n) => {
                let hosts = images::node_hostnames(&self.manager).await?;
                let host = hosts.get(n as usize - 1).ok_or_else(|| SwarmError::TooFewNodes {
                    unit: unit.name.clone(),
                    wanted: n,
                    nodes: hosts.len(),
                })?;
                Ok(vec![format!("node.hostname=={host}")])
            }
        }
    }

    /// The Swarm config holding the unit's file, created when missing: (ID, name).
    async fn config(&self, unit: &UnitSpec, project: &str) -> Result<Option<(String, String)>, SwarmError> {
        let Some(file) = &unit.file else { return Ok(None) };
        let name = format!("{}-{}", unit.name, file.hash());
        let filters = HashMap::from([("name".to_string(), vec![name.clone()])]);
        let client = self.manager.client();
        let found = client
            .list_configs(Some(ListConfigsOptionsBuilder::new().filters(&filters).build()))
            .await
            .map_err(call(SwarmOp::CreateConfig, &name))?;
        if let Some(id) = found
            .into_iter()
            .find(|c| c.spec.as_ref().and_then(|s| s.name.as_deref()) == Some(&name))
            .and_then(|c| c.id)
        {
            return Ok(Some((id, name)));
        }
        use base64::Engine as _;
        let spec = ConfigSpec {
            name: Some(name.clone()),
            labels: Some(HashMap::from([(labels::PROJECT.to_string(), project.to_string())])),
            data: Some(base64::engine::general_purpose::STANDARD.encode(file.text.as_bytes())),
            ..Default::default()
        };
        let created = client.create_config(spec).await.map_err(call(SwarmOp::CreateConfig, &name))?;
        Ok(Some((created.id, name)))
    }
}

impl SwarmEngine {
    /// The project's failover markers (Swarm configs with the marker's labels): name → labels.
    async fn markers(&self, project: &str) -> Result<BTreeMap<String, BTreeMap<String, String>>, SwarmError> {
        let filters = HashMap::from([("label".to_string(), vec![labels::project_filter(project)])]);
        let configs = self
            .manager
            .client()
            .list_configs(Some(ListConfigsOptionsBuilder::new().filters(&filters).build()))
            .await
            .map_err(call(SwarmOp::ListServices, project))?;
        Ok(configs
            .into_iter()
            .filter_map(|c| {
                let spec = c.spec?;
                let (name, labels) = (spec.name?, spec.labels?);
                labels.contains_key(MARKER_SERVICE_LABEL).then(|| (name, labels.into_iter().collect()))
            })
            .collect())
    }

    /// The running task of unit `name`: its container ID and node ID.
    async fn running_task(&self, name: &str) -> Result<Option<(String, String)>, SwarmError> {
        let filters = HashMap::from([
            ("service".to_string(), vec![name.to_string()]),
            ("desired-state".to_string(), vec!["running".to_string()]),
        ]);
        let tasks = self
            .manager
            .client()
            .list_tasks(Some(ListTasksOptionsBuilder::new().filters(&filters).build()))
            .await
            .map_err(call(SwarmOp::ListTasks, name))?;
        Ok(tasks.into_iter().find_map(|t| {
            let status = t.status?;
            (status.state == Some(TaskState::RUNNING)).then_some(())?;
            Some((status.container_status?.container_id?, t.node_id?))
        }))
    }

    /// The node a unit is pinned to by hostname (`node.hostname==…`) when Swarm does not see
    /// that node ready: its task waits there (pending) until the node is back.
    async fn pinned_node_down(&self, constraints: &[String]) -> Result<Option<String>, SwarmError> {
        let Some(host) = constraints.iter().find_map(|c| c.strip_prefix("node.hostname==")) else { return Ok(None) };
        let down = images::nodes_not_ready(&self.manager).await?;
        Ok(down.contains(host).then(|| host.to_string()))
    }
}

/// Where each project resource on `engine` says the project runs: `None` when it has none.
pub async fn recorded_target(engine: &DockerEngine, project: &str) -> Result<Option<Target>, EngineError> {
    let filter = HashMap::from([("label".to_string(), vec![labels::project_filter(project)])]);
    let networks = engine
        .client()
        .list_networks(Some(ListNetworksOptionsBuilder::new().filters(&filter).build()))
        .await
        .map_err(|e| EngineError::Observe(e.into()))?;
    if networks.iter().any(|n| n.labels.as_ref().and_then(|l| l.get(TARGET_LABEL)).map(String::as_str) == Some("swarm"))
    {
        return Ok(Some(Target::Swarm));
    }
    if !networks.is_empty() {
        return Ok(Some(Target::Docker));
    }
    // No network (a half-removed project): its containers or services tell.
    let observed = crate::engine::Engine::observe(engine, project).await?;
    if !observed.containers.is_empty() {
        return Ok(Some(Target::Docker));
    }
    let services = engine
        .client()
        .list_services(Some(ListServicesOptionsBuilder::new().filters(&filter).build()))
        .await
        .unwrap_or_default();
    Ok((!services.is_empty()).then_some(Target::Swarm))
}

impl Orchestrator for SwarmEngine {
    fn address(&self) -> String {
        crate::engine::Engine::address(&self.manager)
    }

    async fn observe_units(&self, project: &str) -> Result<ObservedUnits, SwarmError> {
        let filter = HashMap::from([("label".to_string(), vec![labels::project_filter(project)])]);
        let client = self.manager.client();
        let services = client
            .list_services(Some(ListServicesOptionsBuilder::new().filters(&filter).build()))
            .await
            .map_err(call(SwarmOp::ListServices, project))?;
        let units = services.iter().filter_map(convert::observed_unit).map(|u| (u.name.clone(), u)).collect();
        let networks = client
            .list_networks(Some(ListNetworksOptionsBuilder::new().filters(&filter).build()))
            .await
            .map_err(call(SwarmOp::ListServices, project))?;
        let networks = networks.into_iter().filter_map(|n| n.name).collect();
        let markers = self.markers(project).await?;
        Ok(ObservedUnits { units, networks, markers })
    }

    async fn create_network(&self, spec: &NetworkSpec) -> Result<(), SwarmError> {
        let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
        labels.insert(TARGET_LABEL.into(), Target::Swarm.as_str().into());
        let request = NetworkCreateRequest {
            name: spec.name.clone(),
            driver: Some("overlay".into()),
            internal: Some(spec.internal),
            attachable: Some(true),
            labels: Some(labels),
            ..Default::default()
        };
        self.manager.client().create_network(request).await.map_err(call(SwarmOp::CreateNetwork, &spec.name))?;
        Ok(())
    }

    async fn remove_network(&self, name: &str) -> Result<(), SwarmError> {
        match self.manager.client().remove_network(name).await.map_err(Cause::from) {
            Ok(()) => Ok(()),
            Err(cause) if cause.is_not_found() => Ok(()),
            Err(cause) => Err(SwarmError::Call { op: SwarmOp::RemoveNetwork, name: name.into(), cause }),
        }
    }

    async fn provide_image(
        &self,
        image: &ImageSpec,
        placement: &Placement,
        project: &str,
        progress: Progress<'_>,
    ) -> Result<String, SwarmError> {
        images::provide(&self.manager, &self.builder, image, placement, project, progress).await
    }

    async fn put_unit(&self, unit: &UnitSpec, image_id: &str, project: &str) -> Result<(), SwarmError> {
        let resolved = convert::Resolved {
            image_id,
            project,
            constraints: self.constraints(unit).await?,
            config: self.config(unit, project).await?,
        };
        let spec = convert::service_spec(unit, &resolved);
        let client = self.manager.client();
        match client.inspect_service(&unit.name, None::<InspectServiceOptions>).await.map_err(Cause::from) {
            Ok(current) => {
                let version = current.version.and_then(|v| v.index).unwrap_or(0);
                let options =
                    UpdateServiceOptions { version: i32::try_from(version).unwrap_or(i32::MAX), ..Default::default() };
                client
                    .update_service(&unit.name, spec, options, None)
                    .await
                    .map_err(call(SwarmOp::UpdateService, &unit.name))?;
            }
            Err(cause) if cause.is_not_found() => {
                client.create_service(spec, None).await.map_err(call(SwarmOp::CreateService, &unit.name))?;
            }
            Err(cause) => return Err(SwarmError::Call { op: SwarmOp::UpdateService, name: unit.name.clone(), cause }),
        }
        Ok(())
    }

    async fn remove_unit(&self, name: &str) -> Result<(), SwarmError> {
        match self.manager.client().delete_service(name).await.map_err(Cause::from) {
            Ok(()) => Ok(()),
            Err(cause) if cause.is_not_found() => Ok(()),
            Err(cause) => Err(SwarmError::Call { op: SwarmOp::RemoveService, name: name.into(), cause }),
        }
    }

    async fn unit_progress(&self, name: &str, hash: &str) -> Result<UnitProgress, SwarmError> {
        let client = self.manager.client();
        let service = client
            .inspect_service(name, None::<InspectServiceOptions>)
            .await
            .map_err(call(SwarmOp::ListTasks, name))?;
        let constraints = service
            .spec
            .as_ref()
            .and_then(|s| s.task_template.as_ref())
            .and_then(|t| t.placement.as_ref())
            .and_then(|p| p.constraints.clone())
            .unwrap_or_default();
        let down_node = self.pinned_node_down(&constraints).await?;
        let status = service.update_status.unwrap_or_default();
        let phase = match status.state {
            Some(ServiceUpdateStatusStateEnum::UPDATING) => UpdatePhase::Updating,
            Some(ServiceUpdateStatusStateEnum::PAUSED) => UpdatePhase::Paused,
            Some(
                ServiceUpdateStatusStateEnum::ROLLBACK_STARTED
                | ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED
                | ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED,
            ) => UpdatePhase::RolledBack,
            _ => UpdatePhase::Settled,
        };
        let filters = HashMap::from([("service".to_string(), vec![name.to_string()])]);
        let tasks = client
            .list_tasks(Some(ListTasksOptionsBuilder::new().filters(&filters).build()))
            .await
            .map_err(call(SwarmOp::ListTasks, name))?;
        let hosts = images::node_names_by_id(&self.manager).await?;
        let mut progress =
            UnitProgress { ready: 0, stale: 0, phase, message: status.message, nodes: BTreeSet::new(), down_node };
        let mut newest_failure: Option<(String, String)> = None;
        for task in &tasks {
            let task_hash = task
                .spec
                .as_ref()
                .and_then(|s| s.container_spec.as_ref())
                .and_then(|c| c.labels.as_ref())
                .and_then(|l| l.get(labels::SPEC_HASH))
                .map(String::as_str);
            let state = task.status.as_ref().and_then(|s| s.state);
            let meant_to_run = task.desired_state == Some(TaskState::RUNNING);
            // An old task counts until its container is gone, not only until Swarm decided to
            // stop it: it answers requests through its stop grace period.
            let old_still_up = meant_to_run || matches!(state, Some(TaskState::RUNNING | TaskState::STARTING));
            if task_hash != Some(hash) && old_still_up {
                progress.stale += 1;
            } else if meant_to_run && state == Some(TaskState::RUNNING) {
                progress.ready += 1;
                if let Some(host) = task.node_id.as_ref().and_then(|id| hosts.get(id)) {
                    progress.nodes.insert(host.clone());
                }
            }
            if matches!(state, Some(TaskState::FAILED | TaskState::REJECTED)) {
                let status = task.status.clone().unwrap_or_default();
                let when = status.timestamp.map(|t| t.to_string()).unwrap_or_default();
                let what = status.err.or(status.message).unwrap_or_default();
                if newest_failure.as_ref().is_none_or(|(w, _)| *w < when) {
                    newest_failure = Some((when, what));
                }
            }
        }
        if progress.message.is_none() {
            progress.message = newest_failure.map(|(_, what)| format!("last failed task: {what}"));
        }
        Ok(progress)
    }

    async fn exec_in_unit(&self, name: &str, cmd: &[String]) -> Result<Option<ExecOutput>, SwarmError> {
        let Some((container, node)) = self.running_task(name).await? else { return Ok(None) };
        // A node that was just lost may still be listed ready: its engine does not answer.
        let Ok(Some(engine)) = images::node_engine(&self.manager, &node).await else { return Ok(None) };
        let out = crate::engine::Engine::exec(&engine, &container, name, cmd).await?;
        Ok(Some(out))
    }

    async fn unit_image(&self, name: &str) -> Result<Option<String>, SwarmError> {
        let service = self
            .manager
            .client()
            .inspect_service(name, None::<InspectServiceOptions>)
            .await
            .map_err(call(SwarmOp::Inspect, name))?;
        Ok(service.spec.and_then(|s| s.task_template).and_then(|t| t.container_spec).and_then(|c| c.image))
    }

    async fn record_marker(&self, marker: &VolumeSpec, older: &[String]) -> Result<(), SwarmError> {
        use base64::Engine as _;
        let client = self.manager.client();
        let node = marker.labels.get(crate::labels::MARKER_NODE_LABEL).cloned().unwrap_or_default();
        let spec = ConfigSpec {
            name: Some(marker.name.clone()),
            labels: Some(marker.labels.clone().into_iter().collect()),
            data: Some(base64::engine::general_purpose::STANDARD.encode(node.as_bytes())),
            ..Default::default()
        };
        // A config cannot change: one of the same name (the same node, promoted before) goes.
        let _ = client.delete_config(&marker.name).await;
        client.create_config(spec).await.map_err(call(SwarmOp::CreateConfig, &marker.name))?;
        for name in older.iter().filter(|n| **n != marker.name) {
            match client.delete_config(name).await.map_err(Cause::from) {
                Ok(()) => {}
                Err(cause) if cause.is_not_found() => {}
                Err(cause) => return Err(SwarmError::Call { op: SwarmOp::RemoveConfig, name: name.clone(), cause }),
            }
        }
        Ok(())
    }
}
