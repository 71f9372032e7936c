//! The pure half of `scale load`: which URLs it may target, and the report (rate, latency
//! percentiles, status codes, the split by `X-Served-By`). No I/O here, so it is unit-tested.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// A target `scale load` accepts: plain HTTP to this machine's loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// What to connect to (`127.0.0.1` or `::1`).
    pub ip: std::net::IpAddr,
    pub host_header: String,
    pub port: u16,
    pub path: String,
}

/// Parses `[http://]host[:port][/path]`, accepting only loopback hosts: a load generator
/// pointed at someone else's server is an attack, so no other host is ever contacted.
pub fn parse_target(url: &str) -> Result<Target, String> {
    let rest = match url.split_once("://") {
        Some(("http", rest)) => rest,
        Some((scheme, _)) => return Err(format!("{url}: only http:// URLs are supported, not {scheme}://")),
        None => url,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !p.contains(']') => {
            (h, p.parse::<u16>().map_err(|_| format!("{url}: the port {p:?} is not a number from 1 to 65535"))?)
        }
        _ => (authority, 80),
    };
    let ip = match host.trim_start_matches('[').trim_end_matches(']') {
        "localhost" | "127.0.0.1" => std::net::IpAddr::from([127, 0, 0, 1]),
        "::1" => std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        other => {
            return Err(format!(
                "refusing to send load to {other:?}: `scale load` only targets this machine \
                 (localhost, 127.0.0.1 or [::1]) on a port the project publishes"
            ));
        }
    };
    if path.contains(char::is_whitespace) {
        return Err(format!("{url}: the path must not contain spaces"));
    }
    Ok(Target { ip, host_header: authority.to_string(), port, path: path.to_string() })
}

/// One request's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The HTTP status, or why there was none (refused, timed out, malformed).
    pub status: Result<u16, String>,
    pub latency: Duration,
    pub served_by: Option<String>,
}

impl Outcome {
    /// A request that failed: no answer, or a 5xx.
    pub fn failed(&self) -> bool {
        self.status.as_ref().map_or(true, |s| *s >= 500)
    }
}

/// What `scale load` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub requests: usize,
    pub failed: usize,
    pub seconds: f64,
    pub requests_per_second: f64,
    pub latency_ms: Latency,
    /// `200`, `503`, or the error (`connection refused`, `timed out`) and how many.
    pub statuses: BTreeMap<String, usize>,
    /// Answers per `X-Served-By` (`-` for none).
    pub served_by: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// The `q`-quantile (0..=1) of sorted values, nearest rank; 0 for none.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Sums the outcomes of a run that took `elapsed`.
pub fn summarize(outcomes: &[Outcome], elapsed: Duration) -> Report {
    let mut latencies: Vec<Duration> = outcomes.iter().map(|o| o.latency).collect();
    latencies.sort_unstable();
    let ms = |q: f64| (percentile(&latencies, q).as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
    let mut statuses = BTreeMap::new();
    let mut served_by = BTreeMap::new();
    for o in outcomes {
        let key = match &o.status {
            Ok(code) => code.to_string(),
            Err(why) => why.clone(),
        };
        *statuses.entry(key).or_insert(0) += 1;
        *served_by.entry(o.served_by.clone().unwrap_or_else(|| "-".into())).or_insert(0) += 1;
    }
    let seconds = elapsed.as_secs_f64().max(1e-9);
    Report {
        requests: outcomes.len(),
        failed: outcomes.iter().filter(|o| o.failed()).count(),
        seconds: (seconds * 100.0).round() / 100.0,
        requests_per_second: ((outcomes.len() as f64 / seconds) * 10.0).round() / 10.0,
        latency_ms: Latency { p50: ms(0.5), p90: ms(0.9), p99: ms(0.99), max: ms(1.0) },
        statuses,
        served_by,
    }
}

/// The report in words.
pub fn render(r: &Report) -> String {
    let mut out = format!(
        "{} requests in {:.2}s: {:.1} req/s, {} failed\nlatency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n",
        r.requests,
        r.seconds,
        r.requests_per_second,
        r.failed,
        r.latency_ms.p50,
        r.latency_ms.p90,
        r.latency_ms.p99,
        r.latency_ms.max
    );
    let list = |m: &BTreeMap<String, usize>| m.iter().map(|(k, n)| format!("{k}: {n}")).collect::<Vec<_>>().join(", ");
    out.push_str(&format!("status: {}\nserved by: {}\n", list(&r.statuses), list(&r.served_by)));
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Outcome, parse_target, percentile, render, summarize};

    #[test]
    fn only_loopback_http_targets_are_accepted() {
        let t = parse_target("localhost:8080/users/12").expect("loopback");
        assert_eq!((t.ip.to_string().as_str(), t.port, t.path.as_str()), ("127.0.0.1", 8080, "/users/12"));
        assert_eq!(parse_target("http://127.0.0.1:8081").expect("loopback").path, "/");
        assert_eq!(parse_target("http://[::1]:8080/x").expect("loopback v6").port, 8080);
        for bad in ["example.com:80/", "http://10.0.0.1:8080/", "https://localhost:8080/", "http://localhost:http/"] {
            assert!(parse_target(bad).is_err(), "{bad} must be refused");
        }
        assert!(parse_target("http://evil.example/").unwrap_err().contains("refusing"));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&sorted, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&sorted, 1.0), Duration::from_millis(100));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn the_report_counts_statuses_failures_and_servers() {
        let ok =
            |ms, by: &str| Outcome { status: Ok(200), latency: Duration::from_millis(ms), served_by: Some(by.into()) };
        let outcomes = vec![
            ok(10, "shop-web-1"),
            ok(20, "shop-web-2"),
            ok(30, "shop-web-1"),
            Outcome { status: Ok(503), latency: Duration::from_millis(5), served_by: None },
            Outcome { status: Err("connection refused".into()), latency: Duration::from_millis(1), served_by: None },
        ];
        let r = summarize(&outcomes, Duration::from_secs(2));
        assert_eq!((r.requests, r.failed, r.requests_per_second), (5, 2, 2.5));
        assert_eq!(r.served_by["shop-web-1"], 2);
        assert_eq!(r.statuses["503"], 1);
        let text = render(&r);
        assert!(text.contains("5 requests in 2.00s: 2.5 req/s, 2 failed"), "{text}");
        assert!(text.contains("served by: -: 2, shop-web-1: 2, shop-web-2: 1"), "{text}");
    }
}
