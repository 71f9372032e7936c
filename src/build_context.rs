//! Build contexts: which files `docker build` would send, their fingerprint, and their tar.
//!
//! The file set follows Docker's `.dockerignore` rules: one pattern a line, relative to the
//! context root (a leading `/` and `./` are dropped, the pattern is cleaned like Go's
//! `filepath.Clean`); `#` starts a comment line; the glob syntax is Go's `filepath.Match`
//! (`*` and `?` never cross a `/`, `[a-z]`, `[^a-z]`, `\` escapes) plus `**`, which spans any
//! number of directories; `!pattern` re-includes what an earlier pattern excluded; the last
//! matching pattern wins; a pattern that matches a directory excludes everything under it.
//! The Dockerfile and `.dockerignore` are always sent, even when ignored, as the Docker CLI
//! does. (One known difference: a `**` that is not a whole path component, as in `a**b`, acts
//! like `*` here, where Docker lets it span directories.)
//!
//! [`fingerprint`] hashes exactly what affects a build: every included path, its kind and unix
//! mode, symlink targets, file contents, the Dockerfile's name and the build args. Owners and
//! modification times do not count (the tar carries neither), so a `touch` or a fresh checkout
//! does not rebuild anything. [`tar`] writes the same entries, in the same order, with a fixed
//! mtime and owner 0:0, so equal fingerprints mean byte-identical tars.
//!
//! Pure std I/O: no tokio, no engine.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};
use sha2::{Digest, Sha256};

use crate::model::Build;
use crate::model::fsread::{self, ReadError};

/// The name of the ignore file at the context root.
pub const DOCKERIGNORE: &str = ".dockerignore";

/// The mtime every tar entry carries (the `tar` crate's deterministic timestamp, 2006-07-23).
/// A constant rather than zero: some tools mistreat files dated 1970-01-01.
pub const TAR_MTIME: u64 = tar::DETERMINISTIC_TIMESTAMP;

/// Why a build context cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("build context {} does not exist or is not a directory", context.display())]
    MissingContext { context: PathBuf },
    #[error("build context {}: there is no Dockerfile `{dockerfile}` in it", context.display())]
    MissingDockerfile { context: PathBuf, dockerfile: String },
    #[error("build context {}: the Dockerfile `{dockerfile}` is not inside the context", context.display())]
    DockerfileOutside { context: PathBuf, dockerfile: String },
    #[error("build context {}: cannot read {}: {reason}", context.display(), path.display())]
    Unreadable { context: PathBuf, path: PathBuf, reason: String },
    #[error("build context {}: .dockerignore line {line}: bad pattern `{pattern}`: {reason}", context.display())]
    BadPattern { context: PathBuf, line: usize, pattern: String, reason: String },
    #[error("build context {}: its files are larger than the limit of {limit} bytes together", context.display())]
    TooLarge { context: PathBuf, limit: u64 },
}

impl ContextError {
    /// The context directory the error is about.
    pub fn context(&self) -> &Path {
        match self {
            ContextError::MissingContext { context }
            | ContextError::MissingDockerfile { context, .. }
            | ContextError::DockerfileOutside { context, .. }
            | ContextError::Unreadable { context, .. }
            | ContextError::BadPattern { context, .. }
            | ContextError::TooLarge { context, .. } => context,
        }
    }
}

