//! Persistence alone: readings/s of `Store::record_readings` (the MQTT adapter's code path, in
//! batches of [`BATCH`] as the adapter commits them) against the raw write of the same rows into
//! the same table in a fresh database, in the same run.
//!
//! TimescaleDB: the limit is `COPY readings (time, sensor, count, speed, occupancy) FROM STDIN`
//! (text format, one row per sensor and instant as the store keeps them), one COPY (one commit)
//! per batch, into the readings hypertable of a second fresh database migrated by the same store.
//! SQLite has no COPY: the limit is a plain multi-row INSERT (1 000 rows a statement, each a
//! sensor's instant; prepared once and reused) in one transaction per batch, on a second fresh
//! file with the store's schema and its settings (WAL, `synchronous = FULL`).

use std::str::FromStr;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use model::{Reading, SensorId};
use serde_json::json;
use sqlx::Connection;
use store::Store;

use crate::report::{Row, Target};
use crate::services::{PgDatabase, TempDir};

/// Readings per `record_readings` call: about the most the MQTT adapter commits at once (10 000),
/// made a multiple of three so that no batch splits a sensor's instant (the adapter commits whole
/// packs).
pub const BATCH: usize = 9_999;
/// The target: at least this share of the raw write.
const TARGET: f64 = 0.7;
/// Distinct sensors of the generated readings (three metrics each).
const SENSORS: usize = 1_000;
/// Rows (sensors' instants) per statement of the SQLite limit (5 parameters each).
const SQLITE_ROWS_PER_STATEMENT: usize = 1_000;

/// `n` readings as sensors send them: every sensor's count, speed and occupancy at one time, then
/// the next minute; distinct (sensor, metric, time) throughout.
fn readings(n: usize, start: DateTime<Utc>) -> Vec<Reading> {
    let sensors: Vec<SensorId> = (0..SENSORS)
        .map(|s| SensorId::new(format!("bench-sensor-{s:05}")))
        .collect();
    (0..n)
        .map(|i| {
            let (metric, rest) = (i % 3, i / 3);
            let (sensor, minute) = (rest % SENSORS, rest / SENSORS);
            Reading {
                sensor: sensors[sensor].clone(),
                metric: ["count", "speed", "occupancy"][metric].into(),
                time: start + chrono::Duration::minutes(minute as i64),
                value: ((i * 37) % 1000) as f64 / 10.0,
            }
        })
        .collect()
}

/// Readings of a run: `quick` is two batches.
fn size(quick: bool) -> usize {
    if quick {
        2 * BATCH
    } else {
        50 * BATCH
    }
}

/// The start of the generated readings: a day ago, on the minute.
fn start() -> DateTime<Utc> {
    let t = Utc::now() - chrono::Duration::days(1);
    t - chrono::Duration::seconds(t.timestamp() % 60)
        - chrono::Duration::nanoseconds(i64::from(t.timestamp_subsec_nanos()))
}

/// `record_readings` in batches; rows/s and how many it stored.
async fn through_store(store: &Store, rows: &[Reading]) -> Result<(f64, u64)> {
    let started = Instant::now();
    let mut stored = 0;
    for batch in rows.chunks(BATCH) {
        stored += store.record_readings(batch).await?;
    }
    Ok((rows.len() as f64 / started.elapsed().as_secs_f64(), stored))
}

/// The TimescaleDB row: `record_readings` vs COPY, each into a fresh database's hypertable.
pub async fn timescaledb(pg_url: &str, quick: bool) -> Result<Row> {
    let rows = readings(size(quick), start());

    // The limit first: COPY into a fresh database migrated by the store.
    let db = PgDatabase::create(pg_url).await?;
    let limit = async {
        let store = Store::connect(&db.url).await?;
        if store.backend().to_string() != "timescaledb" {
            bail!(
                "the PostgreSQL server has no TimescaleDB (the store says {})",
                store.backend()
            );
        }
        store.close().await;
        let mut conn = sqlx::PgConnection::connect(&db.url).await?;
        let started = Instant::now();
        let mut copied = 0;
        for batch in rows.chunks(BATCH) {
            let mut text = String::with_capacity(batch.len() * 32);
            // The generator's readings come as each sensor's count, speed and occupancy at one
            // time: one row of the table each.
            for instant in batch.chunks(3) {
                use std::fmt::Write as _;
                let [count, speed, occupancy] = instant else {
                    bail!("a batch split a sensor's instant");
                };
                if count.metric != "count"
                    || speed.metric != "speed"
                    || occupancy.metric != "occupancy"
                {
                    bail!("the generator's readings are not in count, speed, occupancy order");
                }
                let _ = writeln!(
                    text,
                    "{}\t{}\t{}\t{}\t{}",
                    count.time.format("%Y-%m-%d %H:%M:%S%.6f+00"),
                    count.sensor.as_str(),
                    count.value,
                    speed.value,
                    occupancy.value
                );
            }
            let mut copy = conn
                .copy_in_raw("COPY readings (time, sensor, count, speed, occupancy) FROM STDIN")
                .await?;
            copy.send(text.into_bytes()).await?;
            copied += 3 * copy.finish().await?;
        }
        let per_s = rows.len() as f64 / started.elapsed().as_secs_f64();
        conn.close().await?;
        Ok((per_s, copied))
    }
    .await;
    db.drop_database().await?;
    let (limit, copied) = limit.context("COPY (the limit)")?;

    let db = PgDatabase::create(pg_url).await?;
    let measured = async {
        let store = Store::connect(&db.url).await?;
        let out = through_store(&store, &rows).await;
        store.close().await;
        out
    }
    .await;
    db.drop_database().await?;
    let (measured, stored) = measured.context("record_readings")?;
    check(rows.len(), stored, copied)?;
    Ok(Row::new(
        "persistence-timescaledb",
        "persistence alone",
        format!("TimescaleDB hypertable, {} readings", rows.len()),
        (measured, "rows/s"),
        Some((limit, "COPY FROM STDIN")),
        Target::RatioAtLeast { ratio: TARGET },
        quick,
        json!({
            "readings": rows.len(),
            "batch": BATCH,
            "sensors": SENSORS,
            "stored": stored,
            "copied": copied,
            "measured_as": "Store::record_readings, one call (one transaction) per batch",
            "limit_as": "COPY readings (time, sensor, count, speed, occupancy) FROM STDIN, one COPY per batch, text format, into the same hypertable in a fresh database",
        }),
    ))
}

