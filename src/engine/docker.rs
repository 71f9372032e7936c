//! The Docker engine over bollard.
//!
//! Everything here translates between scale's types and the Engine API, and turns bollard's
//! errors into [`EngineError`] variants that keep the engine's answer as a [`Cause`] (status
//! and message apart); what an answer *means* is decided in [`super::classify`] only. Notes on the engine that shaped the code:
//!
//! - bollard 0.21 speaks API 1.53 by default and an engine older than that rejects every
//!   versioned request ("client version 1.53 is too new"), `/version` included. So
//!   [`DockerEngine::connect_to`] asks the *unversioned* `/version` for the engine's API
//!   version, lets `negotiate_version` settle on the lower of the two, and refuses engines
//!   older than [`MINIMUM_API`].
//! - API < 1.44 creates a second network with an existing name unless `CheckDuplicate` is
//!   set, a field bollard's (1.53) request type no longer has; [`DockerEngine::create_network`]
//!   sends it anyway.
//! - API 1.41 attaches a container to one network at create time; the others are connected
//!   afterwards, and a container that cannot be fully wired is removed again, so that a spec
//!   hash on a container always means "created exactly as specified".
//! - `observe` builds containers from the list call alone (no per-container inspect): state,
//!   health and exit code come from the `State` and `Status` words.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerSummary, HealthConfig, HostConfig, Mount, MountType, NetworkConnectRequest,
    NetworkCreateRequest, NetworkingConfig, PortBinding, PortSummaryTypeEnum, RestartPolicy as DockerRestart,
    RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder, InspectContainerOptions,
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::{API_DEFAULT_VERSION, BollardRequest, ClientVersion, Docker};
use futures_util::StreamExt;

use super::classify::{self, Cause};
use super::lock::{LockError, LockEvent, ProjectLock};
use super::{ContainerStatus, Engine, EngineError, Progress};
use crate::build_context;
use crate::desired::{ContainerSpec, HealthSpec, ImageSource, ImageSpec, MountSourceSpec, NetworkSpec, VolumeSpec};
use crate::labels;
use crate::model::{Build, Protocol, RestartPolicy};
use crate::observed::{
    self, Health, ObservedContainer, ObservedNetwork, ObservedState, ObservedVolume, PublishedPort, RunState,
};

/// Where the engine is when `DOCKER_HOST` is unset.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// The oldest Engine API scale works with (Docker 19.03).
pub const MINIMUM_API: (usize, usize) = (1, 40);
/// How long connecting (the version negotiation) may take before the engine counts as
/// unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long an ordinary request may wait for the engine's answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a build or pull may wait for the engine to start answering (the context upload
/// and a slow registry count against it; the streamed output itself is not bounded).
const STREAM_TIMEOUT: Duration = Duration::from_secs(600);
/// How many lines of build output an error keeps.
const BUILD_OUTPUT_LINES: usize = 30;

/// An engine reached over the Docker Engine API.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
    address: String,
    api_version: String,
}

impl DockerEngine {
    /// Connects to the engine `DOCKER_HOST` names (`unix://`, `tcp://` or `http://`), or to
    /// [`DEFAULT_HOST`], within [`CONNECT_TIMEOUT`].
    pub async fn connect() -> Result<DockerEngine, EngineError> {
        let address = std::env::var("DOCKER_HOST").ok().filter(|h| !h.trim().is_empty());
        let address = address.as_deref().unwrap_or(DEFAULT_HOST);
        let tls = std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty() && v != "0");
        if tls && !address.starts_with("unix://") {
            return Err(EngineError::Unreachable {
                address: address.to_string(),
                cause: Cause::local(
                    "DOCKER_TLS_VERIFY is set, and scale does not speak TLS to the engine; \
                         use an SSH tunnel or a unix socket",
                ),
            });
        }
        Self::connect_to(address).await
    }

    /// Connects to the engine at `address` (same forms as `DOCKER_HOST`), ignoring the
    /// environment: negotiates the API version within [`CONNECT_TIMEOUT`].
    pub async fn connect_to(address: &str) -> Result<DockerEngine, EngineError> {
        let address = address.trim().to_string();
        match tokio::time::timeout(CONNECT_TIMEOUT, Self::connect_inner(&address)).await {
            Ok(result) => result,
            Err(_) => Err(EngineError::Unreachable {
                address,
                cause: Cause::local(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())),
            }),
        }
    }

    async fn connect_inner(address: &str) -> Result<DockerEngine, EngineError> {
        let connect_error = |e: BollardError| {
            if classify::is_permission_denied(&e) {
                EngineError::PermissionDenied { address: address.to_string() }
            } else {
                EngineError::Unreachable { address: address.to_string(), cause: e.into() }
            }
        };

        // Probe with the unversioned `/version`: an engine older than bollard's default API
        // rejects every versioned path, `/v1.53/version` included.
        let probe = client(address, API_DEFAULT_VERSION, REQUEST_TIMEOUT)?.with_request_modifier(unversioned);
        let probe = probe.negotiate_version().await.map_err(connect_error)?;
        let version = probe.client_version();
        let api_version = format!("{}.{}", version.major_version, version.minor_version);
        if (version.major_version, version.minor_version) < MINIMUM_API {
            return Err(EngineError::ApiTooOld {
                address: address.to_string(),
                version: api_version,
                minimum: format!("{}.{}", MINIMUM_API.0, MINIMUM_API.1),
            });
        }
        // No `/_ping` after this: the answer to `/version` already showed the engine reachable
        // and the socket ours to use, and every command's first real request follows at once
        // (one round trip less on the no-op apply's path).
        let docker = client(address, &version, REQUEST_TIMEOUT)?;
        Ok(DockerEngine { docker, address: address.to_string(), api_version })
    }

    /// The Engine API version in use ("1.41").
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// The underlying bollard client, for calls the [`Engine`] trait does not cover
    /// (events, exec, network disconnect ...).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Gives a built image the extra names Compose would (`image:` beside `build:`).
    async fn tag_build(&self, reference: &str, tags: &[String]) -> Result<(), Cause> {
        for tag in tags {
            let (repo, tag) = split_reference(tag);
            let options = bollard::query_parameters::TagImageOptions { repo: Some(repo), tag: Some(tag) };
            self.docker.tag_image(reference, Some(options)).await.map_err(Cause::from)?;
        }
        Ok(())
    }

    /// One container's inspect, failing as [`EngineError::Inspect`] naming it.
    async fn inspect(&self, id: &str, name: &str) -> Result<bollard::models::ContainerInspectResponse, EngineError> {
        self.docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| EngineError::Inspect { name: name.into(), cause: e.into() })
    }

    fn with_timeout(&self, timeout: Duration) -> Docker {
        self.docker.clone().with_timeout(timeout)
    }

    /// Force-removes a container (already gone counts as removed), with its anonymous
    /// volumes when `anonymous_volumes`.
    async fn remove(&self, id: &str, name: &str, anonymous_volumes: bool) -> Result<(), EngineError> {
        let options = RemoveContainerOptionsBuilder::new().force(true).v(anonymous_volumes).build();
        match self.docker.remove_container(id, Some(options)).await.map_err(Cause::from) {
            Ok(()) => Ok(()),
            Err(cause) if cause.is_not_found() || classify::removal_in_progress(&cause) => Ok(()),
            Err(cause) => Err(EngineError::Remove { name: name.into(), cause }),
        }
    }
}

