//! `scale diff A B`: what blueprint B adds to blueprint A, in words and as a plan would do
//! it. Exit codes as `kubectl diff`: 0 the same, 1 they differ, 2 an error (an invalid
//! blueprint included; usage errors exit as every subcommand's do).

use std::path::{Path, PathBuf};

use super::{Global, Reported, load_valid};
use crate::diag::{Diagnostic, Diagnostics};
use crate::stage_diff::{Side, diff, render_text};
use crate::ui::Ui;

/// Exit code of `scale diff` when it could not compare (never 1, which means "differs").
pub const DIFF_ERROR: u8 = 2;

/// Arguments of `scale diff`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The blueprint to compare from (e.g. the current stage).
    pub a: PathBuf,
    /// The blueprint to compare to (e.g. the next stage).
    pub b: PathBuf,
}

/// Prints the difference; errors become exit code [`DIFF_ERROR`], not 1.
pub async fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    match compare(&args, global, ui) {
        Ok(code) => Ok(code),
        Err(err) => {
            if !err.is::<Reported>() {
                eprintln!("error: {err:#}");
            }
            Ok(DIFF_ERROR)
        }
    }
}

fn compare(args: &Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let (a, _) = load_valid(Some(&args.a), global, ui)?;
    let (b, project) = load_valid(Some(&args.b), global, ui)?;
    // Both for B's project, so the containers they share have the same names.
    let desired_a = expand(&a, &args.a, &project, ui)?;
    let desired_b = expand(&b, &args.b, &project, ui)?;
    let d = diff(Side { blueprint: &a, desired: &desired_a }, Side { blueprint: &b, desired: &desired_b });
    if ui.is_json() {
        ui.json(&serde_json::json!({
            "from": args.a.display().to_string(),
            "to": args.b.display().to_string(),
            "same": d.is_empty(),
            "summary": crate::stage_diff::headline(&d),
            "changes": d.changes,
        }));
    } else if !ui.quiet {
        print!("{}", render_text(&d));
    }
    Ok(if d.is_empty() { 0 } else { 1 })
}

fn expand(
    bp: &crate::model::Blueprint,
    file: &Path,
    project: &str,
    ui: Ui,
) -> anyhow::Result<crate::spec::DesiredState> {
    let hasher = |build: &crate::model::Build| {
        crate::build_context::fingerprint(build).map_err(|err| {
            Diagnostic::file(file, err.to_string()).hint("check the service's `build:` path and its Dockerfile")
        })
    };
    crate::desired::desired_state(bp, project, &hasher).map_err(|d| super::report(ui, file, Diagnostics(d)))
}
