//! `shards: N` on a `kind: postgres` service: the users are spread over N database clusters.
//! The service that says so is shard 0 (it keeps its name, so a stage without shards and one
//! with them share their data there, and it holds the shard map); shards 1..N-1 are copies
//! of it named `<service>-s1`, `<service>-s2`... Making the copies here, in the model, means
//! validation, the desired state, the planner, graphs and status all see ordinary services:
//! a shard is a postgres cluster like any other, with its own primary and replicas.

use super::types::{Service, Shard};
use crate::diag::Pos;

/// The most shards one blueprint may ask for (the map has 64 buckets; 16 keeps each shard
/// at least four of them).
pub const MAX_SHARDS: u32 = 16;

/// The name of shard `index` of `directory` (shard 0 is the directory itself).
pub fn shard_name(directory: &str, index: u32) -> String {
    if index == 0 { directory.to_string() } else { format!("{directory}-s{index}") }
}

/// Appends the copies every `shards: N` asks for, right after their shard 0; what stands in
/// the way (a service already named like a copy, two sharded services) comes back as errors.
pub fn expand(services: &mut Vec<Service>) -> Vec<(Pos, String)> {
    let mut problems = Vec::new();
    let sharded: Vec<usize> =
        (0..services.len()).filter(|i| services[*i].postgres.as_ref().is_some_and(|pg| pg.shard.is_some())).collect();
    if let [_, second, ..] = sharded.as_slice() {
        let s = &services[*second];
        problems.push((s.pos, format!("service `{}`: only one service may declare `shards:`", s.name)));
        return problems;
    }
    let Some(&at) = sharded.first() else { return problems };
    let base = services[at].clone();
    let Some(shard) = base.postgres.as_ref().and_then(|pg| pg.shard.clone()) else { return problems };
    let mut copies = Vec::new();
    for index in 1..shard.count {
        let name = shard_name(&base.name, index);
        if let Some(taken) = services.iter().find(|s| s.name == name) {
            problems.push((
                taken.pos,
                format!("service `{name}` is the name of shard {index} of `{}` (`shards: {}`)", base.name, shard.count),
            ));
            continue;
        }
        let mut copy = base.clone();
        copy.name = name;
        if let Some(pg) = copy.postgres.as_mut() {
            pg.shard = Some(Shard { index, ..shard.clone() });
        }
        copies.push(copy);
    }
    services.splice(at + 1..at + 1, copies);
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> crate::model::Blueprint {
        crate::model::load_bytes(std::path::Path::new("b.yaml"), yaml.as_bytes(), &Default::default()).unwrap()
    }

    #[test]
    fn shards_become_services_named_after_shard_zero() {
        let bp =
            load("services:\n  db: { kind: postgres, image: pg, shards: 3, read_replicas: 1 }\n  web: { image: w }\n");
        let names: Vec<_> = bp.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["db", "db-s1", "db-s2", "web"]);
        let shard = bp.services[2].postgres.as_ref().unwrap().shard.clone().unwrap();
        assert_eq!(shard, Shard { directory: "db".into(), index: 2, count: 3 });
        assert_eq!(bp.services[2].postgres.as_ref().unwrap().read_replicas.value, 1);
    }

    #[test]
    fn a_service_with_a_shards_name_is_an_error() {
        let yaml = "services:\n  db: { kind: postgres, image: pg, shards: 2 }\n  db-s1: { image: w }\n";
        let err =
            crate::model::load_bytes(std::path::Path::new("b.yaml"), yaml.as_bytes(), &Default::default()).unwrap_err();
        assert!(format!("{err:?}").contains("shard 1 of `db`"), "{err:?}");
    }
}
