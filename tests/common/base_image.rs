//! The base image on a machine without a registry: the engine guard makes it when it is
//! missing, once per machine at a time, with the repository's bootstrap script.
//!
//! Several test binaries (and several `cargo test` runs) may find the image missing at the same
//! moment. Each takes an exclusive lock on a file under the temporary directory, named after
//! the image, and looks again once it holds it: the first one runs the script, the others find
//! the image made and return.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};

use super::docker::docker;

/// The repository's bootstrap script (pull, or debootstrap from the machine's own apt mirror
/// and `docker import`); it makes the image `$SCALE_BASE_IMAGE`.
pub const BASE_IMAGE_SCRIPT: &str = "scripts/ensure-base-image.sh";

/// How many of the script's last lines a failure shows.
const TAIL_LINES: usize = 20;

/// What [`ensure_base_image`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    /// The image was there (before the lock, or once another caller had made it).
    Present,
    /// This caller ran the script, which made it; its output.
    Made(String),
}

/// Whether the engine has an image of that name.
pub fn image_exists(image: &str) -> bool {
    docker(&["image", "inspect", "--format", "{{.Id}}", image]).is_ok()
}

/// The lock file for `image`: one per image name, shared by every process on the machine.
pub fn lock_path(image: &str) -> std::path::PathBuf {
    let slug: String = image.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    std::env::temp_dir().join(format!("scale-base-image-{slug}.lock"))
}

/// Makes sure `image` exists: if it is missing, takes the machine-wide lock for it, looks
/// again, and only then runs `bash script` with `SCALE_BASE_IMAGE=image`. `Err` says what
/// failed, with the script's last lines and what to do.
pub fn ensure_base_image(image: &str, script: &Path) -> Result<Ensured, String> {
    if image_exists(image) {
        return Ok(Ensured::Present);
    }
    let path = lock_path(image);
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("opening the lock file {}: {e}", path.display()))?;
    lock.lock().map_err(|e| format!("locking {}: {e}", path.display()))?;
    // Whoever held the lock before may have made it.
    if image_exists(image) {
        return Ok(Ensured::Present);
    }
    let output = run_script(image, script)?;
    if !image_exists(image) {
        return Err(format!(
            "{} exited 0 but the engine still has no image {image}; its output:\n{}\n{}",
            script.display(),
            tail(&output),
            what_to_do(image, script)
        ));
    }
    Ok(Ensured::Made(output))
    // The lock is released when `lock` is closed here.
}

/// Runs the script to the end: its stdout and stderr, or why it failed.
fn run_script(image: &str, script: &Path) -> Result<String, String> {
    let out = Command::new("bash")
        .arg(script)
        .env("SCALE_BASE_IMAGE", image)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `bash {}`: {e}\n{}", script.display(), what_to_do(image, script)))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "the image {image} is missing and `bash {}` could not make it ({}); its last lines:\n{}\n{}",
            script.display(),
            out.status,
            tail(&text),
            what_to_do(image, script)
        ))
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].iter().map(|l| format!("  | {l}\n")).collect()
}

fn what_to_do(image: &str, script: &Path) -> String {
    format!(
        "what to do: make {image} by hand and run the tests again: `docker pull {image}` where a registry \
         answers; else, as root, `SCALE_BASE_IMAGE={image} bash {}` (debootstrap from this machine's apt \
         mirror); or `docker load` it from a machine that has it",
        script.display()
    )
}
