//! Fuzzing on stable Rust: a proptest generator mutates the ladder's blueprints
//! (`blueprints/*.yaml`) and the corpus (`tests/corpus/{valid,broken}/*.yaml`, Compose-shaped
//! files) with edits that hit the parser's and the checks' edges (anchors, aliases, merges,
//! huge numbers, tabs, CRs, brackets, quotes, `..`, scale's label namespace, invalid UTF-8,
//! deleted and repeated lines), and checks for every mutant:
//!
//! - load and validate never panic, and their output stays small (bounded time and memory
//!   follow from the parser's limits, measured by `cargo bench --bench hostile`; tests assert
//!   no times);
//! - the JSON document `validate --output json` prints is valid JSON;
//! - a mutant that validates gives a desired state and a plan against the in-memory engine.
//!
//! A second, smaller property runs the real binary on mutants with `--output json` and checks
//! that stdout is exactly one JSON document and the exit code 0 or 1. More cases:
//! `PROPTEST_CASES=5000 cargo test --release --test fuzz_blueprints`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use scale::engine::Engine;
use scale::engine::fake::FakeEngine;
use scale::model::interpolate::Env;

/// The seeds: path (relative paths in a mutant resolve beside it) and bytes.
fn seeds() -> &'static [(PathBuf, Vec<u8>)] {
    static SEEDS: std::sync::OnceLock<Vec<(PathBuf, Vec<u8>)>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in ["blueprints", "tests/corpus/valid", "tests/corpus/broken"] {
            for entry in std::fs::read_dir(root.join(dir)).expect("seed directory") {
                let path = entry.expect("entry").path();
                if path.extension().is_some_and(|e| e == "yaml") {
                    files.push(path);
                }
            }
        }
        files.sort();
        assert!(files.len() >= 40, "too few seeds: {}", files.len());
        files.into_iter().map(|p| (p.clone(), std::fs::read(&p).expect("read seed"))).collect()
    })
}

/// Fragments that reach the edges scale must survive.
const TOKENS: &[&str] = &[
    "&a ",
    "*a",
    "<<: *a\n",
    "x-common: &a {image: app}\n",
    ": ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    "\t",
    "\r",
    "\r\n",
    "'",
    "\"",
    "#",
    "${X}",
    "${X:?gone}",
    "$",
    "99999999999999999999",
    "-1",
    "1e400",
    ".nan",
    "/",
    "..",
    "/..",
    "io.scale.x: y",
    "[::1]:80:80",
    "999.1.1.1:1:1",
    "image: \"we b\"",
    "services: {}",
    "depends_on: [nowhere]",
    "kind: postgres",
    "\u{FEFF}",
    "---\n",
    "? ",
    "!!binary ",
    "|\n",
    ">-\n",
    "~",
    "null",
    "true",
    "\u{1F600}",
];

#[derive(Debug, Clone)]
enum Edit {
    Insert { at: f64, token: usize },
    Delete { at: f64, len: usize },
    DuplicateLine { at: f64, times: usize },
    SwapLines { a: f64, b: f64 },
    Truncate { at: f64 },
    InvalidByte { at: f64 },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (0.0..1.0f64, 0..TOKENS.len()).prop_map(|(at, token)| Edit::Insert { at, token }),
        2 => (0.0..1.0f64, 1..40usize).prop_map(|(at, len)| Edit::Delete { at, len }),
        2 => (0.0..1.0f64, 1..300usize).prop_map(|(at, times)| Edit::DuplicateLine { at, times }),
        1 => (0.0..1.0f64, 0.0..1.0f64).prop_map(|(a, b)| Edit::SwapLines { a, b }),
        1 => (0.0..1.0f64).prop_map(|at| Edit::Truncate { at }),
        1 => (0.0..1.0f64).prop_map(|at| Edit::InvalidByte { at }),
    ]
}

fn index(len: usize, at: f64) -> usize {
    ((len as f64) * at) as usize
}

