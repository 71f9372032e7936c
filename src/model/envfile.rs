//! The `.env` file beside a blueprint, parsed with its own grammar, the one Docker Compose
//! uses (compose-go's `dotenv` package), not with the blueprint's YAML text checks:
//!
//! - blank lines and lines whose first non-blank character is `#` are skipped; an empty or
//!   comment-only file is an empty environment;
//! - a statement is `KEY=value` or `KEY: value`, optionally after `export `; keys are letters,
//!   digits, `_`, `.` and `-`; a line that is only `KEY` takes KEY from the process
//!   environment, if it is set there;
//! - unquoted values run to the end of the line, lose trailing blanks and a ` #` comment, and
//!   expand `${VAR}`, `$VAR` and the `${VAR:-default}` family;
//! - `'single quoted'` values are literal; `"double quoted"` values expand `\n`, `\r` and
//!   variables, and `\X` is X (so `\"`, `\\`, `\$` are literal); either kind of quote may span
//!   several lines (certificates, keys); after the closing quote only a comment may follow;
//! - line ends are LF, CRLF or a lone CR;
//! - as in Compose, a variable set in the process environment wins, both as the value of its
//!   own line and when a later line refers to it.
//!
//! One pass over the text: each value is expanded against one lookup table that grows as the
//! file is read (nothing is copied per line), so a 10,000-line file parses in linear time.

use std::path::Path;

use super::interpolate::{Env, interpolate};
use crate::diag::{Diagnostic, Pos};

/// Parses `.env` text against `outer` (the process environment); returns the file's
/// variables (with the process's values where it sets them too), or every problem.
pub fn parse(file: &Path, text: &str, outer: &Env) -> Result<Env, Vec<Diagnostic>> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut parser = Parser { file, outer, lookup: outer.clone(), env: Env::default(), problems: Vec::new() };
    let mut rest = text.as_str();
    let mut line: u32 = 1;
    while let Some((statement, statement_line)) = next_statement(&mut rest, &mut line) {
        let consumed = parser.statement(statement, statement_line);
        line += count_lines(&statement[..consumed]);
        rest = &statement[consumed..];
    }
    if parser.problems.is_empty() { Ok(parser.env) } else { Err(parser.problems) }
}

struct Parser<'a> {
    file: &'a Path,
    outer: &'a Env,
    /// The process environment, then the file's variables it does not set: what `${VAR}` sees.
    lookup: Env,
    env: Env,
    problems: Vec<Diagnostic>,
}

