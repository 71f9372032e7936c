//! Compose's service keys that become engine create options ([`ContainerOptions`]): read,
//! checked for their shape, and honoured (no "not supported yet" warning for these).

use std::collections::BTreeMap;

use super::{Decoder, Entries};
use crate::model::node::{Key, Node, Value};
use crate::model::options::{ContainerOptions, Logging, NetworkMode, Ulimit, parse_bytes};
use crate::model::types::*;

/// The service keys read into [`ContainerOptions`].
pub(super) const OPTION_KEYS: &[&str] = &[
    "working_dir",
    "domainname",
    "stop_signal",
    "init",
    "read_only",
    "privileged",
    "tty",
    "stdin_open",
    "cap_add",
    "cap_drop",
    "sysctls",
    "ulimits",
    "tmpfs",
    "shm_size",
    "security_opt",
    "devices",
    "extra_hosts",
    "dns",
    "dns_search",
    "dns_opt",
    "logging",
    "platform",
    "runtime",
    "network_mode",
    "mem_limit",
    "mem_reservation",
    "memswap_limit",
    "cpus",
    "cpu_shares",
    "cpuset",
    "pids_limit",
    "group_add",
    "pid",
    "ipc",
    "userns_mode",
    "cgroup_parent",
    "oom_score_adj",
    "mac_address",
    "storage_opt",
];

