//! `scale graph [FILE]`: the topology as Mermaid, DOT or SVG, from the blueprint alone or,
//! with `--live`, with what the engine says about each container.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::Context;

use super::{Global, connect, load_desired};
use crate::engine::live::{NodeReport, PoolReport};
use crate::observed::{Health, ObservedState, RunState};
use crate::topology::{LiveFacts, LiveState, Topology, dot, mermaid, topology};
use crate::ui::Ui;

/// `--format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Mermaid,
    Dot,
    /// DOT drawn by Graphviz's `dot` (Debian package `graphviz`).
    Svg,
}

/// Arguments of `scale graph`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The blueprint or Compose file (default: compose.yaml here, see -f).
    pub file: Option<PathBuf>,
    /// What to print.
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    pub format: GraphFormat,
    /// Overlay the running project: health, database roles and lag, the pool's view.
    #[arg(long)]
    pub live: bool,
}

/// Prints the graph (`--output json`: the topology itself, as data).
pub async fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let loaded = load_desired(args.file.as_deref(), global, ui)?;
    let mut graph = topology(&loaded.blueprint, &loaded.desired);
    if args.live {
        overlay_live(&mut graph, &loaded.project).await?;
    }
    if ui.is_json() {
        ui.json(&serde_json::to_value(&graph).context("cannot serialize the topology")?);
        return Ok(0);
    }
    let text = match args.format {
        GraphFormat::Mermaid => mermaid::render(&graph),
        GraphFormat::Dot => dot::render(&graph),
        GraphFormat::Svg => svg(&dot::render(&graph))?,
    };
    print!("{text}");
    Ok(0)
}

/// Runs Graphviz's `dot -Tsvg` on the DOT text.
pub fn svg(dot_text: &str) -> anyhow::Result<String> {
    let mut child = match Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "--format svg needs Graphviz's `dot`, which is not installed; install the `graphviz` package \
             (e.g. `apt-get install graphviz`), or use `--format dot` and draw it elsewhere"
        ),
        Err(err) => return Err(err).context("cannot run Graphviz's `dot`"),
    };
    let mut stdin = child.stdin.take().context("no stdin for `dot`")?;
    stdin.write_all(dot_text.as_bytes()).context("cannot write to `dot`")?;
    drop(stdin);
    let out = child.wait_with_output().context("`dot` did not finish")?;
    if !out.status.success() {
        anyhow::bail!("Graphviz's `dot` rejected the graph: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    String::from_utf8(out.stdout).context("`dot` printed something that is not UTF-8")
}

/// Asks the engine (as `scale status` does) and marks each node.
async fn overlay_live(graph: &mut Topology, project: &str) -> anyhow::Result<()> {
    let engine = connect().await?;
    let observed = crate::engine::observe_project(&engine, project)
        .await
        .context("cannot read the project's state from the engine")?;
    let pools = crate::engine::live::balancer_pools(&engine, &observed).await;
    let nodes = crate::engine::live::database_nodes(&engine, &observed).await;
    graph.overlay(&live_facts(&observed, &pools, &nodes));
    Ok(())
}

/// What each container's node shows: its state and health, a database's role and lag, and
/// the load balancer's verdict on each server of its pool.
pub fn live_facts(observed: &ObservedState, pools: &[PoolReport], nodes: &[NodeReport]) -> BTreeMap<String, LiveFacts> {
    let mut facts = BTreeMap::new();
    for c in observed.containers.values() {
        let (state, word) = match (c.state, c.health) {
            (RunState::Running, Some(Health::Unhealthy)) => (LiveState::Down, "unhealthy".to_string()),
            (RunState::Running, Some(Health::Starting)) => (LiveState::Starting, "health: starting".to_string()),
            (RunState::Running, Some(Health::Healthy)) => (LiveState::Up, "healthy".to_string()),
            (RunState::Running, None) => (LiveState::Up, "running".to_string()),
            (RunState::Exited, _) => (LiveState::Down, format!("exited ({})", c.exit_code.unwrap_or(-1))),
            (other, _) => (LiveState::Down, other.as_str().to_string()),
        };
        facts.insert(c.name.clone(), LiveFacts { state: Some(state), db_role: None, details: vec![word] });
    }
    for n in nodes {
        let Some(f) = facts.get_mut(&n.container) else { continue };
        match &n.status {
            Some(s) => {
                f.db_role = Some(s.role.clone());
                if s.role == "replica" {
                    let lag = format!("lag {} B, {:.1}s", s.lag_bytes.unwrap_or(0), s.lag_seconds.unwrap_or(0.0));
                    f.details.push(if s.streaming == Some(false) { format!("{lag} (not streaming)") } else { lag });
                }
            }
            None => f.details.push("database did not answer".into()),
        }
    }
    for pool in pools {
        for s in &pool.servers {
            if let Some(f) = facts.get_mut(&s.server) {
                f.details.push(format!("lb: {} ({} served)", s.status, s.total_sessions));
            }
        }
    }
    facts
}
