//! Memory and start-up: a `dispecer` (SQLite, embedded broker) started on a database holding
//! [`fusion::OPEN`] open incidents (one opening event each), written beforehand through the store
//! API (`Store::record`, as the engine writes them) on a tmpfs and copied to disk. Start-up is the
//! time from spawn to the ready file; memory is its resident set (`VmRSS` of
//! `/proc/{pid}/status`) once ready, before any client connects. A WebSocket snapshot then proves
//! every incident was loaded.

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

/// Writes `n` open incidents, each with its opening event, into a new SQLite database `file`
/// through the store; returns the events written.
async fn seed(city: &City, file: &std::path::Path, n: usize) -> Result<u64> {
    let index = CityIndex::new(city.clone());
    let store = Store::connect(&format!("sqlite://{}", file.display())).await?;
    let now = chrono::Utc::now();
    let mut events = 0;
    for (i, (point, c)) in fusion::places(city, n, 3).into_iter().enumerate() {
        let incident = open_incident(&index, c, point, now);
        let event = Event {
            id: EventId::new(format!("bench-memory-{i}")),
            subject: None,
            source: Source::Citizen,
            kind: EventKind::Report,
            category: incident.category.clone(),
            location: point,
            area: None,
            description: Some(format!("bench report {i}")),
            occurred_at: now,
            received_at: now,
            payload: "{}".to_owned(),
            contact: None,
        };
        store
            .record(
                &event,
                &IncidentChange {
                    incident,
                    kind: ChangeKind::Opened,
                },
            )
            .await?;
        events += 1;
    }
    store.close().await;
    Ok(events)
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
        tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), false)
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
    // Seeded on a tmpfs where there is one: the store's fsyncs cost nothing there.
    let shm = std::path::Path::new("/dev/shm");
    let parent = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let seed_dir = TempDir::new_in(&parent, "dispecer-bench-seed")?;
    let seeded = seed_dir.path().join("bench.sqlite");
    let t = Instant::now();
    let events = seed(city, &seeded, n).await.context("seeding incidents")?;
    let seed_seconds = t.elapsed().as_secs_f64();
    let dir = TempDir::new("dispecer-bench-memory")?;
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
        &ctx.city,
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
        "loaded": loaded,
        "snapshot_bytes": snapshot_bytes,
        "events": events,
        "database_bytes": bytes,
        "seed_seconds": seed_seconds,
        "rss_mb": rss,
        "startup_seconds": startup,
        "not_included": "10 000 sensors with a day of readings (memory), 1 million events (start-up): the database holds one event per incident",
    });
    Ok(vec![
        Row::new(
            "memory",
            "memory",
            format!("{n} open incidents, SQLite"),
            (rss, "MB"),
            None,
            Target::AtMost { value: MEMORY_MB },
            ctx.quick,
            details.clone(),
        ),
        Row::new(
            "startup",
            "start-up",
            format!("{n} open incidents + {events} events, SQLite"),
            (startup, "s"),
            None,
            Target::AtMost { value: STARTUP_S },
            ctx.quick,
            details,
        ),
    ])
}
