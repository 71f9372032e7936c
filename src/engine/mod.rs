//! The one place that talks to a container engine: a narrow trait, its Docker implementation
//! over bollard, and an in-memory fake for planner and executor tests. Engine errors are our
//! own, one variant per operation, so bollard's never leak to users.

use std::time::Duration;

use crate::desired::{ContainerSpec, ImageSpec, NetworkSpec, VolumeSpec};
use crate::observed::{Health, ObservedState, RunState};

pub mod docker;
pub mod docker_io;
pub mod fake;
pub mod live;
pub mod lock;
pub mod tools;

/// What the engine says about one container right now (for health gating).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub state: RunState,
    pub health: Option<Health>,
    pub exit_code: Option<i64>,
    /// The engine's own message when the container failed to start or died (OOM, exec error).
    pub error: Option<String>,
}

/// Called with each line of build or pull output, for progress display.
pub type Progress<'a> = &'a (dyn Fn(&str) + Sync);

/// Everything scale asks of a container engine. Futures need not be `Send`: the executor
/// drives all of them on one task with bounded concurrency.
#[allow(async_fn_in_trait)]
pub trait Engine {
    /// Where the engine is, for messages ("unix:///var/run/docker.sock").
    fn address(&self) -> String;
    /// A snapshot of everything labelled with `project`, plus the local image references.
    async fn observe(&self, project: &str) -> Result<ObservedState, EngineError>;
    async fn create_network(&self, spec: &NetworkSpec) -> Result<(), EngineError>;
    async fn remove_network(&self, name: &str) -> Result<(), EngineError>;
    async fn create_volume(&self, spec: &VolumeSpec) -> Result<(), EngineError>;
    async fn remove_volume(&self, name: &str) -> Result<(), EngineError>;
    /// Builds `image` (which must have a build source) from a tar of its context.
    async fn build_image(&self, image: &ImageSpec, project: &str, progress: Progress<'_>) -> Result<(), EngineError>;
    async fn pull_image(&self, reference: &str, progress: Progress<'_>) -> Result<(), EngineError>;
    /// Creates (does not start) a container from its spec; returns its ID.
    async fn create_container(&self, spec: &ContainerSpec, project: &str) -> Result<String, EngineError> {
        self.create_named(&spec.name, spec, project).await
    }
    /// Creates a container from `spec` under another name (a replacement's temporary name);
    /// its labels still describe `spec`, so once renamed it is exactly the desired container.
    async fn create_named(&self, name: &str, spec: &ContainerSpec, project: &str) -> Result<String, EngineError>;
    /// Renames a container (a finished replacement takes its final name).
    async fn rename_container(&self, id: &str, name: &str, new_name: &str) -> Result<(), EngineError>;
    async fn start_container(&self, id: &str, name: &str) -> Result<(), EngineError>;
    async fn stop_container(&self, id: &str, name: &str, grace: Duration) -> Result<(), EngineError>;
    async fn remove_container(&self, id: &str, name: &str) -> Result<(), EngineError>;
    /// Removes a container and its anonymous volumes (`"/path"` mounts; never named ones),
    /// which belong to no one else and carry no label: only `destroy --volumes` asks for this.
    async fn remove_container_and_anonymous_volumes(&self, id: &str, name: &str) -> Result<(), EngineError> {
        self.remove_container(id, name).await
    }
    async fn unpause_container(&self, id: &str, name: &str) -> Result<(), EngineError>;
    async fn container_status(&self, id: &str, name: &str) -> Result<ContainerStatus, EngineError>;
    /// The last `lines` lines of a container's output (stdout and stderr).
    async fn logs_tail(&self, id: &str, lines: usize) -> Result<Vec<String>, EngineError>;
    /// Runs a command inside a running container (no shell unless the command is one).
    async fn exec(&self, id: &str, name: &str, cmd: &[String]) -> Result<ExecOutput, EngineError>;
    /// Reads one file from a container, created or running; `None` when it does not exist.
    async fn read_file(&self, id: &str, name: &str, path: &str) -> Result<Option<Vec<u8>>, EngineError>;
    /// Writes one file into a container, created or running (how generated configs arrive).
    async fn write_file(&self, id: &str, name: &str, path: &str, contents: &[u8]) -> Result<(), EngineError>;
    /// Sends a signal such as `SIGUSR2` (HAProxy's reload) to a container's main process.
    async fn signal(&self, id: &str, name: &str, signal: &str) -> Result<(), EngineError>;
    /// Freezes every process of a container (`scale chaos pause`).
    async fn pause_container(&self, id: &str, name: &str) -> Result<(), EngineError>;
    /// Cuts a container off a network (`scale chaos disconnect`).
    async fn disconnect(&self, id: &str, name: &str, network: &str) -> Result<(), EngineError>;
    /// Attaches a container to a network under extra DNS names.
    async fn connect(&self, id: &str, name: &str, network: &str, aliases: &[String]) -> Result<(), EngineError>;

    // --- Added for `apply`'s wait messages (issue 14); a default, so other engines need nothing.

    /// How the container's healthcheck is doing, for "waiting for … (2/5 checks failed)";
    /// `None` when the engine cannot tell or the container has no healthcheck.
    async fn health_progress(&self, _id: &str, _name: &str) -> Result<Option<HealthProgress>, EngineError> {
        Ok(None)
    }
}

/// A healthcheck under way, as the engine's health log tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HealthProgress {
    /// Checks that failed in a row (the container turns unhealthy at `retries`).
    pub failing_streak: u32,
    /// Checks the engine has run and kept in its log (it keeps the last five).
    pub checks_run: usize,
    /// Of those, the ones that passed.
    pub passed: usize,
}

/// The full snapshot a plan needs: the labelled resources, plus the pool each running load
/// balancer holds (one small file read per load balancer; nothing else is inspected).
pub async fn observe_project<E: Engine>(engine: &E, project: &str) -> Result<ObservedState, EngineError> {
    use crate::kinds::load_balancer::{POOL_PATH, Pool};
    let mut observed = engine.observe(project).await?;
    let balancers: Vec<(String, String)> = observed
        .containers
        .values()
        .filter(|c| c.kind() == Some(crate::model::Kind::LoadBalancer))
        .filter(|c| c.state == RunState::Running)
        .map(|c| (c.id.clone(), c.name.clone()))
        .collect();
    for (id, name) in balancers {
        if let Some(bytes) = engine.read_file(&id, &name, POOL_PATH).await?
            && let Ok(pool) = serde_json::from_slice::<Pool>(&bytes)
        {
            observed.load_balancers.insert(name, pool);
        }
    }
    Ok(observed)
}

/// What a command run with [`Engine::exec`] printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOutput {
    pub exit_code: i64,
    /// stdout and stderr, interleaved as the engine delivered them.
    pub output: String,
}

