//! Stage 8 (two data centres behind geo DNS) on a real engine, with the real stage files:
//! 07 → 08 → 07 in one project.
//!
//! - Geo routing: from inside the region containers (`docker exec`), `shop.example` is served
//!   by the region's own data centre (`X-Dc: a` in region a, `X-Dc: b` in region b), and the
//!   host's published port (`edge`, a client of geo DNS in region a) by dc-a.
//! - The replica in dc-b streams from the primary through the WAN link (its WAL receiver's
//!   sender is `wan-link`), and a write made in dc-b crosses it and is read in dc-a.
//! - Losing a data centre: a bounded request loop inside client-b runs while `scale chaos stop
//!   dc:dc-b` stops every container placed there. Every answer before is `200 b`; after the
//!   switch window (the DNS TTL plus a health-check interval; the first `200 a`) every answer
//!   is `200 a`: the counts are exact. Region a is untouched. `scale apply` brings dc-b back
//!   and region b home.
//! - Losing dc-a, where the primary is: a bounded loop inside client-a reads and writes while
//!   `scale chaos stop dc:dc-a` stops every container placed there (db-1, the primary, and
//!   db-3 with them), then `scale failover db` promotes db-2 in dc-b. After the switch window
//!   every read from region a, and from the host through `edge`, is `200 b`; once the
//!   failover is done a write succeeds on dc-b
//!   and every later one does too; every acknowledged write (before the loss and after it) is
//!   in the new primary: none lost. Timings are printed, not asserted.
//! - `scale apply` of stage 8 again repairs dc-a: db-2 stays the primary, db-1 (its old data
//!   set aside) and db-3 stream from it, region a goes home, and the host reads every write.
//! - Every user (counted in the primary) is still there, and readable, after 07 → 08 → 07.
//!
//! The stage files are copied with random public ports and absolute build contexts only.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{BuildGuard, DockerTest, Scale, docker, http, http_get, poll, project_containers, psql_ok};

const ENV: &[(&str, &str)] =
    &[("CACHE_TTL", "30"), ("ASSET_VERSION", "1"), ("APP_VERSION", "1"), ("WEB_MAX", "3"), ("WAN_DELAY_MS", "40")];

/// Requests in the loop that runs inside client-b across the loss of dc-b.
const LOOP_REQUESTS: usize = 120;

struct Walk {
    p: String,
    dir: tempfile::TempDir,
    started: Instant,
}

impl Walk {
    fn log(&self, what: &str) {
        eprintln!("[stage08 {:>6.1}s] {what}", self.started.elapsed().as_secs_f64());
    }

    fn file(&self, name: &str) -> String {
        common::stage_file(self.dir.path(), name)
    }

    /// Applies `name`; up to four more applies are allowed when one fails (said in the log): on
    /// an engine shared by several suites a 1 s healthcheck can time out while a container is
    /// fine, and apply is made to be run again. The plan afterwards must be empty.
    fn apply(&self, name: &str) {
        let file = self.file(name);
        let mut run = Scale::new(&["apply", "--yes", "-p", &self.p, &file]).envs(ENV).isolated().run();
        for _ in 0..4 {
            if run.code == Some(0) {
                break;
            }
            self.log(&format!("apply {name} failed; applying again:\n{}", run.all()));
            run = Scale::new(&["apply", "--yes", "-p", &self.p, &file]).envs(ENV).isolated().run();
        }
        run.success();
        self.log(&format!("apply {name}: {:.1}s", run.elapsed.as_secs_f64()));
        let plan = Scale::new(&["plan", "--detailed-exitcode", "-p", &self.p, &file]).envs(ENV).isolated().run();
        assert_eq!(plan.code, Some(0), "the plan of {name} is not empty:\n{}\n{}", plan.stdout, plan.stderr);
    }

    fn port(&self, name: &str, service: &str) -> u16 {
        let status =
            Scale::new(&["status", &self.file(name), "-p", &self.p, "--output", "json"]).envs(ENV).isolated().run();
        let status = status.success().json();
        let ports: BTreeSet<u64> = status["endpoints"]
            .as_array()
            .unwrap_or_else(|| panic!("no endpoints[] in {status:#}"))
            .iter()
            .filter(|e| e["service"] == service && e["protocol"] == "tcp")
            .filter_map(|e| e["host_port"].as_u64())
            .collect();
        assert_eq!(ports.len(), 1, "expected one public port of {service}: {status:#}");
        u16::try_from(*ports.first().expect("one port")).expect("a port number")
    }

