//! Incidents: what the dispatch center follows from first report to resolution.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use geo::{MultiPolygon, Point};

use crate::ids::{AgencyId, CategoryId, DistrictId, IncidentId};
use crate::lifecycle::SlaClock;
use crate::routing::RoutingDecision;

/// How serious an incident is, in OASIS CAP's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Minor.
    Minor,
    /// Moderate.
    Moderate,
    /// Severe.
    Severe,
    /// Extreme.
    Extreme,
}

impl Severity {
    /// All, from least to most serious.
    pub const ALL: [Severity; 4] = [
        Severity::Minor,
        Severity::Moderate,
        Severity::Severe,
        Severity::Extreme,
    ];

    /// Lowercase name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Minor => "minor",
            Severity::Moderate => "moderate",
            Severity::Severe => "severe",
            Severity::Extreme => "extreme",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                format!("unknown severity {s:?} (expected minor, moderate, severe or extreme)")
            })
    }
}

/// Where an incident is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IncidentStatus {
    /// Opened, not yet given to an agency.
    New,
    /// Given to an agency.
    Assigned,
    /// The agency has seen it.
    Acknowledged,
    /// The agency is working on it.
    InProgress,
    /// Fixed.
    Resolved,
    /// Done with.
    Closed,
    /// Not an incident.
    Rejected,
    /// Another incident describes the same thing.
    Duplicate,
    /// Came back after being resolved.
    Reopened,
}

impl IncidentStatus {
    /// All states.
    pub const ALL: [IncidentStatus; 9] = [
        IncidentStatus::New,
        IncidentStatus::Assigned,
        IncidentStatus::Acknowledged,
        IncidentStatus::InProgress,
        IncidentStatus::Resolved,
        IncidentStatus::Closed,
        IncidentStatus::Rejected,
        IncidentStatus::Duplicate,
        IncidentStatus::Reopened,
    ];

    /// snake_case name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::New => "new",
            IncidentStatus::Assigned => "assigned",
            IncidentStatus::Acknowledged => "acknowledged",
            IncidentStatus::InProgress => "in_progress",
            IncidentStatus::Resolved => "resolved",
            IncidentStatus::Closed => "closed",
            IncidentStatus::Rejected => "rejected",
            IncidentStatus::Duplicate => "duplicate",
            IncidentStatus::Reopened => "reopened",
        }
    }

    /// Whether the incident still needs someone to act.
    pub fn is_open(self) -> bool {
        !matches!(
            self,
            IncidentStatus::Resolved
                | IncidentStatus::Closed
                | IncidentStatus::Rejected
                | IncidentStatus::Duplicate
        )
    }
}

impl fmt::Display for IncidentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IncidentStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IncidentStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown incident status {s:?}"))
    }
}

/// One thing happening in the city, fused from one or more events.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// Identifier.
    pub id: IncidentId,
    /// Category.
    pub category: CategoryId,
    /// Severity.
    pub severity: Severity,
    /// State.
    pub status: IncidentStatus,
    /// Where it is (the first report's position).
    pub location: Point,
    /// The area it covers, when a sender declared one (a utility's outage area): a citizen's
    /// report of the same category family anywhere inside it joins this incident.
    pub area: Option<MultiPolygon>,
    /// The district containing it, if any.
    pub district: Option<DistrictId>,
    /// The agency responsible.
    pub agency: AgencyId,
    /// Why that agency, and who else could have been.
    pub routing: RoutingDecision,
    /// How many distinct events describe it.
    pub report_count: u32,
    /// The first event's description, if any (a sender's update replaces it).
    pub description: Option<String>,
    /// The subject of the sender's notices that this incident follows, if it was opened by one.
    pub external_ref: Option<String>,
    /// When Dispecer opened it.
    pub opened_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Its deadlines and their escalations (see [`crate::lifecycle`]).
    pub sla: SlaClock,
    /// The incident it was merged into (it is then `duplicate` and its reports are there).
    pub merged_into: Option<IncidentId>,
    /// Open incidents nearby that explain this one (a congestion beside a burst main or an
    /// accident), in the order they were linked; see [`crate::traffic::TrafficRules`].
    pub explained_by: Vec<IncidentId>,
}

impl Incident {
    /// Whether `agency` is responsible for this incident or is informed of it beside the one
    /// responsible (`routing.informed`): what an agency may read of it.
    pub fn concerns(&self, agency: &AgencyId) -> bool {
        &self.agency == agency || self.routing.informed.iter().any(|i| &i.agency == agency)
    }
}
