//! The fully resolved model as a document, for `scale config`: merged, interpolated,
//! profiles applied, defaults filled, one entry per service, shaped like
//! `docker compose config --format json` so the two can be compared field by field.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::types::*;

/// The resolved project `project` as JSON (Compose's `config` layout).
pub fn document(bp: &Blueprint, project: &str) -> Value {
    let mut services = Map::new();
    for s in &bp.services {
        services.insert(s.name.clone(), service(s));
    }
    let mut networks = Map::new();
    for (name, def) in &bp.networks {
        let mut n = match &def.external {
            Some(external) => json!({ "name": external, "external": true }),
            None => json!({ "name": format!("{project}_{name}") }),
        };
        if let Some(driver) = &def.driver {
            n["driver"] = json!(driver);
        }
        if def.internal {
            n["internal"] = json!(true);
        }
        if !def.labels.is_empty() {
            n["labels"] = json!(def.labels);
        }
        networks.insert(name.clone(), n);
    }
    if bp.services.iter().any(|s| s.networks.is_empty() && s.compose.options.network_mode.is_none()) {
        networks.insert("default".into(), json!({ "name": format!("{project}_default") }));
    }
    let volumes: Map<String, Value> = bp
        .volumes
        .iter()
        .map(|(name, def)| {
            let v = match &def.external {
                Some(external) => json!({ "name": external, "external": true }),
                None => json!({ "name": format!("{project}_{name}") }),
            };
            (name.clone(), v)
        })
        .collect();
    let mut doc = json!({ "name": project, "services": services });
    if !networks.is_empty() {
        doc["networks"] = Value::Object(networks);
    }
    if !volumes.is_empty() {
        doc["volumes"] = Value::Object(volumes);
    }
    for (key, objects) in [("secrets", &bp.secrets), ("configs", &bp.configs)] {
        if !objects.is_empty() {
            let map: Map<String, Value> = objects
                .iter()
                .map(|(name, o)| {
                    let mut v = json!({ "name": format!("{project}_{name}") });
                    if let Some(file) = &o.file {
                        v["file"] = json!(file.display().to_string());
                    }
                    (name.clone(), v)
                })
                .collect();
            doc[key] = Value::Object(map);
        }
    }
    escape_dollars(&mut doc);
    doc
}

/// `$` becomes `$$`, as Compose writes it, so the output reads back as the same model (the
/// loader interpolates again).
fn escape_dollars(value: &mut Value) {
    match value {
        Value::String(text) if text.contains('$') => *text = text.replace('$', "$$"),
        Value::Array(items) => items.iter_mut().for_each(escape_dollars),
        Value::Object(map) => map.values_mut().for_each(escape_dollars),
        _ => {}
    }
}

fn service(s: &Service) -> Value {
    let mut out = Map::new();
    let mut put = |k: &str, v: Value| {
        out.insert(k.to_string(), v);
    };
    if let Some(kind) = &s.kind {
        put("x-scale-kind", json!(kind.value.as_str()));
    }
    if let Some(image) = &s.image {
        put("image", json!(image.value));
    }
    if let Some(build) = &s.build {
        let mut b = json!({
            "context": build.value.context.display().to_string(),
            "dockerfile": build.value.dockerfile,
        });
        if !build.value.args.is_empty() {
            b["args"] = json!(build.value.args);
        }
        put("build", b);
    }
    put("command", json!(s.command));
    put("entrypoint", json!(s.entrypoint));
    let env: Map<String, Value> = s.environment.iter().map(|(k, v)| (k.clone(), json!(v.value))).collect();
    if !env.is_empty() {
        put("environment", Value::Object(env));
    }
    if !s.ports.is_empty() {
        put("ports", Value::Array(s.ports.iter().map(|p| port(&p.value)).collect()));
    }
    if !s.compose.expose.is_empty() {
        put("expose", json!(s.compose.expose));
    }
    let granted: Vec<&str> = s.compose.secrets.iter().chain(&s.compose.configs).map(|g| g.target.as_str()).collect();
    let mounts: Vec<Value> =
        s.volumes.iter().filter(|m| !granted.contains(&m.value.target.as_str())).map(|m| mount(&m.value)).collect();
    if !mounts.is_empty() {
        put("volumes", Value::Array(mounts));
    }
    // A service sharing another network stack joins no network (Compose prints none).
    if s.compose.options.network_mode.is_none() {
        put("networks", networks(s));
    }
    if let Some(hc) = &s.healthcheck {
        let mut v = healthcheck(hc);
        if let Some(d) = s.compose.start_interval {
            v["start_interval"] = json!(go_duration(d));
        }
        put("healthcheck", v);
    }
    // A policy from `deploy.restart_policy` is shown where Compose shows it.
    let mut deploy = json!({ "replicas": s.replicas.value });
    match &s.compose.restart_condition {
        Some(condition) => deploy["restart_policy"] = json!({ "condition": condition }),
        None => put("restart", json!(s.restart.as_str())),
    }
    if !s.labels.is_empty() {
        put("labels", json!(s.labels));
    }
    if !s.zones.is_empty() {
        put("zones", json!(s.zones.iter().map(|z| z.value.as_str()).collect::<Vec<_>>()));
    }
    put("deploy", deploy);
    compose_fields(s, &mut put);
    Value::Object(out)
}

