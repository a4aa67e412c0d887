//! Events Dispecer derives itself, and the payload they are logged with (version 1), so that
//! `dispecer rebuild` parses them again like any sender's.
//!
//! Traffic congestion (`system:traffic`): a [`model::traffic::Change`] of the detector becomes a
//! notice (congestion started) or a "restored" (it ended) of the city's congestion category at
//! the counter, following the subject `traffic:{sensor}`. The event's id is made of the sensor,
//! the episode's start and what happened, so the same episode derived again (a replay of the
//! same readings) is the same event.
//!
//! ```json
//! {"version": 1, "kind": "congestion", "sensor": "tc-eroilor-e",
//!  "since": "2026-11-29T07:00:00Z", "at": "2026-11-29T07:05:00Z",
//!  "speed_kmh": 12.0, "occupancy_percent": 48.0, "baseline_kmh": 50.0}
//! ```

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use model::traffic::Change;
use model::{City, Event, EventId, EventKind, Source};

use crate::WireError;

/// The component name of the traffic detector's events: their source is `system:traffic`.
pub const TRAFFIC: &str = "traffic";

/// The logged payload of a congestion event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CongestionPayload {
    version: u32,
    /// `congestion` (it started) or `restored` (it ended).
    kind: String,
    sensor: String,
    /// The episode's first congested reading.
    since: DateTime<Utc>,
    /// The reading that decided.
    at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    speed_kmh: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    occupancy_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    baseline_kmh: Option<f64>,
}

