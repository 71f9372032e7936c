//! A project as Compose assembles one: which files (found in the current directory, or given
//! with `-f`, plus `compose.override.yaml`), merged in order, with `include:` and `extends:`
//! resolved, interpolated with `.env` (or `--env-file`) under the shell's environment, the
//! services of inactive profiles left out, and a project name when the file has none.
//!
//! Every file gets an index that the positions in its tree carry, so a problem anywhere still
//! names the file, line and column it comes from.

use std::path::{Path, PathBuf};

use super::decode::decode_project;
use super::interpolate::{Env, interpolate};
use super::load::{blueprint_dir, read_dotenv, read_tree};
use super::merge::{merge_files, merge_service};
use super::node::{Node, Value};
use super::types::{Blueprint, ImplicitName, NameSource};
use crate::diag::{Diagnostic, Diagnostics};

/// The names looked for in the current directory, in Compose's order of preference.
pub const COMPOSE_FILE_NAMES: [&str; 4] = ["compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"];

/// Override files merged over a discovered file, in the same order of preference.
pub const OVERRIDE_FILE_NAMES: [&str; 4] =
    ["compose.override.yaml", "compose.override.yml", "docker-compose.override.yaml", "docker-compose.override.yml"];

/// The most files one project may be read from (`-f`, includes and extends together): a
/// bound against include loops that a depth limit alone would let grow wide.
const MAX_FILES: usize = 64;

/// How deep `include` and `extends` may chain (Compose has no limit; loops must end).
const MAX_DEPTH: usize = 10;

/// What to load: the command line's view of a project.
#[derive(Debug, Clone)]
pub struct Options {
    /// Files in merge order; empty means "discover in `workdir`".
    pub files: Vec<PathBuf>,
    /// Where discovery looks (the current directory).
    pub workdir: PathBuf,
    /// `--env-file`s, in order; empty means the `.env` in the project directory.
    pub env_files: Vec<PathBuf>,
    /// `--profile`s; empty means `COMPOSE_PROFILES` (comma-separated), else none.
    pub profiles: Vec<String>,
    /// The shell's environment (tests pass their own).
    pub env: Env,
}

impl Options {
    /// One explicit file, the process environment, no profile.
    pub fn file(path: &Path) -> Self {
        Options {
            files: vec![path.to_path_buf()],
            workdir: PathBuf::from("."),
            env_files: Vec::new(),
            profiles: Vec::new(),
            env: Env::from_process(),
        }
    }
}

/// The files a command uses when none is named: the first of [`COMPOSE_FILE_NAMES`] in `dir`,
/// then the first of [`OVERRIDE_FILE_NAMES`] when there is one. A second candidate is
/// reported as a warning, as Compose does.
pub fn discover(dir: &Path) -> Result<(Vec<PathBuf>, Vec<Diagnostic>), Diagnostic> {
    let found: Vec<PathBuf> = COMPOSE_FILE_NAMES.iter().map(|n| tidy(&dir.join(n))).filter(|p| p.is_file()).collect();
    let Some(main) = found.first() else {
        let names = COMPOSE_FILE_NAMES.join(", ");
        return Err(Diagnostic::file(dir, format!("no Compose file here (looked for {names})")).hint(
            "name a file (`-f FILE`), run from the directory that holds compose.yaml, or pass `-p NAME` for a project already applied",
        ));
    };
    let mut warnings = Vec::new();
    if let Some(other) = found.get(1) {
        warnings.push(Diagnostic::file(other, format!("found several Compose files; using {}", main.display())));
    }
    let mut files = vec![main.clone()];
    if let Some(over) = OVERRIDE_FILE_NAMES.iter().map(|n| tidy(&dir.join(n))).find(|p| p.is_file()) {
        files.push(over);
    }
    Ok((files, warnings))
}

/// Why there is nothing to load when nothing names a file (no `-f`, no `COMPOSE_FILE`) and the
/// directory holds no Compose file: for the CLI a usage error (there is nothing to act on),
/// unlike a named file that cannot be read.
pub fn nothing_to_load(opts: &Options) -> Option<Diagnostic> {
    if !opts.files.is_empty() || compose_file_variable(opts).is_some() {
        return None;
    }
    discover(&opts.workdir).err()
}

