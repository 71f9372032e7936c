//! The plan on an orchestrator target (`--target swarm`), without an engine: the ladder's
//! stage 3 as units (one Swarm service per blueprint service, one per database node), what a
//! first apply creates, that an applied project plans no changes, and that a changed
//! variable or replica count is explained in the same words as on one engine.

use std::collections::BTreeMap;
use std::path::Path;

use scale::desired::{DesiredState, desired_state};
use scale::diag::Diagnostic;
use scale::kinds::load_balancer::{CONFIG_PATH, task_pool_config};
use scale::model::{Build, Env, load_bytes};
use scale::plan::units::{
    ObservedUnit, ObservedUnits, Placement, TASK_HOSTNAME, UnitFile, UnitOp, UnitSpec, plan_units, render_units,
    role_of, units, with_role,
};
use scale::validate::{project_name, validate};

fn desired(stage: &str, vars: &[(&str, &str)]) -> DesiredState {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("blueprints").join(stage);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let bp = load_bytes(&path, &bytes, &Env::from_pairs(vars.iter().copied())).unwrap_or_else(|d| panic!("{d}"));
    assert!(validate(&bp, None).is_empty());
    let project = project_name(&bp, None).expect("stages name their project");
    let hasher = |_: &Build| Ok::<String, Diagnostic>("0123456789abcdef0123".into());
    desired_state(&bp, &project, &hasher).unwrap_or_else(|d| panic!("{d:?}"))
}

fn balancer(unit: &str, port: u16, listen: &[u16]) -> UnitFile {
    UnitFile { path: CONFIG_PATH.into(), text: task_pool_config(unit, port, listen) }
}

/// What the target reports after applying `wanted` (the labels read back).
fn applied(desired: &DesiredState, wanted: &[UnitSpec]) -> ObservedUnits {
    let units: BTreeMap<String, ObservedUnit> = wanted
        .iter()
        .map(|u| {
            let seen = ObservedUnit {
                name: u.name.clone(),
                service: u.service.clone(),
                hash: u.hash(),
                template: Some(u.template.clone()),
                replicas: u.replicas,
                file_hash: u.file.as_ref().map(UnitFile::hash),
                unit: Some(u.clone()),
            };
            (u.name.clone(), seen)
        })
        .collect();
    ObservedUnits { units, networks: desired.networks.keys().cloned().collect(), markers: BTreeMap::new() }
}

#[test]
fn stage_3_is_a_database_node_a_replicated_web_service_and_a_balancer_on_the_manager() {
    let d = desired("03-load-balancer.yaml", &[]);
    let wanted = units(&d, &balancer);
    let names: Vec<&str> = wanted.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["shop-db-1", "shop-web", "shop-lb"], "dependency order");
    let [db, web, lb] = [&wanted[0], &wanted[1], &wanted[2]];
    assert_eq!((db.replicas, &db.placement), (1, &Placement::Node(1)));
    assert!(db.template.networks.iter().any(|n| n.aliases.contains(&"db-primary".to_string())));
    assert_eq!((web.replicas, &web.placement), (2, &Placement::Any));
    assert_eq!(web.template.hostname, TASK_HOSTNAME);
    assert_eq!(web.depends_on.len(), 1);
    assert_eq!((lb.replicas, &lb.placement), (1, &Placement::Manager));
    let file = lb.file.as_ref().expect("the balancer gets its configuration as a file");
    assert_eq!(file.path, CONFIG_PATH);
    assert!(file.text.contains("server-template task 1-16 tasks.shop-web:8000"), "{}", file.text);
    assert!(file.text.contains("resolvers docker"), "{}", file.text);
}

