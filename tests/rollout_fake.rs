//! Rollout policy over the in-memory engine (no Docker): batches of `parallelism`,
//! `order`, and what `on_failure` does when a later batch fails its healthcheck: `rollback`
//! puts the previous spec back on the replicas already replaced (drained like any
//! replacement), `pause` stops where it is, `continue` goes on. The load balancer's runtime
//! API is scripted just enough for drains and probation to pass at once.

use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use scale::desired::DesiredState;
use scale::engine::fake::{FakeEngine, reply};
use scale::engine::observe_project;
use scale::exec::{ExecEvent, ExecOptions, ExecReport, execute};
use scale::model::OnFailure;
use scale::observed::ObservedState;
use scale::plan::{Op, Plan, Verb, plan, render_text};

#[path = "common/plan_fixture.rs"]
mod plan_fixture;

const LB: &str = "shop-lb-1";
const WEB: [&str; 6] = ["shop-web-1", "shop-web-2", "shop-web-3", "shop-web-4", "shop-web-5", "shop-web-6"];
const NEW_IMAGE: &str = "shop/app:2.0";

fn desired(vars: &[(&str, &str)]) -> DesiredState {
    plan_fixture::desired_fixture("rollout.yaml", vars)
}

struct Harness {
    engine: FakeEngine,
    rt: tokio::runtime::Runtime,
}

impl Harness {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime");
        let engine = FakeEngine::new();
        for image in ["shop/lb:1.0", "shop/app:1.0", NEW_IMAGE] {
            engine.add_image(image);
        }
        engine.on_exec(haproxy);
        let h = Harness { engine, rt };
        let (_, report, _) = h.run(&desired(&[]));
        assert!(report.succeeded());
        h
    }

    fn observe(&self) -> ObservedState {
        self.rt.block_on(observe_project(&self.engine, "shop")).expect("the fake observes")
    }

    fn plan(&self, desired: &DesiredState) -> Plan {
        plan(desired, &self.observe()).expect("a plan")
    }

    /// Plans and runs; the plan, the report and every output line.
    fn run(&self, desired: &DesiredState) -> (Plan, ExecReport, Vec<String>) {
        let plan = self.plan(desired);
        let (report, lines) = self.execute(&plan);
        (plan, report, lines)
    }

    fn execute(&self, plan: &Plan) -> (ExecReport, Vec<String>) {
        let events = Mutex::new(Vec::new());
        let sink = |e: ExecEvent| events.lock().unwrap().push(e);
        let opts = ExecOptions {
            parallel: 8,
            ready_timeout: Duration::from_secs(5),
            log_lines: 5,
            settle: Duration::ZERO,
            removals: None,
        };
        let report = self.rt.block_on(execute(&self.engine, plan, &opts, &sink, &AtomicBool::new(false)));
        let lines = events
            .into_inner()
            .unwrap()
            .into_iter()
            .filter_map(|e| match e {
                ExecEvent::Output { line, .. } => Some(line),
                ExecEvent::Failed { failure, .. } => Some(format!("FAILED {}", failure.message)),
                _ => None,
            })
            .collect();
        (report, lines)
    }

    /// Which image each web replica runs now (by its stored spec), and no leftovers.
    fn images(&self) -> Vec<String> {
        let seen = self.observe();
        let leftovers: Vec<&String> = seen.containers.keys().filter(|n| n.ends_with(".next")).collect();
        assert!(leftovers.is_empty(), "leftovers of a replacement: {leftovers:?}");
        WEB.iter().map(|w| seen.containers[*w].spec().expect("a stored spec").image).collect()
    }

    /// How often `server` was drained (taken out before its container stopped).
    /// How many times the server was taken off its old container: a drain, or a start-first
    /// hand-over to the new address (each asks for the sessions in flight in the same call;
    /// a stop-first probation, which only puts the server back, does not).
    fn drains_of(&self, server: &str) -> usize {
        let drain = format!("set server web/{server} state drain");
        self.engine.commands_in(LB).iter().filter(|c| c.contains(&drain) && c.contains("show stat")).count()
    }
}

