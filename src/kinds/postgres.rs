//! `kind: postgres`: one primary and `read_replicas` streaming replicas of PostgreSQL.
//!
//! Node 1 starts as the primary; nodes 2.. take a base backup from `<svc>-primary` into their
//! own volume and stream its WAL through a replication slot. Network aliases are what clients
//! use: `<svc>` and `<svc>-primary` on the primary, `<svc>-replica` on the replicas. The
//! primary's spec does not depend on `read_replicas`, so adding replicas never recreates or
//! restarts it, and its data volume outlives every stage transition.

use std::collections::BTreeMap;

use super::numbered;
use crate::model::PostgresDef;
use crate::spec::{ContainerSpec, HealthSpec, MountSourceSpec, MountSpec, VolumeSpec, scoped_name};

/// Where the image keeps its data (the volume is mounted here).
pub const DATA_DIR: &str = "/var/lib/postgresql/data";

/// The file (in the node's volume) that tells its entrypoint to set the data aside and take
/// a fresh base backup at the next start.
pub fn reseed_marker() -> String {
    format!("{DATA_DIR}/scale-reseed")
}

/// The alias that always names the current primary.
pub fn primary_alias(service: &str) -> String {
    format!("{service}-primary")
}

/// The alias that names the replicas.
pub fn replica_alias(service: &str) -> String {
    format!("{service}-replica")
}

/// Volume name (without the project prefix) holding node `n`'s data.
pub fn data_volume(service: &str, n: u32) -> String {
    format!("{service}-{n}-data")
}

/// Replication slot of node `n` on the primary (slot names allow `[a-z0-9_]` only).
pub fn slot_name(project: &str, service: &str, n: u32) -> String {
    format!("{project}_{service}_{n}").replace(|c: char| !c.is_ascii_alphanumeric(), "_").to_ascii_lowercase()
}

/// A `psql` command run inside a node as the superuser, printing bare values.
pub fn psql(sql: &str) -> Vec<String> {
    ["psql", "-X", "-q", "-At", "-U", "postgres", "-d", "postgres", "-c", sql].map(String::from).to_vec()
}

/// SQL that drops `slot` unless a replica still streams through it, then prints how many
/// slots of that name remain (`0`: gone). A slot nobody uses makes the primary keep WAL for
/// it forever, until its disk is full.
pub fn drop_slot_sql(slot: &str) -> String {
    format!(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{slot}' AND NOT active; \
         SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}'"
    )
}

/// The healthcheck the image ships (`scale-pg-health`), made explicit so apply waits for it.
pub fn default_healthcheck() -> HealthSpec {
    HealthSpec {
        test: vec!["CMD".into(), "scale-pg-health".into()],
        interval_ms: 2_000,
        timeout_ms: 5_000,
        retries: 3,
        start_period_ms: 120_000,
        start_interval_ms: None,
    }
}

/// The containers and volumes of a postgres service.
pub fn expand(
    project: &str,
    service: &str,
    def: &PostgresDef,
    template: &ContainerSpec,
    volumes: &mut BTreeMap<String, VolumeSpec>,
) -> Vec<ContainerSpec> {
    let mut base = template.clone();
    if base.healthcheck.is_none() {
        base.healthcheck = Some(default_healthcheck());
    }
    base.env.insert("POSTGRES_DB".into(), def.database.clone());
    base.env.insert("POSTGRES_USER".into(), def.user.clone());
    base.env.insert("POSTGRES_PASSWORD".into(), def.password.clone());

    let mut out = Vec::new();
    for n in 1..=def.read_replicas.value + 1 {
        let mut node = numbered(project, service, n, &base);
        let volume = scoped_name(project, &data_volume(service, n));
        volumes.entry(volume.clone()).or_insert_with(|| VolumeSpec {
            name: volume.clone(),
            labels: BTreeMap::from([
                (crate::labels::PROJECT.to_string(), project.to_string()),
                (crate::labels::SERVICE.to_string(), service.to_string()),
            ]),
        });
        node.mounts.push(MountSpec {
            source: MountSourceSpec::Volume(volume),
            target: DATA_DIR.into(),
            read_only: false,
            propagation: None,
            nocopy: false,
        });
        set_role(&mut node, project, service, n == 1, def.synchronous);
        out.push(node);
    }
    out
}

