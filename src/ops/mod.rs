//! The reconcile layer: what `apply`, `watch` and `failover` do, generic over the [`Engine`]
//! trait, as cargo's `ops::*` are to its `commands/*.rs`. A command in `cli/` parses its
//! arguments, calls one of these, and renders what comes back; the decisions (when a pass is
//! in sync, when to retry, when to fail over, what to observe again) live here.
//!
//! What is not the engine's (yet) comes in through a small trait per operation: running a
//! plan with progress and Ctrl-C, asking the user, and (for watch) waiting for the project
//! lock. Each of those is called from exactly one place here, so moving the lock or the
//! event stream into the `Engine` trait changes one function.
//!
//! [`Engine`]: crate::engine::Engine

pub mod apply;
pub mod autoscale;
pub mod failover;
pub mod rollback;
pub mod units;
pub mod units_failover;
pub mod watch;

/// Why an operation could not go on (what it did so far is in its outcome).
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("cannot read the project's state from the engine")]
    Observe(#[source] crate::engine::EngineError),
    #[error("cannot read the project's state after applying")]
    ObserveAfter(#[source] crate::engine::EngineError),
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    #[error("there is no service {service} in the blueprint (it has: {known})")]
    UnknownService { service: String, known: String },
    #[error(
        "no replica of {service} records a previous spec: it was never replaced by this version of scale, \
         so there is nothing to roll back to"
    )]
    NoPreviousSpec { service: String },
}
