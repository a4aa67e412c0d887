//! Congestion from the traffic counters, through the real binary: SenML packs over MQTT with a
//! sustained drop of speed open a congestion incident at the counter, linked to the burst water
//! main reported beside it; when traffic recovers it resolves itself; the log rebuilds it.

use anyhow::{Context, Result};
use serde_json::json;

use e2e::{citizen_report, free_port, Broker, Dispecer, MqttClient, TempDir};

const SENSOR: &str = "tc-eroilor-e";

/// One SenML pack of the counter at Unix second `t`.
fn pack(t: i64, speed: f64, occupancy: f64) -> String {
    json!([
        {"bn": format!("{SENSOR}/"), "bt": t, "n": "count", "u": "count", "v": 14},
        {"n": "speed", "u": "km/h", "v": speed},
        {"n": "occupancy", "u": "%", "v": occupancy},
    ])
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sustained_speed_drop_opens_congestion_linked_to_a_burst_main_and_recovery_resolves_it(
) -> Result<()> {
    let dir = TempDir::new("dispecer-congestion");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    let server = Dispecer::start(&dir, &db, &Broker::Embedded(free_port())).await?;
    let (mut stream, _) = server.stream().await?;
    let mut mqtt = MqttClient::connect(server.mqtt_port, &[]).await?;

    // A burst main reported ~55 m from the counter.
    mqtt.publish(
        "dispecer/v1/in/citizen/reports",
        citizen_report("e2e-burst-main", "water_leak", 25.5935, 45.6461),
    )
    .await?;
    let leak = stream
        .next_incident(|i| i["properties"]["category"] == "water_leak")
        .await?;
    let leak_id = leak["incident"]["id"]
        .as_str()
        .context("leak id")?
        .to_owned();

    // An hour ago: free flow, one slow minute, free flow, then ten slow minutes.
    let topic = format!("dispecer/v1/in/traffic/{SENSOR}");
    let now = chrono::Utc::now().timestamp();
    let t0 = now - now % 60 - 3600;
    let mut minute = 0;
    let mut send = async |speed: f64, occupancy: f64, minutes: i64| -> Result<()> {
        for _ in 0..minutes {
            mqtt.publish(&topic, pack(t0 + minute * 60, speed, occupancy))
                .await?;
            minute += 1;
        }
        Ok(())
    };
    send(48.0, 12.0, 5).await?;
    send(7.0, 12.0, 1).await?;
    send(48.0, 12.0, 3).await?;
    send(9.0, 55.0, 10).await?;
    let opened = match stream
        .next_incident(|i| i["properties"]["category"] == "congestion")
        .await
    {
        Ok(f) => f,
        Err(e) => anyhow::bail!("{e}: no congestion; the server says:\n{}", server.log()),
    };
    assert_eq!(opened["change"], "opened", "{opened}");
    let congestion = &opened["incident"];
    let id = congestion["id"].as_str().context("id")?.to_owned();
    assert_eq!(
        congestion["geometry"]["coordinates"],
        json!([25.5930, 45.6458]),
        "at the counter"
    );
    assert_eq!(congestion["properties"]["agency"], "trafic-brasov");
    let linked = match stream
        .next_incident(|i| i["id"] == id.as_str() && i["properties"]["explained_by"].is_array())
        .await
    {
        Ok(f) => f,
        Err(e) => anyhow::bail!(
            "{e}: {opened} not linked; the server says:\n{}",
            server.log()
        ),
    };
    assert_eq!(
        linked["incident"]["properties"]["explained_by"],
        json!([leak_id]),
        "{linked}"
    );

    // Half-way speeds keep it; free flow resolves it.
    send(30.0, 30.0, 3).await?;
    send(48.0, 12.0, 8).await?;
    let resolved = stream
        .next_incident(|i| i["id"] == id.as_str() && i["properties"]["status"] == "resolved")
        .await?;
    assert_eq!(
        resolved["incident"]["properties"]["explained_by"],
        json!([leak_id])
    );
    let (status, _, timeline) = server
        .get(&format!("/api/v1/incidents/{id}/timeline"))
        .await?;
    assert_eq!(status, 200, "{timeline}");
    let kinds: Vec<(&str, &str)> = timeline["timeline"]
        .as_array()
        .context("timeline")?
        .iter()
        .filter_map(|e| Some((e["kind"].as_str()?, e["actor"].as_str()?)))
        .collect();
    assert_eq!(
        kinds,
        [
            ("opened", "system:traffic"),
            ("linked", "system"),
            ("resolved", "system:traffic")
        ],
        "{timeline}"
    );
    let (_, _, all) = server
        .get("/api/v1/incidents?category=congestion&status=resolved")
        .await?;
    let episodes = all["features"].as_array().map(Vec::len);
    assert_eq!(
        episodes,
        Some(1),
        "one episode, not the single slow minute: {all}"
    );
    drop(stream);
    server.stop();

    // The derived events are in the log: a rebuild gives the same incidents.
    let out = std::process::Command::new(e2e::dispecer_bin()?)
        .args(["rebuild", "--database-url", &db, "--city"])
        .arg(e2e::repo_root().join("cities/brasov"))
        .output()
        .context("dispecer rebuild")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("identical") && text.contains("2 stored"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
