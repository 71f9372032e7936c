//! The autoscaler's part of a watch pass: sample each autoscaled service's load, ask the pure
//! [`decide`](crate::plan::autoscale::decide), and record a decision as the service's new
//! replica-count marker. The load is what the policy's metric says: the request rate from
//! the load balancers' own counters (HAProxy's `show stat`, cumulative sessions per server:
//! the app closes each connection, so a session is a request), or the depth of a queue, from
//! the stats command its image names (`io.scale.queue`). The pass that follows plans from the marker like any apply: new
//! servers are created and health-gated before they join the pool, removed ones are drained
//! first. The count lives in the engine, so `scale apply` and other shells keep it.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::json;

use super::watch::{Controller, Locked, clock};
use crate::engine::{Engine, observe_project};
use crate::kinds::load_balancer::{parse_stat, show_stat};
use crate::kinds::scaled::marker_volume;
use crate::model::{Autoscale, Metric};
use crate::observed::{ObservedState, RunState};
use crate::plan::autoscale::{Decision, Observed, decide};
use crate::plan::scaled_markers;
use crate::spec::DesiredState;

/// One load balancer's counters at one moment.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    /// Cumulative sessions per server.
    totals: BTreeMap<String, u64>,
}

/// What the autoscaler remembers between passes (only this watcher's view: the decisions
/// themselves are in the engine).
#[derive(Debug, Default)]
pub struct Autoscaler {
    samples: BTreeMap<String, Sample>,
    low_since: BTreeMap<String, u64>,
}

/// A scale decision that was recorded: the watch log's line and the pass's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scaled {
    pub service: String,
    pub from: u32,
    pub to: u32,
    pub reason: String,
}

impl Scaled {
    /// "scale web 2 → 4: 180 req/s per server > target 50"
    pub fn describe(&self) -> String {
        format!("scale {} {} → {}: {}", self.service, self.from, self.to, self.reason)
    }
}

impl Autoscaler {
    /// Samples and decides for every autoscaled service; records the first change (under the
    /// project lock) and returns it. Engine trouble is logged and means "no change".
    pub async fn step<E: Engine, C: Controller<E>>(
        &mut self,
        engine: &E,
        desired: &DesiredState,
        ctl: &mut C,
    ) -> Option<Scaled> {
        let policies: Vec<(&str, &Autoscale)> =
            desired.services.iter().filter_map(|s| s.autoscale.as_ref().map(|a| (s.name.as_str(), a))).collect();
        if policies.is_empty() {
            return None;
        }
        let observed = observe_project(engine, &desired.project).await.ok()?;
        let markers = scaled_markers(&observed);
        let now = unix_now();
        for (service, policy) in policies {
            let marker = markers.get(service);
            let current = marker.map_or(policy.min, |m| m.count.clamp(policy.min, policy.max));
            let load = match &policy.metric {
                Metric::Requests => self.rate(engine, &observed, service).await,
                Metric::QueueDepth { queue } => queue_depth(engine, &observed, queue).await,
            };
            let seen = Observed {
                current,
                load,
                now,
                last_change: marker.map(|m| m.since),
                low_since: self.low_since.get(service).copied(),
            };
            let (decision, low_since) = decide(policy, seen);
            match low_since {
                Some(t) => self.low_since.insert(service.to_string(), t),
                None => self.low_since.remove(service),
            };
            if let Decision::Scale { from, to, reason } = decision {
                let scaled = Scaled { service: service.to_string(), from, to, reason };
                return self.record(engine, desired, &observed, scaled, now, ctl).await;
            }
        }
        None
    }

    /// Requests per second over `service`'s servers since the last sample, summed over its
    /// running load balancers; `None` until two comparable samples exist (a reload restarts
    /// HAProxy's counters, a changed pool changes the servers).
    async fn rate<E: Engine>(&mut self, engine: &E, observed: &ObservedState, service: &str) -> Option<f64> {
        let mut total = 0.0;
        let mut complete = true;
        let mut any = false;
        for (lb, pool) in observed.load_balancers.iter().filter(|(_, p)| p.backend == service) {
            let Some(c) = observed.containers.get(lb).filter(|c| c.state == RunState::Running) else { continue };
            let Ok(out) = engine.exec(&c.id, &c.name, &show_stat()).await else { continue };
            let totals: BTreeMap<String, u64> =
                parse_stat(&out.output, &pool.backend).into_iter().map(|s| (s.server, s.total_sessions)).collect();
            let fresh = Sample { at: Instant::now(), totals };
            match self.samples.insert(lb.clone(), fresh.clone()).and_then(|old| per_second(&old, &fresh)) {
                Some(r) => {
                    total += r;
                    any = true;
                }
                None => complete = false,
            }
        }
        (any && complete).then_some(total)
    }

