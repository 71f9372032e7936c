//! What the CI and debugging commands ask of a Docker engine beyond reconciling one project:
//! every project's resources (`reap`, `status --all`), a container's raw inspect (`dump`),
//! streamed logs (`logs -f`), an exec whose output streams through (`exec`), and health
//! progress (apply's "waiting for … (2/5 checks failed)"). Kept apart from `docker.rs` so
//! the engine's reconcile path stays as it is.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::{Duration, SystemTime};

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    LogsOptionsBuilder,
};
use futures_util::{Stream, StreamExt};

use super::classify::Cause;
use super::docker::DockerEngine;
use super::{EngineError, HealthProgress};
use crate::expiry::{Resource, ResourceKind};
use crate::labels;

/// Every container, network and volume carrying `io.scale.project`, whatever the project.
pub async fn all_resources(engine: &DockerEngine) -> Result<Vec<Resource>, EngineError> {
    let docker = engine.client();
    let filters = HashMap::from([("label", vec![labels::PROJECT.to_string()])]);
    let containers =
        docker.list_containers(Some(ListContainersOptionsBuilder::new().all(true).filters(&filters).build()));
    let networks = docker.list_networks(Some(ListNetworksOptionsBuilder::new().filters(&filters).build()));
    let volumes = docker.list_volumes(Some(ListVolumesOptionsBuilder::new().filters(&filters).build()));
    let (containers, networks, volumes) = futures_util::future::try_join3(containers, networks, volumes)
        .await
        .map_err(|e| EngineError::Observe(Cause::from(e)))?;
    let mut out = Vec::new();
    let resource = |kind, name: String, labels: Option<HashMap<String, String>>, created, running| {
        let labels: BTreeMap<String, String> = labels.unwrap_or_default().into_iter().collect();
        let project = labels.get(labels::PROJECT)?.clone();
        Some(Resource { kind, name, project, labels, created, running })
    };
    for c in containers {
        let name = c.names.unwrap_or_default().first().map(|n| n.trim_start_matches('/').to_string());
        let created =
            c.created.and_then(|s| u64::try_from(s).ok()).map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        let running = c.state.is_some_and(|s| s.to_string() == "running");
        out.extend(resource(ResourceKind::Container, name.unwrap_or_default(), c.labels, created, running));
    }
    for n in networks {
        let created = n.created.as_deref().and_then(crate::expiry::parse_time);
        out.extend(resource(ResourceKind::Network, n.name.unwrap_or_default(), n.labels, created, false));
    }
    for v in volumes.volumes.unwrap_or_default() {
        let created = v.created_at.as_deref().and_then(crate::expiry::parse_time);
        out.extend(resource(ResourceKind::Volume, v.name, Some(v.labels), created, false));
    }
    Ok(out)
}

/// Volumes no container mounts that carry no label and have the name the engine gives an
/// anonymous volume (64 hex digits). Replacements by scale before anonymous volumes were
/// carried over left such volumes behind; so do other tools, and nothing on them says whose
/// they are.
pub async fn unlabelled_dangling_volumes(engine: &DockerEngine) -> Result<Vec<String>, EngineError> {
    let filters = HashMap::from([("dangling", vec!["true".to_string()])]);
    let listed = engine
        .client()
        .list_volumes(Some(ListVolumesOptionsBuilder::new().filters(&filters).build()))
        .await
        .map_err(|e| EngineError::Observe(Cause::from(e)))?;
    let anonymous = |name: &str| name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
    let mut names: Vec<String> = listed
        .volumes
        .unwrap_or_default()
        .into_iter()
        .filter(|v| v.labels.is_empty() && anonymous(&v.name))
        .map(|v| v.name)
        .collect();
    names.sort();
    Ok(names)
}

/// A container's full inspect, as the engine answers `docker inspect`.
pub async fn inspect_json(engine: &DockerEngine, id: &str, name: &str) -> Result<serde_json::Value, EngineError> {
    let inspect = engine
        .client()
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
        .map_err(|e| EngineError::Inspect { name: name.into(), cause: Cause::from(e) })?;
    serde_json::to_value(inspect)
        .map_err(|e| EngineError::Inspect { name: name.into(), cause: Cause::local(e.to_string()) })
}

/// One chunk of a container's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub stderr: bool,
    pub bytes: Vec<u8>,
}

/// A container's output from the last `tail` lines on (all of it with `None`), and with
/// `follow` everything it prints afterwards until it stops or the stream is dropped.
pub fn log_stream(
    engine: &DockerEngine,
    id: &str,
    follow: bool,
    tail: Option<usize>,
) -> impl Stream<Item = Result<LogChunk, EngineError>> + use<> {
    let tail = tail.map_or("all".to_string(), |n| n.to_string());
    let options = LogsOptionsBuilder::new().stdout(true).stderr(true).follow(follow).tail(&tail).build();
    let owner = id.to_string();
    engine.client().logs(id, Some(options)).map(move |item| match item {
        Ok(LogOutput::StdErr { message }) => Ok(LogChunk { stderr: true, bytes: message.to_vec() }),
        Ok(other) => Ok(LogChunk { stderr: false, bytes: other.into_bytes().to_vec() }),
        Err(e) => Err(EngineError::Logs { id: owner.clone(), cause: Cause::from(e) }),
    })
}

/// Runs `cmd` in a running container, its output going straight to our stdout and stderr
/// as it comes; its exit code (-1 when the engine does not say).
pub async fn exec_streaming(engine: &DockerEngine, id: &str, name: &str, cmd: &[String]) -> Result<i64, EngineError> {
    let fail = |cause: Cause| EngineError::Exec { name: name.into(), command: cmd.join(" "), cause };
    let docker = engine.client();
    let options = CreateExecOptions {
        cmd: Some(cmd.to_vec()),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        ..Default::default()
    };
    let created = docker.create_exec(id, options).await.map_err(|e| fail(Cause::from(e)))?;
    let started = docker
        .start_exec(&created.id, Some(StartExecOptions { detach: false, tty: false, output_capacity: None }))
        .await
        .map_err(|e| fail(Cause::from(e)))?;
    if let StartExecResults::Attached { output: mut stream, .. } = started {
        while let Some(chunk) = stream.next().await {
            // A closed stdout (`| head`) is not the command's failure.
            let _ = match chunk.map_err(|e| fail(Cause::from(e)))? {
                LogOutput::StdErr { message } => std::io::stderr().write_all(&message),
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&message).and_then(|()| out.flush())
                }
                LogOutput::StdIn { .. } => Ok(()),
            };
        }
    }
    let inspect = docker.inspect_exec(&created.id).await.map_err(|e| fail(Cause::from(e)))?;
    Ok(inspect.exit_code.unwrap_or(-1))
}

/// How a container's healthcheck is doing: the engine's failing streak and its log.
pub async fn health_progress(
    engine: &DockerEngine,
    id: &str,
    name: &str,
) -> Result<Option<HealthProgress>, EngineError> {
    let inspect = engine
        .client()
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
        .map_err(|e| EngineError::Inspect { name: name.into(), cause: Cause::from(e) })?;
    let Some(health) = inspect.state.and_then(|s| s.health) else { return Ok(None) };
    let log = health.log.unwrap_or_default();
    Ok(Some(HealthProgress {
        failing_streak: health.failing_streak.and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
        checks_run: log.len(),
        passed: log.iter().filter(|entry| entry.exit_code == Some(0)).count(),
    }))
}
