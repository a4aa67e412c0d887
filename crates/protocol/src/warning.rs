//! Public warnings on the wire: the bodies of `POST /api/v1/incidents/{id}/actions` that
//! publish, update and cancel an incident's public warning, and the JSON list of warnings for
//! the dashboards (`GET /api/v1/public/warnings`).
//!
//! ```json
//! {"action": "publish_warning",
//!  "headline": {"ro": "Apă nepotabilă", "en": "Boil water notice"},
//!  "instruction": {"ro": "Fierbeți apa", "en": "Boil water before drinking"},
//!  "area": {"type": "Polygon", "coordinates": [[[25.58, 45.63], …, [25.58, 45.63]]]}}
//! ```
//!
//! `headline` (1 to [`MAX_HEADLINE`] characters) and `instruction` (1 to [`MAX_INSTRUCTION`])
//! are required with `publish_warning`, both or neither with `update_warning`, refused with
//! `cancel_warning`; each gives both languages. `area` is optional: a GeoJSON `Polygon` or
//! `MultiPolygon` (rings closed, at least 4 positions, (longitude, latitude), inside the city's
//! bounds), or a `Point` with `radius_m` (10 to 20 000 meters) for a circle; without it the
//! incident's own area (its declared polygons, else a circle around its point). `reason` is
//! optional, as with every action. Unknown fields are refused.

use serde::{Deserialize, Serialize};

use model::warning::{WarningArea, WarningOp, WarningText};
use model::{City, Localized};

use crate::WireError;

/// The actions on an incident's public warning.
pub const ACTIONS: [&str; 3] = ["publish_warning", "update_warning", "cancel_warning"];
/// The longest headline accepted, in characters.
pub const MAX_HEADLINE: usize = 200;
/// The longest instruction accepted, in characters.
pub const MAX_INSTRUCTION: usize = 2000;
/// The most vertices an area may have, all rings together.
pub const MAX_VERTICES: usize = 2000;
/// The radius of a circle, in meters: at least, at most.
pub const RADIUS_M: (f64, f64) = (10.0, 20_000.0);

/// A text in both languages, on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalizedJson {
    /// Romanian.
    pub ro: String,
    /// English.
    pub en: String,
}

