//! The command line: global flags, one file per subcommand, and the loading steps they share.
//! Library errors become `anyhow` errors with context here, at the edge.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::desired::{DesiredState, desired_state};
use crate::diag::{Diagnostic, Diagnostics};
use crate::engine::docker::DockerEngine;
use crate::model::Blueprint;
use crate::ui::Ui;

pub mod apply;
pub mod chaos;
pub mod check;
pub mod cluster;
pub mod completions;
pub mod config;
pub mod destroy;
pub mod diff;
pub mod dump;
pub mod exec;
pub mod failover;
pub mod failure;
pub mod graph;
mod interrupt;
pub mod live_page;
mod load;
mod load_report;
mod locking;
pub mod logs;
pub mod plan;
mod preflight;
pub mod reap;
pub mod rollback;
pub mod run;
pub mod stages;
pub mod status;
pub mod swarm;
pub mod validate;
pub mod watch;

/// scale: reconcile declarative YAML blueprints against real Docker containers.
#[derive(Debug, Parser)]
#[command(name = "scale", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Project name (default: the blueprint's `name`, then COMPOSE_PROJECT_NAME, then the
    /// directory's name).
    #[arg(short = 'p', long, global = true, value_name = "NAME")]
    pub project: Option<String>,
    /// A Compose file or blueprint; repeat to merge several in order (default: compose.yaml
    /// and compose.override.yaml in the current directory).
    #[arg(short = 'f', long = "file", global = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Read variables from this file instead of the project directory's .env (repeatable).
    #[arg(long = "env-file", global = true, value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Enable services of this profile (repeatable; default: COMPOSE_PROFILES).
    #[arg(long = "profile", global = true, value_name = "NAME")]
    pub profiles: Vec<String>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    /// Print only errors (and the plan's exit status).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Never colour the output (NO_COLOR is honoured too).
    #[arg(long, global = true)]
    pub no_color: bool,
}

/// `--output` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
}

/// The subcommands (see DESIGN.md's CLI table).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a blueprint: schema and semantics; every problem is listed.
    Validate(validate::Args),
    /// Show what apply would do, each action with its reason.
    Plan(plan::Args),
    /// Make the project match the blueprint.
    Apply(apply::Args),
    /// Show the project's containers, health and endpoints.
    Status(status::Args),
    /// Remove the project's containers and networks (volumes only with --volumes).
    Destroy(destroy::Args),
    /// Break one of the project's containers on purpose (kill, stop, pause, disconnect).
    Chaos(chaos::Args),
    /// Keep reconciling: follow engine events, repair drift, until Ctrl-C.
    Watch(watch::Args),
    /// Promote the most advanced replica of a kind: postgres service.
    Failover(failover::Args),
    /// Print the fully resolved model (merged, interpolated, defaults filled), like
    /// `docker compose config`.
    Config(config::Args),
    /// Apply, run a command with the endpoints in its environment, destroy; its exit status.
    Run(run::Args),
    /// Remove every project on the engine whose `apply --ttl` expiry has passed.
    Reap(reap::Args),
    /// Show the project's container output, prefixed per container (--follow follows).
    Logs(logs::Args),
    /// Run a command in one of the project's containers.
    Exec(exec::Args),
    /// Write a bug-report bundle: blueprint, plan, status, inspects, last log lines.
    Dump(dump::Args),
    /// Print shell completions (bash, zsh, fish).
    Completions(completions::Args),
    /// Print the man page (roff).
    Man,
    /// Draw the topology (Mermaid, DOT or SVG), optionally with the live state overlaid.
    Graph(graph::Args),
    /// What blueprint B adds to blueprint A; exit 0 same, 1 differs, 2 error.
    Diff(diff::Args),
    /// Run a stage's x-lesson checks against the live project; exit 0 all pass, 1 otherwise.
    Check(check::Args),
    /// List the stage ladder and which stage the project runs now.
    Stages(stages::Args),
    /// Put a service's replicas back on the spec they ran before their last replacement.
    Rollback(rollback::Args),
    /// Send a bounded load to one of the project's published ports and report rate,
    /// latency percentiles, status codes and which servers answered.
    Load(load::Args),
    /// A multi-node test cluster on this machine: Docker engines in containers, one Swarm.
    Cluster(cluster::Args),
    /// Serve a live page of the running project on 127.0.0.1: topology, health, roles, lag,
    /// the load balancer's traffic, events.
    Ui(live_page::Args),
}

/// Problems were already printed; exit 1 without printing more.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Reported(pub String);

