//! The CI commands without an engine: completions and the man page are generated from the
//! command line and name its subcommands; `status --all`'s table; `run` insists on a command.

mod common;

use std::time::{Duration, SystemTime};

use common::Scale;
use scale::expiry::{ProjectInfo, Resource, ResourceKind, format_time, summarize};
use scale::ui::projects::project_table;

const SUBCOMMANDS: [&str; 8] = ["apply", "destroy", "run", "reap", "logs", "exec", "dump", "completions"];

#[test]
fn completions_generate_for_each_shell_and_know_the_subcommands() {
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef scale"), ("fish", "complete -c scale")] {
        let run = Scale::new(&["completions", shell]).run();
        run.success();
        assert!(run.stdout.contains(marker), "{shell} completion looks like one:\n{}", run.stdout);
        for sub in SUBCOMMANDS {
            assert!(run.stdout.contains(sub), "{shell} completion knows `{sub}`");
        }
    }
    let bad = Scale::new(&["completions", "powershell"]).run();
    assert_ne!(bad.code, Some(0), "an unknown shell is refused");
}

#[test]
fn the_man_page_is_roff_and_lists_the_subcommands() {
    let run = Scale::new(&["man"]).run();
    run.success();
    assert!(run.stdout.starts_with(".ie") || run.stdout.contains(".TH scale 1"), "roff:\n{}", run.stdout);
    assert!(run.stdout.contains(".TH scale 1"), "{}", run.stdout);
    for sub in SUBCOMMANDS {
        assert!(run.stdout.contains(&format!("scale\\-{sub}(1)")), "the man page lists `{sub}`");
    }
}

#[test]
fn run_needs_a_command_after_the_blueprint() {
    let run = Scale::new(&["run", "blueprint.yaml"]).run();
    assert_ne!(run.code, Some(0));
    assert!(run.stderr.contains("<CMD>"), "says a command is missing:\n{}", run.stderr);
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn resource(kind: ResourceKind, project: &str, expires: Option<u64>, running: bool) -> Resource {
    let mut labels = std::collections::BTreeMap::from([("io.scale.project".to_string(), project.to_string())]);
    if let Some(e) = expires {
        labels.insert("io.scale.expires-at".into(), format_time(at(e)));
    }
    Resource { kind, name: project.into(), project: project.into(), labels, created: Some(at(1_000)), running }
}

#[test]
fn status_all_shows_age_and_expiry() {
    use ResourceKind::*;
    let infos: Vec<ProjectInfo> = summarize(&[
        resource(Container, "ci-123", Some(9_000), true),
        resource(Container, "ci-123", Some(9_000), true),
        resource(Network, "ci-123", Some(9_000), false),
        resource(Container, "ci-old", Some(4_000), false),
        resource(Volume, "ci-old", Some(4_000), false),
        resource(Container, "shop", None, true),
        resource(Network, "shop", None, false),
        resource(Volume, "shop", None, false),
    ]);
    insta::assert_snapshot!("status_all", project_table(&infos, at(4_600)));
}
