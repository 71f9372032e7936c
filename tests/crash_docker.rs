//! Crash safety against a real Docker engine (issue 4): `scale apply` killed with SIGKILL at
//! random moments, each time followed by one more apply, always converges with no duplicate,
//! no leftover, the data volume intact and nothing foreign touched; and the leftovers of an
//! interrupted replacement, made by hand, are explained by the plan and finished or removed
//! by the next apply. See tests/common for the rules (unique project per test, cleanup by
//! label, fail without an engine unless `SCALE_SKIP_DOCKER_TESTS=1`).
//!
//! The random test prints its seed; `SCALE_CRASH_SEED=<seed>` replays the same kill moments.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{DockerTest, Scale, TEST_IMAGE, inspect, project_containers, write_blueprint};
use serde_json::Value;

/// The replayable seed's variable.
const SEED_VAR: &str = "SCALE_CRASH_SEED";

/// xorshift64*: small, deterministic, good enough to spread kill moments.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // Never zero (xorshift's fixed point), and a few rounds to mix a small seed.
        let mut rng = Rng(seed ^ 0x9E37_79B9_7F4A_7C15);
        for _ in 0..4 {
            rng.next();
        }
        rng
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform enough in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A host port nobody listens on right now (bound on 127.0.0.1:0, then released).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("a bound address").port()
}

/// web ×4 (healthcheck, start-first), db (named volume, stop-first), edge (fixed host port,
/// stop-first), job (after web started). `ROUND` changes web, db and edge.
fn crash_blueprint(project: &str, port: u16) -> String {
    format!(
        r#"name: {project}
volumes:
  data: {{}}
services:
  web:
    image: {TEST_IMAGE}
    command: ["sleep", "infinity"]
    stop_grace_period: 1s
    replicas: 4
    environment:
      ROUND: "${{ROUND}}"
    healthcheck: {{ test: ["CMD", "true"], interval: 1s, timeout: 2s, retries: 3 }}
  db:
    image: {TEST_IMAGE}
    # bash: Debian's sh (dash) has no $RANDOM. `$$` is the blueprint's literal `$`.
    command: ["bash", "-c", "test -f /data/marker || echo $$RANDOM-$$RANDOM-$$RANDOM > /data/marker; exec sleep infinity"]
    stop_grace_period: 1s
    volumes: ["data:/data"]
    environment:
      ROUND: "${{ROUND}}"
    healthcheck: {{ test: ["CMD", "test", "-s", "/data/marker"], interval: 1s, timeout: 2s, retries: 3 }}
  edge:
    image: {TEST_IMAGE}
    command: ["sleep", "infinity"]
    stop_grace_period: 1s
    ports: ["{port}:80"]
    environment:
      ROUND: "${{ROUND}}"
  job:
    image: {TEST_IMAGE}
    command: ["sleep", "infinity"]
    stop_grace_period: 1s
    depends_on: [web]
"#
    )
}

/// When a round's apply is killed.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// This long after spawning it.
    Delay(Duration),
    /// Right after it prints the first `"event":"<event>"` line of a recreate.
    Event(&'static str),
}

/// What a killed apply did before it died.
struct Killed {
    /// How long it ran.
    ran: Duration,
    /// False: it finished on its own before the kill.
    killed: bool,
    code: Option<i32>,
    /// For [`KillAt::Event`]: whether that line came before the kill.
    saw_event: bool,
    lines: Vec<String>,
    stderr: String,
}

