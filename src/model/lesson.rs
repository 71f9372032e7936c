//! `x-lesson:` — what a learner should see at a stage, as checks `scale check` runs against
//! the live project (and the ladder test runs too, so the docs, the lessons and the tests
//! cannot disagree). Compose ignores `x-` keys, so a blueprint with a lesson still reads as a
//! Compose file; scale decodes this one into types, with located errors.
//!
//! ```yaml
//! x-lesson:
//!   - check: reads go to a replica
//!     request: { service: lb, port: 80, path: /users/12 }   # method: GET, body: '…', repeat: 1
//!     expect:
//!       status: 200
//!       headers: { X-Db-Role: replica, X-Served-By: { starts_with: shop-web- } }
//!       body: { firstName: John, address.city: New York }    # dotted paths into the JSON body
//!       distinct: { header: X-Served-By, at_least: 2 }       # over the `repeat` answers
//!       last: { headers: { X-Cache: HIT } }                   # the last answer only
//!     hint: what to look at when it fails
//! ```
//!
//! A matcher is a string (equals) or one of `equals`, `starts_with`, `ends_with`, `contains`,
//! `one_of` (a list).
//!
//! `last:` (status, headers, body) holds for the last of the `repeat` answers only, on top of
//! what every answer must show: a cache's lesson is "whatever the first answer was, the
//! repeated request is a HIT", which stays true however often the learner runs it.

use super::node::{Key, Node, Value};
use super::types::At;
use crate::diag::{Diagnostic, Pos, did_you_mean};

/// One check of a lesson.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LessonCheck {
    pub pos: Pos,
    /// What the learner should see, in a sentence.
    pub check: String,
    pub request: LessonRequest,
    pub expect: Expectation,
    /// What to look at when it fails.
    pub hint: Option<String>,
}

/// The methods a lesson may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Head,
    Post,
}

impl HttpMethod {
    pub const ALL: [(&'static str, HttpMethod); 3] =
        [("GET", HttpMethod::Get), ("HEAD", HttpMethod::Head), ("POST", HttpMethod::Post)];

    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
            HttpMethod::Post => "POST",
        }
    }
}

/// What to send, and to which service's published port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LessonRequest {
    pub method: HttpMethod,
    /// The service whose published port receives the request.
    pub service: At<String>,
    /// The container port it publishes (the host port is asked from the engine).
    pub port: At<u16>,
    pub path: String,
    pub body: Option<String>,
    /// How many times to send it (for `distinct`).
    pub repeat: u32,
}

/// How a value must look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    Equals(String),
    StartsWith(String),
    EndsWith(String),
    Contains(String),
    OneOf(Vec<String>),
}

impl Matcher {
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Equals(s) => value == s,
            Matcher::StartsWith(s) => value.starts_with(s.as_str()),
            Matcher::EndsWith(s) => value.ends_with(s.as_str()),
            Matcher::Contains(s) => value.contains(s.as_str()),
            Matcher::OneOf(options) => options.iter().any(|o| o == value),
        }
    }

    /// What was expected, for a failure message.
    pub fn describe(&self) -> String {
        match self {
            Matcher::Equals(s) => format!("{s:?}"),
            Matcher::StartsWith(s) => format!("starting with {s:?}"),
            Matcher::EndsWith(s) => format!("ending with {s:?}"),
            Matcher::Contains(s) => format!("containing {s:?}"),
            Matcher::OneOf(o) => format!("one of {o:?}"),
        }
    }
}

/// What every answer must show.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expectation {
    pub status: Option<u16>,
    /// Header name (case-insensitive) and its matcher.
    pub headers: Vec<(String, Matcher)>,
    /// Dotted path into the JSON body and its matcher (scalars compared as text).
    pub body: Vec<(String, Matcher)>,
    /// Over all `repeat` answers, at least this many different values of a header.
    pub distinct: Option<(String, u32)>,
    /// What the last answer must show besides (status, headers and body only).
    pub last: Option<Box<Expectation>>,
}

const CHECK_KEYS: &[&str] = &["check", "request", "expect", "hint"];
const REQUEST_KEYS: &[&str] = &["service", "port", "path", "method", "body", "repeat"];
const EXPECT_KEYS: &[&str] = &["status", "headers", "body", "distinct", "last"];
const LAST_KEYS: &[&str] = &["status", "headers", "body"];
const MATCHER_KEYS: &[&str] = &["equals", "starts_with", "ends_with", "contains", "one_of"];

