//! Semantic checks on a decoded blueprint: the problems YAML and the schema cannot see
//! (names Docker would refuse, references to things that do not exist, dependency cycles,
//! port clashes), each reported with file, line:col, service and what to do about it.
//!
//! Every check runs to the end and reports every problem, so a user fixes a blueprint in
//! one pass instead of one error per run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use crate::diag::{Diagnostic, Diagnostics, Pos};
use crate::model::{At, Blueprint, Kind, MountSource, NameSource, Service, duration};

mod compose;
mod input;
mod reference;
mod suggest;

/// Project names become label values, container, network and volume name prefixes and DNS
/// labels, so they are kept to what all of those accept.
const MAX_PROJECT_NAME: usize = 63;

/// Service names are DNS names on the project's networks; a DNS label is at most 63 bytes.
const MAX_SERVICE_NAME: usize = 63;

/// Shortest healthcheck interval that is not a typo: faster probes only load the container.
const MIN_HEALTHCHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Shortest timeout the engine accepts (it rejects anything below a millisecond but zero,
/// and zero silently means "the 30 s default").
const MIN_HEALTHCHECK_TIMEOUT: Duration = Duration::from_millis(1);

/// Bounds the dependency-cycle search so a hostile blueprint cannot make it slow.
const MAX_CYCLES: usize = 50;
const MAX_CYCLE_STEPS: usize = 200_000;

/// Things worth telling about a valid blueprint that are not problems: defaults that are
/// fine to learn with and wrong in production.
pub fn notes(bp: &Blueprint) -> Vec<String> {
    bp.services
        .iter()
        .filter(|s| s.postgres.as_ref().is_some_and(|pg| pg.password_is_default))
        .map(|s| {
            format!(
                "service `{}` has no `password:`; PostgreSQL uses the default password `{}` \
                 (set `password:`, e.g. `password: ${{DB_PASSWORD}}`)",
                s.name,
                crate::model::DEFAULT_POSTGRES_PASSWORD
            )
        })
        .collect()
}

/// Every semantic problem in the blueprint, each with file and line:col or service, in
/// file order.
pub fn validate(bp: &Blueprint, project_override: Option<&str>) -> Vec<Diagnostic> {
    // Names are looked up once per dependency: a set keeps that linear in the blueprint's size
    // (a scan of every service per lookup would be quadratic).
    let declared = bp.services.iter().map(|s| s.name.as_str()).chain(bp.incomplete_services.iter().map(String::as_str));
    let names = Names {
        services: suggest::NameIndex::new(bp.services.iter().map(|s| s.name.as_str())),
        networks: suggest::NameIndex::new(bp.networks.keys().map(String::as_str)),
        volumes: suggest::NameIndex::new(bp.volumes.keys().map(String::as_str)),
    };
    let mut v = Validator { bp, declared: declared.collect(), names, problems: Vec::new() };
    if let Err(d) = project_name(bp, project_override) {
        v.problems.push(d);
    }
    v.resource_names();
    for service in &bp.services {
        v.service_name(service);
        v.image_or_build(service);
        v.build_context(service);
        v.dependencies(service);
        v.networks(service);
        v.mounts(service);
        v.replicated_ports(service);
        v.autoscaled(service);
        v.kind(service);
        v.environment(service);
        v.healthcheck(service);
        v.problems.extend(input::service_problems(bp, service));
        v.problems.extend(compose::service_problems(bp, service));
    }
    v.problems.extend(input::blueprint_problems(bp));
    v.host_ports();
    v.cycles();
    v.problems.extend(crate::model::lesson::check_references(bp));
    Diagnostics(v.problems).sorted().0
}

/// The project name to use, as Compose picks it: `-p`, else the blueprint's `name:`, else
/// `COMPOSE_PROJECT_NAME`, else the project directory's name (already normalised); it must be
/// a valid project name because every resource name and label is derived from it.
pub fn project_name(bp: &Blueprint, project_override: Option<&str>) -> Result<String, Diagnostic> {
    let (name, pos, source) = match (project_override, &bp.name, &bp.implicit_name) {
        (Some(p), _, _) => (p, Pos::default(), " (from -p)"),
        (None, Some(name), _) => (name.value.as_str(), name.pos, ""),
        (None, None, Some(implicit)) => {
            let source = match implicit.source {
                NameSource::Environment => " (from COMPOSE_PROJECT_NAME)",
                NameSource::Directory => " (from the directory's name)",
            };
            (implicit.value.as_str(), Pos::default(), source)
        }
        (None, None, None) => {
            return Err(Diagnostic::file(&bp.file, "the blueprint has no project name")
                .hint("add `name: myproject` at the top of the blueprint, or pass `-p myproject`"));
        }
    };
    match project_name_problem(name) {
        None => Ok(name.to_string()),
        Some(why) => {
            let mut hint = String::from(PROJECT_NAME_RULE);
            if let Some(better) = suggest_name(name, MAX_PROJECT_NAME) {
                hint.push_str(&format!("; e.g. `{better}`"));
            }
            Err(Diagnostic::at(&bp.file, pos, format!("project name {name:?}{source} is not valid: {why}")).hint(hint))
        }
    }
}

const PROJECT_NAME_RULE: &str = "a project name uses lowercase letters, digits, `_` and `-`, starts with a letter or \
     digit, and is at most 63 characters";

/// Checks a project name given without a blueprint (`-p` on file-less commands); `Err` says
/// why it is refused and what a valid one looks like.
pub fn check_project_name(name: &str) -> Result<(), String> {
    match project_name_problem(name) {
        None => Ok(()),
        Some(why) => Err(format!("{why}; {PROJECT_NAME_RULE}")),
    }
}

fn project_name_problem(name: &str) -> Option<String> {
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Some(format!("it must be lowercase ({:?})", name.to_ascii_lowercase()));
    }
    name_problem(name, is_lower_alnum, |c| is_lower_alnum(c) || c == '_' || c == '-', MAX_PROJECT_NAME)
}

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Why `name` breaks the rule "first char, then rest chars, at most `max`", or `None`.
fn name_problem(name: &str, first: impl Fn(char) -> bool, rest: impl Fn(char) -> bool, max: usize) -> Option<String> {
    let mut chars = name.chars();
    match chars.next() {
        None => Some("it is empty".into()),
        Some(c) if !first(c) => Some(format!("it starts with {c:?}")),
        Some(_) => {
            if let Some(bad) = chars.find(|&c| !rest(c)) {
                Some(format!("it contains {bad:?}"))
            } else if name.len() > max {
                Some(format!("it is {} characters long (at most {max})", name.len()))
            } else {
                None
            }
        }
    }
}

