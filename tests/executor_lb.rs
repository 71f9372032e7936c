//! The executor's load-balancer paths over the in-memory engine, with HAProxy's answers
//! scripted (`FakeEngine::on_exec`): a pool change reloads instead of recreating, a replaced
//! server is drained first and rejoins on probation, and a new or reloaded load balancer
//! counts as ready only once its whole pool is UP. No Docker needed.
//!
//! The script is a small model of HAProxy's runtime API: it answers `show stat` and
//! `show servers state` from the pool scale last wrote into the container, and records the
//! runtime commands in order, so each test asserts *when* something happened relative to
//! the rest (a drain while the old server still ran, back in rotation only once the checks
//! passed).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use scale::desired::DesiredState;
use scale::engine::fake::{FakeEngine, reply};
use scale::engine::observe_project;
use scale::exec::{ExecEvent, ExecOptions, ExecReport, execute};
use scale::kinds::load_balancer::{POOL_PATH, Pool, RELOAD_SIGNAL};
use scale::observed::{ObservedState, RunState};
use scale::plan::{Op, Plan, plan, render_text};

#[path = "common/plan_fixture.rs"]
mod plan_fixture;

const LB: &str = "shop-lb-1";

fn desired(vars: &[(&str, &str)]) -> DesiredState {
    plan_fixture::desired_fixture("lb.yaml", vars)
}

/// What the scripted HAProxy does and was told.
#[derive(Debug, Default)]
struct Haproxy {
    /// Runtime commands and notable answers, in order ("drain shop-web-1 (old running)").
    log: Vec<String>,
    /// Per server: how many more `show stat` answers report it MAINT before UP.
    not_up_yet: BTreeMap<String, usize>,
    /// Per server: how many more `show stat` answers report requests in flight.
    busy: BTreeMap<String, u64>,
    /// Per server: the address it was pointed at and how many more `show servers state`
    /// answers report its checks failing.
    probation: BTreeMap<String, (String, usize)>,
    /// Answer `show stat` with an empty success this many times first.
    empty_stats: usize,
    stat_polls: usize,
}

struct Harness {
    engine: Arc<FakeEngine>,
    haproxy: Arc<Mutex<Haproxy>>,
    rt: tokio::runtime::Runtime,
}

/// The address `getent hosts` gives every replacement.
const NEW_ADDR: &str = "10.0.0.7";

impl Harness {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime");
        let engine = Arc::new(FakeEngine::new());
        for image in ["shop/lb:1.0", "shop/app:1.0"] {
            engine.add_image(image);
        }
        let haproxy = Arc::new(Mutex::new(Haproxy::default()));
        let (weak, model) = (Arc::downgrade(&engine), haproxy.clone());
        engine.on_exec(move |name, command| answer(&weak, &model, name, command));
        Harness { engine, haproxy, rt }
    }

    fn observe(&self) -> ObservedState {
        self.rt.block_on(observe_project(self.engine.as_ref(), "shop")).expect("the fake observes")
    }

    fn plan(&self, desired: &DesiredState) -> Plan {
        plan(desired, &self.observe()).expect("a plan")
    }

    /// Plans and runs; returns the plan, the report and every output line.
    fn apply(&self, desired: &DesiredState) -> (Plan, ExecReport, Vec<String>) {
        let plan = self.plan(desired);
        let events = Mutex::new(Vec::new());
        let sink = |e: ExecEvent| events.lock().unwrap().push(e);
        let opts = ExecOptions {
            parallel: 8,
            ready_timeout: Duration::from_secs(5),
            log_lines: 5,
            settle: Duration::ZERO,
            removals: None,
        };
        let report = self.rt.block_on(execute(self.engine.as_ref(), &plan, &opts, &sink, &AtomicBool::new(false)));
        let lines = events
            .into_inner()
            .unwrap()
            .into_iter()
            .filter_map(|e| match e {
                ExecEvent::Output { line, .. } => Some(line),
                ExecEvent::Failed { failure, .. } => Some(format!("FAILED {}", failure.message)),
                ExecEvent::Finished { id, .. } => Some(format!("finished action {id}")),
                _ => None,
            })
            .collect();
        assert!(report.succeeded(), "apply failed: {lines:#?}\n{}", render_text(&plan));
        let again = self.plan(desired);
        assert!(!again.has_changes(), "not converged:\n{}", render_text(&again));
        (plan, report, lines)
    }

    fn log(&self) -> Vec<String> {
        self.haproxy.lock().unwrap().log.clone()
    }

    fn clear_log(&self) {
        self.haproxy.lock().unwrap().log.clear();
    }

    fn lb_id(&self) -> String {
        self.observe().containers[LB].id.clone()
    }
}

