//! The whole stage ladder on a real engine, with the real stage files: 01 → 02 → 03 → 04, a
//! rolling update (APP_VERSION=2) and a scale-up (WEB_REPLICAS=4) under load with no failed
//! request, then back down 04 → 03 → 02 → 01 and up to 02 again with the data intact. After
//! every apply, `plan --detailed-exitcode` says there is nothing left to do, and on the way up
//! `scale check` runs each stage's `x-lesson` (and fails, with its hint, while a web server of
//! stage 3 is stopped).
//!
//! The stage files are copied into a scratch directory with exactly two kinds of edits: the
//! fixed public port becomes a random one (`"8080:8000"` → `"8000"`, `"8080:80"` → `"80"`),
//! and `build: images/…` becomes the absolute path of the repository's image directory.
//! Everything else is the file a learner runs. HTTP goes only to 127.0.0.1:<published port>.
//!
//! Images are built through scale (the first time: web ~45 s, postgres ~70 s, haproxy ~35 s;
//! later runs hit the engine's layer cache) and removed when the test ends.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{
    BuildGuard, ClientLoop, DockerTest, HttpResponse, LoopEnd, LoopReport, Scale, ScaleRun, header, http, http_get,
    inspect, poll, project_containers, psql_ok, published_bindings, stage_copy,
};

/// The chapter's user 12, byte for byte.
const USER_12: &str = r#"{"id":12,"firstName":"John","lastName":"Smith","address":{"streetAddress":"21 2nd Street","city":"New York","state":"NY","postalCode":10021},"phoneNumbers":["212 555-1234","646 555-4567"]}"#;

/// One walk of the ladder.
struct Ladder {
    p: String,
    files: Vec<String>,
    started: Instant,
}

impl Ladder {
    fn log(&self, what: &str) {
        eprintln!("[ladder {:>6.1}s] {what}", self.started.elapsed().as_secs_f64());
    }

    fn file(&self, stage: usize) -> &str {
        &self.files[stage - 1]
    }

    /// `scale apply --yes` of stage `stage`, with only `env` setting the stage variables;
    /// then `plan --detailed-exitcode` with the same environment must answer 0.
    fn apply(&self, stage: usize, env: &[(&str, &str)]) -> ScaleRun {
        let run = Scale::new(&["apply", "--yes", "-p", &self.p, self.file(stage)]).envs(env).isolated().run();
        run.success();
        self.log(&format!("apply stage {stage} {env:?}: {:.1}s", run.elapsed.as_secs_f64()));
        self.plan_is_empty(stage, env);
        run
    }

    fn plan_is_empty(&self, stage: usize, env: &[(&str, &str)]) {
        let plan =
            Scale::new(&["plan", "--detailed-exitcode", "-p", &self.p, self.file(stage)]).envs(env).isolated().run();
        assert_eq!(
            plan.code,
            Some(0),
            "after applying stage {stage} {env:?}, the plan is not empty (exit {:?}):\n{}\n{}",
            plan.code,
            plan.stdout,
            plan.stderr
        );
    }

    /// `scale check` of stage `stage`: the lesson the blueprint teaches must hold on the live
    /// project (the same checks a learner runs, so docs, lessons and this test agree).
    fn check(&self, stage: usize, env: &[(&str, &str)]) {
        let run = Scale::new(&["check", "-p", &self.p, self.file(stage)]).envs(env).isolated().run();
        assert_eq!(run.code, Some(0), "stage {stage}'s x-lesson does not hold:\n{}", run.all());
        assert!(run.stdout.contains(" 0 failed"), "stage {stage}: {}", run.stdout);
    }

    /// The host port of `service`'s TCP endpoint, from `status --output json`.
    fn port(&self, stage: usize, service: &str, env: &[(&str, &str)]) -> u16 {
        let status =
            Scale::new(&["status", self.file(stage), "-p", &self.p, "--output", "json"]).envs(env).isolated().run();
        let status = status.success().json();
        let endpoints = status["endpoints"].as_array().unwrap_or_else(|| panic!("no endpoints[] in {status:#}"));
        let ports: BTreeSet<u64> = endpoints
            .iter()
            .filter(|e| e["service"] == service && e["protocol"] == "tcp")
            .filter_map(|e| e["host_port"].as_u64())
            .collect();
        assert_eq!(ports.len(), 1, "stage {stage}: expected one public port of {service}: {status:#}");
        let services: BTreeSet<&str> = endpoints.iter().filter_map(|e| e["service"].as_str()).collect();
        assert_eq!(services, BTreeSet::from([service]), "stage {stage}: only {service} is public: {status:#}");
        u16::try_from(*ports.first().expect("one port")).expect("a port number")
    }

