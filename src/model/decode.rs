//! Turns the position-carrying YAML tree into a typed [`Blueprint`], collecting every unknown
//! key, wrong type and malformed value at once (with "did you mean" hints), and interpolating
//! `${VAR}` in every string value on the way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::duration;
use super::interpolate::{Env, interpolate};
use super::node::{Key, Node, Value};
use super::types::*;
use crate::diag::{Diagnostic, Pos, did_you_mean};

mod compose;
mod options;

type Entries = [(Key, Node)];

mod replicas;

const TOP_KEYS: &[&str] =
    &["name", "stage", "networks", "volumes", "services", "version", "include", "secrets", "configs", "models"];
const SERVICE_KEYS: &[&str] = &[
    "kind",
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "ports",
    "networks",
    "volumes",
    "depends_on",
    "healthcheck",
    "replicas",
    "restart",
    "stop_grace_period",
    "labels",
    "zones",
    "rollout",
    "deploy",
    "backends",
    "read_replicas",
    "synchronous",
    "failover",
    "database",
    "user",
    "password",
    "shards",
];
/// The blueprint's own `rollout:` keys.
const ROLLOUT_KEYS: &[&str] = &["parallelism", "order", "monitor", "delay", "on_failure"];
/// Compose's `deploy.update_config` keys that mean the same (`failure_action` is `on_failure`).
pub(super) const UPDATE_CONFIG_KEYS: &[&str] = &["parallelism", "order", "monitor", "delay", "failure_action"];

const LOAD_BALANCER_KEYS: &[&str] = &["backends"];
const POSTGRES_KEYS: &[&str] = &["read_replicas", "synchronous", "failover", "database", "user", "password", "shards"];

/// Unknown keys get a "did you mean" only while there are fewer problems than this.
const SUGGESTION_LIMIT: usize = 1_000;

/// Decodes a parsed blueprint: everything that could be decoded, and every problem found.
/// With problems, the blueprint is partial: a service is kept only when its problems are
/// unknown keys (nothing it has is wrong), so checks on it raise no false follow-on errors.
pub fn decode(file: &Path, dir: &Path, root: &Node, env: &Env) -> (Option<Blueprint>, Vec<Diagnostic>) {
    decode_project(&[file.to_path_buf()], &[dir.to_path_buf()], root, env)
}

/// [`decode`] for a tree merged from several files: `sources[i]` is file number `i` of the
/// positions, and `dirs[i]` the directory its relative paths are resolved against.
pub fn decode_project(
    sources: &[PathBuf],
    dirs: &[PathBuf],
    root: &Node,
    env: &Env,
) -> (Option<Blueprint>, Vec<Diagnostic>) {
    let mut d = Decoder {
        file: &sources[0],
        dir: &dirs[0],
        dirs,
        env,
        problems: Vec::new(),
        wrong: 0,
        warnings: Vec::new(),
        start_interval: None,
        tmpfs_mounts: Vec::new(),
    };
    let mut blueprint = d.blueprint(root);
    if let Some(bp) = &mut blueprint {
        bp.sources = sources.to_vec();
        d.grants_to_mounts(bp);
        d.implicit_default_network(bp);
        bp.warnings = std::mem::take(&mut d.warnings);
    }
    (blueprint, d.problems)
}

struct Decoder<'a> {
    file: &'a Path,
    dir: &'a Path,
    /// The directory relative paths are resolved against, by the file index of a position.
    dirs: &'a [PathBuf],
    env: &'a Env,
    problems: Vec<Diagnostic>,
    /// How many of `problems` say something is wrong, as opposed to an unknown key (which
    /// leaves everything that was decoded intact): a service is complete while this stays.
    wrong: usize,
    /// Keys read but not acted on (see `compose.rs`).
    warnings: Vec<Diagnostic>,
    /// The last healthcheck's `start_interval`, moved into the service's Compose settings.
    start_interval: Option<Duration>,
    /// `type: tmpfs` entries of the last `volumes:` (target → options), moved into the
    /// service's tmpfs mounts.
    tmpfs_mounts: Vec<(String, String)>,
}

