//! `scale run FILE -- CMD…`: a throw-away environment around one command, for CI. Applies
//! (never asking), runs CMD with the endpoints in its environment, then destroys the project
//! whatever happened: CMD failed, the apply failed, or Ctrl-C. Exits with CMD's status.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use super::interrupt::{self, Interrupt, Wording};
use super::locking::{parse_lock_timeout, release_lock, take_lock};
use super::{Global, Loaded, connect, load_desired};
use crate::engine::Engine;
use crate::engine::docker::DockerEngine;
use crate::exec::ExecOptions;
use crate::observed::Endpoint;
use crate::ops::apply::{Applied, apply};
use crate::ui::Ui;

const APPLY_WORDING: Wording<'static> = Wording {
    stopping: "interrupt: letting running actions finish, then removing the project (Ctrl-C again to skip to removal)",
    resume: "scale destroy --volumes",
};

const DESTROY_WORDING: Wording<'static> = Wording {
    stopping: "interrupt: letting running removals finish (Ctrl-C again to exit now, leaving the rest)",
    resume: "scale destroy --volumes",
};

/// Arguments of `scale run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The blueprint file.
    pub file: PathBuf,
    /// Keep the project's volumes (and their data) when it is removed.
    #[arg(long)]
    pub keep: bool,
    /// How many actions may run at once (an action waiting for its container to turn
    /// healthy holds its place, so this is more than the engine's work at any moment).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// How long a container may take to become ready (healthy, running or completed).
    #[arg(long, default_value = "120s", value_parser = crate::model::duration::parse)]
    pub timeout: Duration,
    /// How long to wait while another scale command changes the project (0: don't wait).
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = parse_lock_timeout)]
    pub lock_timeout: Duration,
    /// Also mark the project to expire after DURATION (as `apply --ttl`), so that `scale reap`
    /// removes it should this run be killed before it could.
    #[arg(long, value_name = "DURATION", value_parser = crate::model::duration::parse)]
    pub ttl: Option<Duration>,
    /// The command to run, after `--`; its environment carries
    /// SCALE_ENDPOINT_<SERVICE>_<PORT>=http://127.0.0.1:NNNN and SCALE_PROJECT.
    #[arg(last = true, required = true, num_args = 1.., value_name = "CMD")]
    pub command: Vec<String>,
}

/// Apply, run, destroy; CMD's exit status (1 when the apply failed, 130 on Ctrl-C).
pub async fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let mut loaded = load_desired(Some(&args.file), global, ui)?;
    if let Some(ttl) = args.ttl {
        crate::expiry::stamp(&mut loaded.desired, std::time::SystemTime::now() + ttl);
    }
    let engine = connect().await?;
    let mut interrupt = Interrupt::listen()?;
    let code = match bring_up(&args, ui, &loaded, &engine, &mut interrupt).await {
        Ok(Up::Ready(endpoints)) => run_command(&args.command, &loaded.project, &endpoints, &mut interrupt).await,
        Ok(Up::Failed(code)) => code,
        // Interrupted while waiting for the lock: someone else is changing a project of that
        // name, and nothing of it is ours to remove.
        Ok(Up::NotStarted(code)) => return Ok(code),
        // Could not take the lock (said already): likewise nothing of ours to remove.
        Err(err) => return Err(err),
    };
    // A Ctrl-C seen during the command must not cancel the removal it asked for.
    let _ = interrupt.pending();
    match tear_down(&args, ui, &loaded.project, &engine, &mut interrupt).await {
        Ok(true) => Ok(code),
        Ok(false) => Ok(if code == 0 { 1 } else { code }),
        Err(err) => {
            eprintln!("error: {err:#}");
            Ok(if code == 0 { 1 } else { code })
        }
    }
}

/// How bringing the project up ended.
enum Up {
    /// Applied: the endpoints for the command.
    Ready(Vec<Endpoint>),
    /// The apply failed or was interrupted: remove what it made, exit with this.
    Failed(u8),
    /// Interrupted while waiting for the lock: nothing was made.
    NotStarted(u8),
}

/// Applies under the project lock. An error from taking the lock (`Reported`, already
/// printed) means nothing was made.
async fn bring_up(
    args: &Args,
    ui: Ui,
    loaded: &Loaded,
    engine: &DockerEngine,
    interrupt: &mut Interrupt,
) -> anyhow::Result<Up> {
    let Some(mut lock) = take_lock(engine, &loaded.project, "run", args.lock_timeout, interrupt).await? else {
        return Ok(Up::NotStarted(130));
    };
    let opts = ExecOptions { parallel: args.parallel as usize, ready_timeout: args.timeout, ..Default::default() };
    let mut hooks = super::apply::TerminalApply { ui, interrupt, opts, wording: APPLY_WORDING, confirm: false };
    let applied = apply(engine, &loaded.desired, &mut hooks).await;
    release_lock(&mut lock).await;
    let applied = match applied {
        Ok(applied) => applied,
        Err(err) => {
            eprintln!("error: {:#}", anyhow::Error::from(err));
            return Ok(Up::Failed(1));
        }
    };
    Ok(match applied {
        Applied::InSync { observed } | Applied::Done { after: Some(observed), .. } => Up::Ready(observed.endpoints()),
        Applied::Done { after: None, .. } => Up::Ready(Vec::new()),
        Applied::Stopped(_) | Applied::ExitNow => Up::Failed(130),
        Applied::Incomplete { report, .. } => {
            let code = if report.interrupted && report.failed.is_empty() { 130 } else { 1 };
            eprintln!("scale run: the apply did not finish; removing the project without running the command");
            Up::Failed(code)
        }
    })
}

