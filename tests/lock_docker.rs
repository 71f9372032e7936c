//! The project lock against a real engine: concurrent applies take turns, a stale lock of a
//! dead process on this host is broken, a live one is waited for and then named; a watch pass
//! and a failover wait for it too, and an idle watcher holds nothing. See
//! tests/common for the rules (unique project, cleanup by label, fail without an engine
//! unless `SCALE_SKIP_DOCKER_TESTS=1`); the lock container carries no project label, so each
//! test removes it by name as well.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{DockerTest, Scale, ScaleChild, TEST_IMAGE, docker};
use scale::engine::lock::{self, LockError, lock_name};

/// Removes the project's lock container on drop, whatever the test left.
struct LockCleanup(String);

impl Drop for LockCleanup {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &lock_name(&self.0)]);
    }
}

/// Three replicas whose healthcheck passes after its first 2 s interval, so an apply takes a
/// few seconds: long enough for a second one to run into the lock.
fn write_blueprint(dir: &Path) -> PathBuf {
    let file = dir.join("lock.yaml");
    let text = format!(
        "name: lock-test\nservices:\n  app:\n    image: {TEST_IMAGE}\n    command: [sleep, infinity]\n    replicas: 3\n    \
         stop_grace_period: 1s\n    healthcheck: {{ test: [CMD, \"true\"], interval: 2s, timeout: 10s, retries: 5 }}\n"
    );
    std::fs::write(&file, text).expect("write blueprint");
    file
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn project_containers(t: &DockerTest) -> Vec<String> {
    let names = t.docker(&["ps", "-a", "--filter", &format!("label={}", t.label()), "--format", "{{.Names}}"]);
    names.lines().map(str::to_string).filter(|l| !l.is_empty()).collect()
}

/// Creates a lock container by hand, as a holder with these labels would have left it.
fn plant_lock(t: &DockerTest, labels: &[(&str, String)]) {
    let name = lock_name(t.project());
    let mut args = vec!["create".to_string(), "--name".into(), name, "--network".into(), "none".into()];
    for (k, v) in labels {
        args.push("--label".into());
        args.push(format!("{k}={v}"));
    }
    args.extend([TEST_IMAGE.to_string(), "true".to_string()]);
    t.docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

fn lock_exists(t: &DockerTest) -> bool {
    t.container_exists(&lock_name(t.project()))
}

#[test]
fn concurrent_applies_of_one_project_take_turns() {
    let Some(t) = DockerTest::start("lock-concurrent") else { return };
    let _lock = LockCleanup(t.project().to_string());
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_blueprint(dir.path());
    let file = file.to_str().expect("utf-8 path");

    let args = ["apply", "--yes", "-p", t.project(), file];
    let first = Scale::new(&args).command().spawn().expect("spawn first apply");
    let second = Scale::new(&args).command().spawn().expect("spawn second apply");
    let pids = [first.id(), second.id()];
    let outputs = [first.wait_with_output().expect("first apply"), second.wait_with_output().expect("second apply")];

    for (i, out) in outputs.iter().enumerate() {
        let (stdout, stderr) = text(out);
        assert!(out.status.success(), "apply #{i} failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    }
    let waiting = format!("waiting for the lock on project {} held by ", t.project());
    let waited: Vec<usize> = (0..2).filter(|&i| text(&outputs[i]).1.contains(&waiting)).collect();
    assert_eq!(
        waited.len(),
        1,
        "exactly one apply should have waited: {:?}",
        outputs.iter().map(text).collect::<Vec<_>>()
    );
    let (w, other) = (waited[0], 1 - waited[0]);
    let (w_out, w_err) = text(&outputs[w]);
    // It names the holder: the other process, doing an apply.
    assert!(w_err.contains(&format!("pid {} (apply, since ", pids[other])), "{w_err}");
    // It observed after the first had converged: nothing left to do.
    assert!(w_out.contains("No changes"), "the apply that waited should have planned nothing:\n{w_out}");
    let (o_out, o_err) = text(&outputs[other]);
    assert!(o_out.contains("Applied"), "{o_out}");
    assert!(!o_err.contains(&waiting), "{o_err}");

    let names: BTreeSet<String> = project_containers(&t).into_iter().collect();
    let expected: BTreeSet<String> = (1..=3).map(|n| format!("{}-app-{n}", t.project())).collect();
    assert_eq!(names, expected, "three containers, no duplicates");
    let running = t.docker(&["ps", "-q", "--filter", &format!("label={}", t.label()), "--filter", "status=running"]);
    assert_eq!(running.lines().count(), 3, "{running}");
    assert!(!lock_exists(&t), "the lock must be released after both applies");
}

#[test]
fn a_stale_lock_of_a_dead_process_on_this_host_is_broken() {
    let Some(t) = DockerTest::start("lock-stale") else { return };
    let _lock = LockCleanup(t.project().to_string());
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_blueprint(dir.path());

    // A process that has exited: its pid is (for now) free.
    let mut gone = Command::new("true").spawn().expect("spawn true");
    let dead_pid = gone.id();
    gone.wait().expect("wait true");
    let host = lock::hostname();
    plant_lock(
        &t,
        &[
            (lock::LOCK, t.project().to_string()),
            (lock::HOLDER, format!("ci@{host}")),
            (lock::HOST, host.clone()),
            (lock::PID, dead_pid.to_string()),
            (lock::COMMAND, "apply".into()),
            (lock::ACQUIRED_AT, lock::format_rfc3339(1_700_000_000)),
        ],
    );

    // --lock-timeout 0: it must break the lock, not wait it out.
    let out = Scale::new(&["apply", "--yes", "--lock-timeout", "0", "-p", t.project(), file.to_str().expect("utf-8")])
        .command()
        .output()
        .expect("run apply");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    assert!(
        stderr.contains(&format!(
            "breaking the stale lock on project {}: its holder ci@{host} pid {dead_pid}",
            t.project()
        )),
        "{stderr}"
    );
    assert_eq!(project_containers(&t).len(), 3);
    assert!(!lock_exists(&t));
}

#[test]
fn a_live_lock_is_waited_for_then_named_and_plan_does_not_wait() {
    let Some(t) = DockerTest::start("lock-held") else { return };
    let _lock = LockCleanup(t.project().to_string());
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_blueprint(dir.path());
    let file = file.to_str().expect("utf-8 path");
    // Held from another host: it can't be judged from here, so it is never broken.
    plant_lock(
        &t,
        &[
            (lock::LOCK, t.project().to_string()),
            (lock::HOLDER, "ci@elsewhere.invalid".into()),
            (lock::HOST, "elsewhere.invalid".into()),
            (lock::PID, "1".into()),
            (lock::COMMAND, "destroy".into()),
        ],
    );

    let out = Scale::new(&["apply", "--yes", "--lock-timeout", "1s", "-p", t.project(), file])
        .command()
        .output()
        .expect("apply");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "waiting for the lock on project {} held by ci@elsewhere.invalid pid 1 (destroy)",
            t.project()
        )),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("project {} is locked by ci@elsewhere.invalid pid 1", t.project())), "{stderr}");
    assert!(
        stderr.contains(&format!("docker rm {}", lock_name(t.project()))),
        "the error says how to remove it: {stderr}"
    );
    assert!(project_containers(&t).is_empty(), "nothing may change without the lock");

    // Timeout 0: no waiting message, the same error at once; destroy takes the lock too.
    let out = Scale::new(&["destroy", "--yes", "--lock-timeout", "0", "-p", t.project()])
        .command()
        .output()
        .expect("destroy");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("waiting for the lock"), "{stderr}");
    assert!(stderr.contains("is locked by ci@elsewhere.invalid"), "{stderr}");

    // plan reads only: it does not take the lock.
    let out = Scale::new(&["plan", "--detailed-exitcode", "-p", t.project(), file]).command().output().expect("plan");
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    assert!(lock_exists(&t), "a lock from another host is never broken automatically");
}