impl Decoder<'_> {
    /// Records that something present is wrong or missing.
    fn error(&mut self, pos: Pos, message: impl Into<String>) -> &mut Diagnostic {
        self.wrong += 1;
        self.report(pos, message)
    }

    /// Records an unknown key: a problem, but not one that makes what was decoded wrong.
    fn unknown_key(&mut self, pos: Pos, message: impl Into<String>) -> &mut Diagnostic {
        self.report(pos, message)
    }

    fn report(&mut self, pos: Pos, message: impl Into<String>) -> &mut Diagnostic {
        self.problems.push(Diagnostic::at(self.file, pos, message));
        self.problems.last_mut().expect("just pushed")
    }

    fn wrong_type(&mut self, node: &Node, what: &str, expected: &str) {
        self.error(node.pos, format!("{what}: expected {expected}, found {}", node.value.kind_name()));
    }

    /// The entries of a mapping, or an error naming what was expected.
    fn map<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n Entries> {
        match &node.value {
            Value::Map(entries) => Some(entries),
            _ => {
                self.wrong_type(node, what, "a mapping");
                None
            }
        }
    }

    /// A mapping where `key: {}` and `key:` (null) both mean "defaults".
    fn optional_map<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n Entries> {
        match &node.value {
            Value::Null => Some(&[]),
            _ => self.map(node, what),
        }
    }

    /// Reports keys outside `allowed`, with the closest allowed key as a hint.
    fn check_keys(&mut self, entries: &Entries, allowed: &[&str], what: &str) {
        for (key, _) in entries {
            if allowed.contains(&key.name.as_str()) || key.name.starts_with("x-") {
                continue;
            }
            // Past a screenful of problems nobody reads suggestions, and a file of generated
            // junk keys must still be rejected at once.
            let suggestion = if self.problems.len() < SUGGESTION_LIMIT {
                did_you_mean(&key.name, allowed.iter().copied())
            } else {
                None
            };
            let hint = match suggestion {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!("{what} takes: {}", allowed.join(", ")),
            };
            self.unknown_key(key.pos, format!("unknown key `{}` in {what}", key.name)).hint = Some(hint);
        }
    }

    /// A scalar as text, with `${VAR}` interpolated.
    fn string(&mut self, node: &Node, what: &str) -> Option<At<String>> {
        let Some(raw) = node.value.scalar_text() else {
            self.wrong_type(node, what, "a string");
            return None;
        };
        let text = if matches!(node.value, Value::Str(_)) { self.interpolate(&raw, node.pos, what)? } else { raw };
        Some(At::new(text, node.pos))
    }

    fn interpolate(&mut self, raw: &str, pos: Pos, what: &str) -> Option<String> {
        match interpolate(raw, self.env) {
            Ok(text) => Some(text),
            Err(err) => {
                let hint = match &err {
                    super::interpolate::InterpolationError::Required { var, .. } => {
                        format!("set {var} in the environment or in the .env file beside the blueprint")
                    }
                    _ => "variables look like ${NAME}, ${NAME:-default} or ${NAME:?message}; $$ is a literal $".into(),
                };
                self.error(pos, format!("{what}: {err}")).hint = Some(hint);
                None
            }
        }
    }

    fn strings(&mut self, node: &Node, what: &str) -> Option<Vec<String>> {
        let Value::Seq(items) = &node.value else {
            self.wrong_type(node, what, "a list of strings");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(self.string(item, what)?.value);
        }
        Some(out)
    }

    /// A command: a list of words, or one string split the way a shell would.
    fn command(&mut self, node: &Node, what: &str) -> Option<Vec<String>> {
        if let Value::Seq(_) = node.value {
            return self.strings(node, what);
        }
        let text = self.string(node, what)?;
        match shell_words::split(&text.value) {
            Ok(words) => Some(words),
            Err(_) => {
                self.error(node.pos, format!("{what}: unbalanced quotes in {:?}", text.value)).hint =
                    Some("write the command as a list: [\"python3\", \"app.py\"]".into());
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        match &node.value {
            Value::Bool(b) => Some(*b),
            Value::Str(s) => match self.interpolate(s, node.pos, what)?.as_str() {
                "true" | "True" | "TRUE" => Some(true),
                "false" | "False" | "FALSE" => Some(false),
                other => {
                    self.error(node.pos, format!("{what}: expected true or false, found {other:?}"));
                    None
                }
            },
            _ => {
                self.wrong_type(node, what, "true or false");
                None
            }
        }
    }

    /// A whole number in `min..=max`; strings are accepted so `${N:-2}` works.
    fn integer(&mut self, node: &Node, what: &str, min: i64, max: i64) -> Option<i64> {
        let value = match &node.value {
            Value::Int(i) => *i,
            Value::Str(s) => {
                let text = self.interpolate(s, node.pos, what)?;
                match text.trim().parse::<i64>() {
                    Ok(i) => i,
                    // Digits too many for any integer type: out of range, quoted as written.
                    Err(_) if is_integer_literal(text.trim()) => {
                        self.error(node.pos, format!("{what}: {} is out of range ({min} to {max})", text.trim()));
                        return None;
                    }
                    Err(_) => {
                        self.error(node.pos, format!("{what}: expected a whole number, found {text:?}"));
                        return None;
                    }
                }
            }
            Value::Float(x) => {
                self.error(node.pos, format!("{what}: expected a whole number, found {x}"));
                return None;
            }
            _ => {
                self.wrong_type(node, what, "a whole number");
                return None;
            }
        };
        if value < min || value > max {
            self.error(node.pos, format!("{what}: {value} is out of range ({min} to {max})"));
            return None;
        }
        Some(value)
    }

    fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let text = self.string(node, what)?;
        match duration::parse(&text.value) {
            Ok(d) => Some(d),
            Err(why) => {
                self.error(node.pos, format!("{what}: {why}"));
                None
            }
        }
    }

    /// One of a fixed set of words, with a hint naming the closest.
    fn choice<T: Copy>(&mut self, node: &Node, what: &str, options: &[(&str, T)]) -> Option<T> {
        let text = match &node.value {
            Value::Bool(false) => At::new("no".to_string(), node.pos),
            _ => self.string(node, what)?,
        };
        if let Some((_, v)) = options.iter().find(|(name, _)| *name == text.value) {
            return Some(*v);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let hint = match did_you_mean(&text.value, names.iter().copied()) {
            Some(best) => format!("did you mean `{best}`?"),
            None => format!("use one of: {}", names.join(", ")),
        };
        self.error(node.pos, format!("{what}: unknown value {:?}", text.value)).hint = Some(hint);
        None
    }

    /// `{KEY: value}` or `["KEY=value"]`; used for labels, build args and environment.
    fn string_map(&mut self, node: &Node, what: &str) -> BTreeMap<String, At<String>> {
        let mut out = BTreeMap::new();
        match &node.value {
            Value::Null => {}
            Value::Map(entries) => {
                for (key, value) in entries {
                    let item = format!("{what} `{}`", key.name);
                    let text = match &value.value {
                        // `KEY:` with no value takes KEY from the shell, as in Compose.
                        Value::Null => match self.env.get(&key.name) {
                            Some(v) => At::new(v.to_string(), value.pos),
                            None => continue,
                        },
                        _ => match self.string(value, &item) {
                            Some(t) => t,
                            None => continue,
                        },
                    };
                    out.insert(key.name.clone(), text);
                }
            }
            Value::Seq(items) => {
                for item in items {
                    let Some(text) = self.string(item, what) else { continue };
                    match text.value.split_once('=') {
                        Some((k, v)) => {
                            out.insert(k.to_string(), At::new(v.to_string(), item.pos));
                        }
                        None => {
                            if let Some(v) = self.env.get(&text.value) {
                                out.insert(text.value.clone(), At::new(v.to_string(), item.pos));
                            }
                        }
                    }
                }
            }
            _ => self.wrong_type(node, what, "a mapping or a list of KEY=value"),
        }
        out
    }

    fn plain_map(&mut self, node: &Node, what: &str) -> BTreeMap<String, String> {
        self.string_map(node, what).into_iter().map(|(k, v)| (k, v.value)).collect()
    }

    /// A path written at `pos`, made absolute against the directory of the file it is in.
    fn path(&self, text: &str, pos: Pos) -> PathBuf {
        let expanded = match text.strip_prefix("~/") {
            Some(rest) => std::env::var_os("HOME").map_or_else(|| PathBuf::from(text), |h| PathBuf::from(h).join(rest)),
            None => PathBuf::from(text),
        };
        let dir = self.dirs.get(usize::from(pos.file)).map_or(self.dir, PathBuf::as_path);
        normalize(&dir.join(expanded))
    }

    fn blueprint(&mut self, root: &Node) -> Option<Blueprint> {
        let entries = match &root.value {
            Value::Map(entries) => entries,
            Value::Null => {
                self.error(root.pos, "the blueprint is empty").hint =
                    Some("a blueprint needs at least `name:` and `services:`".into());
                return None;
            }
            other => {
                self.error(root.pos, format!("the blueprint must be a mapping, found {}", other.kind_name())).hint =
                    Some("start with `name: myproject` and `services:`".into());
                return None;
            }
        };
        self.check_keys(entries, TOP_KEYS, "the blueprint");
        let mut bp = Blueprint {
            file: self.file.to_path_buf(),
            dir: self.dir.to_path_buf(),
            name: None,
            stage: None,
            networks: BTreeMap::new(),
            volumes: BTreeMap::new(),
            services: Vec::new(),
            incomplete_services: Vec::new(),
            sources: Vec::new(),
            implicit_name: None,
            secrets: BTreeMap::new(),
            configs: BTreeMap::new(),
            inactive_services: Vec::new(),
            warnings: Vec::new(),
            lesson: Vec::new(),
        };
        let mut saw_services = false;
        for (key, value) in entries {
            match key.name.as_str() {
                "name" => bp.name = self.string(value, "name"),
                "stage" => bp.stage = self.stage(value),
                "networks" => {
                    for (k, v) in self.optional_map(value, "networks").unwrap_or(&[]) {
                        if let Some(net) = self.network(k, v) {
                            bp.networks.insert(k.name.clone(), net);
                        }
                    }
                }
                "volumes" => {
                    for (k, v) in self.optional_map(value, "volumes").unwrap_or(&[]) {
                        let what = format!("volume `{}`", k.name);
                        if let Some(entries) = self.optional_map(v, &what) {
                            self.check_keys(entries, compose::VOLUME_KEYS, &what);
                            let labels = entries.iter().find(|(k, _)| k.name == "labels");
                            let labels = labels.map(|(_, v)| self.plain_map(v, "labels")).unwrap_or_default();
                            let mut vol = VolumeDef { pos: k.pos, labels, external: None };
                            self.volume_settings(&mut vol, &k.name, entries, &format!("volumes.{}", k.name));
                            bp.volumes.insert(k.name.clone(), vol);
                        }
                    }
                }
                "version" => self.obsolete_version(key),
                "secrets" | "configs" => self.file_objects(&mut bp, key, value),
                "models" => self.not_supported(key.pos, "models", "no AI model is pulled or served"),
                "services" => {
                    saw_services = true;
                    let services = self.optional_map(value, "services");
                    if services.is_some_and(<[_]>::is_empty) || matches!(value.value, Value::Null) {
                        self.error(value.pos, "`services:` is empty: a blueprint runs at least one service").hint =
                            Some("add a service with `image:` or `build:`, e.g. `web: { image: nginx:1.27 }`".into());
                    }
                    for (k, v) in services.unwrap_or(&[]) {
                        let before = self.problems.len();
                        match self.service(k, v) {
                            Some(service) => bp.services.push(service),
                            None => bp.incomplete_services.push(k.name.clone()),
                        }
                        // Every problem found inside a service names it (JSON's `service`).
                        for d in &mut self.problems[before..] {
                            d.within_service(&k.name);
                        }
                    }
                }
                "x-lesson" => {
                    let (checks, problems) = super::lesson::decode(self.file, value);
                    self.wrong += problems.len();
                    self.problems.extend(problems);
                    bp.lesson = checks;
                }
                _ => {}
            }
        }
        self.expand_shards(&mut bp.services);
        if !saw_services {
            self.error(root.pos, "the blueprint has no `services:`").hint =
                Some("add `services:` with at least one service that has `image:` or `build:`".into());
        }
        Some(bp)
    }

    fn stage(&mut self, node: &Node) -> Option<Stage> {
        let entries = self.map(node, "stage")?;
        self.check_keys(entries, &["number", "title", "summary"], "stage");
        let mut stage = Stage { number: 0, title: String::new(), summary: String::new() };
        for (key, value) in entries {
            match key.name.as_str() {
                "number" => stage.number = self.integer(value, "stage.number", 0, 1000)? as u32,
                "title" => stage.title = self.string(value, "stage.title")?.value,
                "summary" => stage.summary = self.string(value, "stage.summary")?.value,
                _ => {}
            }
        }
        Some(stage)
    }

    fn network(&mut self, key: &Key, node: &Node) -> Option<NetworkDef> {
        let what = format!("network `{}`", key.name);
        let entries = self.optional_map(node, &what)?;
        self.check_keys(entries, compose::NETWORK_KEYS, &what);
        let mut net = NetworkDef { pos: key.pos, ..Default::default() };
        self.network_settings(&mut net, &key.name, entries, &format!("networks.{}", key.name));
        for (k, v) in entries {
            match k.name.as_str() {
                "internal" => net.internal = self.boolean(v, &format!("{what}: internal"))?,
                "labels" => net.labels = self.plain_map(v, "labels"),
                _ => {}
            }
        }
        Some(net)
    }

    fn service(&mut self, key: &Key, node: &Node) -> Option<Service> {
        let name = key.name.clone();
        let what = format!("service `{name}`");
        let entries = self.map(node, &what)?;
        let wrong_before = self.wrong;
        self.service_keys(entries, &what);
        let mut s = Service {
            name: name.clone(),
            pos: key.pos,
            kind: None,
            image: None,
            build: None,
            command: None,
            entrypoint: None,
            environment: BTreeMap::new(),
            ports: Vec::new(),
            networks: Vec::new(),
            volumes: Vec::new(),
            depends_on: Vec::new(),
            healthcheck: None,
            replicas: At::new(1, key.pos),
            autoscale: None,
            restart: RestartPolicy::No,
            stop_grace_period: None,
            labels: BTreeMap::new(),
            zones: Vec::new(),
            rollout: RolloutPolicy::default(),
            load_balancer: None,
            postgres: None,
            compose: ComposeSettings::default(),
        };
        let field = |k: &str| format!("services.{name}.{k}");
        for (k, v) in entries {
            let f = field(&k.name);
            match k.name.as_str() {
                "kind" => {
                    s.kind = self.choice(v, &f, &Kind::ALL).map(|kind| At::new(kind, v.pos));
                }
                "image" => s.image = self.string(v, &f),
                "build" => s.build = self.build(v, &f).map(|b| At::new(b, v.pos)),
                "command" => s.command = self.command(v, &f),
                "entrypoint" => s.entrypoint = self.command(v, &f),
                "environment" => s.environment = self.string_map(v, &f),
                "ports" => s.ports = self.ports(v, &f),
                "networks" => s.networks = self.attachments(v, &f),
                "volumes" => {
                    s.volumes = self.mounts(v, &f);
                    s.compose.options.tmpfs.extend(self.tmpfs_mounts.drain(..));
                }
                "depends_on" => s.depends_on = self.dependencies(v, &f),
                "healthcheck" => {
                    s.healthcheck = self.healthcheck(v, &f);
                    s.compose.start_interval = self.start_interval.take();
                }
                "replicas" => {
                    let (count, policy) = self.replicas(v, &f);
                    if let Some(count) = count {
                        s.replicas = count;
                    }
                    s.autoscale = policy;
                }
                "restart" => s.restart = self.restart(v, &f),
                "stop_grace_period" => s.stop_grace_period = self.duration(v, &f),
                "labels" => s.labels = self.plain_map(v, &f),
                "zones" => s.zones = self.zones(v, &f),
                "rollout" => self.rollout(v, &f, ROLLOUT_KEYS, &mut s.rollout),
                _ => self.compose_key(&mut s, k, v, &f),
            }
        }
        self.env_files(&mut s, entries);
        self.deploy(&mut s, entries);
        self.kind_settings(&mut s, entries);
        (self.wrong == wrong_before).then_some(s)
    }

    /// Reads the keys that belong to a `kind:` and rejects them on other services.
    fn kind_settings(&mut self, s: &mut Service, entries: &Entries) {
        let kind = s.kind.as_ref().map(|k| k.value);
        for (k, _) in entries {
            let owner = if LOAD_BALANCER_KEYS.contains(&k.name.as_str()) {
                Kind::LoadBalancer
            } else if POSTGRES_KEYS.contains(&k.name.as_str()) {
                Kind::Postgres
            } else {
                continue;
            };
            // `user` is also Compose's "run as": only a postgres service reads it as the
            // database user.
            if k.name == "user" && kind != Some(Kind::Postgres) {
                continue;
            }
            if kind != Some(owner) {
                self.error(k.pos, format!("`{}` only applies to `kind: {}`", k.name, owner.as_str())).hint =
                    Some(format!("add `kind: {}` to service `{}` or remove `{}`", owner.as_str(), s.name, k.name));
            }
        }
        let get = |name: &str| entries.iter().find(|(k, _)| k.name == name).map(|(_, v)| v);
        match kind {
            Some(Kind::LoadBalancer) => {
                let Some(node) = get("backends") else {
                    self.error(s.pos, format!("service `{}` is a load balancer without `backends:`", s.name)).hint =
                        Some("add `backends: { service: web, port: 8000 }`".into());
                    return;
                };
                let what = format!("services.{}.backends", s.name);
                let Some(be) = self.map(node, &what) else { return };
                self.check_keys(be, &["service", "port"], &what);
                let service = be.iter().find(|(k, _)| k.name == "service");
                let port = be.iter().find(|(k, _)| k.name == "port");
                let service = match service {
                    Some((_, v)) => self.string(v, &format!("{what}.service")),
                    None => {
                        self.error(node.pos, format!("{what}: missing `service`"));
                        None
                    }
                };
                let port = match port {
                    Some((_, v)) => self.integer(v, &format!("{what}.port"), 1, 65535),
                    None => {
                        self.error(node.pos, format!("{what}: missing `port`"));
                        None
                    }
                };
                if let (Some(service), Some(port)) = (service, port) {
                    s.load_balancer = Some(LoadBalancerDef { backend_service: service, backend_port: port as u16 });
                }
            }
            Some(Kind::Postgres) => {
                let what = |k: &str| format!("services.{}.{k}", s.name);
                let mut pg = PostgresDef {
                    read_replicas: At::new(0, s.pos),
                    synchronous: false,
                    failover: FailoverMode::Manual,
                    database: "app".into(),
                    user: "app".into(),
                    password: DEFAULT_POSTGRES_PASSWORD.into(),
                    password_is_default: true,
                    shard: get("shards").and_then(|v| self.shards(v, &s.name)),
                };
                if let Some(v) = get("read_replicas")
                    && let Some(n) = self.integer(v, &what("read_replicas"), 0, 16)
                {
                    pg.read_replicas = At::new(n as u32, v.pos);
                }
                if let Some(v) = get("synchronous") {
                    pg.synchronous = self.boolean(v, &what("synchronous")).unwrap_or(false);
                }
                if let Some(v) = get("failover") {
                    let modes = [("manual", FailoverMode::Manual), ("auto", FailoverMode::Auto)];
                    pg.failover = self.choice(v, &what("failover"), &modes).unwrap_or_default();
                }
                for (key, slot) in
                    [("database", &mut pg.database), ("user", &mut pg.user), ("password", &mut pg.password)]
                {
                    if let Some(v) = get(key)
                        && let Some(text) = self.string(v, &what(key))
                    {
                        *slot = text.value;
                    }
                }
                pg.password_is_default = get("password").is_none();
                s.postgres = Some(pg);
            }
            None => {}
        }
    }

    /// `zones:`: data-centre names. Each becomes part of a network alias (`db-dc-b`), a label
    /// value and `scale chaos dc:NAME`, hence the DNS-label spelling; each may appear once.
    fn zones(&mut self, node: &Node, what: &str) -> Vec<At<String>> {
        let Value::Seq(items) = &node.value else {
            self.wrong_type(node, what, "a list of data-centre names");
            return Vec::new();
        };
        let mut out: Vec<At<String>> = Vec::with_capacity(items.len());
        for item in items {
            let Some(zone) = self.string(item, what) else { continue };
            let valid = zone.value.len() <= 32
                && zone.value.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && zone.value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid {
                self.error(zone.pos, format!("{what}: `{}` is not a data-centre name", zone.value)).hint =
                    Some("use lower-case letters, digits and `-` (at most 32), e.g. `dc-a`".into());
            } else if out.iter().any(|z| z.value == zone.value) {
                self.error(zone.pos, format!("{what}: `{}` is listed twice", zone.value)).hint =
                    Some("list each data centre once: replicas are spread over the list in turn".into());
            } else {
                out.push(zone);
            }
        }
        if out.is_empty() && items.is_empty() {
            self.error(node.pos, format!("{what}: an empty list")).hint =
                Some("name at least one data centre, or remove `zones:`".into());
        }
        out
    }

    /// `shards: N` on postgres service `service`: it is shard 0 of N.
    fn shards(&mut self, node: &Node, service: &str) -> Option<Shard> {
        let n = self.integer(node, &format!("services.{service}.shards"), 1, super::shards::MAX_SHARDS as i64)?;
        Some(Shard { directory: service.to_string(), index: 0, count: n as u32 })
    }

    /// Adds the copies `shards: N` makes (see `shards.rs`), reporting what stands in the way.
    fn expand_shards(&mut self, services: &mut Vec<Service>) {
        for (pos, message) in super::shards::expand(services) {
            self.error(pos, message);
        }
    }

    /// A rollout policy: the blueprint's `rollout:` or Compose's `deploy.update_config` (one
    /// function for both, so the two spellings cannot drift apart).
    pub(super) fn rollout(&mut self, node: &Node, what: &str, allowed: &[&str], policy: &mut RolloutPolicy) {
        let Some(entries) = self.optional_map(node, what) else { return };
        self.check_keys(entries, allowed, what);
        for (k, v) in entries {
            let f = format!("{what}.{}", k.name);
            match k.name.as_str() {
                "parallelism" => {
                    if let Some(n) = self.integer(v, &f, 1, 1_000) {
                        policy.parallelism = n as u32;
                    }
                }
                "order" => policy.order = self.choice(v, &f, &RolloutOrder::ALL).or(policy.order),
                "monitor" => {
                    policy.monitor_ms = self.duration(v, &f).map_or(policy.monitor_ms, |d| d.as_millis() as u64)
                }
                "delay" => policy.delay_ms = self.duration(v, &f).map_or(policy.delay_ms, |d| d.as_millis() as u64),
                "on_failure" | "failure_action" => {
                    policy.on_failure = self.choice(v, &f, &OnFailure::ALL).unwrap_or(policy.on_failure);
                }
                _ => {}
            }
        }
    }

    fn build(&mut self, node: &Node, what: &str) -> Option<Build> {
        if let Some(text) = node.value.scalar_text() {
            let context = self.interpolate(&text, node.pos, what)?;
            self.local_context(&context, node.pos, what)?;
            return Some(Build {
                context: self.path(&context, node.pos),
                dockerfile: "Dockerfile".into(),
                ..Default::default()
            });
        }
        let entries = self.map(node, what)?;
        self.check_keys(entries, compose::BUILD_KEYS, what);
        self.build_extras(entries, what);
        let mut build =
            Build { context: self.path(".", node.pos), dockerfile: "Dockerfile".into(), ..Default::default() };
        for (k, v) in entries {
            match k.name.as_str() {
                "context" => {
                    let context = self.string(v, &format!("{what}.context"))?;
                    self.local_context(&context.value, context.pos, what)?;
                    build.context = self.path(&context.value, context.pos);
                }
                "dockerfile" => build.dockerfile = self.string(v, &format!("{what}.dockerfile"))?.value,
                "args" => build.args = self.plain_map(v, &format!("{what}.args")),
                "target" => build.target = Some(self.string(v, &format!("{what}.target"))?.value),
                _ => {}
            }
        }
        Some(build)
    }

    fn ports(&mut self, node: &Node, what: &str) -> Vec<At<PortMapping>> {
        let Value::Seq(items) = &node.value else {
            self.wrong_type(node, what, "a list of ports like \"8080:80\"");
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            let parsed = match &item.value {
                Value::Map(entries) => self.long_port(entries, item.pos, what),
                _ => {
                    let Some(text) = self.string(item, what) else { continue };
                    match parse_ports(&text.value) {
                        Ok(mut ports) => {
                            let last = ports.pop();
                            out.extend(ports.into_iter().map(|p| At::new(p, item.pos)));
                            last
                        }
                        Err(why) => {
                            self.error(item.pos, format!("{what}: {why}")).hint = Some(
                                "write \"HOST:CONTAINER\" like \"8080:80\", or \"80\" alone for a random host port"
                                    .into(),
                            );
                            None
                        }
                    }
                }
            };
            if let Some(p) = parsed {
                out.push(At::new(p, item.pos));
            }
        }
        out
    }

    fn long_port(&mut self, entries: &Entries, pos: Pos, what: &str) -> Option<PortMapping> {
        // `mode` (host or ingress) changes nothing on one engine; `name` and `app_protocol`
        // are labels for tools.
        self.check_keys(entries, &["target", "published", "protocol", "host_ip", "mode", "name", "app_protocol"], what);
        let mut port = PortMapping { host_ip: None, host_port: None, container_port: 0, protocol: Protocol::Tcp };
        for (k, v) in entries {
            let f = format!("{what}.{}", k.name);
            match k.name.as_str() {
                "target" => port.container_port = self.integer(v, &f, 1, 65535)? as u16,
                "published" => port.host_port = Some(self.integer(v, &f, 1, 65535)? as u16),
                "protocol" => port.protocol = self.choice(v, &f, &[("tcp", Protocol::Tcp), ("udp", Protocol::Udp)])?,
                "host_ip" => port.host_ip = Some(self.string(v, &f)?.value),
                _ => {}
            }
        }
        if port.container_port == 0 {
            self.error(pos, format!("{what}: a port needs `target` (the container port)"));
            return None;
        }
        Some(port)
    }

    fn attachments(&mut self, node: &Node, what: &str) -> Vec<NetworkAttachment> {
        let mut out = Vec::new();
        match &node.value {
            Value::Seq(items) => {
                for item in items {
                    if let Some(name) = self.string(item, what) {
                        out.push(NetworkAttachment {
                            name,
                            aliases: Vec::new(),
                            ipv4_address: None,
                            ipv6_address: None,
                        });
                    }
                }
            }
            Value::Map(entries) => {
                for (k, v) in entries {
                    let f = format!("{what}.{}", k.name);
                    let Some(settings) = self.optional_map(v, &f) else { continue };
                    self.check_keys(settings, compose::ATTACHMENT_KEYS, &f);
                    self.attachment_extras(settings, &f);
                    let aliases = settings
                        .iter()
                        .find(|(k, _)| k.name == "aliases")
                        .and_then(|(_, v)| self.strings(v, &format!("{f}.aliases")))
                        .unwrap_or_default();
                    let mut address = |name: &str| {
                        let (_, node) = settings.iter().find(|(k, _)| k.name == name)?;
                        self.string(node, &format!("{f}.{name}")).map(|t| t.value)
                    };
                    let (ipv4_address, ipv6_address) = (address("ipv4_address"), address("ipv6_address"));
                    let name = At::new(k.name.clone(), k.pos);
                    out.push(NetworkAttachment { name, aliases, ipv4_address, ipv6_address });
                }
            }
            _ => self.wrong_type(node, what, "a list of network names or a mapping"),
        }
        out
    }

    fn mounts(&mut self, node: &Node, what: &str) -> Vec<At<Mount>> {
        let Value::Seq(items) = &node.value else {
            self.wrong_type(node, what, "a list like [\"data:/var/lib/data\"]");
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            let mount = match &item.value {
                Value::Map(entries) => self.long_mount(entries, item.pos, what),
                _ => self.string(item, what).and_then(|text| match self.short_mount(&text.value, item.pos) {
                    Ok(m) => Some(m),
                    Err(why) => {
                        self.error(item.pos, format!("{what}: {why}")).hint =
                            Some("write \"VOLUME:/path\", \"./dir:/path:ro\" or \"/path\"".into());
                        None
                    }
                }),
            };
            if let Some(m) = mount {
                out.push(At::new(m, item.pos));
            }
        }
        out
    }

    fn short_mount(&mut self, text: &str, pos: Pos) -> Result<Mount, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let (source, target, mode) = match parts.as_slice() {
            [target] => (None, *target, None),
            [source, target] => (Some(*source), *target, None),
            [source, target, mode] => (Some(*source), *target, Some(*mode)),
            _ => return Err(format!("{text:?} has too many `:`")),
        };
        let read_only = match mode {
            None => false,
            Some(mode) => self.mount_mode(mode, pos)?,
        };
        if !target.starts_with('/') {
            return Err(format!("the container path {target:?} must be absolute"));
        }
        let target = clean_target(target);
        let source = match source {
            None => MountSource::Anonymous,
            Some("") => return Err(format!("{text:?} has an empty source")),
            Some(s) if s.starts_with('/') || s.starts_with('.') || s.starts_with('~') => {
                MountSource::Bind(self.path(s, pos))
            }
            Some(s) => MountSource::Volume(s.to_string()),
        };
        Ok(Mount { source, target, read_only, propagation: None, nocopy: false })
    }

    fn long_mount(&mut self, entries: &Entries, pos: Pos, what: &str) -> Option<Mount> {
        self.check_keys(entries, compose::MOUNT_KEYS, what);
        self.mount_extras(entries, what);
        let get = |name: &str| entries.iter().find(|(k, _)| k.name == name).map(|(_, v)| v);
        let kinds =
            [("volume", "volume"), ("bind", "bind"), ("tmpfs", "tmpfs"), ("npipe", "npipe"), ("image", "image")];
        let kind = match get("type") {
            Some(v) => self.choice(v, &format!("{what}.type"), &kinds)?,
            None => "volume",
        };
        if kind == "tmpfs" {
            self.tmpfs_mount(entries, pos, what);
            return None;
        }
        if matches!(kind, "npipe" | "image") {
            let type_pos = get("type").map_or(pos, |v| v.pos);
            self.not_supported(type_pos, &format!("{what}.type: {kind}"), "nothing is mounted there");
            return None;
        }
        let Some(target) = get("target") else {
            self.error(pos, format!("{what}: a mount needs `target`"));
            return None;
        };
        let target = self.string(target, &format!("{what}.target"))?;
        if !target.value.starts_with('/') {
            self.error(target.pos, format!("{what}.target: the container path {:?} must be absolute", target.value));
            return None;
        }
        let source = match get("source") {
            Some(v) => Some(self.string(v, &format!("{what}.source"))?.value),
            None => None,
        };
        let read_only = match get("read_only") {
            Some(v) => self.boolean(v, &format!("{what}.read_only"))?,
            None => false,
        };
        let source = match (kind, source) {
            ("bind", Some(s)) => MountSource::Bind(self.path(&s, pos)),
            ("bind", None) => {
                self.error(pos, format!("{what}: a bind mount needs `source`"));
                return None;
            }
            (_, Some(s)) => MountSource::Volume(s),
            (_, None) => MountSource::Anonymous,
        };
        let propagation =
            get("bind").and_then(|b| b.get("propagation")).and_then(|p| self.string(p, what)).map(|p| p.value);
        let nocopy = get("volume").and_then(|v| v.get("nocopy")).and_then(|n| self.boolean(n, what)).unwrap_or(false);
        Some(Mount { source, target: clean_target(&target.value), read_only, propagation, nocopy })
    }

    fn dependencies(&mut self, node: &Node, what: &str) -> Vec<Dependency> {
        let mut out = Vec::new();
        match &node.value {
            Value::Seq(items) => {
                for item in items {
                    if let Some(service) = self.string(item, what) {
                        out.push(Dependency { service, condition: Condition::ServiceStarted });
                    }
                }
            }
            Value::Map(entries) => {
                for (k, v) in entries {
                    let f = format!("{what}.{}", k.name);
                    let Some(settings) = self.optional_map(v, &f) else { continue };
                    self.check_keys(settings, &["condition", "restart", "required"], &f);
                    self.dependency_extras(settings, &k.name, &f);
                    let mut condition = Condition::ServiceStarted;
                    if let Some((_, c)) = settings.iter().find(|(k, _)| k.name == "condition") {
                        // Accept the short words DESIGN.md uses (healthy, started, completed_successfully).
                        let mut choices: Vec<(&str, Condition)> = Condition::ALL.to_vec();
                        choices.extend([
                            ("started", Condition::ServiceStarted),
                            ("healthy", Condition::ServiceHealthy),
                            ("completed_successfully", Condition::ServiceCompletedSuccessfully),
                        ]);
                        match self.choice(c, &format!("{f}.condition"), &choices) {
                            Some(cond) => condition = cond,
                            None => continue,
                        }
                    }
                    out.push(Dependency { service: At::new(k.name.clone(), k.pos), condition });
                }
            }
            _ => self.wrong_type(node, what, "a list of services or a mapping"),
        }
        out
    }

    fn healthcheck(&mut self, node: &Node, what: &str) -> Option<Healthcheck> {
        let entries = self.map(node, what)?;
        self.check_keys(
            entries,
            &["test", "interval", "timeout", "retries", "start_period", "disable", "start_interval"],
            what,
        );
        // Sent to engines of API 1.44 and later; `plan` and `apply` warn on older ones.
        if let Some((_, v)) = entries.iter().find(|(k, _)| k.name == "start_interval") {
            self.start_interval = self.duration(v, &format!("{what}.start_interval"));
        }
        // Docker's own defaults, so a Compose user gets what they expect.
        let mut hc = Healthcheck {
            pos: node.pos,
            test: Vec::new(),
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
            retries: 3,
            start_period: Duration::ZERO,
        };
        let mut disabled = false;
        for (k, v) in entries {
            let f = format!("{what}.{}", k.name);
            match k.name.as_str() {
                "test" => {
                    hc.test = match &v.value {
                        Value::Seq(_) => self.strings(v, &f)?,
                        _ => vec!["CMD-SHELL".to_string(), self.string(v, &f)?.value],
                    }
                }
                "interval" => hc.interval = self.duration(v, &f)?,
                "timeout" => hc.timeout = self.duration(v, &f)?,
                "start_period" => hc.start_period = self.duration(v, &f)?,
                "retries" => hc.retries = self.integer(v, &f, 1, 1000)? as u32,
                "disable" => disabled = self.boolean(v, &f)?,
                _ => {}
            }
        }
        if disabled {
            hc.test = vec!["NONE".into()];
        }
        if hc.test.is_empty() && !entries.iter().any(|(k, _)| k.name == "test") {
            // Compose keeps the image's own healthcheck then (`disable: false` alone says so).
            if entries.iter().any(|(k, _)| k.name != "disable") {
                self.not_supported(
                    node.pos,
                    &format!("{what} without `test`"),
                    "the image's own healthcheck runs, with its own timings",
                );
            }
            return None;
        }
        match hc.test.first().map(String::as_str) {
            Some("CMD" | "CMD-SHELL") if hc.test.len() > 1 => Some(hc),
            Some("NONE") => Some(hc),
            _ => {
                self.error(
                    node.pos,
                    format!("{what}: `test` must be [\"CMD\", ...], [\"CMD-SHELL\", \"...\"] or a shell string"),
                )
                .hint = Some("e.g. test: [\"CMD\", \"curl\", \"-f\", \"http://localhost:8000/healthz\"]".into());
                None
            }
        }
    }
}