    fn container(&self, service: &str, n: u32) -> String {
        format!("{}-{service}-{n}", self.p)
    }

    fn container_id(&self, service: &str, n: u32) -> String {
        let name = self.container(service, n);
        project_containers(&self.p).get(&name).unwrap_or_else(|| panic!("{name} does not exist")).id.clone()
    }
}

/// User 12, byte for byte, answered with status 200 and `X-Db-Role: role`.
#[track_caller]
fn assert_user_12(r: &HttpResponse, role: &str) {
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, USER_12, "{r:?}");
    assert_eq!(header(r, "X-Db-Role"), role, "{r:?}");
}

/// Ten GETs of user 12 through the load balancer alternate strictly between web-1 and web-2
/// (round robin). A window that does not alternate is retried (at most 3 windows) only when
/// the load balancer's log shows a health-check flap during it (a server marked DOWN on a
/// machine so loaded that `/healthz` misses HAProxy's 1 s check), and the flap is logged.
#[track_caller]
fn assert_alternates(l: &Ladder, port: u16, role: &str) {
    let both = BTreeSet::from([l.container("web", 1), l.container("web", 2)]);
    let lb = l.container("lb", 1);
    let mut windows = Vec::new();
    for _ in 0..3 {
        let since = common::docker_timestamp();
        let served: Vec<String> = (0..10)
            .map(|_| {
                let r = http_get(port, "/users/12");
                assert_user_12(&r, role);
                header(&r, "X-Served-By").to_string()
            })
            .collect();
        if served.iter().cloned().collect::<BTreeSet<_>>() == both && served.windows(2).all(|w| w[0] != w[1]) {
            if !windows.is_empty() {
                l.log(&format!("X-Served-By alternated after health-check flaps: {windows:#?}"));
            }
            return;
        }
        let logs = common::docker(&["logs", "--since", &since, &lb]).unwrap_or_default();
        let flaps: Vec<String> = logs.lines().filter(|line| line.contains(" is DOWN")).map(str::to_string).collect();
        assert!(!flaps.is_empty(), "X-Served-By does not alternate, and no server went DOWN: {served:?}");
        windows.push((served, flaps));
    }
    panic!("X-Served-By did not alternate in 3 windows of 10 requests: {windows:#?}");
}

/// The stage-2 user comes back exactly as it was stored.
#[track_caller]
fn assert_stage2_user(port: u16, path: &str, stored: &str) {
    let r = http_get(port, path);
    assert_eq!(r.status, 200, "the stage-2 user is gone: {r:?}");
    assert_eq!(r.body, stored, "{r:?}");
}

/// Starts the client loop used while the web tier changes: GET /users/12 every ~20 ms, at
/// most 1500 requests and 240 s.
fn start_load(port: u16) -> ClientLoop {
    ClientLoop::start(port, "/users/12", Duration::from_millis(20), 1500, Duration::from_secs(240))
}

