//! What a user sees when the engine is the problem: every case exits 1 with a message that
//! says what happened and what to do, and never panics. Cases needing a real engine follow
//! tests/common (fail without one unless `SCALE_SKIP_DOCKER_TESTS=1`). A full disk can't be
//! produced safely here: its mapping is unit-tested in `src/engine/docker.rs` instead.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

use common::{DockerTest, Scale, TEST_IMAGE};

/// Runs it and returns (exit code, stdout + stderr), checking that it did not panic.
fn run(scale: Scale) -> (Option<i32>, String) {
    let run = scale.run();
    let all = run.all();
    assert!(!all.contains("panicked"), "scale panicked:\n{all}");
    (run.code, all)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, text).expect("write file");
    file
}

fn sleeper_blueprint(dir: &Path, extra: &str) -> PathBuf {
    write(
        dir,
        "app.yaml",
        &format!(
            "name: errors\nservices:\n  app:\n    image: {TEST_IMAGE}\n    command: [sleep, infinity]\n    \
             stop_grace_period: 1s\n{extra}"
        ),
    )
}

#[test]
fn an_unreachable_engine_is_named_with_a_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = sleeper_blueprint(dir.path(), "");
    let file = file.to_str().expect("utf-8 path");
    // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    for args in [
        vec!["apply", "--yes", file],
        vec!["plan", file],
        vec!["status", "-p", "errors"],
        vec!["destroy", "--yes", "-p", "errors"],
    ] {
        let (code, out) = run(Scale::new(&args).env("DOCKER_HOST", "tcp://127.0.0.1:9"));
        assert_eq!(code, Some(1), "{args:?}:\n{out}");
        assert!(
            out.contains("cannot reach the Docker engine at tcp://127.0.0.1:9: connection refused"),
            "{args:?}:\n{out}"
        );
        assert!(out.contains("hint: start the engine"), "{args:?}:\n{out}");
    }
}

/// Answers like an engine that speaks only API 1.24 (Docker 1.12): `/version`, any
/// `/v1.*/version`, and `/_ping`; 404 for everything else.
fn serve_old_engine(listener: TcpListener) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = answer_old_engine(&mut stream);
    }
}

