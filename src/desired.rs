//! Blueprint → fully specified desired state: every container, network, volume and image with
//! nothing left for the executor to decide (the lesson of Oxide's Reconfigurator).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::diag::Diagnostic;
use crate::kinds;
use crate::model::{Blueprint, Build, Condition, ContainerOptions, MountSource, NetworkMode, Service};
pub use crate::spec::{
    AttachmentSpec, ContainerSpec, DEFAULT_NETWORK, DesiredState, HealthSpec, ImageSource, ImageSpec, LoadBalancerSpec,
    MountSourceSpec, MountSpec, NetworkSpec, PortSpec, Readiness, ServiceSpec, VolumeSpec, container_name, hex,
    normalize_reference, scoped_name,
};

/// Computes the hash of a build context (honouring `.dockerignore`).
pub type ContextHasher<'a> = &'a dyn Fn(&Build) -> Result<String, Diagnostic>;

/// Turns a valid blueprint into the desired state of project `project`: networks and
/// volumes, then per service (in dependency order) its image, its container template and
/// the containers its kind expands that template into.
pub fn desired_state(
    bp: &Blueprint,
    project: &str,
    hash_context: ContextHasher,
) -> Result<DesiredState, Vec<Diagnostic>> {
    let mut state = DesiredState { project: project.to_string(), ..Default::default() };
    let mut problems = Vec::new();
    add_networks_and_volumes(bp, project, &mut state);
    let completed_needed: BTreeSet<&str> = bp
        .services
        .iter()
        .flat_map(|s| s.depends_on.iter())
        .filter(|d| d.condition == Condition::ServiceCompletedSuccessfully)
        .map(|d| d.service.value.as_str())
        .collect();

    for service in dependency_order(bp) {
        let image = match image_for(service, project, hash_context, &mut state.images) {
            Ok(Some(image)) => image,
            Ok(None) => continue,
            Err(d) => {
                problems.push(d);
                continue;
            }
        };
        let template = container_template(bp, service, project, image);
        let mut containers = expand(bp, project, service, &template, &mut state);
        for c in &mut containers {
            if let Some(NetworkMode::Container(owner)) = &c.options.network_mode
                && let Some(owner) = state.containers.get(owner)
            {
                c.labels.insert(crate::labels::NETWORK_FROM.to_string(), owner.hash());
            }
        }
        place_in_zones(service, &mut containers);
        state.services.push(service_spec(service, &containers, completed_needed.contains(service.name.as_str())));
        for c in containers {
            state.containers.insert(c.name.clone(), c);
        }
    }
    state.sharding = sharding(&state.services, bp);
    if problems.is_empty() { Ok(state) } else { Err(problems) }
}

/// `shards: N` on a postgres service: its shards' names, and the first plain service (in
/// dependency order) that depends on shard 0, which runs the moves.
fn sharding(services: &[ServiceSpec], bp: &Blueprint) -> Option<crate::spec::ShardingSpec> {
    let shard = bp.services.iter().find_map(|s| s.postgres.as_ref()?.shard.clone().filter(|s| s.index == 0))?;
    let runner =
        services.iter().find(|s| s.kind.is_none() && s.depends_on.iter().any(|(d, _)| *d == shard.directory))?;
    Some(crate::spec::ShardingSpec {
        shards: (0..shard.count).map(|i| crate::model::shard_name(&shard.directory, i)).collect(),
        runner: runner.name.clone(),
    })
}

