//! Compose projects as engineers write them (`tests/corpus/compose/*/`, written for these
//! tests: WordPress with secrets, nginx + Flask + Postgres with a build target, profiles,
//! extends + env_file, an override file, deploy blocks, include, configs + .env):
//!
//! - each validates and plans with no FILE and no `-p`, from its own directory, against the
//!   in-memory engine, quickly and without a panic;
//! - `scale config`'s document agrees with `docker compose config --format json`, recorded
//!   once per project in `compose-config.json` (Compose 2.26.1; paths written as `<DIR>`), on
//!   image, command, entrypoint, environment, ports, volumes, networks and aliases,
//!   healthcheck, restart, labels, user, working_dir and secrets. No Compose needed here.
//!
//! To re-record a fixture: `docker compose config --format json` in the project's directory,
//! with the directory's absolute path replaced by `<DIR>`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use scale::desired::desired_state;
use scale::diag::Diagnostic;
use scale::engine::fake::FakeEngine;
use scale::model::resolved::document;
use scale::model::{Blueprint, Build, Env, LoadOptions, load_project};
use scale::validate::{project_name, validate};
use serde_json::{Map, Value, json};

/// A hang guard only: a case that takes this long is stuck. How fast inputs are handled
/// (the < 2 s goal for pathological files) is measured by `cargo bench --bench hostile`, not
/// asserted here, where a loaded CI machine would make it flaky.
const LIMIT: Duration = Duration::from_secs(20);

fn projects() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/compose");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 8, "the Compose corpus has only {} projects", dirs.len());
    dirs
}

/// Loads a project as `scale` does with no FILE, from `dir`, with no variables from the
/// shell (the fixtures were recorded with none of theirs set).
fn load(dir: &Path) -> Blueprint {
    let options = LoadOptions {
        files: Vec::new(),
        workdir: dir.to_path_buf(),
        env_files: Vec::new(),
        profiles: Vec::new(),
        env: Env::default(),
    };
    let (bp, problems) = load_project(&options);
    assert!(problems.is_empty(), "{}:\n{problems}", dir.display());
    bp.unwrap_or_else(|| panic!("{}: no blueprint", dir.display()))
}

#[test]
fn every_project_validates_and_plans_from_its_own_directory() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    for dir in projects() {
        let started = Instant::now();
        let bp = load(&dir);
        let problems = validate(&bp, None);
        assert!(problems.is_empty(), "{}: {problems:?}", dir.display());
        let project = project_name(&bp, None).unwrap_or_else(|d| panic!("{}: {d}", dir.display()));
        let hasher = |_: &Build| Ok::<String, Diagnostic>("0123456789abcdef0123".into());
        let desired = desired_state(&bp, &project, &hasher).unwrap_or_else(|d| panic!("{}: {d:?}", dir.display()));
        let engine = FakeEngine::new();
        let observed = runtime.block_on(scale::engine::observe_project(&engine, &project)).expect("observe");
        let plan = scale::plan::plan(&desired, &observed).expect("a plan");
        let containers: usize = bp.services.iter().map(|s| s.replicas.value as usize).sum();
        let rendered = scale::plan::render_json(&plan);
        let created = rendered["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .filter(|a| a["action"] == "create" && a["resource"] == "container")
            .count();
        assert_eq!(created, containers, "{}: one create per container:\n{rendered:#}", dir.display());
        assert!(started.elapsed() < LIMIT, "{} took {:?}", dir.display(), started.elapsed());
    }
}

#[test]
fn project_names_come_from_the_directory_or_the_env_file_as_in_compose() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/compose");
    let name = |d: &str| project_name(&load(&root.join(d)), None).unwrap();
    assert_eq!(name("WordPress-MySQL"), "wordpress-mysql", "the directory's name, normalised");
    assert_eq!(name("monitoring"), "observability", "COMPOSE_PROJECT_NAME from .env");
    assert_eq!(name("redis-app-profiles"), "counter", "`name:` wins over both");
}

