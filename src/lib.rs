//! scale: reconcile declarative YAML blueprints against real Docker containers.
//!
//! The planning core (`model`, `validate`, `desired`, `observed`, `labels`, `plan`) is pure:
//! no tokio, no bollard, no terminal. `engine` talks to Docker, `exec` runs a plan, `ui`
//! renders progress, `cli` is one file per subcommand.

pub mod build_context;
pub mod chaos;
pub mod cli;
pub mod desired;
pub mod diag;
pub mod engine;
pub mod exec;
pub mod exit;
pub mod failover;
pub mod kinds;
pub mod labels;
pub mod model;
pub mod observed;
pub mod plan;
pub mod ui;
pub mod validate;
