//! The stories of issue 6 on a real engine, with stage 4 ("Database replication") as a
//! learner runs it: a web server, the replicas and the primary go offline under a client
//! loop; `scale chaos` pauses and partitions and restores; `scale failover` promotes a replica
//! without losing an acknowledged write; `scale watch` repairs drift by itself, and with
//! `failover: auto` fails over by itself.
//!
//! The five stories are one test each, over one shared project (`t-sto-<pid>-1`, opened by
//! whichever story runs first); the auto-failover test has a project of its own
//! (`t-sto-<pid>-2`). Both come from a copy of `blueprints/04-database-replication.yaml` with
//! exactly these edits: the public port `"8080:80"` becomes a random one (`"80"`),
//! `build: images/…` becomes the absolute path of the repository's image directory, and
//! (auto failover only) `synchronous: true` and `failover: auto`. HTTP goes only to
//! 127.0.0.1:<published port>; everything else goes through `docker exec`/`docker inspect`.
//! Every client loop is bounded in requests and time.
//!
//! The tests take turns (one lock), as the machine they run on may have two cores and the
//! stories share a project. Each story starts from the converged project (`apply`, then an
//! empty plan) and reads the database roles then, so the stories run in any order and a failed
//! story does not leave the next one a broken project: after `story_4` the primary is the
//! promoted replica, and the others use whichever node is primary. The shared project is
//! removed when the last of the five stories ends, or when the test binary exits (a run that
//! filters some stories out).
//!
//! Timings asserted (measured here, with the margins the issue asks for): the load balancer
//! stops routing to a dead web server within 3 s and `status` shows it not UP within 5 s, UP
//! again within 10 s of `apply`; `watch` repairs within 30 s, exits within 15 s of SIGINT; with
//! `failover: auto` the watcher logs "promoted" within 10 s of the primary's SIGKILL.

mod common;

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{
    BuildGuard, ClientLoop, DockerTest, LoopEnd, LoopReport, Scale, ScaleChild, ScaleRun, WriteLoop, header, http,
    http_get, inspect, lost_writes, poll_timed, psql, stage_copy,
};

/// How many story tests share the project: the last one to end removes it.
const STORIES: usize = 5;

/// The stories' shared project, and the turn every test of this file takes: each runs seven
/// or eight containers and times failovers.
static STAGE_FOUR: Mutex<Shared> = Mutex::new(Shared { project: None, ended: 0, exit_hook: false });

/// The shared stage-4 project, opened by the first story that runs.
struct Shared {
    project: Option<(BuildGuard, tempfile::TempDir, Story)>,
    /// How many stories have ended (passed or failed).
    ended: usize,
    /// Whether [`remove_at_exit`] is registered.
    exit_hook: bool,
}

unsafe extern "C" {
    /// libc's `atexit`: the test harness exits the process with `std::process::exit`, which
    /// runs these hooks, while statics are never dropped.
    fn atexit(hook: extern "C" fn()) -> i32;
}

/// Removes the shared project if no story did (a run that filtered some stories out).
extern "C" fn remove_at_exit() {
    if let Ok(mut shared) = STAGE_FOUR.try_lock() {
        shared.project.take();
    }
}

