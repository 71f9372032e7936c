//! What one observed container needs, checked against its desired spec: replacement,
//! reload, drains, slot release, start. Pure functions the planner's steps share.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::{DEFAULT_STOP_GRACE_SECS, Drain, FileSpec, SlotRelease, TEMP_SUFFIX, reason};
use crate::observed::{ObservedContainer, ObservedState, RunState};
use crate::spec::{AttachmentSpec, ContainerSpec, DesiredState, Readiness};

/// Whether an existing container must give way to a new one built from `spec`.
/// A replica a failover promoted in place differs from its primary spec only in role: no.
pub(super) fn needs_replacement(seen: &ObservedContainer, spec: &ContainerSpec, hashes: &SpecHashes) -> bool {
    let changed = seen.spec_hash() != Some(hashes.of(spec).as_ref())
        && !(spec.kind == Some(crate::model::Kind::Postgres)
            && seen.spec().is_some_and(|old| crate::kinds::postgres::promoted_in_place(&old, spec)));
    changed || seen.state == RunState::Dead
}

/// Each desired container's spec hash, computed once per plan: serialising and hashing the
/// specs is most of what planning a large project costs, and several checks need the hash.
pub(super) struct SpecHashes<'d>(HashMap<&'d str, String>);

impl<'d> SpecHashes<'d> {
    pub(super) fn new(desired: &'d DesiredState) -> Self {
        SpecHashes(desired.containers.iter().map(|(name, spec)| (name.as_str(), spec.hash())).collect())
    }

    pub(super) fn of(&self, spec: &ContainerSpec) -> Cow<'_, str> {
        match self.0.get(spec.name.as_str()) {
            Some(hash) => Cow::Borrowed(hash),
            None => Cow::Owned(spec.hash()),
        }
    }
}

/// Why an existing container is replaced, in a user's words.
pub(super) fn replacement_reason(seen: &ObservedContainer, spec: &ContainerSpec) -> String {
    match (seen.state, seen.spec()) {
        (RunState::Dead, _) => "dead".to_string(),
        (_, Some(old)) => reason::container_changes(&old, spec).join("; "),
        (_, None) => "created by an older scale or by hand (no stored spec)".to_string(),
    }
}

/// A host port that `c`, due for replacement, holds and another desired container claims.
pub(super) fn hands_over<'d>(
    c: &ObservedContainer,
    desired: &DesiredState,
    claims: &BTreeMap<u16, &'d str>,
    hashes: &SpecHashes,
) -> Option<(u16, &'d str)> {
    let spec = desired.containers.get(&c.name)?;
    if !needs_replacement(c, spec, hashes) {
        return None;
    }
    held_ports(c).into_iter().find_map(|port| claims.get(&port).filter(|to| **to != c.name).map(|to| (port, *to)))
}

/// The final name of a replacement whose old container is already gone, when the leftover is
/// exactly what is desired there (so finishing is renaming it).
pub(super) fn finishable_leftover<'a>(
    c: &'a ObservedContainer,
    desired: &DesiredState,
    observed: &ObservedState,
    hashes: &SpecHashes,
) -> Option<&'a str> {
    let real = c.name.strip_suffix(TEMP_SUFFIX)?;
    let spec = desired.containers.get(real)?;
    let intact = c.state != RunState::Dead && c.state != RunState::Removing;
    (intact && !observed.containers.contains_key(real) && c.spec_hash() == Some(hashes.of(spec).as_ref()))
        .then_some(real)
}

/// Whether the new container may run beside the old one for a moment: not when either holds
/// a fixed host port (it would not start) or the new one writes to a volume or host path
/// (two processes on one database directory would corrupt it), anonymous volumes included,
/// since they carry over to the replacement.
pub(super) fn can_start_first(seen: &ObservedContainer, spec: &ContainerSpec) -> bool {
    let old_fixed = seen.spec().is_none_or(|old| old.ports.iter().any(|p| p.host_port.is_some()));
    let fixed_port = old_fixed || spec.ports.iter().any(|p| p.host_port.is_some());
    // Anonymous volumes carry over to the replacement (as in Compose): shared data too.
    let writes_shared = spec.mounts.iter().any(|m| !m.read_only);
    !fixed_port && !writes_shared
}

/// The generated files a container gets at creation (a load balancer's configuration).
pub(super) fn files_for(name: &str, desired: &DesiredState) -> Vec<FileSpec> {
    desired
        .load_balancers
        .get(name)
        .map(|lb| {
            lb.files()
                .into_iter()
                .map(|(path, contents)| FileSpec { path, contents: String::from_utf8_lossy(&contents).into_owned() })
                .collect()
        })
        .unwrap_or_default()
}

