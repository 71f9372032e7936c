//! `scale failover [SERVICE]`: promote the most advanced replica of a `kind: postgres`
//! service. With the blueprint (`-f FILE`) it then reconciles at once: the new primary gets
//! the `<svc>-primary` alias and the old primary's node rejoins as a fresh replica.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, bail};
use serde_json::json;

use super::{Global, connect, desired_for, load_desired, project_of};
use crate::engine::observe_project;
use crate::exec::{ExecOptions, execute};
use crate::ui::Ui;
use crate::ui::progress::ProgressView;

/// Arguments of `scale failover`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `kind: postgres` service (default: the project's only one).
    pub service: Option<String>,
    /// The blueprint: reconcile right after promoting (moves the alias, rebuilds the old
    /// primary as a replica). Without it, run `scale apply FILE` afterwards.
    #[arg(short = 'f', long)]
    pub file: Option<PathBuf>,
}

/// Promotes, then (with a blueprint) reconciles.
pub async fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let loaded = match &args.file {
        Some(file) => Some(load_desired(file, global, ui)?),
        None => None,
    };
    let project = match &loaded {
        Some(l) => l.project.clone(),
        None => project_of(None, global, ui)?,
    };
    let engine = connect().await?;
    let observed = observe_project(&engine, &project).await.context("cannot read the project's state")?;
    let mut services: Vec<String> = observed
        .containers
        .values()
        .filter(|c| c.labels.get(crate::labels::KIND).map(String::as_str) == Some("postgres"))
        .filter_map(|c| c.service().map(str::to_string))
        .collect();
    services.dedup();
    let service = match (&args.service, services.as_slice()) {
        (Some(s), _) => s.clone(),
        (None, [only]) => only.clone(),
        (None, []) => bail!("project {project} has no kind: postgres service"),
        (None, many) => bail!("project {project} has several postgres services ({}); name one", many.join(", ")),
    };
    let say = |line: &str| {
        if !ui.is_json() {
            ui.say(line);
        }
    };
    let report = crate::failover::failover(&engine, &observed, &service, &say).await?;
    if ui.is_json() {
        ui.json(&json!({"event": "failover", "report": report}));
    }
    let Some(loaded) = loaded else {
        ui.say(format!(
            "Run `scale apply <blueprint>` now: it gives {} the {service}-primary alias and rebuilds the old primary as a replica.",
            report.promoted
        ));
        return Ok(0);
    };
    let observed = observe_project(&engine, &project).await.context("cannot read the project's state")?;
    let plan = crate::plan::plan(&desired_for(&loaded, &observed), &observed)?;
    if !ui.is_json() {
        print!("{}", crate::plan::render_text(&plan));
    }
    let view = ProgressView::new(ui, &plan);
    let sink = |event| view.handle(event);
    let result = execute(&engine, &plan, &ExecOptions::default(), &sink, &AtomicBool::new(false)).await;
    view.clear();
    if !result.succeeded() {
        eprintln!(
            "the failover promoted {}, but reconciling afterwards failed; run `scale apply` again",
            report.promoted
        );
        return Ok(1);
    }
    ui.say(format!("Failover done: {} is the primary of {service}.", report.promoted));
    Ok(0)
}