/// Decodes `x-lesson:`; every problem is reported with its position.
pub fn decode(file: &std::path::Path, node: &Node) -> (Vec<LessonCheck>, Vec<Diagnostic>) {
    let mut d = LessonDecoder { file, problems: Vec::new() };
    let checks = match &node.value {
        Value::Seq(items) => items.iter().filter_map(|item| d.check(item)).collect(),
        Value::Null => Vec::new(),
        other => {
            d.error(node.pos, format!("x-lesson: expected a list of checks, found {}", other.kind_name()));
            Vec::new()
        }
    };
    (checks, d.problems)
}

struct LessonDecoder<'a> {
    file: &'a std::path::Path,
    problems: Vec<Diagnostic>,
}

type Entries = [(Key, Node)];

impl LessonDecoder<'_> {
    fn error(&mut self, pos: Pos, message: impl Into<String>) {
        let d = Diagnostic::at(self.file, pos, message)
            .hint("see the x-lesson schema in the README (check, request, expect, hint)");
        self.problems.push(d);
    }

    fn map<'n>(&mut self, node: &'n Node, what: &str, allowed: &[&str]) -> Option<&'n Entries> {
        let Value::Map(entries) = &node.value else {
            self.error(node.pos, format!("{what}: expected a mapping, found {}", node.value.kind_name()));
            return None;
        };
        for (key, _) in entries.iter().filter(|(k, _)| !allowed.contains(&k.name.as_str())) {
            let hint = match did_you_mean(&key.name, allowed.iter().copied()) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!("{what} takes: {}", allowed.join(", ")),
            };
            self.problems
                .push(Diagnostic::at(self.file, key.pos, format!("unknown key `{}` in {what}", key.name)).hint(hint));
        }
        Some(entries)
    }

    fn text(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.value {
            Value::Map(_) | Value::Seq(_) | Value::Null => {
                self.error(node.pos, format!("{what}: expected text, found {}", node.value.kind_name()));
                None
            }
            v => v.scalar_text(),
        }
    }

    fn number(&mut self, node: &Node, what: &str, min: i64, max: i64) -> Option<i64> {
        match node.value {
            Value::Int(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.error(node.pos, format!("{what}: expected a whole number from {min} to {max}"));
                None
            }
        }
    }

    fn check(&mut self, node: &Node) -> Option<LessonCheck> {
        let entries = self.map(node, "an x-lesson check", CHECK_KEYS)?;
        let get = |name: &str| entries.iter().find(|(k, _)| k.name == name).map(|(_, v)| v);
        let (Some(check), Some(request)) = (get("check"), get("request")) else {
            self.error(node.pos, "an x-lesson check needs `check:` (what it shows) and `request:` (what to send)");
            return None;
        };
        let check = self.text(check, "check")?;
        let request = self.request(request)?;
        let expect = match get("expect") {
            Some(e) => self.expect(e, "expect", EXPECT_KEYS)?,
            None => Expectation::default(),
        };
        let hint = match get("hint") {
            Some(h) => Some(self.text(h, "hint")?),
            None => None,
        };
        Some(LessonCheck { pos: node.pos, check, request, expect, hint })
    }

    fn request(&mut self, node: &Node) -> Option<LessonRequest> {
        let entries = self.map(node, "request", REQUEST_KEYS)?;
        let get = |name: &str| entries.iter().find(|(k, _)| k.name == name).map(|(_, v)| v);
        let (Some(service), Some(port), Some(path)) = (get("service"), get("port"), get("path")) else {
            self.error(node.pos, "request: needs `service:`, `port:` (the container port it publishes) and `path:`");
            return None;
        };
        let service = At::new(self.text(service, "request.service")?, service.pos);
        let port = At::new(self.number(port, "request.port", 1, 65535)? as u16, port.pos);
        let path = self.text(path, "request.path")?;
        if !path.starts_with('/') {
            self.error(node.pos, format!("request.path {path:?} must start with `/`"));
            return None;
        }
        let method = match get("method") {
            None => HttpMethod::Get,
            Some(m) => {
                let word = self.text(m, "request.method")?.to_ascii_uppercase();
                let Some((_, method)) = HttpMethod::ALL.iter().find(|(w, _)| *w == word) else {
                    self.error(m.pos, format!("request.method {word:?}: expected GET, HEAD or POST"));
                    return None;
                };
                *method
            }
        };
        let body = match get("body") {
            Some(b) => Some(self.text(b, "request.body")?),
            None => None,
        };
        let repeat = match get("repeat") {
            Some(r) => self.number(r, "request.repeat", 1, 100)? as u32,
            None => 1,
        };
        Some(LessonRequest { method, service, port, path, body, repeat })
    }

    /// `expect:` (with `allowed` its keys), or the `last:` inside it (`what` names which).
    fn expect(&mut self, node: &Node, what: &str, allowed: &[&str]) -> Option<Expectation> {
        let entries = self.map(node, what, allowed)?;
        let mut e = Expectation::default();
        for (key, value) in entries.iter().filter(|(k, _)| allowed.contains(&k.name.as_str())) {
            match key.name.as_str() {
                "status" => e.status = Some(self.number(value, &format!("{what}.status"), 100, 599)? as u16),
                "headers" => e.headers = self.matchers(value, &format!("{what}.headers"))?,
                "body" => e.body = self.matchers(value, &format!("{what}.body"))?,
                "last" => e.last = Some(Box::new(self.expect(value, "expect.last", LAST_KEYS)?)),
                "distinct" => {
                    let entries = self.map(value, "expect.distinct", &["header", "at_least"])?;
                    let get = |name: &str| entries.iter().find(|(k, _)| k.name == name).map(|(_, v)| v);
                    let (Some(header), Some(at_least)) = (get("header"), get("at_least")) else {
                        self.error(value.pos, "expect.distinct needs `header:` and `at_least:`");
                        return None;
                    };
                    let header = self.text(header, "expect.distinct.header")?;
                    e.distinct = Some((header, self.number(at_least, "expect.distinct.at_least", 1, 100)? as u32));
                }
                _ => {}
            }
        }
        Some(e)
    }

    /// A mapping from any name (a header, a body field) to a matcher.
    fn matchers(&mut self, node: &Node, what: &str) -> Option<Vec<(String, Matcher)>> {
        let Value::Map(entries) = &node.value else {
            self.error(node.pos, format!("{what}: expected a mapping, found {}", node.value.kind_name()));
            return None;
        };
        let mut out = Vec::new();
        for (key, value) in entries {
            out.push((key.name.clone(), self.matcher(value, &format!("{what}.{}", key.name))?));
        }
        Some(out)
    }

    fn matcher(&mut self, node: &Node, what: &str) -> Option<Matcher> {
        let Value::Map(_) = &node.value else { return Some(Matcher::Equals(self.text(node, what)?)) };
        let entries = self.map(node, what, MATCHER_KEYS)?;
        let [(key, value)] = entries else {
            self.error(node.pos, format!("{what}: give exactly one of {}", MATCHER_KEYS.join(", ")));
            return None;
        };
        Some(match key.name.as_str() {
            "equals" => Matcher::Equals(self.text(value, what)?),
            "starts_with" => Matcher::StartsWith(self.text(value, what)?),
            "ends_with" => Matcher::EndsWith(self.text(value, what)?),
            "contains" => Matcher::Contains(self.text(value, what)?),
            "one_of" => {
                let Value::Seq(items) = &value.value else {
                    self.error(value.pos, format!("{what}.one_of: expected a list"));
                    return None;
                };
                Matcher::OneOf(items.iter().map(|i| self.text(i, what)).collect::<Option<Vec<_>>>()?)
            }
            _ => return None,
        })
    }
}

