//! Why a container must be replaced, in a user's words, from comparing the spec stored in its
//! label with the desired one. Values of secret-looking variables never appear.

use std::collections::BTreeSet;

use crate::spec::{ContainerSpec, MountSourceSpec, PortSpec};

/// Whether an environment variable's value must not be printed.
pub fn is_secret(key: &str) -> bool {
    let upper = key.to_ascii_uppercase();
    ["PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY", "CREDENTIAL"].iter().any(|w| upper.contains(w))
}

/// Hides the password of any `scheme://user:password@host` in a value.
pub fn mask_credentials(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', '?', '#', ' ']).unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon]);
                out.push_str(":***");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

/// Shortens long values so one reason stays on one line, and never shows a URL's password.
fn short(value: &str) -> String {
    let one_line = mask_credentials(value).replace('\n', "\\n");
    if one_line.chars().count() > 40 {
        format!("{}…", one_line.chars().take(39).collect::<String>())
    } else {
        one_line
    }
}

fn port_text(p: &PortSpec) -> String {
    let proto = if p.protocol == crate::model::Protocol::Udp { "/udp" } else { "" };
    let ip = p.host_ip.as_deref().map(|ip| format!("{ip}:")).unwrap_or_default();
    match p.host_port {
        Some(h) => format!("{ip}{h}:{}{proto}", p.container_port),
        None => format!("{ip}{}{proto}", p.container_port),
    }
}

fn list(items: impl IntoIterator<Item = String>) -> String {
    let items: Vec<String> = items.into_iter().collect();
    if items.is_empty() { "none".into() } else { items.join(", ") }
}

fn words(command: &Option<Vec<String>>) -> String {
    match command {
        None => "the image's default".into(),
        Some(words) => short(&shell_words::join(words)),
    }
}

/// Every user-visible difference between the running spec and the desired one.
pub fn container_changes(old: &ContainerSpec, new: &ContainerSpec) -> Vec<String> {
    let mut out = Vec::new();
    if old.image != new.image {
        let (old_repo, new_repo) = (repository(&old.image), repository(&new.image));
        if old_repo == new_repo && new_repo.starts_with(&format!("{}/", project_of(&new.name, &new.service))) {
            out.push(format!("image rebuilt ({} → {}: build context changed)", tag(&old.image), tag(&new.image)));
        } else {
            out.push(format!("image {} → {}", old.image, new.image));
        }
    }
    if old.command != new.command {
        out.push(format!("command changed ({} → {})", words(&old.command), words(&new.command)));
    }
    if old.entrypoint != new.entrypoint {
        out.push(format!("entrypoint changed ({} → {})", words(&old.entrypoint), words(&new.entrypoint)));
    }
    let keys: BTreeSet<&String> = old.env.keys().chain(new.env.keys()).collect();
    for key in keys {
        let secret = is_secret(key);
        match (old.env.get(key), new.env.get(key)) {
            (Some(a), Some(b)) if a != b && secret => out.push(format!("environment {key} changed (value hidden)")),
            (Some(a), Some(b)) if a != b => {
                out.push(format!("environment {key} changed ({} → {})", short(a), short(b)))
            }
            (None, Some(_)) if secret => out.push(format!("environment {key} added")),
            (None, Some(b)) => out.push(format!("environment {key} added ({})", short(b))),
            (Some(_), None) => out.push(format!("environment {key} removed")),
            _ => {}
        }
    }
    if old.ports != new.ports {
        out.push(format!(
            "ports {} → {}",
            list(old.ports.iter().map(port_text)),
            list(new.ports.iter().map(port_text))
        ));
    }
    if old.networks != new.networks {
        let names = |s: &ContainerSpec| {
            list(s.networks.iter().map(|n| {
                let extra: Vec<&String> = n.aliases.iter().filter(|a| **a != s.service).collect();
                if extra.is_empty() {
                    n.network.clone()
                } else {
                    format!(
                        "{} (aliases {})",
                        n.network,
                        extra.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(" ")
                    )
                }
            }))
        };
        out.push(format!("networks {} → {}", names(old), names(new)));
    }
    if old.mounts != new.mounts {
        let mounts = |s: &ContainerSpec| {
            list(s.mounts.iter().map(|m| {
                let source = match &m.source {
                    MountSourceSpec::Volume(v) => format!("{v}:"),
                    MountSourceSpec::Bind(p) => format!("{}:", p.display()),
                    MountSourceSpec::Anonymous => String::new(),
                };
                format!("{source}{}{}", m.target, if m.read_only { ":ro" } else { "" })
            }))
        };
        out.push(format!("volumes {} → {}", mounts(old), mounts(new)));
    }
    if old.healthcheck != new.healthcheck {
        out.push(match (&old.healthcheck, &new.healthcheck) {
            (None, Some(_)) => "healthcheck added".into(),
            (Some(_), None) => "healthcheck removed".into(),
            _ => "healthcheck changed".into(),
        });
    }
    if old.restart != new.restart {
        out.push(format!("restart {} → {}", old.restart.as_str(), new.restart.as_str()));
    }
    out.extend(label_changes(old, new));
    out.extend(option_changes(old, new));
    if out.is_empty() && old != new {
        out.push("settings changed".into());
    }
    out
}

fn or_none(text: &str) -> &str {
    if text.is_empty() { "none" } else { text }
}

fn label_changes(old: &ContainerSpec, new: &ContainerSpec) -> Vec<String> {
    let keys: BTreeSet<&String> = old.labels.keys().chain(new.labels.keys()).collect();
    keys.into_iter()
        .filter_map(|key| match (old.labels.get(key), new.labels.get(key)) {
            (Some(a), Some(b)) if a != b && key == crate::labels::NETWORK_FROM => {
                Some("the container whose network stack it shares is replaced".into())
            }
            (Some(a), Some(b)) if a != b => Some(format!("label {key} changed ({} → {})", short(a), short(b))),
            (None, Some(_)) => Some(format!("label {key} added")),
            (Some(_), None) => Some(format!("label {key} removed")),
            _ => None,
        })
        .collect()
}

/// The hostname and each Compose option that differs, by its Compose name (`user 1000 → app`).
fn option_changes(old: &ContainerSpec, new: &ContainerSpec) -> Vec<String> {
    let mut out = Vec::new();
    if old.hostname != new.hostname {
        out.push(format!("hostname {} → {}", or_none(&old.hostname), or_none(&new.hostname)));
    }
    if old.options == new.options {
        return out;
    }
    let (a, b) = (old.options.fields(), new.options.fields());
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let show = |v: Option<&serde_json::Value>| match v {
        None => "none".to_string(),
        Some(serde_json::Value::String(s)) => short(s),
        Some(other) => short(&other.to_string()),
    };
    out.extend(
        keys.into_iter()
            .filter(|k| a.get(*k) != b.get(*k))
            .map(|k| format!("{k} {} → {}", show(a.get(k)), show(b.get(k)))),
    );
    out
}

fn repository(reference: &str) -> &str {
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => reference,
    }
}