/// Compose's project-name normalisation of a directory name: lowercase, keep only
/// `[a-z0-9_-]`, drop leading `_` and `-`.
pub fn normalize_project_name(name: &str) -> String {
    let kept: String = name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
        .collect();
    kept.trim_start_matches(['_', '-']).to_string()
}

/// Loads a whole project as far as it goes: the blueprint (partial when there are problems)
/// and every problem, each naming the file it is in.
pub fn load_project(opts: &Options) -> (Option<Blueprint>, Diagnostics) {
    let (files, mut warnings) = if let Some(files) = compose_file_variable(opts) {
        (files, Vec::new())
    } else if opts.files.is_empty() {
        match discover(&opts.workdir) {
            Ok(found) => found,
            Err(d) => return (None, Diagnostics(vec![d])),
        }
    } else {
        (opts.files.iter().map(|f| opts.workdir.join(f)).map(|f| tidy(&f)).collect(), Vec::new())
    };
    let project_dir = blueprint_dir(&files[0]);
    let env = match environment(opts, &project_dir) {
        Ok(env) => env,
        Err(problems) => return (None, problems),
    };
    let mut loader = Loader {
        sources: Vec::new(),
        dirs: Vec::new(),
        problems: Vec::new(),
        warnings: Vec::new(),
        including: Vec::new(),
        env: &env,
        extended: Default::default(),
    };
    let mut root: Option<Node> = None;
    for file in &files {
        let Some(tree) = loader.read(file, &project_dir, 0) else { continue };
        root = Some(match root {
            None => tree,
            Some(base) => merge_files(base, tree),
        });
    }
    let Some(mut root) = root else { return (None, loader.finish(Vec::new())) };
    loader.extends(&mut root);
    let (blueprint, problems) = decode_project(&loader.sources, &loader.dirs, &root, &env);
    let mut problems = loader.finish(problems);
    let Some(mut bp) = blueprint else { return (None, problems) };
    apply_profiles(&mut bp, &profiles(opts, &env));
    bp.implicit_name = implicit_name(&env, &project_dir);
    warnings.append(&mut loader.warnings);
    warnings.append(&mut bp.warnings);
    let mut warnings = Diagnostics(warnings);
    warnings.resolve_files(&bp.sources);
    bp.warnings = warnings.sorted().0;
    problems.resolve_files(&bp.sources);
    (Some(bp), problems.sorted())
}

/// With no file named, `COMPOSE_FILE` (from the shell, or the `.env` of the current
/// directory) lists the files, separated by `COMPOSE_PATH_SEPARATOR` (default `:`).
fn compose_file_variable(opts: &Options) -> Option<Vec<PathBuf>> {
    if !opts.files.is_empty() {
        return None;
    }
    let dotenv = read_dotenv(&opts.workdir.join(".env")).unwrap_or_default();
    let env = dotenv.overlay(opts.env.clone());
    let list = env.get("COMPOSE_FILE").filter(|l| !l.trim().is_empty())?;
    let separator = env.get("COMPOSE_PATH_SEPARATOR").unwrap_or(":");
    let files: Vec<PathBuf> =
        list.split(separator).filter(|f| !f.trim().is_empty()).map(|f| tidy(&opts.workdir.join(f))).collect();
    (!files.is_empty()).then_some(files)
}

/// `--env-file`s, else the `.env` in the project directory, under the shell's environment.
fn environment(opts: &Options, project_dir: &Path) -> Result<Env, Diagnostics> {
    let mut env = Env::default();
    if opts.env_files.is_empty() {
        env = read_dotenv(&project_dir.join(".env"))?;
    }
    for file in &opts.env_files {
        let path = opts.workdir.join(file);
        if !path.is_file() {
            return Err(Diagnostics(vec![
                Diagnostic::file(&path, "the --env-file does not exist").hint("check the path given to --env-file"),
            ]));
        }
        env = env.overlay(read_dotenv(&path)?);
    }
    Ok(env.overlay(opts.env.clone()))
}

