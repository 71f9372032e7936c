//! `scale ui [FILE]`: a live page of the running project on 127.0.0.1. It observes the
//! project every second (every five with no browser connected), and at once when the engine
//! reports something happening to one of its containers (a chaos kill), turns each observation into the page model
//! (`ui_model`, pure) and publishes it to the browsers through `ui::page`. A failed
//! observation keeps the last picture and shows why.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::interrupt::Interrupt;
use super::{Global, Loaded, connect, project_and_blueprint};
use crate::engine::Engine;
use crate::engine::docker::DockerEngine;
use crate::engine::live::{NodeReport, PoolReport};
use crate::spec::Pool;
use crate::topology::topology;
use crate::ui::Ui;
use crate::ui::page::{self, Model};
use crate::ui_model::{DatabaseInput, EventKind, PageModel, PoolInput, Snapshot, UiEvent, page_model, transitions};

/// How often the page is refreshed when nothing happens and a browser is connected.
const REFRESH: Duration = Duration::from_secs(1);
/// How often with no browser connected (each refresh runs a few commands in the containers).
const IDLE_REFRESH: Duration = Duration::from_secs(5);
/// How many events the page lists.
const EVENTS_KEPT: usize = 40;

/// Arguments of `scale ui`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The blueprint (optional with -p: the picture then comes from the engine's labels).
    pub file: Option<PathBuf>,
    /// The port to serve on (0: any free port).
    #[arg(long, default_value_t = 8070)]
    pub port: u16,
    /// The address to serve on; loopback only (127.0.0.1 or ::1).
    #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
    pub bind: IpAddr,
}

/// Serves the page until Ctrl-C.
pub async fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let (project, loaded) = project_and_blueprint(args.file.as_ref(), global, ui)?;
    let listener = page::bind(SocketAddr::new(args.bind, args.port)).await?;
    let engine = connect().await?;
    // Ctrl-C is the way out; listened for from here so that none is lost during a refresh.
    let mut interrupt = Interrupt::listen()?;
    let source = match (&args.file, global.files.first()) {
        (Some(f), _) | (None, Some(f)) => f.display().to_string(),
        (None, None) if loaded.is_some() => "the Compose file here".to_string(),
        (None, None) => "the engine's labels (no blueprint given)".to_string(),
    };
    let mut poller =
        Poller { engine, project, loaded, source, last: None, events: VecDeque::new(), kinds: Kinds::default() };
    let first = poller.refresh(Depth::Full).await;
    let (tx, rx) = tokio::sync::watch::channel(to_json(&first)?);
    if ui.is_json() {
        ui.json(&serde_json::json!({ "project": poller.project, "url": listener.url }));
    } else {
        ui.say(format!("Live page of project {} at {} (Ctrl-C to stop)", poller.project, listener.url));
    }
    let server = tokio::spawn(page::serve(listener, rx));
    let mut engine_events = poller.engine.subscribe(&poller.project);
    loop {
        let depth = tokio::select! {
            _ = interrupt.recv() => break,
            // The server holds one receiver; each open connection holds another.
            _ = tokio::time::sleep(if tx.receiver_count() > 1 { REFRESH } else { IDLE_REFRESH }) => Depth::Full,
            event = engine_events.recv() => match event {
                Some(text) => {
                    poller.remember(EventKind::Engine, text);
                    Depth::Containers
                }
                // The engine's stream ended (a restarted engine): follow the new one, after a
                // pause so that an engine that is gone is not asked in a tight loop.
                None => {
                    tokio::time::sleep(REFRESH).await;
                    engine_events = poller.engine.subscribe(&poller.project);
                    Depth::Full
                }
            },
        };
        if depth == Depth::Full {
            // The containers first (one engine call), so that what the engine says of them is
            // on the page at once (a repaired server is green when apply returns); then what
            // the load balancers and databases say, which takes a few commands in them.
            let quick = tokio::select! {
                _ = interrupt.recv() => break,
                model = poller.refresh(Depth::Containers) => model,
            };
            publish(&tx, &quick)?;
        }
        // A full refresh can take seconds on a busy engine; an event that comes meanwhile
        // drops it for a quick one, so that a kill is on the page at once.
        let next = tokio::select! {
            _ = interrupt.recv() => break,
            model = poller.refresh(depth) => Next::Model(Box::new(model)),
            Some(text) = engine_events.recv(), if depth == Depth::Full => Next::Event(text),
        };
        let model = match next {
            Next::Model(model) => *model,
            Next::Event(text) => {
                poller.remember(EventKind::Engine, text);
                poller.refresh(Depth::Containers).await
            }
        };
        publish(&tx, &model)?;
    }
    server.abort();
    Ok(0)
}

