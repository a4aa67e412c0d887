//! Citizens' reports (`dispecer/v1/in/citizen/reports`): what is accepted, and every refusal.

use chrono::Duration;
use serde_json::{json, Value};

use model::{EventKind, Source};
use protocol::inbound::{citizen_report, MAX_DESCRIPTION, MAX_PAYLOAD};
use protocol::WireError;

use crate::support::{
    accepted, brasov, edited, object, padded_to, props, received_at, refused, run, utc, Case,
};

/// A valid report at Piața Sfatului, as the protocol documents it (with a description to trim).
fn report() -> Value {
    json!({
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [25.5887, 45.6419]},
        "properties": {
            "id": "r-123",
            "category": "pothole",
            "description": "  Groapă adâncă\n",
            "reported_at": "2026-11-22T10:00:00+02:00"
        }
    })
}

/// The report with one property set to `value`.
fn with(name: &'static str, value: Value) -> Vec<u8> {
    edited(&report(), |v| {
        props(v).insert(name.into(), value);
    })
}

/// The report without property `name`.
fn without(name: &'static str) -> Vec<u8> {
    edited(&report(), |v| {
        props(v).remove(name);
    })
}

/// The report with this geometry.
fn at(geometry: Value) -> Vec<u8> {
    edited(&report(), |v| {
        object(v).insert("geometry".into(), geometry);
    })
}

/// The report with its text replaced: for payloads serde_json would never write.
fn text(from: &str, to: &str) -> Vec<u8> {
    let t = report().to_string();
    assert!(t.contains(from), "{from:?} is in the base report {t}");
    t.replacen(from, to, 1).into_bytes()
}