#[tokio::test]
async fn only_one_of_many_concurrent_acquires_wins() {
    let Some(t) = DockerTest::start("lock-race") else { return };
    let _lock = LockCleanup(t.project().to_string());
    let engine = t.engine().await;
    let quiet = |_: lock::LockEvent<'_>| {};
    let attempts = (0..8).map(|_| lock::acquire(&engine, t.project(), "apply", Duration::ZERO, &quiet));
    let results = futures_util::future::join_all(attempts).await;
    let (mut won, lost): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    assert_eq!(won.len(), 1, "exactly one acquire may win: {lost:?}");
    for err in lost {
        match err {
            Err(LockError::Held { holder, .. }) => {
                assert!(holder.contains(&format!("pid {} (apply", std::process::id())), "{holder}")
            }
            other => panic!("expected Held, got {other:?}"),
        }
    }
    let mut held = won.pop().and_then(Result::ok).expect("the winner");
    assert!(lock_exists(&t));
    held.release().await.expect("release");
    held.release().await.expect("releasing twice is fine");
    assert!(!lock_exists(&t));
    let mut again = lock::acquire(&engine, t.project(), "apply", Duration::ZERO, &quiet).await.expect("free again");
    again.release().await.expect("release");
}

/// A lock held from another host (so never broken automatically), holder `ci@elsewhere.invalid
/// pid 1 (apply)`.
fn plant_foreign_lock(t: &DockerTest) {
    plant_lock(
        t,
        &[
            (lock::LOCK, t.project().to_string()),
            (lock::HOLDER, "ci@elsewhere.invalid".into()),
            (lock::HOST, "elsewhere.invalid".into()),
            (lock::PID, "1".into()),
            (lock::COMMAND, "apply".into()),
        ],
    );
}

