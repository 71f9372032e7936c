//! Exit codes and the JSON error document: the contract CI scripts read from a run of scale.
//!
//! `plan --detailed-exitcode` gives 2 the meaning "changes pending", so nothing else may exit
//! 2: a command line that makes no sense exits [`USAGE`] (64, `EX_USAGE` from sysexits.h),
//! never clap's default 2.

use serde::Serialize;

/// Success (for `plan --detailed-exitcode`: nothing to do).
pub const OK: u8 = 0;
/// Bad input, an engine failure or a failed apply.
pub const FAILURE: u8 = 1;
/// `plan --detailed-exitcode` only: there are changes to apply.
pub const CHANGES: u8 = 2;
/// The command line itself is wrong (unknown flag, missing argument, flags that exclude each
/// other): `EX_USAGE`.
pub const USAGE: u8 = 64;
/// Interrupted by Ctrl-C.
pub const INTERRUPTED: u8 = 130;

/// What kind of failure ended a run: the `kind` of the JSON error document, so CI can tell
/// "fix your command line" from "fix your file" from "fix your engine" without reading text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The command line (exit 64).
    Usage,
    /// A file: the blueprint, its `.env`, an env file, a build context.
    Input,
    /// The container engine could not be reached or refused a request.
    Engine,
    /// The project lock could not be taken.
    Lock,
    /// Anything else that stopped the command.
    Failed,
}

impl ErrorKind {
    /// The process exit code for a failure of this kind.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Usage => USAGE,
            _ => FAILURE,
        }
    }
}

/// A command line that parses but makes no sense (for example a flag that does not apply to
/// the chosen action): exits [`USAGE`] like a clap error.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    pub message: String,
    pub hint: Option<String>,
}

impl UsageError {
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        UsageError { message: message.into(), hint: Some(hint.into()) }
    }
}

/// The one JSON document a failed run prints on stdout under `--output json` when the command
/// had not printed its own: `{"error": {"message", "hint", "kind"}}`.
pub fn error_document(kind: ErrorKind, message: &str, hint: Option<&str>) -> serde_json::Value {
    serde_json::json!({ "error": { "message": message, "hint": hint, "kind": kind } })
}

/// Whether the raw arguments ask for JSON output; used when clap could not parse them, so
/// even a usage error is one JSON document on stdout for a caller that asked for JSON.
pub fn args_ask_for_json<I, S>(args: I) -> bool
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let args: Vec<String> = args.into_iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect();
    args.iter()
        .enumerate()
        .any(|(i, a)| a == "--output=json" || (a == "--output" && args.get(i + 1).is_some_and(|v| v == "json")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_never_the_changes_code() {
        assert_ne!(ErrorKind::Usage.exit_code(), CHANGES);
        assert_eq!(ErrorKind::Usage.exit_code(), 64);
        for kind in [ErrorKind::Input, ErrorKind::Engine, ErrorKind::Lock, ErrorKind::Failed] {
            assert_eq!(kind.exit_code(), FAILURE, "{kind:?}");
        }
    }

    #[test]
    fn the_error_document_has_message_hint_and_kind() {
        let doc = error_document(ErrorKind::Engine, "no engine", Some("start it"));
        assert_eq!(doc["error"]["message"], "no engine");
        assert_eq!(doc["error"]["hint"], "start it");
        assert_eq!(doc["error"]["kind"], "engine");
        assert!(error_document(ErrorKind::Usage, "x", None)["error"]["hint"].is_null());
    }

    #[test]
    fn json_is_detected_in_raw_arguments() {
        assert!(args_ask_for_json(["scale", "plan", "--output", "json", "--typo"]));
        assert!(args_ask_for_json(["scale", "--output=json"]));
        assert!(!args_ask_for_json(["scale", "--output", "human", "json"]));
        assert!(!args_ask_for_json(["scale", "json"]));
    }
}