/// A bollard client for `address` speaking API `version`; nothing is sent yet.
fn client(address: &str, version: &ClientVersion, timeout: Duration) -> Result<Docker, EngineError> {
    let secs = timeout.as_secs();
    let unreachable = |cause: Cause| EngineError::Unreachable { address: address.to_string(), cause };
    let docker = if let Some(path) = address.strip_prefix("unix://") {
        Docker::connect_with_unix(path, secs, version)
    } else if address.starts_with("tcp://") || address.starts_with("http://") {
        Docker::connect_with_http(&with_default_port(address), secs, version)
    } else {
        let scheme = address.split_once("://").map_or(address, |(s, _)| s);
        return Err(unreachable(Cause::local(format!(
            "unsupported DOCKER_HOST scheme `{scheme}` (scale speaks unix://, tcp:// and http://)"
        ))));
    };
    docker.map_err(|e| unreachable(e.into()))
}

/// `tcp://host` → `tcp://host:2375`, Docker's default for plain-TCP engines.
fn with_default_port(address: &str) -> String {
    let (scheme, rest) = address.split_once("://").unwrap_or(("tcp", address));
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(host, _)| !host.is_empty() && (!host.contains(':') || host.ends_with(']')));
    if has_port || authority.is_empty() {
        address.to_string()
    } else if path.is_empty() {
        format!("{scheme}://{authority}:2375")
    } else {
        format!("{scheme}://{authority}:2375/{path}")
    }
}

/// Where ports the engine publishes on every address are reached from here: the host of a
/// `tcp://` or `http://` engine, unless that is this machine. `None` means 127.0.0.1.
pub fn published_host(address: &str) -> Option<String> {
    let rest = address.strip_prefix("tcp://").or_else(|| address.strip_prefix("http://"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(host, _)| host),
    };
    let local = host.is_empty()
        || host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
    (!local).then(|| host.to_string())
}

/// Request modifier for the version probe: `/v1.53/version` → `/version`.
fn unversioned(mut req: BollardRequest) -> BollardRequest {
    if let Some(parsed) = strip_api_version(&req.uri().to_string()).and_then(|u| u.parse().ok()) {
        *req.uri_mut() = parsed;
    }
    req
}

/// `http://h/v1.53/version` → `http://h/version`.
fn strip_api_version(uri: &str) -> Option<String> {
    let i = uri.find("/v1.")?;
    let rest = &uri[i + 1..];
    let slash = rest.find('/')?;
    Some(format!("{}{}", &uri[..i], &rest[slash..]))
}

fn label_filter(project: &str) -> HashMap<&'static str, Vec<String>> {
    HashMap::from([("label", vec![labels::project_filter(project)])])
}

fn to_hash_map(map: &BTreeMap<String, String>) -> HashMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn millis_to_nanos(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX / 1_000_000).saturating_mul(1_000_000)
}

/// The engine's healthcheck for a spec; `["NONE"]` disables the image's own.
pub fn health_config(h: &HealthSpec) -> HealthConfig {
    if h.test.first().map(String::as_str) == Some("NONE") {
        return HealthConfig { test: Some(vec!["NONE".into()]), ..Default::default() };
    }
    HealthConfig {
        test: Some(h.test.clone()),
        interval: Some(millis_to_nanos(h.interval_ms)),
        timeout: Some(millis_to_nanos(h.timeout_ms)),
        retries: Some(i64::from(h.retries)),
        start_period: Some(millis_to_nanos(h.start_period_ms)),
        // Engines below API 1.44 reject it; `create_named` drops it for them.
        start_interval: h.start_interval_ms.map(millis_to_nanos),
    }
}

fn port_key(port: u16, protocol: Protocol) -> String {
    format!("{port}/{}", protocol.as_str())
}

