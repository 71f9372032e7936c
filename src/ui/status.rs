//! Tables a user reads: the project's containers and its endpoints.

use std::fmt::Write;

use crate::observed::{Endpoint, ObservedState};

/// `web → http://127.0.0.1:49153` lines, one per published port.
pub fn endpoint_lines(endpoints: &[Endpoint]) -> Vec<String> {
    endpoints
        .iter()
        .map(|e| {
            let address =
                e.url.clone().unwrap_or_else(|| format!("{}:{}/{}", e.host_ip, e.host_port, e.protocol.as_str()));
            format!("{} → {}  ({} port {})", e.service, address, e.container, e.container_port)
        })
        .collect()
}

/// A fixed-width table of the project's containers.
pub fn container_table(observed: &ObservedState) -> String {
    let mut rows = vec![["NAME", "SERVICE", "STATE", "HEALTH", "IMAGE", "PORTS"].map(String::from).to_vec()];
    for c in observed.containers.values() {
        let ports: Vec<String> = c
            .ports
            .iter()
            .map(|p| format!("{}:{}->{}/{}", p.host_ip, p.host_port, p.container_port, p.protocol.as_str()))
            .collect();
        let state = match (c.state, c.exit_code) {
            (crate::observed::RunState::Exited, Some(code)) => format!("exited ({code})"),
            (state, _) => state.as_str().to_string(),
        };
        rows.push(vec![
            c.name.clone(),
            c.service().unwrap_or("-").to_string(),
            state,
            c.health.map_or("-", |h| h.as_str()).to_string(),
            c.image.clone(),
            if ports.is_empty() { "-".into() } else { ports.join(", ") },
        ]);
    }
    let widths: Vec<usize> = (0..6).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}
