//! The one step that makes the blueprint's desired state depend on what is observed: a
//! `kind: postgres` service keeps the primary its last failover promoted (recorded in a
//! marker volume), instead of node 1. `plan` runs this step itself, so no caller can plan
//! against the blueprint's node 1 by forgetting it.

use std::borrow::Cow;

use crate::kinds::postgres::set_role;
use crate::model::Kind;
use crate::observed::ObservedState;
use crate::spec::{DesiredState, VolumeSpec};

/// The desired state with database primaries as the markers name them, and the current
/// markers kept (older ones are left to be noted, never deleted). Borrowed when no marker
/// changes anything, which is every project that never failed over.
pub fn assign_primaries<'d>(desired: &'d DesiredState, observed: &ObservedState) -> Cow<'d, DesiredState> {
    let mut out = Cow::Borrowed(desired);
    for (service, (primary, marker)) in observed.primaries() {
        let nodes: Vec<String> = desired
            .containers
            .values()
            .filter(|c| c.service == service && c.kind == Some(Kind::Postgres))
            .map(|c| c.name.clone())
            .collect();
        if nodes.is_empty() || !nodes.iter().any(|n| desired.containers[n].replica == primary) {
            continue;
        }
        let desired = out.to_mut();
        let synchronous = nodes.iter().any(|n| desired.containers[n].env.contains_key("SCALE_PG_SYNCHRONOUS"));
        for name in nodes {
            if let Some(node) = desired.containers.get_mut(&name) {
                let is_primary = node.replica == primary;
                set_role(node, &desired.project, &service, is_primary, synchronous);
            }
        }
        if let Some(spec) = desired.services.iter_mut().find(|s| s.name == service) {
            spec.leader = Some(primary);
        }
        if let Some(v) = observed.volumes.get(&marker) {
            desired.volumes.insert(marker.clone(), VolumeSpec { name: marker, labels: v.labels.clone() });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::assign_primaries;
    use crate::model::{Build, Env, load_bytes};
    use crate::observed::{ObservedState, ObservedVolume};

    const BLUEPRINT: &str = "name: shop\nservices:\n  db:\n    kind: postgres\n    image: pg\n    read_replicas: 1\n";

    fn desired() -> crate::spec::DesiredState {
        let bp = load_bytes(Path::new("t.yaml"), BLUEPRINT.as_bytes(), &Env::default()).expect("loads");
        let hasher = |_: &Build| Ok::<String, crate::diag::Diagnostic>("0".repeat(20));
        crate::desired::desired_state(&bp, "shop", &hasher).expect("expands")
    }

    fn marker(node: u32) -> ObservedState {
        let v = crate::kinds::postgres::marker_volume("shop", "db", node, 7);
        let volume = ObservedVolume { name: v.name.clone(), labels: v.labels };
        ObservedState { volumes: BTreeMap::from([(v.name, volume)]), ..Default::default() }
    }

    fn role(d: &crate::spec::DesiredState, n: u32) -> &str {
        d.containers[&format!("shop-db-{n}")].env["SCALE_PG_ROLE"].as_str()
    }

    #[test]
    fn a_marker_makes_its_node_the_leader_and_primary() {
        let d = desired();
        let assigned = assign_primaries(&d, &marker(2));
        assert_eq!((role(&assigned, 1), role(&assigned, 2)), ("replica", "primary"));
        assert_eq!(assigned.services[0].leader, Some(2));
        assert!(assigned.volumes.contains_key("shop_db-primary-2"), "{:?}", assigned.volumes.keys());
    }

    #[test]
    fn without_markers_the_desired_state_is_borrowed_unchanged() {
        let d = desired();
        let same = assign_primaries(&d, &ObservedState::default());
        assert!(matches!(same, Cow::Borrowed(_)));
        assert_eq!((role(&same, 1), role(&same, 2)), ("primary", "replica"));
    }

    #[test]
    fn plan_applies_the_markers_itself() {
        let p = crate::plan::plan(&desired(), &marker(2)).expect("plans");
        let first_db = p.actions.iter().find_map(|a| a.op.container_spec()).expect("creates nodes");
        assert_eq!(first_db.name, "shop-db-2", "the marked primary is created first");
        assert_eq!(first_db.env["SCALE_PG_ROLE"], "primary");
    }
}
