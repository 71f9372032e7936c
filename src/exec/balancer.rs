//! Executor steps that talk to a load balancer: drain a server before it stops, put it back
//! once its replacement is ready, and reload a new configuration without dropping requests.

use std::sync::Mutex;
use std::time::Duration;

use super::poll::poll;
use super::{ActionFailure, failure};
use crate::engine::{Engine, EngineError};
use crate::kinds::load_balancer::{
    CONFIG_PATH, POOL_PATH, Pool, RELOAD_SIGNAL, drain_and_show_stat, parse_servers_state, parse_stat,
    probation_and_show_stat, record_volume, rejoin_on_probation, set_server_state, show_servers_state, show_stat,
};
use crate::plan::{ActionId, Drain, FileSpec};

/// How long a drained server may keep requests in flight before it is stopped anyway.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// What one run knows about its load balancers: the servers it put back on probation whose
/// checks have not been seen to pass yet (the next drain on that load balancer, and the end
/// of the run, wait for them first, so a rolling replacement's next batch starts its new
/// containers while the previous batch's servers are on probation, yet never takes servers
/// out while others are), and one writer at a time for the pool records (each update reads,
/// changes and writes the whole record).
#[derive(Debug, Default)]
pub struct Balancers {
    /// The project, whose label each pool record volume carries.
    project: String,
    rejoining: Mutex<Vec<Rejoin>>,
    /// The pool records as this run last wrote them, by load balancer ID: read from the
    /// container once, then kept here, so marking a drain costs one write and no read (each
    /// is a whole archive round trip through the engine, ~0.1–0.2 s on Docker 20.10).
    /// A record whose flag is set changed since it was last written (see [`forget_draining`]).
    records: tokio::sync::Mutex<Records>,
    /// Replacements with a server out of rotation (drained, stopped, renamed) that is not
    /// on probation yet, and the load balancer: see [`claim_out`].
    out: Mutex<Vec<(ActionId, String)>>,
}

impl Balancers {
    pub fn new(project: &str) -> Self {
        Balancers { project: project.to_string(), ..Default::default() }
    }
}

/// A cached record changed in memory only, and the load balancer's name to write it to.
type Unwritten = Option<String>;

/// A replacement's claim to take its servers out of rotation; dropping it (once they are on
/// probation, or when the replacement fails) lets the next batch take theirs.
pub struct OutClaim<'a> {
    balancers: &'a Balancers,
    action: ActionId,
}

impl Drop for OutClaim<'_> {
    fn drop(&mut self) {
        lock_out(self.balancers).retain(|(a, _)| *a != self.action);
    }
}

fn lock_out(balancers: &Balancers) -> std::sync::MutexGuard<'_, Vec<(ActionId, String)>> {
    balancers.out.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How long a replacement waits for an earlier batch to put its servers back on probation.
const CLAIM_LIMIT: Duration = Duration::from_secs(60);

/// Waits until no replacement outside `mates` (this one's batch) has a server of these load
/// balancers out of rotation and not yet on probation, then claims theirs. A rollout's next
/// batch starts while the previous one still drains and stops its old replicas; this keeps
/// it from taking servers out before those are back, so a rolling update never has more
/// servers out than one batch. At the limit it goes on and says so: a stuck earlier batch
/// must not hang the run.
pub async fn claim_out<'a>(
    balancers: &'a Balancers,
    action: ActionId,
    mates: &[ActionId],
    drains: &[Drain],
    say: &(dyn Fn(&str) + Sync),
) -> OutClaim<'a> {
    let mine: Vec<&str> = drains.iter().map(|d| d.balancer_id.as_str()).collect();
    let free = || {
        let mut out = lock_out(balancers);
        let busy = out.iter().any(|(a, b)| !mates.contains(a) && mine.contains(&b.as_str()));
        if busy {
            return Err(());
        }
        out.extend(mine.iter().map(|b| (action, b.to_string())));
        Ok(())
    };
    if poll(CLAIM_LIMIT, Duration::from_millis(50), async || free()).await.is_err() {
        say("the previous batch's servers are still out of rotation; going on");
        lock_out(balancers).extend(mine.iter().map(|b| (action, b.to_string())));
    }
    OutClaim { balancers, action }
}

