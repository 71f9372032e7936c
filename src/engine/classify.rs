//! The one place where an engine failure is *classified*: what the engine said ([`Cause`]:
//! its HTTP status and message, the text of a streamed error, or the client's own error) and
//! what that means for scale (a taken port, a missing image, a removal already under way,
//! whether retrying may help).
//!
//! Classification matches on status codes and structured fields first. Where the Engine API
//! carries a condition only in its message text (a port conflict is a 500 like any other; a
//! pull or a build reports its failure as a line of its progress stream; a full disk is only
//! ever words), the matching on words happens **here and nowhere else**, next to the unit
//! tests that pin the engine's wording (Docker 20.10 to 27). Callers ask the questions below;
//! they never look at the text themselves.

use std::fmt;

use bollard::errors::Error as ClientError;

use super::EngineError;

/// What the engine said when an operation failed, or why no answer came. Kept as the engine
/// gave it (status code and message apart), so that classification needs no parsing of our
/// own wording and a user still reads the engine's words.
#[derive(Debug)]
pub enum Cause {
    /// The engine answered with an error status and its message.
    Status { code: u16, message: String },
    /// The engine reported an error inside a streamed answer (a build's or a pull's progress
    /// stream), which has no status of its own: text only.
    Stream { message: String },
    /// No usable answer: the client failed (connection refused, a timeout, a broken reply).
    Client(Box<ClientError>),
    /// A problem on scale's side of the call (packing a build context, reading an archive).
    Local(String),
}

impl Cause {
    /// A cause for a condition scale found itself (and the in-memory engine's answers).
    pub fn local(message: impl Into<String>) -> Cause {
        Cause::Local(message.into())
    }

    /// The HTTP status the engine answered with, when it answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Cause::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// 404: the container, network, volume or image does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// 409: a name is taken or the object is in a state that forbids the call.
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// The engine's (or client's) words, whatever their source.
    fn text(&self) -> String {
        self.to_string()
    }
}

impl From<ClientError> for Cause {
    fn from(e: ClientError) -> Cause {
        match e {
            ClientError::DockerResponseServerError { status_code, message } => {
                Cause::Status { code: status_code, message: message.trim().to_string() }
            }
            ClientError::DockerStreamError { error } => Cause::Stream { message: error.trim().to_string() },
            other => Cause::Client(Box::new(other)),
        }
    }
}

impl fmt::Display for Cause {
    /// The engine's own words, without the client's wrapping (never its `Debug`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Status { code, message } if message.is_empty() => write!(f, "the engine answered HTTP {code}"),
            Cause::Status { message, .. } | Cause::Stream { message } | Cause::Local(message) => f.write_str(message),
            Cause::Client(e) => f.write_str(&describe(e)),
        }
    }
}

/// Readable words for a client error.
fn describe(e: &ClientError) -> String {
    match e {
        ClientError::DockerResponseServerError { message, status_code } => {
            let message = message.trim();
            if message.is_empty() { format!("the engine answered HTTP {status_code}") } else { message.to_string() }
        }
        ClientError::DockerStreamError { error } => error.trim().to_string(),
        ClientError::RequestTimeoutError => "the engine did not answer in time".to_string(),
        ClientError::SocketNotFoundError(path) => format!("no socket at {path}"),
        ClientError::UnsupportedURISchemeError { uri } => format!("unsupported address {uri}"),
        other => {
            if let Some(io) = io_error(other) {
                return match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                    std::io::ErrorKind::NotFound => "no such socket".to_string(),
                    std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                    _ => io.to_string(),
                };
            }
            // The innermost cause is usually the readable one ("connection closed before
            // message completed").
            let mut current: &dyn std::error::Error = other;
            while let Some(next) = current.source() {
                current = next;
            }
            current.to_string()
        }
    }
}

/// The I/O error under a client error, if any (refused, no socket, permission denied).
fn io_error(e: &ClientError) -> Option<&std::io::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        current = err.source();
    }
    None
}