/// Spawns `scale apply --yes --output json FILE` with `ROUND=round`, kills it with SIGKILL at
/// `at`, and waits for it.
fn apply_and_kill(file: &str, round: u32, at: KillAt) -> Killed {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("scale"))
        .args(["apply", "--yes", "--output", "json", file])
        .env("NO_COLOR", "1")
        .env("ROUND", round.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning scale apply");
    let started = Instant::now();
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line.clone());
            lines.push(line);
        }
        lines
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    // Bounded like every harness run: 5 minutes.
    let cap = started + Duration::from_secs(300);
    let mut exited = false;
    let mut saw_event = false;
    match at {
        KillAt::Delay(delay) => {
            let deadline = started + delay;
            while Instant::now() < deadline {
                if child.try_wait().expect("polling scale apply").is_some() {
                    exited = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(5).min(deadline.saturating_duration_since(Instant::now())));
            }
        }
        KillAt::Event(event) => {
            // Ends when the line comes, its stdout closes (it exited) or the cap passes.
            while let Ok(line) = rx.recv_timeout(cap.saturating_duration_since(Instant::now())) {
                let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
                if v["event"] == event && v["action"]["action"] == "recreate" {
                    saw_event = true;
                    break;
                }
            }
        }
    }
    if !exited {
        exited = child.try_wait().expect("polling scale apply").is_some();
    }
    if !exited {
        // SIGKILL on unix.
        let _ = child.kill();
    }
    let status = child.wait().expect("waiting for the killed scale apply");
    let ran = started.elapsed();
    let lines = reader.join().expect("stdout reader");
    let stderr = err_reader.join().expect("stderr reader");
    Killed { ran, killed: !exited, code: status.code(), saw_event, lines, stderr }
}

/// The action lines of a human-readable plan (`  ~ recreate p-web-1: reason`), without the
/// progress lines that follow them.
fn plan_actions(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| {
            let mut chars = l.strip_prefix("  ").unwrap_or_default().chars();
            matches!(chars.next(), Some('+' | '~' | '>' | '-')) && chars.next() == Some(' ')
        })
        .collect()
}

/// What must never change: the foreign container and the data.
struct Invariants {
    foreign: String,
    foreign_id: String,
    foreign_started_at: String,
    volume: String,
    volume_created_at: String,
    marker: String,
    job_id: String,
}

/// Reads `/data/marker` through the running db.
fn read_marker(project: &str) -> String {
    common::docker(&["exec", &format!("{project}-db-1"), "cat", "/data/marker"])
        .unwrap_or_else(|e| panic!("reading /data/marker in {project}-db-1: {e}"))
}

