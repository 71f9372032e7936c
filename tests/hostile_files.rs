//! Every file scale reads is a regular file read with a bound: a FIFO, a device, a directory
//! or a symlink to one of those in any role (blueprint, `.env`, `.dockerignore`, Dockerfile,
//! a file of a build context) is a clear error at once, never a hang or gigabytes of memory.
//! Needs no engine: the engine is pointed at a socket that does not exist, and every check
//! here comes before scale talks to it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

struct Run {
    code: Option<i32>,
    stderr: String,
}

fn scale(args: &[&str]) -> Run {
    let out = assert_cmd::Command::cargo_bin("scale")
        .expect("the scale binary is built")
        .args(args)
        .env("NO_COLOR", "1")
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        // A hang must fail the test, not stall it (this is not a timing assertion: the
        // expected outcome takes milliseconds).
        .timeout(Duration::from_secs(20))
        .output()
        .expect("run scale");
    Run { code: out.status.code(), stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// What can stand where a file is expected.
#[derive(Debug, Clone, Copy)]
enum Hostile {
    Fifo,
    DevZero,
    Directory,
    SymlinkToDevZero,
}

const ALL: [Hostile; 4] = [Hostile::Fifo, Hostile::DevZero, Hostile::Directory, Hostile::SymlinkToDevZero];

impl Hostile {
    fn make(self, path: &Path) {
        match self {
            Hostile::Fifo => mkfifo(path),
            Hostile::DevZero | Hostile::SymlinkToDevZero => std::os::unix::fs::symlink("/dev/zero", path).unwrap(),
            Hostile::Directory => std::fs::create_dir(path).unwrap(),
        }
    }

    /// The blueprint path itself (for /dev/zero: the device, not a link).
    fn blueprint(self, dir: &Path) -> String {
        match self {
            Hostile::DevZero => "/dev/zero".into(),
            other => {
                let path = dir.join("shop.yaml");
                other.make(&path);
                path.display().to_string()
            }
        }
    }

    fn words(self) -> &'static str {
        match self {
            Hostile::Fifo => "FIFO",
            Hostile::DevZero | Hostile::SymlinkToDevZero => "device",
            Hostile::Directory => "directory",
        }
    }
}

const BLUEPRINT: &str = "name: shop\nservices:\n  web:\n    image: debian:bookworm-slim\n";
const BUILT: &str = "name: shop\nservices:\n  web:\n    build: app\n";

fn check(run: &Run, what: &str, case: Hostile, expect: &[&str]) {
    assert_eq!(run.code, Some(1), "{what} as {case:?}: exit 1\n{}", run.stderr);
    for word in expect.iter().chain([&case.words()]) {
        assert!(run.stderr.contains(word), "{what} as {case:?}: says {word:?}:\n{}", run.stderr);
    }
    assert!(run.stderr.len() < 4096, "{what} as {case:?}: a short message:\n{}", run.stderr);
}

#[test]
fn a_hostile_blueprint_path_fails_fast() {
    for case in ALL {
        let dir = tempfile::tempdir().unwrap();
        let file = case.blueprint(dir.path());
        for command in ["validate", "plan"] {
            let run = scale(&[command, &file]);
            check(&run, "the blueprint", case, &["cannot read the blueprint", "regular file"]);
        }
    }
}

#[test]
fn a_hostile_dotenv_fails_fast() {
    for case in ALL {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("shop.yaml"), BLUEPRINT).unwrap();
        case.make(&dir.path().join(".env"));
        let file = dir.path().join("shop.yaml").display().to_string();
        let run = scale(&["validate", &file]);
        check(&run, ".env", case, &[".env", "cannot read the .env file"]);
    }
}

fn build_dir(dir: &Path) -> String {
    std::fs::create_dir(dir.join("app")).unwrap();
    std::fs::write(dir.join("shop.yaml"), BUILT).unwrap();
    dir.join("shop.yaml").display().to_string()
}

#[test]
fn a_hostile_dockerignore_fails_fast_in_plan_and_validate() {
    for case in ALL {
        let dir = tempfile::tempdir().unwrap();
        let file = build_dir(dir.path());
        std::fs::write(dir.path().join("app/Dockerfile"), "FROM scratch\n").unwrap();
        case.make(&dir.path().join("app/.dockerignore"));
        for command in ["plan", "validate"] {
            let run = scale(&[command, &file]);
            check(&run, ".dockerignore", case, &[".dockerignore"]);
        }
    }
}

#[test]
fn a_hostile_dockerfile_fails_fast() {
    for case in ALL {
        let dir = tempfile::tempdir().unwrap();
        let file = build_dir(dir.path());
        case.make(&dir.path().join("app/Dockerfile"));
        let run = scale(&["plan", &file]);
        assert_eq!(run.code, Some(1), "{case:?}: {}", run.stderr);
        assert!(run.stderr.contains("Dockerfile"), "{case:?}: {}", run.stderr);
    }
}

/// FIFOs and devices inside a context are not sent (a build cannot use them), symlinks are
/// sent as symlinks: neither is read, so neither hangs.
#[test]
fn hostile_entries_inside_a_build_context_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = build_dir(dir.path());
    std::fs::write(dir.path().join("app/Dockerfile"), "FROM scratch\n").unwrap();
    mkfifo(&dir.path().join("app/fifo"));
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("app/zero")).unwrap();
    let run = scale(&["plan", &file]);
    // Past the context: it fails only on the missing engine.
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("nonexistent.sock"), "{}", run.stderr);
}