/// The create request for a container: everything but the extra networks.
pub fn create_body(spec: &ContainerSpec, project: &str) -> ContainerCreateBody {
    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &spec.ports {
        let key = port_key(p.container_port, p.protocol);
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        bindings.entry(key).or_insert_with(|| Some(Vec::new())).get_or_insert_with(Vec::new).push(PortBinding {
            host_ip: Some(p.host_ip.clone().unwrap_or_default()),
            host_port: Some(p.host_port.map(|h| h.to_string()).unwrap_or_default()),
        });
    }
    let mounts = spec
        .mounts
        .iter()
        .map(|m| {
            let (typ, source) = match &m.source {
                MountSourceSpec::Volume(name) => (MountType::VOLUME, Some(name.clone())),
                MountSourceSpec::Bind(path) => (MountType::BIND, Some(path.to_string_lossy().into_owned())),
                MountSourceSpec::Anonymous => (MountType::VOLUME, spec.carried.get(&m.target).cloned()),
            };
            let (bind_options, volume_options) = super::docker_options::mount_options(m);
            Mount {
                target: Some(m.target.clone()),
                source,
                typ: Some(typ),
                read_only: Some(m.read_only),
                bind_options,
                volume_options,
                ..Default::default()
            }
        })
        .collect::<Vec<_>>();
    let restart = match spec.restart {
        RestartPolicy::No => RestartPolicyNameEnum::NO,
        RestartPolicy::Always => RestartPolicyNameEnum::ALWAYS,
        RestartPolicy::OnFailure => RestartPolicyNameEnum::ON_FAILURE,
        RestartPolicy::UnlessStopped => RestartPolicyNameEnum::UNLESS_STOPPED,
    };
    let first = spec.networks.first();
    let mut body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(to_hash_map(&labels::container_labels(spec, project))),
        hostname: (!spec.hostname.is_empty()).then(|| spec.hostname.clone()),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        healthcheck: spec.healthcheck.as_ref().map(health_config),
        stop_timeout: spec.stop_grace_secs.map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
        host_config: Some(HostConfig {
            port_bindings: (!bindings.is_empty()).then_some(bindings),
            mounts: (!mounts.is_empty()).then_some(mounts),
            restart_policy: Some(DockerRestart { name: Some(restart), maximum_retry_count: None }),
            network_mode: first.map(|n| n.network.clone()),
            ..Default::default()
        }),
        networking_config: first.map(|n| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                n.network.clone(),
                super::docker_options::endpoint(n, spec.options.mac_address.as_ref()),
            )])),
        }),
        ..Default::default()
    };
    super::docker_options::apply(&mut body, &spec.options);
    body
}

/// Whether an engine speaking API `version` (`1.41`) knows what API `1.minor` added.
pub fn api_at_least(version: &str, minor: u32) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, have) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    major > 1 || (major == 1 && have >= minor)
}

/// The create request as an engine below API 1.44 wants it, when that differs: no
/// healthcheck `StartInterval` (1.44 added it; the probes run at `Interval` meanwhile), and the
/// MAC address in `Config` (1.44 moved it to the endpoint). `None`: send the body as it is.
fn legacy_body(body: &ContainerCreateBody, api: &str) -> Option<Vec<u8>> {
    let start_interval = body.healthcheck.as_ref().is_some_and(|h| h.start_interval.is_some());
    let mac = body
        .networking_config
        .as_ref()
        .and_then(|n| n.endpoints_config.as_ref()?.values().find_map(|e| e.mac_address.clone()));
    if api_at_least(api, 44) || (!start_interval && mac.is_none()) {
        return None;
    }
    let mut json = serde_json::to_value(body).ok()?;
    if let Some(hc) = json.get_mut("Healthcheck").and_then(|h| h.as_object_mut()) {
        hc.remove("StartInterval");
    }
    if let Some(mac) = mac {
        json["MacAddress"] = serde_json::Value::String(mac);
    }
    serde_json::to_vec(&json).ok()
}

/// A `name:tag` or `name@digest` reference split the way the pull API wants it.
fn split_reference(reference: &str) -> (String, String) {
    if let Some((name, digest)) = reference.split_once('@') {
        return (name.to_string(), digest.to_string());
    }
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[last_slash..].rfind(':') {
        Some(i) => (reference[..last_slash + i].to_string(), reference[last_slash + i + 1..].to_string()),
        None => (reference.to_string(), "latest".to_string()),
    }
}

/// The engine lists a port bound on all addresses twice, 0.0.0.0 and ::; keep the IPv4 one
/// (where 127.0.0.1 goes). Usually both have the same host port, but Docker 20.10 may give
/// the two bindings of an engine-picked port different ones (0.0.0.0:32800 and :::32801);
/// then the :: one is a pair of the 0.0.0.0 one when the container port has as many of each.
/// A binding on :: alone (`[::]:9000:80` next to `8000:80`) stays.
fn one_binding_per_port(ports: &mut Vec<PublishedPort>) {
    let key = |p: &PublishedPort| (p.container_port, p.protocol);
    let count = |ip: &str, k: (u16, Protocol)| ports.iter().filter(|p| p.host_ip == ip && key(p) == k).count();
    let v4: BTreeSet<(u16, Protocol, u16)> =
        ports.iter().filter(|p| p.host_ip == "0.0.0.0").map(|p| (p.container_port, p.protocol, p.host_port)).collect();
    let paired: BTreeSet<(u16, Protocol)> = ports
        .iter()
        .filter(|p| p.host_ip == "::")
        .map(key)
        .filter(|k| count("::", *k) == count("0.0.0.0", *k))
        .collect();
    ports.retain(|p| {
        p.host_ip != "::" || !(v4.contains(&(p.container_port, p.protocol, p.host_port)) || paired.contains(&key(p)))
    });
}

