//! Property tests: no input makes the loader (or the validator after it) panic, and every
//! problem it reports names the file it came from, at a line that exists in it.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::Config;
use scale::diag::Diagnostic;
use scale::model::{Env, load_bytes};
use scale::validate::validate;

/// A valid blueprint using every generic key; mutations start from it.
fn base_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/valid/every-key.yaml")
}

fn base() -> Vec<u8> {
    std::fs::read(base_path()).expect("the valid corpus is present")
}

/// `cases` by default; `PROPTEST_CASES=20000` for a longer hunt.
fn config(cases: u32) -> Config {
    Config {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases),
        // Regressions are reported in the failure message; nothing is written beside the tests.
        failure_persistence: None,
        ..Config::default()
    }
}

/// Loads and, when that succeeds, validates; returns every problem.
fn problems(path: &Path, bytes: &[u8]) -> Vec<Diagnostic> {
    match load_bytes(path, bytes, &Env::from_pairs([("DB_PASSWORD", "x")])) {
        Err(diags) => diags.0,
        Ok(bp) => validate(&bp, None),
    }
}

/// Lines as YAML counts them: `\r\n`, a lone `\r` and `\n` each end one.
fn line_count(bytes: &[u8]) -> usize {
    let crlf = bytes.windows(2).filter(|w| w == b"\r\n").count();
    let breaks = bytes.iter().filter(|&&b| b == b'\n' || b == b'\r').count();
    breaks - crlf + 1
}

/// Every diagnostic names `path` and, when it has a position, one inside the file.
fn assert_well_formed(path: &Path, bytes: &[u8], diags: &[Diagnostic]) -> Result<(), TestCaseError> {
    let lines = u32::try_from(line_count(bytes)).unwrap_or(u32::MAX);
    for d in diags {
        prop_assert_eq!(&d.file, path, "{}", d);
        prop_assert!(d.to_string().starts_with(&path.display().to_string()), "{}", d);
        prop_assert!(!d.message.is_empty(), "{:?}", d);
        if let Some(pos) = d.pos {
            prop_assert!(pos.line >= 1 && pos.line <= lines, "line {} of {}: {}", pos.line, lines, d);
            prop_assert!(pos.col >= 1, "{}", d);
        }
    }
    Ok(())
}

/// Pieces of YAML (and of things that break YAML) to build or splice text from.
const TOKENS: &[&str] = &[
    "\t",
    ": :",
    "&a ",
    "*a",
    "&a [x, *a]",
    "- ",
    "-",
    ":",
    ": ",
    "[",
    "]",
    "{",
    "}",
    "\"",
    "'",
    "#",
    "|",
    ">-",
    "!",
    "!!str ",
    "?",
    ",",
    "---\n",
    "...\n",
    "${",
    "${X}",
    "${X:?gone}",
    "$$",
    "$",
    "~",
    "null",
    "\n",
    "  ",
    "    ",
    "\r\n",
    "\u{FEFF}",
    "\0",
    "é",
    "💥",
    "name",
    "services",
    "web",
    "image",
    "build",
    "ports",
    "replicas",
    "80",
    "-1",
    "1.5",
    "8080:80",
    "99999",
    "true",
    "<<: *a",
    "0x10",
    ".inf",
    "2s",
    "x-",
];

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(TOKENS).prop_map(str::to_string),
        1 => "[a-z0-9:{}\\[\\]#&*!|>'\" ,-]{1,8}",
        1 => any::<char>().prop_map(String::from),
    ]
}

/// One edit to a blueprint's bytes; indices are taken modulo the current length.
#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    Insert(usize, String),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => any::<usize>().prop_map(Mutation::DeleteLine),
        1 => any::<usize>().prop_map(Mutation::DuplicateLine),
        3 => (any::<usize>(), token()).prop_map(|(at, t)| Mutation::Insert(at, t)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::DeleteLine(i) | Mutation::DuplicateLine(i) => {
            let mut lines: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            let at = i % lines.len();
            if matches!(m, Mutation::DeleteLine(_)) {
                lines.remove(at);
            } else {
                lines.insert(at, lines[at].clone());
            }
            *bytes = lines.join(&b'\n');
        }
        // Byte offsets, not char boundaries: splitting a character is one more way to break it.
        Mutation::Insert(i, text) => {
            let at = i % (bytes.len() + 1);
            bytes.splice(at..at, text.bytes());
        }
        Mutation::Truncate(i) => bytes.truncate(i % (bytes.len() + 1)),
    }
}

#[test]
fn the_base_blueprint_is_valid() {
    let diags = problems(&base_path(), &base());
    assert!(diags.is_empty(), "{diags:#?}");
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let path = Path::new("fuzz/bytes.yaml");
        let diags = problems(path, &bytes);
        assert_well_formed(path, &bytes, &diags)?;
    }

    #[test]
    fn yaml_shaped_noise_never_panics(pieces in proptest::collection::vec(token(), 0..200)) {
        let text = pieces.concat();
        let path = Path::new("fuzz/noise.yaml");
        let diags = problems(path, text.as_bytes());
        assert_well_formed(path, text.as_bytes(), &diags)?;
    }

    #[test]
    fn mutated_blueprints_never_panic_and_name_the_file(edits in proptest::collection::vec(mutation(), 1..5)) {
        let path = base_path();
        let mut bytes = base();
        for edit in &edits {
            apply(&mut bytes, edit);
        }
        let diags = problems(&path, &bytes);
        assert_well_formed(&path, &bytes, &diags)?;
    }
}