/// Each check must send to a service of the blueprint, on a container port it publishes
/// (`scale check` goes only to 127.0.0.1's published ports).
pub fn check_references(bp: &super::Blueprint) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for c in &bp.lesson {
        let r = &c.request;
        let Some(service) = bp.service(&r.service.value) else {
            out.push(
                Diagnostic::at(
                    &bp.file,
                    r.service.pos,
                    format!("x-lesson `{}` sends to unknown service `{}`", c.check, r.service.value),
                )
                .hint("name a service of this blueprint that publishes a port"),
            );
            continue;
        };
        if !service.ports.iter().any(|p| p.value.container_port == r.port.value) {
            let published: Vec<String> = service.ports.iter().map(|p| p.value.container_port.to_string()).collect();
            let hint = if published.is_empty() {
                format!("`{}` publishes no port; send to the service that does (the load balancer?)", service.name)
            } else {
                format!("`{}` publishes container port(s) {}", service.name, published.join(", "))
            };
            out.push(
                Diagnostic::at(
                    &bp.file,
                    r.port.pos,
                    format!(
                        "x-lesson `{}`: service `{}` does not publish port {}",
                        c.check, service.name, r.port.value
                    ),
                )
                .hint(hint),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::model::{Env, load_bytes_lenient};

    const HEAD: &str = "name: shop\nservices:\n  web:\n    image: x\n    ports: [\"8080:8000\"]\n";

    fn load(lesson: &str) -> (Option<crate::model::Blueprint>, Vec<String>) {
        let yaml = format!("{HEAD}x-lesson:\n{lesson}");
        let (bp, problems) = load_bytes_lenient(Path::new("bp.yaml"), yaml.as_bytes(), &Env::default());
        let mut texts: Vec<String> = problems.0.iter().map(|d| d.to_string()).collect();
        if let Some(bp) = &bp {
            texts.extend(check_references(bp).iter().map(|d| d.to_string()));
        }
        (bp, texts)
    }

    #[test]
    fn a_lesson_decodes_into_typed_checks() {
        let (bp, problems) = load(concat!(
            "  - check: writes go to the primary\n",
            "    request: { service: web, port: 8000, method: post, path: /users, body: '{\"a\":1}', repeat: 2 }\n",
            "    expect:\n",
            "      status: 201\n",
            "      headers: { X-Db-Role: primary, X-Served-By: { one_of: [a, b] } }\n",
            "      body: { address.city: { starts_with: New } }\n",
            "      distinct: { header: X-Served-By, at_least: 2 }\n",
            "      last: { status: 200, headers: { X-Cache: HIT } }\n",
            "    hint: look at the primary\n",
        ));
        assert_eq!(problems, Vec::<String>::new());
        let check = &bp.expect("decoded").lesson[0];
        assert_eq!(check.request.method, HttpMethod::Post);
        assert_eq!((check.request.port.value, check.request.repeat), (8000, 2));
        assert_eq!(check.request.body.as_deref(), Some("{\"a\":1}"));
        assert_eq!(check.expect.status, Some(201));
        assert_eq!(check.expect.headers[1], ("X-Served-By".into(), Matcher::OneOf(vec!["a".into(), "b".into()])));
        assert_eq!(check.expect.body[0], ("address.city".into(), Matcher::StartsWith("New".into())));
        assert_eq!(check.expect.distinct, Some(("X-Served-By".into(), 2)));
        let last = check.expect.last.as_deref().expect("last: decoded");
        assert_eq!(last.status, Some(200));
        assert_eq!(last.headers, vec![("X-Cache".into(), Matcher::Equals("HIT".into()))]);
        assert_eq!(check.hint.as_deref(), Some("look at the primary"));
    }

    #[test]
    fn mistakes_are_located_with_a_hint() {
        let (_, problems) = load(concat!(
            "  - check: c\n",
            "    request: { service: web, port: 8000, pth: /x, methd: GET }\n",
            "  - check: d\n",
            "    request: { service: web, port: 70000, path: /x }\n",
            "  - check: e\n",
            "    request: { service: web, port: 8000, path: /x, method: PUT }\n",
        ));
        let all = problems.join("\n");
        assert!(all.contains("bp.yaml:8:42: error: unknown key `pth` in request"), "{all}");
        assert!(all.contains("did you mean `path`?"), "{all}");
        assert!(all.contains("bp.yaml:10:36: error: request.port: expected a whole number from 1 to 65535"), "{all}");
        assert!(all.contains("request.method \"PUT\": expected GET, HEAD or POST"), "{all}");
    }

    #[test]
    fn last_takes_status_headers_and_body_only() {
        let (bp, problems) = load(concat!(
            "  - check: c\n",
            "    request: { service: web, port: 8000, path: /x, repeat: 2 }\n",
            "    expect: { last: { distinct: { header: X, at_least: 2 }, status: 200 } }\n",
        ));
        let all = problems.join("\n");
        assert!(all.contains("bp.yaml:9:23: error: unknown key `distinct` in expect.last"), "{all}");
        assert!(all.contains("expect.last takes: status, headers, body"), "{all}");
        let last = bp.expect("decoded").lesson[0].expect.last.clone().expect("last: decoded");
        assert_eq!((last.status, last.distinct), (Some(200), None));
    }

    #[test]
    fn a_check_must_target_a_published_port_of_a_known_service() {
        let (_, problems) = load(concat!(
            "  - check: c\n",
            "    request: { service: api, port: 8000, path: /x }\n",
            "  - check: d\n",
            "    request: { service: web, port: 80, path: /x }\n",
        ));
        let all = problems.join("\n");
        assert!(all.contains("bp.yaml:8:25: error: x-lesson `c` sends to unknown service `api`"), "{all}");
        assert!(all.contains("bp.yaml:10:36: error: x-lesson `d`: service `web` does not publish port 80"), "{all}");
        assert!(all.contains("`web` publishes container port(s) 8000"), "{all}");
    }
}
