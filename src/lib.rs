//! scale: reconcile declarative YAML blueprints against real Docker containers.

pub mod diag;
pub mod model;
pub mod validate;
