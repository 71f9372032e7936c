//! The CI commands against a real engine: `scale run` exits with its command's status and
//! leaves nothing of the project behind (command passed, command failed, apply failed);
//! `apply --ttl` and `scale reap` remove an expired project and never one without a TTL;
//! `logs`, `exec` and `dump` on a live project; a long wait during apply says what it waits
//! on and what it blocks. See tests/common for the rules.

mod common;

use std::time::Duration;

use common::{DockerTest, Scale, TEST_IMAGE, project_containers, project_resources, write_blueprint};

/// A web server (a few lines of Perl, which the base image has) answering "hello from web"
/// on container port 8000, published on a random host port, with a named volume and its own
/// network, so "nothing left" covers every kind of resource.
fn web(project: &str) -> String {
    format!(
        r#"name: {project}
networks:
  front: {{}}
volumes:
  data: {{}}
services:
  web:
    image: {TEST_IMAGE}
    command: ["perl", "-MIO::Socket::INET", "-e", "$$s = IO::Socket::INET->new(LocalPort => 8000, Listen => 5, ReuseAddr => 1) or die; while ($$c = $$s->accept) {{ <$$c>; print $$c qq(HTTP/1.0 200 OK\r\n\r\nhello from web\n); close $$c }}"]
    stop_grace_period: 1s
    ports: ["8000"]
    networks: [front]
    volumes: ["data:/data"]
    healthcheck: {{ test: ["CMD", "perl", "-MIO::Socket::INET", "-e", "IO::Socket::INET->new(PeerAddr => q(127.0.0.1:8000)) or exit 1"], interval: 1s, timeout: 2s, retries: 10 }}
"#
    )
}

/// A blueprint whose only container exits 1 at once, with a healthcheck: its apply fails.
fn broken(project: &str) -> String {
    format!(
        r#"name: {project}
networks:
  front: {{}}
volumes:
  data: {{}}
services:
  web:
    image: {TEST_IMAGE}
    command: ["sh", "-c", "exit 1"]
    networks: [front]
    volumes: ["data:/data"]
    healthcheck: {{ test: ["CMD", "true"], interval: 1s, timeout: 2s, retries: 3 }}
"#
    )
}

/// Reads the endpoint from the environment, fetches it with bash's /dev/tcp, and exits
/// `code` when the answer is the web server's (9 when it is not).
fn fetch_then_exit(code: u8) -> String {
    format!(
        r#"u=${{SCALE_ENDPOINT_WEB_8000#http://}}; test -n "$u" || exit 8
exec 3<>"/dev/tcp/${{u%:*}}/${{u##*:}}" || exit 9
printf 'GET / HTTP/1.0\r\n\r\n' >&3
grep -q 'hello from web' <&3 || exit 9
test "$SCALE_PROJECT" = "{{project}}" || exit 10
exit {code}"#
    )
}

fn nothing_left(project: &str) {
    assert!(project_containers(project).is_empty(), "containers left: {:?}", project_containers(project));
    assert_eq!(project_resources("network", project), Vec::<String>::new(), "networks left");
    assert_eq!(project_resources("volume", project), Vec::<String>::new(), "volumes left");
}

#[test]
fn run_exits_with_the_commands_status_and_leaves_nothing() {
    let Some(t) = DockerTest::start("run-status") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_blueprint(dir.path(), &web(t.project()));
    for code in [0u8, 3] {
        let script = fetch_then_exit(code).replace("{project}", t.project());
        let run = Scale::new(&["run", &file, "--", "bash", "-c", &script]).timeout(Duration::from_secs(240)).run();
        run.expect_code(i32::from(code));
        assert!(run.stderr.contains(&format!("removed project {}", t.project())), "says it removed:\n{}", run.all());
        nothing_left(t.project());
    }
}

