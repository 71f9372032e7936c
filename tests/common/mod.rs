//! Helpers for integration tests that drive a real Docker engine.
//!
//! Rules every such test follows:
//! - it runs under its own project name, `t-<test>-<pid>`, so tests can run in parallel and
//!   next to a user's own projects;
//! - everything it creates carries `io.scale.project=<project>` (scale does that itself;
//!   anything made by hand is registered with the guard);
//! - it cleans up by label when the [`DockerTest`] guard drops, even if the test panicked;
//! - it never sends traffic to container IPs from the host;
//! - with no engine answering it FAILS, with a message saying how to fix or skip: set
//!   `SCALE_SKIP_DOCKER_TESTS=1` to skip these tests (loudly) on a machine without Docker.
//!
//! ```ignore
//! mod common;
//!
//! #[tokio::test]
//! async fn something() {
//!     let Some(t) = common::DockerTest::start("something") else { return };
//!     let engine = t.engine().await;
//!     // ... create things labelled with t.project() ...
//! } // containers, networks, volumes and images labelled t.project() are removed here
//! ```
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use scale::engine::docker::DockerEngine;

/// The environment variable that turns "no engine" from a failure into a skip.
pub const SKIP_VAR: &str = "SCALE_SKIP_DOCKER_TESTS";

/// The image every engine test runs: present locally (no registry is needed), with
/// coreutils, bash and `sleep`.
pub const TEST_IMAGE: &str = "debian:bookworm-slim";

/// Whether engine tests can run here. When no engine answers (or the `docker` CLI, which
/// cleanup uses, is missing): panics with the reason, or, with `SCALE_SKIP_DOCKER_TESTS=1`,
/// prints a loud notice naming `test` and returns `false`.
pub fn docker_or_skip(test: &str) -> bool {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    let probe = PROBE.get_or_init(probe_engine);
    match probe {
        Ok(()) => true,
        Err(why) if std::env::var(SKIP_VAR).is_ok_and(|v| v == "1") => {
            eprintln!("SKIPPED {test}: no Docker engine ({why}); {SKIP_VAR}=1 is set");
            false
        }
        Err(why) => panic!(
            "{test} needs a Docker engine, and none answered: {why}\n\
             fix that, or set {SKIP_VAR}=1 to skip the engine tests"
        ),
    }
}

/// Connects with scale's own client (what the tests exercise), then checks the `docker` CLI
/// the cleanup guard shells out to.
fn probe_engine() -> Result<(), String> {
    // A thread of its own: callers are usually inside a tokio runtime already.
    let connected = std::thread::spawn(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        rt.block_on(DockerEngine::connect()).map(|_| ()).map_err(|e| match e.hint() {
            Some(hint) => format!("{e} (hint: {hint})"),
            None => e.to_string(),
        })
    })
    .join()
    .map_err(|_| "the engine probe panicked".to_string())?;
    connected?;
    let cli = Command::new("docker").args(["version", "--format", "{{.Server.APIVersion}}"]).output();
    match cli {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!("`docker version` failed: {}", String::from_utf8_lossy(&out.stderr).trim())),
        Err(e) => Err(format!("the `docker` CLI (used for test cleanup) cannot run: {e}")),
    }
}

/// A test's project and the guard that removes everything labelled with it on drop.
pub struct DockerTest {
    project: String,
    extra_containers: Mutex<Vec<String>>,
    extra_volumes: Mutex<Vec<String>>,
}

impl DockerTest {
    /// Checks the engine ([`docker_or_skip`]) and opens project `t-<test>-<pid>`; `None`
    /// means "skip this test".
    pub fn start(test: &str) -> Option<DockerTest> {
        docker_or_skip(test).then(|| DockerTest::new(test))
    }

    /// Opens project `t-<test>-<pid>` without probing the engine. `test` is lower-cased and
    /// anything outside `[a-z0-9-]` becomes `-`, so the name is a valid project name.
    pub fn new(test: &str) -> DockerTest {
        let slug: String =
            test.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
        let project = format!("t-{}-{}", slug.trim_matches('-'), std::process::id());
        let guard =
            DockerTest { project, extra_containers: Mutex::new(Vec::new()), extra_volumes: Mutex::new(Vec::new()) };
        // Leftovers of an earlier run that died with the same pid.
        guard.cleanup();
        guard
    }

