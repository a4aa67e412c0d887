//! The form body of Open311's `POST requests.{fmt}` (`application/x-www-form-urlencoded`), as the
//! server reads it (`RequestForm::from_body`), then the citizen report it becomes, through the
//! same parser as every other report. Never panics; an accepted form has a non-blank key and
//! service code, bounded fields, a request id that depends only on the form, and becomes a
//! GeoJSON Point on Earth that does not carry the key; when that report is accepted, it is a
//! valid citizen event of the form's category that replays to the same event.
#![no_main]

use chrono::DateTime;
use dispecer_fuzz::{assert_citizen, assert_replays, brasov, received_at};
use libfuzzer_sys::fuzz_target;
use protocol::inbound::{citizen_report, MAX_DESCRIPTION};
use protocol::open311::RequestForm;

fuzz_target!(|data: &[u8]| {
    let Ok(form) = RequestForm::from_body(data) else {
        return;
    };
    let (city, now) = (brasov(), received_at());
    assert!(!form.api_key.trim().is_empty(), "a blank api_key accepted");
    assert!(
        !form.service_code.trim().is_empty(),
        "a blank service_code accepted"
    );
    assert!(
        form.service_code.chars().count() <= 2000,
        "service_code too long"
    );
    let id = form.request_id("key-hash", now.date_naive());
    assert_eq!(
        id,
        form.request_id("key-hash", now.date_naive()),
        "request id not stable"
    );
    assert!(
        id.starts_with("o311-") && id.len() == 21,
        "request id {id:?}"
    );
    assert_ne!(
        id,
        form.request_id("other-key", now.date_naive()),
        "the key does not count"
    );

    let report = form.report(&id, now);
    let coordinates = report["geometry"]["coordinates"].as_array().map(|c| {
        c.iter()
            .filter_map(serde_json::Value::as_f64)
            .collect::<Vec<_>>()
    });
    match coordinates.as_deref() {
        Some([lon, lat]) => assert!(
            lon.is_finite() && lat.is_finite() && lon.abs() <= 180.0 && lat.abs() <= 90.0,
            "a point off the Earth: {lon}, {lat}"
        ),
        other => panic!("not a point: {other:?}"),
    }
    let props = &report["properties"];
    assert_eq!(props["id"], id.as_str());
    assert_eq!(props["category"], form.service_code.as_str());
    assert!(
        props.get("api_key").is_none(),
        "the key went into the report"
    );
    if let Some(d) = props["description"].as_str() {
        assert!(d.chars().count() <= MAX_DESCRIPTION, "description too long");
    }
    if let Some(t) = props["reported_at"].as_str() {
        assert!(
            DateTime::parse_from_rfc3339(t.trim()).is_ok(),
            "reported_at {t:?}"
        );
    }
    // What the server files: the report's text, parsed as any citizen's report.
    let text = report.to_string();
    if let Ok(event) = citizen_report(text.as_bytes(), city, now) {
        assert_citizen(city, &event, now);
        assert_eq!(event.category.as_str(), form.service_code.as_str());
        assert_replays(&event, citizen_report(event.payload.as_bytes(), city, now));
    }
});
