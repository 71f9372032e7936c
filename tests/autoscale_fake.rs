//! The autoscaler over the in-memory engine, HAProxy's counters scripted: under load it
//! records a scale-up as a replica marker, the next watch pass creates the servers, a plan
//! afterwards (what `scale apply` would run) keeps them; with the load gone it scales back to
//! `min` and the pass removes them again. The decision rules themselves are unit-tested in
//! `plan::autoscale`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use scale::desired::{DesiredState, desired_state};
use scale::diag::Diagnostic;
use scale::engine::fake::FakeEngine;
use scale::engine::{Engine, ExecOutput, observe_project};
use scale::exec::{ExecOptions, ExecReport, execute};
use scale::model::{Blueprint, Build, Env, load_bytes};
use scale::ops::autoscale::Autoscaler;
use scale::ops::watch::{Controller, Locked, Pass, pass};
use scale::plan::Plan;

const BLUEPRINT: &str = "name: shop
services:
  lb:
    kind: load-balancer
    image: lb
    backends: { service: web, port: 8000 }
    ports: [\"80\"]
  web:
    image: web
    replicas: { min: 2, max: 4, target: 10, cooldown: 0s }
";

fn loaded() -> (Blueprint, DesiredState) {
    let bp =
        load_bytes(Path::new("shop.yaml"), BLUEPRINT.as_bytes(), &Env::default()).unwrap_or_else(|d| panic!("{d}"));
    let hasher = |_: &Build| Ok::<String, Diagnostic>("0123456789abcdef0123".into());
    let desired = desired_state(&bp, "shop", &hasher).unwrap_or_else(|d| panic!("{d:?}"));
    (bp, desired)
}

fn reply(output: &str) -> Option<ExecOutput> {
    Some(ExecOutput { exit_code: 0, output: output.into() })
}

/// A load balancer whose every server is UP and has served `served` requests so far.
fn script_haproxy(engine: &FakeEngine, served: Arc<AtomicU64>) {
    engine.on_exec(move |name, command| {
        if name != "shop-lb-1" {
            return None;
        }
        if command.contains("'show stat'") {
            let n = served.load(Ordering::SeqCst);
            let mut csv = String::from("# pxname,svname,scur,stot,status\n");
            for server in 1..=4 {
                csv.push_str(&format!("web,shop-web-{server},0,{n},UP\n"));
            }
            return reply(&csv);
        }
        if command.starts_with("getent hosts ") {
            return reply("10.0.0.9 host");
        }
        reply("Configuration file is valid")
    });
}

struct Quiet {
    lines: Vec<String>,
}

impl Controller<FakeEngine> for Quiet {
    type Lock = ();
    async fn lock(&mut self, _engine: &FakeEngine, _project: &str) -> Locked<()> {
        Locked::Taken(())
    }
    async fn unlock(&mut self, _lock: ()) {}
    async fn execute(&mut self, engine: &FakeEngine, plan: &Plan) -> Option<ExecReport> {
        let opts = ExecOptions {
            parallel: 8,
            ready_timeout: Duration::from_secs(5),
            log_lines: 5,
            settle: Duration::ZERO,
            removals: None,
        };
        Some(execute(engine, plan, &opts, &|_| {}, &std::sync::atomic::AtomicBool::new(false)).await)
    }
    fn log(&self, _text: &str, _value: serde_json::Value) {}
    fn repairing(&self, _why: &str, _plan: &Plan) {}
}

impl Quiet {
    /// Like the terminal's log, but kept: what the watch log would say.
    async fn step(&mut self, scaler: &mut Autoscaler, engine: &FakeEngine, desired: &DesiredState) -> Option<String> {
        let said = scaler.step(engine, desired, self).await.map(|s| s.describe());
        self.lines.extend(said.clone());
        said
    }
}

fn web_servers(engine: &FakeEngine) -> Vec<String> {
    let mut names: Vec<String> =
        engine.containers().into_iter().map(|c| c.name).filter(|n| n.starts_with("shop-web-")).collect();
    names.sort();
    names
}

#[test]
fn load_scales_up_apply_keeps_it_and_quiet_scales_back_down() {
    let (bp, desired) = loaded();
    let engine = FakeEngine::new();
    let served = Arc::new(AtomicU64::new(0));
    script_haproxy(&engine, served.clone());
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime");
    let mut ctl = Quiet { lines: Vec::new() };
    let mut scaler = Autoscaler::default();
    assert_eq!(rt.block_on(pass(&engine, &bp, &desired, &mut ctl, "start")), Ok(Pass::Repaired));
    assert_eq!(web_servers(&engine), ["shop-web-1", "shop-web-2"], "no marker yet: min");

    // Two samples 0.6 s apart with 100 more requests per server: ~330 req/s over 2 servers.
    assert_eq!(rt.block_on(ctl.step(&mut scaler, &engine, &desired)), None, "one sample is no rate");
    served.fetch_add(100, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(600));
    let up = rt.block_on(ctl.step(&mut scaler, &engine, &desired)).expect("a scale-up");
    assert!(up.starts_with("scale web 2 → 4: ") && up.ends_with("req/s per server > target 10"), "{up}");
    assert_eq!(rt.block_on(pass(&engine, &bp, &desired, &mut ctl, &up)), Ok(Pass::Repaired));
    assert_eq!(web_servers(&engine).len(), 4, "the pass created what the marker says");

    // What `scale apply` of the same blueprint would run: nothing. The count is in the engine.
    let observed = rt.block_on(observe_project(&engine, "shop")).expect("observes");
    let plan = scale::plan::plan(&desired, &observed).expect("plans");
    assert!(!plan.has_changes(), "apply would undo the autoscaler:\n{}", scale::plan::render_text(&plan));
    let pool = &observed.load_balancers["shop-lb-1"];
    assert_eq!(pool.servers.len(), 4, "the load balancer's pool follows: {pool:?}");

    // No more requests: after the cooldown (0 s here) it goes back to min, not below.
    assert_eq!(rt.block_on(ctl.step(&mut scaler, &engine, &desired)), None, "a change restarts the sampling");
    std::thread::sleep(Duration::from_millis(600));
    let down = rt.block_on(ctl.step(&mut scaler, &engine, &desired)).expect("a scale-down");
    assert!(
        down.starts_with("scale web 4 → 2: 0 req/s per server < 8 (target 10 less hysteresis 0.2) for 0s"),
        "{down}"
    );
    assert_eq!(rt.block_on(pass(&engine, &bp, &desired, &mut ctl, &down)), Ok(Pass::Repaired));
    assert_eq!(web_servers(&engine), ["shop-web-1", "shop-web-2"]);
    let markers: Vec<String> = rt
        .block_on(engine.observe("shop"))
        .expect("observes")
        .volumes
        .into_keys()
        .filter(|v| v.contains("web-replicas"))
        .collect();
    assert_eq!(markers.len(), 1, "one marker: the newest replaces the older ones: {markers:?}");

    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(rt.block_on(ctl.step(&mut scaler, &engine, &desired)), None);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(rt.block_on(ctl.step(&mut scaler, &engine, &desired)), None, "never below min");
    assert_eq!(ctl.lines.len(), 2, "{:?}", ctl.lines);
}

const QUEUE_BLUEPRINT: &str = "name: shop
services:
  queue:
    image: queue
    labels: { io.scale.queue: scale-queue-stats }
  worker:
    image: worker
    replicas: { min: 1, max: 3, target: 3, cooldown: 0s, metric: queue_depth, queue: queue }
";

/// Workers autoscaled on a queue's depth (stage 9): the same marker and pass as the web tier,
/// the load read from the queue's stats command (scripted here) instead of HAProxy.
#[test]
fn queue_depth_scales_workers_up_and_back_down() {
    let bp = load_bytes(Path::new("shop.yaml"), QUEUE_BLUEPRINT.as_bytes(), &Env::default())
        .unwrap_or_else(|d| panic!("{d}"));
    let hasher = |_: &Build| Ok::<String, Diagnostic>("0123456789abcdef0123".into());
    let desired = desired_state(&bp, "shop", &hasher).unwrap_or_else(|d| panic!("{d:?}"));
    let engine = FakeEngine::new();
    let depth = Arc::new(AtomicU64::new(12));
    let queued = depth.clone();
    engine.on_exec(move |name, command| {
        (name == "shop-queue-1" && command == "scale-queue-stats").then(|| ExecOutput {
            exit_code: 0,
            output: format!("{{\"depth\":{},\"pending\":1,\"consumers\":1}}\n", queued.load(Ordering::SeqCst)),
        })
    });
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime");
    let mut ctl = Quiet { lines: Vec::new() };
    let mut scaler = Autoscaler::default();
    assert_eq!(rt.block_on(pass(&engine, &bp, &desired, &mut ctl, "start")), Ok(Pass::Repaired));
    let workers = |engine: &FakeEngine| {
        let mut names: Vec<String> =
            engine.containers().into_iter().map(|c| c.name).filter(|n| n.starts_with("shop-worker-")).collect();
        names.sort();
        names
    };
    assert_eq!(workers(&engine), ["shop-worker-1"], "no marker yet: min");

    // A depth is a level, not a counter: one sample is enough.
    let up = rt.block_on(ctl.step(&mut scaler, &engine, &desired)).expect("a scale-up");
    assert_eq!(up, "scale worker 1 → 2: 12 messages queued per worker > target 3");
    assert_eq!(rt.block_on(pass(&engine, &bp, &desired, &mut ctl, &up)), Ok(Pass::Repaired));
    assert_eq!(workers(&engine), ["shop-worker-1", "shop-worker-2"]);
    assert_eq!(rt.block_on(ctl.step(&mut scaler, &engine, &desired)), None, "another scale-up waits to settle");

    depth.store(0, Ordering::SeqCst);
    let down = rt.block_on(ctl.step(&mut scaler, &engine, &desired)).expect("a scale-down");
    assert_eq!(down, "scale worker 2 → 1: 0 messages queued per worker < 2.4 (target 3 less hysteresis 0.2) for 0s");
    assert_eq!(rt.block_on(pass(&engine, &bp, &desired, &mut ctl, &down)), Ok(Pass::Repaired));
    assert_eq!(workers(&engine), ["shop-worker-1"]);
    assert_eq!(rt.block_on(ctl.step(&mut scaler, &engine, &desired)), None, "never below min");
    assert_eq!(ctl.lines.len(), 2, "{:?}", ctl.lines);
}
