//! Memory and start-up: a `dispecer` (SQLite, embedded broker) started on a city of
//! [`SENSORS`] sensor sites (Brașov's folder copied, with generated counters added) and a
//! database holding [`fusion::OPEN`] open incidents reached by [`EVENTS`] events (each incident
//! opened by one, the rest reports joining them) and one day of readings of every sensor (one
//! pack of count, speed and occupancy every [`READING_EVERY_S`] seconds), written beforehand
//! through the store API (`Store::record` and `Store::record_readings`, as the engine and the
//! adapter write them) on a tmpfs and copied to disk. Start-up is the time from spawn to the
//! ready file; memory is its resident set (`VmRSS` of `/proc/{pid}/status`) once ready, before
//! any client connects. A WebSocket snapshot then proves every incident was loaded.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use model::{City, CityIndex, Event, EventId, EventKind, Source};
use serde_json::json;
use store::{ChangeKind, IncidentChange, Store};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::fusion::{self, open_incident};
use crate::ingest::Setup;
use crate::report::{Row, Target};
use crate::services::{free_port, Broker, Dispecer, TempDir};

/// Target resident memory, MB.
const MEMORY_MB: f64 = 500.0;
/// Target start-up, seconds.
const STARTUP_S: f64 = 10.0;
/// Sensor sites of the city (issue 8: 10 000 sensors).
const SENSORS: usize = 10_000;
/// Events stored (issue 8: start-up with one million events).
const EVENTS: usize = 1_000_000;
/// Seconds between two packs of one sensor in the seeded day.
const READING_EVERY_S: i64 = 300;
/// Readings per `record_readings` call while seeding.
const SEED_BATCH: usize = 30_000;

/// What the seeded database holds.
#[derive(Debug, Clone, Copy)]
struct Seeded {
    events: u64,
    readings: u64,
}

