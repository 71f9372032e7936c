//! The key numbers block of `scale status` (stage 10 on): what an operator looks at first,
//! in one glance, without opening the metrics store's UI. Pure formatting, so it is
//! snapshot-tested without an engine.

use crate::engine::key_numbers::{KeyNumbers, KeyNumbersReport};

/// The lines `status` prints for each metrics store (indented under a heading).
pub fn key_number_lines(reports: &[KeyNumbersReport]) -> Vec<String> {
    let mut out = Vec::new();
    for r in reports {
        out.push(format!("Key numbers (from {}, last minute):", r.container));
        match (&r.numbers, &r.error) {
            (Some(n), _) => out.extend(numbers(n).into_iter().map(|l| format!("  {l}"))),
            (None, Some(err)) => out.push(format!("  (unavailable: {err})")),
            (None, None) => out.push("  (unavailable)".to_string()),
        }
    }
    out
}

fn numbers(n: &KeyNumbers) -> Vec<String> {
    let servers = match (n.web_up, n.web_servers) {
        (Some(up), Some(all)) => format!("{up}/{all} up"),
        (Some(up), None) => format!("{up} up"),
        _ => "-".to_string(),
    };
    let firing = if n.firing.is_empty() { "none".to_string() } else { n.firing.join(", ") };
    vec![
        format!("{:<16} {}", "requests", opt(n.request_rate, |r| format!("{r:.1}/s"))),
        format!("{:<16} {}", "errors (5xx)", opt(n.error_rate, |r| format!("{:.1}%", r * 100.0))),
        format!("{:<16} {}", "p95 latency", opt(n.p95_seconds, |s| format!("{:.0} ms", s * 1000.0))),
        format!("{:<16} {}", "replication lag", opt(n.replication_lag_bytes, bytes)),
        format!("{:<16} {}", "queue depth", opt(n.queue_depth, |d| format!("{d:.0}"))),
        format!("{:<16} {servers}", "web servers"),
        format!("{:<16} {firing}", "alerts firing"),
    ]
}

/// A number, or `-` when the store has none (no traffic yet, no replica, no queue).
fn opt(value: Option<f64>, show: impl Fn(f64) -> String) -> String {
    value.filter(|v| v.is_finite()).map_or_else(|| "-".to_string(), show)
}

fn bytes(b: f64) -> String {
    match b {
        b if b >= 1024.0 * 1024.0 => format!("{:.1} MiB", b / (1024.0 * 1024.0)),
        b if b >= 1024.0 => format!("{:.1} KiB", b / 1024.0),
        b => format!("{b:.0} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(numbers: Option<KeyNumbers>, error: Option<&str>) -> KeyNumbersReport {
        KeyNumbersReport {
            container: "shop-prometheus-1".into(),
            service: "prometheus".into(),
            numbers,
            error: error.map(String::from),
        }
    }

    #[test]
    fn a_busy_project_with_an_alert() {
        let n = KeyNumbers {
            request_rate: Some(41.25),
            error_rate: Some(0.0125),
            p95_seconds: Some(0.0873),
            replication_lag_bytes: Some(3.5 * 1024.0 * 1024.0),
            queue_depth: None,
            web_up: Some(1),
            web_servers: Some(2),
            firing: vec!["WebServerDown shop-web-1".into()],
        };
        insta::assert_snapshot!(key_number_lines(&[report(Some(n), None)]).join("\n"));
    }

    #[test]
    fn a_quiet_project_and_a_store_that_does_not_answer() {
        let quiet = KeyNumbers {
            replication_lag_bytes: Some(0.0),
            web_up: Some(2),
            web_servers: Some(2),
            ..Default::default()
        };
        let lines = key_number_lines(&[report(Some(quiet), None), report(None, Some("scale-key-numbers exited 7: "))]);
        insta::assert_snapshot!(lines.join("\n"));
    }
}
