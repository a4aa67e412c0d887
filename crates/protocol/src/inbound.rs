//! Inbound events: citizens' reports and utilities' events, both GeoJSON Features (RFC 7946).
//!
//! A citizen report, published with QoS 1 on [`crate::topics::CITIZEN_REPORTS`]:
//!
//! ```json
//! {"type": "Feature",
//!  "geometry": {"type": "Point", "coordinates": [25.5887, 45.6419]},
//!  "properties": {"id": "r-123", "category": "pothole",
//!                 "description": "Groapă adâncă", "reported_at": "2026-11-22T10:00:00+02:00"}}
//! ```
//!
//! A utility event, on `dispecer/v1/in/utilities/{operator}/events`, has a Point, LineString,
//! Polygon or MultiPolygon geometry and the properties `id`, `kind` (`outage`, `fault`,
//! `planned_works`, `restored`), `category`, and optionally `description`, `starts_at`. The
//! utility's `id` is the event's subject: a later notice with the same id updates the same
//! incident, `restored` resolves it. A utility may send an OASIS CAP 1.2 alert instead
//! ([`cap_event`]).

use chrono::{DateTime, Duration, Utc};
use geo::{Centroid, Contains, Geometry, InteriorPoint, Point};
use geojson::{Feature, JsonObject, JsonValue};

use model::{ids::valid_id, CategoryId, CitizenContact, City, Event, EventId, EventKind, Source};

use crate::error::WireError;

/// Largest payload accepted on an input topic, in bytes.
pub const MAX_PAYLOAD: usize = 256 * 1024;

/// Longest description accepted, in characters (Open311's limit).
pub const MAX_DESCRIPTION: usize = 4000;

/// How far in the future a sender's clock may be before its time is refused.
const CLOCK_SKEW: Duration = Duration::minutes(5);

/// Parses and validates a citizen report against `city`.
pub fn citizen_report(
    payload: &[u8],
    city: &City,
    received_at: DateTime<Utc>,
) -> Result<Event, WireError> {
    let (feature, text) = feature(payload)?;
    let props = feature
        .properties
        .as_ref()
        .ok_or(WireError::Missing("properties"))?;
    let location = match geometry(&feature)? {
        Geometry::Point(p) => p,
        other => {
            return Err(WireError::Geometry(format!(
                "a citizen report is a Point, not a {}",
                geometry_name(&other)
            )))
        }
    };
    let sender_id = sender_id(&feature, props)?;
    let category = category(props, city)?;
    check_in_city(location, city)?;
    let occurred_at =
        time(props, "reported_at", received_at)?.ok_or(WireError::Missing("reported_at"))?;
    let contact = contact(props)?;
    // The contact is personal data: the event log keeps the report without it.
    let payload = if props.contains_key("contact") {
        without_contact(text)?
    } else {
        text.to_owned()
    };
    Ok(Event {
        id: EventId::new(format!("citizen:{sender_id}")),
        subject: None,
        source: Source::Citizen,
        kind: EventKind::Report,
        category,
        location,
        area: None,
        description: description(props)?,
        occurred_at,
        received_at,
        payload,
        contact,
    })
}

/// Longest contact name, in characters.
pub const MAX_CONTACT_NAME: usize = 200;
/// Longest e-mail address, in bytes (RFC 5321's path limit).
pub const MAX_EMAIL: usize = 254;
/// Longest phone number, in characters.
pub const MAX_PHONE: usize = 32;

