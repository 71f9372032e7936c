//! The autoscaler's decision: a pure function of the observed load, the policy and the time
//! of the last change, so every rule (bounds, hysteresis, cooldown) is unit-tested without an
//! engine. The load is whatever the policy's [`Metric`] says (requests per second through the
//! load balancers, or messages in a queue): the rules are the same, load per replica against
//! `target`, and only the reason's words differ. The watch controller samples the load, calls
//! [`decide`], and turns a [`Decision::Scale`] into a marker plus an ordinary plan.

use std::time::Duration;

use crate::model::Autoscale;
#[cfg(doc)]
use crate::model::Metric;

/// After a scale-up, how long before another: the new servers' pool is reloaded and the rate
/// measured afresh first.
pub const UP_SETTLE: Duration = Duration::from_secs(5);

/// What the autoscaler knows when it decides, times in seconds (Unix).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observed {
    /// The containers the service runs now (its marker's count, or `min`).
    pub current: u32,
    /// The load over the whole service (requests per second through its load balancers, or
    /// messages in its queue); `None` when no fresh sample exists (first pass, the pool was
    /// just reloaded, the queue did not answer).
    pub load: Option<f64>,
    pub now: u64,
    /// When the count last changed (the marker's time).
    pub last_change: Option<u64>,
    /// Since when the load has been low enough to remove servers (kept by the caller).
    pub low_since: Option<u64>,
}

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Hold,
    Scale { from: u32, to: u32, reason: String },
}

/// The decision, and the `low_since` to pass next time.
pub fn decide(policy: &Autoscale, seen: Observed) -> (Decision, Option<u64>) {
    let current = seen.current.max(1);
    let clamped = current.clamp(policy.min, policy.max);
    if clamped != current {
        let noun = policy.metric.replica_noun();
        let reason = format!("{current} {noun} is outside min {} / max {}", policy.min, policy.max);
        return (Decision::Scale { from: current, to: clamped, reason }, None);
    }
    let Some(load) = seen.load else { return (Decision::Hold, seen.low_since) };
    let per_replica = load / f64::from(current);
    let unit = policy.metric.per_replica();
    let since_change = seen.last_change.map_or(u64::MAX, |t| seen.now.saturating_sub(t));
    if per_replica > policy.target {
        let wanted = (load / policy.target).ceil() as u32;
        let to = wanted.min(current * 2).clamp(policy.min, policy.max);
        if to > current && since_change >= UP_SETTLE.as_secs() {
            let reason = format!("{} {unit} > target {}", fmt(per_replica), fmt(policy.target));
            return (Decision::Scale { from: current, to, reason }, None);
        }
        return (Decision::Hold, None);
    }
    let low_mark = policy.target * (1.0 - policy.hysteresis);
    let needed = ((load / low_mark).ceil() as u32).clamp(policy.min, policy.max);
    if needed >= current {
        return (Decision::Hold, None);
    }
    let low_since = seen.low_since.unwrap_or(seen.now);
    let cooldown = policy.cooldown.as_secs();
    if seen.now.saturating_sub(low_since) >= cooldown && since_change >= cooldown {
        let reason = format!(
            "{} {unit} < {} (target {} less hysteresis {}) for {}",
            fmt(per_replica),
            fmt(low_mark),
            fmt(policy.target),
            policy.hysteresis,
            crate::model::duration::format(policy.cooldown)
        );
        return (Decision::Scale { from: current, to: needed, reason }, None);
    }
    (Decision::Hold, Some(low_since))
}

