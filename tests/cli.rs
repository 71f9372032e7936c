//! The command line without an engine: help, validate (text, JSON, every problem with its
//! position and hint), bad project names, destroy without a project. Never skipped.

mod common;

use common::{scale, write_blueprint};

const VALID: &str = r#"name: shop
stage:
  number: 1
  title: Single server
  summary: One server.
services:
  web:
    image: debian:bookworm-slim
    command: ["sleep", "infinity"]
    ports: ["80"]
"#;

/// Two problems: a misspelt key (line 5) and a dependency on a misspelt service (line 6).
const TWO_PROBLEMS: &str = r#"name: shop
services:
  web:
    image: debian:bookworm-slim
    comand: ["sleep", "infinity"]
    depends_on: [databse]
  database:
    image: debian:bookworm-slim
"#;

/// Four problems the schema catches: a wrong type, a misspelt key, a bad port, a bad value.
const SCHEMA_PROBLEMS: &str = r#"name: shop
services:
  web:
    image: debian:bookworm-slim
    replicas: two
    helthcheck: { test: ["CMD", "true"] }
    ports: ["80:80:80:80"]
    restart: sometimes
"#;

#[test]
fn help_lists_the_subcommands() {
    let run = scale(&["--help"]);
    run.success();
    for command in ["validate", "plan", "apply", "status", "destroy"] {
        assert!(
            run.stdout.lines().any(|l| l.trim_start().starts_with(command)),
            "`scale --help` lists {command}:\n{}",
            run.stdout
        );
    }
}

#[test]
fn validate_accepts_a_valid_blueprint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_blueprint(dir.path(), VALID);
    let run = scale(&["validate", &file]);
    run.success();
    assert!(run.stdout.contains("is valid"), "{}", run.stdout);
    assert!(run.stdout.contains("project shop"), "{}", run.stdout);

    let run = scale(&["validate", "--output", "json", &file]);
    run.success();
    assert!(run.stdout.contains(r#""valid":true"#), "{}", run.stdout);
    let doc = run.json();
    assert_eq!(doc["project"], "shop", "{doc}");
    assert_eq!(doc["services"], serde_json::json!(["web"]), "{doc}");
    assert_eq!(doc["problems"], serde_json::json!([]), "{doc}");
}

#[test]
fn validate_lists_every_problem_with_position_and_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_blueprint(dir.path(), TWO_PROBLEMS);
    let run = scale(&["validate", &file]);
    run.expect_code(1);
    let err = &run.stderr;
    let line_of = |needle: &str| {
        err.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("stderr names `{needle}`:\n{err}"))
            .to_string()
    };
    let typo = line_of("comand");
    assert!(typo.starts_with(&format!("{file}:5:5:")), "the typo's file:line:col: {typo}\n{err}");
    let dependency = line_of("databse");
    assert!(dependency.starts_with(&format!("{file}:6:")), "the dependency's file:line:col: {dependency}\n{err}");
    assert!(err.contains("did you mean `command`?"), "{err}");
    assert!(err.contains("did you mean `database`?"), "{err}");

    let run = scale(&["validate", "--output", "json", &file]);
    run.expect_code(1);
    let doc = run.json();
    assert_eq!(doc["valid"], false, "{doc}");
    let lines: Vec<u64> =
        doc["problems"].as_array().expect("problems").iter().filter_map(|p| p["line"].as_u64()).collect();
    assert_eq!(lines, vec![5, 6], "{doc:#}");
}

#[test]
fn validate_output_for_schema_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_blueprint(dir.path(), SCHEMA_PROBLEMS);
    let run = scale(&["validate", &file]);
    run.expect_code(1);
    assert_eq!(run.stdout, "", "problems go to stderr");
    insta::assert_snapshot!("validate_schema_errors", run.stderr.replace(&file, "[BLUEPRINT]"));
}

#[test]
fn plan_rejects_an_invalid_project_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_blueprint(dir.path(), VALID);
    // The name is checked before any engine is contacted: this needs no Docker.
    let run = scale(&["plan", "-p", "Bad Name", &file]);
    run.expect_code(1);
    assert!(run.stderr.contains("\"Bad Name\""), "names the value:\n{}", run.stderr);
    assert!(run.stderr.contains("not valid"), "says what is wrong:\n{}", run.stderr);
    assert!(run.stderr.contains("lowercase"), "says what a name may contain:\n{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn destroy_needs_a_file_or_a_project() {
    let run = scale(&["destroy"]);
    // A usage error: 64 (EX_USAGE), never 1 or 2.
    run.expect_code(64);
    assert!(run.stderr.contains("no project given"), "{}", run.stderr);
    assert!(run.stderr.contains("-p NAME"), "says how to give one:\n{}", run.stderr);
}
