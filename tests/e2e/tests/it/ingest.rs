//! Ingest beyond the citizen journey: traffic counters' SenML readings into the time-series
//! store, per-feed accounting (`/api/v1/feeds`, `/metrics`), dead letters for bad packs, and a
//! client nobody here wrote (`mosquitto_pub`).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use e2e::{
    citizen_report, free_port, Broker, Dispecer, Mosquitto, MqttClient, PgDatabase, TempDir,
};

/// Waits until `check` returns `Some`, polling the API (bounded; never a fixed sleep).
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{what}: not within 15 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn traffic(server: &Dispecer, mqtt_pub: Option<u16>) -> Result<()> {
    let (_, _, city) = server.get("/api/v1/city").await?;
    let sensor = city["sensors"]["features"][0]["id"]
        .as_str()
        .context("a sensor")?
        .to_owned();
    let now = chrono::Utc::now().timestamp();
    let minute = now - now % 60 - 120;
    let pack = json!([
        {"bn": format!("{sensor}/"), "bt": minute, "n": "count", "u": "count", "v": 12},
        {"n": "speed", "u": "km/h", "v": 43.5},
        {"n": "occupancy", "u": "%", "v": 18.0},
        {"t": 20, "n": "count", "u": "count", "v": 8},
        {"t": 20, "n": "speed", "u": "km/h", "v": 47.5},
    ])
    .to_string();
    let topic = format!("dispecer/v1/in/traffic/{sensor}");
    let mut mqtt = MqttClient::connect(server.mqtt_port, &[]).await?;
    match mqtt_pub {
        Some(port) => {
            let status = std::process::Command::new("mosquitto_pub")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-q",
                    "1",
                    "-t",
                    &topic,
                    "-m",
                    &pack,
                ])
                .status()
                .context("mosquitto_pub (scripts/deps.sh installs mosquitto-clients)")?;
            assert!(status.success());
        }
        None => mqtt.publish(&topic, pack.clone()).await?,
    }
    let from = chrono::DateTime::from_timestamp(minute - 60, 0)
        .context("time")?
        .to_rfc3339();
    let to = chrono::DateTime::from_timestamp(minute + 120, 0)
        .context("time")?
        .to_rfc3339();
    let path = format!(
        "/api/v1/sensors/{sensor}/readings?step=1m&from={}&to={}",
        urlencode(&from),
        urlencode(&to)
    );
    let series: Value = eventually("readings stored", || async {
        let (status, _, body) = server.get(&path).await?;
        assert_eq!(status, 200, "{body}");
        Ok(body["series"]["count"]
            .as_array()
            .filter(|a| !a.is_empty())
            .map(|_| body["series"].clone()))
    })
    .await?;
    let count = &series["count"][0];
    assert_eq!(
        (
            count["n"].as_i64(),
            count["avg"].as_f64(),
            count["max"].as_f64()
        ),
        (Some(2), Some(10.0), Some(12.0))
    );
    assert_eq!(series["speed"][0]["avg"].as_f64(), Some(45.5));
    assert_eq!(series["occupancy"][0]["n"].as_i64(), Some(1));

    // The same pack again: nothing new, counted as a duplicate; bad packs become dead letters.
    mqtt.publish(&topic, pack).await?;
    mqtt.publish(
        &topic,
        json!([{"bn": format!("{sensor}/"), "n": "speed", "u": "m/s", "v": 12}]).to_string(),
    )
    .await?;
    mqtt.publish(
        "dispecer/v1/in/traffic/no-such-sensor",
        json!([{"n": "count", "v": 1}]).to_string(),
    )
    .await?;
    mqtt.publish(&topic, "{\"not\": \"a pack\"}").await?;
    let feed = format!("traffic:{sensor}");
    let feeds: Value = eventually("feed accounting", || async {
        let (_, _, body) = server.get("/api/v1/feeds").await?;
        let f = body["feeds"]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["feed"] == feed.as_str()).cloned());
        Ok(f.filter(|f| f["received"] == 4))
    })
    .await?;
    assert_eq!(
        (
            feeds["accepted"].as_u64(),
            feeds["duplicates"].as_u64(),
            feeds["rejected"].as_u64()
        ),
        (Some(1), Some(1), Some(2))
    );
    let (_, _, letters) = server.get("/api/v1/dead-letters").await?;
    let reasons: Vec<&str> = letters["dead_letters"]
        .as_array()
        .context("letters")?
        .iter()
        .filter_map(|d| d["reason"].as_str())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("unit") && r.contains("km/h")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("no-such-sensor")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("SenML")), "{reasons:?}");
    // `/metrics` answers a scraper's token (and staff), nobody anonymous; the scraper's token
    // reads nothing else.
    let url = format!("{}/metrics", server.http);
    assert_eq!(reqwest::get(&url).await?.status().as_u16(), 401);
    let scraper = e2e::dispecer_token(server.database_url(), &["create", "--metrics"])?;
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1/incidents", server.http))
        .bearer_auth(&scraper)
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 403, "a scraper reads no incidents");
    let metrics = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&scraper)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    assert!(
        metrics.contains(&format!(
            "dispecer_feed_accepted_total{{feed=\"{feed}\"}} 1"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "dispecer_feed_rejected_total{{feed=\"{feed}\"}} 2"
        )),
        "{metrics}"
    );
    for bad in [
        "step=2m",
        "from=yesterday",
        &format!("step=raw&from={}", urlencode("2020-01-01T00:00:00Z")),
    ] {
        let (status, ctype, _) = server
            .get(&format!("/api/v1/sensors/{sensor}/readings?{bad}"))
            .await?;
        assert_eq!(
            (status, ctype.as_str()),
            (400, "application/problem+json"),
            "{bad}"
        );
    }
    let (status, _, _) = server.get("/api/v1/sensors/nope/readings").await?;
    assert_eq!(status, 404);

    // The same readings in SenML's CBOR form (RFC 8428 §6, integer labels) from another counter.
    let other = city["sensors"]["features"][1]["id"]
        .as_str()
        .context("a second sensor")?
        .to_owned();
    let cbor_pack = senml_cbor(&other, minute);
    let other_topic = format!("dispecer/v1/in/traffic/{other}");
    match mqtt_pub {
        Some(port) => {
            let file = std::env::temp_dir().join(format!("senml-{}.cbor", uuid::Uuid::now_v7()));
            std::fs::write(&file, &cbor_pack)?;
            let status = std::process::Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
                .args(["-t", &other_topic, "-f"])
                .arg(&file)
                .status()
                .context("mosquitto_pub")?;
            let _ = std::fs::remove_file(&file);
            assert!(status.success());
        }
        None => mqtt.publish(&other_topic, cbor_pack).await?,
    }
    let path = format!(
        "/api/v1/sensors/{other}/readings?step=raw&from={}&to={}",
        urlencode(&from),
        urlencode(&to)
    );
    let series: Value = eventually("CBOR readings stored", || async {
        let (status, _, body) = server.get(&path).await?;
        assert_eq!(status, 200, "{body}");
        Ok(body["series"]["occupancy"]
            .as_array()
            .filter(|a| !a.is_empty())
            .map(|_| body["series"].clone()))
    })
    .await?;
    assert_eq!(series["speed"][0]["avg"].as_f64(), Some(51.5), "{series}");
    Ok(())
}

