//! `kind: load-balancer`: HAProxy in front of every replica of `backends.service`.
//!
//! scale renders the configuration from the desired backends and delivers it as a file: at
//! creation (before the first start) and, when the pool changes, into the running container
//! followed by SIGUSR2, which makes HAProxy's master start a new worker on the same sockets —
//! a reload without dropped connections. The pool is not part of the container's spec hash,
//! so scaling the web tier never recreates the load balancer. Active health checks (every
//! 500 ms while a server is up, every 100 ms while it is down or changing state; 2 failures)
//! take a dead backend out within ~0.6 s; `rise 2` lets it back once healthy, 0.1–0.6 s
//! after its probation began (the next check, then one 100 ms later), which is what a
//! rolling replacement waits for once per batch. HAProxy has no command to check a server
//! now, so the interval while up bounds that wait; two checks a second per server cost
//! next to nothing.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::labels::{POOL_OF_LABEL, POOL_RECORD_LABEL};
pub use crate::spec::{LoadBalancerSpec, Pool};
use crate::spec::{VolumeSpec, hex};

/// Where the image reads its configuration.
pub const CONFIG_PATH: &str = "/usr/local/etc/haproxy/haproxy.cfg";
/// What scale wrote last (pool and hash), read back to plan reloads.
pub const POOL_PATH: &str = "/usr/local/etc/haproxy/scale-pool.json";
/// HAProxy's runtime API (drain, ready, show stat).
pub const ADMIN_SOCKET: &str = "/run/haproxy/admin.sock";
/// The signal that reloads HAProxy in master-worker mode.
pub const RELOAD_SIGNAL: &str = "SIGUSR2";

impl LoadBalancerSpec {
    /// Renders the configuration for `servers` (container names) on `port`, listening on
    /// `listen` (the container ports the blueprint publishes; 80 when none).
    pub fn new(container: &str, backend: &str, port: u16, servers: Vec<String>, listen: &[u16]) -> Self {
        let config = render(backend, port, &servers, listen);
        let hash = hex(&Sha256::digest(config.as_bytes()))[..16].to_string();
        LoadBalancerSpec {
            container: container.to_string(),
            pool: Pool { hash, backend: backend.to_string(), servers, draining: Vec::new() },
            config,
            port,
            listen: listen.to_vec(),
        }
    }

    /// The same load balancer in front of another set of servers (an autoscaled pool).
    pub fn with_servers(&self, servers: Vec<String>) -> Self {
        LoadBalancerSpec::new(&self.container, &self.pool.backend, self.port, servers, &self.listen)
    }

    /// The files to write into the container: the configuration and the pool record.
    pub fn files(&self) -> Vec<(String, Vec<u8>)> {
        let pool = serde_json::to_vec(&self.pool).expect("a pool always serializes");
        vec![(CONFIG_PATH.to_string(), self.config.clone().into_bytes()), (POOL_PATH.to_string(), pool)]
    }
}

/// The volume that holds a load balancer's pool record in its labels, one per load balancer
/// (by name). The record is also written into the container ([`POOL_PATH`]), but reading a
/// file out of a container is a tar archive the engine packs (50–60 ms on Docker 20.10, the
/// larger part of a no-op apply), while the volume comes with the project's volume list.
/// Volume labels cannot change, so a new record replaces the volume.
pub fn record_volume(project: &str, balancer: &str, container_id: &str, pool_json: &str) -> VolumeSpec {
    VolumeSpec {
        name: record_volume_name(project, balancer),
        labels: std::collections::BTreeMap::from([
            (crate::labels::PROJECT.to_string(), project.to_string()),
            (POOL_OF_LABEL.to_string(), container_id.to_string()),
            (POOL_RECORD_LABEL.to_string(), pool_json.to_string()),
        ]),
    }
}

/// The name of a load balancer's record volume (`shop_shop-lb-1.pool`).
pub fn record_volume_name(project: &str, balancer: &str) -> String {
    crate::spec::scoped_name(project, &format!("{balancer}.pool"))
}

