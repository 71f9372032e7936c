//! The planner and executor together, over the in-memory engine: what a plan contains, why,
//! in which order it runs, and that running it leaves nothing to do.
//!
//! Fixtures live in `tests/fixtures/plan/`; the text renderings are snapshot-tested in
//! `tests/snapshots/`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use scale::desired::{DesiredState, Readiness};
use scale::engine::Engine;
use scale::engine::fake::FakeEngine;
use scale::exec::{ExecEvent, ExecOptions, ExecReport, execute};
use scale::observed::{Health, ObservedState, RunState};
use scale::plan::{Action, ActionId, Op, Plan, Resource, Verb, plan, render_json, render_text};

#[path = "common/plan_fixture.rs"]
mod plan_fixture;

const WEB: [&str; 6] = ["shop-web-1", "shop-web-2", "shop-web-3", "shop-web-4", "shop-web-5", "shop-web-6"];
const WEB_IMAGE: &str = "shop/app:1.0";

fn desired(file: &str, vars: &[(&str, &str)]) -> DesiredState {
    plan_fixture::desired_fixture(file, vars)
}

/// One executed plan: how it ended and every event, in order.
struct Run {
    report: ExecReport,
    events: Vec<ExecEvent>,
}

impl Run {
    fn position(&self, wanted: impl Fn(&ExecEvent) -> bool) -> usize {
        self.events.iter().position(wanted).expect("the event happened")
    }

    fn started_at(&self, id: ActionId) -> usize {
        self.position(|e| matches!(e, ExecEvent::Started { id: i } if *i == id))
    }

    fn finished_at(&self, id: ActionId) -> usize {
        self.position(|e| matches!(e, ExecEvent::Finished { id: i, .. } if *i == id))
    }

    /// Every action started only after everything it waits for had finished.
    fn assert_respects(&self, plan: &Plan) {
        for action in &plan.actions {
            if !self.events.iter().any(|e| matches!(e, ExecEvent::Started { id } if *id == action.id)) {
                continue;
            }
            let started = self.started_at(action.id);
            for &dep in &action.after {
                assert!(
                    self.finished_at(dep) < started,
                    "action {} ({}) started before {dep} finished",
                    action.id,
                    action.op.target()
                );
            }
        }
    }
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

    fn observe(&self, project: &str) -> ObservedState {
        self.rt.block_on(self.engine.observe(project)).expect("the fake observes")
    }

    fn plan(&self, desired: &DesiredState) -> Plan {
        plan(desired, &self.observe(&desired.project)).expect("a plan")
    }

    fn execute(&self, plan: &Plan) -> Run {
        let events = Mutex::new(Vec::new());
        let sink = |e: ExecEvent| events.lock().unwrap().push(e);
        let opts = ExecOptions {
            parallel: 8,
            ready_timeout: Duration::from_secs(5),
            log_lines: 5,
            settle: Duration::ZERO, /* the fake's containers never exit by themselves */
            removals: None,
        };
        let report = self.rt.block_on(execute(&self.engine, plan, &opts, &sink, &AtomicBool::new(false)));
        let run = Run { report, events: events.into_inner().unwrap() };
        run.assert_respects(plan);
        run
    }

    /// Plans and executes, insisting that it all worked and that nothing is left to do.
    fn apply(&self, desired: &DesiredState) -> (Plan, Run) {
        let plan = self.plan(desired);
        let run = self.execute(&plan);
        assert!(run.report.succeeded(), "apply failed: {:?}", run.events);
        assert_eq!(run.report.finished.len(), plan.actions.len());
        let again = self.plan(desired);
        assert!(!again.has_changes(), "not converged:\n{}", render_text(&again));
        (plan, run)
    }

    /// Container name → ID, for the project's containers.
    fn ids(&self, project: &str) -> BTreeMap<String, String> {
        self.observe(project).containers.into_iter().map(|(name, c)| (name, c.id)).collect()
    }

    fn hash_of(&self, project: &str, name: &str) -> String {
        self.observe(project).containers[name].spec_hash().expect("a spec hash label").to_string()
    }
}

