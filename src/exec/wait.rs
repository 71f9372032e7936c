//! Waiting for a container to be ready: the wait strategy is data (`Readiness`), this is how
//! it is checked.

use std::time::{Duration, Instant};

use crate::desired::Readiness;
use crate::engine::{ContainerStatus, Engine, HealthProgress};
use crate::observed::{Health, RunState};

/// How a wait ended badly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitError {
    Exited(Option<i64>, Option<String>),
    Unhealthy,
    Restarting(Option<i64>),
    TimedOut(Duration, String),
    Engine(String),
}

impl std::fmt::Display for WaitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitError::Exited(code, error) => {
                match code {
                    Some(c) => write!(f, "the container exited with code {c}")?,
                    None => write!(f, "the container exited")?,
                }
                if let Some(e) = error {
                    write!(f, " ({e})")?;
                }
                Ok(())
            }
            WaitError::Unhealthy => write!(f, "the healthcheck failed: the container is unhealthy"),
            WaitError::Restarting(code) => match code {
                Some(c) => write!(f, "the container keeps restarting (last exit code {c})"),
                None => write!(f, "the container keeps restarting"),
            },
            WaitError::TimedOut(after, state) => {
                write!(f, "not ready after {}s (still {state})", after.as_secs())
            }
            WaitError::Engine(e) => write!(f, "{e}"),
        }
    }
}

/// What one status reading means for a wait: done, keep waiting, or failed.
pub fn judge(readiness: Readiness, status: &ContainerStatus) -> Result<bool, WaitError> {
    match (readiness, status.state) {
        (Readiness::Completed, RunState::Exited) if status.exit_code == Some(0) => Ok(true),
        (_, RunState::Exited | RunState::Dead) => Err(WaitError::Exited(status.exit_code, status.error.clone())),
        (_, RunState::Restarting) => Err(WaitError::Restarting(status.exit_code)),
        (Readiness::Running, RunState::Running) => Ok(true),
        (Readiness::Healthy, RunState::Running) => match status.health {
            Some(Health::Healthy) | None => Ok(true),
            Some(Health::Unhealthy) => Err(WaitError::Unhealthy),
            Some(Health::Starting) => Ok(false),
        },
        _ => Ok(false),
    }
}

/// The longest pause between two looks at a container being waited for.
const POLL_CAP: Duration = Duration::from_millis(250);

/// A wait this long is worth a word ("waiting for … — blocks …"); then one every
/// [`REPORT_EVERY`].
pub const REPORT_AFTER: Duration = Duration::from_secs(2);
/// How often a long wait says how it is going.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);

/// What a long wait is about, for [`wait_message`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaitContext {
    /// The healthcheck's `retries` (failures in a row before the container is unhealthy).
    pub retries: Option<u32>,
    /// The containers that start only once this one is ready (short names: `web-1`).
    pub blocks: Vec<String>,
    /// The container's own healthcheck, run by scale between the engine's checks.
    pub probe: Option<Probe>,
}

/// A container's healthcheck test, run with `exec` while the engine still says `starting`:
/// an engine before API 1.44 runs its first check only a whole `interval` after the start
/// (Docker 20.10 has no `start_interval`), so a server ready in 300 ms would wait a second
/// or more, once per replacement in a rolling update. The test passing is the same evidence
/// the engine's own check would give; the engine's `unhealthy` still fails the wait, and a
/// rollout's `monitor` keeps watching the engine's status afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub command: Vec<String>,
    /// The healthcheck's `timeout`: a probe that takes longer counts as not passed.
    pub timeout: Duration,
}

impl Probe {
    pub fn of(health: &crate::spec::HealthSpec) -> Option<Probe> {
        let command = health.probe_command()?;
        Some(Probe { command, timeout: Duration::from_millis(health.timeout_ms.max(1)) })
    }
}

/// The first pause between two probes, and the longest: probes cost an `exec` each, so they
/// thin out (by a quarter each time) when a container takes its time. A server that starts
/// in half a second is probed about five times by then, so a rolling update's batch loses
/// little more than one probe's gap to the polling.
const PROBE_FIRST: Duration = Duration::from_millis(100);
const PROBE_CAP: Duration = Duration::from_secs(1);

/// Whether the probe passed: exit code 0 within its timeout. Anything else (the container
/// not running yet, the exec refused, a slow test) is "not yet", never a failure: failing
/// is the engine's own checks' call.
async fn probe_passes<E: Engine>(engine: &E, id: &str, name: &str, probe: &Probe) -> bool {
    matches!(
        tokio::time::timeout(probe.timeout, engine.exec(id, name, &probe.command)).await,
        Ok(Ok(out)) if out.exit_code == 0
    )
}