fn profiles(opts: &Options, env: &Env) -> Vec<String> {
    if !opts.profiles.is_empty() {
        return opts.profiles.clone();
    }
    let from_env = env.get("COMPOSE_PROFILES").unwrap_or_default();
    from_env.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_string).collect()
}

/// Leaves out services none of whose `profiles` is active (`*` activates all), and then the
/// `required: false` dependencies on services that are not there.
fn apply_profiles(bp: &mut Blueprint, active: &[String]) {
    let on = |p: &String| active.iter().any(|a| a == p || a == "*");
    let (kept, left): (Vec<_>, Vec<_>) = std::mem::take(&mut bp.services)
        .into_iter()
        .partition(|s| s.compose.profiles.is_empty() || s.compose.profiles.iter().any(on));
    bp.services = kept;
    bp.inactive_services = left.into_iter().map(|s| s.name).collect();
    let names: Vec<String> = bp.services.iter().map(|s| s.name.clone()).collect();
    for s in &mut bp.services {
        let optional = &s.compose.optional_dependencies;
        s.depends_on.retain(|d| names.contains(&d.service.value) || !optional.contains(&d.service.value));
    }
}

/// `COMPOSE_PROJECT_NAME` (from the shell or `.env`), else the project directory's name.
fn implicit_name(env: &Env, project_dir: &Path) -> Option<ImplicitName> {
    if let Some(name) = env.get("COMPOSE_PROJECT_NAME").filter(|n| !n.is_empty()) {
        return Some(ImplicitName { value: name.to_string(), source: NameSource::Environment });
    }
    let dir = project_dir.file_name()?.to_string_lossy();
    let value = normalize_project_name(&dir);
    (!value.is_empty()).then_some(ImplicitName { value, source: NameSource::Directory })
}

/// Removes `.` components so file names in messages read as the user wrote them.
fn tidy(path: &Path) -> PathBuf {
    let tidied: PathBuf = path.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect();
    if tidied.as_os_str().is_empty() { PathBuf::from(".") } else { tidied }
}

struct Loader<'a> {
    sources: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
    problems: Vec<Diagnostic>,
    /// Keys of `include` entries that are read but not acted on.
    warnings: Vec<Diagnostic>,
    /// The files whose `include:` is being resolved, outermost first (to stop cycles).
    including: Vec<PathBuf>,
    env: &'a Env,
    /// Files read for `extends: { file: }`, each read once however many services use it.
    extended: std::collections::HashMap<PathBuf, Option<Node>>,
}