/// Just enough of HAProxy's runtime API: every server UP and idle, every check passing.
fn haproxy(name: &str, command: &str) -> Option<scale::engine::ExecOutput> {
    if name != LB {
        return None;
    }
    if let Some(server) = command.strip_prefix("getent hosts ") {
        return Some(reply(&format!("10.0.0.7 {server}")));
    }
    if command.contains("'show stat'") {
        let rows: Vec<String> = WEB.iter().map(|s| format!("web,{s},0,1,UP")).collect();
        return Some(reply(&format!("# pxname,svname,scur,stot,status\n{}\n", rows.join("\n"))));
    }
    if command.contains("show servers state web") {
        let rows: Vec<String> = WEB.iter().map(|s| format!("3 web 1 {s} 10.0.0.7 2")).collect();
        return Some(reply(&format!(
            "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state\n{}\n",
            rows.join("\n")
        )));
    }
    Some(reply(""))
}

fn v2(extra: &[(&'static str, &'static str)]) -> DesiredState {
    let mut vars = vec![("APP_TAG", "2.0")];
    vars.extend_from_slice(extra);
    desired(&vars)
}

#[test]
fn a_rollout_replaces_in_batches_of_parallelism_and_records_the_previous_spec() {
    let h = Harness::new();
    let p = h.plan(&v2(&[]));
    let [rollout] = &p.rollouts[..] else { panic!("one rollout:\n{}", render_text(&p)) };
    let names = |batch: &Vec<usize>| batch.iter().map(|id| p.actions[*id].op.target()).collect::<Vec<_>>();
    let batches: Vec<Vec<String>> = rollout.batches.iter().map(names).collect();
    assert_eq!(batches, [&WEB[0..2], &WEB[2..4], &WEB[4..6]]);
    for pair in rollout.batches.windows(2) {
        for id in &pair[1] {
            assert!(pair[0].iter().all(|prev| p.actions[*id].after.contains(prev)), "{}", render_text(&p));
        }
    }
    for id in &rollout.batches[0] {
        assert!(p.actions[*id].after.iter().all(|a| !rollout.batches[0].contains(a)), "a batch runs together");
    }
    assert!(p.actions.iter().all(|a| !matches!(a.op, Op::RecreateContainer { start_first: false, .. })));
    assert!(
        render_text(&p).contains(
            "rollout web: 6 replicas, 2 at a time (3 batches), start-first; on failure: put the previous spec back"
        ),
        "{}",
        render_text(&p)
    );

    let (_, report, _) = h.run(&v2(&[]));
    assert!(report.succeeded());
    assert_eq!(h.images(), [NEW_IMAGE; 6]);
    let seen = h.observe();
    for web in WEB {
        let previous = seen.containers[web].previous_spec().expect("the previous spec is kept");
        assert_eq!(previous.image, "shop/app:1.0", "{web}");
    }
}

#[test]
fn order_stop_first_is_honoured_and_start_first_is_the_default_where_safe() {
    let h = Harness::new();
    let p = h.plan(&v2(&[("ORDER", "stop-first"), ("PARALLELISM", "3")]));
    let starts: Vec<bool> = p
        .actions
        .iter()
        .filter_map(|a| match a.op {
            Op::RecreateContainer { start_first, .. } => Some(start_first),
            _ => None,
        })
        .collect();
    assert_eq!(starts, [false; 6]);
    assert_eq!(p.rollouts[0].batches.len(), 2);
    assert!(render_text(&p).contains("6 replicas, 3 at a time (2 batches), stop-first"), "{}", render_text(&p));
}

/// The new image passes its healthcheck twice (the first batch), then fails (the second).
fn broken_after_first_batch(h: &Harness) {
    h.engine.make_unhealthy_after(NEW_IMAGE, 2);
}

#[test]
fn a_failing_batch_rolls_the_replaced_replicas_back_drained_and_a_second_apply_does_it_again() {
    let h = Harness::new();
    for attempt in 1..=2 {
        broken_after_first_batch(&h);
        let drained_before = h.drains_of("shop-web-1");
        let (p, report, lines) = h.run(&v2(&[]));
        assert!(!report.succeeded(), "attempt {attempt}");
        let [outcome] = &report.rollouts[..] else { panic!("one failed rollout: {report:?}") };
        assert_eq!(outcome.policy, OnFailure::Rollback);
        assert_eq!(outcome.failed, ["shop-web-3", "shop-web-4"], "attempt {attempt}: {lines:#?}");
        assert_eq!(outcome.rolled_back, ["shop-web-1", "shop-web-2"], "attempt {attempt}: {lines:#?}");
        assert!(outcome.rollback_failed.is_empty());
        // The third batch never started; every replica is back on the old image.
        let third: Vec<usize> = p.rollouts[0].batches[2].clone();
        assert!(third.iter().all(|id| report.not_started.contains(id)));
        assert_eq!(h.images(), ["shop/app:1.0"; 6], "attempt {attempt}: {lines:#?}");
        assert_eq!(
            h.drains_of("shop-web-1") - drained_before,
            2,
            "drained once on the way forward, once on the way back"
        );
        assert!(lines.iter().any(|l| l.starts_with("rolling back web")), "{lines:#?}");
    }
}

