//! The Compose Specification's keys beyond scale's own schema. Each key of the spec is either
//! acted on (read into the model and honoured), or read and reported as "not supported yet"
//! with what happens instead: a warning, never an unknown-key error with a "did you mean"
//! pointing at a different real key, and never dropped silently.

use super::super::envfile;
use super::{Decoder, Entries};
use crate::diag::{Diagnostic, Pos, did_you_mean};
use crate::model::node::{Key, Node, Value};
use crate::model::types::*;

/// Compose service keys read into [`ComposeSettings`] or into scale's own fields.
const HANDLED: &[&str] = &[
    "container_name",
    "expose",
    "profiles",
    "user",
    "hostname",
    "secrets",
    "configs",
    "env_file",
    "deploy",
    "scale",
    "pull_policy",
    "extends",
];

/// Compose service keys scale reads but does not act on yet, with what happens instead.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("annotations", "no annotations are set"),
    ("attach", "logs are not followed anyway"),
    ("blkio_config", "no block IO limits are set"),
    ("cgroup", "the engine's default cgroup namespace is used"),
    ("cpu_count", "no CPU limit is set"),
    ("cpu_percent", "no CPU limit is set"),
    ("cpu_period", "no CPU limit is set"),
    ("cpu_quota", "no CPU limit is set"),
    ("cpu_rt_period", "no CPU limit is set"),
    ("cpu_rt_runtime", "no CPU limit is set"),
    ("credential_spec", "no credential spec is used"),
    ("develop", "Compose Watch is a development feature; nothing is synced"),
    ("device_cgroup_rules", "no device rules are added"),
    ("external_links", "no links to outside containers are made"),
    ("gpus", "no GPU is passed in"),
    ("isolation", "the engine's default isolation is used"),
    ("label_file", "the labels in the file are not added"),
    ("models", "no AI model is pulled or served"),
    ("links", "no link aliases are added (services still find each other by name on a shared network)"),
    ("mem_swappiness", "the engine's default swappiness is used"),
    ("oom_kill_disable", "the OOM killer stays enabled"),
    ("post_start", "no hook runs after start"),
    ("pre_stop", "no hook runs before stop"),
    ("provider", "no provider is called"),
    ("use_api_socket", "the engine's socket is not mounted"),
    ("uts", "the container gets its own UTS namespace"),
    ("volumes_from", "no volumes are shared from other containers"),
];

/// Keys of a top-level network.
pub(super) const NETWORK_KEYS: &[&str] = &[
    "internal",
    "labels",
    "driver",
    "driver_opts",
    "ipam",
    "external",
    "name",
    "attachable",
    "enable_ipv6",
    "enable_ipv4",
];
/// Keys of a top-level volume.
pub(super) const VOLUME_KEYS: &[&str] = &["labels", "driver", "driver_opts", "external", "name"];
/// Keys of `build:`.
pub(super) const BUILD_KEYS: &[&str] = &[
    "context",
    "dockerfile",
    "args",
    "target",
    "dockerfile_inline",
    "additional_contexts",
    "cache_from",
    "cache_to",
    "extra_hosts",
    "isolation",
    "labels",
    "network",
    "no_cache",
    "platforms",
    "privileged",
    "pull",
    "secrets",
    "shm_size",
    "ssh",
    "tags",
    "ulimits",
    "entitlements",
];
/// Keys of one network in a service's `networks:` mapping.
pub(super) const ATTACHMENT_KEYS: &[&str] = &[
    "aliases",
    "ipv4_address",
    "ipv6_address",
    "link_local_ips",
    "mac_address",
    "priority",
    "gw_priority",
    "driver_opts",
    "interface_name",
];
/// Keys of a long-form mount.
pub(super) const MOUNT_KEYS: &[&str] =
    &["type", "source", "target", "read_only", "bind", "volume", "tmpfs", "consistency"];