/// What changed between the pool a load balancer has and the one it should have.
pub fn pool_change(old: &Pool, new: &Pool) -> String {
    let added: Vec<&String> = new.servers.iter().filter(|s| !old.servers.contains(s)).collect();
    let removed: Vec<&String> = old.servers.iter().filter(|s| !new.servers.contains(s)).collect();
    let mut parts = Vec::new();
    if !added.is_empty() {
        parts.push(format!("add {}", added.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")));
    }
    if !removed.is_empty() {
        parts.push(format!("drain and drop {}", removed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")));
    }
    if parts.is_empty() { "configuration changed".into() } else { format!("pool changed: {}", parts.join("; ")) }
}

/// The runtime-API command that takes a server out of rotation or puts it back.
pub fn set_server_state(backend: &str, server: &str, state: &str) -> Vec<String> {
    runtime_command(&[format!("set server {backend}/{server} state {state}")])
}

/// Takes a server out of rotation (requests in flight go on) and lists every server's
/// sessions in the same connection, so a drain that finds nothing in flight costs one exec.
pub fn drain_and_show_stat(backend: &str, server: &str) -> Vec<String> {
    runtime_command(&[format!("set server {backend}/{server} state drain"), "show stat".into()])
}

/// Runs runtime-API commands in one connection (HAProxy takes `;` between commands), so
/// no request can arrive between them.
pub fn runtime_command(commands: &[String]) -> Vec<String> {
    vec!["sh".into(), "-c".into(), format!("echo '{}' | socat stdio unix-connect:{ADMIN_SOCKET}", commands.join("; "))]
}

/// The commands that bring a drained server back on probation: at `addr` (its replacement's
/// address), health reset to down, then ready, so HAProxy itself brings it into rotation
/// after `rise` passed checks against the new address, with no further call. The order
/// keeps every step out of rotation: leaving maintenance alone would count the server UP
/// at once (HAProxy restores full health), so it goes through drain (no new requests)
/// first, and is ready only once its health is down.
pub fn rejoin_on_probation(backend: &str, server: &str, addr: &str) -> Vec<String> {
    runtime_command(&probation_commands(backend, server, addr))
}

fn probation_commands(backend: &str, server: &str, addr: &str) -> Vec<String> {
    let target = format!("{backend}/{server}");
    vec![
        format!("set server {target} addr {addr}"),
        format!("set server {target} state drain"),
        format!("set server {target} health down"),
        format!("set server {target} state ready"),
    ]
}

/// [`rejoin_on_probation`] followed by `show stat` in the same connection: a start-first
/// replacement moves its server to the new address in one call and learns whether the old
/// container still has requests in flight.
pub fn probation_and_show_stat(backend: &str, server: &str, addr: &str) -> Vec<String> {
    let mut commands = probation_commands(backend, server, addr);
    commands.push("show stat".into());
    runtime_command(&commands)
}

/// The runtime-API command that lists each server's address and operational state.
pub fn show_servers_state(backend: &str) -> Vec<String> {
    runtime_command(&[format!("show servers state {backend}")])
}

/// A server as `show servers state` reports it: where it points and whether checks pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRuntime {
    pub server: String,
    pub addr: String,
    /// HAProxy's operational state: 0 stopped, 1 starting, 2 running, 3 stopping.
    pub op_state: u8,
}

impl ServerRuntime {
    /// Whether health checks currently pass.
    pub fn running(&self) -> bool {
        self.op_state == 2
    }
}

/// Parses `show servers state` (a version line, a `#` header, space-separated rows).
pub fn parse_servers_state(text: &str) -> Vec<ServerRuntime> {
    let Some(header) = text.lines().find(|l| l.starts_with("# ")) else { return Vec::new() };
    let columns: Vec<&str> = header.trim_start_matches("# ").split_whitespace().collect();
    let col = |name: &str| columns.iter().position(|c| *c == name);
    let (Some(name), Some(addr), Some(op)) = (col("srv_name"), col("srv_addr"), col("srv_op_state")) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > name.max(addr).max(op))
        .map(|f| ServerRuntime {
            server: f[name].to_string(),
            addr: f[addr].to_string(),
            op_state: f[op].parse().unwrap_or(0),
        })
        .collect()
}

/// The runtime-API command that lists every server with its state, as CSV.
pub fn show_stat() -> Vec<String> {
    vec!["sh".into(), "-c".into(), format!("echo 'show stat' | socat stdio unix-connect:{ADMIN_SOCKET}")]
}

/// One backend server as HAProxy reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerState {
    pub server: String,
    /// `UP`, `DOWN`, `MAINT`, `DRAIN`, `no check` …
    pub status: String,
    pub current_sessions: u64,
    pub total_sessions: u64,
}

/// Parses `show stat` CSV into the servers of `backend`.
pub fn parse_stat(csv: &str, backend: &str) -> Vec<ServerState> {
    let mut lines = csv.lines();
    let Some(header) = lines.next() else { return Vec::new() };
    let columns: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    let col = |name: &str| columns.iter().position(|c| *c == name);
    let (Some(px), Some(sv), Some(status), Some(scur), Some(stot)) =
        (col("pxname"), col("svname"), col("status"), col("scur"), col("stot"))
    else {
        return Vec::new();
    };
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f.get(px) == Some(&backend) && !matches!(f.get(sv), Some(&"BACKEND") | Some(&"FRONTEND") | None))
        .map(|f| ServerState {
            server: f[sv].to_string(),
            status: f.get(status).unwrap_or(&"").to_string(),
            current_sessions: f.get(scur).and_then(|v| v.parse().ok()).unwrap_or(0),
            total_sessions: f.get(stot).and_then(|v| v.parse().ok()).unwrap_or(0),
        })
        .collect()
}

