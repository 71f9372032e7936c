//! The `docker` CLI, bounded, and what tests read through it: containers, networks and
//! volumes of a project, `docker inspect`, engine events, built images.

use std::process::{Command, Stdio};
use std::time::Duration;

pub(super) fn ids(args: &[&str]) -> Vec<String> {
    docker(args).map(|out| out.lines().map(str::to_string).filter(|l| !l.is_empty()).collect()).unwrap_or_default()
}

/// Runs the `docker` CLI with a 60 s bound; `Err` carries its stderr.
pub fn docker(args: &[&str]) -> Result<String, String> {
    let mut command = Command::new("docker");
    command.args(args).stdin(Stdio::null());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(command.output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(format!("cannot run docker: {e}")),
        Err(_) => return Err("no answer within 60 s".into()),
    };
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// One container of a project, as `docker ps -a` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub id: String,
    /// `running`, `exited`, `created`, ...
    pub state: String,
    /// The `io.scale.spec-hash` label.
    pub spec_hash: String,
}

/// The project's containers (running or not) by name.
pub fn project_containers(project: &str) -> std::collections::BTreeMap<String, Seen> {
    let out = docker(&[
        "ps",
        "-a",
        "--no-trunc",
        "--filter",
        &format!("label=io.scale.project={project}"),
        "--format",
        "{{.Names}}\t{{.ID}}\t{{.State}}\t{{.Label \"io.scale.spec-hash\"}}",
    ])
    .unwrap_or_else(|e| panic!("docker ps: {e}"));
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 4, "unexpected `docker ps` line: {line:?}");
            (f[0].to_string(), Seen { id: f[1].into(), state: f[2].into(), spec_hash: f[3].into() })
        })
        .collect()
}

/// Names of the project's networks (`kind` = "network") or volumes (`kind` = "volume").
pub fn project_resources(kind: &str, project: &str) -> Vec<String> {
    let filter = format!("label=io.scale.project={project}");
    let mut names: Vec<String> = docker(&[kind, "ls", "-q", "--filter", &filter])
        .unwrap_or_else(|e| panic!("docker {kind} ls: {e}"))
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect();
    if kind == "network" {
        // `network ls -q` prints IDs; names read better in messages.
        names = names
            .iter()
            .map(|id| docker(&["network", "inspect", "--format", "{{.Name}}", id]).unwrap_or_else(|_| id.clone()))
            .collect();
    }
    names.sort();
    names
}

/// The current time as the `seconds.nanoseconds` form `docker events --since/--until` take.
pub fn docker_timestamp() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970");
    format!("{}.{:09}", now.as_secs(), now.subsec_nanos())
}

/// Every engine event about the project's resources between two [`docker_timestamp`]s, as
/// `<type> <action>` (`container exec_create: true`, `container start`, `network connect`).
/// Network and volume events carry no labels, so an event is the project's when it carries
/// its label, or names one of its resources (`<project>-…` containers, `<project>_…` networks
/// and volumes).
pub fn project_events(project: &str, since: &str, until: &str) -> Vec<String> {
    let out = docker(&["events", "--since", since, "--until", until, "--format", "{{json .}}"])
        .unwrap_or_else(|e| panic!("docker events: {e}"));
    let ours = |name: &str| name.starts_with(&format!("{project}-")) || name.starts_with(&format!("{project}_"));
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|line| {
            let event: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("docker events printed {line:?}: {e}"));
            let attrs = &event["Actor"]["Attributes"];
            let attr = |key: &str| attrs[key].as_str().unwrap_or_default();
            let mine = attr("io.scale.project") == project
                || ours(attr("name"))
                || ours(event["Actor"]["ID"].as_str().unwrap_or_default());
            mine.then(|| {
                format!("{} {}", event["Type"].as_str().unwrap_or("?"), event["Action"].as_str().unwrap_or("?").trim())
            })
        })
        .collect()
}

/// Removes the images scale built for `project` (tagged `<project>/<service>:<hash>`),
/// keeping the base images they were built from and their untagged parent layers
/// (`--no-prune`): those layers are the engine's build cache, so the next test that builds
/// the same Dockerfile (every stage test builds the web, PostgreSQL and HAProxy images) reuses
/// its `apt-get install` layer instead of installing again. They are bounded by the number of
/// distinct Dockerfiles, and `docker image prune` removes them.
pub fn remove_built_images(project: &str) {
    let tags =
        docker(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}", "--filter", &format!("reference={project}/*")])
            .unwrap_or_default();
    let tags: Vec<&str> = tags.lines().filter(|l| !l.is_empty()).collect();
    if !tags.is_empty() {
        let mut args = vec!["image", "rm", "-f", "--no-prune"];
        args.extend(tags);
        if let Err(e) = docker(&args) {
            eprintln!("cleanup of {project}'s images: {e}");
        }
    }
}

/// `docker inspect OBJECT` (a container, network or volume), parsed; panics if it fails.
pub fn inspect(object: &str) -> serde_json::Value {
    let out = docker(&["inspect", object]).unwrap_or_else(|e| panic!("docker inspect {object}: {e}"));
    let mut all: Vec<serde_json::Value> =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("docker inspect {object} printed no JSON ({e}): {out}"));
    assert_eq!(all.len(), 1, "docker inspect {object} answered {} objects", all.len());
    all.remove(0)
}

/// The host ports a container publishes: `(container port, host ip, host port)` for every
/// binding in `NetworkSettings.Ports` (a port exposed but not published has none).
pub fn published_bindings(container: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    if let Some(ports) = container["NetworkSettings"]["Ports"].as_object() {
        for (port, bindings) in ports {
            for b in bindings.as_array().into_iter().flatten() {
                out.push((
                    port.clone(),
                    b["HostIp"].as_str().unwrap_or_default().to_string(),
                    b["HostPort"].as_str().unwrap_or_default().to_string(),
                ));
            }
        }
    }
    out.sort();
    out
}
