//! Faults that must lose nothing: `dispecer` killed with SIGKILL while reports keep arriving on a
//! persistent Mosquitto; after the restart every report the broker acknowledged to its publisher
//! is stored exactly once.

use std::time::Duration;

use anyhow::{bail, Result};

use e2e::{citizen_report, Broker, Dispecer, Mosquitto, MqttClient, TempDir};

const REPORTS: usize = 400;
const KILL_AFTER: usize = 150;
const RESTART_AFTER: usize = 300;

async fn stored_events(db: &std::path::Path) -> Result<i64> {
    let url = format!("sqlite://{}?mode=ro", db.display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE id LIKE 'citizen:kill-%'")
        .fetch_one(&mut conn)
        .await?;
    Ok(n)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_under_load_loses_nothing_and_stores_nothing_twice() -> Result<()> {
    let dir = TempDir::new("dispecer-kill");
    let db = dir.path().join("d.sqlite");
    let database_url = format!("sqlite://{}", db.display());
    let mosquitto = Mosquitto::start().await?;
    let broker = Broker::External(mosquitto.url());
    let mut server = Some(Dispecer::start(&dir, &database_url, &broker).await?);
    let port = server.as_ref().map(|s| s.mqtt_port).unwrap_or_default();
    let mut publisher = MqttClient::connect(port, &[]).await?;
    let mut acknowledged = 0;
    for i in 0..REPORTS {
        if i == KILL_AFTER {
            // Killed mid-stream: whatever it had received but not committed was never acknowledged.
            if let Some(s) = server.take() {
                s.kill();
            }
        }
        if i == RESTART_AFTER {
            server = Some(Dispecer::start(&dir, &database_url, &broker).await?);
        }
        // Spread over Brașov's centre, 20 categories of potholes and lights: many incidents.
        let lon = 25.57 + (i % 20) as f64 * 0.002;
        let lat = 45.63 + (i / 20) as f64 * 0.001;
        let category = if i % 2 == 0 {
            "pothole"
        } else {
            "street_light_out"
        };
        publisher
            .publish(
                "dispecer/v1/in/citizen/reports",
                citizen_report(&format!("kill-{i}"), category, lon, lat),
            )
            .await?;
        acknowledged += 1;
    }
    assert_eq!(
        acknowledged, REPORTS,
        "the broker acknowledged every report to its publisher"
    );
    // Everything the broker acknowledged is eventually stored, once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let n = stored_events(&db).await?;
        if n == REPORTS as i64 {
            break;
        }
        if n > REPORTS as i64 {
            bail!("{n} events stored for {REPORTS} reports: something was stored twice");
        }
        if tokio::time::Instant::now() > deadline {
            bail!("only {n} of {REPORTS} reports stored after the restart");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let server = server.take().ok_or_else(|| anyhow::anyhow!("server"))?;
    let (_, _, health) = server.get("/api/v1/health").await?;
    eprintln!(
        "after SIGKILL and restart: {REPORTS} of {REPORTS} stored exactly once; health {health}"
    );
    server.stop();
    assert_eq!(stored_events(&db).await?, REPORTS as i64);
    Ok(())
}

/// Mosquitto, configured as Dispecer documents (persistence, autosave on every change, no queue
/// cap), is restarted while reports arrive: every report it acknowledged is stored once.
///
/// (A SIGKILL of Mosquitto itself can lose the last message it acknowledged before its next
/// autosave: its acknowledgement does not mean "on disk". Measured here: 1 of 400 when the kill
/// follows an acknowledgement at once. That is the broker's limit, stated in the README.)
#[tokio::test(flavor = "multi_thread")]
async fn broker_restart_under_load_loses_nothing() -> Result<()> {
    let dir = TempDir::new("dispecer-broker-crash");
    let db = dir.path().join("d.sqlite");
    let mut mosquitto = Mosquitto::start().await?;
    let server = Dispecer::start(
        &dir,
        &format!("sqlite://{}", db.display()),
        &Broker::External(mosquitto.url()),
    )
    .await?;
    // Dispecer's session (its subscriptions) must be on disk before the broker may lose memory.
    mosquitto.saved().await?;
    let mut publisher = MqttClient::connect(server.mqtt_port, &[]).await?;
    for i in 0..REPORTS {
        if i == KILL_AFTER {
            mosquitto.restart().await?;
        }
        let lon = 25.57 + (i % 20) as f64 * 0.002;
        let lat = 45.63 + (i / 20) as f64 * 0.001;
        publisher
            .publish(
                "dispecer/v1/in/citizen/reports",
                citizen_report(&format!("kill-{i}"), "pothole", lon, lat),
            )
            .await?;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let n = stored_events(&db).await?;
        if n == REPORTS as i64 {
            break;
        }
        if n > REPORTS as i64 {
            bail!("{n} events stored for {REPORTS} reports");
        }
        if tokio::time::Instant::now() > deadline {
            let url = format!("sqlite://{}?mode=ro", db.display());
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await?;
            let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM events")
                .fetch_all(&mut conn)
                .await?;
            let missing: Vec<usize> = (0..REPORTS)
                .filter(|i| !ids.contains(&format!("citizen:kill-{i}")))
                .collect();
            let log: String = server
                .log()
                .lines()
                .filter(|l| l.contains("mqtt") || l.contains("WARN") || l.contains("ERROR"))
                .collect::<Vec<_>>()
                .join("\n");
            bail!("only {n} of {REPORTS} acknowledged reports stored after the broker restart; missing {missing:?}\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop();
    Ok(())
}
