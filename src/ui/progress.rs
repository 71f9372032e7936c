//! Shows an executing plan: a spinner per running action on a terminal, a line per event
//! otherwise, JSON lines for machines.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::{Mode, Ui};
use crate::exec::ExecEvent;
use crate::plan::Plan;

/// Receives executor events and draws them.
pub struct ProgressView<'a> {
    ui: Ui,
    plan: &'a Plan,
    bars: Mutex<BTreeMap<usize, ProgressBar>>,
    multi: MultiProgress,
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn one_line(text: &str, max: usize) -> String {
    let line = text.trim().replace(['\r', '\n'], " ");
    if line.chars().count() > max { format!("{}…", line.chars().take(max).collect::<String>()) } else { line }
}

impl<'a> ProgressView<'a> {
    pub fn new(ui: Ui, plan: &'a Plan) -> Self {
        let multi = if ui.mode == Mode::Tty {
            MultiProgress::with_draw_target(ProgressDrawTarget::stderr())
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        };
        ProgressView { ui, plan, bars: Mutex::new(BTreeMap::new()), multi }
    }

    fn label(&self, id: usize) -> String {
        let op = &self.plan.actions[id].op;
        format!("{} {}", op.verb(), op.target())
    }

    fn line(&self, text: String) {
        if self.ui.quiet && self.ui.mode != Mode::Json {
            return;
        }
        match self.ui.mode {
            Mode::Tty => {
                let _ = self.multi.println(text);
            }
            _ => println!("{text}"),
        }
    }

    /// Handles one executor event.
    pub fn handle(&self, event: ExecEvent) {
        if self.ui.mode == Mode::Json {
            self.json(&event);
            return;
        }
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            ExecEvent::Started { id } => {
                if self.ui.mode == Mode::Tty {
                    let bar = self.multi.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("  {spinner} {msg} {elapsed}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.set_message(self.label(id));
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bars.insert(id, bar);
                } else {
                    drop(bars);
                    self.line(format!("  … {}", self.label(id)));
                }
            }
            ExecEvent::Output { id, line } => {
                if let Some(bar) = bars.get(&id) {
                    bar.set_message(format!("{} — {}", self.label(id), one_line(&line, 60)));
                } else if !line.trim().is_empty() {
                    drop(bars);
                    self.line(format!("    | {}", one_line(&line, 200)));
                }
            }
            ExecEvent::Finished { id, elapsed } => {
                if let Some(bar) = bars.remove(&id) {
                    bar.finish_and_clear();
                }
                drop(bars);
                let tick = self.ui.paint("✓", "32");
                self.line(format!("  {tick} {} ({})", self.label(id), seconds(elapsed)));
            }
            ExecEvent::Failed { id, failure, elapsed } => {
                if let Some(bar) = bars.remove(&id) {
                    bar.finish_and_clear();
                }
                drop(bars);
                let cross = self.ui.paint("✗", "31");
                let mut text = format!("  {cross} {} ({}): {}", self.label(id), seconds(elapsed), failure.message);
                if let Some(hint) = &failure.hint {
                    text.push_str(&format!("\n    hint: {hint}"));
                }
                if !failure.output.is_empty() {
                    text.push_str("\n    build output (last lines):");
                    for l in &failure.output {
                        text.push_str(&format!("\n    | {l}"));
                    }
                }
                if !failure.logs.is_empty() {
                    text.push_str(&format!("\n    last {} log lines:", failure.logs.len()));
                    for l in &failure.logs {
                        text.push_str(&format!("\n    | {l}"));
                    }
                }
                // Failures are shown even with --quiet.
                match self.ui.mode {
                    Mode::Tty => {
                        let _ = self.multi.println(text);
                    }
                    _ => eprintln!("{text}"),
                }
            }
            ExecEvent::NotStarted { id } => {
                drop(bars);
                self.line(format!("  - {} (not started)", self.label(id)));
            }
        }
    }

    fn json(&self, event: &ExecEvent) {
        let action = |id: usize| {
            let a = &self.plan.actions[id];
            json!({"id": id, "action": a.op.verb(), "resource": a.op.resource(), "name": a.op.name()})
        };
        let value = match event {
            ExecEvent::Started { id } => json!({"event": "started", "action": action(*id)}),
            ExecEvent::Output { id, line } => json!({"event": "output", "action": action(*id), "line": line}),
            ExecEvent::Finished { id, elapsed } => {
                json!({"event": "finished", "action": action(*id), "seconds": elapsed.as_secs_f64()})
            }
            ExecEvent::Failed { id, failure, elapsed } => json!({
                "event": "failed",
                "action": action(*id),
                "seconds": elapsed.as_secs_f64(),
                "error": failure.message,
                "hint": failure.hint,
                "logs": failure.logs,
                "build_output": failure.output,
            }),
            ExecEvent::NotStarted { id } => json!({"event": "not_started", "action": action(*id)}),
        };
        self.ui.json(&value);
    }

    /// Removes any spinner left (after an interruption).
    pub fn clear(&self) {
        let _ = self.multi.clear();
    }
}
