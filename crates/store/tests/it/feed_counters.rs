//! Cluster mode's per-feed counters (migration 0016): each instance's row per feed replaced by
//! its latest write, every instance's read back; SQLite has none.

use chrono::SubsecRound;
use store::{FeedRow, Store, StoreError};

use crate::fixtures::t0;
use crate::postgres::in_fresh_database;

fn row(instance: &str, feed: &str, accepted: u64, seen_s: Option<i64>) -> FeedRow {
    FeedRow {
        instance_id: instance.into(),
        feed: feed.into(),
        received: accepted + 1,
        accepted,
        rejected: 1,
        duplicates: 0,
        last_seen: seen_s.map(|s| (t0() + chrono::Duration::seconds(s)).trunc_subsecs(0)),
        last_lag_s: seen_s.map(|_| 0.25),
    }
}

#[tokio::test]
async fn each_instance_keeps_its_own_row_per_feed() {
    in_fresh_database(|url| async move {
        let store = Store::connect(&format!("{url}?timescaledb=off"))
            .await
            .expect("connect");
        store
            .save_feed_counters(&[
                row("a", "citizen", 3, Some(1)),
                row("a", "utility:x", 1, None),
            ])
            .await
            .expect("a writes");
        store
            .save_feed_counters(&[row("b", "citizen", 5, Some(2))])
            .await
            .expect("b writes");
        // a's next write replaces its own row only.
        store
            .save_feed_counters(&[row("a", "citizen", 4, Some(3))])
            .await
            .expect("a writes again");
        store
            .save_feed_counters(&[])
            .await
            .expect("nothing to write");
        let rows = store.feed_counters().await.expect("read");
        assert_eq!(
            rows,
            [
                row("a", "citizen", 4, Some(3)),
                row("a", "utility:x", 1, None),
                row("b", "citizen", 5, Some(2)),
            ]
        );
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn sqlite_keeps_no_feed_counters() {
    let store = Store::connect("sqlite::memory:").await.expect("connect");
    assert!(matches!(
        store.feed_counters().await,
        Err(StoreError::NotPostgres)
    ));
}