/// The blueprint's networks and volumes, and the default network when a service names none.
fn add_networks_and_volumes(bp: &Blueprint, project: &str, state: &mut DesiredState) {
    let base_labels = BTreeMap::from([(crate::labels::PROJECT.to_string(), project.to_string())]);
    for (name, def) in &bp.networks {
        if let Some(external) = &def.external {
            state.external_networks.insert(external.clone());
            continue;
        }
        let full = scoped_name(project, name);
        let mut labels = def.labels.clone();
        labels.extend(base_labels.clone());
        let spec = NetworkSpec {
            name: full.clone(),
            internal: def.internal,
            labels,
            driver: def.driver.clone(),
            driver_opts: def.driver_opts.clone(),
            ipam: def.ipam.clone(),
            ipam_driver: def.ipam_driver.clone(),
            enable_ipv6: def.enable_ipv6,
            attachable: def.attachable,
        };
        state.networks.insert(full, spec);
    }
    if bp.services.iter().any(|s| s.networks.is_empty() && s.compose.options.network_mode.is_none()) {
        let full = scoped_name(project, DEFAULT_NETWORK);
        state.networks.entry(full.clone()).or_insert(NetworkSpec {
            name: full,
            internal: false,
            labels: base_labels.clone(),
            ..Default::default()
        });
    }
    for (name, def) in &bp.volumes {
        if let Some(external) = &def.external {
            state.external_volumes.insert(external.clone());
            continue;
        }
        let full = scoped_name(project, name);
        let mut labels = def.labels.clone();
        labels.extend(base_labels.clone());
        state.volumes.insert(full.clone(), VolumeSpec { name: full, labels });
    }
}

/// The image reference a service runs, recorded in `images`; `None` for a service with
/// neither `image:` nor `build:` (validation reports it).
fn image_for(
    service: &Service,
    project: &str,
    hash_context: ContextHasher,
    images: &mut BTreeMap<String, ImageSpec>,
) -> Result<Option<String>, Diagnostic> {
    match (&service.build, &service.image) {
        (Some(build), _) => {
            let context_hash = hash_context(&build.value)?;
            let repository = format!("{project}/{}", service.name);
            let reference = format!("{repository}:{}", &context_hash[..12.min(context_hash.len())]);
            // Compose tags the build with `image:`; scale keeps its own content-addressed tag
            // (what containers run, so a changed context is noticed) and adds that name.
            let tags = service.image.iter().map(|i| normalize_reference(&i.value)).collect();
            let source = ImageSource::Build {
                context: build.value.context.clone(),
                dockerfile: build.value.dockerfile.clone(),
                args: build.value.args.clone(),
                context_hash,
                target: build.value.target.clone(),
                tags,
            };
            images.insert(reference.clone(), ImageSpec { reference: reference.clone(), repository, source });
            Ok(Some(reference))
        }
        (None, Some(image)) => {
            let reference = normalize_reference(&image.value);
            if !images.contains_key(&reference) {
                let repository = reference.rsplit_once(':').map_or(reference.clone(), |(r, _)| r.to_string());
                let spec = ImageSpec { reference: reference.clone(), repository, source: ImageSource::Pull };
                images.insert(reference.clone(), spec);
            }
            Ok(Some(reference))
        }
        (None, None) => Ok(None),
    }
}

/// The healthcheck a service declares, unless it switches the image's off (`NONE`).
fn declared_healthcheck(service: &Service) -> Option<&crate::model::Healthcheck> {
    service.healthcheck.as_ref().filter(|h| h.test.first().map(String::as_str) != Some("NONE"))
}

/// The engine name of a network a service joins: `<project>_<network>`, or an external
/// network's own name.
fn network_name(bp: &Blueprint, project: &str, network: &str) -> String {
    match bp.networks.get(network).and_then(|n| n.external.clone()) {
        Some(external) => external,
        None => scoped_name(project, network),
    }
}

/// The networks a service's containers join (none with a `network_mode`).
fn attachments(bp: &Blueprint, service: &Service, project: &str) -> Vec<AttachmentSpec> {
    if service.compose.options.network_mode.is_some() {
        return Vec::new();
    }
    if service.networks.is_empty() {
        let network = scoped_name(project, DEFAULT_NETWORK);
        return vec![AttachmentSpec { network, aliases: vec![service.name.clone()], ..Default::default() }];
    }
    service
        .networks
        .iter()
        .map(|n| {
            let mut aliases = vec![service.name.clone()];
            aliases.extend(n.aliases.iter().cloned());
            AttachmentSpec {
                network: network_name(bp, project, &n.name.value),
                aliases,
                ipv4_address: n.ipv4_address.clone(),
                ipv6_address: n.ipv6_address.clone(),
            }
        })
        .collect()
}