impl From<&Localized> for LocalizedJson {
    fn from(l: &Localized) -> Self {
        LocalizedJson {
            ro: l.ro.clone(),
            en: l.en.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WarningJson {
    action: String,
    headline: Option<LocalizedJson>,
    instruction: Option<LocalizedJson>,
    area: Option<serde_json::Value>,
    radius_m: Option<f64>,
    reason: Option<String>,
}

/// A warning action, validated against the city.
#[derive(Debug, Clone, PartialEq)]
pub struct WarningCommand {
    /// What to do.
    pub op: WarningOp,
    /// Why, trimmed; `None` when absent or blank.
    pub reason: Option<String>,
}

/// Whether the body's `action` names a warning action (the body is then read with
/// [`warning_request`]).
pub fn is_warning_action(payload: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Peek {
        action: Option<String>,
    }
    serde_json::from_slice::<Peek>(payload)
        .ok()
        .and_then(|p| p.action)
        .is_some_and(|a| ACTIONS.contains(&a.as_str()))
}

fn text(name: &'static str, v: LocalizedJson, limit: usize) -> Result<Localized, WireError> {
    let check = |lang: &str, s: String| {
        let s = s.trim().to_owned();
        let chars = s.chars().count();
        if chars == 0 || chars > limit {
            Err(WireError::Invalid {
                name,
                reason: format!("{lang}: must be 1 to {limit} characters, not {chars}"),
            })
        } else {
            Ok(s)
        }
    };
    Ok(Localized {
        ro: check("ro", v.ro)?,
        en: check("en", v.en)?,
    })
}

fn texts(
    headline: Option<LocalizedJson>,
    instruction: Option<LocalizedJson>,
) -> Result<Option<WarningText>, WireError> {
    match (headline, instruction) {
        (Some(h), Some(i)) => Ok(Some(WarningText {
            headline: text("headline", h, MAX_HEADLINE)?,
            instruction: text("instruction", i, MAX_INSTRUCTION)?,
        })),
        (None, None) => Ok(None),
        (None, Some(_)) => Err(WireError::Missing("headline")),
        (Some(_), None) => Err(WireError::Missing("instruction")),
    }
}

fn position(city: &City, p: &[f64]) -> Result<geo::Coord, WireError> {
    let [lon, lat] = p else {
        return Err(WireError::Geometry(format!(
            "a position is [longitude, latitude], not {} numbers",
            p.len()
        )));
    };
    if !model::geometry::valid_position(*lon, *lat) {
        return Err(WireError::Geometry(format!(
            "[{lon}, {lat}] is not a position on Earth"
        )));
    }
    let b = city.bounds;
    if *lon < b.min().x || *lon > b.max().x || *lat < b.min().y || *lat > b.max().y {
        return Err(WireError::OutsideCity {
            lon: *lon,
            lat: *lat,
        });
    }
    Ok(geo::coord! { x: *lon, y: *lat })
}

fn polygon(city: &City, rings: &[Vec<Vec<f64>>]) -> Result<geo::Polygon, WireError> {
    let mut rings = rings.iter().map(|ring| {
        if ring.len() < 4 {
            return Err(WireError::Geometry(format!(
                "a ring needs at least 4 positions, the last equal to the first; found {}",
                ring.len()
            )));
        }
        if ring.first() != ring.last() {
            return Err(WireError::Geometry(
                "a ring must be closed: its last position equal to its first".into(),
            ));
        }
        ring.iter()
            .map(|p| position(city, p))
            .collect::<Result<Vec<_>, _>>()
            .map(geo::LineString::new)
    });
    let exterior = rings
        .next()
        .ok_or_else(|| WireError::Geometry("a polygon needs a ring".into()))??;
    let interiors = rings.collect::<Result<Vec<_>, _>>()?;
    Ok(geo::Polygon::new(exterior, interiors))
}

fn area(
    city: &City,
    value: Option<serde_json::Value>,
    radius_m: Option<f64>,
) -> Result<Option<WarningArea>, WireError> {
    let Some(value) = value else {
        return match radius_m {
            None => Ok(None),
            Some(_) => Err(WireError::Invalid {
                name: "radius_m",
                reason: "goes with a Point \"area\" only".into(),
            }),
        };
    };
    let geometry = geojson::Geometry::from_json_value(value)
        .map_err(|e| WireError::Geometry(format!("\"area\" is not a GeoJSON geometry: {e}")))?;
    let vertices = |n: usize| {
        if n > MAX_VERTICES {
            Err(WireError::Geometry(format!(
                "{n} positions; at most {MAX_VERTICES}"
            )))
        } else {
            Ok(())
        }
    };
    let no_radius = || match radius_m {
        None => Ok(()),
        Some(_) => Err(WireError::Invalid {
            name: "radius_m",
            reason: "goes with a Point \"area\" only".into(),
        }),
    };
    let area = match geometry.value {
        geojson::Value::Point(p) => {
            let center = position(city, &p)?;
            let radius_m = radius_m.ok_or(WireError::Missing("radius_m"))?;
            if !(RADIUS_M.0..=RADIUS_M.1).contains(&radius_m) {
                return Err(WireError::Invalid {
                    name: "radius_m",
                    reason: format!("{radius_m} m; from {} to {} m", RADIUS_M.0, RADIUS_M.1),
                });
            }
            WarningArea::Circle {
                center: center.into(),
                radius_m,
            }
        }
        geojson::Value::Polygon(rings) => {
            no_radius()?;
            vertices(rings.iter().map(Vec::len).sum())?;
            WarningArea::Polygons(geo::MultiPolygon::new(vec![polygon(city, &rings)?]))
        }
        geojson::Value::MultiPolygon(polygons) => {
            no_radius()?;
            vertices(polygons.iter().flatten().map(Vec::len).sum())?;
            if polygons.is_empty() {
                return Err(WireError::Geometry("a MultiPolygon needs a polygon".into()));
            }
            WarningArea::Polygons(geo::MultiPolygon::new(
                polygons
                    .iter()
                    .map(|p| polygon(city, p))
                    .collect::<Result<_, _>>()?,
            ))
        }
        _ => {
            return Err(WireError::Geometry(
                "\"area\" must be a Polygon, a MultiPolygon or a Point with \"radius_m\"".into(),
            ))
        }
    };
    Ok(Some(area))
}

/// A body of `POST /api/v1/incidents/{id}/actions` whose action is one of [`ACTIONS`].
pub fn warning_request(payload: &[u8], city: &City) -> Result<WarningCommand, WireError> {
    if payload.len() > crate::action::MAX_PAYLOAD {
        return Err(WireError::TooLarge {
            size: payload.len(),
            limit: crate::action::MAX_PAYLOAD,
        });
    }
    let json: WarningJson = serde_json::from_slice(payload).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            WireError::NotJson(e.to_string())
        } else {
            WireError::NotAnAction(e.to_string())
        }
    })?;
    let reason = json
        .reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if let Some(r) = &reason {
        let chars = r.chars().count();
        if chars > crate::action::MAX_REASON {
            return Err(WireError::Invalid {
                name: "reason",
                reason: format!("{chars} characters; at most {}", crate::action::MAX_REASON),
            });
        }
    }
    let op = match json.action.as_str() {
        "publish_warning" => {
            let text =
                texts(json.headline, json.instruction)?.ok_or(WireError::Missing("headline"))?;
            WarningOp::Publish {
                text,
                area: area(city, json.area, json.radius_m)?,
            }
        }
        "update_warning" => {
            let text = texts(json.headline, json.instruction)?;
            let area = area(city, json.area, json.radius_m)?;
            if text.is_none() && area.is_none() {
                return Err(WireError::Invalid {
                    name: "action",
                    reason: "an update needs a new \"headline\" and \"instruction\", or a new \
                             \"area\""
                        .into(),
                });
            }
            WarningOp::Update { text, area }
        }
        "cancel_warning" => {
            for (name, given) in [
                ("headline", json.headline.is_some()),
                ("instruction", json.instruction.is_some()),
                ("area", json.area.is_some()),
                ("radius_m", json.radius_m.is_some()),
            ] {
                if given {
                    return Err(WireError::Invalid {
                        name,
                        reason: "a cancellation takes none; give the reason in \"reason\"".into(),
                    });
                }
            }
            WarningOp::Cancel
        }
        other => {
            return Err(WireError::Invalid {
                name: "action",
                reason: format!(
                    "{other:?} is not a warning action (expected one of {})",
                    ACTIONS.join(", ")
                ),
            })
        }
    };
    Ok(WarningCommand { op, reason })
}