/// A load as people read it: whole numbers as such and above 10, one decimal otherwise.
fn fmt(x: f64) -> String {
    if x >= 10.0 || x.fract() == 0.0 { format!("{x:.0}") } else { format!("{x:.1}") }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Decision, Observed, decide};
    use crate::model::{Autoscale, Metric};

    fn policy() -> Autoscale {
        Autoscale {
            min: 2,
            max: 6,
            target: 50.0,
            hysteresis: 0.2,
            cooldown: Duration::from_secs(30),
            metric: Metric::Requests,
        }
    }

    fn seen(current: u32, load: f64, now: u64) -> Observed {
        Observed { current, load: Some(load), now, last_change: None, low_since: None }
    }

    fn to(d: &Decision) -> Option<u32> {
        match d {
            Decision::Scale { to, .. } => Some(*to),
            Decision::Hold => None,
        }
    }

    #[test]
    fn above_target_it_scales_up_at_most_doubling_and_says_why() {
        let (d, _) = decide(&policy(), seen(2, 360.0, 100));
        assert_eq!(d, Decision::Scale { from: 2, to: 4, reason: "180 req/s per server > target 50".into() });
        assert_eq!(to(&decide(&policy(), seen(2, 120.0, 100)).0), Some(3), "ceil(120 / 50)");
    }

    #[test]
    fn never_above_max_nor_below_min() {
        assert_eq!(to(&decide(&policy(), seen(4, 10_000.0, 100)).0), Some(6));
        assert_eq!(decide(&policy(), seen(6, 10_000.0, 100)).0, Decision::Hold);
        let low = Observed { low_since: Some(0), ..seen(3, 0.0, 1_000) };
        assert_eq!(to(&decide(&policy(), low).0), Some(2));
        let at_min = Observed { low_since: Some(0), ..seen(2, 0.0, 1_000) };
        assert_eq!(decide(&policy(), at_min).0, Decision::Hold);
        assert_eq!(to(&decide(&policy(), seen(9, 100.0, 0)).0), Some(6), "a count outside the bounds is clamped");
    }

    #[test]
    fn it_scales_down_only_after_the_load_stayed_low_for_the_cooldown() {
        let p = policy();
        let (d, low_since) = decide(&p, seen(4, 40.0, 100));
        assert_eq!((d, low_since), (Decision::Hold, Some(100)), "the low period starts");
        let (d, low_since) = decide(&p, Observed { low_since, ..seen(4, 40.0, 129) });
        assert_eq!((d, low_since), (Decision::Hold, Some(100)));
        let (d, _) = decide(&p, Observed { low_since, ..seen(4, 40.0, 130) });
        assert_eq!(to(&d), Some(2));
        let Decision::Scale { reason, .. } = d else { unreachable!() };
        assert_eq!(reason, "10 req/s per server < 40 (target 50 less hysteresis 0.2) for 30s");
    }

    #[test]
    fn a_load_back_in_the_band_restarts_the_cooldown() {
        let p = policy();
        let (_, low_since) = decide(&p, seen(4, 40.0, 100));
        let (d, low_since) = decide(&p, Observed { low_since, ..seen(4, 170.0, 120) });
        assert_eq!((d, low_since), (Decision::Hold, None), "42.5 per server: inside the band");
        let (d, low_since) = decide(&p, Observed { low_since, ..seen(4, 40.0, 140) });
        assert_eq!((d, low_since), (Decision::Hold, Some(140)));
    }

    #[test]
    fn inside_the_hysteresis_band_nothing_changes() {
        // 3 servers at 45 req/s each: below target, but 2 servers would take 67.5 each.
        let (d, low) = decide(&policy(), Observed { low_since: Some(0), ..seen(3, 135.0, 1_000) });
        assert_eq!((d, low), (Decision::Hold, None));
    }

    #[test]
    fn no_flapping_a_scale_down_never_lands_above_target() {
        for rate in (0..2_000).step_by(7) {
            let rate = f64::from(rate);
            for current in 2..=6 {
                let seen = Observed { low_since: Some(0), ..seen(current, rate, 10_000) };
                if let (Decision::Scale { to, .. }, _) = decide(&policy(), seen)
                    && to < current
                {
                    let after = Observed {
                        current: to,
                        load: Some(rate),
                        now: 10_010,
                        last_change: Some(10_000),
                        low_since: None,
                    };
                    assert!(rate / f64::from(to) <= 50.0, "{rate} req/s: {current} → {to} is above target");
                    assert!(!matches!(decide(&policy(), after).0, Decision::Scale { to: up, .. } if up > to));
                }
            }
        }
    }

    #[test]
    fn without_a_fresh_rate_or_right_after_a_change_it_waits() {
        let none = Observed { load: None, ..seen(2, 0.0, 100) };
        assert_eq!(decide(&policy(), none).0, Decision::Hold);
        let settling = Observed { last_change: Some(98), ..seen(2, 500.0, 100) };
        assert_eq!(decide(&policy(), settling).0, Decision::Hold);
        let low_but_recent = Observed { low_since: Some(0), last_change: Some(90), ..seen(4, 0.0, 100) };
        assert_eq!(decide(&policy(), low_but_recent).0, Decision::Hold, "the cooldown counts from the last change too");
    }

    #[test]
    fn on_queue_depth_the_same_rules_count_messages_per_worker() {
        let p = Autoscale {
            min: 1,
            max: 4,
            target: 2.0,
            cooldown: Duration::from_secs(8),
            metric: Metric::QueueDepth { queue: "queue".into() },
            ..policy()
        };
        let (d, _) = decide(&p, seen(1, 24.0, 100));
        assert_eq!(d, Decision::Scale { from: 1, to: 2, reason: "24 messages queued per worker > target 2".into() });
        let (d, _) = decide(&p, Observed { last_change: Some(100), ..seen(2, 20.0, 105) });
        assert_eq!(to(&d), Some(4), "ceil(20 / 2) = 10, at most doubled, at most max");
        let (d, low_since) = decide(&p, seen(4, 0.0, 200));
        assert_eq!((d, low_since), (Decision::Hold, Some(200)), "an empty queue starts the cooldown");
        let (d, _) = decide(&p, Observed { low_since, ..seen(4, 0.0, 208) });
        assert_eq!(
            d,
            Decision::Scale {
                from: 4,
                to: 1,
                reason: "0 messages queued per worker < 1.6 (target 2 less hysteresis 0.2) for 8s".into()
            }
        );
        let (d, _) = decide(&p, seen(9, 0.0, 0));
        assert_eq!(d, Decision::Scale { from: 9, to: 4, reason: "9 worker(s) is outside min 1 / max 4".into() });
    }
}