/// A story's turn on the shared project: counts the story as ended when dropped (even by a
/// panic), removing the project after the last one.
struct Turn(MutexGuard<'static, Shared>);

impl Turn {
    /// Waits for the turn, opens the shared project if no story has, and brings it back to the
    /// blueprint (apply, then an empty plan). `None`: skip (no engine and
    /// `SCALE_SKIP_DOCKER_TESTS=1`).
    fn take(story: &str) -> Option<Turn> {
        let mut turn = Turn(STAGE_FOUR.lock().unwrap_or_else(|e| e.into_inner()));
        if turn.0.project.is_none() {
            if !turn.0.exit_hook {
                // SAFETY: registers a plain function, once; it only takes a lock and drops.
                let registered = unsafe { atexit(remove_at_exit) };
                assert_eq!(registered, 0, "atexit failed");
                turn.0.exit_hook = true;
            }
            turn.0.project = Some(open(1, &[])?);
            let s = turn.story();
            let r = http_get(s.port(), "/users/12");
            assert_eq!((r.status, header(&r, "X-Db-Role")), (200, "replica"), "{r:?}");
        } else {
            let s = turn.story();
            s.apply();
            s.plan_is_empty(&format!("before {story}"));
        }
        turn.story().log(&format!("---- {story}"));
        Some(turn)
    }

    fn story(&self) -> &Story {
        &self.0.project.as_ref().expect("the shared project is open").2
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.0.ended += 1;
        if self.0.ended == STORIES {
            self.0.project.take();
        }
    }
}

/// The database's roles now: the primary and the replicas (sorted), from `status`.
fn roles(s: &Story) -> (String, Vec<String>) {
    let nodes = db_nodes(&s.status());
    let primaries: Vec<&DbNode> = nodes.iter().filter(|n| n.role.as_deref() == Some("primary")).collect();
    assert_eq!(primaries.len(), 1, "not exactly one primary: {nodes:?}");
    let mut replicas: Vec<String> =
        nodes.iter().filter(|n| n.role.as_deref() == Some("replica")).map(|n| n.container.clone()).collect();
    replicas.sort();
    assert_eq!(replicas.len(), 2, "not two replicas: {nodes:?}");
    (primaries[0].container.clone(), replicas)
}

/// One project under test.
struct Story {
    p: String,
    file: String,
    started: Instant,
}

impl Story {
    fn log(&self, what: &str) {
        eprintln!("[{} {:>6.1}s] {what}", self.p, self.started.elapsed().as_secs_f64());
    }

    fn name(&self, service: &str, n: u32) -> String {
        format!("{}-{service}-{n}", self.p)
    }

    /// `scale ARGS -p P`.
    fn scale(&self, args: &[&str]) -> ScaleRun {
        let mut all = args.to_vec();
        all.extend(["-p", &self.p]);
        Scale::new(&all).isolated().run()
    }

    /// Starts `scale watch` of the project, waits (at most 30 s) until it says it is watching,
    /// and 2 s more.
    fn watch(&self) -> ScaleChild {
        let since = Instant::now();
        let watch = Scale::new(&["watch", &self.file, "-p", &self.p]).isolated().spawn();
        watch
            .wait_stdout(since, Duration::from_secs(30), |l| l.starts_with("watching project"))
            .unwrap_or_else(|| panic!("scale watch did not start:\n{}", watch.transcript()));
        std::thread::sleep(Duration::from_secs(2));
        watch
    }

    fn apply(&self) -> ScaleRun {
        let run = self.scale(&["apply", "--yes", &self.file]);
        run.success();
        self.log(&format!("apply: {:.1}s", run.elapsed.as_secs_f64()));
        run
    }

    #[track_caller]
    fn plan_is_empty(&self, when: &str) {
        let plan = self.scale(&["plan", "--detailed-exitcode", &self.file]);
        assert_eq!(plan.code, Some(0), "{when}: the plan is not empty:\n{}\n{}", plan.stdout, plan.stderr);
    }

    fn status(&self) -> serde_json::Value {
        self.scale(&["status", &self.file, "--output", "json"]).success().json()
    }

    /// The load balancer's public port.
    fn port(&self) -> u16 {
        let status = self.status();
        let ports: BTreeSet<u64> = status["endpoints"]
            .as_array()
            .unwrap_or_else(|| panic!("no endpoints[] in {status:#}"))
            .iter()
            .filter(|e| e["service"] == "lb" && e["protocol"] == "tcp")
            .filter_map(|e| e["host_port"].as_u64())
            .collect();
        assert_eq!(ports.len(), 1, "expected one public port of lb: {status:#}");
        u16::try_from(*ports.first().expect("one port")).expect("a port number")
    }
}

/// The HAProxy status of `server` in the first load balancer's pool (`None`: not in it).
fn pool_state(status: &serde_json::Value, server: &str) -> Option<String> {
    status["load_balancers"][0]["servers"]
        .as_array()?
        .iter()
        .find(|s| s["server"] == server)
        .and_then(|s| s["status"].as_str().map(str::to_string))
}

/// One entry of `status.databases[]`.
#[derive(Debug)]
struct DbNode {
    container: String,
    role: Option<String>,
    lag_bytes: Option<u64>,
    streaming: Option<bool>,
    timeline: Option<u64>,
}

fn db_nodes(status: &serde_json::Value) -> Vec<DbNode> {
    status["databases"]
        .as_array()
        .unwrap_or_else(|| panic!("no databases[] in {status:#}"))
        .iter()
        .map(|n| {
            let s = &n["status"];
            DbNode {
                container: n["container"].as_str().unwrap_or_default().to_string(),
                role: s["role"].as_str().map(str::to_string),
                lag_bytes: s["lag_bytes"].as_u64(),
                streaming: s["streaming"].as_bool(),
                timeline: s["timeline"].as_u64(),
            }
        })
        .collect()
}

/// When a request of a client loop was sent.
fn sent_at(s: &common::Sample) -> Instant {
    s.at - s.took
}

/// No request sent inside one of `windows` ([from, to)) failed, at least `min` were sent in
/// them, and the loop ran until it was stopped.
#[track_caller]
fn assert_no_failures_in(report: &LoopReport, windows: &[(Instant, Instant)], min: usize, what: &str) {
    let inside: Vec<&common::Sample> = report
        .samples
        .iter()
        .filter(|s| windows.iter().any(|(from, to)| sent_at(s) >= *from && sent_at(s) < *to))
        .collect();
    let failed: Vec<&&common::Sample> = inside.iter().filter(|s| s.failed()).collect();
    assert!(
        failed.is_empty(),
        "{what}: {} of {} requests sent in the checked windows failed, first ones: {:#?}",
        failed.len(),
        inside.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(inside.len() >= min, "{what}: only {} requests in the checked windows (want ≥ {min})", inside.len());
    assert_eq!(report.ended, LoopEnd::Stopped, "{what}: the client loop ran out before it was stopped");
}

/// Waits until `deadline`, and on (at most 30 s more) until the loop has `answers` answers
/// after `since`.
fn settle(load: &ClientLoop, since: Instant, deadline: Instant, answers: usize) {
    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
    let hard = Instant::now() + Duration::from_secs(30);
    while load.running() && load.answers_after(since) < answers && Instant::now() < hard {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether `container` is attached to `network`.
fn attached(container: &str, network: &str) -> Result<(), String> {
    let c = inspect(container);
    let networks = &c["NetworkSettings"]["Networks"];
    if networks.get(network).is_some() {
        Ok(())
    } else {
        Err(format!("{container} is on {:?}", networks.as_object().map(|m| m.keys().collect::<Vec<_>>())))
    }
}

/// Whether `container` is running (not paused) and, when it has a healthcheck, healthy.
fn running_healthy(container: &str) -> Result<(), String> {
    let c = common::docker(&["inspect", container]).map_err(|e| format!("{container}: {e}"))?;
    let c: Vec<serde_json::Value> = serde_json::from_str(&c).map_err(|e| e.to_string())?;
    let state = &c[0]["State"];
    let health = state["Health"]["Status"].as_str();
    if state["Status"] == "running" && state["Paused"] == false && health.is_none_or(|h| h == "healthy") {
        Ok(())
    } else {
        Err(format!("{container}: {state}"))
    }
}

/// `docker logs -f -t` of a container in the background (both streams), killed on drop: the
/// PostgreSQL log of a replica that a failover promotes and then recreates would be gone
/// otherwise.
struct LogFollow {
    child: std::process::Child,
    lines: std::sync::Arc<Mutex<Vec<String>>>,
}

impl LogFollow {
    fn start(container: &str) -> LogFollow {
        use std::process::{Command, Stdio};
        let mut child = Command::new("docker")
            .args(["logs", "-f", "-t", "--tail", "0", container])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("docker logs -f {container}: {e}"));
        let lines = std::sync::Arc::new(Mutex::new(Vec::new()));
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().expect("piped"));
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().expect("piped"));
        for pipe in [out, err] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                    lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            });
        }
        LogFollow { child, lines }
    }

    /// The lines containing any of `words`, sorted (they start with the engine's timestamp).
    fn grep(&self, words: &[&str]) -> Vec<String> {
        let mut found: Vec<String> = self
            .lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|l| words.iter().any(|w| l.contains(w)))
            .cloned()
            .collect();
        found.sort();
        found
    }
}