    fn container(&self, service: &str, n: u32) -> String {
        format!("{}-{service}-{n}", self.p)
    }

    /// The database node that is the primary now (the one not in recovery): node 1 until the
    /// loss of dc-a, node 2 (promoted in dc-b) after it.
    fn primary(&self) -> String {
        let nodes: Vec<String> = (1..=3).map(|n| self.container("db", n)).collect();
        let primaries: Vec<&String> = nodes
            .iter()
            .filter(|c| common::psql(c, None, "SELECT pg_is_in_recovery()").is_ok_and(|r| r == "f"))
            .collect();
        assert_eq!(primaries.len(), 1, "exactly one primary among {nodes:?}: {primaries:?}");
        primaries[0].clone()
    }

    /// Rows in the users table, counted in the primary.
    fn users(&self) -> u64 {
        self.count(&format!("SELECT count(*) FROM users WHERE {NOT_LOOP}"))
    }

    /// The number a `SELECT count(*) …` in the primary's app database answers.
    fn count(&self, sql: &str) -> u64 {
        let count = psql_ok(&self.primary(), Some("app"), sql);
        count.parse().unwrap_or_else(|e| panic!("count {count:?}: {e}"))
    }

    /// One request from inside a region's client: (status, X-Dc, body).
    fn ask_in(
        &self,
        client: &str,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<(u16, String, String), String> {
        let url = format!("http://shop.example{path}");
        let mut args =
            vec!["exec", client, "curl", "-s", "-m", "20", "-X", method, "-w", "\n%{http_code} %header{x-dc}"];
        if let Some(body) = body {
            args.extend(["-H", "Content-Type: application/json", "-d", body]);
        }
        args.push(&url);
        let out = docker(&args)?;
        let (body, status) = out.rsplit_once('\n').unwrap_or(("", out.as_str()));
        let (code, dc) = status.split_once(' ').unwrap_or((status, ""));
        let code = code.trim().parse().map_err(|e| format!("{out:?}: {e}"))?;
        Ok((code, dc.trim().to_string(), body.to_string()))
    }

    /// Polls until `client` is answered 200 by data centre `dc` five times in a row. (On a
    /// loaded engine a data centre's healthchecks can time out, and then geo DNS rightly sends
    /// the region elsewhere for a while: the streak starts again.)
    fn served_by(&self, client: &str, dc: &str) {
        let client = self.container(client, 1);
        let mut streak = 0;
        poll(Duration::from_secs(120), &format!("{client} served by dc {dc} five times in a row"), || {
            match self.ask_in(&client, "GET", "/users/12", None)? {
                (200, got, _) if got == dc => streak += 1,
                other => {
                    streak = 0;
                    return Err(format!("{other:?}"));
                }
            }
            if streak >= 5 { Ok(()) } else { Err(format!("{streak} in a row")) }
        });
        self.log(&format!("{client}: served by dc {dc}"));
    }
}

impl Walk {
    /// Polls until the host (through `edge`, a client of geo DNS in region a) is answered 200
    /// by dc-a five times in a row, as [`Walk::served_by`] does for the regions' clients:
    /// right after an apply dc-a's new web servers may not pass their checks yet, and geo DNS
    /// rightly sends region a to dc-b meanwhile. Returns the last answer.
    fn host_served_by_a(&self, port: u16, path: &str) -> common::HttpResponse {
        let mut streak = 0;
        let answer = poll(Duration::from_secs(120), "the host served by dc a five times in a row", || {
            let r = http_get(port, path);
            if r.status != 200 || r.header("X-Dc") != Some("a") {
                streak = 0;
                return Err(format!("{r:?}"));
            }
            streak += 1;
            if streak >= 5 { Ok(r) } else { Err(format!("{streak} in a row")) }
        });
        self.log("the host: served by dc a");
        answer
    }
}

/// The shell loop run inside client-b: `LOOP_REQUESTS` requests, one line each
/// (`<unix time> <status> <X-Dc>`), then `done`, into /tmp/dc-loop.log.
fn client_loop_script() -> String {
    format!(
        "i=0; : > /tmp/dc-loop.log; while [ $i -lt {LOOP_REQUESTS} ]; do \
         r=$(curl -s -o /dev/null -m 3 -w '%{{http_code}} %header{{x-dc}}' http://shop.example/users/12); \
         echo \"$(date +%s.%N) $r\" >> /tmp/dc-loop.log; i=$((i+1)); sleep 0.2; done; echo done >> /tmp/dc-loop.log"
    )
}

/// The loop's lines so far (without `done`), and whether it finished.
fn loop_lines(client: &str) -> (Vec<(f64, String)>, bool) {
    let out = docker(&["exec", client, "cat", "/tmp/dc-loop.log"]).unwrap_or_default();
    let done = out.lines().any(|l| l == "done");
    let lines = out
        .lines()
        .filter(|l| *l != "done")
        .map(|l| {
            let (t, rest) = l.split_once(' ').unwrap_or((l, ""));
            (t.parse().unwrap_or_else(|e| panic!("loop line {l:?}: {e}")), rest.trim().to_string())
        })
        .collect();
    (lines, done)
}

/// Region b through the loss of dc-b: exact counts before, in and after the switch window.
fn lose_dc_b(w: &Walk) {
    let client = w.container("client-b", 1);
    docker(&["exec", "-d", &client, "sh", "-c", &client_loop_script()]).expect("the client loop starts");
    poll(Duration::from_secs(60), "20 loop requests before the chaos", || {
        let (lines, _) = loop_lines(&client);
        if lines.len() >= 20 { Ok(()) } else { Err(format!("{lines:?}")) }
    });
    let chaos_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    let chaos = Scale::new(&["chaos", "stop", "dc:dc-b", "-p", &w.p]).envs(&[]).isolated().run();
    let said = chaos.success().stdout.clone();
    w.log(&format!("chaos stop dc:dc-b:\n{said}"));
    let stopped: BTreeSet<String> = project_containers(&w.p)
        .into_iter()
        .filter(|(_, seen)| seen.state != "running")
        .map(|(name, _)| name.trim_start_matches(&format!("{}-", w.p)).to_string())
        .collect();
    let expected: BTreeSet<String> =
        ["lb-b-1", "web-b-1", "web-b-2", "cache-b-1", "sessions-b-1", "wan-link-1", "db-2"].map(String::from).into();
    assert_eq!(stopped, expected, "dc:dc-b is every container placed in dc-b, and nothing else");

    let (lines, _) = poll(Duration::from_secs(120), "the client loop to finish", || {
        let (lines, done) = loop_lines(&client);
        if done { Ok((lines, done)) } else { Err(format!("{} lines so far", lines.len())) }
    });
    assert_eq!(lines.len(), LOOP_REQUESTS, "every request of the loop is recorded");
    let before: Vec<&(f64, String)> = lines.iter().filter(|(t, _)| *t < chaos_at).collect();
    assert!(before.len() >= 20, "{before:?}");
    assert!(before.iter().all(|(_, r)| r == "200 b"), "before the loss, region b is served by dc-b: {before:?}");
    let switch = lines.iter().position(|(t, r)| *t >= chaos_at && r == "200 a");
    let switch = switch.unwrap_or_else(|| panic!("region b never reached dc-a: {lines:?}"));
    let after = &lines[switch..];
    let failed: Vec<&(f64, String)> = after.iter().filter(|(_, r)| r != "200 a").collect();
    assert!(failed.is_empty(), "after the switch, every request is served by dc-a: {failed:?}");
    let window = lines[switch].0 - chaos_at;
    let in_window = switch - before.len();
    w.log(&format!(
        "region b: {} requests `200 b`, {in_window} in the {window:.1}s switch window ({:?}), {} `200 a` after, none failed",
        before.len(),
        lines[before.len()..switch].iter().map(|(_, r)| r.as_str()).collect::<Vec<_>>(),
        after.len()
    ));
    assert_eq!(before.len() + in_window + after.len(), LOOP_REQUESTS);
    // The DNS TTL (2 s) plus a check interval (1 s), with room for a loaded machine.
    assert!(window < 20.0, "the switch took {window:.1}s");
    w.served_by("client-a", "a");
}

/// Waits until the replica in dc-b streams from the primary through the link.
fn db2_streams_through_the_link(w: &Walk) {
    let sender = poll(Duration::from_secs(60), "db-2 streaming through wan-link", || {
        let sql = "SELECT sender_host || ' ' || status FROM pg_stat_wal_receiver";
        match psql_ok(&w.container("db", 2), None, sql) {
            s if s == "wan-link streaming" => Ok(s),
            other => Err(other),
        }
    });
    w.log(&format!("db-2 (dc-b): {sender}"));
}

/// The replica in dc-b streams through the link; a write in dc-b is read in dc-a.
fn the_link_carries_replication_and_writes(w: &Walk, lb: u16) -> u64 {
    db2_streams_through_the_link(w);
    let (code, dc, body) = poll(Duration::from_secs(60), "POST /users from region b", || {
        let client = w.container("client-b", 1);
        match w.ask_in(&client, "POST", "/users", Some(r#"{"firstName":"Bea","lastName":"Dcb"}"#))? {
            (503, _, body) if body.contains("no healthy web server") => Err(body),
            answer => Ok(answer),
        }
    });
    // Usually dc-b answers (its writes cross the link); a loaded engine's flapping checks may
    // have sent region b to dc-a for a moment, which is the geo routing doing its job.
    assert!(code == 201 && (dc == "b" || dc == "a"), "{code} {dc}: {body}");
    w.log(&format!("POST /users from region b: 201 from dc {dc}"));
    let id = serde_json::from_str::<serde_json::Value>(&body).expect("JSON")["id"].as_u64().expect("an id");
    let read = poll(Duration::from_secs(60), "dc-b's write read in dc-a", || {
        let r = http_get(lb, &format!("/users/{id}"));
        if r.status == 200 { Ok(r) } else { Err(format!("{r:?}")) }
    });
    assert_eq!(common::header(&read, "X-Dc"), "a");
    assert!(read.body.contains("Bea"), "{read:?}");
    id
}

/// The rows the loop in region a writes (`lastName` `DcA-<i>`), and every other row.
const LOOP_ROWS: &str = "doc::jsonb->>'lastName' LIKE 'DcA-%'";
const NOT_LOOP: &str = "coalesce(doc::jsonb->>'lastName', '') NOT LIKE 'DcA-%'";

/// At most this many rounds of the loop in region a (each a GET and a POST); the test ends it
/// sooner through a stop file once the writes are back.
const DC_A_ROUNDS: usize = 400;

/// The loop run inside client-a across the loss of dc-a: each round a read and a write
/// (`POST /users`, `lastName` `DcA-<round>`), one line each: `<unix time> <round> <read id>
/// <read status> dc=<X-Dc> <write status> dc=<X-Dc> <id or ->`; then `done`. The read asks
/// for one of the users the loop wrote so far, in turn (user 12 before the first): most of
/// them are not in the other data centre's cache, so the reads there reach its database. It
/// stops after `DC_A_ROUNDS` rounds or when /tmp/dc-a.stop exists.
fn region_a_loop_script() -> String {
    format!(
        "i=0; rm -f /tmp/dc-a.stop; : > /tmp/dc-a.log; : > /tmp/dc-a.ids; \
         while [ $i -lt {DC_A_ROUNDS} ] && [ ! -f /tmp/dc-a.stop ]; do \
         n=$(wc -l < /tmp/dc-a.ids); rid=12; \
         if [ $n -gt 0 ]; then rid=$(sed -n \"$((i % n + 1))p\" /tmp/dc-a.ids); fi; \
         g=$(curl -s -o /dev/null -m 3 -w '%{{http_code}} dc=%header{{x-dc}}' http://shop.example/users/$rid); \
         b=$(curl -s -m 3 -X POST -H 'Content-Type: application/json' \
             -d \"{{\\\"firstName\\\":\\\"Loop\\\",\\\"lastName\\\":\\\"DcA-$i\\\"}}\" \
             -w '\\n%{{http_code}} dc=%header{{x-dc}}' http://shop.example/users); \
         p=$(printf '%s' \"$b\" | tail -n 1); \
         id=$(printf '%s' \"$b\" | head -n 1 | sed -n 's/.*\"id\": *\\([0-9][0-9]*\\).*/\\1/p'); \
         case \"$p\" in 201*) [ -n \"$id\" ] && echo $id >> /tmp/dc-a.ids;; esac; \
         echo \"$(date +%s.%N) $i $rid $g $p ${{id:--}}\" >> /tmp/dc-a.log; \
         i=$((i+1)); sleep 0.2; done; echo done >> /tmp/dc-a.log"
    )
}

/// One round of the loop in region a.
#[derive(Debug, Clone)]
struct Round {
    at: f64,
    round: u64,
    read: String,
    write: String,
    id: Option<u64>,
}

/// The rounds so far, and whether the loop ended.
fn region_a_rounds(client: &str) -> (Vec<Round>, bool) {
    let out = docker(&["exec", client, "cat", "/tmp/dc-a.log"]).unwrap_or_default();
    let done = out.lines().any(|l| l == "done");
    let rounds = out
        .lines()
        .filter(|l| *l != "done")
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(w.len(), 8, "loop line {l:?}");
            Round {
                at: w[0].parse().unwrap_or_else(|e| panic!("loop line {l:?}: {e}")),
                round: w[1].parse().unwrap_or_else(|e| panic!("loop line {l:?}: {e}")),
                read: format!("{} {}", w[3], w[4]),
                write: format!("{} {}", w[5], w[6]),
                id: w[7].parse().ok(),
            }
        })
        .collect();
    (rounds, done)
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64()
}