fn mounts(bp: &Blueprint, service: &Service, project: &str) -> Vec<MountSpec> {
    service
        .volumes
        .iter()
        .map(|m| MountSpec {
            source: match &m.value.source {
                MountSource::Volume(v) => match bp.volumes.get(v).and_then(|d| d.external.clone()) {
                    Some(external) => MountSourceSpec::Volume(external),
                    None => MountSourceSpec::Volume(scoped_name(project, v)),
                },
                MountSource::Bind(p) => MountSourceSpec::Bind(p.clone()),
                MountSource::Anonymous => MountSourceSpec::Anonymous,
            },
            target: m.value.target.clone(),
            read_only: m.value.read_only,
            propagation: m.value.propagation.clone(),
            nocopy: m.value.nocopy,
        })
        .collect()
}

/// The name of a service's single container: its `container_name`, else `<project>-<service>-1`.
pub fn first_container(bp: &Blueprint, project: &str, service: &str) -> String {
    match bp.service(service).and_then(|s| s.compose.container_name.as_ref()) {
        Some(name) => name.value.clone(),
        None => container_name(project, service, 1),
    }
}

/// The service's engine options, with `network_mode: service:NAME` made the container it
/// names (the engine knows containers, not services).
fn options(bp: &Blueprint, service: &Service, project: &str) -> ContainerOptions {
    let mut options = service.compose.options.clone();
    if let Some(NetworkMode::Service(other)) = &options.network_mode {
        options.network_mode = Some(NetworkMode::Container(first_container(bp, project, other)));
    }
    options
}

/// Everything a service's containers share; its kind then names and shapes each one.
fn container_template(bp: &Blueprint, service: &Service, project: &str, image: String) -> ContainerSpec {
    let ports = service
        .ports
        .iter()
        .map(|p| PortSpec {
            container_port: p.value.container_port,
            protocol: p.value.protocol,
            host_ip: p.value.host_ip.clone(),
            host_port: p.value.host_port,
        })
        .collect::<Vec<_>>();
    let health = declared_healthcheck(service).map(|h| HealthSpec {
        test: h.test.clone(),
        interval_ms: h.interval.as_millis() as u64,
        timeout_ms: h.timeout.as_millis() as u64,
        retries: h.retries,
        start_period_ms: h.start_period.as_millis() as u64,
        start_interval_ms: service.compose.start_interval.map(|d| d.as_millis() as u64),
    });
    ContainerSpec {
        name: String::new(),
        service: service.name.clone(),
        replica: 0,
        kind: service.kind.as_ref().map(|k| k.value),
        image,
        command: service.command.clone(),
        entrypoint: service.entrypoint.clone(),
        env: service.environment.iter().map(|(k, v)| (k.clone(), v.value.clone())).collect(),
        ports,
        networks: attachments(bp, service, project),
        mounts: mounts(bp, service, project),
        healthcheck: health,
        restart: service.restart,
        stop_grace_secs: service.stop_grace_period.map(|d| d.as_secs().max(1)),
        labels: service.labels.clone(),
        hostname: service.compose.hostname.clone().unwrap_or_default(),
        options: options(bp, service, project),
        previous: None,
        carried: Default::default(),
    }
}

/// The containers a service's kind makes of its template (with the volumes and load-balancer
/// configurations the kind adds to `state`).
fn expand(
    bp: &Blueprint,
    project: &str,
    service: &Service,
    template: &ContainerSpec,
    state: &mut DesiredState,
) -> Vec<ContainerSpec> {
    match (&service.postgres, &service.load_balancer) {
        (Some(pg), _) => kinds::postgres::expand(project, &service.name, pg, template, &mut state.volumes),
        (None, Some(lb)) => {
            let containers = kinds::plain(project, &service.name, service.replicas.value, template);
            let backend = &lb.backend_service.value;
            let backend_replicas = bp.service(backend).map_or(0, |b| b.replicas.value);
            let servers: Vec<String> = match backend_replicas {
                1 => vec![first_container(bp, project, backend)],
                n => (1..=n).map(|n| container_name(project, backend, n)).collect(),
            };
            let listen: Vec<u16> = template.ports.iter().map(|p| p.container_port).collect();
            for c in &containers {
                let spec = LoadBalancerSpec::new(&c.name, backend, lb.backend_port, servers.clone(), &listen);
                state.load_balancers.insert(c.name.clone(), spec);
            }
            containers
        }
        (None, None) => {
            let mut containers = kinds::plain(project, &service.name, service.replicas.value, template);
            if let (Some(name), [only]) = (&service.compose.container_name, containers.as_mut_slice()) {
                only.name = name.value.clone();
                if template.hostname.is_empty() && !only.hostname.is_empty() {
                    only.hostname = name.value.clone();
                }
            }
            containers
        }
    }
}

