//! The command line's side of the project lock (`engine::lock`): waiting for it so that Ctrl-C
//! still works, saying for whom we wait, and giving it back. Every command that changes a
//! project holds it while it does: apply, destroy, failover, and each watch pass that repairs.

use std::time::Duration;

use super::interrupt::Interrupt;
use crate::engine::docker::DockerEngine;
use crate::engine::lock::{self, LockError, LockEvent, ProjectLock};

/// `--lock-timeout`: a duration, or a bare `0` for "fail at once if the project is locked".
pub(super) fn parse_lock_timeout(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" { Ok(Duration::ZERO) } else { crate::model::duration::parse(text) }
}

/// Takes the lock, waiting up to `timeout`; `Ok(None)` when Ctrl-C came first. No message:
/// each caller reports in its own way (`on_event`, errors).
pub(super) async fn wait_for_lock(
    engine: &DockerEngine,
    project: &str,
    command: &str,
    timeout: Duration,
    interrupt: &mut Interrupt,
    on_event: &(dyn Fn(LockEvent<'_>) + Sync),
) -> Result<Option<ProjectLock>, LockError> {
    tokio::select! {
        taken = lock::acquire(engine, project, command, timeout, on_event) => taken.map(Some),
        _ = interrupt.recv() => {
            // The engine may have created our lock just as we stopped waiting for its answer.
            lock::release_if_mine(engine, project).await;
            Ok(None)
        }
    }
}

/// Takes the project lock for a one-shot command, saying on stderr whom we wait for. `None`:
/// interrupted while waiting, nothing was changed (exit 130).
pub(super) async fn take_lock(
    engine: &DockerEngine,
    project: &str,
    command: &str,
    timeout: Duration,
    interrupt: &mut Interrupt,
) -> anyhow::Result<Option<ProjectLock>> {
    let on_event = |event: LockEvent<'_>| match event {
        LockEvent::Waiting { project, holder } => {
            eprintln!("waiting for the lock on project {project} held by {}…", holder.describe());
        }
        LockEvent::BrokeStale { project, holder } => {
            eprintln!("breaking the stale lock on project {project}: its holder {} is gone", holder.describe());
        }
    };
    match wait_for_lock(engine, project, command, timeout, interrupt, &on_event).await {
        Ok(Some(lock)) => Ok(Some(lock)),
        Ok(None) => {
            eprintln!("interrupted while waiting for the lock on project {project}; nothing was changed");
            Ok(None)
        }
        // Printed once, with its hint, where the run ends (`failure`), and as JSON under
        // `--output json`.
        Err(err) => Err(err.into()),
    }
}

/// Runs `work` holding the project lock, and gives the lock back whatever `work` returns;
/// 130 when Ctrl-C came while waiting for it (nothing was changed). The shape of every
/// one-shot command that changes a project: apply, destroy, failover.
pub(super) async fn with_lock(
    engine: &DockerEngine,
    project: &str,
    command: &str,
    timeout: Duration,
    interrupt: &mut Interrupt,
    work: impl AsyncFnOnce(&mut Interrupt) -> anyhow::Result<u8>,
) -> anyhow::Result<u8> {
    let Some(mut lock) = take_lock(engine, project, command, timeout, interrupt).await? else {
        return Ok(130);
    };
    let result = work(interrupt).await;
    release_lock(&mut lock).await;
    result
}

/// Gives the lock back; a failure is a warning (the work itself is done).
pub(super) async fn release_lock(lock: &mut ProjectLock) {
    if let Err(err) = lock.release().await {
        eprintln!("warning: {err}");
        if let Some(hint) = err.hint() {
            eprintln!("  hint: {hint}");
        }
    }
}