fn action<'p>(plan: &'p Plan, verb: &str, target: &str) -> &'p Action {
    plan.actions
        .iter()
        .find(|a| a.op.verb().as_str() == verb && a.op.target() == target)
        .unwrap_or_else(|| panic!("no `{verb} {target}` in\n{}", render_text(plan)))
}

fn lines(plan: &Plan) -> Vec<String> {
    plan.actions.iter().map(|a| format!("{} {}: {}", a.op.verb(), a.op.target(), a.reason)).collect()
}

// --- first apply and no-op -------------------------------------------------------------

#[test]
fn first_apply_creates_everything_in_dependency_order_and_a_second_run_writes_nothing() {
    let h = Harness::new();
    let d = desired("shop.yaml", &[]);
    assert_eq!(d.containers.len(), 10);

    let p = h.plan(&d);
    assert_eq!(p.counts(), BTreeMap::from([(Verb::Create, 13), (Verb::Pull, 5)]));
    let created: Vec<String> =
        p.actions.iter().filter(|a| a.op.resource() == Resource::Container).map(|a| a.op.target()).collect();
    let mut expected: Vec<String> = d.containers.keys().cloned().collect();
    let mut got = created.clone();
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    assert!(p.actions.iter().all(|a| a.reason == "missing" || a.reason == "not present locally"));
    match &action(&p, "create", "network shop_private").op {
        Op::CreateNetwork { spec } => assert!(spec.internal),
        other => panic!("{other:?}"),
    }
    match &action(&p, "create", "network shop_public").op {
        Op::CreateNetwork { spec } => assert!(!spec.internal),
        other => panic!("{other:?}"),
    }

    // Every container waits for its image, networks and volume; dependents for their dependencies.
    let db = action(&p, "create", "shop-db-1");
    assert!(db.after.contains(&action(&p, "create", "volume shop_pgdata").id));
    assert!(db.after.contains(&action(&p, "pull", "postgres:17").id));
    assert!(db.after.contains(&action(&p, "create", "network shop_private").id));
    let worker = action(&p, "create", "shop-worker-1");
    assert!(worker.after.contains(&db.id));
    let cache = action(&p, "create", "shop-cache-1");
    for web in WEB {
        let web = action(&p, "create", web);
        assert!(web.after.contains(&db.id) && web.after.contains(&cache.id), "{web:?}");
        assert!(
            !web.after.iter().any(|&id| p.actions[id].service.as_deref() == Some("web")),
            "replicas start together"
        );
    }
    let proxy = action(&p, "create", "shop-proxy-1");
    for web in WEB {
        assert!(proxy.after.contains(&action(&p, "create", web).id));
    }

    let run = h.execute(&p);
    assert!(run.report.succeeded(), "{:?}", run.events);
    assert_eq!(run.report.finished.len(), p.actions.len());
    let db_done = run.finished_at(db.id);
    assert!(db_done < run.started_at(worker.id));
    for web in WEB {
        assert!(db_done < run.started_at(action(&p, "create", web).id));
        assert!(run.finished_at(action(&p, "create", web).id) < run.started_at(proxy.id));
    }

    let seen = h.observe("shop");
    assert_eq!(seen.containers.len(), 10);
    for (name, c) in &seen.containers {
        assert_eq!(c.state, RunState::Running, "{name}");
        assert_eq!(c.spec_hash(), Some(d.containers[name].hash().as_str()), "{name}");
    }
    for web in WEB {
        assert_eq!(seen.containers[web].health, Some(Health::Healthy));
    }
    assert!(seen.networks["shop_private"].internal);
    assert!(!seen.networks["shop_public"].internal);
    assert!(seen.volumes.contains_key("shop_pgdata"));

    // Level-triggered: the same blueprint again is a no-op, and executing it writes nothing.
    let again = h.plan(&d);
    assert!(!again.has_changes());
    assert_eq!(render_text(&again), "No changes: project shop matches the blueprint.\n");
    let writes = h.engine.write_count();
    let run = h.execute(&again);
    assert!(run.report.succeeded() && run.report.finished.is_empty() && run.events.is_empty());
    assert_eq!(h.engine.write_count(), writes, "a no-op apply wrote to the engine");
}

#[test]
fn images_already_present_are_not_pulled() {
    let h = Harness::new();
    let d = desired("shop.yaml", &[]);
    for image in d.images.keys() {
        h.engine.add_image(image);
    }
    let p = h.plan(&d);
    assert_eq!(p.counts(), BTreeMap::from([(Verb::Create, 13)]));
    h.apply(&d);
}

