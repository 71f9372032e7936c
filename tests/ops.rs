//! The reconcile layer over the in-memory engine: an apply pass converges and a second one
//! finds nothing to do; a watch pass takes the project lock only when something needs
//! repairing, gives it back, and repairs drift; the review hook can stop a pass.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use scale::desired::{DesiredState, desired_state};
use scale::diag::Diagnostic;
use scale::engine::Engine;
use scale::engine::fake::FakeEngine;
use scale::exec::{ExecOptions, ExecReport, execute};
use scale::model::{Blueprint, Build, Env, load_bytes};
use scale::ops::apply::{Applied, ApplyHooks, Review, apply};
use scale::ops::watch::{Controller, Locked, Pass, pass};
use scale::plan::Plan;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime")
}

fn loaded() -> (Blueprint, DesiredState) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plan/shop.yaml");
    let bytes = std::fs::read(&path).expect("the fixture");
    let bp = load_bytes(&path, &bytes, &Env::default()).unwrap_or_else(|d| panic!("{d}"));
    let hasher = |_: &Build| Ok::<String, Diagnostic>("0123456789abcdef0123".into());
    let desired = desired_state(&bp, "shop", &hasher).unwrap_or_else(|d| panic!("{d:?}"));
    (bp, desired)
}

fn opts() -> ExecOptions {
    ExecOptions {
        parallel: 8,
        ready_timeout: Duration::from_secs(5),
        log_lines: 5,
        settle: Duration::ZERO,
        removals: None,
    }
}

async fn run(engine: &FakeEngine, plan: &Plan) -> ExecReport {
    execute(engine, plan, &opts(), &|_| {}, &AtomicBool::new(false)).await
}

/// Records what the pass showed and decides the review.
struct Recorder {
    review: Review,
    planned: usize,
    executed: usize,
}

impl ApplyHooks<FakeEngine> for Recorder {
    fn planned(&mut self, _plan: &Plan) {
        self.planned += 1;
    }

    async fn review(&mut self, _plan: &Plan) -> Review {
        self.review
    }

    async fn execute(&mut self, engine: &FakeEngine, plan: &Plan) -> Option<ExecReport> {
        self.executed += 1;
        Some(run(engine, plan).await)
    }
}

#[test]
fn an_apply_pass_converges_and_the_next_one_is_in_sync() {
    let (_, desired) = loaded();
    let engine = FakeEngine::new();
    let rt = runtime();
    let mut hooks = Recorder { review: Review::Proceed, planned: 0, executed: 0 };
    let first = rt.block_on(apply(&engine, &desired, &mut hooks)).expect("applies");
    let Applied::Done { plan, report, after } = first else { panic!("expected Done, got {first:?}") };
    assert!(report.succeeded() && plan.has_changes());
    assert_eq!(after.expect("observed after").containers.len(), desired.containers.len());
    let second = rt.block_on(apply(&engine, &desired, &mut hooks)).expect("applies");
    assert!(matches!(second, Applied::InSync { .. }), "{second:?}");
    assert_eq!((hooks.planned, hooks.executed), (2, 1), "every plan is shown, only changes run");
}

#[test]
fn a_declined_review_changes_nothing() {
    let (_, desired) = loaded();
    let engine = FakeEngine::new();
    let mut hooks = Recorder { review: Review::Declined, planned: 0, executed: 0 };
    let outcome = runtime().block_on(apply(&engine, &desired, &mut hooks)).expect("plans");
    assert!(matches!(outcome, Applied::Stopped(Review::Declined)), "{outcome:?}");
    assert_eq!(hooks.executed, 0);
    assert_eq!(engine.write_count(), 0, "nothing was written to the engine");
}

/// A controller that counts lock round trips and runs plans directly.
#[derive(Default)]
struct Counting {
    locked: usize,
    unlocked: usize,
}

impl Controller<FakeEngine> for Counting {
    type Lock = ();

    async fn lock(&mut self, _engine: &FakeEngine, _project: &str) -> Locked<()> {
        self.locked += 1;
        Locked::Taken(())
    }

    async fn unlock(&mut self, _lock: ()) {
        self.unlocked += 1;
    }

    async fn execute(&mut self, engine: &FakeEngine, plan: &Plan) -> Option<ExecReport> {
        Some(run(engine, plan).await)
    }

    fn log(&self, _text: &str, _value: serde_json::Value) {}

    fn repairing(&self, _why: &str, _plan: &Plan) {}
}

#[test]
fn a_watch_pass_locks_only_to_repair_and_always_unlocks() {
    let (bp, desired) = loaded();
    let engine = FakeEngine::new();
    let rt = runtime();
    let mut ctl = Counting::default();
    assert_eq!(rt.block_on(pass(&engine, &bp, &desired, &mut ctl, "start")), Ok(Pass::Repaired));
    assert_eq!((ctl.locked, ctl.unlocked), (1, 1));

    assert_eq!(rt.block_on(pass(&engine, &bp, &desired, &mut ctl, "resync")), Ok(Pass::InSync));
    assert_eq!((ctl.locked, ctl.unlocked), (1, 1), "an in-sync pass takes no lock");

    engine.remove_by_hand("shop-web-3");
    assert_eq!(rt.block_on(pass(&engine, &bp, &desired, &mut ctl, "event")), Ok(Pass::Repaired));
    assert_eq!((ctl.locked, ctl.unlocked), (2, 2));
    let observed = rt.block_on(engine.observe("shop")).expect("observes");
    assert!(observed.containers.contains_key("shop-web-3"), "the removed container is back");
}

/// A lock that cannot be taken fails the pass (to be retried), with nothing changed.
#[test]
fn a_pass_that_cannot_lock_fails_without_changing_anything() {
    struct NoLock;
    impl Controller<FakeEngine> for NoLock {
        type Lock = ();
        async fn lock(&mut self, _engine: &FakeEngine, _project: &str) -> Locked<()> {
            Locked::Failed("the engine refused".into())
        }
        async fn unlock(&mut self, _lock: ()) {
            panic!("nothing to give back");
        }
        async fn execute(&mut self, _engine: &FakeEngine, _plan: &Plan) -> Option<ExecReport> {
            panic!("nothing may run without the lock");
        }
        fn log(&self, _text: &str, _value: serde_json::Value) {}
        fn repairing(&self, _why: &str, _plan: &Plan) {}
    }
    let (bp, desired) = loaded();
    let engine = FakeEngine::new();
    assert_eq!(
        runtime().block_on(pass(&engine, &bp, &desired, &mut NoLock, "start")),
        Ok(Pass::Failed(scale::engine::classify::Retry::Backoff))
    );
    assert_eq!(engine.write_count(), 0);
}
