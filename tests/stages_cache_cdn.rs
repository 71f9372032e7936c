//! Stages 5 (cache) and 6 (CDN) on a real engine, with the real stage files: 04 → 05 → 06 →
//! 04, each stage's proof checked over HTTP on 127.0.0.1, and the primary database container
//! the same from the first step to the last.
//!
//! Stage 5: `GET /users/12` is a MISS, then a HIT (no database asked); a POST or PUT evicts the
//! user before it returns, so the next read is a MISS with the new document, every time; the
//! cached entry lives CACHE_TTL seconds; with the cache killed every request still answers 200
//! from the database (`X-Cache: BYPASS`), and `scale apply` brings the cache back.
//! Stage 6: at the edge an asset's `Age` grows and it stays a HIT while the origin logs one
//! fetch of it; a new asset version is a new URL; with the origin (the load balancer) killed
//! the edge still serves what it holds, and with the edge killed the page loads from the
//! origin. `scale status` reports the cache's and the edge's hit counters.
//! `scale check` runs each stage's `x-lesson` while the stage is live (after its proofs, which
//! count every request), so the lessons a learner runs and this test cannot disagree; with the
//! cache killed, stage 5's lesson fails and gives its hint.
//!
//! The stage files are copied into a scratch directory with two kinds of edits only: fixed
//! public ports become random ones (`"8080:80"`/`"8081:80"` → `"80"`) and `build: images/…`
//! becomes the repository's absolute image directory. The stage variables this test relies
//! on (CACHE_TTL, ASSET_VERSION, and the ones `Scale::isolated` clears) are always set
//! explicitly, so the caller's shell cannot change what a stage means.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{BuildGuard, DockerTest, HttpResponse, Scale, header, http, http_get, poll, project_containers};

/// The chapter's user 12, byte for byte.
const USER_12: &str = r#"{"id":12,"firstName":"John","lastName":"Smith","address":{"streetAddress":"21 2nd Street","city":"New York","state":"NY","postalCode":10021},"phoneNumbers":["212 555-1234","646 555-4567"]}"#;

/// The stage variables of every run: stage 5's TTL and stage 6's first asset version.
const ENV: &[(&str, &str)] = &[("CACHE_TTL", "30"), ("ASSET_VERSION", "1")];
/// The same after the asset release.
const ENV_V2: &[(&str, &str)] = &[("CACHE_TTL", "30"), ("ASSET_VERSION", "2")];

/// One walk 04 → 05 → 06 → 04 of project `p`.
struct Walk {
    p: String,
    dir: tempfile::TempDir,
    started: Instant,
}

impl Walk {
    fn log(&self, what: &str) {
        eprintln!("[cache-cdn {:>6.1}s] {what}", self.started.elapsed().as_secs_f64());
    }

    fn file(&self, name: &str) -> String {
        common::stage_file(self.dir.path(), name)
    }

    /// `scale apply --yes`, then `plan --detailed-exitcode` must find nothing left to do.
    fn apply(&self, name: &str, env: &[(&str, &str)]) {
        let file = self.file(name);
        let run = Scale::new(&["apply", "--yes", "-p", &self.p, &file]).envs(env).isolated().run();
        run.success();
        self.log(&format!("apply {name} {env:?}: {:.1}s", run.elapsed.as_secs_f64()));
        let plan = Scale::new(&["plan", "--detailed-exitcode", "-p", &self.p, &file]).envs(env).isolated().run();
        assert_eq!(
            plan.code,
            Some(0),
            "after applying {name} the plan is not empty:\n{}\n{}",
            plan.stdout,
            plan.stderr
        );
    }

