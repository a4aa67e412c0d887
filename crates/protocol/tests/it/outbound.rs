//! What Dispecer sends: the incident GeoJSON Feature and the stream frames, checked against the
//! documented JSON so that a change of the domain never changes the wire silently.

use geo::Point;
use serde_json::{json, Value};

use model::{
    Incident, IncidentId, IncidentStatus, RouteCandidate, RoutingDecision, RoutingRule, Severity,
    SlaClock,
};
use protocol::incident::{IncidentCollection, IncidentFeature, PointGeometry};
use protocol::stream::{Change, EscalationDto, StreamFrame};

use crate::support::utc;

const ID: &str = "01937f4a-8c2e-7000-8000-000000000001";

/// A pothole in the old town, routed by jurisdiction, reported three times.
fn incident() -> Incident {
    Incident {
        id: IncidentId::new(ID),
        category: "pothole".into(),
        severity: Severity::Minor,
        status: IncidentStatus::Assigned,
        location: Point::new(25.588_712_34, 45.641_909_87),
        area: None,
        district: Some("centrul-istoric".into()),
        agency: "domeniu-public".into(),
        routing: RoutingDecision {
            chosen: RouteCandidate {
                agency: "domeniu-public".into(),
                rule: RoutingRule::Jurisdiction,
                area: Some("city".into()),
            },
            alternatives: vec![RouteCandidate {
                agency: "city-dispatch".into(),
                rule: RoutingRule::Fallback,
                area: None,
            }],
            informed: vec![model::Informed {
                agency: "rat-brasov".into(),
                rule: model::InformRule::CategoryKind,
                area: Some("city".into()),
            }],
        },
        report_count: 3,
        description: Some("Groapă adâncă".into()),
        external_ref: None,
        opened_at: utc("2026-11-22T08:00:00.123456789Z"),
        updated_at: utc("2026-11-22T08:05:00Z"),
        sla: SlaClock {
            ack_due: Some(utc("2026-11-22T16:00:00.123456789Z")),
            resolve_due: Some(utc("2026-11-29T08:00:00.123456789Z")),
            ack_escalated_at: None,
            resolve_escalated_at: None,
        },
        merged_into: None,
        explained_by: vec![],
    }
}

/// The moment the documented JSON describes: before both deadlines.
fn now() -> chrono::DateTime<chrono::Utc> {
    utc("2026-11-22T09:00:00Z")
}

/// The documented JSON of [`incident`] at [`now`].
fn incident_json() -> Value {
    json!({
        "type": "Feature",
        "id": ID,
        "geometry": {"type": "Point", "coordinates": [25.588712, 45.64191]},
        "properties": {
            "id": ID,
            "status": "assigned",
            "category": "pothole",
            "severity": "minor",
            "agency": "domeniu-public",
            "district": "centrul-istoric",
            "report_count": 3,
            "description": "Groapă adâncă",
            "opened_at": "2026-11-22T08:00:00.123Z",
            "updated_at": "2026-11-22T08:05:00.000Z",
            "routing": {
                "agency": "domeniu-public",
                "rule": "jurisdiction",
                "area": "city",
                "alternatives": [
                    {"agency": "city-dispatch", "rule": "fallback", "area": null}
                ],
                "informed": [
                    {"agency": "rat-brasov", "rule": "category_kind", "area": "city"}
                ]
            },
            "ack_due": "2026-11-22T16:00:00.123Z",
            "resolve_due": "2026-11-29T08:00:00.123Z",
            "overdue": false,
            "escalated": false
        }
    })
}

#[test]
fn an_incident_is_the_documented_feature_and_round_trips() {
    let feature = IncidentFeature::at(&incident(), now());
    let value = serde_json::to_value(&feature).expect("serialises");
    assert_eq!(value, incident_json());
    let back: IncidentFeature = serde_json::from_value(value).expect("deserialises");
    assert_eq!(back, feature);
    // And through text, as a dashboard receives it.
    let text = serde_json::to_string(&feature).expect("serialises");
    let back: IncidentFeature = serde_json::from_str(&text).expect("deserialises");
    assert_eq!(back, feature);
}