/// Every reading stored, by both ways.
fn check(generated: usize, stored: u64, raw: u64) -> Result<()> {
    if stored != generated as u64 || raw != generated as u64 {
        bail!("data lost: {generated} readings generated, {stored} stored by the store, {raw} by the raw write");
    }
    Ok(())
}

/// The SQLite row: `record_readings` vs a plain prepared multi-row INSERT, each into a fresh file.
pub async fn sqlite(quick: bool) -> Result<Row> {
    let rows = readings(size(quick), start());
    let dir = TempDir::new("dispecer-bench-persistence")?;

    let limit_file = dir.path().join("limit.sqlite");
    let url = format!("sqlite://{}", limit_file.display());
    Store::connect(&url).await?.close().await;
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&url)?
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Full);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts).await?;
    let statement = format!(
        "INSERT INTO readings (sensor, time_us, count, speed, occupancy) VALUES {}",
        vec!["(?, ?, ?, ?, ?)"; SQLITE_ROWS_PER_STATEMENT].join(", ")
    );
    let started = Instant::now();
    let mut inserted = 0;
    for batch in rows.chunks(BATCH) {
        let mut tx = conn.begin().await?;
        // One row per sensor and instant, as the store keeps them (the generator's readings
        // come as each sensor's count, speed and occupancy at one time).
        for chunk in batch.chunks(3 * SQLITE_ROWS_PER_STATEMENT) {
            let full;
            let sql = if chunk.len() == 3 * SQLITE_ROWS_PER_STATEMENT {
                statement.as_str()
            } else {
                full = format!(
                    "INSERT INTO readings (sensor, time_us, count, speed, occupancy) VALUES {}",
                    vec!["(?, ?, ?, ?, ?)"; chunk.len().div_ceil(3)].join(", ")
                );
                full.as_str()
            };
            let mut q = sqlx::query(sql);
            for instant in chunk.chunks(3) {
                let [count, speed, occupancy] = instant else {
                    bail!("a batch split a sensor's instant");
                };
                q = q
                    .bind(count.sensor.as_str())
                    .bind(count.time.timestamp_micros())
                    .bind(count.value)
                    .bind(speed.value)
                    .bind(occupancy.value);
            }
            inserted += 3 * q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
    }
    let limit = rows.len() as f64 / started.elapsed().as_secs_f64();
    conn.close().await?;

    let file = dir.path().join("store.sqlite");
    let store = Store::connect(&format!("sqlite://{}", file.display())).await?;
    let measured = through_store(&store, &rows).await;
    store.close().await;
    let (measured, stored) = measured.context("record_readings")?;
    check(rows.len(), stored, inserted)?;
    Ok(Row::new(
        "persistence-sqlite",
        "persistence alone",
        format!("SQLite (WAL, synchronous=FULL), {} readings", rows.len()),
        (measured, "rows/s"),
        Some((limit, "prepared multi-row INSERT")),
        Target::Report,
        quick,
        json!({
            "readings": rows.len(),
            "batch": BATCH,
            "sensors": SENSORS,
            "stored": stored,
            "inserted": inserted,
            "measured_as": "Store::record_readings, one call (one transaction) per batch",
            "limit_as": "plain INSERT of 1 000 rows (a sensor's instant each) a statement, prepared once, one transaction per batch, into a fresh file with the store's schema and settings",
        }),
    ))
}
