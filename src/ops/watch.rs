//! The watch controller's decisions, generic over the engine: one pass observes, decides
//! whether anything needs doing, and only then takes the project lock, observes again, fails
//! over where `failover: auto` says so, plans and repairs. Failed passes back off by a pure
//! function of how many failed in a row and of the last failure's retry policy
//! ([`retry_policy`], a pure function of the engine error, as in kube-rs). `cli/watch.rs` owns the terminal, the event stream
//! and Ctrl-C, and calls [`pass`] each time it wakes.

use std::time::Duration;

use serde_json::json;

use crate::engine::classify::{Retry, retry_policy};
use crate::engine::{Engine, observe_project};
use crate::exec::ExecReport;
use crate::model::{Blueprint, FailoverMode};
use crate::observed::{ObservedContainer, ObservedState, RunState};
use crate::plan::Plan;
use crate::spec::DesiredState;

/// How long to wait before trying again after `failures` failed passes in a row, the last
/// one failing as `retry` ([`retry_policy`] of its engine error) says: doubling from 2 s up to
/// 60 s for trouble that may pass, 60 s at once for what only a person can fix, so a broken
/// blueprint is not hammered against the engine.
pub fn retry_delay(failures: u32, retry: Retry) -> Duration {
    match retry {
        Retry::Backoff => Duration::from_secs((1u64 << failures.min(6)).clamp(2, 60)),
        Retry::AfterFix => Duration::from_secs(60),
    }
}

/// How a pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    InSync,
    Repaired,
    /// Try again later, as soon as the failure's retry policy says.
    Failed(Retry),
    /// Ctrl-C: stop watching once this pass is over.
    Interrupted,
    /// Ctrl-C twice: exit 130 now.
    ExitNow,
}

/// Failed passes in a row, and what that means for the next wait.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backoff {
    pub failures: u32,
    /// The retry policy of the last failure.
    pub retry: Option<Retry>,
}

impl Backoff {
    /// Counts a pass: a failure backs off further, anything else resets.
    pub fn record(&mut self, pass: Pass) {
        match pass {
            Pass::Failed(retry) => {
                self.failures += 1;
                self.retry = Some(retry);
            }
            Pass::InSync | Pass::Repaired => *self = Backoff::default(),
            Pass::Interrupted | Pass::ExitNow => {}
        }
    }

    /// How long to sleep before the next pass when no event comes.
    pub fn wait(&self, resync: Duration) -> Duration {
        match self.retry {
            Some(retry) if self.failures > 0 => retry_delay(self.failures, retry),
            _ => resync,
        }
    }

    /// Why the next pass runs when the wait ran out.
    pub fn timeout_reason(&self) -> String {
        if self.failures > 0 { format!("retry after {} failed pass(es)", self.failures) } else { "resync".into() }
    }
}

/// The outcome of waiting for the project lock.
pub enum Locked<L> {
    Taken(L),
    /// Ctrl-C while waiting.
    Interrupted,
    /// The lock could not be taken (try again later), with why.
    Failed(String),
}

/// The caller's part of a pass: waiting for the lock (the engine's, with the terminal's
/// messages and Ctrl-C), running a plan with progress and Ctrl-C, and the log.
#[allow(async_fn_in_trait)]
pub trait Controller<E: Engine>: Sync {
    type Lock;
    /// Waits for the project lock; the only place a pass takes it.
    async fn lock(&mut self, engine: &E, project: &str) -> Locked<Self::Lock>;
    /// Gives the lock back (a failure is the caller's to report).
    async fn unlock(&mut self, lock: Self::Lock);
    /// Runs a repair plan; `None`: interrupted twice, exit now.
    async fn execute(&mut self, engine: &E, plan: &Plan) -> Option<ExecReport>;
    /// One log line, in words or as a JSON event.
    fn log(&self, text: &str, value: serde_json::Value);
    /// A repair is about to run (print its plan).
    fn repairing(&self, why: &str, plan: &Plan);
}

