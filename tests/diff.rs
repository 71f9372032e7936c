//! `scale diff A B`: each adjacent pair of stage files, snapshot-tested in words; the step
//! from stage 2 to 3 names the load balancer and the web tier's lost public port; exit codes
//! as `kubectl diff` (0 same, 1 differs, 2 error) and JSON that says the same.

mod common;

use std::path::{Path, PathBuf};

use common::Scale;
use scale::model::{Blueprint, Env};
use scale::spec::DesiredState;
use scale::stage_diff::{Side, diff, render_text};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn stage_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo("blueprints"))
        .expect("blueprints/ is readable")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .map(|n| format!("blueprints/{n}"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "expected the stage ladder in blueprints/, found {files:?}");
    files
}

/// A stage file with no stage variables set, expanded for project `shop` (build contexts
/// are not read: both sides get the same fake context hash).
fn load(file: &str) -> (Blueprint, DesiredState) {
    let bytes = std::fs::read(repo(file)).expect("stage file readable");
    let bp = scale::model::load_bytes(Path::new(file), &bytes, &Env::from_pairs(Vec::<(String, String)>::new()))
        .unwrap_or_else(|d| panic!("{file} does not load:\n{d}"));
    let hasher = |_: &scale::model::Build| Ok("0".repeat(64));
    let desired = scale::desired::desired_state(&bp, "shop", &hasher).expect("stage files expand");
    (bp, desired)
}

fn diff_text(a: &str, b: &str) -> String {
    let (ba, da) = load(a);
    let (bb, db) = load(b);
    render_text(&diff(Side { blueprint: &ba, desired: &da }, Side { blueprint: &bb, desired: &db }))
}

#[test]
fn each_adjacent_pair_of_stages_in_words() {
    let files = stage_files();
    for pair in files.windows(2) {
        let stem = |f: &str| Path::new(f).file_stem().expect("a name").to_string_lossy()[..2].to_string();
        let name = format!("{}_to_{}", stem(&pair[0]), stem(&pair[1]));
        insta::assert_snapshot!(name, diff_text(&pair[0], &pair[1]));
    }
}

#[test]
fn stage_3_names_the_load_balancer_and_the_web_tiers_lost_port() {
    let text = diff_text("blueprints/02-web-and-data-tiers.yaml", "blueprints/03-load-balancer.yaml");
    let headline = text.lines().next().expect("a headline");
    assert!(headline.starts_with("stage 3 adds a load balancer (lb) in front of web"), "{text}");
    assert!(headline.contains("web becomes private: it no longer publishes 8080"), "{text}");
    assert!(headline.contains("web 1 → 2 replicas"), "{text}");
    assert!(text.contains("creates shop-lb-1, shop-web-2"), "{text}");
}

#[test]
fn stages_5_and_6_name_what_they_add_and_the_edges_port() {
    let text = diff_text("blueprints/04-database-replication.yaml", "blueprints/05-cache.yaml");
    assert!(text.starts_with("stage 5 adds a Redis read-through cache (cache, 1 replica)\n"), "{text}");
    let text = diff_text("blueprints/05-cache.yaml", "blueprints/06-cdn.yaml");
    assert!(text.starts_with("stage 6 adds a Varnish CDN edge for the static content (cdn, 1 replica)"), "{text}");
    assert!(text.lines().next().is_some_and(|l| l.ends_with("; cdn publishes 8081")), "{text}");
}

#[test]
fn the_cli_exits_like_kubectl_diff_and_speaks_json() {
    let (s2, s3) = (repo("blueprints/02-web-and-data-tiers.yaml"), repo("blueprints/03-load-balancer.yaml"));
    let (s2, s3) = (s2.to_str().expect("UTF-8"), s3.to_str().expect("UTF-8"));
    let differs = Scale::new(&["diff", s2, s3]).isolated().run();
    differs.expect_code(1);
    assert!(differs.stdout.contains("adds a load balancer (lb) in front of web"), "{}", differs.all());

    let json = Scale::new(&["diff", "--output", "json", s2, s3]).isolated().run();
    json.expect_code(1);
    let doc = json.json();
    assert_eq!(doc["same"], false, "{doc:#}");
    let changes = doc["changes"].as_array().expect("changes[]");
    assert!(
        changes.iter().any(|c| c["change"] == "service_added"
            && c["kind"] == "load-balancer"
            && c["in_front_of"] == "web"
            && c["publishes"] == serde_json::json!(["8080"])
            && c["role"].is_null()),
        "{doc:#}"
    );
    assert!(
        changes.iter().any(|c| c["change"] == "unpublished"
            && c["service"] == "web"
            && c["ports"][0] == "8080"
            && c["now_private"] == true),
        "{doc:#}"
    );

    Scale::new(&["diff", s3, s3]).isolated().run().expect_code(0);

    let dir = tempfile::tempdir().expect("tempdir");
    let broken = common::write_blueprint(dir.path(), "name: shop\nservices:\n  web:\n    imag: x\n");
    let error = Scale::new(&["diff", s3, &broken]).isolated().run();
    error.expect_code(2);
    assert!(error.stderr.contains("unknown key `imag`"), "an invalid blueprint is reported:\n{}", error.all());
    let missing = Scale::new(&["diff", s3, "/nonexistent/blueprint.yaml"]).isolated().run();
    missing.expect_code(2);
}
