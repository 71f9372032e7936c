//! Driving the built `scale` binary: one builder, [`Scale`], for every way a test runs it.
//!
//! ```ignore
//! Scale::new(&["apply", "--yes", file]).run().success();              // to the end, 5-minute bound
//! Scale::new(&["plan", file]).env("DOCKER_HOST", addr).run();        // with a variable
//! Scale::new(&["apply", "--yes", file]).envs(env).isolated().run();  // stage variables only from `env`
//! Scale::new(&["watch", file]).isolated().spawn();                   // in the background, lines recorded
//! Scale::new(&["apply", "--yes", file]).command().spawn();           // a plain `Command` to wrap
//! ```

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// The variables the stage files interpolate; [`Scale::isolated`] removes them from the
/// child's environment so the test's own shell cannot change what a stage means.
pub const STAGE_VARS: &[&str] = &["APP_VERSION", "WEB_REPLICAS", "DB_PASSWORD"];

/// How long [`Scale::run`] lets the binary run unless [`Scale::timeout`] says otherwise.
pub const RUN_BOUND: Duration = Duration::from_secs(300);

/// One invocation of the built `scale` binary, to configure and then run, spawn, or turn into
/// a [`Command`]. Every invocation has stdin closed and `NO_COLOR=1` set.
#[derive(Debug, Clone)]
pub struct Scale {
    args: Vec<String>,
    env: Vec<(String, String)>,
    unset: Vec<String>,
    isolated: bool,
    wrapper: Vec<String>,
    bound: Duration,
}

impl Scale {
    /// `scale ARGS`, with the test's environment.
    pub fn new(args: &[&str]) -> Scale {
        Scale {
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
            unset: Vec::new(),
            isolated: false,
            wrapper: Vec::new(),
            bound: RUN_BOUND,
        }
    }