/// A valid lowercase name close to `name`, to put in a hint.
fn suggest_name(name: &str, max: usize) -> Option<String> {
    let mapped: String = name
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if is_lower_alnum(c) || c == '_' || c == '-' { c } else { '-' })
        .collect();
    let trimmed = mapped.trim_start_matches(['-', '_']);
    let cut: String = trimmed.chars().take(max).collect();
    (!cut.is_empty()).then_some(cut)
}

/// Where a list of places is mentioned in a message: " (line 7)" or "".
fn at_line(pos: Pos) -> String {
    if pos.is_known() { format!(" (line {})", pos.line) } else { String::new() }
}

struct Validator<'a> {
    bp: &'a Blueprint,
    /// Every service name the blueprint declares (decoded or not).
    declared: HashSet<&'a str>,
    /// Indexes for "did you mean", built once: a lookup per reference stays cheap however
    /// many services, networks and volumes there are.
    names: Names<'a>,
    problems: Vec<Diagnostic>,
}

struct Names<'a> {
    services: suggest::NameIndex<'a>,
    networks: suggest::NameIndex<'a>,
    volumes: suggest::NameIndex<'a>,
}

impl<'a> Validator<'a> {
    fn error(&mut self, pos: Pos, message: impl Into<String>, hint: impl Into<String>) {
        self.problems.push(Diagnostic::at(&self.bp.file, pos, message).hint(hint));
    }

    fn service_error(&mut self, service: &Service, pos: Pos, message: impl Into<String>, hint: impl Into<String>) {
        self.problems.push(Diagnostic::at(&self.bp.file, pos, message).service(&service.name).hint(hint));
    }

    fn service_names(&self) -> impl ExactSizeIterator<Item = &'a str> + use<'a> {
        self.bp.services.iter().map(|s| s.name.as_str())
    }

    fn resource_names(&mut self) {
        let ok_first = |c: char| c.is_ascii_alphanumeric();
        let ok_rest = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        let rule = "use letters, digits, `_`, `.` and `-`, starting with a letter or digit";
        for (what, name, pos) in self
            .bp
            .networks
            .iter()
            .map(|(n, d)| ("network", n, d.pos))
            .chain(self.bp.volumes.iter().map(|(n, d)| ("volume", n, d.pos)))
        {
            // Docker's own limit on names is generous; 200 leaves room for the project prefix.
            if let Some(why) = name_problem(name, ok_first, ok_rest, 200) {
                self.error(pos, format!("{what} name {name:?} is not valid: {why}"), format!("{what} names {rule}"));
            }
        }
    }

    fn service_name(&mut self, s: &Service) {
        let rest = |c: char| is_lower_alnum(c) || c == '_' || c == '-';
        if let Some(why) = name_problem(&s.name, is_lower_alnum, rest, MAX_SERVICE_NAME) {
            let mut hint = String::from(
                "service names become container names (<project>-<service>-<n>) and image names \
                 (<project>/<service>): use lowercase letters, digits, `_` and `-`, starting with a letter or digit",
            );
            if let Some(better) = suggest_name(&s.name, MAX_SERVICE_NAME) {
                hint.push_str(&format!("; e.g. `{better}`"));
            }
            self.error(s.pos, format!("service name {:?} is not valid: {why}", s.name), hint);
        }
    }

    fn image_or_build(&mut self, s: &Service) {
        // Both: the build is tagged <project>/<service>:<hash> (what the containers run) and
        // also with `image`, as Compose tags it.
        if s.image.is_none() && s.build.is_none() {
            self.service_error(
                s,
                s.pos,
                "has neither `image:` nor `build:`",
                format!("add `image: nginx:1.27` to run an existing image, or `build: images/{}` to build one", s.name),
            );
        }
    }

    fn build_context(&mut self, s: &Service) {
        let Some(build) = &s.build else { return };
        let context = &build.value.context;
        if !context.is_dir() {
            let why = if context.exists() { "is not a directory" } else { "does not exist" };
            self.service_error(
                s,
                build.pos,
                format!("build context {} {why}", context.display()),
                "`build:` names a directory relative to the blueprint's own directory",
            );
            return;
        }
        let dockerfile = context.join(&build.value.dockerfile);
        if !dockerfile.is_file() {
            self.service_error(
                s,
                build.pos,
                format!("the Dockerfile {} does not exist", dockerfile.display()),
                "create it, or name the right file with `build: { context: ..., dockerfile: ... }`",
            );
        }
    }

    fn dependencies(&mut self, s: &Service) {
        for dep in &s.depends_on {
            let target = &dep.service.value;
            if *target == s.name {
                self.service_error(
                    s,
                    dep.service.pos,
                    "depends on itself",
                    format!("remove `{target}` from its `depends_on:`"),
                );
            } else if self.bp.inactive_services.contains(target) {
                self.service_error(
                    s,
                    dep.service.pos,
                    format!("depends on `{target}`, whose profiles are not active"),
                    "enable its profile with --profile (or COMPOSE_PROFILES), or mark the dependency `required: false`",
                );
            } else if !self.declared.contains(target.as_str()) {
                let hint = self.names.services.suggest(
                    target,
                    &s.name,
                    format!(
                        "services in this blueprint: {}",
                        suggest::capped_list(self.service_names(), suggest::LISTED)
                    ),
                );
                self.service_error(s, dep.service.pos, format!("depends on unknown service `{target}`"), hint);
            }
        }
    }