/// The most ports one range (`"8000-8100:8000-8100"`) may expand to.
const MAX_PORT_RANGE: u32 = 1024;

/// Parses the short port syntax, ranges included: `"8000-8002:8000-8002"` is three
/// mappings, `"9000-9001"` two with random host ports, as in Compose.
pub fn parse_ports(text: &str) -> Result<Vec<PortMapping>, String> {
    if !text.contains('-') {
        return parse_port(text).map(|p| vec![p]);
    }
    let (spec, proto) = match text.rsplit_once('/') {
        Some((spec, proto)) => (spec, format!("/{proto}")),
        None => (text, String::new()),
    };
    let (front, container) = spec.rsplit_once(':').map_or(("", spec), |(f, c)| (f, c));
    let (ip, host) = match front.rsplit_once(':') {
        Some((ip, host)) => (format!("{ip}:"), host),
        None => (String::new(), front),
    };
    let range = |r: &str| -> Result<(u32, u32), String> {
        let (a, b) = r.split_once('-').unwrap_or((r, r));
        let parse = |n: &str| n.trim().parse::<u32>().map_err(|_| format!("{r:?} is not a port or a port range"));
        let (a, b) = (parse(a)?, parse(b)?);
        if b < a || b - a >= MAX_PORT_RANGE {
            return Err(format!("port range {r:?} is backwards or longer than {MAX_PORT_RANGE} ports"));
        }
        Ok((a, b))
    };
    let (c0, c1) = range(container)?;
    let host_range = if host.is_empty() { None } else { Some(range(host)?) };
    if let Some((h0, h1)) = host_range
        && h1 - h0 != c1 - c0
    {
        return Err(format!("{text:?} maps {} host ports to {} container ports", h1 - h0 + 1, c1 - c0 + 1));
    }
    (0..=c1 - c0)
        .map(|i| {
            let host = host_range.map(|(h0, _)| (h0 + i).to_string()).unwrap_or_default();
            let one = if host.is_empty() && ip.is_empty() {
                format!("{}{proto}", c0 + i)
            } else {
                format!("{ip}{host}:{}{proto}", c0 + i)
            };
            parse_port(&one)
        })
        .collect()
}

