//! The values the store takes and gives back, besides the model's own.

use std::fmt;

use chrono::{DateTime, Utc};

use model::{AgencyId, CategoryId, EventId, Incident, IncidentStatus};

/// The database behind a [`Store`](crate::Store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// An SQLite file (the embedded default) or an in-memory database.
    Sqlite,
    /// PostgreSQL without TimescaleDB.
    Postgres,
    /// PostgreSQL with TimescaleDB: the event log is a hypertable.
    Timescale,
}

impl Backend {
    /// Lowercase name for logs and metrics: `sqlite`, `postgresql` or `timescaledb`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
            Backend::Timescale => "timescaledb",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`Store::record`](crate::Store::record) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The event, the incident and the timeline entry are durable.
    Stored,
    /// The event id was already recorded; nothing was written.
    Duplicate,
}

/// An incident as it is after an event, and how the event changed it.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentChange {
    /// The incident's new state, written as a whole.
    pub incident: Incident,
    /// What the event did to it.
    pub kind: ChangeKind,
}

/// How an event changed an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// The event opened the incident.
    Opened,
    /// The event joined an open incident as one more report.
    ReportJoined,
    /// The sender updated the notice the incident follows.
    Updated,
    /// The sender said it is over: the incident is resolved.
    Resolved,
}

impl ChangeKind {
    /// snake_case name, the timeline entry's `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Opened => "opened",
            ChangeKind::ReportJoined => "report_joined",
            ChangeKind::Updated => "updated",
            ChangeKind::Resolved => "resolved",
        }
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which incidents [`Store::incidents`](crate::Store::incidents) returns. Conditions combine with
/// AND; the default is the newest 1000 incidents.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncidentFilter {
    /// West, south, east, north (longitude, latitude degrees, edges included). West greater than
    /// east means the box crosses the antimeridian.
    pub bbox: Option<[f64; 4]>,
    /// Any of these statuses; empty means any status.
    pub statuses: Vec<IncidentStatus>,
    /// Only this category.
    pub category: Option<CategoryId>,
    /// Only incidents assigned to this agency.
    pub agency: Option<AgencyId>,
    /// Only incidents this agency is responsible for or informed of (`routing.informed`): what
    /// an agency's user or token may read.
    pub visible_to: Option<AgencyId>,
    /// Only incidents changed at or after this time (`updated_at`): e.g. the last 7 days.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// At most this many, newest first; default [`DEFAULT_LIMIT`](crate::DEFAULT_LIMIT), capped
    /// at [`MAX_LIMIT`](crate::MAX_LIMIT).
    pub limit: Option<u32>,
}

/// One event of an incident, as the event log has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSummary {
    /// The event's id.
    pub id: EventId,
    /// Its source label (`citizen`, `utility:apa-brasov`).
    pub source: String,
    /// When Dispecer received it.
    pub received_at: DateTime<Utc>,
}

/// Where an accepted event is and what it is ([`Store::event_place`](crate::Store::event_place)).
#[derive(Debug, Clone, PartialEq)]
pub struct EventPlace {
    /// Its category.
    pub category: CategoryId,
    /// Where it is.
    pub location: geo::Point,
    /// The incident it is in now.
    pub incident: model::IncidentId,
    /// Its subject, when it is a sender's notice.
    pub subject: Option<String>,
}

/// One entry of an incident's history.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEntry {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened: a [`ChangeKind`] name (e.g. `opened`), an action's name (e.g.
    /// `acknowledge`) or `escalated`.
    pub kind: String,
    /// Who caused it: the event's source label, the acting person or agency, or `system`.
    pub actor: String,
    /// Why, as the actor said (actions) or the engine recorded (escalations).
    pub reason: Option<String>,
    /// The state before, where the entry records one.
    pub from: Option<IncidentStatus>,
    /// The state after, where the entry records one.
    pub to: Option<IncidentStatus>,
    /// Particulars, a JSON object (see [`Store::record`](crate::Store::record)).
    pub detail: serde_json::Value,
}

/// A timeline entry to write with [`Store::record_transition`](crate::Store::record_transition).
#[derive(Debug, Clone, PartialEq)]
pub struct NewTimelineEntry {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened, e.g. `acknowledge` or `escalated`.
    pub kind: String,
    /// Who did it, e.g. `agency:apa-brasov` or `system`.
    pub actor: String,
    /// Why.
    pub reason: Option<String>,
    /// The state before.
    pub from: Option<IncidentStatus>,
    /// The state after.
    pub to: Option<IncidentStatus>,
    /// The id the actor gave this request (e.g. an agency's update id): a second entry with the
    /// same actor and id is refused, see
    /// [`Store::known_request`](crate::Store::known_request).
    pub request_id: Option<String>,
    /// Particulars, a JSON object.
    pub detail: serde_json::Value,
}

/// An inbound message that could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeadLetter {
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// How it arrived: `mqtt` or `http`.
    pub channel: String,
    /// MQTT topic or HTTP path.
    pub topic: String,
    /// The message, verbatim.
    pub payload: Vec<u8>,
    /// Why it was refused.
    pub reason: String,
}

/// A stored dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its number, increasing.
    pub id: i64,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// How it arrived: `mqtt` or `http`.
    pub channel: String,
    /// MQTT topic or HTTP path.
    pub topic: String,
    /// The message, verbatim.
    pub payload: Vec<u8>,
    /// Why it was refused.
    pub reason: String,
}
