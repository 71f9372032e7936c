//! `scale chaos kill|stop|pause|disconnect TARGET`: break one of the project's containers on
//! purpose, and say which. `--for 30s` restores a pause or a disconnect afterwards.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use super::{Global, connect, project_of};
use crate::chaos::{Fault, resolve};
use crate::engine::Engine;
use crate::ui::Ui;

/// Arguments of `scale chaos`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do to the target.
    #[arg(value_enum)]
    pub fault: Fault,
    /// A container (`web-2`, `shop-web-2`), a service (`web`: one running replica is
    /// picked), or a database role (`db-primary`, `db-replica`).
    pub target: String,
    /// Restore a pause or a disconnect after this long (e.g. 30s).
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::model::duration::parse(text)
}

/// Resolves the target among the project's containers and breaks it.
pub async fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    if args.duration.is_some() && !args.fault.is_reversible() {
        return Err(crate::exit::UsageError::new(
            format!("--for restores a pause or a disconnect; a {:?} cannot be undone", args.fault),
            "drop --for (`scale apply` repairs the container), or use pause or disconnect",
        )
        .into());
    }
    if let Some(node) = args.target.strip_prefix("node:") {
        return node_fault(node, args.fault, ui).await;
    }
    let project = project_of(None, global, ui)?;
    let engine = connect().await?;
    let observed =
        crate::engine::observe_project(&engine, &project).await.context("cannot read the project's state")?;
    let roles: BTreeMap<String, String> = if args.target.ends_with("-primary") || args.target.ends_with("-replica") {
        crate::engine::live::database_nodes(&engine, &observed)
            .await
            .into_iter()
            .filter_map(|n| Some((n.container, n.status?.role)))
            .collect()
    } else {
        BTreeMap::new()
    };
    let pick =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos() as usize);
    let target = resolve(&project, &observed, &args.target, &roles, pick).map_err(anyhow::Error::msg)?;
    let (id, name) = (target.id.clone(), target.name.clone());
    let role = roles.get(&name).map(|r| format!(", {r}")).unwrap_or_default();
    let what = format!("{name} (service {}{role})", target.service().unwrap_or("?"));
    let networks = target.networks.clone();
    let aliases: BTreeMap<String, Vec<String>> =
        target.spec().map(|s| s.networks.into_iter().map(|n| (n.network, n.aliases)).collect()).unwrap_or_default();

    let done = match args.fault {
        Fault::Kill => {
            engine.signal(&id, &name, "SIGKILL").await?;
            "killed"
        }
        Fault::Stop => {
            let grace = target.spec().and_then(|s| s.stop_grace_secs).unwrap_or(crate::plan::DEFAULT_STOP_GRACE_SECS);
            engine.stop_container(&id, &name, Duration::from_secs(grace)).await?;
            "stopped"
        }
        Fault::Pause => {
            engine.pause_container(&id, &name).await?;
            "paused"
        }
        Fault::Disconnect => {
            for network in &networks {
                engine.disconnect(&id, &name, network).await?;
            }
            "disconnected"
        }
    };
    say(ui, &format!("{done} {what}"), json!({"event": done, "container": name, "service": target.service()}));

    let Some(duration) = args.duration else {
        let repair = if args.fault == Fault::Disconnect { "reconnects" } else { "repairs" };
        ui.say(format!("`scale apply` {repair} it (or `scale apply --watch` does by itself)."));
        return Ok(0);
    };
    say(
        ui,
        &format!("restoring in {}", crate::model::duration::format(duration)),
        json!({"event": "waiting", "seconds": duration.as_secs_f64()}),
    );
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = tokio::signal::ctrl_c() => ui.say("interrupt: restoring now"),
    }
    match args.fault {
        Fault::Pause => engine.unpause_container(&id, &name).await?,
        _ => {
            for network in &networks {
                let names = aliases.get(network).cloned().unwrap_or_default();
                engine.connect(&id, &name, network, &names).await?;
            }
        }
    }
    say(ui, &format!("restored {name}"), json!({"event": "restored", "container": name}));
    Ok(0)
}

/// `scale chaos kill|stop node:HOSTNAME`: a whole node of the local test cluster (its
/// container on the engine the cluster runs on, SCALE_CLUSTER_ENGINE or the default), as
/// `docker node ls` names it. Swarm reschedules the node's tasks on the others.
async fn node_fault(hostname: &str, fault: Fault, ui: Ui) -> anyhow::Result<u8> {
    if !matches!(fault, Fault::Kill | Fault::Stop) {
        return Err(crate::exit::UsageError::new(
            format!(
                "a node can be killed or stopped, not {}",
                if fault == Fault::Pause { "paused" } else { "disconnected" }
            ),
            "use `scale chaos kill node:NAME` or `scale chaos stop node:NAME`",
        )
        .into());
    }
    let address = std::env::var("SCALE_CLUSTER_ENGINE").unwrap_or_else(|_| crate::engine::docker::DEFAULT_HOST.into());
    let host = crate::engine::docker::DockerEngine::connect_to(&address)
        .await
        .context("cannot reach the engine the cluster runs on")?;
    let (id, name) = crate::cluster::node_container(&host, hostname).await?;
    let done = if fault == Fault::Kill {
        host.signal(&id, &name, "SIGKILL").await?;
        "killed"
    } else {
        host.stop_container(&id, &name, Duration::from_secs(10)).await?;
        "stopped"
    };
    say(ui, &format!("{done} node {hostname} (container {name})"), json!({"event": done, "node": hostname}));
    ui.say("Swarm moves its tasks to the other nodes once it sees the node down; `docker start` the container to bring it back.");
    Ok(0)
}

fn say(ui: Ui, text: &str, value: serde_json::Value) {
    if ui.is_json() {
        ui.json(&value);
    } else {
        ui.say(text);
    }
}
