//! The group commit: events taken together ([`Engine::ingest_batch`], or single events waiting
//! one after another) are decided in order, each against the state its predecessors leave, and
//! committed together; a commit that fails leaves nothing behind, in the store or in memory.

use std::collections::HashMap;

use chrono::{Duration, Utc};
use engine::{EngineError, IngestOutcome};
use model::{Event, EventKind, IncidentStatus, Source};

use crate::fusion::citizen;
use crate::lifecycle::{pothole_report, Running, TempDir, NEVER};

/// What each outcome says, with incident ids replaced by the order in which they first appear
/// (two engines give their incidents different ids).
fn shapes(outcomes: &[Result<IngestOutcome, EngineError>]) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut name = |id: &model::IncidentId| {
        let next = seen.len();
        *seen.entry(id.to_string()).or_insert(next)
    };
    outcomes
        .iter()
        .map(|o| match o {
            Ok(IngestOutcome::Opened(id)) => format!("opened #{}", name(id)),
            Ok(IngestOutcome::Joined(id)) => format!("joined #{}", name(id)),
            Ok(IngestOutcome::Updated(id)) => format!("updated #{}", name(id)),
            Ok(IngestOutcome::Resolved(id)) => format!("resolved #{}", name(id)),
            Ok(IngestOutcome::Duplicate) => "duplicate".to_owned(),
            Err(EngineError::Refused(_)) => "refused".to_owned(),
            Err(e) => format!("error {e}"),
        })
        .collect()
}

fn restored(id: &str, subject: &str, at: chrono::DateTime<Utc>) -> Event {
    Event {
        id: id.into(),
        subject: Some(subject.into()),
        source: Source::Utility("apa-brasov".into()),
        kind: EventKind::Restored,
        ..citizen(id, "no_water", 25.5875, 45.6415, at)
    }
}

/// A story in which later events depend on earlier ones of the same batch.
fn story() -> Vec<Event> {
    let t = Utc::now() - Duration::minutes(10);
    let mut declared = citizen("utility:apa:1", "no_water", 25.5875, 45.6415, t);
    declared.subject = Some("utility:apa-brasov:avarie-9".into());
    declared.source = Source::Utility("apa-brasov".into());
    declared.kind = EventKind::Notice;
    vec![
        pothole_report("citizen:p-1", t),
        // Ten meters away: the same pothole.
        citizen(
            "citizen:p-2",
            "pothole",
            25.5888,
            45.6419,
            t + Duration::seconds(5),
        ),
        // The same report again, in the same batch.
        pothole_report("citizen:p-1", t),
        declared,
        citizen(
            "citizen:w-1",
            "no_water",
            25.5876,
            45.6416,
            t + Duration::seconds(20),
        ),
        // Nothing follows this subject.
        restored(
            "utility:apa:x",
            "utility:apa-brasov:nothing",
            t + Duration::seconds(30),
        ),
        restored(
            "utility:apa:2",
            "utility:apa-brasov:avarie-9",
            t + Duration::seconds(40),
        ),
        // After its incident was resolved in this batch: a new one.
        citizen(
            "citizen:w-2",
            "no_water",
            25.5876,
            45.6416,
            t + Duration::seconds(50),
        ),
    ]
}

#[tokio::test]
async fn a_batch_decides_as_one_event_at_a_time_would() {
    let (one_dir, batch_dir) = (TempDir::new(), TempDir::new());
    let one = Running::start(&one_dir.database_url(), NEVER).await;
    let batch = Running::start(&batch_dir.database_url(), NEVER).await;

    let mut singly = Vec::new();
    for event in story() {
        singly.push(one.engine.ingest(event).await);
    }
    let together = batch
        .engine
        .ingest_batch(story())
        .await
        .expect("the batch is committed");
    assert_eq!(
        shapes(&together),
        [
            "opened #0",
            "joined #0",
            "duplicate",
            "opened #1",
            "joined #1",
            "refused",
            "resolved #1",
            "opened #2"
        ]
    );
    assert_eq!(shapes(&together), shapes(&singly));

    // The same state, in memory and in the store.
    let summary = |incidents: Vec<model::Incident>| {
        let mut s: Vec<(String, IncidentStatus, u32)> = incidents
            .into_iter()
            .map(|i| (i.category.to_string(), i.status, i.report_count))
            .collect();
        s.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        s
    };
    let open = |r: &Running| {
        let engine = r.engine.clone();
        async move {
            engine
                .open_incidents()
                .await
                .expect("snapshot")
                .iter()
                .map(|i| (**i).clone())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(summary(open(&batch).await), summary(open(&one).await));
    let all = store::IncidentFilter::default();
    assert_eq!(
        summary(batch.store().incidents(&all).await.expect("incidents")),
        summary(one.store().incidents(&all).await.expect("incidents"))
    );
    assert_eq!(
        batch
            .engine
            .stats()
            .duplicates
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    // Sent again (a sender's retry): every accepted event is a duplicate now.
    let again = batch
        .engine
        .ingest_batch(story())
        .await
        .expect("the batch is answered");
    assert_eq!(
        shapes(&again),
        [
            "duplicate",
            "duplicate",
            "duplicate",
            "duplicate",
            "duplicate",
            "refused",
            "duplicate",
            "duplicate"
        ]
    );
    one.stop().await;
    batch.stop().await;
}

#[tokio::test]
async fn a_batch_whose_commit_fails_leaves_nothing_behind() {
    let dir = TempDir::new();
    let url = dir.database_url();
    let running = Running::start(&url, NEVER).await;
    let engine = &running.engine;
    let t = Utc::now() - Duration::minutes(10);
    let Ok(IngestOutcome::Opened(first)) = engine.ingest(pothole_report("citizen:a", t)).await
    else {
        panic!("the first report opens an incident");
    };
    let before = engine.open_incidents().await.expect("snapshot");

    // The database refuses timeline rows: the batch's transaction fails after its events were
    // decided and applied in memory.
    let sqlite = sqlx::SqlitePool::connect(&url)
        .await
        .expect("a second connection");
    sqlx::query(
        "CREATE TRIGGER refuse BEFORE INSERT ON incident_timeline \
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    )
    .execute(&sqlite)
    .await
    .expect("trigger");
    let batch = || {
        vec![
            citizen("citizen:b", "pothole", 25.5888, 45.6419, t),
            citizen("citizen:c", "water_leak", 25.60, 45.65, t),
        ]
    };
    let failed = engine.ingest_batch(batch()).await;
    assert!(matches!(failed, Err(EngineError::Store(_))), "{failed:?}");
    let after = engine.open_incidents().await.expect("snapshot");
    assert_eq!(after.len(), before.len(), "no incident stays opened");
    assert_eq!(after[0].report_count, 1, "the join was taken back");
    assert!(!running
        .store()
        .is_known_event(&"citizen:b".into())
        .await
        .expect("query"));

    // The database takes them again: the same events, decided the same way.
    sqlx::query("DROP TRIGGER refuse")
        .execute(&sqlite)
        .await
        .expect("drop trigger");
    let taken = engine.ingest_batch(batch()).await.expect("committed");
    assert_eq!(
        taken[0].as_ref().ok(),
        Some(&IngestOutcome::Joined(first.clone()))
    );
    assert!(
        matches!(taken[1], Ok(IngestOutcome::Opened(_))),
        "{taken:?}"
    );
    let open = engine.open_incidents().await.expect("snapshot");
    assert_eq!(open.len(), 2);
    let pothole = open.iter().find(|i| i.id == first).expect("the pothole");
    assert_eq!(pothole.report_count, 2);
    sqlite.close().await;
    running.stop().await;
}
