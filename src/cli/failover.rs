//! `scale failover [SERVICE]`: promote the most advanced replica of a `kind: postgres`
//! service. With the blueprint (`-f FILE`) it then reconciles at once: the new primary gets
//! the `<svc>-primary` alias and the old primary's node rejoins as a fresh replica.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;

use super::interrupt::{self, Interrupt, Wording};
use super::locking::{parse_lock_timeout, with_lock};
use super::{Global, Loaded, connect, desired_for, project_and_blueprint};
use crate::engine::docker::DockerEngine;
use crate::engine::observe_project;
use crate::exec::ExecOptions;
use crate::ui::Ui;

/// What failover says on Ctrl-C while it reconciles; the promotion itself is never cut short
/// (a half-done promotion is worse than a late one), a Ctrl-C during it is honoured after.
const WORDING: Wording<'static> = Wording {
    stopping: "interrupt: letting running actions finish, starting nothing new (Ctrl-C again to exit now)",
    resume: "scale apply",
};

/// Arguments of `scale failover`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `kind: postgres` service (default: the project's only one).
    pub service: Option<String>,
    /// How long to wait while another scale command (apply, destroy, failover, a watch pass)
    /// changes the project (0: don't wait).
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = parse_lock_timeout)]
    pub lock_timeout: Duration,
}

/// Promotes, then (with a blueprint) reconciles, holding the project lock throughout so that
/// no apply or watch pass interleaves with the promotion.
pub async fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let (project, loaded) = project_and_blueprint(None, global, ui)?;
    let engine = connect().await?;
    let mut interrupt = Interrupt::listen()?;
    // Locked before observing: a failover that waited promotes from the state the holder left.
    with_lock(&engine, &project, "failover", args.lock_timeout, &mut interrupt, async |interrupt| {
        run_locked(&args, ui, &project, loaded.as_ref(), &engine, interrupt).await
    })
    .await
}

/// Everything failover does while holding the project lock.
async fn run_locked(
    args: &Args,
    ui: Ui,
    project: &str,
    loaded: Option<&Loaded>,
    engine: &DockerEngine,
    interrupt: &mut Interrupt,
) -> anyhow::Result<u8> {
    let observed = observe_project(engine, project).await.context("cannot read the project's state")?;
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
    let report = crate::failover::failover(engine, &observed, &service, &say).await?;
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
    let observed = observe_project(engine, project).await.context("cannot read the project's state")?;
    let plan = crate::plan::plan(&desired_for(loaded, &observed), &observed)?;
    if !ui.is_json() {
        print!("{}", crate::plan::render_text(&plan));
    }
    let Some(result) = interrupt::execute(engine, &plan, &ExecOptions::default(), ui, interrupt, WORDING).await else {
        return Ok(130);
    };
    if !result.succeeded() {
        let (what, code) =
            if result.interrupted && result.failed.is_empty() { ("was interrupted", 130) } else { ("failed", 1) };
        eprintln!(
            "the failover promoted {}, but reconciling afterwards {what}; run `scale apply` again",
            report.promoted
        );
        return Ok(code);
    }
    ui.say(format!("Failover done: {} is the primary of {service}.", report.promoted));
    Ok(0)
}