/// A hex SHA-256 of everything in `build` that affects the image (see the module docs).
pub fn fingerprint(build: &Build) -> Result<String, ContextError> {
    let ctx = Context::scan(build)?;
    let mut budget = fsread::MAX_BUILD_CONTEXT_BYTES;
    let mut h = Sha256::new();
    h.update(b"scale-build-context-v1\0");
    for entry in &ctx.entries {
        let (tag, mode) = match &entry.kind {
            Kind::Dir => (b'd', entry.mode),
            Kind::File => (b'f', entry.mode),
            Kind::Symlink(_) => (b'l', entry.mode),
        };
        h.update([tag]);
        field(&mut h, &entry.rel);
        h.update(mode.to_le_bytes());
        match &entry.kind {
            Kind::Dir => {}
            Kind::Symlink(target) => field(&mut h, target),
            Kind::File => {
                let file = fsread::open_regular(&entry.abs).map_err(|e| ctx.unreadable_file(&entry.abs, e))?;
                let mut file = file.take(budget.saturating_add(1));
                let mut content = Sha256::new();
                let mut buf = vec![0u8; 64 * 1024];
                let mut len: u64 = 0;
                loop {
                    let n = file.read(&mut buf).map_err(|e| ctx.unreadable(&entry.abs, e))?;
                    if n == 0 {
                        break;
                    }
                    len += n as u64;
                    content.update(&buf[..n]);
                }
                budget = ctx.spend(budget, len)?;
                h.update(len.to_le_bytes());
                h.update(content.finalize());
            }
        }
    }
    h.update(b"dockerfile\0");
    field(&mut h, ctx.dockerfile.as_bytes());
    h.update(b"args\0");
    h.update((build.args.len() as u64).to_le_bytes());
    for (k, v) in &build.args {
        field(&mut h, k.as_bytes());
        field(&mut h, v.as_bytes());
    }
    // Only when set, so the hashes (and image tags) of builds without a target stay as they were.
    if let Some(target) = &build.target {
        h.update(b"target\0");
        field(&mut h, target.as_bytes());
    }
    Ok(crate::spec::hex(&h.finalize()))
}

/// A deterministic tar of the files `docker build` would send for `build`.
pub fn tar(build: &Build) -> Result<Vec<u8>, ContextError> {
    let ctx = Context::scan(build)?;
    let mut budget = fsread::MAX_BUILD_CONTEXT_BYTES;
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    for entry in &ctx.entries {
        let path = rel_path(&entry.rel);
        let mut header = tar::Header::new_gnu();
        header.set_mode(entry.mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(TAR_MTIME);
        let written = match &entry.kind {
            Kind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder.append_data(&mut header, &path, io::empty())
            }
            Kind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder.append_link(&mut header, &path, rel_path(target))
            }
            Kind::File => {
                let data = fsread::read_bounded(&entry.abs, budget).map_err(|e| match e {
                    ReadError::TooLarge { .. } => ctx.too_large(),
                    e => ctx.unreadable_file(&entry.abs, e),
                })?;
                budget -= data.len() as u64;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, &path, data.as_slice())
            }
        };
        written.map_err(|e| ctx.unreadable(&entry.abs, e))?;
    }
    builder.into_inner().map_err(|e| ctx.unreadable(&ctx.root, e))
}

/// The Dockerfile's path inside the tar, cleaned (`./Dockerfile` → `Dockerfile`), as the
/// build API's `dockerfile` parameter wants it. Checks that it exists inside the context.
pub fn dockerfile_path(build: &Build) -> Result<String, ContextError> {
    Context::dockerfile(build)
}

/// The relative paths (with `/` separators) that would be sent, in tar order. Directories
/// are listed too. Useful for explaining a rebuild and for tests.
pub fn included_paths(build: &Build) -> Result<Vec<String>, ContextError> {
    let ctx = Context::scan(build)?;
    Ok(ctx.entries.iter().map(|e| String::from_utf8_lossy(&e.rel).into_owned()).collect())
}

/// Hashes a variable-length field unambiguously (length prefix).
fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

#[cfg(unix)]
fn rel_path(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

#[cfg(not(unix))]
fn rel_path(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}

#[cfg(unix)]
fn name_bytes(name: &std::ffi::OsStr) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    name.as_bytes().to_vec()
}

#[cfg(not(unix))]
fn name_bytes(name: &std::ffi::OsStr) -> Vec<u8> {
    name.to_string_lossy().into_owned().into_bytes()
}

