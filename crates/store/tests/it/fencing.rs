//! Cluster mode's fencing on PostgreSQL: once a new leader took its term, the old leader's
//! engine commits nothing (each write aborts with `StoreError::Fenced`), the new leader's does.

use std::time::Duration;

use model::{IncidentStatus, Source};
use sqlx::{Connection, PgConnection};
use store::{ChangeKind, InboxMessage, IncidentChange, NewTimelineEntry, Store, StoreError};

use crate::fixtures::{event, pothole, t0};
use crate::postgres::in_fresh_database;

async fn events(url: &str, id: &str) -> i64 {
    let mut conn = PgConnection::connect(url).await.expect("raw connection");
    let n = sqlx::query_scalar("SELECT count(*) FROM events WHERE id = $1")
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .expect("count events");
    let _ = conn.close().await;
    n
}

#[tokio::test]
async fn a_stale_term_commits_nothing_and_the_current_one_commits() {
    in_fresh_database(|url| async move {
        let url = format!("{url}?timescaledb=off");
        let old = Store::connect(&url).await.expect("connect the old leader");
        let new = Store::connect(&url).await.expect("connect the new leader");
        let t0 = t0();
        let incident = pothole(t0);
        let change = IncidentChange {
            incident: incident.clone(),
            kind: ChangeKind::Opened,
        };

        // The old leader takes the lock and term 1; its commits go through.
        let mut old_lock = old.cluster_connection().await.expect("old lock connection");
        assert!(old_lock.try_lead().await.expect("try lead"));
        let old_term = old_lock.take_term("a", t0).await.expect("old term");
        assert_eq!(old_term, 1);
        old.fence(old_term).expect("fence the old leader");
        let e1 = event("citizen:f-1", Source::Citizen, "pothole", 25.58, 45.64, t0);
        assert!(old
            .record_batch(&[(&e1, &change)])
            .await
            .expect("term 1 commits"));
        assert_eq!(events(&url, "citizen:f-1").await, 1);

        // A transaction of the old leader still open holds the new term back until it ends.
        let mut open = PgConnection::connect(&url).await.expect("raw connection");
        let mut open_tx = open.begin().await.expect("begin");
        sqlx::query("SELECT term FROM cluster_leader WHERE id = 1 FOR SHARE")
            .execute(&mut *open_tx)
            .await
            .expect("share the term row");

        // Its lock connection drops (the database stays reachable); another instance leads.
        old_lock.close().await;
        let mut new_lock = new.cluster_connection().await.expect("new lock connection");
        // The server frees the lock once it has seen the old connection end, a moment after
        // `close` returns (as an instance would, try again until it is free).
        let mut tries = 0;
        while !new_lock.try_lead().await.expect("try lead") {
            tries += 1;
            assert!(tries < 50, "the old leader's lock was never freed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut taking = tokio::spawn(async move {
            let term = new_lock.take_term("b", t0).await;
            (term, new_lock)
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(500), &mut taking)
                .await
                .is_err(),
            "the new term must wait for the old leader's open transaction"
        );
        open_tx.commit().await.expect("commit");
        let (new_term, _new_lock) = taking.await.expect("join");
        let new_term = new_term.expect("new term");
        assert_eq!(new_term, 2);
        new.fence(new_term).expect("fence the new leader");

        // Every write path of the old leader's engine is refused and writes nothing.
        let e2 = event("citizen:f-2", Source::Citizen, "pothole", 25.58, 45.64, t0);
        match old.record_batch(&[(&e2, &change)]).await {
            Err(StoreError::Fenced {
                term: 1,
                current: 2,
            }) => {}
            other => panic!("a stale term's group commit: {other:?}"),
        }
        assert_eq!(
            events(&url, "citizen:f-2").await,
            0,
            "nothing of it committed"
        );
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(1), old.fenced()).await,
            Ok(2),
            "the old store says it was fenced"
        );
        let mut acked = incident.clone();
        acked.status = IncidentStatus::Acknowledged;
        let entry = NewTimelineEntry {
            at: t0,
            kind: "acknowledge".into(),
            actor: "operator:ioana".into(),
            reason: None,
            from: Some(IncidentStatus::Assigned),
            to: Some(IncidentStatus::Acknowledged),
            request_id: None,
            detail: serde_json::json!({}),
        };
        assert!(matches!(
            old.record_transition(&acked, &entry).await,
            Err(StoreError::Fenced { .. })
        ));
        assert!(matches!(
            old.record_transitions(&[(&acked, &entry)], &[], &acked.id)
                .await,
            Err(StoreError::Fenced { .. })
        ));
        let stored = new
            .incident(&incident.id)
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(
            stored.status,
            IncidentStatus::Assigned,
            "no action committed"
        );
        assert!(new.timeline(&incident.id).await.expect("timeline").len() == 1);

        new.inbox_push(
            "b",
            &[InboxMessage {
                id: 0,
                topic: "dispecer/v1/in/citizen/reports".into(),
                payload: b"{}".to_vec(),
                received_at: t0,
            }],
        )
        .await
        .expect("push");
        let waiting = new.inbox_take(10).await.expect("take");
        assert_eq!(waiting.len(), 1);
        let ids: Vec<i64> = waiting.iter().map(|m| m.id).collect();
        assert!(matches!(
            old.inbox_delete(&ids).await,
            Err(StoreError::Fenced { .. })
        ));
        assert_eq!(
            new.inbox_take(10).await.expect("take").len(),
            1,
            "left for the new leader"
        );

        // The new leader's term commits.
        assert!(new
            .record_batch(&[(&e2, &change)])
            .await
            .expect("term 2 commits"));
        assert_eq!(events(&url, "citizen:f-2").await, 1);
        new.record_transition(&acked, &entry)
            .await
            .expect("term 2 acts");
        new.inbox_delete(&ids).await.expect("term 2 deletes");
        assert!(new.inbox_take(10).await.expect("take").is_empty());
        let _ = open.close().await;
        old.close().await;
        new.close().await;
    })
    .await;
}

#[tokio::test]
async fn sqlite_has_no_fence() {
    let store = Store::connect("sqlite::memory:").await.expect("connect");
    assert!(matches!(store.fence(1), Err(StoreError::NotPostgres)));
}
