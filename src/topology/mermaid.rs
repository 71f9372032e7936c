//! A [`Topology`] as a Mermaid flowchart (GitHub renders these in Markdown, so the README's
//! stage diagrams are this text).

use std::fmt::Write;

use super::{EdgeKind, LiveState, Node, Role, Topology};

/// Quotes a label for Mermaid (`"` has no escape but an entity; lines join with `<br/>`).
fn label(lines: &[String]) -> String {
    let text = lines.iter().map(|l| l.replace('"', "#quot;")).collect::<Vec<_>>().join("<br/>");
    format!("\"{text}\"")
}

fn node_line(n: &Node) -> String {
    let mut lines = vec![n.name.clone()];
    lines.extend(n.details.iter().cloned());
    if let Some(live) = n.live {
        lines.push(live_word(live).to_string());
    }
    let text = label(&lines);
    match n.role {
        Role::User => format!("{}(({text}))", n.id),
        Role::Server => format!("{}[{text}]", n.id),
        Role::LoadBalancer => format!("{}{{{{{text}}}}}", n.id),
        Role::Primary | Role::Replica => format!("{}[({text})]", n.id),
        Role::Volume => format!("{}[/{text}/]", n.id),
    }
}

/// How a live state reads under a node's name.
pub fn live_word(state: LiveState) -> &'static str {
    match state {
        LiveState::Up => "● up",
        LiveState::Starting => "◐ starting",
        LiveState::Down => "✖ down",
        LiveState::Missing => "✖ missing",
    }
}

/// The flowchart, left to right, one subgraph per cluster; live down nodes and arrows red.
pub fn render(t: &Topology) -> String {
    let mut out = String::from("flowchart LR\n");
    for n in t.nodes.iter().filter(|n| n.cluster.is_none()) {
        let _ = writeln!(out, "  {}", node_line(n));
    }
    for c in &t.clusters {
        let title = if c.internal { format!("{} (internal)", c.network) } else { c.network.clone() };
        let _ = writeln!(out, "  subgraph {}[{}]", c.id, label(&[title]));
        for n in t.nodes.iter().filter(|n| n.cluster.as_deref() == Some(c.id.as_str())) {
            let _ = writeln!(out, "    {}", node_line(n));
        }
        out.push_str("  end\n");
    }
    for e in &t.edges {
        let text = e.label.as_ref().map(|l| label(std::slice::from_ref(l)));
        let line = match (e.kind, text) {
            (EdgeKind::Replication, Some(l)) => format!("{} -. {l} .-> {}", e.from, e.to),
            (EdgeKind::Replication, None) => format!("{} -.-> {}", e.from, e.to),
            (EdgeKind::Mount, Some(l)) => format!("{} -- {l} --- {}", e.from, e.to),
            (EdgeKind::Mount, None) => format!("{} --- {}", e.from, e.to),
            (_, Some(l)) => format!("{} -- {l} --> {}", e.from, e.to),
            (_, None) => format!("{} --> {}", e.from, e.to),
        };
        let _ = writeln!(out, "  {line}");
    }
    live_styles(t, &mut out);
    out
}

/// Colours for `--live`: nothing at all for a plain graph, so the README's stays clean.
fn live_styles(t: &Topology, out: &mut String) {
    if t.nodes.iter().all(|n| n.live.is_none()) {
        return;
    }
    out.push_str("  classDef up stroke:#2a2,stroke-width:2px\n");
    out.push_str("  classDef starting stroke:#d90,stroke-width:2px\n");
    out.push_str("  classDef down fill:#fdd,stroke:#c00,stroke-width:2px\n");
    for n in &t.nodes {
        let class = match n.live {
            Some(LiveState::Up) => "up",
            Some(LiveState::Starting) => "starting",
            Some(LiveState::Down | LiveState::Missing) => "down",
            None => continue,
        };
        let _ = writeln!(out, "  class {} {class}", n.id);
    }
    for (i, _) in t.edges.iter().enumerate().filter(|(_, e)| e.down) {
        let _ = writeln!(out, "  linkStyle {i} stroke:#c00,stroke-dasharray:4");
    }
}
