//! Utility companies' events (`dispecer/v1/in/utilities/{operator}/events`).

use geo::{BoundingRect, Centroid, Contains, Geometry};
use serde_json::{json, Value};

use model::{EventKind, Source};
use protocol::inbound::utility_event;
use protocol::WireError;

use crate::support::{
    accepted, brasov, edited, object, props, received_at, refused, run, utc, Case,
};

const OPERATOR: &str = "apa-brasov";

/// A valid fault of Compania Apa Brașov at Piața Sfatului.
fn fault() -> Value {
    json!({
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [25.5887, 45.6419]},
        "properties": {
            "id": "avarie-17",
            "kind": "fault",
            "category": "water_leak",
            "description": " Conductă spartă pe Str. Republicii ",
            "starts_at": "2026-11-22T10:30:00+02:00"
        }
    })
}

fn with(name: &'static str, value: Value) -> Vec<u8> {
    edited(&fault(), |v| {
        props(v).insert(name.into(), value);
    })
}

fn without(name: &'static str) -> Vec<u8> {
    edited(&fault(), |v| {
        props(v).remove(name);
    })
}

fn at(geometry: Value) -> Vec<u8> {
    edited(&fault(), |v| {
        object(v).insert("geometry".into(), geometry);
    })
}

/// The geometries a utility may send, each around the old town, and the one that must not be
/// taken at face value (its centroid is outside it).
fn line() -> Value {
    json!({"type": "LineString", "coordinates": [[25.58, 45.64], [25.60, 45.64]]})
}

fn square() -> Value {
    json!({"type": "Polygon", "coordinates": [[
        [25.58, 45.635], [25.60, 45.635], [25.60, 45.65], [25.58, 45.65], [25.58, 45.635]
    ]]})
}

/// A U open to the north: its centroid (25.595, 45.6392) lies in the notch, outside the area.
fn u_shape() -> Value {
    json!({"type": "Polygon", "coordinates": [[
        [25.58, 45.63], [25.61, 45.63], [25.61, 45.65], [25.60, 45.65], [25.60, 45.635],
        [25.59, 45.635], [25.59, 45.65], [25.58, 45.65], [25.58, 45.63]
    ]]})
}

/// Two squares apart: their centroid (25.59, 45.64) is in neither.
fn two_squares() -> Value {
    json!({"type": "MultiPolygon", "coordinates": [
        [[[25.57, 45.635], [25.58, 45.635], [25.58, 45.645], [25.57, 45.645], [25.57, 45.635]]],
        [[[25.60, 45.635], [25.61, 45.635], [25.61, 45.645], [25.60, 45.645], [25.60, 45.635]]]
    ]})
}

fn to_geo(geometry: &Value) -> Geometry {
    let g = geojson::Geometry::from_json_value(geometry.clone()).expect("a GeoJSON geometry");
    Geometry::try_from(g.value).expect("convertible to geo")
}

/// What every accepted row shares with the base event.
fn is_the_fault(e: &model::Event) {
    assert_eq!(e.source, Source::Utility(OPERATOR.into()));
    assert_eq!(e.kind, EventKind::Notice);
    assert_eq!(e.category.as_str(), "water_leak");
    assert_eq!(e.received_at, received_at());
}

