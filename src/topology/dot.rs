//! A [`Topology`] in Graphviz's DOT language (`dot -Tsvg` draws it).

use std::fmt::Write;

use super::{EdgeKind, LiveState, Node, Role, Topology};

/// A DOT string literal.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn node_line(n: &Node) -> String {
    let mut lines = vec![n.name.clone()];
    lines.extend(n.details.iter().cloned());
    if let Some(live) = n.live {
        lines.push(super::mermaid::live_word(live).to_string());
    }
    let shape = match n.role {
        Role::User => "circle",
        Role::Server => "box",
        Role::LoadBalancer => "hexagon",
        Role::Primary | Role::Replica => "cylinder",
        Role::Volume => "folder",
    };
    let colour = match n.live {
        Some(LiveState::Up) => ", color=\"#22aa22\", penwidth=2",
        Some(LiveState::Starting) => ", color=\"#dd9900\", penwidth=2",
        Some(LiveState::Down | LiveState::Missing) => ", color=\"#cc0000\", fontcolor=\"#cc0000\", penwidth=2",
        None => "",
    };
    format!("{} [label={}, shape={shape}{colour}];", n.id, quote(&lines.join("\n")))
}

/// The digraph, left to right, one `cluster_` subgraph per network (internal ones dashed).
pub fn render(t: &Topology) -> String {
    let mut out = format!("digraph {} {{\n", quote(&t.project));
    out.push_str("  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=11];\n");
    out.push_str("  edge [fontname=\"Helvetica\", fontsize=9];\n");
    for n in t.nodes.iter().filter(|n| n.cluster.is_none()) {
        let _ = writeln!(out, "  {}", node_line(n));
    }
    for c in &t.clusters {
        let title = if c.internal { format!("{} (internal)", c.network) } else { c.network.clone() };
        let _ = writeln!(out, "  subgraph cluster_{} {{", c.id);
        let _ = writeln!(out, "    label={};", quote(&title));
        let _ = writeln!(out, "    style={};", if c.internal { "dashed" } else { "solid" });
        for n in t.nodes.iter().filter(|n| n.cluster.as_deref() == Some(c.id.as_str())) {
            let _ = writeln!(out, "    {}", node_line(n));
        }
        out.push_str("  }\n");
    }
    for e in &t.edges {
        let mut attrs = Vec::new();
        if let Some(l) = &e.label {
            attrs.push(format!("label={}", quote(l)));
        }
        match e.kind {
            EdgeKind::Replication => attrs.push("style=dashed".into()),
            EdgeKind::Mount => attrs.push("dir=none".into()),
            EdgeKind::Read => attrs.push("color=\"#3366cc\"".into()),
            _ => {}
        }
        if e.down {
            attrs.push("color=\"#cc0000\", style=dotted".into());
        }
        let _ = writeln!(out, "  {} -> {} [{}];", e.from, e.to, attrs.join(", "));
    }
    out.push_str("}\n");
    out
}
