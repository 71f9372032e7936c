//! Reading a blueprint file: bytes → checks a YAML parser explains badly (encoding, tabs,
//! emptiness) → tree → typed blueprint.

use std::path::{Path, PathBuf};

use super::decode::decode;
use super::envfile;
use super::fsread::{self, ReadError};
use super::interpolate::Env;
use super::node;
use super::types::Blueprint;
use crate::diag::{Diagnostic, Diagnostics, Pos};

/// Blueprints larger than this are refused while reading (no real blueprint comes close).
pub const MAX_BLUEPRINT_BYTES: usize = fsread::MAX_BLUEPRINT_BYTES as usize;

/// Loads a blueprint file, interpolating with the process environment over the `.env` file
/// beside it.
pub fn load(path: &Path) -> Result<Blueprint, Diagnostics> {
    strict(load_lenient(path))
}

/// Loads a blueprint file as far as it goes: with problems, the blueprint (when there is
/// one) is partial, good for semantic checks that report everything at once.
pub fn load_lenient(path: &Path) -> (Option<Blueprint>, Diagnostics) {
    super::project::load_project(&super::project::Options::file(path))
}

/// Reads and parses one file of a project into a tree (not yet decoded): read with its size
/// bound enforced while reading (regular files only), parsed within the limits `env` sets.
pub(super) fn read_tree(path: &Path, env: &Env) -> Result<node::Node, Diagnostics> {
    let bytes = match fsread::read_bounded(path, fsread::MAX_BLUEPRINT_BYTES) {
        Ok(bytes) => bytes,
        Err(ReadError::TooLarge { limit }) => {
            let d = Diagnostic::file(
                path,
                format!("the file is larger than {limit} bytes; blueprints are limited to {limit}"),
            )
            .hint("check the path: no blueprint comes close to this size");
            return Err(Diagnostics(vec![d]));
        }
        Err(err) => {
            let hint = match err {
                ReadError::NotFound => "check the path; blueprints live in blueprints/*.yaml",
                _ => err.hint(),
            };
            let d = Diagnostic::file(path, format!("cannot read the blueprint: {err}")).hint(hint);
            return Err(Diagnostics(vec![d]));
        }
    };
    let text = check_text(path, &bytes).map_err(|d| Diagnostics(vec![d]))?;
    let limits = yaml_limits(path, env).map_err(|d| Diagnostics(vec![d]))?;
    node::parse_with(text, limits).map_err(|err| {
        let d = Diagnostic::at(path, err.pos, format!("invalid YAML: {}", err.message)).hint(err.hint);
        Diagnostics(vec![d])
    })
}

/// A `.env` file (Compose's grammar); a missing one is an empty environment.
pub(super) fn read_dotenv(path: &Path) -> Result<Env, Diagnostics> {
    dotenv(path)
}

/// Loads a blueprint from bytes already in memory; `file` is used for paths and messages.
pub fn load_bytes(file: &Path, bytes: &[u8], env: &Env) -> Result<Blueprint, Diagnostics> {
    strict(load_bytes_lenient(file, bytes, env))
}

/// [`load_bytes`], keeping a partial blueprint next to the problems.
pub fn load_bytes_lenient(file: &Path, bytes: &[u8], env: &Env) -> (Option<Blueprint>, Diagnostics) {
    let text = match check_text(file, bytes) {
        Ok(text) => text,
        Err(d) => return (None, Diagnostics(vec![d])),
    };
    let limits = match yaml_limits(file, env) {
        Ok(limits) => limits,
        Err(d) => return (None, Diagnostics(vec![d])),
    };
    let root = match node::parse_with(text, limits) {
        Ok(root) => root,
        Err(err) => {
            let d = Diagnostic::at(file, err.pos, format!("invalid YAML: {}", err.message)).hint(err.hint);
            return (None, Diagnostics(vec![d]));
        }
    };
    let (blueprint, problems) = decode(file, &blueprint_dir(file), &root, env);
    (blueprint, Diagnostics(problems).sorted())
}

fn strict((blueprint, problems): (Option<Blueprint>, Diagnostics)) -> Result<Blueprint, Diagnostics> {
    match blueprint {
        Some(bp) if problems.is_empty() => Ok(bp),
        _ => Err(problems),
    }
}