/// One pass: observe, and when something needs doing, take the lock, observe again and
/// repair. The lock is given back on every path.
pub async fn pass<E: Engine, C: Controller<E>>(
    engine: &E,
    blueprint: &Blueprint,
    desired: &DesiredState,
    ctl: &mut C,
    why: &str,
) -> Result<Pass, crate::plan::PlanError> {
    let observed = match observe(engine, &desired.project, ctl).await {
        Ok(observed) => observed,
        Err(retry) => return Ok(Pass::Failed(retry)),
    };
    let plan = crate::plan::plan(desired, &observed)?;
    if primaries_lost(blueprint, &desired.project, &observed).is_empty() && !plan.has_changes() {
        return Ok(Pass::InSync);
    }
    let lock = match ctl.lock(engine, &desired.project).await {
        Locked::Taken(lock) => lock,
        Locked::Interrupted => {
            let text = format!("interrupted while waiting for the lock on project {}", desired.project);
            ctl.log(&text, json!({"event": "lock_interrupted", "project": desired.project}));
            return Ok(Pass::Interrupted);
        }
        Locked::Failed(err) => {
            ctl.log(&format!("{err}; trying again later"), json!({"event": "error", "error": err}));
            return Ok(Pass::Failed(Retry::Backoff));
        }
    };
    let result = repair(engine, blueprint, desired, ctl, why).await;
    ctl.unlock(lock).await;
    result
}

/// The locked part of a pass: observe afresh (the holder we waited for may have changed
/// everything), fail over where `failover: auto` says so, then plan and run the plan.
async fn repair<E: Engine, C: Controller<E>>(
    engine: &E,
    blueprint: &Blueprint,
    desired: &DesiredState,
    ctl: &mut C,
    why: &str,
) -> Result<Pass, crate::plan::PlanError> {
    let project = desired.project.as_str();
    let mut observed = match observe(engine, project, ctl).await {
        Ok(observed) => observed,
        Err(retry) => return Ok(Pass::Failed(retry)),
    };
    for service in primaries_lost(blueprint, project, &observed) {
        if let Err(retry) = fail_over(engine, &observed, &service, ctl).await {
            return Ok(Pass::Failed(retry));
        }
        observed = match observe(engine, project, ctl).await {
            Ok(after) => after,
            Err(retry) => return Ok(Pass::Failed(retry)),
        };
    }
    let plan = crate::plan::plan(desired, &observed)?;
    if !plan.has_changes() {
        return Ok(Pass::InSync);
    }
    ctl.repairing(why, &plan);
    let Some(report) = ctl.execute(engine, &plan).await else { return Ok(Pass::ExitNow) };
    if report.interrupted {
        return Ok(Pass::Interrupted);
    }
    if report.succeeded() {
        ctl.log(
            &format!("{} repaired {} thing(s)", clock(), report.finished.len()),
            json!({"event": "repaired", "actions": report.finished.len()}),
        );
        Ok(Pass::Repaired)
    } else {
        ctl.log(
            &format!("{} repair failed; trying again later", clock()),
            json!({"event": "repair_failed", "failed": report.failed.len()}),
        );
        Ok(Pass::Failed(Retry::Backoff))
    }
}

/// Promotes a replica of `service`, logging each step; on failure, when to try again.
async fn fail_over<E: Engine, C: Controller<E>>(
    engine: &E,
    observed: &ObservedState,
    service: &str,
    ctl: &C,
) -> Result<(), Retry> {
    ctl.log(
        &format!("{} the primary of {service} is down: failing over", clock()),
        json!({"event": "primary_lost", "service": service}),
    );
    let say = |line: &str| ctl.log(line, json!({"event": "failover_step", "step": line}));
    match super::failover::failover(engine, observed, service, &say).await {
        Ok(report) => {
            ctl.log(
                &format!("{} {} promoted", clock(), report.promoted),
                json!({"event": "failover", "report": report}),
            );
            Ok(())
        }
        Err(err) => {
            ctl.log(
                &format!("failover of {service} failed: {err}"),
                json!({"event": "failover_failed", "error": err.to_string()}),
            );
            Err(match &err {
                super::failover::FailoverError::Engine(err) => retry_policy(err),
                _ => Retry::Backoff,
            })
        }
    }
}