/// The scripted HAProxy: answers the load balancer's runtime-API commands (and `getent` for
/// the resolver), leaving anything else unanswered (the fake then fails loudly).
fn answer(
    engine: &Weak<FakeEngine>,
    model: &Mutex<Haproxy>,
    name: &str,
    command: &str,
) -> Option<scale::engine::ExecOutput> {
    if name != LB {
        return None;
    }
    let engine = engine.upgrade()?;
    let mut m = model.lock().unwrap();
    let server_in = |cmd: &str| cmd.split("web/").nth(1)?.split_whitespace().next().map(str::to_string);
    if command.starts_with("haproxy -c -f") {
        m.log.push("check config".into());
        return Some(reply("Configuration file is valid"));
    }
    if let Some(server) = command.strip_prefix("getent hosts ") {
        return Some(reply(&format!("{NEW_ADDR}      {server}")));
    }
    // A start-first replacement's old container, stepped aside under a retired name.
    let retired_running = |server: &str| {
        let prefix = format!("{server}.old-");
        engine.containers().iter().any(|c| c.name.starts_with(&prefix) && c.state == RunState::Running)
    };
    // `show stat` alone, or after a drain or a probation in the same connection.
    if command.contains("show stat'") {
        if command.contains("state drain; show stat") {
            let server = server_in(command)?;
            let running = engine.containers().iter().any(|c| c.name == server && c.state == RunState::Running);
            m.log.push(format!("drain {server} ({})", if running { "old running" } else { "old gone" }));
        }
        if command.contains(" addr ") {
            let entry = probation(&mut m, command, &server_in(command)?, retired_running)?;
            m.log.push(entry);
        }
        m.stat_polls += 1;
        let old = m.probation.keys().any(|server| retired_running(server));
        m.log.push(if old { "stat (old running)" } else { "stat" }.into());
        if m.empty_stats > 0 {
            m.empty_stats -= 1;
            return Some(reply(""));
        }
        let pool: Pool = serde_json::from_slice(&engine.file(LB, POOL_PATH)?).ok()?;
        let mut csv = String::from("# pxname,svname,scur,stot,status\n");
        for server in &pool.servers {
            let not_up = m.not_up_yet.get_mut(server).filter(|n| **n > 0).map(|n| *n -= 1).is_some();
            let busy = m.busy.get_mut(server).filter(|n| **n > 0).map(|n| *n -= 1).is_some();
            let status = if not_up { "MAINT" } else { "UP" };
            csv.push_str(&format!("web,{server},{},10,{status}\n", u64::from(busy)));
        }
        return Some(reply(&csv));
    }
    if command.contains("show servers state web") {
        let mut out = String::from("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state\n");
        for (server, (addr, failing)) in m.probation.iter_mut() {
            let op = if *failing > 0 { 0 } else { 2 };
            *failing = failing.saturating_sub(1);
            out.push_str(&format!("3 web 1 {server} {addr} {op}\n"));
        }
        let states: Vec<String> = out.lines().skip(2).map(str::to_string).collect();
        m.log.push(format!("servers state {}", states.join(" | ")));
        return Some(reply(&out));
    }
    let server = server_in(command)?;
    let running = engine.containers().iter().any(|c| c.name == server && c.state == RunState::Running);
    let entry = if command.contains(" addr ") {
        probation(&mut m, command, &server, retired_running)?
    } else if command.contains("state drain") {
        format!("drain {server} ({})", if running { "old running" } else { "old gone" })
    } else if command.contains("state maint") {
        format!("maint {server}")
    } else if command.contains("state ready") {
        format!("ready {server}")
    } else {
        return None;
    };
    m.log.push(entry);
    Some(reply(""))
}

