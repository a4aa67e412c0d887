//! Frames of the WebSocket stream `GET /api/v1/stream`, also the payload on agencies' topics.

use serde::{Deserialize, Serialize};

use crate::incident::{IncidentCollection, IncidentFeature};

/// What happened to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// A new incident.
    Opened,
    /// An existing incident changed (a report joined it, its state changed, …).
    Updated,
}

/// One frame, JSON text, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamFrame {
    /// The whole current picture: sent first, and again to a client that fell behind.
    Snapshot {
        /// Open incidents.
        incidents: IncidentCollection,
    },
    /// One incident changed.
    Incident {
        /// Opened or updated.
        change: Change,
        /// Its new state.
        incident: Box<IncidentFeature>,
    },
}