/// Waits at most `limit` for a line of `child` (either stream) containing `text`.
fn wait_line(child: &ScaleChild, limit: Duration, text: &str) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if child.lines().iter().any(|l| l.text.contains(text)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn a_watch_pass_waits_for_a_held_lock_then_repairs_and_holds_nothing_while_idle() {
    let Some(t) = DockerTest::start("lock-watch") else { return };
    let _lock = LockCleanup(t.project().to_string());
    let p = t.project().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("watch.yaml");
    let yaml = format!(
        "name: lock-watch\nservices:\n  app:\n    image: {TEST_IMAGE}\n    command: [sleep, infinity]\n    \
         stop_grace_period: 1s\n"
    );
    std::fs::write(&file, yaml).expect("write blueprint");
    let file = file.to_str().expect("utf-8 path");
    plant_foreign_lock(&t);

    // Its first pass has everything to create, so it needs the lock.
    let mut watch = Scale::new(&["watch", file, "-p", &p, "--resync", "1s"]).isolated().spawn();
    let waiting = format!("project {p} is locked by ci@elsewhere.invalid pid 1 (apply); waiting");
    assert!(wait_line(&watch, Duration::from_secs(30), &waiting), "no waiting line:\n{}", watch.transcript());
    // Several resyncs later: still waiting, said once, and nothing changed without the lock.
    std::thread::sleep(Duration::from_secs(3));
    assert!(project_containers(&t).is_empty(), "the watcher changed the project without the lock");
    let said = watch.lines().iter().filter(|l| l.text.contains(&waiting)).count();
    assert_eq!(said, 1, "the wait is announced once:\n{}", watch.transcript());

    let released = Instant::now();
    t.docker(&["rm", "-f", &lock_name(&p)]);
    let repaired = watch.wait_stdout(released, Duration::from_secs(60), |l| l.contains("repaired"));
    assert!(repaired.is_some(), "the watcher did not repair once the lock was free:\n{}", watch.transcript());
    assert_eq!(project_containers(&t), vec![format!("{p}-app-1")]);

    // Idle, it holds nothing: an apply that won't wait at all gets the lock and finds nothing to do.
    let out = Scale::new(&["apply", "--yes", "--lock-timeout", "0", "-p", &p, file]).command().output().expect("apply");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "apply next to an idle watcher:\n{stdout}\n{stderr}\n{}", watch.transcript());
    assert!(stdout.contains("No changes"), "{stdout}");

    watch.interrupt();
    let exit = watch.wait_exit(Duration::from_secs(15));
    assert_eq!(exit.and_then(|e| e.code()), Some(0), "{}", watch.transcript());
    assert!(!lock_exists(&t), "the watcher must leave no lock behind");
}

