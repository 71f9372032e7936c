//! Compose-style variable interpolation: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:?message}`, `${VAR?message}`, `${VAR:+alt}`, `${VAR+alt}` and `$$` for a literal `$`.

use std::collections::BTreeMap;

/// The variables a blueprint is interpolated with: the process environment over the `.env`
/// file beside the blueprint (the shell wins, as in Compose).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// An environment from explicit pairs (tests, or callers that assembled their own).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Env { vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// Layers `over` on top of `self`: its values win.
    pub fn overlay(mut self, over: Env) -> Self {
        self.vars.extend(over.vars);
        self
    }

    /// The process environment (non-UTF-8 variables are skipped).
    pub fn from_process() -> Self {
        Env {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.vars.insert(name.into(), value.into());
    }

    /// Every variable, in name order (an `env_file:` becomes a service's environment).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Why a string could not be interpolated, in words for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterpolationError {
    /// `${VAR:?message}` with VAR unset (or empty).
    Required { var: String, message: String },
    /// Unbalanced braces, an empty name, an unknown operator.
    Syntax(String),
}

impl std::fmt::Display for InterpolationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InterpolationError::Required { var, message } if message.is_empty() => {
                write!(f, "required variable {var} is not set")
            }
            InterpolationError::Required { var, message } => {
                write!(f, "required variable {var} is not set: {message}")
            }
            InterpolationError::Syntax(msg) => write!(f, "invalid interpolation: {msg}"),
        }
    }
}

const MAX_NESTING: usize = 8;

/// Replaces every variable reference in `input`.
pub fn interpolate(input: &str, env: &Env) -> Result<String, InterpolationError> {
    expand(input, env, 0)
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn expand(input: &str, env: &Env, depth: usize) -> Result<String, InterpolationError> {
    if depth > MAX_NESTING {
        return Err(InterpolationError::Syntax(format!("defaults nested more than {MAX_NESTING} deep")));
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let mut chars = after.chars();
        match chars.next() {
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some('{') => {
                let body_start = &after[1..];
                let end = matching_brace(body_start).ok_or_else(|| {
                    InterpolationError::Syntax(format!(
                        "`${{` without a closing `}}` in {input:?}; write `$$` for a literal `$`"
                    ))
                })?;
                out.push_str(&braced(&body_start[..end], env, depth)?);
                rest = &body_start[end + 1..];
            }
            Some(c) if is_name_start(c) => {
                let len = after.find(|c: char| !is_name_char(c)).unwrap_or(after.len());
                out.push_str(env.get(&after[..len]).unwrap_or(""));
                rest = &after[len..];
            }
            _ => {
                return Err(InterpolationError::Syntax(format!(
                    "a lone `$` in {input:?}; write `$$` for a literal `$`"
                )));
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Index of the `}` closing a `${`, skipping nested `${...}` in defaults.
fn matching_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn braced(body: &str, env: &Env, depth: usize) -> Result<String, InterpolationError> {
    let name_len = body.find(|c: char| !is_name_char(c)).unwrap_or(body.len());
    let name = &body[..name_len];
    if name.is_empty() || !name.starts_with(is_name_start) {
        return Err(InterpolationError::Syntax(format!("`${{{body}}}` does not start with a variable name")));
    }
    let value = env.get(name);
    let op = &body[name_len..];
    if op.is_empty() {
        return Ok(value.unwrap_or("").to_string());
    }
    let (colon, op) = match op.strip_prefix(':') {
        Some(rest) => (true, rest),
        None => (false, op),
    };
    // With a colon, an empty value counts as unset.
    let set = match value {
        Some(v) => !(colon && v.is_empty()),
        None => false,
    };
    let mut op_chars = op.chars();
    let operator = op_chars.next();
    let arg = op_chars.as_str();
    match operator {
        Some('-') if set => Ok(value.unwrap_or("").to_string()),
        Some('-') => expand(arg, env, depth + 1),
        Some('?') if set => Ok(value.unwrap_or("").to_string()),
        Some('?') => Err(InterpolationError::Required { var: name.to_string(), message: expand(arg, env, depth + 1)? }),
        Some('+') if set => expand(arg, env, depth + 1),
        Some('+') => Ok(String::new()),
        _ => Err(InterpolationError::Syntax(format!(
            "`${{{body}}}`: after the name expected `:-`, `-`, `:?`, `?`, `:+` or `+`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env::from_pairs([("A", "1"), ("EMPTY", ""), ("B", "two")])
    }

    #[test]
    fn forms() {
        let e = env();
        let cases = [
            ("x${A}y", "x1y"),
            ("$A$B", "1two"),
            ("${MISSING}", ""),
            ("${MISSING:-d}", "d"),
            ("${EMPTY:-d}", "d"),
            ("${EMPTY-d}", ""),
            ("${A:-d}", "1"),
            ("${MISSING:-${B}}", "two"),
            ("${A:+alt}", "alt"),
            ("${MISSING:+alt}", ""),
            ("$$A", "$A"),
            ("cost: $$5", "cost: $5"),
            ("${A?x}", "1"),
        ];
        for (input, want) in cases {
            assert_eq!(interpolate(input, &e).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn required_variables() {
        let err = interpolate("${DB_PASSWORD:?set a database password}", &env()).unwrap_err();
        assert_eq!(err.to_string(), "required variable DB_PASSWORD is not set: set a database password");
        assert!(interpolate("${EMPTY:?x}", &env()).is_err());
        assert_eq!(interpolate("${EMPTY?x}", &env()).unwrap(), "");
    }

    #[test]
    fn syntax_errors() {
        for bad in ["${A", "${}", "${1A}", "$ x", "${A!x}", "end$"] {
            assert!(matches!(interpolate(bad, &env()), Err(InterpolationError::Syntax(_))), "{bad}");
        }
    }
}
