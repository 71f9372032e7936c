//! The command line without an engine: help, validate (text, JSON, every problem with its
//! position and hint), bad project names, destroy without a project. Never skipped.

mod common;

use common::{Scale, write_blueprint};

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
    let run = Scale::new(&["--help"]).run();
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
    let run = Scale::new(&["validate", &file]).run();
    run.success();
    assert!(run.stdout.contains("is valid"), "{}", run.stdout);
    assert!(run.stdout.contains("project shop"), "{}", run.stdout);

    let run = Scale::new(&["validate", "--output", "json", &file]).run();
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
    let run = Scale::new(&["validate", &file]).run();
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

    let run = Scale::new(&["validate", "--output", "json", &file]).run();
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
    let run = Scale::new(&["validate", &file]).run();
    run.expect_code(1);
    assert_eq!(run.stdout, "", "problems go to stderr");
    insta::assert_snapshot!("validate_schema_errors", run.stderr.replace(&file, "[BLUEPRINT]"));
}

#[test]
fn plan_rejects_an_invalid_project_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_blueprint(dir.path(), VALID);
    // The name is checked before any engine is contacted: this needs no Docker.
    let run = Scale::new(&["plan", "-p", "Bad Name", &file]).run();
    run.expect_code(1);
    assert!(run.stderr.contains("\"Bad Name\""), "names the value:\n{}", run.stderr);
    assert!(run.stderr.contains("not valid"), "says what is wrong:\n{}", run.stderr);
    assert!(run.stderr.contains("lowercase"), "says what a name may contain:\n{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn cluster_rejects_a_bad_name_before_asking_any_engine() {
    // An engine address nothing listens on: the name must be refused before it is tried.
    let run = Scale::new(&["cluster", "up", "--name", "Bad/Name", "--engine", "tcp://127.0.0.1:9"]).run();
    run.expect_code(1);
    assert!(run.stderr.contains("`Bad/Name` is not a usable cluster name"), "{}", run.stderr);
    assert!(run.stderr.contains("lower-case letters"), "says what a name may contain:\n{}", run.stderr);
}

#[test]
fn destroy_needs_a_file_or_a_project() {
    // Run from the crate's root, which holds no compose.yaml: nothing to discover.
    let run = Scale::new(&["destroy"]).run();
    // Nothing to act on is a usage error: 64 (EX_USAGE), never 1 or 2.
    run.expect_code(64);
    assert!(run.stderr.contains("no Compose file here (looked for compose.yaml"), "{}", run.stderr);
    assert!(run.stderr.contains("-p NAME"), "says how to give one:\n{}", run.stderr);
}

/// A `kind: postgres` service without `password:` runs with the default password `app`:
/// validate and plan say so, instead of leaving it to be found in the README.
#[test]
fn a_postgres_service_without_password_is_noted_as_using_the_default() {
    const NO_PASSWORD: &str = "name: shop\nservices:\n  db:\n    kind: postgres\n    image: postgres:17\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_blueprint(dir.path(), NO_PASSWORD);
    let run = Scale::new(&["validate", &file]).run();
    run.success();
    assert!(run.stdout.contains("is valid"), "{}", run.stdout);
    assert!(
        run.stderr.contains("note: service `db` has no `password:`; PostgreSQL uses the default password `app`"),
        "validate notes the default password:\n{}",
        run.stderr
    );
    let doc = Scale::new(&["validate", "--output", "json", &file]).run().json();
    assert_eq!(doc["notes"].as_array().map(Vec::len), Some(1), "{doc}");

    let with_password = write_blueprint(dir.path(), &format!("{NO_PASSWORD}    password: secret\n"));
    let run = Scale::new(&["validate", &with_password]).run();
    run.success();
    assert!(!run.stderr.contains("password"), "no note once a password is set:\n{}", run.stderr);
}

