//! `scale dump DIR [FILE]`: what a bug report needs, in one directory (as Kurtosis's
//! `enclave dump`): the blueprint as written and resolved into its desired state, and the
//! plan (with FILE), the project's status as
//! JSON, and each container's inspect and last log lines (bounded by `--log-lines`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;

use super::{Global, connect, project_and_blueprint};
use crate::engine::Engine;
use crate::ui::Ui;

/// Arguments of `scale dump`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The directory to write into (created if missing).
    pub dir: PathBuf,
    /// The blueprint file (optional with -p; without it, no blueprint and no plan).
    pub file: Option<PathBuf>,
    /// How many of each container's last log lines to keep.
    #[arg(long, default_value_t = 500, value_name = "N")]
    pub log_lines: usize,
}

fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>, written: &mut Vec<String>) -> anyhow::Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))?;
    written.push(name.to_string());
    Ok(())
}

fn pretty(value: &impl serde::Serialize) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(value)? + "\n")
}

/// Writes the bundle and lists what it wrote.
pub async fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let (project, loaded) = project_and_blueprint(args.file.as_ref(), global, ui)?;
    let engine = connect().await?;
    let observed = crate::engine::observe_project(&engine, &project)
        .await
        .context("cannot read the project's state from the engine")?;
    let dir = &args.dir;
    std::fs::create_dir_all(dir.join("containers")).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    if let (Some(loaded), Some(file)) = (&loaded, &args.file) {
        let text = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        write(dir, "blueprint.yaml", text, &mut written)?;
        // The blueprint resolved: interpolated, defaults filled, expanded to every container.
        let desired = json!({
            "project": loaded.desired.project,
            "networks": loaded.desired.networks,
            "volumes": loaded.desired.volumes,
            "images": loaded.desired.images,
            "services": loaded.desired.services,
            "containers": loaded.desired.containers,
        });
        write(dir, "desired.json", pretty(&desired)?, &mut written)?;
        let plan = crate::plan::plan(&loaded.desired, &observed)?;
        write(dir, "plan.json", pretty(&crate::plan::render_json(&plan))?, &mut written)?;
        write(dir, "plan.txt", crate::plan::render_text(&plan), &mut written)?;
    }
    let status = json!({
        "project": project,
        "engine": engine.address(),
        "api_version": engine.api_version(),
        "scale_version": env!("CARGO_PKG_VERSION"),
        "observed": observed,
        "endpoints": observed.endpoints(),
    });
    write(dir, "status.json", pretty(&status)?, &mut written)?;
    for c in observed.containers.values() {
        let inspect = match crate::engine::tools::inspect_json(&engine, &c.id, &c.name).await {
            Ok(value) => value,
            Err(err) => json!({"error": err.to_string()}),
        };
        write(dir, &format!("containers/{}.inspect.json", c.name), pretty(&inspect)?, &mut written)?;
        let logs = match engine.logs_tail(&c.id, args.log_lines).await {
            Ok(lines) => lines.join("\n") + "\n",
            Err(err) => format!("(cannot read the logs: {err})\n"),
        };
        write(dir, &format!("containers/{}.log", c.name), logs, &mut written)?;
    }
    if ui.is_json() {
        ui.json(&json!({"dir": dir.display().to_string(), "files": written}));
    } else {
        ui.say(format!("Wrote {} file(s) about project {project} to {}:", written.len(), dir.display()));
        for f in &written {
            ui.say(format!("  {f}"));
        }
    }
    Ok(0)
}