/// Runs the parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    let ui = Ui::new(cli.global.output == OutputFormat::Json, cli.global.quiet, cli.global.no_color);
    match cli.command {
        Command::Validate(args) => validate::run(args, &cli.global, ui),
        Command::Plan(args) => plan::run(args, &cli.global, ui).await,
        Command::Apply(args) if args.watch => {
            // The controller's first pass is the apply itself: it observes, plans and runs
            // exactly as `apply` does, then keeps going. No apply lock is held here: each pass
            // that changes something takes the lock and gives it back (see `watch`).
            let watch = watch::Args {
                file: args.file,
                resync: args.resync,
                timeout: args.timeout,
                lock_timeout: Some(args.lock_timeout),
            };
            watch::run(watch, &cli.global, ui).await
        }
        Command::Apply(args) => apply::run(args, &cli.global, ui).await,
        Command::Status(args) => status::run(args, &cli.global, ui).await,
        Command::Destroy(args) => destroy::run(args, &cli.global, ui).await,
        Command::Chaos(args) => chaos::run(args, &cli.global, ui).await,
        Command::Watch(args) => watch::run(args, &cli.global, ui).await,
        Command::Failover(args) => failover::run(args, &cli.global, ui).await,
        Command::Config(args) => config::run(args, &cli.global, ui),
        Command::Run(args) => run::run(args, &cli.global, ui).await,
        Command::Reap(args) => reap::run(args, &cli.global, ui).await,
        Command::Logs(args) => logs::run(args, &cli.global, ui).await,
        Command::Exec(args) => exec::run(args, &cli.global, ui).await,
        Command::Dump(args) => dump::run(args, &cli.global, ui).await,
        Command::Completions(args) => completions::run(args),
        Command::Man => completions::man(),
        Command::Graph(args) => graph::run(args, &cli.global, ui).await,
        Command::Diff(args) => diff::run(args, &cli.global, ui).await,
        Command::Check(args) => check::run(args, &cli.global, ui).await,
        Command::Stages(args) => stages::run(args, &cli.global, ui).await,
        Command::Rollback(args) => rollback::run(args, &cli.global, ui).await,
        Command::Load(args) => load::run(args, &cli.global, ui).await,
        Command::Cluster(args) => cluster::run(args, ui).await,
        Command::Ui(args) => live_page::run(args, &cli.global, ui).await,
    }
}

/// A blueprint that loaded and validated, with its project and desired state.
pub struct Loaded {
    pub blueprint: Blueprint,
    pub project: String,
    pub desired: DesiredState,
}

/// How many problems a JSON document lists at most (the first ones in file order).
pub const MAX_JSON_PROBLEMS: usize = 1_000;

/// Prints diagnostics (text on stderr, or a JSON document) and turns them into `Reported`.
pub fn report(ui: Ui, file: &Path, problems: Diagnostics) -> anyhow::Error {
    let problems = problems.sorted();
    if ui.is_json() {
        // Capped like the text (which shows 200): a file of junk must not make a CI log of
        // megabytes; the count says how many more there were.
        let shown = problems.0.len().min(MAX_JSON_PROBLEMS);
        ui.json(&serde_json::json!({
            "file": file.display().to_string(),
            "valid": false,
            "problems": problems.0[..shown].iter().map(diagnostic_json).collect::<Vec<_>>(),
            "problems_total": problems.0.len(),
            "problems_not_shown": problems.0.len() - shown,
        }));
    } else {
        // One write: stderr is unbuffered, and a broken file can have thousands of problems.
        let text = problems.to_string();
        eprintln!("{text}");
    }
    Reported(format!("{} is not a valid blueprint", file.display())).into()
}

/// One diagnostic as JSON.
pub fn diagnostic_json(d: &Diagnostic) -> serde_json::Value {
    serde_json::json!({
        "file": d.file.display().to_string(),
        "line": d.pos.map(|p| p.line),
        "column": d.pos.map(|p| p.col),
        "service": d.service,
        "message": d.message,
        "hint": d.hint,
    })
}

/// What to load: `-f` files then the positional FILE, or (neither) discovery in the current
/// directory; with `--env-file` and `--profile`.
pub fn load_options(file: Option<&Path>, global: &Global) -> crate::model::LoadOptions {
    let mut files = global.files.clone();
    files.extend(file.map(Path::to_path_buf));
    crate::model::LoadOptions {
        files,
        workdir: PathBuf::from("."),
        env_files: global.env_files.clone(),
        profiles: global.profiles.clone(),
        env: crate::model::Env::from_process(),
    }
}

