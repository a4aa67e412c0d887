//! Public warnings through the engine: published, updated and cancelled by operators (each
//! version with its timeline entry); refused as the rules say, recording nothing; cancelled by
//! resolving the incident, in the same commit; in the way of a merge; and rebuilt from the log
//! to the very same versions.

use chrono::{Duration, Utc};
use engine::{EngineError, IngestOutcome, WarningRequest};
use geo::Point;
use model::warning::{WarningArea, WarningError, WarningMessage, WarningOp, WarningText};
use model::{Action, IncidentId, IncidentStatus, Localized};
use store::Store;

use crate::lifecycle::{brasov, log_of, pothole_report, request, Running, TempDir, NEVER};

fn text(h: &str) -> WarningText {
    WarningText {
        headline: Localized {
            ro: format!("{h} (ro)"),
            en: format!("{h} (en)"),
        },
        instruction: Localized {
            ro: "Ocoliți zona".into(),
            en: "Avoid the area".into(),
        },
    }
}

fn warn(incident: &IncidentId, op: WarningOp) -> WarningRequest {
    WarningRequest {
        incident: incident.clone(),
        op,
        actor: "operator:ana".into(),
        reason: Some("drum închis".into()),
    }
}

#[tokio::test]
async fn warnings_follow_their_rules_end_with_the_incident_and_rebuild() {
    let dir = TempDir::new();
    let url = dir.database_url();
    let running = Running::start(&url, NEVER).await;
    let e = &running.engine;
    let t = Utc::now() - Duration::minutes(30);
    let mut far = pothole_report("w-far", t + Duration::minutes(1));
    far.location = Point::new(25.6200, 45.6600);
    let events = vec![pothole_report("w-1", t), far];
    let mut ids = Vec::new();
    for ev in &events {
        match e.ingest(ev.clone()).await.expect("ingest") {
            IngestOutcome::Opened(id) => ids.push(id),
            other => panic!("two incidents: {other:?}"),
        }
    }
    let (a, b) = (&ids[0], &ids[1]);
    let publish = |h: &str| WarningOp::Publish {
        text: text(h),
        area: None,
    };

    let first = e
        .warn(warn(a, publish("Drum închis")))
        .await
        .expect("publish");
    assert_eq!((first.seq, first.message), (1, WarningMessage::Alert));
    assert!(matches!(first.area, WarningArea::Circle { radius_m, .. } if radius_m == 500.0));
    let again = e.warn(warn(a, publish("Drum închis"))).await;
    assert!(
        matches!(
            again,
            Err(EngineError::Warning(WarningError::AlreadyActive(_)))
        ),
        "{again:?}"
    );
    let square = geo::MultiPolygon::new(vec![geo::Polygon::new(
        geo::LineString::from(vec![
            (25.58, 45.63),
            (25.60, 45.63),
            (25.60, 45.65),
            (25.58, 45.63),
        ]),
        Vec::new(),
    )]);
    let update = WarningOp::Update {
        text: None,
        area: Some(WarningArea::Polygons(square.clone())),
    };
    let second = e.warn(warn(a, update)).await.expect("update");
    assert_eq!((second.seq, second.message), (2, WarningMessage::Update));
    assert_eq!(second.text, first.text);

    // A merge waits for the warning to be cancelled.
    let merge = e
        .act(request(
            a,
            Action::Merge { into: b.clone() },
            "operator:ana",
        ))
        .await;
    assert!(matches!(merge, Err(EngineError::Conflict(_))), "{merge:?}");

    // Resolving the incident cancels its warning, by the same actor.
    let resolved = e
        .act(request(a, Action::Resolve, "operator:ana"))
        .await
        .expect("resolve");
    assert_eq!(resolved.status, IncidentStatus::Resolved);
    let store = running.store();
    let versions = store.warnings_of(a).await.expect("warnings");
    assert_eq!(versions.len(), 3, "{versions:?}");
    assert_eq!(versions[2].message, WarningMessage::Cancel);
    assert_eq!(versions[2].area, WarningArea::Polygons(square));
    assert_eq!(versions[2].actor, "operator:ana");
    let timeline = store.timeline(a).await.expect("timeline");
    let cancel = timeline
        .iter()
        .find(|t| t.kind == "cancel_warning")
        .expect("a cancel in the timeline");
    assert_eq!(cancel.detail["automatic"], true, "{cancel:?}");
    assert_eq!(cancel.reason.as_deref(), Some("the incident is resolved"));
    // Nothing more on a resolved incident, and nothing recorded by a refusal.
    for op in [publish("Iar"), WarningOp::Cancel] {
        let refused = e.warn(warn(a, op)).await;
        assert!(
            matches!(refused, Err(EngineError::Warning(_))),
            "{refused:?}"
        );
    }
    assert_eq!(store.warnings_of(a).await.expect("warnings").len(), 3);
    let missing = e.warn(warn(&IncidentId::new("nope"), publish("x"))).await;
    assert!(
        matches!(missing, Err(EngineError::NotFound(_))),
        "{missing:?}"
    );

    // B: published and cancelled by hand, then a new series.
    e.warn(warn(b, publish("Apă"))).await.expect("publish b");
    let cancelled = e.warn(warn(b, WarningOp::Cancel)).await.expect("cancel b");
    assert_eq!(
        (cancelled.seq, cancelled.message),
        (2, WarningMessage::Cancel)
    );
    let renewed = e
        .warn(warn(b, publish("Apă, iar")))
        .await
        .expect("publish b again");
    assert_eq!((renewed.seq, renewed.message), (3, WarningMessage::Alert));
    running.stop().await;

    // The log rebuilds the same incidents and the same warnings.
    let store = Store::connect(&url).await.expect("store");
    let log = log_of(&store, &events).await;
    let (incidents, warnings) = engine::rebuild::rebuild_all(brasov(), log)
        .await
        .expect("rebuild");
    assert_eq!(incidents, store.all_incidents().await.expect("incidents"));
    let stored = store.all_warnings().await.expect("warnings");
    assert_eq!(stored.len(), 6);
    assert_eq!(
        warnings, stored,
        "the log rebuilds exactly the stored warnings"
    );
    store.close().await;
}

