//! Resharding as planned and run over the in-memory engine, with the databases simulated:
//! the shard query (`psql` on each primary) answers from an in-memory table of rows per
//! bucket and a shard map, and `shards.py` (init, move, drop-map) changes them. What is
//! checked is scale's half: the counts in the plan, the order (after the new shards are up;
//! before a shard is removed), and that each applied plan leaves nothing to do.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use scale::engine::ExecOutput;
use scale::engine::fake::FakeEngine;
use scale::plan::{Op, Plan, render_text};
use scale::spec::DesiredState;

#[path = "common/plan_fixture.rs"]
mod plan_fixture;
use plan_fixture::{plan_for, run};

fn blueprint(shards: Option<u32>) -> String {
    let shards = shards.map(|n| format!("    shards: {n}\n")).unwrap_or_default();
    format!(
        "name: shop
services:
  web:
    image: web
    environment: {{ DATABASE_URL: \"postgres://app:app@db-primary:5432/app\" }}
    depends_on: [db]
  db:
    kind: postgres
    image: pg
    password: app
{shards}"
    )
}

fn desired(shards: Option<u32>) -> DesiredState {
    let yaml = blueprint(shards);
    plan_fixture::desired_from_yaml(&yaml)
}

/// The simulated databases: rows per (service, bucket), and the map (in `db`) if any.
#[derive(Default)]
struct Data {
    rows: BTreeMap<(String, u32), u64>,
    map: Option<BTreeMap<u32, String>>,
    steps: Vec<String>,
}

fn answer(data: &Mutex<Data>, container: &str, command: &str) -> Option<ExecOutput> {
    let mut d = data.lock().unwrap();
    let ok = |output: String| Some(ExecOutput { exit_code: 0, output });
    if command.starts_with("psql") && command.contains("FROM shard_map") {
        let service = container.strip_prefix("shop-")?.strip_suffix("-1")?.to_string();
        let mut out: Vec<String> = d
            .rows
            .iter()
            .filter(|((s, _), n)| *s == service && **n > 0)
            .map(|((_, b), n)| format!("r|{b}|{n}"))
            .collect();
        match &d.map {
            Some(map) if service == "db" => out.extend(map.iter().map(|(b, s)| format!("m|{b}|{s}"))),
            _ => out.push("ERROR:  relation \"shard_map\" does not exist".into()),
        }
        return ok(out.join("\n"));
    }
    let args = command.strip_prefix("python3 /app/shards.py ")?;
    d.steps.push(args.to_string());
    let words: Vec<&str> = args.split(' ').collect();
    match words.as_slice() {
        ["init", home] => {
            d.map.get_or_insert_with(|| (0..64).map(|b| (b, home.to_string())).collect());
            ok("{\"step\":\"init\",\"directory\":\"db\",\"buckets\":64}".into())
        }
        ["move", from, to, buckets] => {
            for b in buckets.split(',').map(|b| b.parse::<u32>().unwrap()) {
                let n = d.rows.remove(&(from.to_string(), b)).unwrap_or(0);
                *d.rows.entry((to.to_string(), b)).or_default() += n;
                d.map.as_mut().expect("a map").insert(b, to.to_string());
            }
            ok(format!(
                "{{\"step\":\"move\",\"from\":\"{from}\",\"to\":\"{to}\",\"copied\":1,\"switched\":1,\"deleted\":1}}"
            ))
        }
        ["drop-map", _] => {
            d.map = None;
            ok("{\"step\":\"drop-map\",\"directory\":\"db\"}".into())
        }
        _ => None,
    }
}

fn position(p: &Plan, pred: impl Fn(&Op) -> bool) -> usize {
    p.actions.iter().position(|a| pred(&a.op)).unwrap_or_else(|| panic!("no such action in\n{}", render_text(p)))
}

fn is_reshard(op: &Op) -> bool {
    matches!(op, Op::Reshard { .. })
}

#[test]
fn resharding_is_planned_with_its_row_counts_in_the_right_place_and_settles() {
    let engine = FakeEngine::new();
    let data = Arc::new(Mutex::new(Data::default()));
    {
        // 100 users, all in db (an unsharded stage): bucket b holds 1 + b % 3 of them.
        let mut d = data.lock().unwrap();
        for b in 0..64 {
            d.rows.insert(("db".into(), b), 1 + u64::from(b % 3));
        }
    }
    let total: u64 = data.lock().unwrap().rows.values().sum();
    let d2 = data.clone();
    engine.on_exec(move |container, command| {
        answer(&d2, container, command).or(Some(ExecOutput { exit_code: 0, output: String::new() }))
    });
    assert!(run(&engine, &plan_for(&engine, &desired(None))).succeeded());
    assert!(!plan_for(&engine, &desired(None)).has_changes(), "no shards, no map: nothing to move");

    // Unsharded → 2 shards: the map is made and half the buckets move, after db-s1 is up.
    let up = plan_for(&engine, &desired(Some(2)));
    let text = render_text(&up);
    let moved: u64 = (0..64u32).filter(|b| b % 2 == 1).map(|b| 1 + u64::from(b % 3)).sum();
    assert!(text.contains(&format!("{moved} rows db → db-s1 (32 buckets)")), "{text}");
    assert!(text.contains("a shard map in db"), "{text}");
    let reshard = position(&up, is_reshard);
    let s1 = position(&up, |op| op.container_spec().is_some_and(|s| s.name == "shop-db-s1-1"));
    assert!(up.actions[reshard].after.contains(&s1), "the move waits for the new shard\n{text}");
    assert!(run(&engine, &up).succeeded());
    assert!(
        !plan_for(&engine, &desired(Some(2))).has_changes(),
        "{}",
        render_text(&plan_for(&engine, &desired(Some(2))))
    );

    // 2 → 3 → 2: 21 buckets to the new shard, and the same ones back before it goes.
    let three = plan_for(&engine, &desired(Some(3)));
    let text = render_text(&three);
    assert!(text.contains("db → db-s2 (10 buckets)") && text.contains("db-s1 → db-s2 (11 buckets)"), "{text}");
    assert!(run(&engine, &three).succeeded());
    let back = plan_for(&engine, &desired(Some(2)));
    let text = render_text(&back);
    assert!(text.contains("db-s2 → db (10 buckets)") && text.contains("db-s2 → db-s1 (11 buckets)"), "{text}");
    let reshard = position(&back, is_reshard);
    let gone = position(&back, |op| matches!(op, Op::RemoveContainer { name, .. } if name == "shop-db-s2-1"));
    assert!(back.actions[gone].after.contains(&reshard), "db-s2 is removed only after its rows left\n{text}");
    assert!(run(&engine, &back).succeeded());

    // Back to no shards: every bucket home, the map dropped, then db-s1 removed.
    let down = plan_for(&engine, &desired(None));
    let text = render_text(&down);
    assert!(text.contains("db-s1 → db (32 buckets)") && text.contains("the shard map dropped"), "{text}");
    let reshard = position(&down, is_reshard);
    let gone = position(&down, |op| matches!(op, Op::RemoveContainer { name, .. } if name == "shop-db-s1-1"));
    assert!(down.actions[gone].after.contains(&reshard), "{text}");
    assert!(run(&engine, &down).succeeded());
    assert!(!plan_for(&engine, &desired(None)).has_changes());
    let d = data.lock().unwrap();
    assert!(d.map.is_none());
    assert_eq!(d.rows.iter().filter(|((s, _), _)| s == "db").map(|(_, n)| n).sum::<u64>(), total, "every row home");
    assert_eq!(d.steps.first().map(String::as_str), Some("init db"));
    assert_eq!(d.steps.last().map(String::as_str), Some("drop-map db"));
}

#[test]
fn rows_left_on_a_shard_the_map_does_not_name_are_planned_for_deletion() {
    let engine = FakeEngine::new();
    let data = Arc::new(Mutex::new(Data::default()));
    let d2 = data.clone();
    engine.on_exec(move |container, command| {
        answer(&d2, container, command).or(Some(ExecOutput { exit_code: 0, output: String::new() }))
    });
    assert!(run(&engine, &plan_for(&engine, &desired(Some(2)))).succeeded());
    assert!(!plan_for(&engine, &desired(Some(2))).has_changes());
    // An interrupted move: bucket 3 (db-s1's) copied to db too, but the map was not switched.
    {
        let mut d = data.lock().unwrap();
        assert_eq!(d.map.as_ref().unwrap()[&3], "db-s1");
        d.rows.insert(("db-s1".into(), 3), 5);
        d.rows.insert(("db".into(), 3), 5);
    }
    let p = plan_for(&engine, &desired(Some(2)));
    let text = render_text(&p);
    assert!(text.contains("5 stale rows left on db deleted (db-s1 holds 1 bucket)"), "{text}");
    let Op::Reshard { moves, .. } = &p.actions[position(&p, is_reshard)].op else { unreachable!() };
    assert_eq!((moves.len(), moves[0].stale, moves[0].buckets.as_slice()), (1, true, &[3][..]));
}
