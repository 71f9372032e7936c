//! The project lock: two applies (or an apply and a destroy) of one project never interleave,
//! whichever shell, CI job or user runs them, as long as they talk to the same engine.
//!
//! The lock lives **in the engine**, so every client of that engine sees it: it is a
//! container named `scale-lock_<project>` that is created and never started. Creating a
//! container under a name is atomic in the engine (its name registry reserves the name, so of
//! any number of concurrent creates exactly one succeeds and the others get 409 Conflict).
//! That is why it is a container and not a network or a volume:
//!
//! - a volume create with an existing name succeeds silently;
//! - a network create on API < 1.44 only checks for duplicates *before* creating, even with
//!   `CheckDuplicate: true`: 20 concurrent creates of one name on Docker 20.10 made between 3
//!   and 20 networks of that name in our trials, so a network is no mutex there.
//!
//! The container runs nothing and needs no registry: its image, `scale-lock:1`, is an empty
//! file system imported from an empty tar the first time it is missing (0 bytes, label
//! `io.scale.lock-image`). Its network mode is `none`.
//!
//! The lock carries `io.scale.lock=<project>` and its holder (`user@host`, pid, the process's
//! start time, pid namespace and boot id, command and command line, acquired-at time). It
//! deliberately does **not** carry `io.scale.project`: `observe` lists a project's resources
//! by that label, so the lock never appears in a plan or in `status`, and no plan ever
//! removes it.
//!
//! A holder that died without releasing (kill -9, a crash) leaves a stale lock. When the
//! holder ran on this host (same hostname, boot and pid namespace, where those are known) and
//! its process is gone, the lock is broken automatically. A lock left by another host can't
//! be judged from here: the timeout error says how to remove it by hand.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, InspectContainerOptions, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;

use super::Engine;
use super::classify::{Cause, status_code};
use super::docker::DockerEngine;

/// Label naming the project a lock is for. Never `io.scale.project` (see the module docs).
pub const LOCK: &str = "io.scale.lock";
/// `user@host` of the holder.
pub const HOLDER: &str = "io.scale.lock.holder";
/// Hostname of the holder's machine.
pub const HOST: &str = "io.scale.lock.host";
/// Process ID of the holder.
pub const PID: &str = "io.scale.lock.pid";
/// Start time of the holder's process (clock ticks since boot), so a reused pid is not
/// mistaken for the holder.
pub const PID_START: &str = "io.scale.lock.pid-start";
/// The holder's pid namespace: a pid only means something inside its namespace.
pub const PID_NAMESPACE: &str = "io.scale.lock.pid-namespace";
/// The holder machine's boot id.
pub const BOOT_ID: &str = "io.scale.lock.boot-id";
/// The subcommand holding the lock (`apply`, `destroy`, `failover`, `watch`).
pub const COMMAND: &str = "io.scale.lock.command";
/// The holder's full command line, for humans.
pub const COMMAND_LINE: &str = "io.scale.lock.command-line";
/// When the lock was taken, RFC 3339 in UTC.
pub const ACQUIRED_AT: &str = "io.scale.lock.acquired-at";
/// The image of lock containers: an empty file system, imported locally (no registry).
pub const LOCK_IMAGE: &str = "scale-lock:1";
/// Label on [`LOCK_IMAGE`], so it can be found and recognised.
pub const LOCK_IMAGE_LABEL: &str = "io.scale.lock-image";
/// How often a waiting process tries again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The name of the lock container of `project`.
pub fn lock_name(project: &str) -> String {
    format!("scale-lock_{project}")
}

/// Who holds (or wants) a lock, as stored in the lock's labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    pub user: String,
    pub host: String,
    pub pid: Option<u32>,
    pub pid_start: Option<String>,
    pub pid_namespace: Option<String>,
    pub boot_id: Option<String>,
    pub command: String,
    pub command_line: String,
    /// Seconds since the Unix epoch.
    pub acquired_at: Option<u64>,
}