/// Whether connecting failed because the socket refused us (not the engine being absent).
pub fn is_permission_denied(e: &ClientError) -> bool {
    io_error(e).is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
}

/// The HTTP status of a client error, when the engine answered.
pub fn status_code(e: &ClientError) -> Option<u16> {
    match e {
        ClientError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// 409 "removal of container … is already in progress": another client (`docker rm -f`, a
/// cleanup script) is removing it. It is going away, which is all a removal wants. The
/// engine gives this 409 no code of its own, so the words tell it from other conflicts.
pub fn removal_in_progress(cause: &Cause) -> bool {
    cause.is_conflict() && cause.text().contains("is already in progress")
}

/// 409 "container … is not paused": unpausing what is not paused, which counts as done.
pub fn not_paused(cause: &Cause) -> bool {
    cause.is_conflict() && cause.text().contains("is not paused")
}

/// The host port a failed start could not bind, when that is why it failed. The engine
/// reports a port conflict as a plain 500 whose message names the port ("Bind for
/// 0.0.0.0:8080 failed: port is already allocated", "listen tcp4 0.0.0.0:8080: bind: address
/// already in use"): words are all there is.
pub fn port_taken(cause: &Cause) -> Option<String> {
    let Cause::Status { message, .. } = cause else { return None };
    if !(message.contains("port is already allocated") || message.contains("address already in use")) {
        return None;
    }
    port_in_message(message)
}

/// The last `:PORT` in a message.
fn port_in_message(message: &str) -> Option<String> {
    let mut found = None;
    for (i, b) in message.bytes().enumerate() {
        if b == b':' {
            let digits: String = message[i + 1..].chars().take_while(char::is_ascii_digit).collect();
            if !digits.is_empty() && digits.parse::<u16>().is_ok() {
                found = Some(digits);
            }
        }
    }
    found
}

/// What the engine writes when a layer or a file does not fit: only ever words, in the
/// error or in the build output before it.
pub fn disk_full(text: &str) -> bool {
    text.contains("no space left on device")
}

/// Why an image could not be pulled, which decides what the user should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullFailure {
    /// No registry answered (offline, DNS, a proxy, a firewall).
    NoRegistry,
    /// The registry answered that it has no such image or tag.
    NoSuchImage,
    /// The registry wants credentials.
    Credentials,
}

/// Classifies a failed pull: by status where the engine answered with one (404: no such
/// image; 401/403: credentials), else by the registry's words the engine passes on (a pull
/// failing inside a stream, or a 500 that wraps the registry's answer).
pub fn pull_failure(cause: &Cause) -> PullFailure {
    match cause.status() {
        Some(404) => return PullFailure::NoSuchImage,
        Some(401 | 403) => return PullFailure::Credentials,
        _ => {}
    }
    pull_failure_from_text(&cause.text())
}

fn pull_failure_from_text(text: &str) -> PullFailure {
    let text = text.to_ascii_lowercase();
    let said = |words: &[&str]| words.iter().any(|w| text.contains(w));
    if said(&["unauthorized", "authentication required", "denied: requested access", "may require 'docker login'"]) {
        // "pull access denied … repository does not exist or may require 'docker login'":
        // Docker Hub's answer for a name it does not have, public or not.
        if said(&["repository does not exist"]) { PullFailure::NoSuchImage } else { PullFailure::Credentials }
    } else if said(&["manifest unknown", "not found", "does not exist", "pull access denied"]) {
        PullFailure::NoSuchImage
    } else {
        PullFailure::NoRegistry
    }
}

/// Whether a build error is the engine failing to *pull* the `FROM` image (rather than a
/// step failing): the classic builder reports it as the stream error right after the
/// `Step N/M : FROM image` line. Returns that image and why the pull failed.
pub fn missing_base(message: &str, output: &[String]) -> Option<(String, PullFailure)> {
    let last_step = output.iter().rev().find(|l| l.starts_with("Step "))?;
    let (_, instruction) = last_step.split_once(" : ")?;
    let mut words = instruction.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("FROM") {
        return None;
    }
    let image = words.find(|w| !w.starts_with("--"))?.to_string();
    let text = message.to_ascii_lowercase();
    let pulling =
        ["registry", "pull access denied", "manifest", "dial tcp", "no such host", "unauthorized", "not found"];
    pulling.iter().any(|w| text.contains(w)).then(|| (image, pull_failure_from_text(message)))
}

/// What a retrying caller (the watch controller) should do after `err`: a pure function of
/// the error, as kube-rs's retry policies are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The engine may answer differently soon (unreachable, a listing or an inspection that
    /// failed in passing, a timeout): try again with the usual backoff.
    Backoff,
    /// Only a change by a person helps (a taken port or name, a missing image, a failed
    /// build, a refused permission): try again rarely, at the longest delay.
    AfterFix,
}

