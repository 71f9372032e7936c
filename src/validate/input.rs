//! Checks on what the engine would refuse later, or what would break scale itself, kept apart
//! from the structural checks in `validate.rs`: image references (the Docker reference
//! grammar), host IPs, container paths, scale's own label namespace, names that collide with
//! the names scale generates, and the build context's `.dockerignore` (checked here as `plan`
//! checks it).

use std::collections::HashMap;
use std::net::IpAddr;

use crate::build_context::{self, ContextError};
use crate::diag::{Diagnostic, Pos};
use crate::model::{Blueprint, Kind, Service};

/// The label namespace scale writes its own state in: a blueprint may not set these.
const OWN_LABELS: &str = "io.scale.";

/// Whether a label is scale's own state (refused in a blueprint): everything under
/// `io.scale.` except the labels a blueprint is meant to set ([`labels::ROLE`], a
/// description `scale diff` reads).
fn is_own_label(key: &str) -> bool {
    key.starts_with(OWN_LABELS) && key != crate::labels::ROLE
}

/// Every problem of this kind in one service.
pub(super) fn service_problems(bp: &Blueprint, s: &Service) -> Vec<Diagnostic> {
    let mut out = Problems { bp, service: s, found: Vec::new() };
    out.image();
    out.host_ips();
    out.container_paths();
    out.labels();
    out.dockerignore();
    out.found
}

/// Problems that concern the blueprint as a whole: labels on networks and volumes, and names
/// that collide with the ones scale generates.
pub(super) fn blueprint_problems(bp: &Blueprint) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    let defs = bp.networks.iter().map(|(n, d)| ("network", n, d.pos, &d.labels));
    for (what, name, pos, labels) in defs.chain(bp.volumes.iter().map(|(n, d)| ("volume", n, d.pos, &d.labels))) {
        if let Some(key) = labels.keys().find(|k| is_own_label(k)) {
            found.push(
                Diagnostic::at(&bp.file, pos, format!("{what} `{name}` sets label `{key}` in scale's own namespace"))
                    .hint(own_label_hint()),
            );
        }
    }
    found.extend(generated_name_collisions(bp));
    found
}

fn own_label_hint() -> String {
    format!(
        "labels starting with `{OWN_LABELS}` hold scale's state (project, spec hash, roles); use your own prefix (a blueprint may set only `io.scale.role`, a description)"
    )
}

/// Service names and aliases that collide with names scale generates: a postgres service
/// `db` answers to `db-primary` and `db-replica` and keeps volumes `db-<n>-data`; a service
/// `web` has containers `web-1`, `web-2`, … (chaos and status targets).
fn generated_name_collisions(bp: &Blueprint) -> Vec<Diagnostic> {
    // Each generated name, with the service that generates it and what it is.
    let mut generated: HashMap<String, (&str, &'static str)> = HashMap::new();
    for s in bp.services.iter().filter(|s| s.kind.as_ref().is_some_and(|k| k.value == Kind::Postgres)) {
        generated.insert(crate::kinds::postgres::primary_alias(&s.name), (&s.name, "the alias of its primary"));
        generated.insert(crate::kinds::postgres::replica_alias(&s.name), (&s.name, "the alias of its replicas"));
    }
    let services: HashMap<&str, &Service> = bp.services.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut found = Vec::new();
    for s in &bp.services {
        if let Some((owner, what)) = generated.get(&s.name) {
            found.push(
                Diagnostic::at(&bp.file, s.pos, format!("service `{}` has the name of {what}, `{owner}`", s.name))
                    .service(&s.name)
                    .hint(format!("rename it: clients of `{owner}` would reach it by that name")),
            );
        }
        for alias in s.networks.iter().flat_map(|n| &n.aliases) {
            match generated.get(alias) {
                Some((owner, what)) if *owner != s.name => found.push(
                    Diagnostic::at(&bp.file, s.pos, format!("alias `{alias}` is {what} `{owner}`"))
                        .service(&s.name)
                        .hint("pick another alias"),
                ),
                _ => {}
            }
        }
        if let Some((base, n)) = s.name.rsplit_once('-')
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
            && let Some(other) = services.get(base)
        {
            found.push(
                Diagnostic::at(
                    &bp.file,
                    s.pos,
                    format!("service `{}` has the name of a container of `{base}`", s.name),
                )
                .service(&s.name)
                .hint(format!(
                    "`{base}`'s containers are `{base}-1`, `{base}-2`, …; rename `{}` so targets such as \
                         `scale chaos kill {}` are not ambiguous (line {})",
                    s.name, s.name, other.pos.line
                )),
            );
        }
    }
    found
}

struct Problems<'a> {
    bp: &'a Blueprint,
    service: &'a Service,
    found: Vec<Diagnostic>,
}

