//! Compose's merge rules, on the position-carrying tree: how `-f a.yaml -f b.yaml`, the
//! `compose.override.yaml` beside a file, and `extends` combine. Working on [`Node`]s (not on
//! typed services) keeps every value's file, line and column, so a problem found after the
//! merge still points at the file that wrote the value.
//!
//! The rules (Compose Specification, "Merge"): mappings merge key by key, the later value wins
//! for scalars; sequences append; `command`, `entrypoint` and `healthcheck.test` are replaced;
//! `environment`, `labels`, `build.args`, `sysctls`, `networks` and `depends_on` merge as
//! mappings even when written as lists; `ports`, `volumes`, `secrets` and `configs` append but
//! an entry with the same unique key (the mount target, the published port …) replaces the
//! earlier one; `dns`, `expose`, `cap_add` and the like append without repeats.

use super::node::{Key, Node, Value};

/// Service keys whose later value replaces the earlier one outright.
const REPLACED: &[&str] = &["command", "entrypoint"];
/// Service keys written as `KEY=value` lists or mappings, merged as mappings.
const AS_MAPPING: &[&str] = &["environment", "labels", "sysctls", "annotations", "extra_hosts"];
/// Service keys whose entries are unique by value: appended without repeats.
const UNIQUE_VALUES: &[&str] =
    &["dns", "dns_search", "dns_opt", "expose", "tmpfs", "cap_add", "cap_drop", "security_opt", "profiles", "env_file"];

/// Merges `over` into `base` as Compose merges a later file into an earlier one.
pub fn merge_files(base: Node, over: Node) -> Node {
    merge(base, over, &[])
}

/// Merges a service definition over the one it `extends` (the same rules as files).
pub fn merge_service(base: Node, over: Node) -> Node {
    merge(base, over, &["services", "_"])
}

fn merge(base: Node, over: Node, path: &[&str]) -> Node {
    let in_service = path.len() == 3 && path[0] == "services";
    let key = path.last().copied().unwrap_or("");
    if in_service && REPLACED.contains(&key) || path.len() == 4 && path[2] == "healthcheck" && key == "test" {
        return over;
    }
    if matches!(over.value, Value::Null) {
        return base;
    }
    let build_args = path.len() == 4 && path[2] == "build" && key == "args";
    let (base, over) = if in_service && UNIQUE_VALUES.contains(&key) {
        (as_list(base), as_list(over))
    } else if build_args || in_service && (AS_MAPPING.contains(&key) || matches!(key, "networks" | "depends_on")) {
        (as_mapping(base, key), as_mapping(over, key))
    } else {
        (base, over)
    };
    match (base.value, over.value) {
        (Value::Map(mut entries), Value::Map(over_entries)) => {
            for (k, v) in over_entries {
                let mut child: Vec<&str> = path.to_vec();
                child.push(&k.name);
                match entries.iter().position(|(bk, _)| bk.name == k.name) {
                    Some(i) => {
                        let (bk, bv) = entries.remove(i);
                        let merged = merge(bv, v, &child);
                        entries.insert(i, (bk, merged));
                    }
                    None => entries.push((k, v)),
                }
            }
            Node { value: Value::Map(entries), pos: base.pos }
        }
        (Value::Seq(mut items), Value::Seq(over_items)) => {
            if in_service && matches!(key, "ports" | "volumes" | "secrets" | "configs" | "devices") {
                for item in over_items {
                    let id = unique_key(key, &item);
                    items.retain(|old| id.is_none() || unique_key(key, old) != id);
                    items.push(item);
                }
            } else if in_service && UNIQUE_VALUES.contains(&key) {
                for item in over_items {
                    if !items.iter().any(|old| old.value == item.value) {
                        items.push(item);
                    }
                }
            } else {
                items.extend(over_items);
            }
            Node { value: Value::Seq(items), pos: base.pos }
        }
        (_, value) => Node { value, pos: over.pos },
    }
}

/// A scalar written where a list may be (`env_file: a.env`, `dns: 1.1.1.1`) as a list of it.
fn as_list(node: Node) -> Node {
    match node.value {
        Value::Seq(_) | Value::Map(_) | Value::Null => node,
        _ => Node { pos: node.pos, value: Value::Seq(vec![node]) },
    }
}

/// A `KEY=value` list (or a list of names for `networks` and `depends_on`) as a mapping;
/// mappings and other shapes are returned as they are (the decoder reports wrong shapes).
fn as_mapping(node: Node, key: &str) -> Node {
    let Value::Seq(items) = node.value else { return node };
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        let Some(text) = item.value.scalar_text() else {
            return Node { value: Value::Seq(vec![item]), pos: node.pos };
        };
        let pos = item.pos;
        let (name, value) = match key {
            "networks" => (text, Value::Null),
            "depends_on" => {
                let cond = Node { value: Value::Str("service_started".into()), pos };
                (text, Value::Map(vec![(Key { name: "condition".into(), pos }, cond)]))
            }
            "extra_hosts" => match text.split_once('=').or_else(|| text.split_once(':')) {
                Some((k, v)) => (k.to_string(), Value::Str(v.to_string())),
                None => (text, Value::Null),
            },
            _ => match text.split_once('=') {
                Some((k, v)) => (k.to_string(), Value::Str(v.to_string())),
                None => (text, Value::Null),
            },
        };
        entries.retain(|(k, _): &(Key, Node)| k.name != name);
        entries.push((Key { name, pos }, Node { value, pos }));
    }
    Node { value: Value::Map(entries), pos: node.pos }
}