// --- changes ---------------------------------------------------------------------------

#[test]
fn changing_one_variable_recreates_exactly_the_web_replicas_one_after_another() {
    let h = Harness::new();
    h.apply(&desired("shop.yaml", &[]));
    let before = h.ids("shop");

    let d = desired("shop.yaml", &[("GREETING", "hi")]);
    let p = h.plan(&d);
    assert_eq!(p.actions.len(), 6, "{}", render_text(&p));
    for (i, (a, name)) in p.actions.iter().zip(WEB).enumerate() {
        assert!(matches!(a.op, Op::RecreateContainer { .. }), "{a:?}");
        assert_eq!(a.op.target(), name);
        assert_eq!(a.reason, "environment GREETING changed (hello → hi)");
        assert_eq!(a.service.as_deref(), Some("web"));
        if i > 0 {
            assert!(a.after.contains(&p.actions[i - 1].id), "{name} does not wait for the previous replica");
        }
    }
    assert!(render_text(&p).contains("  ~ recreate shop-web-2: environment GREETING changed (hello → hi)\n"));

    let run = h.execute(&p);
    assert!(run.report.succeeded());
    for pair in p.actions.windows(2) {
        assert!(run.finished_at(pair[0].id) < run.started_at(pair[1].id), "rolling, one at a time");
    }
    let after = h.ids("shop");
    assert_eq!(after.len(), 10);
    for (name, id) in &before {
        if WEB.contains(&name.as_str()) {
            assert_ne!(&after[name], id, "{name} was not replaced");
            assert_eq!(h.hash_of("shop", name), d.containers[name].hash());
        } else {
            assert_eq!(&after[name], id, "{name} was touched");
        }
    }
    assert!(!h.plan(&d).has_changes());
}

#[test]
fn scaling_down_removes_only_the_highest_replicas_and_scaling_up_adds_them_back() {
    let h = Harness::new();
    h.apply(&desired("shop.yaml", &[]));
    let before = h.ids("shop");

    let three = desired("shop.yaml", &[("WEB_REPLICAS", "3")]);
    let p = h.plan(&three);
    assert_eq!(
        lines(&p),
        ["remove shop-web-4: replicas 6 → 3", "remove shop-web-5: replicas 6 → 3", "remove shop-web-6: replicas 6 → 3"]
    );
    assert!(p.actions.iter().all(|a| matches!(a.op, Op::RemoveContainer { .. })));
    h.execute(&p);
    let after = h.ids("shop");
    let mut expected = before.clone();
    for gone in &WEB[3..] {
        expected.remove(*gone);
    }
    assert_eq!(after, expected, "everything else keeps its ID");
    assert!(!h.plan(&three).has_changes());

    let six = desired("shop.yaml", &[]);
    let p = h.plan(&six);
    assert_eq!(lines(&p), ["create shop-web-4: missing", "create shop-web-5: missing", "create shop-web-6: missing"]);
    h.apply(&six);
    let again = h.ids("shop");
    for (name, id) in &expected {
        assert_eq!(&again[name], id, "{name} was touched by scaling up");
    }
}

#[test]
fn drift_is_explained_and_repaired() {
    let h = Harness::new();
    let d = desired("shop.yaml", &[]);
    h.apply(&d);
    let before = h.ids("shop");
    h.engine.remove_by_hand("shop-cache-1");
    h.engine.stop_by_hand("shop-worker-1");

    let p = h.plan(&d);
    assert_eq!(lines(&p), ["create shop-cache-1: missing", "start shop-worker-1: stopped (exited with code 137)"]);
    assert!(!p.actions.iter().any(|a| a.op.is_destructive()));
    let text = render_text(&p);
    assert!(text.contains("  + create shop-cache-1: missing\n"), "{text}");
    assert!(text.contains("  > start shop-worker-1: stopped (exited with code 137)\n"), "{text}");

    h.apply(&d);
    let after = h.ids("shop");
    assert_ne!(after["shop-cache-1"], before["shop-cache-1"]);
    assert_eq!(after["shop-worker-1"], before["shop-worker-1"], "a stopped container is started, not replaced");
    assert_eq!(h.observe("shop").containers["shop-worker-1"].state, RunState::Running);
}

