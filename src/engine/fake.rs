//! An in-memory engine for planner and executor tests. It keeps state the way Docker does
//! (labels, names, states) and counts write calls, so tests can assert "no engine writes".
//! It is for unit tests only: integration tests drive a real engine.
//!
//! What runs *inside* containers is not simulated: a test scripts the answers to `exec`
//! ([`FakeEngine::on_exec`]), as HAProxy or PostgreSQL would give them. A command nobody
//! scripted fails loudly (an [`EngineError::Exec`] saying so) rather than answering with an
//! empty success that a waiting step could mistake for "done". The project lock and the
//! event stream behave as Docker's do: one holder per project, and drift (a container
//! stopped, removed, paused or cut off a network) reported to every subscriber.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::classify::Cause;
use super::lock::{Holder, LockError, LockEvent, POLL_INTERVAL, ProjectLock, lock_name};
use super::{ContainerStatus, Engine, EngineError, ExecOutput, Progress};
use crate::desired::{ContainerSpec, ImageSpec, NetworkSpec, VolumeSpec};
use crate::labels;
use crate::observed::{
    Health, ObservedContainer, ObservedNetwork, ObservedState, ObservedVolume, PublishedPort, RunState,
};

/// A container as the fake engine holds it.
#[derive(Debug, Clone)]
pub struct FakeContainer {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub image: String,
    pub state: RunState,
    pub health: Option<Health>,
    pub exit_code: Option<i64>,
    pub ports: Vec<PublishedPort>,
    pub has_healthcheck: bool,
    pub networks: Vec<String>,
}

#[derive(Debug, Default)]
struct World {
    containers: BTreeMap<String, FakeContainer>,
    networks: BTreeMap<String, (String, BTreeMap<String, String>, bool)>,
    volumes: BTreeMap<String, BTreeMap<String, String>>,
    images: BTreeSet<String>,
    unhealthy_images: BTreeSet<String>,
    /// Images whose containers start healthy this many more times, then unhealthy.
    healthy_starts_left: BTreeMap<String, usize>,
    files: BTreeMap<(String, String), Vec<u8>>,
    commands: Vec<(String, String)>,
    next_id: u64,
    next_port: u16,
    /// Event subscribers, by project.
    subscribers: Vec<(String, UnboundedSender<String>)>,
}

/// A scripted answer to `exec`: asked with the container's name and the command (its words
/// joined by spaces); `None` leaves the command to older scripts.
pub type ExecScript = Box<dyn Fn(&str, &str) -> Option<ExecOutput> + Send + Sync>;

/// The project locks the fake holds: project → holder.
type Locks = Arc<Mutex<BTreeMap<String, Holder>>>;

/// See the module docs.
#[derive(Default)]
pub struct FakeEngine {
    world: Mutex<World>,
    writes: AtomicUsize,
    scripts: Mutex<Vec<ExecScript>>,
    locks: Locks,
}

impl std::fmt::Debug for FakeEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeEngine").field("world", &self.world).field("writes", &self.writes).finish()
    }
}

/// What the fake answers when an operation names a container it does not hold: Docker's 404.
fn no_such_container() -> Cause {
    Cause::Status { code: 404, message: "No such container".into() }
}

/// A successful exec that printed `output`.
pub fn reply(output: &str) -> ExecOutput {
    ExecOutput { exit_code: 0, output: output.to_string() }
}