/// Asserts the project is exactly the blueprint at `round`, and the invariants hold.
fn assert_converged(project: &str, file: &str, round: u32, inv: &Invariants) {
    let round_text = round.to_string();
    let env = [("ROUND", round_text.as_str())];
    let plan = Scale::new(&["plan", "--detailed-exitcode", file]).envs(&env).run();
    assert_eq!(
        plan.code,
        Some(0),
        "round {round}: the project should match the blueprint, but `scale plan` says:\n{}\n{}",
        plan.stdout,
        plan.stderr
    );

    let containers = project_containers(project);
    let names: BTreeSet<String> = containers.keys().cloned().collect();
    let mut expected: BTreeSet<String> = (1..=4).map(|n| format!("{project}-web-{n}")).collect();
    expected.extend(["db-1", "edge-1", "job-1"].iter().map(|s| format!("{project}-{s}")));
    let next: Vec<&String> = names.iter().filter(|n| n.ends_with(".next")).collect();
    assert!(next.is_empty(), "round {round}: leftovers of a replacement remain: {next:?}");
    assert_eq!(names, expected, "round {round}: the project's containers");

    // Also nothing unlabelled under the project's names but the foreign container.
    let by_name = common::docker(&["ps", "-a", "--format", "{{.Names}}", "--filter", &format!("name={project}-")])
        .unwrap_or_else(|e| panic!("docker ps: {e}"));
    let stray: Vec<&str> =
        by_name.lines().filter(|n| !n.is_empty() && !expected.contains(*n) && *n != inv.foreign).collect();
    assert!(stray.is_empty(), "round {round}: containers named like the project's but not in it: {stray:?}");

    let mut claims: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (name, seen) in &containers {
        assert_eq!(seen.state, "running", "round {round}: {name} is {}", seen.state);
        let c = inspect(&seen.id);
        let labels = &c["Config"]["Labels"];
        let label = |key: &str| labels[key].as_str().unwrap_or_default().to_string();
        claims.entry((label("io.scale.service"), label("io.scale.replica"))).or_default().push(name.clone());
        let spec: Value = serde_json::from_str(&label("io.scale.spec"))
            .unwrap_or_else(|e| panic!("round {round}: {name}'s io.scale.spec is not JSON: {e}"));
        if label("io.scale.service") == "job" {
            assert_eq!(seen.id, inv.job_id, "round {round}: job-1 is unchanged and must never be replaced");
            assert!(spec["env"].get("ROUND").is_none(), "round {round}: job has no ROUND: {}", spec["env"]);
        } else {
            assert_eq!(spec["env"]["ROUND"], round_text.as_str(), "round {round}: {name} runs an old spec");
        }
    }
    let duplicates: Vec<_> = claims.iter().filter(|(_, names)| names.len() > 1).collect();
    assert!(duplicates.is_empty(), "round {round}: several containers claim one replica: {duplicates:?}");
    assert_eq!(claims.len(), 7, "round {round}: replicas claimed: {claims:?}");

    let volume = inspect(&inv.volume);
    assert_eq!(
        volume["CreatedAt"].as_str().unwrap_or_default(),
        inv.volume_created_at,
        "round {round}: volume {} was recreated",
        inv.volume
    );
    assert_eq!(read_marker(project), inv.marker, "round {round}: /data/marker changed: the volume lost its data");

    let foreign = inspect(&inv.foreign);
    assert_eq!(foreign["Id"].as_str().unwrap_or_default(), inv.foreign_id, "round {round}: foreign container replaced");
    assert_eq!(foreign["State"]["Running"], true, "round {round}: the foreign container was stopped");
    assert_eq!(
        foreign["State"]["StartedAt"].as_str().unwrap_or_default(),
        inv.foreign_started_at,
        "round {round}: the foreign container was restarted"
    );
}

