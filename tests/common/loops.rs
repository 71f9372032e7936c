//! Background request loops that keep reading or writing while something changes underneath
//! (a rolling update, a killed server, a failover), bounded in requests and time.

use std::sync::Mutex;
use std::time::Duration;

use super::http::http;

/// One request of a [`ClientLoop`].
#[derive(Debug, Clone)]
pub struct Sample {
    /// When the answer (or the error) came.
    pub at: std::time::Instant,
    /// `None`: no HTTP answer at all (`error` says why).
    pub status: Option<u16>,
    /// How long the request took.
    pub took: Duration,
    pub version: Option<String>,
    pub served_by: Option<String>,
    pub db_role: Option<String>,
    pub error: Option<String>,
}

impl Sample {
    /// Anything but a `200`.
    pub fn failed(&self) -> bool {
        self.status != Some(200)
    }
}

/// Why a [`ClientLoop`] or [`WriteLoop`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopEnd {
    /// [`ClientLoop::stop`] was called.
    Stopped,
    /// It sent its maximum number of requests.
    Count,
    /// Its deadline passed.
    Deadline,
}

/// What a [`ClientLoop`] saw.
#[derive(Debug, Clone)]
pub struct LoopReport {
    pub samples: Vec<Sample>,
    pub ended: LoopEnd,
}

impl LoopReport {
    /// The requests that did not answer `200`.
    pub fn failures(&self) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.failed()).collect()
    }

    /// Every `X-App-Version` seen on a `200`.
    pub fn versions(&self) -> std::collections::BTreeSet<String> {
        self.samples.iter().filter(|s| !s.failed()).filter_map(|s| s.version.clone()).collect()
    }

    /// The answers that came after `instant`.
    pub fn after(&self, instant: std::time::Instant) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.at > instant).collect()
    }

    /// The slowest request, and the median.
    pub fn latency(&self) -> (Duration, Duration) {
        let mut took: Vec<Duration> = self.samples.iter().map(|s| s.took).collect();
        took.sort();
        (took.last().copied().unwrap_or_default(), took.get(took.len() / 2).copied().unwrap_or_default())
    }
}

/// A background thread that GETs `127.0.0.1:port` + `path` over and over, `pause` apart,
/// until [`ClientLoop::stop`], `max_requests` or `deadline`, whichever comes first, recording
/// every answer. Dropping it without `stop` stops it too.
pub struct ClientLoop(BoundedLoop<Sample>);

impl ClientLoop {
    pub fn start(port: u16, path: &str, pause: Duration, max_requests: usize, deadline: Duration) -> ClientLoop {
        let path = path.to_string();
        ClientLoop(BoundedLoop::start(pause, max_requests, deadline, move |_| {
            let started = std::time::Instant::now();
            match http(port, "GET", &path, None) {
                Ok(r) => Sample {
                    at: std::time::Instant::now(),
                    status: Some(r.status),
                    took: started.elapsed(),
                    version: r.header("X-App-Version").map(str::to_string),
                    served_by: r.header("X-Served-By").map(str::to_string),
                    db_role: r.header("X-Db-Role").map(str::to_string),
                    error: (r.status != 200).then(|| r.body.clone()),
                },
                Err(e) => Sample {
                    at: std::time::Instant::now(),
                    status: None,
                    took: started.elapsed(),
                    version: None,
                    served_by: None,
                    db_role: None,
                    error: Some(e.to_string()),
                },
            }
        }))
    }

    /// How many answers came after `instant` so far.
    pub fn answers_after(&self, instant: std::time::Instant) -> usize {
        self.0.records().iter().filter(|s| s.at > instant).count()
    }

    /// Whether the loop is still sending (not stopped, out of requests or past its deadline).
    pub fn running(&self) -> bool {
        self.0.running()
    }

    /// Stops the loop and returns what it saw.
    pub fn stop(self) -> LoopReport {
        let (samples, ended) = self.0.finish("the client loop");
        LoopReport { samples, ended }
    }
}

/// The thread behind [`ClientLoop`] and [`WriteLoop`]: calls `attempt(n)` for n = 0, 1, …,
/// `pause` apart, recording each result, until stopped, `max_attempts` or `deadline`,
/// whichever comes first. Dropping it stops it.
pub struct BoundedLoop<S> {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    records: std::sync::Arc<Mutex<Vec<S>>>,
    handle: Option<std::thread::JoinHandle<LoopEnd>>,
}

impl<S: Send + 'static> BoundedLoop<S> {
    pub fn start(
        pause: Duration,
        max_attempts: usize,
        deadline: Duration,
        mut attempt: impl FnMut(usize) -> S + Send + 'static,
    ) -> BoundedLoop<S> {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let records = std::sync::Arc::new(Mutex::new(Vec::new()));
        let shared = records.clone();
        let handle = std::thread::spawn(move || {
            let until = std::time::Instant::now() + deadline;
            let mut sent = 0;
            loop {
                if flag.load(Ordering::SeqCst) {
                    break LoopEnd::Stopped;
                }
                if sent >= max_attempts {
                    break LoopEnd::Count;
                }
                if std::time::Instant::now() >= until {
                    break LoopEnd::Deadline;
                }
                let record = attempt(sent);
                sent += 1;
                shared.lock().unwrap_or_else(|e| e.into_inner()).push(record);
                std::thread::sleep(pause);
            }
        });
        BoundedLoop { stop, records, handle: Some(handle) }
    }

    /// What it recorded so far.
    pub fn records(&self) -> std::sync::MutexGuard<'_, Vec<S>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn running(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Stops the loop; everything it recorded, and why it ended.
    pub fn finish(mut self, what: &str) -> (Vec<S>, LoopEnd) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let ended = self.handle.take().expect("stopped once").join().unwrap_or_else(|_| panic!("{what} panicked"));
        (std::mem::take(&mut *self.records()), ended)
    }
}

