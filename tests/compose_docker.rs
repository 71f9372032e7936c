//! A Compose project applied as it is, on the real engine: run from its own directory with
//! no FILE and no `-p` (the project is named after the directory), with a build, a secret
//! from a file, `expose`, `env_file`, a healthcheck, a `service_healthy` dependency,
//! `deploy.replicas`, a profile left inactive and `compose.override.yaml` merged by default.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{DockerTest, docker, inspect, project_containers, remove_built_images};

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

/// Removes the images a test built (tagged `<project>/…`), even when it fails.
struct Images(String);
impl Drop for Images {
    fn drop(&mut self) {
        remove_built_images(&self.0);
    }
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

/// A representative set of the Compose keys that become engine options, a multi-stage build
/// with `target`, `image` beside `build`, `container_name` and an external network.
const OPTIONS: &str = r#"services:
  app:
    build:
      context: ./app
      target: runtime
    image: ${P}/tagged:1
    container_name: ${P}-named
    command: ["sleep", "infinity"]
    user: "1234:1234"
    working_dir: /tmp
    hostname: apphost
    cap_add: [NET_ADMIN]
    cap_drop: [MKNOD]
    tmpfs: ["/scratch:size=1m"]
    read_only: true
    extra_hosts: ["db.example:10.1.2.3"]
    sysctls:
      net.ipv4.ip_unprivileged_port_start: "0"
    ulimits:
      nofile: { soft: 1024, hard: 2048 }
    init: true
    stop_signal: SIGINT
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
      retries: 30
      start_interval: 1s
    networks: [shared]
networks:
  shared:
    external: true
    name: ${P}-ext
"#;

const MULTI_STAGE: &str = "FROM debian:bookworm-slim AS runtime\nRUN echo runtime > /stage\n\
                           FROM runtime AS later\nRUN echo later > /stage\n";

/// Removes the test's external network (it has no project label, so the label cleanup
/// does not see it), even when the test fails: the project's containers go first, or the
/// engine refuses to remove a network in use.
struct Network {
    name: String,
    project: String,
}
impl Drop for Network {
    fn drop(&mut self) {
        for name in project_containers(&self.project).into_keys() {
            let _ = docker(&["rm", "-f", &name]);
        }
        let _ = docker(&["network", "rm", &self.name]);
    }
}

#[test]
fn compose_engine_options_are_honoured_on_the_engine() {
    let Some(t) = DockerTest::start("compose-options") else { return };
    let p = t.project().to_string();
    let tmp = tempfile::tempdir().expect("a temp dir");
    let dir = tmp.path().join(&p);
    write(&dir, "compose.yaml", &OPTIONS.replace("${P}", &p));
    write(&dir, "app/Dockerfile", MULTI_STAGE);
    let _images = Images(p.clone());

    // An external network that does not exist yet: plan warns, apply refuses with a clear
    // error naming it and what to do, and creates nothing.
    let missing = format!("the external network `{p}-ext` does not exist");
    let (code, stdout, stderr) = scale_in(&dir, &["plan"]);
    assert_eq!(code, Some(0), "plan still plans:\n{stdout}\n{stderr}");
    assert!(stderr.contains("warning: ") && stderr.contains(&missing), "{stderr}");
    let (code, stdout, stderr) = scale_in(&dir, &["apply", "--yes"]);
    assert_eq!(code, Some(1), "apply must refuse a missing external network:\n{stdout}\n{stderr}");
    assert!(stderr.contains(&missing), "{stderr}");
    assert!(stderr.contains(&format!("docker network create {p}-ext")), "says what to do: {stderr}");
    assert!(project_containers(&p).is_empty(), "nothing was created");

    let network = Network { name: format!("{p}-ext"), project: p.clone() };
    t.docker(&["network", "create", &network.name]);
    let (code, stdout, stderr) = scale_in(&dir, &["apply", "--yes"]);
    assert_eq!(code, Some(0), "apply failed:\n{stdout}\n{stderr}");
    assert!(!stderr.contains("not supported yet"), "every key here is honoured:\n{stderr}");
    // `start_interval` needs API 1.44: older engines are told it is ignored, and why.
    let api = t.docker(&["version", "-f", "{{.Server.APIVersion}}"]);
    let minor: u32 = api.split('.').nth(1).and_then(|m| m.parse().ok()).unwrap_or(0);
    let ignored = "healthcheck.start_interval` is ignored: this engine speaks API";
    assert_eq!(stderr.contains(ignored), minor < 44, "API {api}:\n{stderr}");

    let name = format!("{p}-named");
    assert_eq!(project_containers(&p).into_keys().collect::<Vec<_>>(), std::slice::from_ref(&name), "container_name");
    let c = inspect(&name);
    let (config, host) = (&c["Config"], &c["HostConfig"]);
    assert_eq!(config["User"], "1234:1234");
    assert_eq!(config["WorkingDir"], "/tmp");
    assert_eq!(config["Hostname"], "apphost");
    assert_eq!(config["StopSignal"], "SIGINT");
    assert_eq!(host["CapAdd"], serde_json::json!(["NET_ADMIN"]));
    assert_eq!(host["CapDrop"], serde_json::json!(["MKNOD"]));
    assert_eq!(host["Tmpfs"], serde_json::json!({ "/scratch": "size=1m" }));
    assert_eq!(host["ReadonlyRootfs"], true);
    assert_eq!(host["ExtraHosts"], serde_json::json!(["db.example:10.1.2.3"]));
    assert_eq!(host["Sysctls"], serde_json::json!({ "net.ipv4.ip_unprivileged_port_start": "0" }));
    assert_eq!(host["Ulimits"], serde_json::json!([{ "Name": "nofile", "Soft": 1024, "Hard": 2048 }]));
    assert_eq!(host["Init"], true);
    if minor >= 44 {
        assert_eq!(config["Healthcheck"]["StartInterval"], 1_000_000_000_i64);
    }
    assert!(c["NetworkSettings"]["Networks"].get(&network.name).is_some(), "joined the external network: {c}");
    // What the process sees: the build stopped at `runtime`, and the options took effect.
    assert_eq!(t.docker(&["exec", &name, "cat", "/stage"]), "runtime", "build.target");
    assert_eq!(t.docker(&["exec", &name, "id", "-u"]), "1234");
    assert_eq!(t.docker(&["exec", &name, "pwd"]), "/tmp");
    assert!(t.docker(&["exec", &name, "getent", "hosts", "db.example"]).starts_with("10.1.2.3"));
    assert!(docker(&["exec", &name, "touch", "/root-fs-file"]).is_err(), "the root file system is read-only");
    t.docker(&["exec", &name, "touch", "/scratch/ok"]);
    assert!(!t.docker(&["image", "ls", "-q", &format!("{p}/tagged:1")]).is_empty(), "image: names the build");

    let (code, stdout, stderr) = scale_in(&dir, &["apply", "--yes"]);
    assert_eq!(code, Some(0), "second apply failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("No changes"), "a second apply changes nothing:\n{stdout}\n{stderr}");

    let (code, stdout, stderr) = scale_in(&dir, &["destroy", "--yes"]);
    assert_eq!(code, Some(0), "destroy failed:\n{stdout}\n{stderr}");
    assert!(project_containers(&p).is_empty());
    t.docker(&["network", "inspect", &network.name]); // an external network is never removed
}

/// Network settings (ipam, a fixed address), limits, logging, a long-form tmpfs and a
/// service sharing another's network stack.
const NETWORKING: &str = r#"services:
  base:
    image: debian:bookworm-slim
    command: ["sleep", "infinity"]
    networks:
      net: { ipv4_address: "${PREFIX}.10" }
    mem_limit: 64m
    pids_limit: 50
    deploy:
      resources:
        limits: { cpus: "0.5" }
    logging:
      driver: json-file
      options: { max-size: 1m }
    volumes:
      - type: tmpfs
        target: /cache
        tmpfs: { size: 1048576 }
  sidecar:
    image: debian:bookworm-slim
    command: ["sleep", "infinity"]
    network_mode: service:base
networks:
  net:
    ipam:
      config:
        - subnet: "${PREFIX}.0/24"
"#;

#[test]
fn compose_network_settings_limits_and_shared_network_stacks_are_honoured() {
    let Some(t) = DockerTest::start("compose-networking") else { return };
    let p = t.project().to_string();
    // A subnet of its own per run, so parallel runs do not collide.
    let pid = std::process::id();
    let prefix = format!("10.{}.{}", 150 + pid % 100, (pid / 100) % 250);
    let tmp = tempfile::tempdir().expect("a temp dir");
    let dir = tmp.path().join(&p);
    write(&dir, "compose.yaml", &NETWORKING.replace("${PREFIX}", &prefix));

    let (code, stdout, stderr) = scale_in(&dir, &["apply", "--yes"]);
    assert_eq!(code, Some(0), "apply failed:\n{stdout}\n{stderr}");
    assert!(!stderr.contains("not supported yet"), "every key here is honoured:\n{stderr}");

    let network = inspect(&format!("{p}_net"));
    assert_eq!(network["IPAM"]["Config"][0]["Subnet"], format!("{prefix}.0/24"));
    let base = inspect(&format!("{p}-base-1"));
    let endpoint = &base["NetworkSettings"]["Networks"][&format!("{p}_net")];
    assert_eq!(endpoint["IPAMConfig"]["IPv4Address"], format!("{prefix}.10"));
    assert_eq!(endpoint["IPAddress"], format!("{prefix}.10"));
    let host = &base["HostConfig"];
    assert_eq!(host["Memory"], 64 << 20);
    assert_eq!(host["NanoCpus"], 500_000_000);
    assert_eq!(host["PidsLimit"], 50);
    // The engine adds its own default options (daemon.json) beside the file's.
    assert_eq!(host["LogConfig"]["Type"], "json-file");
    assert_eq!(host["LogConfig"]["Config"]["max-size"], "1m");
    assert_eq!(host["Tmpfs"], serde_json::json!({ "/cache": "size=1048576" }));

    let sidecar = format!("{p}-sidecar-1");
    let mode = inspect(&sidecar)["HostConfig"]["NetworkMode"].clone();
    // The engine keeps the name scale gave, or the ID it resolved it to (Docker 20.10 does
    // either, depending on whether the owner was running when the sidecar was created).
    let by_id = format!("container:{}", base["Id"].as_str().expect("an id"));
    let by_name = format!("container:{p}-base-1");
    assert!(mode == by_id.as_str() || mode == by_name.as_str(), "sidecar's network mode: {mode}");
    let mac = |c: &str| t.docker(&["exec", c, "cat", "/sys/class/net/eth0/address"]);
    assert_eq!(mac(&sidecar), mac(&format!("{p}-base-1")), "the sidecar sees base's network interface");

    let (code, stdout, stderr) = scale_in(&dir, &["apply", "--yes"]);
    assert_eq!(code, Some(0), "second apply failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("No changes"), "a second apply changes nothing:\n{stdout}\n{stderr}");
    let (code, stdout, stderr) = scale_in(&dir, &["destroy", "--yes"]);
    assert_eq!(code, Some(0), "destroy failed:\n{stdout}\n{stderr}");
}