impl Loader<'_> {
    /// Reads one file as file number `sources.len()`, resolving its `include:`; relative
    /// paths in it are resolved against `dir`.
    fn read(&mut self, path: &Path, dir: &Path, depth: usize) -> Option<Node> {
        if self.sources.len() >= MAX_FILES {
            self.problems.push(Diagnostic::file(path, format!("a project may be read from at most {MAX_FILES} files")));
            return None;
        }
        let index = u16::try_from(self.sources.len()).ok()?;
        self.sources.push(path.to_path_buf());
        self.dirs.push(dir.to_path_buf());
        let mut tree = match read_tree(path, self.env) {
            Ok(tree) => tree,
            Err(problems) => {
                self.problems.extend(problems.0);
                return None;
            }
        };
        tree.set_file(index);
        if !matches!(tree.value, Value::Map(_)) {
            let message = format!("the blueprint must be a mapping, found {}", tree.value.kind_name());
            self.error(tree.pos, message, "start with `name: myproject` and `services:`");
            return None;
        }
        self.includes(&mut tree, path, depth);
        Some(tree)
    }

    /// Diagnostics of the loader first, then the decoder's, all naming the right file.
    fn finish(&mut self, decoded: Vec<Diagnostic>) -> Diagnostics {
        let mut all = Diagnostics(std::mem::take(&mut self.problems));
        all.0.extend(decoded);
        all.resolve_files(&self.sources);
        all
    }

    fn error(&mut self, node_pos: crate::diag::Pos, message: String, hint: &str) {
        let file = self.sources.get(usize::from(node_pos.file)).cloned().unwrap_or_default();
        self.problems.push(Diagnostic::at(&file, node_pos, message).hint(hint));
    }

    /// A path written in the tree, interpolated, relative to the directory of its own file.
    fn path_at(&mut self, node: &Node, what: &str) -> Option<PathBuf> {
        let Some(raw) = node.value.scalar_text() else {
            self.error(node.pos, format!("{what}: expected a path"), "write a path relative to this file");
            return None;
        };
        let text = match interpolate(&raw, self.env) {
            Ok(text) => text,
            Err(err) => {
                self.error(node.pos, format!("{what}: {err}"), "set the variable, e.g. in .env");
                return None;
            }
        };
        let own = self.sources.get(usize::from(node.pos.file)).map(|f| blueprint_dir(f)).unwrap_or_default();
        Some(tidy(&own.join(text)))
    }

    /// `include:` — each listed file is loaded as its own part (paths relative to it) and its
    /// resources added; a resource defined twice is an error, as in Compose.
    fn includes(&mut self, tree: &mut Node, path: &Path, depth: usize) {
        let Value::Map(entries) = &mut tree.value else { return };
        let Some(i) = entries.iter().position(|(k, _)| k.name == "include") else { return };
        let (key, list) = entries.remove(i);
        if depth >= MAX_DEPTH {
            self.error(
                key.pos,
                format!("`include` nests deeper than {MAX_DEPTH} files"),
                "an included file includes itself?",
            );
            return;
        }
        let items = match list.value {
            Value::Seq(items) => items,
            _ => {
                self.error(list.pos, "include: expected a list".into(), "include:\n  - other/compose.yaml");
                return;
            }
        };
        for item in items {
            if let Value::Map(keys) = &item.value {
                for (k, _) in keys.iter().filter(|(k, _)| k.name != "path") {
                    let file = self.sources.get(usize::from(k.pos.file)).cloned().unwrap_or_default();
                    self.warnings.push(
                        Diagnostic::at(&file, k.pos, format!("not supported yet: `include.{}` (the included file's own directory and the project's .env are used)", k.name))
                            .hint("scale reads this Compose key but does not act on it yet (README: \"Coming from Compose\")"),
                    );
                }
            }
            let paths: Vec<Node> = match &item.value {
                Value::Map(_) => match item.get("path").map(|p| p.value.clone()) {
                    Some(Value::Seq(ps)) => ps,
                    Some(value) => vec![Node { value, pos: item.get("path").map_or(item.pos, |p| p.pos) }],
                    None => {
                        self.error(
                            item.pos,
                            "include: an entry needs `path`".into(),
                            "include:\n  - path: other/compose.yaml",
                        );
                        continue;
                    }
                },
                _ => vec![item.clone()],
            };
            for p in paths {
                let Some(file) = self.path_at(&p, "include") else { continue };
                let same = |a: &Path| std::fs::canonicalize(a).ok() == std::fs::canonicalize(&file).ok();
                if same(path) || self.including.iter().any(|f| same(f)) {
                    let message = format!("`include` of {} goes round in a circle", file.display());
                    self.error(p.pos, message, "a file must not include itself, directly or through others");
                    continue;
                }
                let dir = blueprint_dir(&file);
                self.including.push(path.to_path_buf());
                let part = self.read(&file, &dir, depth + 1);
                self.including.pop();
                if let Some(part) = part {
                    self.add_included(tree, part, path);
                }
            }
        }
    }

    fn add_included(&mut self, tree: &mut Node, part: Node, including: &Path) {
        let Value::Map(part_entries) = part.value else { return };
        let Value::Map(entries) = &mut tree.value else { return };
        for (section, defs) in part_entries {
            if !matches!(section.name.as_str(), "services" | "networks" | "volumes" | "secrets" | "configs") {
                continue;
            }
            let Value::Map(defs) = defs.value else { continue };
            let slot = match entries.iter().position(|(k, _)| k.name == section.name) {
                Some(i) => i,
                None => {
                    entries.push((section.clone(), Node { value: Value::Map(Vec::new()), pos: section.pos }));
                    entries.len() - 1
                }
            };
            let mut conflicts = Vec::new();
            if let Value::Map(existing) = &mut entries[slot].1.value {
                for (k, v) in defs {
                    if let Some((old, _)) = existing.iter().find(|(e, _)| e.name == k.name) {
                        conflicts.push((old.pos, k.name.clone()));
                    } else {
                        existing.push((k, v));
                    }
                }
            } else {
                entries[slot].1.value = Value::Map(defs);
            }
            for (pos, name) in conflicts {
                let message = format!(
                    "{} `{name}` is defined here and in a file that {} includes",
                    section.name.trim_end_matches('s'),
                    including.display()
                );
                self.error(pos, message, "rename one of them, or remove it from one file (Compose refuses this too)");
            }
        }
    }

    /// Resolves `extends:` in every service of the merged tree.
    fn extends(&mut self, root: &mut Node) {
        let Value::Map(entries) = &mut root.value else { return };
        let Some((_, services)) = entries.iter_mut().find(|(k, _)| k.name == "services") else { return };
        let scope = services.clone();
        let Value::Map(defs) = &mut services.value else { return };
        for (_, def) in defs.iter_mut() {
            let node = std::mem::replace(def, Node { value: Value::Null, pos: def.pos });
            *def = self.extend(node, &scope, 0);
        }
    }

    /// One service with its `extends:` chain merged underneath it.
    fn extend(&mut self, mut node: Node, scope: &Node, depth: usize) -> Node {
        let Value::Map(entries) = &mut node.value else { return node };
        let Some(i) = entries.iter().position(|(k, _)| k.name == "extends") else { return node };
        let (key, ext) = entries.remove(i);
        if depth >= MAX_DEPTH {
            self.error(
                key.pos,
                format!("`extends` chains deeper than {MAX_DEPTH} services"),
                "a service extends itself?",
            );
            return node;
        }
        let (name, file) = match &ext.value {
            Value::Map(_) => (ext.get("service").and_then(|s| s.value.scalar_text()), ext.get("file")),
            other => (other.scalar_text(), None),
        };
        let Some(name) = name else {
            self.error(ext.pos, "extends: needs `service`".into(), "extends: { service: base, file: common.yaml }");
            return node;
        };
        let (base, scope) = match file {
            Some(f) => {
                let Some(path) = self.path_at(f, "extends.file") else { return node };
                let tree = match self.extended.get(&path) {
                    Some(tree) => tree.clone(),
                    None => {
                        let tree = self.read(&path, &blueprint_dir(&path), depth + 1);
                        self.extended.insert(path.clone(), tree.clone());
                        tree
                    }
                };
                let Some(tree) = tree else { return node };
                let Some(services) = tree.get("services").cloned() else {
                    self.error(f.pos, format!("extends: {} has no `services:`", path.display()), "check the file");
                    return node;
                };
                (services.get(&name).cloned(), services)
            }
            None => (scope.get(&name).cloned(), scope.clone()),
        };
        let Some(base) = base else {
            self.error(
                ext.pos,
                format!("extends: there is no service `{name}` to extend"),
                "name a service of that file",
            );
            return node;
        };
        let base = self.extend(base, &scope, depth + 1);
        merge_service(base, node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn options(dir: &Path) -> Options {
        Options {
            files: Vec::new(),
            workdir: dir.to_path_buf(),
            env_files: Vec::new(),
            profiles: Vec::new(),
            env: Env::default(),
        }
    }

    #[test]
    fn directory_names_are_normalised_as_compose_does() {
        assert_eq!(normalize_project_name("My App.v2"), "myappv2");
        assert_eq!(normalize_project_name("__-Web_1"), "web_1");
        assert_eq!(normalize_project_name("..."), "");
    }

    #[test]
    fn discovery_prefers_compose_yaml_and_merges_the_override() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("My Shop");
        write(&dir, "compose.yaml", "services:\n  web:\n    image: nginx\n");
        write(&dir, "docker-compose.yml", "services:\n  other:\n    image: nginx\n");
        write(&dir, "compose.override.yaml", "services:\n  web:\n    environment: { A: \"1\" }\n    ports: [\"x\"]\n");
        let (bp, problems) = load_project(&options(&dir));
        // The bad port is in the override file, and the diagnostic says so.
        let d = &problems.0[0];
        assert!(d.file.ends_with("compose.override.yaml") && d.pos.unwrap().line == 4, "{problems}");
        let bp = bp.unwrap();
        assert_eq!(bp.incomplete_services, ["web"], "the broken service is the merged one");
        assert_eq!(bp.implicit_name.unwrap().value, "myshop");
        assert!(bp.warnings.iter().any(|w| w.message.contains("several Compose files")));
    }

    #[test]
    fn compose_file_names_the_files_when_none_is_given() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "a.yaml", "services:\n  web:\n    image: a\n");
        write(tmp.path(), "b.yaml", "services:\n  web:\n    image: b\n");
        write(tmp.path(), ".env", "COMPOSE_FILE=a.yaml:b.yaml\n");
        let (bp, problems) = load_project(&options(tmp.path()));
        assert!(problems.is_empty(), "{problems}");
        assert_eq!(bp.unwrap().services[0].image.as_ref().unwrap().value, "b");
    }

    #[test]
    fn no_file_found_says_what_was_looked_for() {
        let tmp = tempfile::tempdir().unwrap();
        let (bp, problems) = load_project(&options(tmp.path()));
        assert!(bp.is_none());
        assert!(problems.to_string().contains("looked for compose.yaml, compose.yml"), "{problems}");
    }

    #[test]
    fn extends_include_profiles_and_env_name() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write(
            dir,
            "common/base.yaml",
            "services:\n  base:\n    image: app\n    environment: [A=1]\n    volumes: [\"./data:/data\"]\n",
        );
        write(dir, "lib/compose.yaml", "services:\n  cache:\n    image: redis\n");
        write(
            dir,
            "compose.yaml",
            "include: [lib/compose.yaml]\nservices:\n  web:\n    extends: { file: common/base.yaml, service: base }\n    \
             environment: { B: \"2\" }\n  tool:\n    image: t\n    profiles: [debug]\n  api:\n    extends: web\n",
        );
        let mut opts = options(dir);
        opts.env = Env::from_pairs([("COMPOSE_PROJECT_NAME", "fromenv")]);
        let (bp, problems) = load_project(&opts);
        assert!(problems.is_empty(), "{problems}");
        let bp = bp.unwrap();
        let names: Vec<&str> = bp.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["web", "api", "cache"]);
        assert_eq!(bp.inactive_services, ["tool"]);
        let web = bp.service("web").unwrap();
        assert_eq!(web.image.as_ref().unwrap().value, "app");
        assert_eq!((web.environment["A"].value.as_str(), web.environment["B"].value.as_str()), ("1", "2"));
        // A path in the extended file is relative to that file.
        let crate::model::MountSource::Bind(p) = &web.volumes[0].value.source else { panic!() };
        assert!(p.ends_with("common/data"), "{p:?}");
        assert_eq!(bp.service("api").unwrap().environment.len(), 2);
        assert_eq!(bp.implicit_name.unwrap().source, NameSource::Environment);
        opts.profiles = vec!["debug".into()];
        assert!(load_project(&opts).0.unwrap().service("tool").is_some());
    }

    #[test]
    fn an_include_cycle_is_one_error_at_the_include() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "compose.yaml", "include: [lib/a.yaml]\nservices:\n  web:\n    image: x\n");
        write(tmp.path(), "lib/a.yaml", "include: [../compose.yaml]\nservices:\n  a:\n    image: x\n");
        let (_, problems) = load_project(&options(tmp.path()));
        assert_eq!(problems.len(), 1, "{problems}");
        let d = &problems.0[0];
        assert!(d.message.contains("goes round in a circle") && d.file.ends_with("lib/a.yaml"), "{problems}");
    }

    #[test]
    fn an_extends_cycle_is_an_error_not_a_hang() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "compose.yaml", "services:\n  a:\n    extends: b\n    image: x\n  b:\n    extends: a\n");
        let (_, problems) = load_project(&options(tmp.path()));
        assert!(problems.to_string().contains("chains deeper"), "{problems}");
    }
}