impl Holder {
    /// This process, about to run `command`.
    pub fn me(command: &str) -> Holder {
        let pid = std::process::id();
        let mut command_line = std::env::args().collect::<Vec<_>>().join(" ");
        if command_line.chars().count() > 300 {
            command_line = format!("{}…", command_line.chars().take(300).collect::<String>());
        }
        Holder {
            user: current_user(),
            host: hostname(),
            pid: Some(pid),
            pid_start: process_start(pid),
            pid_namespace: std::fs::read_link("/proc/self/ns/pid").ok().map(|p| p.display().to_string()),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
            command: command.to_string(),
            command_line,
            acquired_at: SystemTime::now().duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs()),
        }
    }

    /// The lock's labels for `project`.
    pub fn labels(&self, project: &str) -> HashMap<String, String> {
        let mut labels = HashMap::from([
            (LOCK.to_string(), project.to_string()),
            (HOLDER.to_string(), format!("{}@{}", self.user, self.host)),
            (HOST.to_string(), self.host.clone()),
            (COMMAND.to_string(), self.command.clone()),
            (COMMAND_LINE.to_string(), self.command_line.clone()),
        ]);
        let optional = [
            (PID, self.pid.map(|p| p.to_string())),
            (PID_START, self.pid_start.clone()),
            (PID_NAMESPACE, self.pid_namespace.clone()),
            (BOOT_ID, self.boot_id.clone()),
            (ACQUIRED_AT, self.acquired_at.map(format_rfc3339)),
        ];
        labels.extend(optional.into_iter().filter_map(|(k, v)| Some((k.to_string(), v?))));
        labels
    }

    /// Reads a holder back from a lock's labels; missing labels stay empty.
    pub fn from_labels(labels: &HashMap<String, String>) -> Holder {
        let get = |k: &str| labels.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let holder = get(HOLDER).unwrap_or_default();
        let (user, host_from_holder) = match holder.split_once('@') {
            Some((u, h)) => (u.to_string(), h.to_string()),
            None => (holder.clone(), String::new()),
        };
        Holder {
            user,
            host: get(HOST).unwrap_or(host_from_holder),
            pid: get(PID).and_then(|p| p.parse().ok()),
            pid_start: get(PID_START),
            pid_namespace: get(PID_NAMESPACE),
            boot_id: get(BOOT_ID),
            command: get(COMMAND).unwrap_or_default(),
            command_line: get(COMMAND_LINE).unwrap_or_default(),
            acquired_at: get(ACQUIRED_AT).and_then(|t| parse_rfc3339(&t)),
        }
    }

    /// `alice@box pid 123 (apply, since 12s ago)`, for messages.
    pub fn describe(&self) -> String {
        let who = match (self.user.is_empty(), self.host.is_empty()) {
            (true, true) => "an unknown holder".to_string(),
            _ => format!("{}@{}", self.user, self.host),
        };
        let pid = self.pid.map(|p| format!(" pid {p}")).unwrap_or_default();
        let mut details = Vec::new();
        if !self.command.is_empty() {
            details.push(self.command.clone());
        }
        if let Some(age) = self.age() {
            details.push(format!("since {} ago", crate::model::duration::format(Duration::from_secs(age.as_secs()))));
        }
        if details.is_empty() { format!("{who}{pid}") } else { format!("{who}{pid} ({})", details.join(", ")) }
    }

    /// How long ago the lock was taken, when that is known.
    pub fn age(&self) -> Option<Duration> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
        self.acquired_at.map(|t| Duration::from_secs(now.saturating_sub(t)))
    }

    /// Whether this holder provably ran here, as seen by `me`, and its process is gone: same
    /// host, and the same boot and pid namespace where both sides recorded them.
    pub fn is_dead_local(&self, me: &Holder) -> bool {
        let Some(pid) = self.pid else { return false };
        let same = |a: &Option<String>, b: &Option<String>| match (a, b) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        if self.host.is_empty()
            || self.host != me.host
            || !same(&self.boot_id, &me.boot_id)
            || !same(&self.pid_namespace, &me.pid_namespace)
        {
            return false;
        }
        if me.pid == Some(pid) && same(&self.pid_start, &me.pid_start) {
            return false; // that is us
        }
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return true;
        }
        // The pid is alive, but maybe reused by another process since.
        match (&self.pid_start, process_start(pid)) {
            (Some(recorded), Some(now)) => *recorded != now,
            _ => false,
        }
    }
}

/// What happened while taking a lock, for the user interface.
#[derive(Debug, Clone, Copy)]
pub enum LockEvent<'a> {
    /// Someone else holds it; we wait (reported once per acquire).
    Waiting { project: &'a str, holder: &'a Holder },
    /// Its holder ran on this host and is gone; the lock was removed.
    BrokeStale { project: &'a str, holder: &'a Holder },
}

