//! How a failed run ends: the human text on stderr, under `--output json` one JSON document on
//! stdout (unless the command already printed its own), and the exit code of its kind.

use crate::engine::EngineError;
use crate::engine::lock::LockError;
use crate::exit::{ErrorKind, UsageError, error_document};
use crate::ops::failover::FailoverError;

use super::Reported;

/// What a failure was, for the exit code and the error document: classified by the error's
/// type, never by its wording.
#[derive(Debug)]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
    /// The problems were already printed (on stderr, or as the command's JSON document).
    pub reported: bool,
}

impl Failure {
    /// Classifies an error that ended a command.
    pub fn of(err: &anyhow::Error) -> Failure {
        let message = format!("{err:#}");
        if let Some(reported) = err.downcast_ref::<Reported>() {
            return Failure { kind: ErrorKind::Input, message: reported.0.clone(), hint: None, reported: true };
        }
        let (kind, hint) = if let Some(usage) = err.downcast_ref::<UsageError>() {
            (ErrorKind::Usage, usage.hint.clone())
        } else if let Some(lock) = err.chain().find_map(|e| e.downcast_ref::<LockError>()) {
            (ErrorKind::Lock, lock.hint())
        } else if let Some(engine) = err.chain().find_map(|e| e.downcast_ref::<EngineError>()) {
            (ErrorKind::Engine, engine.hint())
        } else if let Some(failover) = err.chain().find_map(|e| e.downcast_ref::<FailoverError>()) {
            // A failover's engine error is transparent (printed once), so it is not a link of
            // its own in the chain: the failover error gives its hint and kind.
            let kind = if failover.is_engine() { ErrorKind::Engine } else { ErrorKind::Failed };
            (kind, failover.hint())
        } else {
            (ErrorKind::Failed, None)
        };
        Failure { kind, message, hint, reported: false }
    }

    /// Prints the failure (stderr; stdout too under JSON when nothing was printed there) and
    /// returns the exit code.
    pub fn finish(self, json: bool) -> u8 {
        if !self.reported {
            eprintln!("error: {}", self.message);
            if let Some(hint) = &self.hint {
                eprintln!("  hint: {hint}");
            }
        }
        if json && !crate::ui::json_printed() {
            println!("{}", error_document(self.kind, &self.message, self.hint.as_deref()));
        }
        self.kind.exit_code()
    }
}

/// A clap error: help and version are printed as asked (exit 0); anything else is a usage
/// error, exit 64, and under `--output json` also one JSON document on stdout.
pub fn usage_failure(err: &clap::Error, json: bool) -> u8 {
    use clap::error::ErrorKind as Clap;
    if matches!(err.kind(), Clap::DisplayHelp | Clap::DisplayVersion) {
        let _ = err.print();
        return crate::exit::OK;
    }
    let _ = err.print();
    if json {
        let rendered = err.render().to_string();
        let message = rendered.lines().next().unwrap_or("invalid command line").trim_start_matches("error: ");
        println!("{}", error_document(ErrorKind::Usage, message, Some("see `scale --help`")));
    }
    crate::exit::USAGE
}