#[test]
fn failover_waits_for_a_held_lock_then_proceeds_and_releases_it_on_error() {
    let Some(t) = DockerTest::start("lock-failover") else { return };
    let _lock = LockCleanup(t.project().to_string());
    let p = t.project().to_string();
    plant_foreign_lock(&t);

    // Timeout 0: fails at once, naming the holder, before even looking at the project.
    let out = Scale::new(&["failover", "--lock-timeout", "0", "-p", &p]).command().output().expect("failover");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("project {p} is locked by ci@elsewhere.invalid pid 1")), "{stderr}");

    let mut failover = Scale::new(&["failover", "--lock-timeout", "60s", "-p", &p, "--no-color"]).isolated().spawn();
    let waiting = format!("waiting for the lock on project {p} held by ci@elsewhere.invalid pid 1 (apply)");
    assert!(wait_line(&failover, Duration::from_secs(30), &waiting), "no waiting line:\n{}", failover.transcript());
    assert!(failover.wait_exit(Duration::from_secs(2)).is_none(), "it must wait:\n{}", failover.transcript());

    t.docker(&["rm", "-f", &lock_name(&p)]);
    let exit = failover.wait_exit(Duration::from_secs(30));
    // Past the lock it looks at the project, which has no database: an error, and the lock
    // it took is given back all the same.
    assert_eq!(exit.and_then(|e| e.code()), Some(1), "{}", failover.transcript());
    let no_db = format!("project {p} has no kind: postgres service");
    assert!(failover.lines().iter().any(|l| l.text.contains(&no_db)), "{}", failover.transcript());
    assert!(!lock_exists(&t), "failover must release its lock on error");
}

#[test]
fn apply_watch_honours_lock_timeout_saying_so_each_time_it_waits() {
    let Some(t) = DockerTest::start("lock-watch-timeout") else { return };
    let _lock = LockCleanup(t.project().to_string());
    let p = t.project().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("watch.yaml");
    let yaml = format!(
        "name: lock-watch\nservices:\n  app:\n    image: {TEST_IMAGE}\n    command: [sleep, infinity]\n    \
         stop_grace_period: 1s\n"
    );
    std::fs::write(&file, yaml).expect("write blueprint");
    let file = file.to_str().expect("utf-8 path");
    plant_foreign_lock(&t);

    let mut watch =
        Scale::new(&["apply", "--watch", file, "-p", &p, "--resync", "1s", "--lock-timeout", "1s"]).isolated().spawn();
    let waiting = format!("project {p} is locked by ci@elsewhere.invalid pid 1 (apply); waiting (up to 1s)");
    // Each pass waits at most 1 s, gives up, and the next one (after back-off) says so again.
    let until = Instant::now() + Duration::from_secs(40);
    while Instant::now() < until && watch.lines().iter().filter(|l| l.text.contains(&waiting)).count() < 2 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let said = watch.lines().iter().filter(|l| l.text.contains(&waiting)).count();
    assert!(said >= 2, "each wait is announced, and a timed-out pass is tried again:\n{}", watch.transcript());
    assert!(watch.lines().iter().any(|l| l.text.contains("trying again later")), "{}", watch.transcript());
    assert!(project_containers(&t).is_empty(), "the watcher changed the project without the lock");

    t.docker(&["rm", "-f", &lock_name(&p)]);
    let repaired = watch.wait_stdout(Instant::now(), Duration::from_secs(60), |l| l.contains("repaired"));
    assert!(repaired.is_some(), "the watcher did not repair once the lock was free:\n{}", watch.transcript());
    watch.interrupt();
    let exit = watch.wait_exit(Duration::from_secs(15));
    assert_eq!(exit.and_then(|e| e.code()), Some(0), "{}", watch.transcript());
}