    /// The container actions of `scale plan` for stage `name` must be exactly `expected`
    /// (verb, service-replica): stepping touches only what differs.
    fn plan_touches(&self, name: &str, env: &[(&str, &str)], expected: &[(&str, &str)]) {
        let plan =
            Scale::new(&["plan", "-p", &self.p, &self.file(name), "--output", "json"]).envs(env).isolated().run();
        let plan = plan.success().json();
        let touched: BTreeSet<(String, String)> = plan["actions"]
            .as_array()
            .unwrap_or_else(|| panic!("no actions[] in {plan:#}"))
            .iter()
            .filter(|a| a["resource"] == "container")
            .map(|a| (a["action"].as_str().unwrap_or("?").to_string(), a["name"].as_str().unwrap_or("?").to_string()))
            .collect();
        let expected: BTreeSet<(String, String)> =
            expected.iter().map(|(verb, c)| (verb.to_string(), format!("{}-{c}", self.p))).collect();
        assert_eq!(touched, expected, "the containers the plan of {name} touches: {plan:#}");
    }

    /// `scale check` of stage `name`: the lesson the blueprint teaches must hold on the live
    /// project (the same checks a learner runs).
    fn check(&self, name: &str, env: &[(&str, &str)]) {
        let run = Scale::new(&["check", "-p", &self.p, &self.file(name)]).envs(env).isolated().run();
        assert_eq!(run.code, Some(0), "{name}'s x-lesson does not hold:\n{}", run.all());
        assert!(run.stdout.contains(" 0 failed"), "{name}: {}", run.stdout);
        self.log(&format!("check {name}: {}", run.stdout.lines().last().unwrap_or("")));
    }

    /// `scale chaos kill TARGET`.
    fn kill(&self, target: &str) {
        let run = Scale::new(&["chaos", "kill", target, "-p", &self.p]).envs(&[]).isolated().run();
        run.success();
        self.log(&format!("chaos kill {target}: {}", run.stdout.trim()));
    }

    /// The host port `service` publishes, from `status --output json`.
    fn port(&self, name: &str, service: &str, env: &[(&str, &str)]) -> u16 {
        let status =
            Scale::new(&["status", &self.file(name), "-p", &self.p, "--output", "json"]).envs(env).isolated().run();
        let status = status.success().json();
        let ports: BTreeSet<u64> = status["endpoints"]
            .as_array()
            .unwrap_or_else(|| panic!("no endpoints[] in {status:#}"))
            .iter()
            .filter(|e| e["service"] == service && e["protocol"] == "tcp")
            .filter_map(|e| e["host_port"].as_u64())
            .collect();
        assert_eq!(ports.len(), 1, "expected one public port of {service}: {status:#}");
        u16::try_from(*ports.first().expect("one port")).expect("a port number")
    }

    /// `status --output json`'s counters of `service`'s one cache container: (hits, misses,
    /// hit ratio).
    fn cache_counters(&self, name: &str, service: &str, env: &[(&str, &str)]) -> (u64, u64, f64) {
        let status =
            Scale::new(&["status", &self.file(name), "-p", &self.p, "--output", "json"]).envs(env).isolated().run();
        let status = status.success().json();
        let caches: Vec<&serde_json::Value> = status["caches"]
            .as_array()
            .unwrap_or_else(|| panic!("no caches[] in {status:#}"))
            .iter()
            .filter(|c| c["service"] == service)
            .collect();
        assert_eq!(caches.len(), 1, "expected the counters of one {service} container: {status:#}");
        let c = caches[0];
        let number = |key: &str| c[key].as_u64().unwrap_or_else(|| panic!("no {key} in {c:#}"));
        let ratio = c["hit_ratio"].as_f64().unwrap_or_else(|| panic!("no hit_ratio in {c:#}"));
        (number("hits"), number("misses"), ratio)
    }

    fn container(&self, service: &str, n: u32) -> String {
        format!("{}-{service}-{n}", self.p)
    }

    fn container_id(&self, service: &str, n: u32) -> String {
        let name = self.container(service, n);
        project_containers(&self.p).get(&name).unwrap_or_else(|| panic!("{name} does not exist")).id.clone()
    }

