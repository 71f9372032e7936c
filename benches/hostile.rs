//! Hostile input must cost linear time (n log n at worst): the inputs issue 11 found
//! quadratic, at doubling sizes, so the growth shows in the medians. Before measuring, it
//! checks the YAML event limit the binary ships (`scale::model::node::MAX_EVENTS`, the same in
//! every build) in the release build a debug test run cannot afford: a document just under it
//! parses, one just over it is refused.
//!
//! ```sh
//! cargo bench --bench hostile
//! ```

use std::path::Path;

use divan::Bencher;
use scale::model::interpolate::Env;
use scale::model::node::{MAX_EVENTS, parse};

fn main() {
    check_the_shipped_event_limit();
    divan::main();
}

const SIZES: [usize; 4] = [1_250, 2_500, 5_000, 10_000];

/// A mapping of flow lists of `x`, about `events` YAML events in all.
fn lists_of_about(events: usize) -> String {
    let mut text = String::new();
    let mut left = events - 6;
    for i in 0.. {
        if left <= 3 {
            break;
        }
        let n = (left - 3).min(10_000);
        text.push_str(&format!("k{i}: [{}]\n", vec!["x"; n].join(",")));
        left -= n + 3;
    }
    text
}

fn check_the_shipped_event_limit() {
    let under = lists_of_about(MAX_EVENTS - 20);
    let over = lists_of_about(MAX_EVENTS + 20);
    assert!(parse(&under).is_ok(), "a document just under MAX_EVENTS ({MAX_EVENTS}) parses");
    let err = parse(&over).expect_err("a document just over MAX_EVENTS is refused");
    assert!(err.message.contains(&format!("limit of {MAX_EVENTS} YAML events")), "{err:?}");
    eprintln!("the shipped limit of {MAX_EVENTS} YAML events holds in this build");
}

fn validate_text(text: &str) -> usize {
    let (bp, mut problems) = scale::model::load_bytes_lenient(Path::new("b.yaml"), text.as_bytes(), &Env::default());
    if let Some(bp) = bp {
        problems.0.extend(scale::validate::validate(&bp, None));
    }
    problems.0.iter().map(|d| d.message.len() + d.hint.as_ref().map_or(0, String::len)).sum()
}

/// `n` lines of `.env` beside a one-service blueprint, loaded from disk.
#[divan::bench(args = SIZES, sample_count = 10)]
fn dotenv_lines(bencher: Bencher, n: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    // Each line refers to an earlier variable (the first: values do not grow with the file).
    let env: String = (0..n).map(|i| format!("VAR_{i}=\"value {i} of ${{VAR_0:-x}}\" # comment\n")).collect();
    std::fs::write(dir.path().join(".env"), env).expect("write .env");
    let file = dir.path().join("b.yaml");
    std::fs::write(&file, "name: b\nservices:\n  web: { image: app }\n").expect("write blueprint");
    bencher.bench(|| scale::model::load(&file).expect("loads"));
}

/// `n` services, each depending on a service that does not exist (each a different name).
#[divan::bench(args = SIZES, sample_count = 10)]
fn services_with_unknown_dependencies(bencher: Bencher, n: usize) {
    let mut text = String::from("name: b\nservices:\n");
    for i in 0..n {
        text.push_str(&format!("  s{i}: {{ image: app, depends_on: [missing{i}] }}\n"));
    }
    bencher.bench(|| validate_text(&text));
}

/// `n` services, each on a network that is not declared, beside `n` declared networks.
#[divan::bench(args = SIZES, sample_count = 10)]
fn unknown_networks(bencher: Bencher, n: usize) {
    let mut text = String::from("name: b\nnetworks:\n");
    for i in 0..n {
        text.push_str(&format!("  net{i}: {{}}\n"));
    }
    text.push_str("services:\n");
    for i in 0..n {
        text.push_str(&format!("  s{i}: {{ image: app, networks: [other{i}] }}\n"));
    }
    bencher.bench(|| validate_text(&text));
}

/// One dependency cycle through all `n` services.
#[divan::bench(args = SIZES, sample_count = 10)]
fn one_long_cycle(bencher: Bencher, n: usize) {
    let mut text = String::from("name: b\nservices:\n");
    for i in 0..n {
        text.push_str(&format!("  s{i}: {{ image: app, depends_on: [s{}] }}\n", (i + 1) % n));
    }
    bencher.bench(|| validate_text(&text));
}

/// One anchor merged into `n` services.
#[divan::bench(args = SIZES, sample_count = 10)]
fn one_anchor_merged_everywhere(bencher: Bencher, n: usize) {
    let mut text = String::from(
        "name: b\nx-common: &common\n  image: app\n  restart: always\n  environment: { A: '1' }\nservices:\n",
    );
    for i in 0..n {
        text.push_str(&format!("  s{i}:\n    <<: *common\n"));
    }
    bencher.bench(|| validate_text(&text));
}