/// A citizen's optional `contact`: `{"name", "email", "phone"}`, each optional; null, `{}` or
/// only empty strings mean none.
fn contact(props: &JsonObject) -> Result<Option<CitizenContact>, WireError> {
    let invalid = |reason: String| WireError::Invalid {
        name: "contact",
        reason,
    };
    let fields = match props.get("contact") {
        None | Some(JsonValue::Null) => return Ok(None),
        Some(JsonValue::Object(o)) => o,
        Some(_) => {
            return Err(invalid(
                "must be an object with \"name\", \"email\" and/or \"phone\"".into(),
            ))
        }
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "name" | "email" | "phone"))
    {
        return Err(invalid(format!(
            "unknown field {unknown:?} (expected \"name\", \"email\" or \"phone\")"
        )));
    }
    let text = |key: &str| -> Result<Option<String>, WireError> {
        match fields.get(key) {
            None | Some(JsonValue::Null) => Ok(None),
            Some(JsonValue::String(s)) => {
                let s = s.trim();
                Ok((!s.is_empty()).then(|| s.to_owned()))
            }
            Some(_) => Err(invalid(format!("{key:?} must be a string"))),
        }
    };
    let name = text("name")?;
    if name
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_CONTACT_NAME || n.chars().any(char::is_control))
    {
        return Err(invalid(format!(
            "\"name\" must be at most {MAX_CONTACT_NAME} characters, none of them control characters"
        )));
    }
    let email = text("email")?.map(|e| e.to_lowercase());
    if let Some(e) = &email {
        let valid = e.len() <= MAX_EMAIL
            && !e.chars().any(|c| c.is_whitespace() || c.is_control())
            && e.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            });
        if !valid {
            return Err(invalid(format!(
                "\"email\" is not an e-mail address of at most {MAX_EMAIL} bytes"
            )));
        }
    }
    let phone = text("phone")?;
    if let Some(p) = &phone {
        let digits = p.chars().filter(char::is_ascii_digit).count();
        let valid = p.chars().count() <= MAX_PHONE
            && digits >= 6
            && p.chars()
                .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')' | '.'));
        if !valid {
            return Err(invalid(format!(
                "\"phone\" must be at most {MAX_PHONE} characters: at least 6 digits, spaces and + - ( ) ."
            )));
        }
    }
    if name.is_none() && email.is_none() && phone.is_none() {
        return Ok(None);
    }
    Ok(Some(CitizenContact { name, email, phone }))
}

/// The report's JSON with `properties.contact` removed.
/// What may be kept of a refused citizen report (a dead letter, which the read API shows): the
/// report without its `contact` when it is a JSON object, and nothing when it is not (a
/// malformed report may still hold a name or a telephone number somewhere in it).
pub fn citizen_report_for_dead_letter(payload: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<JsonValue>(payload) {
        Ok(mut value) if value.is_object() => {
            if let Some(props) = value
                .get_mut("properties")
                .and_then(JsonValue::as_object_mut)
            {
                props.remove("contact");
            }
            value.to_string().into_bytes()
        }
        _ => Vec::new(),
    }
}

fn without_contact(text: &str) -> Result<String, WireError> {
    let mut value: JsonValue =
        serde_json::from_str(text).map_err(|e| WireError::NotJson(e.to_string()))?;
    if let Some(props) = value
        .get_mut("properties")
        .and_then(JsonValue::as_object_mut)
    {
        props.remove("contact");
    }
    Ok(value.to_string())
}

/// Parses and validates a utility company's event against `city`. The event's location is the
/// point, or a point inside the line or area.
pub fn utility_event(
    payload: &[u8],
    operator: &str,
    city: &City,
    received_at: DateTime<Utc>,
) -> Result<Event, WireError> {
    check_operator(operator)?;
    let (feature, text) = feature(payload)?;
    let props = feature
        .properties
        .as_ref()
        .ok_or(WireError::Missing("properties"))?;
    let geometry = geometry(&feature)?;
    let location = match &geometry {
        Geometry::Point(p) => Some(*p),
        Geometry::LineString(l) => l.centroid(),
        Geometry::Polygon(p) => p.interior_point(),
        Geometry::MultiPolygon(m) => m.interior_point(),
        other => {
            return Err(WireError::Geometry(format!(
                "a utility event is a Point, LineString, Polygon or MultiPolygon, not a {}",
                geometry_name(other)
            )))
        }
    }
    .ok_or_else(|| WireError::Geometry("the geometry is empty".into()))?;
    // An area (a declared outage) is kept whole: reports of its family inside it join it.
    let area = match geometry {
        Geometry::Polygon(p) => Some(geo::MultiPolygon(vec![p])),
        Geometry::MultiPolygon(m) => Some(m),
        _ => None,
    };
    let sender_id = sender_id(&feature, props)?;
    let kind = string(props, "kind")?.ok_or(WireError::Missing("kind"))?;
    let event_kind = match kind {
        "outage" | "fault" | "planned_works" => EventKind::Notice,
        "restored" => EventKind::Restored,
        other => {
            return Err(WireError::Invalid {
                name: "kind",
                reason: format!("{other:?} is not one of outage, fault, planned_works, restored"),
            })
        }
    };
    let category = category(props, city)?;
    check_in_city(location, city)?;
    // Planned works are announced ahead: their start may be up to a year away.
    let horizon = if kind == "planned_works" {
        received_at + Duration::days(366)
    } else {
        received_at
    };
    let occurred_at = time(props, "starts_at", horizon)?.unwrap_or(received_at);
    // The utility's id names the thing it follows across updates (the subject); each distinct
    // version of the notice is its own event, and a redelivery of the same bytes is the same one.
    let subject = format!("utility:{operator}:{sender_id}");
    Ok(Event {
        id: EventId::new(format!("{subject}:{}", digest(payload))),
        subject: Some(subject),
        source: Source::Utility(operator.to_owned()),
        kind: event_kind,
        category,
        location,
        area,
        description: description(props)?,
        occurred_at,
        received_at,
        payload: text.to_owned(),
        contact: None,
    })
}

