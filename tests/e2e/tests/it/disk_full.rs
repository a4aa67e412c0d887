//! The disk under the SQLite default fills up under load: ingest stops acknowledging (Mosquitto
//! keeps the reports), `/api/v1/health` answers 503 (the console shows "store degraded"), nothing
//! already stored is corrupted; once there is room again, every report is stored exactly once.
//!
//! The disk is a tmpfs of 3 MiB mounted for the test (root is needed, as in CI), grown to 64 MiB
//! afterwards.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;
use sqlx::Connection;

use e2e::{Broker, Dispecer, Mosquitto, MqttClient, TempDir};

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: std::path::PathBuf, size: &str) -> Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .context("mount")?;
        if !status.success() {
            bail!(
                "cannot mount a tmpfs at {} (the disk-full test needs root, as in CI)",
                dir.display()
            );
        }
        Ok(Tmpfs(dir))
    }

    fn grow(&self, size: &str) -> Result<()> {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()?;
        if !status.success() {
            bail!("cannot grow the tmpfs");
        }
        Ok(())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

async fn query(db: &str, sql: &str) -> Result<String> {
    let mut conn = sqlx::SqliteConnection::connect(db).await?;
    let v: String = sqlx::query_scalar(sql).fetch_one(&mut conn).await?;
    conn.close().await?;
    Ok(v)
}

async fn stored(db: &str) -> Result<i64> {
    Ok(query(
        db,
        "SELECT CAST(count(*) AS TEXT) FROM events WHERE id LIKE 'citizen:full-%'",
    )
    .await?
    .parse()?)
}

async fn health(server: &Dispecer) -> Result<u16> {
    Ok(reqwest::get(format!("{}/api/v1/health", server.http))
        .await?
        .status()
        .as_u16())
}

#[tokio::test(flavor = "multi_thread")]
async fn full_disk_stops_ingest_raises_the_alarm_and_loses_nothing() -> Result<()> {
    let dir = TempDir::new("dispecer-disk-full");
    let disk = Tmpfs::mount(dir.path().join("disk"), "3m")?;
    let db = format!("sqlite://{}/d.sqlite", disk.0.display());
    let mosquitto = Mosquitto::start().await?;
    let server = Dispecer::start(&dir, &db, &Broker::External(mosquitto.url())).await?;
    assert_eq!(health(&server).await?, 200);
    let mut mqtt = MqttClient::connect(mosquitto.port(), &[]).await?;

    // Reports of about 4 kB each, at spots 100 m apart so that each opens its own incident,
    // until the disk is full (3 MiB holds a few hundred), and some more after.
    let report = |i: usize| {
        json!({"type": "Feature",
            "geometry": {"type": "Point",
                "coordinates": [25.55 + (i % 50) as f64 * 0.0013, 45.62 + (i / 50) as f64 * 0.0009]},
            "properties": {"id": format!("full-{i}"), "category": "pothole",
                "description": format!("{i} {}", "Groapă adâncă pe carosabil. ".repeat(130)),
                "reported_at": chrono::Utc::now().to_rfc3339()}})
        .to_string()
    };
    let mut published = 0;
    let mut degraded_at = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while published < 1500 {
        mqtt.publish("dispecer/v1/in/citizen/reports", report(published))
            .await?;
        published += 1;
        if published % 25 == 0 && degraded_at.is_none() && health(&server).await? == 503 {
            degraded_at = Some(published);
        }
        if degraded_at.is_some_and(|at| published >= at + 50) {
            break;
        }
        assert!(Instant::now() < deadline, "the disk never filled up");
    }
    let degraded_at = degraded_at.context("health never reported the full disk")?;
    // Ingest has stopped: what is stored does not grow while the disk is full.
    let before = stored(&db).await?;
    assert!(
        before > 0 && (before as usize) < published,
        "{before} of {published}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        stored(&db).await?,
        before,
        "nothing is stored while the disk is full"
    );
    assert_eq!(health(&server).await?, 503);
    assert_eq!(query(&db, "PRAGMA quick_check").await?, "ok");
    eprintln!(
        "disk full after about {degraded_at} reports; {before} stored, {published} published"
    );

    // Room again: ingest resumes by itself, and every report is there exactly once.
    disk.grow("64m")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored(&db).await? < published as i64 {
        if Instant::now() > deadline {
            let log = server.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            bail!(
                "only {} of {published} reports stored after the disk grew; dispecer log:\n{}",
                stored(&db).await?,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(stored(&db).await?, published as i64);
    let deadline = Instant::now() + Duration::from_secs(10);
    while health(&server).await? != 200 {
        assert!(Instant::now() < deadline, "health stayed degraded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, _, list) = server.get("/api/v1/incidents?limit=2000").await?;
    let reports: u64 = list["features"]
        .as_array()
        .context("features")?
        .iter()
        .filter_map(|f| f["properties"]["report_count"].as_u64())
        .sum();
    assert_eq!(reports, published as u64, "every report counted once");
    assert_eq!(query(&db, "PRAGMA integrity_check").await?, "ok");
    server.stop();
    drop(disk);
    Ok(())
}
