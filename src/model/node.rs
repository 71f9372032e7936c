//! The blueprint as a YAML tree with a position on every node.
//!
//! This is the only place that parses YAML. Parsing into a position-carrying tree first (rather
//! than straight into typed structs) lets the decoder report *every* wrong key and type at once,
//! each with its line and column, instead of stopping at serde's first error.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::diag::Pos;

/// A YAML value together with where it starts in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

impl Node {
    /// Marks every position in the tree as belonging to file number `file` of a project.
    pub fn set_file(&mut self, file: u16) {
        self.pos = self.pos.in_file(file);
        match &mut self.value {
            Value::Seq(items) => items.iter_mut().for_each(|n| n.set_file(file)),
            Value::Map(entries) => {
                for (k, v) in entries {
                    k.pos = k.pos.in_file(file);
                    v.set_file(file);
                }
            }
            _ => {}
        }
    }

    /// The value under `key` when this node is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A mapping key: always a scalar, kept as text, with its own position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

/// The shapes a YAML node can take once parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

impl Value {
    /// How a user would name this shape in an error message.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "a number",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The text of a scalar, as YAML would print it; `None` for collections and null.
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(x) => Some(x.to_string()),
            Value::Str(s) => Some(s.clone()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }
}

fn pos_of(location: serde_saphyr::Location) -> Pos {
    Pos::new(u32::try_from(location.line()).unwrap_or(u32::MAX), u32::try_from(location.column()).unwrap_or(u32::MAX))
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(deserializer)?;
        Ok(Node { pos: pos_of(spanned.referenced), value: spanned.value })
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(deserializer)?;
        let name = match spanned.value {
            Value::Null => "null".to_string(),
            other => other
                .scalar_text()
                .ok_or_else(|| de::Error::custom("a mapping key must be a plain word, not a list or mapping"))?,
        };
        Ok(Key { name, pos: pos_of(spanned.referenced) })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Str(v.to_string()), Value::Int))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Str(v.to_string()), Value::Int))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Str(v.to_string()), Value::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Value, E> {
        Err(E::custom("binary values are not supported in blueprints"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            if items.len() == MAX_ENTRIES {
                return Err(de::Error::custom(format!(
                    "a list has more than the limit of {MAX_ENTRIES} items (the item on line {} is one too many)",
                    item.pos.line
                )));
            }
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Key>()? {
            if entries.len() == MAX_ENTRIES {
                return Err(de::Error::custom(format!(
                    "a mapping has more than the limit of {MAX_ENTRIES} keys (`{}` on line {} is one too many)",
                    key.name, key.pos.line
                )));
            }
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

/// Why a file could not be turned into a tree: the message and, when known, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
    /// What to do about it.
    pub hint: &'static str,
}

/// The most YAML events (keys, values, list and mapping starts and ends) a blueprint may have,
/// the same in every build: room for about 17,000 services shaped like the plan benchmark's
/// (10,000 of them are 293,000 events and 2.4 MB), about what [`MAX_BLUEPRINT_BYTES`] lets
/// through anyway. Parsing is streamed and stops here, so a document is rejected for the cost
/// of reading this many events: a release build reads 0.6 to 1 million events a second into
/// the tree, and `scale validate` takes about 0.5 s on a document at the limit (2 shared
/// cores, 2026-11-28). A debug build is several times slower; the limit is still the same, so
/// what the tests check is what the binary ships (`cargo bench --bench hostile` measures a
/// document at the limit in a release build).
///
/// [`MAX_BLUEPRINT_BYTES`]: super::MAX_BLUEPRINT_BYTES
pub const MAX_EVENTS: usize = 500_000;

/// The most items one list, or keys one mapping, may hold: twice the 10,000 services the plan
/// benchmark goes up to. Megabytes of junk keys, each one a problem to report, are rejected
/// here after a fraction of [`MAX_EVENTS`] rather than decoded into tens of thousands of
/// diagnostics (3 MB of them: 0.1 s in a release build instead of 1.4 s).
pub const MAX_ENTRIES: usize = 20_000;

/// The most events aliases (`*name`, and merges `<<: *name`) may replay in total, unless the
/// blueprint's environment sets [`ALIAS_LIMIT_VAR`]: one anchor of 20 settings merged into
/// 1,000 services replays about 40,000, while an alias bomb (aliases of aliases of aliases)
/// asks for billions and is stopped here after reading no more than this many.
pub const MAX_ALIAS_EVENTS: usize = 100_000;

/// The environment variable (shell or `.env`) that raises [`MAX_ALIAS_EVENTS`] for a real
/// file that needs more; it cannot go past [`MAX_EVENTS`].
pub const ALIAS_LIMIT_VAR: &str = "SCALE_MAX_ALIAS_EVENTS";

/// How much a document may ask of the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// YAML events in the file itself.
    pub max_events: usize,
    /// Events replayed by aliases and merges.
    pub max_alias_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_events: MAX_EVENTS, max_alias_events: MAX_ALIAS_EVENTS }
    }
}

