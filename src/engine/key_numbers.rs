//! The project's key numbers, read from its metrics store through the engine's exec: request
//! rate, error rate, p95 latency, replication lag, queue depth and the alerts firing. A
//! container whose image names a command in [`crate::labels::METRICS`] (stage 10's
//! Prometheus) prints them as one JSON line; asking it from inside means `scale status` needs
//! no published port and no HTTP client, and works the same on a random port.

use serde::{Deserialize, Serialize};

use super::Engine;
use crate::observed::{ObservedState, RunState};

/// What a metrics store says about the project now. Every number is optional: a store with
/// no traffic yet has no rate, a project without replicas or a queue has no lag or depth.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyNumbers {
    /// Requests per second through the load balancer, over the last minute.
    pub request_rate: Option<f64>,
    /// The fraction of those answered with a 5xx status.
    pub error_rate: Option<f64>,
    /// The 95th percentile of the web servers' answer time, in seconds.
    pub p95_seconds: Option<f64>,
    /// How far the furthest replica is behind its primary, in bytes of WAL.
    pub replication_lag_bytes: Option<f64>,
    /// Messages waiting in the queue, when the project has one.
    pub queue_depth: Option<f64>,
    /// Web servers the load balancer counts UP, and in its pool.
    pub web_up: Option<u64>,
    pub web_servers: Option<u64>,
    /// The alerts firing now: the rule's name, and the server it is about, if any.
    #[serde(default)]
    pub firing: Vec<String>,
}

/// One metrics store's answer, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyNumbersReport {
    pub container: String,
    pub service: String,
    pub numbers: Option<KeyNumbers>,
    pub error: Option<String>,
}

/// The last line of the command's output that is a key-numbers JSON object.
pub fn parse_key_numbers(output: &str) -> Option<KeyNumbers> {
    output.lines().rev().find_map(|line| serde_json::from_str(line.trim()).ok())
}

/// Whether an image's label names a command that can be run without a shell.
fn plain_command(command: &str) -> bool {
    !command.is_empty() && command.chars().all(|ch| ch.is_ascii_alphanumeric() || "/_.-".contains(ch))
}

/// The key numbers of every running container whose image names a metrics command.
pub async fn key_numbers<E: Engine>(engine: &E, observed: &ObservedState) -> Vec<KeyNumbersReport> {
    let mut out = Vec::new();
    for c in observed.containers.values().filter(|c| c.state == RunState::Running) {
        let Some(command) = c.labels.get(crate::labels::METRICS) else { continue };
        let (numbers, error) = if !plain_command(command) {
            (None, Some(format!("the image's {} label is not a command name: {command:?}", crate::labels::METRICS)))
        } else {
            match engine.exec(&c.id, &c.name, std::slice::from_ref(command)).await {
                Ok(run) if run.exit_code == 0 => match parse_key_numbers(&run.output) {
                    Some(numbers) => (Some(numbers), None),
                    None => (None, Some(format!("{command} printed no key numbers: {}", run.output.trim()))),
                },
                Ok(run) => (None, Some(format!("{command} exited {}: {}", run.exit_code, run.output.trim()))),
                Err(err) => (None, Some(err.to_string())),
            }
        };
        out.push(KeyNumbersReport {
            container: c.name.clone(),
            service: c.service().unwrap_or_default().to_string(),
            numbers,
            error,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_numbers_are_read_from_the_last_json_line_with_nulls() {
        let out = "curl: warning\n{\"request_rate\":12.5,\"error_rate\":null,\"p95_seconds\":0.042,\
\"replication_lag_bytes\":0,\"queue_depth\":null,\"web_up\":1,\"web_servers\":2,\
\"firing\":[\"WebServerDown shop-web-1\"]}\n";
        let n = parse_key_numbers(out).expect("numbers");
        assert_eq!(n.request_rate, Some(12.5));
        assert_eq!(n.error_rate, None);
        assert_eq!(n.replication_lag_bytes, Some(0.0));
        assert_eq!((n.web_up, n.web_servers), (Some(1), Some(2)));
        assert_eq!(n.firing, vec!["WebServerDown shop-web-1".to_string()]);
        assert_eq!(parse_key_numbers("curl: (7) Failed to connect\n"), None);
    }

    #[test]
    fn only_plain_command_names_are_run() {
        assert!(plain_command("scale-key-numbers") && plain_command("/usr/local/bin/x_y.sh"));
        for bad in ["", "a b", "x;rm", "$(id)"] {
            assert!(!plain_command(bad), "{bad}");
        }
    }
}
