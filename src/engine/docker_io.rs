//! Talking to what runs inside a container: exec, one file in or out, signals. Used by kinds
//! (HAProxy's config and runtime API, PostgreSQL's status and promotion).

use std::io::Read;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::{DownloadFromContainerOptions, KillContainerOptions, UploadToContainerOptions};
use futures_util::StreamExt;

use super::classify::Cause;
use super::docker::DockerEngine;
use super::{EngineError, ExecOutput};

/// Output beyond this is cut: these commands print a status line or a small table.
const MAX_EXEC_OUTPUT: usize = 1024 * 1024;

impl DockerEngine {
    pub(super) async fn exec_command(&self, id: &str, name: &str, cmd: &[String]) -> Result<ExecOutput, EngineError> {
        let fail = |cause: Cause| EngineError::Exec { name: name.into(), command: cmd.join(" "), cause };
        let docker = self.client();
        let options = CreateExecOptions {
            cmd: Some(cmd.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let created = docker.create_exec(id, options).await.map_err(|e| fail(e.into()))?;
        let started = docker
            .start_exec(&created.id, Some(StartExecOptions { detach: false, tty: false, output_capacity: None }))
            .await
            .map_err(|e| fail(e.into()))?;
        let mut output = String::new();
        if let StartExecResults::Attached { output: mut stream, .. } = started {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| fail(e.into()))?;
                let bytes = match &chunk {
                    LogOutput::StdOut { message } | LogOutput::StdErr { message } | LogOutput::Console { message } => {
                        message
                    }
                    LogOutput::StdIn { .. } => continue,
                };
                if output.len() < MAX_EXEC_OUTPUT {
                    output.push_str(&String::from_utf8_lossy(bytes));
                }
            }
        }
        let inspect = docker.inspect_exec(&created.id).await.map_err(|e| fail(e.into()))?;
        Ok(ExecOutput { exit_code: inspect.exit_code.unwrap_or(-1), output })
    }

    pub(super) async fn download_file(&self, id: &str, name: &str, path: &str) -> Result<Option<Vec<u8>>, EngineError> {
        let fail = |cause: Cause| EngineError::ReadFile { name: name.into(), path: path.into(), cause };
        let options = DownloadFromContainerOptions { path: path.to_string() };
        let mut stream = self.client().download_from_container(id, Some(options));
        let mut archive = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk.map_err(Cause::from) {
                Ok(bytes) => archive.extend_from_slice(&bytes),
                Err(cause) if cause.is_not_found() => return Ok(None),
                Err(cause) => return Err(fail(cause)),
            }
        }
        let mut tar = tar::Archive::new(archive.as_slice());
        let entries = tar.entries().map_err(|e| fail(Cause::local(e.to_string())))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| fail(Cause::local(e.to_string())))?;
            if entry.header().entry_type().is_file() {
                let mut contents = Vec::new();
                entry.read_to_end(&mut contents).map_err(|e| fail(Cause::local(e.to_string())))?;
                return Ok(Some(contents));
            }
        }
        Ok(None)
    }

    pub(super) async fn upload_file(
        &self,
        id: &str,
        name: &str,
        path: &str,
        contents: &[u8],
    ) -> Result<(), EngineError> {
        let fail = |cause: Cause| EngineError::WriteFile { name: name.into(), path: path.into(), cause };
        let (dir, file) = match path.rsplit_once('/') {
            Some(("", file)) => ("/", file),
            Some((dir, file)) => (dir, file),
            None => return Err(fail(Cause::local("the path must be absolute"))),
        };
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        let mut builder = tar::Builder::new(Vec::new());
        builder.append_data(&mut header, file, contents).map_err(|e| fail(Cause::local(e.to_string())))?;
        let archive = builder.into_inner().map_err(|e| fail(Cause::local(e.to_string())))?;
        let options = UploadToContainerOptions { path: dir.to_string(), ..Default::default() };
        self.client()
            .upload_to_container(id, Some(options), bollard::body_full(archive.into()))
            .await
            .map_err(|e| fail(e.into()))
    }

    pub(super) async fn send_signal(&self, id: &str, name: &str, signal: &str) -> Result<(), EngineError> {
        let options = KillContainerOptions { signal: signal.to_string() };
        self.client().kill_container(id, Some(options)).await.map_err(|e| EngineError::Signal {
            name: name.into(),
            signal: signal.into(),
            cause: e.into(),
        })
    }

    pub(super) async fn disconnect_network(&self, id: &str, name: &str, network: &str) -> Result<(), EngineError> {
        let request = bollard::models::NetworkDisconnectRequest { container: id.to_string(), force: Some(true) };
        self.client().disconnect_network(network, request).await.map_err(|e| EngineError::Disconnect {
            name: name.into(),
            network: network.into(),
            cause: e.into(),
        })
    }

    pub(super) async fn connect_network(
        &self,
        id: &str,
        name: &str,
        network: &str,
        aliases: &[String],
    ) -> Result<(), EngineError> {
        let request = bollard::models::NetworkConnectRequest {
            container: id.to_string(),
            endpoint_config: Some(bollard::models::EndpointSettings {
                aliases: Some(aliases.to_vec()),
                ..Default::default()
            }),
        };
        self.client().connect_network(network, request).await.map_err(|e| EngineError::Connect {
            name: name.into(),
            network: network.into(),
            cause: e.into(),
        })
    }
}