/// An operator id from a topic must be usable as an identifier.
fn check_operator(operator: &str) -> Result<(), WireError> {
    if valid_id(operator) {
        Ok(())
    } else {
        Err(WireError::UnknownTopic(crate::topics::utility_events(
            operator,
        )))
    }
}

/// The first 16 hexadecimal digits of the payload's SHA-256: a stable version tag.
fn digest(payload: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(payload)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn feature(payload: &[u8]) -> Result<(Feature, &str), WireError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(WireError::TooLarge {
            size: payload.len(),
            limit: MAX_PAYLOAD,
        });
    }
    let text =
        std::str::from_utf8(payload).map_err(|e| WireError::NotJson(format!("not UTF-8: {e}")))?;
    let value: JsonValue =
        serde_json::from_str(text).map_err(|e| WireError::NotJson(e.to_string()))?;
    match value.get("type").and_then(JsonValue::as_str) {
        Some("Feature") => {}
        Some(other) => {
            return Err(WireError::NotAFeature(format!(
                "\"type\" is {other:?}, expected \"Feature\""
            )))
        }
        None => {
            return Err(WireError::NotAFeature(
                "\"type\": \"Feature\" is missing".into(),
            ))
        }
    }
    let feature =
        Feature::from_json_value(value).map_err(|e| WireError::NotAFeature(e.to_string()))?;
    Ok((feature, text))
}

fn geometry(feature: &Feature) -> Result<Geometry, WireError> {
    let g = feature
        .geometry
        .as_ref()
        .ok_or_else(|| WireError::Geometry("geometry is missing".into()))?;
    // RFC 7946 §3.1.4 and §3.1.6, checked before conversion: geo would silently close a ring.
    let rings: Vec<&Vec<Vec<f64>>> = match &g.value {
        geojson::Value::LineString(l) if l.is_empty() => {
            return Err(WireError::Geometry("the geometry is empty".into()))
        }
        geojson::Value::LineString(l) if l.len() < 2 => {
            return Err(WireError::Geometry(
                "a LineString needs two or more positions".into(),
            ))
        }
        geojson::Value::Polygon(p) => p.iter().collect(),
        geojson::Value::MultiPolygon(m) => m.iter().flatten().collect(),
        _ => Vec::new(),
    };
    for ring in rings {
        if ring.is_empty() {
            return Err(WireError::Geometry(
                "the geometry is empty (a ring has no positions)".into(),
            ));
        }
        if ring.len() < 4 {
            return Err(WireError::Geometry(format!(
                "a ring has {} positions; at least 4 are needed",
                ring.len()
            )));
        }
        if ring.first() != ring.last() {
            return Err(WireError::Geometry(
                "a ring is not closed (its last position must repeat the first)".into(),
            ));
        }
    }
    let geometry =
        Geometry::try_from(g.value.clone()).map_err(|e| WireError::Geometry(e.to_string()))?;
    let mut bad = None;
    for c in geo::CoordsIter::coords_iter(&geometry) {
        if !model::geometry::valid_position(c.x, c.y) {
            bad = Some(c);
            break;
        }
    }
    match bad {
        Some(c) => Err(WireError::Geometry(format!(
            "position [{}, {}] is not [longitude, latitude] in degrees",
            c.x, c.y
        ))),
        None => Ok(geometry),
    }
}