/// One active or recently cancelled public warning, for the dashboards
/// (`GET /api/v1/public/warnings`). No personal data: the texts are the operator's.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WarningJsonOut {
    /// The CAP identifier of its latest version.
    pub identifier: String,
    /// The incident it is about.
    pub incident: String,
    /// The latest version's number.
    pub seq: u32,
    /// `Alert`, `Update` or `Cancel` (a cancelled warning is listed for a while).
    pub msg_type: String,
    /// Whether it is in force (not cancelled).
    pub active: bool,
    /// When the latest version was sent (RFC 3339).
    pub sent: String,
    /// The headline.
    pub headline: LocalizedJson,
    /// What to do.
    pub instruction: LocalizedJson,
    /// The area: a GeoJSON `MultiPolygon`, or a `Point` with `radius_m`.
    #[schema(value_type = Object)]
    pub area: serde_json::Value,
    /// The circle's radius in meters, for a `Point` area.
    pub radius_m: Option<f64>,
    /// The URL of its CAP 1.2 document.
    pub cap: String,
}

/// The area as GeoJSON (longitude, latitude) and the circle's radius.
pub fn area_json(area: &WarningArea) -> (serde_json::Value, Option<f64>) {
    match area {
        WarningArea::Circle { center, radius_m } => (
            serde_json::json!({"type": "Point", "coordinates": [center.x(), center.y()]}),
            Some(*radius_m),
        ),
        WarningArea::Polygons(mp) => {
            let geometry = geojson::Geometry::new(geojson::Value::from(mp));
            (
                serde_json::to_value(geometry).unwrap_or(serde_json::Value::Null),
                None,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brasov() -> City {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../cities/brasov");
        city::load(std::path::Path::new(dir)).unwrap_or_else(|e| panic!("{e}"))
    }

    const TEXTS: &str = r#""headline": {"ro": " Apă ", "en": "Water"}, "instruction": {"ro": "Fierbeți", "en": "Boil"}"#;

    #[test]
    fn bodies_in_and_their_outcome() {
        let city = brasov();
        let square = r#"{"type":"Polygon","coordinates":[[[25.58,45.63],[25.60,45.63],[25.60,45.65],[25.58,45.63]]]}"#;
        let open = r#"{"type":"Polygon","coordinates":[[[25.58,45.63],[25.60,45.63],[25.60,45.65],[25.58,45.64]]]}"#;
        let outside = r#"{"type":"Polygon","coordinates":[[[26.58,45.63],[25.60,45.63],[25.60,45.65],[26.58,45.63]]]}"#;
        let point = r#"{"type":"Point","coordinates":[25.59,45.64]}"#;
        let table: Vec<(String, Result<&str, &str>)> = vec![
            (format!(r#"{{"action":"publish_warning",{TEXTS}}}"#), Ok("publish")),
            (format!(r#"{{"action":"publish_warning",{TEXTS},"area":{square}}}"#), Ok("publish polygons")),
            (format!(r#"{{"action":"publish_warning",{TEXTS},"area":{point},"radius_m":300}}"#), Ok("publish circle")),
            (format!(r#"{{"action":"publish_warning",{TEXTS},"area":{point}}}"#), Err("\"radius_m\" is required")),
            (format!(r#"{{"action":"publish_warning",{TEXTS},"area":{point},"radius_m":5}}"#), Err("from 10 to 20000")),
            (format!(r#"{{"action":"publish_warning",{TEXTS},"radius_m":300}}"#), Err("goes with a Point")),
            (format!(r#"{{"action":"publish_warning",{TEXTS},"area":{open}}}"#), Err("closed")),
            (format!(r#"{{"action":"publish_warning",{TEXTS},"area":{outside}}}"#), Err("outside the city")),
            (r#"{"action":"publish_warning","headline":{"ro":"a","en":"b"}}"#.into(), Err("\"instruction\" is required")),
            (r#"{"action":"publish_warning","headline":{"ro":"","en":"b"},"instruction":{"ro":"a","en":"b"}}"#.into(), Err("ro: must be 1 to 200")),
            (r#"{"action":"publish_warning","headline":{"ro":"a"},"instruction":{"ro":"a","en":"b"}}"#.into(), Err("missing field `en`")),
            (format!(r#"{{"action":"publish_warning",{TEXTS},"colour":"red"}}"#), Err("unknown field `colour`")),
            (format!(r#"{{"action":"update_warning",{TEXTS}}}"#), Ok("update text")),
            (format!(r#"{{"action":"update_warning","area":{square}}}"#), Ok("update area")),
            (r#"{"action":"update_warning"}"#.into(), Err("an update needs")),
            (r#"{"action":"cancel_warning","reason":"fixed"}"#.into(), Ok("cancel")),
            (format!(r#"{{"action":"cancel_warning",{TEXTS}}}"#), Err("a cancellation takes none")),
        ];
        for (body, want) in table {
            assert!(is_warning_action(body.as_bytes()), "{body}");
            let got = warning_request(body.as_bytes(), &city);
            match (got, want) {
                (Ok(c), Ok(what)) => {
                    let ok = match (&c.op, what) {
                        (WarningOp::Publish { text, area: None }, "publish") => {
                            text.headline.ro == "Apă"
                        }
                        (
                            WarningOp::Publish {
                                area: Some(WarningArea::Polygons(mp)),
                                ..
                            },
                            "publish polygons",
                        ) => mp.0.len() == 1,
                        (
                            WarningOp::Publish {
                                area: Some(WarningArea::Circle { radius_m, .. }),
                                ..
                            },
                            "publish circle",
                        ) => *radius_m == 300.0,
                        (
                            WarningOp::Update {
                                text: Some(_),
                                area: None,
                            },
                            "update text",
                        ) => true,
                        (
                            WarningOp::Update {
                                text: None,
                                area: Some(_),
                            },
                            "update area",
                        ) => true,
                        (WarningOp::Cancel, "cancel") => c.reason.as_deref() == Some("fixed"),
                        _ => false,
                    };
                    assert!(ok, "{body}: {c:?} is not {what}");
                }
                (Err(e), Err(part)) => assert!(e.to_string().contains(part), "{body}: {e}"),
                (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
            }
        }
        assert!(!is_warning_action(br#"{"action":"acknowledge"}"#));
        assert!(!is_warning_action(b"not json"));
    }
}
