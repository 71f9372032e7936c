//! What happened between two refreshes of the page, in a learner's words: a container went
//! down or came back (a chaos kill, then the repair), a replica became the primary (a
//! failover), a load balancer took a server out of its pool or put it back. The engine's own
//! event stream says *that* something happened to a container; comparing two snapshots says
//! what it means for the design, so both go into the page's event list.

use serde::Serialize;

use super::{ContainerRow, PageModel};
use crate::topology::{LiveState, Role};

/// What kind of thing happened (the page colours it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// Something stopped serving: a container down or gone, a server out of the pool.
    Down,
    /// Something came back.
    Up,
    /// A database node changed role (failover).
    Role,
    /// A container appeared.
    Added,
    /// What the engine itself reported (`shop-web-1: kill`).
    Engine,
}

/// One line of the page's event list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UiEvent {
    /// Milliseconds since the Unix epoch, when scale saw it.
    pub at_ms: u64,
    pub kind: EventKind,
    pub text: String,
}

/// What changed from `before` to `after`, in the order of `after`'s tables.
pub fn transitions(before: &PageModel, after: &PageModel) -> Vec<(EventKind, String)> {
    let mut out = Vec::new();
    for c in &after.containers {
        match before.containers.iter().find(|b| b.name == c.name) {
            Some(b) => container_change(b, c, &mut out),
            None if c.state != LiveState::Missing => out.push((EventKind::Added, format!("{} appeared", c.name))),
            None => {}
        }
    }
    for b in &before.containers {
        if !after.containers.iter().any(|c| c.name == b.name) {
            out.push((EventKind::Down, format!("{} was removed", b.name)));
        }
    }
    for pool in &after.pools {
        let Some(old) = before.pools.iter().find(|p| p.balancer == pool.balancer) else { continue };
        for s in &pool.servers {
            match old.servers.iter().find(|o| o.server == s.server) {
                Some(o) if o.up && !s.up => out.push((
                    EventKind::Down,
                    format!("{} took {} out of the pool ({})", pool.balancer, s.server, s.status),
                )),
                Some(o) if !o.up && s.up => out.push((
                    EventKind::Up,
                    format!("{} sends requests to {} again ({})", pool.balancer, s.server, s.status),
                )),
                None => out.push((EventKind::Added, format!("{} added {} to its pool", pool.balancer, s.server))),
                Some(_) => {}
            }
        }
    }
    out
}

fn container_change(b: &ContainerRow, c: &ContainerRow, out: &mut Vec<(EventKind, String)>) {
    let serving = |s: LiveState| s == LiveState::Up;
    if serving(b.state) && !serving(c.state) && c.state != LiveState::Starting {
        out.push((EventKind::Down, format!("{} is down: {}", c.name, c.health)));
    } else if !serving(b.state) && serving(c.state) {
        out.push((EventKind::Up, format!("{} is up: {}", c.name, c.health)));
    } else if b.state != LiveState::Starting && c.state == LiveState::Starting {
        out.push((EventKind::Up, format!("{} is starting", c.name)));
    }
    if b.role != c.role && matches!(c.role, Role::Primary | Role::Replica) {
        let word = if c.role == Role::Primary { "the primary" } else { "a replica" };
        out.push((EventKind::Role, format!("{} is now {word} (failover)", c.name)));
    }
}
