//! One apply pass: observe, plan (primaries as the markers say), let the caller review the
//! plan, run it, and observe the result. `scale apply` and `scale failover -f` are this pass.

use crate::engine::{Engine, observe_project};
use crate::exec::ExecReport;
use crate::observed::ObservedState;
use crate::plan::{Plan, Scope};
use crate::spec::DesiredState;

use super::OpsError;

/// What the caller decides once it has seen the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Review {
    Proceed,
    /// The user said no: nothing was changed.
    Declined,
    /// Ctrl-C while asking: nothing was changed.
    Interrupted,
}

/// The caller's part of an apply pass: showing the plan, asking, and running it (with
/// progress and Ctrl-C handling, which are the terminal's).
#[allow(async_fn_in_trait)]
pub trait ApplyHooks<E: Engine> {
    /// Called with every plan, changes or not (print it).
    fn planned(&mut self, plan: &Plan);
    /// Called before a plan with changes runs.
    async fn review(&mut self, plan: &Plan) -> Review;
    /// Runs the plan; `None`: interrupted twice, exit now.
    async fn execute(&mut self, engine: &E, plan: &Plan) -> Option<ExecReport>;
    /// Whether to observe the project once the plan succeeded (apply prints its endpoints).
    fn observe_after(&self) -> bool {
        true
    }
}

/// How an apply pass ended.
#[derive(Debug)]
pub enum Applied {
    /// Nothing to do; the project as observed.
    InSync { observed: ObservedState },
    /// The caller's review stopped it before anything changed.
    Stopped(Review),
    /// Interrupted twice while running: exit at once.
    ExitNow,
    /// The plan ran but not all of it (failed or interrupted actions).
    Incomplete { plan: Plan, report: ExecReport },
    /// Every action succeeded; the project as observed afterwards, when asked for.
    Done { plan: Plan, report: ExecReport, after: Option<ObservedState> },
}

/// Runs one apply pass of `desired` (the blueprint's desired state).
pub async fn apply<E: Engine>(
    engine: &E,
    desired: &DesiredState,
    hooks: &mut impl ApplyHooks<E>,
) -> Result<Applied, OpsError> {
    apply_scoped(engine, desired, &Scope::default(), hooks).await
}

/// Observes and plans `desired` within `scope` without the project lock: the (empty) plan
/// and what was observed when nothing needs doing, `None` when something does. A no-op apply
/// is a read, like `scale plan`, so it need not create and remove the lock container (most of
/// its time); the caller checks that no other command held the lock meanwhile, and anything
/// with changes goes the locked way, which observes afresh.
pub async fn unlocked_in_sync<E: Engine>(
    engine: &E,
    desired: &DesiredState,
    scope: &Scope,
) -> Result<Option<(Plan, ObservedState)>, OpsError> {
    let observed = observe_project(engine, &desired.project).await.map_err(OpsError::Observe)?;
    let plan = crate::plan::plan_scoped(desired, &observed, scope)?;
    Ok((!plan.has_changes()).then_some((plan, observed)))
}

/// One apply pass within `scope` (`apply --only`, `--replace`).
pub async fn apply_scoped<E: Engine>(
    engine: &E,
    desired: &DesiredState,
    scope: &Scope,
    hooks: &mut impl ApplyHooks<E>,
) -> Result<Applied, OpsError> {
    let observed = observe_project(engine, &desired.project).await.map_err(OpsError::Observe)?;
    let plan = crate::plan::plan_scoped(desired, &observed, scope)?;
    hooks.planned(&plan);
    if !plan.has_changes() {
        return Ok(Applied::InSync { observed });
    }
    match hooks.review(&plan).await {
        Review::Proceed => {}
        stop => return Ok(Applied::Stopped(stop)),
    }
    let Some(report) = hooks.execute(engine, &plan).await else { return Ok(Applied::ExitNow) };
    if !report.succeeded() {
        return Ok(Applied::Incomplete { plan, report });
    }
    let after = match hooks.observe_after() {
        true => Some(observe_project(engine, &desired.project).await.map_err(OpsError::ObserveAfter)?),
        false => None,
    };
    Ok(Applied::Done { plan, report, after })
}