fn geometry_name(g: &Geometry) -> &'static str {
    match g {
        Geometry::Point(_) => "Point",
        Geometry::Line(_) | Geometry::LineString(_) => "LineString",
        Geometry::Polygon(_) => "Polygon",
        Geometry::MultiPoint(_) => "MultiPoint",
        Geometry::MultiLineString(_) => "MultiLineString",
        Geometry::MultiPolygon(_) => "MultiPolygon",
        Geometry::GeometryCollection(_) => "GeometryCollection",
        Geometry::Rect(_) | Geometry::Triangle(_) => "Polygon",
    }
}

fn string<'a>(props: &'a JsonObject, name: &'static str) -> Result<Option<&'a str>, WireError> {
    match props.get(name) {
        None | Some(JsonValue::Null) => Ok(None),
        Some(JsonValue::String(s)) => Ok(Some(s)),
        Some(_) => Err(WireError::Invalid {
            name,
            reason: "must be a string".into(),
        }),
    }
}

fn sender_id<'a>(feature: &'a Feature, props: &'a JsonObject) -> Result<&'a str, WireError> {
    let id = match string(props, "id")? {
        Some(id) => id,
        None => match &feature.id {
            Some(geojson::feature::Id::String(s)) => s.as_str(),
            _ => return Err(WireError::Missing("id")),
        },
    };
    if valid_id(id) {
        Ok(id)
    } else {
        Err(WireError::Invalid {
            name: "id",
            reason: "must be 1 to 128 characters with no spaces, '/', '+' or '#'".into(),
        })
    }
}

fn category(props: &JsonObject, city: &City) -> Result<CategoryId, WireError> {
    let id = string(props, "category")?.ok_or(WireError::Missing("category"))?;
    city.category(id)
        .map(|c| c.id.clone())
        .ok_or_else(|| WireError::UnknownCategory(id.to_owned()))
}

fn description(props: &JsonObject) -> Result<Option<String>, WireError> {
    match string(props, "description")? {
        None => Ok(None),
        Some(d) if d.chars().count() > MAX_DESCRIPTION => Err(WireError::Invalid {
            name: "description",
            reason: format!("longer than {MAX_DESCRIPTION} characters"),
        }),
        Some(d) => {
            let d = d.trim();
            Ok((!d.is_empty()).then(|| d.to_owned()))
        }
    }
}

fn time(
    props: &JsonObject,
    name: &'static str,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, WireError> {
    let Some(text) = string(props, name)? else {
        return Ok(None);
    };
    let t = DateTime::parse_from_rfc3339(text)
        .map_err(|e| WireError::Invalid {
            name,
            reason: format!("{text:?} is not an RFC 3339 date-time with a time zone ({e})"),
        })?
        .with_timezone(&Utc);
    if t > now + CLOCK_SKEW {
        return Err(WireError::Invalid {
            name,
            reason: format!("{text} is in the future"),
        });
    }
    Ok(Some(t))
}

fn check_in_city(p: Point, city: &City) -> Result<(), WireError> {
    if city.bounds.contains(&p) || city.boundary.contains(&p) {
        Ok(())
    } else {
        Err(WireError::OutsideCity {
            lon: p.x(),
            lat: p.y(),
        })
    }
}

/// `text` cut to at most `max` characters (`max` > 0), ending with "…" when it was cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

/// The `eventCode` value name that carries the city's category in a CAP alert.
pub const CAP_CATEGORY_CODE: &str = "dispecer:category";

