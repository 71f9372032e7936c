//! A Compose project applied as it is, on the real engine: run from its own directory with
//! no FILE and no `-p` (the project is named after the directory), with a build, a secret
//! from a file, `expose`, `env_file`, a healthcheck, a `service_healthy` dependency,
//! `deploy.replicas`, a profile left inactive and `compose.override.yaml` merged by default.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{DockerTest, project_containers, remove_built_images};

const COMPOSE: &str = r#"services:
  app:
    build: ./app
    env_file: ./app.env
    expose: [8000]
    secrets: [api_token]
    healthcheck:
      test: ["CMD-SHELL", "test -s /run/secrets/api_token"]
      interval: 1s
      timeout: 2s
      retries: 30
    depends_on:
      cache:
        condition: service_healthy
    deploy:
      replicas: 2
  cache:
    image: debian:bookworm-slim
    command: ["sleep", "infinity"]
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
      retries: 30
  debug:
    image: debian:bookworm-slim
    command: ["sleep", "infinity"]
    profiles: [debug]
secrets:
  api_token:
    file: ./secrets/api_token.txt
"#;

const OVERRIDE: &str = "services:\n  app:\n    environment:\n      MODE: override\n";

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// `scale ARGS` run from `dir`, with no COMPOSE_* variables from the test's environment.
fn scale_in(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = assert_cmd::Command::cargo_bin("scale")
        .expect("the scale binary")
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("COMPOSE_PROJECT_NAME")
        .env_remove("COMPOSE_PROFILES")
        .env_remove("COMPOSE_FILE")
        .timeout(Duration::from_secs(300))
        .output()
        .expect("run scale");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn a_compose_project_applies_as_it_is_and_a_second_apply_changes_nothing() {
    let Some(t) = DockerTest::start("compose-apply") else { return };
    let tmp = tempfile::tempdir().expect("a temp dir");
    // The directory's name is the project's name, as in Compose.
    let dir = tmp.path().join(t.project());
    write(&dir, "compose.yaml", COMPOSE);
    write(&dir, "compose.override.yaml", OVERRIDE);
    write(&dir, "app.env", "FROM_ENV_FILE=yes\nMODE=env-file\n");
    write(&dir, "secrets/api_token.txt", "s3cret-token\n");
    write(&dir, "app/Dockerfile", "FROM debian:bookworm-slim\nCMD [\"sleep\", \"infinity\"]\n");
    struct Images(String);
    impl Drop for Images {
        fn drop(&mut self) {
            remove_built_images(&self.0);
        }
    }
    let _images = Images(t.project().to_string());

    let (code, stdout, stderr) = scale_in(&dir, &["apply", "--yes"]);
    assert_eq!(code, Some(0), "apply failed:\n{stdout}\n{stderr}");
    let p = t.project();
    let names: Vec<String> = project_containers(p).into_keys().collect();
    let expected: Vec<String> = ["app-1", "app-2", "cache-1"].iter().map(|n| format!("{p}-{n}")).collect();
    assert_eq!(names, expected, "the services and replicas Compose would run (no `debug`: its profile is off)");

    let app = format!("{p}-app-1");
    assert_eq!(t.docker(&["exec", &app, "cat", "/run/secrets/api_token"]), "s3cret-token", "the secret is mounted");
    let mount = t.docker(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{if eq .Destination \"/run/secrets/api_token\"}}{{.RW}}{{end}}{{end}}",
        &app,
    ]);
    assert_eq!(mount, "false", "read-only");
    assert_eq!(t.docker(&["exec", &app, "printenv", "FROM_ENV_FILE"]), "yes", "env_file is read");
    assert_eq!(t.docker(&["exec", &app, "printenv", "MODE"]), "override", "the override file wins over env_file");

    let (code, stdout, stderr) = scale_in(&dir, &["apply", "--yes"]);
    assert_eq!(code, Some(0), "second apply failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("No changes"), "a second apply changes nothing:\n{stdout}\n{stderr}");

    let (code, stdout, stderr) = scale_in(&dir, &["destroy", "--yes"]);
    assert_eq!(code, Some(0), "destroy failed:\n{stdout}\n{stderr}");
    assert!(project_containers(p).is_empty(), "destroy from the directory removes the project");
}
