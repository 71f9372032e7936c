//! `scale rollback SERVICE`: a rollout back to the spec each replica ran before its last
//! replacement (kept in the engine, label `io.scale.previous-spec`), planned and run like any
//! apply, so it is drained, batched and health-gated by the service's rollout policy.

use crate::engine::{Engine, observe_project};
use crate::observed::ObservedState;
use crate::spec::DesiredState;

use super::OpsError;
use super::apply::{Applied, ApplyHooks};

/// The desired state with `service`'s replicas on their previous specs: the blueprint's
/// state for everything else. The replicas that run what the blueprint asks for go back (an
/// undone rollout); the others stay as they run.
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
    // The replicas that took the blueprint's latest rollout go back; when none runs what the
    // blueprint says (it changed since), every replica that recorded a previous spec does.
    let took_it = |name: &str| {
        let seen = observed.containers.get(name);
        seen.and_then(|c| c.spec_hash()) == desired.containers.get(name).map(|s| s.hash()).as_deref()
    };
    let any_took_it = back
        .containers
        .iter()
        .any(|(name, s)| s.service == service && took_it(name) && observed.containers[name].previous_spec().is_some());
    let mut found = 0;
    for (name, spec) in back.containers.iter_mut().filter(|(_, s)| s.service == service) {
        let Some(seen) = observed.containers.get(name) else { continue };
        let goes_back = !any_took_it || took_it(name);
        let (target, is_previous) = match seen.previous_spec() {
            Some(previous) if goes_back => (Some(previous), true),
            // A replica that does not go back stays exactly as it runs.
            _ => (seen.spec(), false),
        };
        // Only what the container is: the name, service and replica stay this project's.
        if let Some(target) = target.filter(|t| t.name == spec.name && t.service == spec.service) {
            *spec = target;
            found += usize::from(is_previous);
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
