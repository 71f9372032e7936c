//! Stage 11 (database sharding, online resharding) on a real engine, with the real stage
//! files: 04 → 07 → 11 (2 shards) → 11 (3 shards) → 11 (2 shards) → 07 in one project.
//!
//! - 07 → 11: the plan counts the rows that move from `db` to `db-s1`; afterwards every user
//!   (the book's user 12 and one written at stage 7) is served, with `X-Db-Shard` naming the
//!   shard the map (read with psql in shard 0) gives its bucket.
//! - 2 → 3 → 2 under a bounded write loop (and a read loop on a user whose bucket moves
//!   both times, with the cache's TTL at 1 s): every acknowledged write is
//!   readable afterwards, on the shard the map names; the rows over all shards are exactly
//!   the users before the loop plus the acknowledged writes, no id on two shards.
//! - The celebrity: writes to one user raise only its shard's commits.
//! - 11 → 07: every user back in `db`, the map dropped, the shards' containers gone.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{BuildGuard, ClientLoop, DockerTest, Scale, WriteLoop, header, http, project_containers, psql_ok};

const STAGE4: &str = "04-database-replication.yaml";
const STAGE7: &str = "07-stateless-web.yaml";
const STAGE11: &str = "11-sharding.yaml";

/// The stage variables: one read replica per shard keeps 3 shards at 6 database containers.
fn env(shards: &str) -> Vec<(&'static str, String)> {
    // CACHE_TTL=1: the read loops reach the shards, not only the cache.
    vec![
        ("DB_SHARDS", shards.to_string()),
        ("DB_READ_REPLICAS", "1".to_string()),
        ("WEB_MAX", "2".to_string()),
        ("CACHE_TTL", "1".to_string()),
    ]
}

struct Walk {
    p: String,
    dir: tempfile::TempDir,
    started: Instant,
}

impl Walk {
    fn log(&self, what: &str) {
        eprintln!("[stage11 {:>6.1}s] {what}", self.started.elapsed().as_secs_f64());
    }

    fn scale(&self, args: &[&str], name: &str, shards: &str) -> common::ScaleRun {
        let file = common::stage_file(self.dir.path(), name);
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-p", &self.p, &file]);
        let vars = env(shards);
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // A first build of the images (apt-get on a loaded machine) can take minutes.
        Scale::new(&all).envs(&vars).isolated().timeout(Duration::from_secs(1200)).run()
    }

    /// Applies a stage of the climb up to stage 7, again if a container's health check lost
    /// to the machine's load (as the apply's own hint says: run it again). The stages under
    /// test, 11 and the way back, get one apply each ([`Walk::apply`]).
    fn climb(&self, name: &str) {
        for attempt in 1..=3 {
            let run = self.scale(&["apply", "--yes"], name, "2");
            self.log(&format!("climb: apply {name} (attempt {attempt}): {:.1}s", run.elapsed.as_secs_f64()));
            if run.code == Some(0) {
                return;
            }
            assert!(attempt < 3, "apply {name} failed 3 times:\n{}", run.all());
        }
    }

    /// The plan's text, then apply, then an empty plan.
    fn apply(&self, name: &str, shards: &str) -> String {
        let plan = self.scale(&["plan"], name, shards);
        plan.success();
        let run = self.scale(&["apply", "--yes"], name, shards);
        run.success();
        self.log(&format!("apply {name} (DB_SHARDS={shards}): {:.1}s", run.elapsed.as_secs_f64()));
        let again = self.scale(&["plan", "--detailed-exitcode"], name, shards);
        assert_eq!(again.code, Some(0), "the plan of {name} is not empty after apply:\n{}", again.all());
        plan.stdout.clone()
    }

    fn primary(&self, service: &str) -> String {
        format!("{}-{service}-1", self.p)
    }

    /// The shard map in shard 0 (bucket → shard); empty without one.
    fn map(&self) -> BTreeMap<u64, String> {
        let exists = psql_ok(&self.primary("db"), Some("app"), "SELECT to_regclass('public.shard_map') IS NOT NULL");
        if exists != "t" {
            return BTreeMap::new();
        }
        let rows = psql_ok(&self.primary("db"), Some("app"), "SELECT bucket, shard FROM shard_map");
        rows.lines()
            .filter_map(|l| l.split_once('|'))
            .map(|(b, s)| (b.parse().expect("a bucket"), s.to_string()))
            .collect()
    }

    /// Every user id on each running shard primary.
    fn ids(&self, shards: &[&str]) -> BTreeMap<String, BTreeSet<u64>> {
        shards
            .iter()
            .map(|s| {
                let out = psql_ok(&self.primary(s), Some("app"), "SELECT id FROM users");
                (s.to_string(), out.lines().map(|l| l.trim().parse().expect("an id")).collect())
            })
            .collect()
    }
}

