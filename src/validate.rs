//! Semantic checks on a decoded blueprint (filled in by the validate work).

use crate::diag::Diagnostic;
use crate::model::Blueprint;

/// Every semantic problem in the blueprint, each with file and line:col or service.
pub fn validate(_bp: &Blueprint, _project_override: Option<&str>) -> Vec<Diagnostic> {
    Vec::new()
}
