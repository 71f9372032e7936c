//! `scale check FILE`: runs the blueprint's `x-lesson` checks against the live project, over
//! 127.0.0.1 and the host ports the engine published, and says what passed, what failed and
//! where to look. Exit 0 when every check passes, 1 otherwise.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use super::{Global, connect, load_valid};
use crate::lesson::{Answer, judge};
use crate::model::lesson::LessonCheck;
use crate::observed::Endpoint;
use crate::probe::http;
use crate::ui::Ui;

/// Arguments of `scale check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The blueprint whose lesson to run (it must be the applied one).
    pub file: PathBuf,
    /// Tries per check before it fails, 1 s apart (a stage just applied may still be warming).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=30))]
    pub attempts: u32,
}

/// One check's verdict.
struct Verdict<'a> {
    check: &'a LessonCheck,
    url: Option<String>,
    outcome: Result<(), String>,
}

/// Runs every check; 0 when all pass.
pub async fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let (bp, project) = load_valid(Some(&args.file), global, ui)?;
    if bp.lesson.is_empty() {
        anyhow::bail!("{} has no `x-lesson:` checks to run", args.file.display());
    }
    let engine = connect().await?;
    let observed = crate::engine::observe_project(&engine, &project)
        .await
        .context("cannot read the project's state from the engine")?;
    let endpoints = observed.endpoints();
    let mut verdicts = Vec::new();
    for check in &bp.lesson {
        let endpoint = endpoints
            .iter()
            .find(|e| e.service == check.request.service.value && e.container_port == check.request.port.value);
        let outcome = match endpoint {
            None => Err(format!(
                "project {project} publishes no port {} of `{}`: is this stage applied? (`scale apply {}`)",
                check.request.port.value,
                check.request.service.value,
                args.file.display()
            )),
            Some(e) => attempt(check, e, args.attempts),
        };
        let url = endpoint.map(|e| format!("http://127.0.0.1:{}{}", e.host_port, check.request.path));
        verdicts.push(Verdict { check, url, outcome });
    }
    let failed = verdicts.iter().filter(|v| v.outcome.is_err()).count();
    if ui.is_json() {
        ui.json(&json!({
            "file": args.file.display().to_string(),
            "project": project,
            "passed": failed == 0,
            "checks": verdicts.iter().map(|v| json!({
                "check": v.check.check,
                "url": v.url,
                "passed": v.outcome.is_ok(),
                "why": v.outcome.as_ref().err(),
                "hint": v.check.hint,
            })).collect::<Vec<_>>(),
        }));
    } else {
        print_verdicts(ui, &bp, &project, &verdicts);
    }
    Ok(if failed == 0 { 0 } else { 1 })
}

fn print_verdicts(ui: Ui, bp: &crate::model::Blueprint, project: &str, verdicts: &[Verdict]) {
    let stage = bp.stage.as_ref().map(|s| format!(", stage {}: {}", s.number, s.title)).unwrap_or_default();
    ui.say(format!("Lesson of {} (project {project}{stage}):", bp.file.display()));
    for v in verdicts {
        let r = &v.check.request;
        let what = format!("{} {}", r.method.as_str(), v.url.as_deref().unwrap_or(&r.path));
        match &v.outcome {
            Ok(()) => ui.say(format!("  ✔ {}  ({what})", v.check.check)),
            Err(why) => {
                ui.say(format!("  ✘ {}  ({what})", v.check.check));
                ui.say(format!("      {why}"));
                if let Some(hint) = &v.check.hint {
                    ui.say(format!("      hint: {hint}"));
                }
            }
        }
    }
    let failed = verdicts.iter().filter(|v| v.outcome.is_err()).count();
    ui.say(format!("{} check(s): {} passed, {failed} failed", verdicts.len(), verdicts.len() - failed));
}

/// Sends the check's requests (`repeat` of them) up to `attempts` times, until they pass.
fn attempt(check: &LessonCheck, endpoint: &Endpoint, attempts: u32) -> Result<(), String> {
    let mut last = Ok(());
    for n in 0..attempts {
        if n > 0 {
            std::thread::sleep(Duration::from_secs(1));
        }
        let answers: Vec<Result<Answer, String>> = (0..check.request.repeat)
            .map(|_| {
                let r = &check.request;
                http(endpoint.host_port, r.method.as_str(), &r.path, r.body.as_deref()).map_err(|e| e.to_string())
            })
            .collect();
        last = judge(check, &answers);
        if last.is_ok() {
            break;
        }
    }
    last
}