#[test]
fn run_removes_the_project_when_the_apply_fails_and_skips_the_command() {
    let Some(t) = DockerTest::start("run-broken") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_blueprint(dir.path(), &broken(t.project()));
    let marker = dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    let run = Scale::new(&["run", &file, "--", "sh", "-c", &touch]).timeout(Duration::from_secs(240)).run();
    run.expect_code(1);
    assert!(!marker.exists(), "the command must not run after a failed apply:\n{}", run.all());
    assert!(run.stderr.contains("did not finish"), "says why:\n{}", run.all());
    nothing_left(t.project());
}

#[test]
fn run_removes_the_project_on_ctrl_c() {
    let Some(t) = DockerTest::start("run-interrupt") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_blueprint(dir.path(), &web(t.project()));
    let since = std::time::Instant::now();
    let mut child = Scale::new(&["run", &file, "--", "sh", "-c", "echo command-started; exec sleep 120"]).spawn();
    let started = child.wait_stdout(since, Duration::from_secs(180), |l| l.contains("command-started"));
    assert!(started.is_some(), "the command ran:\n{}", child.transcript());
    child.interrupt();
    let status = child.wait_exit(Duration::from_secs(120)).expect("scale run ends after Ctrl-C");
    assert_eq!(status.code(), Some(130), "the command died of SIGINT (128 + 2):\n{}", child.transcript());
    assert!(child.transcript().contains("removed project"), "{}", child.transcript());
    nothing_left(t.project());
}

#[test]
fn run_keep_leaves_the_volumes() {
    let Some(t) = DockerTest::start("run-keep") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_blueprint(dir.path(), &web(t.project()));
    let run = Scale::new(&["run", "--keep", &file, "--", "true"]).timeout(Duration::from_secs(240)).run();
    run.success();
    assert!(project_containers(t.project()).is_empty(), "containers are removed");
    assert_eq!(project_resources("volume", t.project()), [format!("{}_data", t.project())], "the volume stays");
}

#[test]
fn reap_removes_an_expired_project_and_never_one_without_a_ttl() {
    let Some(expiring) = DockerTest::start("reap-ttl") else { return };
    let keeper = DockerTest::new("reap-keep");
    let dir = tempfile::tempdir().expect("tempdir");
    let with_ttl = write_blueprint(dir.path(), &web(expiring.project()));
    Scale::new(&["apply", "--yes", "--ttl", "1s", &with_ttl]).timeout(Duration::from_secs(240)).run().success();
    let p = expiring.project();
    for (kind, name, labels) in [
        ("container", format!("{p}-web-1"), ".Config.Labels"),
        ("network", format!("{p}_front"), ".Labels"),
        ("volume", format!("{p}_data"), ".Labels"),
    ] {
        let format = format!("{{{{index {labels} \"io.scale.expires-at\"}}}}");
        let label = expiring.docker(&[kind, "inspect", "--format", &format, &name]);
        assert!(label.ends_with('Z') && label.contains('T'), "{kind} {name} carries an RFC 3339 expiry: {label:?}");
    }
    let other = dir.path().join("keep.yaml");
    std::fs::write(&other, web(keeper.project())).expect("write");
    let other = other.display().to_string();
    Scale::new(&["apply", "--yes", &other]).timeout(Duration::from_secs(240)).run().success();
    let label = Scale::new(&["--output", "json", "status", "--all"]).run().json();
    let listed = |project: &str| {
        label["projects"].as_array().and_then(|ps| ps.iter().find(|p| p["project"] == project)).cloned()
    };
    let expiring_row = listed(expiring.project()).expect("status --all lists the TTL project");
    assert!(expiring_row["expires_at"].is_string(), "{expiring_row}");
    let keeper_row = listed(keeper.project()).expect("status --all lists the other project");
    assert!(keeper_row["expires_at"].is_null(), "{keeper_row}");
    assert_eq!(keeper_row["containers"], 1, "{keeper_row}");

    // Waiting for the expiry to pass, not timing anything.
    std::thread::sleep(Duration::from_millis(2100));
    let dry = Scale::new(&["reap", "--dry-run"]).run();
    dry.success();
    assert!(dry.stdout.contains(&format!("Would reap project {}", expiring.project())), "{}", dry.all());
    assert!(!dry.stdout.contains(keeper.project()), "a project without TTL is never reaped:\n{}", dry.all());
    assert_eq!(project_containers(expiring.project()).len(), 1, "--dry-run removes nothing");

    let reap = Scale::new(&["reap"]).timeout(Duration::from_secs(120)).run();
    reap.success();
    insta::assert_snapshot!("reap", block_of(&reap.stdout, expiring.project()));
    let expected = [
        format!("Reaped project {}", expiring.project()),
        format!("removed container {}-web-1", expiring.project()),
        format!("removed network {}_front", expiring.project()),
        format!("removed volume {}_data", expiring.project()),
    ];
    for line in expected {
        assert!(reap.stdout.contains(&line), "says {line:?}:\n{}", reap.all());
    }
    assert!(!reap.stdout.contains(keeper.project()), "{}", reap.all());
    nothing_left(expiring.project());
    assert_eq!(project_containers(keeper.project()).len(), 1, "the project without TTL is untouched");
    assert_eq!(project_resources("volume", keeper.project()).len(), 1);
}