/// Spreads a service's containers over its `zones:` in turn (replica or database node `n` in
/// the `(n-1) % len`-th), the way Swarm's spread placement does: each container carries its
/// zone as a label (`scale chaos stop dc:dc-a` finds them by it), as `SCALE_ZONE` (the demo
/// app's `X-Dc`, the database image's replication route) and as a network alias
/// `<service>-<zone>` on each of its networks, so a client reaches "the `db` node in dc-b"
/// (`db-dc-b`) without knowing node numbers. Per-zone networks and settings are the
/// blueprint's to write: a data centre's own load balancer and web tier are services of
/// their own, each in one zone.
fn place_in_zones(service: &Service, containers: &mut [ContainerSpec]) {
    if service.zones.is_empty() {
        return;
    }
    for c in containers {
        let zone = &service.zones[(c.replica.max(1) as usize - 1) % service.zones.len()].value;
        c.labels.insert(crate::labels::ZONE.to_string(), zone.clone());
        c.env.insert("SCALE_ZONE".to_string(), zone.clone());
        let alias = format!("{}-{zone}", service.name);
        for attachment in &mut c.networks {
            if !attachment.aliases.contains(&alias) {
                attachment.aliases.push(alias.clone());
            }
        }
    }
}

/// What the planner orders a service's work by, from its expanded containers: a kind may
/// add containers (replicas) and a healthcheck (readiness) the blueprint does not spell out.
fn service_spec(service: &Service, containers: &[ContainerSpec], others_wait_for_completion: bool) -> ServiceSpec {
    let readiness = if others_wait_for_completion {
        Readiness::Completed
    } else if declared_healthcheck(service).is_some() || containers.iter().any(|c| c.healthcheck.is_some()) {
        Readiness::Healthy
    } else {
        Readiness::Running
    };
    ServiceSpec {
        name: service.name.clone(),
        kind: service.kind.as_ref().map(|k| k.value),
        replicas: containers.len() as u32,
        depends_on: service
            .depends_on
            .iter()
            .map(|d| (d.service.value.clone(), d.condition))
            .chain(network_owner(service).map(|owner| (owner.to_string(), Condition::ServiceStarted)))
            .collect(),
        readiness,
        leader: service.postgres.as_ref().map(|_| 1),
        rollout: service.rollout,
        autoscale: service.autoscale.as_ref().map(|a| a.value.clone()),
    }
}

/// The service whose network stack this one shares (`network_mode: service:NAME`), unless it
/// already depends on it: that container must exist first, as Compose orders it.
fn network_owner(service: &Service) -> Option<&str> {
    match &service.compose.options.network_mode {
        Some(NetworkMode::Service(owner)) if !service.depends_on.iter().any(|d| d.service.value == *owner) => {
            Some(owner.as_str())
        }
        _ => None,
    }
}