/// What makes an entry of `ports`, `volumes`, `secrets`, `configs` or `devices` the same
/// entry for merging: the container path or secret target, or the published port.
fn unique_key(key: &str, item: &Node) -> Option<String> {
    let field = |name: &str| item.get(name).and_then(|n| n.value.scalar_text());
    match (&item.value, key) {
        (Value::Map(_), "ports") => Some(format!(
            "{}:{}:{}/{}",
            field("host_ip").unwrap_or_default(),
            field("published").unwrap_or_default(),
            field("target").unwrap_or_default(),
            field("protocol").unwrap_or_else(|| "tcp".into())
        )),
        (Value::Map(_), "secrets" | "configs") => field("target").or_else(|| field("source")),
        (Value::Map(_), _) => field("target"),
        (_, "ports") => {
            let text = item.value.scalar_text()?;
            let p = super::decode::parse_port(&text).ok()?;
            Some(format!(
                "{}:{}:{}/{}",
                p.host_ip.unwrap_or_default(),
                p.host_port.map(|h| h.to_string()).unwrap_or_default(),
                p.container_port,
                p.protocol.as_str()
            ))
        }
        (_, "secrets" | "configs") => item.value.scalar_text(),
        (_, _) => {
            let text = item.value.scalar_text()?;
            let parts: Vec<&str> = text.split(':').collect();
            Some(parts.get(1).unwrap_or(&parts[0]).to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::node::parse;

    fn merged(a: &str, b: &str) -> Node {
        let mut over = parse(b).unwrap();
        over.set_file(1);
        merge_files(parse(a).unwrap(), over)
    }

    fn service<'a>(n: &'a Node, key: &str) -> &'a Node {
        n.get("services").and_then(|s| s.get("web")).and_then(|w| w.get(key)).unwrap()
    }

    fn texts(n: &Node) -> Vec<String> {
        match &n.value {
            Value::Seq(items) => items.iter().filter_map(|i| i.value.scalar_text()).collect(),
            Value::Map(entries) => entries
                .iter()
                .map(|(k, v)| format!("{}={}", k.name, v.value.scalar_text().unwrap_or_default()))
                .collect(),
            _ => vec![n.value.scalar_text().unwrap_or_default()],
        }
    }

    #[test]
    fn scalars_are_replaced_and_mappings_merged_keeping_each_files_position() {
        let n = merged(
            "services:\n  web:\n    image: a\n    restart: always\n",
            "services:\n  web:\n    image: b\n  db:\n    image: pg\n",
        );
        let image = service(&n, "image");
        assert_eq!(texts(image), ["b"]);
        assert_eq!((image.pos.file, image.pos.line), (1, 3), "the override's value keeps its own file and line");
        assert_eq!(texts(service(&n, "restart")), ["always"]);
        assert!(n.get("services").unwrap().get("db").is_some());
    }

    #[test]
    fn commands_are_replaced_sequences_appended_and_lists_merged_as_mappings() {
        let n = merged(
            "services:\n  web:\n    command: [a, b]\n    dns: [1.1.1.1]\n    environment: [A=1, B=2]\n    \
             healthcheck: { test: [CMD, x], retries: 3 }\n",
            "services:\n  web:\n    command: [c]\n    dns: [8.8.8.8, 1.1.1.1]\n    environment: { B: 3, C: 4 }\n    \
             healthcheck: { test: [CMD, probe] }\n",
        );
        assert_eq!(texts(service(&n, "command")), ["c"]);
        assert_eq!(texts(service(&n, "dns")), ["1.1.1.1", "8.8.8.8"]);
        let files = merged("services:\n  web:\n    env_file: a.env\n", "services:\n  web:\n    env_file: [b.env]\n");
        assert_eq!(texts(service(&files, "env_file")), ["a.env", "b.env"], "a single file merges like a list of one");
        assert_eq!(texts(service(&n, "environment")), ["A=1", "B=3", "C=4"]);
        let hc = service(&n, "healthcheck");
        assert_eq!(texts(hc.get("test").unwrap()), ["CMD", "probe"]);
        assert_eq!(texts(hc.get("retries").unwrap()), ["3"]);
    }

    #[test]
    fn ports_and_volumes_are_unique_by_their_key() {
        let n = merged(
            "services:\n  web:\n    ports: [\"8080:80\", \"9000:9000\"]\n    volumes: [\"a:/data\", \"./x:/x\"]\n",
            "services:\n  web:\n    ports: [\"8080:80\", \"443:443\"]\n    volumes: [\"b:/data\"]\n",
        );
        assert_eq!(texts(service(&n, "ports")), ["9000:9000", "8080:80", "443:443"]);
        assert_eq!(texts(service(&n, "volumes")), ["./x:/x", "b:/data"]);
    }

    #[test]
    fn networks_and_depends_on_in_list_form_merge_with_mappings() {
        let n = merged(
            "services:\n  web:\n    networks: [front]\n    depends_on: [db]\n",
            "services:\n  web:\n    networks: { back: { aliases: [api] } }\n    depends_on: { cache: { condition: service_healthy } }\n",
        );
        let nets: Vec<String> = match &service(&n, "networks").value {
            Value::Map(e) => e.iter().map(|(k, _)| k.name.clone()).collect(),
            other => panic!("{other:?}"),
        };
        assert_eq!(nets, ["front", "back"]);
        let deps = service(&n, "depends_on");
        assert!(deps.get("db").and_then(|d| d.get("condition")).is_some());
        assert!(deps.get("cache").is_some());
    }
}
