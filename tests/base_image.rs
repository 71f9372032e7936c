//! The engine guard's base-image bootstrap (tests/common/base_image.rs), checked with a
//! throwaway image name and a cheap fake script, so the real `debian:bookworm-slim` is never
//! removed: the script runs once however many callers find the image missing together, not at
//! all when the image is there, and a failing script fails with its last lines and what to do.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use common::{Ensured, TEST_IMAGE, docker, ensure_base_image, image_exists};

/// A tag of our own, removed on drop (`docker image rm` of one tag of an image with others
/// only untags it; never `-f`).
struct ThrowawayTag(String);

impl ThrowawayTag {
    fn new(test: &str) -> ThrowawayTag {
        let tag = ThrowawayTag(format!("scale-test-base-{test}-{}:x", std::process::id()));
        tag.remove();
        tag
    }

    fn remove(&self) {
        if image_exists(&self.0) {
            docker(&["image", "rm", &self.0]).unwrap_or_else(|e| panic!("docker image rm {}: {e}", self.0));
        }
    }
}

impl Drop for ThrowawayTag {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Writes a fake bootstrap script to `dir`: it records each run in `dir/runs`, prints `lines`,
/// takes a second (so concurrent callers overlap), then either makes `$SCALE_BASE_IMAGE` by
/// tagging the test image or exits with `exit`.
fn fake_script(dir: &Path, lines: usize, exit: i32) -> (PathBuf, PathBuf) {
    let runs = dir.join("runs");
    let make =
        if exit == 0 { format!("docker tag {TEST_IMAGE} \"$SCALE_BASE_IMAGE\"") } else { format!("exit {exit}") };
    let script = dir.join("fake-ensure.sh");
    let text = format!(
        "set -euo pipefail\necho \"$SCALE_BASE_IMAGE\" >> '{}'\nfor i in $(seq 1 {lines}); do echo \"fake line $i\"; done\n\
         sleep 1\n{make}\n",
        runs.display()
    );
    std::fs::write(&script, text).expect("write the fake script");
    (script, runs)
}

fn runs(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file).unwrap_or_default().lines().map(str::to_string).collect()
}

#[test]
fn a_missing_base_image_is_made_once_however_many_callers_find_it_missing() {
    if !common::docker_or_skip("base_image_once") {
        return;
    }
    let tag = ThrowawayTag::new("once");
    let dir = tempfile::tempdir().expect("tempdir");
    let (script, runs_file) = fake_script(dir.path(), 3, 0);
    assert!(!image_exists(&tag.0), "{} exists before the test", tag.0);

    // Four callers at once, each with its own lock file handle, as separate test binaries
    // have (flock locks belong to the open file, so threads contend exactly like processes).
    let start = Arc::new(Barrier::new(4));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (start, image, script) = (start.clone(), tag.0.clone(), script.clone());
            std::thread::spawn(move || {
                start.wait();
                ensure_base_image(&image, &script)
            })
        })
        .collect();
    let results: Vec<Result<Ensured, String>> =
        callers.into_iter().map(|c| c.join().expect("a caller panicked")).collect();

    assert_eq!(runs(&runs_file), vec![tag.0.clone()], "the script ran other than once: {results:?}");
    let made: Vec<&Ensured> = results.iter().map(|r| r.as_ref().expect("every caller succeeds")).collect();
    assert_eq!(made.iter().filter(|e| matches!(e, Ensured::Made(_))).count(), 1, "{made:?}");
    assert!(
        made.iter().any(|e| matches!(e, Ensured::Made(out) if out.contains("fake line 3"))),
        "the maker returns the script's output: {made:?}"
    );
    assert!(image_exists(&tag.0), "the script's image is there");

    // Present: no run at all.
    assert_eq!(ensure_base_image(&tag.0, &script), Ok(Ensured::Present));
    assert_eq!(runs(&runs_file).len(), 1, "the script ran although the image was there");
}

#[test]
fn a_failed_bootstrap_shows_the_script_tail_and_what_to_do() {
    if !common::docker_or_skip("base_image_failed") {
        return;
    }
    let tag = ThrowawayTag::new("failed");
    let dir = tempfile::tempdir().expect("tempdir");
    let (script, runs_file) = fake_script(dir.path(), 40, 7);

    let why = ensure_base_image(&tag.0, &script).expect_err("a failing script is an error");
    assert_eq!(runs(&runs_file).len(), 1, "{why}");
    assert!(why.contains(&format!("the image {} is missing", tag.0)), "names the image: {why}");
    assert!(why.contains("exit status: 7"), "says how the script ended: {why}");
    assert!(why.contains("fake line 40") && why.contains("fake line 21"), "shows the last 20 lines: {why}");
    assert!(!why.contains("fake line 20\n"), "shows only the tail: {why}");
    assert!(why.contains("what to do:") && why.contains(&format!("SCALE_BASE_IMAGE={} bash", tag.0)), "{why}");
    assert!(!image_exists(&tag.0), "no image appeared");
}
