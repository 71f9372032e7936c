//! The seam for targets past one engine: what the reconcile layer asks of an orchestrator
//! (Swarm now; Kubernetes would be a second implementation). The planner never sees it: it
//! plans [`UnitSpec`]s (`plan::units`), and `ops::units` runs that plan through this trait.

use std::collections::BTreeSet;

use super::{ExecOutput, Progress};
use crate::plan::units::{ObservedUnits, Placement, UnitSpec};
use crate::spec::{ImageSpec, NetworkSpec, VolumeSpec};

pub use super::swarm::SwarmError as OrchestratorError;

/// Where an orchestrator stands on a rolling update of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdatePhase {
    /// No update, or the last one completed.
    Settled,
    Updating,
    /// The update failed and the orchestrator put the previous spec back (or is doing so).
    RolledBack,
    /// The update stopped half-way and waits for a person.
    Paused,
}

/// How far a unit's tasks are from what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitProgress {
    /// Tasks running (and healthy, when the unit has a healthcheck) with the wanted spec.
    pub ready: u32,
    /// Tasks with another spec still meant to run or still running (an update under way,
    /// or an old task in its stop grace period).
    pub stale: u32,
    pub phase: UpdatePhase,
    /// The orchestrator's last word: a failed task's error, or the update's message.
    pub message: Option<String>,
    /// The nodes the ready tasks run on.
    pub nodes: BTreeSet<String>,
    /// The node the unit is pinned to, when the orchestrator sees it down: its task waits
    /// (pending) until the node is back, and nothing scale does can place it elsewhere
    /// without leaving its data behind.
    pub down_node: Option<String>,
}

/// Everything scale asks of an orchestrator.
#[allow(async_fn_in_trait)]
pub trait Orchestrator {
    /// Where it is, for messages.
    fn address(&self) -> String;
    /// The project's units and networks.
    async fn observe_units(&self, project: &str) -> Result<ObservedUnits, OrchestratorError>;
    async fn create_network(&self, spec: &NetworkSpec) -> Result<(), OrchestratorError>;
    async fn remove_network(&self, name: &str) -> Result<(), OrchestratorError>;
    /// Builds or pulls `image` once and makes it present on every node that may run a task
    /// placed by `placement`, without a registry; returns the ID units run it by (so no node
    /// ever pulls another).
    async fn provide_image(
        &self,
        image: &ImageSpec,
        placement: &Placement,
        project: &str,
        progress: Progress<'_>,
    ) -> Result<String, OrchestratorError>;
    /// Creates the unit, or updates it in place under its update policy.
    async fn put_unit(&self, unit: &UnitSpec, image_id: &str, project: &str) -> Result<(), OrchestratorError>;
    async fn remove_unit(&self, name: &str) -> Result<(), OrchestratorError>;
    /// Where the unit's tasks are, against `unit`'s spec hash.
    async fn unit_progress(&self, name: &str, hash: &str) -> Result<UnitProgress, OrchestratorError>;
    /// Runs `cmd` in the running task of a one-replica unit (a database node), on its node's
    /// engine; `None` when no task runs on a node scale can reach.
    async fn exec_in_unit(&self, name: &str, cmd: &[String]) -> Result<Option<ExecOutput>, OrchestratorError>;
    /// The image (ID) the unit runs now: a failover changes a unit's role, not its image.
    async fn unit_image(&self, name: &str) -> Result<Option<String>, OrchestratorError>;
    /// Records `marker` (which node is a database's primary after a failover) in the
    /// orchestrator's own store, and removes the `older` markers.
    async fn record_marker(&self, marker: &VolumeSpec, older: &[String]) -> Result<(), OrchestratorError>;
}
