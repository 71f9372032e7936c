//! Judging a lesson's answers: whether what came back from the live project shows what the
//! `x-lesson` check says it should, and if not, why in a sentence. Pure: `scale check` does
//! the requests and hands the answers here.

use crate::model::lesson::{Expectation, LessonCheck};

/// One HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// `Ok` when every answer holds what the check expects; otherwise the first reason it does not.
/// An answer that never came (`Err`) fails the check with the transport's error.
pub fn judge(check: &LessonCheck, answers: &[Result<Answer, String>]) -> Result<(), String> {
    for (i, answer) in answers.iter().enumerate() {
        let which = if answers.len() > 1 { format!("answer {} of {}: ", i + 1, answers.len()) } else { String::new() };
        let answer = answer.as_ref().map_err(|e| format!("{which}no answer: {e}"))?;
        judge_one(&check.expect, answer).map_err(|why| format!("{which}{why}"))?;
    }
    if let Some((header, at_least)) = &check.expect.distinct {
        let mut seen: Vec<&str> =
            answers.iter().filter_map(|a| a.as_ref().ok()).filter_map(|a| a.header(header)).collect();
        seen.sort_unstable();
        seen.dedup();
        if (seen.len() as u32) < *at_least {
            return Err(format!(
                "only {} different {header} in {} answers ({}), expected at least {at_least}",
                seen.len(),
                answers.len(),
                if seen.is_empty() { "none".to_string() } else { seen.join(", ") }
            ));
        }
    }
    if let Some(last) = &check.expect.last
        && let Some(answer) = answers.last()
    {
        let which = if answers.len() > 1 { format!("the last of {} answers: ", answers.len()) } else { String::new() };
        let answer = answer.as_ref().map_err(|e| format!("{which}no answer: {e}"))?;
        judge_one(last, answer).map_err(|why| format!("{which}{why}"))?;
    }
    Ok(())
}

fn judge_one(expect: &Expectation, answer: &Answer) -> Result<(), String> {
    if let Some(status) = expect.status
        && answer.status != status
    {
        return Err(format!("status {} (expected {status})", answer.status));
    }
    for (name, matcher) in &expect.headers {
        match answer.header(name) {
            None => return Err(format!("no {name} header (expected {})", matcher.describe())),
            Some(v) if !matcher.matches(v) => return Err(format!("{name}: {v} (expected {})", matcher.describe())),
            Some(_) => {}
        }
    }
    if expect.body.is_empty() {
        return Ok(());
    }
    let json: serde_json::Value =
        serde_json::from_str(&answer.body).map_err(|e| format!("the body is not JSON ({e}): {:.80}", answer.body))?;
    for (path, matcher) in &expect.body {
        let value = field(&json, path).ok_or_else(|| format!("the body has no field {path}"))?;
        if !matcher.matches(&value) {
            return Err(format!("body field {path} is {value} (expected {})", matcher.describe()));
        }
    }
    Ok(())
}

/// A dotted path (`address.city`, `phoneNumbers.0`) into JSON, scalars as their text.
pub fn field(json: &serde_json::Value, path: &str) -> Option<String> {
    let mut at = json;
    for part in path.split('.') {
        at = match at {
            serde_json::Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            other => other.get(part)?,
        };
    }
    Some(match at {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Pos;
    use crate::model::At;
    use crate::model::lesson::{HttpMethod, LessonRequest, Matcher};

    fn check(expect: Expectation) -> LessonCheck {
        let request = LessonRequest {
            method: HttpMethod::Get,
            service: At::new("lb".into(), Pos::default()),
            port: At::new(80, Pos::default()),
            path: "/users/12".into(),
            body: None,
            repeat: 2,
        };
        LessonCheck { pos: Pos::default(), check: "c".into(), request, expect, hint: None }
    }

    fn answer(served_by: &str) -> Result<Answer, String> {
        Ok(Answer {
            status: 200,
            headers: vec![("X-Served-By".into(), served_by.into()), ("X-Db-Role".into(), "replica".into())],
            body: r#"{"id":12,"address":{"city":"New York"},"phoneNumbers":["212 555-1234"]}"#.into(),
        })
    }

    #[test]
    fn status_headers_and_body_fields_are_judged() {
        let expect = Expectation {
            status: Some(200),
            headers: vec![("x-db-role".into(), Matcher::Equals("replica".into()))],
            body: vec![
                ("address.city".into(), Matcher::Equals("New York".into())),
                ("id".into(), Matcher::Equals("12".into())),
                ("phoneNumbers.0".into(), Matcher::StartsWith("212".into())),
            ],
            distinct: None,
            last: None,
        };
        assert_eq!(judge(&check(expect.clone()), &[answer("w1")]), Ok(()));
        let wrong = Expectation { headers: vec![("X-Db-Role".into(), Matcher::Equals("primary".into()))], ..expect };
        assert_eq!(judge(&check(wrong), &[answer("w1")]), Err("X-Db-Role: replica (expected \"primary\")".into()));
    }

    #[test]
    fn distinct_counts_different_values_over_all_answers() {
        let expect = Expectation { distinct: Some(("X-Served-By".into(), 2)), ..Default::default() };
        assert_eq!(judge(&check(expect.clone()), &[answer("w1"), answer("w2")]), Ok(()));
        let only_one = judge(&check(expect), &[answer("w2"), answer("w2")]).expect_err("one server is not two");
        assert!(only_one.contains("only 1 different X-Served-By in 2 answers (w2)"), "{only_one}");
    }

    fn cached(outcome: &str) -> Result<Answer, String> {
        Ok(Answer { status: 200, headers: vec![("X-Cache".into(), outcome.into())], body: String::new() })
    }

    #[test]
    fn last_is_judged_on_the_last_answer_only() {
        let hit = Expectation {
            headers: vec![("X-Cache".into(), Matcher::OneOf(vec!["MISS".into(), "HIT".into()]))],
            last: Some(Box::new(Expectation {
                headers: vec![("X-Cache".into(), Matcher::Equals("HIT".into()))],
                ..Default::default()
            })),
            ..Default::default()
        };
        assert_eq!(judge(&check(hit.clone()), &[cached("MISS"), cached("HIT")]), Ok(()));
        assert_eq!(judge(&check(hit.clone()), &[cached("HIT"), cached("HIT")]), Ok(()));
        assert_eq!(
            judge(&check(hit.clone()), &[cached("HIT"), cached("MISS")]),
            Err("the last of 2 answers: X-Cache: MISS (expected \"HIT\")".into())
        );
        // What every answer must show still holds for the ones before the last.
        let why = judge(&check(hit), &[cached("BYPASS"), cached("HIT")]).expect_err("BYPASS is neither");
        assert!(why.starts_with("answer 1 of 2: X-Cache: BYPASS"), "{why}");
    }

    #[test]
    fn a_missing_answer_fails_with_the_transport_error() {
        let why = judge(&check(Expectation::default()), &[Err("connection refused".into())]).expect_err("no answer");
        assert_eq!(why, "no answer: connection refused");
    }
}
