//! `scale ui` in a real browser against a real stage-4 project: headless Chromium (Debian's)
//! keeps the page open while the test curls the load balancer, kills a web server with
//! `scale chaos kill web-1` and repairs it with `scale apply`, and reads what the page
//! renders each time: the nodes and their roles, the network box, the endpoint link, the
//! pool's counters growing, a replica's lag, and the killed server drawn red (then green
//! again), each within 5 s. Screenshots are kept under `target/ui-test/` (paths printed).

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{BuildGuard, DockerTest, Scale, ScaleChild, http, poll, poll_timed, stage_copy};
use serde_json::Value;

/// How the page draws a server that is up, and one that is down (`--up` and `--down` in
/// style.css, as the browser computes them).
const GREEN: &str = "rgb(46, 157, 79)";
const RED: &str = "rgb(209, 45, 45)";

fn scale(p: &str, args: &[&str]) -> common::ScaleRun {
    let mut all = args.to_vec();
    all.extend(["-p", p]);
    Scale::new(&all).isolated().run()
}

fn lb_port(p: &str, file: &str) -> u16 {
    let status = scale(p, &["status", file, "--output", "json"]).success().json();
    let port = status["endpoints"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["service"] == "lb" && e["protocol"] == "tcp"))
        .and_then(|e| e["host_port"].as_u64())
        .unwrap_or_else(|| panic!("no public port of lb in {status:#}"));
    u16::try_from(port).expect("a port number")
}

/// `scale apply` until it succeeds, at most three times: on a machine loaded far past its
/// cores a web server's healthcheck (2 s timeout) can fail during an apply, and the next
/// apply (level-triggered) finishes the job. `bound` limits each attempt.
fn apply(p: &str, file: &str, bound: Duration) {
    let mut last = String::new();
    for attempt in 1..=3 {
        let run = Scale::new(&["apply", "--yes", file, "-p", p]).isolated().timeout(bound).run();
        if run.code == Some(0) {
            return;
        }
        last = run.all();
        eprintln!("apply attempt {attempt} of 3 failed ({:?}); again", run.code);
    }
    panic!("scale apply failed three times; the last:\n{last}");
}

/// Where the screenshots go: `target/ui-test/NAME`.
fn artifact(name: &str) -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(&tmp).join("ui-test").join(name)
}

/// The URL `scale ui` printed.
fn served_url(ui: &ScaleChild) -> String {
    let line = ui
        .wait_stdout(ui.spawned, Duration::from_secs(90), |l| l.contains("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("scale ui printed no URL:\n{}", ui.transcript()));
    let at = line.text.find("http://").expect("a URL");
    line.text[at..].split_whitespace().next().expect("a URL").to_string()
}

/// What the page draws for one node: its role, state, and the colour of its box's border.
const NODE: &str = r#"(name => {
  const g = document.querySelector(`#picture g.node[data-name="${name}"]`);
  if (!g) return null;
  const box = g.querySelector('rect.box');
  return { role: g.dataset.role, state: g.dataset.state, stroke: getComputedStyle(box).stroke };
})"#;

fn node(b: &mut common::Browser, name: &str) -> Result<Value, String> {
    let v = b.eval(&format!("{NODE}({name:?})"))?;
    if v.is_null() { Err(format!("no node {name} on the page")) } else { Ok(v) }
}

/// Every node as `name role state`, for failure messages and the first check.
fn nodes(b: &mut common::Browser) -> Vec<String> {
    let v = b
        .eval("[...document.querySelectorAll('#picture g.node')].map(n => `${n.dataset.name} ${n.dataset.role} ${n.dataset.state}`)")
        .unwrap_or_default();
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
}

/// Each server's "served" counter in the load balancer's table.
fn served(b: &mut common::Browser) -> Vec<(String, u64)> {
    let v = b
        .eval("[...document.querySelectorAll('table.pool tr[data-server]')].map(r => [r.dataset.server, Number(r.querySelector('.total').textContent)])")
        .unwrap_or_default();
    v.as_array()
        .map(|a| a.iter().filter_map(|r| Some((r[0].as_str()?.to_string(), r[1].as_u64()?))).collect())
        .unwrap_or_default()
}

