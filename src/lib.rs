//! scale: reconcile declarative YAML blueprints against real Docker containers.
//!
//! The planning core (`model`, `validate`, `spec`, `desired`, `kinds`, `labels`, `observed`,
//! `plan`) is pure: no tokio, no bollard, no terminal, and no import cycles. `engine` talks to
//! Docker, `exec` runs a plan, `ops` reconciles (apply, watch, failover) over any engine, `ui`
//! renders progress, `cli` is one file per subcommand that parses, calls `ops` and renders.

pub mod build_context;
pub mod chaos;
pub mod cli;
pub mod cluster;
pub mod desired;
pub mod diag;
pub mod engine;
pub mod exec;
pub mod exit;
pub mod expiry;
pub mod kinds;
pub mod labels;
pub mod lesson;
pub mod model;
pub mod observed;
pub mod ops;
pub mod plan;
pub mod probe;
pub mod spec;
pub mod stage_diff;
pub mod target;
pub mod topology;
pub mod ui;
pub mod ui_model;
pub mod validate;