/// A failed engine operation, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach the Docker engine at {address}: {reason}")]
    Unreachable { address: String, reason: String },
    #[error("permission denied talking to the Docker engine at {address}")]
    PermissionDenied { address: String },
    #[error("the Docker engine at {address} speaks API {version}, older than the {minimum} scale needs")]
    ApiTooOld { address: String, version: String, minimum: String },
    #[error("cannot list the project's resources: {0}")]
    Observe(String),
    #[error("cannot create network {name}: {reason}")]
    CreateNetwork { name: String, reason: String },
    #[error("cannot remove network {name}: {reason}")]
    RemoveNetwork { name: String, reason: String },
    #[error("cannot create volume {name}: {reason}")]
    CreateVolume { name: String, reason: String },
    #[error("cannot remove volume {name}: {reason}")]
    RemoveVolume { name: String, reason: String },
    #[error("cannot read build context {context}: {reason}")]
    BuildContext { context: String, reason: String },
    #[error("build of {image} failed: {reason}")]
    Build { image: String, reason: String, output: Vec<String> },
    #[error("cannot pull {reference}: {reason}")]
    Pull { reference: String, reason: String },
    #[error("cannot create container {name}: the name is taken by a container scale does not manage")]
    NameTaken { name: String },
    #[error("cannot create container {name}: {reason}")]
    CreateContainer { name: String, reason: String },
    #[error("cannot start container {name}: host port {port} is already in use")]
    PortInUse { name: String, port: String },
    #[error("cannot start container {name}: {reason}")]
    Start { name: String, reason: String },
    #[error("cannot stop container {name}: {reason}")]
    Stop { name: String, reason: String },
    #[error("cannot remove container {name}: {reason}")]
    Remove { name: String, reason: String },
    #[error("cannot rename container {name}: {reason}")]
    Rename { name: String, reason: String },
    #[error("cannot unpause container {name}: {reason}")]
    Unpause { name: String, reason: String },
    #[error("cannot inspect container {name}: {reason}")]
    Inspect { name: String, reason: String },
    #[error("cannot read logs of {id}: {reason}")]
    Logs { id: String, reason: String },
    #[error("cannot run `{command}` in {name}: {reason}")]
    Exec { name: String, command: String, reason: String },
    #[error("cannot read {path} in {name}: {reason}")]
    ReadFile { name: String, path: String, reason: String },
    #[error("cannot write {path} in {name}: {reason}")]
    WriteFile { name: String, path: String, reason: String },
    #[error("cannot pause container {name}: {reason}")]
    Pause { name: String, reason: String },
    #[error("cannot change the networks of {name}: {reason}")]
    Network { name: String, reason: String },
    #[error("cannot send {signal} to {name}: {reason}")]
    Signal { name: String, signal: String, reason: String },
}