impl Drop for LogFollow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens the project, applies stage 4 (with `extra` edits), and checks the plan is empty.
fn open(n: u32, extra: &[(&str, &str)]) -> Option<(BuildGuard, tempfile::TempDir, Story)> {
    let test = format!("t-sto-{}-{n}", std::process::id());
    if !common::docker_or_skip(&test) {
        return None;
    }
    let guard = BuildGuard(Some(DockerTest::with_project(&test)));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = stage_copy(dir.path(), 4, extra);
    let story = Story { p: test, file, started: Instant::now() };
    story.apply();
    story.plan_is_empty("after the first apply");
    Some((guard, dir, story))
}

/// Story 1: a web server goes offline. The load balancer stops sending it traffic, `status`
/// shows it out of the pool, and `apply` brings it back.
#[test]
fn story_1_a_web_server_goes_offline() {
    let Some(turn) = Turn::take("story_1_a_web_server_goes_offline") else { return };
    let s = turn.story();
    let port = s.port();
    let web1 = s.name("web", 1);
    let load = ClientLoop::start(port, "/users/12", Duration::from_millis(20), 6000, Duration::from_secs(240));
    std::thread::sleep(Duration::from_secs(1));
    let kill = s.scale(&["chaos", "kill", "web-1"]);
    kill.success();
    let killed = Instant::now();
    assert!(kill.stdout.contains(&format!("killed {web1}")), "chaos kill does not name {web1}:\n{}", kill.stdout);
    let (_, out) = poll_timed(killed, Duration::from_secs(5), &format!("status shows {web1} out of the pool"), || {
        let status = s.status();
        match pool_state(&status, &web1) {
            Some(state) if state != "UP" => Ok(state),
            other => Err(format!("{other:?} in {:#}", status["load_balancers"])),
        }
    });
    s.log(&format!("{web1} not UP {out:?} after the kill"));
    settle(&load, killed + Duration::from_secs(3), killed + Duration::from_secs(6), 20);
    s.apply();
    let applied = Instant::now();
    let (_, back) = poll_timed(applied, Duration::from_secs(10), &format!("{web1} UP in the pool again"), || {
        let status = s.status();
        match pool_state(&status, &web1) {
            Some(state) if state == "UP" => Ok(()),
            other => Err(format!("{other:?} in {:#}", status["load_balancers"])),
        }
    });
    s.log(&format!("{web1} UP {back:?} after apply returned"));
    std::thread::sleep(Duration::from_secs(1));
    let report = load.stop();
    s.log(&report.describe(false));
    assert_no_failures_in(&report, &[(killed + Duration::from_secs(3), Instant::now())], 20, "web-1 killed");
    s.plan_is_empty("story_1_a_web_server_goes_offline");
}

