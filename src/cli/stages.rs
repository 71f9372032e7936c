//! `scale stages [DIR]`: the ladder of stage blueprints (number, title, summary) and which
//! one the project runs now: the stage whose plan against the live project is empty.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::{Global, connect, load_desired};
use crate::ui::Ui;

/// Arguments of `scale stages`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the stage blueprints are.
    #[arg(default_value = "blueprints")]
    pub dir: PathBuf,
}

/// One stage of the ladder.
struct Stage {
    file: PathBuf,
    number: u32,
    title: String,
    summary: String,
    applied: Option<bool>,
}

/// Lists the ladder; asks the engine which stage is applied (and says so when it cannot).
pub async fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let mut stages = Vec::new();
    for file in stage_files(&args.dir)? {
        let loaded = load_desired(Some(&file), global, ui)?;
        let Some(stage) = &loaded.blueprint.stage else { continue };
        stages.push((
            Stage {
                file: file.clone(),
                number: stage.number,
                title: stage.title.clone(),
                summary: stage.summary.clone(),
                applied: None,
            },
            loaded,
        ));
    }
    stages.sort_by_key(|(s, _)| s.number);
    let engine_note = match connect().await {
        Ok(engine) => {
            for (stage, loaded) in &mut stages {
                let observed = crate::engine::observe_project(&engine, &loaded.project).await;
                stage.applied = match observed {
                    Ok(o) if o.containers.is_empty() => Some(false),
                    Ok(o) => Some(crate::plan::plan(&loaded.desired, &o).is_ok_and(|p| !p.has_changes())),
                    Err(_) => None,
                };
            }
            None
        }
        Err(err) => Some(format!("{err:#}")),
    };
    let stages: Vec<Stage> = stages.into_iter().map(|(s, _)| s).collect();
    if ui.is_json() {
        ui.json(&json!({
            "stages": stages.iter().map(|s| json!({
                "number": s.number, "title": s.title, "summary": s.summary,
                "file": s.file.display().to_string(), "applied": s.applied,
            })).collect::<Vec<_>>(),
            "engine_error": engine_note,
        }));
        return Ok(0);
    }
    for s in &stages {
        let mark = if s.applied == Some(true) { "▶" } else { " " };
        let now = if s.applied == Some(true) { "  ← applied now" } else { "" };
        ui.say(format!("{mark} {:>2}  {}  ({}){now}", s.number, s.title, s.file.display()));
        ui.say(format!("       {}", s.summary));
    }
    match engine_note {
        Some(err) => ui.say(format!("(which stage is applied is unknown: {err})")),
        None if !stages.iter().any(|s| s.applied == Some(true)) => {
            ui.say("No stage is applied exactly now (`scale status -p NAME` shows what runs).")
        }
        None => {}
    }
    Ok(0)
}

/// The `*.yaml` files of a directory, sorted.
fn stage_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("cannot list {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Ok(files)
}
