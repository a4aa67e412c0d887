//! A WebSocket client that stops reading while the city is busy: the server's memory stays
//! bounded, the client is let go (after the send timeout), and a client that reads receives
//! every change.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use e2e::{free_port, Broker, Dispecer, MqttClient, TempDir};

const REPORTS: usize = 1500;

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stops_reading_costs_bounded_memory_and_nobody_else() -> Result<()> {
    let dir = TempDir::new("dispecer-slow-client");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    let server = Dispecer::start(&dir, &db, &Broker::Embedded(free_port())).await?;
    let url = format!(
        "{}/api/v1/stream",
        server.http.replacen("http://", "ws://", 1)
    );
    // Connected with a small receive buffer, then never read again: the buffers fill and the
    // server's sends wait.
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let addr: std::net::SocketAddr = server.http.trim_start_matches("http://").parse()?;
    let tcp = socket.connect(addr).await?;
    let mut request = url.as_str().into_client_request()?;
    request
        .headers_mut()
        .insert("cookie", server.staff().await?.cookie.parse()?);
    let (stuck, _) = tokio_tungstenite::client_async(request, tcp).await?;
    let (mut reader, first) = server.stream().await?;
    assert_eq!(first["type"], "snapshot");
    let rss_before = server.rss_bytes()?;

    // About 5 kB per incident frame; a lagging client gets a snapshot of every open incident,
    // which grows to megabytes: far more than the stuck client's socket buffers hold.
    let mut mqtt = MqttClient::connect(server.mqtt_port, &[]).await?;
    let reading = tokio::spawn(async move {
        let mut seen = HashSet::new();
        while seen.len() < REPORTS {
            let frame = reader.next_frame().await?;
            match frame["type"].as_str() {
                Some("incident") => {
                    if let Some(id) = frame["incident"]["id"].as_str() {
                        seen.insert(id.to_owned());
                    }
                }
                Some("snapshot") => {
                    for f in frame["incidents"]["features"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        if let Some(id) = f["id"].as_str() {
                            seen.insert(id.to_owned());
                        }
                    }
                }
                _ => {}
            }
        }
        anyhow::Ok(seen.len())
    });
    for i in 0..REPORTS {
        let report = json!({"type": "Feature",
            "geometry": {"type": "Point",
                "coordinates": [25.55 + (i % 40) as f64 * 0.0013, 45.62 + (i / 40) as f64 * 0.0009]},
            "properties": {"id": format!("slow-{i}"), "category": "pothole",
                "description": format!("{i} {}", "Groapă adâncă pe carosabil. ".repeat(130)),
                "reported_at": chrono::Utc::now().to_rfc3339()}});
        mqtt.publish("dispecer/v1/in/citizen/reports", report.to_string())
            .await?;
    }
    let seen = tokio::time::timeout(Duration::from_secs(120), reading)
        .await
        .context("the reading client did not see every incident within 120 s")???;
    assert_eq!(seen, REPORTS, "the reading client saw every incident");

    // The stuck client is let go: once its buffered frames are drained, the stream ends.
    let started = Instant::now();
    let mut stuck = stuck;
    tokio::time::sleep(Duration::from_secs(12)).await;
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(msg) = stuck.next().await {
            if msg.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the server still holds the stuck client {:?} later",
        started.elapsed()
    );
    let rss_after = server.rss_bytes()?;
    let growth = rss_after.saturating_sub(rss_before);
    eprintln!(
        "slow client: RSS {} MB → {} MB",
        rss_before / 1_000_000,
        rss_after / 1_000_000
    );
    assert!(
        growth < 150_000_000,
        "memory grew by {} MB with a client that does not read",
        growth / 1_000_000
    );
    server.stop();
    Ok(())
}
