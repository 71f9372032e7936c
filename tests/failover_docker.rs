//! Failover without recreate, on a real engine: stage 4 (`synchronous: true`), the primary
//! killed under a write loop, `scale failover` WITHOUT the blueprint (it moves the
//! `db-primary` alias itself, so writes succeed as soon as it returns), then `scale apply`:
//! the promoted node differs from its primary spec only in role and is left as it is (same
//! container ID), and no acknowledged write is lost. The write gap (the kill to the first
//! acknowledged write after it) and the longest pause between acknowledged writes during the
//! apply are printed in the test's output, not asserted on: timings go to benchmarks.

mod common;

use std::time::{Duration, Instant};

use common::{BuildGuard, DockerTest, LoopEnd, Scale, WriteLoop, inspect, lost_writes, stage_copy};

fn scale(p: &str, args: &[&str]) -> common::ScaleRun {
    let mut all = args.to_vec();
    all.extend(["-p", p]);
    Scale::new(&all).isolated().run()
}

fn lb_port(p: &str, file: &str) -> u16 {
    let status = scale(p, &["status", file, "--output", "json"]).success().json();
    let port = status["endpoints"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["service"] == "lb" && e["protocol"] == "tcp"))
        .and_then(|e| e["host_port"].as_u64())
        .unwrap_or_else(|| panic!("no public port of lb in {status:#}"));
    u16::try_from(port).expect("a port number")
}

#[test]
fn failover_then_apply_leaves_the_promoted_node_in_place_and_loses_no_acknowledged_write() {
    let test = format!("t-fo-{}", std::process::id());
    if !common::docker_or_skip(&test) {
        return;
    }
    let _guard = BuildGuard(Some(DockerTest::with_project(&test)));
    let p = test.as_str();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = stage_copy(dir.path(), 4, &[("synchronous: false", "synchronous: true")]);
    scale(p, &["apply", "--yes", &file]).success();
    let port = lb_port(p, &file);
    let old_primary = format!("{p}-db-1");

    let writes = WriteLoop::start(port, 700_000, Duration::from_millis(50), 4000, Duration::from_secs(300));
    std::thread::sleep(Duration::from_secs(2));
    scale(p, &["chaos", "kill", "db-primary"]).success();
    let killed = Instant::now();
    let run = scale(p, &["failover", "db"]);
    let failed_over = Instant::now();
    let out = run.success().all();
    let promoted = out
        .lines()
        .find_map(|l| l.strip_prefix("promoting ")?.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| panic!("failover does not name the promoted node:\n{out}"));
    assert!(out.contains(&format!("{promoted} answers as db, db-primary")), "{out}");
    let id_before = inspect(&promoted)["Id"].as_str().expect("an ID").to_string();

    // Writes go through as soon as the failover returned (the alias moved with it).
    let until = Instant::now() + Duration::from_secs(30);
    while writes.acknowledged_after(failed_over) < 5 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(writes.acknowledged_after(failed_over) >= 5, "no writes after `scale failover` returned:\n{out}");

    let applying = Instant::now();
    let apply = scale(p, &["apply", "--yes", &file]);
    let applied = Instant::now();
    let apply_out = apply.success().all();
    std::thread::sleep(Duration::from_secs(2));
    let report = writes.stop();
    assert_eq!(report.ended, LoopEnd::Stopped, "the write loop ran out");

    assert!(!apply_out.contains(&format!("recreate {promoted}")), "the apply recreated {promoted}:\n{apply_out}");
    assert_eq!(inspect(&promoted)["Id"].as_str(), Some(id_before.as_str()), "{promoted} was replaced:\n{apply_out}");
    assert!(apply_out.contains(&format!("create {old_primary}")), "the old primary rejoins:\n{apply_out}");
    scale(p, &["plan", "--detailed-exitcode", &file]).expect_code(0);

    let acked = report.acknowledged();
    for w in acked.iter().filter(|w| w.started > killed) {
        assert_eq!(w.db_node.as_deref(), Some(promoted.as_str()), "a write after the kill went elsewhere: {w:?}");
    }
    let lost = lost_writes(port, acked.iter().map(|w| (w.id, w.body.as_str())));
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");

    let first_after_kill =
        acked.iter().filter(|w| w.started > killed).map(|w| w.at).min().expect("writes after the kill");
    let during_apply: Vec<Instant> =
        acked.iter().map(|w| w.at).filter(|at| *at >= applying && *at <= applied).collect();
    let longest_pause = during_apply.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
    println!(
        "write gap of the failover: {:.2}s (kill → first acknowledged write; `scale failover` took {:.2}s); \
         during the apply ({:.1}s, {} acknowledged writes) the longest pause between two was {:.2}s; \
         {} writes, {} acknowledged, none lost",
        (first_after_kill - killed).as_secs_f64(),
        (failed_over - killed).as_secs_f64(),
        (applied - applying).as_secs_f64(),
        during_apply.len(),
        longest_pause.as_secs_f64(),
        report.writes.len(),
        acked.len()
    );
}