/// Polls the loop in region a (at most 120 s) until a round after `since` satisfies `what`;
/// returns it. Otherwise panics with what region a sees of geo DNS and of both data centres.
fn first_round(w: &Walk, since: f64, what: &str, ok: impl Fn(&Round) -> bool) -> Round {
    let client = w.container("client-a", 1);
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let (rounds, done) = region_a_rounds(&client);
        if let Some(r) = rounds.iter().find(|r| r.at >= since && ok(r)) {
            return r.clone();
        }
        if done || Instant::now() >= until {
            panic!("{what}: not seen (loop ended: {done}); rounds: {rounds:?}\n{}", region_a_view(w));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// What region a sees: its resolver, geo DNS's answer, each load balancer's health check,
/// and geodns's last log lines (for a failure's message).
fn region_a_view(w: &Walk) -> String {
    let client = w.container("client-a", 1);
    let mut out = String::new();
    let probes: [&[&str]; 4] = [
        &["cat", "/etc/resolv.conf"],
        &["getent", "ahostsv4", "shop.example"],
        &[
            "curl",
            "-s",
            "-m",
            "3",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %header{x-dc}",
            "http://region-a-to-dc-a/healthz",
        ],
        &[
            "curl",
            "-s",
            "-m",
            "3",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %header{x-dc}",
            "http://region-a-to-dc-b/healthz",
        ],
    ];
    for probe in probes {
        let mut args = vec!["exec", client.as_str()];
        args.extend(probe);
        out.push_str(&format!("{}: {:?}\n", probe.join(" "), docker(&args)));
    }
    // Its lines go to stderr: read both streams.
    let logs = std::process::Command::new("docker").args(["logs", "--tail", "30", &w.container("geodns", 1)]).output();
    let logs = logs.map(|o| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)));
    out.push_str(&format!("geodns logs: {logs:?}\n"));
    out
}