    fn networks(&mut self, s: &Service) {
        let declared = &self.bp.networks;
        let mut seen: HashMap<&str, Pos> = HashMap::new();
        for net in &s.networks {
            let name = net.name.value.as_str();
            if !declared.contains_key(name) {
                let hint = self.names.networks.suggest(
                    name,
                    "",
                    format!("declare it under the top-level `networks:` ({name}: {{}})"),
                );
                self.service_error(s, net.name.pos, format!("uses undeclared network `{name}`"), hint);
            }
            if let Some(first) = seen.insert(name, net.name.pos) {
                self.service_error(
                    s,
                    net.name.pos,
                    format!("joins network `{name}` twice{}", at_line(first)),
                    "list each network once; put extra DNS names under `aliases:`",
                );
            }
        }
        // Published ports never reach a container that is only on internal networks.
        let all_internal = !s.networks.is_empty()
            && s.networks.iter().all(|n| declared.get(&n.name.value).is_some_and(|d| d.internal));
        if all_internal && let Some(port) = s.ports.first() {
            self.service_error(
                s,
                port.pos,
                "publishes ports but is only on internal networks, so nothing can reach them",
                "also attach it to a non-internal network (e.g. `public`), or remove `ports:`",
            );
        }
    }

    fn mounts(&mut self, s: &Service) {
        let mut targets: HashMap<&str, Pos> = HashMap::new();
        for mount in &s.volumes {
            if let MountSource::Volume(name) = &mount.value.source
                && !self.bp.volumes.contains_key(name)
            {
                let hint = self.names.volumes.suggest(
                    name,
                    "",
                    format!(
                        "declare it under the top-level `volumes:` ({name}: {{}}), or write ./{name} for a directory beside the blueprint"
                    ),
                );
                self.service_error(s, mount.pos, format!("uses undeclared volume `{name}`"), hint);
            }
            let target = mount.value.target.as_str();
            let key = match target.trim_end_matches('/') {
                "" => "/",
                t => t,
            };
            if let Some(first) = targets.insert(key, mount.pos) {
                self.service_error(
                    s,
                    mount.pos,
                    format!("mounts two things at {target}{}", at_line(first)),
                    "each container path can hold one mount; remove one or change its target",
                );
                targets.insert(key, first);
            }
        }
    }

    /// An autoscaled service is a plain one whose load can be measured: with a load balancer
    /// in front (the balancer's counters are its load, and its pool is what grows and
    /// shrinks), or, on `metric: queue_depth`, with its queue a service of the blueprint.
    fn autoscaled(&mut self, s: &Service) {
        let Some(policy) = &s.autoscale else { return };
        if let Some(kind) = &s.kind {
            let message = format!("a `kind: {}` service cannot be autoscaled", kind.value.as_str());
            self.service_error(s, policy.pos, message, "give `replicas:` a number for this service");
            return;
        }
        if let crate::model::Metric::QueueDepth { queue } = &policy.value.metric {
            if queue == &s.name || !self.declared.contains(queue.as_str()) {
                let hint = self.names.services.suggest(
                    queue,
                    &s.name,
                    "name the service that holds the queue (its image carries the `io.scale.queue` label)".into(),
                );
                let message = format!("is autoscaled on the depth of queue `{queue}`, which is not another service");
                self.service_error(s, policy.pos, message, hint);
            }
            return;
        }
        let fronted = self
            .bp
            .services
            .iter()
            .any(|b| b.load_balancer.as_ref().is_some_and(|lb| lb.backend_service.value == s.name));
        if !fronted {
            self.service_error(
                s,
                policy.pos,
                "is autoscaled, but no `kind: load-balancer` sends it traffic to measure",
                format!(
                    "add a load balancer with `backends: {{ service: {}, port: … }}`, or give `replicas:` a number",
                    s.name
                ),
            );
        }
    }

    fn replicated_ports(&mut self, s: &Service) {
        let (most, up_to) = s.autoscale.as_ref().map_or((s.replicas.value, ""), |a| (a.value.max, "up to "));
        if most <= 1 {
            return;
        }
        for port in &s.ports {
            if let Some(host) = port.value.host_port {
                self.service_error(
                    s,
                    port.pos,
                    format!(
                        "publishes fixed host port {host} but runs {up_to}{most} replicas, which cannot all bind it"
                    ),
                    format!(
                        "write \"{}\" alone for a random host port per replica, or put a `kind: load-balancer` in front",
                        port.value.container_port
                    ),
                );
            }
        }
    }

    fn kind(&mut self, s: &Service) {
        match s.kind.as_ref().map(|k| k.value) {
            Some(Kind::LoadBalancer) => {
                let Some(lb) = &s.load_balancer else { return };
                let target = &lb.backend_service;
                if target.value == s.name {
                    self.service_error(
                        s,
                        target.pos,
                        "is a load balancer whose backends are itself",
                        "set `backends.service` to the service that should receive the traffic",
                    );
                } else if !self.declared.contains(target.value.as_str()) {
                    let hint = self.names.services.suggest(
                        &target.value,
                        &s.name,
                        "set `backends.service` to a service in this blueprint".into(),
                    );
                    self.service_error(
                        s,
                        target.pos,
                        format!("load balancer backends name unknown service `{}`", target.value),
                        hint,
                    );
                }
            }
            Some(Kind::Postgres) if s.replicas.value != 1 => self.service_error(
                s,
                s.replicas.pos,
                format!("a `kind: postgres` service runs one primary, but `replicas` is {}", s.replicas.value),
                "remove `replicas:` and use `read_replicas: N` for streaming read replicas",
            ),
            _ => {}
        }
    }

    fn environment(&mut self, s: &Service) {
        for (name, value) in &s.environment {
            let why = if name.is_empty() {
                "an environment variable has an empty name".to_string()
            } else if name.contains('=') {
                format!("environment variable name {name:?} contains `=`")
            } else {
                continue;
            };
            self.service_error(
                s,
                value.pos,
                why,
                "write `environment: { KEY: value }` or `[\"KEY=value\"]` with a non-empty KEY",
            );
        }
    }