#[test]
fn absent_district_and_description_are_null() {
    let mut i = incident();
    i.district = None;
    i.description = None;
    i.status = IncidentStatus::New;
    i.severity = Severity::Extreme;
    let value = serde_json::to_value(IncidentFeature::from(&i)).expect("serialises");
    let props = &value["properties"];
    assert_eq!(props["district"], Value::Null);
    assert_eq!(props["description"], Value::Null);
    assert_eq!(props["status"], "new");
    assert_eq!(props["severity"], "extreme");
    let keys: Vec<&str> = props
        .as_object()
        .expect("properties is an object")
        .keys()
        .map(String::as_str)
        .collect();
    for key in ["district", "description"] {
        assert!(keys.contains(&key), "{key} is present even when null");
    }
}

#[test]
fn deadlines_overdue_and_escalation_on_the_wire() {
    let props = |i: &Incident, at: &str| IncidentFeature::at(i, utc(at)).properties;
    let i = incident();
    // name, incident, when, overdue, escalated
    let cases: Vec<(&str, Incident, &str, bool, bool)> = vec![
        ("in time", i.clone(), "2026-11-22T15:59:59Z", false, false),
        (
            "acknowledgement late",
            i.clone(),
            "2026-11-22T16:00:01Z",
            true,
            false,
        ),
        (
            "acknowledged in time",
            Incident {
                status: IncidentStatus::Acknowledged,
                ..i.clone()
            },
            "2026-11-23T00:00:00Z",
            false,
            false,
        ),
        (
            "escalated, still late",
            Incident {
                sla: SlaClock {
                    ack_escalated_at: Some(utc("2026-11-22T16:00:01Z")),
                    ..i.sla
                },
                merged_into: None,
                explained_by: vec![],
                ..i.clone()
            },
            "2026-11-23T00:00:00Z",
            true,
            true,
        ),
        (
            "resolved late is not overdue",
            Incident {
                status: IncidentStatus::Resolved,
                ..i.clone()
            },
            "2026-12-01T00:00:00Z",
            false,
            false,
        ),
    ];
    for (name, incident, at, overdue, escalated) in cases {
        let p = props(&incident, at);
        assert_eq!((p.overdue, p.escalated), (overdue, escalated), "{name}");
    }
    let none = Incident {
        sla: SlaClock::default(),
        ..i
    };
    let value = serde_json::to_value(IncidentFeature::at(&none, now())).expect("serialises");
    assert_eq!(value["properties"]["ack_due"], Value::Null);
    assert_eq!(value["properties"]["resolve_due"], Value::Null);
    // A dashboard's older JSON, without the lifecycle fields, still reads.
    let mut old = incident_json();
    for key in ["ack_due", "resolve_due", "overdue", "escalated"] {
        old["properties"]
            .as_object_mut()
            .expect("an object")
            .remove(key);
    }
    let back: IncidentFeature = serde_json::from_value(old).expect("deserialises");
    assert_eq!(back.properties.ack_due, None);
    assert!(!back.properties.overdue);
}

#[test]
fn statuses_are_snake_case_on_the_wire() {
    for (status, wire) in [
        (IncidentStatus::New, "new"),
        (IncidentStatus::Assigned, "assigned"),
        (IncidentStatus::Acknowledged, "acknowledged"),
        (IncidentStatus::InProgress, "in_progress"),
        (IncidentStatus::Resolved, "resolved"),
        (IncidentStatus::Closed, "closed"),
        (IncidentStatus::Rejected, "rejected"),
        (IncidentStatus::Duplicate, "duplicate"),
        (IncidentStatus::Reopened, "reopened"),
    ] {
        let mut i = incident();
        i.status = status;
        assert_eq!(IncidentFeature::from(&i).properties.status, wire);
    }
}

#[test]
fn points_are_rounded_to_6_decimals() {
    for ((lon, lat), expected) in [
        ((25.5887, 45.6419), [25.5887, 45.6419]),
        ((25.588_712_34, 45.641_909_87), [25.588712, 45.64191]),
        ((25.588_712_500_1, 45.641_909_499_9), [25.588713, 45.641909]),
        ((-73.985_654_32, 40.748_441_78), [-73.985654, 40.748442]),
        ((180.0, -90.0), [180.0, -90.0]),
    ] {
        let p = PointGeometry::new(lon, lat);
        assert_eq!(p.kind, "Point");
        assert_eq!(p.coordinates, expected, "({lon}, {lat})");
        assert_eq!(
            serde_json::to_value(&p).expect("serialises"),
            json!({"type": "Point", "coordinates": expected})
        );
    }
}

