//! A city as data: what it is, what can go wrong in it and who acts on it.

use chrono::Duration;
use geo::{MultiPolygon, Point, Rect};

use crate::i18n::{Language, Localized};
use crate::ids::{AgencyId, AreaId, CategoryId, DistrictId, SensorId};
use crate::incident::Severity;
use crate::lifecycle::SlaPolicy;

/// A city, as loaded and validated from its folder (see the `city` crate).
#[derive(Debug, Clone)]
pub struct City {
    /// Short identifier, e.g. `brasov`.
    pub id: String,
    /// The city's name.
    pub name: Localized,
    /// The language shown first.
    pub default_language: Language,
    /// Languages offered, default first.
    pub languages: Vec<Language>,
    /// IANA time zone, e.g. `Europe/Bucharest`.
    pub time_zone: String,
    /// West, south, east, north in degrees.
    pub bounds: Rect,
    /// Where maps open.
    pub center: Point,
    /// The municipality: the area of "whole city" jurisdictions.
    pub boundary: MultiPolygon,
    /// Districts, tiling the municipality.
    pub districts: Vec<District>,
    /// Incident categories.
    pub categories: Vec<Category>,
    /// Agencies.
    pub agencies: Vec<Agency>,
    /// Fixed sensor sites.
    pub sensors: Vec<SensorSite>,
    /// The agency that takes what nobody else covers (the city hall dispatch).
    pub fallback_agency: AgencyId,
    /// How traffic congestion is detected and explained (`city.toml`, `[traffic]`).
    pub traffic: crate::traffic::TrafficRules,
}

impl City {
    /// The category with this id.
    pub fn category(&self, id: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.id.as_str() == id)
    }

    /// The agency with this id.
    pub fn agency(&self, id: &str) -> Option<&Agency> {
        self.agencies.iter().find(|a| a.id.as_str() == id)
    }

    /// The district with this id.
    pub fn district(&self, id: &str) -> Option<&District> {
        self.districts.iter().find(|d| d.id.as_str() == id)
    }
}

/// A district (cartier) of the city.
#[derive(Debug, Clone)]
pub struct District {
    /// Identifier, e.g. `tractorul`.
    pub id: DistrictId,
    /// Proper name, e.g. `Tractorul`.
    pub name: String,
    /// Its area.
    pub area: MultiPolygon,
}

/// A kind of incident, with the rules the engine applies to it.
#[derive(Debug, Clone)]
pub struct Category {
    /// Identifier, e.g. `pothole`.
    pub id: CategoryId,
    /// Name in both languages.
    pub name: Localized,
    /// Group of related categories, e.g. `water`.
    pub family: String,
    /// Severity of a new incident of this category.
    pub default_severity: Severity,
    /// The kind of agency that handles it, e.g. `water`.
    pub agency_kind: String,
    /// Two events of this category closer than this (meters) may be one incident.
    pub merge_radius_m: f64,
    /// ...if the incident was updated within this window.
    pub merge_window: Duration,
    /// Deadlines to acknowledge and to resolve, per severity.
    pub sla: SlaPolicy,
    /// Who else is told of its incidents, beside the responsible agency (a burst water main on
    /// a road: the traffic police and public transport).
    pub inform: Vec<InformTarget>,
}

/// Someone a category's incidents are also told about, beside the responsible agency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InformTarget {
    /// This agency, wherever the incident is.
    Agency(AgencyId),
    /// The agency of this kind (e.g. `traffic_police`) whose jurisdiction contains the place:
    /// the lowest priority number, then the smallest area, then the agency id.
    Kind(String),
}

/// How to reach an agency.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contact {
    /// Phone number of its dispatch.
    pub phone: Option<String>,
    /// E-mail of its dispatch.
    pub email: Option<String>,
    /// Web page.
    pub url: Option<String>,
}

/// One area of an agency's jurisdiction.
#[derive(Debug, Clone)]
pub struct Area {
    /// Identifier, unique within the agency (a district id, `city`, or the file's feature id).
    pub id: AreaId,
    /// Name shown to people.
    pub name: String,
    /// The area.
    pub geometry: MultiPolygon,
}

/// An agency, utility or department that acts on incidents.
#[derive(Debug, Clone)]
pub struct Agency {
    /// Identifier, e.g. `apa-brasov`.
    pub id: AgencyId,
    /// Kind, matched with categories' `agency_kind`, e.g. `water`.
    pub kind: String,
    /// Name in both languages.
    pub name: Localized,
    /// Categories it handles.
    pub categories: Vec<CategoryId>,
    /// Lower is asked first when several agencies could take an incident.
    pub priority: i32,
    /// How to reach it.
    pub contact: Contact,
    /// Where it acts (the union of these areas).
    pub areas: Vec<Area>,
}

impl Agency {
    /// Whether it handles `category`.
    pub fn handles(&self, category: &CategoryId) -> bool {
        self.categories.contains(category)
    }
}

/// A fixed traffic counter.
#[derive(Debug, Clone)]
pub struct SensorSite {
    /// Identifier, e.g. `tc-eroilor-e`.
    pub id: SensorId,
    /// Name shown to people.
    pub name: String,
    /// Where it is.
    pub location: Point,
    /// Road it counts.
    pub road: String,
    /// Compass direction of the traffic it counts.
    pub direction: String,
    /// Free-flow speed, km/h.
    pub free_flow_speed_kmh: f64,
    /// Lanes counted.
    pub lanes: u32,
}
