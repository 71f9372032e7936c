//! How planning scales with the size of a blueprint: load + validate from YAML text, then
//! desired state + plan against an observed state of the same size (built by applying once
//! to the in-memory fake engine), for 100, 1,000 and 10,000 services. The goal is 10,000
//! services planned in under 100 ms, with cost growing linearly.
//!
//! Each blueprint is one YAML document. 10,000 services of this shape are about 293,000 YAML
//! events and 2.4 MB, inside the loader's limits in a release build (`cargo bench` builds
//! one; see `scale::model::node::MAX_EVENTS`).
//!
//! ```sh
//! cargo bench --bench plan
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, OnceLock};

use divan::Bencher;
use scale::desired::{DesiredState, desired_state};
use scale::engine::Engine;
use scale::engine::fake::FakeEngine;
use scale::exec::{ExecOptions, execute};
use scale::model::Blueprint;
use scale::model::interpolate::Env;
use scale::observed::ObservedState;

fn main() {
    divan::main();
}

const SIZES: [usize; 3] = [100, 1_000, 10_000];
const PROJECT: &str = "bench";

/// `n` services as a YAML document: image services with a few environment variables, on one
/// or two of three networks, in `depends_on` chains ten deep; `version` goes into every
/// container's environment.
fn blueprint_yaml(n: usize, version: u32) -> String {
    let mut text = String::with_capacity(n * 300);
    text.push_str("name: bench\nnetworks:\n  front: {}\n  back: { internal: true }\n  ops: {}\nservices:\n");
    for i in 0..n {
        text.push_str(&format!(
            "  svc{i}:\n    image: debian:bookworm-slim\n    command: [sleep, infinity]\n    \
             environment:\n      APP_VERSION: \"{version}\"\n      SERVICE_INDEX: \"{i}\"\n      LOG_LEVEL: info\n    \
             networks: [{}]\n    stop_grace_period: 1s\n",
            match i % 3 {
                0 => "front, back",
                1 => "back",
                _ => "back, ops",
            }
        ));
        if i % 10 != 0 {
            text.push_str(&format!("    depends_on: [svc{}]\n", i - 1));
        }
    }
    text
}

fn load_text(text: &str) -> Blueprint {
    scale::model::load_bytes(Path::new("bench.yaml"), text.as_bytes(), &Env::default())
        .unwrap_or_else(|d| panic!("the synthetic blueprint must load: {d}"))
}

fn load(n: usize, version: u32) -> Blueprint {
    let bp = load_text(&blueprint_yaml(n, version));
    assert_eq!(bp.services.len(), n);
    let problems = scale::validate::validate(&bp, None);
    assert!(problems.is_empty(), "the synthetic blueprint must validate: {problems:?}");
    bp
}

fn desired(bp: &Blueprint) -> DesiredState {
    let no_builds = |_: &scale::model::Build| Ok(String::new());
    desired_state(bp, PROJECT, &no_builds).unwrap_or_else(|d| panic!("desired state: {d:?}"))
}

/// What the engine holds after applying the `n`-service blueprint once to an empty fake
/// engine; computed once per size and shared by the benchmarks (executing 10,000 actions on
/// the fake engine takes much longer than planning them).
fn observed_after_apply(n: usize) -> ObservedState {
    static CACHE: OnceLock<Mutex<HashMap<usize, ObservedState>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(seen) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&n) {
        return seen.clone();
    }
    let bp = load(n, 1);
    let started = std::time::Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let seen = rt.block_on(async {
        let engine = FakeEngine::new();
        let want = desired(&bp);
        let empty = engine.observe(PROJECT).await.expect("observe");
        let plan = scale::plan::plan(&want, &empty).expect("plan");
        // settle 0: the fake's containers never exit by themselves.
        let opts = ExecOptions { parallel: 64, settle: std::time::Duration::ZERO, ..Default::default() };
        let report = execute(&engine, &plan, &opts, &|_| {}, &AtomicBool::new(false)).await;
        assert!(report.succeeded(), "applying to the fake engine failed: {report:?}");
        engine.observe(PROJECT).await.expect("observe")
    });
    eprintln!("(setup: applying {n} services to the fake engine took {:.1?})", started.elapsed());
    cache.lock().unwrap_or_else(|e| e.into_inner()).insert(n, seen.clone());
    seen
}

/// YAML text → blueprint → diagnostics, as every command starts.
#[divan::bench(args = SIZES, sample_count = 20)]
fn load_and_validate(bencher: Bencher, n: usize) {
    let text = blueprint_yaml(n, 1);
    bencher.bench(|| {
        let bp = load_text(&text);
        divan::black_box(scale::validate::validate(&bp, None))
    });
}

/// Load alone (YAML parse, decode, interpolation), with services per second: the cost per
/// service should not grow with the document.
#[divan::bench(args = SIZES, sample_count = 20)]
fn load_only(bencher: Bencher, n: usize) {
    let text = blueprint_yaml(n, 1);
    bencher.counter(divan::counter::ItemsCount::new(n)).bench(|| divan::black_box(load_text(&text)));
}

/// Validate alone.
#[divan::bench(args = SIZES, sample_count = 20)]
fn validate_only(bencher: Bencher, n: usize) {
    let bp = load(n, 1);
    bencher.bench(|| divan::black_box(scale::validate::validate(&bp, None)));
}

/// Blueprint → desired state (spec hashes included).
#[divan::bench(args = SIZES, sample_count = 20)]
fn desired_only(bencher: Bencher, n: usize) {
    let bp = load(n, 1);
    bencher.bench(|| divan::black_box(desired(&bp)));
}

/// Desired state + plan when everything already matches: the no-op diff path of every
/// `scale plan` / `scale apply` on a converged project.
#[divan::bench(args = SIZES, sample_count = 20)]
fn desired_and_plan_no_changes(bencher: Bencher, n: usize) {
    let bp = load(n, 1);
    let observed = observed_after_apply(n);
    assert!(!scale::plan::plan(&desired(&bp), &observed).expect("plan").has_changes(), "expected no changes");
    bencher.bench(|| {
        let want = desired(&bp);
        divan::black_box(scale::plan::plan(&want, &observed).expect("plan"))
    });
}

/// Plan alone on the no-op path (desired state computed once).
#[divan::bench(args = SIZES, sample_count = 20)]
fn plan_no_changes(bencher: Bencher, n: usize) {
    let bp = load(n, 1);
    let observed = observed_after_apply(n);
    let want = desired(&bp);
    bencher.bench(|| divan::black_box(scale::plan::plan(&want, &observed).expect("plan")));
}

/// Desired state + plan when every container drifted (each one's environment changed): every
/// container is recreated, and each reason is computed from the stored spec.
#[divan::bench(args = SIZES, sample_count = 20)]
fn desired_and_plan_all_drifted(bencher: Bencher, n: usize) {
    let observed = observed_after_apply(n);
    let bp = load(n, 2);
    let plan = scale::plan::plan(&desired(&bp), &observed).expect("plan");
    assert!(plan.actions.len() >= n, "every container should be recreated: {} actions", plan.actions.len());
    bencher.bench(|| {
        let want = desired(&bp);
        divan::black_box(scale::plan::plan(&want, &observed).expect("plan"))
    });
}
