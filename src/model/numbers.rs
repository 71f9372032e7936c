//! Numbers too large for the parser's integer types arrive as floats (`18446744073709551616`
//! becomes `1.8446744073709552e19`), and a message would echo `18446744073709552000`, a number
//! the user never wrote. This pass puts such integers back as the text written in the file, so
//! the decoder says "`18446744073709551616` is out of range" in the user's own digits.

use super::node::{Node, Value};

/// Replaces every float whose source text is an integer literal with that text.
pub fn keep_big_integers_as_written(root: &mut Node, text: &str) {
    let mut lines: Option<Vec<usize>> = None;
    visit(root, &mut |node| {
        if let Value::Float(_) = node.value {
            let starts = lines.get_or_insert_with(|| line_starts(text));
            if let Some(raw) = integer_at(text, starts, node.pos.line, node.pos.col) {
                node.value = Value::Str(raw.to_string());
            }
        }
    });
}

fn visit(node: &mut Node, f: &mut impl FnMut(&mut Node)) {
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|n| visit(n, f)),
        Value::Map(entries) => entries.iter_mut().for_each(|(_, n)| visit(n, f)),
        _ => f(node),
    }
}

fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect()
}

/// The integer literal (`[-+]?[0-9]+`) that starts at 1-based `line`:`col` (a column in
/// characters), if that is what is written there.
fn integer_at<'t>(text: &'t str, starts: &[usize], line: u32, col: u32) -> Option<&'t str> {
    let start = *starts.get(usize::try_from(line).ok()?.checked_sub(1)?)?;
    let line_text = &text[start..];
    let line_text = &line_text[..line_text.find('\n').unwrap_or(line_text.len())];
    let offset = line_text.char_indices().nth(usize::try_from(col).ok()?.checked_sub(1)?)?.0;
    let rest = &line_text[offset..];
    let end = rest.find(|c: char| c.is_whitespace() || matches!(c, ',' | ']' | '}' | '#')).unwrap_or(rest.len());
    let raw = &rest[..end];
    let digits = raw.strip_prefix(['-', '+']).unwrap_or(raw);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_integers_keep_their_digits_and_real_floats_stay() {
        let root = super::super::node::parse("a: 18446744073709551616\nb: [1.5, 99999999999999999999999]\n").unwrap();
        let Value::Map(entries) = root.value else { panic!() };
        assert_eq!(entries[0].1.value, Value::Str("18446744073709551616".into()));
        let Value::Seq(items) = &entries[1].1.value else { panic!() };
        assert_eq!(items[0].value, Value::Float(1.5));
        assert_eq!(items[1].value, Value::Str("99999999999999999999999".into()));
    }
}