#[test]
fn the_binary_validates_each_project_with_no_file_and_no_project_name() {
    for dir in projects() {
        let output = assert_cmd::Command::cargo_bin("scale")
            .expect("the scale binary is built")
            .arg("validate")
            .current_dir(&dir)
            .env_remove("COMPOSE_PROJECT_NAME")
            .env_remove("COMPOSE_PROFILES")
            .env_remove("COMPOSE_FILE")
            .timeout(Duration::from_secs(20))
            .output()
            .expect("run scale");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{}:\n{stdout}\n{stderr}", dir.display());
        assert!(stdout.contains("is valid: project "), "{stdout}");
        assert!(!stderr.contains("panicked") && !stderr.contains("did you mean"), "{stderr}");
    }
}

#[test]
fn swarm_only_and_obsolete_keys_are_warnings_and_engine_options_are_honoured() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/compose");
    let bp = load(&root.join("deploy-limits"));
    let warnings: Vec<String> = bp.warnings.iter().map(|w| w.message.clone()).collect();
    // Honoured since phase 2 (engine options), so none of them is warned about.
    for key in ["services.api.cap_add", "services.api.deploy.resources", "services.api.container_name"] {
        assert!(!warnings.iter().any(|w| w.contains(&format!("`{key}"))), "{key} is honoured:\n{warnings:#?}");
    }
    let api = &bp.service("api").unwrap().compose.options;
    assert_eq!(api.cap_add, ["NET_ADMIN"]);
    assert_eq!((api.mem_limit, api.nano_cpus), (Some(512 << 20), Some(500_000_000)));
    assert!(warnings.iter().any(|w| w.contains("`services.api.deploy.placement` (Swarm only)")), "{warnings:#?}");
    assert!(warnings.iter().any(|w| w.starts_with("`version` is obsolete")), "{warnings:#?}");
    // Honoured, so not warned about: `scale: 3` and `deploy.restart_policy`.
    assert_eq!(bp.service("worker").unwrap().replicas.value, 3);
    assert_eq!(bp.service("api").unwrap().restart, scale::model::RestartPolicy::Always);
    assert!(!warnings.iter().any(|w| w.contains("restart_policy") || w.contains("worker.scale")), "{warnings:#?}");
}

/// The fields both tools normalise, from either document, in one comparable shape.
fn comparable(service: &Value) -> Value {
    let list = |key: &str| service.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
    let pick = |item: &Value, keys: &[&str]| {
        let map: Map<String, Value> =
            keys.iter().map(|k| (k.to_string(), item.get(*k).cloned().unwrap_or(Value::Null))).collect();
        Value::Object(map)
    };
    // Compose prints `KEY: null` for a variable it leaves unset; neither tool passes it on.
    let environment: Map<String, Value> = service
        .get("environment")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let volumes: Vec<Value> = list("volumes")
        .iter()
        .map(|v| {
            // Compose keeps an absolute bind source as written (`/etc/x/`); scale cleans it.
            let source = v.get("source").and_then(Value::as_str).map(|s| s.trim_end_matches('/').to_string());
            json!({ "type": v["type"], "source": source, "target": v["target"], "read_only": v.get("read_only").and_then(Value::as_bool).unwrap_or(false) })
        })
        .collect();
    let networks: Map<String, Value> = service
        .get("networks")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.get("aliases").cloned().unwrap_or(json!([])))).collect())
        .unwrap_or_default();
    // A relative secret target is under /run/secrets/ (Compose prints it as written).
    let secrets: Vec<Value> = list("secrets")
        .iter()
        .map(|s| {
            let source = s["source"].as_str().unwrap_or_default();
            let target = s.get("target").and_then(Value::as_str).unwrap_or(source);
            let target = if target.starts_with('/') { target.to_string() } else { format!("/run/secrets/{target}") };
            json!({ "source": source, "target": target })
        })
        .collect();
    // The engine options both print in the same shape (phase 2 honours them).
    let options: Map<String, Value> = [
        "hostname",
        "domainname",
        "container_name",
        "stop_signal",
        "init",
        "read_only",
        "privileged",
        "tty",
        "stdin_open",
        "cap_add",
        "cap_drop",
        "sysctls",
        "security_opt",
        "dns",
        "dns_search",
        "platform",
        "runtime",
        "network_mode",
        "pid",
        "ipc",
        "group_add",
        "logging",
        "extra_hosts",
    ]
    .iter()
    .map(|k| (k.to_string(), service.get(*k).cloned().unwrap_or(Value::Null)))
    .collect();
    json!({
        "options": options,
        "command": service.get("command").cloned().unwrap_or(Value::Null),
        "entrypoint": service.get("entrypoint").cloned().unwrap_or(Value::Null),
        "environment": environment,
        "ports": list("ports").iter().map(|p| pick(p, &["target", "published", "protocol", "host_ip"])).collect::<Vec<_>>(),
        "volumes": volumes,
        "networks": networks,
        "restart": service.get("restart").cloned().unwrap_or(json!("no")),
        "labels": service.get("labels").cloned().unwrap_or(json!({})),
        "user": service.get("user").cloned().unwrap_or(Value::Null),
        "working_dir": service.get("working_dir").cloned().unwrap_or(Value::Null),
        "secrets": secrets,
    })
}