/// Story 2: both replicas go offline. Reads fall back to the primary, then come back to the
/// replicas once `apply` has rebuilt them.
#[test]
fn story_2_both_replicas_go_offline() {
    let Some(turn) = Turn::take("story_2_both_replicas_go_offline") else { return };
    let s = turn.story();
    let port = s.port();
    let (primary, replicas) = roles(s);
    let load = ClientLoop::start(port, "/users/12", Duration::from_millis(20), 8000, Duration::from_secs(300));
    std::thread::sleep(Duration::from_secs(1));
    let mut kills = Vec::new();
    for replica in &replicas {
        let run = s.scale(&["chaos", "kill", replica]);
        run.success();
        let at = Instant::now();
        assert!(run.stdout.contains(&format!("killed {replica}")), "{}", run.stdout);
        kills.push(at);
        settle(&load, at + Duration::from_secs(3), at + Duration::from_secs(5), 20);
    }
    let apply_started = Instant::now();
    let direct = http_get(port, "/users/12");
    assert_eq!((direct.status, header(&direct, "X-Db-Role")), (200, "primary"), "{direct:?}");
    assert_eq!(header(&direct, "X-Db-Node"), primary, "{direct:?}");
    s.apply();
    let (_, caught_up) =
        poll_timed(Instant::now(), Duration::from_secs(60), "both replicas streaming with lag 0", || {
            let status = s.status();
            let nodes = db_nodes(&status);
            let ok = replicas.iter().all(|r| {
                nodes.iter().any(|n| {
                    n.container == *r
                        && n.role.as_deref() == Some("replica")
                        && n.lag_bytes == Some(0)
                        && n.streaming == Some(true)
                })
            });
            if ok { Ok(()) } else { Err(format!("{nodes:?}")) }
        });
    s.log(&format!("replicas caught up {caught_up:?} after apply"));
    poll_timed(Instant::now(), Duration::from_secs(15), "reads served by a replica again", || {
        let r = http_get(port, "/users/12");
        if r.status == 200 && r.header("X-Db-Role") == Some("replica") { Ok(()) } else { Err(format!("{r:?}")) }
    });
    std::thread::sleep(Duration::from_secs(1));
    let report = load.stop();
    s.log(&report.describe(false));
    let windows = [(kills[0] + Duration::from_secs(3), kills[1]), (kills[1] + Duration::from_secs(3), Instant::now())];
    assert_no_failures_in(&report, &windows, 40, "replicas killed");
    let fallback: Vec<&common::Sample> = report
        .samples
        .iter()
        .filter(|x| sent_at(x) >= kills[1] + Duration::from_secs(3) && x.at < apply_started)
        .collect();
    assert!(!fallback.is_empty(), "no request between the second kill (+3 s) and the apply");
    assert!(
        fallback.iter().all(|x| x.db_role.as_deref() == Some("primary")),
        "with both replicas down a read did not come from the primary: {:?}",
        fallback.iter().filter(|x| x.db_role.as_deref() != Some("primary")).take(5).collect::<Vec<_>>()
    );
    s.plan_is_empty("story_2_both_replicas_go_offline");
}