/// Why a running, up-to-date load balancer needs its configuration rewritten, if it does.
pub(super) fn reload_needed(
    seen: &ObservedContainer,
    desired: &DesiredState,
    observed: &ObservedState,
) -> Option<String> {
    let want = desired.load_balancers.get(&seen.name)?;
    if seen.state != RunState::Running {
        return None;
    }
    match observed.load_balancers.get(&seen.name) {
        Some(have) if have.hash == want.pool.hash && !have.draining.is_empty() => Some(format!(
            "put {} back in rotation (an interrupted replacement left it drained)",
            have.draining.join(", ")
        )),
        Some(have) if have.hash == want.pool.hash => None,
        Some(have) => Some(crate::kinds::load_balancer::pool_change(have, &want.pool)),
        None => Some("configuration missing".into()),
    }
}

/// The running load balancers (staying in place) that route to `server`: drain it there first.
pub(super) fn drains_for(
    server: &str,
    observed: &ObservedState,
    desired: &DesiredState,
    hashes: &SpecHashes,
) -> Vec<Drain> {
    observed
        .load_balancers
        .iter()
        .filter(|(_, pool)| pool.servers.iter().any(|s| s == server))
        .filter_map(|(balancer, pool)| {
            let seen = observed.containers.get(balancer)?;
            let stays = desired.containers.get(balancer).is_some_and(|spec| !needs_replacement(seen, spec, hashes));
            (stays && seen.state == RunState::Running).then(|| Drain {
                balancer_id: seen.id.clone(),
                balancer: balancer.clone(),
                backend: pool.backend.clone(),
                server: server.to_string(),
            })
        })
        .collect()
}

/// The slot to give up when `c`, a replica of a `kind: postgres` service, leaves for good
/// (not replaced, not a leftover of a replacement) while its primary runs on.
pub(super) fn slot_release(
    c: &ObservedContainer,
    desired: &DesiredState,
    observed: &ObservedState,
    removed: &HashSet<&str>,
) -> Option<SlotRelease> {
    use crate::kinds::postgres;
    if c.kind() != Some(crate::model::Kind::Postgres)
        || c.name.ends_with(TEMP_SUFFIX)
        || desired.containers.contains_key(&c.name)
    {
        return None;
    }
    let (service, node) = (c.service()?, c.replica()?);
    let primary_node = observed.primaries().get(service).map_or(1, |(n, _)| *n);
    if node == primary_node {
        return None;
    }
    let primary = crate::spec::container_name(&desired.project, service, primary_node);
    let seen = observed.containers.get(&primary)?;
    (seen.state == RunState::Running && !removed.contains(primary.as_str())).then(|| SlotRelease {
        primary_id: seen.id.clone(),
        primary: primary.clone(),
        slot: postgres::slot_name(&desired.project, service, node),
    })
}

/// The desired networks a running container is not attached to (cut off by hand or chaos).
pub(super) fn missing_networks(seen: &ObservedContainer, spec: &ContainerSpec) -> Vec<AttachmentSpec> {
    spec.networks.iter().filter(|n| !seen.networks.contains(&n.network)).cloned().collect()
}

/// How long stopping this container may take, from the spec it was created with.
pub(super) fn stop_grace(c: &ObservedContainer) -> u64 {
    c.spec().and_then(|s| s.stop_grace_secs).unwrap_or(DEFAULT_STOP_GRACE_SECS)
}

/// Host ports a container holds now or is specified to hold.
pub(super) fn held_ports(c: &ObservedContainer) -> Vec<u16> {
    let mut ports: BTreeSet<u16> = c.ports.iter().map(|p| p.host_port).collect();
    if let Some(spec) = c.spec() {
        ports.extend(spec.ports.iter().filter_map(|p| p.host_port));
    }
    ports.into_iter().collect()
}

/// Why an up-to-date container still needs starting, if it does.
pub(super) fn start_reason(seen: &ObservedContainer, readiness: Readiness) -> Option<String> {
    match seen.state {
        RunState::Running | RunState::Restarting | RunState::Removing | RunState::Dead => None,
        RunState::Paused => Some("paused".into()),
        RunState::Exited if readiness == Readiness::Completed && seen.exit_code == Some(0) => None,
        RunState::Exited => Some(match seen.exit_code {
            Some(code) => format!("stopped (exited with code {code})"),
            None => "stopped".into(),
        }),
        RunState::Created => Some("created but never started".into()),
    }
}
