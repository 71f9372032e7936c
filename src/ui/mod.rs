//! The one module that talks to the terminal: how output looks in each mode.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

pub mod key_numbers;
pub mod page;
pub mod progress;
pub mod projects;
pub mod status;

/// Whether this process has printed a JSON document on stdout: a failure after that adds no
/// second document (see `cli::failure`).
static JSON_PRINTED: AtomicBool = AtomicBool::new(false);

/// Whether a JSON document was printed on stdout so far.
pub fn json_printed() -> bool {
    JSON_PRINTED.load(Ordering::Relaxed)
}

/// How results and progress are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Spinners and live lines (stderr is a terminal).
    Tty,
    /// One plain line per event (logs, CI without `--output json`).
    Plain,
    /// JSON documents and JSON lines on stdout.
    Json,
}

/// Output settings derived from the global flags and the terminal.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub mode: Mode,
    pub quiet: bool,
    pub color: bool,
}

impl Ui {
    /// Picks the mode: JSON when asked, spinners only on a terminal.
    pub fn new(json: bool, quiet: bool, no_color: bool) -> Self {
        let tty = std::io::stderr().is_terminal();
        let mode = if json {
            Mode::Json
        } else if tty && !quiet {
            Mode::Tty
        } else {
            Mode::Plain
        };
        let color = tty && !no_color && std::env::var_os("NO_COLOR").is_none();
        Ui { mode, quiet, color }
    }

    pub fn is_json(&self) -> bool {
        self.mode == Mode::Json
    }

    /// Prints a line of human output unless quiet or JSON.
    pub fn say(&self, text: impl AsRef<str>) {
        if !self.quiet && !self.is_json() {
            println!("{}", text.as_ref());
        }
    }

    /// Prints one JSON value as a line (JSON mode only).
    pub fn json(&self, value: &serde_json::Value) {
        if self.is_json() {
            println!("{value}");
            JSON_PRINTED.store(true, Ordering::Relaxed);
        }
    }

    /// Wraps text in an ANSI style when colour is on.
    pub fn paint(&self, text: &str, code: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }
}