/// The environment a command sees: `SCALE_ENDPOINT_<SERVICE>_<PORT>` (the service's name
/// upper-cased, every character that is not a letter or digit made `_`; PORT the container
/// port) for each published TCP port, from the lowest-numbered replica that publishes it.
pub fn endpoint_env(project: &str, endpoints: &[Endpoint]) -> BTreeMap<String, String> {
    let mut by_key: BTreeMap<String, (u32, String)> = BTreeMap::new();
    for e in endpoints {
        let Some(url) = &e.url else { continue };
        let replica = e.container.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(u32::MAX);
        let key = format!("SCALE_ENDPOINT_{}_{}", env_name(&e.service), e.container_port);
        let slot = by_key.entry(key).or_insert((replica, url.clone()));
        if replica < slot.0 {
            *slot = (replica, url.clone());
        }
    }
    let mut env: BTreeMap<String, String> = by_key.into_iter().map(|(k, (_, url))| (k, url)).collect();
    env.insert("SCALE_PROJECT".into(), project.into());
    env
}

/// `shop-db` → `SHOP_DB`.
pub fn env_name(service: &str) -> String {
    service.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

/// Runs the command to its end; its exit status as a shell reports it (127 not found,
/// 128+N killed by signal N). The first Ctrl-C is passed on to it as SIGINT and waits for
/// it to end; the second kills it.
async fn run_command(command: &[String], project: &str, endpoints: &[Endpoint], interrupt: &mut Interrupt) -> u8 {
    let env = endpoint_env(project, endpoints);
    let mut child = match tokio::process::Command::new(&command[0]).args(&command[1..]).envs(&env).spawn() {
        Ok(child) => child,
        Err(err) => {
            eprintln!("scale run: cannot run `{}`: {err}", command[0]);
            return if err.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 };
        }
    };
    let mut interrupted = false;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            _ = interrupt.recv() => {
                if interrupted {
                    eprintln!("interrupted again: stopping `{}`", command[0]);
                    let _ = child.start_kill();
                } else {
                    eprintln!("interrupt: waiting for `{}` to end (Ctrl-C again stops it), then removing the project", command[0]);
                    forward_interrupt(&child);
                }
                interrupted = true;
            }
        }
    };
    match status {
        Ok(status) => exit_code(status),
        Err(err) => {
            eprintln!("scale run: lost track of `{}`: {err}", command[0]);
            1
        }
    }
}

/// Passes Ctrl-C on: a terminal sends it to the whole process group, `kill -INT` or a CI
/// runner's cancel only to us.
fn forward_interrupt(child: &tokio::process::Child) {
    if let Some(pid) = child.id().and_then(|pid| libc::pid_t::try_from(pid).ok()) {
        // SAFETY: kill(2) with a pid we spawned and still wait for (so not yet reaped).
        unsafe {
            libc::kill(pid, libc::SIGINT);
        }
    }
}

fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(1),
        (None, None) => 1,
    }
}

/// Removes everything of the project (volumes too unless `--keep`); whether it is gone.
async fn tear_down(
    args: &Args,
    ui: Ui,
    project: &str,
    engine: &DockerEngine,
    interrupt: &mut Interrupt,
) -> anyhow::Result<bool> {
    let Some(mut lock) = take_lock(engine, project, "run", args.lock_timeout, interrupt).await? else {
        return Ok(false);
    };
    let result = async {
        let observed = engine.observe(project).await.context("cannot read the project's state from the engine")?;
        let plan = crate::plan::destroy_plan(&observed, !args.keep);
        let quiet = Ui { mode: crate::ui::Mode::Plain, quiet: true, color: false };
        let opts = ExecOptions::default();
        match interrupt::execute(engine, &plan, &opts, quiet, interrupt, DESTROY_WORDING).await {
            Some(report) if report.succeeded() => {
                if !ui.is_json() && !ui.quiet {
                    eprintln!("scale run: removed project {project} ({} resource(s))", report.finished.len());
                }
                Ok(true)
            }
            _ => {
                eprintln!("scale run: project {project} was not fully removed; `scale destroy -p {project} --volumes` finishes it");
                Ok(false)
            }
        }
    }
    .await;
    release_lock(&mut lock).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;

    fn endpoint(service: &str, container: &str, port: u16, host_port: u16, protocol: Protocol) -> Endpoint {
        Endpoint {
            service: service.into(),
            container: container.into(),
            container_port: port,
            protocol,
            host_ip: "127.0.0.1".into(),
            host_port,
            url: (protocol == Protocol::Tcp).then(|| format!("http://127.0.0.1:{host_port}")),
        }
    }

    #[test]
    fn names_are_upper_case_with_underscores() {
        assert_eq!(env_name("web"), "WEB");
        assert_eq!(env_name("shop-db"), "SHOP_DB");
        assert_eq!(env_name("api_v2.x"), "API_V2_X");
    }

    #[test]
    fn each_service_port_gets_the_lowest_replicas_url() {
        let env = endpoint_env(
            "ci-1",
            &[
                endpoint("web", "ci-1-web-10", 8000, 40010, Protocol::Tcp),
                endpoint("web", "ci-1-web-2", 8000, 40002, Protocol::Tcp),
                endpoint("load-balancer", "ci-1-load-balancer-1", 80, 8080, Protocol::Tcp),
                endpoint("dns", "ci-1-dns-1", 53, 5353, Protocol::Udp),
            ],
        );
        let expected: BTreeMap<String, String> = [
            ("SCALE_ENDPOINT_LOAD_BALANCER_80", "http://127.0.0.1:8080"),
            ("SCALE_ENDPOINT_WEB_8000", "http://127.0.0.1:40002"),
            ("SCALE_PROJECT", "ci-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(env, expected, "UDP ports have no URL and get no variable");
    }
}
