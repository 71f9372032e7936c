//! `scale status [FILE]`: the project's containers, health and endpoints, and with a FILE
//! whether it matches the blueprint.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;

use super::{Global, connect, project_and_blueprint};
use crate::ui::Ui;
use crate::ui::status::{container_table, endpoint_lines};

/// Arguments of `scale status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The blueprint file (optional with -p).
    pub file: Option<PathBuf>,
    /// List every project on the engine, with its age and expiry (`apply --ttl`).
    #[arg(long, conflicts_with = "file")]
    pub all: bool,
    #[command(flatten)]
    pub target: super::swarm::TargetArg,
}

/// Prints the project's state.
/// The containers as `status --output json` lists them.
fn containers_json(observed: &crate::observed::ObservedState) -> Vec<serde_json::Value> {
    observed
        .containers
        .values()
        .map(|c| {
            json!({
                "name": c.name,
                "id": c.id,
                "service": c.service(),
                "replica": c.replica(),
                "state": c.state,
                "exit_code": c.exit_code,
                "health": c.health,
                "image": c.image,
                "ports": c.ports,
            })
        })
        .collect()
}

/// The caches' counters as `status --output json` lists them.
fn caches_json(caches: &[crate::engine::live::CacheReport]) -> Vec<serde_json::Value> {
    caches
        .iter()
        .map(|c| {
            json!({
                "container": c.container,
                "service": c.service,
                "hits": c.stats.map(|s| s.hits),
                "misses": c.stats.map(|s| s.misses),
                "hit_ratio": c.stats.and_then(|s| s.hit_ratio()),
                "error": c.error,
            })
        })
        .collect()
}

pub async fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    if args.all {
        return all_projects(ui).await;
    }
    let (project, loaded) = project_and_blueprint(args.file.as_ref(), global, ui)?;
    let engine = connect().await?;
    if super::swarm::resolve(&engine, &project, &args.target).await? == crate::target::Target::Swarm {
        return super::swarm::status(&project, &engine, ui).await;
    }
    let observed = crate::engine::observe_project(&engine, &project)
        .await
        .context("cannot read the project's state from the engine")?;
    let pools = crate::engine::live::balancer_pools(&engine, &observed).await;
    let nodes = crate::engine::live::database_nodes(&engine, &observed).await;
    let caches = crate::engine::live::cache_stats(&engine, &observed).await;
    let key_numbers = crate::engine::key_numbers::key_numbers(&engine, &observed).await;
    let queues = crate::engine::live::queue_stats(&engine, &observed).await;
    let mut events = engine.recent_events(&project, std::time::Duration::from_secs(600)).await;
    let recent: Vec<_> = events.drain(events.len().saturating_sub(10)..).collect();
    let leftovers = match observed.mounts_anonymous_volumes() {
        true => crate::engine::tools::unlabelled_dangling_volumes(&engine).await.unwrap_or_default(),
        false => Vec::new(),
    };
    let pending = match &loaded {
        Some(l) => Some(crate::plan::plan(&l.desired, &observed)?),
        None => None,
    };
    if ui.is_json() {
        ui.json(&json!({
            "project": project,
            "containers": containers_json(&observed),
            "networks": observed.networks.keys().collect::<Vec<_>>(),
            "volumes": observed.volumes.keys().collect::<Vec<_>>(),
            "endpoints": observed.endpoints(),
            "load_balancers": pools,
            "recent_events": recent,
            "databases": nodes,
            "stale_replicas": observed.stale_replicas,
            "unlabelled_anonymous_volumes": leftovers,
            "shards": observed.shards.as_ref().filter(|s| s.map.is_some()),
            "caches": caches_json(&caches),
            "key_numbers": key_numbers,
            "queues": queues,
            "in_sync": pending.as_ref().map(|p| !p.has_changes()),
            "pending_changes": pending.as_ref().map(|p| p.actions.len()),
        }));
        return Ok(0);
    }
    if observed.containers.is_empty() {
        ui.say(format!("Project {project} has no containers."));
    } else {
        ui.say(format!("Project {project}: {} container(s)", observed.containers.len()));
        ui.say(container_table(&observed).trim_end());
    }
    say_pools(ui, &pools);
    say_databases(ui, &nodes);
    for (name, why) in &observed.stale_replicas {
        ui.say(format!("  {name}: {why}; the next apply (or watch pass) re-seeds it"));
    }
    say_shards(ui, &observed);
    say_caches(ui, &caches);
    crate::ui::key_numbers::key_number_lines(&key_numbers).into_iter().for_each(|line| ui.say(line));
    say_queues(ui, &queues);
    if let Some(note) = leftover_note(&leftovers) {
        ui.say(note);
    }
    say_events(ui, &recent);
    let lines = endpoint_lines(&observed.endpoints());
    if !lines.is_empty() {
        ui.say("Endpoints:");
        for line in lines {
            ui.say(format!("  {line}"));
        }
    }
    if let Some(plan) = pending {
        if plan.has_changes() {
            ui.say(format!("Blueprint: {} change(s) pending; `scale plan` shows them.", plan.actions.len()));
        } else {
            ui.say("Blueprint: in sync.");
        }
    }
    Ok(0)
}