    fn healthcheck(&mut self, s: &Service) {
        let Some(hc) = &s.healthcheck else { return };
        if hc.test.first().map(String::as_str) == Some("NONE") {
            return;
        }
        if hc.interval < MIN_HEALTHCHECK_INTERVAL {
            self.service_error(
                s,
                hc.pos,
                format!("healthcheck interval {} is shorter than 100ms", duration::format(hc.interval)),
                "probing this often only loads the container; use e.g. `interval: 2s`",
            );
        }
        if hc.timeout < MIN_HEALTHCHECK_TIMEOUT {
            self.service_error(
                s,
                hc.pos,
                format!("healthcheck timeout {} is too short", duration::format(hc.timeout)),
                "give each probe time to answer, e.g. `timeout: 2s`",
            );
        }
        if !hc.start_period.is_zero() && hc.start_period < Duration::from_millis(1) {
            self.service_error(
                s,
                hc.pos,
                format!("healthcheck start_period {} is shorter than 1ms", duration::format(hc.start_period)),
                "use 0s for none, or e.g. `start_period: 5s`",
            );
        }
    }

    /// Two published ports on the same host address, port and protocol cannot both bind.
    fn host_ports(&mut self) {
        #[derive(Default)]
        struct Claims<'s> {
            any_address: Option<(&'s str, Pos)>,
            first_specific: Option<(&'s str, Pos)>,
            by_address: HashMap<&'s str, (&'s str, Pos)>,
        }
        let mut claims: BTreeMap<(u16, &str), Claims> = BTreeMap::new();
        for s in &self.bp.services {
            for port in &s.ports {
                let At { value: p, pos } = port;
                let Some(host_port) = p.host_port else {
                    continue;
                };
                let address = p.host_ip.as_deref().filter(|ip| !matches!(*ip, "0.0.0.0" | "::" | "[::]"));
                let c = claims.entry((host_port, p.protocol.as_str())).or_default();
                let clash = match address {
                    None => c.any_address.or(c.first_specific),
                    Some(ip) => c.any_address.or_else(|| c.by_address.get(ip).copied()),
                };
                match address {
                    None => {
                        c.any_address.get_or_insert((s.name.as_str(), *pos));
                    }
                    Some(ip) => {
                        c.first_specific.get_or_insert((s.name.as_str(), *pos));
                        c.by_address.entry(ip).or_insert((s.name.as_str(), *pos));
                    }
                }
                if let Some((owner, first)) = clash {
                    let owner = if owner == s.name { "this service".to_string() } else { format!("service `{owner}`") };
                    let message = format!(
                        "host port {host_port}/{} is already published by {owner}{}",
                        p.protocol.as_str(),
                        at_line(first)
                    );
                    self.service_error(
                        s,
                        *pos,
                        message,
                        "each host port can be published once; pick another host port, or write the container port alone for a random one",
                    );
                }
            }
        }
    }

    /// Every dependency cycle, once each, named from its first-declared service.
    fn cycles(&mut self) {
        let services = &self.bp.services;
        let index: HashMap<&str, usize> = services.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
        // Edges in declaration order, without self-loops (reported already) or duplicates.
        let mut edges: Vec<Vec<(usize, Pos)>> = vec![Vec::new(); services.len()];
        for (i, s) in services.iter().enumerate() {
            // A set, not a scan of the edges so far: a service may list thousands.
            let mut seen = HashSet::new();
            for dep in &s.depends_on {
                if let Some(&j) = index.get(dep.service.value.as_str())
                    && j != i
                    && seen.insert(j)
                {
                    edges[i].push((j, dep.service.pos));
                }
            }
        }
        let (cycles, complete) = find_cycles(&edges);
        for cycle in &cycles {
            let first = &services[cycle[0]];
            let pos = edges[cycle[0]].iter().find(|&&(j, _)| j == cycle[1 % cycle.len()]).map_or(first.pos, |e| e.1);
            let mut names: Vec<&str> = cycle.iter().map(|&i| services[i].name.as_str()).collect();
            names.push(first.name.as_str());
            self.service_error(
                first,
                pos,
                format!("dependency cycle: {}", compact_cycle(&names)),
                "services in a cycle can never start; remove one `depends_on` entry in it",
            );
        }
        if !complete {
            self.error(
                Pos::default(),
                format!("the dependencies contain more cycles than the {} listed", cycles.len()),
                "untangle `depends_on:`: services must start in some order",
            );
        }
    }
}

/// A cycle's names joined with arrows; a long one shows its first and last few services and
/// how many are between, so one message stays one readable line.
fn compact_cycle(names: &[&str]) -> String {
    const SHOWN: usize = 5;
    if names.len() <= 2 * SHOWN + 1 {
        return names.join(" → ");
    }
    let hidden = names.len() - 2 * SHOWN;
    format!(
        "{} → … {hidden} more … → {} ({} services)",
        names[..SHOWN].join(" → "),
        names[names.len() - SHOWN..].join(" → "),
        names.len() - 1
    )
}

/// Elementary cycles of a directed graph, each as its vertices starting from the lowest
/// index, in a stable order; `false` when the search stopped at its limits.
fn find_cycles(edges: &[Vec<(usize, Pos)>]) -> (Vec<Vec<usize>>, bool) {
    let component = strongly_connected(edges);
    let (mut cycles, in_ring) = rings(edges, &component);
    let mut complete = cycles.len() <= MAX_CYCLES && search_cycles(edges, &component, &in_ring, &mut cycles);
    // Stable: by the cycle's first (lowest) vertex, each start's cycles in search order.
    cycles.sort_by_key(|c| c[0]);
    if cycles.len() > MAX_CYCLES {
        cycles.truncate(MAX_CYCLES);
        complete = false;
    }
    (cycles, complete)
}

