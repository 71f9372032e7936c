//! Where each box of the live page goes. The book draws its figures left to right, the user
//! first, then the load balancer, the web tier, the primary and its replicas; the same order
//! falls out of the topology's arrows: a node's column is the length of the longest chain of
//! arrows that leads to it. Computed here (not in the browser) so that the picture is
//! decided, and tested, in one place, and stays put when states change: only the blueprint's
//! arrows place a node, never its health or a failover.

use std::collections::BTreeMap;

use serde::Serialize;

use super::PoolRow;
use crate::topology::{EdgeKind, LiveState, Role, Topology};

/// A node's width on the page, in pixels.
pub const NODE_WIDTH: u32 = 186;
/// The user's node, which has only its name.
const USER_WIDTH: u32 = 96;
/// The space between two columns (where the arrows run).
const COLUMN_GAP: u32 = 74;
/// The space between two nodes of a column.
const ROW_GAP: u32 = 22;
/// The name line and the padding of a node.
const NODE_HEAD: u32 = 34;
/// Each detail line under the name.
const LINE_HEIGHT: u32 = 16;
/// Around the whole picture (room for the clusters' labels at the top).
const MARGIN: u32 = 40;
/// A cluster's box around its nodes.
const CLUSTER_PAD: u32 = 14;

/// The picture, in pixels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    pub clusters: Vec<PlacedCluster>,
    pub nodes: Vec<PlacedNode>,
    pub edges: Vec<PlacedEdge>,
}

/// A node with its place.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlacedNode {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// `None` for the user and volumes (nothing live to say).
    pub state: Option<LiveState>,
    pub lines: Vec<String>,
    pub column: usize,
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// A network's box.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlacedCluster {
    pub id: String,
    /// `shop_private (internal: no route out)`.
    pub label: String,
    pub internal: bool,
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// An arrow; the browser draws it from the right side of `from` to the left side of `to`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlacedEdge {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
    pub label: Option<String>,
    pub down: bool,
    /// A pool arrow: the requests the load balancer has sent this server so far.
    pub requests: Option<u64>,
}

/// Places the (overlaid) topology's nodes in columns and boxes each network's nodes.
pub fn place(topology: &Topology, pools: &[PoolRow]) -> Picture {
    let columns = columns(topology);
    let width_of = |role: Role| if role == Role::User { USER_WIDTH } else { NODE_WIDTH };
    // Each column as wide as its widest node, so the user's small node leaves no hole.
    let mut column_width: BTreeMap<usize, u32> = BTreeMap::new();
    for (n, &column) in topology.nodes.iter().zip(&columns) {
        let w = column_width.entry(column).or_default();
        *w = (*w).max(width_of(n.role));
    }
    let column_x =
        |column: usize| -> u32 { MARGIN + column_width.range(..column).map(|(_, w)| w + COLUMN_GAP).sum::<u32>() };
    let mut nodes: Vec<PlacedNode> = topology
        .nodes
        .iter()
        .zip(&columns)
        .map(|(n, &column)| {
            let lines = n.details.clone();
            let h = NODE_HEAD + LINE_HEIGHT * lines.len() as u32;
            PlacedNode {
                id: n.id.clone(),
                name: n.name.clone(),
                role: n.role,
                state: n.live,
                lines,
                column,
                x: column_x(column),
                y: 0,
                w: width_of(n.role),
                h,
            }
        })
        .collect();
    let height = stack_columns(topology, &mut nodes);
    let width = nodes.iter().map(|n| n.x + n.w).max().unwrap_or(0) + MARGIN;
    let clusters = topology
        .clusters
        .iter()
        .filter_map(|c| {
            let members: Vec<&PlacedNode> = topology
                .nodes
                .iter()
                .zip(&nodes)
                .filter(|(n, _)| n.cluster.as_deref() == Some(c.id.as_str()))
                .map(|(_, p)| p)
                .collect();
            let x = members.iter().map(|n| n.x).min()? - CLUSTER_PAD;
            let y = members.iter().map(|n| n.y).min()? - CLUSTER_PAD - LINE_HEIGHT;
            let right = members.iter().map(|n| n.x + n.w).max()? + CLUSTER_PAD;
            let bottom = members.iter().map(|n| n.y + n.h).max()? + CLUSTER_PAD;
            let note = if c.internal { " (internal: no route out)" } else { "" };
            let label = format!("network {}{note}", c.network);
            Some(PlacedCluster { id: c.id.clone(), label, internal: c.internal, x, y, w: right - x, h: bottom - y })
        })
        .collect();
    let edges = placed_edges(topology, pools);
    Picture { width, height: height + 2 * MARGIN, clusters, nodes, edges }
}

/// Each node's column: 0 for a node no arrow leads to, else one more than the furthest
/// node an arrow comes from. Bounded by the node count, so a cycle cannot loop forever.
fn columns(topology: &Topology) -> Vec<usize> {
    let index: BTreeMap<&str, usize> = topology.nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), i)).collect();
    let mut column = vec![0usize; topology.nodes.len()];
    for _ in 0..topology.nodes.len() {
        let mut moved = false;
        for e in &topology.edges {
            let (Some(&from), Some(&to)) = (index.get(e.from.as_str()), index.get(e.to.as_str())) else { continue };
            if column[to] < column[from] + 1 && column[from] < topology.nodes.len() {
                column[to] = column[from] + 1;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    column
}

/// Stacks each column's nodes top to bottom (a network's nodes together, then in the
/// topology's order) and centres every column on the tallest; returns the tallest's height.
fn stack_columns(topology: &Topology, nodes: &mut [PlacedNode]) -> u32 {
    let mut by_column: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, n) in nodes.iter().enumerate() {
        by_column.entry(n.column).or_default().push(i);
    }
    let cluster_rank = |i: usize| {
        let cluster = topology.nodes[i].cluster.as_deref();
        cluster.and_then(|c| topology.clusters.iter().position(|k| k.id == c)).unwrap_or(usize::MAX)
    };
    let column_height = |members: &[usize], nodes: &[PlacedNode]| -> u32 {
        members.iter().map(|&i| nodes[i].h).sum::<u32>() + ROW_GAP * members.len().saturating_sub(1) as u32
    };
    let tallest = by_column.values().map(|m| column_height(m, nodes)).max().unwrap_or(0);
    for members in by_column.values_mut() {
        members.sort_by_key(|&i| (cluster_rank(i), i));
        let mut y = MARGIN + (tallest - column_height(members, nodes)) / 2;
        for &i in members.iter() {
            nodes[i].y = y;
            y += nodes[i].h + ROW_GAP;
        }
    }
    tallest
}

/// The topology's arrows, pool arrows with the requests their server has had.
fn placed_edges(topology: &Topology, pools: &[PoolRow]) -> Vec<PlacedEdge> {
    let name_of: BTreeMap<&str, &str> = topology.nodes.iter().map(|n| (n.id.as_str(), n.name.as_str())).collect();
    topology
        .edges
        .iter()
        .map(|e| {
            let requests = (e.kind == EdgeKind::Pool)
                .then(|| {
                    let (lb, server) = (name_of.get(e.from.as_str())?, name_of.get(e.to.as_str())?);
                    let pool = pools.iter().find(|p| p.balancer == *lb)?;
                    pool.servers.iter().find(|s| s.server == *server).map(|s| s.total)
                })
                .flatten();
            PlacedEdge {
                from: e.from.clone(),
                to: e.to.clone(),
                kind: e.kind,
                label: e.label.clone(),
                down: e.down,
                requests,
            }
        })
        .collect()
}