/// Why a lock could not be taken or given back.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("project {project} is locked by {holder}; gave up after waiting {waited}")]
    Held { project: String, name: String, holder: String, waited: String, timeout_zero: bool },
    #[error("cannot take the lock on project {project} (container {name}): {cause}")]
    Acquire { project: String, name: String, cause: Cause },
    #[error("cannot take the lock on project {project}: cannot import its image {LOCK_IMAGE}: {cause}")]
    ImportImage { project: String, name: String, cause: Cause },
    #[error("cannot release the lock on project {project} (container {name}): {cause}")]
    Release { project: String, name: String, cause: Cause },
}

impl LockError {
    /// What the user should do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            LockError::Held { name, timeout_zero, .. } => {
                let wait = if *timeout_zero {
                    "retry once it is done, or wait for it with `--lock-timeout 5m`"
                } else {
                    "retry once it is done, or wait longer with `--lock-timeout 30m`"
                };
                Some(format!(
                    "another scale command is changing this project (apply, destroy, failover or a watch pass); {wait}. If that process is gone \
                     (another host, a killed CI job), remove the lock by hand: `docker rm {name}`"
                ))
            }
            LockError::Acquire { .. } | LockError::ImportImage { .. } => Some(
                "scale takes its lock by creating a container that never runs (image scale-lock:1, imported \
                 locally); check that the engine lets you create containers and import images"
                    .into(),
            ),
            LockError::Release { name, .. } => Some(format!(
                "the next run on this host breaks it automatically; elsewhere remove it by hand: `docker rm {name}`"
            )),
        }
    }
}

/// How a held lock is given back, whichever engine holds it: removes the lock, or says why not.
pub type Release = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), Cause>> + Send>> + Send + Sync>;

/// A held lock. Release it explicitly with [`ProjectLock::release`] on every path (there is
/// no async drop); releasing twice is fine. It carries its own way back to the engine that
/// holds it, so the code that gives it back needs no engine at hand.
pub struct ProjectLock {
    project: String,
    name: String,
    release: Release,
    released: bool,
}

impl std::fmt::Debug for ProjectLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectLock")
            .field("project", &self.project)
            .field("name", &self.name)
            .field("released", &self.released)
            .finish()
    }
}

impl ProjectLock {
    /// A lock just taken on `project` under `name`, given back by `release` (for engines
    /// implementing [`Engine::lock`]).
    pub fn new(project: &str, name: &str, release: Release) -> ProjectLock {
        ProjectLock { project: project.to_string(), name: name.to_string(), release, released: false }
    }

    /// The lock container's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Gives the lock back. Idempotent; a lock already removed (by hand) counts as released.
    pub async fn release(&mut self) -> Result<(), LockError> {
        if self.released {
            return Ok(());
        }
        (self.release)().await.map_err(|cause| LockError::Release {
            project: self.project.clone(),
            name: self.name.clone(),
            cause,
        })?;
        self.released = true;
        Ok(())
    }
}