const ROLE_ENV: [&str; 4] = ["SCALE_PG_ROLE", "SCALE_PG_PRIMARY_HOST", "SCALE_PG_SLOT", "SCALE_PG_SYNCHRONOUS"];

/// Makes `node` the primary or a replica: its role variables and its network aliases
/// (`<svc>` and `<svc>-primary` on the primary, `<svc>-replica` on replicas).
pub fn set_role(node: &mut ContainerSpec, project: &str, service: &str, primary: bool, synchronous: bool) {
    for key in ROLE_ENV {
        node.env.remove(key);
    }
    let role_aliases = [service.to_string(), primary_alias(service), replica_alias(service)];
    let aliases = if primary {
        if synchronous {
            node.env.insert("SCALE_PG_SYNCHRONOUS".into(), "true".into());
        }
        node.env.insert("SCALE_PG_ROLE".into(), "primary".into());
        vec![service.to_string(), primary_alias(service)]
    } else {
        node.env.insert("SCALE_PG_ROLE".into(), "replica".into());
        node.env.insert("SCALE_PG_PRIMARY_HOST".into(), primary_alias(service));
        node.env.insert("SCALE_PG_SLOT".into(), slot_name(project, service, node.replica));
        vec![replica_alias(service)]
    };
    for attachment in &mut node.networks {
        let extra: Vec<String> = attachment.aliases.iter().filter(|a| !role_aliases.contains(a)).cloned().collect();
        attachment.aliases = aliases.iter().cloned().chain(extra).collect();
    }
}

/// `spec` without what only its role decides (the role variables and the role aliases): two
/// nodes' specs that are equal this way differ only in role.
pub fn role_neutral(spec: &ContainerSpec) -> ContainerSpec {
    let mut neutral = spec.clone();
    neutral.previous = None;
    for key in ROLE_ENV {
        neutral.env.remove(key);
    }
    let role_aliases = [spec.service.clone(), primary_alias(&spec.service), replica_alias(&spec.service)];
    for attachment in &mut neutral.networks {
        attachment.aliases.retain(|a| !role_aliases.contains(a));
    }
    neutral
}

/// Whether a node created as a replica (`created`) is what `desired` asks of it as a primary
/// but for its role: a failover promoted it in place and moved its aliases, so it must not be
/// recreated to match (that would be a second write gap after the promotion's). Its
/// entrypoint tells a promoted node from a fenced one by whom the primary alias names.
pub fn promoted_in_place(created: &ContainerSpec, desired: &ContainerSpec) -> bool {
    let role = |s: &ContainerSpec| s.env.get("SCALE_PG_ROLE").cloned();
    desired.kind == Some(crate::model::Kind::Postgres)
        && role(created).as_deref() == Some("replica")
        && role(desired).as_deref() == Some("primary")
        && role_neutral(created) == role_neutral(desired)
}

pub use crate::labels::{MARKER_NODE_LABEL, MARKER_SERVICE_LABEL, MARKER_SINCE_LABEL};

/// The marker volume recording that node `n` is the primary of `service` after a failover.
/// It lives in the engine like every other piece of scale's state, and as long as the data
/// volumes do (`destroy --volumes` removes both), so a later apply keeps the promoted node.
pub fn marker_volume(project: &str, service: &str, n: u32, since: u64) -> VolumeSpec {
    VolumeSpec {
        name: scoped_name(project, &format!("{service}-primary-{n}")),
        labels: BTreeMap::from([
            (crate::labels::PROJECT.to_string(), project.to_string()),
            (MARKER_SERVICE_LABEL.to_string(), service.to_string()),
            (MARKER_NODE_LABEL.to_string(), n.to_string()),
            (MARKER_SINCE_LABEL.to_string(), since.to_string()),
        ]),
    }
}

