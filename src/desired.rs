//! Blueprint → fully specified desired state: every container, network, volume and image with
//! nothing left for the executor to decide (the lesson of Oxide's Reconfigurator).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::diag::Diagnostic;
use crate::kinds;
use crate::model::{Blueprint, Build, Condition, MountSource, Service};
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
        let template = container_template(service, project, image);
        let containers = expand(bp, project, service, &template, &mut state);
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
        let full = scoped_name(project, name);
        let mut labels = def.labels.clone();
        labels.extend(base_labels.clone());
        state.networks.insert(full.clone(), NetworkSpec { name: full, internal: def.internal, labels });
    }
    if bp.services.iter().any(|s| s.networks.is_empty()) {
        let full = scoped_name(project, DEFAULT_NETWORK);
        state.networks.entry(full.clone()).or_insert(NetworkSpec {
            name: full,
            internal: false,
            labels: base_labels.clone(),
        });
    }
    for (name, def) in &bp.volumes {
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
            let source = ImageSource::Build {
                context: build.value.context.clone(),
                dockerfile: build.value.dockerfile.clone(),
                args: build.value.args.clone(),
                context_hash,
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

/// Everything a service's containers share; its kind then names and shapes each one.
fn container_template(service: &Service, project: &str, image: String) -> ContainerSpec {
    let networks: Vec<AttachmentSpec> = if service.networks.is_empty() {
        vec![AttachmentSpec { network: scoped_name(project, DEFAULT_NETWORK), aliases: vec![service.name.clone()] }]
    } else {
        service
            .networks
            .iter()
            .map(|n| {
                let mut aliases = vec![service.name.clone()];
                aliases.extend(n.aliases.iter().cloned());
                AttachmentSpec { network: scoped_name(project, &n.name.value), aliases }
            })
            .collect()
    };
    let mounts = service
        .volumes
        .iter()
        .map(|m| MountSpec {
            source: match &m.value.source {
                MountSource::Volume(v) => MountSourceSpec::Volume(scoped_name(project, v)),
                MountSource::Bind(p) => MountSourceSpec::Bind(p.clone()),
                MountSource::Anonymous => MountSourceSpec::Anonymous,
            },
            target: m.value.target.clone(),
            read_only: m.value.read_only,
        })
        .collect::<Vec<_>>();
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
        networks,
        mounts,
        healthcheck: health,
        restart: service.restart,
        stop_grace_secs: service.stop_grace_period.map(|d| d.as_secs().max(1)),
        labels: service.labels.clone(),
        hostname: String::new(),
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
            let servers: Vec<String> = (1..=backend_replicas).map(|n| container_name(project, backend, n)).collect();
            let listen: Vec<u16> = template.ports.iter().map(|p| p.container_port).collect();
            for c in &containers {
                let spec = LoadBalancerSpec::new(&c.name, backend, lb.backend_port, servers.clone(), &listen);
                state.load_balancers.insert(c.name.clone(), spec);
            }
            containers
        }
        (None, None) => kinds::plain(project, &service.name, service.replicas.value, template),
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
        depends_on: service.depends_on.iter().map(|d| (d.service.value.clone(), d.condition)).collect(),
        readiness,
        leader: service.postgres.as_ref().map(|_| 1),
        rollout: service.rollout,
        autoscale: service.autoscale.as_ref().map(|a| a.value.clone()),
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
