//! The engine guard: the probe every Docker test calls first, and the per-test project
//! whose resources are removed by label when the guard drops.

use std::process::Command;
use std::sync::{Mutex, OnceLock};

use scale::engine::docker::DockerEngine;

use super::base_image::{BASE_IMAGE_SCRIPT, Ensured, ensure_base_image};
use super::docker::{docker, ids, remove_built_images};
use super::stages::repo_path;

/// The environment variable that turns "no engine" from a failure into a skip.
pub const SKIP_VAR: &str = "SCALE_SKIP_DOCKER_TESTS";

/// The image every engine test runs (coreutils, bash and `sleep`), and the ladder's base image:
/// [`docker_or_skip`] makes it when it is missing, so no registry is needed.
pub const TEST_IMAGE: &str = "debian:bookworm-slim";

/// Whether engine tests can run here. When no engine answers (or the `docker` CLI, which
/// cleanup uses, is missing): panics with the reason, or, with `SCALE_SKIP_DOCKER_TESTS=1`,
/// prints a loud notice naming `test` and returns `false`. When an engine answers, makes sure
/// [`TEST_IMAGE`] exists first ([`ensure_base_image`] with the repository's script, once per
/// test binary); if that fails the test fails with the script's last lines and what to do,
/// whatever `SCALE_SKIP_DOCKER_TESTS` says (the engine is there; the machine needs fixing).
pub fn docker_or_skip(test: &str) -> bool {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    static BASE: OnceLock<Result<(), String>> = OnceLock::new();
    match PROBE.get_or_init(probe_engine) {
        Ok(()) => {}
        Err(why) if std::env::var(SKIP_VAR).is_ok_and(|v| v == "1") => {
            eprintln!("SKIPPED {test}: no Docker engine ({why}); {SKIP_VAR}=1 is set");
            return false;
        }
        Err(why) => panic!(
            "{test} needs a Docker engine, and none answered: {why}\n\
             fix that, or set {SKIP_VAR}=1 to skip the engine tests"
        ),
    }
    let base = BASE.get_or_init(|| {
        let script = repo_path(BASE_IMAGE_SCRIPT);
        ensure_base_image(TEST_IMAGE, &script).map(|made| {
            if let Ensured::Made(output) = made {
                eprintln!("{test}: the base image {TEST_IMAGE} was missing; {BASE_IMAGE_SCRIPT} made it:\n{output}");
            }
        })
    });
    if let Err(why) = base {
        panic!("{test} needs the base image {TEST_IMAGE}: {why}");
    }
    true
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
        // Leftovers of an earlier run that died with the same pid go first.
        DockerTest::with_project(&format!("t-{}-{}", slug.trim_matches('-'), std::process::id()))
    }

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
        // A `scale` the test's time bound killed leaves its project lock, which carries
        // `io.scale.lock` instead of the project label (so no plan ever sees it).
        containers.extend(ids(&["ps", "-aq", "--filter", &format!("label=io.scale.lock={}", self.project)]));
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
