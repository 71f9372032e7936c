//! Executor step that moves the learner's data between stage 1's embedded SQLite file and
//! stage 2's data tier: `app.py migrate to-postgres|to-sqlite` inside the web container that
//! can see both (stage 2's web server mounts stage 1's volume). The copy is an upsert, so a
//! run that was interrupted is simply run again by the next apply; the pending marker goes
//! only once the copy succeeded.

use super::{ActionFailure, failure};
use crate::engine::{Engine, observe_project};
use crate::observed::RunState;
use crate::plan::MigrationDirection;

pub async fn run<E: Engine>(
    engine: &E,
    project: &str,
    name: &str,
    direction: MigrationDirection,
    marker: Option<&str>,
    say: &(dyn Fn(&str) + Sync),
) -> Result<(), ActionFailure> {
    // The container may have been created by this very plan: find it by name now.
    let observed = observe_project(engine, project).await.map_err(failure)?;
    let Some(c) = observed.containers.get(name).filter(|c| c.state == RunState::Running) else {
        return Err(ActionFailure {
            message: format!("{name} is not running, so the data cannot be copied through it"),
            hint: Some("run `scale apply` again once it runs; the copy is safe to repeat".into()),
            logs: Vec::new(),
            output: Vec::new(),
        });
    };
    let cmd: Vec<String> = ["python3", "/app/app.py", "migrate", direction.as_str()].map(String::from).to_vec();
    let out = engine.exec(&c.id, name, &cmd).await.map_err(failure)?;
    if out.exit_code != 0 {
        return Err(ActionFailure {
            message: format!("the copy in {name} failed (exit {}): {}", out.exit_code, out.output.trim()),
            hint: Some("nothing was removed; fix the cause and run `scale apply` again".into()),
            logs: Vec::new(),
            output: Vec::new(),
        });
    }
    let users = out
        .output
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|v| v["users"].as_u64());
    say(&match users {
        Some(n) => format!("copied {n} user(s)"),
        None => format!("copied ({})", out.output.trim()),
    });
    if let Some(marker) = marker {
        engine.remove_volume(marker).await.map_err(failure)?;
    }
    Ok(())
}
