//! `scale plan FILE`: what apply would do and why, without changing anything.

use std::path::PathBuf;

use anyhow::Context;

use super::{Global, connect, load_desired};
use crate::plan::{render_json, render_text};
use crate::ui::Ui;

/// Arguments of `scale plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The blueprint or Compose file (default: compose.yaml here, see -f).
    pub file: Option<PathBuf>,
    /// Exit 0 when there is nothing to do, 2 when there are changes, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Plan replacing this container even if nothing about it changed (as `apply --replace`).
    #[arg(long, value_name = "CONTAINER")]
    pub replace: Vec<String>,
    /// Plan only this service and what it needs (as `apply --only`).
    #[arg(long, value_name = "SERVICE")]
    pub only: Option<String>,
    #[command(flatten)]
    pub target: super::swarm::TargetArg,
}

/// Observes, diffs and prints the plan.
pub async fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let loaded = load_desired(args.file.as_deref(), global, ui)?;
    let engine = connect().await?;
    if super::swarm::resolve(&engine, &loaded.project, &args.target).await? == crate::target::Target::Swarm {
        return super::swarm::plan(&loaded, &engine, ui, args.detailed_exitcode).await;
    }
    super::preflight::check(&engine, &loaded, ui, super::preflight::Strictness::Warn).await?;
    let observed = crate::engine::observe_project(&engine, &loaded.project)
        .await
        .context("cannot read the project's state from the engine")?;
    let scope = crate::plan::Scope::resolve(&loaded.desired, args.only.as_deref(), &args.replace)?;
    let plan = crate::plan::plan_scoped(&loaded.desired, &observed, &scope)?;
    if ui.is_json() {
        ui.json(&render_json(&plan));
    } else if !ui.quiet {
        super::print_notes(ui, &crate::validate::notes(&loaded.blueprint));
        print!("{}", render_text(&plan));
    }
    Ok(if args.detailed_exitcode && plan.has_changes() { 2 } else { 0 })
}