fn tag(reference: &str) -> &str {
    match reference.rsplit_once(':') {
        Some((_, tag)) if !tag.contains('/') => tag,
        _ => "latest",
    }
}

/// `<project>` from a container name `<project>-<service>-<n>`.
fn project_of<'a>(name: &'a str, service: &str) -> &'a str {
    let suffix_len = service.len() + 2 + name.rsplit('-').next().map_or(0, str::len);
    &name[..name.len().saturating_sub(suffix_len)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            image: "shop/web:aaaaaaaaaaaa".into(),
            env: BTreeMap::from([("GREETING".into(), "hello".into()), ("DB_PASSWORD".into(), "s3cret".into())]),
            ..crate::spec::test_spec("shop-web-2", "web", 2)
        }
    }

    #[test]
    fn compose_options_are_named_when_they_change() {
        let old = spec();
        let mut new = spec();
        new.options.user = Some("1000".into());
        new.options.cap_add = vec!["NET_ADMIN".into()];
        new.hostname = "api".into();
        let reasons = container_changes(&old, &new);
        assert!(reasons.contains(&"user none → 1000".to_string()), "{reasons:?}");
        assert!(reasons.contains(&"cap_add none → [\"NET_ADMIN\"]".to_string()), "{reasons:?}");
        assert!(reasons.contains(&"hostname shop-web-2 → api".to_string()), "{reasons:?}");
    }

    #[test]
    fn environment_changes_are_named_and_secrets_hidden() {
        let old = spec();
        let mut new = spec();
        new.env.insert("GREETING".into(), "hi".into());
        new.env.insert("DB_PASSWORD".into(), "other".into());
        new.env.insert("API_TOKEN".into(), "t".into());
        let reasons = container_changes(&old, &new);
        assert_eq!(
            reasons,
            vec![
                "environment API_TOKEN added",
                "environment DB_PASSWORD changed (value hidden)",
                "environment GREETING changed (hello → hi)"
            ]
        );
        assert!(!reasons.join(" ").contains("s3cret"));
    }

    #[test]
    fn url_passwords_are_masked() {
        assert_eq!(mask_credentials("postgres://app:s3cret@db:5432/app"), "postgres://app:***@db:5432/app");
        assert_eq!(mask_credentials("x http://h/p?a=b://u:p@q"), "x http://h/p?a=b://u:***@q");
        assert_eq!(mask_credentials("https://user@host/x"), "https://user@host/x");
        assert_eq!(mask_credentials("no url here"), "no url here");
        let old = spec();
        let mut new = spec();
        new.env.insert("DATABASE_URL".into(), "postgres://app:hunter2@db-primary:5432/app".into());
        let reasons = container_changes(&old, &new).join("; ");
        assert!(reasons.contains("postgres://app:***@db-primary:5432/app"), "{reasons}");
        assert!(!reasons.contains("hunter2"));
    }

    #[test]
    fn rebuilt_images_say_the_context_changed() {
        let old = spec();
        let mut new = spec();
        new.image = "shop/web:bbbbbbbbbbbb".into();
        assert_eq!(
            container_changes(&old, &new),
            vec!["image rebuilt (aaaaaaaaaaaa → bbbbbbbbbbbb: build context changed)"]
        );
        new.image = "nginx:1.27".into();
        assert_eq!(container_changes(&old, &new), vec!["image shop/web:aaaaaaaaaaaa → nginx:1.27"]);
    }

    #[test]
    fn ports_and_restart() {
        let old = spec();
        let mut new = spec();
        new.ports.push(PortSpec {
            container_port: 80,
            protocol: crate::model::Protocol::Tcp,
            host_ip: None,
            host_port: Some(8080),
        });
        new.restart = crate::model::RestartPolicy::Always;
        assert_eq!(container_changes(&old, &new), vec!["ports none → 8080:80", "restart no → always"]);
    }
}