/// Components that are one simple ring (every vertex has exactly one edge inside its
/// component): a ring's only cycle is found by walking it once, so a single cycle through
/// thousands of services costs linear time instead of a search per vertex.
fn rings(edges: &[Vec<(usize, Pos)>], component: &[usize]) -> (Vec<Vec<usize>>, Vec<bool>) {
    let inside = |v: usize| edges[v].iter().filter(|&&(w, _)| component[w] == component[v]).count();
    let mut size: HashMap<usize, usize> = HashMap::new();
    let mut ring_like: HashMap<usize, bool> = HashMap::new();
    for (v, &c) in component.iter().enumerate() {
        *size.entry(c).or_default() += 1;
        *ring_like.entry(c).or_insert(true) &= inside(v) == 1;
    }
    let mut in_ring = vec![false; edges.len()];
    let mut cycles = Vec::new();
    for start in 0..edges.len() {
        let c = component[start];
        if in_ring[start] || size[&c] < 2 || !ring_like[&c] {
            continue;
        }
        let mut cycle = vec![start];
        in_ring[start] = true;
        let mut v = start;
        while let Some(&(w, _)) = edges[v].iter().find(|&&(w, _)| component[w] == c && w != start) {
            in_ring[w] = true;
            cycle.push(w);
            v = w;
        }
        cycles.push(cycle);
    }
    (cycles, in_ring)
}

/// Elementary cycles outside rings, appended to `cycles`; `false` when the search stopped at
/// its limits.
fn search_cycles(
    edges: &[Vec<(usize, Pos)>],
    component: &[usize],
    in_ring: &[bool],
    cycles: &mut Vec<Vec<usize>>,
) -> bool {
    let mut steps = 0usize;
    let mut on_path = vec![false; edges.len()];
    for start in (0..edges.len()).filter(|&v| !in_ring[v]) {
        // A cycle through `start` stays inside its component, on vertices after it (cycles
        // through earlier vertices were found from those).
        let allowed = |v: usize| v >= start && component[v] == component[start];
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        on_path[start] = true;
        while let Some((v, cursor)) = stack.last_mut() {
            steps += 1;
            if steps > MAX_CYCLE_STEPS {
                return false;
            }
            let v = *v;
            let Some(&(w, _)) = edges[v].get(*cursor) else {
                on_path[v] = false;
                stack.pop();
                continue;
            };
            *cursor += 1;
            if w == start {
                if cycles.len() == MAX_CYCLES {
                    return false;
                }
                cycles.push(stack.iter().map(|&(u, _)| u).collect());
            } else if allowed(w) && !on_path[w] {
                on_path[w] = true;
                stack.push((w, 0));
            }
        }
    }
    true
}