/// Engine events that can mean drift: a container died, stopped, was removed, paused, went
/// unhealthy, or was cut off a network. Healthcheck execs and the like are not.
fn is_drift(kind: &str, action: &str) -> bool {
    match kind {
        "container" => {
            matches!(action, "die" | "stop" | "kill" | "destroy" | "pause" | "oom" | "rename")
                || action.starts_with("health_status: unhealthy")
        }
        "network" => action == "disconnect",
        _ => false,
    }
}

impl DockerEngine {
    /// The Docker engine's [`super::Engine::subscribe`]: its event stream, filtered to drift
    /// in `project`.
    pub(super) fn follow_events(&self, project: &str) -> super::EventStream {
        use std::collections::HashMap;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let docker = self.client().clone();
        let project = project.to_string();
        let network_prefix = format!("{project}_");
        tokio::spawn(async move {
            let filters = HashMap::from([("type", vec!["container", "network"])]);
            let options = bollard::query_parameters::EventsOptionsBuilder::new().filters(&filters).build();
            let mut stream = docker.events(Some(options));
            while let Some(Ok(event)) = stream.next().await {
                let kind = event.typ.map(|t| t.to_string()).unwrap_or_default();
                let action = event.action.unwrap_or_default();
                if !is_drift(&kind, &action) {
                    continue;
                }
                let attributes = event.actor.and_then(|a| a.attributes).unwrap_or_default();
                let ours = match kind.as_str() {
                    "container" => attributes.get(crate::labels::PROJECT) == Some(&project),
                    _ => attributes.get("name").is_some_and(|n| n.starts_with(&network_prefix)),
                };
                if !ours {
                    continue;
                }
                let subject = attributes.get("name").cloned().unwrap_or_default();
                let text = match kind.as_str() {
                    "network" => format!("a container left network {subject}"),
                    _ => format!("{subject}: {action}"),
                };
                if tx.send(text).is_err() {
                    break;
                }
            }
        });
        rx
    }
}

/// One thing that happened to a project's resources, for `scale status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecentEvent {
    /// Unix seconds.
    pub time: i64,
    pub subject: String,
    pub action: String,
}

impl DockerEngine {
    /// What happened to the project's containers (and their networks) over the last
    /// `window`, newest last; healthcheck execs are left out. Empty if the engine won't say.
    pub async fn recent_events(&self, project: &str, window: std::time::Duration) -> Vec<RecentEvent> {
        use std::collections::HashMap;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let since = now.saturating_sub(window.as_secs()).to_string();
        let until = now.to_string();
        let filters = HashMap::from([("type", vec!["container", "network"])]);
        let options = bollard::query_parameters::EventsOptionsBuilder::new()
            .since(&since)
            .until(&until)
            .filters(&filters)
            .build();
        let mut stream = self.client().events(Some(options));
        let mut out = Vec::new();
        let network_prefix = format!("{project}_");
        while let Ok(Some(Ok(event))) = tokio::time::timeout(std::time::Duration::from_secs(3), stream.next()).await {
            let kind = event.typ.map(|t| t.to_string()).unwrap_or_default();
            let action = event.action.unwrap_or_default();
            if action.starts_with("exec_") || action.starts_with("health_status: healthy") || action == "archive-path" {
                continue;
            }
            let attributes = event.actor.and_then(|a| a.attributes).unwrap_or_default();
            let ours = match kind.as_str() {
                "container" => attributes.get(crate::labels::PROJECT).map(String::as_str) == Some(project),
                _ => attributes.get("name").is_some_and(|n| n.starts_with(&network_prefix)),
            };
            if ours {
                let subject = attributes.get("name").cloned().unwrap_or_default();
                out.push(RecentEvent { time: event.time.unwrap_or(0), subject, action });
            }
        }
        out
    }
}

impl DockerEngine {
    /// Whether a network of that name (or id) exists: an `external: true` network must.
    pub async fn network_exists(&self, name: &str) -> Result<bool, EngineError> {
        let options = bollard::query_parameters::InspectNetworkOptions::default();
        match self.client().inspect_network(name, Some(options)).await.map_err(Cause::from) {
            Ok(_) => Ok(true),
            Err(cause) if cause.is_not_found() => Ok(false),
            Err(cause) => Err(EngineError::Inspect { name: name.to_string(), cause }),
        }
    }

    /// Whether a volume of that name exists: an `external: true` volume must.
    pub async fn volume_exists(&self, name: &str) -> Result<bool, EngineError> {
        match self.client().inspect_volume(name).await.map_err(Cause::from) {
            Ok(_) => Ok(true),
            Err(cause) if cause.is_not_found() => Ok(false),
            Err(cause) => Err(EngineError::Inspect { name: name.to_string(), cause }),
        }
    }

    /// The engine's own platform, `os/arch` as Compose's `platform:` writes it (`linux/amd64`).
    pub async fn platform(&self) -> Result<String, EngineError> {
        let version = self
            .client()
            .version()
            .await
            .map_err(|e| EngineError::Inspect { name: "the engine's version".into(), cause: e.into() })?;
        Ok(format!("{}/{}", version.os.unwrap_or_default(), version.arch.unwrap_or_default()))
    }
}
