//! The one place that talks to a container engine: a narrow trait (containers, networks,
//! volumes, exec, the project lock, the event stream), its Docker implementation over
//! bollard, and an in-memory fake for planner and executor tests. Engine errors are our own,
//! one variant per operation, each keeping the engine's answer ([`Cause`]); what an answer
//! means is decided in [`classify`] alone.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::desired::{ContainerSpec, ImageSpec, NetworkSpec, VolumeSpec};
use crate::observed::{Health, ObservedState, RunState};

pub use classify::{Cause, PullFailure};
use lock::{LockError, LockEvent, ProjectLock};

pub mod classify;
pub mod docker;
pub mod docker_io;
pub mod docker_options;
pub mod fake;
pub mod key_numbers;
pub mod live;
pub mod lock;
pub mod orchestrator;
pub mod swarm;
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
    /// The volumes mounted in a container, by target (engines that cannot say: none, and a
    /// replacement then gets fresh anonymous volumes).
    async fn volume_mounts(&self, _id: &str, _name: &str) -> Result<BTreeMap<String, String>, EngineError> {
        Ok(BTreeMap::new())
    }
    /// A running container's IPv4 address on each network it is attached to, by network
    /// name: one inspect, where asking a peer's DNS would take an `exec`. Engines that cannot
    /// say: none, and callers ask DNS instead.
    async fn addresses(&self, _id: &str, _name: &str) -> Result<BTreeMap<String, String>, EngineError> {
        Ok(BTreeMap::new())
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
    /// Takes the project lock for `command` (`apply`, `destroy` …), waiting up to `timeout`
    /// for its holder (zero: fail at once), so two commands never change one project at
    /// once. The lock lives in the engine, where every client sees it (see [`lock`]).
    async fn lock(
        &self,
        project: &str,
        command: &str,
        timeout: Duration,
        on_event: &(dyn Fn(LockEvent<'_>) + Sync),
    ) -> Result<ProjectLock, LockError>;
    /// Gives back the lock of `project` if this very process holds it: for an acquire that
    /// was interrupted after the engine took the lock but before its answer arrived.
    async fn unlock_if_mine(&self, project: &str);
    /// Follows the engine's events and sends a short description of each one that may mean
    /// drift in `project` (a container died, stopped, was removed or paused, a network lost a
    /// container). Level-triggered use only: an event wakes a controller, which then observes
    /// afresh, so a lost or repeated event does no harm.
    fn subscribe(&self, project: &str) -> EventStream;

    /// How the container's healthcheck is doing, for "waiting for … (2/5 checks failed)";
    /// `None` when the engine cannot tell or the container has no healthcheck (the default,
    /// so an engine that cannot say needs nothing).
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

/// What [`Engine::subscribe`] delivers: one line per event; it ends when the engine's stream
/// does (a restarted engine), and the caller subscribes again.
pub type EventStream = tokio::sync::mpsc::UnboundedReceiver<String>;

/// The full snapshot a plan needs: the labelled resources, plus the pool each running load
/// balancer holds: from its record volume, which comes with the project's volume list, or
/// (a load balancer that has none, made by an earlier scale) one small file read from it.
pub async fn observe_project<E: Engine>(engine: &E, project: &str) -> Result<ObservedState, EngineError> {
    use crate::kinds::load_balancer::{POOL_PATH, Pool};
    let mut observed = engine.observe(project).await?;
    let running: Vec<(String, String)> = observed
        .containers
        .values()
        .filter(|c| c.kind() == Some(crate::model::Kind::LoadBalancer))
        .filter(|c| c.state == RunState::Running)
        .map(|c| (c.id.clone(), c.name.clone()))
        .collect();
    for (id, name) in running {
        if let Some(pool) = observed.pool_record_of(&id) {
            observed.load_balancers.insert(name, pool.clone());
            continue;
        }
        if let Some(bytes) = engine.read_file(&id, &name, POOL_PATH).await?
            && let Ok(pool) = serde_json::from_slice::<Pool>(&bytes)
        {
            observed.load_balancers.insert(name, pool);
        }
    }
    observed.stale_replicas = live::stale_replicas(engine, &observed).await;
    observed.shards = live::shards(engine, &observed).await;
    Ok(observed)
}

/// What a command run with [`Engine::exec`] printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOutput {
    pub exit_code: i64,
    /// stdout and stderr, interleaved as the engine delivered them.
    pub output: String,
}

/// The ladder's base image, which every image of `blueprints/images/` starts `FROM`.
pub const LADDER_BASE_IMAGE: &str = "debian:bookworm-slim";
/// The command that makes [`LADDER_BASE_IMAGE`] on a machine that reaches no registry (it
/// pulls when it can and bootstraps the image with debootstrap when it cannot).
pub const BASE_IMAGE_OFFLINE_COMMAND: &str = "bash scripts/ensure-base-image.sh";

/// A failed engine operation, in words a user can act on. Each variant names the operation
/// and what it was about, and keeps the engine's answer as a [`Cause`] (status and message,
/// or the client's error) so that callers ask [`classify`] instead of reading text.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach the Docker engine at {address}: {cause}")]
    Unreachable { address: String, cause: Cause },
    #[error("permission denied talking to the Docker engine at {address}")]
    PermissionDenied { address: String },
    #[error("the Docker engine at {address} speaks API {version}, older than the {minimum} scale needs")]
    ApiTooOld { address: String, version: String, minimum: String },
    #[error("cannot list the project's resources: {0}")]
    Observe(Cause),
    #[error("cannot create network {name}: {cause}")]
    CreateNetwork { name: String, cause: Cause },
    #[error("cannot remove network {name}: {cause}")]
    RemoveNetwork { name: String, cause: Cause },
    #[error("cannot create volume {name}: {cause}")]
    CreateVolume { name: String, cause: Cause },
    #[error("cannot remove volume {name}: {cause}")]
    RemoveVolume { name: String, cause: Cause },
    #[error("cannot read build context {context}: {cause}")]
    BuildContext { context: String, cause: Cause },
    #[error("build of {image} failed: {cause}")]
    Build { image: String, cause: Cause, output: Vec<String> },
    #[error("build of {image} failed: its base image {base} is not here and cannot be pulled ({}): {cause}", failure.describe())]
    BaseImageMissing { image: String, base: String, failure: PullFailure, cause: Cause },
    #[error("cannot pull {reference}: {cause}")]
    Pull { reference: String, failure: PullFailure, cause: Cause },
    #[error("cannot create container {name}: the name is taken by a container scale does not manage")]
    NameTaken { name: String },
    #[error("cannot create container {name}: {cause}")]
    CreateContainer { name: String, cause: Cause },
    #[error("cannot start container {name}: host port {port} is already in use")]
    PortInUse { name: String, port: String },
    #[error("cannot start container {name}: {cause}")]
    Start { name: String, cause: Cause },
    #[error("cannot stop container {name}: {cause}")]
    Stop { name: String, cause: Cause },
    #[error("cannot remove container {name}: {cause}")]
    Remove { name: String, cause: Cause },
    #[error("cannot rename container {name}: {cause}")]
    Rename { name: String, cause: Cause },
    #[error("cannot unpause container {name}: {cause}")]
    Unpause { name: String, cause: Cause },
    #[error("cannot inspect container {name}: {cause}")]
    Inspect { name: String, cause: Cause },
    #[error("cannot read logs of {id}: {cause}")]
    Logs { id: String, cause: Cause },
    #[error("cannot run `{command}` in {name}: {cause}")]
    Exec { name: String, command: String, cause: Cause },
    #[error("cannot read {path} in {name}: {cause}")]
    ReadFile { name: String, path: String, cause: Cause },
    #[error("cannot write {path} in {name}: {cause}")]
    WriteFile { name: String, path: String, cause: Cause },
    #[error("cannot pause container {name}: {cause}")]
    Pause { name: String, cause: Cause },
    #[error("cannot connect {name} to network {network}: {cause}")]
    Connect { name: String, network: String, cause: Cause },
    #[error("cannot disconnect {name} from network {network}: {cause}")]
    Disconnect { name: String, network: String, cause: Cause },
    #[error("cannot send {signal} to {name}: {cause}")]
    Signal { name: String, signal: String, cause: Cause },
}

impl PullFailure {
    /// A few words for messages.
    pub fn describe(self) -> &'static str {
        match self {
            PullFailure::NoRegistry => "no registry answered",
            PullFailure::NoSuchImage => "the registry has no such image",
            PullFailure::Credentials => "the registry wants credentials",
        }
    }
}