/// The lines `reap` printed about `project` (it may have reaped other expired projects on
/// the engine too), with the project and its expiry time made stable for a snapshot.
fn block_of(stdout: &str, project: &str) -> String {
    let mut out = Vec::new();
    let mut inside = false;
    for line in stdout.lines() {
        if !line.starts_with(' ') {
            inside = line.contains(&format!("project {project} "));
        }
        if inside {
            let line = line.replace(project, "[project]");
            let line = match (line.find("(expired "), line.find("):")) {
                (Some(a), Some(b)) if a < b => format!("{}(expired [time]){}", &line[..a], &line[b + 1..]),
                _ => line,
            };
            out.push(line);
        }
    }
    out.join("\n")
}

#[test]
fn logs_exec_and_dump_on_a_live_project() {
    let Some(t) = DockerTest::start("ci-debug") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_blueprint(dir.path(), &web(t.project()));
    Scale::new(&["apply", "--yes", &file]).timeout(Duration::from_secs(240)).run().success();
    let p = t.project();
    t.docker(&[
        "exec",
        &format!("{p}-web-1"),
        "sh",
        "-c",
        "echo line-one > /proc/1/fd/1; echo line-two > /proc/1/fd/1",
    ]);

    let logs = Scale::new(&["-p", p, "logs", "web", "--tail", "1"]).run();
    logs.success();
    assert_eq!(logs.stdout.trim_end(), "web-1 | line-two", "prefixed, the last line only:\n{}", logs.all());

    let exec =
        Scale::new(&["-p", p, "exec", "web", "--", "sh", "-c", "cat /etc/hostname >/dev/null; echo inside; exit 4"])
            .run();
    exec.expect_code(4);
    assert_eq!(exec.stdout.trim(), "inside", "{}", exec.all());
    let missing = Scale::new(&["-p", p, "exec", "nope", "--", "true"]).run();
    missing.expect_code(1);
    assert!(missing.stderr.contains("no service or container nope (containers: web-1)"), "{}", missing.all());

    let out = dir.path().join("bundle");
    let dump = Scale::new(&["dump", &out.display().to_string(), &file]).run();
    dump.success();
    for f in ["blueprint.yaml", "desired.json", "plan.json", "plan.txt", "status.json"] {
        assert!(out.join(f).is_file(), "{f} is written:\n{}", dump.all());
    }
    let inspect: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join(format!("containers/{p}-web-1.inspect.json"))).expect("inspect"),
    )
    .expect("inspect is JSON");
    assert_eq!(inspect["Name"], format!("/{p}-web-1"));
    let log = std::fs::read_to_string(out.join(format!("containers/{p}-web-1.log"))).expect("log");
    assert!(log.contains("line-two"), "{log}");
    let plan = std::fs::read_to_string(out.join("plan.txt")).expect("plan");
    assert!(plan.starts_with(&format!("No changes: project {p} matches")), "{plan}");
}

