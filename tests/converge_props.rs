//! Properties of plan → execute over the in-memory engine, for random blueprints and random
//! prior states: applying always converges (a second plan is empty), never touches a
//! container the project does not own, never binds a host port twice, and a plan's `after`
//! edges never form a cycle.
//!
//! A prior state is made the way real ones are: another blueprint of the same project was
//! applied earlier, then someone removed or stopped some of its containers by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

use scale::desired::{ContainerSpec, DesiredState, ImageSpec, NetworkSpec, VolumeSpec, desired_state};
use scale::diag::Diagnostic;
use scale::engine::fake::FakeEngine;
use scale::engine::lock::{LockError, LockEvent, ProjectLock};
use scale::engine::{ContainerStatus, Engine, EngineError, EventStream, Progress};
use scale::exec::{ExecOptions, ExecReport, execute};
use scale::model::{Build, Env, load_bytes};
use scale::observed::{ObservedState, RunState};
use scale::plan::{Plan, plan, render_text};
use scale::validate::validate;

const PROJECT: &str = "conv";
/// Services are drawn from this pool, so two blueprints share some of them.
const NAMES: [&str; 6] = ["web", "api", "db", "cache", "queue", "worker"];
const HOST_PORTS: [u16; 2] = [8080, 8081];
const IMAGES: [&str; 2] = ["app:1", "app:2"];
/// Names scale must never touch: one unrelated, two shaped like the project's own.
const FOREIGN: [&str; 3] = ["bystander", "conv-gone-1", "conv-web-9"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    Started,
    Healthy,
}

#[derive(Debug, Clone)]
struct Port {
    container: u16,
    host: Option<u16>,
}

#[derive(Debug, Clone)]
struct Svc {
    name: &'static str,
    image: &'static str,
    replicas: u32,
    env: BTreeMap<&'static str, &'static str>,
    ports: Vec<Port>,
    /// Empty: the project's default network.
    networks: Vec<&'static str>,
    depends_on: Vec<(&'static str, Condition)>,
    healthcheck: Option<u32>,
}

/// A generated blueprint; its `Debug` is the YAML, so a failing case reads like a file.
#[derive(Clone)]
struct Blueprint {
    services: Vec<Svc>,
}

impl std::fmt::Debug for Blueprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\n{}", self.yaml())
    }
}

impl Blueprint {
    fn yaml(&self) -> String {
        let mut y = format!("name: {PROJECT}\nnetworks:\n  front: {{}}\n  back: {{ internal: true }}\nservices:\n");
        for s in &self.services {
            let _ = writeln!(y, "  {}:\n    image: {}\n    replicas: {}", s.name, s.image, s.replicas);
            if !s.env.is_empty() {
                let pairs: Vec<String> = s.env.iter().map(|(k, v)| format!("{k}: \"{v}\"")).collect();
                let _ = writeln!(y, "    environment: {{ {} }}", pairs.join(", "));
            }
            if !s.ports.is_empty() {
                let ports: Vec<String> = s
                    .ports
                    .iter()
                    .map(|p| match p.host {
                        Some(h) => format!("\"{h}:{}\"", p.container),
                        None => format!("\"{}\"", p.container),
                    })
                    .collect();
                let _ = writeln!(y, "    ports: [{}]", ports.join(", "));
            }
            if !s.networks.is_empty() {
                let _ = writeln!(y, "    networks: [{}]", s.networks.join(", "));
            }
            if !s.depends_on.is_empty() {
                let deps: Vec<String> = s
                    .depends_on
                    .iter()
                    .map(|(d, c)| {
                        let c = match c {
                            Condition::Started => "service_started",
                            Condition::Healthy => "service_healthy",
                        };
                        format!("{d}: {{ condition: {c} }}")
                    })
                    .collect();
                let _ = writeln!(y, "    depends_on: {{ {} }}", deps.join(", "));
            }
            if let Some(secs) = s.healthcheck {
                let _ = writeln!(y, "    healthcheck: {{ test: [\"CMD\", \"true\"], interval: {secs}s }}");
            }
        }
        y
    }

    fn desired(&self) -> Result<DesiredState, String> {
        let file = Path::new("generated.yaml");
        let yaml = self.yaml();
        let bp = load_bytes(file, yaml.as_bytes(), &Env::default()).map_err(|d| format!("{d}\n{yaml}"))?;
        let problems = validate(&bp, None);
        if !problems.is_empty() {
            return Err(format!("generated an invalid blueprint: {problems:?}\n{yaml}"));
        }
        let hasher = |_: &Build| Ok::<String, Diagnostic>("fixed-context-hash".into());
        desired_state(&bp, PROJECT, &hasher).map_err(|d| format!("{d:?}"))
    }
}