/// Parses the short port syntax: `"80"`, `"8080:80"`, `"127.0.0.1:8080:80"`, with `/udp`.
pub fn parse_port(text: &str) -> Result<PortMapping, String> {
    let (spec, protocol) = match text.rsplit_once('/') {
        Some((spec, "tcp")) => (spec, Protocol::Tcp),
        Some((spec, "udp")) => (spec, Protocol::Udp),
        Some((_, other)) => return Err(format!("unknown protocol {other:?} in {text:?} (use tcp or udp)")),
        None => (text, Protocol::Tcp),
    };
    let number = |s: &str| -> Result<u16, String> {
        if s.contains('-') {
            return Err(format!("port ranges like {s:?} are not supported; list each port"));
        }
        match s.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
            Ok(n) => Err(format!("port {n} is out of range (1 to 65535)")),
            Err(_) => Err(format!("{s:?} is not a port number")),
        }
    };
    // An IPv6 host address is written in brackets: "[::1]:8080:80".
    let (bracketed_ip, spec) = match spec.strip_prefix('[').and_then(|r| r.split_once("]:")) {
        Some((ip, rest)) => (Some(ip), rest),
        None => (None, spec),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (host_ip, host_port, container) = match (bracketed_ip, parts.as_slice()) {
        (None, [c]) => (None, None, *c),
        (None, [h, c]) => (None, Some(*h), *c),
        (None, [ip, h, c]) => (Some(*ip), Some(*h), *c),
        (Some(ip), [h, c]) => (Some(ip), Some(*h), *c),
        _ => return Err(format!("{text:?} is not a port mapping")),
    };
    Ok(PortMapping {
        host_ip: host_ip.filter(|ip| !ip.is_empty()).map(str::to_string),
        host_port: match host_port {
            None | Some("") => None,
            Some(h) => Some(number(h)?),
        },
        container_port: number(container)?,
        protocol,
    })
}

