//! Resharding as a reconciled change: the blueprint's `shards: N` against where the users
//! are (the observed rows per bucket and the shard map), as one action that says how many
//! rows move where. The move itself runs in the app (`shards.py`), bucket by bucket: lock
//! the bucket's map row, copy, switch the map, delete (see the web image).
//!
//! - **More shards, or the same ones** (`last`): after the new shards' containers are up.
//! - **Fewer shards, or none** (`first`): rows leave shards that are going away, so the move
//!   runs before any removal, in a web container that is running now; a stage without
//!   shards gets every user back in shard 0 and the map dropped (so its app reads `users`
//!   there as it always did).
//! - Rows of a bucket found on a shard the map does not name (left by a move that was
//!   interrupted) are deleted there: the map's shard has the bucket's truth, because writes
//!   go only there.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::kinds::shards::{assign, current_owners};
use crate::observed::{ObservedShards, ObservedState, RunState};
use crate::spec::DesiredState;

/// Buckets that go from one shard to another (or, `stale`, rows deleted from `from`
/// because `to` already holds the bucket).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardMove {
    pub from: String,
    pub to: String,
    pub buckets: Vec<u32>,
    /// Rows in those buckets on `from` when the plan was made.
    pub rows: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
}

/// The one reshard a plan makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reshard {
    /// The container that runs the moves.
    pub runner: String,
    /// Shard 0, which holds the map.
    pub directory: String,
    /// The shards after the move, shard 0 first.
    pub shards: Vec<String>,
    /// The map does not exist yet: create it, every bucket in shard 0.
    pub create_map: bool,
    pub moves: Vec<ShardMove>,
    /// No shards any more: drop the map once every bucket is back in shard 0.
    pub drop_map: bool,
    /// Rows leave a shard that goes away: run before every removal.
    pub first: bool,
}

/// The reshard `desired` needs, given where `observed` says the users are.
pub fn reshard(desired: &DesiredState, observed: &ObservedState) -> Option<Reshard> {
    // Nothing runs yet (a first apply): no map and no rows, so the map is made once the
    // databases are up.
    let nothing = ObservedShards::default();
    let seen = match (&observed.shards, &desired.sharding) {
        (Some(seen), _) => seen,
        (None, Some(_)) => &nothing,
        (None, None) => return None,
    };
    let (shards, drop_map) = match &desired.sharding {
        Some(s) => (s.shards.clone(), false),
        None => (vec![seen.map.as_ref()?.0.clone()], true),
    };
    let directory = shards.first()?.clone();
    let current = current_owners(seen, &directory);
    let target = assign(&current, &shards);
    let mut groups: BTreeMap<(String, String, bool), (Vec<u32>, u64)> = BTreeMap::new();
    for (bucket, owner) in &current {
        let to = target.get(bucket).unwrap_or(owner);
        if to != owner {
            let g = groups.entry((owner.clone(), to.clone(), false)).or_default();
            g.0.push(*bucket);
            g.1 += rows_of(seen, owner, *bucket);
        }
    }
    for (service, rows) in seen.rows.iter().filter(|(s, _)| involved(s, &shards, seen)) {
        for (bucket, n) in rows.iter().filter(|(_, n)| **n > 0) {
            let owner = &current[bucket];
            if owner != service {
                let g = groups.entry((service.clone(), owner.clone(), true)).or_default();
                g.0.push(*bucket);
                g.1 += n;
            }
        }
    }
    let create_map = seen.map.is_none() && desired.sharding.is_some();
    if groups.is_empty() && !create_map && !drop_map {
        return None;
    }
    let moves: Vec<ShardMove> = groups
        .into_iter()
        .map(|((from, to, stale), (buckets, rows))| ShardMove { from, to, buckets, rows, stale })
        .collect();
    let first = drop_map || moves.iter().any(|m| !shards.contains(&m.from));
    let runner = runner(desired, observed, first)?;
    Some(Reshard { runner, directory, shards, create_map, moves, drop_map, first })
}

fn rows_of(seen: &ObservedShards, service: &str, bucket: u32) -> u64 {
    seen.rows.get(service).and_then(|r| r.get(&bucket)).copied().unwrap_or(0)
}

/// Whether a service's rows are the shards' business: it is a shard, or the map names it.
fn involved(service: &str, shards: &[String], seen: &ObservedShards) -> bool {
    shards.iter().any(|s| s == service) || seen.map.as_ref().is_some_and(|(_, m)| m.values().any(|s| s == service))
}

/// The container that runs the moves: the sharding service's first container; without
/// shards (or when rows must leave before anything changes), a running plain container that
/// stays and talks to the database.
fn runner(desired: &DesiredState, observed: &ObservedState, running_now: bool) -> Option<String> {
    let running = |name: &str| observed.containers.get(name).is_some_and(|c| c.state == RunState::Running);
    let candidates = desired.containers.values().filter(|c| match &desired.sharding {
        Some(s) => c.service == s.runner,
        None => c.kind.is_none() && c.env.contains_key("DATABASE_URL"),
    });
    let mut candidates = candidates.map(|c| c.name.clone());
    if running_now { candidates.find(|n| running(n)) } else { candidates.next() }
}

/// The plan's words for a reshard: how many rows move where.
pub fn describe(r: &Reshard) -> String {
    let mut parts = Vec::new();
    if r.create_map {
        parts.push(format!("a shard map in {} (every bucket there to start)", r.directory));
    }
    for m in &r.moves {
        let n = m.buckets.len();
        let buckets = if n == 1 { "1 bucket".to_string() } else { format!("{n} buckets") };
        parts.push(if m.stale {
            format!("{} stale rows left on {} deleted ({} holds {buckets})", m.rows, m.from, m.to)
        } else {
            format!("{} rows {} → {} ({buckets})", m.rows, m.from, m.to)
        });
    }
    if r.drop_map {
        parts.push(format!("the shard map dropped (every user in {})", r.directory));
    }
    let total: u64 = r.moves.iter().filter(|m| !m.stale).map(|m| m.rows).sum();
    format!("users over {} shard(s), {total} rows move online: {}", r.shards.len(), parts.join("; "))
}
