//! The data migration between stages 1 and 2 as planned and run over the in-memory engine
//! (the copy itself, `app.py migrate`, is scripted): stepping 1 → 2 marks the copy pending,
//! brings up the data tier and the new web server, copies through it and drops the marker;
//! 2 → 1 copies back through the old web server before anything is removed; an interrupted
//! 1 → 2 copy is planned again from its marker.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use scale::engine::ExecOutput;
use scale::engine::fake::FakeEngine;
use scale::plan::{Op, Plan, render_text};
use scale::spec::DesiredState;

#[path = "common/plan_fixture.rs"]
mod plan_fixture;
use plan_fixture::{plan_for, run};

const STAGE_1: &str = "name: shop
volumes:
  data: {}
services:
  web:
    image: web
    environment: { DATA_DIR: /data }
    volumes: [\"data:/data\"]
";

const STAGE_2: &str = "name: shop
volumes:
  data: {}
services:
  web:
    image: web
    environment: { DATA_DIR: /data, DATABASE_URL: \"postgres://app:app@db-primary:5432/app\" }
    volumes: [\"data:/data\"]
    depends_on: [db]
  db:
    kind: postgres
    image: pg
    password: app
";

fn desired(yaml: &str) -> DesiredState {
    plan_fixture::desired_from_yaml(yaml)
}

/// Answers `app.py migrate` (recording where and which way) and anything else with success.
fn script(engine: &FakeEngine, copies: Arc<Mutex<Vec<String>>>, fail: Arc<AtomicBool>) {
    engine.on_exec(move |name, command| {
        if let Some(direction) = command.strip_prefix("python3 /app/app.py migrate ") {
            copies.lock().unwrap().push(format!("{name} {direction}"));
            let failing = fail.load(std::sync::atomic::Ordering::SeqCst);
            let output = if failing { "the data tier does not answer" } else { "{\"users\":3}" };
            return Some(ExecOutput { exit_code: i64::from(failing), output: output.into() });
        }
        Some(ExecOutput { exit_code: 0, output: String::new() })
    });
}

fn position(p: &Plan, pred: impl Fn(&Op) -> bool) -> usize {
    p.actions.iter().position(|a| pred(&a.op)).unwrap_or_else(|| panic!("no such action in\n{}", render_text(p)))
}

#[test]
fn one_to_two_copies_after_the_tiers_are_up_and_two_to_one_copies_back_first() {
    let engine = FakeEngine::new();
    let copies = Arc::new(Mutex::new(Vec::new()));
    let fail = Arc::new(AtomicBool::new(false));
    script(&engine, copies.clone(), fail.clone());
    let (one, two) = (desired(STAGE_1), desired(STAGE_2));
    assert!(run(&engine, &plan_for(&engine, &one)).succeeded());
    assert!(!render_text(&plan_for(&engine, &one)).contains("migrate"), "a fresh stage 1 copies nothing");

    // 1 → 2: marker first, copy last (after the new web server), marker gone after.
    let up = plan_for(&engine, &two);
    let text = render_text(&up);
    assert!(text.contains("> migrate shop_data (SQLite) → shop-db-1: the data tier is new"), "{text}");
    let marker = position(&up, |op| matches!(op, Op::CreateVolume { spec } if spec.name == "shop_data-migrating"));
    let web = position(&up, |op| op.container_spec().is_some_and(|s| s.name == "shop-web-1"));
    let copy = position(&up, |op| matches!(op, Op::MigrateData { .. }));
    assert!(up.actions[web].after.contains(&marker), "the web server is replaced only once the marker exists\n{text}");
    assert!(up.actions[copy].after.contains(&web), "the copy waits for the new web server\n{text}");

    // Interrupted: the copy fails; the marker stays and the next plan copies again.
    fail.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(!run(&engine, &up).succeeded());
    let again = plan_for(&engine, &two);
    assert_eq!(again.actions.len(), 1, "only the copy is left:\n{}", render_text(&again));
    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(run(&engine, &again).succeeded());
    assert!(!plan_for(&engine, &two).has_changes(), "{}", render_text(&plan_for(&engine, &two)));
    assert_eq!(*copies.lock().unwrap(), ["shop-web-1 to-postgres", "shop-web-1 to-postgres"]);

    // 2 → 1: the copy back runs in the old web server before the data tier goes.
    let down = plan_for(&engine, &one);
    let text = render_text(&down);
    assert!(text.contains("> migrate shop-db-1 → shop_data (SQLite)"), "{text}");
    let copy = position(&down, |op| matches!(op, Op::MigrateData { .. }));
    for (i, a) in down.actions.iter().enumerate().filter(|(i, _)| *i != copy) {
        if matches!(a.op, Op::RemoveContainer { .. }) || a.op.container_spec().is_some() {
            assert!(a.after.contains(&copy), "action {i} does not wait for the copy back\n{text}");
        }
    }
    assert!(run(&engine, &down).succeeded());
    assert!(!plan_for(&engine, &one).has_changes());
    assert_eq!(copies.lock().unwrap().last().map(String::as_str), Some("shop-web-1 to-sqlite"));
}
