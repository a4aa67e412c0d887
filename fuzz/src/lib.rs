//! What the fuzz targets share: the Brașov city they parse against, a fixed clock, and the
//! invariants every accepted event, reading and record must keep. A broken invariant panics,
//! which libFuzzer reports as a crash with the input that caused it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::{DateTime, Duration, TimeZone, Utc};
use geo::Contains;

use model::ids::valid_id;
use model::{City, Event, EventKind, Reading, Source};

/// The Brașov demo city's files, by their names inside the folder (compiled in: the targets
/// never depend on the folder they run from).
pub fn brasov_texts() -> BTreeMap<String, String> {
    macro_rules! file {
        ($name:literal) => {
            (
                $name.to_owned(),
                include_str!(concat!("../../cities/brasov/", $name)).to_owned(),
            )
        };
    }
    BTreeMap::from([
        file!("city.toml"),
        file!("boundary.geojson"),
        file!("districts.geojson"),
        file!("categories.toml"),
        file!("agencies.toml"),
        file!("sensors.toml"),
        file!("jurisdictions/poiana-brasov-statiune.geojson"),
        file!("jurisdictions/salubrizare-zona-1.geojson"),
        file!("jurisdictions/salubrizare-zona-2.geojson"),
    ])
}

/// The Brașov city, loaded once.
pub fn brasov() -> &'static City {
    static CITY: OnceLock<City> = OnceLock::new();
    CITY.get_or_init(|| match city::from_texts(&brasov_texts()) {
        Ok(city) => city,
        Err(e) => panic!("the Brașov city must load: {e}"),
    })
}

/// When the targets receive their input: after every example's time in the repository.
pub fn received_at() -> DateTime<Utc> {
    match Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0) {
        chrono::LocalResult::Single(t) => t,
        _ => panic!("a valid date"),
    }
}

/// How far in the future a sender's clock may be (the parsers' own skew).
pub const CLOCK_SKEW: Duration = Duration::minutes(5);

/// Whether `p` is a place Dispecer accepts: on Earth and inside the city.
pub fn assert_in_city(city: &City, p: geo::Point, what: &str) {
    assert!(
        model::geometry::valid_position(p.x(), p.y()),
        "{what}: position {p:?} is not (longitude, latitude) in degrees"
    );
    assert!(
        city.bounds.contains(&p) || city.boundary.contains(&p),
        "{what}: position {p:?} is outside the city"
    );
}

/// What every accepted event keeps, whoever sent it.
pub fn assert_event(city: &City, event: &Event, received_at: DateTime<Utc>) {
    assert!(!event.id.as_str().is_empty(), "empty event id");
    if let Some(subject) = &event.subject {
        assert!(!subject.is_empty(), "empty subject");
    }
    assert_in_city(city, event.location, "event location");
    assert!(
        city.category(event.category.as_str()).is_some(),
        "unknown category {:?}",
        event.category
    );
    if let Some(d) = &event.description {
        assert!(!d.is_empty(), "description Some(\"\") instead of None");
        assert_eq!(d.trim(), d, "description not trimmed");
        assert!(
            d.chars().count() <= protocol::inbound::MAX_DESCRIPTION,
            "description of {} characters",
            d.chars().count()
        );
    }
    assert_eq!(event.received_at, received_at, "received_at changed");
    if let Some(c) = &event.contact {
        assert!(
            c.name.is_some() || c.email.is_some() || c.phone.is_some(),
            "a contact with no field"
        );
        if let Some(n) = &c.name {
            assert!(!n.is_empty() && n.chars().count() <= protocol::inbound::MAX_CONTACT_NAME);
            assert!(
                !n.chars().any(char::is_control),
                "control character in a name"
            );
        }
        if let Some(e) = &c.email {
            assert!(!e.is_empty() && e.len() <= protocol::inbound::MAX_EMAIL);
            assert_eq!(&e.to_lowercase(), e, "e-mail not lowercased");
            assert!(e.contains('@'), "e-mail without @");
        }
        if let Some(p) = &c.phone {
            assert!(p.chars().count() <= protocol::inbound::MAX_PHONE);
            assert!(p.chars().filter(char::is_ascii_digit).count() >= 6);
        }
    }
}

