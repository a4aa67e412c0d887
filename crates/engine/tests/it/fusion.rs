//! Fusion across sources: citizens' reports inside a utility's declared outage area join the
//! utility's incident wherever they fall in it; the utility's "restored" resolves it with every
//! report that joined it.

use chrono::{DateTime, Duration, Utc};
use engine::{EngineError, IngestOutcome};
use geo::{polygon, MultiPolygon, Point};
use model::{Action, Event, EventKind, IncidentId, IncidentStatus, Source};
use store::Store;

use crate::lifecycle::{brasov, log_of, request, Running, TempDir, NEVER};

const SUBJECT: &str = "utility:apa-brasov:avarie-7";

/// Apa Brașov's outage area in the centre: about 1.2 km by 780 m.
fn outage_area() -> MultiPolygon {
    MultiPolygon(vec![polygon![
        (x: 25.580, y: 45.638), (x: 25.595, y: 45.638), (x: 25.595, y: 45.645),
        (x: 25.580, y: 45.645), (x: 25.580, y: 45.638)
    ]])
}

fn utility(id: &str, kind: EventKind, at: DateTime<Utc>) -> Event {
    Event {
        id: id.into(),
        subject: Some(SUBJECT.into()),
        source: Source::Utility("apa-brasov".into()),
        kind,
        category: "no_water".into(),
        location: Point::new(25.5875, 45.6415),
        area: Some(outage_area()),
        description: Some("Avarie pe magistrala de apă".into()),
        occurred_at: at,
        received_at: at,
        payload: "{}".into(),
        contact: None,
    }
}

pub(crate) fn citizen(id: &str, category: &str, lon: f64, lat: f64, at: DateTime<Utc>) -> Event {
    Event {
        id: id.into(),
        subject: None,
        source: Source::Citizen,
        kind: EventKind::Report,
        category: category.into(),
        location: Point::new(lon, lat),
        area: None,
        description: None,
        occurred_at: at,
        received_at: at,
        payload: "{}".into(),
        contact: None,
    }
}

/// `event`, kept in `sent`.
fn keep(sent: &mut Vec<Event>, event: Event) -> Event {
    sent.push(event.clone());
    event
}

#[tokio::test]
async fn reports_inside_a_declared_outage_join_it_and_its_restoration_resolves_them() {
    let dir = TempDir::new();
    let url = dir.database_url();
    // Received in the past (as a restart sees them), but within every deadline: the log is then
    // in the order things happened (a backdated event after an escalation would not be).
    let t = Utc::now() - Duration::minutes(10);
    let running = Running::start(&url, NEVER).await;
    let e = &running.engine;
    // Every event sent, for the rebuild at the end.
    let mut sent = Vec::new();
    let IngestOutcome::Opened(outage) = e
        .ingest(keep(&mut sent, utility("u-1", EventKind::Notice, t)))
        .await
        .expect("ingest")
    else {
        panic!("the utility's notice opens an incident");
    };
    // (name, event, expected: Some(incident) joins it, None opens another one)
    type Case = (&'static str, Event, Option<IncidentId>);
    let cases: Vec<Case> = vec![
        (
            "no water in the far corner, ~550 m from the notice's point (radius 300 m)",
            citizen(
                "c-corner",
                "no_water",
                25.5945,
                45.6447,
                t + Duration::minutes(1),
            ),
            Some(outage.clone()),
        ),
        (
            "a water leak inside: another category of the water family",
            citizen(
                "c-leak",
                "water_leak",
                25.5810,
                45.6385,
                t + Duration::minutes(2),
            ),
            Some(outage.clone()),
        ),
        (
            "no power inside: another family",
            citizen(
                "c-power",
                "power_outage",
                25.5880,
                45.6420,
                t + Duration::minutes(3),
            ),
            None,
        ),
        (
            "no water outside, ~1 km away",
            citizen(
                "c-outside",
                "no_water",
                25.6000,
                45.6415,
                t + Duration::minutes(4),
            ),
            None,
        ),
    ];
    for (name, event, expected) in cases {
        let got = e.ingest(keep(&mut sent, event)).await.expect("ingest");
        match (&got, &expected) {
            (IngestOutcome::Joined(id), Some(want)) => assert_eq!(id, want, "{name}"),
            (IngestOutcome::Opened(id), None) => assert_ne!(id, &outage, "{name}"),
            _ => panic!("{name}: got {got:?}, expected to join {expected:?}"),
        }
    }
    running.stop().await;

    // The area survives a restart: the engine reloads it with the open incidents.
    let running = Running::start(&url, NEVER).await;
    let e = &running.engine;
    let got = e
        .ingest(keep(
            &mut sent,
            citizen(
                "c-after-restart",
                "no_water",
                25.5805,
                45.6448,
                t + Duration::minutes(5),
            ),
        ))
        .await
        .expect("ingest");
    assert_eq!(got, IngestOutcome::Joined(outage.clone()));
    // The utility's own notice cannot be split out of the incident that follows it.
    let split = Action::Split {
        event: "u-1".into(),
        new_incident: None,
    };
    let refused = e.act(request(&outage, split, "operator:ana")).await;
    assert!(
        matches!(&refused, Err(EngineError::Conflict(m)) if m.contains("sender's notice")),
        "{refused:?}"
    );
    let got = e
        .ingest(keep(
            &mut sent,
            utility("u-2", EventKind::Restored, t + Duration::minutes(6)),
        ))
        .await
        .expect("ingest");
    assert_eq!(got, IngestOutcome::Resolved(outage.clone()));
    // After the restoration the area gathers nothing: a new report opens a new incident.
    let got = e
        .ingest(keep(
            &mut sent,
            citizen(
                "c-later",
                "no_water",
                25.5945,
                45.6447,
                t + Duration::minutes(7),
            ),
        ))
        .await
        .expect("ingest");
    assert!(
        matches!(got, IngestOutcome::Opened(ref id) if *id != outage),
        "{got:?}"
    );
    running.stop().await;

    // Each citizen's report follows its incident: those that joined the outage are resolved.
    let store = Store::connect(&url).await.expect("store");
    let resolved = store
        .incident(&outage)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(resolved.status, IncidentStatus::Resolved);
    assert_eq!(resolved.report_count, 4);
    assert_eq!(resolved.area, Some(outage_area()), "the area is stored");
    let mut reports: Vec<String> = store
        .incident_events(&outage)
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.source == "citizen")
        .map(|e| e.id.to_string())
        .collect();
    reports.sort();
    assert_eq!(reports, ["c-after-restart", "c-corner", "c-leak"]);
    // The log rebuilds exactly what is stored, the declared area included.
    let log = log_of(&store, &sent).await;
    let rebuilt = engine::rebuild::rebuild(brasov(), log)
        .await
        .expect("rebuild");
    assert_eq!(rebuilt, store.all_incidents().await.expect("incidents"));
    store.close().await;
}