#[test]
fn an_old_container_left_stepped_aside_by_an_interrupted_replacement_is_removed() {
    let h = Harness::new();
    let d = desired("shop.yaml", &[]);
    h.apply(&d);
    // A start-first hand-over renames the old container aside before its stop; a run
    // interrupted there leaves it running under that name.
    let id = h.ids("shop")["shop-web-1"].clone();
    let retired = scale::plan::retired_name("shop-web-1", &id);
    h.rt.block_on(h.engine.rename_container(&id, "shop-web-1", &retired)).expect("renamed");
    assert!(scale::plan::is_retired(&retired) && !scale::plan::is_retired("shop-web-1"));

    let p = h.plan(&d);
    let mut want = vec![format!("remove {retired}: old container of an interrupted replacement")];
    want.push("create shop-web-1: missing".into());
    let mut got = lines(&p);
    got.sort();
    want.sort();
    assert_eq!(got, want, "{}", render_text(&p));
    h.apply(&d);
    let after = h.ids("shop");
    assert!(after.keys().all(|name| !scale::plan::is_retired(name)), "{after:?}");
    assert!(!h.plan(&d).has_changes());
}

#[test]
fn secret_values_never_appear_in_text_or_json_plans() {
    let h = Harness::new();
    let first = desired("shop.yaml", &[]);
    assert_eq!(first.containers["shop-db-1"].env["DB_PASSWORD"], "s3cret-pw");
    let p = h.plan(&first);
    for shown in [render_text(&p), render_json(&p).to_string()] {
        assert!(!shown.contains("s3cret-pw"), "{shown}");
    }
    h.apply(&first);

    let changed = desired("shop.yaml", &[("DB_PASSWORD", "n3w-s3cret")]);
    let p = h.plan(&changed);
    assert_eq!(lines(&p), ["recreate shop-db-1: environment DB_PASSWORD changed (value hidden)"]);
    for shown in [render_text(&p), render_json(&p).to_string(), format!("{:?}", lines(&p))] {
        assert!(!shown.contains("s3cret-pw") && !shown.contains("n3w-s3cret"), "{shown}");
    }
}

/// A container that waits only for others to be ready is created while they turn ready, and
/// only its start waits: when the database never turns healthy, what depends on it exists,
/// created and never started, and the next plan only starts it.
#[test]
fn dependants_are_created_early_and_started_only_once_their_dependencies_are_ready() {
    let h = Harness::new();
    h.engine.make_unhealthy("postgres:17");
    let p = h.plan(&desired("shop.yaml", &[]));
    let run = h.execute(&p);
    assert!(!run.report.succeeded());
    let action_of = |name: &str| p.actions.iter().find(|a| a.op.target() == name).map(|a| a.id).unwrap();
    let seen = h.observe("shop");
    for waiting in ["shop-web-1", "shop-web-6", "shop-worker-1"] {
        let id = action_of(waiting);
        assert!(run.report.not_started.contains(&id), "{waiting} must not have run");
        assert!(!run.events.contains(&ExecEvent::Started { id }), "{waiting} started");
        assert_eq!(seen.containers[waiting].state, RunState::Created, "{waiting} was created early");
    }
    let next = lines(&h.plan(&desired("shop.yaml", &[])));
    assert!(next.iter().any(|l| l.starts_with("start shop-web-1")), "{next:#?}");
    assert!(!next.iter().any(|l| l.starts_with("create shop-web-1")), "{next:#?}");
}

