//! Rows as the database holds them, and their conversion to and from the model.
//!
//! Invariant: a row that does not parse back into the model is reported as
//! [`StoreError::Corrupt`], never unwrapped.

use chrono::{DateTime, SubsecRound, Utc};
use geo::{Coord, LineString, MultiPolygon, Point, Polygon};
use serde::{Deserialize, Serialize};

use model::{
    AreaId, EventId, Incident, IncidentId, IncidentStatus, InformRule, Informed, RouteCandidate,
    RoutingDecision, RoutingRule, Severity, SlaClock,
};

use crate::types::{DeadLetter, EventSummary, TimelineEntry};
use crate::StoreError;

/// The instant as stored: PostgreSQL keeps microseconds, so both backends drop anything finer.
pub(crate) fn stored_time(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// The `routing` column: `{"chosen":{...},"alternatives":[...],"informed":[...]}` (`informed`
/// absent in rows written before it existed).
#[derive(Debug, Serialize, Deserialize)]
struct RoutingJson {
    chosen: CandidateJson,
    alternatives: Vec<CandidateJson>,
    #[serde(default)]
    informed: Vec<InformedJson>,
}

#[derive(Debug, Serialize, Deserialize)]
struct InformedJson {
    agency: String,
    rule: String,
    area: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CandidateJson {
    agency: String,
    rule: String,
    area: Option<String>,
}

impl From<&RouteCandidate> for CandidateJson {
    fn from(c: &RouteCandidate) -> Self {
        CandidateJson {
            agency: c.agency.as_str().to_owned(),
            rule: c.rule.as_str().to_owned(),
            area: c.area.as_ref().map(|a| a.as_str().to_owned()),
        }
    }
}

impl CandidateJson {
    fn into_model(self) -> Option<RouteCandidate> {
        Some(RouteCandidate {
            agency: self.agency.as_str().into(),
            rule: RoutingRule::parse(&self.rule)?,
            area: self.area.map(AreaId::new),
        })
    }
}

/// The `routing` column's text for a decision.
pub(crate) fn routing_json(routing: &RoutingDecision) -> String {
    let json = RoutingJson {
        chosen: (&routing.chosen).into(),
        alternatives: routing.alternatives.iter().map(Into::into).collect(),
        informed: routing
            .informed
            .iter()
            .map(|i| InformedJson {
                agency: i.agency.as_str().to_owned(),
                rule: i.rule.as_str().to_owned(),
                area: i.area.as_ref().map(|a| a.as_str().to_owned()),
            })
            .collect(),
    };
    // Serialising plain strings into a JSON value cannot fail; fall back to an object that
    // reads back as corrupt rather than panicking.
    serde_json::to_string(&json).unwrap_or_else(|_| "{}".to_owned())
}

pub(crate) fn parse_routing(text: &str) -> Option<RoutingDecision> {
    let json: RoutingJson = serde_json::from_str(text).ok()?;
    Some(RoutingDecision {
        chosen: json.chosen.into_model()?,
        alternatives: json
            .alternatives
            .into_iter()
            .map(CandidateJson::into_model)
            .collect::<Option<_>>()?,
        informed: json
            .informed
            .into_iter()
            .map(|i| {
                Some(Informed {
                    agency: i.agency.as_str().into(),
                    rule: InformRule::parse(&i.rule)?,
                    area: i.area.map(AreaId::new),
                })
            })
            .collect::<Option<_>>()?,
    })
}

/// The `area` column: GeoJSON MultiPolygon coordinates, `[[[[lon, lat], ...], ...], ...]`.
type AreaCoordinates = Vec<Vec<Vec<[f64; 2]>>>;

/// The `area` column's text for an area.
/// The `explained_by` column: a JSON array of incident ids, NULL for none.
pub(crate) fn explained_by_json(ids: &[IncidentId]) -> Option<String> {
    if ids.is_empty() {
        return None;
    }
    let ids: Vec<&str> = ids.iter().map(IncidentId::as_str).collect();
    serde_json::to_string(&ids).ok()
}

pub(crate) fn area_json(area: &MultiPolygon) -> String {
    let ring = |l: &LineString| l.coords().map(|c| [c.x, c.y]).collect::<Vec<_>>();
    let coordinates: AreaCoordinates = area
        .iter()
        .map(|p| {
            std::iter::once(ring(p.exterior()))
                .chain(p.interiors().iter().map(ring))
                .collect()
        })
        .collect();
    // Numbers in arrays always serialise; a non-finite one (never accepted at the edge) would
    // read back as corrupt rather than panic.
    serde_json::to_string(&coordinates).unwrap_or_default()
}

pub(crate) fn parse_area(text: &str) -> Option<MultiPolygon> {
    let coordinates: AreaCoordinates = serde_json::from_str(text).ok()?;
    let ring =
        |r: Vec<[f64; 2]>| LineString::new(r.into_iter().map(|[x, y]| Coord { x, y }).collect());
    coordinates
        .into_iter()
        .map(|rings| {
            let mut rings = rings.into_iter();
            let exterior = ring(rings.next()?);
            Some(Polygon::new(exterior, rings.map(ring).collect()))
        })
        .collect::<Option<Vec<_>>>()
        .map(MultiPolygon)
}

/// The columns of `incidents`, in the order of [`INCIDENT_COLUMNS`].
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct IncidentRow {
    pub id: String,
    pub category: String,
    pub severity: String,
    pub status: String,
    pub lon: f64,
    pub lat: f64,
    pub district: Option<String>,
    pub agency: String,
    pub routing: String,
    pub report_count: i64,
    pub description: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub external_ref: Option<String>,
    pub ack_due: Option<DateTime<Utc>>,
    pub resolve_due: Option<DateTime<Utc>>,
    pub ack_escalated_at: Option<DateTime<Utc>>,
    pub resolve_escalated_at: Option<DateTime<Utc>>,
    pub area: Option<String>,
    pub merged_into: Option<String>,
    pub explained_by: Option<String>,
}

/// The `incidents` columns, comma-separated, for SELECTs into [`IncidentRow`].
pub(crate) const INCIDENT_COLUMNS: &str = "id, category, severity, status, lon, lat, district, \
     agency, routing, report_count, description, opened_at, updated_at, external_ref, ack_due, \
     resolve_due, ack_escalated_at, resolve_escalated_at, area, merged_into, explained_by";

impl IncidentRow {
    pub(crate) fn into_model(self) -> Result<Incident, StoreError> {
        let bad = |what: &str| StoreError::corrupt(format!("incident {}: {what}", self.id));
        let severity: Severity = self
            .severity
            .parse()
            .map_err(|e: String| bad(&format!("severity: {e}")))?;
        let status: IncidentStatus = self
            .status
            .parse()
            .map_err(|e: String| bad(&format!("status: {e}")))?;
        let report_count = u32::try_from(self.report_count)
            .map_err(|_| bad(&format!("report_count {} out of range", self.report_count)))?;
        let routing = parse_routing(&self.routing).ok_or_else(|| {
            bad(&format!(
                "routing is not a routing decision: {}",
                self.routing
            ))
        })?;
        let area = self
            .area
            .as_deref()
            .map(|a| parse_area(a).ok_or_else(|| bad(&format!("area is not an area: {a}"))))
            .transpose()?;
        let explained_by = match self.explained_by.as_deref() {
            None => Vec::new(),
            Some(text) => serde_json::from_str::<Vec<String>>(text)
                .map_err(|e| bad(&format!("explained_by: {e}")))?
                .into_iter()
                .map(IncidentId::new)
                .collect(),
        };
        Ok(Incident {
            id: self.id.as_str().into(),
            category: self.category.as_str().into(),
            severity,
            status,
            location: Point::new(self.lon, self.lat),
            area,
            district: self.district.as_deref().map(Into::into),
            agency: self.agency.as_str().into(),
            routing,
            report_count,
            description: self.description,
            external_ref: self.external_ref,
            opened_at: self.opened_at,
            updated_at: self.updated_at,
            sla: SlaClock {
                ack_due: self.ack_due,
                resolve_due: self.resolve_due,
                ack_escalated_at: self.ack_escalated_at,
                resolve_escalated_at: self.resolve_escalated_at,
            },
            merged_into: self.merged_into.map(IncidentId::new),
            explained_by,
        })
    }
}

/// `events` columns read for [`EventSummary`].
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct EventSummaryRow {
    pub id: String,
    pub source: String,
    pub received_at: DateTime<Utc>,
}

impl From<EventSummaryRow> for EventSummary {
    fn from(r: EventSummaryRow) -> Self {
        EventSummary {
            id: EventId::new(r.id),
            source: r.source,
            received_at: r.received_at,
        }
    }
}

/// `incident_timeline` columns read for [`TimelineEntry`].
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TimelineRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub actor: String,
    pub detail: String,
    pub reason: Option<String>,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
}

impl TimelineRow {
    pub(crate) fn into_model(self, incident: &IncidentId) -> Result<TimelineEntry, StoreError> {
        let detail = serde_json::from_str(&self.detail).map_err(|e| {
            StoreError::corrupt(format!(
                "timeline entry {} of incident {incident}: detail is not JSON: {e}",
                self.id
            ))
        })?;
        let status = |s: Option<String>| {
            s.map(|s| s.parse::<IncidentStatus>())
                .transpose()
                .map_err(|e| {
                    StoreError::corrupt(format!(
                        "timeline entry {} of incident {incident}: {e}",
                        self.id
                    ))
                })
        };
        Ok(TimelineEntry {
            from: status(self.from_status)?,
            to: status(self.to_status)?,
            at: self.at,
            kind: self.kind,
            actor: self.actor,
            reason: self.reason,
            detail,
        })
    }
}

/// `dead_letters` columns.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct DeadLetterRow {
    pub id: i64,
    pub received_at: DateTime<Utc>,
    pub channel: String,
    pub topic: String,
    pub payload: Vec<u8>,
    pub reason: String,
}

