//! Data follows the learner between stages 1 and 2 on a real engine, with the real stage
//! files: a user written at stage 1 (SQLite on the web server's volume) is served at stage 2
//! (PostgreSQL) after a planned `migrate` action, a user written at stage 2 comes back with
//! it to stage 1, and after each step the plan is empty (the copies are not repeated).

mod common;

use std::time::Instant;

use common::{BuildGuard, DockerTest, Scale, header, http, http_get, stage_copy};

struct Walk {
    p: String,
    files: Vec<String>,
    started: Instant,
}

impl Walk {
    fn log(&self, what: &str) {
        eprintln!("[migrate {:>6.1}s] {what}", self.started.elapsed().as_secs_f64());
    }

    fn plan_json(&self, stage: usize) -> serde_json::Value {
        let file = &self.files[stage - 1];
        Scale::new(&["plan", "-p", &self.p, file, "--output", "json"]).isolated().run().success().json()
    }

    fn apply(&self, stage: usize) {
        let file = &self.files[stage - 1];
        let run = Scale::new(&["apply", "--yes", "-p", &self.p, file]).isolated().run();
        run.success();
        self.log(&format!("apply stage {stage}: {:.1}s", run.elapsed.as_secs_f64()));
        let plan = Scale::new(&["plan", "--detailed-exitcode", "-p", &self.p, file]).isolated().run();
        assert_eq!(plan.code, Some(0), "after stage {stage} the plan is not empty:\n{}", plan.all());
    }

    fn port(&self, stage: usize) -> u16 {
        let file = &self.files[stage - 1];
        let status = Scale::new(&["status", file, "-p", &self.p, "--output", "json"]).isolated().run();
        let status = status.success().json();
        let port = status["endpoints"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["service"] == "web" && e["protocol"] == "tcp"))
            .and_then(|e| e["host_port"].as_u64())
            .unwrap_or_else(|| panic!("no web endpoint in {status:#}"));
        u16::try_from(port).expect("a port")
    }
}

/// The one `migrate` action of a plan: (name, reason).
fn migrate_action(plan: &serde_json::Value) -> (String, String) {
    let actions: Vec<&serde_json::Value> =
        plan["actions"].as_array().expect("actions[]").iter().filter(|a| a["action"] == "migrate").collect();
    assert_eq!(actions.len(), 1, "expected one migrate action: {plan:#}");
    (actions[0]["name"].as_str().unwrap_or("").into(), actions[0]["reason"].as_str().unwrap_or("").into())
}

fn post(port: u16, body: &str) -> (String, String) {
    let r = http(port, "POST", "/users", Some(body)).expect("POST answers");
    assert_eq!(r.status, 201, "{r:?}");
    let id = serde_json::from_str::<serde_json::Value>(&r.body).expect("JSON")["id"].as_u64().expect("an id");
    (format!("/users/{id}"), r.body)
}

#[test]
fn a_user_written_at_stage_1_is_served_at_stage_2_and_back_at_stage_1() {
    if !common::docker_or_skip("a_user_written_at_stage_1_is_served_at_stage_2_and_back_at_stage_1") {
        return;
    }
    let guard = BuildGuard(Some(DockerTest::with_project(&format!("t-mig-{}-1", std::process::id()))));
    let t = guard.0.as_ref().expect("the project is open");
    let dir = tempfile::tempdir().expect("tempdir");
    let files = (1..=2).map(|n| stage_copy(dir.path(), n, &[])).collect();
    let w = Walk { p: t.project().to_string(), files, started: Instant::now() };

    w.apply(1);
    let (one, one_body) = post(w.port(1), r#"{"firstName":"Stage","lastName":"One"}"#);

    let (name, reason) = migrate_action(&w.plan_json(2));
    assert_eq!(name, format!("{0}_data (SQLite) → {0}-db-1", w.p), "{reason}");
    w.apply(2);
    let port = w.port(2);
    let r = http_get(port, &one);
    assert_eq!((r.status, r.body.as_str(), header(&r, "X-Db-Role")), (200, one_body.as_str(), "primary"), "{r:?}");
    let (two, two_body) = post(port, r#"{"firstName":"Stage","lastName":"Two"}"#);
    w.log("stage 2 serves the stage-1 user from the data tier");

    let (name, _) = migrate_action(&w.plan_json(1));
    assert_eq!(name, format!("{0}-db-1 → {0}_data (SQLite)", w.p));
    w.apply(1);
    let port = w.port(1);
    for (path, body) in [(&one, &one_body), (&two, &two_body)] {
        let r = http_get(port, path);
        assert_eq!((r.status, r.body.as_str(), header(&r, "X-Db-Role")), (200, body.as_str(), "embedded"), "{r:?}");
    }
    w.log("back at stage 1: both users are in SQLite");
}