/// All ids of `by_shard`, checking no id is on two shards and each sits where the map says.
fn union_checked(by_shard: &BTreeMap<String, BTreeSet<u64>>, map: &BTreeMap<u64, String>) -> BTreeSet<u64> {
    let mut all = BTreeSet::new();
    for (shard, ids) in by_shard {
        for id in ids {
            assert!(all.insert(*id), "user {id} is on two shards (one is {shard})");
            if !map.is_empty() {
                assert_eq!(&map[&(id % 64)], shard, "user {id} (bucket {}) is not where the map says", id % 64);
            }
        }
    }
    all
}

/// One request answered by a web server: an answer without `X-Served-By` is the load
/// balancer's own (no web server passed its health check in time, which a machine this
/// loaded does now and then), asked again up to 10 times, a second apart.
fn app_answer(lb: u16, method: &str, path: &str, body: Option<&str>) -> common::HttpResponse {
    for _ in 0..10 {
        if let Ok(r) = http(lb, method, path, body)
            && r.header("X-Served-By").is_some()
        {
            return r;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("no web server answered {method} {path} in 10 attempts")
}

/// GET /users/ID for each id: 200, and X-Db-Shard as the map says (none without a map).
fn all_readable(lb: u16, ids: &BTreeSet<u64>, map: &BTreeMap<u64, String>) {
    for id in ids {
        let r = app_answer(lb, "GET", &format!("/users/{id}"), None);
        assert_eq!(r.status, 200, "user {id}: {r:?}");
        let body: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
        assert_eq!(body["id"], *id, "{r:?}");
        match map.get(&(id % 64)) {
            Some(shard) => assert_eq!(header(&r, "X-Db-Shard"), shard, "user {id}: {r:?}"),
            None => assert!(r.header("X-Db-Shard").is_none(), "no map, no X-Db-Shard: {r:?}"),
        }
    }
}

/// `GET /shards`: each shard's commits.
fn commits(lb: u16) -> BTreeMap<String, u64> {
    let r = app_answer(lb, "GET", "/shards", None);
    assert_eq!(r.status, 200, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
    let shards = v["shards"].as_object().unwrap_or_else(|| panic!("no shards: {v}"));
    shards.iter().map(|(k, s)| (k.clone(), s["commits"].as_u64().unwrap_or_else(|| panic!("{v}")))).collect()
}

/// The celebrity: 60 writes to one user of db-s1 raise db-s1's commits by at least 60, and
/// the third shard's by less (its own background only).
fn celebrity(w: &Walk, lb: u16, ids: &BTreeSet<u64>, map: &BTreeMap<u64, String>) {
    let star = *ids.iter().find(|id| map[&(*id % 64)] == "db-s1").expect("a user on db-s1");
    let before = commits(lb);
    for n in 0..60 {
        let body = format!(r#"{{"firstName":"Star","lastName":"No{n}"}}"#);
        let r = app_answer(lb, "PUT", &format!("/users/{star}"), Some(&body));
        assert_eq!((r.status, header(&r, "X-Db-Shard")), (200, "db-s1"), "{r:?}");
    }
    let after = commits(lb);
    let delta = |s: &str| after[s] - before[s];
    assert!(delta("db-s1") >= 60, "the celebrity's shard took the writes: {before:?} → {after:?}");
    assert!(delta("db-s2") < delta("db-s1"), "the hot spot is one shard: {before:?} → {after:?}");
    w.log(&format!("celebrity user {star}: commits {before:?} → {after:?}"));
}

#[test]
fn sharding_and_online_resharding() {
    if !common::docker_or_skip("sharding_and_online_resharding") {
        return;
    }
    let guard = BuildGuard(Some(DockerTest::with_project(&format!("t-s11-{}-1", std::process::id()))));
    let t = guard.0.as_ref().expect("the project is open");
    let w = Walk { p: t.project().to_string(), dir: tempfile::tempdir().expect("tempdir"), started: Instant::now() };

    // Stage 4 first, as a learner climbs (and so the CDN edge of stage 7 starts with its
    // origin's web servers already up).
    w.climb(STAGE4);
    w.climb(STAGE7);
    let lb = {
        let status = w.scale(&["status", "--output", "json"], STAGE7, "2");
        let status = status.success().json();
        let ports: BTreeSet<u64> = status["endpoints"]
            .as_array()
            .unwrap_or_else(|| panic!("no endpoints[] in {status:#}"))
            .iter()
            .filter(|e| e["service"] == "lb" && e["protocol"] == "tcp")
            .filter_map(|e| e["host_port"].as_u64())
            .collect();
        u16::try_from(*ports.first().expect("the lb's port")).expect("a port")
    };
    let created = http(lb, "POST", "/users", Some(r#"{"firstName":"Stage","lastName":"Seven"}"#)).expect("POST");
    assert_eq!(created.status, 201, "{created:?}");
    // User 7 lives in bucket 7, which goes db → db-s1 → db-s2 → db-s1 → db: a read loop on it
    // reads through every move.
    let seven = http(lb, "POST", "/users", Some(r#"{"id":7,"firstName":"Moving","lastName":"Bucket"}"#)).expect("POST");
    assert_eq!(seven.status, 201, "{seven:?}");
    let db1 = project_containers(&w.p)[&w.primary("db")].id.clone();

    // 07 → 11: the rows of half the buckets move to db-s1.
    let plan = w.apply(STAGE11, "2");
    assert!(plan.contains("reshard") && plan.contains("rows db → db-s1 (32 buckets)"), "the plan:\n{plan}");
    assert_eq!(project_containers(&w.p)[&w.primary("db")].id, db1, "07 → 11 recreated the primary");
    let map = w.map();
    assert_eq!(map.values().filter(|s| *s == "db-s1").count(), 32, "{map:?}");
    let before = union_checked(&w.ids(&["db", "db-s1"]), &map);
    assert!(before.contains(&12) && before.len() >= 2, "{before:?}");
    all_readable(lb, &before, &map);
    let check = w.scale(&["check"], STAGE11, "2");
    check.success();
    w.log(&format!("07 → 11: {} users over db and db-s1; scale check:\n{}", before.len(), check.stdout));
    let before = union_checked(&w.ids(&["db", "db-s1"]), &map);

    // 2 → 3 → 2 under a write loop and a read loop.
    let writes = WriteLoop::start(lb, 1_000_000, Duration::from_millis(40), 1500, Duration::from_secs(420));
    let reads = ClientLoop::start(lb, "/users/7", Duration::from_millis(100), 5000, Duration::from_secs(420));
    std::thread::sleep(Duration::from_secs(2));
    let plan = w.apply(STAGE11, "3");
    assert!(
        plan.contains("rows db → db-s2 (10 buckets)") && plan.contains("rows db-s1 → db-s2 (11 buckets)"),
        "{plan}"
    );
    let three = w.map();
    assert_eq!(three.values().filter(|s| *s == "db-s2").count(), 21, "{three:?}");
    celebrity(&w, lb, &before, &three);
    let plan = w.apply(STAGE11, "2");
    assert!(
        plan.contains("rows db-s2 → db (10 buckets)") && plan.contains("rows db-s2 → db-s1 (11 buckets)"),
        "{plan}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let written = writes.stop();
    let read = reads.stop();
    assert_eq!(w.map(), map, "3 → 2 puts every bucket back where it was");
    assert!(!project_containers(&w.p).contains_key(&w.primary("db-s2")), "db-s2 is gone at 2 shards");

    let acked: BTreeSet<u64> = written.acknowledged().iter().map(|s| s.id).collect();
    assert!(acked.len() >= 20, "the write loop wrote too little: {}", acked.len());
    let after = union_checked(&w.ids(&["db", "db-s1"]), &map);
    let expected: BTreeSet<u64> = before.union(&acked).copied().collect();
    assert_eq!(after.len(), expected.len(), "rows = users before + acknowledged writes ({} acked)", acked.len());
    assert_eq!(after, expected, "the very same ids");
    all_readable(lb, &after, &map);
    // Reads the app failed (a web server answered, not 200); the balancer's own 503s (no
    // web server healthy in time on an overloaded machine) are counted in the log only.
    let app_failed: Vec<_> = read.failures().into_iter().filter(|s| s.served_by.is_some()).collect();
    assert!(app_failed.is_empty(), "reads failed while resharding: {app_failed:?}");
    let failed = written.writes.len() - acked.len();
    w.log(&format!("2 → 3 → 2: {} writes acknowledged ({failed} not), {}", acked.len(), read.describe(false)));

    // 11 → 07: every user back in db, no map, no shards.
    let plan = w.apply(STAGE7, "2");
    assert!(plan.contains("rows db-s1 → db (32 buckets)") && plan.contains("shard map dropped"), "{plan}");
    assert!(w.map().is_empty(), "the map is dropped at stage 7");
    let names: BTreeSet<String> = project_containers(&w.p).into_keys().collect();
    assert!(!names.iter().any(|n| n.contains("-db-s")), "the shards are gone: {names:?}");
    let home = union_checked(&w.ids(&["db"]), &BTreeMap::new());
    assert_eq!(home, expected, "every user is in db at stage 7");
    // Stage 7 reads from replicas, and db-3 (away at one replica per shard) is back and
    // catching up from where it left: a user may take a moment to show there.
    for id in &home {
        common::poll(Duration::from_secs(60), &format!("user {id} at stage 7"), || {
            let r = app_answer(lb, "GET", &format!("/users/{id}"), None);
            if r.status == 200 && r.header("X-Db-Shard").is_none() { Ok(()) } else { Err(format!("{r:?}")) }
        });
    }
    assert_eq!(project_containers(&w.p)[&w.primary("db")].id, db1, "the primary was never recreated");
    w.log(&format!("11 → 07: {} users in db", home.len()));
}