/// One decimal: what the payload keeps of a measured value.
fn tenth(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// The event of a congestion `change` at `city`'s counter, received (derived) at `received_at`;
/// refused when the city detects no congestion or does not have the counter.
pub fn congestion_event(
    change: &Change,
    city: &City,
    received_at: DateTime<Utc>,
) -> Result<Event, WireError> {
    let payload = match change {
        Change::Started {
            sensor,
            since,
            at,
            speed,
            occupancy,
            baseline,
        } => CongestionPayload {
            version: 1,
            kind: "congestion".into(),
            sensor: sensor.to_string(),
            since: *since,
            at: *at,
            speed_kmh: speed.map(tenth),
            occupancy_percent: occupancy.map(tenth),
            baseline_kmh: Some(tenth(*baseline)),
        },
        Change::Ended { sensor, since, at } => CongestionPayload {
            version: 1,
            kind: "restored".into(),
            sensor: sensor.to_string(),
            since: *since,
            at: *at,
            speed_kmh: None,
            occupancy_percent: None,
            baseline_kmh: None,
        },
    };
    let text = serde_json::to_string(&payload).map_err(|e| WireError::NotJson(e.to_string()))?;
    event_of(payload, text, city, received_at)
}

/// Parses a derived event's logged `payload` again (its source `system:{component}`).
pub fn derived_event(
    payload: &[u8],
    component: &str,
    city: &City,
    received_at: DateTime<Utc>,
) -> Result<Event, WireError> {
    if component != TRAFFIC {
        return Err(WireError::Invalid {
            name: "source",
            reason: format!("system:{component} derives no events"),
        });
    }
    let text = std::str::from_utf8(payload).map_err(|e| WireError::NotJson(e.to_string()))?;
    let parsed: CongestionPayload =
        serde_json::from_str(text).map_err(|e| WireError::NotJson(e.to_string()))?;
    event_of(parsed, text.to_owned(), city, received_at)
}

fn event_of(
    p: CongestionPayload,
    text: String,
    city: &City,
    received_at: DateTime<Utc>,
) -> Result<Event, WireError> {
    if p.version != 1 {
        return Err(WireError::Invalid {
            name: "version",
            reason: format!("{} is not 1", p.version),
        });
    }
    let category = city
        .traffic
        .category
        .clone()
        .ok_or_else(|| WireError::Invalid {
            name: "kind",
            reason: "this city detects no congestion ([traffic] category)".into(),
        })?;
    if city.category(category.as_str()).is_none() {
        return Err(WireError::UnknownCategory(category.to_string()));
    }
    let site = city
        .sensors
        .iter()
        .find(|s| s.id.as_str() == p.sensor)
        .ok_or_else(|| WireError::UnknownSensor(p.sensor.clone()))?;
    let (kind, occurred_at, description) = match p.kind.as_str() {
        "congestion" => {
            let measured = match (p.speed_kmh, p.baseline_kmh) {
                (Some(speed), Some(baseline)) => format!(
                    "viteză {speed:.0} km/h, de obicei {baseline:.0} km/h / speed {speed:.0} \
                     km/h, usually {baseline:.0} km/h"
                ),
                _ => String::new(),
            };
            let occupancy = p
                .occupancy_percent
                .map(|o| format!("; ocupare / occupancy {o:.0}%"))
                .unwrap_or_default();
            let text = format!(
                "Trafic aglomerat / Traffic congestion: {} ({}, {}){}{occupancy}",
                site.name,
                site.road,
                site.direction,
                if measured.is_empty() {
                    String::new()
                } else {
                    format!(": {measured}")
                },
            );
            (EventKind::Notice, p.since, Some(text))
        }
        "restored" => (EventKind::Restored, p.at, None),
        other => {
            return Err(WireError::Invalid {
                name: "kind",
                reason: format!("{other:?} is not one of congestion, restored"),
            })
        }
    };
    let subject = format!("{TRAFFIC}:{}", site.id);
    let id = format!(
        "system:{subject}:{}:{}",
        p.since.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        p.kind
    );
    Ok(Event {
        id: EventId::new(id),
        subject: Some(subject),
        source: Source::System(TRAFFIC.into()),
        kind,
        category,
        location: site.location,
        area: None,
        description,
        occurred_at,
        received_at,
        payload: text,
        contact: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn city() -> City {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cities/brasov");
        city::load(&dir).unwrap_or_else(|e| panic!("brasov: {e}"))
    }

    fn t(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 7, minute, 0)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn derived_events_parse_again_to_themselves() {
        let city = city();
        let sensor = city.sensors[0].id.clone();
        let changes = [
            Change::Started {
                sensor: sensor.clone(),
                since: t(0),
                at: t(5),
                speed: Some(12.345),
                occupancy: Some(48.0),
                baseline: 50.0,
            },
            Change::Ended {
                sensor: sensor.clone(),
                since: t(0),
                at: t(40),
            },
        ];
        let mut ids = Vec::new();
        for change in &changes {
            let e = congestion_event(change, &city, t(41)).unwrap_or_else(|e| panic!("{e}"));
            let again = derived_event(e.payload.as_bytes(), TRAFFIC, &city, t(41))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(again, e);
            assert_eq!(e.source.as_label(), "system:traffic");
            assert_eq!(e.category.as_str(), "congestion");
            assert_eq!(e.subject.as_deref(), Some(&*format!("traffic:{sensor}")));
            assert_eq!(e.location, city.sensors[0].location);
            ids.push(e.id.to_string());
        }
        assert_eq!(
            ids,
            [
                format!("system:traffic:{sensor}:2026-11-29T07:00:00Z:congestion"),
                format!("system:traffic:{sensor}:2026-11-29T07:00:00Z:restored"),
            ]
        );
    }

    #[test]
    fn foreign_payloads_are_refused() {
        let city = city();
        let refused = [
            (r#"{"version":1}"#, TRAFFIC),
            (
                r#"{"version":1,"kind":"jam","sensor":"tc-eroilor-e","since":"2026-11-29T07:00:00Z","at":"2026-11-29T07:00:00Z"}"#,
                TRAFFIC,
            ),
            (
                r#"{"version":1,"kind":"restored","sensor":"nope","since":"2026-11-29T07:00:00Z","at":"2026-11-29T07:00:00Z"}"#,
                TRAFFIC,
            ),
            (
                r#"{"version":1,"kind":"restored","sensor":"tc-eroilor-e","since":"2026-11-29T07:00:00Z","at":"2026-11-29T07:00:00Z"}"#,
                "weather",
            ),
        ];
        for (payload, component) in refused {
            assert!(
                derived_event(payload.as_bytes(), component, &city, t(0)).is_err(),
                "{payload} from {component}"
            );
        }
    }
}
