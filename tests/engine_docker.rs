//! The Docker engine implementation against a real engine (see tests/common for the rules:
//! unique project per test, cleanup by label, fail without an engine unless
//! `SCALE_SKIP_DOCKER_TESTS=1`).

mod common;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{DockerTest, TEST_IMAGE};
use scale::build_context;
use scale::desired::{
    AttachmentSpec, ContainerSpec, HealthSpec, ImageSource, ImageSpec, MountSourceSpec, MountSpec, NetworkSpec,
    PortSpec, VolumeSpec,
};
use scale::engine::classify::{Retry, retry_policy};
use scale::engine::docker::DockerEngine;
use scale::engine::{Engine, EngineError};
use scale::labels;
use scale::model::{Build, Protocol, RestartPolicy};
use scale::observed::{Health, RunState};

fn project_labels(project: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(labels::PROJECT.to_string(), project.to_string())])
}

fn network(project: &str, name: &str, internal: bool) -> NetworkSpec {
    NetworkSpec { name: format!("{project}_{name}"), internal, labels: project_labels(project), ..Default::default() }
}

/// A `sleep infinity` container of `service` on the given networks (aliases: the service).
fn sleeper(project: &str, service: &str, networks: &[&NetworkSpec]) -> ContainerSpec {
    ContainerSpec {
        name: format!("{project}-{service}-1"),
        service: service.into(),
        replica: 1,
        kind: None,
        image: TEST_IMAGE.into(),
        command: Some(vec!["sleep".into(), "infinity".into()]),
        entrypoint: None,
        env: BTreeMap::from([("GREETING".to_string(), "hello world".to_string())]),
        ports: Vec::new(),
        networks: networks
            .iter()
            .map(|n| AttachmentSpec { network: n.name.clone(), aliases: vec![service.into()], ..Default::default() })
            .collect(),
        mounts: Vec::new(),
        healthcheck: None,
        restart: RestartPolicy::No,
        stop_grace_secs: Some(2),
        options: Default::default(),
        labels: BTreeMap::from([("team".to_string(), "tests".to_string())]),
        hostname: format!("{project}-{service}-1"),
        previous: None,
        carried: Default::default(),
    }
}