/// What to do about a failed pull, by what the registry (or the lack of one) said.
fn pull_hint(reference: &str, reason: &str) -> String {
    let reason = reason.to_ascii_lowercase();
    let said = |words: &[&str]| words.iter().any(|w| reason.contains(w));
    if said(&["unauthorized", "authentication required", "denied: requested access"]) {
        format!(
            "the registry wants credentials for {reference}: `docker login`, or build it or load it (`docker load`)"
        )
    } else if said(&["manifest unknown", "not found", "does not exist", "pull access denied"]) {
        format!("the registry has no {reference}: fix the image name or tag, or build it or load it (`docker load`)")
    } else {
        format!("no registry answered for {reference}: build it or load it (`docker load`), or fix the image name")
    }
}

impl EngineError {
    /// What the user should do about it, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            EngineError::Unreachable { .. } => {
                "start the engine (`sudo systemctl start docker` or `dockerd &`), or point DOCKER_HOST at a running one"
                    .into()
            }
            EngineError::PermissionDenied { .. } => {
                "add your user to the `docker` group (then log in again), or run with sudo".into()
            }
            EngineError::ApiTooOld { .. } => "upgrade the Docker engine".into(),
            EngineError::Pull { reference, reason } => pull_hint(reference, reason),
            EngineError::NameTaken { name } => {
                format!(
                    "remove or rename the other container (`docker rm -f {name}`) if it is not needed; scale never touches containers it does not own"
                )
            }
            EngineError::PortInUse { port, .. } => {
                format!(
                    "free host port {port}, or publish another one in the blueprint (\"{port}\" → another number, or the container port alone for a random one)"
                )
            }
            EngineError::Build { reason, .. } if reason.contains("no space left") => {
                "the disk is full: free space (`docker system prune`) and apply again".into()
            }
            _ => return None,
        })
    }

    /// Whether retrying the same call may succeed (a pure function of the error, as in
    /// kube-rs's retry policies).
    pub fn is_transient(&self) -> bool {
        matches!(self, EngineError::Unreachable { .. } | EngineError::Observe(_) | EngineError::Inspect { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::EngineError;

    fn pull_hint(reason: &str) -> String {
        EngineError::Pull { reference: "shop/web:1".into(), reason: reason.into() }.hint().unwrap_or_default()
    }

    #[test]
    fn a_failed_pull_says_what_to_do_by_what_went_wrong() {
        let offline =
            pull_hint("Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: no such host");
        assert!(offline.starts_with("no registry answered for shop/web:1"), "{offline}");
        let missing = pull_hint("manifest for shop/web:1 not found: manifest unknown");
        assert!(missing.starts_with("the registry has no shop/web:1"), "{missing}");
        let private = pull_hint("Head \"https://ghcr.io/v2/x/manifests/1\": unauthorized");
        assert!(private.contains("docker login"), "{private}");
        for hint in [offline, missing, private] {
            assert!(hint.contains("build it or load it"), "{hint}");
        }
    }
}
