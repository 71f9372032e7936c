//! Bounded polling, written once for every executor step that waits on something outside
//! scale's hands (HAProxy's checks, Docker's DNS, a primary noticing a replica left).

use std::time::{Duration, Instant};

/// Asks `check` every `every` until it answers `Ok`, or until `limit` has passed since the
/// first ask; then its last `Err` (why it is not done yet) comes back. `check` runs at least
/// once.
pub async fn poll<T, W>(
    limit: Duration,
    every: Duration,
    mut check: impl AsyncFnMut() -> Result<T, W>,
) -> Result<T, W> {
    let started = Instant::now();
    loop {
        match check().await {
            Ok(done) => return Ok(done),
            Err(why) if started.elapsed() >= limit => return Err(why),
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime").block_on(f)
    }

    #[test]
    fn returns_the_first_success() {
        let mut asked = 0;
        let got = run(poll(Duration::from_secs(5), Duration::from_millis(1), async || {
            asked += 1;
            if asked == 3 { Ok(asked) } else { Err("not yet") }
        }));
        assert_eq!(got, Ok(3));
    }

    #[test]
    fn gives_up_after_the_limit_with_the_last_reason() {
        let mut asked = 0;
        let started = Instant::now();
        let got: Result<(), u32> = run(poll(Duration::from_millis(30), Duration::from_millis(5), async || {
            asked += 1;
            Err(asked)
        }));
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert!(asked >= 2, "asked again before giving up");
        assert_eq!(got, Err(asked), "the last reason comes back");
    }
}