async fn wait_for_health(engine: &DockerEngine, id: &str, name: &str, limit: Duration) -> Health {
    let start = Instant::now();
    loop {
        let status = engine.container_status(id, name).await.expect("container_status");
        assert_eq!(status.state, RunState::Running, "{name} stopped: {status:?}");
        if status.health == Some(Health::Healthy) || start.elapsed() > limit {
            return status.health.unwrap_or_else(|| panic!("{name} has no health status: {status:?}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn no_progress(_: &str) {}

#[tokio::test]
async fn observe_of_an_empty_project_is_empty() {
    let Some(t) = DockerTest::start("observe_empty") else {
        return;
    };
    let engine = t.engine().await;
    assert!(engine.api_version() >= "1.40", "negotiated API {}", engine.api_version());
    let observed = engine.observe(t.project()).await.expect("observe");
    assert_eq!(observed.project, t.project());
    assert!(observed.containers.is_empty(), "{:?}", observed.containers);
    assert!(observed.networks.is_empty(), "{:?}", observed.networks);
    assert!(observed.volumes.is_empty(), "{:?}", observed.volumes);
    assert!(observed.images.contains(TEST_IMAGE), "local images: {:?}", observed.images);
    assert!(!observed.images.iter().any(|i| i.contains("<none>")));
}

#[tokio::test]
async fn containers_networks_and_volumes_round_trip() {
    let Some(t) = DockerTest::start("lifecycle") else {
        return;
    };
    let engine = t.engine().await;
    let p = t.project();

    let private = network(p, "private", true);
    let public = network(p, "public", false);
    let volume = VolumeSpec { name: format!("{p}_data"), labels: project_labels(p) };
    engine.create_network(&private).await.expect("create internal network");
    engine.create_network(&public).await.expect("create network");
    let dup = engine.create_network(&public).await.expect_err("a second network of the same name");
    assert!(matches!(dup, EngineError::CreateNetwork { .. }), "{dup}");
    engine.create_volume(&volume).await.expect("create volume");

    let mut db = sleeper(p, "db", &[&private]);
    db.healthcheck = Some(HealthSpec {
        test: vec!["CMD".into(), "true".into()],
        interval_ms: 1000,
        timeout_ms: 1000,
        retries: 3,
        start_period_ms: 0,
        start_interval_ms: None,
    });
    db.mounts = vec![
        MountSpec {
            source: MountSourceSpec::Volume(volume.name.clone()),
            target: "/data".into(),
            read_only: false,
            propagation: None,
            nocopy: false,
        },
        MountSpec {
            source: MountSourceSpec::Anonymous,
            target: "/scratch".into(),
            read_only: false,
            propagation: None,
            nocopy: false,
        },
    ];
    let mut web = sleeper(p, "web", &[&public, &private]);
    web.networks[1].aliases.push("api".into());
    web.command =
        Some(vec!["bash".into(), "-c".into(), "echo out-line; echo err-line >&2; exec sleep infinity".into()]);
    web.ports = vec![PortSpec { container_port: 80, protocol: Protocol::Tcp, host_ip: None, host_port: None }];
    web.restart = RestartPolicy::UnlessStopped;

    let db_id = engine.create_container(&db, p).await.expect("create db");
    let web_id = engine.create_container(&web, p).await.expect("create web");
    let again = engine.create_container(&web, p).await.expect_err("the name is ours already");
    assert!(matches!(again, EngineError::CreateContainer { .. }), "{again}");

    let created = engine.observe(p).await.expect("observe");
    assert_eq!(created.containers[&web.name].state, RunState::Created);
    assert!(created.containers[&web.name].ports.is_empty(), "ports are only reported while running");

    engine.start_container(&db_id, &db.name).await.expect("start db");
    engine.start_container(&web_id, &web.name).await.expect("start web");
    engine.start_container(&web_id, &web.name).await.expect("starting a running container is fine");
    let health = wait_for_health(&engine, &db_id, &db.name, Duration::from_secs(30)).await;
    assert_eq!(health, Health::Healthy);

    let observed = engine.observe(p).await.expect("observe");
    assert_eq!(observed.containers.len(), 2, "{:?}", observed.containers.keys());
    for (spec, id) in [(&db, &db_id), (&web, &web_id)] {
        let c = &observed.containers[&spec.name];
        assert_eq!(&c.id, id);
        assert_eq!(c.name, spec.name);
        assert_eq!(c.state, RunState::Running);
        assert_eq!(c.image, TEST_IMAGE);
        assert_eq!(c.labels.get(labels::PROJECT).map(String::as_str), Some(p));
        assert_eq!(c.labels.get("team").map(String::as_str), Some("tests"));
        assert_eq!(c.service(), Some(spec.service.as_str()));
        assert_eq!(c.replica(), Some(1));
        assert_eq!(c.spec_hash(), Some(spec.hash().as_str()));
        assert_eq!(c.spec().as_ref(), Some(spec), "the spec label parses back to the spec");
        assert_eq!(c.exit_code, None);
    }
    assert_eq!(observed.containers[&db.name].health, Some(Health::Healthy));
    assert_eq!(observed.containers[&web.name].health, None);
    let ports = &observed.containers[&web.name].ports;
    assert_eq!(ports.len(), 1, "one published port (0.0.0.0 and :: folded): {ports:?}");
    assert_eq!(ports[0].container_port, 80);
    assert_eq!(ports[0].protocol, Protocol::Tcp);
    assert_ne!(ports[0].host_port, 0);
    assert!(observed.networks[&private.name].internal);
    assert!(!observed.networks[&public.name].internal);
    assert!(observed.volumes.contains_key(&volume.name));

    // Both networks, with their aliases; env and the restart policy as specified.
    let inspect = engine.client().inspect_container(&web_id, None).await.expect("inspect");
    let nets = inspect.network_settings.and_then(|n| n.networks).expect("networks");
    let aliases = |net: &str| nets.get(net).and_then(|e| e.aliases.clone()).unwrap_or_default();
    assert!(aliases(&public.name).contains(&"web".to_string()), "{:?}", aliases(&public.name));
    assert!(aliases(&private.name).contains(&"api".to_string()), "{:?}", aliases(&private.name));
    let config = inspect.config.expect("config");
    assert!(config.env.unwrap_or_default().contains(&"GREETING=hello world".to_string()));
    assert_eq!(config.hostname.as_deref(), Some(web.hostname.as_str()));
    assert_eq!(config.stop_timeout, Some(2));

    // The container prints its two lines as it starts: on a loaded machine that can come after
    // this point, so look again for a while (bounded) before judging.
    let wrote_both =
        |logs: &Vec<String>| logs.contains(&"out-line".to_string()) && logs.contains(&"err-line".to_string());
    let mut logs = engine.logs_tail(&web_id, 10).await.expect("logs");
    for _ in 0..50 {
        if wrote_both(&logs) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        logs = engine.logs_tail(&web_id, 10).await.expect("logs");
    }
    assert!(wrote_both(&logs), "{logs:?}");
    assert_eq!(engine.logs_tail(&web_id, 1).await.expect("logs").len(), 1);

    // A network in use cannot go; stop and remove are idempotent; volumes survive.
    let busy = engine.remove_network(&private.name).await.expect_err("network has endpoints");
    assert!(matches!(busy, EngineError::RemoveNetwork { .. }), "{busy}");
    engine.stop_container(&db_id, &db.name, Duration::from_secs(1)).await.expect("stop");
    engine
        .stop_container(&db_id, &db.name, Duration::from_secs(1))
        .await
        .expect("stopping a stopped container is fine");
    let status = engine.container_status(&db_id, &db.name).await.expect("status");
    assert_eq!(status.state, RunState::Exited);
    assert!(status.exit_code.is_some(), "{status:?}");
    let stopped = engine.observe(p).await.expect("observe");
    assert_eq!(stopped.containers[&db.name].state, RunState::Exited);
    assert!(stopped.containers[&db.name].exit_code.is_some());

    let db_inspect = engine.client().inspect_container(&db_id, None).await.expect("inspect");
    let anonymous = db_inspect
        .mounts
        .unwrap_or_default()
        .into_iter()
        .find(|m| m.destination.as_deref() == Some("/scratch"))
        .and_then(|m| m.name)
        .expect("an anonymous volume at /scratch");
    t.remove_volume_on_drop(&anonymous);

    for (spec, id) in [(&db, &db_id), (&web, &web_id)] {
        engine.remove_container(id, &spec.name).await.expect("remove");
        engine.remove_container(id, &spec.name).await.expect("removing a removed container is fine");
    }
    let err = engine.container_status(&db_id, &db.name).await.expect_err("gone");
    assert!(matches!(err, EngineError::Inspect { .. }), "{err}");
    assert!(engine.observe(p).await.expect("observe").volumes.contains_key(&volume.name), "volumes outlive containers");
    assert!(t.docker(&["volume", "ls", "-q"]).lines().any(|v| v == anonymous), "anonymous volumes too (v=false)");

    for net in [&private, &public] {
        engine.remove_network(&net.name).await.expect("remove network");
        engine.remove_network(&net.name).await.expect("removing a removed network is fine");
    }
    engine.remove_volume(&volume.name).await.expect("remove volume");
    engine.remove_volume(&volume.name).await.expect("removing a removed volume is fine");
    let empty = engine.observe(p).await.expect("observe");
    assert!(empty.containers.is_empty() && empty.networks.is_empty() && empty.volumes.is_empty(), "{empty:?}");
}

#[tokio::test]
async fn a_foreign_container_holding_the_name_is_left_alone() {
    let Some(t) = DockerTest::start("name_taken") else {
        return;
    };
    let engine = t.engine().await;
    let spec = sleeper(t.project(), "web", &[]);
    t.remove_on_drop(&spec.name);
    t.docker(&["run", "-d", "--name", &spec.name, TEST_IMAGE, "sleep", "infinity"]);

    let err = engine.create_container(&spec, t.project()).await.expect_err("the name is taken");
    assert!(matches!(&err, EngineError::NameTaken { name } if *name == spec.name), "{err}");
    assert!(err.hint().unwrap_or_default().contains(&spec.name));
    assert!(t.container_exists(&spec.name), "the foreign container must survive");
    assert!(engine.observe(t.project()).await.expect("observe").containers.is_empty(), "not ours, not observed");
}

#[tokio::test]
async fn a_taken_host_port_is_reported_as_such() {
    let Some(t) = DockerTest::start("port_in_use") else {
        return;
    };
    let engine = t.engine().await;
    let net = network(t.project(), "default", false);
    engine.create_network(&net).await.expect("network");
    let port = std::net::TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port();
    let publish = vec![PortSpec { container_port: 80, protocol: Protocol::Tcp, host_ip: None, host_port: Some(port) }];
    let mut first = sleeper(t.project(), "one", &[&net]);
    first.ports = publish.clone();
    let mut second = sleeper(t.project(), "two", &[&net]);
    second.ports = publish;
    let first_id = engine.create_container(&first, t.project()).await.expect("create");
    engine.start_container(&first_id, &first.name).await.expect("start");
    let second_id = engine.create_container(&second, t.project()).await.expect("create");
    let err = engine.start_container(&second_id, &second.name).await.expect_err("port taken");
    match &err {
        EngineError::PortInUse { name, port: p } => {
            assert_eq!(name, &second.name);
            assert_eq!(p, &port.to_string());
        }
        other => panic!("expected PortInUse, got {other:?}"),
    }
}

fn build_spec(project: &str, dir: &std::path::Path, service: &str) -> ImageSpec {
    let build = Build { context: dir.to_path_buf(), dockerfile: "Dockerfile".into(), ..Default::default() };
    let hash = build_context::fingerprint(&build).expect("fingerprint");
    let repository = format!("{project}/{service}");
    ImageSpec {
        reference: format!("{repository}:{}", &hash[..12]),
        repository,
        source: ImageSource::Build {
            context: build.context,
            dockerfile: build.dockerfile,
            args: build.args,
            context_hash: hash,
            target: None,
            tags: Vec::new(),
        },
    }
}

#[tokio::test]
async fn images_build_from_a_context_honouring_dockerignore() {
    let Some(t) = DockerTest::start("build") else {
        return;
    };
    let engine = t.engine().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {TEST_IMAGE}\nCOPY hello.txt /hello.txt\nCOPY . /ctx/\nRUN test -f /hello.txt && test ! -e /ctx/secret.txt\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hello\n").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "must not be sent\n").unwrap();
    std::fs::write(dir.path().join(".dockerignore"), "secret.txt\n").unwrap();
    let image = build_spec(t.project(), dir.path(), "app");

    let lines = Mutex::new(Vec::<String>::new());
    let progress = |line: &str| lines.lock().unwrap().push(line.to_string());
    let started = Instant::now();
    engine.build_image(&image, t.project(), &progress).await.unwrap_or_else(|e| panic!("build: {e} {e:?}"));
    eprintln!("build took {:?}", started.elapsed());
    let lines = lines.into_inner().unwrap();
    assert!(lines.iter().any(|l| l.starts_with("Step 1/")), "progress: {lines:?}");
    assert!(engine.observe(t.project()).await.expect("observe").images.contains(&image.reference));
    let label =
        t.docker(&["image", "inspect", "--format", "{{index .Config.Labels \"io.scale.project\"}}", &image.reference]);
    assert_eq!(label, t.project());

    std::fs::write(dir.path().join("Dockerfile"), format!("FROM {TEST_IMAGE}\nRUN echo about to fail && false\n"))
        .unwrap();
    let failing = build_spec(t.project(), dir.path(), "broken");
    let err = engine.build_image(&failing, t.project(), &no_progress).await.expect_err("RUN false fails");
    match &err {
        EngineError::Build { image, cause, output } => {
            assert_eq!(image, &failing.reference);
            assert!(cause.to_string().contains("non-zero code"), "cause: {cause}");
            assert!(output.iter().any(|l| l.contains("about to fail")), "output: {output:?}");
            assert!(output.len() <= 30);
        }
        other => panic!("expected Build, got {other:?}"),
    }
    assert!(!engine.observe(t.project()).await.expect("observe").images.contains(&failing.reference));

    let mut missing = failing.clone();
    if let ImageSource::Build { context, .. } = &mut missing.source {
        *context = dir.path().join("nope");
    }
    let err = engine.build_image(&missing, t.project(), &no_progress).await.expect_err("no context");
    assert!(matches!(err, EngineError::BuildContext { .. }), "{err:?}");
}

/// A build whose `FROM` image is neither here nor pullable names that image and says what to
/// do (issue 17), instead of passing on the registry's raw words alone.
#[tokio::test]
async fn a_build_whose_base_image_cannot_be_pulled_names_it_and_says_what_to_do() {
    let Some(t) = DockerTest::start("base") else {
        return;
    };
    let engine = DockerEngine::connect().await.expect("connect");
    let dir = tempfile::tempdir().unwrap();
    let base = format!("scale-test-missing-base-{}:1", std::process::id());
    std::fs::write(dir.path().join("Dockerfile"), format!("FROM {base}\nRUN true\n")).unwrap();
    let image = build_spec(t.project(), dir.path(), "orphan");
    let err = engine.build_image(&image, t.project(), &no_progress).await.expect_err("the base does not exist");
    match &err {
        EngineError::BaseImageMissing { image: built, base: named, .. } => {
            assert_eq!(built, &image.reference);
            assert_eq!(named, &base);
        }
        other => panic!("expected BaseImageMissing, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains(&base) && text.contains("cannot be pulled"), "{text}");
    let hint = err.hint().expect("a hint");
    assert!(hint.contains(&base) && hint.contains("build it or load it (`docker load`)"), "{hint}");
    assert!(!hint.contains(scale::engine::BASE_IMAGE_OFFLINE_COMMAND), "not the ladder's base: {hint}");
}

#[tokio::test]
async fn pulling_from_a_registry_that_does_not_exist_fails_as_pull() {
    let Some(_t) = DockerTest::start("pull") else {
        return;
    };
    let engine = DockerEngine::connect().await.expect("connect");
    let started = Instant::now();
    let err = engine.pull_image("nonexistent.invalid/nope:1", &no_progress).await.expect_err("no such registry");
    eprintln!("failed pull took {:?}: {err}", started.elapsed());
    match &err {
        EngineError::Pull { reference, cause, .. } => {
            assert_eq!(reference, "nonexistent.invalid/nope:1");
            let reason = cause.to_string();
            assert!(!reason.is_empty() && !reason.contains("DockerResponseServerError"), "reason: {reason}");
        }
        other => panic!("expected Pull, got {other:?}"),
    }
}

#[tokio::test]
async fn unreachable_engines_fail_fast() {
    // No engine needed: these addresses never answer.
    for address in
        ["tcp://127.0.0.1:9", "http://127.0.0.1:9", "unix:///nonexistent/docker.sock", "ssh://example.invalid"]
    {
        let started = Instant::now();
        let err = DockerEngine::connect_to(address).await.expect_err(address);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "{address} took {took:?}");
        match &err {
            EngineError::Unreachable { address: a, cause } => {
                assert_eq!(a, address);
                assert!(!cause.to_string().is_empty());
                eprintln!("{err}");
            }
            other => panic!("{address}: expected Unreachable, got {other:?}"),
        }
        assert!(err.hint().is_some() && retry_policy(&err) == Retry::Backoff);
    }
}

/// `connect()` reads DOCKER_HOST. Setting it in this process would race the other tests, so
/// the check runs in a child: this test binary again, filtered to the helper below.
#[test]
fn connect_honours_docker_host() {
    let exe = std::env::current_exe().expect("test binary");
    let started = Instant::now();
    let out = std::process::Command::new(exe)
        .args(["--exact", "docker_host_child", "--nocapture", "--test-threads=1"])
        .env("DOCKER_HOST", "tcp://127.0.0.1:9")
        .env("SCALE_DOCKER_HOST_CHILD", "1")
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(stderr.contains("CHILD-OK"), "the child did not run its check:\n{stdout}\n{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn docker_host_child() {
    if std::env::var("SCALE_DOCKER_HOST_CHILD").is_err() {
        return; // only meaningful inside connect_honours_docker_host
    }
    let started = Instant::now();
    let err = DockerEngine::connect().await.expect_err("nothing listens on port 9");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(&err, EngineError::Unreachable { address, .. } if address == "tcp://127.0.0.1:9"), "{err:?}");
    eprintln!("CHILD-OK {err}");
}