fn observed_container(c: ContainerSummary) -> Option<ObservedContainer> {
    let id = c.id?;
    let name = c
        .names
        .unwrap_or_default()
        .into_iter()
        .map(|n| n.trim_start_matches('/').to_string())
        .find(|n| !n.contains('/'))?;
    let status = c.status.unwrap_or_default();
    let networks: Vec<String> =
        c.network_settings.and_then(|n| n.networks).map(|n| n.into_keys().collect()).unwrap_or_default();
    let state = RunState::from_engine(&c.state.map(|s| s.to_string()).unwrap_or_default());
    let running = state == RunState::Running;
    let mut ports: Vec<PublishedPort> = c
        .ports
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            let protocol = match p.typ {
                Some(PortSummaryTypeEnum::UDP) => Protocol::Udp,
                Some(PortSummaryTypeEnum::TCP) | Some(PortSummaryTypeEnum::EMPTY) | None => Protocol::Tcp,
                Some(PortSummaryTypeEnum::SCTP) => return None,
            };
            Some(PublishedPort {
                container_port: p.private_port,
                protocol,
                host_ip: p.ip.filter(|ip| !ip.is_empty()).unwrap_or_else(|| "0.0.0.0".into()),
                host_port: p.public_port.filter(|p| *p != 0)?,
            })
        })
        .collect();
    one_binding_per_port(&mut ports);
    ports.sort();
    ports.dedup();
    Some(ObservedContainer {
        id,
        name,
        labels: c.labels.unwrap_or_default().into_iter().collect(),
        image: c.image.unwrap_or_default(),
        state,
        health: observed::health_from_status(&status),
        exit_code: if running { None } else { observed::exit_code_from_status(&status) },
        ports: if running { ports } else { Vec::new() },
        networks,
    })
}

fn health_from_engine(status: &str) -> Option<Health> {
    match status {
        "starting" => Some(Health::Starting),
        "healthy" => Some(Health::Healthy),
        "unhealthy" => Some(Health::Unhealthy),
        _ => None,
    }
}

/// Keeps the last [`BUILD_OUTPUT_LINES`] lines of output while passing each to `progress`.
struct OutputTail<'a> {
    lines: VecDeque<String>,
    progress: Progress<'a>,
}

impl<'a> OutputTail<'a> {
    fn new(progress: Progress<'a>) -> Self {
        OutputTail { lines: VecDeque::new(), progress }
    }

    fn push(&mut self, text: &str) {
        for line in text.lines() {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            (self.progress)(line);
            if self.lines.len() == BUILD_OUTPUT_LINES {
                self.lines.pop_front();
            }
            self.lines.push_back(line.to_string());
        }
    }

    fn into_lines(self) -> Vec<String> {
        self.lines.into()
    }
}

impl Engine for DockerEngine {
    fn address(&self) -> String {
        self.address.clone()
    }

    async fn observe(&self, project: &str) -> Result<ObservedState, EngineError> {
        let filters = label_filter(project);
        let containers =
            self.docker.list_containers(Some(ListContainersOptionsBuilder::new().all(true).filters(&filters).build()));
        let networks = self.docker.list_networks(Some(ListNetworksOptionsBuilder::new().filters(&filters).build()));
        let volumes = self.docker.list_volumes(Some(ListVolumesOptionsBuilder::new().filters(&filters).build()));
        // Tagged images only: `all=true` would add the untagged intermediate layers of classic
        // builds, which carry no reference anyway.
        let images = self.docker.list_images(Some(ListImagesOptionsBuilder::new().all(false).build()));
        let (containers, networks, volumes, images) =
            futures_util::future::try_join4(containers, networks, volumes, images)
                .await
                .map_err(|e| EngineError::Observe(e.into()))?;

        let owned = |l: Option<&HashMap<String, String>>| {
            l.and_then(|l| l.get(labels::PROJECT)).map(String::as_str) == Some(project)
        };
        Ok(ObservedState {
            load_balancers: Default::default(),
            pool_records: Default::default(),
            stale_replicas: Default::default(),
            shards: None,
            published_host: published_host(&self.address),
            project: project.to_string(),
            containers: containers
                .into_iter()
                .filter(|c| owned(c.labels.as_ref()))
                .filter_map(observed_container)
                .map(|c| (c.name.clone(), c))
                .collect(),
            networks: networks
                .into_iter()
                .filter(|n| owned(n.labels.as_ref()))
                .filter_map(|n| {
                    let name = n.name?;
                    Some((
                        name.clone(),
                        ObservedNetwork { id: n.id.unwrap_or_default(), name, internal: n.internal.unwrap_or(false) },
                    ))
                })
                .collect(),
            volumes: volumes
                .volumes
                .unwrap_or_default()
                .into_iter()
                .filter(|v| owned(Some(&v.labels)))
                .map(|v| (v.name.clone(), ObservedVolume { name: v.name, labels: v.labels.into_iter().collect() }))
                .collect(),
            images: images.into_iter().flat_map(|i| i.repo_tags).filter(|t| t != "<none>:<none>").collect(),
        }
        .take_pool_records())
    }

    async fn create_network(&self, spec: &NetworkSpec) -> Result<(), EngineError> {
        let err = |cause: Cause| EngineError::CreateNetwork { name: spec.name.clone(), cause };
        let (driver, options, ipam) = super::docker_options::network_settings(spec);
        let request = NetworkCreateRequest {
            name: spec.name.clone(),
            driver: Some(driver),
            internal: Some(spec.internal),
            labels: Some(to_hash_map(&spec.labels)),
            options,
            ipam,
            enable_ipv6: spec.enable_ipv6.then_some(true),
            attachable: spec.attachable.then_some(true),
            ..Default::default()
        };
        // bollard's request type has no `CheckDuplicate` (removed in API 1.44, where names are
        // unique anyway); older engines need it or they create a second network of that name.
        let mut body = serde_json::to_value(&request).map_err(|e| err(Cause::local(e.to_string())))?;
        body["CheckDuplicate"] = serde_json::Value::Bool(true);
        let bytes = serde_json::to_vec(&body).map_err(|e| err(Cause::local(e.to_string())))?;
        let docker = self.docker.clone().with_request_modifier(move |req: BollardRequest| {
            let (parts, _) = req.into_parts();
            BollardRequest::from_parts(parts, bollard::body_full(bytes.clone().into()))
        });
        docker.create_network(request).await.map(|_| ()).map_err(|e| err(e.into()))
    }

