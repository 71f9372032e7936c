//! The replica count an autoscaler chose, kept in the engine as a marker volume (like the
//! primary markers of `kind: postgres`): a later `scale apply`, another shell's `scale
//! watch` and `scale status` all read it there, so none of them undoes the autoscaler.

use std::collections::BTreeMap;

use crate::labels::{PROJECT, SCALED_COUNT_LABEL, SCALED_SERVICE_LABEL, SCALED_SINCE_LABEL};
use crate::spec::{VolumeSpec, scoped_name};

/// The marker volume saying `service` runs `count` containers since `since` (Unix seconds).
/// Volume labels cannot change, so each decision is a new volume, named after its time;
/// the newest one counts and older ones are removed by whoever writes a new one.
pub fn marker_volume(project: &str, service: &str, count: u32, since: u64) -> VolumeSpec {
    VolumeSpec {
        name: scoped_name(project, &format!("{service}-replicas-{since}-{count}")),
        labels: BTreeMap::from([
            (PROJECT.to_string(), project.to_string()),
            (SCALED_SERVICE_LABEL.to_string(), service.to_string()),
            (SCALED_COUNT_LABEL.to_string(), count.to_string()),
            (SCALED_SINCE_LABEL.to_string(), since.to_string()),
        ]),
    }
}

/// What one marker volume says, read back from its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaledMarker {
    pub service: String,
    pub count: u32,
    pub since: u64,
    pub volume: String,
}

/// Reads a marker from a volume's name and labels; `None` for any other volume.
pub fn read_marker(volume: &str, labels: &BTreeMap<String, String>) -> Option<ScaledMarker> {
    Some(ScaledMarker {
        service: labels.get(SCALED_SERVICE_LABEL)?.clone(),
        count: labels.get(SCALED_COUNT_LABEL)?.parse().ok()?,
        since: labels.get(SCALED_SINCE_LABEL).and_then(|s| s.parse().ok()).unwrap_or(0),
        volume: volume.to_string(),
    })
}