#[test]
fn compose_keys_scale_does_not_act_on_are_warnings_in_text_and_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write_blueprint(
        dir.path(),
        "services:\n  db:\n    image: postgres:16\n    user: postgres\n    links: [cache]\n    cgroup: host\n",
    );
    let run = Scale::new(&["validate", &file]).run();
    run.expect_code(0);
    assert!(
        run.stderr.contains(&format!("{file}:5:5: warning: not supported yet: `services.db.links`")),
        "names the key, the file and the line:\n{}",
        run.stderr
    );
    // `user` of a plain service is honoured: no warning, and never "add kind: postgres".
    assert!(!run.stderr.contains("services.db.user"), "{}", run.stderr);
    assert!(!run.stderr.contains("did you mean") && !run.stderr.contains("kind: postgres"), "{}", run.stderr);
    let run = Scale::new(&["validate", &file, "--output", "json"]).run();
    run.expect_code(0);
    let doc = run.json();
    assert_eq!(doc["valid"], true);
    let warnings = doc["warnings"].as_array().expect("a list of warnings");
    assert_eq!(warnings.len(), 2, "{doc:#}");
    assert_eq!(warnings[1]["line"], 6);
    assert!(warnings[1]["message"].as_str().unwrap().contains("cgroup"), "{doc:#}");
}

#[test]
fn a_capital_letter_in_a_project_name_is_named_as_the_problem() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write_blueprint(dir.path(), VALID);
    let run = Scale::new(&["validate", "-p", "Web", &file]).run();
    run.expect_code(1);
    assert!(
        run.stderr.contains("project name \"Web\" (from -p) is not valid: it must be lowercase (\"web\")"),
        "{}",
        run.stderr
    );
}

#[test]
fn several_files_merge_in_order_and_errors_name_the_file_they_are_in() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().join("base.yaml");
    let over = dir.path().join("prod.yaml");
    std::fs::write(&base, "name: shop\nservices:\n  web:\n    image: nginx\n    ports: [\"8080:80\"]\n").unwrap();
    std::fs::write(&over, "services:\n  web:\n    replicas: two\n").unwrap();
    let (base, over) = (base.to_str().unwrap(), over.to_str().unwrap());
    let run = Scale::new(&["validate", "-f", base, "-f", over]).run();
    run.expect_code(1);
    assert!(run.stderr.contains(&format!("{over}:3:15: error: services.web.replicas")), "{}", run.stderr);
    std::fs::write(over, "services:\n  web:\n    image: nginx:1.27\n    ports: [\"8443:443\"]\n").unwrap();
    let run = Scale::new(&["config", "-f", base, "-f", over, "--output", "json"]).run();
    run.expect_code(0);
    let doc = run.json();
    assert_eq!(doc["services"]["web"]["image"], "nginx:1.27");
    let published: Vec<&str> =
        doc["services"]["web"]["ports"].as_array().unwrap().iter().map(|p| p["published"].as_str().unwrap()).collect();
    assert_eq!(published, ["8080", "8443"]);
}

/// A file with thousands of problems gets a JSON document CI can keep: the first 1,000
/// problems in file order, and how many there were in all (issue 11: output under 1 MB).
#[test]
fn thousands_of_problems_make_a_bounded_json_document() {
    let mut yaml = String::from("name: shop\nservices:\n");
    for i in 0..5_000 {
        yaml.push_str(&format!("  s{i}:\n    image: x\n    depends_on: [nope{i}]\n"));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write_blueprint(dir.path(), &yaml);
    let run = Scale::new(&["validate", "--output", "json", &file]).run();
    run.expect_code(1);
    assert!(run.stdout.len() < 1 << 20, "{} bytes of JSON", run.stdout.len());
    let doc = run.json();
    assert_eq!(doc["problems"].as_array().map(Vec::len), Some(1_000), "the first 1,000 are listed");
    assert_eq!(doc["problems_total"], 5_000);
    assert_eq!(doc["problems_not_shown"], 4_000);
    assert_eq!(doc["problems"][0]["service"], "s0", "in file order: {}", doc["problems"][0]);
}