impl From<DeadLetterRow> for DeadLetter {
    fn from(r: DeadLetterRow) -> Self {
        DeadLetter {
            id: r.id,
            received_at: r.received_at,
            channel: r.channel,
            topic: r.topic,
            payload: r.payload,
            reason: r.reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(routing: &str, status: &str, report_count: i64) -> IncidentRow {
        let t = DateTime::<Utc>::UNIX_EPOCH;
        IncidentRow {
            id: "i1".into(),
            category: "pothole".into(),
            severity: "minor".into(),
            status: status.into(),
            lon: 25.6,
            lat: 45.6,
            district: None,
            agency: "a".into(),
            routing: routing.into(),
            report_count,
            description: None,
            opened_at: t,
            updated_at: t,
            external_ref: None,
            ack_due: None,
            resolve_due: None,
            ack_escalated_at: None,
            resolve_escalated_at: None,
            area: None,
            merged_into: None,
            explained_by: None,
        }
    }

    #[test]
    fn routing_round_trips() {
        let decision = RoutingDecision {
            chosen: RouteCandidate {
                agency: "apa-brasov".into(),
                rule: RoutingRule::Jurisdiction,
                area: Some("city".into()),
            },
            alternatives: vec![RouteCandidate {
                agency: "dispatch".into(),
                rule: RoutingRule::Fallback,
                area: None,
            }],
            informed: vec![Informed {
                agency: "politia-rutiera".into(),
                rule: InformRule::CategoryKind,
                area: Some("city".into()),
            }],
        };
        let text = routing_json(&decision);
        assert_eq!(
            text,
            r#"{"chosen":{"agency":"apa-brasov","rule":"jurisdiction","area":"city"},"alternatives":[{"agency":"dispatch","rule":"fallback","area":null}],"informed":[{"agency":"politia-rutiera","rule":"category_kind","area":"city"}]}"#
        );
        assert_eq!(parse_routing(&text), Some(decision.clone()));
        // Rows written before `informed` existed read back with nobody informed.
        let old = r#"{"chosen":{"agency":"apa-brasov","rule":"jurisdiction","area":"city"},"alternatives":[]}"#;
        assert_eq!(parse_routing(old).map(|d| d.informed), Some(Vec::new()));
    }

    #[test]
    fn bad_rows_are_corrupt_not_panics() {
        let good = r#"{"chosen":{"agency":"a","rule":"fallback","area":null},"alternatives":[]}"#;
        assert!(row(good, "new", 1).into_model().is_ok());
        let cases = [
            ("bad status", row(good, "open", 1)),
            ("negative count", row(good, "new", -1)),
            ("not json", row("nope", "new", 1)),
            (
                "unknown rule",
                row(
                    r#"{"chosen":{"agency":"a","rule":"guess","area":null},"alternatives":[]}"#,
                    "new",
                    1,
                ),
            ),
        ];
        for (name, r) in cases {
            assert!(
                matches!(r.into_model(), Err(StoreError::Corrupt { .. })),
                "{name}"
            );
        }
    }

    #[test]
    fn stored_time_keeps_microseconds() {
        let t = DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::nanoseconds(1_234_567_891);
        assert_eq!(
            stored_time(t),
            DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::microseconds(1_234_567)
        );
    }
}