/// One server on probation at its new address, and the action that put it there.
#[derive(Debug, Clone)]
struct Rejoin {
    action: ActionId,
    drain: Drain,
    addr: String,
    /// Someone waits for its checks already: a second waiter waits for it to leave the list
    /// (back in rotation) instead of asking HAProxy too.
    awaited: bool,
}

impl Rejoin {
    fn is(&self, other: &Rejoin) -> bool {
        self.action == other.action
            && self.drain.server == other.drain.server
            && self.drain.balancer_id == other.drain.balancer_id
    }
}

/// Says a line as output of an action.
pub type SayFor<'a> = &'a (dyn Fn(ActionId, &str) + Sync);

/// Takes each server out of rotation and waits (bounded) for its requests in flight to end,
/// once the servers on probation on that load balancer are back. A load balancer that cannot
/// be reached is only reported: its health checks still take the server out, and its retries
/// cover the gap.
pub async fn drain<E: Engine>(engine: &E, drains: &[Drain], balancers: &Balancers, say: &(dyn Fn(&str) + Sync)) {
    for d in drains {
        let others = Scope::Others { balancer_id: &d.balancer_id, mates: &[] };
        await_rejoined(engine, balancers, others, &|_, line| say(line)).await;
        say(&format!("draining {} from {}", d.server, d.balancer));
        let cmd = drain_and_show_stat(&d.backend, &d.server);
        match engine.exec(&d.balancer_id, &d.balancer, &cmd).await {
            Err(err) => {
                say(&format!("could not drain {} on {}: {err}", d.server, d.balancer));
                continue;
            }
            Ok(out) if !in_flight(&out.output, d) => continue,
            Ok(_) => await_idle(engine, d).await,
        }
    }
}

/// Whether `show stat` output lists requests in flight on the drained server.
fn in_flight(stat: &str, d: &Drain) -> bool {
    parse_stat(stat, &d.backend).iter().find(|s| s.server == d.server).is_some_and(|s| s.current_sessions > 0)
}

/// Puts drained servers into maintenance (no more checks against the old container), to be
/// run alongside the old container's stop: nothing is routed to a drained server anyway.
pub async fn take_out<E: Engine>(engine: &E, drains: &[Drain]) {
    for d in drains {
        let _ = engine.exec(&d.balancer_id, &d.balancer, &set_server_state(&d.backend, &d.server, "maint")).await;
    }
}

/// How long a server put back may take to pass the load balancer's own health checks.
const REJOIN_LIMIT: Duration = Duration::from_secs(15);

/// Records (or clears) in each load balancer's pool record that a replacement has its
/// server drained, so a run interrupted in between is repaired by the next one: one write
/// per load balancer, whatever the number of servers.
pub async fn mark_draining<E: Engine>(engine: &E, drains: &[Drain], balancers: &Balancers, draining: bool) {
    let mut records = balancers.records.lock().await;
    let mut touched: Vec<(&str, &str)> = Vec::new();
    for d in drains {
        let Some((pool, _)) = record_of(engine, &mut records, d).await else { continue };
        pool.draining.retain(|s| *s != d.server);
        if draining {
            pool.draining.push(d.server.clone());
        }
        if !touched.contains(&(d.balancer_id.as_str(), d.balancer.as_str())) {
            touched.push((&d.balancer_id, &d.balancer));
        }
    }
    for (id, name) in touched {
        let Some((pool, unwritten)) = records.get_mut(id) else { continue };
        *unwritten = None;
        let Ok(json) = serde_json::to_vec(pool) else { continue };
        let _ = store_pool(engine, &balancers.project, id, name, &json).await;
    }
}

/// The cached pool records, by load balancer ID.
type Records = std::collections::HashMap<String, (Pool, Unwritten)>;

/// The pool record of a drain's load balancer: cached, or read from the container once.
async fn record_of<'r, E: Engine>(
    engine: &E,
    records: &'r mut Records,
    d: &Drain,
) -> Option<&'r mut (Pool, Unwritten)> {
    Some(match records.entry(d.balancer_id.clone()) {
        std::collections::hash_map::Entry::Occupied(seen) => seen.into_mut(),
        std::collections::hash_map::Entry::Vacant(slot) => {
            let Ok(Some(bytes)) = engine.read_file(&d.balancer_id, &d.balancer, POOL_PATH).await else { return None };
            let pool = serde_json::from_slice::<Pool>(&bytes).ok()?;
            slot.insert((pool, None))
        }
    })
}

