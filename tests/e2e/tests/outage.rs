//! The database stopped for 30 seconds under load and started again: ingest waits (the broker
//! keeps the unacknowledged reports), `/api/v1/health` says the store is unavailable meanwhile,
//! and afterwards every report is stored exactly once.
//!
//! Its own test binary: it stops the shared test TimescaleDB server, so nothing else may run
//! beside it (cargo runs test binaries one after another).

#![allow(clippy::unwrap_used)] // tests: a failure should stop the test loudly

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use e2e::{
    citizen_report, repo_root, Broker, Dispecer, Mosquitto, MqttClient, PgDatabase, TempDir,
};

const REPORTS: usize = 120;
const OUTAGE_AT: usize = 40;
const OUTAGE: Duration = Duration::from_secs(30);

fn timescaledb(command: &str) -> Result<()> {
    let status = Command::new(repo_root().join("scripts/timescaledb.sh"))
        .arg(command)
        .status()?;
    if !status.success() {
        bail!("scripts/timescaledb.sh {command} failed");
    }
    Ok(())
}

/// Starts the server again even if the test fails half-way, so later tests find it running.
struct RestartOnDrop;

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        let _ = timescaledb("start");
    }
}

async fn stored(url: &str) -> Result<i64> {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url).await?;
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM events WHERE id LIKE 'citizen:outage-%'")
            .fetch_one(&mut conn)
            .await?,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn database_outage_under_load_loses_nothing() -> Result<()> {
    let dir = TempDir::new("dispecer-outage");
    let pg = PgDatabase::create().await?;
    let mosquitto = Mosquitto::start().await?;
    let server = Dispecer::start(&dir, &pg.url, &Broker::External(mosquitto.url())).await?;
    let mut publisher = MqttClient::connect(server.mqtt_port, &[]).await?;
    let guard = RestartOnDrop;
    let mut saw_degraded = false;
    for i in 0..REPORTS {
        if i == OUTAGE_AT {
            timescaledb("stop")?;
        }
        let lon = 25.57 + (i % 20) as f64 * 0.002;
        let lat = 45.63 + (i / 20) as f64 * 0.001;
        publisher
            .publish(
                "dispecer/v1/in/citizen/reports",
                citizen_report(&format!("outage-{i}"), "pothole", lon, lat),
            )
            .await
            .context("the broker keeps accepting reports while the database is down")?;
    }
    // While it is down, the API says so.
    let down_until = tokio::time::Instant::now() + OUTAGE;
    while tokio::time::Instant::now() < down_until {
        let (status, ctype, _) = server.get_anonymous("/api/v1/health").await?;
        if status == 503 {
            assert_eq!(ctype, "application/problem+json");
            saw_degraded = true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        saw_degraded,
        "health must report the store unavailable during the outage"
    );
    timescaledb("start")?;
    drop(guard);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let n = stored(&pg.url).await?;
        if n == REPORTS as i64 {
            break;
        }
        if n > REPORTS as i64 {
            bail!("{n} stored for {REPORTS} reports");
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "only {n} of {REPORTS} stored after the database came back:\n{}",
                server.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _, _) = server.get_anonymous("/api/v1/health").await?;
    assert_eq!(status, 200, "healthy again");
    server.stop();
    pg.drop_database().await
}
