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
    /// picked), a database role (`db-primary`, `db-replica`), or a whole data centre
    /// (`dc:dc-a`: every running container its `zones:` placed there).
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
    let victims = match crate::chaos::zone_target(&args.target) {
        Some(zone) => crate::chaos::resolve_zone(&project, &observed, zone)
            .map_err(anyhow::Error::msg)?
            .into_iter()
            .map(|c| Victim::of(c, None))
            .collect(),
        None => vec![one_target(&engine, &project, &observed, &args.target).await?],
    };
    // All at once: a data centre is lost in one blow, not one container per grace period.
    let outcomes = futures_util::future::join_all(victims.iter().map(|v| v.fault(&engine, args.fault))).await;
    for (victim, outcome) in victims.iter().zip(outcomes) {
        outcome?;
        let done = args.fault.done();
        say(
            ui,
            &format!("{done} {}", victim.what),
            json!({"event": done, "container": victim.name, "service": victim.service}),
        );
    }

    let Some(duration) = args.duration else {
        let repair = if args.fault == Fault::Disconnect { "reconnects" } else { "repairs" };
        let them = if victims.len() == 1 { "it" } else { "them" };
        ui.say(format!("`scale apply` {repair} {them} (or `scale apply --watch` does by itself)."));
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
    for victim in &victims {
        victim.restore(&engine, args.fault).await?;
        say(ui, &format!("restored {}", victim.name), json!({"event": "restored", "container": victim.name}));
    }
    Ok(0)
}

/// The one container a container, service or role target names (roles looked up live).
async fn one_target(
    engine: &impl Engine,
    project: &str,
    observed: &crate::observed::ObservedState,
    target: &str,
) -> anyhow::Result<Victim> {
    let roles: BTreeMap<String, String> = if target.ends_with("-primary") || target.ends_with("-replica") {
        crate::engine::live::database_nodes(engine, observed)
            .await
            .into_iter()
            .filter_map(|n| Some((n.container, n.status?.role)))
            .collect()
    } else {
        BTreeMap::new()
    };
    let pick =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos() as usize);
    let found = resolve(project, observed, target, &roles, pick).map_err(anyhow::Error::msg)?;
    Ok(Victim::of(found, roles.get(&found.name).map(String::as_str)))
}

/// A container about to be broken, with what restoring it needs (its networks and aliases).
struct Victim {
    id: String,
    name: String,
    service: Option<String>,
    /// `shop-db-1 (service db, primary)`, for the messages.
    what: String,
    networks: Vec<String>,
    aliases: BTreeMap<String, Vec<String>>,
    grace: Duration,
}

impl Victim {
    fn of(c: &crate::observed::ObservedContainer, role: Option<&str>) -> Victim {
        let role = role.map(|r| format!(", {r}")).unwrap_or_default();
        let spec = c.spec();
        Victim {
            id: c.id.clone(),
            name: c.name.clone(),
            service: c.service().map(str::to_string),
            what: format!("{} (service {}{role})", c.name, c.service().unwrap_or("?")),
            networks: c.networks.clone(),
            aliases: spec
                .as_ref()
                .map(|s| s.networks.iter().map(|n| (n.network.clone(), n.aliases.clone())).collect())
                .unwrap_or_default(),
            grace: Duration::from_secs(
                spec.and_then(|s| s.stop_grace_secs).unwrap_or(crate::plan::DEFAULT_STOP_GRACE_SECS),
            ),
        }
    }

    async fn fault(&self, engine: &impl Engine, fault: Fault) -> anyhow::Result<()> {
        let (id, name) = (self.id.as_str(), self.name.as_str());
        match fault {
            Fault::Kill => engine.signal(id, name, "SIGKILL").await?,
            Fault::Stop => engine.stop_container(id, name, self.grace).await?,
            Fault::Pause => engine.pause_container(id, name).await?,
            Fault::Disconnect => {
                for network in &self.networks {
                    engine.disconnect(id, name, network).await?;
                }
            }
        }
        Ok(())
    }

    async fn restore(&self, engine: &impl Engine, fault: Fault) -> anyhow::Result<()> {
        let (id, name) = (self.id.as_str(), self.name.as_str());
        match fault {
            Fault::Pause => engine.unpause_container(id, name).await?,
            _ => {
                for network in &self.networks {
                    let names = self.aliases.get(network).cloned().unwrap_or_default();
                    engine.connect(id, name, network, &names).await?;
                }
            }
        }
        Ok(())
    }
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