/// Services in an order where each comes after its dependencies (declaration order otherwise).
/// Cycles are reported by validation; here they are simply broken at the first repeat.
pub fn dependency_order(bp: &Blueprint) -> Vec<&crate::model::Service> {
    type Index<'a> = HashMap<&'a str, &'a crate::model::Service>;
    fn visit<'a>(index: &Index<'a>, name: &str, seen: &mut HashSet<&'a str>, out: &mut Vec<&'a crate::model::Service>) {
        let Some(service) = index.get(name).copied() else { return };
        if !seen.insert(service.name.as_str()) {
            return;
        }
        for dep in &service.depends_on {
            visit(index, &dep.service.value, seen, out);
        }
        if let Some(lb) = &service.load_balancer {
            visit(index, &lb.backend_service.value, seen, out);
        }
        if let Some(owner) = network_owner(service) {
            visit(index, owner, seen, out);
        }
        out.push(service);
    }
    let index: Index = bp.services.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut seen = HashSet::with_capacity(bp.services.len());
    let mut out = Vec::with_capacity(bp.services.len());
    for service in &bp.services {
        visit(&index, &service.name, &mut seen, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::model::{Env, load_bytes};

    fn desired(yaml: &str) -> DesiredState {
        let bp = load_bytes(Path::new("compose.yaml"), yaml.as_bytes(), &Env::default()).unwrap();
        desired_state(&bp, "p", &|_: &Build| Ok("0123456789abcdef".into())).unwrap()
    }

    #[test]
    fn a_container_without_compose_options_keeps_its_stored_spec_and_hash() {
        let state = desired("services:\n  web:\n    image: x\n");
        let json = serde_json::to_string(&state.containers["p-web-1"]).unwrap();
        for new_field in ["options", "ipv4_address", "propagation", "nocopy", "start_interval_ms"] {
            assert!(!json.contains(new_field), "{new_field} in {json}");
        }
    }

    #[test]
    fn options_are_in_the_spec_so_a_change_changes_the_hash() {
        let before = desired("services:\n  web:\n    image: x\n");
        let after = desired("services:\n  web:\n    image: x\n    user: \"1000\"\n");
        let (a, b) = (&before.containers["p-web-1"], &after.containers["p-web-1"]);
        assert_eq!(b.options.user.as_deref(), Some("1000"));
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn container_name_build_target_and_image_tag() {
        let state = desired(
            "services:\n  api:\n    build: { context: ., target: runtime }\n    image: acme/api:2\n    \
             container_name: the-api\n  lb:\n    kind: load-balancer\n    image: haproxy\n    \
             backends: { service: api, port: 80 }\n",
        );
        assert!(state.containers.contains_key("the-api"), "{:?}", state.containers.keys());
        let image = state.images.values().find(|i| matches!(i.source, ImageSource::Build { .. })).unwrap();
        let ImageSource::Build { target, tags, .. } = &image.source else { unreachable!() };
        assert_eq!((target.as_deref(), tags.as_slice()), (Some("runtime"), ["acme/api:2".to_string()].as_slice()));
        assert!(image.reference.starts_with("p/api:"), "containers run the content-addressed tag");
        assert_eq!(state.load_balancers["p-lb-1"].pool.servers, ["the-api"]);
    }

    #[test]
    fn network_mode_service_shares_the_first_container_and_starts_after_it() {
        let state = desired(
            "services:\n  vpn:\n    image: x\n  app:\n    image: x\n    network_mode: service:vpn\n    \
             hostname: ignored\n",
        );
        let app = &state.containers["p-app-1"];
        assert_eq!(app.options.network_mode, Some(NetworkMode::Container("p-vpn-1".into())));
        assert!(app.networks.is_empty() && app.hostname.is_empty(), "the engine refuses both with a shared stack");
        let spec = state.services.iter().find(|s| s.name == "app").unwrap();
        assert_eq!(spec.depends_on, [("vpn".to_string(), Condition::ServiceStarted)]);
        let order: Vec<&str> = state.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(order, ["vpn", "app"]);
        // Replacing vpn (a new network namespace) replaces app too.
        assert_eq!(app.labels[crate::labels::NETWORK_FROM], state.containers["p-vpn-1"].hash());
    }

    #[test]
    fn external_networks_and_volumes_are_used_by_name_and_not_created() {
        let state = desired(
            "services:\n  web:\n    image: x\n    networks: { shared: { ipv4_address: 172.30.0.5 } }\n    \
             volumes: [\"data:/data\"]\nnetworks:\n  shared: { external: true, name: proxy }\n\
             volumes:\n  data: { external: true }\n",
        );
        let web = &state.containers["p-web-1"];
        assert_eq!(web.networks[0].network, "proxy");
        assert_eq!(web.networks[0].ipv4_address.as_deref(), Some("172.30.0.5"));
        assert_eq!(web.mounts[0].source, MountSourceSpec::Volume("data".into()));
        assert!(state.networks.is_empty() && state.volumes.is_empty());
        assert!(state.external_networks.contains("proxy") && state.external_volumes.contains("data"));
    }
}
