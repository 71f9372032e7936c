//! The `.env` file beside a blueprint, read the way Docker Compose reads it.

use std::path::Path;

use super::interpolate::{Env, interpolate};
use crate::diag::{Diagnostic, Pos};

/// Parses `.env` text: `KEY=value`, `export KEY=value`, `# comments`, single quotes (literal),
/// double quotes (with `\n`, `\"`, `\\` escapes) and `${VAR}` references to earlier lines and
/// the process environment.
pub fn parse(file: &Path, text: &str, outer: &Env) -> Result<Env, Vec<Diagnostic>> {
    let mut env = Env::default();
    let mut problems = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            problems.push(
                Diagnostic::at(file, Pos::new(line_no, 1), format!("expected KEY=value, found {line:?}"))
                    .hint("each line of .env is KEY=value; start comments with #"),
            );
            continue;
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            problems.push(Diagnostic::at(file, Pos::new(line_no, 1), format!("{key:?} is not a variable name")));
            continue;
        }
        let value = value.trim();
        let lookup = outer.clone().overlay(env.clone());
        let parsed = if let Some(inner) = value.strip_prefix('\'') {
            inner.strip_suffix('\'').map(str::to_string).ok_or("a single quote is not closed")
        } else if let Some(inner) = value.strip_prefix('"') {
            match inner.strip_suffix('"') {
                Some(inner) => interpolate(&unescape(inner), &lookup).map_err(|_| "bad ${...} reference"),
                None => Err("a double quote is not closed"),
            }
        } else {
            let value = match value.find(" #") {
                Some(i) => value[..i].trim_end(),
                None => value,
            };
            interpolate(value, &lookup).map_err(|_| "bad ${...} reference")
        };
        match parsed {
            Ok(v) => env.set(key, v),
            Err(why) => problems.push(Diagnostic::at(
                file,
                Pos::new(line_no, u32::try_from(raw.find('=').unwrap_or(0) + 2).unwrap_or(1)),
                format!("value of {key}: {why}"),
            )),
        }
    }
    if problems.is_empty() { Ok(env) } else { Err(problems) }
}

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
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_compose_style_lines() {
        let text = "# comment\nA=1\nexport B = two \nC='${A} literal'\nD=\"x${A}\\ny\"\nE=v # trailing\n\nF=${B}-f\n";
        let env = parse(Path::new(".env"), text, &Env::default()).unwrap();
        assert_eq!(env.get("A"), Some("1"));
        assert_eq!(env.get("B"), Some("two"));
        assert_eq!(env.get("C"), Some("${A} literal"));
        assert_eq!(env.get("D"), Some("x1\ny"));
        assert_eq!(env.get("E"), Some("v"));
        assert_eq!(env.get("F"), Some("two-f"));
    }

    #[test]
    fn bad_lines_name_their_line() {
        let errs = parse(Path::new(".env"), "A=1\nnot a pair\nB='open\n", &Env::default()).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].pos.unwrap().line, 2);
        assert_eq!(errs[1].pos.unwrap().line, 3);
    }
}