impl Problems<'_> {
    fn push(&mut self, pos: Pos, message: impl Into<String>, hint: impl Into<String>) {
        self.found.push(Diagnostic::at(&self.bp.file, pos, message).service(&self.service.name).hint(hint));
    }

    /// `image:` must be a reference the engine accepts: `[registry[:port]/]name[:tag][@digest]`,
    /// lowercase name components (Docker's reference grammar, [`super::reference`]).
    fn image(&mut self) {
        let Some(image) = &self.service.image else { return };
        let text = image.value.as_str();
        if text.trim().is_empty() {
            self.push(image.pos, "`image:` is empty", "name an image, e.g. `image: nginx:1.27`");
            return;
        }
        if let Err(err) = super::reference::check(text) {
            self.push(
                image.pos,
                format!("image {text:?} is not a valid image reference: {err}"),
                "write [registry/]name[:tag][@digest] with a lowercase name, no spaces, e.g. `nginx:1.27` or `ghcr.io/org/app:v2`",
            );
        }
    }

    /// A host IP must be an IP address (IPv6 may be written in brackets).
    fn host_ips(&mut self) {
        for port in &self.service.ports {
            let Some(ip) = &port.value.host_ip else { continue };
            let bare = ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')).unwrap_or(ip);
            if bare.parse::<IpAddr>().is_err() {
                self.push(
                    port.pos,
                    format!("host IP {ip:?} is not an IP address"),
                    "write an IPv4 address like 127.0.0.1, or IPv6 in brackets like \"[::1]:8080:80\"; leave it out for all addresses",
                );
            }
        }
    }

    /// A mount at `/` would hide the container's whole file system, and a path with `..`
    /// escapes where it seems to point.
    fn container_paths(&mut self) {
        for mount in &self.service.volumes {
            let target = mount.value.target.as_str();
            if !target.starts_with('/') {
                continue; // "must be absolute" is reported by validate.rs
            }
            if target.trim_end_matches('/').is_empty() {
                self.push(
                    mount.pos,
                    "mounts over `/`, the container's whole file system",
                    "mount at a directory such as /data",
                );
            } else if target.split('/').any(|c| c == "..") {
                self.push(
                    mount.pos,
                    format!("container path {target} contains `..`"),
                    "write the path without `..`, e.g. /app/data instead of /app/x/../data",
                );
            }
        }
    }

    fn labels(&mut self) {
        if let Some(key) = self.service.labels.keys().find(|k| is_own_label(k)) {
            let message = format!("label `{key}` is in scale's own namespace");
            self.push(self.service.pos, message, own_label_hint());
        }
    }

    /// The `.dockerignore` `plan` would read: readable, a regular file, patterns that parse.
    /// A missing context or Dockerfile is reported by `validate.rs` already.
    fn dockerignore(&mut self) {
        let Some(build) = &self.service.build else { return };
        match build_context::check(&build.value) {
            Ok(())
            | Err(
                ContextError::MissingContext { .. }
                | ContextError::MissingDockerfile { .. }
                | ContextError::DockerfileOutside { .. },
            ) => {}
            Err(err) => {
                let hint = match err {
                    ContextError::BadPattern { .. } => {
                        "`.dockerignore` patterns use Go's filepath.Match syntax plus `**`; fix or remove the line"
                    }
                    _ => "the context's `.dockerignore` must be a readable regular file",
                };
                self.push(build.pos, err.to_string(), hint);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::model::{Env, load_bytes_lenient};

    fn problems(yaml: &str) -> Vec<String> {
        let (bp, mut diags) = load_bytes_lenient(Path::new("t.yaml"), yaml.as_bytes(), &Env::default());
        if let Some(bp) = bp {
            diags.0.extend(crate::validate::validate(&bp, None));
        }
        diags.0.iter().map(|d| format!("{}: {}", d.service.as_deref().unwrap_or("-"), d.message)).collect()
    }

    fn one(yaml: &str, expect: &str) {
        let found = problems(yaml);
        assert!(found.iter().any(|p| p.contains(expect)), "expected {expect:?} in {found:?}");
    }

    fn svc(body: &str) -> String {
        format!("name: shop\nservices:\n  web:\n{body}")
    }

    #[test]
    fn image_references_follow_the_docker_grammar() {
        one(&svc("    image: \"\"\n"), "web: `image:` is empty");
        one(&svc("    image: \"we b\"\n"), "is not a valid image reference");
        one(&svc("    image: \"Nginx\"\n"), "is not a valid image reference");
        one(&svc("    image: \"nginx::1\"\n"), "is not a valid image reference");
        for good in ["nginx", "nginx:1.27", "ghcr.io/org/app:v2", "localhost:5000/a/b", "debian:bookworm-slim"] {
            assert_eq!(problems(&svc(&format!("    image: \"{good}\"\n"))), Vec::<String>::new(), "{good}");
        }
    }

    #[test]
    fn host_ips_must_be_ips_and_ipv6_goes_in_brackets() {
        one(&svc("    image: x\n    ports: [\"999.1.1.1:81:80\"]\n"), "host IP \"999.1.1.1\" is not an IP address");
        one(&svc("    image: x\n    ports: [{target: 80, host_ip: not-ip}]\n"), "\"not-ip\" is not an IP address");
        for good in ["[::1]:8080:80", "127.0.0.1:8080:80", "[::]:81:80/udp", "8080:80"] {
            assert_eq!(
                problems(&svc(&format!("    image: x\n    ports: [\"{good}\"]\n"))),
                Vec::<String>::new(),
                "{good}"
            );
        }
    }

    #[test]
    fn container_paths_that_are_root_or_escape_are_refused() {
        one(&svc("    image: x\n    volumes: [\"data:/\"]\nvolumes:\n  data: {}\n"), "mounts over `/`");
        one(&svc("    image: x\n    volumes: [\"data:/a/../etc\"]\nvolumes:\n  data: {}\n"), "contains `..`");
    }

    #[test]
    fn labels_in_scales_namespace_are_refused_everywhere() {
        one(&svc("    image: x\n    labels: {io.scale.project: other}\n"), "web: label `io.scale.project`");
        one(
            "name: shop\nservices:\n  web: {image: x}\nvolumes:\n  v: {labels: {io.scale.x: y}}\n",
            "volume `v` sets label",
        );
    }

    /// `io.scale.role` is the one label of scale's a blueprint sets on purpose (a service's
    /// description for `scale diff`); the stage 5 and 6 blueprints use it.
    #[test]
    fn the_role_label_is_the_one_a_blueprint_may_set() {
        assert_eq!(problems(&svc("    image: x\n    labels: {io.scale.role: a Redis cache}\n")), Vec::<String>::new());
        one(&svc("    image: x\n    labels: {io.scale.roles: x}\n"), "web: label `io.scale.roles`");
    }

    #[test]
    fn names_colliding_with_generated_ones_are_refused() {
        let pg = "name: shop\nservices:\n  db:\n    kind: postgres\n    image: postgres:16\n    password: x\n";
        one(
            &format!("{pg}  db-replica:\n    image: x\n"),
            "service `db-replica` has the name of the alias of its replicas",
        );
        one(
            &format!("{pg}  app:\n    image: x\n    networks: {{default: {{aliases: [db-primary]}}}}\n"),
            "alias `db-primary`",
        );
        one("name: shop\nservices:\n  web: {image: x}\n  web-2: {image: x}\n", "has the name of a container of `web`");
    }

    #[test]
    fn no_services_is_an_error_and_problems_in_a_service_name_it() {
        one("name: shop\nservices: {}\n", "`services:` is empty");
        one("name: shop\nservices:\n", "`services:` is empty");
        one(&svc("    image: x\n    comand: y\n"), "web: unknown key `comand`");
    }
}