/// "waiting for shop-db-1 to be healthy (2/5 checks failed, 4 s) — blocks web-1, web-2", as
/// Tilt says what it waits on and what that holds up.
pub fn wait_message(
    name: &str,
    readiness: Readiness,
    progress: Option<HealthProgress>,
    context: &WaitContext,
    elapsed: Duration,
) -> String {
    let secs = elapsed.as_secs();
    let what = match readiness {
        Readiness::Healthy => "to be healthy",
        Readiness::Completed => "to complete",
        Readiness::Running => "to keep running",
    };
    let detail = match (readiness, progress) {
        (Readiness::Healthy, Some(p)) if p.failing_streak > 0 => match context.retries {
            Some(retries) => format!("{}/{retries} checks failed, {secs} s", p.failing_streak),
            None => format!("{} checks failed in a row, {secs} s", p.failing_streak),
        },
        (Readiness::Healthy, Some(p)) if p.checks_run > 0 => {
            format!("{}/{} checks passed, {secs} s", p.passed, p.checks_run)
        }
        (Readiness::Healthy, _) => format!("no check has run yet, {secs} s"),
        _ => format!("{secs} s"),
    };
    let mut line = format!("waiting for {name} {what} ({detail})");
    if !context.blocks.is_empty() {
        line.push_str(&format!(" — blocks {}", context.blocks.join(", ")));
    }
    line
}

/// Polls the container until `judge` says it is ready, it failed, or `timeout` passes. A
/// container that counts as ready merely by running must keep running for `settle`: a
/// command that exits at once is a failed start, however early the first look came.
pub async fn wait_ready<E: Engine>(
    engine: &E,
    id: &str,
    name: &str,
    readiness: Readiness,
    timeout: Duration,
    settle: Duration,
) -> Result<(), WaitError> {
    wait_ready_saying(engine, id, name, readiness, timeout, settle, &WaitContext::default(), &|_| {}).await
}

