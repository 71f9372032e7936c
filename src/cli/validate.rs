//! `scale validate [FILE]`: every problem at once, exit 1 if there is any. Keys read but not
//! acted on are warnings: listed, but the file is valid.

use std::path::PathBuf;

use super::{Global, diagnostic_json, load_valid};
use crate::ui::Ui;

/// Arguments of `scale validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The blueprint or Compose file (default: compose.yaml here, see -f).
    pub file: Option<PathBuf>,
}

/// Checks the file; problems are printed by `load_valid`.
pub fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let (blueprint, project) = load_valid(args.file.as_deref(), global, ui)?;
    let notes = crate::validate::notes(&blueprint);
    let file = blueprint.file.display().to_string();
    if ui.is_json() {
        ui.json(&serde_json::json!({
            "file": file,
            "files": blueprint.sources.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
            "valid": true,
            "project": project,
            "services": blueprint.services.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
            "problems": [],
            "notes": notes,
            "warnings": blueprint.warnings.iter().map(diagnostic_json).collect::<Vec<_>>(),
        }));
    } else {
        let stage = blueprint.stage.as_ref().map(|s| format!(" (stage {}: {})", s.number, s.title)).unwrap_or_default();
        ui.say(format!(
            "{file} is valid: project {project}{stage}, {} service{}",
            blueprint.services.len(),
            if blueprint.services.len() == 1 { "" } else { "s" }
        ));
        super::print_notes(ui, &notes);
    }
    Ok(0)
}