/// The engine options (`user`, `cap_add`, …) where Compose prints them.
fn option_fields(s: &Service, put: &mut impl FnMut(&str, Value)) {
    if let Some(hostname) = &s.compose.hostname {
        put("hostname", json!(hostname));
    }
    // The options whose JSON is Compose's own shape (strings, booleans, lists, string maps).
    let shared = [
        "user",
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
        "security_opt",
        "dns",
        "dns_search",
        "dns_opt",
        "platform",
        "runtime",
        "group_add",
        "pid",
        "ipc",
        "userns_mode",
        "cgroup_parent",
        "mac_address",
        "oom_score_adj",
        "pids_limit",
        "logging",
        "storage_opt",
    ];
    let fields = s.compose.options.fields();
    for key in shared {
        if let Some(value) = fields.get(key) {
            put(key, value.clone());
        }
    }
    if let Some(mode) = &s.compose.options.network_mode {
        put("network_mode", json!(mode.as_compose()));
    }
    // Compose prints `host=ip` (the engine takes `host:ip`).
    if !s.compose.options.extra_hosts.is_empty() {
        let hosts: Vec<String> = s.compose.options.extra_hosts.iter().map(|h| h.replacen(':', "=", 1)).collect();
        put("extra_hosts", json!(hosts));
    }
}

/// The Compose attributes beyond scale's own schema, as Compose prints them.
fn compose_fields(s: &Service, put: &mut impl FnMut(&str, Value)) {
    option_fields(s, put);
    for (key, grants) in [("secrets", &s.compose.secrets), ("configs", &s.compose.configs)] {
        if !grants.is_empty() {
            let list: Vec<Value> =
                grants.iter().map(|g| json!({ "source": g.source.value, "target": g.target })).collect();
            put(key, Value::Array(list));
        }
    }
    if !s.depends_on.is_empty() {
        let deps: Map<String, Value> = s
            .depends_on
            .iter()
            .map(|d| {
                let condition = serde_json::to_value(d.condition).unwrap_or(Value::Null);
                let required = !s.compose.optional_dependencies.contains(&d.service.value);
                (d.service.value.clone(), json!({ "condition": condition, "required": required }))
            })
            .collect();
        put("depends_on", Value::Object(deps));
    }
    if let Some(name) = &s.compose.container_name {
        put("container_name", json!(name.value));
    }
    if !s.compose.profiles.is_empty() {
        put("profiles", json!(s.compose.profiles));
    }
    if let Some(d) = s.stop_grace_period {
        put("stop_grace_period", json!(go_duration(d)));
    }
}

fn port(p: &PortMapping) -> Value {
    let mut v = json!({ "mode": "ingress", "target": p.container_port, "protocol": p.protocol.as_str() });
    if let Some(ip) = &p.host_ip {
        v["host_ip"] = json!(ip);
    }
    if let Some(host) = p.host_port {
        v["published"] = json!(host.to_string());
    }
    v
}

fn mount(m: &Mount) -> Value {
    let mut v = match &m.source {
        MountSource::Volume(name) => json!({ "type": "volume", "source": name, "target": m.target }),
        MountSource::Bind(path) => json!({ "type": "bind", "source": path.display().to_string(), "target": m.target }),
        MountSource::Anonymous => json!({ "type": "volume", "target": m.target }),
    };
    if m.read_only {
        v["read_only"] = json!(true);
    }
    v
}

fn networks(s: &Service) -> Value {
    if s.networks.is_empty() {
        return json!({ "default": null });
    }
    let map: Map<String, Value> = s
        .networks
        .iter()
        .map(|n| {
            let mut v = Map::new();
            if !n.aliases.is_empty() {
                v.insert("aliases".into(), json!(n.aliases));
            }
            for (key, address) in [("ipv4_address", &n.ipv4_address), ("ipv6_address", &n.ipv6_address)] {
                if let Some(address) = address {
                    v.insert(key.into(), json!(address));
                }
            }
            let v = if v.is_empty() { Value::Null } else { Value::Object(v) };
            (n.name.value.clone(), v)
        })
        .collect();
    Value::Object(map)
}

