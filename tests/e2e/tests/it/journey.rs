//! The foundation journey: a citizen report published over MQTT becomes a stored, routed incident
//! that the API lists, the WebSocket pushes and the agency receives; redelivery is harmless; a bad
//! payload becomes a dead letter; a restart loses nothing, neither in the API nor in the spatial
//! index. Run against both stores (SQLite, TimescaleDB) and both brokers (embedded, Mosquitto).

use std::time::Instant;

use anyhow::Result;
use serde_json::Value;

use e2e::{
    citizen_report, free_port, Broker, Dispecer, Mosquitto, MqttClient, PgDatabase, TempDir,
};

const REPORTS: &str = "dispecer/v1/in/citizen/reports";
const AGENCY_TOPICS: &str = "dispecer/v1/out/agencies/+/incidents";

/// Piața Sfatului, in Centrul Istoric.
const SFATULUI: (f64, f64) = (25.5887, 45.6419);

#[derive(Clone, Copy, Debug)]
enum StoreKind {
    Sqlite,
    Timescale,
}

#[derive(Clone, Copy, Debug)]
enum BrokerKind {
    Embedded,
    Mosquitto,
}

fn incident_id(feature: &Value) -> String {
    feature["id"].as_str().unwrap_or_default().to_owned()
}

async fn journey(store: StoreKind, broker_kind: BrokerKind) -> Result<()> {
    let dir = TempDir::new("dispecer-journey");
    let pg = match store {
        StoreKind::Sqlite => None,
        StoreKind::Timescale => Some(PgDatabase::create().await?),
    };
    let database_url = match &pg {
        Some(pg) => pg.url.clone(),
        None => format!("sqlite://{}/dispecer.sqlite", dir.path().display()),
    };
    let mosquitto = match broker_kind {
        BrokerKind::Mosquitto => Some(Mosquitto::start().await?),
        BrokerKind::Embedded => None,
    };
    let broker = match &mosquitto {
        Some(m) => Broker::External(m.url()),
        None => Broker::Embedded(free_port()),
    };

    let server = Dispecer::start(&dir, &database_url, &broker).await?;
    let (mut stream, snapshot) = server.stream().await?;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(
        snapshot["incidents"]["features"].as_array().map(Vec::len),
        Some(0)
    );
    let mut mqtt = MqttClient::connect(server.mqtt_port, &[AGENCY_TOPICS]).await?;

    // 1–2. A pothole reported at Piața Sfatului.
    let report_id = format!("e2e-{}", uuid::Uuid::now_v7());
    let report = citizen_report(&report_id, "pothole", SFATULUI.0, SFATULUI.1);
    let sent = Instant::now();
    mqtt.publish(REPORTS, report.clone()).await?;

    // 4. Pushed on the WebSocket…
    let frame = stream
        .next_incident(|i| i["properties"]["category"] == "pothole")
        .await?;
    let ws_latency = sent.elapsed();
    assert_eq!(frame["change"], "opened");
    let incident = frame["incident"].clone();
    let id = incident_id(&incident);
    let props = &incident["properties"];
    assert_eq!(props["status"], "assigned");
    assert_eq!(props["district"], "centrul-istoric");
    assert_eq!(props["report_count"], 1);
    // …routed to street maintenance because its jurisdiction (the whole city) contains the place,
    // with the city hall dispatch as the alternative; the resort's own agency does not cover it.
    assert_eq!(props["agency"], "domeniu-public", "{props}");
    assert_eq!(props["routing"]["rule"], "jurisdiction");
    assert_eq!(props["routing"]["area"], "city");
    assert_eq!(
        props["routing"]["alternatives"][0]["agency"],
        "city-dispatch"
    );
    assert_eq!(
        incident["geometry"]["coordinates"][0].as_f64(),
        Some(SFATULUI.0)
    );
    eprintln!("{store:?}+{broker_kind:?}: report → WebSocket frame in {ws_latency:?}");

    // …published to the agency…
    let (topic, msg) = mqtt
        .next_matching(|_, v| v["incident"]["id"] == id.as_str())
        .await?;
    assert_eq!(topic, "dispecer/v1/out/agencies/domeniu-public/incidents");
    assert_eq!(msg["change"], "opened");

    // …and readable through the API (3: it was stored before all this).
    let (status, ctype, list) = server.get("/api/v1/incidents").await?;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("application/geo+json"), "{ctype}");
    assert_eq!(list["type"], "FeatureCollection");
    assert_eq!(list["features"].as_array().map(Vec::len), Some(1));
    let (status, _, one) = server.get(&format!("/api/v1/incidents/{id}")).await?;
    assert_eq!(status, 200);
    assert_eq!(one["properties"]["agency"], "domeniu-public");
    for (query, expected) in [
        ("bbox=25.58,45.63,25.60,45.65", 1),
        ("bbox=25.50,45.55,25.52,45.57", 0),
        ("status=assigned", 1),
        ("status=resolved", 0),
        ("status=open", 1),
        ("category=pothole", 1),
        ("category=gas_smell", 0),
        ("agency=domeniu-public", 1),
        ("agency=apa-brasov", 0),
    ] {
        let (status, _, body) = server.get(&format!("/api/v1/incidents?{query}")).await?;
        assert_eq!(status, 200, "{query}: {body}");
        assert_eq!(
            body["features"].as_array().map(Vec::len),
            Some(expected),
            "{query}"
        );
    }
    for bad in [
        "bbox=1,2,3",
        "status=lost",
        "category=volcano",
        "limit=0",
        "colour=red",
    ] {
        let (status, ctype, body) = server.get(&format!("/api/v1/incidents?{bad}")).await?;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(ctype, "application/problem+json", "{bad}");
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{bad}: {body}"
        );
    }
    let (status, ctype, _) = server.get("/api/v1/incidents/no-such-incident").await?;
    assert_eq!((status, ctype.as_str()), (404, "application/problem+json"));

    // 5. The same report delivered again: no new incident, no new report.
    mqtt.publish(REPORTS, report.clone()).await?;
    // A bad payload: a dead letter, not a crash, and the next message still flows.
    mqtt.publish(REPORTS, r#"{"type":"Feature","geometry":{"type":"Point","coordinates":[25.6,45.6]},"properties":{"id":"x","category":"volcano","reported_at":"2026-01-01T00:00:00Z"}}"#).await?;
    mqtt.publish(REPORTS, "not json at all").await?;
    // A marker report elsewhere: when it arrives, everything before it was processed (one
    // ordered ingest stream).
    let marker_id = format!("e2e-marker-{}", uuid::Uuid::now_v7());
    mqtt.publish(
        REPORTS,
        citizen_report(&marker_id, "abandoned_vehicle", 25.5875, 45.6430),
    )
    .await?;
    let marker = stream
        .next_incident(|i| i["properties"]["category"] == "abandoned_vehicle")
        .await?;
    // Routed by district: the southern local police sector covers Centrul Istoric.
    assert_eq!(
        marker["incident"]["properties"]["agency"],
        "politia-locala-sud"
    );
    assert_eq!(
        marker["incident"]["properties"]["routing"]["area"],
        "centrul-istoric"
    );
    let (_, _, list) = server.get("/api/v1/incidents").await?;
    assert_eq!(
        list["features"].as_array().map(Vec::len),
        Some(2),
        "redelivery must not open an incident"
    );
    let (_, _, one) = server.get(&format!("/api/v1/incidents/{id}")).await?;
    assert_eq!(
        one["properties"]["report_count"], 1,
        "redelivery must not count as a report"
    );
    let (_, _, health) = server.get("/api/v1/health").await?;
    assert_eq!(health["duplicates"], 1, "{health}");
    let (status, _, letters) = server.get("/api/v1/dead-letters").await?;
    assert_eq!(status, 200);
    let reasons: Vec<&str> = letters["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["reason"].as_str())
        .collect();
    assert_eq!(reasons.len(), 2, "{letters}");
    assert!(reasons.iter().any(|r| r.contains("volcano")), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("not valid JSON")),
        "{reasons:?}"
    );

    // A utility event (an outage area) opens an incident for the water company.
    let outage = serde_json::json!({"type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [[[25.62, 45.65], [25.63, 45.65], [25.63, 45.656], [25.62, 45.656], [25.62, 45.65]]]},
        "properties": {"id": "avarie-1", "kind": "fault", "category": "water_leak", "description": "Avarie conductă"}});
    mqtt.publish(
        "dispecer/v1/in/utilities/apa-brasov/events",
        outage.to_string(),
    )
    .await?;
    let water = stream
        .next_incident(|i| i["properties"]["category"] == "water_leak")
        .await?;
    assert_eq!(water["incident"]["properties"]["agency"], "apa-brasov");
    let water_id = incident_id(&water["incident"]);
    // The utility updates its notice (same id): the same incident changes, no new report.
    let mut update = outage.clone();
    update["properties"]["description"] = "Avarie conductă, echipă la fața locului".into();
    mqtt.publish(
        "dispecer/v1/in/utilities/apa-brasov/events",
        update.to_string(),
    )
    .await?;
    let updated = stream
        .next_incident(|i| i["id"] == water_id.as_str())
        .await?;
    assert_eq!(updated["change"], "updated");
    assert_eq!(
        updated["incident"]["properties"]["description"],
        "Avarie conductă, echipă la fața locului"
    );
    assert_eq!(updated["incident"]["properties"]["report_count"], 1);
    // …then says it is restored: the incident is resolved.
    let mut restored = outage.clone();
    restored["properties"]["kind"] = "restored".into();
    mqtt.publish(
        "dispecer/v1/in/utilities/apa-brasov/events",
        restored.to_string(),
    )
    .await?;
    let resolved = stream
        .next_incident(|i| i["id"] == water_id.as_str())
        .await?;
    assert_eq!(resolved["incident"]["properties"]["status"], "resolved");
    // A "restored" for something nobody follows is a dead letter with the reason.
    let mut unknown = restored.clone();
    unknown["properties"]["id"] = "avarie-necunoscuta".into();
    mqtt.publish(
        "dispecer/v1/in/utilities/apa-brasov/events",
        unknown.to_string(),
    )
    .await?;
    // Wait until it is refused before stopping (with the embedded broker, an unacknowledged
    // message dies with the process).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (_, _, letters) = server.get("/api/v1/dead-letters").await?;
        if letters.to_string().contains("avarie-necunoscuta") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the unknown restored notice was not refused: {letters}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }

    // 6. Stop and start again: the incident is still there…
    drop(stream);
    let log = server.stop();
    assert!(log.contains("stopped"), "graceful stop expected:\n{log}");
    let server = Dispecer::start(&dir, &database_url, &broker).await?;
    let (mut stream, snapshot) = server.stream().await?;
    assert_eq!(
        snapshot["incidents"]["features"].as_array().map(Vec::len),
        Some(2),
        "the resolved one is not open"
    );
    let (_, _, all) = server.get("/api/v1/incidents").await?;
    assert_eq!(
        all["features"].as_array().map(Vec::len),
        Some(3),
        "…but it is stored"
    );
    let (_, _, letters) = server.get("/api/v1/dead-letters").await?;
    assert!(
        letters
            .to_string()
            .contains("no open incident follows utility:apa-brasov:avarie-necunoscuta"),
        "{letters}"
    );
    let (status, _, one) = server.get(&format!("/api/v1/incidents/{id}")).await?;
    assert_eq!(status, 200);
    assert_eq!(one["properties"]["agency"], "domeniu-public");
    // …and in the spatial index: a report 20 m away joins it instead of opening a new one.
    let mut mqtt = MqttClient::connect(server.mqtt_port, &[AGENCY_TOPICS]).await?;
    let near = citizen_report(
        &format!("e2e-near-{}", uuid::Uuid::now_v7()),
        "pothole",
        SFATULUI.0,
        SFATULUI.1 + 0.00018,
    );
    mqtt.publish(REPORTS, near).await?;
    let joined = stream.next_incident(|i| i["id"] == id.as_str()).await?;
    assert_eq!(joined["change"], "updated");
    assert_eq!(joined["incident"]["properties"]["report_count"], 2);
    let (_, _, timeline) = server
        .get(&format!("/api/v1/incidents/{id}/timeline"))
        .await?;
    assert_eq!(
        timeline["events"].as_array().map(Vec::len),
        Some(2),
        "{timeline}"
    );

    if let Some(pg) = &pg {
        assert!(
            pg.is_hypertable("events").await?,
            "the event log is a hypertable on TimescaleDB"
        );
    }
    drop(stream);
    server.stop();
    if let Some(pg) = pg {
        pg.drop_database().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn journey_sqlite_embedded_broker() -> Result<()> {
    journey(StoreKind::Sqlite, BrokerKind::Embedded).await
}

#[tokio::test(flavor = "multi_thread")]
async fn journey_timescaledb_mosquitto() -> Result<()> {
    journey(StoreKind::Timescale, BrokerKind::Mosquitto).await
}

#[tokio::test(flavor = "multi_thread")]
async fn journey_sqlite_mosquitto() -> Result<()> {
    journey(StoreKind::Sqlite, BrokerKind::Mosquitto).await
}

#[tokio::test(flavor = "multi_thread")]
async fn journey_timescaledb_embedded_broker() -> Result<()> {
    journey(StoreKind::Timescale, BrokerKind::Embedded).await
}

/// A taken MQTT port is reported with the flag to use.
#[tokio::test(flavor = "multi_thread")]
async fn taken_mqtt_port_names_the_flag() -> Result<()> {
    let dir = TempDir::new("dispecer-port");
    let blocker = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = blocker.local_addr()?.port();
    let err = Dispecer::start(
        &dir,
        &format!("sqlite://{}/d.sqlite", dir.path().display()),
        &Broker::Embedded(port),
    )
    .await
    .expect_err("must refuse a taken port");
    let text = format!("{err:#}");
    assert!(
        text.contains("--mqtt-url") && text.contains("--mqtt-listen"),
        "{text}"
    );
    Ok(())
}

/// A city folder with a mistake is refused, naming the file, the entry and the problem.
#[test]
fn broken_city_is_refused_with_file_entry_and_problem() -> Result<()> {
    let dir = TempDir::new("dispecer-city");
    let src = e2e::repo_root().join("cities/brasov");
    copy_dir(&src, dir.path())?;
    let categories = dir.path().join("categories.toml");
    let text = std::fs::read_to_string(&categories)?.replacen(
        "default_severity = \"moderate\"",
        "default_severity = \"apocalyptic\"",
        1,
    );
    std::fs::write(&categories, text)?;
    let out = std::process::Command::new(e2e::dispecer_bin()?)
        .arg("check-city")
        .arg(dir.path())
        .output()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("categories.toml")
            && stderr.contains("category \"")
            && stderr.contains("apocalyptic"),
        "{stderr}"
    );
    Ok(())
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
