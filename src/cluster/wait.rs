//! What `cluster up` waits for, as data: which condition, how long at most, how often to look.
//! The conditions are checked by [`super::life`], which knows how to ask; here is only the loop.

use std::future::Future;
use std::time::{Duration, Instant};

use super::ClusterError;

/// A condition the cluster must reach before `up` goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitFor {
    /// The node's engine answers its API (`docker version` inside the node for a worker,
    /// a ping on the published port for the manager).
    EngineAnswers { node: String },
    /// The manager lists `count` nodes, every one `Ready`.
    NodesReady { count: usize },
}

impl std::fmt::Display for WaitFor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitFor::EngineAnswers { node } => write!(f, "the engine in {node} to answer"),
            WaitFor::NodesReady { count } => write!(f, "{count} swarm nodes to be Ready"),
        }
    }
}

/// A condition with its bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub what: WaitFor,
    pub timeout: Duration,
    pub interval: Duration,
}

impl Wait {
    /// A node engine starts in a few seconds, longer when the machine is busy.
    pub fn engine(node: &str) -> Wait {
        Wait {
            what: WaitFor::EngineAnswers { node: node.to_string() },
            timeout: Duration::from_secs(90),
            interval: Duration::from_millis(500),
        }
    }

    /// Joined workers turn Ready after their first heartbeat.
    pub fn nodes_ready(count: usize) -> Wait {
        Wait { what: WaitFor::NodesReady { count }, timeout: Duration::from_secs(90), interval: Duration::from_secs(1) }
    }

    /// Calls `check` every `interval` until it says `Ok(true)`; its `Ok(false)` and errors
    /// are both "not yet" (an engine that is starting refuses connections), and the last
    /// one is reported when the time is up.
    pub async fn until<F, Fut>(&self, mut check: F) -> Result<(), ClusterError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(bool, String), ClusterError>>,
    {
        let start = Instant::now();
        loop {
            let last = match check().await {
                Ok((true, _)) => return Ok(()),
                Ok((false, seen)) => seen,
                Err(e) => e.to_string(),
            };
            if start.elapsed() >= self.timeout {
                return Err(ClusterError::Timeout { what: self.what.to_string(), waited: self.timeout, last });
            }
            tokio::time::sleep(self.interval).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_condition_that_never_holds_times_out_with_what_was_last_seen() {
        let wait = Wait {
            what: WaitFor::NodesReady { count: 3 },
            timeout: Duration::from_millis(30),
            interval: Duration::from_millis(10),
        };
        let err = wait.until(|| async { Ok((false, "2 of 3 Ready".to_string())) }).await.unwrap_err();
        assert_eq!(err.to_string(), "gave up after 0 s waiting for 3 swarm nodes to be Ready; last seen: 2 of 3 Ready");
    }

    #[tokio::test]
    async fn errors_count_as_not_yet() {
        let wait = Wait::engine("n1");
        let mut calls = 0;
        wait.until(|| {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 { Err(ClusterError::NotFound { name: "x".into() }) } else { Ok((true, String::new())) }
            }
        })
        .await
        .unwrap();
        assert_eq!(calls, 3);
    }
}
