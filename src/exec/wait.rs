//! Waiting for a container to be ready: the wait strategy is data (`Readiness`), this is how
//! it is checked.

use std::time::{Duration, Instant};

use crate::desired::Readiness;
use crate::engine::{ContainerStatus, Engine};
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
    let start = Instant::now();
    let mut delay = Duration::from_millis(100);
    let mut up_since: Option<Instant> = None;
    loop {
        let status = engine.container_status(id, name).await.map_err(|e| WaitError::Engine(e.to_string()))?;
        if judge(readiness, &status)? {
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
        if start.elapsed() >= timeout {
            let state = match status.health {
                Some(h) => format!("{} and {}", status.state.as_str(), h.as_str()),
                None => status.state.as_str().to_string(),
            };
            return Err(WaitError::TimedOut(timeout, state));
        }
        tokio::time::sleep(delay).await;
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
}