/// The host's requests across the loss of dc-a, through `edge` (localhost:8080 in the
/// README): `(unix time, "<status> dc=<X-Dc>")`, 0 when no HTTP answer came.
fn host_loop(port: u16) -> common::loops::BoundedLoop<(f64, String)> {
    common::loops::BoundedLoop::start(Duration::from_millis(200), 2000, Duration::from_secs(600), move |_| {
        let answer = match http(port, "GET", "/users/12", None) {
            Ok(r) => format!("{} dc={}", r.status, r.header("X-Dc").unwrap_or("")),
            Err(_) => "0 dc=".to_string(),
        };
        (unix_now(), answer)
    })
}

/// Times (unix seconds) of the steps of the loss of dc-a.
struct DcALoss {
    chaos_at: f64,
    switched: Round,
    failover_at: f64,
    failover_done: f64,
    writes_back: Round,
}

/// Region a through the loss of dc-a, where the primary is: `scale chaos stop dc:dc-a`, then
/// what a user does next, `scale failover db`. Returns the steps' times and every round.
fn lose_dc_a(w: &Walk, host_port: u16) -> (DcALoss, Vec<Round>, Vec<(f64, String)>) {
    let client = w.container("client-a", 1);
    let host = host_loop(host_port);
    docker(&["exec", "-d", &client, "sh", "-c", &region_a_loop_script()]).expect("the loop in region a starts");
    poll(Duration::from_secs(60), "15 rounds in region a before the chaos", || {
        let (rounds, _) = region_a_rounds(&client);
        if rounds.len() >= 15 { Ok(()) } else { Err(format!("{rounds:?}")) }
    });
    let chaos_at = unix_now();
    let chaos = Scale::new(&["chaos", "stop", "dc:dc-a", "-p", &w.p]).envs(&[]).isolated().run();
    w.log(&format!("chaos stop dc:dc-a:\n{}", chaos.success().stdout));
    let stopped: BTreeSet<String> = project_containers(&w.p)
        .into_iter()
        .filter(|(_, seen)| seen.state != "running")
        .map(|(name, _)| name.trim_start_matches(&format!("{}-", w.p)).to_string())
        .collect();
    let expected: BTreeSet<String> =
        ["lb-1", "web-1", "web-2", "cache-1", "sessions-1", "db-1", "db-3"].map(String::from).into();
    assert_eq!(stopped, expected, "dc:dc-a is every container placed in dc-a (the primary's), and nothing else");
    let switched = first_round(w, chaos_at, "region a read from dc-b", |r| r.read == "200 dc=b");
    w.log(&format!("region a reads from dc-b {:.1}s after the chaos", switched.at - chaos_at));
    // A few rounds with no primary anywhere, as a user would see them before reacting.
    first_round(w, switched.at + 2.0, "2 s of rounds without a primary", |_| true);

    let failover_at = unix_now();
    let failover = Scale::new(&["failover", "db", "-p", &w.p]).envs(&[]).isolated().run();
    let failover_done = unix_now();
    w.log(&format!("scale failover db ({:.1}s):\n{}", failover_done - failover_at, failover.success().all()));
    let writes_back = first_round(w, failover_at, "a write served by dc-b", |r| r.write == "201 dc=b");
    // Some more rounds on dc-b, then the loop is stopped.
    first_round(w, writes_back.at + 10.0, "10 s of rounds after the writes came back", |_| true);
    docker(&["exec", &client, "touch", "/tmp/dc-a.stop"]).expect("the stop file");
    let rounds = poll(Duration::from_secs(30), "the loop in region a to end", || match region_a_rounds(&client) {
        (rounds, true) => Ok(rounds),
        (rounds, false) => Err(format!("{} rounds so far", rounds.len())),
    });
    let (host, _) = host.finish("the host's loop");
    (DcALoss { chaos_at, switched, failover_at, failover_done, writes_back }, rounds, host)
}