fn line_bounds(bytes: &[u8], at: f64) -> (usize, usize) {
    let i = index(bytes.len(), at).min(bytes.len());
    let start = bytes[..i].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let end = bytes[i..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |p| i + p + 1);
    (start, end)
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    match *edit {
        Edit::Insert { at, token } => {
            let i = index(bytes.len(), at);
            bytes.splice(i..i, TOKENS[token].bytes());
        }
        Edit::Delete { at, len } => {
            let i = index(bytes.len(), at);
            bytes.drain(i..(i + len).min(bytes.len()));
        }
        Edit::DuplicateLine { at, times } => {
            let (start, end) = line_bounds(bytes, at);
            let line = bytes[start..end].to_vec();
            for _ in 0..times {
                bytes.splice(end..end, line.iter().copied());
            }
        }
        Edit::SwapLines { a, b } => {
            let (a, b) = (line_bounds(bytes, a), line_bounds(bytes, b));
            if a.1 <= b.0 {
                let (la, lb) = (bytes[a.0..a.1].to_vec(), bytes[b.0..b.1].to_vec());
                bytes.splice(b.0..b.1, la);
                bytes.splice(a.0..a.1, lb);
            }
        }
        Edit::Truncate { at } => bytes.truncate(index(bytes.len(), at)),
        Edit::InvalidByte { at } => {
            let i = index(bytes.len(), at);
            bytes.insert(i, 0xFF);
        }
    }
}

fn mutant() -> impl Strategy<Value = (PathBuf, Vec<u8>)> {
    (0..seeds().len(), prop::collection::vec(edit(), 1..5)).prop_map(|(seed, edits)| {
        let (path, bytes) = &seeds()[seed];
        let mut bytes = bytes.clone();
        edits.iter().for_each(|e| apply(&mut bytes, e));
        (path.clone(), bytes)
    })
}

/// Load, validate, and (when valid) desired state and plan against the in-memory engine.
fn check(path: &Path, bytes: &[u8]) -> Result<(), TestCaseError> {
    let (bp, mut problems) = scale::model::load_bytes_lenient(path, bytes, &Env::default());
    if let Some(bp) = &bp {
        problems.0.extend(scale::validate::validate(bp, None));
    }
    let problems = problems.sorted();
    let document = serde_json::json!({
        "file": path.display().to_string(),
        "valid": problems.is_empty(),
        "problems": problems.0.iter().map(scale::cli::diagnostic_json).collect::<Vec<_>>(),
    })
    .to_string();
    prop_assert!(serde_json::from_str::<serde_json::Value>(&document).is_ok());
    prop_assert!(document.len() < 1024 * 1024, "{} bytes of JSON", document.len());
    prop_assert!(problems.to_string().len() < 1024 * 1024);
    for d in &problems.0 {
        prop_assert!(!d.message.contains("budget breached") && !d.message.contains("weak recursion"), "{d}");
    }
    let Some(bp) = bp.filter(|_| problems.is_empty()) else { return Ok(()) };
    let project = scale::validate::project_name(&bp, None).map_err(|d| TestCaseError::fail(d.to_string()))?;
    let hasher = |b: &scale::model::Build| {
        scale::build_context::fingerprint(b).map_err(|e| scale::diag::Diagnostic::file(path, e.to_string()))
    };
    let desired = scale::desired::desired_state(&bp, &project, &hasher)
        .map_err(|d| TestCaseError::fail(format!("valid, but no desired state: {d:?}")))?;
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let observed = rt.block_on(FakeEngine::new().observe(&project)).expect("the fake engine observes");
    scale::plan::plan(&desired, &observed).map_err(|e| TestCaseError::fail(format!("valid, but no plan: {e}")))?;
    Ok(())
}

/// `default` cases, or `PROPTEST_CASES` when set (for a longer fuzzing run).
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn mutated_blueprints_never_panic_and_valid_ones_plan((path, bytes) in mutant()) {
        check(&path, &bytes)?;
    }
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn the_binary_always_prints_one_json_document((path, bytes) in mutant()) {
        // In a scratch directory (never beside the seeds, which other tests list), with the
        // seed's `images/` linked in, so relative build paths resolve as for the seed itself.
        let scratch = tempfile::tempdir().expect("tempdir");
        let images = path.parent().expect("seed dir").join("images");
        if images.is_dir() {
            std::os::unix::fs::symlink(&images, scratch.path().join("images")).expect("link images");
        }
        let file = scratch.path().join("mutant.yaml");
        std::fs::write(&file, &bytes).expect("write mutant");
        let out = assert_cmd::Command::cargo_bin("scale")
            .expect("the scale binary is built")
            .args(["validate", "--output", "json"])
            .arg(&file)
            .env("DOCKER_HOST", "unix:///nonexistent.sock")
            .timeout(Duration::from_secs(60))
            .output()
            .expect("run scale");
        let code = out.status.code();
        prop_assert!(matches!(code, Some(0 | 1)), "exit {code:?}: {}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let doc: serde_json::Value = serde_json::from_str(&stdout)
            .map_err(|e| TestCaseError::fail(format!("stdout is not one JSON document ({e}): {stdout}")))?;
        prop_assert_eq!(doc["valid"].as_bool(), Some(code == Some(0)));
    }
}