    async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        match self.docker.remove_network(name).await.map_err(Cause::from) {
            Ok(()) => Ok(()),
            Err(cause) if cause.is_not_found() => Ok(()),
            Err(cause) => Err(EngineError::RemoveNetwork { name: name.into(), cause }),
        }
    }

    async fn create_volume(&self, spec: &VolumeSpec) -> Result<(), EngineError> {
        let request = VolumeCreateRequest {
            name: Some(spec.name.clone()),
            labels: Some(to_hash_map(&spec.labels)),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .map(|_| ())
            .map_err(|e| EngineError::CreateVolume { name: spec.name.clone(), cause: e.into() })
    }

    async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        let options = RemoveVolumeOptionsBuilder::new().force(false).build();
        match self.docker.remove_volume(name, Some(options)).await.map_err(Cause::from) {
            Ok(()) => Ok(()),
            Err(cause) if cause.is_not_found() => Ok(()),
            Err(cause) => Err(EngineError::RemoveVolume { name: name.into(), cause }),
        }
    }

    async fn build_image(&self, image: &ImageSpec, project: &str, progress: Progress<'_>) -> Result<(), EngineError> {
        let failed =
            |cause: Cause, output: Vec<String>| EngineError::Build { image: image.reference.clone(), cause, output };
        let ImageSource::Build { context, dockerfile, args, target, tags, .. } = &image.source else {
            return Err(failed(Cause::local("the image has no build context (it is pulled, not built)"), Vec::new()));
        };
        let build = Build {
            context: context.clone(),
            dockerfile: dockerfile.clone(),
            args: args.clone(),
            target: target.clone(),
        };
        let context_error = |e: build_context::ContextError| EngineError::BuildContext {
            context: e.context().display().to_string(),
            cause: Cause::local(e.to_string()),
        };
        let dockerfile = build_context::dockerfile_path(&build).map_err(context_error)?;
        let tar = {
            let build = build.clone();
            tokio::task::spawn_blocking(move || build_context::tar(&build))
                .await
                .map_err(|e| failed(Cause::local(format!("packing the context failed: {e}")), Vec::new()))?
                .map_err(context_error)?
        };

        let options = BuildImageOptionsBuilder::new()
            .t(&image.reference)
            .target(target.as_deref().unwrap_or_default())
            .dockerfile(&dockerfile)
            .buildargs(&to_hash_map(args))
            .labels(&HashMap::from([(labels::PROJECT.to_string(), project.to_string())]))
            .rm(true)
            .forcerm(true)
            .build();
        let docker = self.with_timeout(STREAM_TIMEOUT);
        let mut stream = docker.build_image(options, None, Some(bollard::body_full(tar.into())));
        let mut output = OutputTail::new(progress);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = &info.stream {
                        output.push(text);
                    }
                    if let Some(status) = &info.status {
                        match &info.id {
                            Some(id) => output.push(&format!("{id}: {status}")),
                            None => output.push(status),
                        }
                    }
                    if let Some(message) = info.error_detail.and_then(|d| d.message) {
                        return Err(build_failure(&image.reference, Cause::Stream { message }, output));
                    }
                }
                Err(e) => return Err(build_failure(&image.reference, e.into(), output)),
            }
        }
        self.tag_build(&image.reference, tags).await.map_err(|cause| failed(cause, Vec::new()))
    }

    async fn pull_image(&self, reference: &str, progress: Progress<'_>) -> Result<(), EngineError> {
        let failed = |cause: Cause| EngineError::Pull {
            reference: reference.to_string(),
            failure: classify::pull_failure(&cause),
            cause,
        };
        let (name, tag) = split_reference(reference);
        let options = CreateImageOptionsBuilder::new().from_image(&name).tag(&tag).build();
        let docker = self.with_timeout(STREAM_TIMEOUT);
        let mut stream = docker.create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| failed(e.into()))?;
            if let Some(message) = info.error_detail.and_then(|d| d.message) {
                return Err(failed(Cause::Stream { message }));
            }
            if let Some(status) = info.status {
                match info.id {
                    Some(id) => progress(&format!("{id}: {status}")),
                    None => progress(&status),
                }
            }
        }
        Ok(())
    }

    async fn create_named(&self, name: &str, spec: &ContainerSpec, project: &str) -> Result<String, EngineError> {
        let failed = |cause: Cause| EngineError::CreateContainer { name: name.to_string(), cause };
        let mut options = CreateContainerOptionsBuilder::new().name(name);
        if let Some(platform) = &spec.options.platform {
            options = options.platform(platform);
        }
        let options = options.build();
        let body = create_body(spec, project);
        let docker = match legacy_body(&body, &self.api_version) {
            Some(bytes) => self.docker.clone().with_request_modifier(move |req: BollardRequest| {
                let (parts, _) = req.into_parts();
                BollardRequest::from_parts(parts, bollard::body_full(bytes.clone().into()))
            }),
            None => self.docker.clone(),
        };
        let created = match docker.create_container(Some(options), body).await {
            Ok(created) => created,
            Err(e) if classify::status_code(&e) == Some(409) => {
                let holder = self.docker.inspect_container(name, None::<InspectContainerOptions>).await;
                let owner = holder.ok().and_then(|c| c.config?.labels?.remove(labels::PROJECT));
                return Err(if owner.as_deref() == Some(project) {
                    failed(e.into())
                } else {
                    EngineError::NameTaken { name: name.to_string() }
                });
            }
            Err(e) => return Err(failed(e.into())),
        };
        for attachment in spec.networks.iter().skip(1) {
            let request = NetworkConnectRequest {
                container: created.id.clone(),
                endpoint_config: Some(super::docker_options::endpoint(attachment, None)),
            };
            if let Err(e) = self.docker.connect_network(&attachment.network, request).await {
                // A half-wired container would carry a spec hash it does not honour: undo it.
                let _ = self
                    .docker
                    .remove_container(
                        &created.id,
                        Some(RemoveContainerOptionsBuilder::new().force(true).v(false).build()),
                    )
                    .await;
                return Err(EngineError::Connect {
                    name: name.to_string(),
                    network: attachment.network.clone(),
                    cause: e.into(),
                });
            }
        }
        Ok(created.id)
    }

    async fn rename_container(&self, id: &str, name: &str, new_name: &str) -> Result<(), EngineError> {
        let options = bollard::query_parameters::RenameContainerOptions { name: new_name.to_string() };
        self.docker
            .rename_container(id, options)
            .await
            .map_err(|e| EngineError::Rename { name: name.to_string(), cause: e.into() })
    }

    async fn start_container(&self, id: &str, name: &str) -> Result<(), EngineError> {
        let cause = match self.docker.start_container(id, None).await {
            Ok(()) => return Ok(()),
            Err(e) => Cause::from(e),
        };
        Err(match classify::port_taken(&cause) {
            Some(port) => EngineError::PortInUse { name: name.into(), port },
            None => EngineError::Start { name: name.into(), cause },
        })
    }

    async fn stop_container(&self, id: &str, name: &str, grace: Duration) -> Result<(), EngineError> {
        let secs = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let docker = self.with_timeout(REQUEST_TIMEOUT.max(grace + Duration::from_secs(60)));
        // 304 (already stopped) counts as success in bollard.
        docker
            .stop_container(id, Some(StopContainerOptionsBuilder::new().t(secs).build()))
            .await
            .map_err(|e| EngineError::Stop { name: name.into(), cause: e.into() })
    }

    async fn remove_container(&self, id: &str, name: &str) -> Result<(), EngineError> {
        // v=false: volumes outlive containers; only `destroy --volumes` removes them.
        self.remove(id, name, false).await
    }

    async fn remove_container_and_anonymous_volumes(&self, id: &str, name: &str) -> Result<(), EngineError> {
        self.remove(id, name, true).await
    }

    async fn unpause_container(&self, id: &str, name: &str) -> Result<(), EngineError> {
        match self.docker.unpause_container(id).await.map_err(Cause::from) {
            Ok(()) => Ok(()),
            Err(cause) if classify::not_paused(&cause) => Ok(()),
            Err(cause) => Err(EngineError::Unpause { name: name.into(), cause }),
        }
    }

    async fn volume_mounts(&self, id: &str, name: &str) -> Result<BTreeMap<String, String>, EngineError> {
        let inspect = self.inspect(id, name).await?;
        Ok(inspect
            .mounts
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.typ.as_deref() == Some("volume"))
            .filter_map(|m| Some((m.destination?, m.name?)))
            .collect())
    }

    async fn addresses(&self, id: &str, name: &str) -> Result<BTreeMap<String, String>, EngineError> {
        let inspect = self.inspect(id, name).await?;
        let networks = inspect.network_settings.and_then(|n| n.networks).unwrap_or_default();
        Ok(networks
            .into_iter()
            .filter_map(|(net, endpoint)| Some((net, endpoint.ip_address.filter(|ip| !ip.is_empty())?)))
            .collect())
    }

    async fn container_status(&self, id: &str, name: &str) -> Result<ContainerStatus, EngineError> {
        let inspect = self.inspect(id, name).await?;
        let state = inspect.state.unwrap_or_default();
        let run_state = RunState::from_engine(&state.status.map(|s| s.to_string()).unwrap_or_default());
        let finished = matches!(run_state, RunState::Exited | RunState::Dead);
        Ok(ContainerStatus {
            state: run_state,
            health: state.health.and_then(|h| h.status).and_then(|s| health_from_engine(s.as_ref())),
            exit_code: if finished { state.exit_code } else { None },
            error: state.error.filter(|e| !e.trim().is_empty()),
        })
    }

    async fn exec(&self, id: &str, name: &str, cmd: &[String]) -> Result<super::ExecOutput, EngineError> {
        self.exec_command(id, name, cmd).await
    }

    async fn read_file(&self, id: &str, name: &str, path: &str) -> Result<Option<Vec<u8>>, EngineError> {
        self.download_file(id, name, path).await
    }

    async fn write_file(&self, id: &str, name: &str, path: &str, contents: &[u8]) -> Result<(), EngineError> {
        self.upload_file(id, name, path, contents).await
    }

    async fn signal(&self, id: &str, name: &str, signal: &str) -> Result<(), EngineError> {
        self.send_signal(id, name, signal).await
    }

    async fn pause_container(&self, id: &str, name: &str) -> Result<(), EngineError> {
        self.docker.pause_container(id).await.map_err(|e| EngineError::Pause { name: name.into(), cause: e.into() })
    }

    async fn disconnect(&self, id: &str, name: &str, network: &str) -> Result<(), EngineError> {
        self.disconnect_network(id, name, network).await
    }

    async fn connect(&self, id: &str, name: &str, network: &str, aliases: &[String]) -> Result<(), EngineError> {
        self.connect_network(id, name, network, aliases).await
    }

    async fn lock(
        &self,
        project: &str,
        command: &str,
        timeout: Duration,
        on_event: &(dyn Fn(LockEvent<'_>) + Sync),
    ) -> Result<ProjectLock, LockError> {
        super::lock::acquire_in_docker(self, project, command, timeout, on_event).await
    }

    async fn unlock_if_mine(&self, project: &str) {
        super::lock::release_if_mine_in_docker(self, project).await;
    }

    fn subscribe(&self, project: &str) -> super::EventStream {
        self.follow_events(project)
    }

    async fn health_progress(&self, id: &str, name: &str) -> Result<Option<super::HealthProgress>, EngineError> {
        super::tools::health_progress(self, id, name).await
    }

    async fn logs_tail(&self, id: &str, lines: usize) -> Result<Vec<String>, EngineError> {
        let options = LogsOptionsBuilder::new().stdout(true).stderr(true).tail(&lines.to_string()).build();
        let mut stream = self.docker.logs(id, Some(options));
        let mut out: Vec<String> = Vec::new();
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        while let Some(item) = stream.next().await {
            let chunk = item.map_err(|e| EngineError::Logs { id: id.into(), cause: e.into() })?;
            let text = String::from_utf8_lossy(&chunk.into_bytes()).into_owned();
            out.extend(text.lines().map(|l| l.trim_end_matches('\r').to_string()));
            if Instant::now() > deadline {
                break;
            }
        }
        let skip = out.len().saturating_sub(lines);
        Ok(out.split_off(skip))
    }
}

/// A failed build, classified: a `FROM` image the engine could not pull becomes
/// [`EngineError::BaseImageMissing`] (naming that image); otherwise [`EngineError::Build`],
/// with "no space left on device" added when only the output said so.
fn build_failure(image: &str, cause: Cause, output: OutputTail<'_>) -> EngineError {
    let lines = output.into_lines();
    let text = cause.to_string();
    if let Some((base, failure)) = classify::missing_base(&text, &lines) {
        return EngineError::BaseImageMissing { image: image.to_string(), base, failure, cause };
    }
    let cause = match cause {
        Cause::Stream { message } if !classify::disk_full(&message) && lines.iter().any(|l| classify::disk_full(l)) => {
            Cause::Stream { message: format!("{} (no space left on device)", message.trim()) }
        }
        cause => cause,
    };
    EngineError::Build { image: image.to_string(), cause, output: lines }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(host_ip: &str, host_port: u16, container_port: u16) -> PublishedPort {
        PublishedPort { container_port, protocol: Protocol::Tcp, host_ip: host_ip.into(), host_port }
    }

    #[test]
    fn a_port_on_all_addresses_is_listed_once_even_when_the_engine_gave_ipv6_another_port() {
        let mut same = vec![bound("0.0.0.0", 8080, 80), bound("::", 8080, 80)];
        one_binding_per_port(&mut same);
        assert_eq!(same, vec![bound("0.0.0.0", 8080, 80)]);
        // Docker 20.10: one engine-picked port, two host ports.
        let mut split = vec![bound("0.0.0.0", 32800, 80), bound("::", 32801, 80), bound("0.0.0.0", 9090, 90)];
        one_binding_per_port(&mut split);
        assert_eq!(split, vec![bound("0.0.0.0", 32800, 80), bound("0.0.0.0", 9090, 90)]);
        // A binding on :: only, next to one on all addresses, is a port of its own.
        let mut own = vec![bound("0.0.0.0", 8000, 80), bound("::", 8000, 80), bound("::", 9000, 80)];
        one_binding_per_port(&mut own);
        assert_eq!(own, vec![bound("0.0.0.0", 8000, 80), bound("::", 9000, 80)]);
    }

    /// A full disk can't be produced safely in a test; the mapping from the engine's words is
    /// checked here instead, both when the error itself says so and when only the output did.
    #[test]
    fn a_full_disk_during_a_build_says_the_disk_is_full() {
        let quiet = |_: &str| {};
        let engine_said = BollardError::DockerStreamError {
            error: "failed to register layer: write /var/lib/docker/overlay2/x/diff/big: no space left on device"
                .into(),
        };
        let err = build_failure("shop/web:1", engine_said.into(), OutputTail::new(&quiet));
        assert!(matches!(err, EngineError::Build { .. }), "{err:?}");
        assert!(err.to_string().contains("no space left on device"), "{err}");
        assert!(err.hint().is_some_and(|h| h.contains("the disk is full")), "{:?}", err.hint());

        let mut output = OutputTail::new(&quiet);
        output.push(
            "Step 2/3 : RUN make
write /tmp/obj.o: no space left on device
",
        );
        let message = "The command '/bin/sh -c make' returned a non-zero code: 2".to_string();
        let err = build_failure("shop/web:1", Cause::Stream { message }, output);
        assert!(err.to_string().contains("(no space left on device)"), "{err}");
        assert!(err.hint().is_some_and(|h| h.contains("the disk is full")), "{:?}", err.hint());
        let EngineError::Build { output, .. } = &err else { unreachable!() };
        assert_eq!(output.last().map(String::as_str), Some("write /tmp/obj.o: no space left on device"));

        let plain = Cause::Stream { message: "returned a non-zero code: 1".into() };
        let plain = build_failure("shop/web:1", plain, OutputTail::new(&quiet));
        assert_eq!(plain.hint(), None, "an ordinary failure must not blame the disk");
    }

    #[test]
    fn a_base_image_that_cannot_be_pulled_is_named() {
        let quiet = |_: &str| {};
        let mut output = OutputTail::new(&quiet);
        output.push("Step 1/3 : FROM debian:bookworm-slim\n");
        let message = "Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: no such host";
        let err = build_failure("shop/web:1", Cause::Stream { message: message.into() }, output);
        let EngineError::BaseImageMissing { image, base, failure, .. } = &err else { panic!("{err:?}") };
        assert_eq!((image.as_str(), base.as_str()), ("shop/web:1", "debian:bookworm-slim"));
        assert_eq!(*failure, crate::engine::PullFailure::NoRegistry);
        let hint = err.hint().unwrap_or_default();
        assert!(hint.contains(crate::engine::BASE_IMAGE_OFFLINE_COMMAND), "{hint}");
    }

    #[test]
    fn references_split_for_the_pull_api() {
        assert_eq!(split_reference("debian:bookworm-slim"), ("debian".into(), "bookworm-slim".into()));
        assert_eq!(split_reference("localhost:5000/app"), ("localhost:5000/app".into(), "latest".into()));
        assert_eq!(split_reference("localhost:5000/app:1"), ("localhost:5000/app".into(), "1".into()));
        assert_eq!(split_reference("app@sha256:abc"), ("app".into(), "sha256:abc".into()));
    }

    #[test]
    fn healthchecks_are_in_nanoseconds_and_none_disables() {
        let h = HealthSpec {
            test: vec!["CMD".into(), "true".into()],
            interval_ms: 1000,
            timeout_ms: 500,
            retries: 3,
            start_period_ms: 0,
            start_interval_ms: None,
        };
        let c = health_config(&h);
        assert_eq!(c.interval, Some(1_000_000_000));
        assert_eq!(c.timeout, Some(500_000_000));
        assert_eq!(c.retries, Some(3));
        let none = HealthSpec { test: vec!["NONE".into()], ..h };
        assert_eq!(health_config(&none).test, Some(vec!["NONE".to_string()]));
        assert_eq!(health_config(&none).interval, None);
    }

    #[test]
    fn engines_below_1_44_get_no_start_interval_and_the_mac_address_in_config() {
        let h = HealthSpec {
            test: vec!["CMD".into(), "true".into()],
            interval_ms: 1000,
            start_interval_ms: Some(200),
            ..Default::default()
        };
        let spec = crate::desired::ContainerSpec {
            name: "p-web-1".into(),
            service: "web".into(),
            replica: 1,
            kind: None,
            image: "x:latest".into(),
            command: None,
            entrypoint: None,
            env: BTreeMap::new(),
            ports: Vec::new(),
            networks: vec![crate::desired::AttachmentSpec {
                network: "p_default".into(),
                aliases: vec!["web".into()],
                ipv4_address: Some("172.30.0.5".into()),
                ipv6_address: None,
            }],
            mounts: Vec::new(),
            healthcheck: Some(h),
            restart: RestartPolicy::No,
            stop_grace_secs: None,
            labels: BTreeMap::new(),
            hostname: "p-web-1".into(),
            options: crate::model::ContainerOptions {
                mac_address: Some("02:42:ac:11:00:02".into()),
                ..Default::default()
            },
            previous: None,
            carried: Default::default(),
        };
        let body = create_body(&spec, "p");
        assert_eq!(body.healthcheck.as_ref().unwrap().start_interval, Some(200_000_000));
        let endpoint = &body.networking_config.as_ref().unwrap().endpoints_config.as_ref().unwrap()["p_default"];
        assert_eq!(endpoint.ipam_config.as_ref().unwrap().ipv4_address.as_deref(), Some("172.30.0.5"));
        assert!(legacy_body(&body, "1.44").is_none(), "new engines take the body as it is");
        let old: serde_json::Value = serde_json::from_slice(&legacy_body(&body, "1.41").unwrap()).unwrap();
        assert!(old["Healthcheck"].get("StartInterval").is_none(), "{old}");
        assert_eq!(old["MacAddress"], "02:42:ac:11:00:02");
    }

    #[test]
    fn plain_tcp_defaults_to_port_2375() {
        assert_eq!(with_default_port("tcp://docker"), "tcp://docker:2375");
        assert_eq!(with_default_port("tcp://docker:1234"), "tcp://docker:1234");
        assert_eq!(with_default_port("tcp://[::1]"), "tcp://[::1]:2375");
        assert_eq!(with_default_port("tcp://[::1]:9"), "tcp://[::1]:9");
        assert_eq!(with_default_port("http://127.0.0.1:9"), "http://127.0.0.1:9");
    }

    #[test]
    fn published_ports_of_a_remote_engine_are_on_its_host() {
        assert_eq!(published_host("tcp://10.1.2.3:2375").as_deref(), Some("10.1.2.3"));
        assert_eq!(published_host("tcp://docker.internal").as_deref(), Some("docker.internal"));
        assert_eq!(published_host("http://[fd00::7]:2375/").as_deref(), Some("fd00::7"));
        for here in ["unix:///var/run/docker.sock", "tcp://127.0.0.1:2375", "tcp://localhost:2375", "tcp://[::1]:2375"]
        {
            assert_eq!(published_host(here), None, "{here}");
        }
    }

    #[test]
    fn version_probe_drops_the_version_prefix() {
        assert_eq!(
            strip_api_version("http://localhost:2375/v1.53/version").as_deref(),
            Some("http://localhost:2375/version")
        );
        assert_eq!(
            strip_api_version("unix://2f7661722f72756e2f646f636b65722e736f636b:0/v1.53/version?x=1").as_deref(),
            Some("unix://2f7661722f72756e2f646f636b65722e736f636b:0/version?x=1")
        );
    }

    /// Docker 20.10 gave `-p 80` host port 32893 on 0.0.0.0 and 32888 on :: (seen here): only
    /// the IPv4 one answers on 127.0.0.1, so only it is observed.
    #[test]
    fn an_ipv6_binding_with_its_own_random_port_is_dropped_beside_the_ipv4_one() {
        let port = |ip: &str, public: u16| bollard::models::PortSummary {
            ip: Some(ip.into()),
            private_port: 80,
            public_port: Some(public),
            typ: Some(PortSummaryTypeEnum::TCP),
        };
        let summary = ContainerSummary {
            id: Some("abc".into()),
            names: Some(vec!["/shop-lb-1".into()]),
            state: Some(bollard::models::ContainerSummaryStateEnum::RUNNING),
            ports: Some(vec![port("0.0.0.0", 32893), port("::", 32888), port("127.0.0.1", 32809)]),
            ..Default::default()
        };
        let seen = observed_container(summary).expect("observed");
        let published: Vec<(&str, u16)> = seen.ports.iter().map(|p| (p.host_ip.as_str(), p.host_port)).collect();
        assert_eq!(published, vec![("0.0.0.0", 32893), ("127.0.0.1", 32809)]);
    }
}