fn cases() -> Vec<Case> {
    vec![
        // ---- accepted --------------------------------------------------------------------------
        accepted(
            "the documented fault",
            fault().to_string().into_bytes(),
            |e| {
                is_the_fault(e);
                assert_eq!(e.subject.as_deref(), Some("utility:apa-brasov:avarie-17"));
                assert!(
                    e.id.as_str().starts_with("utility:apa-brasov:avarie-17:"),
                    "a version of utility:apa-brasov:avarie-17: {}",
                    e.id
                );
                assert_eq!(
                    (e.location.x(), e.location.y()),
                    (25.5887, 45.6419),
                    "(lon, lat)"
                );
                assert_eq!(
                    e.description.as_deref(),
                    Some("Conductă spartă pe Str. Republicii")
                );
                assert_eq!(
                    e.occurred_at,
                    utc("2026-11-22T08:30:00Z"),
                    "10:30 at +02:00"
                );
                assert_eq!(e.payload, fault().to_string());
            },
        ),
        accepted("kind outage", with("kind", json!("outage")), is_the_fault),
        accepted("kind fault", with("kind", json!("fault")), is_the_fault),
        accepted(
            "kind planned_works",
            with("kind", json!("planned_works")),
            is_the_fault,
        ),
        accepted(
            "planned works announced for next month",
            edited(&fault(), |v| {
                props(v).insert("kind".into(), json!("planned_works"));
                props(v).insert("starts_at".into(), json!("2026-12-20T08:00:00+02:00"));
            }),
            |e| assert_eq!(e.occurred_at, utc("2026-12-20T06:00:00Z")),
        ),
        refused!(
            "a fault that starts next month",
            with("starts_at", json!("2026-12-20T08:00:00+02:00")),
            WireError::Invalid {
                name: "starts_at",
                ..
            },
            ["\"starts_at\"", "in the future"]
        ),
        accepted(
            "no starts_at: it occurred when received",
            without("starts_at"),
            |e| {
                is_the_fault(e);
                assert_eq!(e.occurred_at, e.received_at);
            },
        ),
        accepted(
            "a null starts_at: it occurred when received",
            with("starts_at", Value::Null),
            |e| {
                assert_eq!(e.occurred_at, e.received_at);
            },
        ),
        accepted(
            "the Feature's id when properties.id is absent",
            edited(&fault(), |v| {
                props(v).remove("id");
                object(v).insert("id".into(), json!("feature-9"));
            }),
            |e| {
                assert_eq!(e.subject.as_deref(), Some("utility:apa-brasov:feature-9"));
                assert!(
                    e.id.as_str().starts_with("utility:apa-brasov:feature-9:"),
                    "a version of utility:apa-brasov:feature-9: {}",
                    e.id
                );
            },
        ),
        accepted("no description", without("description"), |e| {
            assert_eq!(e.description, None)
        }),
        // ---- refused ---------------------------------------------------------------------------
        accepted(
            "kind restored: the same subject, a Restored event",
            with("kind", json!("restored")),
            |e| {
                assert_eq!(e.kind, EventKind::Restored);
                assert_eq!(e.subject.as_deref(), Some("utility:apa-brasov:avarie-17"));
            },
        ),
        refused!(
            "an unknown kind",
            with("kind", json!("explosion")),
            WireError::Invalid { name: "kind", .. },
            [
                "property \"kind\"",
                "\"explosion\"",
                "outage, fault, planned_works, restored"
            ]
        ),
        refused!(
            "a kind in the wrong case",
            with("kind", json!("Fault")),
            WireError::Invalid { name: "kind", .. },
            ["\"Fault\""]
        ),
        refused!(
            "no kind",
            without("kind"),
            WireError::Missing("kind"),
            ["\"kind\" is required"]
        ),
        refused!(
            "a kind that is not a string",
            with("kind", json!(1)),
            WireError::Invalid { name: "kind", .. },
            ["property \"kind\"", "must be a string"]
        ),
        refused!(
            "no id",
            without("id"),
            WireError::Missing("id"),
            ["\"id\" is required"]
        ),
        refused!(
            "an id with '/'",
            with("id", json!("avarie/17")),
            WireError::Invalid { name: "id", .. },
            ["property \"id\"", "'/'"]
        ),
        refused!(
            "no category",
            without("category"),
            WireError::Missing("category"),
            ["\"category\" is required"]
        ),
        refused!(
            "an unknown category",
            with("category", json!("water")),
            WireError::UnknownCategory(_),
            ["\"water\"", "not one of this city's categories"]
        ),
        refused!(
            "starts_at without a time zone",
            with("starts_at", json!("2026-11-22T10:30:00")),
            WireError::Invalid {
                name: "starts_at",
                ..
            },
            ["property \"starts_at\"", "with a time zone"]
        ),
        refused!(
            "starts_at garbage",
            with("starts_at", json!("soon")),
            WireError::Invalid {
                name: "starts_at",
                ..
            },
            ["property \"starts_at\"", "\"soon\""]
        ),
        refused!(
            "a description of 4001 characters",
            with("description", json!("a".repeat(4001))),
            WireError::Invalid {
                name: "description",
                ..
            },
            ["longer than 4000 characters"]
        ),
        refused!(
            "a GeometryCollection",
            at(
                json!({"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [25.5887, 45.6419]}]})
            ),
            WireError::Geometry(_),
            [
                "Point, LineString, Polygon or MultiPolygon",
                "not a GeometryCollection"
            ]
        ),
        refused!(
            "a MultiPoint",
            at(json!({"type": "MultiPoint", "coordinates": [[25.5887, 45.6419]]})),
            WireError::Geometry(_),
            ["not a MultiPoint"]
        ),
        refused!(
            "a MultiLineString",
            at(
                json!({"type": "MultiLineString", "coordinates": [[[25.58, 45.64], [25.60, 45.64]]]})
            ),
            WireError::Geometry(_),
            ["not a MultiLineString"]
        ),
        refused!(
            "a null geometry",
            at(Value::Null),
            WireError::Geometry(_),
            ["geometry is missing"]
        ),
        refused!(
            "an empty LineString",
            at(json!({"type": "LineString", "coordinates": []})),
            WireError::Geometry(_),
            ["empty"]
        ),
        refused!(
            "an empty Polygon",
            at(json!({"type": "Polygon", "coordinates": []})),
            WireError::Geometry(_),
            ["empty"]
        ),
        refused!(
            "a Polygon with an empty ring",
            at(json!({"type": "Polygon", "coordinates": [[]]})),
            WireError::Geometry(_),
            ["empty"]
        ),
        refused!(
            "an empty MultiPolygon",
            at(json!({"type": "MultiPolygon", "coordinates": []})),
            WireError::Geometry(_),
            ["empty"]
        ),
        refused!(
            "a Polygon with a position off the Earth",
            at(
                json!({"type": "Polygon", "coordinates": [[[25.58, 45.63], [250.0, 45.63], [25.6, 45.65], [25.58, 45.63]]]})
            ),
            WireError::Geometry(_),
            ["[250, 45.63]", "not [longitude, latitude]"]
        ),
        refused!(
            "a LineString written latitude first",
            at(json!({"type": "LineString", "coordinates": [[45.64, 25.58], [45.64, 25.60]]})),
            WireError::OutsideCity { .. },
            ["outside the city"]
        ),
        refused!(
            "a Polygon outside the city (Sibiu)",
            at(
                json!({"type": "Polygon", "coordinates": [[[24.14, 45.79], [24.16, 45.79], [24.16, 45.80], [24.14, 45.79]]]})
            ),
            WireError::OutsideCity { .. },
            ["outside the city"]
        ),
        refused!(
            "not JSON",
            b"<event/>".to_vec(),
            WireError::NotJson(_),
            ["not valid JSON"]
        ),
        refused!(
            "a FeatureCollection",
            json!({"type": "FeatureCollection", "features": [fault()]})
                .to_string()
                .into_bytes(),
            WireError::NotAFeature(_),
            ["\"FeatureCollection\""]
        ),
    ]
}

#[test]
fn utility_events() {
    run(cases(), |payload| {
        utility_event(payload, OPERATOR, brasov(), received_at())
    });
}

#[test]
fn every_geometry_gives_a_location_inside_it_and_inside_the_city() {
    let city = brasov();
    let table = [
        (
            "Point",
            json!({"type": "Point", "coordinates": [25.5887, 45.6419]}),
        ),
        ("LineString", line()),
        ("Polygon", square()),
        ("Polygon whose centroid is outside it", u_shape()),
        ("MultiPolygon whose centroid is outside it", two_squares()),
    ];
    for (name, geometry) in table {
        let payload = at(geometry.clone());
        let e = utility_event(&payload, OPERATOR, city, received_at())
            .unwrap_or_else(|err| panic!("{name}: refused: {err}"));
        assert_eq!(
            e.subject.as_deref(),
            Some("utility:apa-brasov:avarie-17"),
            "{name}"
        );
        assert!(
            city.boundary.contains(&e.location),
            "{name}: {:?} is not inside the city",
            e.location
        );
        match to_geo(&geometry) {
            Geometry::Point(p) => assert_eq!(e.location, p, "{name}"),
            Geometry::LineString(l) => {
                // A point of the line: on the segment [25.58, 25.60] × {45.64}.
                let r = l.bounding_rect().expect("a line has a bounding box");
                assert!(
                    (r.min().x..=r.max().x).contains(&e.location.x())
                        && (e.location.y() - 45.64).abs() < 1e-9,
                    "{name}: {:?} is not on the line",
                    e.location
                );
            }
            area @ (Geometry::Polygon(_) | Geometry::MultiPolygon(_)) => {
                assert!(
                    area.contains(&e.location),
                    "{name}: {:?} is not inside the area",
                    e.location
                );
                if name.contains("centroid is outside") {
                    let c = area.centroid().expect("an area has a centroid");
                    assert!(!area.contains(&c), "{name}: the test's premise");
                }
            }
            other => panic!("{name}: unexpected test geometry {other:?}"),
        }
    }
}

#[test]
fn the_operator_comes_from_the_topic_and_must_be_a_valid_id() {
    let payload = fault().to_string().into_bytes();
    let long = "o".repeat(129);
    for operator in ["apa/brasov", "apa brasov", "apa+", "#", "", long.as_str()] {
        match utility_event(&payload, operator, brasov(), received_at()) {
            Err(e @ WireError::UnknownTopic(_)) => {
                let text = e.to_string();
                let topic = format!("dispecer/v1/in/utilities/{operator}/events");
                assert!(
                    text.contains(&topic),
                    "{operator:?}: {text:?} names the topic"
                );
                assert!(
                    text.contains("not an input topic"),
                    "{operator:?}: {text:?}"
                );
            }
            other => panic!("operator {operator:?}: expected UnknownTopic, got {other:?}"),
        }
    }
    // Any valid id is an operator: the city does not list them.
    let e = utility_event(&payload, "distrigaz-sud", brasov(), received_at())
        .expect("another operator");
    assert_eq!(
        e.subject.as_deref(),
        Some("utility:distrigaz-sud:avarie-17")
    );
    assert!(
        e.id.as_str()
            .starts_with("utility:distrigaz-sud:avarie-17:"),
        "a version of utility:distrigaz-sud:avarie-17: {}",
        e.id
    );
    assert_eq!(e.source, Source::Utility("distrigaz-sud".into()));
}

#[test]
fn a_redelivery_is_the_same_event_and_an_update_is_a_new_version_of_the_same_subject() {
    let city = brasov();
    let parse = |payload: &[u8]| {
        utility_event(payload, OPERATOR, city, received_at())
            .unwrap_or_else(|e| panic!("accepted: {e}"))
    };
    let first = parse(fault().to_string().as_bytes());
    let again = parse(fault().to_string().as_bytes());
    let update = parse(&with("description", json!("Echipă la fața locului")));
    assert_eq!(first.id, again.id, "same bytes, same event");
    assert_ne!(first.id, update.id, "an update is a new event");
    assert_eq!(first.subject, update.subject, "about the same thing");
}
