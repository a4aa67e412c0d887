//! Query latency (issue 4): a 24-hour 1-minute rollup of one sensor that has 30 days of
//! 1-second readings, and the incidents in a bounding box changed in the last 7 days, on SQLite
//! and on TimescaleDB, through the store's own queries (`Store::readings_rollup`,
//! `Store::incidents`) — the ones `GET /api/v1/sensors/{id}/readings` and
//! `GET /api/v1/incidents` run. Each is asked many times over different windows; the rows give
//! the 99th percentile (and the median in the details).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use geo::Point;
use model::{CityIndex, Event, EventKind, Reading, SensorId, Source};
use serde_json::json;
use store::{ChangeKind, IncidentChange, IncidentFilter, Step, Store};

use crate::fusion::open_incident;
use crate::report::{Row, Target};
use crate::services::{PgDatabase, TempDir};

/// Days of 1-second readings of the one sensor (quick: 1).
fn days(quick: bool) -> i64 {
    if quick {
        1
    } else {
        30
    }
}

/// Incidents spread over 30 days in the city (quick: 2 000).
fn incidents(quick: bool) -> usize {
    if quick {
        2_000
    } else {
        50_000
    }
}

/// Queries of each kind (quick: 20).
fn queries(quick: bool) -> usize {
    if quick {
        20
    } else {
        200
    }
}

/// Readings written per call, as the MQTT adapter commits them.
const BATCH: usize = 10_000;
/// Incidents written per transaction (the engine's group commit's size).
const INCIDENT_BATCH: usize = 256;