fn service(name: &'static str) -> impl Strategy<Value = Svc> {
    (
        prop::sample::select(IMAGES.to_vec()),
        // Mostly 0 or 1, so fixed host ports (single-replica only) are common.
        prop_oneof![3 => 0..=1u32, 1 => 2..=4u32],
        prop::collection::btree_map(
            prop::sample::select(vec!["MODE", "LEVEL", "API_TOKEN"]),
            prop::sample::select(vec!["a", "b"]),
            0..=2,
        ),
        prop::collection::btree_map(
            prop::sample::select(vec![80u16, 81]),
            prop::option::weighted(0.5, prop::sample::select(HOST_PORTS.to_vec())),
            0..=2,
        ),
        prop::sample::subsequence(vec!["front", "back"], 0..=2),
        prop::collection::vec((any::<Index>(), any::<bool>()), 0..=2),
        prop::option::of(1..=2u32),
    )
        .prop_map(move |(image, replicas, env, ports, networks, deps, healthcheck)| Svc {
            name,
            image,
            replicas,
            env,
            ports: ports.into_iter().map(|(container, host)| Port { container, host }).collect(),
            networks,
            // Resolved against the services before this one once the blueprint is assembled.
            depends_on: deps
                .into_iter()
                .map(|(i, healthy)| {
                    (NAMES[i.index(NAMES.len())], if healthy { Condition::Healthy } else { Condition::Started })
                })
                .collect(),
            healthcheck,
        })
}

/// 1–6 services from the pool, made valid: dependencies only on earlier services (a DAG),
/// fixed host ports only on single-replica services and each claimed once, and no
/// published ports on a service that is only on the internal network.
fn blueprint() -> impl Strategy<Value = Blueprint> {
    let all: Vec<_> = NAMES.iter().map(|&n| prop::option::weighted(0.6, service(n))).collect();
    all.prop_filter_map("at least one service", |picked| {
        let mut services: Vec<Svc> = Vec::new();
        let mut claimed = BTreeSet::new();
        for mut s in picked.into_iter().flatten() {
            let earlier: Vec<&str> = services.iter().map(|e| e.name).collect();
            let mut seen = BTreeSet::new();
            s.depends_on.retain(|(d, _)| earlier.contains(d) && seen.insert(*d));
            for p in &mut s.ports {
                if p.host.is_some_and(|h| s.replicas > 1 || !claimed.insert(h)) {
                    p.host = None;
                }
            }
            if !s.ports.is_empty() && s.networks == ["back"] {
                s.networks.insert(0, "front");
            }
            services.push(s);
        }
        (!services.is_empty()).then_some(Blueprint { services })
    })
}

#[derive(Debug, Clone, Copy)]
enum Drift {
    Remove,
    Stop,
}

#[derive(Debug, Clone)]
struct Case {
    before: Blueprint,
    drift: Vec<(Index, Drift)>,
    after: Blueprint,
    /// Images already present locally (the rest are pulled).
    preloaded: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        blueprint(),
        prop::collection::vec((any::<Index>(), prop_oneof![Just(Drift::Remove), Just(Drift::Stop)]), 0..=4),
        blueprint(),
        any::<bool>(),
    )
        .prop_map(|(before, drift, after, preloaded)| Case { before, drift, after, preloaded })
}

/// The fake engine, plus the check Docker makes when a container starts: no two running
/// containers may bind the same host port.
struct PortChecked<'a> {
    inner: &'a FakeEngine,
    clashes: Mutex<Vec<String>>,
}