impl FakeEngine {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many state-changing calls have been made so far.
    pub fn write_count(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    /// Makes an image present, as if pulled or loaded earlier.
    pub fn add_image(&self, reference: &str) {
        self.world().images.insert(reference.to_string());
    }

    /// Containers started from this image never become healthy.
    pub fn make_unhealthy(&self, image: &str) {
        self.world().unhealthy_images.insert(image.to_string());
    }

    /// Containers of `image` start healthy `starts` more times, unhealthy after that (a
    /// rollout that fails part-way: its first batches pass, a later one does not).
    pub fn make_unhealthy_after(&self, image: &str, starts: usize) {
        let mut w = self.world();
        w.unhealthy_images.insert(image.to_string());
        w.healthy_starts_left.insert(image.to_string(), starts);
    }

    /// A container someone else created (no project label).
    pub fn add_foreign_container(&self, name: &str) {
        let mut w = self.world();
        let id = w.new_id();
        w.containers.insert(
            id.clone(),
            FakeContainer {
                id,
                name: name.into(),
                labels: BTreeMap::new(),
                image: "foreign:latest".into(),
                state: RunState::Running,
                health: None,
                exit_code: None,
                ports: Vec::new(),
                has_healthcheck: false,
                networks: Vec::new(),
            },
        );
    }

    /// `docker rm -f NAME` done by hand.
    pub fn remove_by_hand(&self, name: &str) {
        let mut w = self.world();
        if let Some(id) = w.containers.values().find(|c| c.name == name).map(|c| c.id.clone()) {
            w.emit_container(&id, "destroy");
            w.containers.remove(&id);
        }
    }

    /// The engine's health verdict on a running container, as its checks would set it
    /// (`Starting` until the first check of an engine without `start_interval`).
    pub fn set_health(&self, name: &str, health: Option<Health>) {
        if let Some(c) = self.world().containers.values_mut().find(|c| c.name == name) {
            c.health = health;
        }
    }

    /// `docker stop NAME` done by hand.
    pub fn stop_by_hand(&self, name: &str) {
        let mut w = self.world();
        if let Some(c) = w.containers.values_mut().find(|c| c.name == name) {
            c.state = RunState::Exited;
            c.exit_code = Some(137);
            c.health = None;
            let id = c.id.clone();
            w.emit_container(&id, "die");
        }
    }

    /// Answers `exec` with `script` from now on, before any script added earlier (so a test
    /// can override an answer midway). See [`ExecScript`].
    pub fn on_exec(&self, script: impl Fn(&str, &str) -> Option<ExecOutput> + Send + Sync + 'static) {
        self.scripts.lock().unwrap_or_else(|e| e.into_inner()).insert(0, Box::new(script));
    }

    /// The command history of one container (execs and signals), in order.
    pub fn commands_in(&self, container: &str) -> Vec<String> {
        self.commands().into_iter().filter(|(c, _)| c == container).map(|(_, cmd)| cmd).collect()
    }

    /// Every exec and signal so far, as (container name, command or signal).
    pub fn commands(&self) -> Vec<(String, String)> {
        self.world().commands.clone()
    }

    /// The contents of a file written into a container, by container name.
    pub fn file(&self, container: &str, path: &str) -> Option<Vec<u8>> {
        let w = self.world();
        let id = w.containers.values().find(|c| c.name == container)?.id.clone();
        w.files.get(&(id, path.to_string())).cloned()
    }

    /// A copy of every container (foreign ones included).
    pub fn containers(&self) -> Vec<FakeContainer> {
        self.world().containers.values().cloned().collect()
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
    }
}

impl World {
    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("{:012x}", self.next_id)
    }

    fn by_id(&mut self, id: &str) -> Option<&mut FakeContainer> {
        self.containers.get_mut(id)
    }

    /// Tells every subscriber of the container's project what happened to it, in the words
    /// the Docker engine's stream gives (`NAME: ACTION`).
    fn emit_container(&mut self, id: &str, action: &str) {
        let Some(c) = self.containers.get(id) else { return };
        let Some(project) = c.labels.get(labels::PROJECT).cloned() else { return };
        let text = format!("{}: {action}", c.name);
        self.emit(&project, &text);
    }

    fn emit(&mut self, project: &str, text: &str) {
        self.subscribers.retain(|(p, tx)| p != project || tx.send(text.to_string()).is_ok());
    }
}

