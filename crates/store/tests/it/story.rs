//! The storage story, the same on every backend.

use chrono::Duration;
use model::{Incident, IncidentStatus, Source};
use serde_json::json;
use store::{
    Backend, ChangeKind, IncidentChange, IncidentFilter, NewDeadLetter, NewTimelineEntry, Recorded,
    Store, StoreError,
};

use crate::fixtures::{as_stored, event, micros, outage, pothole, t0, Raw};

/// Where the story runs.
pub struct Target {
    /// The URL given to [`Store::connect`].
    pub url: String,
    /// The same database, for raw access around the store.
    pub raw_url: String,
    /// The backend the store must report.
    pub backend: Backend,
}

fn opened(incident: &Incident) -> IncidentChange {
    IncidentChange {
        incident: incident.clone(),
        kind: ChangeKind::Opened,
    }
}

fn ids(incidents: &[Incident]) -> Vec<&str> {
    incidents.iter().map(|i| i.id.as_str()).collect()
}

pub async fn run(target: Target) {
    let store = Store::connect(&target.url).await.expect("connect");
    assert_eq!(store.backend(), target.backend);
    store.ping().await.expect("ping");
    let t0 = t0();

    // A citizen reports a pothole: it opens an incident.
    let first = event(
        "citizen:r-1",
        Source::Citizen,
        "pothole",
        25.5887,
        45.6419,
        t0,
    );
    let opened_pothole = pothole(t0 + Duration::seconds(1));
    assert!(!store.is_known_event(&first.id).await.expect("known?"));
    assert_eq!(
        store
            .record(&first, &opened(&opened_pothole))
            .await
            .expect("record the first event"),
        Recorded::Stored
    );
    assert!(store.is_known_event(&first.id).await.expect("known?"));
    assert!(!store
        .is_known_event(&"citizen:r-404".into())
        .await
        .expect("known?"));

    // The same event again (a redelivery) changes nothing, whatever the change says.
    let mut bogus = opened_pothole.clone();
    bogus.report_count = 7;
    bogus.status = IncidentStatus::Closed;
    assert_eq!(
        store
            .record(&first, &opened(&bogus))
            .await
            .expect("record a duplicate"),
        Recorded::Duplicate
    );
    assert_eq!(
        store.incident(&opened_pothole.id).await.expect("incident"),
        Some(as_stored(opened_pothole.clone()))
    );
    assert_eq!(
        store
            .timeline(&opened_pothole.id)
            .await
            .expect("timeline")
            .len(),
        1
    );

    // The road company reports the same pothole: it joins.
    let second = event(
        "utility:drumuri:w-77",
        Source::Utility("drumuri".into()),
        "pothole",
        25.5888,
        45.6420,
        t0 + Duration::minutes(5),
    );
    let mut joined = opened_pothole.clone();
    joined.report_count = 2;
    joined.updated_at = t0 + Duration::minutes(5);
    assert_eq!(
        store
            .record(
                &second,
                &IncidentChange {
                    incident: joined.clone(),
                    kind: ChangeKind::ReportJoined,
                },
            )
            .await
            .expect("record the joining event"),
        Recorded::Stored
    );

    // A water outage elsewhere, delivered twice at once: recorded exactly once.
    let third = event(
        "utility:apa-brasov:o-9",
        Source::Utility("apa-brasov".into()),
        "water_outage",
        25.61,
        45.66,
        t0 + Duration::minutes(10),
    );
    let water = outage(t0 + Duration::minutes(10));
    let water_opened = opened(&water);
    let (a, b) = tokio::join!(
        store.record(&third, &water_opened),
        store.record(&third, &water_opened)
    );
    let mut outcomes = [a.expect("record"), b.expect("record")];
    outcomes.sort_by_key(|r| *r == Recorded::Duplicate);
    assert_eq!(outcomes, [Recorded::Stored, Recorded::Duplicate]);

    check_reads(&store, &joined, &water).await;

    // Dead letters.
    let letters = [
        NewDeadLetter {
            received_at: t0 + Duration::minutes(1),
            channel: "mqtt".into(),
            topic: "dispecer/v1/in/utility/apa-brasov/outage".into(),
            payload: vec![0xff, 0x00, b'{', 0xfe],
            reason: "not JSON".into(),
        },
        NewDeadLetter {
            received_at: t0 + Duration::minutes(2),
            channel: "http".into(),
            topic: "/api/v1/reports".into(),
            payload: br#"{"category":"unknown"}"#.to_vec(),
            reason: "unknown category \"unknown\"".into(),
        },
    ];
    let first_letter = store
        .record_dead_letter(&letters[0])
        .await
        .expect("dead letter");
    let second_letter = store
        .record_dead_letter(&letters[1])
        .await
        .expect("dead letter");
    assert!(second_letter > first_letter);
    check_dead_letters(&store, &letters, [first_letter, second_letter]).await;
    readings(&store).await;
    tokens(&store).await;

    // Restart: everything is still there, and a redelivery is still a duplicate.
    store.close().await;
    drop(store);
    let store = Store::connect(&target.url).await.expect("reconnect");
    assert_eq!(store.backend(), target.backend);
    check_reads(&store, &joined, &water).await;
    check_dead_letters(&store, &letters, [first_letter, second_letter]).await;
    assert_eq!(
        store
            .record(&second, &opened(&bogus))
            .await
            .expect("record after restart"),
        Recorded::Duplicate
    );
    personal_data(&store).await;
    citizen_requests(&store).await;
    retention(&store).await;
    city_configs(&store).await;
    group_commit(&store).await;

    // Actions and escalations, with their deadlines, survive a restart too.
    let acted = lifecycle(&store).await;
    store.close().await;
    let store = Store::connect(&target.url).await.expect("reconnect");
    check_lifecycle(&store, &acted).await;
    store.close().await;

    // The event log is a hypertable on TimescaleDB, and only there.
    let raw = Raw::connect(&target.raw_url).await;
    assert_eq!(
        raw.events_is_hypertable().await,
        target.backend == Backend::Timescale,
        "events is a hypertable exactly on timescaledb"
    );

    // A newer Dispecer migrated the database: this one refuses it.
    raw.add_migration(99_990_101_000_000).await;
    raw.close().await;
    match Store::connect(&target.url).await {
        Err(e @ StoreError::SchemaTooNew { database, binary }) => {
            assert_eq!(database, 99_990_101_000_000);
            // The newest migration file's number of this backend (so that adding a migration
            // needs no edit here).
            let folder = match target.backend {
                Backend::Sqlite => "sqlite",
                Backend::Postgres | Backend::Timescale => "postgres",
            };
            let newest = std::fs::read_dir(format!(
                "{}/migrations/{folder}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .expect("migrations")
            .filter_map(|f| {
                let name = f.ok()?.file_name().into_string().ok()?;
                name.split('_').next()?.parse::<i64>().ok()
            })
            .max()
            .expect("a migration");
            assert_eq!(binary, newest, "the binary's newest migration");
            let message = e.to_string();
            assert!(
                message.contains("99990101000000") && message.contains(&format!(" {newest}")),
                "{message}"
            );
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

async fn check_reads(store: &Store, pothole: &Incident, water: &Incident) {
    let t0 = t0();
    assert_eq!(
        store.incident(&pothole.id).await.expect("incident"),
        Some(as_stored(pothole.clone()))
    );
    assert_eq!(
        store.incident(&"nope".into()).await.expect("incident"),
        None
    );
    assert_eq!(
        store
            .incidents(&IncidentFilter::default())
            .await
            .expect("incidents"),
        vec![as_stored(water.clone()), as_stored(pothole.clone())],
        "newest update first"
    );

    let (p, w) = (pothole.id.as_str(), water.id.as_str());
    let filters: Vec<(&str, IncidentFilter, Vec<&str>)> = vec![
        (
            "bbox around the pothole",
            IncidentFilter {
                bbox: Some([25.58, 45.63, 25.60, 45.65]),
                ..Default::default()
            },
            vec![p],
        ),
        (
            "bbox elsewhere",
            IncidentFilter {
                bbox: Some([26.0, 46.0, 27.0, 47.0]),
                ..Default::default()
            },
            vec![],
        ),
        (
            "bbox across the antimeridian",
            IncidentFilter {
                bbox: Some([25.6, 45.0, 25.0, 46.0]),
                ..Default::default()
            },
            vec![w],
        ),
        (
            "status assigned",
            IncidentFilter {
                statuses: vec![IncidentStatus::Assigned],
                ..Default::default()
            },
            vec![p],
        ),
        (
            "status resolved or closed",
            IncidentFilter {
                statuses: vec![IncidentStatus::Resolved, IncidentStatus::Closed],
                ..Default::default()
            },
            vec![w],
        ),
        (
            "category",
            IncidentFilter {
                category: Some("pothole".into()),
                ..Default::default()
            },
            vec![p],
        ),
        (
            "agency",
            IncidentFilter {
                agency: Some("apa-brasov".into()),
                ..Default::default()
            },
            vec![w],
        ),
        (
            "conditions combine",
            IncidentFilter {
                category: Some("pothole".into()),
                agency: Some("apa-brasov".into()),
                ..Default::default()
            },
            vec![],
        ),
        (
            "visible to the agency responsible",
            IncidentFilter {
                visible_to: Some("apa-brasov".into()),
                ..Default::default()
            },
            vec![w],
        ),
        (
            "visible to an agency informed beside it",
            IncidentFilter {
                visible_to: Some("politia-rutiera".into()),
                ..Default::default()
            },
            vec![w],
        ),
        (
            "visible to another agency",
            IncidentFilter {
                visible_to: Some("drumuri".into()),
                ..Default::default()
            },
            vec![p],
        ),
        (
            "visible to an agency neither responsible nor informed",
            IncidentFilter {
                visible_to: Some("pompieri".into()),
                ..Default::default()
            },
            vec![],
        ),
        (
            "visible to, with another condition",
            IncidentFilter {
                visible_to: Some("politia-rutiera".into()),
                agency: Some("drumuri".into()),
                ..Default::default()
            },
            vec![],
        ),
        (
            "limit",
            IncidentFilter {
                limit: Some(1),
                ..Default::default()
            },
            vec![w],
        ),
    ];
    for (name, filter, expected) in filters {
        let got = store.incidents(&filter).await.expect("incidents");
        assert_eq!(ids(&got), expected, "{name}");
    }

    assert_eq!(
        store.open_incidents().await.expect("open incidents"),
        vec![as_stored(pothole.clone())]
    );

    let events = store.incident_events(&pothole.id).await.expect("events");
    let summary: Vec<(&str, &str, _)> = events
        .iter()
        .map(|e| (e.id.as_str(), e.source.as_str(), e.received_at))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("citizen:r-1", "citizen", micros(t0)),
            (
                "utility:drumuri:w-77",
                "utility:drumuri",
                micros(t0 + Duration::minutes(5))
            ),
        ]
    );
    let events = store.incident_events(&water.id).await.expect("events");
    assert_eq!(events.len(), 1);
    assert!(store
        .incident_events(&"nope".into())
        .await
        .expect("events")
        .is_empty());

    let timeline = store.timeline(&pothole.id).await.expect("timeline");
    let entries: Vec<_> = timeline
        .iter()
        .map(|e| (e.at, e.kind.as_str(), e.actor.as_str(), e.detail.clone()))
        .collect();
    assert_eq!(
        entries,
        vec![
            (
                micros(t0 + Duration::seconds(1)),
                "opened",
                "citizen",
                json!({
                    "event": "citizen:r-1",
                    "category": "pothole",
                    "severity": "minor",
                    "status": "assigned",
                    "agency": "drumuri",
                    "rule": "jurisdiction",
                    "area": "city",
                    "district": "centru",
                })
            ),
            (
                micros(t0 + Duration::minutes(5)),
                "report_joined",
                "utility:drumuri",
                json!({"event": "utility:drumuri:w-77", "report_count": 2})
            ),
        ]
    );
}

async fn check_dead_letters(store: &Store, letters: &[NewDeadLetter; 2], ids: [i64; 2]) {
    let stored = store.dead_letters(10).await.expect("dead letters");
    let got: Vec<_> = stored
        .iter()
        .map(|d| {
            (
                d.id,
                d.received_at,
                d.channel.as_str(),
                d.topic.as_str(),
                d.payload.as_slice(),
                d.reason.as_str(),
            )
        })
        .collect();
    let expected: Vec<_> = letters
        .iter()
        .zip(ids)
        .rev()
        .map(|(l, id)| {
            (
                id,
                micros(l.received_at),
                l.channel.as_str(),
                l.topic.as_str(),
                l.payload.as_slice(),
                l.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(got, expected, "newest first");
    assert_eq!(store.dead_letters(1).await.expect("dead letters").len(), 1);
}

/// Readings: idempotent batches, and rollups that agree on every backend.
async fn readings(store: &Store) {
    use model::Reading;
    use store::Step;
    let sensor = model::SensorId::from("tc-test");
    use chrono::TimeZone;
    let base = chrono::Utc
        .with_ymd_and_hms(2026, 11, 22, 10, 0, 0)
        .single()
        .expect("valid");
    // Two hours of one reading per 20 s for count (value = minute of the hour) and speed (50).
    let mut batch = Vec::new();
    for i in 0..360 {
        let time = base + Duration::seconds(i * 20);
        batch.push(Reading {
            sensor: sensor.clone(),
            metric: "count".into(),
            time,
            value: f64::from((i / 3 % 60) as i32),
        });
        batch.push(Reading {
            sensor: sensor.clone(),
            metric: "speed".into(),
            time,
            value: 50.0,
        });
    }
    assert_eq!(store.record_readings(&batch).await.expect("readings"), 720);
    // The same batch again, and an overlapping one: only the new readings are stored.
    assert_eq!(
        store.record_readings(&batch).await.expect("readings again"),
        0
    );
    let extra = Reading {
        sensor: sensor.clone(),
        metric: "count".into(),
        time: base + Duration::seconds(7210),
        value: 1.0,
    };
    assert_eq!(
        store
            .record_readings(&[batch[0].clone(), extra])
            .await
            .expect("overlap"),
        1
    );
    assert_eq!(store.record_readings(&[]).await.expect("empty"), 0);

    let to = base + Duration::hours(2);
    let minute = store
        .readings_rollup(&sensor, base, to, Step::Minute)
        .await
        .expect("1m");
    assert_eq!(minute.len(), 240, "120 minutes × 2 metrics");
    let first = &minute[0];
    assert_eq!(
        (first.bucket, first.metric.as_str(), first.count),
        (base, "count", 3)
    );
    assert_eq!((first.min, first.max, first.avg), (0.0, 0.0, 0.0));
    let m5 = minute
        .iter()
        .find(|r| r.metric == "count" && r.bucket == base + Duration::minutes(5))
        .expect("minute 5");
    assert_eq!((m5.avg, m5.count), (5.0, 3));
    let hour = store
        .readings_rollup(&sensor, base, to, Step::Hour)
        .await
        .expect("1h");
    assert_eq!(hour.len(), 4);
    let speed = hour.iter().find(|r| r.metric == "speed").expect("speed");
    assert_eq!((speed.avg, speed.count), (50.0, 180));
    let count = hour.iter().find(|r| r.metric == "count").expect("count");
    assert_eq!((count.min, count.max, count.avg), (0.0, 59.0, 29.5));
    let quarter = store
        .readings_rollup(&sensor, base, to, Step::FifteenMinutes)
        .await
        .expect("15m");
    assert_eq!(quarter.len(), 16);
    let raw = store
        .readings_rollup(&sensor, base, base + Duration::minutes(1), Step::Raw)
        .await
        .expect("raw");
    assert_eq!(raw.len(), 6);
    assert_eq!(raw[0].bucket, base);
    let other = store
        .readings_rollup(&"tc-none".into(), base, to, Step::Minute)
        .await
        .expect("none");
    assert!(other.is_empty());
}

/// API tokens: stored by hash, scoped, revocable.
async fn tokens(store: &Store) {
    let at = t0();
    store
        .add_token("h1", "dsp_aaaa", "events:apa-brasov", at)
        .await
        .expect("add");
    store
        .add_token("h2", "dsp_bbbb", "readings", at + Duration::seconds(1))
        .await
        .expect("add");
    assert!(
        store
            .add_token("h1", "dsp_cccc", "readings", at)
            .await
            .is_err(),
        "a hash is unique"
    );
    assert_eq!(
        store.token_scope("h1").await.expect("scope").as_deref(),
        Some("events:apa-brasov")
    );
    assert_eq!(store.token_scope("nope").await.expect("scope"), None);
    assert_eq!(
        store.revoke_tokens("dsp_aaaa", at).await.expect("revoke"),
        1
    );
    assert_eq!(
        store.token_scope("h1").await.expect("scope"),
        None,
        "revoked"
    );
    let listed = store.tokens().await.expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].prefix, "dsp_bbbb", "newest first");
    assert!(listed[1].revoked_at.is_some());
}

/// Citizens' contacts: stored apart with their report, listed per incident, erased on request by
/// e-mail (any case) or phone (any writing), dropped after the retention period; the reports stay.
async fn personal_data(store: &Store) {
    use model::CitizenContact;
    let t = t0() + Duration::days(1);
    let mut incident = pothole(t);
    incident.id = "0193a6f0-0000-7000-8000-0000000000c1".into();
    let contact = |name: &str, email: Option<&str>, phone: Option<&str>| {
        Some(CitizenContact {
            name: Some(name.to_owned()),
            email: email.map(str::to_owned),
            phone: phone.map(str::to_owned),
        })
    };
    let mut reports = Vec::new();
    for (i, c) in [
        contact("Ana Pop", Some("ana@example.ro"), None),
        contact("Ana Pop", None, Some("+40 722 123 456")),
        contact("Ion Ionescu", Some("ion@example.ro"), Some("0268 000 000")),
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = event(
            &format!("citizen:gdpr-{i}"),
            Source::Citizen,
            "pothole",
            25.5887,
            45.6419,
            t + Duration::minutes(i as i64),
        );
        e.contact = c;
        let change = IncidentChange {
            incident: incident.clone(),
            kind: if i == 0 {
                ChangeKind::Opened
            } else {
                ChangeKind::ReportJoined
            },
        };
        assert_eq!(
            store.record(&e, &change).await.expect("record"),
            Recorded::Stored
        );
        reports.push(e);
    }
    let listed = store
        .contacts_of_incident(&incident.id)
        .await
        .expect("contacts");
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0].email.as_deref(), Some("ana@example.ro"));
    assert_eq!(listed[1].phone.as_deref(), Some("+40 722 123 456"));
    assert_eq!(listed[2].received_at, micros(reports[2].received_at));

    // Photos of Ana's first report and of Ion's.
    let photo = store::Photo {
        content_type: "image/jpeg".into(),
        data: vec![0xFF, 0xD8, 0xFF, 0xD9],
    };
    for i in [0, 2] {
        store
            .record_photo(reports[i].id.as_str(), &photo, reports[i].received_at)
            .await
            .expect("photo");
    }

    // Ana asks to be forgotten: by e-mail in another case, and by her phone written otherwise.
    let erased = store
        .erase_contacts(&store::ContactSelector {
            email: Some(" ANA@Example.ro ".into()),
            phone: Some("0040-722-123-456".into()),
        })
        .await
        .expect("erase");
    assert_eq!(
        erased, 1,
        "only the e-mail matches: 0040… is not +40… digit for digit"
    );
    let erased = store
        .erase_contacts(&store::ContactSelector {
            email: None,
            phone: Some("+40 (722) 123-456".into()),
        })
        .await
        .expect("erase");
    assert_eq!(erased, 1);
    assert_eq!(
        store
            .erase_contacts(&store::ContactSelector::default())
            .await
            .expect("nothing asked"),
        0
    );
    let left = store
        .contacts_of_incident(&incident.id)
        .await
        .expect("contacts");
    assert_eq!(
        left.iter().map(|c| c.name.as_deref()).collect::<Vec<_>>(),
        [Some("Ion Ionescu")]
    );
    // Her photo goes with her contact; Ion's stays.
    assert!(store
        .photo(reports[0].id.as_str())
        .await
        .expect("photo")
        .is_none());
    assert!(store
        .photo(reports[2].id.as_str())
        .await
        .expect("photo")
        .is_some());
    // The reports stay.
    for e in &reports {
        assert!(store.is_known_event(&e.id).await.expect("known"));
    }
    let stored = store.incident(&incident.id).await.expect("incident");
    assert!(stored.is_some());

    // Retention: contacts that arrived before the cut-off go, later ones stay.
    let done = store
        .apply_retention(Some(reports[2].received_at), None)
        .await
        .expect("retention");
    assert_eq!((done.contacts, done.readings), (0, 0));
    let done = store
        .apply_retention(Some(reports[2].received_at + Duration::seconds(1)), None)
        .await
        .expect("retention");
    assert_eq!((done.contacts, done.photos), (1, 1));
    assert!(store
        .photo(reports[2].id.as_str())
        .await
        .expect("photo")
        .is_none());
    assert!(store
        .contacts_of_incident(&incident.id)
        .await
        .expect("contacts")
        .is_empty());
}

/// Readings retention: what is older than the cut-off goes (whole chunks on TimescaleDB), newer
/// readings stay.
async fn retention(store: &Store) {
    use chrono::TimeZone;
    use model::Reading;
    use store::Step;
    let old_sensor = model::SensorId::from("tc-old");
    let old = chrono::Utc
        .with_ymd_and_hms(2020, 1, 1, 12, 0, 0)
        .single()
        .expect("valid");
    let batch: Vec<Reading> = (0..10)
        .map(|i| Reading {
            sensor: old_sensor.clone(),
            metric: "count".into(),
            time: old + Duration::minutes(i),
            value: 1.0,
        })
        .collect();
    assert_eq!(
        store.record_readings(&batch).await.expect("old readings"),
        10
    );
    let cut = chrono::Utc
        .with_ymd_and_hms(2021, 1, 1, 0, 0, 0)
        .single()
        .expect("valid");
    let done = store
        .apply_retention(None, Some(cut))
        .await
        .expect("retention");
    let expected = if store.backend() == Backend::Timescale {
        1 // one daily chunk
    } else {
        10
    };
    assert_eq!(done.readings, expected);
    let hour = |sensor: model::SensorId, from: chrono::DateTime<chrono::Utc>| async move {
        store
            .readings_rollup(&sensor, from, from + Duration::hours(3), Step::Hour)
            .await
            .expect("rollup")
    };
    assert!(hour(old_sensor, old - Duration::hours(1)).await.is_empty());
    let recent = chrono::Utc
        .with_ymd_and_hms(2026, 11, 22, 10, 0, 0)
        .single()
        .expect("valid");
    assert!(
        !hour(model::SensorId::from("tc-test"), recent)
            .await
            .is_empty(),
        "newer readings stay"
    );
}

/// An incident's life after it opened: an agency acknowledges it with a reason, the resolution
/// deadline passes and the engine escalates it. Returns the incident as it ends.
async fn lifecycle(store: &Store) -> Incident {
    let t0 = t0();
    let report = event(
        "citizen:r-lifecycle",
        Source::Citizen,
        "pothole",
        25.57,
        45.65,
        t0 + Duration::hours(1),
    );
    let mut incident = pothole(t0 + Duration::hours(1));
    incident.id = "0193a6f0-0000-7000-8000-000000000003".into();
    assert_eq!(
        store
            .record(&report, &opened(&incident))
            .await
            .expect("open"),
        Recorded::Stored
    );

    let at = t0 + Duration::hours(1) + Duration::minutes(20);
    let mut acknowledged = incident.clone();
    acknowledged.status = IncidentStatus::Acknowledged;
    acknowledged.updated_at = at;
    store
        .record_transition(
            &acknowledged,
            &NewTimelineEntry {
                at,
                kind: "acknowledge".into(),
                actor: "agency:drumuri".into(),
                reason: Some("echipa pleacă în 10 minute".into()),
                from: Some(IncidentStatus::Assigned),
                to: Some(IncidentStatus::Acknowledged),
                request_id: Some("u-17".into()),
                detail: json!({"agency": "drumuri"}),
            },
        )
        .await
        .expect("acknowledge");

    let late = t0 + Duration::days(8);
    let mut escalated = acknowledged.clone();
    escalated.severity = model::Severity::Moderate;
    escalated.updated_at = late;
    escalated.sla.resolve_escalated_at = Some(late);
    // What explains it (migration 0011) reads back, in order.
    escalated.explained_by = vec!["i-leak".into(), "i-crash".into()];
    store
        .record_transition(
            &escalated,
            &NewTimelineEntry {
                at: late,
                kind: "escalated".into(),
                actor: "system".into(),
                reason: Some("resolve deadline missed".into()),
                from: Some(IncidentStatus::Acknowledged),
                to: Some(IncidentStatus::Acknowledged),
                request_id: None,
                detail: json!({"deadline": "resolve", "severity": "moderate"}),
            },
        )
        .await
        .expect("escalate");
    check_lifecycle(store, &escalated).await;

    // The same request of the same actor is recorded once: a second one fails as a whole (the
    // incident keeps its state, as check_lifecycle sees after the restart).
    assert_eq!(
        store
            .known_request("agency:drumuri", "u-17")
            .await
            .expect("read"),
        Some(incident.id.clone())
    );
    assert_eq!(
        store
            .known_request("agency:apa-brasov", "u-17")
            .await
            .expect("read"),
        None,
        "request ids are per actor"
    );
    let mut changed = escalated.clone();
    changed.severity = model::Severity::Extreme;
    let again = NewTimelineEntry {
        at: late,
        kind: "note".into(),
        actor: "agency:drumuri".into(),
        reason: Some("again".into()),
        from: None,
        to: None,
        request_id: Some("u-17".into()),
        detail: json!({}),
    };
    assert!(store.record_transition(&changed, &again).await.is_err());
    escalated
}

async fn check_lifecycle(store: &Store, incident: &Incident) {
    let t0 = t0();
    assert_eq!(
        store.incident(&incident.id).await.expect("incident"),
        Some(as_stored(incident.clone())),
        "state, deadlines and escalation read back"
    );
    let open = store.open_incidents().await.expect("open incidents");
    let loaded = open
        .iter()
        .find(|i| i.id == incident.id)
        .expect("an acknowledged incident is open");
    assert_eq!(
        loaded.sla,
        as_stored(incident.clone()).sla,
        "start-up sees the deadlines"
    );
    assert!(loaded.sla.resolve_escalated_at.is_some());

    let timeline = store.timeline(&incident.id).await.expect("timeline");
    let entries: Vec<_> = timeline
        .iter()
        .map(|e| {
            (
                e.at,
                e.kind.as_str(),
                e.actor.as_str(),
                e.reason.as_deref(),
                e.from,
                e.to,
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            (
                micros(t0 + Duration::hours(1)),
                "opened",
                "citizen",
                None,
                None,
                Some(IncidentStatus::Assigned),
            ),
            (
                micros(t0 + Duration::hours(1) + Duration::minutes(20)),
                "acknowledge",
                "agency:drumuri",
                Some("echipa pleacă în 10 minute"),
                Some(IncidentStatus::Assigned),
                Some(IncidentStatus::Acknowledged),
            ),
            (
                micros(t0 + Duration::days(8)),
                "escalated",
                "system",
                Some("resolve deadline missed"),
                Some(IncidentStatus::Acknowledged),
                Some(IncidentStatus::Acknowledged),
            ),
        ]
    );
    assert_eq!(
        timeline[2].detail,
        json!({"deadline": "resolve", "severity": "moderate"})
    );
}

/// The city configuration is kept when it changes, not at every start.
async fn city_configs(store: &Store) {
    use store::CityConfig;
    let config = |digest: &str, minutes: i64| CityConfig {
        loaded_at: t0() + Duration::minutes(minutes),
        city: "brasov".into(),
        digest: digest.into(),
        files: format!(r#"{{"city.toml": "id = \"brasov\" # {digest}"}}"#),
    };
    assert!(store
        .record_city_config(&config("a1", 0))
        .await
        .expect("first"));
    assert!(!store
        .record_city_config(&config("a1", 5))
        .await
        .expect("same again"));
    assert!(store
        .record_city_config(&config("b2", 10))
        .await
        .expect("changed"));
    let kept = store.city_configs("brasov").await.expect("configs");
    assert_eq!(
        kept.iter().map(|c| c.digest.as_str()).collect::<Vec<_>>(),
        ["a1", "b2"]
    );
    assert_eq!(kept[0], {
        let mut c = config("a1", 0);
        c.loaded_at = micros(c.loaded_at);
        c
    });
    assert!(store
        .city_configs("cluj")
        .await
        .expect("configs")
        .is_empty());
}

/// Citizens' reports read back as service requests (Open311, the citizens' status page), and
/// their photos.
async fn citizen_requests(store: &Store) {
    use store::{Photo, RequestFilter};
    let t = t0() + Duration::days(1);
    // By id: the first pothole report, with its incident.
    let one = store
        .citizen_request("r-1")
        .await
        .expect("read")
        .expect("r-1 is a citizen's report");
    assert_eq!(one.id, "r-1");
    assert_eq!(one.category, "pothole");
    assert_eq!((one.lon, one.lat), (25.5887, 45.6419));
    assert_eq!(one.received_at, micros(t0()));
    assert!(one.payload.contains("\"citizen:r-1\"") && one.payload.contains("ăîșț"));
    // A utility's event is not a service request.
    assert!(store
        .citizen_request("drumuri:w-77")
        .await
        .expect("read")
        .is_none());
    // By time, inclusive, newest first (the three reports of `personal_data`, a minute apart).
    let window = RequestFilter {
        from: Some(t),
        to: Some(t + Duration::minutes(1)),
        limit: 1000,
        ..RequestFilter::default()
    };
    let found = store.citizen_requests(&window).await.expect("read");
    let ids: Vec<&str> = found.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["gdpr-1", "gdpr-0"]);
    // A page of it: the second of one.
    let page = RequestFilter {
        limit: 1,
        offset: 1,
        ..window.clone()
    };
    let found_page = store.citizen_requests(&page).await.expect("read");
    let ids: Vec<&str> = found_page.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["gdpr-0"]);
    let past = RequestFilter {
        offset: 2,
        ..window.clone()
    };
    assert!(store
        .citizen_requests(&past)
        .await
        .expect("read")
        .is_empty());
    // By several ids, category, status and limit.
    let listed = |filter: RequestFilter| async move {
        store
            .citizen_requests(&filter)
            .await
            .expect("read")
            .into_iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
    };
    let ids = vec![
        "gdpr-0".to_owned(),
        "gdpr-2".to_owned(),
        "nobody".to_owned(),
    ];
    assert_eq!(
        listed(RequestFilter {
            ids: ids.clone(),
            limit: 10,
            ..RequestFilter::default()
        })
        .await,
        ["gdpr-2", "gdpr-0"]
    );
    assert!(listed(RequestFilter {
        ids: ids.clone(),
        category: Some("water_outage".into()),
        limit: 10,
        ..RequestFilter::default()
    })
    .await
    .is_empty());
    let status = found[0].incident.status;
    let other = IncidentStatus::ALL
        .into_iter()
        .find(|s| *s != status)
        .expect("another status");
    assert_eq!(
        listed(RequestFilter {
            ids: ids.clone(),
            statuses: vec![status],
            limit: 1,
            ..RequestFilter::default()
        })
        .await,
        ["gdpr-2"]
    );
    assert!(listed(RequestFilter {
        ids,
        statuses: vec![other],
        limit: 10,
        ..RequestFilter::default()
    })
    .await
    .is_empty());

    // A photo per report: the first one stays.
    let photo = Photo {
        content_type: "image/jpeg".into(),
        data: vec![0xFF, 0xD8, 1, 2, 3, 0xFF, 0xD9],
    };
    assert!(store.photo("citizen:r-1").await.expect("read").is_none());
    store
        .record_photo("citizen:r-1", &photo, t)
        .await
        .expect("store the photo");
    let other_photo = Photo {
        content_type: "image/png".into(),
        data: vec![9; 3],
    };
    store
        .record_photo("citizen:r-1", &other_photo, t)
        .await
        .expect("a retry is harmless");
    assert_eq!(store.photo("citizen:r-1").await.expect("read"), Some(photo));
}

/// Several events in one transaction: all of them, in order, or none.
async fn group_commit(store: &Store) {
    let t = t0() + Duration::hours(3);
    let mut incident = pothole(t);
    incident.id = "0193a6f0-0000-7000-8000-0000000000b1".into();
    incident.location = geo::Point::new(25.62, 45.67);
    let a = event("citizen:g-1", Source::Citizen, "pothole", 25.62, 45.67, t);
    let b = event("citizen:g-2", Source::Citizen, "pothole", 25.62, 45.67, t);
    let mut joined = incident.clone();
    joined.report_count = 2;
    joined.updated_at = t + Duration::seconds(1);
    let join = IncidentChange {
        incident: joined.clone(),
        kind: ChangeKind::ReportJoined,
    };
    let first = opened(&incident);
    assert!(store
        .known_events(&[&a.id, &b.id])
        .await
        .expect("known")
        .is_empty());
    assert!(store
        .record_batch(&[(&a, &first), (&b, &join)])
        .await
        .expect("record a batch"));
    let known = store
        .known_events(&[&a.id, &b.id, &"citizen:g-404".into()])
        .await
        .expect("known");
    assert_eq!(known.len(), 2);
    assert!(known.contains("citizen:g-1") && known.contains("citizen:g-2"));
    assert_eq!(
        store.incident(&incident.id).await.expect("incident"),
        Some(as_stored(joined.clone()))
    );
    assert_eq!(
        store.timeline(&incident.id).await.expect("timeline").len(),
        2
    );
    assert_eq!(
        store
            .incident_events(&incident.id)
            .await
            .expect("events")
            .len(),
        2
    );

    // A batch with one event recorded before writes nothing, not even the new one.
    let c = event("citizen:g-3", Source::Citizen, "pothole", 25.62, 45.67, t);
    let mut again = joined.clone();
    again.report_count = 3;
    let join_again = IncidentChange {
        incident: again,
        kind: ChangeKind::ReportJoined,
    };
    assert!(!store
        .record_batch(&[(&c, &join_again), (&a, &first)])
        .await
        .expect("answered"));
    assert!(!store.is_known_event(&c.id).await.expect("known?"));
    assert_eq!(
        store.incident(&incident.id).await.expect("incident"),
        Some(as_stored(joined))
    );
    assert!(store.record_batch(&[]).await.expect("an empty batch"));

    // Changed since a time: the group's incident was last changed at t + 1 s.
    let since = |at| IncidentFilter {
        since: Some(at),
        ..IncidentFilter::default()
    };
    let changed = store.incidents(&since(t)).await.expect("incidents");
    assert!(
        changed.iter().any(|i| i.id == incident.id),
        "{:?}",
        ids(&changed)
    );
    let later = store
        .incidents(&since(t + Duration::seconds(2)))
        .await
        .expect("incidents");
    assert!(
        !later.iter().any(|i| i.id == incident.id),
        "{:?}",
        ids(&later)
    );
}