/// Stage 11: each shard's buckets (from the map) and users (its primary's rows), so a
/// skewed shard shows.
fn say_shards(ui: Ui, observed: &crate::observed::ObservedState) {
    let Some(shards) = &observed.shards else { return };
    let Some((home, map)) = &shards.map else { return };
    ui.say(format!("Shards (map in {home}, bucket = id % {}):", crate::spec::SHARD_BUCKETS));
    let mut names: Vec<&String> = map.values().collect();
    names.sort();
    names.dedup();
    for name in names {
        let buckets = map.values().filter(|s| *s == name).count();
        ui.say(format!("  {name:<12} {buckets:>3} buckets  {:>8} users", shards.total(name)));
    }
}

/// `status --all`: every project on the engine, whoever made it.
async fn all_projects(ui: Ui) -> anyhow::Result<u8> {
    let engine = connect().await?;
    let resources = crate::engine::tools::all_resources(&engine).await.context("cannot list the engine's projects")?;
    let infos = crate::expiry::summarize(&resources);
    let now = std::time::SystemTime::now();
    if ui.is_json() {
        ui.json(&json!({"projects": crate::ui::projects::projects_json(&infos, now)}));
    } else if infos.is_empty() {
        ui.say("No scale projects on this engine.");
    } else {
        ui.say(crate::ui::projects::project_table(&infos, now).trim_end());
    }
    Ok(0)
}

/// Each load balancer's backend servers, as HAProxy reports them.
fn say_pools(ui: Ui, pools: &[crate::engine::live::PoolReport]) {
    for pool in pools {
        ui.say(format!("Load balancer {} → backend {}:", pool.container, pool.backend));
        if let Some(err) = &pool.error {
            ui.say(format!("  (pool unavailable: {err})"));
        }
        for s in &pool.servers {
            ui.say(format!(
                "  {:<24} {:<10} {} in flight, {} served",
                s.server, s.status, s.current_sessions, s.total_sessions
            ));
        }
    }
}

/// Each database node's role, position and lag.
fn say_databases(ui: Ui, nodes: &[crate::engine::live::NodeReport]) {
    if !nodes.is_empty() {
        ui.say("Databases:");
        for n in nodes {
            let line = match &n.status {
                Some(s) if s.role == "replica" => format!(
                    "replica  lsn {}  lag {} bytes, {:.1}s{}",
                    s.lsn.as_deref().unwrap_or("?"),
                    s.lag_bytes.unwrap_or(0),
                    s.lag_seconds.unwrap_or(0.0),
                    if s.streaming == Some(false) { "  (not streaming)" } else { "" }
                ),
                Some(s) => format!(
                    "{:<8} lsn {}  timeline {}",
                    s.role,
                    s.lsn.as_deref().unwrap_or("?"),
                    s.timeline.unwrap_or(0)
                ),
                None => "down".to_string(),
            };
            ui.say(format!("  {:<24} {line}", n.container));
        }
    }
}

