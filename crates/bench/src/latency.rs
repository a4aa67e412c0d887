//! Report → dashboard latency: a citizen report published (QoS 1) until its incident's frame
//! reaches a WebSocket client of `GET /api/v1/stream`, while traffic counters publish
//! [`BACKGROUND_READINGS_PER_S`] readings/s to the same `dispecer` (SQLite in a temporary
//! folder, embedded broker). The limit is the one-hop publish→subscribe latency of the same
//! broker under the same load, measured in the same loop: each probe publishes one message on a
//! topic only a bench subscriber follows, then the report, both timed from their publish call.
//! Target (issue 8): p99 at most 25 ms and at most 10× the broker hop's p99.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use geo::{Distance, Haversine, Point};
use model::City;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::json;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

use crate::ingest::Setup;
use crate::mqtt::options;
use crate::report::{Row, Target};
use crate::services::{free_port, Broker, Dispecer, TempDir};

/// Readings per second in the background (SenML packs of three readings).
pub const BACKGROUND_READINGS_PER_S: usize = 10_000;
/// The target: p99 at most this many milliseconds…
pub const TARGET_P99_MS: f64 = 25.0;
/// …and at most this many times the broker hop's p99.
pub const TARGET_RATIO: f64 = 10.0;
/// Time between probes.
const PROBE_EVERY: Duration = Duration::from_millis(40);
/// The citizen reports topic.
const REPORTS: &str = "dispecer/v1/in/citizen/reports";
/// The one-hop probe topic: outside what Dispecer subscribes to.
const HOP: &str = "benchlatency/v1/hop";
/// Marks a probe report's description; its number follows.
const MARK: &str = "bench-latency-";

/// `n` places in the municipality at least 150 m apart, so that every probe report (a pothole,
/// merged within 50 m) opens an incident of its own and its frame carries its description.
fn places(city: &City, n: usize) -> Result<Vec<Point>> {
    let mut out: Vec<Point> = Vec::with_capacity(n);
    for (p, _) in crate::fusion::places(city, n * 4, 11) {
        if out.iter().all(|q| Haversine.distance(*q, p) > 150.0) {
            out.push(p);
            if out.len() == n {
                return Ok(out);
            }
        }
    }
    bail!("the city has no room for {n} places 150 m apart")
}

/// `p`-th percentile (0–100) of sorted `xs`, nearest rank.
fn percentile(xs: &[f64], p: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * xs.len() as f64).ceil() as usize;
    xs[rank.clamp(1, xs.len()) - 1]
}

/// Publishes SenML packs at [`BACKGROUND_READINGS_PER_S`] until `stop`; counts them.
async fn background(
    port: u16,
    sensors: Vec<String>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> Result<()> {
    let (opts, network) = options(
        &format!("bench-latency-load-{}", uuid::Uuid::now_v7().simple()),
        port,
    );
    let (client, mut eventloop) = AsyncClient::new(opts, 1024);
    eventloop.set_network_options(network);
    let driver = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(anyhow::Error::new(e).context("background publisher")),
            }
        }
    });
    let packs_per_s = BACKGROUND_READINGS_PER_S / 3;
    let tick = Duration::from_millis(10);
    let per_tick = packs_per_s as f64 * tick.as_secs_f64();
    let first_time = chrono::Utc::now().timestamp() - 86_400;
    let started = Instant::now();
    let mut i = 0usize;
    let mut interval = tokio::time::interval(tick);
    while !stop.load(Ordering::Relaxed) {
        interval.tick().await;
        // Catch up to the schedule: the rate holds even when a tick comes late.
        let due = (started.elapsed().as_secs_f64() / tick.as_secs_f64() * per_tick) as usize;
        for p in crate::mqtt::packs(&sensors, i..due.max(i), first_time) {
            let (topic, payload) = p.into_parts(&sensors, crate::mqtt::INGEST_PREFIX);
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .context("background publish")?;
            sent.fetch_add(3, Ordering::Relaxed);
        }
        i = due.max(i);
        if driver.is_finished() {
            break;
        }
    }
    let _ = client.disconnect().await;
    match tokio::time::timeout(Duration::from_secs(5), driver).await {
        Ok(Ok(r)) => r,
        _ => Ok(()),
    }
}

