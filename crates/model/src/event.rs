//! Inbound events: what a citizen, utility, sensor or operator tells Dispecer.

use chrono::{DateTime, Utc};
use geo::{MultiPolygon, Point};

use crate::ids::{CategoryId, EventId};

/// Who sent an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A citizen's report.
    Citizen,
    /// A utility company, by its operator id.
    Utility(String),
    /// Dispecer itself, by the component that derived the event from what it observed (e.g.
    /// `traffic`: congestion detected on the counters' readings).
    System(String),
}

impl Source {
    /// Stable name used in storage and logs, e.g. `citizen` or `utility:apa-brasov`.
    pub fn as_label(&self) -> String {
        match self {
            Source::Citizen => "citizen".to_owned(),
            Source::Utility(op) => format!("utility:{op}"),
            Source::System(component) => format!("system:{component}"),
        }
    }
}

/// What an event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A report of a problem (a citizen's).
    Report,
    /// A sender's notice about something it follows (an outage, a fault, planned works); a later
    /// notice with the same subject updates it.
    Notice,
    /// The sender says the thing its subject names is over (service restored, alert cancelled).
    Restored,
}

impl EventKind {
    /// Lowercase name used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Report => "report",
            EventKind::Notice => "notice",
            EventKind::Restored => "restored",
        }
    }
}

/// An event, validated against the city, ready for the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Identity for idempotency: the same id delivered again has no further effect.
    pub id: EventId,
    /// What the event is about, stable across a sender's updates (e.g.
    /// `utility:apa-brasov:avarie-17`); `None` for one-off reports.
    pub subject: Option<String>,
    /// Who sent it.
    pub source: Source,
    /// What it says.
    pub kind: EventKind,
    /// Category.
    pub category: CategoryId,
    /// Where (longitude, latitude); for a notice about an area, a point inside it.
    pub location: Point,
    /// The area a sender's notice covers (a utility's declared outage: a GeoJSON Polygon or
    /// MultiPolygon, a CAP alert's polygons); `None` for a point or a line.
    pub area: Option<MultiPolygon>,
    /// Free text from the sender.
    pub description: Option<String>,
    /// When the sender says it happened.
    pub occurred_at: DateTime<Utc>,
    /// When Dispecer received it.
    pub received_at: DateTime<Utc>,
    /// The original payload, kept verbatim in the event log (a citizen's contact removed: it is
    /// personal data, kept apart in [`Event::contact`]).
    pub payload: String,
    /// How to reach the citizen who reported it, if they said: personal data, stored apart from
    /// the report so that it can be erased or expire while the report stays.
    pub contact: Option<CitizenContact>,
}

/// A citizen's contact details (personal data under the GDPR). At least one field is set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CitizenContact {
    /// Name.
    pub name: Option<String>,
    /// E-mail address, lowercased.
    pub email: Option<String>,
    /// Phone number, as given (digits, spaces, `+`, `-`, `(`, `)`).
    pub phone: Option<String>,
}