/// A container path without a trailing `/` (as Docker and Compose clean it).
fn clean_target(target: &str) -> String {
    match target.trim_end_matches('/') {
        "" => "/".to_string(),
        t => t.to_string(),
    }
}

/// Removes `.` and `..` components without touching the filesystem.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `[-+]?[0-9]+`: a whole number as written, however large.
fn is_integer_literal(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::model::{Env, load_bytes_lenient};

    fn decoded(yaml: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
        let (bp, problems) = load_bytes_lenient(Path::new("t.yaml"), yaml.as_bytes(), &Env::default());
        let bp = bp.expect("a partial blueprint");
        let kept = bp.services.iter().map(|s| s.name.clone()).collect();
        (kept, bp.incomplete_services, problems.0.into_iter().map(|d| d.message).collect())
    }

    #[test]
    fn zones_are_data_centre_names_each_listed_once() {
        let (kept, _, problems) = decoded("services:\n  web:\n    image: nginx\n    zones: [dc-a, dc-b]\n");
        assert_eq!((kept, problems), (vec!["web".to_string()], vec![]));
        for (zones, wrong) in
            [("[DC_A]", "is not a data-centre name"), ("[dc-a, dc-a]", "listed twice"), ("[]", "empty list")]
        {
            let (_, incomplete, problems) =
                decoded(&format!("services:\n  web:\n    image: nginx\n    zones: {zones}\n"));
            assert_eq!(incomplete, ["web"], "{zones}");
            assert!(problems.len() == 1 && problems[0].contains(wrong), "{zones}: {problems:?}");
        }
    }

    #[test]
    fn a_service_with_only_unknown_keys_is_kept_whole() {
        let (kept, incomplete, problems) = decoded(
            "services:\n  web:\n    image: nginx\n    imagee: x\n    healthcheck:\n      test: [CMD, true]\n      intervall: 1s\n",
        );
        assert_eq!(kept, ["web"]);
        assert!(incomplete.is_empty());
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn a_service_with_a_wrong_value_is_incomplete_whatever_the_wording() {
        let (kept, incomplete, problems) =
            decoded("services:\n  web:\n    image: nginx\n    imagee: x\n    replicas: many\n");
        assert!(kept.is_empty(), "{kept:?}");
        assert_eq!(incomplete, ["web"]);
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    fn rollout_of(yaml: &str) -> (crate::model::RolloutPolicy, Vec<String>) {
        let (bp, problems) = load_bytes_lenient(Path::new("t.yaml"), yaml.as_bytes(), &Env::default());
        let policy = bp.and_then(|bp| bp.services.first().map(|s| s.rollout)).unwrap_or_default();
        (policy, problems.0.into_iter().map(|d| d.message).collect())
    }

    #[test]
    fn rollout_and_compose_update_config_mean_the_same() {
        use crate::model::{OnFailure, RolloutOrder, RolloutPolicy};
        let ours = "services:\n  web:\n    image: nginx\n    rollout: { parallelism: 2, order: start-first, monitor: 5s, on_failure: pause }\n";
        let compose = "services:\n  web:\n    image: nginx\n    deploy:\n      resources: {}\n      update_config: { parallelism: 2, order: start-first, monitor: 5s, failure_action: pause }\n";
        let want = RolloutPolicy {
            parallelism: 2,
            order: Some(RolloutOrder::StartFirst),
            monitor_ms: 5000,
            delay_ms: 0,
            on_failure: OnFailure::Pause,
        };
        assert_eq!(rollout_of(ours), (want, vec![]));
        assert_eq!(rollout_of(compose), (want, vec![]));
        let (default, _) = rollout_of("services:\n  web:\n    image: nginx\n");
        assert_eq!(default.on_failure, OnFailure::Rollback);
        let (_, problems) =
            rollout_of("services:\n  web:\n    image: nginx\n    rollout: { parallelism: 0, on_failure: rollbak }\n");
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