#[test]
fn sigkill_at_random_moments_then_one_apply_converges() {
    let Some(t) = DockerTest::start("crash") else { return };
    let p = t.project().to_string();
    // Should a project lock ever be left behind by a failing run, it goes too.
    t.remove_on_drop(&format!("scale-lock_{p}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let file = write_blueprint(dir.path(), &crash_blueprint(&p, port));

    let seed: u64 = match std::env::var(SEED_VAR) {
        Ok(s) => s.trim().parse().unwrap_or_else(|_| panic!("{SEED_VAR}={s:?} is not a number")),
        Err(_) => {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            (u64::from(std::process::id()) << 32) ^ u64::from(nanos.subsec_nanos())
        }
    };
    eprintln!("crash seed {seed} (replay with {SEED_VAR}={seed}); project {p}; edge publishes host port {port}");
    let mut rng = Rng::new(seed);

    // Ten kill moments: rounds 3 and 7 die right after the first recreate starts / finishes;
    // the other eight at delays stratified over 0–6 s (one in each 750 ms slice, shuffled), so
    // kills land before the plan, during replacements and between them.
    let mut delays: Vec<u64> = (0..8u64).map(|slice| slice * 750 + rng.below(750)).collect();
    for i in (1..delays.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        delays.swap(i, j);
    }
    let mut delays = delays.into_iter();
    let moments: Vec<KillAt> = (1..=10u32)
        .map(|round| match round {
            3 => KillAt::Event("started"),
            7 => KillAt::Event("finished"),
            _ => KillAt::Delay(Duration::from_millis(delays.next().expect("eight delays"))),
        })
        .collect();
    eprintln!("kill moments: {moments:?}");

    let foreign = format!("{p}-foreign");
    t.remove_on_drop(&foreign);
    t.docker(&["run", "-d", "--name", &foreign, TEST_IMAGE, "sleep", "infinity"]);
    let foreign_seen = inspect(&foreign);
    assert!(
        foreign_seen["Config"]["Labels"].get("io.scale.project").is_none(),
        "the foreign container must carry no scale label"
    );

    let test_started = Instant::now();
    Scale::new(&["apply", "--yes", &file]).env("ROUND", "0").run().success();
    let containers = project_containers(&p);
    let volume = format!("{p}_data");
    let marker = read_marker(&p);
    assert!(!marker.trim().is_empty(), "db wrote no marker");
    let inv = Invariants {
        foreign: foreign.clone(),
        foreign_id: foreign_seen["Id"].as_str().unwrap_or_default().to_string(),
        foreign_started_at: foreign_seen["State"]["StartedAt"].as_str().unwrap_or_default().to_string(),
        volume_created_at: inspect(&volume)["CreatedAt"].as_str().unwrap_or_default().to_string(),
        volume,
        marker,
        job_id: containers.get(&format!("{p}-job-1")).map(|c| c.id.clone()).expect("job-1 exists"),
    };
    assert_converged(&p, &file, 0, &inv);
    eprintln!("round 0: converged in {:?}; marker {}", test_started.elapsed(), inv.marker);

    let mut repairs: BTreeMap<String, usize> = BTreeMap::new();
    for (round, at) in (1..=10u32).zip(moments) {
        let killed = apply_and_kill(&file, round, at);
        let last = killed.lines.iter().rev().find(|l| !l.trim().is_empty()).map(String::as_str).unwrap_or("(nothing)");
        eprintln!(
            "round {round}: {at:?}: {} after {:?} (exit {:?}), {} lines; last: {last}",
            if killed.killed { "killed" } else { "finished on its own" },
            killed.ran,
            killed.code,
            killed.lines.len(),
        );
        if let KillAt::Event(event) = at {
            assert!(killed.saw_event, "round {round}: no recreate {event} before the apply ended:\n{}", killed.stderr);
        }
        if !killed.killed && killed.code != Some(0) {
            panic!("round {round}: the apply ended on its own with {:?}:\n{}", killed.code, killed.stderr);
        }

        let round_text = round.to_string();
        let again = Scale::new(&["apply", "--yes", &file]).env("ROUND", &round_text).run();
        again.success();
        eprintln!("round {round}: the next apply ({:?}) planned:", again.elapsed);
        for line in plan_actions(&again.stdout) {
            eprintln!("    {line}");
            if let Some((_, reason)) = line.split_once(": ") {
                // "environment ROUND changed (3 → 4)", "finish … rename a → b": the gist.
                let gist = reason.split(" (").next().unwrap_or(reason).split(": ").next().unwrap_or(reason);
                *repairs.entry(gist.to_string()).or_default() += 1;
            }
        }
        assert_converged(&p, &file, round, &inv);
        eprintln!("round {round}: converged");
    }
    eprintln!("reasons the repairing applies gave: {repairs:#?}");
    eprintln!("total {:?}", test_started.elapsed());
}

#[test]
fn interrupted_replacement_leftovers_are_explained() {
    let Some(t) = DockerTest::start("leftovers") else { return };
    let p = t.project().to_string();
    t.remove_on_drop(&format!("scale-lock_{p}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        r#"name: {p}
services:
  web:
    image: {TEST_IMAGE}
    command: ["sleep", "infinity"]
    stop_grace_period: 1s
    environment:
      ROUND: "${{ROUND}}"
    healthcheck: {{ test: ["CMD", "true"], interval: 1s, timeout: 2s, retries: 3 }}
"#
    );
    let file = write_blueprint(dir.path(), &yaml);
    let (web, next) = (format!("{p}-web-1"), format!("{p}-web-1.next"));
    let env = |round: &'static str| [("ROUND", round)];
    let only_web = |why: &str| {
        let containers = project_containers(&p);
        let names: Vec<&String> = containers.keys().collect();
        assert_eq!(names, vec![&web], "{why}");
        let seen = &containers[&web];
        assert_eq!(seen.state, "running", "{why}");
        seen.id.clone()
    };

    Scale::new(&["apply", "--yes", &file]).envs(&env("0")).run().success();
    let first = only_web("after the first apply");
    Scale::new(&["apply", "--yes", &file]).envs(&env("1")).run().success();
    let id = only_web("after a replacement");
    assert_ne!(id, first, "ROUND 0 → 1 replaces web-1");

    // 1. The old container is gone, the new one still has its temporary name: finish it.
    t.docker(&["rename", &web, &next]);
    let plan = Scale::new(&["plan", "--detailed-exitcode", &file]).envs(&env("1")).run();
    plan.expect_code(2);
    let want = format!("~ recreate {web}: finish an interrupted replacement: rename {next} → {web}");
    assert!(plan.stdout.contains(&want), "the plan should say `{want}`:\n{}", plan.stdout);
    assert_eq!(plan_actions(&plan.stdout).len(), 1, "one action:\n{}", plan.stdout);
    let run = Scale::new(&["apply", "--yes", &file]).envs(&env("1")).run();
    run.success();
    assert!(run.stdout.contains(&want), "apply shows the same plan:\n{}", run.stdout);
    assert_eq!(only_web("after finishing the replacement"), id, "finishing is a rename: the same container");
    Scale::new(&["plan", "--detailed-exitcode", &file]).envs(&env("1")).run().expect_code(0);

    // 2. A stopped leftover beside the real one: removed, the real one untouched.
    let project_label = format!("io.scale.project={p}");
    t.docker(&[
        "create",
        "--name",
        &next,
        "--label",
        &project_label,
        "--label",
        "io.scale.service=web",
        "--label",
        "io.scale.replica=1",
        TEST_IMAGE,
        "sleep",
        "infinity",
    ]);
    let plan = Scale::new(&["plan", "--detailed-exitcode", &file]).envs(&env("1")).run();
    plan.expect_code(2);
    let want = format!("- remove {next}: leftover of an interrupted replacement");
    assert!(plan.stdout.contains(&want), "the plan should say `{want}`:\n{}", plan.stdout);
    assert_eq!(plan_actions(&plan.stdout).len(), 1, "one action:\n{}", plan.stdout);
    Scale::new(&["apply", "--yes", &file]).envs(&env("1")).run().success();
    assert!(!t.container_exists(&next), "{next} should be gone");
    assert_eq!(only_web("after removing the leftover"), id, "web-1 must not be touched");
    Scale::new(&["plan", "--detailed-exitcode", &file]).envs(&env("1")).run().expect_code(0);

    // 3. The temporary name holds a spec that is no longer desired (the blueprint moved on
    //    since): not finished but removed, and web-1 created afresh.
    t.docker(&["rename", &web, &next]);
    let plan = Scale::new(&["plan", "--detailed-exitcode", &file]).envs(&env("2")).run();
    plan.expect_code(2);
    for want in [format!("- remove {next}: leftover of an interrupted replacement"), format!("+ create {web}: missing")]
    {
        assert!(plan.stdout.contains(&want), "the plan should say `{want}`:\n{}", plan.stdout);
    }
    Scale::new(&["apply", "--yes", &file]).envs(&env("2")).run().success();
    assert!(!t.container_exists(&next), "{next} should be gone");
    let fresh = only_web("after replacing the stale leftover");
    assert_ne!(fresh, id, "the stale leftover is not reused");
    let spec: Value =
        serde_json::from_str(inspect(&web)["Config"]["Labels"]["io.scale.spec"].as_str().unwrap_or_default())
            .expect("io.scale.spec is JSON");
    assert_eq!(spec["env"]["ROUND"], "2");
    Scale::new(&["plan", "--detailed-exitcode", &file]).envs(&env("2")).run().expect_code(0);
}