/// How many task addresses a load balancer on an orchestrator target takes from DNS at most.
pub const TEMPLATE_SLOTS: u32 = 16;

/// The configuration of a load balancer on an orchestrator target (Swarm): the same HAProxy
/// settings, but the pool is every address DNS gives for `tasks.<unit>` (one per running
/// task), re-resolved each second, so it follows the tasks as they start, move and stop
/// without a reload.
///
/// Two settings are looser than on one engine, for the orchestrator's DNS and a busy node: a
/// DNS answer that times out or fails keeps the servers already known (`hold … 30s`; an
/// address gone from a good answer still leaves within 5 s), and a health check may take 5 s.
pub fn task_pool_config(unit: &str, port: u16, listen: &[u16]) -> String {
    let mut config = render(unit, port, &[], listen);
    for (from, to) in [
        ("hold other 1s\n", "hold other 30s\n"),
        ("hold refused 1s\n", "hold refused 30s\n"),
        ("hold timeout 1s\n", "hold timeout 30s\n"),
        ("hold obsolete 1s\n", "hold obsolete 5s\n"),
        ("timeout server 10s\n", "timeout server 10s\ntimeout check 5s\n"),
    ] {
        config = config.replace(from, to);
    }
    config.push_str(&format!("    server-template task 1-{TEMPLATE_SLOTS} tasks.{unit}:{port}\n"));
    config
}

/// HAProxy's default `option httplog` format, which the request id is appended to.
const HTTPLOG: &str =
    "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r";