/// Observes the project; an engine error is logged and fails the pass (tried again when its
/// retry policy says), not the watcher.
async fn observe<E: Engine, C: Controller<E>>(engine: &E, project: &str, ctl: &C) -> Result<ObservedState, Retry> {
    match observe_project(engine, project).await {
        Ok(observed) => Ok(observed),
        Err(err) => {
            ctl.log(&format!("cannot observe the project: {err}"), json!({"event": "error", "error": err.to_string()}));
            Err(retry_policy(&err))
        }
    }
}

/// The `failover: auto` postgres services whose current primary container is not running
/// (killed, stopped, removed) while a replica is: the watch loop promotes one of them.
pub fn primaries_lost(blueprint: &Blueprint, project: &str, observed: &ObservedState) -> Vec<String> {
    let marked = observed.primaries();
    blueprint
        .services
        .iter()
        .filter(|s| s.postgres.as_ref().is_some_and(|pg| pg.failover == FailoverMode::Auto))
        .filter(|s| {
            let primary = marked.get(&s.name).map_or(1, |(n, _)| *n);
            let name = crate::spec::container_name(project, &s.name, primary);
            let running = |c: &ObservedContainer| c.state == RunState::Running;
            let primary_up = observed.containers.get(&name).is_some_and(running);
            let replica_up =
                observed.containers.values().any(|c| c.service() == Some(&s.name) && c.name != name && running(c));
            !primary_up && replica_up
        })
        .map(|s| s.name.clone())
        .collect()
}

/// The wall-clock time as HH:MM:SS (UTC), for log lines.
pub fn clock() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("[{:02}:{:02}:{:02}]", (secs / 3600) % 24, (secs / 60) % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::{Backoff, Pass, Retry, retry_delay};
    use std::time::Duration;

    #[test]
    fn retry_delay_doubles_and_is_bounded() {
        let delays: Vec<u64> = (1..=8).map(|n| retry_delay(n, Retry::Backoff).as_secs()).collect();
        assert_eq!(delays, vec![2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry_delay(u32::MAX, Retry::Backoff), Duration::from_secs(60));
        // What only a person can fix (a taken port, a missing image) is not retried sooner.
        assert_eq!(retry_delay(1, Retry::AfterFix), Duration::from_secs(60));
    }

    #[test]
    fn the_last_failure_decides_the_wait() {
        let resync = Duration::from_secs(10);
        let mut b = Backoff::default();
        b.record(Pass::Failed(Retry::AfterFix));
        assert_eq!(b.wait(resync), Duration::from_secs(60));
        b.record(Pass::Failed(Retry::Backoff));
        assert_eq!(b.wait(resync), retry_delay(2, Retry::Backoff));
    }

    #[test]
    fn backoff_grows_with_failures_and_resets_on_success() {
        let resync = Duration::from_secs(10);
        let mut b = Backoff::default();
        assert_eq!((b.wait(resync), b.timeout_reason().as_str()), (resync, "resync"));
        b.record(Pass::Failed(Retry::Backoff));
        b.record(Pass::Failed(Retry::Backoff));
        assert_eq!(
            (b.wait(resync), b.timeout_reason().as_str()),
            (retry_delay(2, Retry::Backoff), "retry after 2 failed pass(es)")
        );
        b.record(Pass::Interrupted);
        assert_eq!(b.failures, 2, "an interrupted pass neither fails nor succeeds");
        b.record(Pass::Repaired);
        assert_eq!(b.wait(resync), resync);
    }
}