#[test]
fn a_failing_stop_first_batch_is_rolled_back_too() {
    let h = Harness::new();
    broken_after_first_batch(&h);
    let (_, report, lines) = h.run(&v2(&[("ORDER", "stop-first")]));
    let outcome = &report.rollouts[0];
    // The failed replicas had lost their old container already: they are put back as well.
    assert_eq!(outcome.rolled_back, ["shop-web-1", "shop-web-2", "shop-web-3", "shop-web-4"], "{lines:#?}");
    assert_eq!(h.images(), ["shop/app:1.0"; 6]);
    let seen = h.observe();
    assert!(WEB.iter().all(|w| seen.containers[*w].is_ready()), "every replica serves again");
}

#[test]
fn on_failure_pause_stops_and_keeps_what_was_replaced() {
    let h = Harness::new();
    broken_after_first_batch(&h);
    let (_, report, _) = h.run(&v2(&[("ON_FAILURE", "pause")]));
    let outcome = &report.rollouts[0];
    assert_eq!((outcome.policy, outcome.rolled_back.len()), (OnFailure::Pause, 0));
    let seen = h.observe();
    let images: Vec<String> = WEB.iter().map(|w| seen.containers[*w].spec().unwrap().image).collect();
    assert_eq!(images, [NEW_IMAGE, NEW_IMAGE, "shop/app:1.0", "shop/app:1.0", "shop/app:1.0", "shop/app:1.0"]);
}

#[test]
fn on_failure_continue_goes_on_with_the_other_batches() {
    let h = Harness::new();
    broken_after_first_batch(&h);
    let (_, report, _) = h.run(&v2(&[("ON_FAILURE", "continue")]));
    assert!(report.not_started.is_empty(), "{report:?}");
    assert_eq!(report.rollouts[0].failed, ["shop-web-3", "shop-web-4", "shop-web-5", "shop-web-6"]);
    assert!(report.rollouts[0].rolled_back.is_empty());
}

#[test]
fn scale_rollback_goes_back_to_the_previous_spec_as_a_rollout() {
    let h = Harness::new();
    let err = scale::ops::rollback::previous_desired(&v2(&[]), &h.observe(), "web").expect_err("nothing replaced yet");
    assert!(err.to_string().contains("nothing to roll back to"), "{err}");
    let (_, report, _) = h.run(&v2(&[]));
    assert!(report.succeeded());

    let back = scale::ops::rollback::previous_desired(&v2(&[]), &h.observe(), "web").expect("a previous spec");
    let p = h.plan(&back);
    assert_eq!(p.rollouts[0].batches.len(), 3, "the service's policy applies:\n{}", render_text(&p));
    let (report, _) = h.execute(&p);
    assert!(report.succeeded());
    assert_eq!(h.images(), ["shop/app:1.0"; 6]);
    // After a paused rollout only the replaced replicas go back; the others stay as they run.
    h.engine.make_unhealthy_after(NEW_IMAGE, 2);
    let (_, report, _) = h.run(&v2(&[("ON_FAILURE", "pause")]));
    assert!(!report.succeeded());
    let back = scale::ops::rollback::previous_desired(&v2(&[]), &h.observe(), "web").expect("a previous spec");
    let p = h.plan(&back);
    let recreated: Vec<String> =
        p.actions.iter().filter(|a| a.op.verb() == Verb::Recreate).map(|a| a.op.target()).collect();
    assert_eq!(recreated, ["shop-web-1", "shop-web-2"], "{}", render_text(&p));
    let (report, _) = h.execute(&p);
    assert!(report.succeeded());
    assert_eq!(h.images(), ["shop/app:1.0"; 6]);
    // Rolling back is itself a change that can be undone.
    let seen = h.observe();
    assert_eq!(seen.containers["shop-web-1"].previous_spec().unwrap().image, NEW_IMAGE);
    assert!(scale::ops::rollback::previous_desired(&v2(&[]), &seen, "nope").is_err());
}