fn texts(b: &mut common::Browser, selector: &str) -> Vec<String> {
    let v =
        b.eval(&format!("[...document.querySelectorAll({selector:?})].map(e => e.textContent)")).unwrap_or_default();
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The page's events since `since_ms`, each with its delay, for failure messages: whether
/// the engine's event came late or the page did.
fn events_since(b: &mut common::Browser, since_ms: u64) -> String {
    let script = "JSON.stringify(window.lastModel ? window.lastModel.events : [])";
    let events: Vec<Value> =
        b.eval(script).ok().and_then(|v| serde_json::from_str(v.as_str().unwrap_or("[]")).ok()).unwrap_or_default();
    let lines: Vec<String> = events
        .iter()
        .filter_map(|e| Some((e["at_ms"].as_u64()?, e["text"].as_str()?)))
        .filter(|(at, _)| *at >= since_ms)
        .map(|(at, text)| format!("+{} ms {text}", at - since_ms))
        .collect();
    format!("{lines:?} (now +{} ms)", unix_ms().saturating_sub(since_ms))
}

/// Whether `name` is drawn in `state` with a border of `colour`.
fn drawn(b: &mut common::Browser, name: &str, state: &str, colour: &str) -> Result<(), String> {
    let n = node(b, name)?;
    if n["state"] == state && n["stroke"] == colour { Ok(()) } else { Err(n.to_string()) }
}

#[test]
fn the_live_page_shows_stage_4_and_a_killed_server_turning_red_then_green() {
    let p = format!("t-ui-{}", std::process::id());
    if !common::docker_or_skip(&p) {
        return;
    }
    assert!(
        common::chromium_binary().is_some(),
        "this test needs headless Chromium and found none: `apt-get install chromium` (scripts/test.sh installs it \
         when run as root), or set CHROMIUM=/path/to/chromium"
    );
    let _guard = BuildGuard(Some(DockerTest::with_project(&p)));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = stage_copy(dir.path(), 4, &[]);
    // The first apply builds the three images from scratch (apt-get inside): slow on a busy machine.
    apply(&p, &file, Duration::from_secs(1800));
    let port = lb_port(&p, &file);
    let name = |s: &str| format!("{p}-{s}");

    let mut ui = Scale::new(&["ui", &file, "-p", &p, "--port", "0"]).isolated().spawn();
    let url = served_url(&ui);
    let mut b = common::Browser::open(&url, 1500, 1000);

    // The topology, with every role and every container up.
    let expected: Vec<String> = [
        ("lb-1", "load-balancer"),
        ("web-1", "server"),
        ("web-2", "server"),
        ("db-1", "primary"),
        ("db-2", "replica"),
        ("db-3", "replica"),
    ]
    .iter()
    .map(|(n, role)| format!("{} {role} up", name(n)))
    .collect();
    poll(Duration::from_secs(30), "the page draws the stage-4 nodes", || {
        let drawn = nodes(&mut b);
        if drawn.len() == expected.len() + 1 { Ok(()) } else { Err(format!("drawn {drawn:?}")) }
    });
    let shot = artifact("stage4-first.png");
    b.screenshot(&shot);
    println!("screenshot: {}", shot.display());
    // Up as the engine says: on a loaded machine a web server's healthcheck (2 s timeout) can
    // fail for minutes after apply returned, and the page shows that too.
    poll(Duration::from_secs(240), "the page draws the stage-4 nodes, all up", || {
        let drawn = nodes(&mut b);
        let missing: Vec<&String> = expected.iter().filter(|e| !drawn.contains(e)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let engine = common::docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=io.scale.project={p}"),
            "--format",
            "{{.Names}} {{.Status}}",
        ]);
        Err(format!("missing {missing:?}; drawn {drawn:?}; the engine says {engine:?}"))
    });
    assert!(nodes(&mut b).contains(&"user user none".to_string()), "no user node: {:?}", nodes(&mut b));
    let networks = texts(&mut b, "#picture g.cluster.internal .cluster-label");
    assert!(networks.iter().any(|l| l.contains(&format!("{p}_private"))), "no private network box: {networks:?}");
    let links = b.eval("[...document.querySelectorAll('#endpoints a')].map(a => a.href)").expect("links");
    let link = format!("http://127.0.0.1:{port}/");
    assert!(links.as_array().is_some_and(|l| l.iter().any(|h| h == link.as_str())), "no link {link}: {links}");
    poll(Duration::from_secs(15), "a replica's lag is shown", || {
        let lag = b.eval(&format!(
            "document.querySelector('#containers tr[data-name=\"{}\"]').lastChild.textContent",
            name("db-2")
        ))?;
        if lag.as_str().is_some_and(|l| l.contains(" B, ")) { Ok(()) } else { Err(lag.to_string()) }
    });

    // Requests moving: once the load balancer sends to a server (on a loaded machine HAProxy's
    // own checks may hold one back for a while), the page's counters grow by at least the
    // requests the test sends that a web server answered.
    poll(Duration::from_secs(120), "the page shows a server UP in the pool", || {
        let up = b.eval("[...document.querySelectorAll('table.pool tr[data-server]')].map(r => r.dataset.up)")?;
        if up.as_array().is_some_and(|a| a.iter().any(|u| u == "true")) { Ok(()) } else { Err(up.to_string()) }
    });
    let before = served(&mut b);
    assert_eq!(before.len(), 2, "two servers in the pool table: {before:?}");
    let mut answered = 0u64;
    for _ in 0..40 {
        if http(port, "GET", "/users/12", None).is_ok_and(|r| r.status == 200) {
            answered += 1;
        }
        if answered == 10 {
            break;
        }
    }
    assert!(answered > 0, "no request to the load balancer was answered by a web server");
    poll(Duration::from_secs(60), &format!("the page counts the {answered} answered requests"), || {
        let after = served(&mut b);
        let grew: u64 = after.iter().map(|s| s.1).sum::<u64>() - before.iter().map(|s| s.1).sum::<u64>();
        if grew >= answered { Ok(()) } else { Err(format!("{before:?} → {after:?}")) }
    });
    let shot = artifact("stage4.png");
    b.screenshot(&shot);
    println!("screenshot: {}", shot.display());

    // A web server killed: red within 5 s, the pool's arrow down, and an event saying so.
    let killed_at = unix_ms();
    scale(&p, &["chaos", "kill", "web-1"]).success();
    let killed = Instant::now();
    let web1 = name("web-1");
    let (_, took) = poll_timed(killed, Duration::from_secs(5), "the page draws web-1 down, in red", || {
        drawn(&mut b, &web1, "down", RED).map_err(|e| format!("{e}; events seen: {}", events_since(&mut b, killed_at)))
    });
    println!("web-1 drawn down {took:?} after the kill");
    poll(Duration::from_secs(5), "the pool arrow and the events say web-1 is down", || {
        let arrow = b.eval(&format!("!!document.querySelector('#picture g.edge.pool.is-down[data-to=\"{web1}\"]')"))?;
        let events = texts(&mut b, "#events li");
        let said = events.iter().any(|e| e.contains(&format!("{web1} is down")));
        if arrow == true && said { Ok(()) } else { Err(format!("arrow down: {arrow}; events: {events:?}")) }
    });
    assert_eq!(node(&mut b, &name("web-2")).expect("web-2")["state"], "up", "only web-1 is down");
    let shot = artifact("stage4-web-1-down.png");
    b.screenshot(&shot);
    println!("screenshot: {}", shot.display());

    // Repaired by apply: green again within 5 s of apply's return.
    apply(&p, &file, Duration::from_secs(300));
    let applied = Instant::now();
    let applied_at = unix_ms();
    let (_, took) = poll_timed(applied, Duration::from_secs(5), "the page draws web-1 up again, in green", || {
        drawn(&mut b, &web1, "up", GREEN).map_err(|e| format!("{e}; events seen: {}", events_since(&mut b, applied_at)))
    });
    println!("web-1 drawn up {took:?} after apply returned");
    let events = texts(&mut b, "#events li");
    assert!(events.iter().any(|e| e.contains(&format!("{web1} is up"))), "no event says web-1 is up: {events:?}");

    drop(b);
    ui.interrupt();
    let status = ui.wait_exit(Duration::from_secs(10)).unwrap_or_else(|| panic!("scale ui did not stop on Ctrl-C"));
    assert_eq!(status.code(), Some(0), "scale ui after Ctrl-C:\n{}", ui.transcript());
}