/// One node's replication state, as the image's `scale-pg-status` reports it.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct NodeStatus {
    /// `primary`, `replica` or `down`.
    pub role: String,
    #[serde(default)]
    pub timeline: Option<u64>,
    /// Current WAL position (the replayed one on a replica).
    #[serde(default)]
    pub lsn: Option<String>,
    #[serde(default)]
    pub lsn_bytes: Option<u64>,
    /// How far a replica is behind its primary.
    /// WAL received (a replica may have received more than it replayed).
    #[serde(default)]
    pub receive_lsn_bytes: Option<u64>,
    #[serde(default)]
    pub lag_bytes: Option<u64>,
    #[serde(default)]
    pub lag_seconds: Option<f64>,
    #[serde(default)]
    pub streaming: Option<bool>,
}

/// The command that prints a node's [`NodeStatus`] as one JSON line.
pub fn status_command() -> Vec<String> {
    vec!["scale-pg-status".into()]
}

/// Parses `scale-pg-status` output; `None` when it is not the expected JSON.
pub fn parse_status(output: &str) -> Option<NodeStatus> {
    output.lines().rev().find_map(|line| serde_json::from_str(line.trim()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse() {
        let primary = r#"{"role" : "primary", "node" : "shop-db-1", "timeline" : 1, "lsn" : "0/50540B0", "lsn_bytes" : 84230320, "replicas" : []}"#;
        let s = parse_status(primary).unwrap();
        assert_eq!((s.role.as_str(), s.lsn.as_deref(), s.lag_bytes), ("primary", Some("0/50540B0"), None));
        let replica = r#"{"role" : "replica", "node" : "shop-db-2", "timeline" : 1, "lsn" : "0/5", "lsn_bytes" : 5, "lag_bytes" : 120, "lag_seconds" : 0.5, "streaming" : true}"#;
        let s = parse_status(replica).unwrap();
        assert_eq!((s.lag_bytes, s.lag_seconds, s.streaming), (Some(120), Some(0.5), Some(true)));
        assert!(parse_status("psql: error").is_none());
    }

    #[test]
    fn a_promotion_is_a_role_only_difference_and_nothing_else_is() {
        use crate::model::{FailoverMode, PostgresDef};
        let def = |replicas: u32| PostgresDef {
            read_replicas: crate::model::At::new(replicas, crate::diag::Pos::default()),
            synchronous: true,
            failover: FailoverMode::Manual,
            database: "app".into(),
            user: "app".into(),
            password: "pw".into(),
            password_is_default: false,
            shard: None,
        };
        let mut template = crate::spec::ContainerSpec {
            kind: Some(crate::model::Kind::Postgres),
            image: "shop/db:1".into(),
            networks: vec![crate::spec::AttachmentSpec {
                network: "shop_private".into(),
                aliases: vec!["db".into(), "custom".into()],
                ..Default::default()
            }],
            hostname: String::new(),
            ..crate::spec::test_spec("", "db", 0)
        };
        let nodes = expand("shop", "db", &def(1), &template, &mut BTreeMap::new());
        let (created, mut promoted) = (nodes[1].clone(), nodes[1].clone());
        set_role(&mut promoted, "shop", "db", true, true);
        assert_ne!(created.hash(), promoted.hash());
        assert!(promoted_in_place(&created, &promoted));
        assert!(!promoted_in_place(&promoted, &created), "a demotion is a replacement (fence, re-seed)");
        template.image = "shop/db:2".into();
        let mut upgraded = expand("shop", "db", &def(1), &template, &mut BTreeMap::new())[1].clone();
        set_role(&mut upgraded, "shop", "db", true, true);
        assert!(!promoted_in_place(&created, &upgraded), "anything but the role still replaces it");
    }

    #[test]
    fn slots_and_aliases() {
        assert_eq!(slot_name("ci-123", "db", 2), "ci_123_db_2");
        assert_eq!(primary_alias("db"), "db-primary");
        assert_eq!(replica_alias("db"), "db-replica");
    }
}
