//! The node image: Debian's `docker.io` on `debian:bookworm-slim`. Its Dockerfile lives in
//! `blueprints/images/node/` and is compiled into scale, so `cluster up` works from any
//! directory; the tag carries the Dockerfile's hash, so a changed Dockerfile is rebuilt and
//! an unchanged one is built once per host engine.

use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::ClusterError;
use crate::engine::classify::Cause;
use crate::engine::docker::DockerEngine;

const DOCKERFILE: &str = include_str!("../../blueprints/images/node/Dockerfile");
/// How many lines of build output a failed build reports.
const OUTPUT_LINES: usize = 20;

/// The node image's reference: `scale-cluster-node:<12 hex of the Dockerfile's hash>`.
pub fn reference() -> String {
    let hash = crate::spec::hex(&Sha256::digest(DOCKERFILE.as_bytes()));
    format!("scale-cluster-node:{}", &hash[..12])
}

/// Builds the node image on the host engine unless it is there already; returns its reference.
pub async fn ensure(host: &DockerEngine, progress: &(dyn Fn(&str) + Sync)) -> Result<String, ClusterError> {
    let reference = reference();
    if host.client().inspect_image(&reference).await.is_ok() {
        return Ok(reference);
    }
    progress(&format!("building the node image {reference} (Debian's docker.io)"));
    let options = BuildImageOptionsBuilder::new().t(&reference).rm(true).forcerm(true).build();
    let context = context_tar().map_err(|e| build_failed(&reference, Cause::local(e.to_string()), Vec::new()))?;
    let docker = host.client().clone().with_timeout(std::time::Duration::from_secs(900));
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    let mut tail: Vec<String> = Vec::new();
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| build_failed(&reference, e.into(), tail.clone()))?;
        if let Some(line) = info.stream.as_deref().map(str::trim_end).filter(|l| !l.is_empty()) {
            tail.push(line.to_string());
            if tail.len() > OUTPUT_LINES {
                tail.remove(0);
            }
        }
        if let Some(message) = info.error_detail.and_then(|d| d.message) {
            return Err(build_failed(&reference, Cause::Stream { message }, tail));
        }
    }
    Ok(reference)
}

fn build_failed(reference: &str, cause: Cause, output: Vec<String>) -> ClusterError {
    let mut what = format!("build the node image {reference}");
    if !output.is_empty() {
        what.push_str(&format!(" (last output: {})", output.join(" | ")));
    }
    ClusterError::Docker { what, cause }
}

/// A build context holding the Dockerfile alone.
fn context_tar() -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_size(DOCKERFILE.len() as u64);
    header.set_mtime(crate::build_context::TAR_MTIME);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, "Dockerfile", DOCKERFILE.as_bytes())?;
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_follows_the_dockerfile() {
        let r = reference();
        assert!(r.starts_with("scale-cluster-node:") && r.len() == "scale-cluster-node:".len() + 12, "{r}");
    }

    #[test]
    fn the_context_holds_the_dockerfile() {
        let tar = context_tar().unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let names: Vec<String> =
            archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
        assert_eq!(names, ["Dockerfile"]);
    }
}