/// The row.
pub async fn run(ctx: &Setup, city: &City) -> Result<Row> {
    let dir = TempDir::new("dispecer-bench-latency")?;
    let broker = Broker::Embedded(free_port()?);
    let db = format!("sqlite://{}", dir.path().join("bench.sqlite").display());
    let server = Dispecer::start(&ctx.dispecer, &ctx.city, &dir, &db, &broker).await?;
    let out = measure(ctx, city, &server, broker.port()).await;
    let out = out.map_err(|e| e.context(format!("dispecer log:\n{}", server.log_tail())));
    let log = ctx.logs.as_ref().map(|d| d.join("latency.log"));
    server.stop(log.as_deref())?;
    out
}

async fn measure(ctx: &Setup, city: &City, server: &Dispecer, port: u16) -> Result<Row> {
    let probes = if ctx.quick { 25 } else { 250 };
    let warm_up = if ctx.quick {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(3)
    };
    let spots = places(city, probes)?;
    let sensors: Vec<String> = city.sensors.iter().map(|s| s.id.to_string()).collect();
    if sensors.is_empty() {
        bail!("the city has no sensor sites for the background load");
    }

    // The dashboard: one WebSocket client noting when each probe's incident frame arrives.
    let url = format!("{}/api/v1/stream", server.http.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(server.stream_request()?)
        .await
        .with_context(|| format!("cannot connect to {url}"))?;
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.as_str().starts_with(r#"{"type":"snapshot""#) => {}
        other => bail!("the first frame is no snapshot: {other:?}"),
    }
    let frames: Arc<Mutex<HashMap<usize, Instant>>> = Arc::default();
    let resyncs = Arc::new(AtomicU64::new(0));
    let dashboard = {
        let frames = frames.clone();
        let resyncs = resyncs.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(t) = msg else { continue };
                let now = Instant::now();
                let text = t.as_str();
                if text.starts_with(r#"{"type":"snapshot""#) {
                    resyncs.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if let Some(at) = text.find(MARK) {
                    let digits: String = text[at + MARK.len()..]
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    if let (Ok(i), Ok(mut f)) = (digits.parse::<usize>(), frames.lock()) {
                        f.entry(i).or_insert(now);
                    }
                }
            }
        })
    };

    // The broker hop: a subscriber on the probe topic noting when each probe arrives.
    let hops: Arc<Mutex<HashMap<usize, Instant>>> = Arc::default();
    let (opts, network) = options(
        &format!("bench-latency-sub-{}", uuid::Uuid::now_v7().simple()),
        port,
    );
    let (sub, mut sub_loop) = AsyncClient::new(opts, 64);
    sub_loop.set_network_options(network);
    let (subscribed_tx, subscribed) = oneshot::channel();
    let hop_listener = {
        let hops = hops.clone();
        tokio::spawn(async move {
            let mut subscribed_tx = Some(subscribed_tx);
            loop {
                match sub_loop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = sub.try_subscribe(HOP, QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let now = Instant::now();
                        if let (Ok(i), Ok(mut h)) = (
                            String::from_utf8_lossy(&p.payload).parse::<usize>(),
                            hops.lock(),
                        ) {
                            h.entry(i).or_insert(now);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        })
    };
    tokio::time::timeout(Duration::from_secs(10), subscribed)
        .await
        .context("no SubAck for the probe topic within 10 s")?
        .context("probe subscriber closed")?;

    // The background load, warmed up before the first probe.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let load = tokio::spawn(background(port, sensors, stop.clone(), sent.clone()));
    tokio::time::sleep(warm_up).await;

    // The probes.
    let (opts, network) = options(
        &format!("bench-latency-probe-{}", uuid::Uuid::now_v7().simple()),
        port,
    );
    let (probe, mut probe_loop) = AsyncClient::new(opts, 64);
    probe_loop.set_network_options(network);
    let probe_driver = tokio::spawn(async move {
        while let Ok(e) = probe_loop.poll().await {
            if matches!(e, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                break;
            }
        }
    });
    let load_started = (Instant::now(), sent.load(Ordering::Relaxed));
    let reported_at = chrono::Utc::now().to_rfc3339();
    let mut published: Vec<(Instant, Instant)> = Vec::with_capacity(probes);
    let mut interval = tokio::time::interval(PROBE_EVERY);
    for (i, p) in spots.iter().enumerate() {
        interval.tick().await;
        let hop_at = Instant::now();
        probe
            .publish(HOP, QoS::AtLeastOnce, false, i.to_string().into_bytes())
            .await
            .context("probe publish")?;
        let report_at = Instant::now();
        let payload = format!(
            r#"{{"type":"Feature","geometry":{{"type":"Point","coordinates":[{},{}]}},"properties":{{"id":"bench-probe-{}-{i}","category":"pothole","description":"{MARK}{i}","reported_at":"{reported_at}"}}}}"#,
            p.x(),
            p.y(),
            uuid::Uuid::now_v7().simple()
        );
        probe
            .publish(REPORTS, QoS::AtLeastOnce, false, payload.into_bytes())
            .await
            .context("report publish")?;
        published.push((hop_at, report_at));
    }
    // Every frame, or give up after 30 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let have = frames.lock().map(|f| f.len()).unwrap_or(0);
        let hop_have = hops.lock().map(|h| h.len()).unwrap_or(0);
        if (have >= probes && hop_have >= probes) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let load_elapsed = load_started.0.elapsed().as_secs_f64();
    let load_readings = sent.load(Ordering::Relaxed) - load_started.1;
    stop.store(true, Ordering::Relaxed);
    load.await.context("background task")??;
    let _ = probe.disconnect().await;
    probe_driver.abort();
    dashboard.abort();
    hop_listener.abort();

    let frames = frames.lock().map(|f| f.clone()).unwrap_or_default();
    let hops = hops.lock().map(|h| h.clone()).unwrap_or_default();
    let ms = |from: Instant, to: Instant| (to - from).as_secs_f64() * 1e3;
    let mut report_ms: Vec<f64> = Vec::new();
    let mut hop_ms: Vec<f64> = Vec::new();
    for (i, (hop_at, report_at)) in published.iter().enumerate() {
        if let Some(t) = frames.get(&i) {
            report_ms.push(ms(*report_at, *t));
        }
        if let Some(t) = hops.get(&i) {
            hop_ms.push(ms(*hop_at, *t));
        }
    }
    if report_ms.len() < probes || hop_ms.len() < probes {
        bail!(
            "within 30 s of the last probe: {} of {probes} incident frames, {} of {probes} probe messages",
            report_ms.len(),
            hop_ms.len()
        );
    }
    report_ms.sort_by(f64::total_cmp);
    hop_ms.sort_by(f64::total_cmp);
    let p99 = percentile(&report_ms, 99.0);
    let hop_p99 = percentile(&hop_ms, 99.0);
    let background_rate = load_readings as f64 / load_elapsed;
    let http = reqwest::Client::new();
    let health = server.get(&http, "/api/v1/health").await?;
    Ok(Row::new(
        "latency",
        "report → dashboard latency (p99)",
        format!(
            "{probes} reports, {} readings/s behind, SQLite + embedded broker",
            crate::report::thousands(background_rate)
        ),
        (p99, "ms"),
        Some((hop_p99, "broker hop p99")),
        Target::AtMostAndRatioAtMost {
            value: TARGET_P99_MS,
            ratio: TARGET_RATIO,
        },
        ctx.quick,
        json!({
            "probes": probes,
            "report_ms": {
                "p50": percentile(&report_ms, 50.0),
                "p90": percentile(&report_ms, 90.0),
                "p99": p99,
                "max": report_ms.last(),
            },
            "broker_hop_ms": {
                "p50": percentile(&hop_ms, 50.0),
                "p90": percentile(&hop_ms, 90.0),
                "p99": hop_p99,
                "max": hop_ms.last(),
            },
            "background_readings_per_s_target": BACKGROUND_READINGS_PER_S,
            "background_readings_per_s": background_rate,
            "resync_snapshots": resyncs.load(Ordering::Relaxed),
            "events_taken": health["events"],
            "measured_as": "a citizen report published at QoS 1 (each at its own place, opening an incident) until the WebSocket client of /api/v1/stream has the incident's frame; one probe every 40 ms",
            "limit_as": "a QoS 1 message published on a topic only a bench subscriber follows, just before each report, until that subscriber has it: the same broker, the same load, the same moment",
        }),
    ))
}
