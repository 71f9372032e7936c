//! `scale cluster up|env|status|down`: the multi-node test cluster (see `crate::cluster`).
//! The cluster lives on the local engine, not on `DOCKER_HOST`, so these commands keep
//! working in a shell where `eval $(scale cluster env)` pointed DOCKER_HOST at the manager.

use anyhow::Context;
use serde_json::json;

use crate::cluster::{self, DEFAULT_NAME};
use crate::engine::docker::{DEFAULT_HOST, DockerEngine};
use crate::ui::Ui;

/// Arguments of `scale cluster`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
    /// The engine the node containers run on (not DOCKER_HOST, which may point at the cluster).
    #[arg(long, global = true, env = "SCALE_CLUSTER_ENGINE", default_value = DEFAULT_HOST, value_name = "ADDRESS")]
    pub engine: String,
}

/// The cluster subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Start N Docker engines as containers here and join them into one Swarm.
    Up {
        /// How many nodes (one manager, the rest workers).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        /// A port the manager node publishes on the host's loopback (same number on both
        /// sides), where a service on the cluster that publishes it in host mode is reached
        /// (`--publish 8080` for the ladder); repeatable. Fixed when the node starts.
        #[arg(long, value_name = "PORT")]
        publish: Vec<u16>,
    },
    /// Print the `export DOCKER_HOST=…` line that points a shell at the manager.
    Env {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
    },
    /// List the swarm's nodes as the manager reports them.
    Status {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
    },
    /// Remove the node containers, their network and volumes (by the cluster's label).
    Down {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
    },
}

pub async fn run(args: Args, ui: Ui) -> anyhow::Result<u8> {
    let (Sub::Up { name, .. } | Sub::Env { name } | Sub::Status { name } | Sub::Down { name }) = &args.command;
    // Bad input is said before any engine is asked.
    cluster::check_name(name)?;
    let host = DockerEngine::connect_to(&args.engine).await.context("cannot reach the engine the cluster runs on")?;
    match args.command {
        Sub::Up { nodes, name, publish } => up(&host, &name, nodes, &publish, ui).await,
        Sub::Env { name } => {
            let port = manager_port(&host, &name).await?;
            println!("{}", cluster::env_line(port));
            Ok(0)
        }
        Sub::Status { name } => status(&host, &name, ui).await,
        Sub::Down { name } => {
            let start = std::time::Instant::now();
            let removed = cluster::down(&host, &name).await.with_context(|| format!("cluster down {name}"))?;
            let secs = start.elapsed().as_secs_f64();
            ui.json(&json!({"name": name, "containers": removed.containers, "networks": removed.networks, "volumes": removed.volumes, "seconds": secs}));
            ui.say(format!(
                "cluster {name} removed: {} containers, {} networks, {} volumes in {secs:.1} s",
                removed.containers, removed.networks, removed.volumes
            ));
            Ok(0)
        }
    }
}

async fn up(host: &DockerEngine, name: &str, nodes: usize, publish: &[u16], ui: Ui) -> anyhow::Result<u8> {
    let progress = |line: &str| ui.say(format!("  {line}"));
    let up = cluster::up(host, name, nodes, publish, &progress).await.with_context(|| format!("cluster up {name}"))?;
    let secs = up.took.as_secs_f64();
    ui.json(&json!({"name": up.name, "port": up.port, "nodes": up.nodes, "seconds": secs}));
    ui.say(format!("cluster {name} is up: {} nodes in {secs:.1} s", up.nodes.len()));
    ui.say(format!("point a shell at its manager with: eval $(scale cluster env --name {name})"));
    Ok(0)
}

async fn manager_port(host: &DockerEngine, name: &str) -> anyhow::Result<u16> {
    let found = cluster::find(host, name).await?;
    if !found.nodes.iter().any(|(_, _, role)| role == "manager") {
        return Err(cluster::ClusterError::NoManager { name: name.into() }.into());
    }
    Ok(found.manager_port.ok_or(cluster::ClusterError::NoManagerPort { name: name.into() })?)
}

async fn status(host: &DockerEngine, name: &str, ui: Ui) -> anyhow::Result<u8> {
    let port = manager_port(host, name).await?;
    let manager = DockerEngine::connect_to(&format!("tcp://127.0.0.1:{port}"))
        .await
        .with_context(|| format!("the manager of cluster {name} does not answer"))?;
    let rows = cluster::status(&manager).await?;
    if ui.is_json() {
        ui.json(&json!({"name": name, "port": port, "nodes": rows}));
        return Ok(0);
    }
    print!("{}", cluster::status_table(&rows));
    Ok(0)
}