    /// How many times the web servers logged `GET <path>` (each origin fetch is one line).
    fn origin_fetches(&self, path: &str) -> usize {
        let needle = format!("\"GET {path} HTTP/");
        (1..=2)
            .map(|n| {
                let logs = common::docker(&["logs", &self.container("web", n)]).expect("docker logs of a web server");
                logs.lines().filter(|l| l.contains(&needle)).count()
            })
            .sum()
    }
}

/// `method path` with a JSON body; panics if no HTTP answer comes.
fn send(port: u16, method: &str, path: &str, body: &str) -> HttpResponse {
    http(port, method, path, Some(body)).unwrap_or_else(|e| panic!("{method} 127.0.0.1:{port}{path}: {e}"))
}

/// A GET answered 200 with `X-Cache: outcome` and `body`.
#[track_caller]
fn assert_cached(r: &HttpResponse, outcome: &str, body: &str) {
    assert_eq!((r.status, header(r, "X-Cache")), (200, outcome), "{r:?}");
    assert_eq!(r.body, body, "{r:?}");
}

/// Stage 5's proofs through the load balancer on `lb`.
fn cache_proofs(w: &Walk, lb: u16) -> (String, String) {
    // Read-through: the first read fills the cache, the next one is served from it alone.
    let first = http_get(lb, "/users/12");
    assert_cached(&first, "MISS", USER_12);
    assert_ne!(header(&first, "X-Db-Role"), "none", "a miss reads the database: {first:?}");
    for _ in 0..4 {
        let hit = http_get(lb, "/users/12");
        assert_cached(&hit, "HIT", USER_12);
        assert_eq!((header(&hit, "X-Db-Node"), header(&hit, "X-Db-Role")), ("none", "none"), "{hit:?}");
    }
    // The entry lives CACHE_TTL (30) seconds.
    let cache1 = w.container("cache", 1);
    let ttl: i64 = common::docker(&["exec", &cache1, "redis-cli", "TTL", "user:12"])
        .expect("redis-cli TTL")
        .parse()
        .expect("TTL is a number");
    assert!((1..=30).contains(&ttl), "user:12 should expire within CACHE_TTL=30 s, TTL says {ttl}");

    // A write evicts before it returns: the next read is a MISS with the new document, then a HIT.
    let created = send(lb, "POST", "/users", r#"{"firstName":"Stage","lastName":"Five"}"#);
    assert_eq!((created.status, header(&created, "X-Cache")), (201, "EVICTED"), "{created:?}");
    let id = serde_json::from_str::<serde_json::Value>(&created.body).expect("JSON")["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no id in {}", created.body));
    let path = format!("/users/{id}");
    assert_cached(&http_get(lb, &path), "MISS", &created.body);
    assert_cached(&http_get(lb, &path), "HIT", &created.body);
    for round in 1..=5 {
        let body = format!(r#"{{"id":{id},"firstName":"Stage","lastName":"Five","round":{round}}}"#);
        let put = send(lb, "PUT", &path, &body);
        assert_eq!((put.status, header(&put, "X-Cache")), (200, "EVICTED"), "{put:?}");
        assert_eq!(put.body, body, "{put:?}");
        assert_cached(&http_get(lb, &path), "MISS", &body);
        assert_cached(&http_get(lb, &path), "HIT", &body);
    }
    w.log("cache: MISS → HIT, 1 POST + 5 PUTs each followed by a MISS with the new document");
    // `scale status` counts exactly these reads: 4 + 1 + 5 hits, 1 + 1 + 5 misses.
    let (hits, misses, ratio) = w.cache_counters("05-cache.yaml", "cache", ENV);
    assert_eq!((hits, misses), (10, 7), "the cache's counters in `scale status`");
    assert!((ratio - 10.0 / 17.0).abs() < 1e-9, "hit ratio {ratio}");

    // The cache goes down: every request still answers, from the database.
    w.kill("cache");
    for _ in 0..6 {
        let r = http_get(lb, "/users/12");
        assert_cached(&r, "BYPASS", USER_12);
        assert_ne!(header(&r, "X-Db-Role"), "none", "a bypass reads the database: {r:?}");
    }
    let body = format!(r#"{{"id":{id},"firstName":"Stage","lastName":"Five","round":"outage"}}"#);
    let put = send(lb, "PUT", &path, &body);
    assert_eq!((put.status, header(&put, "X-Cache")), (200, "BYPASS"), "a write while the cache is down: {put:?}");
    let read = poll(Duration::from_secs(10), "the write made during the outage, read back", || {
        let r = http_get(lb, &path);
        if r.body == body { Ok(r) } else { Err(format!("{r:?}")) }
    });
    assert_eq!(header(&read, "X-Cache"), "BYPASS", "{read:?}");
    w.log("cache killed: 6 reads and a write answered, X-Cache: BYPASS");
    (path, body)
}

/// The cache is back after an apply: reads turn to MISS and then HIT, every one of them with
/// what was written while it was down. (A web server that could not evict during the outage
/// evicts when it first reaches the cache again, so a second MISS may come before the HIT.)
fn cache_is_back(lb: u16, path: &str, latest: &str) {
    let mut seen = Vec::new();
    poll(Duration::from_secs(15), "a HIT from the restarted cache", || {
        let r = http_get(lb, path);
        assert_eq!((r.status, r.body.as_str()), (200, latest), "a read after the cache came back: {r:?}");
        seen.push(header(&r, "X-Cache").to_string());
        if seen.last().is_some_and(|c| c == "HIT") { Ok(()) } else { Err(format!("{r:?}")) }
    });
    assert!(seen.iter().any(|c| c == "MISS"), "the restarted cache is empty, so a MISS comes first: {seen:?}");
}

/// An asset at the edge: MISS once, then HITs whose `Age` grows, all from one origin fetch.
fn edge_caches(w: &Walk, cdn: u16, path: &str) {
    let first = http_get(cdn, path);
    assert_eq!((first.status, header(&first, "X-Cache")), (200, "MISS"), "{first:?}");
    assert!(header(&first, "Cache-Control").contains("max-age="), "{first:?}");
    let filled_by = header(&first, "X-Served-By").to_string();
    let mut last_age = 0;
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1500));
        let r = http_get(cdn, path);
        assert_eq!((r.status, header(&r, "X-Cache")), (200, "HIT"), "{r:?}");
        assert_eq!(r.body, first.body, "{r:?}");
        assert_eq!(header(&r, "X-Served-By"), filled_by, "a hit is the object the first fetch stored: {r:?}");
        let age: u64 = header(&r, "Age").parse().expect("Age is a number");
        assert!(age > last_age, "Age does not grow: {age} after {last_age}");
        last_age = age;
    }
    assert_eq!(w.origin_fetches(path), 1, "the origin should have been asked for {path} once");
}

