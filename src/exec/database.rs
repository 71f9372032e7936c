//! Executor steps that talk to a database primary.

use std::time::Duration;

use super::poll::poll;

use crate::engine::Engine;
use crate::kinds::postgres::{drop_slot_sql, psql};
use crate::plan::SlotRelease;

/// How long the primary may take to notice that a removed replica stopped streaming.
const RELEASE_LIMIT: Duration = Duration::from_secs(10);

/// Drops a departed replica's slot on the primary, retrying (bounded) while the primary still
/// counts it active. A failure is only reported: the replica is gone either way, and the slot
/// can be dropped by hand (`SELECT pg_drop_replication_slot('…')`).
pub async fn release_slot<E: Engine>(engine: &E, release: &SlotRelease, say: &(dyn Fn(&str) + Sync)) {
    let cmd = psql(&drop_slot_sql(&release.slot));
    // Ok: settled (dropped, or a problem waiting will not fix); Err: still in use, ask again.
    let outcome = poll(RELEASE_LIMIT, Duration::from_millis(300), async || {
        match engine.exec(&release.primary_id, &release.primary, &cmd).await {
            Ok(out) if out.exit_code == 0 => match out.output.lines().last().map(|l| l.trim().parse::<u64>()) {
                Some(Ok(0)) => Ok(Ok(())),
                // Still active: the primary has not yet seen the replica go.
                Some(Ok(_)) => Err("still in use".to_string()),
                _ => Ok(Err(format!("unexpected answer {:?}", out.output.trim()))),
            },
            Ok(out) => Ok(Err(out.output.trim().to_string())),
            Err(err) => Ok(Err(err.to_string())),
        }
    })
    .await;
    match outcome {
        Ok(Ok(())) => say(&format!("dropped replication slot {} on {}", release.slot, release.primary)),
        Ok(Err(problem)) | Err(problem) => say(&format!(
            "could not drop replication slot {} on {} ({problem}); drop it by hand: SELECT pg_drop_replication_slot('{}')",
            release.slot, release.primary, release.slot
        )),
    }
}
