//! The engine's own decisions: congestion detected on a counter's readings opens an incident
//! linked to what explains it nearby and resolves when traffic recovers; an outage area declared
//! after citizens' reports absorbs them. Both rebuild exactly from the log.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use engine::{Engine, IngestOutcome};
use geo::{polygon, MultiPolygon, Point};
use model::{Action, Event, EventKind, Incident, IncidentId, IncidentStatus, Reading, Source};
use store::Store;

use crate::fusion::citizen;
use crate::lifecycle::{brasov, log_of, request, Running, TempDir, NEVER};

const SENSOR: &str = "tc-eroilor-e";

/// The counter's readings every minute from `from`, `minutes` of them, at `speed` km/h.
fn readings(from: DateTime<Utc>, minutes: i64, speed: f64, occupancy: f64) -> Vec<Reading> {
    (0..minutes)
        .flat_map(|i| {
            let time = from + Duration::minutes(i);
            [("count", 20.0), ("speed", speed), ("occupancy", occupancy)].map(|(m, v)| Reading {
                sensor: SENSOR.into(),
                metric: m.into(),
                time,
                value: v,
            })
        })
        .collect()
}

/// Waits (at most 10 s) until `pick` finds an incident among the open ones.
async fn open_incident(e: &Engine, pick: impl Fn(&Incident) -> bool) -> Arc<Incident> {
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(10);
    loop {
        let open = e.open_incidents().await.expect("snapshot");
        if let Some(i) = open.into_iter().find(|i| pick(i)) {
            return i;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no such incident within 10 s"
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

/// Waits (at most 10 s) until the store holds `id` in `status`.
async fn stored_in(store: &Store, id: &IncidentId, status: IncidentStatus) -> Incident {
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(10);
    loop {
        let i = store.incident(id).await.expect("read").expect("stored");
        if i.status == status {
            return i;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} is {} after 10 s, not {status}",
            i.status
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

#[tokio::test]
async fn congestion_opens_linked_to_a_burst_main_and_resolves_when_traffic_recovers() {
    let dir = TempDir::new();
    let url = dir.database_url();
    let running = Running::start(&url, NEVER).await;
    running.start_traffic().await;
    let e = &running.engine;
    let mut sent: Vec<Event> = Vec::new();
    // A burst main ~55 m from the counter, reported before the traffic slows.
    let leak = citizen(
        "c-leak",
        "water_leak",
        25.5935,
        45.6461,
        now() - Duration::minutes(20),
    );
    sent.push(leak.clone());
    let IngestOutcome::Opened(leak_id) = e.ingest(leak).await.expect("ingest") else {
        panic!("the leak opens an incident");
    };
    // Dumped waste as near explains nothing (not in [traffic] explained_by).
    let hole = citizen(
        "c-dump",
        "illegal_dumping",
        25.5931,
        45.6459,
        now() - Duration::minutes(19),
    );
    sent.push(hole.clone());
    e.ingest(hole).await.expect("ingest");

    // Free flow, one slow reading, free flow: no congestion.
    let t0 = now() - Duration::hours(2);
    e.readings_stored(&readings(t0, 10, 48.0, 10.0));
    e.readings_stored(&readings(t0 + Duration::minutes(10), 1, 8.0, 10.0));
    e.readings_stored(&readings(t0 + Duration::minutes(11), 5, 48.0, 10.0));
    // Then a sustained drop, redelivered once (changes nothing).
    let slow = readings(t0 + Duration::minutes(16), 10, 9.0, 55.0);
    e.readings_stored(&slow);
    e.readings_stored(&slow);
    let congestion = open_incident(e, |i| i.category.as_str() == "congestion").await;
    assert_eq!(
        congestion.external_ref.as_deref(),
        Some("traffic:tc-eroilor-e")
    );
    assert_eq!(congestion.location, Point::new(25.5930, 45.6458));
    assert_eq!(congestion.agency.as_str(), "trafic-brasov");
    assert!(
        congestion
            .description
            .as_deref()
            .is_some_and(|d| d.contains("Traffic congestion") && d.contains("Trafic aglomerat")),
        "{:?}",
        congestion.description
    );
    let linked = open_incident(e, |i| i.id == congestion.id && !i.explained_by.is_empty()).await;
    assert_eq!(
        linked.explained_by,
        vec![leak_id.clone()],
        "the leak, not the waste"
    );
    let opened = e.open_incidents().await.expect("snapshot");
    assert_eq!(
        opened
            .iter()
            .filter(|i| i.category.as_str() == "congestion")
            .count(),
        1,
        "one episode, one incident"
    );

    // An accident nearby, reported while the congestion lasts, is linked too.
    let crash = citizen("c-crash", "road_accident", 25.5926, 45.6456, now());
    sent.push(crash.clone());
    let IngestOutcome::Opened(crash_id) = e.ingest(crash).await.expect("ingest") else {
        panic!("the accident opens an incident");
    };
    let both = open_incident(e, |i| i.id == congestion.id && i.explained_by.len() == 2).await;
    assert_eq!(both.explained_by, vec![leak_id.clone(), crash_id.clone()]);

    // Half-way speeds keep it open; free flow resolves it.
    e.readings_stored(&readings(t0 + Duration::minutes(26), 5, 30.0, 30.0));
    e.readings_stored(&readings(t0 + Duration::minutes(31), 8, 47.0, 12.0));
    let store = running.store();
    let resolved = stored_in(store, &congestion.id, IncidentStatus::Resolved).await;
    assert_eq!(
        resolved.explained_by,
        vec![leak_id.clone(), crash_id.clone()]
    );
    let timeline = store.timeline(&congestion.id).await.expect("timeline");
    let kinds: Vec<(&str, &str)> = timeline
        .iter()
        .map(|t| (t.kind.as_str(), t.actor.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("opened", "system:traffic"),
            ("linked", "system"),
            ("linked", "system"),
            ("resolved", "system:traffic"),
        ]
    );
    assert!(timeline[1]
        .reason
        .as_deref()
        .is_some_and(|r| r.contains("water_leak") && r.contains(leak_id.as_str())));
    let events = store.incident_events(&congestion.id).await.expect("events");
    assert!(events.iter().all(|ev| ev.source == "system:traffic"));
    assert_eq!(events.len(), 2, "the start and the restoration");
    running.stop().await;

    // The log, derived events and links included, rebuilds exactly what is stored.
    let store = Store::connect(&url).await.expect("store");
    let log = log_of(&store, &sent).await;
    let rebuilt = engine::rebuild::rebuild(brasov(), log)
        .await
        .expect("rebuild");
    let stored = store.all_incidents().await.expect("incidents");
    assert_eq!(stored.len(), 4);
    assert_eq!(rebuilt, stored);
    store.close().await;
}

#[tokio::test]
async fn a_congestion_open_at_restart_resolves_on_recovery() {
    let dir = TempDir::new();
    let url = dir.database_url();
    let t0 = now() - Duration::hours(1);
    let running = Running::start(&url, NEVER).await;
    running.start_traffic().await;
    running.engine.readings_stored(&readings(t0, 8, 7.0, 70.0));
    let congestion = open_incident(&running.engine, |i| i.category.as_str() == "congestion").await;
    running.stop().await;

    // A new process: the detector resumes the episode the open incident shows.
    let running = Running::start(&url, NEVER).await;
    running.start_traffic().await;
    running
        .engine
        .readings_stored(&readings(t0 + Duration::minutes(8), 8, 50.0, 8.0));
    stored_in(running.store(), &congestion.id, IncidentStatus::Resolved).await;
    running.stop().await;
}

/// Apa Brașov's outage in the centre (about 1.2 km by 780 m), and a larger one redrawn later.
fn area(east: f64) -> MultiPolygon {
    MultiPolygon(vec![polygon![
        (x: 25.580, y: 45.638), (x: east, y: 45.638), (x: east, y: 45.645),
        (x: 25.580, y: 45.645), (x: 25.580, y: 45.638)
    ]])
}

fn outage(id: &str, kind: EventKind, east: f64, at: DateTime<Utc>) -> Event {
    Event {
        id: id.into(),
        subject: Some("utility:apa-brasov:avarie-9".into()),
        source: Source::Utility("apa-brasov".into()),
        kind,
        category: "no_water".into(),
        location: Point::new(25.5875, 45.6415),
        area: Some(area(east)),
        description: Some("Avarie pe magistrală".into()),
        occurred_at: at,
        received_at: at,
        payload: "{}".into(),
        contact: None,
    }
}

#[tokio::test]
async fn reports_filed_before_an_outage_declaration_are_absorbed_by_it() {
    let dir = TempDir::new();
    let url = dir.database_url();
    let t = now() - Duration::minutes(30);
    let running = Running::start(&url, NEVER).await;
    let e = &running.engine;
    let mut sent: Vec<Event> = Vec::new();
    let mut ingest = async |event: Event| {
        sent.push(event.clone());
        e.ingest(event).await.expect("ingest")
    };
    let at = |m: i64| t + Duration::minutes(m);
    // (report, inside the first area, absorbed by it)
    let reports = [
        citizen("c-west", "no_water", 25.5810, 45.6390, at(0)),
        // ~900 m from c-west: its own incident.
        citizen("c-east", "no_water", 25.5930, 45.6440, at(1)),
        // Another category of the water family.
        citizen("c-leak", "water_leak", 25.5850, 45.6430, at(2)),
        // Another family inside: not absorbed.
        citizen("c-power", "power_outage", 25.5880, 45.6420, at(3)),
        // No water outside the first area, inside the redrawn one.
        citizen("c-later", "no_water", 25.6010, 45.6420, at(4)),
    ];
    let mut ids = Vec::new();
    for r in reports {
        match ingest(r).await {
            IngestOutcome::Opened(id) => ids.push(id),
            other => panic!("each report opens its own incident: {other:?}"),
        }
    }
    let [west, east, leak, power, later] = &ids[..] else {
        panic!("five incidents");
    };
    // A utility's own fault notice inside follows its subject: not absorbed.
    let mut fault = outage("u-fault", EventKind::Notice, 25.595, at(5));
    fault.subject = Some("utility:apa-brasov:avarie-1".into());
    fault.category = "water_leak".into();
    fault.area = None;
    fault.location = Point::new(25.5820, 45.6440);
    let IngestOutcome::Opened(fault_id) = ingest(fault).await else {
        panic!("the fault opens its incident");
    };

    let IngestOutcome::Opened(declared) =
        ingest(outage("u-1", EventKind::Notice, 25.595, at(6))).await
    else {
        panic!("the declaration opens an incident");
    };
    let store = running.store();
    let state = |id: IncidentId| async move {
        let i = store.incident(&id).await.expect("read").expect("stored");
        (i.status, i.merged_into)
    };
    let absorbed = (IncidentStatus::Duplicate, Some(declared.clone()));
    assert_eq!(state(west.clone()).await, absorbed, "c-west");
    assert_eq!(state(east.clone()).await, absorbed, "c-east");
    assert_eq!(state(leak.clone()).await, absorbed, "c-leak");
    let untouched = (IncidentStatus::Assigned, None);
    assert_eq!(state(power.clone()).await, untouched, "c-power");
    assert_eq!(state(later.clone()).await, untouched, "c-later");
    assert_eq!(
        state(fault_id.clone()).await,
        untouched,
        "the utility's fault"
    );
    let timeline = store.timeline(west).await.expect("timeline");
    let merge = timeline.last().expect("entries");
    assert_eq!(
        (
            merge.kind.as_str(),
            merge.actor.as_str(),
            merge.reason.clone()
        ),
        (
            "merge",
            "system",
            Some(format!("inside declared outage area {declared}"))
        )
    );

    // The utility redraws a larger area: c-later is inside now.
    assert_eq!(
        ingest(outage("u-2", EventKind::Notice, 25.605, at(7))).await,
        IngestOutcome::Updated(declared.clone())
    );
    assert_eq!(state(later.clone()).await, absorbed, "c-later");
    // An operator undoes one absorption.
    let back = e
        .act(request(east, Action::Unmerge, "operator:ana"))
        .await
        .expect("unmerge");
    assert_eq!(back.status, IncidentStatus::Assigned);
    let d = store
        .incident(&declared)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(d.report_count, 4, "the notice, c-west, c-leak, c-later");

    // Restored: the declared incident resolves with every report absorbed.
    assert_eq!(
        ingest(outage("u-3", EventKind::Restored, 25.605, now())).await,
        IngestOutcome::Resolved(declared.clone())
    );
    let mut reports: Vec<String> = store
        .incident_events(&declared)
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.source == "citizen")
        .map(|e| e.id.to_string())
        .collect();
    reports.sort();
    assert_eq!(reports, ["c-later", "c-leak", "c-west"]);
    assert_eq!(state(declared.clone()).await.0, IncidentStatus::Resolved);
    running.stop().await;

    let store = Store::connect(&url).await.expect("store");
    let log = log_of(&store, &sent).await;
    let rebuilt = engine::rebuild::rebuild(brasov(), log)
        .await
        .expect("rebuild");
    assert_eq!(rebuilt, store.all_incidents().await.expect("incidents"));
    store.close().await;
}
