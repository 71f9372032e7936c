//! Executor steps that talk to a load balancer: drain a server before it stops, put it back
//! once its replacement is ready, and reload a new configuration without dropping requests.

use std::time::{Duration, Instant};

use super::{ActionFailure, failure};
use crate::engine::Engine;
use crate::kinds::load_balancer::{
    CONFIG_PATH, POOL_PATH, Pool, RELOAD_SIGNAL, parse_stat, set_server_state, show_stat,
};
use crate::plan::{Drain, FileSpec};

/// How long a drained server may keep requests in flight before it is stopped anyway.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// Takes each server out of rotation and waits (bounded) for its requests in flight to end.
/// A load balancer that cannot be reached is only reported: its health checks still take the
/// server out, and its retries cover the gap.
pub async fn drain<E: Engine>(engine: &E, drains: &[Drain], say: &(dyn Fn(&str) + Sync)) {
    for d in drains {
        say(&format!("draining {} from {}", d.server, d.balancer));
        let cmd = set_server_state(&d.backend, &d.server, "drain");
        if let Err(err) = engine.exec(&d.balancer_id, &d.balancer, &cmd).await {
            say(&format!("could not drain {} on {}: {err}", d.server, d.balancer));
            continue;
        }
        let started = Instant::now();
        while started.elapsed() < DRAIN_LIMIT {
            let busy = match engine.exec(&d.balancer_id, &d.balancer, &show_stat()).await {
                Ok(out) => parse_stat(&out.output, &d.backend)
                    .iter()
                    .find(|s| s.server == d.server)
                    .is_some_and(|s| s.current_sessions > 0),
                Err(_) => false,
            };
            if !busy {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = engine.exec(&d.balancer_id, &d.balancer, &set_server_state(&d.backend, &d.server, "maint")).await;
    }
}

/// How long a server put back may take to pass the load balancer's own health checks.
const REJOIN_LIMIT: Duration = Duration::from_secs(15);

/// Records (or clears) in each load balancer's pool record that a replacement has its
/// server drained, so a run interrupted in between is repaired by the next one.
pub async fn mark_draining<E: Engine>(engine: &E, drains: &[Drain], draining: bool) {
    for d in drains {
        let Ok(Some(bytes)) = engine.read_file(&d.balancer_id, &d.balancer, POOL_PATH).await else { continue };
        let Ok(mut pool) = serde_json::from_slice::<Pool>(&bytes) else { continue };
        pool.draining.retain(|s| *s != d.server);
        if draining {
            pool.draining.push(d.server.clone());
        }
        let Ok(json) = serde_json::to_vec(&pool) else { continue };
        let _ = engine.write_file(&d.balancer_id, &d.balancer, POOL_PATH, &json).await;
    }
}

/// Puts servers back into rotation and waits (bounded) until the load balancer's health
/// checks see them UP, so a rolling update never has two servers out at once.
pub async fn undrain<E: Engine>(engine: &E, drains: &[Drain], say: &(dyn Fn(&str) + Sync)) {
    for d in drains {
        let cmd = set_server_state(&d.backend, &d.server, "ready");
        if let Err(err) = engine.exec(&d.balancer_id, &d.balancer, &cmd).await {
            say(&format!("could not put {} back on {}: {err}", d.server, d.balancer));
            continue;
        }
        let started = Instant::now();
        loop {
            let status = match engine.exec(&d.balancer_id, &d.balancer, &show_stat()).await {
                Ok(out) => {
                    parse_stat(&out.output, &d.backend).into_iter().find(|s| s.server == d.server).map(|s| s.status)
                }
                Err(_) => None,
            };
            if status.as_deref().is_some_and(|s| s.starts_with("UP")) {
                say(&format!("{} back in rotation on {}", d.server, d.balancer));
                break;
            }
            if started.elapsed() >= REJOIN_LIMIT {
                say(&format!("{} not yet UP on {} ({})", d.server, d.balancer, status.unwrap_or_default()));
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Writes generated files into a container (created or running).
pub async fn write_files<E: Engine>(engine: &E, id: &str, name: &str, files: &[FileSpec]) -> Result<(), ActionFailure> {
    for f in files {
        engine.write_file(id, name, &f.path, f.contents.as_bytes()).await.map_err(failure)?;
    }
    Ok(())
}

/// Writes a new configuration, checks it with HAProxy itself, and reloads (SIGUSR2 to the
/// master: a new worker takes over the listening sockets, the old one finishes its requests).
pub async fn reload<E: Engine>(
    engine: &E,
    id: &str,
    name: &str,
    files: &[FileSpec],
    say: &(dyn Fn(&str) + Sync),
) -> Result<(), ActionFailure> {
    // The pool record is written last: if the reload is interrupted, the next plan still
    // sees the old pool and reloads again.
    let (record, config): (Vec<FileSpec>, Vec<FileSpec>) = files.iter().cloned().partition(|f| f.path == POOL_PATH);
    write_files(engine, id, name, &config).await?;
    let check = ["haproxy", "-c", "-f", CONFIG_PATH].map(String::from);
    let out = engine.exec(id, name, &check).await.map_err(failure)?;
    if out.exit_code != 0 {
        return Err(ActionFailure {
            message: format!("{name}: the generated configuration does not load"),
            hint: Some("this is a bug in scale; the running configuration was kept".into()),
            logs: out.output.lines().map(str::to_string).collect(),
            output: Vec::new(),
        });
    }
    engine.signal(id, name, RELOAD_SIGNAL).await.map_err(failure)?;
    write_files(engine, id, name, &record).await?;
    say("reloaded");
    // The new worker needs a moment to resolve and check its servers; give it one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}