impl Parser<'_> {
    /// Parses one statement at the start of `src`; returns how many bytes it used.
    fn statement(&mut self, src: &str, line: u32) -> usize {
        let body = src.strip_prefix("export").filter(|r| r.starts_with([' ', '\t'])).unwrap_or(src);
        let skipped = src.len() - body.len();
        let body_trim = body.trim_start_matches([' ', '\t']);
        let skipped = skipped + body.len() - body_trim.len();
        let line_end = body_trim.find('\n').unwrap_or(body_trim.len());
        let Some(sep) = body_trim[..line_end].find(['=', ':']) else {
            // `KEY` alone: inherited from the process environment when it is set there.
            let key = body_trim[..line_end].trim_end();
            if self.key_ok(key, line)
                && let Some(value) = self.outer.get(key)
            {
                self.env.set(key, value);
            }
            return skipped + line_end;
        };
        let key = body_trim[..sep].trim_end();
        let value_src = &body_trim[sep + 1..];
        let value_trim = value_src.trim_start_matches([' ', '\t']);
        let value_offset = skipped + sep + 1 + value_src.len() - value_trim.len();
        let (value, used) = self.value(key, value_trim, line);
        if self.key_ok(key, line)
            && let Some(value) = value
        {
            self.set(key, value);
        }
        value_offset + used
    }

    fn key_ok(&mut self, key: &str, line: u32) -> bool {
        let ok = !key.is_empty() && key.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok {
            let shown: String = key.chars().take(60).collect();
            self.problem(line, 1, format!("{shown:?} is not a variable name"), "names are letters, digits, `_`, `.` and `-`; each line of .env is KEY=value, and comments start with #");
        }
        ok
    }

    /// The value at the start of `src` and how many bytes it used (a quoted one may span lines).
    fn value(&mut self, key: &str, src: &str, line: u32) -> (Option<String>, usize) {
        let quote = match src.as_bytes().first() {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => {
                let end = src.find('\n').unwrap_or(src.len());
                let raw = &src[..end];
                let raw = raw.find(" #").map_or(raw, |i| &raw[..i]).trim_end();
                return (self.expand(key, raw, line), end);
            }
        };
        let Some(close) = closing_quote(src, quote) else {
            self.problem(
                line,
                1,
                format!("value of {key}: the {} quote is never closed", quote_name(quote)),
                "close the quote; a quoted value may span several lines",
            );
            return (None, src.len());
        };
        let inner = &src[1..close];
        let after = &src[close + 1..];
        let tail_end = after.find('\n').unwrap_or(after.len());
        let tail = after[..tail_end].trim();
        if !tail.is_empty() && !tail.starts_with('#') {
            let tail_line = line + count_lines(&src[..close]);
            self.problem(
                tail_line,
                1,
                format!("value of {key}: unexpected text after the closing quote"),
                "only a `# comment` may follow a quoted value",
            );
        }
        let value = if quote == b'\'' { Some(inner.to_string()) } else { self.expand(key, &unescape(inner), line) };
        (value, close + 1 + tail_end)
    }

    fn expand(&mut self, key: &str, raw: &str, line: u32) -> Option<String> {
        match interpolate(raw, &self.lookup) {
            Ok(value) => Some(value),
            Err(err) => {
                self.problem(
                    line,
                    1,
                    format!("value of {key}: {err}"),
                    "write `$$` (or `\\$` inside double quotes) for a literal `$`",
                );
                None
            }
        }
    }

    fn set(&mut self, key: &str, value: String) {
        // The process environment wins over the file, for this line and for later references.
        let value = self.outer.get(key).map_or(value, str::to_string);
        if self.outer.get(key).is_none() {
            self.lookup.set(key, value.clone());
        }
        self.env.set(key, value);
    }

    fn problem(&mut self, line: u32, col: u32, message: String, hint: &str) {
        self.problems.push(Diagnostic::at(self.file, Pos::new(line, col), message).hint(hint));
    }
}

/// Skips blank and comment lines; returns the rest from the next statement, and its line.
fn next_statement<'t>(rest: &mut &'t str, line: &mut u32) -> Option<(&'t str, u32)> {
    loop {
        let trimmed = rest.trim_start_matches([' ', '\t', '\u{b}', '\u{c}']);
        if trimmed.is_empty() {
            return None;
        }
        if let Some(after) = trimmed.strip_prefix('\n') {
            *line += 1;
            *rest = after;
        } else if trimmed.starts_with('#') {
            *rest = &trimmed[trimmed.find('\n').unwrap_or(trimmed.len())..];
        } else {
            *rest = trimmed;
            return Some((trimmed, *line));
        }
    }
}

/// The index of the quote closing the one at `src[0]`, skipping backslash-escaped quotes.
fn closing_quote(src: &str, quote: u8) -> Option<usize> {
    let bytes = src.as_bytes();
    (1..bytes.len()).find(|&i| bytes[i] == quote && bytes[i - 1] != b'\\')
}

fn quote_name(quote: u8) -> &'static str {
    if quote == b'\'' { "single" } else { "double" }
}

fn count_lines(text: &str) -> u32 {
    u32::try_from(text.bytes().filter(|&b| b == b'\n').count()).unwrap_or(u32::MAX)
}

