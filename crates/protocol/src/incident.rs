//! Incidents on the wire: a GeoJSON Feature (RFC 7946) with the incident's properties, used by
//! the REST API, the WebSocket stream and the agencies' topics alike.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use model::{Incident, RouteCandidate, RoutingDecision};

/// A GeoJSON Point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PointGeometry {
    /// Always `Point`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `[longitude, latitude]`, 6 decimals.
    pub coordinates: [f64; 2],
}

impl PointGeometry {
    /// A point from (longitude, latitude), rounded to 6 decimals (about 10 cm).
    pub fn new(lon: f64, lat: f64) -> Self {
        let r = |v: f64| (v * 1e6).round() / 1e6;
        PointGeometry {
            kind: "Point".into(),
            coordinates: [r(lon), r(lat)],
        }
    }
}

/// One candidate agency and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RouteDto {
    /// Agency id.
    pub agency: String,
    /// `jurisdiction` or `fallback`.
    pub rule: String,
    /// The area of the agency's jurisdiction containing the place.
    pub area: Option<String>,
}

impl From<&RouteCandidate> for RouteDto {
    fn from(c: &RouteCandidate) -> Self {
        RouteDto {
            agency: c.agency.to_string(),
            rule: c.rule.as_str().into(),
            area: c.area.as_ref().map(|a| a.as_str().to_owned()),
        }
    }
}

/// An agency told of an incident beside the responsible one, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InformedDto {
    /// Agency id.
    pub agency: String,
    /// `category_kind` (the category names the agency's kind, and its area contains the place)
    /// or `category_agency` (the category names the agency).
    pub rule: String,
    /// The area of the agency's jurisdiction containing the place (`category_kind`).
    pub area: Option<String>,
}

/// Why an incident went to its agency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RoutingDto {
    /// Agency chosen.
    pub agency: String,
    /// Rule that chose it.
    pub rule: String,
    /// Area that contains the place.
    pub area: Option<String>,
    /// The other candidates, best first.
    pub alternatives: Vec<RouteDto>,
    /// The agencies informed beside the responsible one (they receive the incident on their
    /// topics too), with why.
    #[serde(default)]
    pub informed: Vec<InformedDto>,
}

impl From<&RoutingDecision> for RoutingDto {
    fn from(d: &RoutingDecision) -> Self {
        RoutingDto {
            agency: d.chosen.agency.to_string(),
            rule: d.chosen.rule.as_str().into(),
            area: d.chosen.area.as_ref().map(|a| a.as_str().to_owned()),
            alternatives: d.alternatives.iter().map(RouteDto::from).collect(),
            informed: d
                .informed
                .iter()
                .map(|i| InformedDto {
                    agency: i.agency.to_string(),
                    rule: i.rule.as_str().into(),
                    area: i.area.as_ref().map(|a| a.as_str().to_owned()),
                })
                .collect(),
        }
    }
}

/// An incident's properties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IncidentProperties {
    /// Incident id.
    pub id: String,
    /// `new`, `assigned`, …
    pub status: String,
    /// Category id.
    pub category: String,
    /// `minor`, `moderate`, `severe` or `extreme`.
    pub severity: String,
    /// Responsible agency id.
    pub agency: String,
    /// District id.
    pub district: Option<String>,
    /// Number of distinct events describing it.
    pub report_count: u32,
    /// First description.
    pub description: Option<String>,
    /// RFC 3339.
    pub opened_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Routing decision.
    pub routing: RoutingDto,
    /// RFC 3339: when the agency must have acknowledged it; `null` if it has no deadline
    /// (incidents from before deadlines existed). Stays after the acknowledgement.
    #[serde(default)]
    pub ack_due: Option<String>,
    /// RFC 3339: when it must be resolved; `null` if it has no deadline.
    #[serde(default)]
    pub resolve_due: Option<String>,
    /// Past a deadline it still has to meet (acknowledgement while not yet acknowledged,
    /// resolution while open), as of when this was sent.
    #[serde(default)]
    pub overdue: bool,
    /// It missed a deadline and was escalated (its severity was raised).
    #[serde(default)]
    pub escalated: bool,
    /// The incident an operator merged it into (it is then `duplicate`, its reports there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    /// Open incidents nearby that explain it (a congestion beside a burst water main or an
    /// accident), ids in the order they were linked; absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub explained_by: Vec<String>,
}

/// An incident as a GeoJSON Feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IncidentFeature {
    /// Always `Feature`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Incident id.
    pub id: String,
    /// Where.
    pub geometry: PointGeometry,
    /// What.
    pub properties: IncidentProperties,
}

/// RFC 3339 with milliseconds and `Z`.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl From<&Incident> for IncidentFeature {
    /// The feature as of now (see [`IncidentFeature::at`]).
    fn from(i: &Incident) -> Self {
        IncidentFeature::at(i, Utc::now())
    }
}

impl IncidentFeature {
    /// The feature of `i` as of `now`, which decides `overdue`.
    pub fn at(i: &Incident, now: DateTime<Utc>) -> Self {
        IncidentFeature {
            kind: "Feature".into(),
            id: i.id.to_string(),
            geometry: PointGeometry::new(i.location.x(), i.location.y()),
            properties: IncidentProperties {
                id: i.id.to_string(),
                status: i.status.as_str().into(),
                category: i.category.to_string(),
                severity: i.severity.as_str().into(),
                agency: i.agency.to_string(),
                district: i.district.as_ref().map(|d| d.to_string()),
                report_count: i.report_count,
                description: i.description.clone(),
                opened_at: timestamp(i.opened_at),
                updated_at: timestamp(i.updated_at),
                routing: RoutingDto::from(&i.routing),
                ack_due: i.sla.ack_due.map(timestamp),
                resolve_due: i.sla.resolve_due.map(timestamp),
                overdue: model::lifecycle::is_overdue(i, now),
                escalated: i.sla.escalated(),
                merged_into: i.merged_into.as_ref().map(|m| m.to_string()),
                explained_by: i.explained_by.iter().map(|e| e.to_string()).collect(),
            },
        }
    }
}

/// Incidents as a GeoJSON FeatureCollection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IncidentCollection {
    /// Always `FeatureCollection`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The incidents.
    pub features: Vec<IncidentFeature>,
}

impl IncidentCollection {
    /// A collection of `incidents`, as of now.
    pub fn new<'a>(incidents: impl IntoIterator<Item = &'a Incident>) -> Self {
        Self::at(incidents, Utc::now())
    }

    /// A collection of `incidents` as of `now` (see [`IncidentFeature::at`]).
    pub fn at<'a>(incidents: impl IntoIterator<Item = &'a Incident>, now: DateTime<Utc>) -> Self {
        IncidentCollection {
            kind: "FeatureCollection".into(),
            features: incidents
                .into_iter()
                .map(|i| IncidentFeature::at(i, now))
                .collect(),
        }
    }
}