/// See [`Retry`].
pub fn retry_policy(err: &EngineError) -> Retry {
    use EngineError as E;
    match err {
        E::Unreachable { .. } | E::Observe(_) | E::Inspect { .. } | E::Logs { .. } => Retry::Backoff,
        E::PermissionDenied { .. }
        | E::ApiTooOld { .. }
        | E::NameTaken { .. }
        | E::PortInUse { .. }
        | E::BuildContext { .. }
        | E::Build { .. }
        | E::BaseImageMissing { .. } => Retry::AfterFix,
        E::Pull { failure, .. } => match failure {
            PullFailure::NoRegistry => Retry::Backoff,
            PullFailure::NoSuchImage | PullFailure::Credentials => Retry::AfterFix,
        },
        // The remaining operations fail for reasons of the moment (a container that went
        // away in between, a transient 500) or by the client timing out.
        other => match other.cause() {
            Some(Cause::Status { code, .. }) if (400..500).contains(code) && *code != 404 && *code != 409 => {
                Retry::AfterFix
            }
            _ => Retry::Backoff,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, message: &str) -> Cause {
        Cause::from(ClientError::DockerResponseServerError { status_code: code, message: message.into() })
    }

    #[test]
    fn client_errors_keep_status_and_message_apart() {
        let c = status(409, "  Conflict. The container name \"/x\" is already in use  ");
        assert!(matches!(&c, Cause::Status { code: 409, message } if message.starts_with("Conflict.")));
        assert!(c.is_conflict() && !c.is_not_found());
        assert_eq!(status(500, "").to_string(), "the engine answered HTTP 500");
        let stream = Cause::from(ClientError::DockerStreamError { error: "boom\n".into() });
        assert!(matches!(&stream, Cause::Stream { message } if message == "boom"));
        assert_eq!(stream.status(), None);
        assert_eq!(Cause::from(ClientError::RequestTimeoutError).to_string(), "the engine did not answer in time");
    }

    #[test]
    fn a_removal_already_under_way_counts_as_removed() {
        assert!(removal_in_progress(&status(409, "removal of container 30771e58b8d5 is already in progress")));
        assert!(!removal_in_progress(&status(409, "You cannot remove a running container 30771e58b8d5")));
        assert!(!removal_in_progress(&status(404, "No such container")));
        assert!(!removal_in_progress(&Cause::local("removal of container x is already in progress")));
        assert!(not_paused(&status(409, "Container 3077 is not paused")));
        assert!(!not_paused(&status(500, "Container 3077 is not paused")));
    }

    #[test]
    fn port_conflicts_name_the_port() {
        let m = "driver failed programming external connectivity on endpoint web (abc): Bind for 0.0.0.0:8080 failed: port is already allocated";
        assert_eq!(port_taken(&status(500, m)).as_deref(), Some("8080"));
        let m = "Error starting userland proxy: listen tcp4 0.0.0.0:18080: bind: address already in use";
        assert_eq!(port_taken(&status(500, m)).as_deref(), Some("18080"));
        assert_eq!(port_taken(&status(500, "[::]:9090: bind: address already in use")).as_deref(), Some("9090"));
        assert_eq!(port_taken(&status(500, "OCI runtime create failed: exec: \"nope\": not found")), None);
        assert_eq!(port_taken(&Cause::local("port is already allocated :80")), None, "only the engine's answer counts");
    }

    #[test]
    fn pull_failures_by_status_then_by_the_registrys_words() {
        assert_eq!(pull_failure(&status(404, "pull access denied for x")), PullFailure::NoSuchImage);
        assert_eq!(pull_failure(&status(401, "")), PullFailure::Credentials);
        let offline = "Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: no such host";
        assert_eq!(pull_failure(&status(500, offline)), PullFailure::NoRegistry);
        assert_eq!(
            pull_failure(&status(500, "manifest for shop/web:1 not found: manifest unknown")),
            PullFailure::NoSuchImage
        );
        assert_eq!(
            pull_failure(&status(500, "Head \"https://ghcr.io/v2/x/manifests/1\": unauthorized")),
            PullFailure::Credentials
        );
        let hub = "pull access denied for nope, repository does not exist or may require 'docker login': denied: requested access to the resource is denied";
        assert_eq!(pull_failure(&Cause::Stream { message: hub.into() }), PullFailure::NoSuchImage);
    }

    #[test]
    fn a_build_that_cannot_pull_its_base_names_it() {
        let output = vec!["Step 1/2 : FROM scale-test-missing-base-1:1".to_string()];
        let offline = "Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io on 10.0.0.53:53: no such host";
        assert_eq!(
            missing_base(offline, &output),
            Some(("scale-test-missing-base-1:1".into(), PullFailure::NoRegistry))
        );
        let hub =
            "pull access denied for scale-test-missing-base-1, repository does not exist or may require 'docker login'";
        assert_eq!(missing_base(hub, &output).map(|(_, f)| f), Some(PullFailure::NoSuchImage));
        let staged = vec!["Step 1/4 : FROM --platform=linux/amd64 debian:bookworm-slim AS base".to_string()];
        assert_eq!(missing_base(offline, &staged).map(|(i, _)| i).as_deref(), Some("debian:bookworm-slim"));
        // A step that fails after FROM is an ordinary build failure.
        let ran = vec![output[0].clone(), " ---> abc".into(), "Step 2/2 : RUN make".into()];
        assert_eq!(missing_base("The command '/bin/sh -c make' returned a non-zero code: 2", &ran), None);
        assert_eq!(missing_base(offline, &[]), None, "without the FROM line the image is unknown");
    }

    #[test]
    fn a_full_disk_is_recognised_by_the_engines_words() {
        assert!(disk_full("write /var/lib/docker/overlay2/x/diff/big: no space left on device"));
        assert!(!disk_full("returned a non-zero code: 1"));
    }

    #[test]
    fn retrying_helps_for_passing_trouble_only() {
        let unreachable = EngineError::Unreachable { address: "tcp://h:1".into(), cause: Cause::local("refused") };
        assert_eq!(retry_policy(&unreachable), Retry::Backoff);
        assert_eq!(retry_policy(&EngineError::Observe(status(500, "boom"))), Retry::Backoff);
        let port = EngineError::PortInUse { name: "web".into(), port: "8080".into() };
        assert_eq!(retry_policy(&port), Retry::AfterFix);
        let offline =
            EngineError::Pull { reference: "x:1".into(), failure: PullFailure::NoRegistry, cause: status(500, "") };
        assert_eq!(retry_policy(&offline), Retry::Backoff);
        let missing =
            EngineError::Pull { reference: "x:1".into(), failure: PullFailure::NoSuchImage, cause: status(404, "") };
        assert_eq!(retry_policy(&missing), Retry::AfterFix);
        let gone = EngineError::Start { name: "web".into(), cause: status(404, "No such container") };
        assert_eq!(retry_policy(&gone), Retry::Backoff);
        let bad = EngineError::CreateContainer { name: "web".into(), cause: status(400, "invalid mount") };
        assert_eq!(retry_policy(&bad), Retry::AfterFix);
    }
}
