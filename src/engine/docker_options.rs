//! Compose's container options ([`ContainerOptions`]) on the engine's create request: the
//! `Config` fields (`User`, `WorkingDir`, `StopSignal` …) and the `HostConfig` ones
//! (capabilities, limits, tmpfs, DNS, logging …), as `docker compose up` sends them.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, DeviceMapping, EndpointIpamConfig, EndpointSettings, HostConfig, HostConfigLogConfig, Ipam,
    IpamConfig, MountBindOptions, MountVolumeOptions, ResourcesUlimits,
};

use crate::desired::{AttachmentSpec, MountSpec, NetworkSpec};
use crate::model::{ContainerOptions, NetworkMode};

fn some_vec(v: &[String]) -> Option<Vec<String>> {
    (!v.is_empty()).then(|| v.to_vec())
}

fn some_map(m: &BTreeMap<String, String>) -> Option<HashMap<String, String>> {
    (!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// `HOST[:CONTAINER[:PERMISSIONS]]` as the engine's device mapping.
fn device(text: &str) -> DeviceMapping {
    let mut parts = text.splitn(3, ':');
    let host = parts.next().unwrap_or_default().to_string();
    let container = parts.next().map_or_else(|| host.clone(), str::to_string);
    let permissions = parts.next().unwrap_or("rwm").to_string();
    DeviceMapping {
        path_on_host: Some(host),
        path_in_container: Some(container),
        cgroup_permissions: Some(permissions),
    }
}

/// The engine's `NetworkMode` for a mode (a `service:` one is already a container here).
pub fn network_mode(mode: &NetworkMode) -> String {
    match mode {
        NetworkMode::Host => "host".into(),
        NetworkMode::None => "none".into(),
        NetworkMode::Service(name) | NetworkMode::Container(name) => format!("container:{name}"),
    }
}

/// Puts the options on a create request (`Config` and `HostConfig`).
pub fn apply(body: &mut ContainerCreateBody, o: &ContainerOptions) {
    body.user = o.user.clone();
    body.working_dir = o.working_dir.clone();
    body.domainname = o.domainname.clone();
    body.stop_signal = o.stop_signal.clone();
    body.tty = o.tty.then_some(true);
    body.open_stdin = o.stdin_open.then_some(true);
    let host = body.host_config.get_or_insert_with(HostConfig::default);
    host.init = o.init;
    host.readonly_rootfs = o.read_only.then_some(true);
    host.privileged = o.privileged.then_some(true);
    host.cap_add = some_vec(&o.cap_add);
    host.cap_drop = some_vec(&o.cap_drop);
    host.sysctls = some_map(&o.sysctls);
    host.tmpfs = some_map(&o.tmpfs);
    host.storage_opt = some_map(&o.storage_opt);
    host.ulimits = (!o.ulimits.is_empty()).then(|| {
        o.ulimits
            .iter()
            .map(|(name, l)| ResourcesUlimits { name: Some(name.clone()), soft: Some(l.soft), hard: Some(l.hard) })
            .collect()
    });
    host.shm_size = o.shm_size;
    host.security_opt = some_vec(&o.security_opt);
    host.devices = (!o.devices.is_empty()).then(|| o.devices.iter().map(|d| device(d)).collect());
    host.extra_hosts = some_vec(&o.extra_hosts);
    host.dns = some_vec(&o.dns);
    host.dns_search = some_vec(&o.dns_search);
    host.dns_options = some_vec(&o.dns_opt);
    host.log_config =
        o.logging.as_ref().map(|l| HostConfigLogConfig { typ: l.driver.clone(), config: some_map(&l.options) });
    host.runtime = o.runtime.clone();
    host.memory = o.mem_limit;
    host.memory_reservation = o.mem_reservation;
    host.memory_swap = o.memswap_limit;
    host.nano_cpus = o.nano_cpus;
    host.cpu_shares = o.cpu_shares;
    host.cpuset_cpus = o.cpuset.clone();
    host.pids_limit = o.pids_limit;
    host.group_add = some_vec(&o.group_add);
    host.pid_mode = o.pid.clone();
    host.ipc_mode = o.ipc.clone();
    host.userns_mode = o.userns_mode.clone();
    host.cgroup_parent = o.cgroup_parent.clone();
    host.oom_score_adj = o.oom_score_adj;
    if let Some(mode) = &o.network_mode {
        host.network_mode = Some(network_mode(mode));
    }
}

/// A container's settings on one network: aliases, and a fixed address when one is asked for.
pub fn endpoint(attachment: &AttachmentSpec, mac_address: Option<&String>) -> EndpointSettings {
    let fixed = attachment.ipv4_address.is_some() || attachment.ipv6_address.is_some();
    EndpointSettings {
        aliases: Some(attachment.aliases.clone()),
        ipam_config: fixed.then(|| EndpointIpamConfig {
            ipv4_address: attachment.ipv4_address.clone(),
            ipv6_address: attachment.ipv6_address.clone(),
            ..Default::default()
        }),
        mac_address: mac_address.cloned(),
        ..Default::default()
    }
}

/// Bind propagation and `nocopy` of a mount.
pub fn mount_options(m: &MountSpec) -> (Option<MountBindOptions>, Option<MountVolumeOptions>) {
    let bind = m.propagation.as_ref().and_then(|p| {
        let propagation = serde_json::from_value(serde_json::Value::String(p.clone())).ok()?;
        Some(MountBindOptions { propagation: Some(propagation), ..Default::default() })
    });
    let volume = m.nocopy.then(|| MountVolumeOptions { no_copy: Some(true), ..Default::default() });
    (bind, volume)
}

/// A network's driver, its options and address pools.
pub fn network_settings(spec: &NetworkSpec) -> (String, Option<HashMap<String, String>>, Option<Ipam>) {
    let driver = spec.driver.clone().unwrap_or_else(|| "bridge".into());
    let ipam = (!spec.ipam.is_empty() || spec.ipam_driver.is_some()).then(|| Ipam {
        driver: spec.ipam_driver.clone(),
        config: Some(
            spec.ipam
                .iter()
                .map(|p| IpamConfig {
                    subnet: p.subnet.clone(),
                    ip_range: p.ip_range.clone(),
                    gateway: p.gateway.clone(),
                    auxiliary_addresses: None,
                })
                .collect(),
        ),
        options: None,
    });
    (driver, some_map(&spec.driver_opts), ipam)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Ulimit;

    #[test]
    fn options_land_where_compose_puts_them() {
        let o = ContainerOptions {
            user: Some("1000:1000".into()),
            working_dir: Some("/srv".into()),
            stop_signal: Some("SIGINT".into()),
            init: Some(true),
            read_only: true,
            cap_add: vec!["NET_ADMIN".into()],
            sysctls: BTreeMap::from([("net.core.somaxconn".into(), "1024".into())]),
            ulimits: BTreeMap::from([("nofile".into(), Ulimit { soft: 1024, hard: 2048 })]),
            tmpfs: BTreeMap::from([("/run".into(), "size=64k".into())]),
            extra_hosts: vec!["db:10.0.0.2".into()],
            devices: vec!["/dev/fuse".into()],
            nano_cpus: Some(500_000_000),
            network_mode: Some(NetworkMode::Container("p-db-1".into())),
            ..Default::default()
        };
        let mut body = ContainerCreateBody::default();
        apply(&mut body, &o);
        assert_eq!((body.user.as_deref(), body.working_dir.as_deref()), (Some("1000:1000"), Some("/srv")));
        assert_eq!(body.stop_signal.as_deref(), Some("SIGINT"));
        let host = body.host_config.unwrap();
        assert_eq!((host.init, host.readonly_rootfs), (Some(true), Some(true)));
        assert_eq!(host.cap_add, Some(vec!["NET_ADMIN".to_string()]));
        assert_eq!(host.sysctls.unwrap()["net.core.somaxconn"], "1024");
        let nofile = &host.ulimits.unwrap()[0];
        assert_eq!((nofile.name.as_deref(), nofile.soft, nofile.hard), (Some("nofile"), Some(1024), Some(2048)));
        assert_eq!(host.tmpfs.unwrap()["/run"], "size=64k");
        assert_eq!(host.extra_hosts, Some(vec!["db:10.0.0.2".to_string()]));
        assert_eq!(host.devices.unwrap()[0].path_in_container.as_deref(), Some("/dev/fuse"));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.network_mode.as_deref(), Some("container:p-db-1"));
    }

    #[test]
    fn no_options_change_nothing_in_the_request() {
        let mut body = ContainerCreateBody::default();
        apply(&mut body, &ContainerOptions::default());
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json, serde_json::json!({ "HostConfig": {} }));
    }
}
