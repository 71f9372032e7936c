//! Diagnostics: every problem a user can fix, with where it is and what to do.
//!
//! A diagnostic names the file and either a line:column or the service it is about, so a
//! user can jump straight to it; `hint` says what to do, not just what is wrong.

use std::fmt;
use std::path::{Path, PathBuf};

/// A 1-based line and column in one of the files a project was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// Which file (an index into the loaded project's files; 0 is the first, the one named
    /// in diagnostics unless [`Diagnostics::resolve_files`] says otherwise). Merged Compose
    /// files keep their own positions this way, so an error in an override file names it.
    pub file: u16,
    pub line: u32,
    pub col: u32,
}

impl Pos {
    /// A position in the first file; `line == 0` means "unknown" and is rendered without
    /// line:col.
    pub fn new(line: u32, col: u32) -> Self {
        Pos { file: 0, line, col }
    }

    /// The same line and column in file number `file`.
    pub fn in_file(self, file: u16) -> Self {
        Pos { file, ..self }
    }

    /// Whether this position points somewhere real in the file.
    pub fn is_known(self) -> bool {
        self.line > 0
    }
}

/// One problem found in a blueprint, ready to be shown to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub pos: Option<Pos>,
    /// The service the problem is about, when it is about one.
    pub service: Option<String>,
    pub message: String,
    pub hint: Option<String>,
    /// The message names the service itself (the decoder's `services.web.replicas: …`), so the
    /// text shows no `service `web`: ` prefix; `service` is still set for JSON.
    pub service_in_message: bool,
}

impl Diagnostic {
    /// A problem at a place in the file (the place may be unknown).
    pub fn at(file: &Path, pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            pos: pos.is_known().then_some(pos),
            service: None,
            message: message.into(),
            hint: None,
            service_in_message: false,
        }
    }

    /// A problem about the file as a whole (empty, unreadable, not UTF-8 …).
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        Diagnostic::at(file, Pos::default(), message)
    }

    /// Adds what the user should do about it.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Names the service the problem is about.
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    /// Records the service a problem is about when its message already names it (for JSON),
    /// unless it names one already.
    pub fn within_service(&mut self, service: &str) {
        if self.service.is_none() {
            self.service = Some(service.to_string());
            self.service_in_message = true;
        }
    }
}

impl Diagnostic {
    /// The same text as `Display`, labelled a warning: something read but not acted on.
    pub fn as_warning(&self) -> String {
        self.to_string().replacen(": error: ", ": warning: ", 1)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(pos) = self.pos {
            write!(f, ":{}:{}", pos.line, pos.col)?;
        }
        write!(f, ": error: ")?;
        if let Some(service) = self.service.as_ref().filter(|_| !self.service_in_message) {
            write!(f, "service `{service}`: ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// All the problems found in one blueprint; an error type so callers can `?` it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Orders problems by position so the output reads top to bottom like the file.
    pub fn sorted(mut self) -> Self {
        self.0.sort_by(|a, b| {
            (a.pos.unwrap_or_default(), &a.service, &a.message).cmp(&(
                b.pos.unwrap_or_default(),
                &b.service,
                &b.message,
            ))
        });
        self.0.dedup();
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Points each problem at the file its position belongs to (`files[pos.file]`): the
    /// decoder and the checks name the project's first file, positions know better.
    pub fn resolve_files(&mut self, files: &[PathBuf]) {
        for d in &mut self.0 {
            if let Some(file) =
                d.pos.and_then(|p| files.get(usize::from(p.file))).filter(|_| d.pos.is_some_and(|p| p.file > 0))
            {
                d.file = file.clone();
            }
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// The most problems shown as text: past this, a file is broken wholesale (generated junk,
/// the wrong file) and the first screenfuls say what to fix; the count says how much more.
pub const MAX_SHOWN: usize = 200;

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().take(MAX_SHOWN).enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        if self.0.len() > MAX_SHOWN {
            write!(f, "\n… and {} more problems not shown", self.0.len() - MAX_SHOWN)?;
        }
        if self.0.len() > 1 {
            write!(f, "\n{} problems found", self.0.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Suggests the closest known word for a misspelt one ("did you mean `ports`?"): within a
/// few edits (a swap of two letters counts as one, so `wbe` finds `web`), or very similar.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .filter_map(|c| {
            let edits = strsim::osa_distance(word, c);
            let close = edits <= (c.chars().count() / 3).max(1);
            let similar = strsim::jaro_winkler(word, c) > 0.85;
            (close || similar).then_some((edits, c))
        })
        .min_by_key(|(edits, _)| *edits)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_problems_is_shown_in_part_and_counted_in_full() {
        let file = Path::new("b.yaml");
        let many: Vec<Diagnostic> =
            (1..=MAX_SHOWN as u32 + 5).map(|n| Diagnostic::at(file, Pos::new(n, 1), format!("problem {n}"))).collect();
        let text = Diagnostics(many).to_string();
        assert!(text.contains(&format!("problem {MAX_SHOWN}")), "the first {MAX_SHOWN} are shown");
        assert!(!text.contains(&format!("problem {}", MAX_SHOWN + 1)), "the rest are not");
        assert!(text.contains("… and 5 more problems not shown"), "{text}");
        assert!(text.ends_with(&format!("{} problems found", MAX_SHOWN + 5)), "{text}");
    }
}