/// Takes the lock of `project` for `command` (`apply`, `destroy`), waiting up to `timeout`
/// for its holder (zero: fail at once): [`Engine::lock`], for callers that name the module.
pub async fn acquire<E: Engine>(
    engine: &E,
    project: &str,
    command: &str,
    timeout: Duration,
    on_event: &(dyn Fn(LockEvent<'_>) + Sync),
) -> Result<ProjectLock, LockError> {
    engine.lock(project, command, timeout, on_event).await
}

/// Removes the lock of `project` if this very process holds it: [`Engine::unlock_if_mine`].
pub async fn release_if_mine<E: Engine>(engine: &E, project: &str) {
    engine.unlock_if_mine(project).await;
}

/// The Docker engine's [`Engine::lock`]: a lock container (see the module docs). Locks left
/// by dead processes of this host are broken.
pub(super) async fn acquire_in_docker(
    engine: &DockerEngine,
    project: &str,
    command: &str,
    timeout: Duration,
    on_event: &(dyn Fn(LockEvent<'_>) + Sync),
) -> Result<ProjectLock, LockError> {
    let docker = engine.client().clone();
    let name = lock_name(project);
    let me = Holder::me(command);
    let failed = |cause: Cause| LockError::Acquire { project: project.into(), name: name.clone(), cause };
    let start = Instant::now();
    let mut announced = false;
    let mut imported = false;
    loop {
        match create_lock(&docker, &name, &me.labels(project)).await {
            Ok(id) => return Ok(ProjectLock::new(project, &name, docker_release(docker, id))),
            Err(e) if status_code(&e) == Some(404) && !imported => {
                import_lock_image(&docker).await.map_err(|e| LockError::ImportImage {
                    project: project.into(),
                    name: name.clone(),
                    cause: e.into(),
                })?;
                imported = true;
                continue;
            }
            Err(e) if status_code(&e) == Some(409) => {}
            Err(e) => return Err(failed(e.into())),
        }
        // Held: by whom?
        let current = match docker.inspect_container(&name, None::<InspectContainerOptions>).await {
            Ok(c) => c,
            Err(e) if status_code(&e) == Some(404) => continue, // released in between
            Err(e) => return Err(failed(e.into())),
        };
        let labels = current.config.and_then(|c| c.labels).unwrap_or_default();
        let holder = Holder::from_labels(&labels);
        if labels.contains_key(LOCK) && holder.is_dead_local(&me) {
            on_event(LockEvent::BrokeStale { project, holder: &holder });
            if let Some(id) = current.id {
                // By ID: if another waiter broke it and took a new one, that one stays.
                remove_lock(&docker, &id).await.map_err(|e| failed(e.into()))?;
            }
            continue;
        }
        let waited = start.elapsed();
        if timeout.is_zero() || waited >= timeout {
            return Err(LockError::Held {
                project: project.into(),
                name: name.clone(),
                holder: holder.describe(),
                waited: crate::model::duration::format(Duration::from_secs(waited.as_secs())),
                timeout_zero: timeout.is_zero(),
            });
        }
        if !announced {
            on_event(LockEvent::Waiting { project, holder: &holder });
            announced = true;
        }
        tokio::time::sleep(POLL_INTERVAL.min(timeout.saturating_sub(waited))).await;
    }
}

/// Whether some scale command holds the lock of `project` right now (one inspect by name).
pub async fn held_in_docker(engine: &DockerEngine, project: &str) -> Result<bool, LockError> {
    let name = lock_name(project);
    match engine.client().inspect_container(&name, None::<InspectContainerOptions>).await {
        Ok(_) => Ok(true),
        Err(e) if status_code(&e) == Some(404) => Ok(false),
        Err(e) => Err(LockError::Acquire { project: project.into(), name, cause: e.into() }),
    }
}

/// Gives back a lock container by ID (a lock another waiter took since stays).
fn docker_release(docker: Docker, id: String) -> Release {
    Arc::new(move || {
        let (docker, id) = (docker.clone(), id.clone());
        Box::pin(async move { remove_lock(&docker, &id).await.map_err(Cause::from) })
    })
}

/// The Docker engine's [`Engine::unlock_if_mine`]: removes the lock of `project` if this
/// very process holds it, for an acquire that was interrupted after the engine created the
/// lock but before we learnt its ID.
pub(super) async fn release_if_mine_in_docker(engine: &DockerEngine, project: &str) {
    let docker = engine.client();
    let name = lock_name(project);
    let Ok(current) = docker.inspect_container(&name, None::<InspectContainerOptions>).await else { return };
    let holder = Holder::from_labels(&current.config.and_then(|c| c.labels).unwrap_or_default());
    let me = Holder::me("");
    let mine =
        holder.pid.is_some() && holder.pid == me.pid && holder.host == me.host && holder.pid_start == me.pid_start;
    if mine && let Some(id) = current.id {
        let _ = remove_lock(docker, &id).await;
    }
}

async fn create_lock(docker: &Docker, name: &str, labels: &HashMap<String, String>) -> Result<String, BollardError> {
    let body = ContainerCreateBody {
        image: Some(LOCK_IMAGE.to_string()),
        cmd: Some(vec!["scale-lock".to_string()]),
        labels: Some(labels.clone()),
        network_disabled: Some(true),
        host_config: Some(HostConfig { network_mode: Some("none".into()), ..Default::default() }),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::new().name(name).build();
    docker.create_container(Some(options), body).await.map(|c| c.id)
}

async fn remove_lock(docker: &Docker, id: &str) -> Result<(), BollardError> {
    match docker.remove_container(id, Some(RemoveContainerOptionsBuilder::new().force(true).v(true).build())).await {
        Err(e) if status_code(&e) != Some(404) => Err(e),
        _ => Ok(()),
    }
}

/// Imports [`LOCK_IMAGE`] from an empty tar archive (two zero blocks): no registry needed.
async fn import_lock_image(docker: &Docker) -> Result<(), BollardError> {
    let (repo, tag) = LOCK_IMAGE.split_once(':').unwrap_or((LOCK_IMAGE, "latest"));
    let options = CreateImageOptionsBuilder::new()
        .from_src("-")
        .repo(repo)
        .tag(tag)
        .changes(vec![format!("LABEL {LOCK_IMAGE_LABEL}=1")])
        .build();
    let empty_tar = vec![0u8; 1024];
    let mut stream = docker.create_image(Some(options), Some(bollard::body_full(empty_tar.into())), None);
    while let Some(item) = stream.next().await {
        item?;
    }
    Ok(())
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// This machine's hostname (the kernel's, else `$HOSTNAME`).
pub fn hostname() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "unknown-host".into())
}

/// The user running us: `$USER`, `$LOGNAME`, else `uid N`.
fn current_user() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(user) = std::env::var(var)
            && !user.trim().is_empty()
        {
            return user.trim().to_string();
        }
    }
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Uid:").map(|u| u.split_whitespace().next().map(str::to_string)))
        })
        .flatten()
        .map_or_else(|| "unknown".into(), |uid| format!("uid {uid}"))
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks since boot.
pub fn process_start(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19).map(str::to_string)
}

