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
    // SQLite reads NaN back as NULL: a batch holding one is refused, none of it stored.
    let bad = [reading(0, 40.0), reading(1, f64::NAN)];
    for _ in 0..6 {
        assert!(matches!(
            store.record_readings(&bad).await,
            Err(store::StoreError::NotANumber { .. })
        ));
    }
    let good: Vec<_> = (0..3).map(|s| reading(s, 40.0)).collect();
    assert_eq!(store.record_readings(&good).await.expect("readings"), 3);
    assert_eq!(store.record_readings(&good).await.expect("again"), 0);
    // A batch of more instants than one statement takes, whose second statement meets an
    // instant stored already: the transaction's first statement is rolled back, and the batch
    // merged (each new reading counted once: none of the first statement's is left over). More
    // times than the pool has connections: a connection left inside the failed transaction
    // would hold the write lock and the next batch would time out.
    for round in 0..6 {
        let from = 100 + round * 10_000;
        let stored_before = reading(from + 6_500, 1.0);
        assert_eq!(
            store
                .record_readings(std::slice::from_ref(&stored_before))
                .await
                .expect("one"),
            1
        );
        let big: Vec<_> = (from..from + 7_000).map(|s| reading(s, 40.0)).collect();
        assert_eq!(store.record_readings(&big).await.expect("merged"), 6_999);
    }
    let all = store
        .readings_rollup(
            &"tc-a".into(),
            base,
            base + chrono::Duration::days(1),
            store::Step::Raw,
        )
        .await
        .expect("rollup");
    assert_eq!(all.len(), 3 + 6 * 7_000);
    // The stored value was kept, not replaced by the batch's.
    let kept = all
        .iter()
        .find(|r| r.bucket == base + chrono::Duration::seconds(6_600))
        .expect("the instant stored before");
    assert_eq!(kept.avg, 1.0);
    store.close().await;
}

/// Migration 0017 on a file that already holds readings (one row per metric): they are copied
/// into one row per sensor and instant, and read back as they were; each is still stored once.
#[tokio::test]
async fn readings_migrate_to_one_row_per_instant() {
    let dir = TempDir::new();
    std::fs::create_dir_all(&dir.0).expect("the folder");
    let url = format!("sqlite://{}?mode=rwc", dir.0.join("old.sqlite").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open");
    crate::fixtures::migrations_before("sqlite", 17)
        .await
        .run(&pool)
        .await
        .expect("migrate to 0016");
    let old = crate::fixtures::old_readings();
    for r in &old {
        sqlx::query("INSERT INTO readings (sensor, metric, time_us, value) VALUES (?, ?, ?, ?)")
            .bind(r.sensor.as_str())
            .bind(r.metric.as_str())
            .bind(r.time.timestamp_micros())
            .bind(r.value)
            .execute(&pool)
            .await
            .expect("an old reading");
    }
    pool.close().await;

    let store = Store::connect(&url).await.expect("connect and migrate");
    crate::fixtures::old_readings_read_back_and_merge(&store).await;
    store.close().await;
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open");
    let (rows, readings, old_tables): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(count) + count(speed) + count(occupancy), \
         (SELECT count(*) FROM sqlite_master WHERE name = 'readings_by_metric') FROM readings",
    )
    .fetch_one(&pool)
    .await
    .expect("counts");
    assert_eq!((rows, readings, old_tables), (3, 6, 0));
    pool.close().await;
}