/// A copy of the city folder `from` in `to`, with `extra` generated sensor sites added to its
/// `sensors.toml` (on seeded places inside the municipality); returns the loaded copy.
fn city_with_sensors(from: &Path, to: &Path, city: &City, extra: usize) -> Result<City> {
    copy_dir(from, to)?;
    let mut sensors = std::fs::read_to_string(to.join("sensors.toml"))?;
    for (i, (p, _)) in fusion::places(city, extra, 5).into_iter().enumerate() {
        sensors.push_str(&format!(
            "\n[[sensor]]\nid = \"bench-{i:05}\"\nname = \"Bench counter {i}\"\nlocation = [{}, {}]\nroad = \"Bench road {}\"\ndirection = \"N\"\nfree_flow_speed_kmh = 50\nlanes = 2\n",
            p.x(),
            p.y(),
            i % 97
        ));
    }
    std::fs::write(to.join("sensors.toml"), sensors)?;
    city::load(to).map_err(|e| anyhow::anyhow!("the bench city does not load: {e}"))
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Writes `incidents` open incidents reached by `events` events (one opening each incident,
/// the rest joining them in turn), and `readings_per_sensor` packs of every sensor of `city`
/// over the day before now, into a new SQLite database `file` through the store.
async fn seed(
    city: &City,
    file: &Path,
    incidents: usize,
    events: usize,
    readings_per_sensor: usize,
) -> Result<Seeded> {
    let index = CityIndex::new(city.clone());
    let store = Store::connect(&format!("sqlite://{}", file.display())).await?;
    let now = chrono::Utc::now();
    let event = |i: usize, category: &model::CategoryId, point| Event {
        id: EventId::new(format!("bench-memory-{i}")),
        subject: None,
        source: Source::Citizen,
        kind: EventKind::Report,
        category: category.clone(),
        location: point,
        area: None,
        description: Some(format!("bench report {i}")),
        occurred_at: now,
        received_at: now,
        payload: "{}".to_owned(),
        contact: None,
    };
    let mut open = Vec::with_capacity(incidents);
    let mut written = 0u64;
    for (i, (point, c)) in fusion::places(city, incidents, 3).into_iter().enumerate() {
        let incident = open_incident(&index, c, point, now);
        let e = event(i, &incident.category, point);
        store
            .record(
                &e,
                &IncidentChange {
                    incident: incident.clone(),
                    kind: ChangeKind::Opened,
                },
            )
            .await?;
        open.push(incident);
        written += 1;
    }
    // The other events: one more report on each incident in turn.
    for i in incidents..events.max(incidents) {
        let slot = i % open.len().max(1);
        let Some(incident) = open.get_mut(slot) else {
            break;
        };
        incident.report_count += 1;
        let e = event(i, &incident.category, incident.location);
        store
            .record(
                &e,
                &IncidentChange {
                    incident: incident.clone(),
                    kind: ChangeKind::ReportJoined,
                },
            )
            .await?;
        written += 1;
    }
    // A day of readings, oldest first, in large batches.
    let mut readings = 0u64;
    let mut batch = Vec::with_capacity(SEED_BATCH);
    let first = now - chrono::Duration::seconds(READING_EVERY_S * readings_per_sensor as i64);
    for k in 0..readings_per_sensor {
        let time = first + chrono::Duration::seconds(READING_EVERY_S * k as i64);
        for (j, s) in city.sensors.iter().enumerate() {
            for (metric, value) in [
                ("count", ((j + k) % 60) as f64),
                ("speed", 20.0 + ((j * 7 + k) % 40) as f64),
                ("occupancy", ((j * 3 + k) % 100) as f64),
            ] {
                batch.push(model::Reading {
                    sensor: s.id.clone(),
                    metric: metric.into(),
                    time,
                    value,
                });
            }
            if batch.len() >= SEED_BATCH {
                readings += store.record_readings(&batch).await?;
                batch.clear();
            }
        }
    }
    readings += store.record_readings(&batch).await?;
    store.close().await;
    Ok(Seeded {
        events: written,
        readings,
    })
}

/// `VmRSS` of process `pid`, in MB (10⁶ bytes).
fn rss_mb(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/{pid}/status")?;
    Ok(kib * 1024.0 / 1e6)
}

/// Open incidents in the first (snapshot) frame of `GET /api/v1/stream`, and its bytes.
async fn snapshot_size(server: &Dispecer) -> Result<(usize, usize)> {
    let url = format!("{}/api/v1/stream", server.http.replacen("http", "ws", 1));
    // The snapshot of 100 000 incidents is far above tungstenite's 16 MiB default.
    let config = WebSocketConfig::default()
        .max_message_size(Some(1 << 30))
        .max_frame_size(Some(1 << 30));
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(server.stream_request()?, Some(config), false)
            .await
            .with_context(|| format!("cannot connect to {url}"))?;
    let first = tokio::time::timeout(Duration::from_secs(120), ws.next())
        .await
        .context("no snapshot within 120 s")?;
    let Some(Ok(Message::Text(text))) = first else {
        bail!("the first frame is no text: {first:?}");
    };
    let doc: serde_json::Value = serde_json::from_str(text.as_str())?;
    let n = doc["incidents"]["features"]
        .as_array()
        .map(Vec::len)
        .context("the snapshot has no incidents")?;
    Ok((n, text.len()))
}

/// The memory and start-up rows.
pub async fn run(ctx: &Setup, city: &City) -> Result<Vec<Row>> {
    let n = if ctx.quick { 2_000 } else { fusion::OPEN };
    let (sensors, events, packs_per_sensor) = if ctx.quick {
        (500, 20_000, 12)
    } else {
        (SENSORS, EVENTS, (86_400 / READING_EVERY_S) as usize)
    };
    // Seeded on a tmpfs where there is one: the store's fsyncs cost nothing there.
    let shm = std::path::Path::new("/dev/shm");
    let parent = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let seed_dir = TempDir::new_in(&parent, "dispecer-bench-seed")?;
    let seeded = seed_dir.path().join("bench.sqlite");
    let dir = TempDir::new("dispecer-bench-memory")?;
    let city_dir = dir.path().join("city");
    let extra = sensors.saturating_sub(city.sensors.len());
    let big_city = city_with_sensors(&ctx.city, &city_dir, city, extra)?;
    let t = Instant::now();
    let Seeded { events, readings } = seed(&big_city, &seeded, n, events, packs_per_sensor)
        .await
        .context("seeding incidents, events and readings")?;
    let seed_seconds = t.elapsed().as_secs_f64();
    let db = dir.path().join("bench.sqlite");
    std::fs::copy(&seeded, &db).context("copying the seeded database")?;
    // What the last connection did not checkpoint is still in the write-ahead log: it belongs
    // to the database (SQLite replays it on open), so it goes along.
    let wal = seed_dir.path().join("bench.sqlite-wal");
    if wal.exists() {
        std::fs::copy(&wal, dir.path().join("bench.sqlite-wal"))
            .context("copying the seeded database's write-ahead log")?;
    }
    drop(seed_dir);
    let bytes = std::fs::metadata(&db)?.len();

    let broker = Broker::Embedded(free_port()?);
    let spawned = Instant::now();
    let server = Dispecer::start(
        &ctx.dispecer,
        &city_dir,
        &dir,
        &format!("sqlite://{}", db.display()),
        &broker,
    )
    .await?;
    let startup = spawned.elapsed().as_secs_f64();
    let out = async {
        // Settle (background tasks start after the ready file), then read the resident set.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss = rss_mb(server.pid())?;
        let (loaded, snapshot_bytes) = snapshot_size(&server).await?;
        if loaded != n {
            bail!("dispecer loaded {loaded} open incidents of the {n} stored");
        }
        Ok((rss, loaded, snapshot_bytes))
    }
    .await
    .map_err(|e| e.context(format!("dispecer log:\n{}", server.log_tail())));
    let log = ctx.logs.as_ref().map(|d| d.join("memory.log"));
    server.stop(log.as_deref())?;
    let (rss, loaded, snapshot_bytes) = out?;
    let details = json!({
        "open_incidents": n,
        "sensors": big_city.sensors.len(),
        "readings": readings,
        "readings_span": format!("{packs_per_sensor} packs per sensor, one every {READING_EVERY_S} s"),
        "loaded": loaded,
        "snapshot_bytes": snapshot_bytes,
        "events": events,
        "database_bytes": bytes,
        "seed_seconds": seed_seconds,
        "rss_mb": rss,
        "startup_seconds": startup,
    });
    Ok(vec![
        Row::new(
            "memory",
            "memory",
            format!(
                "{n} open incidents, {} sensors, {} readings, SQLite",
                big_city.sensors.len(),
                crate::report::thousands(readings as f64)
            ),
            (rss, "MB"),
            None,
            Target::AtMost { value: MEMORY_MB },
            ctx.quick,
            details.clone(),
        ),
        Row::new(
            "startup",
            "start-up",
            format!(
                "{n} open incidents, {} events, {} readings, SQLite",
                crate::report::thousands(events as f64),
                crate::report::thousands(readings as f64)
            ),
            (startup, "s"),
            None,
            Target::AtMost { value: STARTUP_S },
            ctx.quick,
            details,
        ),
    ])
}