fn healthcheck(hc: &Healthcheck) -> Value {
    if hc.test.first().map(String::as_str) == Some("NONE") {
        return json!({ "test": ["NONE"], "disable": true });
    }
    json!({
        "test": hc.test,
        "interval": go_duration(hc.interval),
        "timeout": go_duration(hc.timeout),
        "retries": hc.retries,
        "start_period": go_duration(hc.start_period),
    })
}

/// A duration as Go prints one (`1m30s`, `1h0m0s`, `1.5s`, `500ms`), which is how Compose
/// writes them in `config`.
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        let ms = nanos as f64 / 1e6;
        return format!("{}ms", trim_float(ms));
    }
    let total = d.as_secs_f64();
    let hours = (total / 3600.0).floor() as u64;
    let minutes = ((total - hours as f64 * 3600.0) / 60.0).floor() as u64;
    let seconds = total - hours as f64 * 3600.0 - minutes as f64 * 60.0;
    let secs = format!("{}s", trim_float(seconds));
    match (hours, minutes) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

fn trim_float(x: f64) -> String {
    let text = format!("{x:.9}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The document as block YAML (JSON-quoted strings, which YAML reads back unchanged).
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    yaml_into(&mut out, value, 0);
    out
}

fn yaml_into(out: &mut String, value: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = yaml_key(k);
                match v {
                    Value::Object(m) if !m.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        yaml_into(out, v, indent + 2);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        yaml_into(out, v, indent + 2);
                    }
                    _ => out.push_str(&format!("{pad}{key}: {}\n", scalar(v))),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(m) if !m.is_empty() => {
                        let mut inner = String::new();
                        yaml_into(&mut inner, item, indent + 2);
                        out.push_str(&format!("{pad}- {}", &inner[indent + 2..]));
                    }
                    Value::Array(a) if !a.is_empty() => {
                        out.push_str(&format!("{pad}-\n"));
                        yaml_into(out, item, indent + 2);
                    }
                    _ => out.push_str(&format!("{pad}- {}\n", scalar(item))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        other => other.to_string(),
    }
}

fn yaml_key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !matches!(k, "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "~");
    if plain { k.to_string() } else { Value::String(k.to_string()).to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_options_are_printed_in_composes_shape() {
        let yaml = "services:\n  a:\n    image: x\n    user: app\n    cap_add: [NET_ADMIN]\n    \
                    extra_hosts: [\"db:10.0.0.2\"]\n    networks: { back: { ipv4_address: 10.5.0.2 } }\n  \
                    b:\n    image: x\n    network_mode: service:a\nnetworks:\n  back: {}\n";
        let bp =
            crate::model::load_bytes(std::path::Path::new("c.yaml"), yaml.as_bytes(), &Default::default()).unwrap();
        let doc = document(&bp, "p");
        let (a, b) = (&doc["services"]["a"], &doc["services"]["b"]);
        assert_eq!((&a["user"], &a["cap_add"]), (&json!("app"), &json!(["NET_ADMIN"])));
        assert_eq!(a["extra_hosts"], json!(["db=10.0.0.2"]));
        assert_eq!(a["networks"], json!({ "back": { "ipv4_address": "10.5.0.2" } }));
        assert_eq!(b["network_mode"], "service:a");
        assert!(b.get("networks").is_none() && doc["networks"].get("default").is_none(), "{doc:#}");
    }

    #[test]
    fn durations_read_as_go_prints_them() {
        for (d, text) in [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(120), "2m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
        ] {
            assert_eq!(go_duration(d), text);
        }
    }

    #[test]
    fn yaml_output_reads_back_as_the_same_document() {
        let doc = json!({ "name": "p", "services": { "web": {
            "command": ["a", "b c"], "entrypoint": null, "environment": { "K": "v: 1", "no": "x" },
            "ports": [{ "target": 80, "published": "8080" }], "networks": { "default": null }, "empty": {} } } });
        let text = to_yaml(&doc);
        let back = crate::model::node::parse(&text).expect("valid YAML");
        let web = back.get("services").and_then(|s| s.get("web")).expect("web");
        let port = match &web.get("ports").unwrap().value {
            crate::model::node::Value::Seq(items) => items[0].get("published").unwrap().value.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(port, crate::model::node::Value::Str("8080".into()));
        assert_eq!(web.get("environment").unwrap().get("no").unwrap().value.scalar_text().unwrap(), "x");
        assert_eq!(web.get("entrypoint").unwrap().value, crate::model::node::Value::Null);
    }
}