/// What to do about an image that could not be pulled, by why it could not.
fn pull_hint(reference: &str, failure: PullFailure) -> String {
    match failure {
        PullFailure::Credentials => format!(
            "the registry wants credentials for {reference}: `docker login`, or build it or load it (`docker load`)"
        ),
        PullFailure::NoSuchImage => {
            format!(
                "the registry has no {reference}: fix the image name or tag, or build it or load it (`docker load`)"
            )
        }
        PullFailure::NoRegistry => {
            format!("no registry answered for {reference}: build it or load it (`docker load`), or fix the image name")
        }
    }
}

/// What to do about a build whose `FROM` image is missing: for the ladder's base, the exact
/// command that makes it offline.
fn base_image_hint(base: &str, failure: PullFailure) -> String {
    if base == LADDER_BASE_IMAGE {
        format!(
            "{} for {base}, the base of every image of the ladder: make it here without a registry \
             with `{BASE_IMAGE_OFFLINE_COMMAND}` (from the scale checkout), then run the command again",
            failure.describe()
        )
    } else {
        pull_hint(base, failure)
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
            EngineError::Pull { reference, failure, .. } => pull_hint(reference, *failure),
            EngineError::BaseImageMissing { base, failure, .. } => base_image_hint(base, *failure),
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
            EngineError::Build { cause, output, .. }
                if classify::disk_full(&cause.to_string()) || output.iter().any(|l| classify::disk_full(l)) =>
            {
                "the disk is full: free space (`docker system prune`) and apply again".into()
            }
            _ => return None,
        })
    }

    /// The engine's answer behind this error, for the operations that have one.
    pub fn cause(&self) -> Option<&Cause> {
        use EngineError as E;
        match self {
            E::PermissionDenied { .. } | E::ApiTooOld { .. } | E::NameTaken { .. } | E::PortInUse { .. } => None,
            E::Observe(cause)
            | E::Unreachable { cause, .. }
            | E::CreateNetwork { cause, .. }
            | E::RemoveNetwork { cause, .. }
            | E::CreateVolume { cause, .. }
            | E::RemoveVolume { cause, .. }
            | E::BuildContext { cause, .. }
            | E::Build { cause, .. }
            | E::BaseImageMissing { cause, .. }
            | E::Pull { cause, .. }
            | E::CreateContainer { cause, .. }
            | E::Start { cause, .. }
            | E::Stop { cause, .. }
            | E::Remove { cause, .. }
            | E::Rename { cause, .. }
            | E::Unpause { cause, .. }
            | E::Inspect { cause, .. }
            | E::Logs { cause, .. }
            | E::Exec { cause, .. }
            | E::ReadFile { cause, .. }
            | E::WriteFile { cause, .. }
            | E::Pause { cause, .. }
            | E::Connect { cause, .. }
            | E::Disconnect { cause, .. }
            | E::Signal { cause, .. } => Some(cause),
        }
    }

    /// The HTTP status the engine answered with, when it answered with one.
    pub fn status(&self) -> Option<u16> {
        self.cause().and_then(Cause::status)
    }
}