/// Limits that keep hostile input (alias bombs, deep nesting, huge files) cheap to reject.
/// Anchors and aliases themselves are not limited by count or by their ratio: sharing one
/// anchor among hundreds of services is how real Compose files are written; what an alias
/// costs is the events it replays, and those are limited.
fn options(limits: Limits) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::budget::Budget::default();
    budget.max_events = limits.max_events;
    budget.max_aliases = limits.max_events;
    budget.max_anchors = limits.max_events;
    budget.max_merge_keys = limits.max_events;
    budget.enforce_alias_anchor_ratio = false;
    budget.max_depth = 64;
    // Scalars, lists and mappings: never more than the events, so the event limit decides.
    budget.max_nodes = limits.max_events;
    // Twice the largest file: scalars can only grow past the file by alias replays.
    budget.max_total_scalar_bytes = 8 * 1024 * 1024;
    budget.max_documents = 1;
    serde_saphyr::options! {
        budget: Some(budget),
        alias_limits: serde_saphyr::alias_limits! { max_total_replayed_events: limits.max_alias_events },
        with_snippet: false,
    }
}

/// Parses UTF-8 YAML text into a tree; duplicate keys, tabs and other syntax errors come back
/// with their line and column.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    parse_with(text, Limits::default())
}

/// [`parse`] with another event limit, so tests can trip it with a small document.
#[cfg(test)]
fn parse_with_limit(text: &str, max_events: usize) -> Result<Node, SyntaxError> {
    parse_with(text, Limits { max_events, ..Limits::default() })
}

/// [`parse`] within the given limits.
pub fn parse_with(text: &str, limits: Limits) -> Result<Node, SyntaxError> {
    if let Some((line, depth)) = too_deep(text) {
        return Err(SyntaxError {
            pos: Pos::new(line, 1),
            message: format!("the document nests deeper than {MAX_NESTING} levels (reached {depth})"),
            hint: TOO_BIG,
        });
    }
    let mut root = serde_saphyr::from_str_with_options::<Node>(text, options(limits)).map_err(|err| {
        let pos = err.location().map(pos_of).unwrap_or_default();
        let (message, hint) = describe(&err, limits);
        SyntaxError { pos, message, hint }
    })?;
    super::numbers::keep_big_integers_as_written(&mut root, text);
    Ok(root)
}

/// No blueprint nests anywhere near this deep; the limit keeps recursion bounded.
pub const MAX_NESTING: usize = 40;

