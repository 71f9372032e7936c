//! `scale stages`: the ladder in order, with each stage's title and summary; a project that
//! runs nothing has no stage applied. (tests/ladder.rs checks the applied stage is marked.)

mod common;

use common::Scale;

#[test]
fn the_ladder_is_listed_in_order_and_nothing_is_applied_for_an_empty_project() {
    if !common::docker_or_skip("stages_listing") {
        return;
    }
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/blueprints");
    let project = format!("t-stages-{}", std::process::id());
    let run = Scale::new(&["stages", "-p", &project, dir]).isolated().run();
    run.success();
    let titles = ["Single server", "Web tier and data tier", "Load balancer", "Database replication"];
    let at: Vec<usize> = titles
        .iter()
        .map(|t| run.stdout.find(t).unwrap_or_else(|| panic!("no stage {t:?} in:\n{}", run.stdout)))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "stages out of order:\n{}", run.stdout);
    assert!(
        run.stdout.contains("most applications read far more than they write"),
        "summaries are shown:\n{}",
        run.stdout
    );
    assert!(!run.stdout.contains("← applied now"), "an empty project has no stage applied:\n{}", run.stdout);
    assert!(run.stdout.contains("No stage is applied exactly now"), "{}", run.stdout);

    let json = Scale::new(&["stages", "-p", &project, "--output", "json", dir]).isolated().run();
    let doc = json.success().json();
    let stages = doc["stages"].as_array().expect("stages[]");
    assert_eq!(stages.iter().map(|s| s["number"].as_u64().unwrap_or(0)).take(4).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    assert!(stages.iter().all(|s| s["applied"] == false), "{doc:#}");
}

/// Every stage file can be copied for a Docker test (random ports, absolute build contexts)
/// with exactly the port and build lines changed: a stage that publishes a new fixed port
/// fails here, without Docker, instead of colliding on a shared engine.
#[test]
fn every_stage_file_copies_with_random_ports() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut names: Vec<String> = std::fs::read_dir(common::repo_path("blueprints"))
        .expect("blueprints/ readable")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    assert!(names.len() >= 11, "the ladder has its stages: {names:?}");
    for name in &names {
        let copy = std::fs::read_to_string(common::stage_file(dir.path(), name)).expect("the copy");
        assert!(copy.contains("build: /"), "{name}: its build contexts are absolute");
    }
}
