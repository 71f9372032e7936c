//! Exit codes CI can trust: usage errors exit 64 (never 2, which `plan --detailed-exitcode`
//! means "changes pending"), and under `--output json` every failure is one JSON document on
//! stdout with the human text on stderr only. Needs no engine: the engine is pointed at a
//! socket that does not exist.

use std::time::Duration;

const VALID: &str = "name: shop\nservices:\n  web:\n    image: debian:bookworm-slim\n";
const NO_ENGINE: &str = "unix:///nonexistent.sock";

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn scale(args: &[&str]) -> Run {
    let out = assert_cmd::Command::cargo_bin("scale")
        .expect("the scale binary is built")
        .args(args)
        .env("NO_COLOR", "1")
        .env("DOCKER_HOST", NO_ENGINE)
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run scale");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn blueprint(dir: &std::path::Path) -> String {
    let path = dir.join("shop.yaml");
    std::fs::write(&path, VALID).expect("write blueprint");
    path.display().to_string()
}

/// The single JSON document on stdout; panics with the output when there is not exactly one.
fn one_document(run: &Run) -> serde_json::Value {
    let mut docs = serde_json::Deserializer::from_str(&run.stdout).into_iter::<serde_json::Value>();
    let first = docs.next().unwrap_or_else(|| panic!("no JSON on stdout; stderr:\n{}", run.stderr));
    let first = first.unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", run.stdout));
    assert!(docs.next().is_none(), "more than one JSON document on stdout:\n{}", run.stdout);
    first
}

#[test]
fn usage_errors_exit_64_in_every_subcommand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = blueprint(dir.path());
    let cases: Vec<Vec<&str>> = vec![
        vec!["plan", "--detailed-exitcode", "--typo", &file],
        vec!["plan", "--detailed-exitcode"],
        vec!["validate"],
        vec!["validate", &file, "extra"],
        vec!["apply", "--parallel", "many", &file],
        vec!["status", "--bogus"],
        vec!["destroy"],
        vec!["chaos", "explode", "web"],
        vec!["chaos", "kill", "web", "-p", "shop", "--for", "10s"],
        vec!["watch"],
        vec!["failover", "--nope"],
        vec!["nonsense"],
        vec![],
        vec!["--output", "xml", "validate", &file],
    ];
    for args in cases {
        let run = scale(&args);
        assert_eq!(run.code, Some(64), "`scale {}` exits 64:\n{}", args.join(" "), run.stderr);
        assert!(!run.stderr.trim().is_empty(), "`scale {}` says why on stderr", args.join(" "));
        assert!(run.stdout.is_empty(), "`scale {}` prints nothing on stdout:\n{}", args.join(" "), run.stdout);
    }
}

#[test]
fn help_and_version_still_exit_0() {
    for args in [["--help"], ["--version"]] {
        let run = scale(&args);
        assert_eq!(run.code, Some(0), "{args:?}: {}", run.stderr);
        assert!(!run.stdout.is_empty());
    }
}

#[test]
fn a_usage_error_under_json_is_one_error_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = blueprint(dir.path());
    let run = scale(&["--output", "json", "plan", "--detailed-exitcode", "--typo", &file]);
    assert_eq!(run.code, Some(64), "{}", run.stderr);
    let doc = one_document(&run);
    assert_eq!(doc["error"]["kind"], "usage", "{doc}");
    assert!(doc["error"]["message"].as_str().unwrap().contains("--typo"), "{doc}");
    assert!(run.stderr.contains("--typo"), "the human text stays on stderr:\n{}", run.stderr);
}

#[test]
fn plan_without_an_engine_prints_a_json_error_on_stdout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = blueprint(dir.path());
    for args in [vec!["plan", "--output", "json", &file], vec!["plan", "--output=json", "--detailed-exitcode", &file]] {
        let run = scale(&args);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        let doc = one_document(&run);
        assert_eq!(doc["error"]["kind"], "engine", "{doc}");
        assert!(doc["error"]["message"].as_str().unwrap().contains("nonexistent.sock"), "{doc}");
        assert!(doc["error"]["hint"].as_str().is_some_and(|h| h.contains("DOCKER_HOST")), "{doc}");
        assert!(run.stderr.contains("cannot reach"), "human text on stderr:\n{}", run.stderr);
    }
}

#[test]
fn status_and_destroy_without_an_engine_print_json_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = blueprint(dir.path());
    for args in [vec!["status", "--output", "json", &file], vec!["destroy", "--output", "json", "-p", "shop"]] {
        let run = scale(&args);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert_eq!(one_document(&run)["error"]["kind"], "engine");
    }
}

#[test]
fn an_invalid_blueprint_under_json_is_the_validate_document_with_its_problems() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "name: shop\nservices:\n  web:\n    image: x\n    comand: y\n").expect("write");
    let file = path.display().to_string();
    for command in ["validate", "plan"] {
        let run = scale(&[command, "--output", "json", &file]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        let doc = one_document(&run);
        assert_eq!(doc["valid"], false, "{doc}");
        assert_eq!(doc["problems"][0]["line"], 5, "{doc}");
        assert_eq!(doc["problems"][0]["service"], "web", "a problem inside a service names it: {doc}");
    }
    let missing = dir.path().join("missing.yaml").display().to_string();
    let run = scale(&["plan", "--output", "json", &missing]);
    assert_eq!(run.code, Some(1));
    assert_eq!(one_document(&run)["valid"], false);
}