/// Clears servers from the cached pool records without writing them.
async fn forget_draining(balancers: &Balancers, drains: &[Drain]) {
    let mut records = balancers.records.lock().await;
    for d in drains {
        if let Some((pool, unwritten)) = records.get_mut(&d.balancer_id) {
            pool.draining.retain(|s| *s != d.server);
            *unwritten = Some(d.balancer.clone());
        }
    }
}

/// Writes the records [`forget_draining`] changed and nothing wrote since.
async fn flush_records<E: Engine>(engine: &E, balancers: &Balancers) {
    let mut records = balancers.records.lock().await;
    for (id, (pool, unwritten)) in records.iter_mut() {
        let Some(name) = unwritten.take() else { continue };
        let Ok(json) = serde_json::to_vec(pool) else { continue };
        let _ = store_pool(engine, &balancers.project, id, &name, &json).await;
    }
}

/// Puts servers back on probation at their replacement's address (`addrs`, one per drain,
/// from [`resolve_all`]: health down, ready), to take requests only once the load balancer's
/// own checks have passed there, which brings them into rotation; waiting for that and
/// clearing their drain records is [`await_rejoined`]'s, before the next drain on that load
/// balancer and at the end of the run, so a rolling update never has more servers out than
/// its batch.
pub async fn undrain<E: Engine>(
    engine: &E,
    drains: &[Drain],
    addrs: &[Option<String>],
    balancers: &Balancers,
    action: ActionId,
    say: &(dyn Fn(&str) + Sync),
) {
    for (d, addr) in drains.iter().zip(addrs) {
        let Some(addr) = addr else {
            unresolved(engine, d, balancers, say).await;
            continue;
        };
        let probation = rejoin_on_probation(&d.backend, &d.server, addr);
        if let Err(err) = engine.exec(&d.balancer_id, &d.balancer, &probation).await {
            say(&format!("could not put {} back on {}: {err}", d.server, d.balancer));
            continue;
        }
        say(&format!("{} rejoins {} on probation at {addr}", d.server, d.balancer));
        lock(balancers).push(Rejoin { action, drain: d.clone(), addr: addr.clone(), awaited: false });
    }
}

/// A replacement whose address the load balancer cannot resolve: its server is put back as
/// it is, and HAProxy's own resolver and checks take it from there.
async fn unresolved<E: Engine>(engine: &E, d: &Drain, balancers: &Balancers, say: &(dyn Fn(&str) + Sync)) {
    say(&format!("{} does not resolve on {}; putting it back unchecked", d.server, d.balancer));
    let _ = engine.exec(&d.balancer_id, &d.balancer, &set_server_state(&d.backend, &d.server, "ready")).await;
    mark_draining(engine, std::slice::from_ref(d), balancers, false).await;
}

/// Waits until the servers other batches put on probation on these drains' load balancers
/// are back in rotation: before a start-first hand-over renames anything, since HAProxy's
/// resolver follows a name to its new container by itself, and a server that changes
/// address may leave rotation for a moment; the previous batch's servers must be back first.
pub async fn await_previous<E: Engine>(
    engine: &E,
    drains: &[Drain],
    balancers: &Balancers,
    mates: &[ActionId],
    say: &(dyn Fn(&str) + Sync),
) {
    for d in drains {
        let others = Scope::Others { balancer_id: &d.balancer_id, mates };
        await_rejoined(engine, balancers, others, &|_, line| say(line)).await;
    }
}

/// The start-first hand-over, once the replacement has taken the old container's name (and
/// [`await_previous`] has seen the previous batch back): each server moves straight to the
/// new address on probation (out of rotation until its checks pass there), and the old
/// container's requests in flight (on connections HAProxy opened before) are waited for
/// (bounded) before it may stop. One call where a drain and a probation took two, with no
/// more servers out of rotation than before.
pub async fn switch_over<E: Engine>(
    engine: &E,
    drains: &[Drain],
    addrs: &[Option<String>],
    balancers: &Balancers,
    action: ActionId,
    say: &(dyn Fn(&str) + Sync),
) {
    for (d, addr) in drains.iter().zip(addrs) {
        let Some(addr) = addr else {
            unresolved(engine, d, balancers, say).await;
            continue;
        };
        let cmd = probation_and_show_stat(&d.backend, &d.server, addr);
        let out = match engine.exec(&d.balancer_id, &d.balancer, &cmd).await {
            Ok(out) => out,
            Err(err) => {
                say(&format!("could not move {} on {}: {err}", d.server, d.balancer));
                continue;
            }
        };
        say(&format!("{} moves to {addr} on {}, on probation", d.server, d.balancer));
        lock(balancers).push(Rejoin { action, drain: d.clone(), addr: addr.clone(), awaited: false });
        if in_flight(&out.output, d) {
            say("waiting for the old container's requests in flight");
            await_idle(engine, d).await;
        }
    }
}

