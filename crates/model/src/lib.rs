//! Dispecer's domain: the city (categories, agencies, jurisdictions, districts, sensor sites),
//! inbound events, incidents, routing and fusion.
//!
//! Boundary: this crate does no I/O and knows no wire format (no JSON, SQL or MQTT). Wire types
//! live in `protocol`, storage rows in `store`; both convert to and from the types here.
//!
//! Invariant: every coordinate is (longitude, latitude) in WGS 84 degrees; every distance is in
//! meters, measured with the haversine formula.

pub mod city;
pub mod event;
pub mod fusion;
pub mod geometry;
pub mod grid;
pub mod i18n;
pub mod ids;
pub mod incident;
pub mod lifecycle;
pub mod pip;
pub mod reading;
pub mod routing;
pub mod traffic;
pub mod warning;

pub use city::{Agency, Area, Category, City, Contact, District, InformTarget, SensorSite};
pub use event::{CitizenContact, Event, EventKind, Source};
pub use fusion::IncidentIndex;
pub use i18n::{Language, Localized};
pub use ids::{AgencyId, AreaId, CategoryId, DistrictId, EventId, IncidentId, SensorId};
pub use incident::{Incident, IncidentStatus, Severity};
pub use lifecycle::{Action, ActionKind, Deadlines, SlaClock, SlaPolicy, TransitionError};
pub use reading::Reading;
pub use routing::{
    override_report, CityIndex, InformRule, Informed, Jurisdictions, RouteCandidate,
    RoutingDecision, RoutingRule, RuleOverrides,
};
pub use warning::{
    WarningArea, WarningError, WarningMessage, WarningOp, WarningText, WarningVersion,
};
