//! `scale validate FILE`: every problem at once, exit 1 if there is any.

use std::path::PathBuf;

use super::{Global, load_valid};
use crate::ui::Ui;

/// Arguments of `scale validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The blueprint file.
    pub file: PathBuf,
}

/// Checks the file; problems are printed by `load_valid`.
pub fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let (blueprint, project) = load_valid(&args.file, global, ui)?;
    let notes = crate::validate::notes(&blueprint);
    if ui.is_json() {
        ui.json(&serde_json::json!({
            "file": args.file.display().to_string(),
            "valid": true,
            "project": project,
            "services": blueprint.services.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
            "problems": [],
            "notes": notes,
        }));
    } else {
        let stage = blueprint.stage.as_ref().map(|s| format!(" (stage {}: {})", s.number, s.title)).unwrap_or_default();
        ui.say(format!(
            "{} is valid: project {project}{stage}, {} service{}",
            args.file.display(),
            blueprint.services.len(),
            if blueprint.services.len() == 1 { "" } else { "s" }
        ));
        super::print_notes(ui, &notes);
    }
    Ok(0)
}
