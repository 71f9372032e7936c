//! A real browser for tests: headless Chromium from Debian, driven over the DevTools protocol
//! on a pipe (`--remote-debugging-pipe`: JSON messages ended by NUL on file descriptors 3 and
//! 4), so a test keeps one page open while things change and reads what it renders, as
//! often as it likes, with no WebSocket client or driver to install. A one-shot
//! `chromium --dump-dom` cannot do this: it never returns while a page holds an event stream.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long one DevTools call may take before the test fails.
const CALL_BOUND: Duration = Duration::from_secs(30);

/// The Chromium binary: `$CHROMIUM`, else `chromium` or `chromium-browser` on PATH.
pub fn chromium_binary() -> Option<String> {
    if let Ok(path) = std::env::var("CHROMIUM") {
        return Some(path);
    }
    ["chromium", "chromium-browser"]
        .into_iter()
        .map(String::from)
        .find(|name| Command::new(name).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok())
}

/// One headless Chromium with one page, closed (and killed if need be) on drop.
pub struct Browser {
    child: Child,
    to_browser: std::io::PipeWriter,
    from_browser: Receiver<Value>,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium and opens `url` in a `width`×`height` page. Panics, saying how to
    /// install it, when there is no Chromium.
    pub fn open(url: &str, width: u32, height: u32) -> Browser {
        let binary = chromium_binary().unwrap_or_else(|| {
            panic!(
                "this test needs headless Chromium and found none: `apt-get install chromium` \
                 (scripts/test.sh installs it when run as root), or set CHROMIUM=/path/to/chromium"
            )
        });
        let profile = tempfile::tempdir().expect("a profile directory");
        let (their_read, to_browser) = std::io::pipe().expect("a pipe to the browser");
        let (from_reader, their_write) = std::io::pipe().expect("a pipe from the browser");
        let (r, w) = (their_read.as_raw_fd(), their_write.as_raw_fd());
        let mut command = Command::new(&binary);
        command
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--window-size={width},{height}"))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: between fork and exec only async-signal-safe calls (fcntl, dup2). The pipe
        // ends are first moved above 10 so that placing them on 3 and 4 cannot clobber one
        // with the other; dup2 clears close-on-exec on the copies Chromium keeps.
        unsafe {
            command.pre_exec(move || {
                let (r2, w2) = (libc::fcntl(r, libc::F_DUPFD, 10), libc::fcntl(w, libc::F_DUPFD, 10));
                if r2 < 0 || w2 < 0 || libc::dup2(r2, 3) < 0 || libc::dup2(w2, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        drop((their_read, their_write));
        let (tx, from_browser) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(from_reader);
            let mut message = Vec::new();
            while reader.read_until(0, &mut message).is_ok_and(|n| n > 0) {
                message.pop_if(|b| *b == 0);
                if let Ok(value) = serde_json::from_slice::<Value>(&message)
                    && tx.send(value).is_err()
                {
                    break;
                }
                message.clear();
            }
        });
        let mut browser =
            Browser { child, to_browser, from_browser, session: String::new(), next_id: 0, _profile: profile };
        let target = browser.call("Target.createTarget", json!({ "url": "about:blank" }));
        let target = target["targetId"].as_str().expect("a target id").to_string();
        let attached = browser.call("Target.attachToTarget", json!({ "targetId": target, "flatten": true }));
        browser.session = attached["sessionId"].as_str().expect("a session id").to_string();
        let metrics = json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false });
        browser.call("Emulation.setDeviceMetricsOverride", metrics);
        browser.call("Page.navigate", json!({ "url": url }));
        browser
    }

    /// One DevTools call on the page's session (or the browser's, before there is one);
    /// its result. Panics on an error answer or after [`CALL_BOUND`].
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&message).expect("JSON");
        bytes.push(0);
        self.to_browser.write_all(&bytes).unwrap_or_else(|e| panic!("Chromium went away ({method}): {e}"));
        let until = Instant::now() + CALL_BOUND;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.from_browser.recv_timeout(left) {
                Ok(answer) if answer["id"] == json!(id) => {
                    if let Some(error) = answer.get("error") {
                        panic!("Chromium refused {method}: {error}");
                    }
                    return answer["result"].clone();
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!("Chromium did not answer {method} within {CALL_BOUND:?}"),
                Err(RecvTimeoutError::Disconnected) => panic!("Chromium exited during {method}"),
            }
        }
    }

    /// Evaluates `expression` in the page; its value (JSON), or `Err` with the exception.
    pub fn eval(&mut self, expression: &str) -> Result<Value, String> {
        let result = self.call("Runtime.evaluate", json!({ "expression": expression, "returnByValue": true }));
        match result.get("exceptionDetails") {
            Some(e) => Err(format!("{expression}: {e}")),
            None => Ok(result["result"]["value"].clone()),
        }
    }

    /// Saves what the page shows now as a PNG.
    pub fn screenshot(&mut self, path: &std::path::Path) {
        use base64::Engine as _;
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let data = shot["data"].as_str().expect("screenshot data");
        let png = base64::engine::general_purpose::STANDARD.decode(data).expect("base64 PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let mut close = serde_json::to_vec(&json!({ "id": 0, "method": "Browser.close" })).unwrap_or_default();
        close.push(0);
        let _ = self.to_browser.write_all(&close);
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