/// Everything before the frontend's binds: global settings, defaults, Docker's DNS, and the
/// exporter's frontend; the same for every load balancer.
const PREAMBLE: &str = "# Generated by scale from the blueprint; rewritten and reloaded whenever the pool changes.\n\
global\n\
    log stdout format raw local0\n\
    # stage 10: with SCALE_SYSLOG (host:port) in its environment, the load balancer also sends\n\
    # every request line to that syslog server (the central log); resolved when (re)loaded\n\
.if defined(SCALE_SYSLOG)\n\
    log \"${SCALE_SYSLOG}\" len 4096 local0\n\
    log-send-hostname\n\
.endif\n\
    user haproxy\n\
    group haproxy\n\
    stats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners\n\
    stats timeout 30s\n\
    hard-stop-after 30s\n\
    h1-case-adjust content-type Content-Type\n\
    h1-case-adjust content-length Content-Length\n\
    h1-case-adjust server Server\n\
    h1-case-adjust date Date\n\
    h1-case-adjust connection Connection\n\
    h1-case-adjust x-served-by X-Served-By\n\
    h1-case-adjust x-app-version X-App-Version\n\
    h1-case-adjust x-db-node X-Db-Node\n\
    h1-case-adjust x-db-role X-Db-Role\n\
    h1-case-adjust x-cache X-Cache\n\
    h1-case-adjust cache-control Cache-Control\n\
    h1-case-adjust location Location\n\
    h1-case-adjust x-request-id X-Request-Id\n\
    h1-case-adjust x-worker X-Worker\n\
    h1-case-adjust x-job-status X-Job-Status\n\
\n\
defaults\n\
    mode http\n\
    log global\n\
    option httplog\n\
    option dontlognull\n\
    # a request whose server fails is retried once more on another server\n\
    option redispatch 1\n\
    retries 3\n\
    retry-on conn-failure empty-response response-timeout 502 503 504\n\
    timeout connect 2s\n\
    timeout client 30s\n\
    timeout server 10s\n\
    timeout http-request 10s\n\
    timeout http-keep-alive 5s\n\
    # a health check may take 2 s to answer (without this, the whole check must fit in\n\
    # `inter`, 500 ms, and a busy but healthy server would fail its checks)\n\
    timeout check 2s\n\
    http-error status 503 content-type application/json string '{\"error\":\"no healthy web server\"}'\n\
    http-error status 504 content-type application/json string '{\"error\":\"web server timed out\"}'\n\
    http-error status 502 content-type application/json string '{\"error\":\"bad answer from web server\"}'\n\
\n\
# Docker's embedded DNS: servers are container names, re-resolved while running.\n\
resolvers docker\n\
    nameserver dns 127.0.0.11:53\n\
    resolve_retries 3\n\
    timeout resolve 1s\n\
    timeout retry 1s\n\
    hold valid 1s\n\
    hold other 1s\n\
    hold refused 1s\n\
    hold nx 1s\n\
    hold timeout 1s\n\
    hold obsolete 1s\n\
    accepted_payload_size 8192\n\
\n\
# HAProxy's built-in Prometheus exporter, on the private network only (no port publishes it).\n\
frontend metrics\n\
    bind :8405\n\
    no log\n\
    http-request use-service prometheus-exporter if { path /metrics }\n\
\n\
frontend http\n";

