//! Frames of the WebSocket stream `GET /api/v1/stream`, also the payload on agencies' topics.

use serde::{Deserialize, Serialize};

use model::lifecycle::Escalation;
use model::Incident;

use crate::incident::{timestamp, IncidentCollection, IncidentFeature};

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
        /// Present when the change is an escalation (a missed deadline), which the supervisors
        /// are told of besides the agency.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        escalation: Option<EscalationDto>,
        /// `true` (WebSocket only) when this change takes the incident out of the client's filter
        /// (moved out of its box, reassigned away from its agency, another category, no longer
        /// open): the client drops it and hears no more of it unless it comes back. This is the
        /// one frame it gets about it; absent otherwise.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        left_filter: bool,
    },
}

/// An escalation on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscalationDto {
    /// `acknowledge` or `resolve`: the deadline missed.
    pub deadline: String,
    /// RFC 3339: when it was due.
    pub due: Option<String>,
    /// The severity before.
    pub severity_before: String,
    /// The severity now.
    pub severity: String,
    /// Who is told: `supervisors` and `agency:{id}`.
    pub notified: Vec<String>,
}

impl EscalationDto {
    /// The escalation of `incident` (as it is after it).
    pub fn new(escalation: &Escalation, incident: &Incident) -> Self {
        EscalationDto {
            deadline: escalation.deadline.as_str().into(),
            due: escalation.due.map(timestamp),
            severity_before: escalation.severity_before.as_str().into(),
            severity: escalation.severity.as_str().into(),
            notified: vec!["supervisors".into(), format!("agency:{}", incident.agency)],
        }
    }
}