/// A SenML CBOR pack (RFC 8428 §6) of one counter: count 7, speed 51.5 km/h, occupancy 9 %.
fn senml_cbor(sensor: &str, time: i64) -> Vec<u8> {
    use ciborium::Value as C;
    let int = |i: i64| C::Integer(i.into());
    let pack = C::Array(vec![
        C::Map(vec![
            (int(-2), C::Text(format!("{sensor}/"))),
            (int(-3), int(time)),
            (int(0), C::Text("count".into())),
            (int(1), C::Text("count".into())),
            (int(2), int(7)),
        ]),
        C::Map(vec![
            (int(0), C::Text("speed".into())),
            (int(1), C::Text("km/h".into())),
            (int(2), C::Float(51.5)),
        ]),
        C::Map(vec![
            (int(0), C::Text("occupancy".into())),
            (int(1), C::Text("%".into())),
            (int(2), int(9)),
        ]),
    ]);
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = ciborium::ser::into_writer(&pack, &mut out);
    out
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test(flavor = "multi_thread")]
async fn traffic_readings_sqlite_embedded_broker() -> Result<()> {
    let dir = TempDir::new("dispecer-traffic");
    let server = Dispecer::start(
        &dir,
        &format!("sqlite://{}/d.sqlite", dir.path().display()),
        &Broker::Embedded(free_port()),
    )
    .await?;
    traffic(&server, None).await
}

#[tokio::test(flavor = "multi_thread")]
async fn traffic_readings_timescaledb_mosquitto_pub() -> Result<()> {
    let dir = TempDir::new("dispecer-traffic");
    let pg = PgDatabase::create().await?;
    let mosquitto = Mosquitto::start().await?;
    let server = Dispecer::start(&dir, &pg.url, &Broker::External(mosquitto.url())).await?;
    traffic(&server, Some(server.mqtt_port)).await?;

    // A citizen report sent with mosquitto_pub reaches the dashboard's stream too.
    let (mut stream, _) = server.stream().await?;
    let report = citizen_report("mosquitto-pub-1", "street_light_out", 25.6100, 45.6550);
    let status = std::process::Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &server.mqtt_port.to_string(),
            "-q",
            "1",
            "-t",
            "dispecer/v1/in/citizen/reports",
            "-m",
            &report,
        ])
        .status()?;
    assert!(status.success());
    let frame = stream
        .next_incident(|i| i["properties"]["category"] == "street_light_out")
        .await?;
    assert_eq!(frame["change"], "opened");
    drop(stream);
    server.stop();
    pg.drop_database().await
}