/// Double-quoted escapes as Compose reads them: `\n` and `\r` are line breaks, `\X` is X, and
/// `\$` is a literal `$` (written `$$` for the interpolation that follows).
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('$') => out.push_str("$$"),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(text: &str) -> Env {
        parse(Path::new(".env"), text, &Env::default()).unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
    }

    #[test]
    fn reads_compose_style_lines() {
        let text = "# comment\nA=1\nexport B = two \nC='${A} literal'\nD=\"x${A}\\ny\"\nE=v # trailing\n\nF=${B}-f\n";
        let env = env(text);
        assert_eq!(env.get("A"), Some("1"));
        assert_eq!(env.get("B"), Some("two"));
        assert_eq!(env.get("C"), Some("${A} literal"));
        assert_eq!(env.get("D"), Some("x1\ny"));
        assert_eq!(env.get("E"), Some("v"));
        assert_eq!(env.get("F"), Some("two-f"));
    }

    #[test]
    fn empty_blank_and_comment_only_files_are_empty_environments() {
        for text in ["", "\n\n", "   \n\t\n", "# only a comment", "# a\n# b\r\n\r\n", "\r# cr only\r"] {
            assert_eq!(env(text), Env::default(), "{text:?}");
        }
    }

    #[test]
    fn quoted_values_may_span_lines_and_keep_their_line_numbers() {
        let text = "KEY=\"-----BEGIN-----\nabc\n-----END-----\"\nAFTER='x\ny' # c\nLAST=3\nbad line here\n";
        let errs = parse(Path::new(".env"), text, &Env::default()).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].pos.unwrap().line, 7, "{errs:?}");
        let env = env(&text.replace("bad line here\n", ""));
        assert_eq!(env.get("KEY"), Some("-----BEGIN-----\nabc\n-----END-----"));
        assert_eq!(env.get("AFTER"), Some("x\ny"));
        assert_eq!(env.get("LAST"), Some("3"));
    }

    #[test]
    fn crlf_and_lone_cr_end_lines() {
        let env = env("A=1\r\nB=\"two\"\r\nexport C=3\rD=4");
        assert_eq!(
            (env.get("A"), env.get("B"), env.get("C"), env.get("D")),
            (Some("1"), Some("two"), Some("3"), Some("4"))
        );
    }

    #[test]
    fn escapes_yaml_style_and_empty_values() {
        let env = env("A=\"q\\\"uote \\\\ \\$HOME\"\nB: yaml style\nC=\nD=''\nE=#not a comment start\nF=a#b\n");
        assert_eq!(env.get("A"), Some("q\"uote \\ $HOME"));
        assert_eq!(env.get("B"), Some("yaml style"));
        assert_eq!(env.get("C"), Some(""));
        assert_eq!(env.get("D"), Some(""));
        assert_eq!(env.get("E"), Some("#not a comment start"));
        assert_eq!(env.get("F"), Some("a#b"));
    }

    #[test]
    fn the_process_environment_wins_and_bare_keys_inherit_from_it() {
        let outer = Env::from_pairs([("A", "process"), ("H", "home")]);
        let env = parse(Path::new(".env"), "A=file\nB=${A}\nH\nMISSING\n", &outer).unwrap();
        assert_eq!(env.get("A"), Some("process"));
        assert_eq!(env.get("B"), Some("process"));
        assert_eq!(env.get("H"), Some("home"));
        assert_eq!(env.get("MISSING"), None);
    }

    #[test]
    fn bad_lines_name_their_line() {
        let errs = parse(Path::new(".env"), "A=1\nnot a pair\nB='open\n", &Env::default()).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(errs[0].pos.unwrap().line, 2);
        assert!(errs[1].message.contains("never closed"), "{errs:?}");
        assert_eq!(errs[1].pos.unwrap().line, 3);
        let errs = parse(Path::new(".env"), "A=\"x\" junk\n", &Env::default()).unwrap_err();
        assert!(errs[0].message.contains("after the closing quote"), "{errs:?}");
    }
}