#[test]
fn a_first_apply_creates_everything_and_a_second_plans_nothing() {
    let d = desired("03-load-balancer.yaml", &[]);
    let wanted = units(&d, &balancer);
    let first = plan_units(&d, wanted.clone(), &ObservedUnits::default());
    insta::assert_snapshot!(render_units(&first), @r"
    Plan for project shop (target swarm): 5 to create
      + create network shop_private: missing
      + create network shop_public: missing
      + create service shop-db-1: missing
      + create service shop-web: missing
      + create service shop-lb: missing
    ");
    let again = plan_units(&d, wanted.clone(), &applied(&d, &wanted));
    assert!(!again.has_changes(), "{}", render_units(&again));
    assert_eq!(render_units(&again), "No changes: project shop matches the blueprint.\n");
}

#[test]
fn a_new_version_is_a_rolling_update_of_web_alone_in_the_words_of_one_engine() {
    let before = desired("03-load-balancer.yaml", &[]);
    let old = units(&before, &balancer);
    let after = desired("03-load-balancer.yaml", &[("APP_VERSION", "2")]);
    let plan = plan_units(&after, units(&after, &balancer), &applied(&before, &old));
    assert_eq!(plan.actions.len(), 1, "{}", render_units(&plan));
    assert!(matches!(&plan.actions[0].op, UnitOp::Update(u) if u.name == "shop-web"));
    insta::assert_snapshot!(render_units(&plan), @r"
    Plan for project shop (target swarm): 1 to update
      ~ update service shop-web: environment APP_VERSION changed (1 → 2) (rolling update)
    ");
}

#[test]
fn more_replicas_scale_the_service_without_touching_the_balancer() {
    let before = desired("03-load-balancer.yaml", &[]);
    let old = units(&before, &balancer);
    let after = desired("03-load-balancer.yaml", &[("WEB_REPLICAS", "3")]);
    let plan = plan_units(&after, units(&after, &balancer), &applied(&before, &old));
    assert_eq!(
        render_units(&plan),
        "Plan for project shop (target swarm): 1 to scale\n  ~ scale service shop-web: replicas 2 → 3\n"
    );
}

#[test]
fn a_service_gone_from_the_blueprint_is_removed() {
    let four = desired("04-database-replication.yaml", &[]);
    let three = desired("03-load-balancer.yaml", &[]);
    let seen = applied(&four, &units(&four, &balancer));
    let plan = plan_units(&three, units(&three, &balancer), &seen);
    let removed: Vec<String> = plan
        .actions
        .iter()
        .filter_map(|a| match &a.op {
            UnitOp::Remove(name) => Some(format!("{name}: {}", a.reason)),
            _ => None,
        })
        .collect();
    assert!(!removed.is_empty(), "{}", render_units(&plan));
    for line in &removed {
        assert!(line.starts_with("shop-db-"), "{line}");
    }
}

#[test]
fn the_task_pool_keeps_its_servers_through_dns_trouble_and_slow_checks() {
    let config = task_pool_config("shop-web", 8000, &[80]);
    for line in ["hold timeout 30s", "hold refused 30s", "hold other 30s", "hold obsolete 5s", "timeout check 5s"] {
        assert!(config.contains(line), "{line} missing:\n{config}");
    }
}

/// What a failover on the swarm leaves (the old primary's service with the replica's spec,
/// the promoted one's with the primary's, a marker naming node 2) is exactly what the plan
/// then wants: the apply after a failover has nothing to do, and never moves the primary back.
#[test]
fn after_a_failover_the_plan_wants_what_the_failover_left() {
    let d = desired("04-database-replication.yaml", &[]);
    let wanted = units(&d, &balancer);
    let db: Vec<&UnitSpec> = wanted.iter().filter(|u| u.service == "db").collect();
    let placements: Vec<&Placement> = db.iter().map(|u| &u.placement).collect();
    assert_eq!(placements, [&Placement::Node(1), &Placement::Node(2), &Placement::Node(3)]);
    assert_eq!(role_of(db[0]), Some("primary"));
    let fenced = with_role(db[0], "shop", false, false);
    let promoted = with_role(db[1], "shop", true, false);
    assert_eq!(role_of(&fenced), Some("replica"));
    assert_eq!(fenced.template.env.get("SCALE_PG_SLOT").map(String::as_str), Some("shop_db_1"), "node 1's own slot");
    assert!(promoted.template.networks.iter().all(|n| n.aliases.starts_with(&["db".into(), "db-primary".into()])));

    let mut left: Vec<UnitSpec> = wanted.clone();
    for unit in &mut left {
        if unit.name == fenced.name {
            *unit = fenced.clone();
        } else if unit.name == promoted.name {
            *unit = promoted.clone();
        }
    }
    let mut observed = applied(&d, &left);
    let marker = scale::kinds::postgres::marker_volume("shop", "db", 2, 7);
    observed.markers.insert(marker.name.clone(), marker.labels.clone());
    let after = scale::plan::assign_primaries(&d, &observed.marker_state("shop"));
    let plan = plan_units(&after, units(&after, &balancer), &observed);
    assert!(!plan.has_changes(), "{}", render_units(&plan));

    // Without the marker the plan would make node 1 the primary again: the marker is what
    // keeps the promoted node.
    observed.markers.clear();
    let plan = plan_units(&d, units(&d, &balancer), &observed);
    let updated: Vec<String> = plan.actions.iter().map(|a| a.op.target()).collect();
    assert_eq!(updated, ["service shop-db-1", "service shop-db-2"], "{}", render_units(&plan));
}
