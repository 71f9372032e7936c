//! Executor steps that talk to a database primary.

use std::time::{Duration, Instant};

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
    let started = Instant::now();
    loop {
        let problem = match engine.exec(&release.primary_id, &release.primary, &cmd).await {
            Ok(out) if out.exit_code == 0 => match out.output.lines().last().map(|l| l.trim().parse::<u64>()) {
                Some(Ok(0)) => {
                    say(&format!("dropped replication slot {} on {}", release.slot, release.primary));
                    return;
                }
                // Still active: the primary has not yet seen the replica go.
                Some(Ok(_)) if started.elapsed() < RELEASE_LIMIT => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    continue;
                }
                Some(Ok(_)) => "still in use".to_string(),
                _ => format!("unexpected answer {:?}", out.output.trim()),
            },
            Ok(out) => out.output.trim().to_string(),
            Err(err) => err.to_string(),
        };
        say(&format!(
            "could not drop replication slot {} on {} ({problem}); drop it by hand: SELECT pg_drop_replication_slot('{}')",
            release.slot, release.primary, release.slot
        ));
        return;
    }
}