/// The parser's limits, with the alias limit raised when the environment (shell or `.env`)
/// sets [`node::ALIAS_LIMIT_VAR`] for a real file that shares big anchors very often.
fn yaml_limits(file: &Path, env: &Env) -> Result<node::Limits, Diagnostic> {
    let mut limits = node::Limits::default();
    if let Some(text) = env.get(node::ALIAS_LIMIT_VAR) {
        let n = text.trim().parse::<usize>().ok().filter(|n| (1..=node::MAX_EVENTS).contains(n)).ok_or_else(|| {
            Diagnostic::file(file, format!("{}={text:?} is not a number of events", node::ALIAS_LIMIT_VAR))
                .hint(format!("set it to a whole number from 1 to {}, or unset it", node::MAX_EVENTS))
        })?;
        limits.max_alias_events = n;
    }
    Ok(limits)
}

/// The directory relative paths in a blueprint are resolved against (absolute).
pub fn blueprint_dir(file: &Path) -> PathBuf {
    let parent = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf())
}

/// The `.env` file beside a blueprint: absent is fine; anything else must be a regular,
/// UTF-8 file of at most [`fsread::MAX_ENV_FILE_BYTES`], parsed with its own grammar (see
/// `envfile`): empty or comment-only is a valid, empty environment.
fn dotenv(path: &Path) -> Result<Env, Diagnostics> {
    let bytes = match fsread::read_bounded(path, fsread::MAX_ENV_FILE_BYTES) {
        Ok(bytes) => bytes,
        Err(ReadError::NotFound) => return Ok(Env::default()),
        Err(err) => {
            let d = Diagnostic::file(path, format!("cannot read the .env file: {err}")).hint(err.hint());
            return Err(Diagnostics(vec![d]));
        }
    };
    let text = utf8(path, &bytes, "save the .env file as UTF-8").map_err(|d| Diagnostics(vec![d]))?;
    envfile::parse(path, text, &Env::from_process()).map_err(Diagnostics)
}

/// The text of a file without its byte-order mark, or where its first invalid byte is.
fn utf8<'a>(file: &Path, bytes: &'a [u8], hint: &str) -> Result<&'a str, Diagnostic> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|err| {
        let good = &bytes[..err.valid_up_to()];
        let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let col = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
        Diagnostic::at(
            file,
            pos(line, col),
            format!("the file is not valid UTF-8 (byte 0x{:02X})", bytes[err.valid_up_to()]),
        )
        .hint(hint)
    })
}

/// Lines as YAML counts them: ended by LF, CRLF or a lone CR.
fn yaml_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest.find(['\n', '\r']).unwrap_or(rest.len());
        let line = &rest[..end];
        let skip = if rest[end..].starts_with("\r\n") { 2 } else { usize::from(end < rest.len()) };
        rest = &rest[end + skip..];
        Some(line)
    })
}

/// UTF-8, not empty, no tab indentation; each a precise message. (The size bound is
/// enforced while reading.)
fn check_text<'a>(file: &Path, bytes: &'a [u8]) -> Result<&'a str, Diagnostic> {
    if bytes.len() > MAX_BLUEPRINT_BYTES {
        return Err(Diagnostic::file(
            file,
            format!("the file is {} bytes; blueprints are limited to {MAX_BLUEPRINT_BYTES}", bytes.len()),
        ));
    }
    let text = utf8(file, bytes, "save the blueprint as UTF-8")?;
    if yaml_lines(text).all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
        return Err(
            Diagnostic::file(file, "the blueprint is empty").hint("a blueprint needs at least `name:` and `services:`")
        );
    }
    for (i, line) in yaml_lines(text).enumerate() {
        let indent_len = line.len() - line.trim_start_matches([' ', '\t']).len();
        if let Some(col) = line[..indent_len].find('\t') {
            return Err(Diagnostic::at(file, pos(i + 1, col + 1), "a tab is used for indentation")
                .hint("YAML indents with spaces only; replace the tab with spaces"));
        }
    }
    Ok(text)
}

fn pos(line: usize, col: usize) -> Pos {
    Pos::new(u32::try_from(line).unwrap_or(u32::MAX), u32::try_from(col).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_lines_end_at_lf_crlf_and_lone_cr() {
        assert_eq!(yaml_lines("a\nb\r\nc\rd").collect::<Vec<_>>(), ["a", "b", "c", "d"]);
        assert_eq!(yaml_lines("a\n\nb\n").collect::<Vec<_>>(), ["a", "", "b"]);
    }

    #[test]
    fn a_cr_only_file_that_starts_with_a_comment_is_not_empty() {
        let text = b"# shop\rname: shop\rservices:\r  web: { image: app }\r";
        assert!(check_text(Path::new("x.yaml"), text).is_ok());
        let bp = load_bytes(Path::new("x.yaml"), text, &Env::default()).expect("loads");
        assert_eq!(bp.services.len(), 1);
    }
}
