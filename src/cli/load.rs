//! `scale load URL`: a small load generator for the autoscaling walk. It sends GET requests
//! at a fixed rate (open loop: request i is due at i / rate seconds, whatever the answers
//! take) with at most `--concurrency` in flight, for `--duration` or `--requests`, whichever
//! ends first, and prints the rate achieved, latency percentiles, status codes and how many
//! answers each server gave (`X-Served-By`). For safety it only targets this machine's
//! loopback on a port the project publishes. Plain tokio TCP with HTTP/1.1 and
//! `Connection: close`: one connection per request, as a stream of distinct users would.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::load_report::{Outcome, Target, parse_target, render, summarize};
use super::{Global, connect, project_of};
use crate::ui::Ui;

/// The bounds of one run, whatever the flags say.
const MAX_RATE: u32 = 2_000;
const MAX_CONCURRENCY: u32 = 256;
const MAX_DURATION: Duration = Duration::from_secs(600);
const MAX_REQUESTS: u64 = 200_000;
/// One request may take this long before it counts as failed ("timed out").
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of an answer that is read (status line and headers are all that is used).
const MAX_ANSWER: usize = 1 << 20;

/// Arguments of `scale load`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to request: `localhost:8080/users/12` (only localhost, 127.0.0.1 or [::1], on a
    /// port the project publishes).
    pub url: String,
    /// Requests per second (1 to 2000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=MAX_RATE as i64))]
    pub rate: u32,
    /// Requests in flight at most (1 to 256); when all are busy the rate falls behind.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=MAX_CONCURRENCY as i64))]
    pub concurrency: u32,
    /// How long to send (at most 10m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Stop after this many requests (at most 200000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_REQUESTS))]
    pub requests: Option<u64>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = crate::model::duration::parse(text)?;
    if d.is_zero() || d > MAX_DURATION {
        return Err(format!("{text}: the duration must be more than 0 and at most 10m"));
    }
    Ok(d)
}

/// Checks the target, runs the load and prints the report; exit 1 when a request failed.
pub async fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let target = parse_target(&args.url).map_err(anyhow::Error::msg)?;
    // The project: `-p`, or the blueprint named by the global `-f FILE` (or compose.yaml here).
    let project = project_of(None, global, ui)?;
    let engine = connect().await?;
    let observed =
        crate::engine::observe_project(&engine, &project).await.context("cannot read the project's state")?;
    let published: Vec<u16> = observed.endpoints().iter().map(|e| e.host_port).collect();
    if !published.contains(&target.port) {
        bail!(
            "refusing to send load to port {}: it is not a port project {project} publishes (its ports: {})",
            target.port,
            if published.is_empty() { "none running".to_string() } else { format!("{published:?}") }
        );
    }
    let count =
        args.requests.unwrap_or(u64::MAX).min((args.duration.as_secs_f64() * f64::from(args.rate)).ceil() as u64);
    if !ui.is_json() {
        ui.say(format!(
            "sending {count} GET {} at {} req/s, at most {} in flight, for at most {}",
            args.url,
            args.rate,
            args.concurrency,
            crate::model::duration::format(args.duration)
        ));
    }
    let (outcomes, elapsed) = generate(Arc::new(target), args.rate, args.concurrency, count, args.duration).await;
    let report = summarize(&outcomes, elapsed);
    if ui.is_json() {
        ui.json(&serde_json::to_value(&report).context("the report serializes")?);
    } else {
        print!("{}", render(&report));
    }
    Ok(if report.failed > 0 { 1 } else { 0 })
}

/// Sends `count` requests at `rate` per second, stopping at `limit` in any case.
async fn generate(
    target: Arc<Target>,
    rate: u32,
    concurrency: u32,
    count: u64,
    limit: Duration,
) -> (Vec<Outcome>, Duration) {
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency as usize));
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..count {
        let due = start + Duration::from_secs_f64(i as f64 / f64::from(rate));
        if due.duration_since(start) >= limit {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        if start.elapsed() >= limit {
            break;
        }
        let (target, outcomes) = (target.clone(), outcomes.clone());
        tasks.push(tokio::spawn(async move {
            let outcome = request(&target).await;
            drop(permit);
            outcomes.lock().expect("no task panics holding it").push(outcome);
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = start.elapsed();
    let outcomes = std::mem::take(&mut *outcomes.lock().expect("no task panics holding it"));
    (outcomes, elapsed)
}

/// One GET, bounded by [`REQUEST_TIMEOUT`].
async fn request(target: &Target) -> Outcome {
    let t0 = Instant::now();
    let answer = tokio::time::timeout(REQUEST_TIMEOUT, exchange(target)).await;
    let latency = t0.elapsed();
    let (status, served_by) = match answer {
        Ok(Ok(head)) => match parse_head(&head) {
            Some((status, served_by)) => (Ok(status), served_by),
            None => (Err("malformed answer".to_string()), None),
        },
        Ok(Err(err)) => (Err(error_kind(&err)), None),
        Err(_) => (Err("timed out".to_string()), None),
    };
    Outcome { status, latency, served_by }
}

async fn exchange(target: &Target) -> std::io::Result<Vec<u8>> {
    let mut stream = tokio::net::TcpStream::connect((target.ip, target.port)).await?;
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: scale-load\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path, target.host_header
    );
    stream.write_all(head.as_bytes()).await?;
    let mut answer = Vec::new();
    (&mut stream).take(MAX_ANSWER as u64).read_to_end(&mut answer).await?;
    Ok(answer)
}

/// Names an I/O error by its kind, never by its wording.
fn error_kind(err: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match err.kind() {
        ConnectionRefused => "connection refused".into(),
        ConnectionReset | ConnectionAborted | BrokenPipe => "connection reset".into(),
        UnexpectedEof => "closed early".into(),
        other => format!("error ({other:?})"),
    }
}

/// The status code and `X-Served-By` of an HTTP answer.
fn parse_head(answer: &[u8]) -> Option<(u16, Option<String>)> {
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(answer.len());
    let head = std::str::from_utf8(&answer[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let served_by = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("x-served-by"))
        .map(|(_, v)| v.trim().to_string());
    Some((status, served_by))
}

#[cfg(test)]
mod tests {
    use super::parse_head;

    #[test]
    fn the_head_gives_status_and_server() {
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nx-served-by: shop-web-2\r\n\r\n{}";
        assert_eq!(parse_head(answer), Some((200, Some("shop-web-2".into()))));
        assert_eq!(parse_head(b"HTTP/1.0 503 Service Unavailable\r\n\r\n"), Some((503, None)));
        assert_eq!(parse_head(b"garbage"), None);
    }
}