/// Stage 6's proofs: the edge on `cdn`, the origin on `lb`.
fn cdn_proofs(w: &Walk, lb: u16, cdn: u16) -> u16 {
    let page = http_get(cdn, "/index.html");
    assert_eq!(page.status, 200, "{page:?}");
    for asset in ["/static/v1/app.css", "/static/v1/app.js", "/static/v1/logo.svg"] {
        assert!(page.body.contains(&format!("\"{asset}\"")), "the page does not link {asset}: {page:?}");
    }
    edge_caches(w, cdn, "/static/v1/app.css");
    // The API passes through the edge uncached: the app's own cache header comes back.
    let api = http_get(cdn, "/users/12");
    assert_eq!(api.status, 200, "{api:?}");
    assert!(matches!(header(&api, "X-Cache"), "HIT" | "MISS"), "{api:?}");
    w.log("edge: Age grows, HIT, one origin fetch");
    // `scale status` shows the edge's counters: the page and the stylesheet missed once, the
    // stylesheet hit three times; the API passed through and counts as neither.
    let (hits, misses, ratio) = w.cache_counters("06-cdn.yaml", "cdn", ENV);
    assert_eq!((hits, misses), (3, 2), "the edge's counters in `scale status`");
    assert!((ratio - 0.6).abs() < 1e-9, "hit ratio {ratio}");

    // A release: new asset version, new URLs; the page (max-age 5 s) links them soon after.
    w.apply("06-cdn.yaml", ENV_V2);
    let page = poll(Duration::from_secs(20), "the page at the edge linking version 2", || {
        let r = http_get(cdn, "/index.html");
        if r.status == 200 && r.body.contains("/static/v2/app.css") { Ok(r) } else { Err(format!("{r:?}")) }
    });
    assert!(!page.body.contains("/static/v1/"), "{page:?}");
    edge_caches(w, cdn, "/static/v2/app.css");
    let v1 = http_get(cdn, "/static/v1/app.css");
    let v2 = http_get(cdn, "/static/v2/app.css");
    assert_eq!(header(&v1, "X-Cache"), "HIT", "the old URL is still the old object: {v1:?}");
    assert_ne!(v1.body, v2.body, "two versions, two contents");
    w.log("edge: ASSET_VERSION=2 is new URLs; v1 still cached as it was");

    // The origin goes down: the edge serves what it holds, and nothing else.
    w.kill("lb");
    for _ in 0..3 {
        let r = http_get(cdn, "/static/v2/app.css");
        assert_eq!((r.status, header(&r, "X-Cache")), (200, "HIT"), "with the origin down: {r:?}");
        assert_eq!(r.body, v2.body, "{r:?}");
    }
    // The page (max-age 5 s) outlives its TTL in grace: served stale while the origin is away.
    std::thread::sleep(Duration::from_secs(6));
    let stale = http_get(cdn, "/index.html");
    assert_eq!(stale.status, 200, "the expired page with the origin down: {stale:?}");
    assert!(matches!(header(&stale, "X-Cache"), "STALE" | "HIT"), "{stale:?}");
    let never = http_get(cdn, "/static/v9/app.css");
    assert_eq!(never.status, 503, "an object the edge never held, with the origin down: {never:?}");
    assert!(http(lb, "GET", "/index.html", None).is_err(), "the origin answered although it was killed");
    w.log(&format!("origin killed: the edge served its copies (page: X-Cache {})", header(&stale, "X-Cache")));
    w.apply("06-cdn.yaml", ENV_V2);
    // A killed container that is started again gets a new random host port.
    let lb = w.port("06-cdn.yaml", "lb", ENV_V2);
    poll(Duration::from_secs(20), "the edge fetching a new object from the restarted origin", || {
        let r = http_get(cdn, "/static/v3/app.css");
        if r.status == 200 { Ok(()) } else { Err(format!("{r:?}")) }
    });

    // The edge goes down: the page and its assets load from the origin.
    w.kill("cdn");
    assert!(http(cdn, "GET", "/index.html", None).is_err(), "the edge answered although it was killed");
    let page = http_get(lb, "/index.html");
    assert_eq!(page.status, 200, "{page:?}");
    for asset in ["/static/v2/app.css", "/static/v2/app.js", "/static/v2/logo.svg"] {
        assert!(page.body.contains(&format!("\"{asset}\"")), "{page:?}");
        let r = http_get(lb, asset);
        assert_eq!(r.status, 200, "{asset} from the origin: {r:?}");
    }
    w.log("edge killed: the page and its assets loaded from the origin");
    w.apply("06-cdn.yaml", ENV_V2);
    lb
}

