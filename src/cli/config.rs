//! `scale config [FILE...]`: the fully resolved model, as `docker compose config` prints it,
//! so a Compose user sees exactly what scale understood of their files.

use std::path::PathBuf;

use super::{Global, OutputFormat, load_valid};
use crate::model::resolved::{document, to_yaml};
use crate::ui::Ui;

/// Arguments of `scale config`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files to merge in order, after any -f (default: compose.yaml here and its override).
    #[arg(value_name = "FILE")]
    pub paths: Vec<PathBuf>,
}

/// Loads, merges and checks the project, then prints it (YAML, or JSON with --output json).
pub fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let mut with_files = global.clone();
    with_files.files.extend(args.paths);
    let (blueprint, project) = load_valid(None, &with_files, ui)?;
    let doc = document(&blueprint, &project);
    match global.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&doc)?),
        OutputFormat::Human => print!("{}", to_yaml(&doc)),
    }
    Ok(0)
}