    async fn record<E: Engine, C: Controller<E>>(
        &mut self,
        engine: &E,
        desired: &DesiredState,
        observed: &ObservedState,
        scaled: Scaled,
        now: u64,
        ctl: &mut C,
    ) -> Option<Scaled> {
        let lock = match ctl.lock(engine, &desired.project).await {
            Locked::Taken(lock) => lock,
            Locked::Interrupted | Locked::Failed(_) => return None,
        };
        let marker = marker_volume(&desired.project, &scaled.service, scaled.to, now);
        let written = engine.create_volume(&marker).await;
        if written.is_ok() {
            for old in scaled_markers_of(observed, &scaled.service) {
                let _ = engine.remove_volume(&old).await;
            }
        }
        ctl.unlock(lock).await;
        if let Err(err) = written {
            ctl.log(
                &format!("could not record {}: {err}", scaled.describe()),
                json!({"event": "error", "error": err.to_string()}),
            );
            return None;
        }
        self.low_since.remove(&scaled.service);
        self.samples.clear();
        ctl.log(
            &format!("{} {}", clock(), scaled.describe()),
            json!({"event": "autoscale", "service": scaled.service, "from": scaled.from, "to": scaled.to, "reason": scaled.reason}),
        );
        Some(scaled)
    }
}

/// The messages waiting or in flight in `queue` (a service), summed over its running
/// containers that report a depth; `None` when none does.
async fn queue_depth<E: Engine>(engine: &E, observed: &ObservedState, queue: &str) -> Option<f64> {
    let reports = crate::engine::live::queue_stats(engine, observed).await;
    let depths: Vec<u64> =
        reports.iter().filter(|r| r.service == queue).filter_map(|r| r.stats).map(|s| s.depth).collect();
    (!depths.is_empty()).then(|| depths.iter().sum::<u64>() as f64)
}

/// Every replica-count marker volume of `service` (all are older than the one just written).
fn scaled_markers_of(observed: &ObservedState, service: &str) -> Vec<String> {
    observed
        .volumes
        .values()
        .filter_map(|v| crate::kinds::scaled::read_marker(&v.name, &v.labels))
        .filter(|m| m.service == service)
        .map(|m| m.volume)
        .collect()
}

/// Requests per second between two samples of one load balancer, if they are comparable:
/// the same servers, no counter gone backwards, some time in between.
fn per_second(old: &Sample, new: &Sample) -> Option<f64> {
    let secs = new.at.duration_since(old.at).as_secs_f64();
    if secs < 0.5 || old.totals.keys().ne(new.totals.keys()) {
        return None;
    }
    let mut delta = 0u64;
    for (server, &n) in &new.totals {
        delta += n.checked_sub(old.totals[server])?;
    }
    Some(delta as f64 / secs)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{Sample, per_second};

    fn sample(at: Instant, totals: &[(&str, u64)]) -> Sample {
        Sample { at, totals: totals.iter().map(|(s, n)| (s.to_string(), *n)).collect() }
    }

    #[test]
    fn a_rate_needs_the_same_servers_and_counters_that_only_grow() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        let old = sample(t0, &[("web-1", 100), ("web-2", 50)]);
        assert_eq!(per_second(&old, &sample(t1, &[("web-1", 200), ("web-2", 150)])), Some(100.0));
        assert_eq!(per_second(&old, &sample(t1, &[("web-1", 200)])), None, "the pool changed");
        assert_eq!(per_second(&old, &sample(t1, &[("web-1", 3), ("web-2", 4)])), None, "a reload reset the counters");
        assert_eq!(per_second(&old, &sample(t0, &[("web-1", 100), ("web-2", 50)])), None, "no time passed");
    }
}