impl Decoder<'_> {
    /// Warns that `key` is read but not acted on, and says what happens instead.
    pub(super) fn not_supported(&mut self, pos: Pos, key: &str, effect: &str) {
        self.warnings.push(
            Diagnostic::at(self.file, pos, format!("not supported yet: `{key}` ({effect})"))
                .hint("scale reads this Compose key but does not act on it yet (README: \"Coming from Compose\")"),
        );
    }

    pub(super) fn obsolete_version(&mut self, key: &Key) {
        self.warnings.push(
            Diagnostic::at(self.file, key.pos, "`version` is obsolete and ignored, as Compose ignores it")
                .hint("remove the `version:` line"),
        );
    }

    /// Unknown service keys (typos) get a "did you mean"; Compose keys scale does not act on
    /// yet get a warning instead.
    pub(super) fn service_keys(&mut self, entries: &Entries, what: &str) {
        let allowed: Vec<&str> = super::SERVICE_KEYS
            .iter()
            .chain(HANDLED)
            .chain(super::options::OPTION_KEYS)
            .copied()
            .chain(UNSUPPORTED.iter().map(|(k, _)| *k))
            .collect();
        self.check_keys(entries, &allowed, what);
    }

    /// A Compose key of a service that is not one of scale's own.
    pub(super) fn compose_key(&mut self, s: &mut Service, k: &Key, v: &Node, f: &str) {
        match k.name.as_str() {
            "container_name" => s.compose.container_name = self.string(v, f),
            "expose" => s.compose.expose = self.scalars(v, f),
            "profiles" => s.compose.profiles = self.strings(v, f).unwrap_or_default(),
            "user" if s.kind.as_ref().map(|k| k.value) != Some(Kind::Postgres) => {
                self.container_option(&mut s.compose.options, k, v, f)
            }
            "hostname" => s.compose.hostname = self.string(v, f).map(|t| t.value),
            "secrets" => s.compose.secrets = self.grants(v, f, "/run/secrets/"),
            "configs" => s.compose.configs = self.grants(v, f, "/"),
            "scale" => {
                if let Some(n) = self.integer(v, f, 0, 10_000) {
                    s.replicas = At::new(n as u32, v.pos);
                }
            }
            "pull_policy" => {
                let text = self.string(v, f).map(|t| t.value).unwrap_or_default();
                if !matches!(text.as_str(), "missing" | "if_not_present" | "build") {
                    self.not_supported(k.pos, &format!("{f}: {text}"), "images are pulled only when missing");
                }
            }
            key if super::options::OPTION_KEYS.contains(&key) => self.container_option(&mut s.compose.options, k, v, f),
            "env_file" | "deploy" | "extends" => {} // read after the loop, or by the loader
            other => {
                if let Some((_, effect)) = UNSUPPORTED.iter().find(|(key, _)| *key == other) {
                    self.not_supported(k.pos, f, effect);
                }
            }
        }
    }

    /// `restart:`, with Compose's `on-failure:N` (the retry count is not supported yet).
    pub(super) fn restart(&mut self, node: &Node, what: &str) -> RestartPolicy {
        if let Value::Str(text) = &node.value
            && let Some(count) = text.strip_prefix("on-failure:")
        {
            self.not_supported(node.pos, &format!("{what}: on-failure:{count}"), "the engine retries without a limit");
            return RestartPolicy::OnFailure;
        }
        self.choice(node, what, &RestartPolicy::ALL).unwrap_or_default()
    }

    /// A build context that is a Git or HTTP URL cannot be built yet: an error that says so,
    /// not "the directory does not exist".
    pub(super) fn local_context(&mut self, context: &str, pos: Pos, what: &str) -> Option<()> {
        if context.contains("://") || context.starts_with("git@") {
            self.error(pos, format!("{what}: not supported yet: a remote build context ({context})")).hint =
                Some("clone it and name the local directory, or use the image it builds".into());
            return None;
        }
        Some(())
    }

    /// Scalars of a list as text (`expose: [80, "443"]`).
    fn scalars(&mut self, node: &Node, what: &str) -> Vec<String> {
        let Value::Seq(items) = &node.value else {
            self.wrong_type(node, what, "a list");
            return Vec::new();
        };
        items.iter().filter_map(|i| self.string(i, what).map(|t| t.value)).collect()
    }

    /// A service's `secrets:` or `configs:`: names, or `{source, target, uid, gid, mode}`.
    fn grants(&mut self, node: &Node, what: &str, base: &str) -> Vec<Grant> {
        let Value::Seq(items) = &node.value else {
            self.wrong_type(node, what, "a list");
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            let (source, target) = match &item.value {
                Value::Map(entries) => {
                    self.check_keys(entries, &["source", "target", "uid", "gid", "mode"], what);
                    for (k, _) in entries.iter().filter(|(k, _)| matches!(k.name.as_str(), "uid" | "gid" | "mode")) {
                        self.not_supported(k.pos, &format!("{what}.{}", k.name), "the file keeps its owner and mode");
                    }
                    let Some(source) = item.get("source").and_then(|v| self.string(v, what)) else {
                        self.error(item.pos, format!("{what}: an entry needs `source`"));
                        continue;
                    };
                    let target = item.get("target").and_then(|v| self.string(v, what)).map(|t| t.value);
                    (source, target)
                }
                _ => match self.string(item, what) {
                    Some(source) => (source, None),
                    None => continue,
                },
            };
            let target = target.unwrap_or_else(|| source.value.clone());
            let target = if target.starts_with('/') { target } else { format!("{base}{target}") };
            out.push(Grant { source, target });
        }
        out
    }

    /// Top-level `secrets:` or `configs:`: only `file:` ones can be honoured on one engine.
    pub(super) fn file_objects(&mut self, bp: &mut Blueprint, key: &Key, value: &Node) {
        let what = key.name.clone();
        for (name, def) in self.optional_map(value, &what).unwrap_or(&[]) {
            let f = format!("{what}.{}", name.name);
            let Some(entries) = self.optional_map(def, &f) else { continue };
            self.check_keys(
                entries,
                &["file", "environment", "external", "name", "content", "template_driver", "labels"],
                &f,
            );
            let mut object = FileObject { pos: name.pos, file: None };
            for (k, v) in entries {
                match k.name.as_str() {
                    "file" => object.file = self.string(v, &f).map(|t| self.path(&t.value, t.pos)),
                    "external" if self.boolean(v, &f) == Some(true) => {
                        self.error(
                            k.pos,
                            format!("{f}: external {what} exist only in Swarm; a single engine has none"),
                        )
                        .hint = Some(format!("use `file: ./{}.txt` to mount a file instead", name.name));
                    }
                    "environment" | "content" => {
                        self.not_supported(k.pos, &format!("{f}.{}", k.name), "use `file:` instead; nothing is mounted")
                    }
                    _ => {}
                }
            }
            let map = if what == "secrets" { &mut bp.secrets } else { &mut bp.configs };
            map.insert(name.name.clone(), object);
        }
    }

    /// Compose's implicit `default` network, when a service names it without declaring it.
    pub(super) fn implicit_default_network(&mut self, bp: &mut Blueprint) {
        let named = bp.services.iter().flat_map(|s| &s.networks).find(|n| n.name.value == "default");
        if let Some(attachment) = named
            && !bp.networks.contains_key("default")
        {
            let def = NetworkDef { pos: attachment.name.pos, ..Default::default() };
            bp.networks.insert("default".into(), def);
        }
    }

    /// Turns each service's file-based secrets and configs into read-only bind mounts at
    /// Compose's paths (`/run/secrets/NAME`, `/NAME`), as Compose does without Swarm.
    pub(super) fn grants_to_mounts(&mut self, bp: &mut Blueprint) {
        for s in &mut bp.services {
            for (what, grants, objects) in
                [("secret", &s.compose.secrets, &bp.secrets), ("config", &s.compose.configs, &bp.configs)]
            {
                for g in grants {
                    let Some(object) = objects.get(&g.source.value) else {
                        let hint = match did_you_mean(&g.source.value, objects.keys().map(String::as_str)) {
                            Some(best) => format!("did you mean `{best}`?"),
                            None => {
                                format!("declare it under the top-level `{what}s:` with `file: ./{}`", g.source.value)
                            }
                        };
                        self.problems.push(
                            Diagnostic::at(
                                self.file,
                                g.source.pos,
                                format!("uses undeclared {what} `{}`", g.source.value),
                            )
                            .service(&s.name)
                            .hint(hint),
                        );
                        continue;
                    };
                    if let Some(file) = &object.file {
                        let mount = Mount {
                            source: MountSource::Bind(file.clone()),
                            target: g.target.clone(),
                            read_only: true,
                            propagation: None,
                            nocopy: false,
                        };
                        s.volumes.push(At::new(mount, g.source.pos));
                    }
                }
            }
        }
    }

    /// `env_file:` (a path, a list, or `{path, required}`): its variables join the service's
    /// environment below `environment:`, which wins, as in Compose.
    pub(super) fn env_files(&mut self, s: &mut Service, entries: &Entries) {
        let Some((_, node)) = entries.iter().find(|(k, _)| k.name == "env_file") else { return };
        let items: Vec<&Node> = match &node.value {
            Value::Seq(items) => items.iter().collect(),
            _ => vec![node],
        };
        let what = format!("services.{}.env_file", s.name);
        for item in items {
            let (path_node, required) = match &item.value {
                Value::Map(e) => {
                    self.check_keys(e, &["path", "required", "format"], &what);
                    let required = item.get("required").and_then(|r| self.boolean(r, &what)).unwrap_or(true);
                    match item.get("path") {
                        Some(p) => (p, required),
                        None => {
                            self.error(item.pos, format!("{what}: an entry needs `path`"));
                            continue;
                        }
                    }
                }
                _ => (item, true),
            };
            let Some(text) = self.string(path_node, &what) else { continue };
            let path = self.path(&text.value, text.pos);
            // Bounded and regular files only, like every file scale reads (`fsread`).
            let bytes = match super::super::fsread::read_bounded(&path, super::super::fsread::MAX_ENV_FILE_BYTES) {
                Ok(bytes) => bytes,
                Err(super::super::fsread::ReadError::NotFound) if !required => continue,
                Err(err) => {
                    self.error(text.pos, format!("{what}: cannot read {}: {err}", path.display())).hint =
                        Some("create the file, or write `env_file: { path: ..., required: false }`".into());
                    continue;
                }
            };
            let Ok(content) = String::from_utf8(bytes) else {
                self.error(text.pos, format!("{what}: {} is not valid UTF-8", path.display())).hint =
                    Some("save the env file as UTF-8".into());
                continue;
            };
            match envfile::parse(&path, &content, self.env) {
                Ok(vars) => {
                    for (k, v) in vars.iter() {
                        s.environment.entry(k.to_string()).or_insert_with(|| At::new(v.to_string(), text.pos));
                    }
                }
                Err(problems) => self.problems.extend(problems),
            }
        }
    }

    /// `deploy:`: `replicas` is scale's `replicas`, `restart_policy` its `restart` (when the
    /// service has none); the rest is reported. Also checks `container_name` against replicas.
    pub(super) fn deploy(&mut self, s: &mut Service, entries: &Entries) {
        let has = |name: &str| entries.iter().any(|(k, _)| k.name == name);
        if let Some((_, node)) = entries.iter().find(|(k, _)| k.name == "deploy") {
            let what = format!("services.{}.deploy", s.name);
            let keys = [
                "mode",
                "replicas",
                "labels",
                "resources",
                "restart_policy",
                "update_config",
                "rollback_config",
                "placement",
                "endpoint_mode",
            ];
            for (k, v) in self.optional_map(node, &what).unwrap_or(&[]) {
                if !keys.contains(&k.name.as_str()) {
                    self.check_keys(&[(k.clone(), v.clone())], &keys, &what);
                    continue;
                }
                let f = format!("{what}.{}", k.name);
                match k.name.as_str() {
                    "replicas" if !has("replicas") && !has("scale") => {
                        if let Some(n) = self.integer(v, &f, 0, 10_000) {
                            s.replicas = At::new(n as u32, v.pos);
                        }
                    }
                    "restart_policy" => self.restart_policy(s, v, &f, has("restart")),
                    "mode" if self.string(v, &f).is_some_and(|m| m.value != "replicated") => {
                        self.not_supported(k.pos, &f, "one engine is one node: the service runs `replicas` containers");
                    }
                    "placement" | "endpoint_mode" => self.warnings.push(
                        Diagnostic::at(self.file, k.pos, format!("ignored on a single engine: `{f}` (Swarm only)"))
                            .hint("there is one node, so there is nothing to place; Compose ignores it too"),
                    ),
                    "resources" => self.resources(s, v, &f, entries),
                    // The same policy as the blueprint's own `rollout:` (one decoder for both).
                    "update_config" => self.rollout(v, &f, super::UPDATE_CONFIG_KEYS, &mut s.rollout),
                    "rollback_config" => self.not_supported(
                        k.pos,
                        &f,
                        "a rollback puts the previous spec back with the service's own rollout policy",
                    ),
                    "labels" => self.not_supported(k.pos, &f, "the service's labels are set on its containers"),
                    _ => {}
                }
            }
        }
        if let Some(name) = &s.compose.container_name
            && (s.replicas.value > 1 || s.autoscale.is_some())
        {
            let count =
                if s.autoscale.is_some() { "an autoscaled number of".into() } else { s.replicas.value.to_string() };
            self.error(
                name.pos,
                format!("`container_name` names one container, but the service runs {count} replicas"),
            )
            .hint =
                Some("remove `container_name` (scale names them <project>-<service>-<n>) or run one replica".into());
        }
        self.optional_dependencies(s, entries);
    }

    /// Compose's `deploy.restart_policy.condition` as scale's `restart` (none, on-failure, any).
    fn restart_policy(&mut self, s: &mut Service, node: &Node, what: &str, has_restart: bool) {
        let Some(entries) = self.map(node, what) else { return };
        self.check_keys(entries, &["condition", "delay", "max_attempts", "window"], what);
        for (k, v) in entries {
            if k.name == "condition" {
                let choices = [
                    ("none", RestartPolicy::No),
                    ("on-failure", RestartPolicy::OnFailure),
                    ("any", RestartPolicy::Always),
                ];
                if let Some(policy) = self.choice(v, &format!("{what}.condition"), &choices)
                    && !has_restart
                {
                    s.restart = policy;
                    s.compose.restart_condition = v.value.scalar_text();
                }
            } else {
                self.not_supported(k.pos, &format!("{what}.{}", k.name), "the engine's restart timing applies");
            }
        }
    }

    /// Dependencies written with `required: false`.
    fn optional_dependencies(&mut self, s: &mut Service, entries: &Entries) {
        let Some((_, Node { value: Value::Map(deps), .. })) = entries.iter().find(|(k, _)| k.name == "depends_on")
        else {
            return;
        };
        for (k, v) in deps {
            if let Some(Value::Bool(false)) = v.get("required").map(|r| &r.value) {
                s.compose.optional_dependencies.push(k.name.clone());
            }
        }
    }

    /// `restart: true` of a dependency.
    pub(super) fn dependency_extras(&mut self, settings: &Entries, name: &str, what: &str) {
        for (k, v) in settings {
            if k.name == "restart" && self.boolean(v, what) == Some(true) {
                self.not_supported(
                    k.pos,
                    &format!("{what}.restart"),
                    &format!("replacing `{name}` does not restart this service"),
                );
            }
        }
    }

    /// A network's Compose settings: `driver`, `driver_opts`, `ipam`, `enable_ipv6`,
    /// `attachable` and `external` (with its `name`) are honoured.
    pub(super) fn network_settings(&mut self, net: &mut NetworkDef, name: &str, entries: &Entries, what: &str) {
        let external = entries.iter().find(|(k, _)| k.name == "external").is_some_and(|(_, v)| self.external(v, what));
        let engine_name = entries.iter().find(|(k, _)| k.name == "name").and_then(|(_, v)| self.string(v, what));
        for (k, v) in entries {
            let f = format!("{what}.{}", k.name);
            match k.name.as_str() {
                "driver" => net.driver = self.string(v, &f).map(|d| d.value).filter(|d| d != "bridge"),
                "driver_opts" => net.driver_opts = self.plain_map(v, &f),
                "ipam" => self.ipam(net, v, &f),
                "enable_ipv6" => net.enable_ipv6 = self.boolean(v, &f).unwrap_or_default(),
                "attachable" => net.attachable = self.boolean(v, &f).unwrap_or_default(),
                "name" if !external => self.not_supported(
                    k.pos,
                    &f,
                    "scale names the network <project>_<network>; use `external: true` to join one by its name",
                ),
                "enable_ipv4" => self.not_supported(k.pos, &f, "the network gets IPv4 as the engine decides"),
                _ => {}
            }
        }
        if external {
            net.external = Some(engine_name.map_or_else(|| self.external_name(entries, name), |n| n.value));
        }
    }

    /// `ipam: { driver, config: [{ subnet, ip_range, gateway }] }`.
    fn ipam(&mut self, net: &mut NetworkDef, node: &Node, what: &str) {
        let Some(entries) = self.map(node, what) else { return };
        self.check_keys(entries, &["driver", "config", "options"], what);
        for (k, v) in entries {
            let f = format!("{what}.{}", k.name);
            match k.name.as_str() {
                "driver" => net.ipam_driver = self.string(v, &f).map(|d| d.value).filter(|d| d != "default"),
                "options" => self.not_supported(k.pos, &f, "the address allocator keeps its default options"),
                _ => {
                    let Value::Seq(items) = &v.value else {
                        self.wrong_type(v, &f, "a list");
                        continue;
                    };
                    for item in items {
                        let Some(pool) = self.map(item, &f) else { continue };
                        self.check_keys(pool, &["subnet", "ip_range", "gateway", "aux_addresses"], &f);
                        let mut get = |key: &str| {
                            let (_, node) = pool.iter().find(|(k, _)| k.name == key)?;
                            self.string(node, &format!("{f}.{key}")).map(|t| t.value)
                        };
                        let entry = crate::model::IpamPool {
                            subnet: get("subnet"),
                            ip_range: get("ip_range"),
                            gateway: get("gateway"),
                        };
                        if let Some((k, _)) = pool.iter().find(|(k, _)| k.name == "aux_addresses") {
                            self.not_supported(k.pos, &format!("{f}.aux_addresses"), "no addresses are reserved");
                        }
                        net.ipam.push(entry);
                    }
                }
            }
        }
    }

    /// The name of an external network or volume: the older `external: { name: ... }`, else
    /// the key itself.
    fn external_name(&mut self, entries: &Entries, key: &str) -> String {
        entries
            .iter()
            .find(|(k, _)| k.name == "external")
            .and_then(|(_, v)| v.get("name"))
            .and_then(|n| self.string(n, "external.name"))
            .map_or_else(|| key.to_string(), |n| n.value)
    }

    /// `external: true`, or the older `external: { name: ... }`.
    fn external(&mut self, node: &Node, what: &str) -> bool {
        match &node.value {
            Value::Map(_) => true,
            _ => self.boolean(node, what) == Some(true),
        }
    }

    /// A volume's Compose settings: `external` (with its `name`) is honoured.
    pub(super) fn volume_settings(&mut self, vol: &mut VolumeDef, name: &str, entries: &Entries, what: &str) {
        let external = entries.iter().find(|(k, _)| k.name == "external").is_some_and(|(_, v)| self.external(v, what));
        for (k, v) in entries {
            let f = format!("{what}.{}", k.name);
            match k.name.as_str() {
                "driver" if self.string(v, &f).is_some_and(|d| d.value != "local") => {
                    self.not_supported(k.pos, &f, "a local volume is created");
                }
                "driver_opts" => self.not_supported(k.pos, &f, "the volume is created with the engine's defaults"),
                "name" if !external => self.not_supported(
                    k.pos,
                    &f,
                    "scale names the volume <project>_<volume>; use `external: true` to mount one by its name",
                ),
                _ => {}
            }
        }
        if external {
            let named = entries.iter().find(|(k, _)| k.name == "name").and_then(|(_, v)| self.string(v, what));
            vol.external = Some(named.map_or_else(|| self.external_name(entries, name), |n| n.value));
        }
    }

    pub(super) fn build_extras(&mut self, entries: &Entries, what: &str) {
        for (k, _) in entries {
            let f = format!("{what}.{}", k.name);
            match k.name.as_str() {
                "context" | "dockerfile" | "args" | "target" => {}
                _ => self.not_supported(k.pos, &f, "the image is built without it"),
            }
        }
    }

    pub(super) fn attachment_extras(&mut self, entries: &Entries, what: &str) {
        let honoured = ["aliases", "ipv4_address", "ipv6_address"];
        for (k, _) in entries.iter().filter(|(k, _)| !honoured.contains(&k.name.as_str())) {
            self.not_supported(k.pos, &format!("{what}.{}", k.name), "the engine assigns the address and settings");
        }
    }

    /// The long form's `bind:`, `volume:` and `tmpfs:` settings: `propagation`, `nocopy`,
    /// `size` and `mode` are honoured, the rest reported.
    pub(super) fn mount_extras(&mut self, entries: &Entries, what: &str) {
        let honoured: &[(&str, &[&str])] =
            &[("bind", &["propagation"]), ("volume", &["nocopy"]), ("tmpfs", &["size", "mode"])];
        for (k, v) in entries {
            let Some((_, keys)) = honoured.iter().find(|(name, _)| *name == k.name) else { continue };
            let f = format!("{what}.{}", k.name);
            for (key, _) in self.optional_map(v, &f).unwrap_or(&[]) {
                if !keys.contains(&key.name.as_str()) {
                    self.not_supported(key.pos, &format!("{f}.{}", key.name), "the mount uses the engine's defaults");
                }
            }
        }
    }

    /// A long-form `type: tmpfs` mount, recorded as a tmpfs of the service (`size`, `mode`).
    pub(super) fn tmpfs_mount(&mut self, entries: &Entries, pos: Pos, what: &str) {
        let Some((_, target)) = entries.iter().find(|(k, _)| k.name == "target") else {
            self.error(pos, format!("{what}: a mount needs `target`"));
            return;
        };
        let Some(target) = self.string(target, &format!("{what}.target")) else { return };
        let mut options = Vec::new();
        if let Some((_, settings)) = entries.iter().find(|(k, _)| k.name == "tmpfs") {
            for (k, v) in self.optional_map(settings, &format!("{what}.tmpfs")).unwrap_or(&[]) {
                if matches!(k.name.as_str(), "size" | "mode")
                    && let Some(value) = self.string(v, &format!("{what}.tmpfs.{}", k.name))
                {
                    options.push(format!("{}={}", k.name, value.value));
                }
            }
        }
        self.tmpfs_mounts.push((target.value, options.join(",")));
    }

    /// The mode of a short mount (`ro`, `rw`, and Compose's `z`, `Z`, `cached` … joined by
    /// commas): whether it is read-only.
    pub(super) fn mount_mode(&mut self, mode: &str, pos: Pos) -> Result<bool, String> {
        let mut read_only = false;
        for part in mode.split(',') {
            match part {
                "ro" => read_only = true,
                "rw" | "cached" | "delegated" | "consistent" | "nocopy" => {}
                "z" | "Z" => {
                    self.not_supported(pos, &format!("volumes: mode {part}"), "the mount is not relabelled for SELinux")
                }
                other => return Err(format!("unknown mount mode {other:?} (use ro or rw)")),
            }
        }
        Ok(read_only)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::model::{Blueprint, Env, MountSource, RestartPolicy, load_bytes};

    fn load(yaml: &str) -> Blueprint {
        load_bytes(Path::new("compose.yaml"), yaml.as_bytes(), &Env::default()).unwrap_or_else(|d| panic!("{d}"))
    }

    fn warnings(bp: &Blueprint) -> String {
        bp.warnings.iter().map(|w| w.as_warning()).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn compose_keys_are_not_typos_of_other_keys() {
        // Each of these was "unknown key … did you mean" a different real key.
        let bp = load(
            "services:\n  db:\n    image: postgres\n    user: postgres\n    network_mode: host\n    \
             healthcheck: { test: [CMD, pg_isready], start_interval: 1s }\n    secrets: [pw]\n\
             secrets:\n  pw:\n    file: ./pw.txt\n",
        );
        // All three are honoured now: no warning at all, and certainly no "did you mean".
        let text = warnings(&bp);
        assert!(text.is_empty(), "{text}");
        let db = bp.service("db").unwrap();
        assert_eq!(db.compose.options.user.as_deref(), Some("postgres"));
        assert_eq!(db.compose.options.network_mode, Some(crate::model::NetworkMode::Host));
        assert_eq!(db.compose.start_interval, Some(std::time::Duration::from_secs(1)));
        let secret = db.volumes.iter().find(|m| m.value.target == "/run/secrets/pw").expect("the secret is mounted");
        assert!(
            secret.value.read_only && matches!(&secret.value.source, MountSource::Bind(p) if p.ends_with("pw.txt"))
        );
    }

    /// Every service attribute of the Compose Specification: none may be an "unknown key"
    /// (whose "did you mean" would point at a different real key).
    const SPEC_SERVICE_KEYS: &[&str] = &[
        "annotations",
        "attach",
        "blkio_config",
        "build",
        "cap_add",
        "cap_drop",
        "cgroup",
        "cgroup_parent",
        "command",
        "configs",
        "container_name",
        "cpu_count",
        "cpu_percent",
        "cpu_period",
        "cpu_quota",
        "cpu_rt_period",
        "cpu_rt_runtime",
        "cpu_shares",
        "cpus",
        "cpuset",
        "credential_spec",
        "depends_on",
        "deploy",
        "develop",
        "device_cgroup_rules",
        "devices",
        "dns",
        "dns_opt",
        "dns_search",
        "domainname",
        "entrypoint",
        "env_file",
        "environment",
        "expose",
        "extends",
        "external_links",
        "extra_hosts",
        "gpus",
        "group_add",
        "healthcheck",
        "hostname",
        "image",
        "init",
        "ipc",
        "isolation",
        "label_file",
        "labels",
        "links",
        "logging",
        "mac_address",
        "mem_limit",
        "mem_reservation",
        "mem_swappiness",
        "memswap_limit",
        "models",
        "network_mode",
        "networks",
        "oom_kill_disable",
        "oom_score_adj",
        "pid",
        "pids_limit",
        "platform",
        "ports",
        "post_start",
        "pre_stop",
        "privileged",
        "profiles",
        "provider",
        "pull_policy",
        "read_only",
        "restart",
        "runtime",
        "scale",
        "secrets",
        "security_opt",
        "shm_size",
        "stdin_open",
        "stop_grace_period",
        "stop_signal",
        "storage_opt",
        "sysctls",
        "tmpfs",
        "tty",
        "ulimits",
        "use_api_socket",
        "user",
        "userns_mode",
        "uts",
        "volumes",
        "volumes_from",
        "working_dir",
    ];

    #[test]
    fn no_key_of_the_compose_spec_is_an_unknown_key() {
        for key in SPEC_SERVICE_KEYS {
            let yaml = format!("services:\n  a:\n    image: x\n    {key}: null\n");
            if let Err(problems) = load_bytes(Path::new("compose.yaml"), yaml.as_bytes(), &Env::default()) {
                let text = problems.to_string();
                assert!(!text.contains("unknown key") && !text.contains("did you mean"), "{key}: {text}");
            }
        }
    }

    #[test]
    fn typos_of_compose_keys_still_get_a_did_you_mean() {
        let err = load_bytes(
            Path::new("compose.yaml"),
            b"services:\n  web:\n    image: x\n    contaner_name: web\n",
            &Env::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown key `contaner_name`") && err.contains("did you mean `container_name`?"), "{err}");
    }

    #[test]
    fn deploy_replicas_scale_and_restart_policy_are_honoured() {
        let bp = load(
            "services:\n  a:\n    image: x\n    deploy: { replicas: 3, restart_policy: { condition: any } }\n  \
             b:\n    image: x\n    scale: 2\n    restart: on-failure:5\n",
        );
        let (a, b) = (bp.service("a").unwrap(), bp.service("b").unwrap());
        assert_eq!((a.replicas.value, a.restart), (3, RestartPolicy::Always));
        assert_eq!((b.replicas.value, b.restart), (2, RestartPolicy::OnFailure));
        assert!(warnings(&bp).contains("on-failure:5"), "the retry count is reported");
    }

    #[test]
    fn container_name_with_replicas_is_an_error_with_a_reason() {
        let err = load_bytes(
            Path::new("compose.yaml"),
            b"services:\n  web:\n    image: x\n    container_name: web\n    deploy: { replicas: 2 }\n",
            &Env::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("compose.yaml:4:21") && err.contains("runs 2 replicas"), "{err}");
    }

    #[test]
    fn port_ranges_expand_and_the_default_network_is_implicit() {
        let bp = load(
            "services:\n  web:\n    image: x\n    ports: [\"8000-8002:9000-9002/udp\", \"7000-7001\"]\n    networks: [default]\n",
        );
        let ports: Vec<(Option<u16>, u16)> =
            bp.services[0].ports.iter().map(|p| (p.value.host_port, p.value.container_port)).collect();
        assert_eq!(ports, [(Some(8000), 9000), (Some(8001), 9001), (Some(8002), 9002), (None, 7000), (None, 7001)]);
        assert!(bp.networks.contains_key("default"));
        let err = super::super::parse_ports("8000-8001:80").unwrap_err();
        assert!(err.contains("maps 2 host ports to 1 container ports"), "{err}");
    }

    #[test]
    fn a_remote_build_context_is_named_as_not_supported() {
        let err = load_bytes(
            Path::new("compose.yaml"),
            b"services:\n  web:\n    build: https://github.com/docker/example.git#main\n",
            &Env::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("compose.yaml:3:12") && err.contains("not supported yet: a remote build context"),
            "{err}"
        );
    }

    #[test]
    fn swarm_only_keys_are_ignored_with_a_warning_and_version_is_obsolete() {
        let bp = load(
            "version: '3.8'\nservices:\n  web:\n    image: x\n    deploy: { placement: { constraints: [a] } }\n\
             networks:\n  shared:\n    external: { name: shared }\n",
        );
        let text = warnings(&bp);
        assert!(text.contains("compose.yaml:1:1: warning: `version` is obsolete"), "{text}");
        assert!(text.contains("ignored on a single engine: `services.web.deploy.placement` (Swarm only)"), "{text}");
        assert!(!text.contains("networks.shared"), "an external network is honoured: {text}");
        assert_eq!(bp.networks["shared"].external.as_deref(), Some("shared"));
    }
}