/// The host, like region a, is served by dc-a before the loss and, from its first answer by
/// dc-b on, by dc-b every time.
fn judge_host(w: &Walk, chaos_at: f64, host: &[(f64, String)]) {
    let before: Vec<&(f64, String)> = host.iter().filter(|(t, _)| *t < chaos_at).collect();
    assert!(!before.is_empty() && before.iter().all(|(_, r)| r == "200 dc=a"), "the host before: {before:?}");
    let switch = host.iter().position(|(t, r)| *t >= chaos_at && r == "200 dc=b");
    let switch = switch.unwrap_or_else(|| panic!("the host never reached dc-b: {host:?}"));
    let failed: Vec<&(f64, String)> = host[switch..].iter().filter(|(_, r)| r != "200 dc=b").collect();
    assert!(failed.is_empty(), "after its switch, every request of the host is served by dc-b: {failed:?}");
    let window: Vec<&str> = host[before.len()..switch].iter().map(|(_, r)| r.as_str()).collect();
    w.log(&format!(
        "the host (through edge): {} requests `200 a`, {} in the {:.1}s switch window ({window:?}), then {} `200 b`, \
         none failed",
        before.len(),
        window.len(),
        host[switch].0 - chaos_at,
        host.len() - switch
    ));
}

/// What the rounds of region a show: before the loss dc-a reads and writes; after the
/// switch every read is served by dc-b; after the failover every write is too. Returns the
/// acknowledged writes (id, round).
fn judge_region_a(w: &Walk, loss: &DcALoss, rounds: &[Round]) -> Vec<(u64, u64)> {
    let before: Vec<&Round> = rounds.iter().filter(|r| r.at < loss.chaos_at).collect();
    assert!(before.len() >= 15, "{before:?}");
    let bad: Vec<&&Round> = before.iter().filter(|r| r.read != "200 dc=a" || r.write != "201 dc=a").collect();
    assert!(bad.is_empty(), "before the loss, region a reads and writes in dc-a: {bad:?}");
    let after_switch: Vec<&Round> = rounds.iter().filter(|r| r.round >= loss.switched.round).collect();
    let failed_reads: Vec<&&Round> = after_switch.iter().filter(|r| r.read != "200 dc=b").collect();
    assert!(failed_reads.is_empty(), "after the switch, every read in region a is served by dc-b: {failed_reads:?}");
    // A round that ended before the failover began wrote while there was no primary.
    let accepted: Vec<&Round> = rounds
        .iter()
        .filter(|r| r.round >= loss.switched.round && r.at < loss.failover_at && r.write.starts_with("201 "))
        .collect();
    assert!(accepted.is_empty(), "with the primary lost and none promoted, no write can succeed: {accepted:?}");
    let after_failover: Vec<&Round> = rounds.iter().filter(|r| r.round >= loss.writes_back.round).collect();
    let failed_writes: Vec<&&Round> = after_failover.iter().filter(|r| r.write != "201 dc=b").collect();
    assert!(failed_writes.is_empty(), "once dc-b writes, every write in region a succeeds there: {failed_writes:?}");
    let in_window: Vec<&str> = rounds
        .iter()
        .filter(|r| r.at >= loss.chaos_at && r.round < loss.switched.round)
        .map(|r| r.read.as_str())
        .collect();
    let refused: BTreeSet<&str> = rounds
        .iter()
        .filter(|r| r.round >= loss.switched.round && r.round < loss.writes_back.round)
        .map(|r| r.write.as_str())
        .collect();
    let refused = format!(
        "{} ({refused:?})",
        rounds.iter().filter(|r| r.round >= loss.switched.round && r.round < loss.writes_back.round).count()
    );
    w.log(&format!(
        "region a: {} rounds in dc-a; reads: {} in the {:.1}s switch window ({in_window:?}), then {} from dc-b, none \
         failed; writes: {refused} refused between the switch and the failover, the failover took {:.1}s, the first \
         write on dc-b came {:.1}s after the chaos ({:.1}s after the failover began), then {} on dc-b, none failed",
        before.len(),
        in_window.len(),
        loss.switched.at - loss.chaos_at,
        after_switch.len(),
        loss.failover_done - loss.failover_at,
        loss.writes_back.at - loss.chaos_at,
        loss.writes_back.at - loss.failover_at,
        after_failover.len(),
    ));
    let acked: Vec<(u64, u64)> = rounds
        .iter()
        .filter(|r| r.write.starts_with("201 "))
        .map(|r| (r.id.unwrap_or_else(|| panic!("a 201 without an id: {r:?}")), r.round))
        .collect();
    assert!(acked.len() >= before.len(), "{acked:?}");
    acked
}

