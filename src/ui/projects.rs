//! Every project on the engine, as `status --all` and `reap` show them.

use std::fmt::Write;
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::expiry::{ProjectInfo, age_text, expiry_text, format_time};

/// A fixed-width table: project, containers (running/all), networks, volumes, age, expiry.
pub fn project_table(infos: &[ProjectInfo], now: SystemTime) -> String {
    let mut rows = vec![["PROJECT", "CONTAINERS", "NETWORKS", "VOLUMES", "AGE", "EXPIRES"].map(String::from)];
    for i in infos {
        rows.push([
            i.project.clone(),
            format!("{}/{} running", i.running, i.containers),
            i.networks.to_string(),
            i.volumes.to_string(),
            age_text(i, now),
            expiry_text(i, now),
        ]);
    }
    let widths: Vec<usize> = (0..6).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let _ = write!(line, "{cell:<width$}  ", width = widths[c]);
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// The same as JSON: one object per project, times in RFC 3339.
pub fn projects_json(infos: &[ProjectInfo], now: SystemTime) -> Value {
    Value::Array(
        infos
            .iter()
            .map(|i| {
                json!({
                    "project": i.project,
                    "containers": i.containers,
                    "running": i.running,
                    "networks": i.networks,
                    "volumes": i.volumes,
                    "created": i.created.map(format_time),
                    "age_seconds": i.created.map(|c| now.duration_since(c).unwrap_or_default().as_secs()),
                    "expires_at": i.effective_expiry().map(format_time),
                    "expired": i.expired(now),
                })
            })
            .collect(),
    )
}
