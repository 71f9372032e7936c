//! `scale logs [SERVICE] [-f] [--tail N]`: the project's container output, each line
//! prefixed with its container (`web-1  | `) and coloured per container, as Compose does.
//! `--follow` follows until Ctrl-C (or until every container stopped); it has no `-f`,
//! which is the global file flag (`-f FILE`, as in Compose).

use std::path::PathBuf;

use anyhow::Context;
use futures_util::StreamExt;

use super::{Global, connect, project_of};
use crate::engine::Engine;
use crate::engine::tools::{LogChunk, log_stream};
use crate::observed::{ObservedContainer, ObservedState};
use crate::ui::Ui;

/// Arguments of `scale logs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A service (`web`) or one container (`web-2`); all of the project's when left out.
    pub target: Option<String>,
    /// The blueprint file naming the project (instead of -p).
    #[arg(long = "blueprint", value_name = "FILE")]
    pub blueprint: Option<PathBuf>,
    /// Keep printing new output until Ctrl-C.
    #[arg(long)]
    pub follow: bool,
    /// Only the last N lines of each container.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
}

/// Colours Compose-like prefixes cycle through.
const COLOURS: [&str; 6] = ["36", "33", "32", "35", "34", "1;36"];

/// The containers a target names: a service's, one container (`web-2` or its full name), or
/// all of them; an error that lists what there is when it names nothing.
pub fn pick<'o>(observed: &'o ObservedState, target: Option<&str>) -> anyhow::Result<Vec<&'o ObservedContainer>> {
    let project = &observed.project;
    let all: Vec<&ObservedContainer> = observed.containers.values().collect();
    let Some(target) = target else { return Ok(all) };
    let full = format!("{project}-{target}");
    let by_service: Vec<_> = all.iter().copied().filter(|c| c.service() == Some(target)).collect();
    if !by_service.is_empty() {
        return Ok(by_service);
    }
    if let Some(c) = all.iter().copied().find(|c| c.name == target || c.name == full) {
        return Ok(vec![c]);
    }
    let names: Vec<String> = all.iter().map(|c| short_name(project, &c.name).to_string()).collect();
    anyhow::bail!(
        "project {project} has no service or container {target} (containers: {})",
        if names.is_empty() { "none".to_string() } else { names.join(", ") }
    )
}

/// `shop-web-1` → `web-1`.
pub fn short_name<'n>(project: &str, name: &'n str) -> &'n str {
    name.strip_prefix(project).and_then(|rest| rest.strip_prefix('-')).unwrap_or(name)
}

/// Splits a chunk of output into whole lines with the prefix; an unfinished line waits in
/// `pending` for the rest.
pub fn prefix_lines(prefix: &str, pending: &mut String, chunk: &[u8]) -> Vec<String> {
    pending.push_str(&String::from_utf8_lossy(chunk));
    let mut out = Vec::new();
    while let Some(i) = pending.find('\n') {
        let line: String = pending.drain(..=i).collect();
        out.push(format!("{prefix}{}", line.trim_end_matches(['\n', '\r'])));
    }
    out
}

/// Prints the output of the chosen containers.
pub async fn run(args: Args, global: &Global, ui: Ui) -> anyhow::Result<u8> {
    let project = project_of(args.blueprint.as_ref(), global, ui)?;
    let engine = connect().await?;
    let observed = engine.observe(&project).await.context("cannot read the project's state from the engine")?;
    let chosen = pick(&observed, args.target.as_deref())?;
    let width = chosen.iter().map(|c| short_name(&project, &c.name).chars().count()).max().unwrap_or(0);
    let prefix = |i: usize, c: &ObservedContainer| {
        let label = format!("{:<width$} | ", short_name(&project, &c.name));
        ui.paint(&label, COLOURS[i % COLOURS.len()])
    };
    if !args.follow {
        for (i, c) in chosen.iter().enumerate() {
            let mut pending = String::new();
            let mut stream = std::pin::pin!(log_stream(&engine, &c.id, false, args.tail));
            while let Some(chunk) = stream.next().await {
                print_lines(prefix_lines(&prefix(i, c), &mut pending, &chunk?.bytes));
            }
            print_lines(prefix_lines(&prefix(i, c), &mut pending, b"\n").into_iter().filter(|l| !l.ends_with("| ")));
        }
        return Ok(0);
    }
    let streams =
        chosen.iter().enumerate().map(|(i, c)| log_stream(&engine, &c.id, true, args.tail).map(move |r| (i, r)));
    let mut merged = futures_util::stream::select_all(streams.map(Box::pin));
    let mut pending = vec![String::new(); chosen.len()];
    loop {
        tokio::select! {
            next = merged.next() => match next {
                Some((i, chunk)) => {
                    let LogChunk { bytes, .. } = chunk?;
                    print_lines(prefix_lines(&prefix(i, chosen[i]), &mut pending[i], &bytes));
                }
                None => return Ok(0),
            },
            _ = tokio::signal::ctrl_c() => return Ok(0),
        }
    }
}

fn print_lines(lines: impl IntoIterator<Item = String>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for line in lines {
        if writeln!(out, "{line}").is_err() {
            return;
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_prefixed_whole() {
        let mut pending = String::new();
        assert_eq!(prefix_lines("web-1 | ", &mut pending, b"one\ntw"), ["web-1 | one"]);
        assert_eq!(prefix_lines("web-1 | ", &mut pending, b"o\r\n"), ["web-1 | two"]);
        assert!(pending.is_empty());
        assert_eq!(short_name("shop", "shop-web-1"), "web-1");
    }
}
