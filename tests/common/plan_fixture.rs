//! The planner fixtures (`tests/fixtures/plan/*.yaml`) as desired states, for the tests that
//! plan and execute over the in-memory engine (planner, scope, executor_lb, rollout_fake).
//! Included by path (`#[path = "common/plan_fixture.rs"]`), so those tests do not pull in
//! the Docker helpers. Each suite uses only some of these.
#![allow(dead_code)]

use std::path::Path;

use scale::desired::{DesiredState, desired_state};
use scale::diag::Diagnostic;
use scale::model::{Build, Env, load_bytes};
use scale::validate::{project_name, validate};

/// The image ID every build gets: the fake engine builds nothing, and a fixed ID keeps spec
/// hashes (and so the snapshots) stable.
pub const BUILT_IMAGE_ID: &str = "0123456789abcdef0123";

/// Loads `tests/fixtures/plan/<file>` with the given variables, checks it is valid and
/// expands it into its desired state.
pub fn desired_fixture(file: &str, vars: &[(&str, &str)]) -> DesiredState {
    desired_at(&format!("tests/fixtures/plan/{file}"), vars)
}

/// The same for any blueprint of the repository (`blueprints/03-load-balancer.yaml`).
pub fn desired_at(file: &str, vars: &[(&str, &str)]) -> DesiredState {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let bp = load_bytes(&path, &bytes, &Env::from_pairs(vars.iter().copied())).unwrap_or_else(|d| panic!("{d}"));
    let problems = validate(&bp, None);
    assert!(problems.is_empty(), "{file} is not valid: {problems:?}");
    let project = project_name(&bp, None).expect("fixtures name their project");
    let hasher = |_: &Build| Ok::<String, Diagnostic>(BUILT_IMAGE_ID.into());
    desired_state(&bp, &project, &hasher).unwrap_or_else(|d| panic!("{d:?}"))
}

/// A blueprint given as text (file name `shop.yaml`, project `shop`), expanded without
/// validation: the suites that build their blueprint per case (migrate_fake, shards_fake).
pub fn desired_from_yaml(yaml: &str) -> DesiredState {
    let bp = load_bytes(Path::new("shop.yaml"), yaml.as_bytes(), &Env::default()).unwrap_or_else(|d| panic!("{d}"));
    let hasher = |_: &Build| Ok::<String, Diagnostic>(BUILT_IMAGE_ID.into());
    desired_state(&bp, "shop", &hasher).unwrap_or_else(|d| panic!("{d:?}"))
}

/// A runtime for one call over the in-memory engine.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime")
}

/// Runs `p` over the in-memory engine with short waits, and no output.
pub fn run(engine: &scale::engine::fake::FakeEngine, p: &scale::plan::Plan) -> scale::exec::ExecReport {
    let opts = scale::exec::ExecOptions {
        parallel: 8,
        ready_timeout: std::time::Duration::from_secs(5),
        log_lines: 5,
        settle: std::time::Duration::ZERO,
        removals: None,
    };
    let never = std::sync::atomic::AtomicBool::new(false);
    rt().block_on(scale::exec::execute(engine, p, &opts, &|_| {}, &never))
}

/// The plan of `d` against what the in-memory engine holds of project `shop`.
pub fn plan_for(engine: &scale::engine::fake::FakeEngine, d: &DesiredState) -> scale::plan::Plan {
    let observed = rt().block_on(scale::engine::observe_project(engine, "shop")).expect("observes");
    scale::plan::plan(d, &observed).expect("plans")
}