/// Waits (bounded by [`DRAIN_LIMIT`]) until the server has no requests in flight.
async fn await_idle<E: Engine>(engine: &E, d: &Drain) {
    let _ = poll(DRAIN_LIMIT, Duration::from_millis(100), async || {
        let busy = match engine.exec(&d.balancer_id, &d.balancer, &show_stat()).await {
            Ok(out) => in_flight(&out.output, d),
            Err(_) => false,
        };
        if busy { Err(()) } else { Ok(()) }
    })
    .await;
}

/// Each drain's replacement address as the load balancer reaches it ([`resolve`]), asked
/// while the replacement still runs under its temporary name, off the hand-over's path.
pub async fn resolve_all<E: Engine>(engine: &E, drains: &[Drain], new_id: &str) -> Vec<Option<String>> {
    futures_util::future::join_all(drains.iter().map(|d| resolve(engine, d, new_id))).await
}

fn lock(balancers: &Balancers) -> std::sync::MutexGuard<'_, Vec<Rejoin>> {
    balancers.rejoining.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Which servers on probation a wait is for.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Every one (the end of the run): their drain records are written.
    All,
    /// Those of one load balancer, except the ones `mates` (the caller's own batch, which
    /// goes on probation together) put there: before taking servers out of rotation.
    Others { balancer_id: &'a str, mates: &'a [ActionId] },
    /// Those one replacement put there, while its old container stops.
    Own(ActionId),
}

impl Scope<'_> {
    fn covers(&self, r: &Rejoin) -> bool {
        match self {
            Scope::All => true,
            Scope::Others { balancer_id, mates } => r.drain.balancer_id == *balancer_id && !mates.contains(&r.action),
            Scope::Own(action) => r.action == *action,
        }
    }
}

/// Waits (bounded) until the load balancer's checks pass against each server on probation
/// in `scope`, which puts it back into rotation, and clears its drain record. One still
/// failing at the limit is reported and left to HAProxy, which brings it in once its checks
/// pass. `say` gets each line with the action that put the server on probation.
pub async fn await_rejoined<E: Engine>(engine: &E, balancers: &Balancers, scope: Scope<'_>, say: SayFor<'_>) {
    // The servers in scope nobody waits for yet are this call's to ask HAProxy about; the
    // others, another call is asking about: those are waited for until they leave the list.
    let (mine, theirs): (Vec<Rejoin>, Vec<Rejoin>) = {
        let mut all = lock(balancers);
        let in_scope = all.iter_mut().filter(|r| scope.covers(r));
        in_scope.fold((Vec::new(), Vec::new()), |(mut mine, mut theirs), r| {
            if r.awaited {
                theirs.push(r.clone());
            } else {
                r.awaited = true;
                mine.push(r.clone());
            }
            (mine, theirs)
        })
    };
    futures_util::future::join_all(mine.iter().map(|r| rejoin(engine, r, say))).await;
    lock(balancers).retain(|r| !mine.iter().any(|m| m.is(r)));
    let gone = || (!lock(balancers).iter().any(|r| theirs.iter().any(|t| t.is(r)))).then_some(()).ok_or(());
    let _ = poll(REJOIN_LIMIT + RESOLVE_LIMIT, Duration::from_millis(50), async || gone()).await;
    let drains: Vec<Drain> = mine.into_iter().map(|r| r.drain).collect();
    if matches!(scope, Scope::All) {
        // Only records this run marked (and so cached) list these servers as draining.
        let marked: Vec<Drain> = {
            let records = balancers.records.lock().await;
            drains.into_iter().filter(|d| records.contains_key(&d.balancer_id)).collect()
        };
        mark_draining(engine, &marked, balancers, false).await;
        flush_records(engine, balancers).await;
    } else {
        // Between batches the record is cleared in memory only: the next batch's mark, or
        // the end of the run, writes it. A server listed as draining that is back already
        // costs an interrupted run's repair nothing ("ready" again).
        forget_draining(balancers, &drains).await;
    }
}