impl FakeEngine {
    /// The fake's [`Engine::lock`]: one holder per project; others wait (polling, as the
    /// Docker lock does) or fail with [`LockError::Held`].
    async fn take_lock(
        &self,
        project: &str,
        command: &str,
        timeout: Duration,
        on_event: &(dyn Fn(LockEvent<'_>) + Sync),
    ) -> Result<ProjectLock, LockError> {
        let me = Holder::me(command);
        let start = Instant::now();
        let mut announced = false;
        loop {
            let holder = {
                let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
                match locks.get(project) {
                    Some(holder) => holder.clone(),
                    None => {
                        locks.insert(project.to_string(), me);
                        let (locks, key) = (self.locks.clone(), project.to_string());
                        let release: super::lock::Release = Arc::new(move || {
                            locks.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
                            Box::pin(async { Ok(()) })
                        });
                        return Ok(ProjectLock::new(project, &lock_name(project), release));
                    }
                }
            };
            let waited = start.elapsed();
            if timeout.is_zero() || waited >= timeout {
                return Err(LockError::Held {
                    project: project.into(),
                    name: lock_name(project),
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

    /// Who holds the lock of `project` now.
    pub fn lock_holder(&self, project: &str) -> Option<Holder> {
        self.locks.lock().unwrap_or_else(|e| e.into_inner()).get(project).cloned()
    }

    /// The scripted answer to a command, or a loud failure when none was scripted.
    fn scripted(&self, name: &str, cmd: &[String]) -> Result<ExecOutput, EngineError> {
        let command = cmd.join(" ");
        let scripts = self.scripts.lock().unwrap_or_else(|e| e.into_inner());
        scripts.iter().find_map(|script| script(name, &command)).ok_or_else(|| EngineError::Exec {
            name: name.into(),
            command,
            cause: Cause::local("the fake engine has no answer scripted for this command (FakeEngine::on_exec)"),
        })
    }
}

impl Engine for FakeEngine {
    fn address(&self) -> String {
        "fake://".into()
    }

    async fn observe(&self, project: &str) -> Result<ObservedState, EngineError> {
        let w = self.world();
        let owned = |l: &BTreeMap<String, String>| l.get(labels::PROJECT).map(String::as_str) == Some(project);
        Ok(ObservedState {
            load_balancers: Default::default(),
            pool_records: Default::default(),
            stale_replicas: Default::default(),
            shards: None,
            published_host: None,
            project: project.into(),
            containers: w
                .containers
                .values()
                .filter(|c| owned(&c.labels))
                .map(|c| {
                    (
                        c.name.clone(),
                        ObservedContainer {
                            id: c.id.clone(),
                            name: c.name.clone(),
                            labels: c.labels.clone(),
                            image: c.image.clone(),
                            state: c.state,
                            health: c.health,
                            exit_code: c.exit_code,
                            ports: if c.state == RunState::Running { c.ports.clone() } else { Vec::new() },
                            networks: c.networks.clone(),
                        },
                    )
                })
                .collect(),
            networks: w
                .networks
                .iter()
                .filter(|(_, (_, l, _))| owned(l))
                .map(|(name, (id, _, internal))| {
                    (name.clone(), ObservedNetwork { id: id.clone(), name: name.clone(), internal: *internal })
                })
                .collect(),
            volumes: w
                .volumes
                .iter()
                .filter(|(_, l)| owned(l))
                .map(|(name, labels)| (name.clone(), ObservedVolume { name: name.clone(), labels: labels.clone() }))
                .collect(),
            images: w.images.clone(),
        }
        .take_pool_records())
    }

    async fn create_network(&self, spec: &NetworkSpec) -> Result<(), EngineError> {
        self.wrote();
        let mut w = self.world();
        if w.networks.contains_key(&spec.name) {
            return Err(EngineError::CreateNetwork {
                name: spec.name.clone(),
                cause: Cause::Status { code: 409, message: "already exists".into() },
            });
        }
        let id = w.new_id();
        w.networks.insert(spec.name.clone(), (id, spec.labels.clone(), spec.internal));
        Ok(())
    }

    async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        self.wrote();
        let mut w = self.world();
        if w.containers.values().any(|c| c.networks.iter().any(|n| n == name)) {
            return Err(EngineError::RemoveNetwork {
                name: name.into(),
                cause: Cause::Status { code: 403, message: "has active endpoints".into() },
            });
        }
        w.networks.remove(name);
        Ok(())
    }

    async fn create_volume(&self, spec: &VolumeSpec) -> Result<(), EngineError> {
        self.wrote();
        self.world().volumes.insert(spec.name.clone(), spec.labels.clone());
        Ok(())
    }

    async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        self.wrote();
        self.world().volumes.remove(name);
        Ok(())
    }

    async fn build_image(&self, image: &ImageSpec, _project: &str, progress: Progress<'_>) -> Result<(), EngineError> {
        self.wrote();
        progress("Step 1/1 : fake build");
        self.world().images.insert(image.reference.clone());
        Ok(())
    }

    async fn pull_image(&self, reference: &str, _progress: Progress<'_>) -> Result<(), EngineError> {
        self.wrote();
        self.world().images.insert(reference.to_string());
        Ok(())
    }

    async fn create_named(&self, name: &str, spec: &ContainerSpec, project: &str) -> Result<String, EngineError> {
        self.wrote();
        let mut w = self.world();
        if w.containers.values().any(|c| c.name == name) {
            let ours = w.containers.values().any(|c| c.name == name && c.labels.contains_key(labels::PROJECT));
            return Err(if ours {
                EngineError::CreateContainer {
                    name: name.to_string(),
                    cause: Cause::Status { code: 409, message: "name already in use".into() },
                }
            } else {
                EngineError::NameTaken { name: name.to_string() }
            });
        }
        if !w.images.contains(&spec.image) {
            return Err(EngineError::CreateContainer {
                name: name.to_string(),
                cause: Cause::Status { code: 404, message: format!("No such image: {}", spec.image) },
            });
        }
        for net in &spec.networks {
            if !w.networks.contains_key(&net.network) {
                return Err(EngineError::CreateContainer {
                    name: name.to_string(),
                    cause: Cause::Status { code: 404, message: format!("network {} not found", net.network) },
                });
            }
        }
        let id = w.new_id();
        let mut ports = Vec::new();
        for p in &spec.ports {
            let host_port = match p.host_port {
                Some(port) => port,
                None => {
                    w.next_port += 1;
                    40000 + w.next_port
                }
            };
            ports.push(PublishedPort {
                container_port: p.container_port,
                protocol: p.protocol,
                host_ip: p.host_ip.clone().unwrap_or_else(|| "0.0.0.0".into()),
                host_port,
            });
        }
        w.containers.insert(
            id.clone(),
            FakeContainer {
                id: id.clone(),
                name: name.to_string(),
                labels: labels::container_labels(spec, project),
                image: spec.image.clone(),
                state: RunState::Created,
                health: None,
                exit_code: None,
                ports,
                has_healthcheck: spec.healthcheck.is_some(),
                networks: spec.networks.iter().map(|n| n.network.clone()).collect(),
            },
        );
        Ok(id)
    }

    async fn rename_container(&self, id: &str, name: &str, new_name: &str) -> Result<(), EngineError> {
        self.wrote();
        let mut w = self.world();
        if w.containers.values().any(|c| c.name == new_name) {
            return Err(EngineError::Rename {
                name: name.into(),
                cause: Cause::Status { code: 409, message: format!("{new_name} is taken") },
            });
        }
        let c = w.by_id(id).ok_or_else(|| EngineError::Rename { name: name.into(), cause: no_such_container() })?;
        c.name = new_name.to_string();
        Ok(())
    }

    async fn start_container(&self, id: &str, name: &str) -> Result<(), EngineError> {
        self.wrote();
        let mut w = self.world();
        let image = w.by_id(id).map(|c| c.image.clone()).unwrap_or_default();
        let mut unhealthy = w.unhealthy_images.contains(&image);
        if let Some(left) = w.healthy_starts_left.get_mut(&image).filter(|n| **n > 0) {
            *left -= 1;
            unhealthy = false;
        }
        let c = w.by_id(id).ok_or_else(|| EngineError::Start { name: name.into(), cause: no_such_container() })?;
        c.state = RunState::Running;
        c.exit_code = None;
        c.health = c.has_healthcheck.then_some(if unhealthy { Health::Unhealthy } else { Health::Healthy });
        Ok(())
    }

    async fn stop_container(&self, id: &str, name: &str, _grace: Duration) -> Result<(), EngineError> {
        self.wrote();
        let mut w = self.world();
        let c = w.by_id(id).ok_or_else(|| EngineError::Stop { name: name.into(), cause: no_such_container() })?;
        c.state = RunState::Exited;
        c.exit_code = Some(0);
        c.health = None;
        w.emit_container(id, "stop");
        Ok(())
    }

    async fn remove_container(&self, id: &str, name: &str) -> Result<(), EngineError> {
        self.wrote();
        let mut w = self.world();
        w.emit_container(id, "destroy");
        match w.containers.remove(id) {
            Some(_) => Ok(()),
            None => Err(EngineError::Remove { name: name.into(), cause: no_such_container() }),
        }
    }

    async fn unpause_container(&self, id: &str, name: &str) -> Result<(), EngineError> {
        self.wrote();
        let mut w = self.world();
        let c = w.by_id(id).ok_or_else(|| EngineError::Unpause { name: name.into(), cause: no_such_container() })?;
        c.state = RunState::Running;
        Ok(())
    }

    async fn container_status(&self, id: &str, name: &str) -> Result<ContainerStatus, EngineError> {
        let mut w = self.world();
        let c = w.by_id(id).ok_or_else(|| EngineError::Inspect { name: name.into(), cause: no_such_container() })?;
        Ok(ContainerStatus { state: c.state, health: c.health, exit_code: c.exit_code, error: None })
    }

    async fn logs_tail(&self, _id: &str, _lines: usize) -> Result<Vec<String>, EngineError> {
        Ok(vec!["fake log line".into()])
    }

    async fn exec(&self, id: &str, name: &str, cmd: &[String]) -> Result<ExecOutput, EngineError> {
        let mut w = self.world();
        let running = w.by_id(id).is_some_and(|c| c.state == RunState::Running);
        if !running {
            return Err(EngineError::Exec {
                name: name.into(),
                command: cmd.join(" "),
                cause: Cause::local("not running"),
            });
        }
        w.commands.push((name.to_string(), cmd.join(" ")));
        drop(w);
        self.scripted(name, cmd)
    }

    async fn read_file(&self, id: &str, _name: &str, path: &str) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.world().files.get(&(id.to_string(), path.to_string())).cloned())
    }

    async fn write_file(&self, id: &str, name: &str, path: &str, contents: &[u8]) -> Result<(), EngineError> {
        self.wrote();
        let mut w = self.world();
        if w.by_id(id).is_none() {
            return Err(EngineError::WriteFile { name: name.into(), path: path.into(), cause: no_such_container() });
        }
        w.files.insert((id.to_string(), path.to_string()), contents.to_vec());
        Ok(())
    }

    async fn signal(&self, id: &str, name: &str, signal: &str) -> Result<(), EngineError> {
        self.wrote();
        let mut w = self.world();
        if w.by_id(id).is_none() {
            return Err(EngineError::Signal { name: name.into(), signal: signal.into(), cause: no_such_container() });
        }
        w.commands.push((name.to_string(), signal.to_string()));
        Ok(())
    }

    async fn pause_container(&self, id: &str, name: &str) -> Result<(), EngineError> {
        self.wrote();
        let mut w = self.world();
        let c = w.by_id(id).ok_or_else(|| EngineError::Pause { name: name.into(), cause: no_such_container() })?;
        c.state = RunState::Paused;
        w.emit_container(id, "pause");
        Ok(())
    }

    async fn disconnect(&self, id: &str, name: &str, network: &str) -> Result<(), EngineError> {
        self.wrote();
        let mut w = self.world();
        let c = w.by_id(id).ok_or_else(|| EngineError::Disconnect {
            name: name.into(),
            network: network.into(),
            cause: no_such_container(),
        })?;
        c.networks.retain(|n| n != network);
        let project = c.labels.get(labels::PROJECT).cloned().unwrap_or_default();
        w.emit(&project, &format!("a container left network {network}"));
        Ok(())
    }

    async fn connect(&self, id: &str, name: &str, network: &str, _aliases: &[String]) -> Result<(), EngineError> {
        self.wrote();
        let mut w = self.world();
        let c = w.by_id(id).ok_or_else(|| EngineError::Connect {
            name: name.into(),
            network: network.into(),
            cause: no_such_container(),
        })?;
        c.networks.push(network.to_string());
        Ok(())
    }

    async fn lock(
        &self,
        project: &str,
        command: &str,
        timeout: Duration,
        on_event: &(dyn Fn(LockEvent<'_>) + Sync),
    ) -> Result<ProjectLock, LockError> {
        self.take_lock(project, command, timeout, on_event).await
    }

    async fn unlock_if_mine(&self, project: &str) {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        if locks.get(project).is_some_and(|h| h.pid == Some(std::process::id())) {
            locks.remove(project);
        }
    }

    fn subscribe(&self, project: &str) -> UnboundedReceiver<String> {
        let (tx, rx) = unbounded_channel();
        self.world().subscribers.push((project.to_string(), tx));
        rx
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    fn run<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime").block_on(f)
    }

    /// A running container of `project`, as if `apply` had made it.
    fn add_container(engine: &FakeEngine, project: &str, name: &str) -> String {
        let mut w = engine.world();
        let id = w.new_id();
        let container = FakeContainer {
            id: id.clone(),
            name: name.into(),
            labels: BTreeMap::from([(labels::PROJECT.to_string(), project.to_string())]),
            image: "shop/app:1".into(),
            state: RunState::Running,
            health: None,
            exit_code: None,
            ports: Vec::new(),
            has_healthcheck: false,
            networks: vec![format!("{project}_private")],
        };
        w.containers.insert(id.clone(), container);
        id
    }

    #[test]
    fn a_second_acquirer_fails_at_once_or_waits_for_the_release() {
        let engine = FakeEngine::new();
        let quiet = |_: LockEvent<'_>| {};
        run(async {
            let mut first = engine.lock("shop", "apply", Duration::ZERO, &quiet).await.expect("a free lock");
            assert_eq!(engine.lock_holder("shop").map(|h| h.command), Some("apply".into()));
            let busy = engine.lock("shop", "destroy", Duration::ZERO, &quiet).await.expect_err("held");
            assert!(
                matches!(&busy, LockError::Held { project, timeout_zero: true, .. } if project == "shop"),
                "{busy}"
            );
            // Another project's lock is another lock.
            let mut other = engine.lock("blog", "apply", Duration::ZERO, &quiet).await.expect("blog is free");

            let waits = Mutex::new(Vec::new());
            let on_event = |e: LockEvent<'_>| {
                if let LockEvent::Waiting { holder, .. } = e {
                    waits.lock().unwrap().push(holder.command.clone());
                }
            };
            let second = engine.lock("shop", "destroy", Duration::from_secs(60), &on_event);
            let release = async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                first.release().await.expect("released");
            };
            let (second, ()) = tokio::join!(second, release);
            let mut second = second.expect("taken once the first let go");
            assert_eq!(waits.into_inner().unwrap(), ["apply"], "the waiter said once whom it waited for");
            assert_eq!(engine.lock_holder("shop").map(|h| h.command), Some("destroy".into()));
            second.release().await.expect("released");
            second.release().await.expect("releasing twice is fine");
            other.release().await.expect("released");
            assert_eq!(engine.lock_holder("shop"), None);
        });
    }

    #[test]
    fn an_interrupted_acquire_is_undone_by_unlock_if_mine() {
        let engine = FakeEngine::new();
        run(async {
            let taken = engine.lock("shop", "apply", Duration::ZERO, &|_| {}).await.expect("free");
            drop(taken); // as if the answer never arrived
            engine.unlock_if_mine("shop").await;
            assert_eq!(engine.lock_holder("shop"), None);
        });
    }

    #[test]
    fn drift_is_delivered_to_the_projects_subscribers_only() {
        let engine = FakeEngine::new();
        let web = add_container(&engine, "shop", "shop-web-1");
        add_container(&engine, "shop", "shop-web-2");
        add_container(&engine, "blog", "blog-web-1");
        let mut shop = engine.subscribe("shop");
        let mut blog = engine.subscribe("blog");
        run(async {
            engine.stop_by_hand("shop-web-2");
            engine.pause_container(&web, "shop-web-1").await.expect("paused");
            engine.disconnect(&web, "shop-web-1", "shop_private").await.expect("disconnected");
            engine.remove_by_hand("shop-web-1");
        });
        let mut seen = Vec::new();
        while let Ok(event) = shop.try_recv() {
            seen.push(event);
        }
        assert_eq!(
            seen,
            ["shop-web-2: die", "shop-web-1: pause", "a container left network shop_private", "shop-web-1: destroy"]
        );
        assert!(blog.try_recv().is_err(), "another project's subscriber hears nothing");
        // A subscriber that went away is forgotten, not an error.
        drop(shop);
        engine.stop_by_hand("shop-web-2");
    }

    #[test]
    fn exec_answers_what_was_scripted_and_fails_loudly_otherwise() {
        let engine = FakeEngine::new();
        let id = add_container(&engine, "shop", "shop-lb-1");
        let cmd = |words: &str| words.split(' ').map(String::from).collect::<Vec<_>>();
        run(async {
            let err = engine.exec(&id, "shop-lb-1", &cmd("haproxy -c")).await.expect_err("nothing scripted");
            assert!(err.to_string().contains("no answer scripted"), "{err}");
            engine
                .on_exec(|name, command| (name == "shop-lb-1" && command.starts_with("haproxy")).then(|| reply("ok")));
            engine.on_exec(|_, command| command.ends_with("-c").then(|| reply("newer")));
            let out = engine.exec(&id, "shop-lb-1", &cmd("haproxy -c")).await.expect("scripted");
            assert_eq!(out.output, "newer", "the script added last answers first");
            let out = engine.exec(&id, "shop-lb-1", &cmd("haproxy -v")).await.expect("scripted");
            assert_eq!(out.output, "ok");
        });
        assert_eq!(engine.commands_in("shop-lb-1"), ["haproxy -c", "haproxy -c", "haproxy -v"]);
    }
}