impl<S> Drop for BoundedLoop<S> {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// One POST of a [`WriteLoop`].
#[derive(Debug, Clone)]
pub struct WriteSample {
    /// The id the POST asked for (every attempt uses a new one).
    pub id: u64,
    pub started: std::time::Instant,
    pub at: std::time::Instant,
    /// `None`: no HTTP answer at all (`error` says why).
    pub status: Option<u16>,
    pub db_node: Option<String>,
    pub db_role: Option<String>,
    /// The stored document on a `201`, else the error body.
    pub body: String,
    pub error: Option<String>,
}

impl WriteSample {
    /// Answered `201 Created`: the write was acknowledged.
    pub fn acknowledged(&self) -> bool {
        self.status == Some(201)
    }
}

/// What a [`WriteLoop`] saw.
#[derive(Debug, Clone)]
pub struct WriteReport {
    pub writes: Vec<WriteSample>,
    pub ended: LoopEnd,
}

impl WriteReport {
    pub fn acknowledged(&self) -> Vec<&WriteSample> {
        self.writes.iter().filter(|w| w.acknowledged()).collect()
    }
}

/// The body a [`WriteLoop`] POSTs for `id`.
pub fn write_body(id: u64) -> String {
    format!(r#"{{"id":{id},"firstName":"Write","lastName":"No{id}"}}"#)
}

/// A background thread that POSTs `/users` to `127.0.0.1:port` with ids `first_id`,
/// `first_id + 1`, … (one new id per attempt, so a write whose answer was lost never comes
/// back as a conflict), `pause` apart, until [`WriteLoop::stop`], `max_requests` or
/// `deadline`. Dropping it without `stop` stops it too.
pub struct WriteLoop(BoundedLoop<WriteSample>);

impl WriteLoop {
    pub fn start(port: u16, first_id: u64, pause: Duration, max_requests: usize, deadline: Duration) -> WriteLoop {
        WriteLoop(BoundedLoop::start(pause, max_requests, deadline, move |n| {
            let id = first_id + n as u64;
            let started = std::time::Instant::now();
            match http(port, "POST", "/users", Some(&write_body(id))) {
                Ok(r) => WriteSample {
                    id,
                    started,
                    at: std::time::Instant::now(),
                    status: Some(r.status),
                    db_node: r.header("X-Db-Node").map(str::to_string),
                    db_role: r.header("X-Db-Role").map(str::to_string),
                    error: (r.status != 201).then(|| r.body.clone()),
                    body: r.body,
                },
                Err(e) => WriteSample {
                    id,
                    started,
                    at: std::time::Instant::now(),
                    status: None,
                    db_node: None,
                    db_role: None,
                    body: String::new(),
                    error: Some(e.to_string()),
                },
            }
        }))
    }

    /// How many writes were acknowledged after `instant` so far.
    pub fn acknowledged_after(&self, instant: std::time::Instant) -> usize {
        self.0.records().iter().filter(|w| w.acknowledged() && w.at > instant).count()
    }

    /// Whether the loop is still sending.
    pub fn running(&self) -> bool {
        self.0.running()
    }

    /// Stops the loop and returns what it saw.
    pub fn stop(self) -> WriteReport {
        let (writes, ended) = self.0.finish("the write loop");
        WriteReport { writes, ended }
    }
}

impl LoopReport {
    /// One line for the log: requests, failures, (with `versions`) the versions seen, the
    /// database roles that answered, latency.
    pub fn describe(&self, versions: bool) -> String {
        let (max, median) = self.latency();
        let mut by_role = std::collections::BTreeMap::new();
        for s in &self.samples {
            *by_role.entry(s.db_role.clone().unwrap_or_default()).or_insert(0) += 1;
        }
        let versions = if versions { format!(", versions {:?}", self.versions()) } else { String::new() };
        format!(
            "{} requests, {} failed{versions}, roles {by_role:?}, latency median {median:?} max {max:?}",
            self.samples.len(),
            self.failures().len()
        )
    }
}

/// Reads back every acknowledged write (`id`, stored document) over `port`, retrying each for
/// at most 30 s in all; panics if one comes back different. The ids that never came back.
pub fn lost_writes<'a>(port: u16, acked: impl IntoIterator<Item = (u64, &'a str)>) -> Vec<u64> {
    let read_until = std::time::Instant::now() + Duration::from_secs(30);
    let mut lost = Vec::new();
    for (id, stored) in acked {
        let path = format!("/users/{id}");
        let body = loop {
            match http(port, "GET", &path, None) {
                Ok(r) if r.status == 200 => break Some(r.body),
                _ if std::time::Instant::now() >= read_until => break None,
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        match body {
            Some(body) => assert_eq!(body, stored, "user {id} came back different"),
            None => lost.push(id),
        }
    }
    lost
}