/// Story 3: `chaos pause` and `chaos disconnect` with `--for` restore what they broke.
#[test]
fn story_3_pause_and_partition_are_restored() {
    let Some(turn) = Turn::take("story_3_pause_and_partition_are_restored") else { return };
    let s = turn.story();
    let p = s.p.clone();
    let (_, replicas) = roles(s);
    let web2 = s.name("web", 2);
    let private = format!("{p}_private");
    let run = s.scale(&["chaos", "pause", "web-2", "--for", "3s"]);
    run.success();
    s.log(&format!("chaos pause --for 3s returned after {:.1}s", run.elapsed.as_secs_f64()));
    assert!(
        run.elapsed >= Duration::from_secs(3) && run.elapsed <= Duration::from_secs(20),
        "chaos pause --for 3s returned after {:?}:\n{}",
        run.elapsed,
        run.stdout
    );
    assert!(run.stdout.contains(&format!("paused {web2}")) && run.stdout.contains(&format!("restored {web2}")));
    let state = &inspect(&web2)["State"];
    assert!(
        state["Status"] == "running" && state["Paused"] == false,
        "after chaos pause --for 3s, {web2} is not running again: {state}"
    );
    let run = s.scale(&["chaos", "disconnect", "db-replica", "--for", "2s", "--output", "json"]);
    run.success();
    let events = run.json_lines();
    let cut = events
        .iter()
        .find(|e| e["event"] == "disconnected")
        .and_then(|e| e["container"].as_str())
        .unwrap_or_else(|| panic!("chaos disconnect named no container: {}", run.stdout))
        .to_string();
    assert!(replicas.contains(&cut), "db-replica resolved to {cut}, not a replica");
    assert!(events.iter().any(|e| e["event"] == "restored" && e["container"] == cut.as_str()), "{}", run.stdout);
    attached(&cut, &private).unwrap_or_else(|e| panic!("after chaos disconnect --for 2s: {e}"));
    let aliases = &inspect(&cut)["NetworkSettings"]["Networks"][&private]["Aliases"];
    assert!(
        aliases.as_array().is_some_and(|a| a.iter().any(|x| x == "db-replica")),
        "{cut} came back without its db-replica alias: {aliases}"
    );
    s.log(&format!("{cut} disconnected for 2 s and reattached"));
    s.plan_is_empty("story_3_pause_and_partition_are_restored");
}