#[test]
fn a_failing_healthcheck_stops_the_rollout_after_the_first_replacement() {
    let h = Harness::new();
    let old = desired("shop.yaml", &[]);
    h.apply(&old);
    let before = h.ids("shop");
    h.engine.make_unhealthy(WEB_IMAGE);

    let new = desired("shop.yaml", &[("GREETING", "hi")]);
    let p = h.plan(&new);
    assert_eq!(p.actions.len(), 6);
    let run = h.execute(&p);
    assert!(!run.report.succeeded());
    assert_eq!(run.report.failed, [p.actions[0].id]);
    assert_eq!(run.report.finished, Vec::<ActionId>::new());
    assert_eq!(run.report.not_started, p.actions[1..].iter().map(|a| a.id).collect::<Vec<_>>());
    let failure = run
        .events
        .iter()
        .find_map(|e| match e {
            ExecEvent::Failed { id, failure, .. } if *id == p.actions[0].id => Some(failure.clone()),
            _ => None,
        })
        .expect("a Failed event for shop-web-1");
    assert!(failure.message.contains("shop-web-1") && failure.message.contains("unhealthy"), "{}", failure.message);
    for a in &p.actions[1..] {
        assert!(run.events.contains(&ExecEvent::NotStarted { id: a.id }));
        assert!(!run.events.contains(&ExecEvent::Started { id: a.id }));
    }

    // The replacement started beside the old container (no fixed port, no volume), so no
    // replica had been replaced yet: the rollback (the default policy) only removes the
    // failed new container, and every old replica still serves.
    let [rollout] = &run.report.rollouts[..] else { panic!("one failed rollout: {:?}", run.report.rollouts) };
    assert_eq!(rollout.failed, ["shop-web-1"]);
    assert!(rollout.rolled_back.is_empty() && rollout.rollback_failed.is_empty(), "{rollout:?}");
    let seen = h.observe("shop");
    assert!(!seen.containers.contains_key("shop-web-1.next"), "the failed new container is gone");
    for web in WEB {
        assert_eq!(seen.containers[web].spec_hash(), Some(old.containers[web].hash().as_str()), "{web}");
        assert_eq!(seen.containers[web].id, before[web]);
        assert_eq!(seen.containers[web].health, Some(Health::Healthy));
    }

    // The next run tries the whole service again.
    let rest = h.plan(&new);
    let targets: Vec<String> =
        rest.actions.iter().filter(|a| a.op.verb() == Verb::Recreate).map(|a| a.op.target()).collect();
    assert_eq!(targets, WEB);
}

// --- ownership and ordering ------------------------------------------------------------

#[test]
fn foreign_containers_are_never_observed_or_touched() {
    let h = Harness::new();
    h.engine.add_foreign_container("bystander");
    h.apply(&desired("stage-a.yaml", &[]));

    // The project's app container goes away by hand and someone else takes its name.
    h.engine.remove_by_hand("stage-app-1");
    h.engine.add_foreign_container("stage-app-1");
    let foreign: BTreeMap<String, String> =
        h.engine.containers().into_iter().filter(|c| c.labels.is_empty()).map(|c| (c.name, c.id)).collect();
    assert_eq!(foreign.len(), 2);
    assert!(!h.observe("stage").containers.contains_key("stage-app-1"));

    // A blueprint without `app`: nothing to remove, the impostor stays.
    let b = desired("stage-b.yaml", &[]);
    let p = h.plan(&b);
    assert!(p.actions.iter().all(|a| !a.op.target().contains("stage-app")), "{}", render_text(&p));
    h.apply(&b);

    // A blueprint that wants the name: the create fails, and the other container is left alone.
    let a = desired("stage-a.yaml", &[]);
    let p = h.plan(&a);
    let create = action(&p, "create", "stage-app-1");
    let run = h.execute(&p);
    assert_eq!(run.report.failed, [create.id]);
    let message = run
        .events
        .iter()
        .find_map(|e| match e {
            ExecEvent::Failed { failure, .. } => Some(failure.message.clone()),
            _ => None,
        })
        .expect("a failure");
    assert!(message.contains("scale does not manage"), "{message}");

    let still: BTreeMap<String, String> =
        h.engine.containers().into_iter().filter(|c| c.labels.is_empty()).map(|c| (c.name, c.id)).collect();
    assert_eq!(still, foreign);
}