/// The model's side of a probation command: the server is on probation at its new address
/// (its checks fail twice there first); logged with whether the old container still ran.
fn probation(m: &mut Haproxy, command: &str, server: &str, retired_running: impl Fn(&str) -> bool) -> Option<String> {
    let addr = command.split(" addr ").nth(1)?.split(';').next()?.trim().to_string();
    // Probation must leave the server's health down before it is ready again.
    let (down, ready) = (command.find("health down")?, command.find("state ready")?);
    assert!(down < ready, "ready before its health was down: {command}");
    m.probation.insert(server.to_string(), (addr.clone(), 2));
    let old = if retired_running(server) { "old running" } else { "old gone" };
    Some(format!("probation {server} at {addr} ({old})"))
}

#[test]
fn a_new_load_balancer_counts_as_ready_only_once_its_whole_pool_is_up() {
    let h = Harness::new();
    h.haproxy.lock().unwrap().not_up_yet.insert("shop-web-2".into(), 3);
    let (plan, _, lines) = h.apply(&desired(&[]));
    assert!(plan.actions.iter().any(|a| matches!(&a.op, Op::CreateContainer { spec, .. } if spec.name == LB)));
    let polls = h.haproxy.lock().unwrap().stat_polls;
    assert!(polls >= 4, "shop-web-2 was MAINT for 3 answers, yet the wait asked only {polls} times");
    assert!(lines.iter().any(|l| l == "waiting until shop-lb-1 has shop-web-1, shop-web-2 UP"), "{lines:#?}");
    assert!(!lines.iter().any(|l| l.contains("not all of")), "{lines:#?}");
}

#[test]
fn an_empty_answer_does_not_end_the_pool_wait() {
    let h = Harness::new();
    h.haproxy.lock().unwrap().empty_stats = 2;
    h.apply(&desired(&[]));
    let polls = h.haproxy.lock().unwrap().stat_polls;
    assert!(polls >= 3, "two empty answers, then the pool: the wait asked only {polls} times");
}

#[test]
fn a_third_web_replica_reloads_the_load_balancer_instead_of_recreating_it() {
    let h = Harness::new();
    h.apply(&desired(&[]));
    let before = h.lb_id();
    h.clear_log();
    h.haproxy.lock().unwrap().not_up_yet.insert("shop-web-3".into(), 2);
    let polls_before = h.haproxy.lock().unwrap().stat_polls;

    let (plan, _, lines) = h.apply(&desired(&[("WEB_REPLICAS", "3")]));
    let lb_ops: Vec<&str> = plan.actions.iter().filter(|a| a.op.target() == LB).map(|a| a.op.verb().as_str()).collect();
    assert_eq!(lb_ops, ["reload"], "{}", render_text(&plan));
    assert_eq!(h.lb_id(), before, "the load balancer is the same container");
    let sent: Vec<String> = h.engine.commands_in(LB);
    let check = sent.iter().position(|c| c.starts_with("haproxy -c")).expect("the new configuration was checked");
    let signal = sent.iter().position(|c| c == RELOAD_SIGNAL).expect("HAProxy was told to reload");
    assert!(check < signal, "checked before reloading: {sent:#?}");
    let pool: Pool = serde_json::from_slice(&h.engine.file(LB, POOL_PATH).expect("a pool record")).unwrap();
    assert_eq!(pool.servers, ["shop-web-1", "shop-web-2", "shop-web-3"]);
    let polls = h.haproxy.lock().unwrap().stat_polls - polls_before;
    assert!(polls >= 3, "the reload waited for shop-web-3 to be UP: {polls} answers");
    assert!(lines.iter().any(|l| l == "reloaded"), "{lines:#?}");
}