    /// Sets one environment variable for the child.
    pub fn env(mut self, key: &str, value: &str) -> Scale {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Sets each `(key, value)` for the child.
    pub fn envs(mut self, env: &[(&str, &str)]) -> Scale {
        self.env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self
    }

    /// Removes `key` from the inherited environment.
    pub fn env_remove(mut self, key: &str) -> Scale {
        self.unset.push(key.to_string());
        self
    }

    /// Runs the binary through `wrapper` (a program and its arguments, e.g. `setpriv
    /// --reuid=nobody`), which gets the binary's path and `ARGS` after its own.
    pub fn wrapped_in(mut self, wrapper: &[&str]) -> Scale {
        self.wrapper = wrapper.iter().map(|a| a.to_string()).collect();
        self
    }

    /// Removes [`STAGE_VARS`] from the inherited environment first, so only [`Scale::env`] and
    /// [`Scale::envs`] set them.
    pub fn isolated(mut self) -> Scale {
        self.isolated = true;
        self
    }

    /// How long [`Scale::run`] waits before killing the child (default [`RUN_BOUND`]).
    pub fn timeout(mut self, bound: Duration) -> Scale {
        self.bound = bound;
        self
    }

    /// The command line, for messages.
    pub fn line(&self) -> String {
        self.args.join(" ")
    }

    /// The configured [`Command`]: stdout and stderr piped, no time bound (for tests that
    /// spawn it themselves or wrap it).
    pub fn command(&self) -> Command {
        let binary = env!("CARGO_BIN_EXE_scale");
        let mut command = match self.wrapper.split_first() {
            Some((program, wrapper_args)) => {
                let mut command = Command::new(program);
                command.args(wrapper_args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command
            .args(&self.args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if self.isolated {
            for key in STAGE_VARS {
                command.env_remove(key);
            }
        }
        for key in &self.unset {
            command.env_remove(key);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    /// Runs it to the end (killed after the bound: then `code` is `None`).
    pub fn run(self) -> ScaleRun {
        let mut command = assert_cmd::Command::from_std(self.command());
        command.timeout(self.bound);
        let started = std::time::Instant::now();
        let out = command.output().unwrap_or_else(|e| panic!("running `scale {}`: {e}", self.line()));
        ScaleRun {
            args: self.line(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: started.elapsed(),
        }
    }

    /// Starts it in the background, recording every line it prints.
    pub fn spawn(self) -> ScaleChild {
        ScaleChild::start(self.command(), self.line())
    }
}

/// What one run of the `scale` binary did.
#[derive(Debug)]
pub struct ScaleRun {
    /// The command line, for messages.
    pub args: String,
    /// The exit code (`None`: killed by a signal or the time bound).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl ScaleRun {
    /// Panics, showing both streams, unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &ScaleRun {
        assert_eq!(
            self.code,
            Some(code),
            "`scale {}` exited with {:?}, expected {code}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.args,
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless the exit code is 0.
    #[track_caller]
    pub fn success(&self) -> &ScaleRun {
        self.expect_code(0)
    }

    /// Stdout followed by stderr.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// The exit code, and stdout followed by stderr.
    pub fn code_and_output(&self) -> (Option<i32>, String) {
        (self.code, self.all())
    }

    /// Stdout parsed as one JSON document.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("`scale {}` printed no JSON document ({e}):\n{}", self.args, self.stdout))
    }

    /// Stdout parsed as JSON lines.
    #[track_caller]
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("`scale {}` printed a line that is not JSON ({e}): {l}", self.args))
            })
            .collect()
    }
}

/// Writes `yaml` to `dir/blueprint.yaml` and returns its path as a string.
pub fn write_blueprint(dir: &std::path::Path, yaml: &str) -> String {
    let path = dir.join("blueprint.yaml");
    std::fs::write(&path, yaml).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path.to_str().expect("temp paths are UTF-8").to_string()
}

/// Which stream of a [`ScaleChild`] a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line a [`ScaleChild`] printed, and when the test read it.
#[derive(Debug, Clone)]
pub struct Line {
    pub at: std::time::Instant,
    pub stream: Stream,
    pub text: String,
}

/// The built `scale` binary running in the background (e.g. `scale watch`), started by
/// [`Scale::spawn`] (stdin closed, `NO_COLOR=1`), each output line recorded with
/// the instant it arrived (stdout is line-buffered, so that is when it was printed). Dropping
/// it SIGKILLs the process if it is still running.
pub struct ScaleChild {
    pub args: String,
    /// When it was started (the transcript's times count from here).
    pub spawned: std::time::Instant,
    child: std::process::Child,
    lines: std::sync::Arc<Mutex<Vec<Line>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl ScaleChild {
    /// Spawns `command` (built by [`Scale::spawn`]) and starts reading both streams.
    fn start(mut command: Command, args: String) -> ScaleChild {
        let spawned = std::time::Instant::now();
        let mut child = command.spawn().unwrap_or_else(|e| panic!("spawning `scale {args}`: {e}"));
        let lines = std::sync::Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let stdout: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().expect("piped stdout"));
        let stderr: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().expect("piped stderr"));
        for (stream, pipe) in [(Stream::Stdout, stdout), (Stream::Stderr, stderr)] {
            let lines = lines.clone();
            readers.push(std::thread::spawn(move || {
                use std::io::BufRead;
                for text in std::io::BufReader::new(pipe).lines() {
                    let Ok(text) = text else { break };
                    let line = Line { at: std::time::Instant::now(), stream, text };
                    lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            }));
        }
        ScaleChild { args, spawned, child, lines, readers }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line so far, both streams, in arrival order.
    pub fn lines(&self) -> Vec<Line> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Everything printed so far, for failure messages: each line with the seconds since the
    /// start at which it arrived (stderr lines marked `!`).
    pub fn transcript(&self) -> String {
        self.lines()
            .iter()
            .map(|l| {
                let secs = l.at.duration_since(self.spawned).as_secs_f64();
                format!("{secs:>7.2}s {}{}\n", if l.stream == Stream::Stderr { "! " } else { "" }, l.text)
            })
            .collect()
    }

    /// The first stdout line that arrived at or after `since` and satisfies `pred`.
    pub fn find_stdout(&self, since: std::time::Instant, pred: impl Fn(&str) -> bool) -> Option<Line> {
        self.lines().into_iter().find(|l| l.stream == Stream::Stdout && l.at >= since && pred(&l.text))
    }

    /// [`ScaleChild::find_stdout`], waiting at most `limit` for such a line.
    pub fn wait_stdout(&self, since: std::time::Instant, limit: Duration, pred: impl Fn(&str) -> bool) -> Option<Line> {
        let until = std::time::Instant::now() + limit;
        loop {
            if let Some(line) = self.find_stdout(since, &pred) {
                return Some(line);
            }
            if std::time::Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGINT (what Ctrl-C sends) with `kill -INT <pid>`.
    pub fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.pid().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("kill -INT {}: {e}", self.pid()));
        assert!(status.success(), "kill -INT {} failed: {status}", self.pid());
    }

    /// Waits at most `limit` for the process to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let until = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait on the scale child") {
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return Some(status);
            }
            if std::time::Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ScaleChild {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