/// Someone else holds the project's lock (an apply of a project of the same name): `run`
/// gives up and removes nothing, since nothing there is its own.
#[tokio::test]
async fn run_never_removes_a_project_it_could_not_lock() {
    let Some(t) = DockerTest::start("run-locked") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_blueprint(dir.path(), &web(t.project()));
    Scale::new(&["apply", "--yes", &file]).timeout(Duration::from_secs(240)).run().success();
    let engine = t.engine().await;
    let mut lock = scale::engine::lock::acquire(&engine, t.project(), "apply", Duration::ZERO, &|_| {})
        .await
        .expect("the lock is free");
    let marker = dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    let run = Scale::new(&["run", "--lock-timeout", "0", &file, "--", "sh", "-c", &touch]).run();
    lock.release().await.expect("release");
    run.expect_code(1);
    assert!(!marker.exists(), "the command does not run:\n{}", run.all());
    assert_eq!(project_containers(t.project()).len(), 1, "the other's project is untouched:\n{}", run.all());
    assert_eq!(project_resources("volume", t.project()).len(), 1);
}

/// A database that turns healthy 5 s after its start (by the clock, not by a count of checks:
/// scale runs the healthcheck's test itself too), and two web servers that wait for it.
fn slow_db(project: &str) -> String {
    format!(
        r#"name: {project}
services:
  db:
    image: {TEST_IMAGE}
    stop_grace_period: 1s
    command: ["sh", "-c", "sleep 5; touch /tmp/ok; exec sleep infinity"]
    healthcheck: {{ test: ["CMD", "test", "-e", "/tmp/ok"], interval: 1s, timeout: 2s, retries: 10 }}
  web:
    image: {TEST_IMAGE}
    command: ["sleep", "infinity"]
    stop_grace_period: 1s
    replicas: 2
    depends_on: {{ db: {{ condition: service_healthy }} }}
"#
    )
}

/// The healthcheck takes at least four failed checks (four seconds) to pass, so the wait
/// outlasts the two seconds after which apply says what it waits on and what it blocks; the
/// health log it reads is checked directly afterwards.
#[tokio::test]
async fn a_long_wait_says_what_it_waits_on_and_what_it_blocks() {
    let Some(t) = DockerTest::start("wait-says") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_blueprint(dir.path(), &slow_db(t.project()));
    let run = Scale::new(&["apply", "--yes", &file]).timeout(Duration::from_secs(240)).run();
    run.success();
    let p = t.project();
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains(&format!("waiting for {p}-db-1 to be healthy (")))
        .unwrap_or_else(|| panic!("apply says what it waits on:\n{}", run.all()));
    assert!(line.ends_with(" s) — blocks web-1, web-2"), "{line}");
    assert!(line.contains("/10 checks failed, ") || line.contains("no check has run yet"), "{line}");

    let engine = t.engine().await;
    let db = project_containers(p).remove(&format!("{p}-db-1")).expect("the db container");
    use scale::engine::Engine;
    // scale's own probe may pass before the engine's next check: look (bounded) until the
    // engine's log has its pass too.
    let mut progress = None;
    for _ in 0..40 {
        let p = engine.health_progress(&db.id, "db").await.expect("inspect").expect("a healthcheck");
        let passed = p.passed >= 1;
        progress = Some(p);
        if passed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let progress = progress.expect("looked at least once");
    assert_eq!(progress.failing_streak, 0, "healthy now: {progress:?}");
    assert!(progress.passed >= 1 && progress.checks_run >= 5, "four failures, then a pass, in the log: {progress:?}");
}
