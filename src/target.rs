//! Where a project runs: one Docker engine (containers) or an orchestrator (Swarm services).
//! The choice is recorded in the engine with the project (label [`TARGET_LABEL`] on its
//! networks and services), so later commands, other shells and CI runners agree; switching
//! an existing project between targets is refused with what to do instead. Pure: the engine
//! code reads the record, this module decides.

/// Recorded on a project's networks and services when it runs on Swarm.
pub const TARGET_LABEL: &str = "io.scale.target";

/// A place a project runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Containers on the engine DOCKER_HOST names (the default).
    Docker,
    /// Services of the Swarm whose manager DOCKER_HOST names.
    Swarm,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Docker => "docker",
            Target::Swarm => "swarm",
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `--target` that disagrees with where the project already runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "project {project} runs on target {recorded} (recorded in the engine), not {requested}: \
     switching targets is not done in place; run with `--target {recorded}`, or remove it first \
     with `scale destroy -p {project} --target {recorded}` and apply again with `--target {requested}`"
)]
pub struct TargetSwitch {
    pub project: String,
    pub recorded: Target,
    pub requested: Target,
}

/// The target a command uses: the recorded one when the project exists (a different
/// `--target` is an error), else the requested one, else Docker.
pub fn choose(project: &str, requested: Option<Target>, recorded: Option<Target>) -> Result<Target, TargetSwitch> {
    match (requested, recorded) {
        (Some(requested), Some(recorded)) if requested != recorded => {
            Err(TargetSwitch { project: project.to_string(), recorded, requested })
        }
        (_, Some(recorded)) => Ok(recorded),
        (Some(requested), None) => Ok(requested),
        (None, None) => Ok(Target::Docker),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_target_wins_and_a_switch_says_what_to_do() {
        assert_eq!(choose("shop", None, None), Ok(Target::Docker));
        assert_eq!(choose("shop", Some(Target::Swarm), None), Ok(Target::Swarm));
        assert_eq!(choose("shop", None, Some(Target::Swarm)), Ok(Target::Swarm));
        let err = choose("shop", Some(Target::Docker), Some(Target::Swarm)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("runs on target swarm"), "{text}");
        assert!(text.contains("`scale destroy -p shop --target swarm`"), "{text}");
    }
}