/// Each cache's hit ratio, from its own counters.
fn say_caches(ui: Ui, caches: &[crate::engine::live::CacheReport]) {
    if !caches.is_empty() {
        ui.say("Caches:");
        for c in caches {
            let line = match (&c.stats, &c.error) {
                (Some(s), _) => format!(
                    "hit ratio {}  ({} hits, {} misses)",
                    s.hit_ratio().map_or("-".to_string(), |r| format!("{:.0}%", r * 100.0)),
                    s.hits,
                    s.misses
                ),
                (None, Some(err)) => format!("(counters unavailable: {err})"),
                (None, None) => "(counters unavailable)".to_string(),
            };
            ui.say(format!("  {:<24} {line}", c.container));
        }
    }
}

/// Each queue's depth and consumers (stage 9: what the workers' autoscaler reads).
fn say_queues(ui: Ui, queues: &[crate::engine::live::QueueReport]) {
    if !queues.is_empty() {
        ui.say("Queues:");
        for q in queues {
            let line = match (&q.stats, &q.error) {
                (Some(s), _) => format!(
                    "depth {}  ({} in flight, {} waiting)  consumers {}",
                    s.depth,
                    s.pending,
                    s.depth.saturating_sub(s.pending),
                    s.consumers
                ),
                (None, Some(err)) => format!("(state unavailable: {err})"),
                (None, None) => "(state unavailable)".to_string(),
            };
            ui.say(format!("  {:<24} {line}", q.container));
        }
    }
}

/// The project's recent engine events.
fn say_events(ui: Ui, recent: &[crate::engine::docker_io::RecentEvent]) {
    if !recent.is_empty() {
        ui.say("Recent events (last 10 min, as far back as the engine remembers):");
        for e in recent {
            let t = e.time.max(0) as u64;
            ui.say(format!(
                "  {:02}:{:02}:{:02}  {:<24} {}",
                (t / 3600) % 24,
                (t / 60) % 60,
                t % 60,
                e.subject,
                e.action
            ));
        }
    }
}

/// What status says about anonymous volumes no container mounts and no label claims, when
/// the project mounts anonymous volumes: scale's own replacements left such volumes behind
/// before they were carried over, but nothing on a volume says whose it is, and scale touches
/// nothing without its project label, so it names them and the command to remove them and
/// leaves the choice to the user.
fn leftover_note(volumes: &[String]) -> Option<String> {
    const SHOWN: usize = 20;
    if volumes.is_empty() {
        return None;
    }
    let list = volumes.iter().take(SHOWN).map(String::as_str).collect::<Vec<_>>().join(" ");
    let more = volumes.len().saturating_sub(SHOWN);
    let mut note = format!(
        "Unlabelled volumes: {} anonymous volume(s) on this engine are mounted by no container and carry no \
         label. Replacements by scale before anonymous volumes were carried over left such volumes behind, \
         but so do other tools, and nothing on them says whose they are, so scale neither counts them as \
         this project's nor removes them (destroy --volumes removes only what a label or a mount proves \
         is the project's). Check what they hold (`docker volume inspect NAME`), then remove them with:\n  \
         docker volume rm {list}",
        volumes.len()
    );
    if more > 0 {
        note.push_str(&format!("\n  (and {more} more: `docker volume ls -qf dangling=true`)"));
    }
    Some(note)
}

#[cfg(test)]
mod tests {
    use super::leftover_note;

    #[test]
    fn unlabelled_leftovers_are_named_with_the_command_that_removes_them() {
        assert_eq!(leftover_note(&[]), None);
        let one = "a".repeat(64);
        let note = leftover_note(std::slice::from_ref(&one)).expect("a note");
        assert!(note.contains("1 anonymous volume(s)"), "{note}");
        assert!(note.ends_with(&format!("docker volume rm {one}")), "{note}");
        let many: Vec<String> = (0..25).map(|i| format!("{i:064x}")).collect();
        let note = leftover_note(&many).expect("a note");
        assert!(note.contains(&format!("docker volume rm {} ", many[0])), "{note}");
        assert!(!note.contains(&many[20]), "at most 20 named: {note}");
        assert!(note.contains("(and 5 more: `docker volume ls -qf dangling=true`)"), "{note}");
    }
}
