//! WebSocket fan-out: frames/s delivered to [`CLIENTS`] clients of `GET /api/v1/stream` of a
//! running `dispecer` (SQLite in a temporary folder, embedded broker, `--mqtt-auth none`) while
//! citizen reports are published at full speed, each at its own place (so nearly each opens an
//! incident; a report that joins one gives an update frame instead: one frame per report per
//! client either way). Measured from the first publish to the last frame
//! received. No limit: the figure is reported.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use model::City;
use serde_json::json;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

use crate::ingest::Setup;
use crate::mqtt::{self, Pack};
use crate::report::{Row, Target};
use crate::services::{free_port, Broker, Dispecer, TempDir};

/// WebSocket clients.
pub const CLIENTS: usize = 200;
/// The citizen reports topic.
const REPORTS: &str = "dispecer/v1/in/citizen/reports";
/// The end: every client has all its frames, or none came for this long.
const QUIET: Duration = Duration::from_secs(3);

/// What the clients received.
#[derive(Debug, Default)]
struct Counts {
    /// Incident frames.
    frames: AtomicU64,
    /// Snapshots after the first (a client that fell behind).
    resyncs: AtomicU64,
    /// Bytes of every frame.
    bytes: AtomicU64,
}

/// Citizen reports of potholes (merged within 50 m) at `n` seeded places in the municipality.
fn reports(city: &City, n: usize) -> Vec<Pack> {
    let at = chrono::Utc::now().to_rfc3339();
    crate::fusion::places(city, n, 4)
        .into_iter()
        .enumerate()
        .map(|(i, (p, _))| {
            let (lon, lat) = (p.x(), p.y());
            let payload = format!(
                r#"{{"type":"Feature","geometry":{{"type":"Point","coordinates":[{lon},{lat}]}},"properties":{{"id":"bench-fanout-{i}-{}","category":"pothole","reported_at":"{at}"}}}}"#,
                uuid::Uuid::now_v7().simple()
            );
            Pack::new(0, payload.into_bytes())
        })
        .collect()
}

/// The row.
pub async fn run(ctx: &Setup, city: &City) -> Result<Row> {
    let dir = TempDir::new("dispecer-bench-fanout")?;
    let broker = Broker::Embedded(free_port()?);
    let db = format!("sqlite://{}", dir.path().join("bench.sqlite").display());
    let server = Dispecer::start(&ctx.dispecer, &ctx.city, &dir, &db, &broker).await?;
    let out = measure(ctx, city, &server, &broker).await;
    let out = out.map_err(|e| e.context(format!("dispecer log:\n{}", server.log_tail())));
    let log = ctx.logs.as_ref().map(|d| d.join("ws-fanout.log"));
    server.stop(log.as_deref())?;
    out
}

async fn measure(ctx: &Setup, city: &City, server: &Dispecer, broker: &Broker) -> Result<Row> {
    let n = if ctx.quick { 100 } else { 2_000 };
    let url = format!("{}/api/v1/stream", server.http.replacen("http", "ws", 1));
    let counts = Arc::new(Counts::default());
    let last_frame = Arc::new(Mutex::new(None::<Instant>));
    let mut clients = Vec::with_capacity(CLIENTS);
    let mut snapshots = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let (mut ws, _) = tokio_tungstenite::connect_async(server.stream_request()?)
            .await
            .with_context(|| format!("cannot connect to {url}"))?;
        // The first frame is the snapshot: the client is subscribed once it has it.
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str().starts_with(r#"{"type":"snapshot""#) => {}
            other => bail!("the first frame is no snapshot: {other:?}"),
        }
        let (tx, rx) = oneshot::channel::<()>();
        snapshots.push(rx);
        let counts = counts.clone();
        let last_frame = last_frame.clone();
        clients.push(tokio::spawn(async move {
            let _ = tx.send(());
            while let Some(Ok(msg)) = ws.next().await {
                if let Message::Text(t) = msg {
                    let now = Instant::now();
                    counts.bytes.fetch_add(t.len() as u64, Ordering::Relaxed);
                    if t.as_str().starts_with(r#"{"type":"snapshot""#) {
                        counts.resyncs.fetch_add(1, Ordering::Relaxed);
                    } else {
                        counts.frames.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Ok(mut l) = last_frame.lock() {
                        *l = Some(now);
                    }
                }
            }
        }));
    }
    for rx in snapshots {
        let _ = rx.await;
    }

    let (started_tx, started_rx) = oneshot::channel();
    let port = broker.port();
    let packs = reports(city, n);
    let publisher = tokio::spawn(async move {
        mqtt::publish_all(port, REPORTS, &[String::new()], packs, started_tx).await
    });
    let started = started_rx
        .await
        .context("the publisher stopped before its first publish")?;
    publisher.await.context("publisher task")??;

    // Wait for every frame, or for quiet after the engine has taken every report.
    let expected = (n * CLIENTS) as u64;
    let http = reqwest::Client::new();
    let mut last = (0, Instant::now());
    loop {
        let frames = counts.frames.load(Ordering::Relaxed);
        if frames >= expected {
            break;
        }
        if frames != last.0 {
            last = (frames, Instant::now());
        } else if last.1.elapsed() > QUIET {
            let health = server.get(&http, "/api/v1/health").await?;
            if health["events"].as_u64().unwrap_or(0) >= n as u64 {
                break;
            }
            if last.1.elapsed() > QUIET * 10 {
                bail!(
                    "the engine took {} of {n} reports, and no frame came for {:?}",
                    health["events"],
                    QUIET * 10
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let end = last_frame
        .lock()
        .ok()
        .and_then(|l| *l)
        .context("no frame received")?;
    for c in clients {
        c.abort();
    }
    let seconds = (end - started).as_secs_f64();
    let frames = counts.frames.load(Ordering::Relaxed);
    let resyncs = counts.resyncs.load(Ordering::Relaxed);
    let health = server.get(&http, "/api/v1/health").await?;
    Ok(Row::new(
        "ws-fanout",
        "WebSocket fan-out",
        format!("{CLIENTS} clients, {n} reports, SQLite + embedded broker"),
        (frames as f64 / seconds, "frames/s"),
        None,
        Target::Report,
        ctx.quick,
        json!({
            "clients": CLIENTS,
            "reports": n,
            "events_taken": health["events"],
            "incidents_opened": health["incidents_opened"],
            "frames_expected": expected,
            "frames": frames,
            "resync_snapshots": resyncs,
            "bytes": counts.bytes.load(Ordering::Relaxed),
            "seconds": seconds,
            "reports_per_s": n as f64 / seconds,
            "measured_as": "incident frames received by all clients / seconds from the first publish to the last frame; a client that falls behind gets a snapshot instead (counted as resync_snapshots, not as frames)",
        }),
    ))
}