fn cap_alert(
    identifier: &str,
    msg_type: &str,
    references: Option<&str>,
    lon: f64,
    lat: f64,
) -> String {
    let d = 0.003;
    // CAP polygons are latitude first, closed.
    let ring = [
        (lat - d, lon - d),
        (lat - d, lon + d),
        (lat + d, lon + d),
        (lat + d, lon - d),
        (lat - d, lon - d),
    ]
    .iter()
    .map(|(la, lo)| format!("{la:.6},{lo:.6}"))
    .collect::<Vec<_>>()
    .join(" ");
    let references = references
        .map(|r| format!("<references>{r}</references>"))
        .unwrap_or_default();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier>
  <sender>dispecerat@deer.example</sender>
  <sent>2026-11-22T08:00:00+02:00</sent>
  <status>Actual</status>
  <msgType>{msg_type}</msgType>
  <scope>Public</scope>
  {references}
  <info>
    <language>ro-RO</language>
    <category>Infra</category>
    <event>Întrerupere programată</event>
    <urgency>Expected</urgency>
    <severity>Moderate</severity>
    <certainty>Likely</certainty>
    <eventCode><valueName>dispecer:category</valueName><value>power_outage</value></eventCode>
    <headline>Întrerupere programată a energiei electrice în Răcădău</headline>
    <area>
      <areaDesc>Răcădău</areaDesc>
      <polygon>{ring}</polygon>
    </area>
  </info>
</alert>"#
    )
}

/// A planned power cut in Răcădău announced as CAP 1.2 opens an incident for the electricity
/// distributor; its Cancel resolves it; an XML external entity attack is a dead letter.
#[tokio::test(flavor = "multi_thread")]
async fn cap_alert_opens_and_cancel_resolves() -> Result<()> {
    let dir = TempDir::new("dispecer-cap");
    let server = Dispecer::start(
        &dir,
        &format!("sqlite://{}/d.sqlite", dir.path().display()),
        &Broker::Embedded(free_port()),
    )
    .await?;
    let (_, _, city) = server.get("/api/v1/city").await?;
    let racadau = city["districts"]["features"]
        .as_array()
        .and_then(|f| f.iter().find(|d| d["id"] == "racadau"))
        .context("Răcădău")?;
    let ring = racadau["geometry"]["coordinates"][0][0]
        .as_array()
        .context("ring")?;
    let n = (ring.len() - 1) as f64;
    let lon = ring[..ring.len() - 1]
        .iter()
        .filter_map(|p| p[0].as_f64())
        .sum::<f64>()
        / n;
    let lat = ring[..ring.len() - 1]
        .iter()
        .filter_map(|p| p[1].as_f64())
        .sum::<f64>()
        / n;

    let (mut stream, _) = server.stream().await?;
    let mut mqtt = MqttClient::connect(server.mqtt_port, &[]).await?;
    let topic = "dispecer/v1/in/utilities/deer-brasov/events";
    mqtt.publish(topic, cap_alert("DEER-2026-0042", "Alert", None, lon, lat))
        .await?;
    let opened = stream
        .next_incident(|i| i["properties"]["category"] == "power_outage")
        .await?;
    let props = &opened["incident"]["properties"];
    assert_eq!(props["agency"], "deer-brasov");
    assert_eq!(props["district"], "racadau");
    assert_eq!(
        props["description"],
        "Întrerupere programată a energiei electrice în Răcădău"
    );
    let id = opened["incident"]["id"].as_str().context("id")?.to_owned();

    mqtt.publish(
        topic,
        cap_alert(
            "DEER-2026-0043",
            "Cancel",
            Some("dispecerat@deer.example,DEER-2026-0042,2026-11-22T08:00:00+02:00"),
            lon,
            lat,
        ),
    )
    .await?;
    let cancelled = stream.next_incident(|i| i["id"] == id.as_str()).await?;
    assert_eq!(cancelled["incident"]["properties"]["status"], "resolved");

    let xxe = r#"<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&xxe;</identifier></alert>"#;
    mqtt.publish(topic, xxe).await?;
    let letters: Value = eventually("xxe refused", || async {
        let (_, _, body) = server.get("/api/v1/dead-letters").await?;
        Ok(body["dead_letters"]
            .as_array()
            .filter(|a| !a.is_empty())
            .map(|_| body.clone()))
    })
    .await?;
    let reason = letters["dead_letters"][0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.contains("CAP") && reason.contains("DOCTYPE"),
        "{reason}"
    );
    assert!(
        !letters.to_string().contains("root:"),
        "nothing of /etc/passwd may leak"
    );
    Ok(())
}
