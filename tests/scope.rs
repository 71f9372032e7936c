//! `apply --only SERVICE` and `apply --replace NAME` against the in-memory engine: the plan
//! touches one service and what it needs, or replaces exactly the named container, with
//! "replace requested" as its reason; a name the blueprint lacks is an error naming what is.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use scale::desired::DesiredState;
use scale::engine::Engine;
use scale::engine::fake::FakeEngine;
use scale::exec::{ExecOptions, execute};
use scale::observed::ObservedState;
use scale::plan::{Plan, Scope, needed_services, plan_scoped, render_text};

#[path = "common/plan_fixture.rs"]
mod plan_fixture;

fn desired(vars: &[(&str, &str)]) -> DesiredState {
    plan_fixture::desired_fixture("shop.yaml", vars)
}

struct Harness {
    engine: FakeEngine,
    rt: tokio::runtime::Runtime,
}

impl Harness {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime");
        Harness { engine: FakeEngine::new(), rt }
    }

    fn observe(&self) -> ObservedState {
        self.rt.block_on(self.engine.observe("shop")).expect("the fake observes")
    }

    fn plan(&self, d: &DesiredState, scope: &Scope) -> Plan {
        plan_scoped(d, &self.observe(), scope).expect("a plan")
    }

    fn run(&self, plan: &Plan) {
        let opts = ExecOptions { ready_timeout: Duration::from_secs(5), settle: Duration::ZERO, ..Default::default() };
        let report = self.rt.block_on(execute(&self.engine, plan, &opts, &|_| {}, &AtomicBool::new(false)));
        assert!(report.succeeded(), "{report:?}");
    }
}

fn targets(plan: &Plan) -> Vec<String> {
    plan.actions.iter().map(|a| format!("{} {}", a.op.verb(), a.op.target())).collect()
}

#[test]
fn only_touches_the_service_and_what_it_needs() {
    let h = Harness::new();
    let d = desired(&[("WEB_REPLICAS", "2")]);
    let scope = Scope::resolve(&d, Some("worker"), &[]).expect("worker exists");
    let plan = h.plan(&d, &scope);
    let mut got = targets(&plan);
    got.sort();
    assert_eq!(
        got,
        [
            "create network shop_private",
            "create shop-db-1",
            "create shop-worker-1",
            "create volume shop_pgdata",
            "pull postgres:17",
            "pull shop/worker:1.0",
        ],
        "the worker, the db it depends on, and their network, volume and images; no proxy, web or cache:\n{}",
        render_text(&plan)
    );
    h.run(&plan);

    // Everything else applied later; then --only leaves the others alone even when they drift.
    let full = h.plan(&d, &Scope::default());
    h.run(&full);
    let changed = desired(&[("WEB_REPLICAS", "2"), ("GREETING", "hi"), ("DB_PASSWORD", "other")]);
    let only_web = h.plan(&changed, &Scope::resolve(&changed, Some("web"), &[]).expect("web exists"));
    let got = targets(&only_web);
    assert!(
        got.contains(&"recreate shop-web-1".to_string()) && got.contains(&"recreate shop-db-1".to_string()),
        "{got:?}"
    );
    assert!(!got.iter().any(|t| t.contains("proxy") || t.contains("worker")), "{got:?}");
}

#[test]
fn replace_forces_one_container_and_says_so() {
    let h = Harness::new();
    let d = desired(&[("WEB_REPLICAS", "3")]);
    h.run(&h.plan(&d, &Scope::default()));
    assert!(!h.plan(&d, &Scope::default()).has_changes());
    let scope = Scope::resolve(&d, None, &["web-2".to_string()]).expect("web-2 exists");
    let plan = h.plan(&d, &scope);
    let lines: Vec<String> =
        plan.actions.iter().map(|a| format!("{} {}: {}", a.op.verb(), a.op.target(), a.reason)).collect();
    assert_eq!(lines, ["recreate shop-web-2: replace requested"], "{}", render_text(&plan));
    insta::assert_snapshot!("replace_requested", render_text(&plan));
    h.run(&plan);
    assert!(!h.plan(&d, &Scope::default()).has_changes(), "converged after the replacement");
}

#[test]
fn unknown_names_are_errors_that_list_what_there_is() {
    let d = desired(&[("WEB_REPLICAS", "1")]);
    let err = Scope::resolve(&d, Some("wbe"), &[]).expect_err("no such service").to_string();
    assert_eq!(err, "--only wbe: the blueprint has no service wbe (services: db, cache, web, proxy, worker)");
    let err = Scope::resolve(&d, None, &["web-9".into()]).expect_err("no such container").to_string();
    assert!(
        err.starts_with("--replace web-9: the blueprint has no container web-9 (containers: cache-1, db-1"),
        "{err}"
    );
    let outside = Scope::resolve(&d, Some("db"), &["web-1".into()]).expect_err("web is not db's").to_string();
    assert_eq!(outside, "--replace web-1 is outside --only db, which touches only db");
    let full = Scope::resolve(&d, None, &["shop-web-1".into()]).expect("full names work too");
    assert!(full.replace.contains("shop-web-1"));
}

#[test]
fn a_load_balancer_needs_its_backends() {
    let d = plan_fixture::desired_at("blueprints/03-load-balancer.yaml", &[]);
    let needed: Vec<String> = needed_services(&d, "lb").into_iter().collect();
    assert_eq!(needed, ["db", "lb", "web"], "lb → its backend web → web's dependency db");
    let needed: Vec<String> = needed_services(&d, "web").into_iter().collect();
    assert_eq!(needed, ["db", "web"], "nothing needs the load balancer");
}
