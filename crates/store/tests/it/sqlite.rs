//! The story on SQLite, and what is particular to it.

use std::path::PathBuf;

use store::{Backend, Store, StoreError};

use crate::story::{self, Target};

/// A folder under the system's temporary folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        TempDir(std::env::temp_dir().join(format!("dispecer-store-{}", uuid::Uuid::now_v7())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn story_on_sqlite() {
    let dir = TempDir::new();
    // The folder does not exist yet: the store creates it.
    let url = format!("sqlite://{}", dir.0.join("data/dispecer.sqlite").display());
    story::run(Target {
        url: url.clone(),
        raw_url: url,
        backend: Backend::Sqlite,
    })
    .await;
}

#[tokio::test]
async fn in_memory_database_works_and_is_one_database() {
    let store = Store::connect("sqlite::memory:").await.expect("connect");
    assert_eq!(store.backend(), Backend::Sqlite);
    let letter = store::NewDeadLetter {
        received_at: chrono::Utc::now(),
        channel: "http".into(),
        topic: "/x".into(),
        payload: b"x".to_vec(),
        reason: "test".into(),
    };
    store.record_dead_letter(&letter).await.expect("write");
    // Another handle reads what the first wrote: one database, not one per connection.
    let other = store.clone();
    assert_eq!(other.dead_letters(10).await.expect("read").len(), 1);
    store.close().await;
}

#[tokio::test]
async fn bad_urls_are_refused() {
    for url in ["mysql://localhost/x", "", "postgres://h/db?timescaledb=yes"] {
        match Store::connect(url).await {
            Err(StoreError::InvalidUrl(_)) => {}
            other => panic!("{url:?}: expected InvalidUrl, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_failed_batch_of_readings_leaves_nothing_and_the_store_writes_on() {
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.0.join("readings.sqlite").display());
    let store = Store::connect(&url).await.expect("connect");
    let base = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH + chrono::Duration::days(20_000);
    let reading = |second: i64, value: f64| model::Reading {
        sensor: "tc-a".into(),
        metric: "speed".into(),
        time: base + chrono::Duration::seconds(second),
        value,
    };
    // SQLite stores NaN as NULL, which the table refuses: the batch's script fails after its
    // first rows went in, and must leave none of them.
    let bad = [reading(0, 40.0), reading(1, f64::NAN)];
    // More failures than the pool has connections: a connection left inside the failed
    // transaction would hold the write lock and the next batch would time out.
    for _ in 0..6 {
        assert!(store.record_readings(&bad).await.is_err());
    }
    let good: Vec<_> = (0..3).map(|s| reading(s, 40.0)).collect();
    assert_eq!(store.record_readings(&good).await.expect("readings"), 3);
    assert_eq!(store.record_readings(&good).await.expect("again"), 0);
    let raw = store
        .readings_rollup(
            &"tc-a".into(),
            base,
            base + chrono::Duration::minutes(1),
            store::Step::Raw,
        )
        .await
        .expect("rollup");
    assert_eq!(raw.len(), 3);
    store.close().await;
}