/// Parses and validates an OASIS CAP 1.2 alert from a utility (or the emergency inspectorate)
/// against `city`.
///
/// - The subject is the alert itself (`cap:{sender}:{identifier}`); an Update or Cancel follows
///   the alert its first `references` triple names, so it updates or resolves the same incident.
/// - Alert and Update are notices; Cancel is a "restored".
/// - The category is the first `eventCode` whose `valueName` is [`CAP_CATEGORY_CODE`], else
///   `other`; the place is a point inside the first area's first polygon, or its first circle's
///   centre (CAP's latitude-first coordinates are converted by the CAP parser).
/// - Only `Actual` alerts are acted on; Exercise, Test, System and Draft are refused.
pub fn cap_event(
    payload: &[u8],
    operator: &str,
    city: &City,
    received_at: DateTime<Utc>,
) -> Result<Event, WireError> {
    use crate::cap::{self, MsgType, Status};
    check_operator(operator)?;
    let alert = cap::parse(payload).map_err(|e| WireError::Cap(e.to_string()))?;
    if alert.status != Status::Actual {
        return Err(WireError::Cap(format!(
            "status {} is not acted on (only Actual alerts are)",
            alert.status.as_str()
        )));
    }
    let (kind, subject) = match alert.msg_type {
        MsgType::Alert => (
            EventKind::Notice,
            format!("cap:{}:{}", alert.sender, alert.identifier),
        ),
        MsgType::Update | MsgType::Cancel => {
            let original = alert
                .references
                .first()
                .ok_or_else(|| WireError::Cap("an Update or Cancel needs references".into()))?;
            let kind = if alert.msg_type == MsgType::Cancel {
                EventKind::Restored
            } else {
                EventKind::Notice
            };
            (
                kind,
                format!("cap:{}:{}", original.sender, original.identifier),
            )
        }
        other => {
            return Err(WireError::Cap(format!(
                "msgType {} is not acted on",
                other.as_str()
            )))
        }
    };
    let info = alert
        .infos
        .first()
        .ok_or_else(|| WireError::Cap("the alert has no <info>".into()))?;
    let category = info
        .event_codes
        .iter()
        .find(|(name, _)| name == CAP_CATEGORY_CODE)
        .map(|(_, value)| value.as_str())
        .unwrap_or("other");
    let category = city
        .category(category)
        .map(|c| c.id.clone())
        .ok_or_else(|| WireError::UnknownCategory(category.to_owned()))?;
    let area = info
        .areas
        .first()
        .ok_or_else(|| WireError::Cap("the alert's <info> has no <area>".into()))?;
    let location = area
        .polygons
        .first()
        .and_then(|p| p.interior_point())
        .or_else(|| area.circles.first().map(|(centre, _)| *centre))
        .ok_or_else(|| WireError::Cap("the first <area> has no <polygon> or <circle>".into()))?;
    check_in_city(location, city)?;
    // The headline, else the description: the first that is not blank once trimmed of any
    // whitespace (the CAP parser trims only XML's), at most MAX_DESCRIPTION characters like
    // every other description (an official alert is cut, not refused: the whole text stays in
    // the logged payload).
    let description = [info.headline.as_deref(), info.description.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|d| !d.is_empty())
        .map(|d| shorten(d, MAX_DESCRIPTION));
    // Logged as UTF-8 that parses to the same alert (a Latin-1 alert transcoded), so that
    // `dispecer rebuild` reads it again as received.
    let text = match std::str::from_utf8(payload) {
        Ok(text) => text.to_owned(),
        Err(_) => cap::to_utf8(payload).map_err(|e| WireError::Cap(e.to_string()))?,
    };
    Ok(Event {
        id: EventId::new(format!("cap:{}:{}", alert.sender, alert.identifier)),
        subject: Some(subject),
        source: Source::Utility(operator.to_owned()),
        kind,
        category,
        location,
        // Every polygon of the first area; a circle alone gives no area (its centre is the place).
        area: (!area.polygons.is_empty()).then(|| geo::MultiPolygon(area.polygons.clone())),
        description,
        occurred_at: info.onset.unwrap_or(alert.sent).with_timezone(&Utc),
        received_at,
        payload: text,
        contact: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_report_is_kept_without_its_contact() {
        let kept = citizen_report_for_dead_letter(
            br#"{"type":"Feature","properties":{"id":"r-1","contact":{"email":"ana@example.org"}}}"#,
        );
        let kept = String::from_utf8_lossy(&kept);
        assert!(kept.contains("r-1") && !kept.contains("ana@"), "{kept}");
        // What is not a JSON object is not kept at all.
        assert!(citizen_report_for_dead_letter(b"ana@example.org, 0722 000 000").is_empty());
        assert!(citizen_report_for_dead_letter(br#"["ana@example.org"]"#).is_empty());
    }
}