impl Engine for PortChecked<'_> {
    fn address(&self) -> String {
        self.inner.address()
    }
    async fn observe(&self, project: &str) -> Result<ObservedState, EngineError> {
        self.inner.observe(project).await
    }
    async fn create_network(&self, spec: &NetworkSpec) -> Result<(), EngineError> {
        self.inner.create_network(spec).await
    }
    async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        self.inner.remove_network(name).await
    }
    async fn create_volume(&self, spec: &VolumeSpec) -> Result<(), EngineError> {
        self.inner.create_volume(spec).await
    }
    async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        self.inner.remove_volume(name).await
    }
    async fn build_image(&self, image: &ImageSpec, project: &str, progress: Progress<'_>) -> Result<(), EngineError> {
        self.inner.build_image(image, project, progress).await
    }
    async fn pull_image(&self, reference: &str, progress: Progress<'_>) -> Result<(), EngineError> {
        self.inner.pull_image(reference, progress).await
    }
    async fn create_named(&self, name: &str, spec: &ContainerSpec, project: &str) -> Result<String, EngineError> {
        self.inner.create_named(name, spec, project).await
    }
    async fn rename_container(&self, id: &str, name: &str, new_name: &str) -> Result<(), EngineError> {
        self.inner.rename_container(id, name, new_name).await
    }
    async fn start_container(&self, id: &str, name: &str) -> Result<(), EngineError> {
        let all = self.inner.containers();
        if let Some(me) = all.iter().find(|c| c.id == id) {
            for port in &me.ports {
                let holder = all.iter().find(|c| {
                    c.id != id && c.state == RunState::Running && c.ports.iter().any(|p| p.host_port == port.host_port)
                });
                if let Some(holder) = holder {
                    self.clashes
                        .lock()
                        .unwrap()
                        .push(format!("{name} started on host port {} held by {}", port.host_port, holder.name));
                    return Err(EngineError::PortInUse { name: name.into(), port: port.host_port.to_string() });
                }
            }
        }
        self.inner.start_container(id, name).await
    }
    async fn stop_container(&self, id: &str, name: &str, grace: Duration) -> Result<(), EngineError> {
        self.inner.stop_container(id, name, grace).await
    }
    async fn remove_container(&self, id: &str, name: &str) -> Result<(), EngineError> {
        self.inner.remove_container(id, name).await
    }
    async fn unpause_container(&self, id: &str, name: &str) -> Result<(), EngineError> {
        self.inner.unpause_container(id, name).await
    }
    async fn container_status(&self, id: &str, name: &str) -> Result<ContainerStatus, EngineError> {
        self.inner.container_status(id, name).await
    }
    async fn logs_tail(&self, id: &str, lines: usize) -> Result<Vec<String>, EngineError> {
        self.inner.logs_tail(id, lines).await
    }

    async fn exec(&self, id: &str, name: &str, cmd: &[String]) -> Result<scale::engine::ExecOutput, EngineError> {
        self.inner.exec(id, name, cmd).await
    }

    async fn read_file(&self, id: &str, name: &str, path: &str) -> Result<Option<Vec<u8>>, EngineError> {
        self.inner.read_file(id, name, path).await
    }

    async fn write_file(&self, id: &str, name: &str, path: &str, contents: &[u8]) -> Result<(), EngineError> {
        self.inner.write_file(id, name, path, contents).await
    }

    async fn signal(&self, id: &str, name: &str, signal: &str) -> Result<(), EngineError> {
        self.inner.signal(id, name, signal).await
    }

    async fn pause_container(&self, id: &str, name: &str) -> Result<(), EngineError> {
        self.inner.pause_container(id, name).await
    }

    async fn disconnect(&self, id: &str, name: &str, network: &str) -> Result<(), EngineError> {
        self.inner.disconnect(id, name, network).await
    }

    async fn connect(&self, id: &str, name: &str, network: &str, aliases: &[String]) -> Result<(), EngineError> {
        self.inner.connect(id, name, network, aliases).await
    }

    async fn lock(
        &self,
        project: &str,
        command: &str,
        timeout: Duration,
        on_event: &(dyn Fn(LockEvent<'_>) + Sync),
    ) -> Result<ProjectLock, LockError> {
        self.inner.lock(project, command, timeout, on_event).await
    }

    async fn unlock_if_mine(&self, project: &str) {
        self.inner.unlock_if_mine(project).await
    }

    fn subscribe(&self, project: &str) -> EventStream {
        self.inner.subscribe(project)
    }
}

/// `after` only names earlier actions, and so can never form a cycle.
fn check_edges(plan: &Plan) -> Result<(), TestCaseError> {
    for (i, a) in plan.actions.iter().enumerate() {
        prop_assert_eq!(a.id, i, "action IDs are their positions");
        for &dep in &a.after {
            prop_assert!(
                dep < a.id,
                "action {} ({}) waits for later action {}\n{}",
                a.id,
                a.op.target(),
                dep,
                render_text(plan)
            );
        }
    }
    // Independently of the ordering claim: no cycle (Kahn's algorithm).
    let mut waiting: Vec<usize> = plan.actions.iter().map(|a| a.after.len()).collect();
    let mut ready: Vec<usize> = (0..waiting.len()).filter(|&i| waiting[i] == 0).collect();
    let mut done = 0;
    while let Some(id) = ready.pop() {
        done += 1;
        for other in &plan.actions {
            if other.after.contains(&id) {
                waiting[other.id] -= 1;
                if waiting[other.id] == 0 {
                    ready.push(other.id);
                }
            }
        }
    }
    prop_assert_eq!(done, plan.actions.len(), "the plan's `after` edges form a cycle\n{}", render_text(plan));
    Ok(())
}

/// `cases` by default; `PROPTEST_CASES=N` runs more (or fewer).
fn runner(cases: u32) -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(cases);
    TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() })
}

