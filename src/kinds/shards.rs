//! Sharded users (`shards: N` on a postgres service): what scale asks each shard's primary,
//! how it reads the answer, and which buckets a new shard count puts where. Pure: the engine
//! runs the query, the planner uses the assignment.
//!
//! A user lives in bucket `id % 64` ([`SHARD_BUCKETS`]); the shard map, a table
//! `shard_map(bucket, shard)` in shard 0, names the shard of each bucket. With no map yet,
//! every bucket is in shard 0 (a stage without shards has all users there).

use std::collections::BTreeMap;

use crate::observed::ObservedShards;
use crate::spec::SHARD_BUCKETS;

/// The command that prints, on a primary, its rows per bucket (`r|bucket|count`) and its
/// shard map if it has one (`m|bucket|shard`). A missing table only costs its own lines
/// (psql goes on after an error without `ON_ERROR_STOP`).
pub fn shard_query(database: &str) -> Vec<String> {
    let rows = format!("SELECT 'r', id % {SHARD_BUCKETS}, count(*) FROM users GROUP BY 2");
    let map = "SELECT 'm', bucket, shard FROM shard_map";
    ["psql", "-X", "-q", "-At", "-U", "postgres", "-d", database, "-c", &rows, "-c", map].map(String::from).to_vec()
}

/// What one primary said: its rows per bucket, and its map (if it holds one).
pub fn parse_shard_output(text: &str) -> (BTreeMap<u32, u64>, Option<BTreeMap<u32, String>>) {
    let mut rows = BTreeMap::new();
    let mut map: Option<BTreeMap<u32, String>> = None;
    for line in text.lines() {
        let mut parts = line.trim().splitn(3, '|');
        let (Some(tag), Some(bucket), Some(value)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let Ok(bucket) = bucket.parse::<u32>() else { continue };
        if bucket >= SHARD_BUCKETS {
            continue;
        }
        match tag {
            "r" => {
                if let Ok(n) = value.parse::<u64>() {
                    rows.insert(bucket, n);
                }
            }
            "m" if is_service_name(value) => {
                map.get_or_insert_with(BTreeMap::new).insert(bucket, value.to_string());
            }
            _ => {}
        }
    }
    (rows, map)
}

/// A service name (what the map may hold; anything else is not ours to act on).
fn is_service_name(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Which shard holds each bucket now: the map's word, or `directory` without a map.
pub fn current_owners(observed: &ObservedShards, directory: &str) -> BTreeMap<u32, String> {
    (0..SHARD_BUCKETS)
        .map(|b| {
            let owner = observed.map.as_ref().and_then(|(_, m)| m.get(&b).cloned());
            (b, owner.unwrap_or_else(|| directory.to_string()))
        })
        .collect()
}

/// The order buckets are handed out in: bit-reversed (0, 32, 16, 48, 8, ...), so a shard's
/// share is spread over the id space instead of one range of it. Ids are given out in
/// sequence; with ranges, the newest users (the busiest) would all land on one shard.
fn spread(bucket: u32) -> u32 {
    bucket.reverse_bits() >> (32 - SHARD_BUCKETS.trailing_zeros())
}

/// The buckets' new owners for `shards`: each shard gets an equal share (shard 0 first to
/// get one more), and a bucket stays where it is while its shard is within its share, so a
/// reshard moves as little as it can, and going N → N+1 → N puts every bucket back.
pub fn assign(current: &BTreeMap<u32, String>, shards: &[String]) -> BTreeMap<u32, String> {
    let n = shards.len().max(1) as u32;
    let quota = |i: usize| (SHARD_BUCKETS / n + u32::from((i as u32) < SHARD_BUCKETS % n)) as usize;
    let mut kept: Vec<usize> = vec![0; shards.len()];
    let mut out = BTreeMap::new();
    let mut homeless = Vec::new();
    let mut order: Vec<(&u32, &String)> = current.iter().collect();
    order.sort_by_key(|(b, _)| spread(**b));
    for (bucket, owner) in order {
        match shards.iter().position(|s| s == owner) {
            Some(i) if kept[i] < quota(i) => {
                kept[i] += 1;
                out.insert(*bucket, owner.clone());
            }
            _ => homeless.push(*bucket),
        }
    }
    let mut next = 0;
    for bucket in homeless {
        while next < shards.len() && kept[next] >= quota(next) {
            next += 1;
        }
        let Some(shard) = shards.get(next) else { break };
        kept[next] += 1;
        out.insert(bucket, shard.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| crate::model::shard_name("db", i as u32)).collect()
    }

    fn count(map: &BTreeMap<u32, String>, shard: &str) -> usize {
        map.values().filter(|s| *s == shard).count()
    }

    #[test]
    fn shares_are_equal_and_moves_minimal_and_reversible() {
        let none = ObservedShards::default();
        let one = current_owners(&none, "db");
        let two = assign(&one, &names(2));
        assert_eq!((count(&two, "db"), count(&two, "db-s1")), (32, 32));
        let three = assign(&two, &names(3));
        assert_eq!((count(&three, "db"), count(&three, "db-s1"), count(&three, "db-s2")), (22, 21, 21));
        let moved = two.iter().filter(|(b, s)| three[*b] != **s).count();
        assert_eq!(moved, 21, "only the new shard's share moves");
        assert_eq!(assign(&three, &names(2)), two, "3 → 2 puts every bucket back");
        assert!(assign(&three, &names(1)).values().all(|s| s == "db"));
        let first_ids: Vec<&str> = (13..17).map(|id| two[&(id % SHARD_BUCKETS)].as_str()).collect();
        assert_eq!(first_ids, ["db-s1", "db", "db-s1", "db"], "consecutive ids alternate between shards");
    }

    #[test]
    fn the_query_output_is_read_line_by_line_and_errors_are_skipped() {
        let text = "r|3|10\nr|70|1\nERROR:  relation \"shard_map\" does not exist\nm|3|db-s1\nm|4|x;drop\n";
        let (rows, map) = parse_shard_output(text);
        assert_eq!(rows, BTreeMap::from([(3, 10)]));
        assert_eq!(map, Some(BTreeMap::from([(3, "db-s1".to_string())])));
        assert_eq!(parse_shard_output("r|1|2\n").1, None);
    }
}
