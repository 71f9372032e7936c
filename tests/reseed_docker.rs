//! A replica that cannot catch up re-seeds itself, on a real engine: stage 4, replica db-3
//! stopped, its replication slot dropped on the primary and the WAL it needs recycled
//! (`wal_keep_size = 0`, `pg_switch_wal()` and `CHECKPOINT` over fresh writes). Started
//! again it cannot stream; `scale status` says so, `scale plan` plans a re-seed with the
//! reason, and `scale apply` takes a fresh base backup (the old data set aside in the volume,
//! not deleted), after which it streams with zero lag.

mod common;

use std::time::{Duration, Instant};

use common::{BuildGuard, DockerTest, Scale, poll, psql_ok, stage_copy};

fn scale(p: &str, args: &[&str]) -> common::ScaleRun {
    let mut all = args.to_vec();
    all.extend(["-p", p]);
    Scale::new(&all).isolated().run()
}

/// `(streaming, lag_bytes)` of `node` as `scale status` reports it.
fn replication(p: &str, file: &str, node: &str) -> (Option<bool>, Option<u64>, serde_json::Value) {
    let status = scale(p, &["status", file, "--output", "json"]).success().json();
    let entry = status["databases"].as_array().and_then(|d| d.iter().find(|n| n["container"] == node)).cloned();
    let s = entry.map(|e| e["status"].clone()).unwrap_or_default();
    (s["streaming"].as_bool(), s["lag_bytes"].as_u64(), status)
}

#[test]
fn a_replica_whose_wal_is_gone_is_reported_then_reseeded_and_streams_again() {
    let test = format!("t-rs-{}", std::process::id());
    if !common::docker_or_skip(&test) {
        return;
    }
    let _guard = BuildGuard(Some(DockerTest::with_project(&test)));
    let p = test.as_str();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = stage_copy(dir.path(), 4, &[]);
    scale(p, &["apply", "--yes", &file]).success();
    let (primary, replica) = (format!("{p}-db-1"), format!("{p}-db-3"));
    poll(Duration::from_secs(60), &format!("{replica} streaming"), || match replication(p, &file, &replica) {
        (Some(true), _, _) => Ok(()),
        other => Err(format!("{other:?}")),
    });

    common::docker(&["stop", "-t", "5", &replica]).expect("stop the replica");
    let slot = format!("{p}_db_3").replace('-', "_");
    psql_ok(&primary, None, &format!("SELECT pg_drop_replication_slot('{slot}')"));
    psql_ok(&primary, None, "ALTER SYSTEM SET wal_keep_size = 0");
    psql_ok(&primary, None, "SELECT pg_reload_conf()");
    psql_ok(&primary, Some("app"), "CREATE TABLE IF NOT EXISTS reseed_filler (x int)");
    for _ in 0..4 {
        psql_ok(&primary, Some("app"), "INSERT INTO reseed_filler SELECT generate_series(1, 20000)");
        psql_ok(&primary, None, "SELECT pg_switch_wal()");
        psql_ok(&primary, None, "CHECKPOINT");
    }
    common::docker(&["start", &replica]).expect("start the replica");

    let (_, took) = common::poll_timed(Instant::now(), Duration::from_secs(90), "the stale replica reported", || {
        let (_, _, status) = replication(p, &file, &replica);
        match status["stale_replicas"][&replica].as_str() {
            Some(why) => Ok(why.to_string()),
            None => Err(format!("{:#}", status["databases"])),
        }
    });
    println!("reported stale {took:?} after its start");
    let human = scale(p, &["status", &file]).success().stdout.clone();
    assert!(human.contains(&format!("{replica}: cannot stream")), "{human}");
    let plan = scale(p, &["plan", &file]).success().stdout.clone();
    assert!(plan.contains(&format!("~ reseed {replica}: cannot stream: the WAL it needs")), "{plan}");
    assert!(plan.contains("old data is set aside"), "{plan}");

    let apply = scale(p, &["apply", "--yes", &file]);
    let out = apply.success().all();
    poll(Duration::from_secs(60), &format!("{replica} streaming with zero lag"), || {
        match replication(p, &file, &replica) {
            (Some(true), Some(0), _) => Ok(()),
            other => Err(format!("{:?} {:?}\n{out}", other.0, other.1)),
        }
    });
    let data = common::docker(&["exec", &replica, "ls", "-1", "/var/lib/postgresql/data"]).expect("ls the volume");
    assert!(data.lines().any(|l| l.starts_with("pgdata.stale-")), "the old data was not set aside: {data:?}");
    scale(p, &["plan", "--detailed-exitcode", &file]).expect_code(0);
}