    /// The project name every resource of this test is labelled with.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The `io.scale.project=<project>` label filter.
    pub fn label(&self) -> String {
        format!("io.scale.project={}", self.project)
    }

    /// A connected engine (panics with the engine's message if connecting fails).
    pub async fn engine(&self) -> DockerEngine {
        DockerEngine::connect().await.unwrap_or_else(|e| panic!("connecting to the engine: {e}"))
    }

    /// Registers a container created without the project label (by `docker run` in the
    /// test), to be removed by name on drop.
    pub fn remove_on_drop(&self, container_name: &str) {
        self.extra_containers.lock().unwrap_or_else(|e| e.into_inner()).push(container_name.to_string());
    }

    /// Registers a volume the engine made without the project label (an anonymous volume,
    /// which removing its container with `v=false` leaves behind), to be removed on drop.
    pub fn remove_volume_on_drop(&self, volume_name: &str) {
        self.extra_volumes.lock().unwrap_or_else(|e| e.into_inner()).push(volume_name.to_string());
    }

    /// Runs `docker ARGS`, returning trimmed stdout; panics with stderr on failure.
    pub fn docker(&self, args: &[&str]) -> String {
        docker(args).unwrap_or_else(|e| panic!("docker {}: {e}", args.join(" ")))
    }

    /// Whether a container of that name (or ID) exists, whoever owns it.
    pub fn container_exists(&self, name: &str) -> bool {
        docker(&["container", "inspect", "--format", "{{.Id}}", name]).is_ok()
    }

    fn cleanup(&self) {
        let label = self.label();
        let extra = std::mem::take(&mut *self.extra_containers.lock().unwrap_or_else(|e| e.into_inner()));
        let mut containers = ids(&["ps", "-aq", "--filter", &format!("label={label}")]);
        containers.extend(extra);
        if !containers.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(containers.iter().map(String::as_str));
            let _ = docker(&args);
        }
        for (list, rm) in [
            (vec!["network", "ls", "-q"], vec!["network", "rm"]),
            (vec!["volume", "ls", "-q"], vec!["volume", "rm", "-f"]),
            (vec!["image", "ls", "-q"], vec!["image", "rm", "-f"]),
        ] {
            let filter = format!("label={label}");
            let mut list = list;
            list.extend(["--filter", filter.as_str()]);
            let mut found = ids(&list);
            if rm[0] == "volume" {
                found.extend(std::mem::take(&mut *self.extra_volumes.lock().unwrap_or_else(|e| e.into_inner())));
            }
            found.sort();
            found.dedup();
            if !found.is_empty() {
                let mut args = rm;
                args.extend(found.iter().map(String::as_str));
                if let Err(e) = docker(&args) {
                    eprintln!("cleanup of {}: docker {}: {e}", self.project, args.join(" "));
                }
            }
        }
    }
}

impl Drop for DockerTest {
    fn drop(&mut self) {
        self.cleanup();
    }
}

fn ids(args: &[&str]) -> Vec<String> {
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

// ------------------------------------------------------------------------------------------
// Driving the built `scale` binary (tests/cli.rs, tests/apply_docker.rs, tests/stage01.rs).

/// What one run of the `scale` binary did.
#[derive(Debug)]
pub struct ScaleRun {
    /// The command line, for messages.
    pub args: String,
    /// The exit code (`None`: killed by a signal or the 5-minute bound).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl ScaleRun {
    /// Panics, showing both streams, unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &ScaleRun {
        assert_eq!(
            self.code,
            Some(code),
            "`scale {}` exited with {:?}, expected {code}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.args,
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless the exit code is 0.
    #[track_caller]
    pub fn success(&self) -> &ScaleRun {
        self.expect_code(0)
    }

    /// Stdout parsed as one JSON document.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("`scale {}` printed no JSON document ({e}):\n{}", self.args, self.stdout))
    }

    /// Stdout parsed as JSON lines.
    #[track_caller]
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("`scale {}` printed a line that is not JSON ({e}): {l}", self.args))
            })
            .collect()
    }
}