#[test]
fn a_freed_host_port_is_claimed_only_after_its_holder_is_removed() {
    let h = Harness::new();
    h.apply(&desired("stage-a.yaml", &[]));
    let b = desired("stage-b.yaml", &[]);
    let p = h.plan(&b);
    let remove = action(&p, "remove", "stage-app-1");
    assert_eq!(remove.reason, "service app is no longer in the blueprint");
    let lb = action(&p, "create", "stage-lb-1");
    assert!(lb.after.contains(&remove.id), "{lb:?}");
    for web in ["stage-web-1", "stage-web-2"] {
        let web = action(&p, "create", web);
        assert!(!web.after.contains(&remove.id), "random host ports need not wait: {web:?}");
        assert!(lb.after.contains(&web.id), "lb depends on web");
    }
    let (_, run) = h.apply(&b);
    assert!(run.finished_at(remove.id) < run.started_at(lb.id));
    let seen = h.observe("stage");
    assert_eq!(seen.containers["stage-lb-1"].ports[0].host_port, 8080);
}

#[test]
fn a_host_port_moving_to_a_service_planned_earlier_is_freed_first() {
    // `web` (planned first) takes 8080 from `api`, which is replaced without it. A recreate
    // of `api` planned after `web` would free the port too late: the old `api` goes first.
    let h = Harness::new();
    h.apply(&desired("port-move-a.yaml", &[]));
    let before = h.ids("move");
    let b = desired("port-move-b.yaml", &[]);
    let p = h.plan(&b);
    assert_eq!(
        lines(&p),
        [
            "remove move-api-1: frees host port 8080 for move-web-1 (created again below)",
            "recreate move-web-1: ports none → 8080:80",
            "create move-api-1: ports 8080:80 → 80",
        ]
    );
    let remove = action(&p, "remove", "move-api-1");
    let web = action(&p, "recreate", "move-web-1");
    let api = action(&p, "create", "move-api-1");
    assert!(web.after.contains(&remove.id), "{web:?}");
    assert!(api.after.contains(&remove.id), "the name is free only once the old one is gone: {api:?}");
    let (_, run) = h.apply(&b);
    assert!(run.finished_at(remove.id) < run.started_at(web.id));
    let seen = h.observe("move");
    assert_eq!(seen.containers["move-web-1"].ports[0].host_port, 8080);
    assert_ne!(seen.containers["move-api-1"].id, before["move-api-1"]);
    assert_ne!(seen.containers["move-api-1"].ports[0].host_port, 8080);
}