/// [`await_rejoined`] for one server.
async fn rejoin<E: Engine>(engine: &E, r: &Rejoin, say: SayFor<'_>) {
    let (d, addr, say) = (&r.drain, &r.addr, |line: &str| say(r.action, line));
    say(&format!("waiting for {}'s checks to pass against {addr}", d.balancer));
    let passed = poll(REJOIN_LIMIT, Duration::from_millis(100), async || {
        let state = match engine.exec(&d.balancer_id, &d.balancer, &show_servers_state(&d.backend)).await {
            Ok(out) => parse_servers_state(&out.output).into_iter().find(|s| s.server == d.server),
            Err(_) => None,
        };
        if state.is_some_and(|s| s.addr == *addr && s.running()) { Ok(()) } else { Err(()) }
    })
    .await;
    match passed {
        Ok(()) => say(&format!("{} back in rotation on {}", d.server, d.balancer)),
        // Ready already: HAProxy brings it in once its checks pass.
        Err(()) => say(&format!("{} still failing {}'s checks; going on without it", d.server, d.balancer)),
    }
}

/// The replacement's address on a network it shares with the load balancer, from the engine
/// ([`shared_address`]); failing that, as the load balancer's resolver (Docker's DNS) gives
/// it, by the container's short ID (an alias Docker gives every container on a user-defined
/// network): right after a rename, the name itself can still answer with the old
/// container's address for a moment. Retried briefly.
async fn resolve<E: Engine>(engine: &E, d: &Drain, new_id: &str) -> Option<String> {
    let short_id = &new_id[..new_id.len().min(12)];
    if let Some(addr) = shared_address(engine, d, new_id, short_id).await {
        return Some(addr);
    }
    let cmd = ["getent", "hosts", short_id].map(String::from);
    poll(RESOLVE_LIMIT, Duration::from_millis(200), async || {
        match engine.exec(&d.balancer_id, &d.balancer, &cmd).await {
            Ok(out) if out.exit_code == 0 => out.output.split_whitespace().next().map(str::to_string).ok_or(()),
            _ => Err(()),
        }
    })
    .await
    .ok()
}

/// The new container's address on a network it shares with the load balancer, from two
/// inspects at once: a fraction of the `exec` a DNS lookup inside the load balancer costs,
/// once per batch on a rolling update's critical path. `None` when the engine cannot say
/// or they share no network; the caller asks DNS then.
async fn shared_address<E: Engine>(engine: &E, d: &Drain, new_id: &str, short_id: &str) -> Option<String> {
    let (balancer, new) =
        futures_util::future::join(engine.addresses(&d.balancer_id, &d.balancer), engine.addresses(new_id, short_id))
            .await;
    let balancer = balancer.ok()?;
    new.ok()?.into_iter().find(|(network, _)| balancer.contains_key(network)).map(|(_, addr)| addr)
}

/// How long a replacement may take to answer under its name in Docker's DNS.
const RESOLVE_LIMIT: Duration = Duration::from_secs(5);

/// Writes generated files into a container (created or running); a pool record also goes to
/// its record volume ([`store_pool`]).
pub async fn write_files<E: Engine>(
    engine: &E,
    project: &str,
    id: &str,
    name: &str,
    files: &[FileSpec],
) -> Result<(), ActionFailure> {
    for f in files {
        let written = match f.path == POOL_PATH {
            true => store_pool(engine, project, id, name, f.contents.as_bytes()).await,
            false => engine.write_file(id, name, &f.path, f.contents.as_bytes()).await,
        };
        written.map_err(failure)?;
    }
    Ok(())
}

/// Writes a load balancer's pool record into the container (where an earlier scale reads it)
/// and replaces its record volume (where `observe_project` reads it, with the volume list:
/// no archive read). Between the volume's removal and its successor there is no record, and
/// a reader falls back to the file, which is already new.
async fn store_pool<E: Engine>(
    engine: &E,
    project: &str,
    id: &str,
    name: &str,
    json: &[u8],
) -> Result<(), EngineError> {
    engine.write_file(id, name, POOL_PATH, json).await?;
    // A start-first replacement writes it under its temporary name: the record is the name's.
    let balancer = name.strip_suffix(crate::plan::TEMP_SUFFIX).unwrap_or(name);
    let volume = record_volume(project, balancer, id, &String::from_utf8_lossy(json));
    engine.remove_volume(&volume.name).await?;
    engine.create_volume(&volume).await
}