fn report(result: Result<(), TestError<Case>>) {
    if let Err(err) = result {
        panic!("{err}");
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime")
}

/// Plans and executes one blueprint against whatever the engine holds.
fn apply(
    rt: &tokio::runtime::Runtime,
    engine: &PortChecked<'_>,
    desired: &DesiredState,
) -> Result<(Plan, ExecReport), TestCaseError> {
    let observed = rt.block_on(engine.observe(PROJECT)).expect("the fake observes");
    let plan = plan(desired, &observed).map_err(|e| TestCaseError::fail(e.to_string()))?;
    check_edges(&plan)?;
    let opts = ExecOptions {
        parallel: 4,
        ready_timeout: Duration::from_secs(5),
        log_lines: 5,
        settle: Duration::ZERO, /* the fake's containers never exit by themselves */
        removals: None,
    };
    let report = rt.block_on(execute(engine, &plan, &opts, &|_| {}, &AtomicBool::new(false)));
    Ok((plan, report))
}

#[test]
fn apply_converges_from_any_prior_state_and_touches_nothing_foreign() {
    let rt = rt();
    report(runner(96).run(&case(), |case| {
        let fake = FakeEngine::new();
        for name in FOREIGN {
            fake.add_foreign_container(name);
        }
        let foreign_before: Vec<_> = fake.containers().into_iter().map(|c| (c.id, c.name, c.state)).collect();
        let engine = PortChecked { inner: &fake, clashes: Mutex::new(Vec::new()) };

        // The prior state: another blueprint applied, then drift.
        let before = case.before.desired().map_err(TestCaseError::fail)?;
        if case.preloaded {
            for image in IMAGES {
                fake.add_image(image);
            }
        }
        let (p, r) = apply(&rt, &engine, &before)?;
        prop_assert!(r.succeeded(), "first apply failed: {r:?}\n{}", render_text(&p));
        let names: Vec<String> = before.containers.keys().cloned().collect();
        if !names.is_empty() {
            for (i, drift) in &case.drift {
                let name = &names[i.index(names.len())];
                match drift {
                    Drift::Remove => fake.remove_by_hand(name),
                    Drift::Stop => fake.stop_by_hand(name),
                }
            }
        }

        // The property: the new blueprint applies, converges, and owns exactly its containers.
        let after = case.after.desired().map_err(TestCaseError::fail)?;
        let (p, r) = apply(&rt, &engine, &after)?;
        let clashes = engine.clashes.lock().unwrap().clone();
        prop_assert!(clashes.is_empty(), "host port bound twice: {clashes:?}\n{}", render_text(&p));
        prop_assert!(r.succeeded(), "apply failed: {r:?}\n{}", render_text(&p));

        let observed = rt.block_on(fake.observe(PROJECT)).expect("the fake observes");
        let again = plan(&after, &observed).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(!again.has_changes(), "not converged; after\n{}\nstill\n{}", render_text(&p), render_text(&again));
        let running: BTreeMap<&str, Option<&str>> =
            observed.containers.values().map(|c| (c.name.as_str(), c.spec_hash())).collect();
        let hashes: Vec<String> = after.containers.values().map(ContainerSpec::hash).collect();
        let wanted: BTreeMap<&str, Option<&str>> =
            after.containers.keys().map(String::as_str).zip(hashes.iter().map(|h| Some(h.as_str()))).collect();
        prop_assert_eq!(running, wanted);
        for c in observed.containers.values() {
            prop_assert_eq!(c.state, RunState::Running, "{} is not running", c.name);
        }

        let foreign_after: Vec<_> =
            fake.containers().into_iter().filter(|c| c.labels.is_empty()).map(|c| (c.id, c.name, c.state)).collect();
        prop_assert_eq!(foreign_after, foreign_before, "a foreign container was touched");
        Ok(())
    }));
}

#[test]
fn plan_edges_never_point_forward_or_form_a_cycle() {
    let rt = rt();
    report(runner(128).run(&case(), |case| {
        let fake = FakeEngine::new();
        let before = case.before.desired().map_err(TestCaseError::fail)?;
        let after = case.after.desired().map_err(TestCaseError::fail)?;
        // From nothing, and from the other blueprint's state after drift.
        check_edges(&plan(&after, &ObservedState::default()).map_err(|e| TestCaseError::fail(e.to_string()))?)?;
        let engine = PortChecked { inner: &fake, clashes: Mutex::new(Vec::new()) };
        apply(&rt, &engine, &before)?;
        let names: Vec<String> = before.containers.keys().cloned().collect();
        for (i, drift) in case.drift.iter().filter(|_| !names.is_empty()) {
            let name = &names[i.index(names.len())];
            match drift {
                Drift::Remove => fake.remove_by_hand(name),
                Drift::Stop => fake.stop_by_hand(name),
            }
        }
        let observed = rt.block_on(fake.observe(PROJECT)).expect("the fake observes");
        check_edges(&plan(&after, &observed).map_err(|e| TestCaseError::fail(e.to_string()))?)
    }));
}
