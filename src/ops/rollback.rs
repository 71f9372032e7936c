//! `scale rollback SERVICE`: a rollout back to the spec each replica ran before its last
//! replacement (kept in the engine, label `io.scale.previous-spec`), planned and run like any
//! apply, so it is drained, batched and health-gated by the service's rollout policy.

use crate::engine::{Engine, observe_project};
use crate::observed::ObservedState;
use crate::spec::DesiredState;

use super::OpsError;
use super::apply::{Applied, ApplyHooks};

/// The desired state with `service`'s replicas on their previous specs: the blueprint's
/// state for everything else. Only replicas that recorded a previous spec change.
pub fn previous_desired(
    desired: &DesiredState,
    observed: &ObservedState,
    service: &str,
) -> Result<DesiredState, OpsError> {
    if !desired.services.iter().any(|s| s.name == service) {
        let known: Vec<&str> = desired.services.iter().map(|s| s.name.as_str()).collect();
        return Err(OpsError::UnknownService { service: service.to_string(), known: known.join(", ") });
    }
    let mut back = desired.clone();
    let mut found = 0;
    for (name, spec) in back.containers.iter_mut().filter(|(_, s)| s.service == service) {
        let Some(previous) = observed.containers.get(name).and_then(|c| c.previous_spec()) else { continue };
        // Only what the container is: the name, service and replica stay this project's.
        if previous.name == spec.name && previous.service == spec.service {
            *spec = previous;
            found += 1;
        }
    }
    if found == 0 {
        return Err(OpsError::NoPreviousSpec { service: service.to_string() });
    }
    Ok(back)
}

/// Observes, puts `service` back on its previous specs, and runs that as an apply pass.
pub async fn rollback<E: Engine>(
    engine: &E,
    desired: &DesiredState,
    service: &str,
    hooks: &mut impl ApplyHooks<E>,
) -> Result<Applied, OpsError> {
    let observed = observe_project(engine, &desired.project).await.map_err(OpsError::Observe)?;
    let back = previous_desired(desired, &observed, service)?;
    super::apply::apply(engine, &back, hooks).await
}
