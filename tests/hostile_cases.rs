//! Every case of issue 11's "Why" list, through the real binary: valid input exits 0, invalid
//! input exits 1 with a message that says where (file:line:col, or the service), FIFOs and
//! `/dev/zero` fail at once, usage errors never exit 2, and no output reaches 1 MB. Needs no
//! engine (`DOCKER_HOST` points at a socket that does not exist).

use std::path::{Path, PathBuf};
use std::time::Duration;

const MAX_OUTPUT: usize = 1024 * 1024;

/// What stands beside the blueprint.
enum Extra {
    None,
    DotEnv(String),
    Fifo(&'static str),
    DevZero(&'static str),
    /// A build context `app/` with a Dockerfile and this `.dockerignore`.
    Context(&'static str),
}

struct Case {
    name: &'static str,
    blueprint: Blueprint,
    extra: Extra,
    args: &'static [&'static str],
    code: i32,
    /// Must appear in stderr (or stdout under JSON).
    expect: &'static str,
    /// The first problem's line, when the message must point at one.
    line: Option<u32>,
    /// Must not appear anywhere in the output.
    never: &'static [&'static str],
}

enum Blueprint {
    Text(String),
    Bytes(Vec<u8>),
    Fifo,
    DevZero,
}

const SERVICE: &str = "name: shop\nservices:\n  web:\n    image: debian:bookworm-slim\n";
const LEAKS: &[&str] = &["budget breached", "recursive references require weak", "invalid u64", "panicked"];

fn svc(extra: &str) -> Blueprint {
    Blueprint::Text(format!("{SERVICE}{extra}"))
}

fn case(name: &'static str, blueprint: Blueprint, code: i32, expect: &'static str, line: Option<u32>) -> Case {
    Case { name, blueprint, extra: Extra::None, args: &["validate"], code, expect, line, never: LEAKS }
}

fn merged(n: usize) -> String {
    let mut text =
        String::from("name: shop\nx-common: &common\n  image: debian:bookworm-slim\n  restart: always\nservices:\n");
    for i in 0..n {
        text.push_str(&format!("  s{i}:\n    <<: *common\n"));
    }
    text
}

fn env_lines(n: usize) -> String {
    (0..n).map(|i| format!("VARIABLE_{i}=some-value-{i}\n")).collect()
}

fn many(n: usize, line: impl Fn(usize) -> String) -> Blueprint {
    let mut text = String::from("name: shop\nservices:\n");
    (0..n).for_each(|i| text.push_str(&line(i)));
    Blueprint::Text(text)
}

fn cases() -> Vec<Case> {
    let pg = "name: shop\nservices:\n  db:\n    kind: postgres\n    image: postgres:16\n    password: x\n  db-replica:\n    image: debian:bookworm-slim\n";
    vec![
        // Valid input that was refused.
        Case { extra: Extra::DotEnv(String::new()), ..case("empty .env", svc(""), 0, "is valid", None) },
        Case {
            extra: Extra::DotEnv("# only\n# comments\n".into()),
            ..case("comment-only .env", svc(""), 0, "is valid", None)
        },
        case("one anchor merged into 100 services", Blueprint::Text(merged(100)), 0, "100 services", None),
        case("one anchor merged into 500 services", Blueprint::Text(merged(500)), 0, "500 services", None),
        case(
            "CR-only file starting with a comment",
            Blueprint::Bytes(b"# shop\rname: shop\rservices:\r  web:\r    image: debian:bookworm-slim\r".to_vec()),
            0,
            "is valid",
            None,
        ),
        case("IPv6 host IP in brackets", svc("    ports: [\"[::1]:8080:80\"]\n"), 0, "is valid", None),
        // Invalid input that was accepted.
        case("services: {}", Blueprint::Text("name: shop\nservices: {}\n".into()), 1, "`services:` is empty", Some(2)),
        case("empty image", svc("    image: \"\"\n").replace_image(), 1, "`image:` is empty", Some(4)),
        case(
            "image with a space",
            Blueprint::Text("name: shop\nservices:\n  web:\n    image: \"we b\"\n".into()),
            1,
            "not a valid image reference",
            Some(4),
        ),
        case("host IP out of range", svc("    ports: [\"999.1.1.1:81:80\"]\n"), 1, "is not an IP address", Some(5)),
        case(
            "host_ip not an IP",
            svc("    ports: [{target: 80, host_ip: not-ip}]\n"),
            1,
            "is not an IP address",
            Some(5),
        ),
        case(
            "volume mounted at /",
            svc("    volumes: [\"data:/\"]\nvolumes:\n  data: {}\n"),
            1,
            "mounts over `/`",
            Some(5),
        ),
        case("label in io.scale.", svc("    labels: {io.scale.project: other}\n"), 1, "scale's own namespace", Some(3)),
        case("db-replica beside postgres db", Blueprint::Text(pg.into()), 1, "`db-replica` has the name of", Some(7)),
        Case {
            extra: Extra::Context("[unclosed\n"),
            ..case(
                "bad .dockerignore",
                Blueprint::Text("name: shop\nservices:\n  web:\n    build: app\n".into()),
                1,
                ".dockerignore line 1",
                Some(4),
            )
        },
        // Unbounded reads.
        case("blueprint is a FIFO", Blueprint::Fifo, 1, "FIFO", None),
        case("blueprint is /dev/zero", Blueprint::DevZero, 1, "device", None),
        Case { extra: Extra::Fifo(".env"), ..case(".env is a FIFO", svc(""), 1, "FIFO", None) },
        Case { extra: Extra::DevZero(".env"), ..case(".env is /dev/zero", svc(""), 1, "device", None) },
        Case {
            extra: Extra::Fifo("app/.dockerignore"),
            ..case(
                ".dockerignore is a FIFO",
                Blueprint::Text("name: shop\nservices:\n  web:\n    build: app\n".into()),
                1,
                "FIFO",
                Some(4),
            )
        },
        Case {
            extra: Extra::DevZero("app/.dockerignore"),
            ..case(
                ".dockerignore is /dev/zero",
                Blueprint::Text("name: shop\nservices:\n  web:\n    build: app\n".into()),
                1,
                "device",
                Some(4),
            )
        },
        // Quadratic work on small files.
        Case { extra: Extra::DotEnv(env_lines(5_000)), ..case("5,000-line .env", svc(""), 0, "is valid", None) },
        Case { extra: Extra::DotEnv(env_lines(10_000)), ..case("10,000-line .env", svc(""), 0, "is valid", None) },
        case(
            "5,000 services depending on an unknown service",
            many(5_000, |i| format!("  s{i}: {{image: x, depends_on: [nowhere]}}\n")),
            1,
            "depends on unknown service `nowhere`",
            Some(3),
        ),
        Case {
            args: &["validate", "--output", "json"],
            ..case(
                "5,000 unknown dependencies as JSON",
                many(5_000, |i| format!("  s{i}: {{image: x, depends_on: [nowhere]}}\n")),
                1,
                "\"service\":\"s0\"",
                None,
            )
        },
        case(
            "10,000 unknown network references",
            many(10_000, |i| format!("  s{i}: {{image: x, networks: [net{i}]}}\n")),
            1,
            "uses undeclared network `net0`",
            Some(3),
        ),
        // Exit codes.
        Case {
            args: &["plan", "--detailed-exitcode", "--typo"],
            ..case("usage error under --detailed-exitcode", svc(""), 64, "--typo", None)
        },
        Case {
            args: &["plan", "--output", "json"],
            ..case("plan --output json without an engine", svc(""), 1, "\"kind\":\"engine\"", None)
        },
        Case {
            args: &["plan", "--output", "json"],
            ..case("plan --output json with a bad file", svc("    replicas: lots\n"), 1, "\"valid\":false", None)
        },
        // Messages.
        case(
            "recursive alias",
            Blueprint::Text("name: shop\nservices: &s\n  web: *s\n".into()),
            1,
            "recursive structure",
            Some(3),
        ),
        case(
            "huge replicas",
            svc("    replicas: 18446744073709551616\n"),
            1,
            "18446744073709551616 is out of range",
            Some(5),
        ),
        case(
            "one 1,000-service cycle",
            many(1_000, |i| format!("  s{i}: {{image: x, depends_on: [s{}]}}\n", (i + 1) % 1_000)),
            1,
            "dependency cycle: s0 → s1",
            Some(3),
        ),
        Case {
            args: &["validate", "--output", "json"],
            ..case("unknown key inside a service, as JSON", svc("    comand: x\n"), 1, "\"service\":\"web\"", None)
        },
    ]
}

impl Blueprint {
    /// `svc()` starts with a valid image; this replaces it with the empty one.
    fn replace_image(self) -> Blueprint {
        match self {
            Blueprint::Text(t) => Blueprint::Text(t.replacen("    image: debian:bookworm-slim\n", "", 1)),
            other => other,
        }
    }
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Lays the case out in `dir`; returns the blueprint path to pass.
fn lay_out(case: &Case, dir: &Path) -> PathBuf {
    let file = dir.join("shop.yaml");
    match &case.blueprint {
        Blueprint::Text(text) => std::fs::write(&file, text).unwrap(),
        Blueprint::Bytes(bytes) => std::fs::write(&file, bytes).unwrap(),
        Blueprint::Fifo => mkfifo(&file),
        Blueprint::DevZero => return PathBuf::from("/dev/zero"),
    }
    if matches!(&case.blueprint, Blueprint::Text(t) if t.contains("build: app")) {
        std::fs::create_dir(dir.join("app")).unwrap();
        std::fs::write(dir.join("app/Dockerfile"), "FROM scratch\n").unwrap();
    }
    match &case.extra {
        Extra::None => {}
        Extra::DotEnv(text) => std::fs::write(dir.join(".env"), text).unwrap(),
        Extra::Fifo(rel) => mkfifo(&dir.join(rel)),
        Extra::DevZero(rel) => std::os::unix::fs::symlink("/dev/zero", dir.join(rel)).unwrap(),
        Extra::Context(ignore) => std::fs::write(dir.join("app/.dockerignore"), ignore).unwrap(),
    }
    file
}

/// What is wrong with one case's outcome, if anything.
fn judge(case: &Case) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = lay_out(case, dir.path());
    let file = file.display().to_string();
    let mut args: Vec<&str> = case.args.to_vec();
    args.push(&file);
    let out = assert_cmd::Command::cargo_bin("scale")
        .expect("the scale binary is built")
        .args(&args)
        .env("NO_COLOR", "1")
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .env_remove("SCALE_MAX_ALIAS_EVENTS")
        // A guard against a hang, not a timing assertion.
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run scale");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = format!("{stdout}{stderr}");
    let mut wrong = Vec::new();
    if out.status.code() != Some(case.code) {
        wrong.push(format!("exit {:?}, expected {}", out.status.code(), case.code));
    }
    if !all.contains(case.expect) {
        wrong.push(format!("output lacks {:?}", case.expect));
    }
    if let Some(line) = case.line {
        let located = format!("{file}:{line}:");
        if !all.contains(&located) {
            wrong.push(format!("no problem located at {located}"));
        }
    }
    if let Some(leak) = case.never.iter().find(|n| all.contains(*n)) {
        wrong.push(format!("output contains {leak:?}"));
    }
    if out.stdout.len() + out.stderr.len() >= MAX_OUTPUT {
        wrong.push(format!("{} bytes of output", out.stdout.len() + out.stderr.len()));
    }
    if case.args.contains(&"json") && !stdout.is_empty() && serde_json::from_str::<serde_json::Value>(&stdout).is_err()
    {
        wrong.push("stdout is not one JSON document".into());
    }
    let head: String = all.chars().take(600).collect();
    wrong.into_iter().map(|w| format!("{}: {w}\n{head}", case.name)).collect()
}

#[test]
fn every_case_of_issue_11_gets_the_right_outcome() {
    let cases = cases();
    let failures: Vec<String> = cases.iter().flat_map(judge).collect();
    assert!(failures.is_empty(), "{} of {} cases wrong:\n\n{}", failures.len(), cases.len(), failures.join("\n\n"));
}