/// Runs the built `scale` binary with `args` (stdin closed, `NO_COLOR=1`, at most 5 minutes).
pub fn scale(args: &[&str]) -> ScaleRun {
    scale_env(args, &[])
}

/// [`scale`] with extra environment variables.
pub fn scale_env(args: &[&str], env: &[(&str, &str)]) -> ScaleRun {
    let mut command = assert_cmd::Command::cargo_bin("scale").expect("the scale binary is built");
    command.args(args).env("NO_COLOR", "1").timeout(Duration::from_secs(300));
    for (key, value) in env {
        command.env(key, value);
    }
    let started = std::time::Instant::now();
    let out = command.output().unwrap_or_else(|e| panic!("running `scale {}`: {e}", args.join(" ")));
    ScaleRun {
        args: args.join(" "),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// The built `scale` binary as a plain [`Command`], for tests that spawn it, change its
/// environment or wrap it: `ARGS --no-color`, stdin closed, stdout and stderr piped. Unlike
/// [`scale`], no time bound.
pub fn scale_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_scale"));
    command.args(args).arg("--no-color").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

/// Runs `command` to the end: its exit code (`None`: killed by a signal), and its stdout
/// followed by its stderr.
pub fn code_and_output(mut command: Command) -> (Option<i32>, String) {
    let out = command.output().expect("run scale");
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), all)
}

/// [`scale_command`] run to the end: the exit code, and stdout followed by stderr.
pub fn scale_output(args: &[&str]) -> (Option<i32>, String) {
    code_and_output(scale_command(args))
}

