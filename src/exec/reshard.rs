//! Executor step that moves the users between shards: `shards.py` inside a web container
//! (it speaks the app's own locking protocol), one command per step, so each line of
//! progress is one finished, committed step. Every step is safe to run again: a move whose
//! map row already names the new shard only deletes what is left on the old one.

use super::{ActionFailure, failure};
use crate::engine::{Engine, observe_project};
use crate::observed::RunState;
use crate::plan::ShardMove;

/// What one reshard runs, as the plan gave it.
pub struct Steps<'a> {
    pub runner: &'a str,
    pub directory: &'a str,
    pub create_map: bool,
    pub moves: &'a [ShardMove],
    pub drop_map: bool,
}

pub async fn run<E: Engine>(
    engine: &E,
    project: &str,
    steps: &Steps<'_>,
    say: &(dyn Fn(&str) + Sync),
) -> Result<(), ActionFailure> {
    let observed = observe_project(engine, project).await.map_err(failure)?;
    let name = steps.runner;
    let Some(c) = observed.containers.get(name).filter(|c| c.state == RunState::Running) else {
        return Err(stopped(format!("{name} is not running, so the users cannot be moved through it")));
    };
    let mut commands: Vec<Vec<String>> = Vec::new();
    if steps.create_map {
        commands.push(shards_py(&["init", steps.directory]));
    }
    for m in steps.moves {
        let buckets: Vec<String> = m.buckets.iter().map(u32::to_string).collect();
        commands.push(shards_py(&["move", &m.from, &m.to, &buckets.join(",")]));
    }
    if steps.drop_map {
        commands.push(shards_py(&["drop-map", steps.directory]));
    }
    for cmd in commands {
        let out = engine.exec(&c.id, name, &cmd).await.map_err(failure)?;
        let last = out.output.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or("").trim();
        if out.exit_code != 0 {
            let step = cmd[2..].join(" ");
            return Err(stopped(format!(
                "`shards.py {step}` in {name} failed (exit {}): {}",
                out.exit_code,
                out.output.trim()
            )));
        }
        say(&summary(last));
    }
    Ok(())
}

/// `python3 /app/shards.py ARGS...`
fn shards_py(args: &[&str]) -> Vec<String> {
    ["python3", "/app/shards.py"].iter().chain(args).map(|s| s.to_string()).collect()
}

/// One step's JSON line (`{"step":"move","from":"db","to":"db-s2","moved":312,...}`) in words.
fn summary(line: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { return line.to_string() };
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    let s = |k: &str| v[k].as_str().unwrap_or("?").to_string();
    match v["step"].as_str() {
        Some("init") => format!("shard map created in {} ({} buckets)", s("directory"), n("buckets")),
        Some("move") => format!(
            "{} → {}: {} rows copied, map switched for {} bucket(s), {} rows deleted from {}",
            s("from"),
            s("to"),
            n("copied"),
            n("switched"),
            n("deleted"),
            s("from")
        ),
        Some("drop-map") => format!("shard map dropped from {}", s("directory")),
        _ => line.to_string(),
    }
}

fn stopped(message: String) -> ActionFailure {
    ActionFailure {
        message,
        hint: Some("nothing is lost: each moved bucket was committed; run `scale apply` again to go on".into()),
        logs: Vec::new(),
        output: Vec::new(),
    }
}