/// A conservative estimate of nesting depth, found without parsing: open flow brackets plus
/// block indentation levels plus `- ` markers on one line. Returns the line and depth where
/// it first passes [`MAX_NESTING`]. Over-counting only ever rejects absurd documents.
fn too_deep(text: &str) -> Option<(u32, usize)> {
    let mut flow = 0usize;
    let mut indents: Vec<usize> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start_matches(' ');
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if flow == 0 {
            while indents.last().is_some_and(|&top| top >= indent) {
                indents.pop();
            }
            indents.push(indent);
        }
        let mut dashes = 0;
        let mut rest = trimmed;
        while let Some(after) = rest.strip_prefix("- ").or_else(|| rest.strip_prefix("-\t")) {
            dashes += 1;
            rest = after.trim_start_matches(' ');
        }
        let base = indents.len() + dashes;
        let mut peak = flow;
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        for c in rest.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '#') if prev == ' ' => break,
                (None, '[' | '{') => {
                    flow += 1;
                    peak = peak.max(flow);
                }
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
            prev = c;
        }
        let depth = peak + base;
        if depth > MAX_NESTING {
            return Some((u32::try_from(index + 1).unwrap_or(u32::MAX), depth));
        }
    }
    None
}

const TOO_BIG: &str = "the document is too large or nests too deeply (anchors and aliases count too)";
const SYNTAX: &str = "check indentation (spaces only), colons after keys, and quotes around values with `:` or `#`";

/// The parser's error in a blueprint author's words, with what to do, chosen by the error's
/// variant (never its wording): limits say which limit and how to raise it, and no debug text
/// of the library (`budget breached: …`, "weak recursion types") reaches the user.
fn describe(err: &serde_saphyr::Error, limits: Limits) -> (String, &'static str) {
    use serde_saphyr::Error as E;
    use serde_saphyr::budget::BudgetBreach as B;
    let mut err = err;
    while let E::AliasError { error, .. } | E::WithSnippet { error, .. } = err {
        err = error;
    }
    let max_events = limits.max_events;
    match err {
        E::Budget { breach: B::Events { .. } | B::Nodes { .. }, .. } => (
            format!("the document is over the limit of {max_events} YAML events (keys, values, lists and mappings)"),
            TOO_BIG,
        ),
        E::Budget { breach: B::Documents { .. }, .. } | E::MultipleDocuments { .. } => (
            "the file holds more than one YAML document; a blueprint is a single document (remove the `---`)".into(),
            "remove the `---` line and everything after it, or split it into its own blueprint file",
        ),
        E::Budget { breach: B::Depth { .. }, .. } => ("the document nests deeper than 64 levels".into(), TOO_BIG),
        E::Budget { breach: B::ScalarBytes { .. }, .. } => {
            ("the document's text, with aliases expanded, is over the limit of 8 MiB".into(), TOO_BIG)
        }
        E::Budget { breach, .. } => (format!("the document is over a parser limit ({})", breach_name(breach)), TOO_BIG),
        E::AliasReplayLimitExceeded { .. } | E::AliasExpansionLimitExceeded { .. } => (
            format!(
                "aliases and merges expand to more than the limit of {} YAML events (an alias bomb?)",
                limits.max_alias_events
            ),
            "if this is a real file, raise the limit with SCALE_MAX_ALIAS_EVENTS=N (up to 500000) in the \
             environment or the .env file; otherwise remove the aliases that repeat aliases",
        ),
        E::AliasReplayStackDepthExceeded { max_depth, .. } => {
            (format!("aliases refer to aliases more than {max_depth} levels deep"), TOO_BIG)
        }
        E::RecursiveReferencesRequireWeakTypes { .. } => (
            "an alias refers to an anchor it is inside of (a recursive structure)".into(),
            "an alias `*name` may only repeat a node that is complete where the alias is used",
        ),
        E::NonFiniteFloat { value, .. } => {
            (format!("the number {value} is out of range"), "write a smaller number, or quote it if it is text")
        }
        E::DuplicateMappingKey { .. } => {
            (clean_text(&err.to_string()), "each key may appear once in a mapping; remove or rename the repeated one")
        }
        E::UnknownAnchor { .. } => (
            clean_text(&err.to_string()),
            "an alias `*name` must come after the anchor `&name` it refers to; define the anchor first",
        ),
        other => (clean_text(&other.to_string()), SYNTAX),
    }
}