#[test]
fn cache_and_cdn_stages() {
    if !common::docker_or_skip("cache_and_cdn_stages") {
        return;
    }
    let guard = BuildGuard(Some(DockerTest::with_project(&format!("t-cdn-{}-1", std::process::id()))));
    let t = guard.0.as_ref().expect("the project is open");
    let w = Walk { p: t.project().to_string(), dir: tempfile::tempdir().expect("tempdir"), started: Instant::now() };
    let db1 = w.container("db", 1);

    // ---- stage 4, then 4 → 5: the plan leaves the primary alone.
    w.apply("04-database-replication.yaml", ENV);
    let db1_id = w.container_id("db", 1);
    w.plan_touches("05-cache.yaml", ENV, &[("create", "cache-1"), ("recreate", "web-1"), ("recreate", "web-2")]);
    w.apply("05-cache.yaml", ENV);
    assert_eq!(w.container_id("db", 1), db1_id, "4 → 5 recreated {db1}");
    let lb = w.port("05-cache.yaml", "lb", ENV);
    let (path, latest) = cache_proofs(&w, lb);
    // With the cache still down the lesson fails, and says where to look.
    let down = Scale::new(&["check", "-p", &w.p, &w.file("05-cache.yaml")]).envs(ENV).isolated().run();
    assert_eq!(down.code, Some(1), "stage 5's lesson passes with the cache killed:\n{}", down.all());
    assert!(down.stdout.contains("X-Cache: BYPASS"), "{}", down.stdout);
    assert!(down.stdout.contains("hint: X-Cache BYPASS means"), "{}", down.stdout);
    w.apply("05-cache.yaml", ENV);
    cache_is_back(lb, &path, &latest);
    w.log("cache back after apply: MISS, then HIT");
    w.check("05-cache.yaml", ENV);

    let human = Scale::new(&["status", &w.file("05-cache.yaml"), "-p", &w.p]).envs(ENV).isolated().run();
    let cache1 = w.container("cache", 1);
    assert!(
        human.success().stdout.lines().any(|l| l.contains(&cache1) && l.contains("hit ratio")),
        "`scale status` shows no hit ratio for {cache1}:\n{}",
        human.stdout
    );

    // ---- 5 → 6.
    w.plan_touches("06-cdn.yaml", ENV, &[("create", "cdn-1"), ("recreate", "web-1"), ("recreate", "web-2")]);
    w.apply("06-cdn.yaml", ENV);
    assert_eq!(w.container_id("db", 1), db1_id, "5 → 6 recreated {db1}");
    let cdn = w.port("06-cdn.yaml", "cdn", ENV);
    assert_eq!(w.port("06-cdn.yaml", "lb", ENV), lb, "the origin's public port moved");
    let lb = cdn_proofs(&w, lb, cdn);
    w.check("06-cdn.yaml", ENV_V2);

    // ---- 6 → 4: the cache and the edge go; the primary and the stage-5 user stay.
    let back = [("remove", "cache-1"), ("remove", "cdn-1"), ("recreate", "web-1"), ("recreate", "web-2")];
    w.plan_touches("04-database-replication.yaml", ENV, &back);
    w.apply("04-database-replication.yaml", ENV);
    assert_eq!(w.container_id("db", 1), db1_id, "6 → 4 recreated {db1}");
    let names: BTreeSet<String> = project_containers(&w.p).into_keys().collect();
    for gone in [w.container("cache", 1), w.container("cdn", 1)] {
        assert!(!names.contains(&gone), "{gone} is still there at stage 4: {names:?}");
    }
    assert_eq!(w.port("04-database-replication.yaml", "lb", ENV), lb, "6 → 4 moved the public port");
    let r = poll(Duration::from_secs(10), "the stage-5 user read from a replica at stage 4", || {
        let r = http_get(lb, &path);
        if r.status == 200 && r.body == latest { Ok(r) } else { Err(format!("{r:?}")) }
    });
    assert_eq!(r.header("X-Cache"), None, "no cache at stage 4: {r:?}");
    Scale::new(&["destroy", "--yes", "--volumes", "-p", &w.p]).envs(&[]).isolated().run().success();
    w.log("done");
}