/// Writes a new configuration, checks it with HAProxy itself, and reloads (SIGUSR2 to the
/// master: a new worker takes over the listening sockets, the old one finishes its requests).
pub async fn reload<E: Engine>(
    engine: &E,
    id: &str,
    name: &str,
    files: &[FileSpec],
    balancers: &Balancers,
    say: &(dyn Fn(&str) + Sync),
) -> Result<(), ActionFailure> {
    // The pool record is written last: if the reload is interrupted, the next plan still
    // sees the old pool and reloads again.
    let (record, config): (Vec<FileSpec>, Vec<FileSpec>) = files.iter().cloned().partition(|f| f.path == POOL_PATH);
    write_files(engine, &balancers.project, id, name, &config).await?;
    let check = ["haproxy", "-c", "-f", CONFIG_PATH].map(String::from);
    let out = engine.exec(id, name, &check).await.map_err(failure)?;
    if out.exit_code != 0 {
        return Err(ActionFailure {
            message: format!("{name}: the generated configuration does not load"),
            hint: Some("this is a bug in scale; the running configuration was kept".into()),
            logs: out.output.lines().map(str::to_string).collect(),
            output: Vec::new(),
        });
    }
    engine.signal(id, name, RELOAD_SIGNAL).await.map_err(failure)?;
    {
        // Under the records lock, so no drain mark writes the pool this replaces.
        let mut records = balancers.records.lock().await;
        records.remove(id);
        write_files(engine, &balancers.project, id, name, &record).await?;
    }
    say("reloaded");
    if let Some(pool) = pool_of(files) {
        await_pool_up(engine, id, name, &pool, say).await;
    }
    Ok(())
}

/// How long a load balancer's servers may take to resolve and pass their first checks.
const POOL_UP_LIMIT: Duration = Duration::from_secs(20);

/// The pool record among a load balancer's generated files.
pub fn pool_of(files: &[FileSpec]) -> Option<Pool> {
    files.iter().find(|f| f.path == POOL_PATH).and_then(|f| serde_json::from_str(&f.contents).ok())
}

/// Waits (bounded) until HAProxy reports every server of `pool` UP, so that an apply that
/// created or reloaded a load balancer returns once traffic is balanced over all of them: a
/// freshly renamed backend can take a moment to resolve in Docker's DNS, and HAProxy holds a
/// server it cannot resolve in maintenance until it can. A server still not UP at the limit
/// is reported, not failed: `scale status` shows the pool.
pub async fn await_pool_up<E: Engine>(engine: &E, id: &str, name: &str, pool: &Pool, say: &(dyn Fn(&str) + Sync)) {
    if pool.servers.is_empty() {
        return;
    }
    say(&format!("waiting until {name} has {} UP", pool.servers.join(", ")));
    let all_up = poll(POOL_UP_LIMIT, Duration::from_millis(200), async || {
        let states = match engine.exec(id, name, &show_stat()).await {
            // Not HAProxy's runtime API (an image of the user's own, answering something
            // else): nothing to wait on. An empty answer says nothing, so the wait goes on.
            Ok(out) if out.exit_code == 0 && !out.output.trim().is_empty() && !out.output.starts_with("# pxname") => {
                return Ok(());
            }
            Ok(out) => parse_stat(&out.output, &pool.backend),
            Err(_) => Vec::new(),
        };
        let not_up: Vec<String> = pool
            .servers
            .iter()
            .filter_map(|server| match states.iter().find(|s| s.server == *server) {
                Some(s) if s.status == "UP" || s.status == "no check" => None,
                Some(s) => Some(format!("{server} {}", s.status)),
                None => Some(format!("{server} not in the running configuration yet")),
            })
            .collect();
        if not_up.is_empty() { Ok(()) } else { Err(not_up) }
    })
    .await;
    if let Err(not_up) = all_up {
        say(&format!("not all of {name}'s servers are UP yet: {}; see `scale status`", not_up.join(", ")));
    }
}