/// A limit's name for a message, without the library's debug formatting.
fn breach_name(breach: &serde_saphyr::budget::BudgetBreach) -> &'static str {
    use serde_saphyr::budget::BudgetBreach as B;
    match breach {
        B::Aliases { .. } => "aliases",
        B::Anchors { .. } => "anchors",
        B::MergeKeys { .. } => "merge keys",
        B::AliasAnchorRatio { .. } => "aliases per anchor",
        B::RecordedAnchorEvents { .. } | B::RecordedAnchorBytes { .. } => "size of anchored nodes",
        B::InputBytes { .. } => "input size",
        _ => "structure",
    }
}

/// serde-saphyr appends its own " at line X column Y" (alias errors several); we print
/// positions ourselves. Advice meant for programmers using serde-saphyr is dropped.
fn clean_text(raw: &str) -> String {
    let first = raw.lines().next().unwrap_or(raw).trim();
    let mut text = match first.find(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    for advice in [", set DuplicateKeyPolicy", "; use from_str_multiple"] {
        if let Some(i) = text.find(advice) {
            text = &text[..i];
        }
    }
    text.trim_end_matches(':').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_point_at_values_and_keys() {
        let node = parse("name: shop\nservices:\n  web:\n    image: nginx\n").unwrap();
        let Value::Map(entries) = node.value else { panic!("not a map") };
        assert_eq!(entries[0].0.name, "name");
        assert_eq!(entries[0].0.pos, Pos::new(1, 1));
        assert_eq!(entries[0].1.pos, Pos::new(1, 7));
        let Value::Map(services) = &entries[1].1.value else { panic!() };
        assert_eq!(services[0].0.pos, Pos::new(3, 3));
    }

    #[test]
    fn duplicate_keys_are_an_error_with_a_position() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos.line, 3, "{err:?}");
        assert!(err.message.to_lowercase().contains("duplicate"), "{err:?}");
    }

    #[test]
    fn scalars_keep_their_types() {
        let node = parse("[1, -2, 1.5, true, ~, \"80\", x]").unwrap();
        let Value::Seq(items) = node.value else { panic!() };
        let kinds: Vec<_> = items.iter().map(|n| n.value.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                Value::Int(1),
                Value::Int(-2),
                Value::Float(1.5),
                Value::Bool(true),
                Value::Null,
                Value::Str("80".into()),
                Value::Str("x".into())
            ]
        );
    }

    #[test]
    fn alias_bombs_are_rejected_quickly() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(parse(&text).is_err());
    }

    #[test]
    fn messages_are_for_blueprint_authors() {
        let dup = parse("a: 1\na: 2\n").unwrap_err().message;
        assert_eq!(dup, "duplicate mapping key: a");
        let docs = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(docs.message.contains("more than one YAML document"), "{docs:?}");
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            bomb.push_str(&format!("a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 9].join(", ")));
        }
        let err = parse(&bomb).unwrap_err();
        // Whichever limit trips first, the message is whole and says which limit.
        assert!(err.message.contains("the limit of") && !err.message.contains("(used"), "{err:?}");
        // 600 keys are 1,200 scalars plus a handful of start and end events.
        let big: String = (0..600).map(|i| format!("k{i}: v\n")).collect();
        let err = parse_with_limit(&big, 1_000).unwrap_err();
        assert!(err.message.contains("over the limit of 1000 YAML events"), "{err:?}");
        assert!(parse_with_limit(&big, 1_300).is_ok());
    }

    /// A mapping of flow lists of `x`, about `events` YAML events in all (give or take the
    /// stream and document events), no list longer than [`MAX_ENTRIES`].
    fn lists_of_about(events: usize) -> String {
        let mut text = String::new();
        let mut left = events - 6; // stream, document and mapping start and end
        for i in 0.. {
            if left <= 3 {
                break;
            }
            let n = (left - 3).min(MAX_ENTRIES); // key, list start and end, n items
            text.push_str(&format!("l{i}: [{}]\n", vec!["x"; n].join(",")));
            left -= n + 3;
        }
        text
    }

    /// The mechanism, at a limit a debug build checks in milliseconds. The shipped
    /// [`MAX_EVENTS`] (one value in every build) is checked the same way, in a release build,
    /// by `benches/hostile.rs` (a debug build takes 16 s to parse a document at it).
    #[test]
    fn parse_allows_max_events_and_no_more() {
        let limit = 30_000;
        assert!(parse_with_limit(&lists_of_about(limit - 20), limit).is_ok());
        let err = parse_with_limit(&lists_of_about(limit + 20), limit).unwrap_err();
        assert!(err.message.contains(&format!("over the limit of {limit} YAML events")), "{err:?}");
    }

    #[test]
    fn one_anchor_merged_into_many_services_and_chains_of_merges_parse() {
        let mut text = String::from(
            "x-base: &base {image: app, restart: always}\nx-web: &web {<<: *base, replicas: 2}\nservices:\n",
        );
        for i in 0..1_000 {
            text.push_str(&format!("  s{i}: {{<<: *web, labels: {{n: '{i}'}}}}\n"));
        }
        let root = parse(&text).expect("merges parse");
        let Value::Map(top) = root.value else { panic!() };
        let Value::Map(services) = &top[2].1.value else { panic!() };
        assert_eq!(services.len(), 1_000);
    }

    #[test]
    fn library_debug_text_never_reaches_the_user() {
        for text in
            ["a: &a\n  b: *a\n", "a: 1e400\n", "a: &x [1]\nb: [*x, *x, *x, *x, *x, *x, *x, *x, *x, *x, *x, *x]\n"]
        {
            if let Err(err) = parse_with(text, Limits { max_events: 1_000, max_alias_events: 5 }) {
                for leak in ["budget breached", "weak recursion", "Breach", "{", "invalid u64", "policy"] {
                    assert!(!err.message.contains(leak), "{text:?}: {err:?}");
                }
            }
        }
        let err = parse_with("a: &x [1, 2, 3]\nb: [*x, *x, *x]\n", Limits { max_events: 1_000, max_alias_events: 5 });
        let err = err.unwrap_err();
        assert!(err.message.contains("limit of 5 YAML events"), "{err:?}");
        assert!(err.hint.contains("SCALE_MAX_ALIAS_EVENTS"), "{err:?}");
    }

    #[test]
    fn huge_lists_and_mappings_are_rejected_at_the_entry_limit() {
        let list = format!("a: b\nlist: [{}]\n", vec!["x"; MAX_ENTRIES].join(","));
        assert!(parse(&list).is_ok());
        let list = format!("a: b\nlist: [{}]\n", vec!["x"; MAX_ENTRIES + 1].join(","));
        let err = parse(&list).unwrap_err();
        assert!(err.message.contains(&format!("more than the limit of {MAX_ENTRIES} items")), "{err:?}");
        assert!(err.message.contains("the item on line 2 is one too many"), "{err:?}");
        let map: String = (0..=MAX_ENTRIES).map(|i| format!("k{i}: v\n")).collect();
        let err = parse(&map).unwrap_err();
        let line = MAX_ENTRIES + 1;
        assert!(err.message.contains(&format!("`k{MAX_ENTRIES}` on line {line} is one too many")), "{err:?}");
    }

    #[test]
    fn deep_nesting_is_rejected_not_a_stack_overflow() {
        for n in [41, 200, 10_000] {
            let text = format!("{}{}", "[".repeat(n), "]".repeat(n));
            let err = parse(&text).unwrap_err();
            assert!(err.message.contains("nests deeper"), "{err:?}");
        }
        let mut block = String::new();
        for depth in 0..2_000 {
            block.push_str(&" ".repeat(depth));
            block.push_str("- \n");
        }
        assert!(parse(&block).is_err());
        assert!(parse(&"- ".repeat(500)).is_err());
        let mut map = String::new();
        for depth in 0..500 {
            map.push_str(&format!("{}k{depth}:\n", " ".repeat(depth)));
        }
        assert!(parse(&map).is_err());
    }

    #[test]
    fn ordinary_nesting_and_brackets_in_strings_are_fine() {
        let text = "a:\n  b:\n    c: [1, {d: \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}]\n    e: '{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{'\n";
        assert!(parse(text).is_ok());
    }
}