/// Every acknowledged write of the loop is in the primary, as written: none lost. Rows of
/// unacknowledged writes (a timeout after the commit) may be there too, but never more rows
/// than rounds. Returns the loop's rows.
fn none_lost(w: &Walk, acked: &[(u64, u64)], rounds: usize) -> u64 {
    let primary = w.primary();
    let ids: Vec<String> = acked.iter().map(|(id, _)| id.to_string()).collect();
    let sql = format!("SELECT id || ' ' || (doc::jsonb->>'lastName') FROM users WHERE id IN ({})", ids.join(","));
    let found: BTreeSet<String> = psql_ok(&primary, Some("app"), &sql).lines().map(str::to_string).collect();
    let lost: Vec<&(u64, u64)> =
        acked.iter().filter(|(id, round)| !found.contains(&format!("{id} DcA-{round}"))).collect();
    assert!(lost.is_empty(), "acknowledged writes lost across the loss of dc-a: {lost:?}");
    let rows = w.count(&format!("SELECT count(*) FROM users WHERE {LOOP_ROWS}"));
    assert!(rows >= acked.len() as u64 && rows <= rounds as u64, "{rows} loop rows, {} acknowledged", acked.len());
    w.log(&format!("{} acknowledged writes, every one in the primary {primary}; {rows} loop rows", acked.len()));
    rows
}