fn render(backend: &str, port: u16, servers: &[String], listen: &[u16]) -> String {
    let mut binds: Vec<u16> = listen.to_vec();
    if binds.is_empty() {
        binds.push(80);
    }
    binds.sort_unstable();
    binds.dedup();
    let mut out = PREAMBLE.to_string();
    for port in binds {
        out.push_str(&format!("    bind :{port}\n"));
    }
    out.push_str(&format!(
        "    option h1-case-adjust-bogus-client\n\
    # a request id for every request: sent to the web server, answered and logged, so one\n\
    # request can be followed through the load balancer's and the web server's logs\n\
    unique-id-format %{{+X}}o%ci%cp%fp%Ts%rt%pid\n\
    unique-id-header X-Request-Id\n\
    http-response set-header X-Request-Id %[unique-id]\n\
    log-format \"{HTTPLOG} rid=%ID\"\n\
    default_backend {backend}\n\n\
backend {backend}\n\
    balance roundrobin\n\
    option httpchk GET /healthz\n\
    http-check expect status 200\n\
    default-server check inter 500ms fastinter 100ms downinter 100ms fall 2 rise 2 resolvers docker init-addr last,libc,none\n"
    ));
    for server in servers {
        out.push_str(&format!("    server {server} {server}:{port}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lists_every_server_and_hash_follows_the_pool() {
        let a = LoadBalancerSpec::new("shop-lb-1", "web", 8000, vec!["shop-web-1".into(), "shop-web-2".into()], &[80]);
        assert!(a.config.contains("    server shop-web-1 shop-web-1:8000\n"));
        assert!(a.config.contains("    server shop-web-2 shop-web-2:8000\n"));
        assert!(a.config.contains("backend web\n"));
        let b = LoadBalancerSpec::new("shop-lb-1", "web", 8000, vec!["shop-web-1".into()], &[80]);
        assert_ne!(a.pool.hash, b.pool.hash);
        assert_eq!(pool_change(&a.pool, &b.pool), "pool changed: drain and drop shop-web-2");
        assert_eq!(pool_change(&b.pool, &a.pool), "pool changed: add shop-web-2");
    }

    #[test]
    fn every_request_gets_an_id_and_the_exporter_listens_privately() {
        let c = LoadBalancerSpec::new("shop-lb-1", "web", 8000, vec!["shop-web-1".into()], &[80]).config;
        // the id is made, sent to the web server, answered and logged (stage 10's central log)
        let http = c.split("\nfrontend http\n").nth(1).expect("the http frontend");
        for line in [
            "unique-id-format %{+X}o%ci%cp%fp%Ts%rt%pid\n",
            "unique-id-header X-Request-Id\n",
            "http-response set-header X-Request-Id %[unique-id]\n",
        ] {
            assert!(http.contains(line), "missing {line:?} in\n{c}");
        }
        assert!(http.contains(&format!("\nlog-format \"{HTTPLOG} rid=%ID\"\n")), "{c}");
        // HAProxy's exporter on :8405, a frontend of its own (not counted in the web backend)
        let metrics = c.split("\nfrontend metrics\n").nth(1).expect("a metrics frontend");
        assert!(metrics.starts_with("bind :8405\n"), "{metrics}");
        assert!(metrics.contains("use-service prometheus-exporter if { path /metrics }"), "{metrics}");
        // the syslog target only when the container's environment names one
        let global = c.split("\ndefaults\n").next().expect("a global section");
        assert!(global.contains("\n.if defined(SCALE_SYSLOG)\nlog \"${SCALE_SYSLOG}\" len 4096 local0\n"), "{global}");
        assert!(global.contains("\nlog stdout format raw local0\n"), "{global}");
    }

    #[test]
    fn servers_state_is_parsed_by_column_name() {
        let text = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight\n\
3 web 1 shop-web-1 172.18.0.5 2 0 1\n\
3 web 2 shop-web-2 172.18.0.9 0 8 1\n";
        let servers = parse_servers_state(text);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].server, "shop-web-1");
        assert_eq!(servers[0].addr, "172.18.0.5");
        assert!(servers[0].running());
        assert_eq!(servers[1].addr, "172.18.0.9");
        assert!(!servers[1].running());
        assert!(parse_servers_state("Unknown command").is_empty());
    }

    #[test]
    fn probation_is_one_runtime_call_in_order() {
        let cmd = rejoin_on_probation("web", "shop-web-1", "10.0.0.7");
        assert_eq!(
            cmd[2],
            "echo 'set server web/shop-web-1 addr 10.0.0.7; set server web/shop-web-1 state drain; \
set server web/shop-web-1 health down; set server web/shop-web-1 state ready' | socat stdio unix-connect:/run/haproxy/admin.sock"
        );
    }

    #[test]
    fn stat_csv_is_parsed_per_backend() {
        let csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status\n\
http,FRONTEND,,,1,1,,5,0,0,0,0,0,,,,,OPEN\n\
web,shop-web-1,0,0,0,1,,3,0,0,,0,,0,0,0,0,UP\n\
web,shop-web-2,0,0,1,1,,2,0,0,,0,,0,0,0,0,MAINT\n\
web,BACKEND,0,0,1,1,,5,0,0,0,0,,0,0,0,0,UP\n";
        let servers = parse_stat(csv, "web");
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].server, "shop-web-1");
        assert_eq!(servers[0].status, "UP");
        assert_eq!(servers[1].status, "MAINT");
        assert_eq!(servers[1].current_sessions, 1);
    }
}