#[test]
fn a_snapshot_frame_is_tagged_snapshot() {
    let frame = StreamFrame::Snapshot {
        incidents: IncidentCollection::at([&incident()], now()),
    };
    let value = serde_json::to_value(&frame).expect("serialises");
    assert_eq!(
        value,
        json!({
            "type": "snapshot",
            "incidents": {"type": "FeatureCollection", "features": [incident_json()]}
        })
    );
    let back: StreamFrame = serde_json::from_value(value).expect("deserialises");
    assert_eq!(back, frame);

    let empty = StreamFrame::Snapshot {
        incidents: IncidentCollection::new([]),
    };
    assert_eq!(
        serde_json::to_value(&empty).expect("serialises"),
        json!({"type": "snapshot", "incidents": {"type": "FeatureCollection", "features": []}})
    );
}

#[test]
fn an_incident_frame_is_tagged_incident_with_its_change() {
    for (change, wire) in [(Change::Opened, "opened"), (Change::Updated, "updated")] {
        let frame = StreamFrame::Incident {
            change,
            incident: Box::new(IncidentFeature::at(&incident(), now())),
            escalation: None,
            left_filter: false,
        };
        let value = serde_json::to_value(&frame).expect("serialises");
        assert_eq!(
            value,
            json!({"type": "incident", "change": wire, "incident": incident_json()})
        );
        let text = serde_json::to_string(&frame).expect("serialises");
        assert!(
            text.starts_with(&format!(r#"{{"type":"incident","change":"{wire}","#)),
            "{text}"
        );
        let back: StreamFrame = serde_json::from_str(&text).expect("deserialises");
        assert_eq!(back, frame);
    }
}

#[test]
fn a_frame_that_takes_an_incident_out_of_a_filter_says_so() {
    let frame = StreamFrame::Incident {
        change: Change::Updated,
        incident: Box::new(IncidentFeature::at(&incident(), now())),
        escalation: None,
        left_filter: true,
    };
    let value = serde_json::to_value(&frame).expect("serialises");
    assert_eq!(value["left_filter"], json!(true));
    let back: StreamFrame = serde_json::from_value(value).expect("deserialises");
    assert_eq!(back, frame);
    // Absent means false: older frames still read.
    let old: StreamFrame = serde_json::from_value(
        json!({"type": "incident", "change": "updated", "incident": incident_json()}),
    )
    .expect("deserialises");
    assert!(matches!(
        old,
        StreamFrame::Incident {
            left_filter: false,
            ..
        }
    ));
}

#[test]
fn an_escalation_frame_names_the_deadline_and_who_is_told() {
    use model::lifecycle::{Deadline, Escalation};
    use model::Severity;
    let i = incident();
    let escalation = Escalation {
        deadline: Deadline::Acknowledge,
        due: i.sla.ack_due,
        severity_before: Severity::Minor,
        severity: Severity::Moderate,
    };
    let frame = StreamFrame::Incident {
        change: Change::Updated,
        incident: Box::new(IncidentFeature::at(&i, now())),
        escalation: Some(EscalationDto::new(&escalation, &i)),
        left_filter: false,
    };
    let value = serde_json::to_value(&frame).expect("serialises");
    assert_eq!(
        value["escalation"],
        json!({
            "deadline": "acknowledge",
            "due": "2026-11-22T16:00:00.123Z",
            "severity_before": "minor",
            "severity": "moderate",
            "notified": ["supervisors", "agency:domeniu-public"]
        })
    );
    let back: StreamFrame = serde_json::from_value(value).expect("deserialises");
    assert_eq!(back, frame);
    assert_eq!(
        protocol::topics::SUPERVISOR_ESCALATIONS,
        "dispecer/v1/out/supervisors/escalations"
    );
}

#[test]
fn frames_of_an_unknown_type_or_change_are_refused() {
    for text in [
        r#"{"type": "deleted", "incident": null}"#,
        r#"{"type": "incident", "change": "closed", "incident": null}"#,
        r#"{"incidents": {"type": "FeatureCollection", "features": []}}"#,
    ] {
        assert!(
            serde_json::from_str::<StreamFrame>(text).is_err(),
            "{text} is not a frame"
        );
    }
}
