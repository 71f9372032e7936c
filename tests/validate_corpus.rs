//! The corpus of broken and valid blueprints, run through the library and the real binary.
//!
//! Each file in `tests/corpus/broken/` starts with `# expect: <substring>` (the rendered
//! diagnostics must contain it) and optionally `# line: N` (the first diagnostic must point
//! at that line). A few inputs that make poor fixtures (an empty file, megabytes of junk) are
//! generated at run time into a temporary directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use scale::diag::Diagnostics;
use scale::model::load;
use scale::validate::validate;

/// A hang guard only: a case that takes this long is stuck. How fast inputs are handled
/// (the < 2 s goal for pathological files) is measured by `cargo bench --bench hostile`, not
/// asserted here, where a loaded CI machine would make it flaky.
const LIMIT: Duration = Duration::from_secs(20);

#[derive(Debug)]
struct Case {
    path: PathBuf,
    expect: String,
    line: Option<u32>,
}

fn corpus(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(kind)
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Reads the `# expect:` / `# line:` header of a corpus file (bytes: some are not UTF-8).
fn header(path: &Path) -> Case {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = String::from_utf8_lossy(&bytes);
    let mut expect = None;
    let mut line = None;
    for l in text.lines().take_while(|l| l.starts_with('#')) {
        if let Some(rest) = l.strip_prefix("# expect:") {
            expect = Some(rest.trim().to_string());
        } else if let Some(rest) = l.strip_prefix("# line:") {
            line = Some(rest.trim().parse().unwrap_or_else(|_| panic!("{}: bad `# line:`", path.display())));
        }
    }
    let expect = expect.unwrap_or_else(|| panic!("{} has no `# expect:` line", path.display()));
    Case { path: path.to_path_buf(), expect, line }
}

/// A small deterministic generator, so the junk is the same on every run.
fn junk(len: usize, alphabet: &[u8]) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            alphabet[(state % alphabet.len() as u64) as usize]
        })
        .collect()
}

/// Inputs written at run time: (file name, contents, expected substring, expected line).
fn generated_inputs() -> Vec<(&'static str, Vec<u8>, &'static str, Option<u32>)> {
    let mut keys = String::from("name: shop\nservices:\n  web: { image: app }\n");
    let mut i = 0;
    while keys.len() < 3 * 1024 * 1024 {
        keys.push_str(&format!("junk_key_{i:07}: some value that means nothing\n"));
        i += 1;
    }
    let mut random = b"name: shop\nservices:\n".to_vec();
    random.extend(junk(3 * 1024 * 1024, b"abcxyz019 :-[]{}\"'#&*!|>,?\n\n"));
    vec![
        ("empty.yaml", Vec::new(), "the blueprint is empty", None),
        ("whitespace.yaml", b"  \n\n   \n".to_vec(), "the blueprint is empty", None),
        ("junk-3mb-keys.yaml", keys.into_bytes(), "invalid YAML", None),
        ("junk-3mb-random.yaml", random, "invalid YAML", None),
        ("oversize.yaml", vec![b'#'; 5 * 1024 * 1024], "blueprints are limited to", None),
    ]
}

/// Every broken case: the committed corpus plus generated files inside `tmp`.
fn broken_cases(tmp: &Path) -> Vec<Case> {
    let mut cases: Vec<Case> = yaml_files(&corpus("broken")).iter().map(|p| header(p)).collect();
    assert!(cases.len() >= 40, "the broken corpus has only {} files", cases.len());
    for (name, bytes, expect, line) in generated_inputs() {
        let path = tmp.join(name);
        std::fs::write(&path, bytes).expect("write a generated case");
        cases.push(Case { path, expect: expect.to_string(), line });
    }
    cases
}

/// Loads and validates like `scale validate` does, returning every problem.
fn check(path: &Path) -> Diagnostics {
    match load(path) {
        Err(diags) => diags,
        Ok(bp) => Diagnostics(validate(&bp, None)).sorted(),
    }
}