#[test]
fn completed_successfully_dependencies_wait_for_the_job_to_finish() {
    let h = Harness::new();
    let d = desired("completed.yaml", &[]);
    let readiness: BTreeMap<&str, Readiness> = d.services.iter().map(|s| (s.name.as_str(), s.readiness)).collect();
    assert_eq!(readiness, BTreeMap::from([("migrate", Readiness::Completed), ("web", Readiness::Running)]));

    let p = h.plan(&d);
    let migrate = action(&p, "create", "jobs-migrate-1");
    assert!(matches!(migrate.op, Op::CreateContainer { readiness: Readiness::Completed, .. }));
    let web = action(&p, "create", "jobs-web-1");
    assert!(web.after.contains(&migrate.id));

    // The fake never exits on its own: play the job, which finishes once it is running.
    let events = Mutex::new(Vec::new());
    let sink = |e: ExecEvent| events.lock().unwrap().push(e);
    let opts = ExecOptions {
        parallel: 8,
        ready_timeout: Duration::from_secs(10),
        log_lines: 5,
        settle: Duration::ZERO, /* the fake's containers never exit by themselves */
        removals: None,
    };
    let job = async {
        loop {
            let running =
                h.engine.containers().into_iter().find(|c| c.name == "jobs-migrate-1" && c.state == RunState::Running);
            if let Some(c) = running {
                h.engine.stop_container(&c.id, &c.name, Duration::ZERO).await.expect("the job exits 0");
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let cancel = AtomicBool::new(false);
    let (report, ()) = h.rt.block_on(async { tokio::join!(execute(&h.engine, &p, &opts, &sink, &cancel), job) });
    let run = Run { report, events: events.into_inner().unwrap() };
    assert!(run.report.succeeded(), "{:?}", run.events);
    run.assert_respects(&p);
    assert!(run.finished_at(migrate.id) < run.started_at(web.id));

    // A job that exited 0 is done: nothing to do. One that was killed runs again.
    assert!(!h.plan(&d).has_changes(), "{}", render_text(&h.plan(&d)));
    h.engine.stop_by_hand("jobs-migrate-1");
    assert_eq!(lines(&h.plan(&d)), ["start jobs-migrate-1: stopped (exited with code 137)"]);
}

// --- the JSON document -------------------------------------------------------------------

#[test]
fn json_plan_document() {
    let h = Harness::new();
    let d = desired("shop.yaml", &[]);
    let p = h.plan(&d);
    let doc = render_json(&p);
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["project"], "shop");
    assert_eq!(doc["changes"], true);
    assert_eq!(doc["summary"], serde_json::json!({ "create": 13, "pull": 5 }));
    let actions = doc["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), p.actions.len());
    for (i, a) in actions.iter().enumerate() {
        assert_eq!(a["id"], i);
        for key in ["action", "resource", "name", "reason"] {
            assert!(a[key].is_string(), "{key} in {a}");
        }
        let after = a["after"].as_array().expect("after is a list");
        assert!(after.iter().all(|x| x.as_u64().is_some_and(|x| (x as usize) < i)), "{a}");
    }
    let network = &actions[action(&p, "create", "network shop_private").id];
    assert_eq!(
        network,
        &serde_json::json!({ "id": network["id"], "action": "create", "resource": "network", "name": "shop_private", "reason": "missing", "after": [] })
    );
    let web = &actions[action(&p, "create", "shop-web-1").id];
    assert_eq!(web["action"], "create");
    assert_eq!(web["resource"], "container");
    assert_eq!(web["name"], "shop-web-1");
    assert_eq!(web["service"], "web");
    assert_eq!(web["reason"], "missing");
    let pull = &actions[action(&p, "pull", "postgres:17").id];
    assert_eq!(
        (&pull["resource"], &pull["name"], &pull["reason"]),
        (&"image".into(), &"postgres:17".into(), &"not present locally".into())
    );

    h.apply(&d);
    let changed = render_json(&h.plan(&desired("shop.yaml", &[("GREETING", "hi")])));
    assert_eq!(changed["summary"], serde_json::json!({ "recreate": 6 }));
    let first = &changed["actions"][0];
    assert_eq!(first["action"], "recreate");
    assert_eq!(first["reason"], "environment GREETING changed (hello → hi)");
    assert_eq!(changed["actions"][1]["after"], serde_json::json!([0]));

    let none = render_json(&h.plan(&d));
    assert_eq!(none["changes"], false);
    assert_eq!(none["actions"], serde_json::json!([]));
}

// --- snapshots of the text rendering -----------------------------------------------------

/// The plan `h` makes for `d`, as a user reads it.
fn text(h: &Harness, d: &DesiredState) -> String {
    render_text(&h.plan(d))
}

#[test]
fn snapshot_first_apply() {
    let h = Harness::new();
    let text = text(&h, &desired("shop.yaml", &[]));
    insta::assert_snapshot!("first_apply", text);
}

#[test]
fn snapshot_env_change_on_replicas() {
    let h = Harness::new();
    h.apply(&desired("shop.yaml", &[]));
    let text = text(&h, &desired("shop.yaml", &[("GREETING", "hi")]));
    insta::assert_snapshot!("env_change", text);
}

#[test]
fn snapshot_scale_down() {
    let h = Harness::new();
    h.apply(&desired("shop.yaml", &[]));
    let text = text(&h, &desired("shop.yaml", &[("WEB_REPLICAS", "3")]));
    insta::assert_snapshot!("scale_down", text);
}

#[test]
fn snapshot_drift() {
    let h = Harness::new();
    let d = desired("shop.yaml", &[]);
    h.apply(&d);
    h.engine.remove_by_hand("shop-cache-1");
    h.engine.stop_by_hand("shop-worker-1");
    let text = text(&h, &d);
    insta::assert_snapshot!("drift", text);
}

#[test]
fn snapshot_no_op() {
    let h = Harness::new();
    let d = desired("shop.yaml", &[]);
    h.apply(&d);
    let text = text(&h, &d);
    insta::assert_snapshot!("no_op", text);
}

#[test]
fn snapshot_stage_transition() {
    let h = Harness::new();
    h.apply(&desired("stage-a.yaml", &[]));
    let text = text(&h, &desired("stage-b.yaml", &[]));
    insta::assert_snapshot!("stage_transition", text);
}

#[test]
fn snapshot_port_handover() {
    let h = Harness::new();
    h.apply(&desired("port-move-a.yaml", &[]));
    let text = text(&h, &desired("port-move-b.yaml", &[]));
    insta::assert_snapshot!("port_handover", text);
}

// --- database replicas -------------------------------------------------------------------

#[test]
fn a_replica_that_leaves_gives_up_its_replication_slot_on_the_primary() {
    let h = Harness::new();
    h.apply(&desired("replicas.yaml", &[("REPLICAS", "3")]));
    let p = h.plan(&desired("replicas.yaml", &[("REPLICAS", "1")]));
    assert_eq!(
        lines(&p),
        vec![
            "remove shop-db-3: replicas 4 → 2; drops its replication slot on shop-db-1",
            "remove shop-db-4: replicas 4 → 2; drops its replication slot on shop-db-1",
        ]
    );
    let Op::RemoveContainer { release_slot: Some(release), .. } = &action(&p, "remove", "shop-db-4").op else {
        panic!("no slot release in {:?}", p.actions)
    };
    assert_eq!((release.primary.as_str(), release.slot.as_str()), ("shop-db-1", "shop_db_4"));
    assert_eq!(release.primary_id, h.ids("shop")["shop-db-1"]);
    let run = h.execute(&p);
    assert!(run.report.succeeded(), "{:?}", run.events);
    let drops: Vec<String> =
        h.engine.commands().into_iter().filter(|(c, _)| c == "shop-db-1").map(|(_, cmd)| cmd).collect();
    assert_eq!(drops.len(), 2, "one slot drop per departed replica, on the primary: {drops:?}");
    assert!(drops.iter().all(|c| c.contains("pg_drop_replication_slot")), "{drops:?}");

    // Destroying the project drops no slot: the primary goes too.
    let again = h.plan(&desired("replicas.yaml", &[("REPLICAS", "1")]));
    assert!(!again.has_changes());
    let destroy = scale::plan::destroy_plan(&h.observe("shop"), false);
    assert!(
        destroy.actions.iter().all(|a| !matches!(&a.op, Op::RemoveContainer { release_slot: Some(_), .. })),
        "destroy plans no slot drops"
    );
}

#[test]
fn a_replica_that_cannot_stream_is_reseeded_with_the_reason_and_keeps_its_container() {
    let h = Harness::new();
    let d = desired("replicas.yaml", &[("REPLICAS", "1")]);
    h.apply(&d);
    let before = h.ids("shop");
    let mut seen = h.observe("shop");
    let why = "cannot stream: the WAL it needs (from 0/3000148) is gone from the primary shop-db-1";
    seen.stale_replicas.insert("shop-db-2".into(), why.into());
    let p = plan(&d, &seen).expect("a plan");
    assert_eq!(
        lines(&p),
        [format!("reseed shop-db-2: {why}; a fresh base backup (its old data is set aside in its volume, kept)")]
    );
    assert!(render_text(&p).contains("1 to reseed"), "{}", render_text(&p));
    let run = h.execute(&p);
    assert!(run.report.succeeded(), "{:?}", run.events);
    let marker = h.engine.file("shop-db-2", "/var/lib/postgresql/data/scale-reseed");
    assert!(marker.is_some(), "the entrypoint's marker was not written");
    assert_eq!(h.ids("shop")["shop-db-2"], before["shop-db-2"], "re-seeding restarts, it does not recreate");
    assert_eq!(h.observe("shop").containers["shop-db-2"].state, RunState::Running);
}

/// `zones:` spreads a service's containers over data centres in turn: each carries its zone as
/// a label, as `SCALE_ZONE` and as a `<service>-<zone>` alias; a service without `zones:`
/// gets none of them.
#[test]
fn zones_spread_containers_over_data_centres() {
    let d = desired("zones.yaml", &[]);
    let mut text = String::new();
    for c in d.containers.values() {
        let aliases: Vec<String> =
            c.networks.iter().map(|n| format!("{}={}", n.network, n.aliases.join("+"))).collect();
        text += &format!(
            "{}: label {:?}, SCALE_ZONE {:?}, networks {}\n",
            c.name,
            c.labels.get("io.scale.zone"),
            c.env.get("SCALE_ZONE"),
            aliases.join(" ")
        );
    }
    insta::assert_snapshot!("zones", text);
}