/// Lets the loop run on for 3 s after `applied`, and longer (at most 30 s) until at least
/// `answers` requests have been answered since: on a loaded machine a request can take a
/// second or more.
fn settle(load: &ClientLoop, applied: Instant, answers: usize) {
    std::thread::sleep(Duration::from_secs(3).saturating_sub(applied.elapsed()));
    while load.running() && load.answers_after(applied) < answers && applied.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// No failed request, and the loop ran until it was stopped.
#[track_caller]
fn assert_no_failures(report: &LoopReport, what: &str) {
    let failures = report.failures();
    assert!(
        failures.is_empty(),
        "{what}: {} of {} requests failed, first ones: {:#?}",
        failures.len(),
        report.samples.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(
        report.ended,
        LoopEnd::Stopped,
        "{what}: the client loop ran out ({} requests) before it was stopped",
        report.samples.len()
    );
}

#[test]
fn ladder_up_and_down() {
    if !common::docker_or_skip("ladder_up_and_down") {
        return;
    }
    let guard = BuildGuard(Some(DockerTest::with_project(&format!("t-lad-{}-1", std::process::id()))));
    let t = guard.0.as_ref().expect("the project is open");
    let dir = tempfile::tempdir().expect("tempdir");
    let l = Ladder {
        p: t.project().to_string(),
        files: (1..=4).map(|n| stage_copy(dir.path(), n, &[])).collect(),
        started: Instant::now(),
    };
    let p = l.p.clone();
    let db1 = l.container("db", 1);

    // ---- stage 1: one server, its own embedded database.
    l.apply(1, &[]);
    l.check(1, &[]);
    let port = l.port(1, "web", &[]);
    let r = http_get(port, "/users/12");
    assert_user_12(&r, "embedded");
    assert_eq!(header(&r, "X-Served-By"), l.container("web", 1), "{r:?}");

    // ---- 1 → 2: the data moves to PostgreSQL (db-1, the primary).
    l.apply(2, &[]);
    l.check(2, &[]);
    let port = l.port(2, "web", &[]);
    let r = http_get(port, "/users/12");
    assert_user_12(&r, "primary");
    assert_eq!(header(&r, "X-Db-Node"), db1, "{r:?}");
    let created = http(port, "POST", "/users", Some(r#"{"firstName":"Stage","lastName":"Two"}"#)).expect("POST /users");
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(header(&created, "X-Db-Role"), "primary", "{created:?}");
    let stage2_user: serde_json::Value = serde_json::from_str(&created.body).expect("POST answers JSON");
    assert_eq!((stage2_user["firstName"].as_str(), stage2_user["lastName"].as_str()), (Some("Stage"), Some("Two")));
    let stage2_id = stage2_user["id"].as_u64().unwrap_or_else(|| panic!("no id in {stage2_user}"));
    let stage2_path = format!("/users/{stage2_id}");
    let stage2_body = created.body.clone();
    assert_stage2_user(port, &stage2_path, &stage2_body);
    let db1_id = l.container_id("db", 1);

    // ---- 2 → 3: a load balancer in front of two web servers on the private network.
    let plan = Scale::new(&["plan", "-p", &p, l.file(3)]).isolated().run();
    assert_eq!(plan.code, Some(0), "plan of 2 → 3: {}\n{}", plan.stdout, plan.stderr);
    assert!(
        !plan.stdout.contains(&db1) && !plan.stderr.contains(&db1),
        "the plan of 2 → 3 touches the database server {db1}:\n{}{}",
        plan.stdout,
        plan.stderr
    );
    l.apply(3, &[]);
    l.check(3, &[]);
    let port = l.port(3, "lb", &[]);
    let private = format!("{p}_private");
    for n in 1..=2 {
        let web = inspect(&l.container("web", n));
        assert_eq!(published_bindings(&web), vec![], "web-{n} publishes a port: {:#}", web["NetworkSettings"]["Ports"]);
        let bindings = &web["HostConfig"]["PortBindings"];
        assert!(
            bindings.is_null() || bindings.as_object().is_some_and(|m| m.is_empty()),
            "web-{n} has port bindings: {bindings:#}"
        );
        let networks: BTreeSet<String> = web["NetworkSettings"]["Networks"]
            .as_object()
            .unwrap_or_else(|| panic!("web-{n} has no networks"))
            .keys()
            .cloned()
            .collect();
        assert_eq!(networks, BTreeSet::from([private.clone()]), "web-{n} networks");
    }
    assert_eq!(inspect(&private)["Internal"], true, "{private} must be internal");
    let mut published = Vec::new();
    for name in project_containers(&p).keys() {
        // The IPv6 twin of a binding on all addresses is skipped: Docker 20.10 may give it
        // another host port than the IPv4 one, which is the port the project publishes.
        for (port, _, host_port) in published_bindings(&inspect(name)).into_iter().filter(|(_, ip, _)| ip != "::") {
            published.push((name.clone(), port, host_port));
        }
    }
    assert!(!published.is_empty(), "nothing is published at stage 3");
    assert!(
        published.iter().all(|(name, container_port, host_port)| *name == l.container("lb", 1)
            && container_port == "80/tcp"
            && *host_port == port.to_string()),
        "only the load balancer may publish a port at stage 3: {published:?}"
    );
    assert_alternates(&l, port, "primary");
    assert_stage2_user(port, &stage2_path, &stage2_body);
    assert_eq!(l.container_id("db", 1), db1_id, "stage 3 recreated {db1}");
    // With a web server down, the lesson fails and says where to look; apply repairs it.
    Scale::new(&["chaos", "stop", "web-1", "-p", &p]).isolated().run().success();
    let broken = Scale::new(&["check", "-p", &p, l.file(3)]).isolated().run();
    assert_eq!(broken.code, Some(1), "check passes with web-1 stopped:\n{}", broken.all());
    assert!(broken.stdout.contains("✘ both web servers answer in turn"), "{}", broken.stdout);
    assert!(broken.stdout.contains("hint: a web server is out of the pool"), "{}", broken.stdout);
    let live = Scale::new(&["graph", "--live", "-p", &p, l.file(3)]).isolated().run();
    live.success();
    let id = |n: u32| format!("n_{}", l.container("web", n).replace('-', "_"));
    assert!(live.stdout.contains(&format!("class {} down", id(1))), "graph --live: web-1 not down:\n{}", live.stdout);
    assert!(live.stdout.contains(&format!("class {} up", id(2))), "graph --live: web-2 not up:\n{}", live.stdout);
    l.apply(3, &[]);
    l.check(3, &[]);

    // ---- 3 → 4: two read replicas; reads go to them, writes to the primary.
    l.apply(4, &[]);
    l.check(4, &[]);
    let stages = Scale::new(&["stages", "-p", &p, dir.path().to_str().expect("UTF-8 temp path")]).isolated().run();
    stages.success();
    let applied: Vec<&str> = stages.stdout.lines().filter(|line| line.contains("← applied now")).collect();
    assert!(
        applied.len() == 1 && applied[0].contains("Database replication"),
        "scale stages does not mark stage 4 as the one applied:\n{}",
        stages.stdout
    );
    let port = l.port(4, "lb", &[]);
    let replicas = BTreeSet::from([l.container("db", 2), l.container("db", 3)]);
    for _ in 0..10 {
        let r = http_get(port, "/users/12");
        assert_user_12(&r, "replica");
        assert!(replicas.contains(header(&r, "X-Db-Node")), "a read not served by a replica: {r:?}");
    }
    let written = http(port, "POST", "/users", Some(r#"{"firstName":"Stage","lastName":"Four"}"#)).expect("POST");
    assert_eq!(written.status, 201, "{written:?}");
    assert_eq!(header(&written, "X-Db-Role"), "primary", "{written:?}");
    assert_eq!(header(&written, "X-Db-Node"), db1, "{written:?}");
    let stage4_id = serde_json::from_str::<serde_json::Value>(&written.body).expect("JSON")["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no id in {}", written.body));
    let stage4_path = format!("/users/{stage4_id}");
    let replicated = poll(Duration::from_secs(10), "the new row read back from a replica", || {
        let r = http(port, "GET", &stage4_path, None).map_err(|e| e.to_string())?;
        if r.status == 200 && r.header("X-Db-Role") == Some("replica") { Ok(r) } else { Err(format!("{r:?}")) }
    });
    assert_eq!(replicated.body, written.body, "{replicated:?}");
    for replica in &replicas {
        let sql = format!("select count(*) from users where id = {stage4_id}");
        poll(Duration::from_secs(10), &format!("the new row on {replica}"), || {
            let count = psql_ok(replica, Some("app"), &sql);
            if count == "1" { Ok(()) } else { Err(count) }
        });
    }
    poll(Duration::from_secs(20), "two streaming replicas", || {
        let count = psql_ok(&db1, None, "select count(*) from pg_stat_replication where state='streaming'");
        if count == "2" { Ok(()) } else { Err(count) }
    });
    assert_eq!(l.container_id("db", 1), db1_id, "stage 4 recreated {db1}");
    assert_stage2_user(port, &stage2_path, &stage2_body);

    // ---- rolling update at stage 4 under load: no failed request.
    let v2: &[(&str, &str)] = &[("APP_VERSION", "2")];
    let load = start_load(port);
    std::thread::sleep(Duration::from_millis(500));
    l.apply(4, v2);
    let applied = Instant::now();
    settle(&load, applied, 10);
    let report = load.stop();
    l.log(&format!("rolling update: {}", report.describe(true)));
    assert_no_failures(&report, "APP_VERSION=2 rolling update");
    assert_eq!(report.versions(), BTreeSet::from(["1".to_string(), "2".to_string()]), "both versions answered");
    let last = report.after(applied);
    assert!(last.len() >= 10, "too few answers after the apply returned: {}", last.len());
    assert!(
        last.iter().all(|s| s.version.as_deref() == Some("2")),
        "after the rolling update returned, a response did not come from version 2: {:?}",
        last.iter().filter(|s| s.version.as_deref() != Some("2")).collect::<Vec<_>>()
    );
    assert_eq!(l.port(4, "lb", v2), port, "the rolling update moved the public port");

    // ---- scale-up to four web servers under load.
    let four: &[(&str, &str)] = &[("APP_VERSION", "2"), ("WEB_REPLICAS", "4")];
    let load = start_load(port);
    std::thread::sleep(Duration::from_millis(500));
    l.apply(4, four);
    settle(&load, Instant::now(), 10);
    let report = load.stop();
    l.log(&format!("scale-up: {}", report.describe(true)));
    assert_no_failures(&report, "WEB_REPLICAS=4 scale-up");
    let served: BTreeSet<String> =
        (0..20).map(|_| header(&http_get(port, "/users/12"), "X-Served-By").to_string()).collect();
    let all_four: BTreeSet<String> = (1..=4).map(|n| l.container("web", n)).collect();
    assert_eq!(served, all_four, "20 requests after the scale-up");
    let status = Scale::new(&["status", l.file(4), "-p", &p, "--output", "json"]).envs(four).isolated().run();
    let status = status.success().json();
    assert_eq!(status["in_sync"], true, "{status:#}");
    let names: BTreeSet<&str> =
        status["containers"].as_array().expect("containers[]").iter().filter_map(|c| c["name"].as_str()).collect();
    let expected: BTreeSet<String> = [("lb", 1), ("web", 1), ("web", 2), ("web", 3), ("web", 4)]
        .into_iter()
        .chain([("db", 1), ("db", 2), ("db", 3)])
        .map(|(s, n)| l.container(s, n))
        .collect();
    assert_eq!(names, expected.iter().map(String::as_str).collect(), "{status:#}");
    assert_eq!(l.container_id("db", 1), db1_id, "the scale-up recreated {db1}");

    // ---- back down: 4 → 3.
    l.apply(3, &[]);
    let port = l.port(3, "lb", &[]);
    assert_alternates(&l, port, "primary");
    assert_stage2_user(port, &stage2_path, &stage2_body);
    let names: BTreeSet<String> = project_containers(&p).into_keys().collect();
    let expected: BTreeSet<String> =
        [("lb", 1), ("web", 1), ("web", 2), ("db", 1)].map(|(s, n)| l.container(s, n)).into();
    assert_eq!(names, expected, "containers at stage 3 again");
    assert_eq!(l.container_id("db", 1), db1_id, "4 → 3 recreated {db1}");
    // The departed replicas' slots are gone, or the primary would keep WAL for them forever.
    let slots = psql_ok(&db1, None, "select count(*) from pg_replication_slots");
    assert_eq!(slots, "0", "replication slots left on {db1} after its replicas were removed");

    // ---- 3 → 2.
    l.apply(2, &[]);
    let port = l.port(2, "web", &[]);
    let r = http_get(port, "/users/12");
    assert_user_12(&r, "primary");
    assert_eq!(header(&r, "X-Db-Node"), db1, "{r:?}");
    assert_eq!(header(&r, "X-Served-By"), l.container("web", 1), "{r:?}");
    assert_stage2_user(port, &stage2_path, &stage2_body);
    assert_eq!(l.container_id("db", 1), db1_id, "3 → 2 recreated {db1}");

    // ---- 2 → 1: the database server goes; its volume stays.
    l.apply(1, &[]);
    let port = l.port(1, "web", &[]);
    let r = http_get(port, "/users/12");
    assert_user_12(&r, "embedded");
    assert_eq!(header(&r, "X-Served-By"), l.container("web", 1), "{r:?}");
    let names: BTreeSet<String> = project_containers(&p).into_keys().collect();
    assert_eq!(names, BTreeSet::from([l.container("web", 1)]), "containers at stage 1 again");

    // ---- 1 → 2: a new db-1 on the same volume still has the stage-2 user.
    l.apply(2, &[]);
    let port = l.port(2, "web", &[]);
    let r = http_get(port, "/users/12");
    assert_user_12(&r, "primary");
    assert_eq!(header(&r, "X-Db-Node"), db1, "{r:?}");
    assert_stage2_user(port, &stage2_path, &stage2_body);
    assert_ne!(l.container_id("db", 1), db1_id, "stage 1 should have removed {db1}");

    // ---- destroy --volumes leaves nothing labelled with the project.
    Scale::new(&["destroy", "--yes", "--volumes", "-p", &p]).isolated().run().success();
    assert!(project_containers(&p).is_empty(), "containers left: {:?}", project_containers(&p));
    assert_eq!(common::project_resources("network", &p), Vec::<String>::new());
    assert_eq!(common::project_resources("volume", &p), Vec::<String>::new());
    l.log("done");
}