/// Story 4: the primary goes offline; `scale failover` promotes a replica without losing an
/// acknowledged write, and fences and rejoins the old primary.
#[test]
fn story_4_manual_failover_loses_no_acknowledged_write() {
    let Some(turn) = Turn::take("story_4_manual_failover_loses_no_acknowledged_write") else { return };
    let s = turn.story();
    let port = s.port();
    let (db1, replicas) = roles(s);
    let nodes = db_nodes(&s.status());
    let timeline = nodes
        .iter()
        .find(|n| n.container == db1)
        .and_then(|n| n.timeline)
        .unwrap_or_else(|| panic!("the primary {db1} reports no timeline: {nodes:?}"));
    let writes = WriteLoop::start(port, 500_000, Duration::from_millis(50), 3000, Duration::from_secs(240));
    let before = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let run = s.scale(&["chaos", "kill", "db-primary"]);
    run.success();
    let killed = Instant::now();
    assert!(run.stdout.contains(&format!("killed {db1}")), "db-primary was not {db1}:\n{}", run.stdout);
    assert!(writes.acknowledged_after(before) >= 5, "too few writes before the kill");
    let run = s.scale(&["failover", "db", "-f", &s.file]);
    let failed_over = Instant::now();
    run.success();
    s.log(&format!("failover took {:.1}s:\n{}", run.elapsed.as_secs_f64(), run.stdout));
    let promoted = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Failover done: ")?.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| panic!("failover does not name the promoted node:\n{}", run.stdout));
    assert!(replicas.contains(&promoted), "promoted {promoted}, not one of the replicas");
    assert!(run.stdout.contains(&format!("promoting {promoted}")), "{}", run.stdout);
    let keep = Instant::now() + Duration::from_secs(3);
    while writes.running() && (Instant::now() < keep || writes.acknowledged_after(failed_over) < 5) {
        if failed_over.elapsed() > Duration::from_secs(30) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let report = writes.stop();
    assert_eq!(report.ended, LoopEnd::Stopped, "the write loop ran out");
    let acked = report.acknowledged();
    let unacked = report.writes.len() - acked.len();
    s.log(&format!(
        "{} writes, {} acknowledged ({} after the failover returned), {unacked} not",
        report.writes.len(),
        acked.len(),
        acked.iter().filter(|w| w.at > failed_over).count()
    ));
    for w in &acked {
        assert_eq!(w.db_role.as_deref(), Some("primary"), "{w:?}");
        if w.started > killed {
            assert_eq!(w.db_node.as_deref(), Some(promoted.as_str()), "a write after the kill: {w:?}");
        }
    }
    assert!(acked.iter().any(|w| w.at > failed_over), "no write was acknowledged after the failover");
    let lost = lost_writes(port, acked.iter().map(|w| (w.id, w.body.as_str())));
    assert!(lost.is_empty(), "acknowledged writes lost in the failover: {lost:?}");
    for id in 510_000..510_005u64 {
        let r = http(port, "POST", "/users", Some(&common::write_body(id))).expect("POST after the failover");
        assert_eq!(r.status, 201, "{r:?}");
        assert_eq!((header(&r, "X-Db-Role"), header(&r, "X-Db-Node")), ("primary", promoted.as_str()), "{r:?}");
    }
    assert_eq!(psql(&promoted, None, "select pg_is_in_recovery()").as_deref(), Ok("f"), "{promoted} is not primary");
    let (_, rejoined) =
        poll_timed(Instant::now(), Duration::from_secs(30), &format!("{db1} a replica"), || {
            match psql(&db1, None, "select pg_is_in_recovery()") {
                Ok(out) if out == "t" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
    s.log(&format!("{db1} in recovery {rejoined:?} after the failover returned"));
    let data = common::docker(&["exec", &db1, "ls", "-1", "/var/lib/postgresql/data"]).expect("ls the volume");
    assert!(
        data.lines().any(|l| l.starts_with("pgdata.fenced-")),
        "{db1}'s volume has no pgdata.fenced-* directory: {data:?}"
    );
    let nodes = db_nodes(&s.status());
    let primaries: Vec<&DbNode> = nodes.iter().filter(|n| n.role.as_deref() == Some("primary")).collect();
    assert_eq!(primaries.len(), 1, "not exactly one primary: {nodes:?}");
    assert_eq!(primaries[0].container, promoted, "{nodes:?}");
    let next = timeline + 1;
    assert_eq!(primaries[0].timeline, Some(next), "the new primary is not on timeline {next}: {nodes:?}");
    s.plan_is_empty("story_4_manual_failover_loses_no_acknowledged_write");
}

/// Story 5: `scale watch` repairs drift by itself (a removed web server, a partitioned replica).
#[test]
fn story_5_watch_repairs_drift() {
    let Some(turn) = Turn::take("story_5_watch_repairs_drift") else { return };
    let s = turn.story();
    let (_, replicas) = roles(s);
    let web2 = s.name("web", 2);
    let private = format!("{}_private", s.p);
    let mut watch = s.watch();
    // The story partitions a replica: db-3 unless a failover made it the primary.
    let cut = replicas[1].clone();
    let broke = Instant::now();
    common::docker(&["rm", "-f", &web2]).expect("docker rm -f web-2");
    s.scale(&["chaos", "disconnect", &cut]).success();
    let created = format!("create {web2}: missing");
    let reconnected = format!("reconnect {cut}: disconnected from {private}");
    let (_, repaired) = poll_timed(broke, Duration::from_secs(30), "watch repairs web-2 and the partition", || {
        let mut missing = Vec::new();
        if let Err(e) = running_healthy(&web2) {
            missing.push(e);
        }
        if let Err(e) = attached(&cut, &private) {
            missing.push(e);
        }
        for line in [&created, &reconnected] {
            if watch.find_stdout(broke, |l| l.contains(line.as_str())).is_none() {
                missing.push(format!("no `{line}` logged"));
            }
        }
        if missing.is_empty() { Ok(()) } else { Err(format!("{missing:?}\n{}", watch.transcript())) }
    });
    s.log(&format!("repaired {repaired:?} after the drift"));
    // Let the watcher finish its pass (the load balancer's pool) before stopping it.
    poll_timed(Instant::now(), Duration::from_secs(60), "the watcher's pass done and the plan empty", || {
        let done = watch.find_stdout(broke, |l| l.contains("repaired")).is_some();
        let plan = s.scale(&["plan", "--detailed-exitcode", &s.file]);
        if done && plan.code == Some(0) { Ok(()) } else { Err(format!("{}\n{}", plan.stdout, watch.transcript())) }
    });
    std::thread::sleep(Duration::from_secs(1));
    watch.interrupt();
    let exit = watch.wait_exit(Duration::from_secs(15));
    assert!(
        exit.is_some_and(|e| e.code() == Some(0)),
        "scale watch did not exit 0 within 15 s of SIGINT ({exit:?}):\n{}",
        watch.transcript()
    );
    s.log(&format!("watch transcript:\n{}", watch.transcript()));
    s.plan_is_empty("story_5_watch_repairs_drift");
}

#[test]
fn auto_failover_with_synchronous_replication() {
    let _turn = STAGE_FOUR.lock().unwrap_or_else(|e| e.into_inner());
    let edits = [("synchronous: false", "synchronous: true"), ("failover: manual", "failover: auto")];
    let Some((_guard, _dir, s)) = open(2, &edits) else { return };
    let port = s.port();
    let db1 = s.name("db", 1);
    let replicas = [s.name("db", 2), s.name("db", 3)];
    let sync = psql(&db1, None, "show synchronous_standby_names").expect("psql");
    assert_eq!(sync, "ANY 1 (*)", "the primary does not replicate synchronously");

    let mut watch = s.watch();

    const N: u64 = 30;
    let mut acked = Vec::new();
    for id in 600_000..600_000 + N {
        match http(port, "POST", "/users", Some(&common::write_body(id))) {
            Ok(r) if r.status == 201 => {
                assert_eq!((header(&r, "X-Db-Role"), header(&r, "X-Db-Node")), ("primary", db1.as_str()), "{r:?}");
                acked.push((id, r.body));
            }
            other => s.log(&format!("write {id} not acknowledged: {other:?}")),
        }
    }
    s.log(&format!("{} of {N} writes acknowledged before the kill", acked.len()));
    assert!(!acked.is_empty(), "no write was acknowledged before the kill");

    let follows: Vec<(String, LogFollow)> = replicas.iter().map(|r| (r.clone(), LogFollow::start(r))).collect();
    std::thread::sleep(Duration::from_millis(500));
    let killed = Instant::now();
    common::docker(&["kill", &db1]).expect("docker kill db-1");
    let mut id = 610_000;
    let mut tries = 0;
    let first_write = loop {
        tries += 1;
        let r = http(port, "POST", "/users", Some(&common::write_body(id)));
        id += 1;
        if let Ok(r) = &r
            && r.status == 201
            && r.header("X-Db-Role") == Some("primary")
            && r.header("X-Db-Node") != Some(db1.as_str())
        {
            break (killed.elapsed(), r.header("X-Db-Node").unwrap_or_default().to_string());
        }
        assert!(
            killed.elapsed() < Duration::from_secs(120) && tries < 1000,
            "no write acknowledged by a new primary within 120 s; last: {r:?}\n{}",
            watch.transcript()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let line = watch
        .wait_stdout(killed, Duration::from_secs(60), |l| l.ends_with(" promoted"))
        .unwrap_or_else(|| panic!("the watcher logged no promotion:\n{}", watch.transcript()));
    let promoted_after = line.at - killed;
    let promoted = line.text.split_whitespace().nth(1).unwrap_or_default().to_string();
    s.log(&format!(
        "auto failover: \"promoted\" logged {promoted_after:?} after the SIGKILL; first write acknowledged by \
         {} {:?} after it",
        first_write.1, first_write.0
    ));
    assert!(replicas.contains(&promoted), "the watcher promoted {promoted:?}: {}", line.text);
    assert_eq!(first_write.1, promoted, "the first write after the kill came from another node");
    let pg_log = follows
        .iter()
        .find(|(name, _)| *name == promoted)
        .map(|(_, f)| {
            f.grep(&["promote request", "redo done", "name resolution", "selected new timeline", "could not connect"])
        })
        .unwrap_or_default()
        .join("\n");
    drop(follows);
    s.log(&format!(
        "watch transcript (killed at +{:.2}s):\n{}{promoted}'s log:\n{pg_log}",
        killed.duration_since(watch.spawned).as_secs_f64(),
        watch.transcript()
    ));
    assert!(
        promoted_after <= Duration::from_secs(10),
        "the watcher logged the promotion {promoted_after:?} after the primary's SIGKILL (limit 10 s); \
         transcript and {promoted}'s log above"
    );

    let lost = lost_writes(port, acked.iter().map(|(id, body)| (*id, body.as_str())));
    assert!(lost.is_empty(), "acknowledged writes lost in the auto failover: {lost:?}");
    for id in 620_000..620_005u64 {
        let r = http(port, "POST", "/users", Some(&common::write_body(id))).expect("POST after the failover");
        assert_eq!(r.status, 201, "{r:?}");
        assert_eq!((header(&r, "X-Db-Role"), header(&r, "X-Db-Node")), ("primary", promoted.as_str()), "{r:?}");
    }

    // Let the watcher finish rebuilding the old primary as a replica before stopping it.
    let promoted_at = line.at;
    poll_timed(Instant::now(), Duration::from_secs(180), "the watcher's repair after the failover", || {
        match watch.find_stdout(promoted_at, |l| l.contains("repaired") || l.contains("repair failed")) {
            Some(l) => Ok(l),
            None => Err(watch.transcript()),
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    watch.interrupt();
    let exit = watch.wait_exit(Duration::from_secs(15));
    s.log(&format!("watch transcript:\n{}", watch.transcript()));
    assert!(exit.is_some_and(|e| e.code() == Some(0)), "scale watch did not exit 0 within 15 s of SIGINT ({exit:?})");
    s.apply();
    s.plan_is_empty("after the auto failover");
    let nodes = db_nodes(&s.status());
    let primaries: Vec<&DbNode> = nodes.iter().filter(|n| n.role.as_deref() == Some("primary")).collect();
    assert_eq!(primaries.len(), 1, "not exactly one primary: {nodes:?}");
    assert_eq!(primaries[0].container, promoted, "{nodes:?}");
    s.log("done");
}