#[cfg(test)]
mod tests {
    use super::{Cause, EngineError, PullFailure};

    fn pull_hint(reason: &str) -> String {
        let cause = Cause::Status { code: 500, message: reason.into() };
        let failure = super::classify::pull_failure(&cause);
        EngineError::Pull { reference: "shop/web:1".into(), failure, cause }.hint().unwrap_or_default()
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

    fn missing_base(base: &str, failure: PullFailure) -> EngineError {
        EngineError::BaseImageMissing {
            image: "shop/web:1".into(),
            base: base.into(),
            failure,
            cause: Cause::Stream { message: "dial tcp: lookup registry-1.docker.io: no such host".into() },
        }
    }

    #[test]
    fn a_missing_ladder_base_gives_the_offline_command() {
        let err = missing_base(super::LADDER_BASE_IMAGE, PullFailure::NoRegistry);
        let text = err.to_string();
        assert!(text.contains("debian:bookworm-slim") && text.contains("no registry answered"), "{text}");
        let hint = err.hint().unwrap_or_default();
        assert!(hint.starts_with("no registry answered for debian:bookworm-slim"), "{hint}");
        assert!(hint.contains(&format!("`{}`", super::BASE_IMAGE_OFFLINE_COMMAND)), "{hint}");
        // Whatever the registry said, the ladder's base can be made offline.
        let refused = missing_base(super::LADDER_BASE_IMAGE, PullFailure::Credentials).hint().unwrap_or_default();
        assert!(refused.starts_with("the registry wants credentials for debian:bookworm-slim"), "{refused}");
        assert!(refused.contains(super::BASE_IMAGE_OFFLINE_COMMAND), "{refused}");

        let other = missing_base("acme/base:7", PullFailure::NoSuchImage);
        assert!(other.to_string().contains("acme/base:7"), "{other}");
        let hint = other.hint().unwrap_or_default();
        assert!(hint.starts_with("the registry has no acme/base:7"), "{hint}");
        assert!(!hint.contains(super::BASE_IMAGE_OFFLINE_COMMAND), "{hint}");
    }
}
