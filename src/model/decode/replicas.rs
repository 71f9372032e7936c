//! `replicas:` is a count (`replicas: 3`) or an autoscaling policy
//! (`replicas: { min: 2, max: 6, target: 50, hysteresis: 0.2, cooldown: 60s }`), whose load
//! is requests through the load balancers unless it says otherwise
//! (`metric: queue_depth, queue: queue`: messages per worker).

use super::{Decoder, Entries};
use crate::model::node::{Node, Value};
use crate::model::{At, Autoscale, Metric};

const KEYS: &[&str] = &["min", "max", "target", "hysteresis", "cooldown", "metric", "queue"];

/// The words `metric:` takes.
const METRICS: &[&str] = &["requests", "queue_depth"];

impl Decoder<'_> {
    /// The replica count (the policy's `min` for a map) and the policy, if any.
    pub(super) fn replicas(&mut self, node: &Node, what: &str) -> (Option<At<u32>>, Option<At<Autoscale>>) {
        let Value::Map(entries) = &node.value else {
            let n = self.integer(node, what, 0, 10_000);
            return (n.map(|n| At::new(n as u32, node.pos)), None);
        };
        match self.autoscale(entries, node, what) {
            Some(policy) => (Some(At::new(policy.min, node.pos)), Some(At::new(policy, node.pos))),
            None => (None, None),
        }
    }

    fn autoscale(&mut self, entries: &Entries, node: &Node, what: &str) -> Option<Autoscale> {
        self.check_keys(entries, KEYS, what);
        let get = |k: &str| entries.iter().find(|(key, _)| key.name == k).map(|(_, v)| v);
        let field = |k: &str| format!("{what}.{k}");
        for k in ["min", "max", "target"] {
            if get(k).is_none() {
                self.error(node.pos, format!("{what}: missing `{k}`")).hint = Some(
                    "an autoscaled service names all three, e.g. `replicas: { min: 2, max: 6, target: 50 }`".into(),
                );
            }
        }
        let (min, max, target) = (get("min")?, get("max")?, get("target")?);
        let min = self.integer(min, &field("min"), 1, 1_000);
        let max = self.integer(max, &field("max"), 1, 1_000);
        let target = self.number(target, &field("target"), 0.001, 1e9);
        let (min, max, target) = (min?, max?, target?);
        if min > max {
            self.error(node.pos, format!("{what}: min {min} is more than max {max}")).hint =
                Some("make `min` at most `max`".into());
            return None;
        }
        let hysteresis = match get("hysteresis") {
            Some(v) => self.number(v, &field("hysteresis"), 0.0, 0.9)?,
            None => Autoscale::DEFAULT_HYSTERESIS,
        };
        let cooldown = match get("cooldown") {
            Some(v) => self.duration(v, &field("cooldown"))?,
            None => Autoscale::DEFAULT_COOLDOWN,
        };
        let metric = self.metric(node, get("metric"), get("queue"), what)?;
        Some(Autoscale { min: min as u32, max: max as u32, target, hysteresis, cooldown, metric })
    }

    /// `metric:` (default `requests`) and the `queue:` service that `queue_depth` reads.
    fn metric(&mut self, map: &Node, metric: Option<&Node>, queue: Option<&Node>, what: &str) -> Option<Metric> {
        let word = match metric {
            Some(node) => self.string(node, &format!("{what}.metric"))?,
            None => At::new("requests".to_string(), map.pos),
        };
        let queue = match queue {
            Some(node) => Some(self.string(node, &format!("{what}.queue"))?),
            None => None,
        };
        match (word.value.as_str(), queue) {
            ("requests", None) => Some(Metric::Requests),
            ("queue_depth", Some(queue)) => Some(Metric::QueueDepth { queue: queue.value }),
            ("queue_depth", None) => {
                self.error(word.pos, format!("{what}: `metric: queue_depth` needs `queue:`")).hint =
                    Some("name the service that holds the queue, e.g. `queue: queue`".into());
                None
            }
            ("requests", Some(queue)) => {
                self.error(queue.pos, format!("{what}.queue: only `metric: queue_depth` reads a queue")).hint =
                    Some("add `metric: queue_depth`, or remove `queue:`".into());
                None
            }
            (other, _) => {
                self.error(word.pos, format!("{what}.metric: unknown metric {other:?}")).hint =
                    Some(format!("one of: {}", METRICS.join(", ")));
                None
            }
        }
    }

    /// A number (whole or not) between `min` and `max`.
    fn number(&mut self, node: &Node, what: &str, min: f64, max: f64) -> Option<f64> {
        let value = match &node.value {
            Value::Int(i) => *i as f64,
            Value::Float(x) => *x,
            Value::Str(s) => {
                let text = self.interpolate(s, node.pos, what)?;
                match text.trim().parse::<f64>() {
                    Ok(x) if x.is_finite() => x,
                    _ => {
                        self.error(node.pos, format!("{what}: expected a number, found {text:?}"));
                        return None;
                    }
                }
            }
            _ => {
                self.wrong_type(node, what, "a number");
                return None;
            }
        };
        if !(min..=max).contains(&value) {
            self.error(node.pos, format!("{what}: {value} is out of range ({min} to {max})"));
            return None;
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::model::{Autoscale, Env, Metric, load_bytes};

    fn load(replicas: &str) -> Result<Option<Autoscale>, String> {
        let yaml = format!("name: shop\nservices:\n  web:\n    image: nginx\n    replicas: {replicas}\n");
        match load_bytes(Path::new("t.yaml"), yaml.as_bytes(), &Env::default()) {
            Ok(bp) => Ok(bp.services[0].autoscale.as_ref().map(|a| a.value.clone())),
            Err(problems) => Err(format!("{problems:?}")),
        }
    }

    #[test]
    fn a_count_has_no_policy_and_a_map_is_one_with_defaults() {
        assert_eq!(load("3"), Ok(None));
        let policy = load("{ min: 2, max: 6, target: 50 }").expect("loads").expect("a policy");
        assert_eq!((policy.min, policy.max, policy.target), (2, 6, 50.0));
        assert_eq!(policy.hysteresis, Autoscale::DEFAULT_HYSTERESIS);
        assert_eq!(policy.cooldown, Autoscale::DEFAULT_COOLDOWN);
        let policy = load("{ min: 1, max: 3, target: 7.5, hysteresis: 0.3, cooldown: 5s }").unwrap().unwrap();
        assert_eq!((policy.target, policy.hysteresis, policy.cooldown), (7.5, 0.3, Duration::from_secs(5)));
        assert_eq!(policy.metric, Metric::Requests, "the load is requests unless the map says otherwise");
    }

    #[test]
    fn a_queue_depth_policy_names_its_queue() {
        let policy = load("{ min: 1, max: 4, target: 3, metric: queue_depth, queue: jobs }").unwrap().unwrap();
        assert_eq!(policy.metric, Metric::QueueDepth { queue: "jobs".into() });
        let explicit = load("{ min: 1, max: 4, target: 3, metric: requests }").unwrap().unwrap();
        assert_eq!(explicit.metric, Metric::Requests);
    }

    #[test]
    fn a_bad_policy_is_a_located_error() {
        let cases = [
            ("{ min: 4, max: 2, target: 5 }", "min 4 is more than max 2"),
            ("{ min: 2, max: 6 }", "missing `target`"),
            ("{ min: 2, max: 6, target: fast }", "expected a number"),
            ("{ min: 0, max: 6, target: 5 }", "out of range"),
            ("{ min: 2, max: 6, target: 5, cooldwn: 5s }", "cooldwn"),
            ("{ min: 2, max: 6, target: 5, hysteresis: 2 }", "out of range"),
            ("{ min: 1, max: 4, target: 3, metric: queue_depth }", "needs `queue:`"),
            ("{ min: 1, max: 4, target: 3, queue: jobs }", "only `metric: queue_depth` reads a queue"),
            ("{ min: 1, max: 4, target: 3, metric: cpu }", "unknown metric"),
        ];
        for (replicas, expected) in cases {
            let err = load(replicas).expect_err(replicas);
            assert!(err.contains(expected) && err.contains("t.yaml"), "{replicas}: {err}");
        }
    }
}