/// A rolling replacement (APP_VERSION 1 → 2) with `vars` on both sides: each server is
/// drained while its old container still runs, taken out (maint, stop-first) or moved to the
/// new address (start-first) only once its requests in flight ended, and put back on
/// probation there; the run goes on only once the checks passed.
fn replaced_servers_are_drained_then_rejoin_on_probation(vars: &[(&str, &str)], start_first: bool) {
    let h = Harness::new();
    h.apply(&desired(vars));
    h.clear_log();
    h.haproxy.lock().unwrap().busy.insert("shop-web-1".into(), 2);
    let after: Vec<(&str, &str)> = vars.iter().copied().chain([("APP_VERSION", "2")]).collect();
    let (plan, _, lines) = h.apply(&desired(&after));
    let recreated: Vec<(String, bool)> = plan
        .actions
        .iter()
        .filter_map(|a| match &a.op {
            Op::RecreateContainer { start_first, .. } => Some((a.op.target(), *start_first)),
            _ => None,
        })
        .collect();
    let expected = [("shop-web-1".to_string(), start_first), ("shop-web-2".to_string(), start_first)];
    assert_eq!(recreated, expected, "{}", render_text(&plan));
    let log = h.log();
    for server in ["shop-web-1", "shop-web-2"] {
        let at = |entry: &str| {
            log.iter().position(|l| l.starts_with(entry)).unwrap_or_else(|| panic!("no `{entry}` in {log:#?}"))
        };
        let probation = at(&format!("probation {server} at {NEW_ADDR}"));
        if start_first {
            // Moved straight to the new address while the old container (stepped aside)
            // still ran: no separate drain, no maintenance.
            assert!(log[probation].ends_with("(old running)"), "{log:#?}");
            assert!(!log.iter().any(|l| l.starts_with(&format!("drain {server}")) || *l == format!("maint {server}")));
        } else {
            // Drained while the old one ran, out (maint) before it stopped, then back.
            let drain = at(&format!("drain {server}"));
            assert_eq!(log[drain], format!("drain {server} (old running)"), "drained before the old one stopped");
            let maint = at(&format!("maint {server}"));
            assert!(drain < maint && maint < probation, "{log:#?}");
        }
        // The run waits until HAProxy's own checks pass against the new address, which
        // brings the server into rotation.
        let passed = format!("{server} {NEW_ADDR} 2");
        let back = log[probation..].iter().position(|l| l.starts_with("servers state") && l.contains(&passed));
        let back = probation + back.unwrap_or_else(|| panic!("never seen passing: {log:#?}"));
        let checks = log[probation..=back].iter().filter(|l| l.starts_with("servers state")).count();
        assert!(checks >= 3, "two failing answers, then passing: {log:#?}");
    }
    // One at a time (parallelism 1): the second server is taken out only once the first is
    // back in rotation, although the wait for the first one's checks overlaps the second
    // replacement's start.
    let first_back = log.iter().position(|l| l.starts_with("servers state") && l.contains("shop-web-1 10.0.0.7 2"));
    let out = |server: &str| {
        let (drain, probation) = (format!("drain {server}"), format!("probation {server}"));
        log.iter().position(|l| l.starts_with(&drain) || l.starts_with(&probation)).unwrap()
    };
    assert!(first_back.unwrap() < out("shop-web-2"), "two servers out at once: {log:#?}");
    // shop-web-1 had requests in flight for two answers: its old container stops only after
    // those ended (stop-first: it is taken out of the pool first; start-first: it keeps
    // running, stepped aside, while they are waited for).
    let first_out = out("shop-web-1");
    let asked = if start_first {
        log[first_out + 1..].iter().take_while(|l| l.starts_with("stat")).filter(|l| *l == "stat (old running)").count()
    } else {
        let maint = log.iter().position(|l| l == "maint shop-web-1").unwrap();
        log[first_out..maint].iter().filter(|l| *l == "stat").count()
    };
    assert!(asked >= 3, "the old one stopped while requests were in flight: {log:#?}");
    assert!(!lines.iter().any(|l| l.contains("without it")), "{lines:#?}");
    if start_first {
        // The next batch starts its new replica once the previous batch's new one is ready,
        // while that batch still waits for its old one (which had requests in flight here).
        let at = |text: &str| {
            lines.iter().position(|l| l.contains(text)).unwrap_or_else(|| panic!("no `{text}` in {lines:#?}"))
        };
        let first = plan.actions.iter().find(|a| a.op.target() == "shop-web-1").unwrap().id;
        assert!(
            at("starting the new container as shop-web-2.next") < at(&format!("finished action {first}")),
            "the second batch waited for the first to finish: {lines:#?}"
        );
    }
}