#[cfg(unix)]
fn mode_of(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_of(meta: &fs::Metadata) -> u32 {
    if meta.is_dir() {
        0o755
    } else if meta.permissions().readonly() {
        0o444
    } else {
        0o644
    }
}

#[derive(Debug)]
enum Kind {
    Dir,
    File,
    /// The link's target, as stored (never followed).
    Symlink(Vec<u8>),
}

#[derive(Debug)]
struct Entry {
    /// Path relative to the context root, `/`-separated.
    rel: Vec<u8>,
    abs: PathBuf,
    kind: Kind,
    mode: u32,
}

/// The context's `.dockerignore` (none is fine): a regular file of at most
/// [`fsread::MAX_DOCKERIGNORE_BYTES`], never a FIFO or a device.
fn read_ignore(root: &Path) -> Result<Ignore, ContextError> {
    let path = root.join(DOCKERIGNORE);
    match fsread::read_bounded(&path, fsread::MAX_DOCKERIGNORE_BYTES) {
        Ok(bytes) => Ignore::parse(root, &String::from_utf8_lossy(&bytes)),
        Err(ReadError::NotFound) => Ok(Ignore::default()),
        Err(e) => Err(ContextError::Unreadable { path, context: root.to_path_buf(), reason: e.to_string() }),
    }
}

/// Checks a build's context the way `plan` does before it hashes it: the context directory,
/// the Dockerfile and the `.dockerignore` patterns, without reading the files. For `validate`,
/// so a context `plan` would refuse is refused there too.
pub fn check(build: &Build) -> Result<(), ContextError> {
    Context::dockerfile(build)?;
    read_ignore(&build.context).map(drop)
}

/// A scanned context: the included entries, sorted by relative path.
struct Context {
    root: PathBuf,
    dockerfile: String,
    entries: Vec<Entry>,
}

impl Context {
    fn scan(build: &Build) -> Result<Context, ContextError> {
        let dockerfile = Context::dockerfile(build)?;
        let root = build.context.clone();
        let ignore = read_ignore(&root)?;
        let mut ctx = Context { root, dockerfile, entries: Vec::new() };
        let forced = [ctx.dockerfile.as_bytes().to_vec(), DOCKERIGNORE.as_bytes().to_vec()];
        let root = ctx.root.clone();
        ctx.walk(&root, &[], &ignore, &forced)?;
        ctx.entries.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok(ctx)
    }

    /// Checks the context and its Dockerfile; returns the Dockerfile's cleaned relative path.
    fn dockerfile(build: &Build) -> Result<String, ContextError> {
        let root = build.context.clone();
        if !root.is_dir() {
            return Err(ContextError::MissingContext { context: root });
        }
        let dockerfile = clean(&build.dockerfile.replace('\\', "/"));
        if dockerfile == "." || dockerfile == ".." || dockerfile.starts_with("../") || dockerfile.starts_with('/') {
            return Err(ContextError::DockerfileOutside { context: root, dockerfile: build.dockerfile.clone() });
        }
        if !root.join(&dockerfile).is_file() {
            return Err(ContextError::MissingDockerfile { context: root, dockerfile: build.dockerfile.clone() });
        }
        Ok(dockerfile)
    }

    fn unreadable(&self, path: &Path, e: io::Error) -> ContextError {
        ContextError::Unreadable { context: self.root.clone(), path: path.to_path_buf(), reason: e.to_string() }
    }

    fn unreadable_file(&self, path: &Path, e: ReadError) -> ContextError {
        ContextError::Unreadable { context: self.root.clone(), path: path.to_path_buf(), reason: e.to_string() }
    }

    fn too_large(&self) -> ContextError {
        ContextError::TooLarge { context: self.root.clone(), limit: fsread::MAX_BUILD_CONTEXT_BYTES }
    }

    /// What is left of the context's size budget after a file of `len` bytes.
    fn spend(&self, budget: u64, len: u64) -> Result<u64, ContextError> {
        budget.checked_sub(len).ok_or_else(|| self.too_large())
    }

    fn walk(&mut self, dir: &Path, rel_dir: &[u8], ignore: &Ignore, forced: &[Vec<u8>]) -> Result<(), ContextError> {
        let mut children = Vec::new();
        for item in fs::read_dir(dir).map_err(|e| self.unreadable(dir, e))? {
            let item = item.map_err(|e| self.unreadable(dir, e))?;
            children.push(item.file_name());
        }
        children.sort();
        for name in children {
            let abs = dir.join(&name);
            let mut rel = rel_dir.to_vec();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend(name_bytes(&name));
            let meta = fs::symlink_metadata(&abs).map_err(|e| self.unreadable(&abs, e))?;
            let is_forced = forced.contains(&rel);
            let excluded = !is_forced && ignore.excludes(&rel);
            let ft = meta.file_type();
            if ft.is_dir() {
                let mut prefix = rel.clone();
                prefix.push(b'/');
                let holds_forced = forced.iter().any(|f| f.starts_with(&prefix));
                if !excluded {
                    self.entries.push(Entry {
                        rel: rel.clone(),
                        abs: abs.clone(),
                        kind: Kind::Dir,
                        mode: mode_of(&meta),
                    });
                }
                if !excluded || ignore.has_exceptions || holds_forced {
                    self.walk(&abs, &rel, ignore, forced)?;
                }
            } else if excluded {
                continue;
            } else if ft.is_symlink() {
                let target = fs::read_link(&abs).map_err(|e| self.unreadable(&abs, e))?;
                let kind = Kind::Symlink(name_bytes(target.as_os_str()));
                self.entries.push(Entry { rel, abs, kind, mode: mode_of(&meta) });
            } else if ft.is_file() {
                self.entries.push(Entry { rel, abs, kind: Kind::File, mode: mode_of(&meta) });
            }
            // Sockets, FIFOs and devices are skipped: a build cannot use them.
        }
        Ok(())
    }
}

/// Cleans a `/`-separated path the way Go's `filepath.Clean` does (without a leading `/`
/// being kept: callers strip it first or treat it as outside).
fn clean(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Parsed `.dockerignore` rules.
#[derive(Default)]
struct Ignore {
    rules: Vec<Rule>,
    has_exceptions: bool,
}

struct Rule {
    exception: bool,
    matcher: GlobMatcher,
}

impl Ignore {
    fn parse(context: &Path, text: &str) -> Result<Ignore, ContextError> {
        let mut ignore = Ignore::default();
        for (i, raw) in text.lines().enumerate() {
            let line = if i == 0 { raw.trim_start_matches('\u{feff}') } else { raw };
            let mut pattern = line.trim();
            if pattern.is_empty() || pattern.starts_with('#') {
                continue;
            }
            let exception = pattern.starts_with('!');
            if exception {
                pattern = pattern[1..].trim();
            }
            if pattern.is_empty() {
                continue;
            }
            let mut cleaned = clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let glob = GlobBuilder::new(&to_globset(&cleaned))
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| ContextError::BadPattern {
                context: context.to_path_buf(),
                line: i + 1,
                pattern: line.trim().to_string(),
                reason: e.kind().to_string(),
            })?;
            ignore.has_exceptions |= exception;
            ignore.rules.push(Rule { exception, matcher: glob.compile_matcher() });
        }
        Ok(ignore)
    }

    /// Whether `rel` is excluded: the last rule matching it or one of its parent directories
    /// decides.
    fn excludes(&self, rel: &[u8]) -> bool {
        let mut excluded = false;
        for rule in &self.rules {
            // An exception only matters once something is excluded, and vice versa.
            if rule.exception != excluded {
                continue;
            }
            if self.matches_self_or_parent(&rule.matcher, rel) {
                excluded = !rule.exception;
            }
        }
        excluded
    }

    fn matches_self_or_parent(&self, matcher: &GlobMatcher, rel: &[u8]) -> bool {
        if matcher.is_match(rel_path(rel)) {
            return true;
        }
        rel.iter().enumerate().filter(|(_, b)| **b == b'/').any(|(i, _)| matcher.is_match(rel_path(&rel[..i])))
    }
}

/// Rewrites a Go `filepath.Match` pattern (plus Docker's `**`) into globset syntax: braces
/// are literal in Go, and `[^...]` negates a class in both.
fn to_globset(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push('\\');
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '{' | '}' if !in_class => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::{Duration, SystemTime};

    struct Ctx {
        dir: tempfile::TempDir,
        args: BTreeMap<String, String>,
        dockerfile: String,
    }

    impl Ctx {
        fn new() -> Ctx {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join("Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
            Ctx { dir, args: BTreeMap::new(), dockerfile: "Dockerfile".into() }
        }

        fn write(&self, rel: &str, content: &str) -> &Self {
            let path = self.dir.path().join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
            self
        }

        fn build(&self) -> Build {
            Build {
                context: self.dir.path().to_path_buf(),
                dockerfile: self.dockerfile.clone(),
                args: self.args.clone(),
                ..Default::default()
            }
        }

        fn files(&self) -> Vec<String> {
            included_paths(&self.build()).unwrap()
        }

        fn hash(&self) -> String {
            fingerprint(&self.build()).unwrap()
        }
    }

    fn ignore_rules(rules: &str) -> Ignore {
        Ignore::parse(Path::new("/ctx"), rules).unwrap()
    }

    #[test]
    fn patterns_follow_docker_semantics() {
        let ig = ignore_rules("# comment\n\n*.log\n/build\n./tmp/\nsecret?.txt\n");
        assert!(ig.excludes(b"a.log"));
        assert!(!ig.excludes(b"sub/a.log"), "`*.log` only matches at the root, as in Docker");
        assert!(ig.excludes(b"build"));
        assert!(ig.excludes(b"build/out/x.o"), "a matched directory excludes everything under it");
        assert!(ig.excludes(b"tmp/x"));
        assert!(ig.excludes(b"secret1.txt"));
        assert!(!ig.excludes(b"secret12.txt"));
        assert!(!ig.excludes(b"# comment"));
        assert!(!ig.excludes(b"src/main.rs"));
    }

    #[test]
    fn double_star_spans_directories() {
        let ig = ignore_rules("**/*.pyc\nnode_modules/**\nx/**/y\n");
        assert!(ig.excludes(b"a.pyc"));
        assert!(ig.excludes(b"a/b/c.pyc"));
        assert!(ig.excludes(b"node_modules/left-pad/index.js"));
        assert!(ig.excludes(b"x/y"));
        assert!(ig.excludes(b"x/1/2/y"));
        assert!(ig.excludes(b"x/1/y/z"));
        assert!(!ig.excludes(b"y"));
        assert!(!ig.excludes(b"a/b/c.py"));
    }

    #[test]
    fn exceptions_reinclude_and_last_match_wins() {
        let ig = ignore_rules("*.md\n!README.md\nREADME*.md\n!README-keep.md\ndocs\n!docs/keep\n");
        assert!(ig.excludes(b"CHANGES.md"));
        assert!(ig.excludes(b"README.md"), "a later exclusion wins over the earlier exception");
        assert!(!ig.excludes(b"README-keep.md"));
        assert!(ig.excludes(b"docs/a.txt"));
        assert!(!ig.excludes(b"docs/keep"));
        assert!(!ig.excludes(b"docs/keep/deep/file"));
    }

    #[test]
    fn go_glob_syntax_is_translated() {
        let ig = ignore_rules("[^a]*.tmp\n{x,y}\nesc\\*\n");
        assert!(ig.excludes(b"b.tmp"));
        assert!(!ig.excludes(b"a.tmp"));
        assert!(ig.excludes(b"{x,y}"), "braces are literal in Go globs");
        assert!(!ig.excludes(b"x"));
        assert!(ig.excludes(b"esc*"));
        assert!(!ig.excludes(b"escape"));
    }

    #[test]
    fn walk_honours_dockerignore_and_always_sends_dockerfile() {
        let c = Ctx::new();
        c.write(".dockerignore", "Dockerfile\n.dockerignore\n.git\n*.secret\nlogs\n!logs/keep.txt\n")
            .write("app.py", "print(1)")
            .write("key.secret", "x")
            .write(".git/HEAD", "ref")
            .write("logs/a.txt", "a")
            .write("logs/keep.txt", "k")
            .write("src/lib.py", "");
        assert_eq!(c.files(), [".dockerignore", "Dockerfile", "app.py", "logs/keep.txt", "src", "src/lib.py"]);
    }

    #[test]
    fn tar_matches_included_paths_and_is_deterministic() {
        let c = Ctx::new();
        c.write(".dockerignore", "ignored\n").write("a/b.txt", "hello").write("ignored", "no");
        let one = tar(&c.build()).unwrap();
        let two = tar(&c.build()).unwrap();
        assert_eq!(one, two);
        let mut archive = tar::Archive::new(one.as_slice());
        let mut names = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            assert_eq!(entry.header().mtime().unwrap(), TAR_MTIME);
            assert_eq!(entry.header().uid().unwrap(), 0);
            let name = entry.path().unwrap().to_string_lossy().trim_end_matches('/').to_string();
            if name == "a/b.txt" {
                let mut s = String::new();
                entry.read_to_string(&mut s).unwrap();
                assert_eq!(s, "hello");
            }
            names.push(name);
        }
        assert_eq!(names, c.files());
    }

    #[test]
    fn fingerprint_ignores_mtime() {
        let c = Ctx::new();
        c.write("app.py", "print(1)");
        let before = c.hash();
        let file = fs::File::options().write(true).open(c.dir.path().join("app.py")).unwrap();
        file.set_modified(SystemTime::now() + Duration::from_secs(3600)).unwrap();
        drop(file);
        fs::write(c.dir.path().join("app.py"), "print(1)").unwrap();
        assert_eq!(before, c.hash());
    }

    #[test]
    fn fingerprint_tracks_what_affects_the_build() {
        let mut c = Ctx::new();
        c.write(".dockerignore", "*.log\n").write("app.py", "print(1)");
        let base = c.hash();
        assert_eq!(base.len(), 64);

        c.write("debug.log", "noise");
        assert_eq!(c.hash(), base, "an ignored file changes nothing");

        c.write("app.py", "print(2)");
        let changed = c.hash();
        assert_ne!(changed, base, "changed content");
        c.write("app.py", "print(1)");
        assert_eq!(c.hash(), base);

        c.write("new.py", "");
        assert_ne!(c.hash(), base, "a new included file");
        fs::remove_file(c.dir.path().join("new.py")).unwrap();
        assert_eq!(c.hash(), base);

        c.args.insert("VERSION".into(), "1".into());
        let with_arg = c.hash();
        assert_ne!(with_arg, base, "a build arg");
        c.args.insert("VERSION".into(), "2".into());
        assert_ne!(c.hash(), with_arg, "a build arg's value");
        c.args.clear();
        assert_eq!(c.hash(), base);

        fs::write(c.dir.path().join("Other.dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
        let with_other = c.hash();
        c.dockerfile = "Other.dockerfile".into();
        assert_ne!(c.hash(), with_other, "the Dockerfile's name");
        c.dockerfile = "./Other.dockerfile".into();
        let dotted = c.hash();
        c.dockerfile = "Other.dockerfile".into();
        assert_eq!(c.hash(), dotted, "`./Dockerfile` and `Dockerfile` are the same file");
    }

    #[cfg(unix)]
    #[test]
    fn fingerprint_tracks_modes_and_symlinks() {
        use std::os::unix::fs::{PermissionsExt, symlink};
        let c = Ctx::new();
        c.write("run.sh", "#!/bin/sh\n");
        let path = c.dir.path().join("run.sh");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let base = c.hash();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        assert_ne!(c.hash(), base, "a mode change");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(c.hash(), base);

        symlink("run.sh", c.dir.path().join("link")).unwrap();
        let linked = c.hash();
        assert_ne!(linked, base);
        fs::remove_file(c.dir.path().join("link")).unwrap();
        symlink("Dockerfile", c.dir.path().join("link")).unwrap();
        assert_ne!(c.hash(), linked, "a symlink's target");
    }

    #[test]
    fn errors_name_the_context_and_the_problem() {
        let missing =
            Build { context: PathBuf::from("/nonexistent/ctx"), dockerfile: "Dockerfile".into(), ..Default::default() };
        let e = fingerprint(&missing).unwrap_err();
        assert!(matches!(e, ContextError::MissingContext { .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/ctx"), "{e}");

        let mut c = Ctx::new();
        c.dockerfile = "Nope.dockerfile".into();
        let e = tar(&c.build()).unwrap_err();
        assert!(matches!(e, ContextError::MissingDockerfile { .. }), "{e}");
        assert!(e.to_string().contains("Nope.dockerfile"), "{e}");
        assert_eq!(e.context(), c.dir.path());

        c.dockerfile = "../Dockerfile".into();
        assert!(matches!(fingerprint(&c.build()).unwrap_err(), ContextError::DockerfileOutside { .. }));
    }

    #[cfg(unix)]
    #[test]
    fn unreadable_file_is_reported_unless_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let c = Ctx::new();
        c.write("locked", "x");
        let path = c.dir.path().join("locked");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
        if fs::read(&path).is_ok() {
            eprintln!("running as root: cannot test unreadable files");
            return;
        }
        let e = fingerprint(&c.build()).unwrap_err();
        assert!(matches!(e, ContextError::Unreadable { .. }), "{e}");
        assert!(e.to_string().contains("locked"), "{e}");
        c.write(".dockerignore", "locked\n");
        assert!(fingerprint(&c.build()).is_ok());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    }
}