/// The name messages use for what was loaded: the first file, or the current directory.
fn shown(options: &crate::model::LoadOptions) -> PathBuf {
    options.files.first().cloned().unwrap_or_else(|| PathBuf::from("."))
}

/// Prints what was read but is not acted on (on stderr, so JSON on stdout stays clean).
pub fn warn(ui: Ui, bp: &Blueprint) {
    if ui.quiet || bp.warnings.is_empty() {
        return;
    }
    let text: Vec<String> = bp.warnings.iter().map(Diagnostic::as_warning).collect();
    eprintln!("{}", text.join("\n"));
}

/// Loads and validates a blueprint; problems are printed and become `Reported`.
pub fn load_valid(file: Option<&Path>, global: &Global, ui: Ui) -> anyhow::Result<(Blueprint, String)> {
    let options = load_options(file, global);
    if let Some(nothing) = crate::model::project::nothing_to_load(&options) {
        return Err(crate::exit::UsageError { message: nothing.message, hint: nothing.hint }.into());
    }
    let (blueprint, mut problems) = crate::model::load_project(&options);
    if let Some(bp) = &blueprint {
        problems.0.extend(crate::validate::validate(bp, global.project.as_deref()));
        problems.resolve_files(&bp.sources);
    }
    let file = shown(&options);
    let blueprint = match blueprint {
        Some(bp) if problems.is_empty() => bp,
        _ => return Err(report(ui, &file, problems)),
    };
    warn(ui, &blueprint);
    let project = crate::validate::project_name(&blueprint, global.project.as_deref())
        .map_err(|d| report(ui, &file, Diagnostics(vec![d])))?;
    Ok((blueprint, project))
}

/// Loads, validates and expands a blueprint into its desired state.
pub fn load_desired(file: Option<&Path>, global: &Global, ui: Ui) -> anyhow::Result<Loaded> {
    let (blueprint, project) = load_valid(file, global, ui)?;
    let hasher = |build: &crate::model::Build| {
        crate::build_context::fingerprint(build).map_err(|err| {
            Diagnostic::file(&blueprint.file, err.to_string())
                .hint("check the service's `build:` path and its Dockerfile")
        })
    };
    let shown = file.map_or_else(|| shown(&load_options(None, global)), Path::to_path_buf);
    let desired = desired_state(&blueprint, &project, &hasher).map_err(|d| report(ui, &shown, Diagnostics(d)))?;
    Ok(Loaded { blueprint, project, desired })
}

/// Prints notes about a valid blueprint on stderr (stdout stays the command's output),
/// unless `--quiet`.
pub fn print_notes(ui: Ui, notes: &[String]) {
    if !ui.quiet && !ui.is_json() {
        for note in notes {
            eprintln!("note: {note}");
        }
    }
}

/// The project a file-less command acts on: `-p`, else the name the blueprint (the file,
/// `-f`, or the Compose file found in the current directory) gives it.
pub fn project_of(file: Option<&PathBuf>, global: &Global, ui: Ui) -> anyhow::Result<String> {
    match &global.project {
        Some(p) => {
            crate::validate::check_project_name(p)
                .map_err(|why| anyhow::anyhow!("invalid project name {p:?}: {why}"))?;
            Ok(p.clone())
        }
        None => Ok(load_valid(file.map(PathBuf::as_path), global, ui)?.1),
    }
}

/// The project and, when a blueprint is given, its desired state: for commands that work
/// with either a file or `-p NAME` but do more with the file (status, failover).
pub fn project_and_blueprint(
    file: Option<&PathBuf>,
    global: &Global,
    ui: Ui,
) -> anyhow::Result<(String, Option<Loaded>)> {
    if file.is_none() && global.files.is_empty() && global.project.is_some() {
        return Ok((project_of(None, global, ui)?, None));
    }
    let loaded = load_desired(file.map(PathBuf::as_path), global, ui)?;
    Ok((loaded.project.clone(), Some(loaded)))
}

/// Connects to the engine named by DOCKER_HOST (or the default socket).
pub async fn connect() -> anyhow::Result<DockerEngine> {
    DockerEngine::connect().await.context("cannot talk to the container engine")
}

/// Asks a yes/no question on the terminal; `false` unless the answer starts with y.
pub fn confirm(question: &str) -> bool {
    use std::io::Write;
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Whether we may ask the user questions (both stdin and stderr are terminals).
pub fn interactive() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    /// clap checks the whole command tree only when asked (or when a subcommand is parsed, in
    /// debug builds): a subcommand's own `-f` clashing with the global `-f FILE` made `scale
    /// load` panic at start-up while every other command worked.
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