impl Decoder<'_> {
    /// Reads one of [`OPTION_KEYS`] (or `user` of a plain service) into `o`.
    pub(super) fn container_option(&mut self, o: &mut ContainerOptions, k: &Key, v: &Node, f: &str) {
        let text = |d: &mut Self| d.string(v, f).map(|t| t.value);
        match k.name.as_str() {
            "user" => o.user = text(self),
            "working_dir" => o.working_dir = text(self),
            "domainname" => o.domainname = text(self),
            "stop_signal" => o.stop_signal = text(self),
            "platform" => o.platform = text(self),
            "runtime" => o.runtime = text(self),
            "cpuset" => o.cpuset = text(self),
            "pid" => o.pid = text(self),
            "ipc" => o.ipc = text(self),
            "userns_mode" => o.userns_mode = text(self),
            "cgroup_parent" => o.cgroup_parent = text(self),
            "mac_address" => o.mac_address = text(self),
            "init" => o.init = self.boolean(v, f),
            "read_only" => o.read_only = self.boolean(v, f).unwrap_or_default(),
            "privileged" => o.privileged = self.boolean(v, f).unwrap_or_default(),
            "tty" => o.tty = self.boolean(v, f).unwrap_or_default(),
            "stdin_open" => o.stdin_open = self.boolean(v, f).unwrap_or_default(),
            "cap_add" => o.cap_add = self.strings(v, f).unwrap_or_default(),
            "cap_drop" => o.cap_drop = self.strings(v, f).unwrap_or_default(),
            "security_opt" => o.security_opt = self.strings(v, f).unwrap_or_default(),
            "group_add" => o.group_add = self.scalar_list(v, f),
            "dns" => o.dns = self.one_or_many(v, f),
            "dns_search" => o.dns_search = self.one_or_many(v, f),
            "dns_opt" => o.dns_opt = self.strings(v, f).unwrap_or_default(),
            "sysctls" => o.sysctls = self.plain_map(v, f),
            "storage_opt" => o.storage_opt = self.plain_map(v, f),
            "ulimits" => o.ulimits = self.ulimits(v, f),
            "tmpfs" => {
                for entry in self.one_or_many(v, f) {
                    let (target, options) = entry.split_once(':').unwrap_or((&entry, ""));
                    o.tmpfs.insert(target.to_string(), options.to_string());
                }
            }
            "devices" => o.devices = self.devices(v, f),
            "extra_hosts" => o.extra_hosts = self.extra_hosts(v, f),
            "logging" => o.logging = self.logging(v, f),
            "network_mode" => o.network_mode = self.network_mode(v, f),
            "shm_size" => o.shm_size = self.bytes(v, f),
            "mem_limit" => o.mem_limit = self.bytes(v, f),
            "mem_reservation" => o.mem_reservation = self.bytes(v, f),
            "memswap_limit" => o.memswap_limit = self.bytes(v, f),
            "cpus" => o.nano_cpus = self.cpus(v, f),
            "cpu_shares" => o.cpu_shares = self.integer(v, f, 0, 262_144),
            "pids_limit" => o.pids_limit = self.integer(v, f, -1, i64::MAX),
            "oom_score_adj" => o.oom_score_adj = self.integer(v, f, -1000, 1000),
            _ => {}
        }
    }

    /// `deploy.resources`: `limits` (`cpus`, `memory`, `pids`) and `reservations.memory` as
    /// the engine's limits; a key set directly on the service (`mem_limit`, …) wins.
    pub(super) fn resources(&mut self, s: &mut Service, node: &Node, what: &str, direct: &Entries) {
        let Some(entries) = self.map(node, what) else { return };
        self.check_keys(entries, &["limits", "reservations"], what);
        let has = |name: &str| direct.iter().any(|(k, _)| k.name == name);
        for (k, v) in entries {
            let f = format!("{what}.{}", k.name);
            let Some(items) = self.map(v, &f) else { continue };
            let limits = k.name == "limits";
            let allowed: &[&str] =
                if limits { &["cpus", "memory", "pids"] } else { &["cpus", "memory", "generic_resources", "devices"] };
            self.check_keys(items, allowed, &f);
            let o = &mut s.compose.options;
            for (key, value) in items {
                let g = format!("{f}.{}", key.name);
                match (limits, key.name.as_str()) {
                    (true, "cpus") if !has("cpus") => o.nano_cpus = self.cpus(value, &g),
                    (true, "memory") if !has("mem_limit") => o.mem_limit = self.bytes(value, &g),
                    (true, "pids") if !has("pids_limit") => o.pids_limit = self.integer(value, &g, -1, i64::MAX),
                    (false, "memory") if !has("mem_reservation") => o.mem_reservation = self.bytes(value, &g),
                    (false, "cpus" | "generic_resources" | "devices") => self.not_supported(
                        key.pos,
                        &g,
                        "one engine reserves no CPUs or devices; the container starts without them",
                    ),
                    _ => {}
                }
            }
        }
    }

    /// A list of scalars as text (`group_add: [audio, 44]`).
    fn scalar_list(&mut self, node: &Node, what: &str) -> Vec<String> {
        let Value::Seq(items) = &node.value else {
            self.wrong_type(node, what, "a list");
            return Vec::new();
        };
        items.iter().filter_map(|i| self.string(i, what).map(|t| t.value)).collect()
    }

    /// One string or a list of them (`dns: 8.8.8.8` or `dns: [8.8.8.8, 1.1.1.1]`).
    fn one_or_many(&mut self, node: &Node, what: &str) -> Vec<String> {
        match &node.value {
            Value::Seq(_) => self.scalar_list(node, what),
            Value::Null => Vec::new(),
            _ => self.string(node, what).map(|t| vec![t.value]).unwrap_or_default(),
        }
    }

    /// A size: a number of bytes or text like `512m`.
    fn bytes(&mut self, node: &Node, what: &str) -> Option<i64> {
        let text = self.string(node, what)?;
        match parse_bytes(&text.value) {
            Ok(n) => Some(n),
            Err(why) => {
                self.error(node.pos, format!("{what}: {why}")).hint = Some("write a size like 64m or 1g".into());
                None
            }
        }
    }

    /// `cpus: 0.5` (or `"1.5"`) as billionths of a CPU.
    fn cpus(&mut self, node: &Node, what: &str) -> Option<i64> {
        let text = self.string(node, what)?;
        match text.value.trim().parse::<f64>() {
            Ok(x) if x.is_finite() && (0.0..=4096.0).contains(&x) => Some((x * 1e9).round() as i64),
            _ => {
                self.error(node.pos, format!("{what}: expected a number of CPUs like 0.5, found {:?}", text.value));
                None
            }
        }
    }

    /// `ulimits: { nofile: { soft: 1024, hard: 2048 }, nproc: 65535 }`.
    fn ulimits(&mut self, node: &Node, what: &str) -> BTreeMap<String, Ulimit> {
        let mut out = BTreeMap::new();
        for (k, v) in self.map(node, what).unwrap_or(&[]) {
            let f = format!("{what}.{}", k.name);
            let limit = match &v.value {
                Value::Map(entries) => {
                    self.check_keys(entries, &["soft", "hard"], &f);
                    let soft = v.get("soft").and_then(|n| self.integer(n, &format!("{f}.soft"), -1, i64::MAX));
                    let hard = v.get("hard").and_then(|n| self.integer(n, &format!("{f}.hard"), -1, i64::MAX));
                    match (soft, hard) {
                        (Some(soft), Some(hard)) => Ulimit { soft, hard },
                        _ => {
                            self.error(v.pos, format!("{f}: needs both `soft` and `hard`"));
                            continue;
                        }
                    }
                }
                _ => match self.integer(v, &f, -1, i64::MAX) {
                    Some(n) => Ulimit { soft: n, hard: n },
                    None => continue,
                },
            };
            out.insert(k.name.clone(), limit);
        }
        out
    }

    /// `devices: ["/dev/fuse", "/dev/sda:/dev/xvda:rwm"]` or `{ source, target, permissions }`.
    fn devices(&mut self, node: &Node, what: &str) -> Vec<String> {
        let Value::Seq(items) = &node.value else {
            self.wrong_type(node, what, "a list");
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            if let Value::Map(entries) = &item.value {
                self.check_keys(entries, &["source", "target", "permissions"], what);
                let Some(source) = item.get("source").and_then(|s| self.string(s, what)) else {
                    self.error(item.pos, format!("{what}: a device needs `source`"));
                    continue;
                };
                let target = item.get("target").and_then(|t| self.string(t, what)).map(|t| t.value);
                let perms = item.get("permissions").and_then(|p| self.string(p, what)).map(|p| p.value);
                let target = target.unwrap_or_else(|| source.value.clone());
                out.push(format!("{}:{target}:{}", source.value, perms.unwrap_or_else(|| "rwm".into())));
            } else if let Some(text) = self.string(item, what) {
                out.push(text.value);
            }
        }
        out
    }

    /// `extra_hosts: ["db:10.0.0.2", "web=10.0.0.3"]` or `{ db: 10.0.0.2 }`, as the engine's
    /// `host:ip` (the first `=` or `:` separates, so IPv6 addresses stay whole).
    fn extra_hosts(&mut self, node: &Node, what: &str) -> Vec<String> {
        match &node.value {
            Value::Map(_) => self.plain_map(node, what).into_iter().map(|(h, ip)| format!("{h}:{ip}")).collect(),
            _ => {
                let mut out = Vec::new();
                for text in self.scalar_list(node, what) {
                    match text.find(['=', ':']) {
                        Some(i) => out.push(format!("{}:{}", &text[..i], &text[i + 1..])),
                        None => {
                            self.error(node.pos, format!("{what}: {text:?} is not HOST:IP")).hint =
                                Some("write \"somehost:162.242.195.82\"".into());
                        }
                    }
                }
                out
            }
        }
    }

    /// `logging: { driver: json-file, options: { max-size: 10m } }`.
    fn logging(&mut self, node: &Node, what: &str) -> Option<Logging> {
        let entries = self.map(node, what)?;
        self.check_keys(entries, &["driver", "options"], what);
        let mut logging = Logging::default();
        for (k, v) in entries {
            let f = format!("{what}.{}", k.name);
            match k.name.as_str() {
                "driver" => logging.driver = self.string(v, &f).map(|t| t.value),
                "options" => logging.options = self.plain_map(v, &f),
                _ => {}
            }
        }
        Some(logging)
    }

    /// `network_mode: host | none | service:NAME | container:NAME`.
    fn network_mode(&mut self, node: &Node, what: &str) -> Option<NetworkMode> {
        let text = self.string(node, what)?;
        let mode = match text.value.as_str() {
            "host" => NetworkMode::Host,
            "none" => NetworkMode::None,
            t if t.starts_with("service:") => NetworkMode::Service(t["service:".len()..].to_string()),
            t if t.starts_with("container:") => NetworkMode::Container(t["container:".len()..].to_string()),
            "bridge" | "default" => {
                self.not_supported(
                    node.pos,
                    &format!("{what}: {}", text.value),
                    "the container joins the project's default network",
                );
                return None;
            }
            other => {
                self.error(node.pos, format!("{what}: unknown network mode {other:?}")).hint =
                    Some("use host, none, service:NAME or container:NAME".into());
                return None;
            }
        };
        Some(mode)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::model::{Blueprint, Env, NetworkMode, Ulimit, load_bytes};

    fn load(yaml: &str) -> Blueprint {
        load_bytes(Path::new("compose.yaml"), yaml.as_bytes(), &Env::default()).unwrap_or_else(|d| panic!("{d}"))
    }

    #[test]
    fn engine_options_are_read_in_every_compose_form() {
        let bp = load(
            "services:\n  web:\n    image: x\n    user: \"1000:1000\"\n    working_dir: /srv\n    \
             stop_signal: SIGINT\n    init: true\n    read_only: true\n    cap_add: [NET_ADMIN]\n    \
             sysctls: [net.core.somaxconn=1024]\n    ulimits: { nproc: 65535, nofile: { soft: 20000, hard: 40000 } }\n    \
             tmpfs: /run\n    shm_size: 64m\n    extra_hosts: { db: 10.0.0.2 }\n    dns: 8.8.8.8\n    \
             logging: { driver: json-file, options: { max-size: 10m } }\n    \
             deploy: { resources: { limits: { cpus: '0.5', memory: 512M, pids: 100 }, reservations: { memory: 128m } } }\n    \
             volumes:\n      - { type: tmpfs, target: /cache, tmpfs: { size: 1000000 } }\n",
        );
        let o = &bp.services[0].compose.options;
        assert_eq!(o.user.as_deref(), Some("1000:1000"));
        assert_eq!((o.working_dir.as_deref(), o.stop_signal.as_deref()), (Some("/srv"), Some("SIGINT")));
        assert_eq!((o.init, o.read_only), (Some(true), true));
        assert_eq!(o.sysctls["net.core.somaxconn"], "1024");
        assert_eq!(o.ulimits["nproc"], Ulimit { soft: 65535, hard: 65535 });
        assert_eq!(o.ulimits["nofile"], Ulimit { soft: 20000, hard: 40000 });
        assert_eq!(o.tmpfs.get("/run").map(String::as_str), Some(""));
        assert_eq!(o.tmpfs.get("/cache").map(String::as_str), Some("size=1000000"));
        assert_eq!(o.shm_size, Some(64 << 20));
        assert_eq!((o.extra_hosts.clone(), o.dns.clone()), (vec!["db:10.0.0.2".into()], vec!["8.8.8.8".into()]));
        assert_eq!(o.logging.as_ref().unwrap().options["max-size"], "10m");
        assert_eq!((o.nano_cpus, o.mem_limit, o.pids_limit), (Some(500_000_000), Some(512 << 20), Some(100)));
        assert_eq!(o.mem_reservation, Some(128 << 20));
        assert!(bp.warnings.is_empty(), "{:?}", bp.warnings);
        assert!(bp.services[0].volumes.is_empty(), "a tmpfs is not a volume");
    }

    #[test]
    fn bad_option_values_are_errors_that_name_the_key() {
        let err = load_bytes(
            Path::new("compose.yaml"),
            b"services:\n  web:\n    image: x\n    mem_limit: lots\n    network_mode: bridgey\n",
            &Env::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("services.web.mem_limit: \"lots\" is not a size"), "{err}");
        assert!(err.contains("services.web.network_mode: unknown network mode \"bridgey\""), "{err}");
    }

    #[test]
    fn network_modes_and_service_sharing() {
        let bp = load("services:\n  a:\n    image: x\n  b:\n    image: x\n    network_mode: service:a\n");
        assert_eq!(bp.services[1].compose.options.network_mode, Some(NetworkMode::Service("a".into())));
    }
}
