//! Compose options that cannot work together with the rest of the file on one engine:
//! `network_mode` beside `networks:`, a kind or a load balancer's backends, and
//! `container_name` where scale runs more than one container or the name is taken twice.

use crate::diag::Diagnostic;
use crate::model::{Blueprint, NetworkMode, Service};

/// The engine's rule for container names (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`).
fn valid_container_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() > 1
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Problems of one service's Compose options.
pub fn service_problems(bp: &Blueprint, s: &Service) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let error = |message: String, hint: &str| Diagnostic::at(&bp.file, s.pos, message).service(&s.name).hint(hint);
    if let Some(mode) = &s.compose.options.network_mode {
        let what = format!("services.{}.network_mode: {}", s.name, mode.as_compose());
        if !s.networks.is_empty() {
            out.push(error(
                format!("{what} cannot be combined with `networks:`"),
                "keep one: `network_mode` shares another network stack, `networks` joins the project's networks",
            ));
        }
        if let Some(kind) = &s.kind {
            out.push(error(
                format!("{what}: a `kind: {}` service needs the project's networks", kind.value.as_str()),
                "remove `network_mode`: scale wires this kind on its own networks",
            ));
        }
        if let Some(lb) =
            bp.services.iter().find(|o| o.load_balancer.as_ref().is_some_and(|l| l.backend_service.value == s.name))
        {
            out.push(error(
                format!("{what}: the load balancer `{}` reaches its backends on the project's networks", lb.name),
                "remove `network_mode` from the backend service",
            ));
        }
        if matches!(mode, NetworkMode::Service(_) | NetworkMode::Container(_)) && !s.ports.is_empty() {
            out.push(error(
                format!("{what}: a container sharing another's network stack cannot publish ports"),
                "publish the ports on the service whose network stack this one shares",
            ));
        }
        if let NetworkMode::Service(other) = mode {
            match bp.service(other) {
                None if !bp.inactive_services.contains(other) => out.push(error(
                    format!("{what}: there is no service `{other}`"),
                    "name a service of this file, or use container:NAME for a container outside the project",
                )),
                Some(o) if o.name == s.name => out.push(error(
                    format!("{what}: a service cannot share its own network stack"),
                    "name another service",
                )),
                _ => {}
            }
        }
    }
    if let Some(name) = &s.compose.container_name {
        let at = |message: String, hint: &str| Diagnostic::at(&bp.file, name.pos, message).service(&s.name).hint(hint);
        if !valid_container_name(&name.value) {
            out.push(at(
                format!("services.{}.container_name: {:?} is not a valid container name", s.name, name.value),
                "use letters, digits, `_`, `.` and `-`, starting with a letter or digit",
            ));
        }
        if s.kind.is_some() {
            out.push(at(
                format!("services.{}.container_name: a `kind:` service names its own containers", s.name),
                "remove `container_name`",
            ));
        }
        let first =
            bp.services.iter().find(|o| o.compose.container_name.as_ref().is_some_and(|n| n.value == name.value));
        if first.is_some_and(|o| o.name != s.name) {
            out.push(at(
                format!(
                    "services.{}.container_name: {:?} is already the name of another service's container",
                    s.name, name.value
                ),
                "give each service its own container_name",
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::model::{Env, load_bytes};

    fn problems(yaml: &str) -> String {
        let bp = load_bytes(Path::new("compose.yaml"), yaml.as_bytes(), &Env::default()).unwrap();
        bp.services
            .iter()
            .flat_map(|s| super::service_problems(&bp, s))
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn network_mode_conflicts_are_named() {
        let text = problems(
            "services:\n  a:\n    image: x\n    network_mode: host\n    networks: [default]\n  \
             b:\n    image: x\n    network_mode: service:nope\n    ports: [\"80\"]\n  \
             c:\n    image: x\n    network_mode: service:a\n",
        );
        assert!(text.contains("network_mode: service:nope: a container sharing another's network stack"), "{text}");
        assert!(text.contains("network_mode: host cannot be combined with `networks:`"), "{text}");
        assert!(text.contains("there is no service `nope`"), "{text}");
        assert!(!text.contains("services.c"), "{text}");
    }

    #[test]
    fn container_names_must_be_valid_and_distinct() {
        let text = problems(
            "services:\n  a:\n    image: x\n    container_name: web\n  b:\n    image: x\n    container_name: web\n  \
             c:\n    image: x\n    container_name: \"-bad\"\n",
        );
        assert!(text.contains("services.b.container_name: \"web\" is already"), "{text}");
        assert!(!text.contains("services.a.container_name"), "{text}");
        assert!(text.contains("\"-bad\" is not a valid container name"), "{text}");
    }
}