/// After `scale apply` of stage 8 again: the promoted node stays the primary (as on one
/// engine: a failover is state the plan keeps), the old primary and db-3 stream from it,
/// region a is home in dc-a, and every acknowledged write of the loop is read from the host.
/// (lb is started again, with a new random host port: asked again.)
fn back_after_dc_a(w: &Walk, acked: &[(u64, u64)]) {
    assert_eq!(w.primary(), w.container("db", 2), "the node promoted in dc-b stays the primary");
    let streaming = poll(Duration::from_secs(120), "db-1 and db-3 streaming from db-2", || {
        let sql = "SELECT string_agg(application_name || ' ' || state, ', ' ORDER BY application_name) \
                   FROM pg_stat_replication";
        let want = format!("{0}-db-1 streaming, {0}-db-3 streaming", w.p);
        match psql_ok(&w.container("db", 2), None, sql) {
            s if s == want => Ok(s),
            other => Err(other),
        }
    });
    w.log(&format!("after the repair: db-2 is the primary; {streaming}"));
    w.served_by("client-a", "a");
    let lb = w.port("08-data-centers.yaml", "edge");
    for (id, round) in acked {
        let r = poll(Duration::from_secs(20), &format!("user {id} from the host"), || {
            let r = http_get(lb, &format!("/users/{id}"));
            if r.status == 200 { Ok(r) } else { Err(format!("{r:?}")) }
        });
        assert!(r.body.contains(&format!("\"DcA-{round}\"")), "user {id} is round {round}'s: {r:?}");
    }
    let (code, dc, body) = poll(Duration::from_secs(60), "POST /users from region a after the repair", || {
        let client = w.container("client-a", 1);
        match w.ask_in(&client, "POST", "/users", Some(r#"{"firstName":"Back","lastName":"Home"}"#))? {
            (503, _, body) => Err(body),
            answer => Ok(answer),
        }
    });
    assert_eq!(code, 201, "a write from region a after the repair: {dc} {body}");
    w.log(&format!("after the repair: POST /users from region a: {code} from dc {dc}: {body}"));
}

#[test]
fn two_data_centres_geo_routing_and_the_loss_of_one() {
    if !common::docker_or_skip("two_data_centres_geo_routing_and_the_loss_of_one") {
        return;
    }
    let guard = BuildGuard(Some(DockerTest::with_project(&format!("t-s08-{}-1", std::process::id()))));
    let t = guard.0.as_ref().expect("the project is open");
    let w = Walk { p: t.project().to_string(), dir: tempfile::tempdir().expect("tempdir"), started: Instant::now() };

    w.apply("07-stateless-web.yaml");
    let lb = w.port("07-stateless-web.yaml", "lb");
    // A 503 from the balancer (no server passed its last check on a loaded engine) reached no
    // server: asking again cannot write twice.
    let created = poll(Duration::from_secs(60), "POST /users at stage 7", || {
        match http(lb, "POST", "/users", Some(r#"{"firstName":"Stage","lastName":"Seven"}"#)) {
            Ok(r) if r.status == 201 => Ok(r),
            Ok(r) if r.status == 503 => Err(format!("{r:?}")),
            other => panic!("POST /users: {other:?}"),
        }
    });
    let id7 = serde_json::from_str::<serde_json::Value>(&created.body).expect("JSON")["id"].as_u64().expect("an id");
    let users7 = w.users();

    // At stage 8 the host's port is edge's (a client of geo DNS in region a): ask again.
    w.apply("08-data-centers.yaml");
    let lb = w.port("08-data-centers.yaml", "edge");
    let host = w.host_served_by_a(lb, &format!("/users/{id7}"));
    assert_eq!(host.body, created.body, "the stage-7 user at stage 8");
    assert_eq!(w.users(), users7, "stepping up lost or added users");
    let file = w.file("08-data-centers.yaml");
    let check = Scale::new(&["check", "-p", &w.p, &file]).envs(ENV).isolated().run();
    assert_eq!(check.code, Some(0), "stage 8's x-lesson does not hold:\n{}", check.all());
    w.served_by("client-a", "a");
    w.served_by("client-b", "b");
    let id8 = the_link_carries_replication_and_writes(&w, lb);

    lose_dc_b(&w);
    w.apply("08-data-centers.yaml");
    w.served_by("client-b", "b");

    // What db-2 holds when dc-a goes is what survives: it streams again first. Region a and
    // the host start from home.
    db2_streams_through_the_link(&w);
    w.served_by("client-a", "a");
    w.host_served_by_a(lb, "/users/12");
    let (loss, rounds, host) = lose_dc_a(&w, lb);
    let acked = judge_region_a(&w, &loss, &rounds);
    judge_host(&w, loss.chaos_at, &host);
    let loop_rows = none_lost(&w, &acked, rounds.len());
    w.apply("08-data-centers.yaml");
    back_after_dc_a(&w, &acked);

    w.apply("07-stateless-web.yaml");
    let lb = w.port("07-stateless-web.yaml", "lb");
    let names: BTreeSet<String> = project_containers(&w.p).into_keys().collect();
    for gone in ["lb-b-1", "web-b-1", "geodns-1", "client-b-1", "wan-link-1", "edge-1"] {
        assert!(!names.contains(&format!("{}-{gone}", w.p)), "{gone} is still there at stage 7: {names:?}");
    }
    assert_eq!(w.users(), users7 + 2, "every user of stages 7 and 8, no more");
    assert_eq!(w.count(&format!("SELECT count(*) FROM users WHERE {LOOP_ROWS}")), loop_rows, "the loop's rows");
    for id in [id7, id8, 12] {
        let back = poll(Duration::from_secs(20), &format!("user {id} at stage 7 again"), || {
            let r = http_get(lb, &format!("/users/{id}"));
            if r.status == 200 { Ok(r) } else { Err(format!("{r:?}")) }
        });
        assert_eq!(back.header("X-Dc"), None, "stage 7 has no data centres: {back:?}");
    }
    w.log("08 → 07: every user is served");
}
