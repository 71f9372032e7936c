//! How a plan reads: one line per action, `verb target: reason`, for humans; a documented,
//! versioned JSON document for machines (see README "plan --output json").

use std::fmt::Write;

use serde::Serialize;

use super::{Op, Plan, Resource, Verb};

fn symbol(op: &Op) -> char {
    match op.verb() {
        Verb::Create | Verb::Build | Verb::Pull => '+',
        Verb::Recreate | Verb::Reload | Verb::Reseed => '~',
        Verb::Start | Verb::Reconnect | Verb::Migrate | Verb::Reshard => '>',
        Verb::Remove => '-',
    }
}

/// The plan as a user reads it. Stable: it is snapshot-tested.
pub fn render_text(plan: &Plan) -> String {
    let mut out = String::new();
    if !plan.has_changes() {
        let _ = writeln!(out, "No changes: project {} matches the blueprint.", plan.project);
    } else {
        let counts = plan.counts();
        // `counts` is ordered by `Verb`, which is the summary's order.
        let summary: Vec<String> = counts.iter().map(|(verb, n)| format!("{n} to {verb}")).collect();
        let _ = writeln!(out, "Plan for project {}: {}", plan.project, summary.join(", "));
        for action in &plan.actions {
            let _ = writeln!(
                out,
                "  {} {} {}: {}",
                symbol(&action.op),
                action.op.verb(),
                action.op.target(),
                action.reason
            );
        }
        for rollout in &plan.rollouts {
            let _ = writeln!(out, "  {}", rollout.describe(plan));
        }
    }
    for note in &plan.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    out
}

/// Version of the JSON plan document; bumped only on incompatible changes.
pub const PLAN_FORMAT_VERSION: u32 = 1;

#[derive(Serialize)]
struct PlanDoc<'a> {
    format_version: u32,
    project: &'a str,
    changes: bool,
    summary: std::collections::BTreeMap<Verb, usize>,
    actions: Vec<ActionDoc<'a>>,
    notes: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    rollouts: &'a [super::Rollout],
}

#[derive(Serialize)]
struct ActionDoc<'a> {
    id: usize,
    action: Verb,
    resource: Resource,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<&'a str>,
    reason: &'a str,
    after: &'a [usize],
}

/// The plan as the stable JSON document CI consumes.
pub fn render_json(plan: &Plan) -> serde_json::Value {
    let doc = PlanDoc {
        format_version: PLAN_FORMAT_VERSION,
        project: &plan.project,
        changes: plan.has_changes(),
        summary: plan.counts(),
        actions: plan
            .actions
            .iter()
            .map(|a| ActionDoc {
                id: a.id,
                action: a.op.verb(),
                resource: a.op.resource(),
                name: a.op.name(),
                service: a.service.as_deref(),
                reason: &a.reason,
                after: &a.after,
            })
            .collect(),
        notes: &plan.notes,
        rollouts: &plan.rollouts,
    };
    serde_json::to_value(doc).expect("plan documents always serialize")
}
