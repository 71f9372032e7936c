//! What a Compose file asks of this particular engine, checked before planning: external
//! networks and volumes exist, `platform:` is the engine's own, and a healthcheck's
//! `start_interval` is understood (API 1.44) or said to be ignored.
//!
//! `apply` refuses to start when an external resource is missing or the platform differs;
//! `plan` says the same as warnings and still shows the plan (as `docker compose config`
//! accepts such a file and only `up` fails), so a file can be read and planned anywhere.

use crate::diag::{Diagnostic, Diagnostics};
use crate::engine::docker::{DockerEngine, api_at_least};
use crate::ui::Ui;

use super::Loaded;

/// The minor version of Engine API 1.x that added `Healthcheck.StartInterval`.
const START_INTERVAL_API: u32 = 44;

/// Whether what this engine cannot do ends the command (`apply`) or is a warning (`plan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    Refuse,
    Warn,
}

/// Problems are printed as the loader prints them (file:line:col) and end the command, or
/// are printed as warnings; other warnings go to stderr too.
pub async fn check(engine: &DockerEngine, loaded: &Loaded, ui: Ui, strictness: Strictness) -> anyhow::Result<()> {
    let mut problems = Diagnostics(missing_externals(engine, loaded).await?);
    problems.0.extend(platform_mismatches(engine, loaded).await?);
    let mut warnings = Vec::new();
    if strictness == Strictness::Warn {
        for mut p in std::mem::take(&mut problems.0) {
            p.message = format!("{} (apply will refuse)", p.message);
            warnings.push(p);
        }
    } else if !problems.is_empty() {
        problems.resolve_files(&loaded.blueprint.sources);
        return Err(super::report(ui, &loaded.blueprint.file, problems));
    }
    if !api_at_least(engine.api_version(), START_INTERVAL_API) {
        for s in loaded.blueprint.services.iter().filter(|s| s.compose.start_interval.is_some()) {
            let pos = s.healthcheck.as_ref().map_or(s.pos, |h| h.pos);
            let warning = Diagnostic::at(
                &loaded.blueprint.file,
                pos,
                format!(
                    "`services.{}.healthcheck.start_interval` is ignored: this engine speaks API {}, and \
                     start_interval needs 1.44 (Docker 25)",
                    s.name,
                    engine.api_version()
                ),
            )
            .hint("the healthcheck probes at `interval` during `start_period` too; upgrade the engine to use it");
            warnings.push(warning);
        }
    }
    if !ui.quiet && !warnings.is_empty() {
        let mut warnings = Diagnostics(warnings);
        warnings.resolve_files(&loaded.blueprint.sources);
        let text: Vec<String> = warnings.0.iter().map(Diagnostic::as_warning).collect();
        eprintln!("{}", text.join("\n"));
    }
    Ok(())
}

/// `external: true` networks and volumes that are not on the engine: scale never creates
/// them (they belong to someone else), so the file cannot be applied here as it is.
async fn missing_externals(engine: &DockerEngine, loaded: &Loaded) -> anyhow::Result<Vec<Diagnostic>> {
    use anyhow::Context;
    let bp = &loaded.blueprint;
    let mut out = Vec::new();
    for (key, def) in &bp.networks {
        let Some(name) = &def.external else { continue };
        let exists = engine.network_exists(name).await.with_context(|| format!("cannot look up network {name}"))?;
        if !exists {
            out.push(
                Diagnostic::at(
                    &bp.file,
                    def.pos,
                    format!("networks.{key}: the external network `{name}` does not exist on this engine"),
                )
                .hint(format!(
                    "create it first (`docker network create {name}`), or drop `external: true` so scale creates \
                     its own {}_{key}",
                    loaded.project
                )),
            );
        }
    }
    for (key, def) in &bp.volumes {
        let Some(name) = &def.external else { continue };
        let exists = engine.volume_exists(name).await.with_context(|| format!("cannot look up volume {name}"))?;
        if !exists {
            out.push(
                Diagnostic::at(
                    &bp.file,
                    def.pos,
                    format!("volumes.{key}: the external volume `{name}` does not exist on this engine"),
                )
                .hint(format!(
                    "create it first (`docker volume create {name}`), or drop `external: true` so scale creates \
                     its own {}_{key}",
                    loaded.project
                )),
            );
        }
    }
    Ok(out)
}

/// `platform:` values the engine does not run natively.
async fn platform_mismatches(engine: &DockerEngine, loaded: &Loaded) -> anyhow::Result<Vec<Diagnostic>> {
    use anyhow::Context;
    let bp = &loaded.blueprint;
    let wanted: Vec<_> = bp.services.iter().filter_map(|s| Some((s, s.compose.options.platform.as_ref()?))).collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let own = engine.platform().await.context("cannot read the engine's platform")?;
    let mut out = Vec::new();
    for (s, platform) in wanted {
        if !same_platform(platform, &own) {
            out.push(
                Diagnostic::at(
                    &bp.file,
                    s.pos,
                    format!("services.{}.platform: {platform} is not this engine's platform ({own})", s.name),
                )
                .service(&s.name)
                .hint(format!("remove `platform:`, set it to {own}, or apply on an engine of that platform")),
            );
        }
    }
    Ok(out)
}

/// Whether `wanted` (`linux/amd64`, `linux/arm64/v8`, `amd64`) names the engine's `os/arch`.
pub fn same_platform(wanted: &str, engine: &str) -> bool {
    fn arch(a: &str) -> &str {
        match a {
            "x86_64" | "x86-64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        }
    }
    let (engine_os, engine_arch) = engine.split_once('/').unwrap_or(("linux", engine));
    let mut parts = wanted.split('/');
    let (os, wanted_arch) = match (parts.next(), parts.next()) {
        (Some(os), Some(a)) => (os, a),
        (Some(a), None) => (engine_os, a),
        _ => return false,
    };
    os == engine_os && arch(wanted_arch) == arch(engine_arch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_match_by_os_and_architecture() {
        assert!(same_platform("linux/amd64", "linux/amd64"));
        assert!(same_platform("linux/x86_64", "linux/amd64"));
        assert!(same_platform("linux/arm64/v8", "linux/arm64"));
        assert!(!same_platform("linux/arm64", "linux/amd64"));
        assert!(!same_platform("windows/amd64", "linux/amd64"));
    }

    #[test]
    fn api_versions_compare_as_numbers() {
        assert!(!api_at_least("1.41", 44) && api_at_least("1.44", 44) && api_at_least("1.53", 44));
    }
}