#[test]
fn a_replacement_started_first_drains_the_old_server_and_rejoins_on_probation() {
    // A read-only mount: nothing the two containers could both write to.
    replaced_servers_are_drained_then_rejoin_on_probation(&[("WEB_MOUNT", "/tmp:/scratch:ro")], true);
}

#[test]
fn a_replacement_stopping_the_old_one_first_drains_it_and_rejoins_on_probation() {
    replaced_servers_are_drained_then_rejoin_on_probation(&[("WEB_MOUNT", "uploads:/data")], false);
}

#[test]
fn a_scale_down_drains_the_leaving_replica_before_stopping_it_then_reloads() {
    let h = Harness::new();
    h.apply(&desired(&[("WEB_REPLICAS", "3")]));
    h.clear_log();
    let (plan, _, _) = h.apply(&desired(&[("WEB_REPLICAS", "2")]));
    let ops: Vec<String> = plan.actions.iter().map(|a| format!("{} {}", a.op.verb(), a.op.target())).collect();
    assert_eq!(ops, ["remove shop-web-3", "reload shop-lb-1"], "{}", render_text(&plan));
    let log = h.log();
    let at = |entry: &str| log.iter().position(|l| l == entry).unwrap_or_else(|| panic!("no `{entry}` in {log:#?}"));
    let drain = at("drain shop-web-3 (old running)");
    assert!(drain < at("maint shop-web-3"), "{log:#?}");
    assert!(at("maint shop-web-3") < at("check config"), "drained before the reload drops it: {log:#?}");
    assert!(!h.engine.containers().iter().any(|c| c.name == "shop-web-3"));
}

/// The pool record also lives in a labelled volume (`shop_shop-lb-1.pool`), which comes with
/// the project's volume list: `observe_project` reads the pool there, never opening the
/// container (the archive read was most of a no-op apply), keeps it out of the user's
/// volumes, and falls back to the file for a load balancer without one (made by an earlier
/// scale). `destroy` removes it with the load balancer, `--volumes` or not.
#[test]
fn the_pool_record_volume_is_what_observe_reads() {
    use scale::engine::Engine;
    const RECORD: &str = "shop_shop-lb-1.pool";
    let h = Harness::new();
    h.apply(&desired(&[]));
    h.apply(&desired(&[("WEB_REPLICAS", "3")]));
    let id = h.lb_id();
    let observed = h.observe();
    let (of, pool) = &observed.pool_records[RECORD];
    assert_eq!(of, &id, "the record names the container it is for");
    let three = ["shop-web-1", "shop-web-2", "shop-web-3"];
    assert_eq!(pool.as_ref().expect("a readable record").servers, three, "the reload replaced the record");
    assert!(!observed.volumes.contains_key(RECORD), "a pool record is not a user's volume");

    // A file that says otherwise is not consulted while the record exists...
    h.rt.block_on(h.engine.write_file(&id, LB, POOL_PATH, br#"{"hash":"x","backend":"web","servers":[]}"#)).unwrap();
    assert_eq!(h.observe().load_balancers[LB].servers, three);
    // ...and is, once there is none.
    h.rt.block_on(h.engine.remove_volume(RECORD)).unwrap();
    assert!(h.observe().load_balancers[LB].servers.is_empty(), "no record: the file's pool");

    h.apply(&desired(&[]));
    // A load balancer that leaves the blueprint takes its record along...
    let mut without_lb = desired(&[]);
    without_lb.containers.remove(LB);
    without_lb.load_balancers.remove(LB);
    let leaving = h.plan(&without_lb);
    let removes_record = |a: &scale::plan::Action| matches!(&a.op, Op::RemoveVolume { name } if name == RECORD);
    let record_removal = leaving.actions.iter().find(|a| removes_record(a)).expect("the record goes with it");
    let lb_removal = leaving.actions.iter().find(|a| a.op.target() == LB).expect("the load balancer goes");
    assert_eq!(record_removal.after, [lb_removal.id], "{}", render_text(&leaving));
    // ...and `destroy` removes it, `--volumes` or not.
    let destroy = scale::plan::destroy_plan(&h.observe(), false);
    assert!(destroy.actions.iter().any(removes_record), "{}", render_text(&destroy));
}