/// A citizen report's own invariants.
pub fn assert_citizen(city: &City, event: &Event, received_at: DateTime<Utc>) {
    assert_event(city, event, received_at);
    assert_eq!(event.source, Source::Citizen);
    assert_eq!(event.kind, EventKind::Report);
    assert_eq!(event.subject, None);
    let sender = event.id.as_str().strip_prefix("citizen:");
    assert!(
        sender.is_some_and(valid_id),
        "citizen event id {:?}",
        event.id
    );
    assert!(
        event.occurred_at <= received_at + CLOCK_SKEW,
        "reported in the future"
    );
    // The contact is personal data: never in the logged payload.
    let logged: serde_json::Value = match serde_json::from_str(&event.payload) {
        Ok(v) => v,
        Err(e) => panic!("the logged payload is not JSON: {e}"),
    };
    assert!(
        logged
            .get("properties")
            .and_then(|p| p.get("contact"))
            .is_none(),
        "the contact is in the logged payload"
    );
}

/// A utility's event (GeoJSON or CAP): the sender is the operator from the topic.
pub fn assert_utility(city: &City, event: &Event, operator: &str, received_at: DateTime<Utc>) {
    assert_event(city, event, received_at);
    assert_eq!(event.source, Source::Utility(operator.to_owned()));
    assert!(matches!(
        event.kind,
        EventKind::Notice | EventKind::Restored
    ));
    assert!(event.subject.is_some(), "a utility event without a subject");
    assert!(event.contact.is_none(), "a utility event with a contact");
}

/// What `dispecer rebuild` relies on: the logged payload, parsed again, gives the same event
/// (without the citizen's contact, which is not logged).
pub fn assert_replays(event: &Event, again: Result<Event, protocol::WireError>) {
    let again = match again {
        Ok(e) => e,
        Err(e) => panic!("the logged payload is refused when parsed again: {e}"),
    };
    let expected = Event {
        contact: None,
        ..event.clone()
    };
    assert_eq!(again, expected, "the logged payload gives another event");
}

/// A traffic reading: a known sensor and metric, a value in range, a time not in the future.
pub fn assert_reading(city: &City, r: &Reading, now: DateTime<Utc>) {
    assert!(
        city.sensors.iter().any(|s| s.id == r.sensor),
        "unknown sensor {:?}",
        r.sensor
    );
    let range = match r.metric.as_str() {
        "count" | "speed" => 0.0..1.0e6,
        "occupancy" => 0.0..100.0 + f64::EPSILON * 128.0,
        other => panic!("unknown metric {other:?}"),
    };
    assert!(
        r.value.is_finite() && range.contains(&r.value),
        "value {}",
        r.value
    );
    assert!(r.time <= now + CLOCK_SKEW, "a reading from the future");
}

/// A resolved SenML record (RFC 8428 §4.5.1 names, finite numbers, years 1970–9999).
pub fn assert_record(r: &protocol::senml::Record) {
    use protocol::senml::{SenmlValue, MAX_NAME_LEN, MAX_UNIT_LEN};
    assert!(
        !r.name.is_empty() && r.name.len() <= MAX_NAME_LEN,
        "name {:?}",
        r.name
    );
    assert!(
        r.name.starts_with(|c: char| c.is_ascii_alphanumeric()),
        "name {:?}",
        r.name
    );
    assert!(
        r.name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.' | '/' | '_')),
        "name {:?}",
        r.name
    );
    if let Some(u) = &r.unit {
        assert!(u.len() <= MAX_UNIT_LEN, "unit of {} bytes", u.len());
    }
    match &r.value {
        Some(SenmlValue::Number(v)) => assert!(v.is_finite(), "value {v}"),
        Some(SenmlValue::Data(d)) => assert!(
            d.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && d.len() % 4 != 1,
            "vd {d:?}"
        ),
        Some(SenmlValue::String(_) | SenmlValue::Bool(_)) => {}
        None => assert!(r.sum.is_some(), "a record with neither value nor sum"),
    }
    if let Some(s) = r.sum {
        assert!(s.is_finite(), "sum {s}");
    }
    if let Some(ut) = r.update_time {
        assert!(ut.is_finite(), "update time {ut}");
    }
    let year = chrono::Datelike::year(&r.time);
    assert!((1970..10000).contains(&year), "time {}", r.time);
}

/// A pack: at least one record, at most the limit, in the pack's order.
pub fn assert_records(records: &[protocol::senml::Record]) {
    assert!(!records.is_empty(), "an accepted pack without records");
    assert!(records.len() <= protocol::senml::MAX_RECORDS);
    for pair in records.windows(2) {
        assert!(pair[0].index < pair[1].index, "records out of order");
    }
    records.iter().for_each(assert_record);
}