fn cases() -> Vec<Case> {
    let now = received_at();
    vec![
        // ---- accepted --------------------------------------------------------------------------
        accepted(
            "the documented report",
            report().to_string().into_bytes(),
            |e| {
                assert_eq!(e.id.as_str(), "citizen:r-123");
                assert_eq!(e.source, Source::Citizen);
                assert_eq!(e.kind, EventKind::Report);
                assert_eq!(e.category.as_str(), "pothole");
                assert_eq!(
                    (e.location.x(), e.location.y()),
                    (25.5887, 45.6419),
                    "(lon, lat)"
                );
                assert_eq!(e.description.as_deref(), Some("Groapă adâncă"), "trimmed");
                // 10:00 at +02:00 is 08:00 UTC.
                assert_eq!(e.occurred_at, utc("2026-11-22T08:00:00Z"));
                assert_eq!(e.received_at, received_at());
                assert_eq!(
                    e.payload,
                    report().to_string(),
                    "the payload is kept verbatim"
                );
            },
        ),
        accepted(
            "reported_at in UTC, with Z",
            with("reported_at", json!("2026-11-22T08:59:59Z")),
            |e| {
                assert_eq!(e.occurred_at, utc("2026-11-22T08:59:59Z"));
            },
        ),
        accepted(
            "reported_at at a negative offset, with fractions",
            with("reported_at", json!("2026-11-22T03:30:00.250-05:00")),
            |e| {
                assert_eq!(e.occurred_at, utc("2026-11-22T08:30:00.250Z"));
            },
        ),
        accepted(
            "the Feature's id when properties.id is absent",
            edited(&report(), |v| {
                props(v).remove("id");
                object(v).insert("id".into(), json!("feature-7"));
            }),
            |e| assert_eq!(e.id.as_str(), "citizen:feature-7"),
        ),
        accepted(
            "properties.id wins over the Feature's id",
            edited(&report(), |v| {
                object(v).insert("id".into(), json!("feature-7"));
            }),
            |e| assert_eq!(e.id.as_str(), "citizen:r-123"),
        ),
        accepted(
            "an id of 128 characters",
            with("id", json!("r".repeat(128))),
            |e| {
                assert_eq!(e.id.as_str(), format!("citizen:{}", "r".repeat(128)));
            },
        ),
        accepted(
            "an id with letters beyond ASCII and a colon",
            with("id", json!("raport:ăîș-1")),
            |e| {
                assert_eq!(e.id.as_str(), "citizen:raport:ăîș-1");
            },
        ),
        accepted("no description", without("description"), |e| {
            assert_eq!(e.description, None)
        }),
        accepted(
            "a null description",
            with("description", Value::Null),
            |e| assert_eq!(e.description, None),
        ),
        accepted(
            "a blank description is none",
            with("description", json!(" \t\n ")),
            |e| {
                assert_eq!(e.description, None);
            },
        ),
        accepted(
            "a description of 4000 characters",
            with("description", json!("a".repeat(MAX_DESCRIPTION))),
            |e| {
                assert_eq!(
                    e.description.as_deref().map(str::len),
                    Some(MAX_DESCRIPTION)
                );
            },
        ),
        accepted(
            "4000 characters are counted as characters, not bytes",
            with("description", json!("ă".repeat(MAX_DESCRIPTION))),
            |e| {
                assert_eq!(
                    e.description.as_deref().map(|d| d.chars().count()),
                    Some(MAX_DESCRIPTION)
                );
            },
        ),
        accepted(
            "reported_at 1 minute in the future (a sender's clock ahead)",
            with("reported_at", json!("2026-11-22T11:01:00+02:00")),
            |e| {
                assert_eq!(e.occurred_at, received_at() + Duration::minutes(1));
            },
        ),
        accepted(
            "reported_at exactly 5 minutes in the future",
            with("reported_at", json!("2026-11-22T09:05:00Z")),
            |e| {
                assert_eq!(e.occurred_at, received_at() + Duration::minutes(5));
            },
        ),
        accepted(
            "a position with an altitude",
            at(json!({"type": "Point", "coordinates": [25.5887, 45.6419, 560.0]})),
            |e| {
                assert_eq!((e.location.x(), e.location.y()), (25.5887, 45.6419));
            },
        ),
        accepted(
            "Poiana Brașov, inside the municipality far from the centre",
            at(json!({"type": "Point", "coordinates": [25.553, 45.595]})),
            |e| {
                assert_eq!((e.location.x(), e.location.y()), (25.553, 45.595));
            },
        ),
        // The boundary is a simplification (170 of the official 267 km²), so a place inside the
        // city's bounds is taken even where the simplified outline does not reach.
        accepted(
            "inside the bounds, outside the simplified boundary",
            at(json!({"type": "Point", "coordinates": [25.505, 45.53]})),
            |e| {
                assert_eq!((e.location.x(), e.location.y()), (25.505, 45.53));
            },
        ),
        accepted(
            "unknown properties are ignored",
            with("app_version", json!("3.1")),
            |e| {
                assert_eq!(e.id.as_str(), "citizen:r-123");
            },
        ),
        accepted(
            "a payload of exactly MAX_PAYLOAD bytes",
            padded_to(&report(), MAX_PAYLOAD),
            |e| {
                assert_eq!(e.payload.len(), MAX_PAYLOAD);
            },
        ),
        // ---- not a GeoJSON Feature ------------------------------------------------------------
        refused!(
            "not UTF-8",
            b"\xff\xfe{\"type\": \"Feature\"}".to_vec(),
            WireError::NotJson(_),
            ["not valid JSON", "not UTF-8"]
        ),
        refused!(
            "UTF-8 broken inside a string",
            text("Groapă", "Groap@")
                .into_iter()
                .map(|b| if b == b'@' { 0xc3 } else { b })
                .collect(),
            WireError::NotJson(_),
            ["not UTF-8"]
        ),
        refused!(
            "not JSON",
            b"pothole at the square".to_vec(),
            WireError::NotJson(_),
            ["not valid JSON", "line 1 column 1"]
        ),
        refused!(
            "an empty payload",
            Vec::new(),
            WireError::NotJson(_),
            ["not valid JSON", "EOF"]
        ),
        refused!(
            "truncated JSON",
            report().to_string().as_bytes()[..40].to_vec(),
            WireError::NotJson(_),
            ["not valid JSON", "EOF"]
        ),
        refused!(
            "a JSON array",
            json!([report()]).to_string().into_bytes(),
            WireError::NotAFeature(_),
            ["not a GeoJSON Feature", "\"type\": \"Feature\" is missing"]
        ),
        refused!(
            "a JSON string",
            b"\"Feature\"".to_vec(),
            WireError::NotAFeature(_),
            ["not a GeoJSON Feature"]
        ),
        refused!(
            "a FeatureCollection",
            edited(&report(), |v| {
                *v = json!({"type": "FeatureCollection", "features": [v.clone()]});
            }),
            WireError::NotAFeature(_),
            ["\"FeatureCollection\"", "expected \"Feature\""]
        ),
        refused!(
            "a bare Point geometry",
            json!({"type": "Point", "coordinates": [25.5887, 45.6419]})
                .to_string()
                .into_bytes(),
            WireError::NotAFeature(_),
            ["\"Point\"", "expected \"Feature\""]
        ),
        refused!(
            "no type",
            edited(&report(), |v| {
                object(v).remove("type");
            }),
            WireError::NotAFeature(_),
            ["\"type\": \"Feature\" is missing"]
        ),
        refused!(
            "type \"feature\" in lower case",
            edited(&report(), |v| {
                object(v).insert("type".into(), json!("feature"));
            }),
            WireError::NotAFeature(_),
            ["\"feature\"", "expected \"Feature\""]
        ),
        refused!(
            "properties that are not an object",
            edited(&report(), |v| {
                object(v).insert("properties".into(), json!(["pothole"]));
            }),
            WireError::NotAFeature(_),
            ["properties"]
        ),
        // ---- geometry -------------------------------------------------------------------------
        refused!(
            "no geometry member",
            edited(&report(), |v| {
                object(v).remove("geometry");
            }),
            WireError::NotAFeature(_),
            ["geometry"]
        ),
        refused!(
            "a null geometry",
            at(Value::Null),
            WireError::Geometry(_),
            ["geometry is missing"]
        ),
        refused!(
            "a geometry that is not an object",
            at(json!("Piața Sfatului")),
            WireError::NotAFeature(_),
            ["geometry"]
        ),
        refused!(
            "an unknown geometry type",
            at(json!({"type": "Circle", "coordinates": [25.5887, 45.6419]})),
            WireError::NotAFeature(_),
            ["Circle"]
        ),
        refused!(
            "a LineString",
            at(json!({"type": "LineString", "coordinates": [[25.5887, 45.6419], [25.59, 45.642]]})),
            WireError::Geometry(_),
            ["a citizen report is a Point, not a LineString"]
        ),
        refused!(
            "a Polygon",
            at(
                json!({"type": "Polygon", "coordinates": [[[25.58, 45.64], [25.59, 45.64], [25.59, 45.65], [25.58, 45.64]]]})
            ),
            WireError::Geometry(_),
            ["a citizen report is a Point, not a Polygon"]
        ),
        refused!(
            "a MultiPoint",
            at(json!({"type": "MultiPoint", "coordinates": [[25.5887, 45.6419]]})),
            WireError::Geometry(_),
            ["not a MultiPoint"]
        ),
        refused!(
            "a GeometryCollection",
            at(
                json!({"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [25.5887, 45.6419]}]})
            ),
            WireError::Geometry(_),
            ["not a GeometryCollection"]
        ),
        refused!(
            "latitude first: [45.6419, 25.5887] is in Arabia, outside the city",
            at(json!({"type": "Point", "coordinates": [45.6419, 25.5887]})),
            WireError::OutsideCity { .. },
            ["[45.6419, 25.5887]", "outside the city"]
        ),
        refused!(
            "longitude 200 is off the Earth",
            at(json!({"type": "Point", "coordinates": [200, 45]})),
            WireError::Geometry(_),
            ["[200, 45]", "not [longitude, latitude] in degrees"]
        ),
        refused!(
            "latitude 95 is off the Earth",
            at(json!({"type": "Point", "coordinates": [25.5887, 95]})),
            WireError::Geometry(_),
            ["[25.5887, 95]", "not [longitude, latitude]"]
        ),
        refused!(
            "a huge number (1e308)",
            at(json!({"type": "Point", "coordinates": [1e308, 45.6419]})),
            WireError::Geometry(_),
            ["not [longitude, latitude]"]
        ),
        refused!(
            "a number beyond f64 (1e400)",
            text("25.5887", "1e400"),
            WireError::NotJson(_),
            ["not valid JSON", "out of range"]
        ),
        refused!(
            "NaN",
            text("25.5887", "NaN"),
            WireError::NotJson(_),
            ["not valid JSON"]
        ),
        refused!(
            "Infinity",
            text("25.5887", "Infinity"),
            WireError::NotJson(_),
            ["not valid JSON"]
        ),
        refused!(
            "-Infinity",
            text("25.5887", "-Infinity"),
            WireError::NotJson(_),
            ["not valid JSON"]
        ),
        refused!(
            "coordinates as strings",
            at(json!({"type": "Point", "coordinates": ["25.5887", "45.6419"]})),
            WireError::NotAFeature(_),
            ["not a GeoJSON Feature"]
        ),
        refused!(
            "a position of one number",
            at(json!({"type": "Point", "coordinates": [25.5887]})),
            WireError::NotAFeature(_),
            ["two or more"]
        ),
        refused!(
            "an empty position",
            at(json!({"type": "Point", "coordinates": []})),
            WireError::NotAFeature(_),
            ["two or more"]
        ),
        refused!(
            "no coordinates",
            at(json!({"type": "Point"})),
            WireError::NotAFeature(_),
            ["coordinates"]
        ),
        refused!(
            "a point outside the city (Bucharest)",
            at(json!({"type": "Point", "coordinates": [26.1025, 44.4268]})),
            WireError::OutsideCity { .. },
            ["[26.1025, 44.4268]", "outside the city"]
        ),
        refused!(
            "a point just west of the city's bounds",
            at(json!({"type": "Point", "coordinates": [25.49, 45.64]})),
            WireError::OutsideCity { .. },
            ["outside the city"]
        ),
        refused!(
            "Null Island",
            at(json!({"type": "Point", "coordinates": [0, 0]})),
            WireError::OutsideCity { lon: 0.0, lat: 0.0 },
            ["[0, 0]", "outside the city"]
        ),
        // ---- properties -----------------------------------------------------------------------
        refused!(
            "no properties",
            edited(&report(), |v| {
                object(v).remove("properties");
            }),
            WireError::Missing("properties"),
            ["\"properties\" is required"]
        ),
        refused!(
            "null properties",
            edited(&report(), |v| {
                object(v).insert("properties".into(), Value::Null);
            }),
            WireError::Missing("properties"),
            ["\"properties\" is required"]
        ),
        // id
        refused!(
            "no id",
            without("id"),
            WireError::Missing("id"),
            ["\"id\" is required"]
        ),
        refused!(
            "a null id",
            with("id", Value::Null),
            WireError::Missing("id"),
            ["\"id\" is required"]
        ),
        refused!(
            "a numeric Feature id is not an id",
            edited(&report(), |v| {
                props(v).remove("id");
                object(v).insert("id".into(), json!(17));
            }),
            WireError::Missing("id"),
            ["\"id\" is required"]
        ),
        refused!(
            "an empty id",
            with("id", json!("")),
            WireError::Invalid { name: "id", .. },
            ["property \"id\"", "1 to 128 characters"]
        ),
        refused!(
            "an id with a space",
            with("id", json!("r 123")),
            WireError::Invalid { name: "id", .. },
            ["property \"id\"", "no spaces"]
        ),
        refused!(
            "an id with '/'",
            with("id", json!("r/123")),
            WireError::Invalid { name: "id", .. },
            ["property \"id\"", "'/'"]
        ),
        refused!(
            "an id with '+'",
            with("id", json!("r+123")),
            WireError::Invalid { name: "id", .. },
            ["property \"id\"", "'+'"]
        ),
        refused!(
            "an id with '#'",
            with("id", json!("r#123")),
            WireError::Invalid { name: "id", .. },
            ["property \"id\"", "'#'"]
        ),
        refused!(
            "an id with a control character",
            with("id", json!("r\u{7}123")),
            WireError::Invalid { name: "id", .. },
            ["property \"id\""]
        ),
        refused!(
            "an id of 129 characters",
            with("id", json!("r".repeat(129))),
            WireError::Invalid { name: "id", .. },
            ["property \"id\"", "1 to 128 characters"]
        ),
        refused!(
            "a Feature id with a space, properties.id absent",
            edited(&report(), |v| {
                props(v).remove("id");
                object(v).insert("id".into(), json!("r 123"));
            }),
            WireError::Invalid { name: "id", .. },
            ["property \"id\"", "no spaces"]
        ),
        refused!(
            "an id that is a number",
            with("id", json!(123)),
            WireError::Invalid { name: "id", .. },
            ["property \"id\"", "must be a string"]
        ),
        // category
        refused!(
            "no category",
            without("category"),
            WireError::Missing("category"),
            ["\"category\" is required"]
        ),
        refused!("an unknown category", with("category", json!("potholes")), WireError::UnknownCategory(c) if c == "potholes", ["\"potholes\"", "not one of this city's categories"]),
        refused!(
            "a category in the wrong case",
            with("category", json!("Pothole")),
            WireError::UnknownCategory(_),
            ["\"Pothole\"", "not one of this city's categories"]
        ),
        refused!(
            "a category that is not a string",
            with("category", json!(["pothole"])),
            WireError::Invalid {
                name: "category",
                ..
            },
            ["property \"category\"", "must be a string"]
        ),
        // description
        refused!(
            "a description of 4001 characters",
            with("description", json!("a".repeat(MAX_DESCRIPTION + 1))),
            WireError::Invalid {
                name: "description",
                ..
            },
            ["property \"description\"", "longer than 4000 characters"]
        ),
        refused!(
            "a description that is not a string",
            with("description", json!(42)),
            WireError::Invalid {
                name: "description",
                ..
            },
            ["property \"description\"", "must be a string"]
        ),
        // reported_at
        refused!(
            "no reported_at",
            without("reported_at"),
            WireError::Missing("reported_at"),
            ["\"reported_at\" is required"]
        ),
        refused!(
            "a null reported_at",
            with("reported_at", Value::Null),
            WireError::Missing("reported_at"),
            ["\"reported_at\" is required"]
        ),
        refused!(
            "reported_at without a time zone",
            with("reported_at", json!("2026-11-22T10:00:00")),
            WireError::Invalid {
                name: "reported_at",
                ..
            },
            [
                "property \"reported_at\"",
                "\"2026-11-22T10:00:00\"",
                "with a time zone"
            ]
        ),
        refused!(
            "reported_at as a date only",
            with("reported_at", json!("2026-11-22")),
            WireError::Invalid {
                name: "reported_at",
                ..
            },
            ["property \"reported_at\"", "RFC 3339"]
        ),
        refused!(
            "reported_at garbage",
            with("reported_at", json!("yesterday evening")),
            WireError::Invalid {
                name: "reported_at",
                ..
            },
            [
                "property \"reported_at\"",
                "\"yesterday evening\"",
                "RFC 3339"
            ]
        ),
        refused!(
            "reported_at with an impossible date",
            with("reported_at", json!("2026-02-30T10:00:00+02:00")),
            WireError::Invalid {
                name: "reported_at",
                ..
            },
            ["property \"reported_at\"", "RFC 3339"]
        ),
        refused!(
            "reported_at as a Unix time",
            with("reported_at", json!(1_795_000_000)),
            WireError::Invalid {
                name: "reported_at",
                ..
            },
            ["property \"reported_at\"", "must be a string"]
        ),
        refused!(
            "reported_at 1 hour in the future",
            with(
                "reported_at",
                json!((now + Duration::hours(1)).to_rfc3339())
            ),
            WireError::Invalid {
                name: "reported_at",
                ..
            },
            ["property \"reported_at\"", "in the future"]
        ),
        refused!(
            "reported_at 5 minutes and 1 second in the future",
            with("reported_at", json!("2026-11-22T09:05:01Z")),
            WireError::Invalid {
                name: "reported_at",
                ..
            },
            ["in the future"]
        ),
        // size
        refused!("a payload of MAX_PAYLOAD + 1 bytes", padded_to(&report(), MAX_PAYLOAD + 1), WireError::TooLarge { size, limit: MAX_PAYLOAD } if *size == MAX_PAYLOAD + 1, [format!("{} bytes", MAX_PAYLOAD + 1), format!("the {MAX_PAYLOAD} bytes accepted")]),
        refused!(
            "a huge payload that is not even JSON",
            vec![b'x'; 4 * MAX_PAYLOAD],
            WireError::TooLarge { .. },
            ["larger than"]
        ),
    ]
}

#[test]
fn citizen_reports() {
    run(cases(), |payload| {
        citizen_report(payload, brasov(), received_at())
    });
}

#[test]
fn limits_are_the_documented_ones() {
    assert_eq!(MAX_PAYLOAD, 256 * 1024);
    assert_eq!(MAX_DESCRIPTION, 4000);
}

/// A citizen's contact is personal data: it comes out of the report into `Event::contact`, and
/// the payload kept in the event log no longer has it.
#[test]
fn contact_details_are_kept_apart_from_the_report() {
    let city = brasov();
    let contact =
        json!({"name": " Ana Pop ", "email": "Ana.Pop@Example.RO", "phone": "+40 (722) 123-456"});
    let payload = with("contact", contact);
    let event = citizen_report(&payload, city, received_at()).expect("accepted");
    let c = event.contact.clone().expect("a contact");
    assert_eq!(c.name.as_deref(), Some("Ana Pop"));
    assert_eq!(c.email.as_deref(), Some("ana.pop@example.ro"));
    assert_eq!(c.phone.as_deref(), Some("+40 (722) 123-456"));
    assert!(
        !event.payload.contains("contact")
            && !event.payload.contains("Ana")
            && !event.payload.contains("722"),
        "{}",
        event.payload
    );
    assert!(event.payload.contains("Groapă adâncă"), "the report stays");

    // No contact, a null one, or only blanks: none, and the payload is kept verbatim.
    let plain = report().to_string();
    let event = citizen_report(plain.as_bytes(), city, received_at()).expect("accepted");
    assert_eq!((event.contact, event.payload), (None, plain));
    for empty in [json!(null), json!({}), json!({"name": "  ", "email": null})] {
        let event =
            citizen_report(&with("contact", empty.clone()), city, received_at()).expect("accepted");
        assert_eq!(event.contact, None, "{empty}");
    }

    // Refused, naming the field.
    for (bad, words) in [
        (json!("ana@example.ro"), "must be an object"),
        (json!({"mail": "ana@example.ro"}), "unknown field \"mail\""),
        (json!({"email": "not-an-address"}), "\"email\""),
        (json!({"email": "a@b"}), "\"email\""),
        (json!({"email": "a b@example.ro"}), "\"email\""),
        (json!({"email": 7}), "must be a string"),
        (json!({"phone": "12345"}), "\"phone\""),
        (json!({"phone": "0722 123 456; drop"}), "\"phone\""),
        (json!({"name": "x".repeat(201)}), "\"name\""),
        (json!({"name": "Ana\u{0}"}), "\"name\""),
    ] {
        match citizen_report(&with("contact", bad.clone()), city, received_at()) {
            Ok(e) => panic!("{bad} accepted as {:?}", e.contact),
            Err(
                e @ WireError::Invalid {
                    name: "contact", ..
                },
            ) => {
                assert!(e.to_string().contains(words), "{bad}: {e}")
            }
            Err(e) => panic!("{bad}: unexpected {e:?}"),
        }
    }
}

/// Found by the `citizen_report` fuzz target: a coordinate written with more digits than an
/// `f64` holds, in a report with a contact (whose logged payload is written again without it),
/// was rounded one way when the report was parsed and another in the logged payload, so that
/// parsing that again (`dispecer rebuild`) put the incident a hair away. serde_json's
/// `float_roundtrip` feature makes every parse correctly rounded; the workspace now asks for it
/// itself (this test's build always had it, through jsonschema, a dev-dependency, which is why
/// only the fuzz target, a workspace of its own, saw the difference).
#[test]
fn a_long_coordinate_parses_again_to_the_same_point() {
    let long = format!("25.6{}", "4".repeat(85));
    let payload = format!(
        r#"{{"type": "Feature", "geometry": {{"type": "Point", "coordinates": [{long}, 45.65]}},
            "properties": {{"id": "r-2", "category": "street_light_out",
            "contact": {{"email": "ana@example.ro"}},
            "reported_at": "2020-01-01T10:00:00Z"}}}}"#
    );
    let event = citizen_report(payload.as_bytes(), brasov(), received_at()).expect("accepted");
    let again =
        citizen_report(event.payload.as_bytes(), brasov(), received_at()).expect("accepted again");
    assert_eq!(again.location, event.location);
    assert_eq!(
        event.location.x(),
        long.parse::<f64>().expect("a number"),
        "the nearest f64"
    );
}