/// Writes `yaml` to `dir/blueprint.yaml` and returns its path as a string.
pub fn write_blueprint(dir: &std::path::Path, yaml: &str) -> String {
    let path = dir.join("blueprint.yaml");
    std::fs::write(&path, yaml).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path.to_str().expect("temp paths are UTF-8").to_string()
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
/// keeping the base images they were built from.
pub fn remove_built_images(project: &str) {
    let tags =
        docker(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}", "--filter", &format!("reference={project}/*")])
            .unwrap_or_default();
    let tags: Vec<&str> = tags.lines().filter(|l| !l.is_empty()).collect();
    if !tags.is_empty() {
        let mut args = vec!["image", "rm", "-f"];
        args.extend(tags);
        if let Err(e) = docker(&args) {
            eprintln!("cleanup of {project}'s images: {e}");
        }
    }
}

/// A parsed HTTP/1.0 response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.0 request to `127.0.0.1:port` (connect, read and write bounded at 10 s).
pub fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> std::io::Result<HttpResponse> {
    use std::io::{Read, Write};
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or("");
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if !body.is_empty() || method == "POST" {
        request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{why}: {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("no status line"))?;
    let status =
        status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("no status code"))?;
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    Ok(HttpResponse { status, headers, body: body.to_string() })
}

/// GETs `path` until it answers `200` (at most `attempts` tries, 500 ms apart); panics with
/// the last answer otherwise.
pub fn http_get_ok(port: u16, path: &str, attempts: u32) -> HttpResponse {
    let mut last = String::new();
    for attempt in 0..attempts {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(500));
        }
        match http(port, "GET", path, None) {
            Ok(r) if r.status == 200 => return r,
            Ok(r) => last = format!("status {}: {}", r.status, r.body),
            Err(e) => last = e.to_string(),
        }
    }
    panic!("GET 127.0.0.1:{port}{path} did not answer 200 in {attempts} attempts; last: {last}")
}

// ------------------------------------------------------------------------------------------
// Exact project names, environment-controlled `scale` runs, `docker inspect`, and a client
// loop that keeps requesting while something changes underneath (tests/ladder.rs).

impl DockerTest {
    /// Opens exactly `project` (no `t-…-<pid>` shaping; the caller makes it unique) without
    /// probing the engine, after removing leftovers labelled with it.
    pub fn with_project(project: &str) -> DockerTest {
        let guard = DockerTest {
            project: project.to_string(),
            extra_containers: Mutex::new(Vec::new()),
            extra_volumes: Mutex::new(Vec::new()),
        };
        guard.cleanup();
        guard
    }
}

/// The variables the stage files interpolate; [`scale_isolated`] removes them from the
/// child's environment so the test's own shell cannot change what a stage means.
pub const STAGE_VARS: &[&str] = &["APP_VERSION", "WEB_REPLICAS", "DB_PASSWORD"];

/// [`scale_env`], but with [`STAGE_VARS`] removed from the inherited environment first, so
/// only `env` sets them.
pub fn scale_isolated(args: &[&str], env: &[(&str, &str)]) -> ScaleRun {
    let mut command = assert_cmd::Command::cargo_bin("scale").expect("the scale binary is built");
    command.args(args).env("NO_COLOR", "1").timeout(Duration::from_secs(300));
    for key in STAGE_VARS {
        command.env_remove(key);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let started = std::time::Instant::now();
    let out = command.output().unwrap_or_else(|e| panic!("running `scale {}`: {e}", args.join(" ")));
    ScaleRun {
        args: args.join(" "),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
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

/// One request of a [`ClientLoop`].
#[derive(Debug, Clone)]
pub struct Sample {
    /// When the answer (or the error) came.
    pub at: std::time::Instant,
    /// `None`: no HTTP answer at all (`error` says why).
    pub status: Option<u16>,
    /// How long the request took.
    pub took: Duration,
    pub version: Option<String>,
    pub served_by: Option<String>,
    pub db_role: Option<String>,
    pub error: Option<String>,
}

impl Sample {
    /// Anything but a `200`.
    pub fn failed(&self) -> bool {
        self.status != Some(200)
    }
}

/// Why a [`ClientLoop`] or [`WriteLoop`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopEnd {
    /// [`ClientLoop::stop`] was called.
    Stopped,
    /// It sent its maximum number of requests.
    Count,
    /// Its deadline passed.
    Deadline,
}

/// What a [`ClientLoop`] saw.
#[derive(Debug, Clone)]
pub struct LoopReport {
    pub samples: Vec<Sample>,
    pub ended: LoopEnd,
}

impl LoopReport {
    /// The requests that did not answer `200`.
    pub fn failures(&self) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.failed()).collect()
    }

    /// Every `X-App-Version` seen on a `200`.
    pub fn versions(&self) -> std::collections::BTreeSet<String> {
        self.samples.iter().filter(|s| !s.failed()).filter_map(|s| s.version.clone()).collect()
    }

    /// The answers that came after `instant`.
    pub fn after(&self, instant: std::time::Instant) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.at > instant).collect()
    }

    /// The slowest request, and the median.
    pub fn latency(&self) -> (Duration, Duration) {
        let mut took: Vec<Duration> = self.samples.iter().map(|s| s.took).collect();
        took.sort();
        (took.last().copied().unwrap_or_default(), took.get(took.len() / 2).copied().unwrap_or_default())
    }
}

/// A background thread that GETs `127.0.0.1:port` + `path` over and over, `pause` apart,
/// until [`ClientLoop::stop`], `max_requests` or `deadline`, whichever comes first, recording
/// every answer. Dropping it without `stop` stops it too.
pub struct ClientLoop(BoundedLoop<Sample>);

impl ClientLoop {
    pub fn start(port: u16, path: &str, pause: Duration, max_requests: usize, deadline: Duration) -> ClientLoop {
        let path = path.to_string();
        ClientLoop(BoundedLoop::start(pause, max_requests, deadline, move |_| {
            let started = std::time::Instant::now();
            match http(port, "GET", &path, None) {
                Ok(r) => Sample {
                    at: std::time::Instant::now(),
                    status: Some(r.status),
                    took: started.elapsed(),
                    version: r.header("X-App-Version").map(str::to_string),
                    served_by: r.header("X-Served-By").map(str::to_string),
                    db_role: r.header("X-Db-Role").map(str::to_string),
                    error: (r.status != 200).then(|| r.body.clone()),
                },
                Err(e) => Sample {
                    at: std::time::Instant::now(),
                    status: None,
                    took: started.elapsed(),
                    version: None,
                    served_by: None,
                    db_role: None,
                    error: Some(e.to_string()),
                },
            }
        }))
    }

    /// How many answers came after `instant` so far.
    pub fn answers_after(&self, instant: std::time::Instant) -> usize {
        self.0.records().iter().filter(|s| s.at > instant).count()
    }

    /// Whether the loop is still sending (not stopped, out of requests or past its deadline).
    pub fn running(&self) -> bool {
        self.0.running()
    }

    /// Stops the loop and returns what it saw.
    pub fn stop(self) -> LoopReport {
        let (samples, ended) = self.0.finish("the client loop");
        LoopReport { samples, ended }
    }
}

/// The thread behind [`ClientLoop`] and [`WriteLoop`]: calls `attempt(n)` for n = 0, 1, …,
/// `pause` apart, recording each result, until stopped, `max_attempts` or `deadline`,
/// whichever comes first. Dropping it stops it.
pub struct BoundedLoop<S> {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    records: std::sync::Arc<Mutex<Vec<S>>>,
    handle: Option<std::thread::JoinHandle<LoopEnd>>,
}

impl<S: Send + 'static> BoundedLoop<S> {
    pub fn start(
        pause: Duration,
        max_attempts: usize,
        deadline: Duration,
        mut attempt: impl FnMut(usize) -> S + Send + 'static,
    ) -> BoundedLoop<S> {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let records = std::sync::Arc::new(Mutex::new(Vec::new()));
        let shared = records.clone();
        let handle = std::thread::spawn(move || {
            let until = std::time::Instant::now() + deadline;
            let mut sent = 0;
            loop {
                if flag.load(Ordering::SeqCst) {
                    break LoopEnd::Stopped;
                }
                if sent >= max_attempts {
                    break LoopEnd::Count;
                }
                if std::time::Instant::now() >= until {
                    break LoopEnd::Deadline;
                }
                let record = attempt(sent);
                sent += 1;
                shared.lock().unwrap_or_else(|e| e.into_inner()).push(record);
                std::thread::sleep(pause);
            }
        });
        BoundedLoop { stop, records, handle: Some(handle) }
    }

    /// What it recorded so far.
    pub fn records(&self) -> std::sync::MutexGuard<'_, Vec<S>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn running(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Stops the loop; everything it recorded, and why it ended.
    pub fn finish(mut self, what: &str) -> (Vec<S>, LoopEnd) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let ended = self.handle.take().expect("stopped once").join().unwrap_or_else(|_| panic!("{what} panicked"));
        (std::mem::take(&mut *self.records()), ended)
    }
}

impl<S> Drop for BoundedLoop<S> {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

// ------------------------------------------------------------------------------------------
// Long-running `scale` children (`scale watch`) and a write loop (tests/stories.rs).

/// Which stream of a [`ScaleChild`] a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line a [`ScaleChild`] printed, and when the test read it.
#[derive(Debug, Clone)]
pub struct Line {
    pub at: std::time::Instant,
    pub stream: Stream,
    pub text: String,
}

/// The built `scale` binary running in the background (e.g. `scale watch`), stdin closed,
/// `NO_COLOR=1`, [`STAGE_VARS`] removed from its environment, each output line recorded with
/// the instant it arrived (stdout is line-buffered, so that is when it was printed). Dropping
/// it SIGKILLs the process if it is still running.
pub struct ScaleChild {
    pub args: String,
    /// When it was started (the transcript's times count from here).
    pub spawned: std::time::Instant,
    child: std::process::Child,
    lines: std::sync::Arc<Mutex<Vec<Line>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl ScaleChild {
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> ScaleChild {
        let mut command = Command::new(env!("CARGO_BIN_EXE_scale"));
        command.args(args).env("NO_COLOR", "1").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for key in STAGE_VARS {
            command.env_remove(key);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let spawned = std::time::Instant::now();
        let mut child = command.spawn().unwrap_or_else(|e| panic!("spawning `scale {}`: {e}", args.join(" ")));
        let lines = std::sync::Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let stdout: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().expect("piped stdout"));
        let stderr: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().expect("piped stderr"));
        for (stream, pipe) in [(Stream::Stdout, stdout), (Stream::Stderr, stderr)] {
            let lines = lines.clone();
            readers.push(std::thread::spawn(move || {
                use std::io::BufRead;
                for text in std::io::BufReader::new(pipe).lines() {
                    let Ok(text) = text else { break };
                    let line = Line { at: std::time::Instant::now(), stream, text };
                    lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            }));
        }
        ScaleChild { args: args.join(" "), spawned, child, lines, readers }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line so far, both streams, in arrival order.
    pub fn lines(&self) -> Vec<Line> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Everything printed so far, for failure messages: each line with the seconds since the
    /// start at which it arrived (stderr lines marked `!`).
    pub fn transcript(&self) -> String {
        self.lines()
            .iter()
            .map(|l| {
                let secs = l.at.duration_since(self.spawned).as_secs_f64();
                format!("{secs:>7.2}s {}{}\n", if l.stream == Stream::Stderr { "! " } else { "" }, l.text)
            })
            .collect()
    }

    /// The first stdout line that arrived at or after `since` and satisfies `pred`.
    pub fn find_stdout(&self, since: std::time::Instant, pred: impl Fn(&str) -> bool) -> Option<Line> {
        self.lines().into_iter().find(|l| l.stream == Stream::Stdout && l.at >= since && pred(&l.text))
    }

    /// [`ScaleChild::find_stdout`], waiting at most `limit` for such a line.
    pub fn wait_stdout(&self, since: std::time::Instant, limit: Duration, pred: impl Fn(&str) -> bool) -> Option<Line> {
        let until = std::time::Instant::now() + limit;
        loop {
            if let Some(line) = self.find_stdout(since, &pred) {
                return Some(line);
            }
            if std::time::Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGINT (what Ctrl-C sends) with `kill -INT <pid>`.
    pub fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.pid().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("kill -INT {}: {e}", self.pid()));
        assert!(status.success(), "kill -INT {} failed: {status}", self.pid());
    }

    /// Waits at most `limit` for the process to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let until = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait on the scale child") {
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return Some(status);
            }
            if std::time::Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ScaleChild {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One POST of a [`WriteLoop`].
#[derive(Debug, Clone)]
pub struct WriteSample {
    /// The id the POST asked for (every attempt uses a new one).
    pub id: u64,
    pub started: std::time::Instant,
    pub at: std::time::Instant,
    /// `None`: no HTTP answer at all (`error` says why).
    pub status: Option<u16>,
    pub db_node: Option<String>,
    pub db_role: Option<String>,
    /// The stored document on a `201`, else the error body.
    pub body: String,
    pub error: Option<String>,
}

impl WriteSample {
    /// Answered `201 Created`: the write was acknowledged.
    pub fn acknowledged(&self) -> bool {
        self.status == Some(201)
    }
}

/// What a [`WriteLoop`] saw.
#[derive(Debug, Clone)]
pub struct WriteReport {
    pub writes: Vec<WriteSample>,
    pub ended: LoopEnd,
}

impl WriteReport {
    pub fn acknowledged(&self) -> Vec<&WriteSample> {
        self.writes.iter().filter(|w| w.acknowledged()).collect()
    }
}

/// The body a [`WriteLoop`] POSTs for `id`.
pub fn write_body(id: u64) -> String {
    format!(r#"{{"id":{id},"firstName":"Write","lastName":"No{id}"}}"#)
}

/// A background thread that POSTs `/users` to `127.0.0.1:port` with ids `first_id`,
/// `first_id + 1`, … (one new id per attempt, so a write whose answer was lost never comes
/// back as a conflict), `pause` apart, until [`WriteLoop::stop`], `max_requests` or
/// `deadline`. Dropping it without `stop` stops it too.
pub struct WriteLoop(BoundedLoop<WriteSample>);

impl WriteLoop {
    pub fn start(port: u16, first_id: u64, pause: Duration, max_requests: usize, deadline: Duration) -> WriteLoop {
        WriteLoop(BoundedLoop::start(pause, max_requests, deadline, move |n| {
            let id = first_id + n as u64;
            let started = std::time::Instant::now();
            match http(port, "POST", "/users", Some(&write_body(id))) {
                Ok(r) => WriteSample {
                    id,
                    started,
                    at: std::time::Instant::now(),
                    status: Some(r.status),
                    db_node: r.header("X-Db-Node").map(str::to_string),
                    db_role: r.header("X-Db-Role").map(str::to_string),
                    error: (r.status != 201).then(|| r.body.clone()),
                    body: r.body,
                },
                Err(e) => WriteSample {
                    id,
                    started,
                    at: std::time::Instant::now(),
                    status: None,
                    db_node: None,
                    db_role: None,
                    body: String::new(),
                    error: Some(e.to_string()),
                },
            }
        }))
    }

    /// How many writes were acknowledged after `instant` so far.
    pub fn acknowledged_after(&self, instant: std::time::Instant) -> usize {
        self.0.records().iter().filter(|w| w.acknowledged() && w.at > instant).count()
    }

    /// Whether the loop is still sending.
    pub fn running(&self) -> bool {
        self.0.running()
    }

    /// Stops the loop and returns what it saw.
    pub fn stop(self) -> WriteReport {
        let (writes, ended) = self.0.finish("the write loop");
        WriteReport { writes, ended }
    }
}

// ------------------------------------------------------------------------------------------
// The real stage files, PostgreSQL and polling (tests/ladder.rs, tests/stories.rs).

/// The stage files, in ladder order.
pub const STAGES: [&str; 4] =
    ["01-single-server.yaml", "02-web-and-data-tiers.yaml", "03-load-balancer.yaml", "04-database-replication.yaml"];

/// `path` inside the repository.
pub fn repo_path(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Copies stage `n` (1-based, see [`STAGES`]) into `dir` with the random public port
/// (`"8080:8000"` → `"8000"`, `"8080:80"` → `"80"`), absolute build contexts and the `extra`
/// edits (each must occur exactly once), checking that exactly those lines changed, each
/// only by its edit, and that no fixed port or relative build context is left outside
/// comments. Returns the copy's path.
pub fn stage_copy(dir: &std::path::Path, n: usize, extra: &[(&str, &str)]) -> String {
    let name = STAGES[n - 1];
    let original = std::fs::read_to_string(repo_path(&format!("blueprints/{name}")))
        .unwrap_or_else(|e| panic!("reading blueprints/{name}: {e}"));
    let images = repo_path("blueprints/images");
    let images = images.to_str().expect("UTF-8 repository path");
    // (from, to, how many times stage n must contain it)
    let web_port = if n <= 2 { 1 } else { 0 };
    let lb_port = if n >= 3 { 1 } else { 0 };
    let mut edits = vec![
        (r#"ports: ["8080:8000"]"#.to_string(), r#"ports: ["8000"]"#.to_string(), web_port),
        (r#"ports: ["8080:80"]"#.to_string(), r#"ports: ["80"]"#.to_string(), lb_port),
        ("build: images/web\n".to_string(), format!("build: {images}/web\n"), 1),
        ("build: images/postgres\n".to_string(), format!("build: {images}/postgres\n"), usize::from(n >= 2)),
        ("build: images/haproxy\n".to_string(), format!("build: {images}/haproxy\n"), usize::from(n >= 3)),
    ];
    edits.extend(extra.iter().map(|(from, to)| (from.to_string(), to.to_string(), 1)));
    let mut yaml = original.clone();
    let mut changed = 0;
    for (from, to, count) in &edits {
        assert_eq!(
            original.matches(from.as_str()).count(),
            *count,
            "blueprints/{name} should contain {from:?} exactly {count} time(s):\n{original}"
        );
        yaml = yaml.replace(from.as_str(), to);
        changed += count;
    }
    // Exactly the intended lines differ, each only by the intended text.
    let before: Vec<&str> = original.lines().collect();
    let after: Vec<&str> = yaml.lines().collect();
    assert_eq!(before.len(), after.len(), "the rewrite of {name} added or removed lines");
    let differing: Vec<(&&str, &&str)> = before.iter().zip(&after).filter(|(a, b)| a != b).collect();
    assert_eq!(differing.len(), changed, "the rewrite of {name} changed other lines: {differing:#?}");
    for (a, b) in &differing {
        assert!(
            edits.iter().any(|(from, to, _)| a.replace(from.trim_end(), to.trim_end()) == **b),
            "unexpected change in {name}: {a:?} → {b:?}"
        );
    }
    // No fixed port and no relative build context is left outside comments.
    for line in after.iter().filter(|l| !l.trim_start().starts_with('#')) {
        assert!(!line.contains("8080"), "{name} still publishes a fixed port: {line}");
        assert!(!line.contains("build: images/"), "{name} still has a relative build context: {line}");
    }
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path.to_str().expect("UTF-8 temp path").to_string()
}

/// The guard of a project whose images scale builds: on drop, first everything labelled with
/// the project (containers, networks, volumes), then the images scale built for it
/// (`<project>/*`).
pub struct BuildGuard(pub Option<DockerTest>);

impl Drop for BuildGuard {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            let project = t.project().to_string();
            drop(t);
            remove_built_images(&project);
        }
    }
}

/// GET `127.0.0.1:port` + `path`; panics if no HTTP answer comes.
pub fn http_get(port: u16, path: &str) -> HttpResponse {
    http(port, "GET", path, None).unwrap_or_else(|e| panic!("GET 127.0.0.1:{port}{path}: {e}"))
}

/// The header `name` of `r`; panics if it has none.
pub fn header<'a>(r: &'a HttpResponse, name: &str) -> &'a str {
    r.header(name).unwrap_or_else(|| panic!("no {name} header in {r:?}"))
}

impl LoopReport {
    /// One line for the log: requests, failures, (with `versions`) the versions seen, the
    /// database roles that answered, latency.
    pub fn describe(&self, versions: bool) -> String {
        let (max, median) = self.latency();
        let mut by_role = std::collections::BTreeMap::new();
        for s in &self.samples {
            *by_role.entry(s.db_role.clone().unwrap_or_default()).or_insert(0) += 1;
        }
        let versions = if versions { format!(", versions {:?}", self.versions()) } else { String::new() };
        format!(
            "{} requests, {} failed{versions}, roles {by_role:?}, latency median {median:?} max {max:?}",
            self.samples.len(),
            self.failures().len()
        )
    }
}

/// Runs `sql` with psql as the superuser inside `container` (local socket, in database `db`
/// or the default one): the trimmed output, or why it failed.
pub fn psql(container: &str, db: Option<&str>, sql: &str) -> Result<String, String> {
    let mut args = vec!["exec", container, "psql", "-U", "postgres"];
    if let Some(db) = db {
        args.extend(["-d", db]);
    }
    args.extend(["-tAc", sql]);
    docker(&args)
}

/// [`psql`], panicking if it fails.
pub fn psql_ok(container: &str, db: Option<&str>, sql: &str) -> String {
    psql(container, db, sql).unwrap_or_else(|e| panic!("psql in {container}: {sql}: {e}"))
}

/// Polls `check` every 250 ms until it returns `Ok`, at most `limit`; panics with `what`
/// and the last observation otherwise. An `Ok` from a check that started in time counts.
pub fn poll<T>(limit: Duration, what: &str, check: impl FnMut() -> Result<T, String>) -> T {
    poll_from(std::time::Instant::now(), limit, what, true, check).0
}

/// Polls `check` (about every 250 ms) until it returns `Ok`, at most until `limit` after
/// `from`; returns the value and when it held, measured from `from`. Panics with `what` and
/// the last observation otherwise, and also when the `Ok` came only after the limit.
pub fn poll_timed<T>(
    from: std::time::Instant,
    limit: Duration,
    what: &str,
    check: impl FnMut() -> Result<T, String>,
) -> (T, Duration) {
    poll_from(from, limit, what, false, check)
}

fn poll_from<T>(
    from: std::time::Instant,
    limit: Duration,
    what: &str,
    late_ok: bool,
    mut check: impl FnMut() -> Result<T, String>,
) -> (T, Duration) {
    loop {
        match check() {
            Ok(v) => {
                let took = from.elapsed();
                assert!(late_ok || took <= limit, "{what}: held only after {took:?} (limit {limit:?})");
                return (v, took);
            }
            Err(last) if from.elapsed() >= limit => panic!("{what}: not within {limit:?}; last: {last}"),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}
