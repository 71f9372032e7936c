//! The real stage files (copied with a random public port), PostgreSQL through `docker exec`,
//! and polling with a bound.

use std::time::Duration;

use super::docker::docker;

pub const STAGES: [&str; 4] =
    ["01-single-server.yaml", "02-web-and-data-tiers.yaml", "03-load-balancer.yaml", "04-database-replication.yaml"];

/// `path` inside the repository.
pub fn repo_path(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Copies stage `n` (1-based, see [`STAGES`]) into `dir` with the random public port
/// (`"8080:8000"` → `"8000"`, `"8080:80"` → `"80"`), absolute build contexts and the `extra`
/// edits (each must occur exactly once), checking that exactly those lines changed, each
/// only by its edit, and that no fixed port or relative build context is left outside
/// comments. Returns the copy's path.
pub fn stage_copy(dir: &std::path::Path, n: usize, extra: &[(&str, &str)]) -> String {
    let name = STAGES[n - 1];
    let original = std::fs::read_to_string(repo_path(&format!("blueprints/{name}")))
        .unwrap_or_else(|e| panic!("reading blueprints/{name}: {e}"));
    let images = repo_path("blueprints/images");
    let images = images.to_str().expect("UTF-8 repository path");
    // (from, to, how many times stage n must contain it)
    let web_port = if n <= 2 { 1 } else { 0 };
    let lb_port = if n >= 3 { 1 } else { 0 };
    let mut edits = vec![
        (r#"ports: ["8080:8000"]"#.to_string(), r#"ports: ["8000"]"#.to_string(), web_port),
        (r#"ports: ["8080:80"]"#.to_string(), r#"ports: ["80"]"#.to_string(), lb_port),
        ("build: images/web\n".to_string(), format!("build: {images}/web\n"), 1),
        ("build: images/postgres\n".to_string(), format!("build: {images}/postgres\n"), usize::from(n >= 2)),
        ("build: images/haproxy\n".to_string(), format!("build: {images}/haproxy\n"), usize::from(n >= 3)),
    ];
    edits.extend(extra.iter().map(|(from, to)| (from.to_string(), to.to_string(), 1)));
    let mut yaml = original.clone();
    let mut changed = 0;
    for (from, to, count) in &edits {
        assert_eq!(
            original.matches(from.as_str()).count(),
            *count,
            "blueprints/{name} should contain {from:?} exactly {count} time(s):\n{original}"
        );
        yaml = yaml.replace(from.as_str(), to);
        changed += count;
    }
    // Exactly the intended lines differ, each only by the intended text.
    let before: Vec<&str> = original.lines().collect();
    let after: Vec<&str> = yaml.lines().collect();
    assert_eq!(before.len(), after.len(), "the rewrite of {name} added or removed lines");
    let differing: Vec<(&&str, &&str)> = before.iter().zip(&after).filter(|(a, b)| a != b).collect();
    assert_eq!(differing.len(), changed, "the rewrite of {name} changed other lines: {differing:#?}");
    for (a, b) in &differing {
        assert!(
            edits.iter().any(|(from, to, _)| a.replace(from.trim_end(), to.trim_end()) == **b),
            "unexpected change in {name}: {a:?} → {b:?}"
        );
    }
    // No fixed port and no relative build context is left outside comments.
    for line in after.iter().filter(|l| !l.trim_start().starts_with('#')) {
        assert!(!line.contains("8080"), "{name} still publishes a fixed port: {line}");
        assert!(!line.contains("build: images/"), "{name} still has a relative build context: {line}");
    }
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path.to_str().expect("UTF-8 temp path").to_string()
}

/// Runs `sql` with psql as the superuser inside `container` (local socket, in database `db`
/// or the default one): the trimmed output, or why it failed.
pub fn psql(container: &str, db: Option<&str>, sql: &str) -> Result<String, String> {
    let mut args = vec!["exec", container, "psql", "-U", "postgres"];
    if let Some(db) = db {
        args.extend(["-d", db]);
    }
    args.extend(["-tAc", sql]);
    docker(&args)
}

/// [`psql`], panicking if it fails.
pub fn psql_ok(container: &str, db: Option<&str>, sql: &str) -> String {
    psql(container, db, sql).unwrap_or_else(|e| panic!("psql in {container}: {sql}: {e}"))
}

/// Polls `check` every 250 ms until it returns `Ok`, at most `limit`; panics with `what`
/// and the last observation otherwise. An `Ok` from a check that started in time counts.
pub fn poll<T>(limit: Duration, what: &str, check: impl FnMut() -> Result<T, String>) -> T {
    poll_from(std::time::Instant::now(), limit, what, true, check).0
}

/// Polls `check` (about every 250 ms) until it returns `Ok`, at most until `limit` after
/// `from`; returns the value and when it held, measured from `from`. Panics with `what` and
/// the last observation otherwise, and also when the `Ok` came only after the limit.
pub fn poll_timed<T>(
    from: std::time::Instant,
    limit: Duration,
    what: &str,
    check: impl FnMut() -> Result<T, String>,
) -> (T, Duration) {
    poll_from(from, limit, what, false, check)
}

fn poll_from<T>(
    from: std::time::Instant,
    limit: Duration,
    what: &str,
    late_ok: bool,
    mut check: impl FnMut() -> Result<T, String>,
) -> (T, Duration) {
    loop {
        match check() {
            Ok(v) => {
                let took = from.elapsed();
                assert!(late_ok || took <= limit, "{what}: held only after {took:?} (limit {limit:?})");
                return (v, took);
            }
            Err(last) if from.elapsed() >= limit => panic!("{what}: not within {limit:?}; last: {last}"),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// The fixed host ports the stage files publish, as written in them, and what a test copy
/// publishes instead (the same container port on a random host port).
const FIXED_PORTS: [(&str, &str); 4] = [
    (r#"ports: ["8080:8000"]"#, r#"ports: ["8000"]"#),
    (r#"ports: ["8080:80"]"#, r#"ports: ["80"]"#),
    (r#"ports: ["8081:80"]"#, r#"ports: ["80"]"#),
    (r#"ports: ["9090:9090"]"#, r#"ports: ["9090"]"#),
];

/// Copies `blueprints/<name>` (any stage, by file name) into `dir` with random public ports
/// and absolute build contexts, checking that exactly those lines changed and that no fixed
/// port or relative build context is left outside comments. Returns the copy's path. The
/// stage suites from 5 on use it; [`stage_copy`] is stages 1-4's, with extra edits.
pub fn stage_file(dir: &std::path::Path, name: &str) -> String {
    let original = std::fs::read_to_string(repo_path(&format!("blueprints/{name}")))
        .unwrap_or_else(|e| panic!("reading blueprints/{name}: {e}"));
    let images = repo_path("blueprints/images");
    let images = format!("build: {}/", images.to_str().expect("UTF-8 repository path"));
    let mut yaml = original.replace("build: images/", &images);
    for (fixed, random) in FIXED_PORTS {
        yaml = yaml.replace(fixed, random);
    }
    let changed = original.lines().zip(yaml.lines()).filter(|(a, b)| a != b).count();
    let expected = original
        .lines()
        .filter(|l| l.contains("build: images/") || FIXED_PORTS.iter().any(|(fixed, _)| l.contains(fixed)))
        .count();
    assert_eq!(changed, expected, "the rewrite of {name} changed other lines");
    for line in yaml.lines().filter(|l| !l.trim_start().starts_with('#')) {
        for fixed in ["\"8080", "\"8081", "\"9090:"] {
            assert!(!line.contains(fixed), "{name} still publishes a fixed port: {line}");
        }
        assert!(!line.contains("build: images/"), "{name} still has a relative build context: {line}");
    }
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path.to_str().expect("UTF-8 temp path").to_string()
}
