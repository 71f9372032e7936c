//! The step that makes an autoscaled service's replica count what the autoscaler chose (its
//! newest marker volume, clamped to the blueprint's min and max) instead of the policy's
//! `min`. `plan` runs it itself, like [`assign_primaries`](super::assign_primaries), so a
//! `scale apply` never undoes a scale-up the watch controller made.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::kinds::scaled::{ScaledMarker, read_marker};
use crate::kinds::{load_balancer::LoadBalancerSpec, numbered};
use crate::observed::ObservedState;
use crate::spec::{DesiredState, VolumeSpec, container_name};

/// The newest replica-count marker of each service.
pub fn scaled_markers(observed: &ObservedState) -> BTreeMap<String, ScaledMarker> {
    let mut out: BTreeMap<String, ScaledMarker> = BTreeMap::new();
    for v in observed.volumes.values() {
        let Some(marker) = read_marker(&v.name, &v.labels) else { continue };
        if out.get(&marker.service).is_none_or(|m| marker.since >= m.since) {
            out.insert(marker.service.clone(), marker);
        }
    }
    out
}

/// The desired state with each autoscaled service at its marker's count (borrowed when no
/// marker changes anything), and the current markers kept.
pub fn assign_replicas<'d>(desired: &'d DesiredState, observed: &ObservedState) -> Cow<'d, DesiredState> {
    let mut out = Cow::Borrowed(desired);
    for (service, marker) in scaled_markers(observed) {
        let Some(policy) = desired.services.iter().find(|s| s.name == service).and_then(|s| s.autoscale.as_ref())
        else {
            continue;
        };
        let count = marker.count.clamp(policy.min, policy.max);
        let d = out.to_mut();
        if let Some(v) = observed.volumes.get(&marker.volume) {
            d.volumes.insert(v.name.clone(), VolumeSpec { name: v.name.clone(), labels: v.labels.clone() });
        }
        set_replicas(d, &service, count);
    }
    out
}

/// Says which autoscaled services run the autoscaler's count rather than `min`, so a plan
/// that keeps (or sets) more servers than the blueprint's number explains why.
pub fn scaled_notes(desired: &DesiredState, observed: &ObservedState) -> Vec<String> {
    let mut notes = Vec::new();
    for (service, marker) in scaled_markers(observed) {
        let Some(policy) = desired.services.iter().find(|s| s.name == service).and_then(|s| s.autoscale.as_ref())
        else {
            continue;
        };
        let count = marker.count.clamp(policy.min, policy.max);
        notes.push(format!(
            "{service} runs {count} replicas, as the autoscaler last chose (min {}, max {}; marker volume {})",
            policy.min, policy.max, marker.volume
        ));
    }
    notes
}

/// Makes `service` `count` containers (numbered copies of its first) and its load balancers'
/// pools follow.
pub fn set_replicas(desired: &mut DesiredState, service: &str, count: u32) {
    let Some(spec) = desired.services.iter_mut().find(|s| s.name == service) else { return };
    if spec.replicas == count {
        return;
    }
    spec.replicas = count;
    let Some(template) =
        desired.containers.values().filter(|c| c.service == service).min_by_key(|c| c.replica).cloned()
    else {
        return;
    };
    let project = desired.project.clone();
    desired.containers.retain(|_, c| c.service != service || c.replica <= count);
    for n in 1..=count {
        let name = container_name(&project, service, n);
        desired.containers.entry(name).or_insert_with(|| numbered(&project, service, n, &template));
    }
    let servers: Vec<String> = (1..=count).map(|n| container_name(&project, service, n)).collect();
    for lb in desired.load_balancers.values_mut().filter(|lb| lb.pool.backend == service) {
        *lb = LoadBalancerSpec::with_servers(lb, servers.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::assign_replicas;
    use crate::kinds::scaled::marker_volume;
    use crate::model::{Build, Env, load_bytes};
    use crate::observed::{ObservedState, ObservedVolume};

    const BLUEPRINT: &str = "name: shop\nservices:\n  lb:\n    kind: load-balancer\n    image: lb\n    \
        backends: { service: web, port: 8000 }\n  web:\n    image: web\n    \
        replicas: { min: 2, max: 4, target: 50 }\n";

    fn desired() -> crate::spec::DesiredState {
        let bp = load_bytes(Path::new("t.yaml"), BLUEPRINT.as_bytes(), &Env::default()).expect("loads");
        let hasher = |_: &Build| Ok::<String, crate::diag::Diagnostic>("0".repeat(20));
        crate::desired::desired_state(&bp, "shop", &hasher).expect("expands")
    }

    fn markers(counts: &[(u32, u64)]) -> ObservedState {
        let volumes = counts
            .iter()
            .map(|&(count, since)| {
                let v = marker_volume("shop", "web", count, since);
                (v.name.clone(), ObservedVolume { name: v.name, labels: v.labels })
            })
            .collect::<BTreeMap<_, _>>();
        ObservedState { volumes, ..Default::default() }
    }

    fn web(d: &crate::spec::DesiredState) -> Vec<String> {
        d.containers.values().filter(|c| c.service == "web").map(|c| c.name.clone()).collect()
    }

    #[test]
    fn without_a_marker_an_autoscaled_service_runs_min() {
        let d = desired();
        assert_eq!(web(&assign_replicas(&d, &ObservedState::default())), ["shop-web-1", "shop-web-2"]);
    }

    #[test]
    fn the_newest_marker_sets_the_count_and_the_pool_follows() {
        let d = desired();
        let assigned = assign_replicas(&d, &markers(&[(4, 20), (3, 10)]));
        assert_eq!(web(&assigned), ["shop-web-1", "shop-web-2", "shop-web-3", "shop-web-4"]);
        assert_eq!(assigned.load_balancers["shop-lb-1"].pool.servers.len(), 4);
        assert!(assigned.load_balancers["shop-lb-1"].config.contains("shop-web-4"));
        assert!(assigned.volumes.contains_key("shop_web-replicas-20-4"), "the marker is kept");
        assert_eq!(assigned.services.iter().find(|s| s.name == "web").map(|s| s.replicas), Some(4));
    }

    #[test]
    fn a_marker_outside_the_blueprints_bounds_is_clamped() {
        let d = desired();
        assert_eq!(web(&assign_replicas(&d, &markers(&[(9, 1)]))).len(), 4);
        assert_eq!(web(&assign_replicas(&d, &markers(&[(1, 1)]))).len(), 2);
    }

    #[test]
    fn plan_scales_up_from_the_marker_itself() {
        let p = crate::plan::plan(&desired(), &markers(&[(3, 5)])).expect("plans");
        let created: Vec<&str> =
            p.actions.iter().filter_map(|a| a.op.container_spec()).map(|c| c.name.as_str()).collect();
        assert!(created.contains(&"shop-web-3"), "{created:?}");
        assert!(
            p.notes.iter().any(|n| n.starts_with("web runs 3 replicas, as the autoscaler last chose")),
            "{:?}",
            p.notes
        );
    }
}
