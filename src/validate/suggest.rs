//! "Did you mean" over many names without comparing every name with every other: an index of
//! the names read forwards and backwards, from which a query takes a bounded neighbourhood
//! (a typo rarely changes both ends of a word). Building it is n log n; a query is log n plus
//! a constant number of string distances. Lists of names in hints are capped the same way.

use crate::diag::did_you_mean;

/// Names on each side of the query's place in each sorted order that are compared with it.
const NEIGHBOURS: usize = 8;

/// How many names a hint lists before "and N more".
pub const LISTED: usize = 8;

/// A set of names to suggest from.
pub struct NameIndex<'a> {
    forward: Vec<&'a str>,
    backward: Vec<(String, &'a str)>,
}

impl<'a> NameIndex<'a> {
    pub fn new(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut forward: Vec<&'a str> = names.into_iter().collect();
        forward.sort_unstable();
        forward.dedup();
        let mut backward: Vec<(String, &'a str)> = forward.iter().map(|n| (n.chars().rev().collect(), *n)).collect();
        backward.sort_unstable();
        NameIndex { forward, backward }
    }

    /// The closest name to `word` other than `except`, if one is close enough.
    pub fn closest(&self, word: &str, except: &str) -> Option<&'a str> {
        let at = self.forward.partition_point(|n| *n < word);
        let reversed: String = word.chars().rev().collect();
        let back = self.backward.partition_point(|(r, _)| r.as_str() < reversed.as_str());
        let near = |len: usize, at: usize| at.saturating_sub(NEIGHBOURS)..(at + NEIGHBOURS).min(len);
        let candidates = self.forward[near(self.forward.len(), at)]
            .iter()
            .copied()
            .chain(self.backward[near(self.backward.len(), back)].iter().map(|(_, n)| *n))
            .filter(|n| *n != except);
        did_you_mean(word, candidates)
    }

    /// "did you mean `x`?" when one name is close, else `otherwise`.
    pub fn suggest(&self, word: &str, except: &str, otherwise: String) -> String {
        match self.closest(word, except) {
            Some(best) => format!("did you mean `{best}`?"),
            None => otherwise,
        }
    }
}

/// Names joined with commas, at most `max` of them, then "and N more". Reads only the names
/// it shows (the count comes from the iterator's length): a hint per problem must not cost a
/// pass over every name.
pub fn capped_list<'n>(names: impl ExactSizeIterator<Item = &'n str>, max: usize) -> String {
    let more = names.len().saturating_sub(max);
    let shown: Vec<&str> = names.take(max).collect();
    match more {
        0 => shown.join(", "),
        n => format!("{} and {n} more", shown.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_at_either_end_among_many_names() {
        let names: Vec<String> = (0..10_000).map(|i| format!("service-{i:05}")).chain(["database".into()]).collect();
        let index = NameIndex::new(names.iter().map(String::as_str));
        assert_eq!(index.closest("databse", ""), Some("database"));
        assert_eq!(index.closest("xatabase", ""), Some("database"));
        assert_eq!(index.closest("servce-00042", ""), Some("service-00042"));
        assert_eq!(index.closest("database", "database"), None);
        assert_eq!(index.closest("zzzzzzzzzz", ""), None);
    }

    #[test]
    fn lists_are_capped() {
        assert_eq!(capped_list(["a", "b"].into_iter(), 3), "a, b");
        assert_eq!(capped_list(["a", "b", "c", "d", "e"].into_iter(), 3), "a, b, c and 2 more");
    }
}