/// Every difference between Compose's document and scale's, as `service.field` lines.
fn differences(compose: &Value, scale: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let services = |doc: &Value| doc["services"].as_object().cloned().unwrap_or_default();
    let (theirs, ours) = (services(compose), services(scale));
    let names = |m: &Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
    if names(&theirs) != names(&ours) {
        out.push(format!("services: compose {:?}, scale {:?}", names(&theirs), names(&ours)));
    }
    for (name, c) in &theirs {
        let Some(s) = ours.get(name) else { continue };
        // Compose prints an image only when one is written; a healthcheck only with the
        // fields written (scale fills Docker's defaults in).
        if let Some(image) = c.get("image")
            && s.get("image") != Some(image)
        {
            out.push(format!("{name}.image: compose {image}, scale {:?}", s.get("image")));
        }
        if let Some(Value::Object(hc)) = c.get("healthcheck") {
            for (k, v) in hc {
                if s["healthcheck"].get(k) != Some(v) {
                    out.push(format!("{name}.healthcheck.{k}: compose {v}, scale {:?}", s["healthcheck"].get(k)));
                }
            }
        }
        let (a, b) = (comparable(c), comparable(s));
        for (k, v) in a.as_object().expect("an object") {
            if b.get(k) != Some(v) {
                out.push(format!("{name}.{k}: compose {v}, scale {}", b[k]));
            }
        }
    }
    out
}

#[test]
fn config_agrees_with_docker_compose_config_on_the_fields_both_normalise() {
    for dir in projects() {
        let recorded = std::fs::read_to_string(dir.join("compose-config.json"))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .replace("<DIR>", &dir.display().to_string());
        let compose: Value = serde_json::from_str(&recorded).expect("a JSON fixture");
        let bp = load(&dir);
        let ours = document(&bp, &project_name(&bp, None).unwrap());
        assert_eq!(ours["name"], compose["name"], "{}", dir.display());
        let diffs = differences(&compose, &ours);
        assert!(diffs.is_empty(), "{}:\n{}", dir.display(), diffs.join("\n"));
    }
}

#[test]
fn the_comparison_catches_a_difference() {
    let compose = json!({ "services": { "web": { "image": "nginx", "ports": [{ "target": 80, "published": "8080", "protocol": "tcp" }] } } });
    let scale = json!({ "services": { "web": { "image": "nginx", "ports": [{ "target": 80, "published": "8081", "protocol": "tcp" }] } } });
    assert_eq!(differences(&compose, &scale).len(), 1);
}

#[test]
fn the_binary_prints_the_same_document_as_json_and_yaml() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/compose/nginx-flask-postgres");
    let run = |args: &[&str]| {
        let out = assert_cmd::Command::cargo_bin("scale")
            .expect("the scale binary")
            .args(args)
            .current_dir(&dir)
            .timeout(Duration::from_secs(20))
            .output()
            .expect("run scale");
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    let json: Value = serde_json::from_str(&run(&["config", "--output", "json"])).expect("JSON on stdout");
    assert_eq!(json["services"]["backend"]["networks"]["backnet"]["aliases"], json!(["api"]));
    assert_eq!(json["services"]["db"]["secrets"][0]["target"], "/run/secrets/db-password");
    let yaml = run(&["config"]);
    let tree = scale::model::node::parse(&yaml).expect("the YAML parses");
    assert!(tree.get("services").and_then(|s| s.get("backend")).is_some(), "{yaml}");
}