/// Both rows of one backend: `store` is fresh; `label` names the backend.
async fn rows(store: &Store, label: &str, city: &model::City, quick: bool) -> Result<Vec<Row>> {
    let end = Utc::now() - chrono::Duration::hours(1);
    let end = DateTime::from_timestamp(end.timestamp(), 0).context("a time")?;

    // One sensor, one metric, one reading a second for `days`.
    let sensor = SensorId::new("bench-query-sensor");
    let seconds = days(quick) * 86_400;
    let start = end - chrono::Duration::seconds(seconds);
    let loading = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    for s in 0..seconds {
        batch.push(Reading {
            sensor: sensor.clone(),
            metric: "speed".into(),
            time: start + chrono::Duration::seconds(s),
            value: 30.0 + (s % 600) as f64 / 20.0,
        });
        if batch.len() == BATCH {
            store.record_readings(&batch).await?;
            batch.clear();
        }
    }
    store.record_readings(&batch).await?;
    let load_readings = loading.elapsed().as_secs_f64();
    let n = queries(quick);
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        // Windows ending on different hours of the stored span.
        let hours_back = (i as i64 * 7) % (days(quick) * 24 - 24).max(1);
        let to = end - chrono::Duration::hours(hours_back);
        let from = to - chrono::Duration::hours(24);
        let asked = Instant::now();
        let rows = store
            .readings_rollup(&sensor, from, to, Step::Minute)
            .await?;
        times.push(asked.elapsed());
        anyhow::ensure!(
            rows.len() >= 1_400,
            "a 24-hour 1-minute rollup gave {} buckets",
            rows.len()
        );
    }
    let rollup = percentiles(&mut times);

    // Incidents over 30 days; those in a box in the centre changed in the last 7 days.
    let index = CityIndex::new(city.clone());
    let count = incidents(quick);
    let loading = Instant::now();
    let span = 30 * 86_400;
    let mut pending: Vec<(Event, IncidentChange)> = Vec::with_capacity(INCIDENT_BATCH);
    for i in 0..count {
        let at = end - chrono::Duration::seconds((i as i64 * 7_919) % span);
        // A lattice over the city's middle, about 8 × 6 km.
        let point = Point::new(
            25.52 + (i % 200) as f64 * 0.0005,
            45.61 + ((i / 200) % 120) as f64 * 0.0005,
        );
        let incident = open_incident(&index, i % city.categories.len(), point, at);
        let event = Event {
            id: format!("bench-q-{i}").as_str().into(),
            subject: None,
            source: Source::Citizen,
            kind: EventKind::Report,
            category: incident.category.clone(),
            location: point,
            area: None,
            description: None,
            occurred_at: at,
            received_at: at,
            payload: "{}".into(),
            contact: None,
        };
        pending.push((
            event,
            IncidentChange {
                incident,
                kind: ChangeKind::Opened,
            },
        ));
        if pending.len() == INCIDENT_BATCH || i + 1 == count {
            let items: Vec<(&Event, &IncidentChange)> =
                pending.iter().map(|(e, c)| (e, c)).collect();
            anyhow::ensure!(
                store.record_batch(&items).await?,
                "bench incidents recorded before"
            );
            pending.clear();
        }
    }
    let load_incidents = loading.elapsed().as_secs_f64();
    let mut times = Vec::with_capacity(n);
    let mut found = 0;
    for i in 0..n {
        // Boxes of about 1.5 × 1.1 km moving over the lattice.
        let west = 25.52 + (i % 8) as f64 * 0.008;
        let south = 45.61 + (i % 5) as f64 * 0.008;
        let filter = IncidentFilter {
            bbox: Some([west, south, west + 0.02, south + 0.01]),
            since: Some(end - chrono::Duration::days(7)),
            limit: Some(10_000),
            ..IncidentFilter::default()
        };
        let asked = Instant::now();
        found += store.incidents(&filter).await?.len();
        times.push(asked.elapsed());
    }
    anyhow::ensure!(found > 0, "no incident in any box");
    let bbox = percentiles(&mut times);

    Ok(vec![
        Row::new(
            &format!("query-rollup-{label}"),
            "query latency (p99)",
            format!(
                "24 h of 1-minute buckets, one sensor with {} days of 1-second readings, {label}",
                days(quick)
            ),
            (rollup.1, "ms"),
            None,
            Target::Report,
            quick,
            json!({
                "p50_ms": rollup.0, "p99_ms": rollup.1, "queries": n,
                "readings": seconds, "load_seconds": load_readings,
            }),
        ),
        Row::new(
            &format!("query-bbox-{label}"),
            "query latency (p99)",
            format!(
                "incidents in a 1.5 × 1.1 km box changed in the last 7 days, of {count} over 30 days, {label}"
            ),
            (bbox.1, "ms"),
            None,
            Target::Report,
            quick,
            json!({
                "p50_ms": bbox.0, "p99_ms": bbox.1, "queries": n,
                "incidents": count, "found_per_query": found as f64 / n as f64,
                "load_seconds": load_incidents,
            }),
        ),
    ])
}

/// The median and the 99th percentile of `times`, in milliseconds.
fn percentiles(times: &mut [Duration]) -> (f64, f64) {
    times.sort();
    let at = |q: f64| {
        let i = ((times.len() as f64 - 1.0) * q).round() as usize;
        times.get(i).map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0)
    };
    (at(0.5), at(0.99))
}

/// The SQLite rows: a fresh file in a temporary folder.
pub async fn sqlite(city: &model::City, quick: bool) -> Result<Vec<Row>> {
    let dir = TempDir::new("dispecer-bench-queries")?;
    let url = format!("sqlite://{}", dir.path().join("queries.sqlite").display());
    let store = Store::connect(&url).await?;
    let out = rows(&store, "sqlite", city, quick).await;
    store.close().await;
    out
}

/// The TimescaleDB rows: a fresh database on the server.
pub async fn timescaledb(pg_url: &str, city: &model::City, quick: bool) -> Result<Vec<Row>> {
    let db = PgDatabase::create(pg_url).await?;
    let out = async {
        let store = Store::connect(&db.url).await?;
        let out = rows(&store, "timescaledb", city, quick).await;
        store.close().await;
        out
    }
    .await;
    if let Err(e) = db.drop_database().await {
        eprintln!("bench: could not drop the benchmark database: {e:#}");
    }
    out
}