/// Tarjan's strongly connected components, iteratively (no recursion on user input).
fn strongly_connected(edges: &[Vec<(usize, Pos)>]) -> Vec<usize> {
    const UNSEEN: usize = usize::MAX;
    let n = edges.len();
    let mut order = vec![UNSEEN; n];
    let mut low = vec![0usize; n];
    let mut component = vec![UNSEEN; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut on_stack = vec![false; n];
    let mut counter = 0usize;
    let mut components = 0usize;
    for root in 0..n {
        if order[root] != UNSEEN {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        order[root] = counter;
        low[root] = counter;
        counter += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut i)) = work.last_mut() {
            if let Some(&(w, _)) = edges[v].get(*i) {
                *i += 1;
                if order[w] == UNSEEN {
                    order[w] = counter;
                    low[w] = counter;
                    counter += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(order[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == order[v] {
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component[w] = components;
                    if w == v {
                        break;
                    }
                }
                components += 1;
            }
        }
    }
    component
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::model::{Env, load_bytes};

    fn load(yaml: &str) -> Blueprint {
        load_bytes(Path::new("t.yaml"), yaml.as_bytes(), &Env::default())
            .unwrap_or_else(|d| panic!("the test blueprint should load:\n{d}"))
    }

    /// A profile's service left out by `--profile` is named as such when another depends on
    /// it (validate's check, over a project the loader resolved).
    #[test]
    fn a_dependency_on_a_service_of_an_inactive_profile_says_so() {
        use crate::model::project::{Options, load_project};
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("compose.yaml"),
            "name: p\nservices:\n  web:\n    image: a\n    depends_on: [tool]\n  tool:\n    image: t\n    profiles: [dev]\n",
        )
        .unwrap();
        let opts = Options {
            files: Vec::new(),
            workdir: tmp.path().to_path_buf(),
            env_files: Vec::new(),
            profiles: Vec::new(),
            env: Env::default(),
        };
        let (bp, problems) = load_project(&opts);
        assert!(problems.is_empty(), "{problems}");
        let problems = validate(&bp.unwrap(), None);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains("depends on `tool`, whose profiles are not active"), "{problems:?}");
    }

    fn check(yaml: &str) -> Vec<Diagnostic> {
        validate(&load(yaml), None)
    }

    /// The (line, message) of every problem, for compact assertions.
    fn lines(diags: &[Diagnostic]) -> Vec<(u32, String)> {
        diags.iter().map(|d| (d.pos.map_or(0, |p| p.line), d.message.clone())).collect()
    }

    /// Asserts exactly one problem, on `line`, whose message contains `needle`.
    fn only(diags: &[Diagnostic], line: u32, needle: &str) -> Diagnostic {
        assert_eq!(diags.len(), 1, "{:#?}", lines(diags));
        let d = &diags[0];
        assert_eq!(d.pos.map(|p| p.line), Some(line), "{d}");
        assert!(d.message.contains(needle), "{d}");
        assert!(d.hint.is_some(), "every problem says what to do: {d}");
        assert_eq!(d.file, Path::new("t.yaml"));
        d.clone()
    }

    #[test]
    fn a_good_blueprint_has_no_problems() {
        let yaml = "\
name: shop
networks:
  public: {}
  private: { internal: true }
volumes:
  data: {}
services:
  web:
    image: app:1
    ports: [\"8000\"]
    networks: [public, private]
    volumes: [\"data:/data\", \"./conf:/etc/app:ro\", \"/cache\"]
    depends_on: { db: { condition: healthy } }
    replicas: 3
    environment: { A: b }
    healthcheck: { test: [\"CMD\", \"true\"], interval: 2s, timeout: 1s }
  lb:
    kind: load-balancer
    image: haproxy:3
    backends: { service: web, port: 8000 }
    ports: [\"8080:80\", \"127.0.0.1:8443:443\", \"8080:80/udp\"]
    networks: [public, private]
  db:
    kind: postgres
    image: postgres:17
    read_replicas: 2
    networks: [private]
";
        let diags = check(yaml);
        assert!(diags.is_empty(), "{:#?}", lines(&diags));
        assert_eq!(project_name(&load(yaml), None).unwrap(), "shop");
    }

    #[test]
    fn project_name_comes_from_p_then_name() {
        let bp = load("name: shop\nservices: { web: { image: x } }\n");
        assert_eq!(project_name(&bp, Some("ci-123")).unwrap(), "ci-123");
        assert_eq!(project_name(&bp, None).unwrap(), "shop");
        let bp = load("services: { web: { image: x } }\n");
        let d = project_name(&bp, None).unwrap_err();
        assert!(d.message.contains("no project name"), "{d}");
        let hint = d.hint.unwrap();
        assert!(hint.contains("name:") && hint.contains("-p"), "{hint}");
        assert_eq!(project_name(&bp, Some("ok")).unwrap(), "ok");
    }

    #[test]
    fn bad_project_names_point_at_name_with_a_suggestion() {
        for (name, why, suggested) in [
            ("\"My App\"", "is not valid: it must be lowercase (\"my app\")", Some("my-app")),
            ("Web", "is not valid: it must be lowercase (\"web\")", Some("web")),
            ("-x", "it starts with '-'", Some("x")),
            ("_x", "it starts with '_'", Some("x")),
            ("shop.v2", "it contains '.'", Some("shop-v2")),
            ("\"\"", "it is empty", None),
        ] {
            let yaml = format!("services:\n  web: {{ image: x }}\nname: {name}\n");
            let d = only(&check(&yaml), 3, why);
            let hint = d.hint.unwrap();
            if let Some(s) = suggested {
                assert!(hint.contains(&format!("`{s}`")), "{name}: {hint}");
            }
        }
        let long = "a".repeat(64);
        only(&check(&format!("name: {long}\nservices: {{ web: {{ image: x }} }}\n")), 1, "64 characters");
        let ok63 = "a".repeat(63);
        assert!(check(&format!("name: {ok63}\nservices: {{ web: {{ image: x }} }}\n")).is_empty());
    }

    #[test]
    fn check_project_name_without_a_blueprint() {
        assert_eq!(check_project_name("ci-123"), Ok(()));
        let why = check_project_name("CI 123").unwrap_err();
        assert!(why.starts_with("it must be lowercase"), "{why}");
        let why = check_project_name("ci 123").unwrap_err();
        assert!(why.starts_with("it contains ' '"), "{why}");
        assert!(check_project_name("").is_err());
        assert!(check_project_name(&"x".repeat(64)).is_err());
    }

    #[test]
    fn a_bad_p_override_is_reported_and_wins_over_a_good_name() {
        let bp = load("name: shop\nservices: { web: { image: x } }\n");
        let diags = validate(&bp, Some("CI 1"));
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert!(diags[0].message.contains("(from -p)"), "{}", diags[0]);
        // A bad `name:` is not used when -p is given, so it is not an error.
        let bp = load("name: Shop\nservices: { web: { image: x } }\n");
        assert!(validate(&bp, Some("shop")).is_empty());
    }

    #[test]
    fn service_network_and_volume_names() {
        let yaml = "\
name: p
networks:
  .hidden: {}
  Fine.Net-1: {}
volumes:
  \"-v\": {}
services:
  Web:
    image: x
  ok_1-2:
    image: x
";
        let got = lines(&check(yaml));
        assert_eq!(got.len(), 3, "{got:#?}");
        assert_eq!(got[0].0, 3);
        assert!(got[0].1.contains("network name \".hidden\""), "{got:?}");
        assert_eq!(got[1].0, 6);
        assert!(got[1].1.contains("volume name \"-v\""), "{got:?}");
        assert_eq!(got[2].0, 8);
        assert!(got[2].1.contains("service name \"Web\""), "{got:?}");
    }

    #[test]
    fn image_or_build_exactly_one() {
        let d = only(&check("name: p\nservices:\n  web:\n    replicas: 2\n"), 3, "neither `image:` nor `build:`");
        assert_eq!(d.service.as_deref(), Some("web"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("web")).unwrap();
        std::fs::write(dir.path().join("web/Dockerfile"), "FROM scratch\n").unwrap();
        let yaml = "name: p\nservices:\n  web:\n    image: x\n    build: web\n";
        let bp = load_bytes(&dir.path().join("t.yaml"), yaml.as_bytes(), &Env::default()).unwrap();
        // Compose tags the build with `image`; so does scale (beside its own hash tag).
        assert!(validate(&bp, None).is_empty());
        assert!(bp.warnings.is_empty(), "{:?}", bp.warnings);
    }

    #[test]
    fn build_context_and_dockerfile_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("web")).unwrap();
        std::fs::create_dir(dir.path().join("api")).unwrap();
        std::fs::write(dir.path().join("api/Dockerfile.dev"), "FROM scratch\n").unwrap();
        std::fs::write(dir.path().join("file"), "").unwrap();
        let yaml = "\
name: p
services:
  web:
    build: web
  api:
    build: { context: api, dockerfile: Dockerfile.dev }
  missing:
    build: ./nowhere
  notdir:
    build: file
  nodockerfile:
    build: { context: api }
";
        let bp = load_bytes(&dir.path().join("t.yaml"), yaml.as_bytes(), &Env::default()).unwrap();
        let diags = validate(&bp, None);
        let got = lines(&diags);
        assert_eq!(got.len(), 4, "{got:#?}");
        let web_dockerfile = dir.path().join("web").join("Dockerfile");
        assert_eq!(got[0].0, 4);
        assert!(got[0].1.contains(&web_dockerfile.display().to_string()), "{got:?}");
        assert_eq!(got[1].0, 8);
        assert!(got[1].1.contains("nowhere") && got[1].1.contains("does not exist"), "{got:?}");
        assert_eq!(got[2].0, 10);
        assert!(got[2].1.contains("is not a directory"), "{got:?}");
        assert_eq!(got[3].0, 12);
        assert!(got[3].1.contains("api") && got[3].1.contains("Dockerfile does not exist"), "{got:?}");
        assert_eq!(diags[3].service.as_deref(), Some("nodockerfile"));
    }

    #[test]
    fn depends_on_unknown_and_self() {
        let yaml = "\
name: p
services:
  web:
    image: x
    depends_on: [dbb, web]
  db:
    image: x
";
        let diags = check(yaml);
        let got = lines(&diags);
        assert_eq!(got.len(), 2, "{got:#?}");
        assert_eq!(got[0], (5, "depends on unknown service `dbb`".into()));
        assert_eq!(diags[0].hint.as_deref(), Some("did you mean `db`?"));
        assert_eq!(got[1], (5, "depends on itself".into()));
        assert_eq!(diags[1].pos.unwrap().col, 23);
    }

    #[test]
    fn every_cycle_is_named_once() {
        let yaml = "\
name: p
services:
  web:
    image: x
    depends_on: [api]
  api:
    image: x
    depends_on: [web, db]
  db:
    image: x
    depends_on: { cache: {} }
  cache:
    image: x
    depends_on: [api, web]
  free:
    image: x
    depends_on: [db]
";
        let diags = check(yaml);
        let mut got: Vec<String> = diags.iter().map(|d| d.message.clone()).collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                "dependency cycle: api → db → cache → api",
                "dependency cycle: web → api → db → cache → web",
                "dependency cycle: web → api → web",
            ]
        );
        // Each points at its first edge, in the service the cycle is named from.
        let two = diags.iter().find(|d| d.message.ends_with("web → api → web")).unwrap();
        assert_eq!((two.pos.unwrap().line, two.service.as_deref()), (5, Some("web")));
        let api = diags.iter().find(|d| d.message.ends_with("api → db → cache → api")).unwrap();
        assert_eq!((api.pos.unwrap().line, api.service.as_deref()), (8, Some("api")));
    }

    #[test]
    fn cycle_search_stays_fast_on_a_dense_graph() {
        let mut yaml = String::from("name: p\nservices:\n");
        let names: Vec<String> = (0..40).map(|i| format!("s{i}")).collect();
        for name in &names {
            yaml.push_str(&format!("  {name}:\n    image: x\n    depends_on: [{}]\n", names.join(", ")));
        }
        let start = std::time::Instant::now();
        let diags = check(&yaml);
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
        assert!(diags.iter().any(|d| d.message.contains("more cycles than")), "{:?}", lines(&diags));
        assert!(diags.iter().filter(|d| d.message.starts_with("dependency cycle")).count() <= MAX_CYCLES);
    }

    #[test]
    fn exactly_the_cycle_limit_is_listed_without_a_note() {
        for (pairs, note) in [(MAX_CYCLES, false), (MAX_CYCLES + 1, true)] {
            let mut yaml = String::from("name: p\nservices:\n");
            for i in 0..pairs {
                yaml.push_str(&format!("  a{i}: {{ image: x, depends_on: [b{i}] }}\n"));
                yaml.push_str(&format!("  b{i}: {{ image: x, depends_on: [a{i}] }}\n"));
            }
            let diags = check(&yaml);
            let cycles = diags.iter().filter(|d| d.message.starts_with("dependency cycle")).count();
            assert_eq!(cycles, MAX_CYCLES, "{pairs} pairs");
            assert_eq!(diags.iter().any(|d| d.message.contains("more cycles than")), note, "{pairs} pairs");
        }
    }

    #[test]
    fn undeclared_networks_and_volumes() {
        let yaml = "\
name: p
networks:
  private: {}
volumes:
  uploads: {}
services:
  web:
    image: x
    networks: [privat, private, private]
    volumes: [\"upload:/data\", \"./here:/here\", \"/anon\", \"zzz:/z\"]
";
        let diags = check(yaml);
        let got = lines(&diags);
        assert_eq!(got.len(), 4, "{got:#?}");
        assert_eq!(got[0], (9, "uses undeclared network `privat`".into()));
        assert_eq!(diags[0].hint.as_deref(), Some("did you mean `private`?"));
        assert_eq!(got[1], (9, "joins network `private` twice (line 9)".into()));
        assert_eq!(got[2], (10, "uses undeclared volume `upload`".into()));
        assert_eq!(diags[2].hint.as_deref(), Some("did you mean `uploads`?"));
        assert_eq!(got[3], (10, "uses undeclared volume `zzz`".into()));
        assert!(diags[3].hint.as_deref().unwrap().contains("top-level `volumes:`"));
    }

    #[test]
    fn networks_in_mapping_form_point_at_the_key() {
        let yaml = "name: p\nservices:\n  web:\n    image: x\n    networks:\n      back: { aliases: [api] }\n";
        only(&check(yaml), 6, "undeclared network `back`");
    }

    #[test]
    fn ports_on_internal_networks_only() {
        let yaml = "\
name: p
networks:
  private: { internal: true }
  public: {}
services:
  web:
    image: x
    networks: [private]
    ports: [\"8080:80\"]
  lb:
    image: x
    networks: [private, public]
    ports: [\"8081:80\"]
";
        only(&check(yaml), 9, "only on internal networks");
    }

    #[test]
    fn host_port_clashes_are_reported_at_the_second_naming_the_first() {
        let yaml = "\
name: p
services:
  web:
    image: x
    ports: [\"8080:80\", \"127.0.0.1:9000:90\", \"53:53/udp\"]
  api:
    image: x
    ports:
      - \"8080:8000\"
      - \"9000:90\"
      - \"127.0.0.2:9000:90\"
      - \"53:53\"
      - { target: 80, published: 8080, protocol: udp }
  dup:
    image: x
    ports: [\"7000:1\", \"0.0.0.0:7000:2\"]
";
        let diags = check(yaml);
        let got = lines(&diags);
        assert_eq!(
            got,
            vec![
                (9, "host port 8080/tcp is already published by service `web` (line 5)".into()),
                (10, "host port 9000/tcp is already published by service `web` (line 5)".into()),
                // A bind on every address blocks any one address too.
                (11, "host port 9000/tcp is already published by this service (line 10)".into()),
                (16, "host port 7000/tcp is already published by this service (line 16)".into()),
            ]
        );
        assert_eq!(diags[0].service.as_deref(), Some("api"));
    }

    #[test]
    fn an_autoscaled_service_needs_a_load_balancer_and_no_kind_or_fixed_port() {
        let alone = "name: p\nservices:\n  web:\n    image: x\n    replicas: { min: 1, max: 3, target: 5 }\n";
        let d = only(&check(alone), 5, "no `kind: load-balancer` sends it traffic");
        assert!(d.hint.as_deref().unwrap_or("").contains("backends: { service: web"), "{d:?}");
        let port = "name: p\nservices:\n  web:\n    image: x\n    replicas: { min: 1, max: 3, target: 5 }\n    ports: [\"8080:80\"]\n  lb:\n    kind: load-balancer\n    image: h\n    backends: { service: web, port: 80 }\n";
        only(&check(port), 6, "runs up to 3 replicas");
        let pg = "name: p\nservices:\n  db:\n    kind: postgres\n    image: pg\n    replicas: { min: 1, max: 3, target: 5 }\n";
        assert!(check(pg).iter().any(|d| d.message.contains("cannot be autoscaled")), "{:?}", check(pg));
    }

    #[test]
    fn a_queue_depth_autoscaled_service_needs_its_queue_not_a_load_balancer() {
        let worker = "name: p\nservices:\n  worker:\n    image: x\n    replicas: { min: 1, max: 3, target: 5, metric: queue_depth, queue: queue }\n";
        only(&check(worker), 5, "depth of queue `queue`, which is not another service");
        let with_queue = format!("{worker}  queue:\n    image: redis\n");
        assert!(check(&with_queue).is_empty(), "{:?}", check(&with_queue));
        let typo = format!("{}  queues:\n    image: redis\n", worker);
        let d = only(&check(&typo), 5, "queue `queue`");
        assert_eq!(d.hint.as_deref(), Some("did you mean `queues`?"));
    }

    #[test]
    fn fixed_host_port_with_replicas() {
        let yaml = "name: p\nservices:\n  web:\n    image: x\n    replicas: 3\n    ports: [\"80\", \"8080:8000\"]\n";
        let d = only(&check(yaml), 6, "fixed host port 8080");
        assert!(d.hint.unwrap().contains("\"8000\" alone"));
        let one = "name: p\nservices:\n  web:\n    image: x\n    replicas: 1\n    ports: [\"8080:8000\"]\n";
        assert!(check(one).is_empty());
    }

    #[test]
    fn two_mounts_on_one_target() {
        let yaml = "\
name: p
volumes: { a: {}, b: {} }
services:
  web:
    image: x
    volumes:
      - a:/data
      - ./x:/other
      - b:/data/
";
        only(&check(yaml), 9, "mounts two things at /data (line 7)");
    }

    #[test]
    fn load_balancer_backends_and_postgres_replicas() {
        let yaml = "\
name: p
services:
  web: { image: x }
  lb:
    kind: load-balancer
    image: x
    backends: { service: wed, port: 80 }
  lb2:
    kind: load-balancer
    image: x
    backends: { service: lb2, port: 80 }
  db:
    kind: postgres
    image: x
    replicas: 2
";
        let diags = check(yaml);
        let got = lines(&diags);
        assert_eq!(
            got,
            vec![
                (7, "load balancer backends name unknown service `wed`".into()),
                (11, "is a load balancer whose backends are itself".into()),
                (15, "a `kind: postgres` service runs one primary, but `replicas` is 2".into()),
            ]
        );
        assert_eq!(diags[0].hint.as_deref(), Some("did you mean `web`?"));
        assert!(diags[2].hint.as_deref().unwrap().contains("read_replicas"));
    }

    #[test]
    fn environment_names() {
        let yaml = "\
name: p
services:
  web:
    image: x
    environment:
      \"\": a
      \"A=B\": c
      OK: d
  api:
    image: x
    environment: [\"=v\", \"X=1\"]
";
        let got = lines(&check(yaml));
        assert_eq!(
            got,
            vec![
                (6, "an environment variable has an empty name".into()),
                (7, "environment variable name \"A=B\" contains `=`".into()),
                (11, "an environment variable has an empty name".into()),
            ]
        );
    }

    #[test]
    fn healthcheck_timings() {
        let yaml = "\
name: p
services:
  web:
    image: x
    healthcheck:
      test: [\"CMD\", \"true\"]
      interval: 10ms
      timeout: 0s
  off:
    image: x
    healthcheck: { test: [\"NONE\"], interval: 0s }
";
        let got = lines(&check(yaml));
        assert_eq!(got.len(), 2, "{got:#?}");
        assert_eq!(got[0].0, 6);
        assert!(got[0].1.contains("interval 10ms is shorter than 100ms"), "{got:?}");
        assert!(got[1].1.contains("timeout 0s is too short"), "{got:?}");
    }

    #[test]
    fn every_problem_is_reported_at_once_in_file_order() {
        let yaml = "\
name: Bad
services:
  web:
    depends_on: [nope]
  api:
    image: x
    replicas: 2
    ports: [\"80:80\"]
";
        let got = lines(&check(yaml));
        let line_numbers: Vec<u32> = got.iter().map(|g| g.0).collect();
        assert_eq!(line_numbers, vec![1, 3, 4, 8], "{got:#?}");
    }
}