/// What is wrong with one broken case, or `None` when it behaves as its header says.
fn judge(case: &Case) -> Option<String> {
    let start = Instant::now();
    let diags = check(&case.path);
    let elapsed = start.elapsed();
    let rendered = diags.to_string();
    let file = case.path.display().to_string();
    let mut wrong = Vec::new();
    if diags.is_empty() {
        wrong.push("no diagnostics".to_string());
    }
    if !rendered.contains(&file) {
        wrong.push("the output does not name the file".into());
    }
    if let Some(d) = diags.0.iter().find(|d| d.file != case.path) {
        wrong.push(format!("a diagnostic names another file: {d}"));
    }
    if !rendered.contains(&case.expect) {
        wrong.push(format!("missing {:?}", case.expect));
    }
    if let Some(line) = case.line {
        let first = diags.0.first().and_then(|d| d.pos).map(|p| p.line);
        if first != Some(line) {
            wrong.push(format!("first diagnostic at line {first:?}, expected {line}"));
        }
    }
    if elapsed > LIMIT {
        wrong.push(format!("took {elapsed:?}"));
    }
    (!wrong.is_empty()).then(|| format!("{file}: {}\n--- output ---\n{}", wrong.join("; "), truncate(&rendered)))
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(2_000) {
        Some((i, _)) => format!("{}… ({} bytes)", &text[..i], text.len()),
        None => text.to_string(),
    }
}

#[test]
fn every_broken_blueprint_is_reported_with_file_line_and_message() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let cases = broken_cases(tmp.path());
    let failures: Vec<String> = cases.iter().filter_map(judge).collect();
    assert!(failures.is_empty(), "{} of {} cases wrong:\n\n{}", failures.len(), cases.len(), failures.join("\n\n"));
}

#[test]
fn every_valid_blueprint_has_no_problems() {
    let files = yaml_files(&corpus("valid"));
    assert!(files.len() >= 3, "the valid corpus has only {} files", files.len());
    for path in files {
        let diags = check(&path);
        assert!(diags.is_empty(), "{}:\n{diags}", path.display());
        let bp = load(&path).expect("loads");
        assert!(!bp.services.is_empty(), "{}", path.display());
    }
}

/// The stage ladder shipped in `blueprints/` must stay valid too.
#[test]
fn the_shipped_blueprints_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("blueprints");
    for path in yaml_files(&dir) {
        let diags = check(&path);
        assert!(diags.is_empty(), "{}:\n{diags}", path.display());
    }
}

#[test]
fn the_binary_rejects_every_broken_blueprint_with_exit_code_1() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut failures = Vec::new();
    for case in broken_cases(tmp.path()) {
        let file = case.path.display().to_string();
        let start = Instant::now();
        let output = assert_cmd::Command::cargo_bin("scale")
            .expect("the scale binary is built")
            .args(["validate", file.as_str()])
            .env_remove("SCALE_CORPUS_UNSET_PASSWORD")
            // A hang must fail the test, not stall it.
            .timeout(Duration::from_secs(20))
            .output()
            .expect("run scale");
        let elapsed = start.elapsed();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let mut wrong = Vec::new();
        if output.status.code() != Some(1) {
            wrong.push(format!("exit status {:?}, expected 1", output.status.code()));
        }
        if !stderr.contains(&file) {
            wrong.push("stderr does not name the file".to_string());
        }
        if stderr.contains("panicked") {
            wrong.push("it panicked".into());
        }
        if elapsed > LIMIT {
            wrong.push(format!("took {elapsed:?}"));
        }
        if !wrong.is_empty() {
            failures.push(format!("{file}: {}\n--- stderr ---\n{}", wrong.join("; "), truncate(&stderr)));
        }
    }
    assert!(failures.is_empty(), "{} cases wrong:\n\n{}", failures.len(), failures.join("\n\n"));
}
