//! `scale failover [SERVICE]`: promote the most advanced replica of a `kind: postgres`
//! service. With the blueprint (`-f FILE`) it then reconciles at once: the new primary gets
//! the `<svc>-primary` alias and the old primary's node rejoins as a fresh replica.

use std::time::Duration;

use serde_json::json;

use super::interrupt::{self, Interrupt, Wording};
use super::locking::{parse_lock_timeout, with_lock};
use super::{Global, Loaded, connect, project_and_blueprint};
use crate::engine::Engine;
use crate::engine::docker::DockerEngine;
use crate::exec::{ExecOptions, ExecReport};
use crate::ops::{self, OpsError, apply::Applied, apply::ApplyHooks, apply::Review};
use crate::plan::Plan;
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
    let on_swarm = super::swarm::resolve(&engine, &project, &super::swarm::TargetArg::default()).await?;
    if on_swarm == crate::target::Target::Swarm {
        let service = args.service.as_deref();
        return super::swarm::failover(&project, loaded.as_ref(), service, &engine, ui, args.lock_timeout).await;
    }
    let mut interrupt = Interrupt::listen()?;
    // Locked before observing: a failover that waited promotes from the state the holder left.
    with_lock(&engine, &project, "failover", args.lock_timeout, &mut interrupt, async |interrupt| {
        run_locked(&args, ui, &project, loaded.as_ref(), &engine, interrupt).await
    })
    .await
}

/// The reconcile after a promotion: the plan in words (not in JSON), no question asked,
/// run with progress; the project is not observed again.
struct Reconcile<'a> {
    ui: Ui,
    interrupt: &'a mut Interrupt,
}

impl<E: Engine> ApplyHooks<E> for Reconcile<'_> {
    fn planned(&mut self, plan: &Plan) {
        if !self.ui.is_json() {
            print!("{}", crate::plan::render_text(plan));
        }
    }

    async fn review(&mut self, _plan: &Plan) -> Review {
        Review::Proceed
    }

    async fn execute(&mut self, engine: &E, plan: &Plan) -> Option<ExecReport> {
        interrupt::execute(engine, plan, &ExecOptions::default(), self.ui, self.interrupt, WORDING).await
    }

    fn observe_after(&self) -> bool {
        false
    }
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
    let say = |line: &str| {
        if !ui.is_json() {
            ui.say(line);
        }
    };
    let report = ops::failover::promote(engine, project, args.service.as_deref(), &say).await?;
    let service = report.service.clone();
    if ui.is_json() {
        ui.json(&json!({"event": "failover", "report": report}));
    }
    let Some(loaded) = loaded else {
        ui.say(format!(
            "{} already answers as {service}-primary. Run `scale apply <blueprint>` next: the old \
             primary rejoins as a replica of it.",
            report.promoted
        ));
        return Ok(0);
    };
    let mut hooks = Reconcile { ui, interrupt: &mut *interrupt };
    let applied = ops::apply::apply(engine, &loaded.desired, &mut hooks).await.map_err(|err| match err {
        OpsError::Observe(cause) => anyhow::Error::new(cause).context("cannot read the project's state"),
        other => other.into(),
    })?;
    match applied {
        Applied::ExitNow | Applied::Stopped(_) => return Ok(130),
        Applied::InSync { .. } | Applied::Done { .. } => {}
        Applied::Incomplete { report: result, .. } => {
            let (what, code) =
                if result.interrupted && result.failed.is_empty() { ("was interrupted", 130) } else { ("failed", 1) };
            eprintln!(
                "the failover promoted {}, but reconciling afterwards {what}; run `scale apply` again",
                report.promoted
            );
            return Ok(code);
        }
    }
    ui.say(format!("Failover done: {} is the primary of {service}.", report.promoted));
    Ok(0)
}
