//! Blueprints: schema v1 parsed from YAML into a typed model. The only place that parses YAML.

mod decode;
pub mod duration;
mod envfile;
pub mod fsread;
pub mod interpolate;
pub mod lesson;
mod load;
pub mod merge;
pub mod node;
mod numbers;
pub mod options;
pub mod project;
pub mod resolved;
mod shards;
mod types;

pub use decode::parse_port;
pub use interpolate::Env;
pub use load::{MAX_BLUEPRINT_BYTES, blueprint_dir, load, load_bytes, load_bytes_lenient, load_lenient};
pub use options::{ContainerOptions, IpamPool, Logging, NetworkMode, Ulimit};
pub use project::{Options as LoadOptions, load_project, normalize_project_name};
pub use shards::{MAX_SHARDS, shard_name};
pub use types::*;