/// `2024-05-06T07:08:09Z` for seconds since the Unix epoch.
pub fn format_rfc3339(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// The inverse of [`format_rfc3339`] (UTC, `Z`, fractions of a second ignored).
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let text = text.trim().strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (date.next()??, date.next()??, date.next()??);
    let time = time.split('.').next()?;
    let mut time = time.splitn(3, ':').map(|p| p.parse::<u64>().ok());
    let (hh, mm, ss) = (time.next()??, time.next()??, time.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = u64::try_from(days_from_civil(y, m, d)).ok()?;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Howard Hinnant's `days_from_civil`: days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        for secs in [0, 951_782_400, 1_700_000_000, 4_102_444_799] {
            assert_eq!(parse_rfc3339(&format_rfc3339(secs)), Some(secs), "{}", format_rfc3339(secs));
        }
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(parse_rfc3339("2024-05-06T07:08:09.123Z"), parse_rfc3339("2024-05-06T07:08:09Z"));
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2024-13-01T00:00:00Z"), None);
    }

    #[test]
    fn labels_round_trip_and_never_carry_the_project_label() {
        let me = Holder::me("apply");
        let labels = me.labels("shop");
        assert!(!labels.contains_key(crate::labels::PROJECT), "observe would see the lock: {labels:?}");
        assert_eq!(labels.get(LOCK).map(String::as_str), Some("shop"));
        assert_eq!(Holder::from_labels(&labels), me);
    }

    #[test]
    fn describe_names_user_host_pid_command_and_age() {
        let holder = Holder {
            user: "alice".into(),
            host: "box".into(),
            pid: Some(42),
            command: "apply".into(),
            acquired_at: SystemTime::now().duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs() - 12),
            ..Default::default()
        };
        let text = holder.describe();
        assert!(text.starts_with("alice@box pid 42 (apply, since 1"), "{text}");
        assert!(text.ends_with("s ago)"), "{text}");
        assert_eq!(Holder::default().describe(), "an unknown holder");
    }

    #[test]
    fn only_dead_local_holders_are_stale() {
        let me = Holder::me("apply");
        // Ourselves: alive.
        assert!(!me.is_dead_local(&me));
        // A pid that cannot exist (above the kernel's pid_max limit of 2^22) on this host.
        let dead = Holder { pid: Some(4_194_304 + 7), pid_start: None, ..me.clone() };
        assert!(dead.is_dead_local(&me));
        // The same dead pid on another host, another boot or another pid namespace: unknown.
        assert!(!Holder { host: "elsewhere".into(), ..dead.clone() }.is_dead_local(&me));
        assert!(!Holder { boot_id: Some("other-boot".into()), ..dead.clone() }.is_dead_local(&me));
        assert!(!Holder { pid_namespace: Some("pid:[1]".into()), ..dead.clone() }.is_dead_local(&me));
        // Our pid with another start time: the pid was reused, the holder is gone.
        let reused = Holder { pid_start: Some("1".into()), ..me.clone() };
        assert_eq!(reused.is_dead_local(&me), me.pid_start.is_some());
        // No pid recorded: never judged dead.
        assert!(!Holder { pid: None, ..dead }.is_dead_local(&me));
    }
}