fn answer_old_engine(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        if stream.read(&mut byte)? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("/").split('?').next().unwrap_or("/").to_string();
    let (status, content_type, body) = if path == "/version" || (path.starts_with("/v1.") && path.ends_with("/version"))
    {
        (
            "200 OK",
            "application/json",
            r#"{"Version":"1.12.6","ApiVersion":"1.24","MinAPIVersion":"1.12","GitCommit":"78d1802","GoVersion":"go1.6.4","Os":"linux","Arch":"amd64","KernelVersion":"4.9.0"}"#.to_string(),
        )
    } else if path.ends_with("/_ping") {
        ("200 OK", "text/plain", "OK".to_string())
    } else {
        ("404 Not Found", "application/json", r#"{"message":"page not found"}"#.to_string())
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nApi-Version: 1.24\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

#[test]
fn an_engine_too_old_is_refused_with_a_hint() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("local addr").port();
    std::thread::spawn(move || serve_old_engine(listener));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = sleeper_blueprint(dir.path(), "");
    let address = format!("tcp://127.0.0.1:{port}");
    for args in [vec!["apply", "--yes", file.to_str().expect("utf-8")], vec!["status", "-p", "errors"]] {
        let (code, out) = run(Scale::new(&args).env("DOCKER_HOST", &address));
        assert_eq!(code, Some(1), "{args:?}:\n{out}");
        assert!(
            out.contains(&format!("the Docker engine at {address} speaks API 1.24, older than the 1.40 scale needs")),
            "{args:?}:\n{out}"
        );
        assert!(out.contains("hint: upgrade the Docker engine"), "{args:?}:\n{out}");
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:").map(|u| u.split_whitespace().next() == Some("0"))))
        .unwrap_or(false)
}

#[test]
fn permission_denied_on_the_socket_says_how_to_get_access() {
    let Some(_t) = DockerTest::start("errors-permission") else { return };
    let socket = "/var/run/docker.sock";
    if std::env::var("DOCKER_HOST").is_ok_and(|h| !h.is_empty() && h != format!("unix://{socket}")) {
        eprintln!("SKIPPED permission_denied_on_the_socket: DOCKER_HOST points elsewhere, not at {socket}");
        return;
    }
    if !is_root() || !Path::new(socket).exists() {
        eprintln!("SKIPPED permission_denied_on_the_socket: needs root (to run scale as `nobody`) and {socket}");
        return;
    }
    // A directory `nobody` can read, with a blueprint inside.
    let dir = tempfile::tempdir().expect("tempdir");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let file = sleeper_blueprint(dir.path(), "");
    let file = file.to_str().expect("utf-8 path");
    let scale = Scale::new(&["apply", "--yes", file])
        .wrapped_in(&["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .env_remove("DOCKER_HOST");
    let (code, out) = run(scale);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&format!("permission denied talking to the Docker engine at unix://{socket}")), "{out}");
    assert!(out.contains("hint: add your user to the `docker` group"), "{out}");
}

#[test]
fn a_missing_image_without_a_registry_says_build_or_load_it() {
    let Some(t) = DockerTest::start("errors-missing-image") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let file =
        write(dir.path(), "img.yaml", "name: errors\nservices:\n  app:\n    image: nonexistent.invalid/nope:1\n");
    let (code, out) = run(Scale::new(&["apply", "--yes", "-p", t.project(), file.to_str().expect("utf-8")]));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("cannot pull nonexistent.invalid/nope:1"), "{out}");
    assert!(out.contains("build it or load it"), "{out}");
    assert!(!t.container_exists(&format!("{}-app-1", t.project())), "nothing may start without its image");
}

#[test]
fn a_failed_build_shows_the_build_output() {
    let Some(t) = DockerTest::start("errors-build") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("broken")).expect("mkdir");
    write(&dir.path().join("broken"), "Dockerfile", &format!("FROM {TEST_IMAGE}\nRUN echo marker-xyz && false\n"));
    let file = write(dir.path(), "build.yaml", "name: errors\nservices:\n  app:\n    build: broken\n");
    let (code, out) = run(Scale::new(&["apply", "--yes", "-p", t.project(), file.to_str().expect("utf-8")]));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&format!("build of {}/app", t.project())), "{out}");
    assert!(out.contains("returned a non-zero code: 1"), "{out}");
    assert!(out.contains("marker-xyz"), "the build's own output must be shown:\n{out}");
}

/// Issue 17: a build whose `FROM` image is neither here nor pullable fails with a message
/// naming that image and a hint saying what to do, not the registry's raw words alone.
#[test]
fn a_build_whose_base_image_is_missing_names_it_with_a_hint() {
    let Some(t) = DockerTest::start("errors-base") else { return };
    let base = format!("scale-test-missing-base-{}:1", std::process::id());
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("orphan")).expect("mkdir");
    write(&dir.path().join("orphan"), "Dockerfile", &format!("FROM {base}\nRUN true\n"));
    let file = write(dir.path(), "build.yaml", "name: errors\nservices:\n  app:\n    build: orphan\n");
    let (code, out) = run(Scale::new(&["apply", "--yes", "-p", t.project(), file.to_str().expect("utf-8")]));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&format!("its base image {base} is not here and cannot be pulled")), "{out}");
    assert!(out.contains(&format!("for {base}: build it or load it (`docker load`)")), "the hint is missing:\n{out}");
}

#[test]
fn a_host_port_already_in_use_is_named_with_a_hint() {
    let Some(t) = DockerTest::start("errors-port") else { return };
    // Held for the whole test: the engine's proxy cannot bind it.
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = taken.local_addr().expect("local addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = sleeper_blueprint(dir.path(), &format!("    ports: [\"127.0.0.1:{port}:80\"]\n"));
    let (code, out) = run(Scale::new(&["apply", "--yes", "-p", t.project(), file.to_str().expect("utf-8")]));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&format!("host port {port} is already in use")), "{out}");
    assert!(out.contains(&format!("hint: free host port {port}")), "{out}");
    drop(taken);
}
