//! Checks on what the engine would refuse later, or what would break scale itself, kept apart
//! from the structural checks in `validate.rs`: image references, host IPs, container paths,
//! scale's own label namespace, names that collide with generated ones, and the build
//! context's `.dockerignore` (checked here as `plan` checks it).

use crate::build_context::{self, ContextError};
use crate::diag::Diagnostic;
use crate::model::{Blueprint, Service};

/// Every problem of this kind in one service.
pub(super) fn service_problems(bp: &Blueprint, s: &Service) -> Vec<Diagnostic> {
    let mut out = Problems { bp, service: s, found: Vec::new() };
    out.dockerignore();
    out.found
}

struct Problems<'a> {
    bp: &'a Blueprint,
    service: &'a Service,
    found: Vec<Diagnostic>,
}

impl Problems<'_> {
    fn push(&mut self, pos: crate::diag::Pos, message: impl Into<String>, hint: impl Into<String>) {
        self.found.push(Diagnostic::at(&self.bp.file, pos, message).service(&self.service.name).hint(hint));
    }

    /// The `.dockerignore` `plan` would read: readable, a regular file, patterns that parse.
    /// A missing context or Dockerfile is reported by `validate.rs` already.
    fn dockerignore(&mut self) {
        let Some(build) = &self.service.build else { return };
        match build_context::check(&build.value) {
            Ok(())
            | Err(
                ContextError::MissingContext { .. }
                | ContextError::MissingDockerfile { .. }
                | ContextError::DockerfileOutside { .. },
            ) => {}
            Err(err) => {
                let hint = match err {
                    ContextError::BadPattern { .. } => {
                        "`.dockerignore` patterns use Go's filepath.Match syntax plus `**`; fix or remove the line"
                    }
                    _ => "the context's `.dockerignore` must be a readable regular file",
                };
                self.push(build.pos, err.to_string(), hint);
            }
        }
    }
}
