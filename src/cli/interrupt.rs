//! Ctrl-C for the commands that change things (apply, destroy, failover, watch), written once.
//! A first Ctrl-C while a plan runs means "start nothing new, let the actions in flight
//! finish"; a second one means "exit now" (130). The process is never killed by SIGINT while
//! a listener exists, so a command always reaches the code that gives its lock back.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use futures_util::FutureExt;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::engine::Engine;
use crate::exec::{ExecOptions, ExecReport};
use crate::plan::Plan;
use crate::ui::Ui;
use crate::ui::progress::ProgressView;

/// SIGINT, listened for from a command's start to its end. A Ctrl-C that arrives while no
/// one waits for it (observing, planning, promoting) is kept and seen at the next wait,
/// instead of being lost or killing the process.
pub struct Interrupt(Signal);

impl Interrupt {
    /// Starts listening. From then on SIGINT no longer kills the process.
    pub fn listen() -> anyhow::Result<Interrupt> {
        signal(SignalKind::interrupt()).map(Interrupt).context("cannot listen for Ctrl-C")
    }

    /// Waits for the next Ctrl-C (or returns at once for one that is pending).
    pub async fn recv(&mut self) {
        self.0.recv().await;
    }

    /// Whether a Ctrl-C came since it was last looked at, without waiting.
    pub fn pending(&mut self) -> bool {
        self.0.recv().now_or_never().is_some()
    }

    /// Asks `question` on the terminal; `None` when Ctrl-C came first. The question is read
    /// on a thread of its own so that this listener stays responsive.
    pub async fn confirm(&mut self, question: &str) -> Option<bool> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let question = question.to_string();
        std::thread::spawn(move || {
            let _ = tx.send(super::confirm(&question));
        });
        tokio::select! {
            answer = rx => Some(answer.unwrap_or(false)),
            _ = self.recv() => {
                eprintln!();
                None
            }
        }
    }
}

/// What a command says on Ctrl-C while its plan runs.
#[derive(Debug, Clone, Copy)]
pub struct Wording<'a> {
    /// Printed on the first Ctrl-C: what happens now.
    pub stopping: &'a str,
    /// The command that finishes the job, named when a second Ctrl-C exits at once.
    pub resume: &'a str,
}

/// Runs `plan` with progress, honouring Ctrl-C (see the module docs). `None`: interrupted
/// twice, the caller returns 130 at once (releasing its lock on the way out). Otherwise the
/// report, with `interrupted` set whenever a Ctrl-C came, even one that arrived as the last
/// action finished, so the caller stops instead of going on.
pub async fn execute<E: Engine>(
    engine: &E,
    plan: &Plan,
    opts: &ExecOptions,
    ui: Ui,
    interrupt: &mut Interrupt,
    say: Wording<'_>,
) -> Option<ExecReport> {
    let view = ProgressView::new(ui, plan);
    let sink = |event| view.handle(event);
    // A Ctrl-C while planning: start nothing.
    let mut interrupts = u32::from(interrupt.pending());
    let cancel = AtomicBool::new(interrupts > 0);
    let mut report = {
        let run = crate::exec::execute(engine, plan, opts, &sink, &cancel);
        tokio::pin!(run);
        loop {
            tokio::select! {
                report = &mut run => break report,
                _ = interrupt.recv() => {
                    interrupts += 1;
                    if interrupts > 1 {
                        view.clear();
                        eprintln!("interrupted again: exiting now; `{}` will finish the job", say.resume);
                        return None;
                    }
                    cancel.store(true, Ordering::SeqCst);
                    eprintln!("{}", say.stopping);
                }
            }
        }
    };
    view.clear();
    report.interrupted |= interrupts > 0;
    Some(report)
}