fn to_json(model: &PageModel) -> anyhow::Result<Model> {
    Ok(Arc::from(serde_json::to_string(model).context("cannot serialize the page model")?))
}

/// Sends `model` to the browsers if it differs from what they have.
fn publish(tx: &tokio::sync::watch::Sender<Model>, model: &PageModel) -> anyhow::Result<()> {
    let json = to_json(model)?;
    if *tx.borrow() != json {
        tx.send_replace(json);
    }
    Ok(())
}

/// How much one refresh asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Depth {
    /// Everything: the containers, and each load balancer and database node (a few commands
    /// run inside them).
    Full,
    /// The containers only (one engine call), with the kinds' last answers: right after an
    /// engine event, so that a killed container is drawn down at once; a full refresh follows.
    Containers,
}

/// What ended the wait for a refresh.
enum Next {
    Model(Box<PageModel>),
    Event(String),
}

/// What the kinds said at the last full refresh.
#[derive(Default)]
struct Kinds {
    pools: Vec<PoolReport>,
    nodes: Vec<NodeReport>,
    balancers: BTreeMap<String, Pool>,
}

/// What one refresh needs, and what the page remembers between refreshes.
struct Poller {
    engine: DockerEngine,
    project: String,
    loaded: Option<Loaded>,
    source: String,
    last: Option<PageModel>,
    events: VecDeque<UiEvent>,
    kinds: Kinds,
}

impl Poller {
    /// Observes the project and makes the page's model, with what changed since the last.
    async fn refresh(&mut self, depth: Depth) -> PageModel {
        let mut model = match self.snapshot(depth).await {
            Ok(model) => {
                if let Some(last) = &self.last {
                    for (kind, text) in transitions(last, &model) {
                        self.remember(kind, text);
                    }
                }
                self.last = Some(model.clone());
                model
            }
            Err(err) => {
                let mut model = self.last.clone().unwrap_or_else(|| self.empty());
                model.error = Some(format!("{err:#}"));
                model
            }
        };
        model.events = self.events.iter().cloned().collect();
        model
    }

    async fn snapshot(&mut self, depth: Depth) -> anyhow::Result<PageModel> {
        let observed = match depth {
            Depth::Full => {
                let observed = crate::engine::observe_project(&self.engine, &self.project)
                    .await
                    .context("cannot read the project's state from the engine")?;
                self.kinds = Kinds {
                    pools: crate::engine::live::balancer_pools(&self.engine, &observed).await,
                    nodes: crate::engine::live::database_nodes(&self.engine, &observed).await,
                    balancers: observed.load_balancers.clone(),
                };
                observed
            }
            Depth::Containers => {
                let mut observed = self
                    .engine
                    .observe(&self.project)
                    .await
                    .context("cannot read the project's containers from the engine")?;
                observed.load_balancers = self.kinds.balancers.clone();
                observed
            }
        };
        let topology = match &self.loaded {
            Some(l) => topology(&l.blueprint, &l.desired),
            None => crate::ui_model::topology_from_engine(&observed),
        };
        let Kinds { pools, nodes, .. } = &self.kinds;
        let snapshot = Snapshot {
            topology,
            observed: &observed,
            facts: super::graph::live_facts(&observed, pools, nodes),
            pools: pools
                .iter()
                .map(|p| PoolInput {
                    balancer: p.container.clone(),
                    backend: p.backend.clone(),
                    servers: p.servers.clone(),
                    error: p.error.clone(),
                })
                .collect(),
            databases: nodes
                .iter()
                .map(|n| DatabaseInput { container: n.container.clone(), status: n.status.clone() })
                .collect(),
            source: self.source.clone(),
        };
        Ok(page_model(snapshot))
    }

    /// A page with nothing on it yet (the first observation failed).
    fn empty(&self) -> PageModel {
        let observed = crate::observed::ObservedState { project: self.project.clone(), ..Default::default() };
        let topology = crate::ui_model::topology_from_engine(&observed);
        let snapshot = Snapshot {
            topology,
            observed: &observed,
            facts: Default::default(),
            pools: Vec::new(),
            databases: Vec::new(),
            source: self.source.clone(),
        };
        page_model(snapshot)
    }

    fn remember(&mut self, kind: EventKind, text: String) {
        let at_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        self.events.push_back(UiEvent { at_ms: at_ms as u64, kind, text });
        while self.events.len() > EVENTS_KEPT {
            self.events.pop_front();
        }
    }
}