/// [`wait_ready`], saying through `say` what it waits on once the wait gets long
/// ([`REPORT_AFTER`], then every [`REPORT_EVERY`]).
#[allow(clippy::too_many_arguments)]
pub async fn wait_ready_saying<E: Engine>(
    engine: &E,
    id: &str,
    name: &str,
    readiness: Readiness,
    timeout: Duration,
    settle: Duration,
    context: &WaitContext,
    say: &(dyn Fn(&str) + Sync),
) -> Result<(), WaitError> {
    let start = Instant::now();
    let mut next_report = REPORT_AFTER;
    let mut delay = Duration::from_millis(100);
    let mut up_since: Option<Instant> = None;
    let mut next_probe = Instant::now();
    let mut probe_delay = PROBE_FIRST;
    loop {
        let status = engine.container_status(id, name).await.map_err(|e| WaitError::Engine(e.to_string()))?;
        let ready = judge(readiness, &status)?;
        let starting = status.state == RunState::Running && status.health == Some(Health::Starting);
        if !ready
            && starting
            && let Some(probe) = context.probe.as_ref().filter(|_| Instant::now() >= next_probe)
        {
            if probe_passes(engine, id, name, probe).await {
                return Ok(());
            }
            next_probe = Instant::now() + probe_delay;
            probe_delay = (probe_delay * 5 / 4).min(PROBE_CAP);
        }
        if ready {
            let merely_running = status.state == RunState::Running && status.health.is_none();
            if !merely_running {
                return Ok(());
            }
            if up_since.get_or_insert_with(Instant::now).elapsed() >= settle {
                return Ok(());
            }
        } else {
            up_since = None;
        }
        if start.elapsed() >= next_report && readiness != Readiness::Running {
            // Best effort: a failed look at the health log only makes the line shorter.
            let progress = engine.health_progress(id, name).await.ok().flatten();
            say(&wait_message(name, readiness, progress, context, start.elapsed()));
            next_report = start.elapsed() + REPORT_EVERY;
        }
        if start.elapsed() >= timeout {
            let state = match status.health {
                Some(h) => format!("{} and {}", status.state.as_str(), h.as_str()),
                None => status.state.as_str().to_string(),
            };
            return Err(WaitError::TimedOut(timeout, state));
        }
        // A probe due sooner than the next look is not kept waiting for it.
        let probing = starting && context.probe.is_some();
        let until_probe = next_probe.saturating_duration_since(Instant::now());
        tokio::time::sleep(if probing { delay.min(until_probe) } else { delay }).await;
        // Short polls: a dependent waits for this one, and each poll is one cheap inspect.
        delay = (delay * 2).min(POLL_CAP);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: RunState, health: Option<Health>, exit_code: Option<i64>) -> ContainerStatus {
        ContainerStatus { state, health, exit_code, error: None }
    }

    #[test]
    fn a_long_wait_says_what_it_waits_on_and_what_it_blocks() {
        let context = WaitContext { retries: Some(5), blocks: vec!["web-1".into(), "web-2".into()], probe: None };
        let failing = HealthProgress { failing_streak: 2, checks_run: 2, passed: 0 };
        assert_eq!(
            wait_message("shop-db-1", Readiness::Healthy, Some(failing), &context, Duration::from_millis(4300)),
            "waiting for shop-db-1 to be healthy (2/5 checks failed, 4 s) — blocks web-1, web-2"
        );
        assert_eq!(
            wait_message("shop-db-1", Readiness::Healthy, None, &WaitContext::default(), Duration::from_secs(3)),
            "waiting for shop-db-1 to be healthy (no check has run yet, 3 s)"
        );
        let unknown_retries = WaitContext { retries: None, blocks: vec!["lb-1".into()], probe: None };
        assert_eq!(
            wait_message("shop-web-1", Readiness::Healthy, Some(failing), &unknown_retries, Duration::from_secs(7)),
            "waiting for shop-web-1 to be healthy (2 checks failed in a row, 7 s) — blocks lb-1"
        );
        assert_eq!(
            wait_message("shop-migrate-1", Readiness::Completed, None, &WaitContext::default(), Duration::from_secs(9)),
            "waiting for shop-migrate-1 to complete (9 s)"
        );
    }

    #[test]
    fn readiness_rules() {
        use Readiness::*;
        assert_eq!(judge(Running, &status(RunState::Running, None, None)), Ok(true));
        assert_eq!(judge(Healthy, &status(RunState::Running, Some(Health::Starting), None)), Ok(false));
        assert_eq!(judge(Healthy, &status(RunState::Running, Some(Health::Healthy), None)), Ok(true));
        assert_eq!(
            judge(Healthy, &status(RunState::Running, Some(Health::Unhealthy), None)),
            Err(WaitError::Unhealthy)
        );
        assert_eq!(judge(Completed, &status(RunState::Exited, None, Some(0))), Ok(true));
        assert_eq!(judge(Completed, &status(RunState::Running, None, None)), Ok(false));
        assert!(judge(Completed, &status(RunState::Exited, None, Some(2))).is_err());
        assert!(judge(Running, &status(RunState::Exited, None, Some(1))).is_err());
        assert!(judge(Running, &status(RunState::Restarting, None, Some(1))).is_err());
        assert_eq!(judge(Running, &status(RunState::Created, None, None)), Ok(false));
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime").block_on(f)
    }

    /// A container the engine still calls `starting`, waited for with its own check as the
    /// probe: ready once the check passes in it, never because of a failing or absent one.
    #[test]
    fn a_starting_container_is_ready_when_its_own_check_passes_in_it() {
        use crate::engine::{ExecOutput, fake::FakeEngine};
        let engine = FakeEngine::new();
        engine.add_foreign_container("c");
        engine.set_health("c", Some(Health::Starting));
        let id = engine.containers()[0].id.clone();
        let probe = Probe { command: vec!["/check".into(), "now".into()], timeout: Duration::from_secs(1) };
        let context = WaitContext { probe: Some(probe), ..WaitContext::default() };
        let wait = |context: &WaitContext| {
            run(wait_ready_saying(
                &engine,
                &id,
                "c",
                Readiness::Healthy,
                Duration::from_millis(600),
                Duration::ZERO,
                context,
                &|_| {},
            ))
        };
        // The exec is refused (nothing scripted): not a failure, only not ready.
        assert!(matches!(wait(&context), Err(WaitError::TimedOut(..))));
        engine.on_exec(|name, cmd| {
            (name == "c" && cmd == "/check now").then(|| ExecOutput { exit_code: 1, output: String::new() })
        });
        assert!(matches!(wait(&context), Err(WaitError::TimedOut(..))));
        assert!(matches!(wait(&WaitContext::default()), Err(WaitError::TimedOut(..))));
        engine.on_exec(|name, cmd| {
            (name == "c" && cmd == "/check now").then(|| ExecOutput { exit_code: 0, output: String::new() })
        });
        assert_eq!(wait(&context), Ok(()));
        assert!(engine.commands_in("c").iter().all(|c| c == "/check now"));
        // Without the probe the engine's verdict is still the only one.
        assert!(matches!(wait(&WaitContext::default()), Err(WaitError::TimedOut(..))));
        engine.set_health("c", Some(Health::Unhealthy));
        assert_eq!(wait(&context), Err(WaitError::Unhealthy));
    }

    #[test]
    fn the_probe_runs_the_test_as_the_engine_would() {
        let health = |test: &[&str]| crate::spec::HealthSpec {
            test: test.iter().map(|s| s.to_string()).collect(),
            timeout_ms: 2000,
            ..Default::default()
        };
        assert_eq!(
            Probe::of(&health(&["CMD", "/healthcheck", "-q"])).map(|p| p.command),
            Some(vec!["/healthcheck".into(), "-q".into()])
        );
        assert_eq!(
            Probe::of(&health(&["CMD-SHELL", "pg_isready || exit 1"])).map(|p| p.command),
            Some(vec!["/bin/sh".into(), "-c".into(), "pg_isready || exit 1".into()])
        );
        assert_eq!(Probe::of(&health(&["NONE"])), None);
        assert_eq!(Probe::of(&health(&["CMD"])), None);
        assert_eq!(Probe::of(&health(&[])), None);
        assert_eq!(Probe::of(&health(&["CMD", "x"])).map(|p| p.timeout), Some(Duration::from_secs(2)));
    }
}
