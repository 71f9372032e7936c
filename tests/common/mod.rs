//! Helpers for integration tests that drive a real Docker engine, split by concern:
//!
//! - [`engine`]: the probe every Docker test calls ([`docker_or_skip`], which also makes the
//!   base image when it is missing, see [`base_image`]) and the per-test project guard
//!   ([`DockerTest`], [`BuildGuard`]) that cleans up by label;
//! - [`docker`]: the bounded `docker` CLI and what tests read through it;
//! - [`runner`]: the one builder for running the built binary, [`Scale`];
//! - [`http`] and [`loops`]: requests to published ports, and client/write loops;
//! - [`stages`]: copies of the real stage files, `psql` through `docker exec`, polling;
//! - [`browser`]: headless Chromium driven over the DevTools protocol, for `scale ui`.
//!
//! Rules every Docker test follows:
//! - it runs under its own project name, `t-<test>-<pid>`, so tests can run in parallel and
//!   next to a user's own projects;
//! - everything it creates carries `io.scale.project=<project>` (scale does that itself;
//!   anything made by hand is registered with the guard);
//! - it cleans up by label when the [`DockerTest`] guard drops, even if the test panicked;
//! - it never sends traffic to container IPs from the host;
//! - with no engine answering it FAILS, with a message saying how to fix or skip: set
//!   `SCALE_SKIP_DOCKER_TESTS=1` to skip these tests (loudly) on a machine without Docker.
//!
//! ```ignore
//! mod common;
//!
//! #[tokio::test]
//! async fn something() {
//!     let Some(t) = common::DockerTest::start("something") else { return };
//!     let engine = t.engine().await;
//!     // ... create things labelled with t.project() ...
//! } // containers, networks, volumes and images labelled t.project() are removed here
//! ```
// Each test binary uses its own part of these helpers.
#![allow(dead_code, unused_imports)]

pub mod base_image;
pub mod browser;
pub mod docker;
pub mod engine;
pub mod http;
pub mod loops;
pub mod runner;
pub mod stages;

pub use base_image::*;
pub use browser::*;
pub use docker::*;
pub use engine::*;
pub use http::*;
pub use loops::*;
pub use runner::*;
pub use stages::*;