#[tokio::test]
async fn a_senders_restored_cancels_the_warning_of_the_incident_it_resolves() {
    let dir = TempDir::new();
    let url = dir.database_url();
    let running = Running::start(&url, NEVER).await;
    let e = &running.engine;
    let t = Utc::now() - Duration::minutes(30);
    let mut declared = crate::fusion::citizen("utility:apa:b-1", "no_water", 25.5875, 45.6415, t);
    declared.subject = Some("utility:apa-brasov:avarie-b".into());
    declared.source = model::Source::Utility("apa-brasov".into());
    declared.kind = model::EventKind::Notice;
    let Ok(IngestOutcome::Opened(id)) = e.ingest(declared.clone()).await else {
        panic!("the notice opens an incident");
    };
    e.warn(warn(
        &id,
        WarningOp::Publish {
            text: text("Fierbeți apa"),
            area: None,
        },
    ))
    .await
    .expect("published");
    let mut restored = declared.clone();
    restored.id = "utility:apa:b-2".into();
    restored.kind = model::EventKind::Restored;
    restored.received_at = t + Duration::minutes(20);
    // Through a batch (the group commit) as the MQTT adapter hands it over.
    let outcomes = e
        .ingest_batch(vec![
            restored,
            crate::fusion::citizen("citizen:b-3", "pothole", 25.60, 45.65, t),
        ])
        .await
        .expect("committed");
    assert_eq!(
        outcomes[0].as_ref().ok(),
        Some(&IngestOutcome::Resolved(id.clone()))
    );
    let history = running.store().warnings_of(&id).await.expect("warnings");
    assert_eq!(
        history.iter().map(|v| v.message).collect::<Vec<_>>(),
        [WarningMessage::Alert, WarningMessage::Cancel]
    );
    assert_eq!(history[1].actor, "utility:apa-brasov");
    assert!(model::warning::active(&history).is_none());
    running.stop().await;
}
