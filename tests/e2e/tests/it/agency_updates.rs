//! Agencies act on their incidents over MQTT (`dispecer/v1/in/agencies/{agency}/updates`): an
//! acknowledgement, work started, resolution, each pushed live; a redelivered update changes
//! nothing; an update the state machine forbids, one about another agency's incident, and one
//! from an agency the city does not have become dead letters with the reason.

use anyhow::{Context, Result};
use serde_json::{json, Value};

use e2e::{citizen_report, free_port, Broker, Dispecer, MqttClient, StreamClient, TempDir};

#[tokio::test(flavor = "multi_thread")]
async fn agencies_acknowledge_start_and_resolve_over_mqtt() -> Result<()> {
    let dir = TempDir::new("dispecer-agency-updates");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    let server = Dispecer::start(&dir, &db, &Broker::Embedded(free_port())).await?;
    let (mut stream, _) = StreamClient::connect(&server.http).await?;
    let mut mqtt = MqttClient::connect(server.mqtt_port, &[]).await?;
    mqtt.publish(
        "dispecer/v1/in/citizen/reports",
        citizen_report("agency-upd-1", "pothole", 25.5887, 45.6419),
    )
    .await?;
    let opened = stream.next_incident(|_| true).await?;
    let id = opened["incident"]["id"]
        .as_str()
        .context("incident id")?
        .to_owned();
    let agency = opened["incident"]["properties"]["agency"]
        .as_str()
        .context("agency")?
        .to_owned();
    assert_eq!(agency, "domeniu-public");
    let topic = format!("dispecer/v1/in/agencies/{agency}/updates");
    let update = |uid: &str, action: &str| {
        json!({"id": uid, "incident": id, "action": action, "reason": "echipa e pe drum"})
            .to_string()
    };

    mqtt.publish(&topic, update("u-1", "acknowledge")).await?;
    let f = stream
        .next_incident(|i| i["properties"]["status"] == "acknowledged")
        .await?;
    assert_eq!(f["change"], "updated");
    // The same update again (a redelivery): nothing changes.
    mqtt.publish(&topic, update("u-1", "acknowledge")).await?;
    // Forbidden from `acknowledged`: closing before resolving.
    mqtt.publish(&topic, update("u-2", "close")).await?;
    // Another agency about this incident, and an agency the city does not have.
    mqtt.publish(
        "dispecer/v1/in/agencies/apa-brasov/updates",
        update("w-1", "resolve"),
    )
    .await?;
    mqtt.publish(
        "dispecer/v1/in/agencies/no-such-agency/updates",
        update("x-1", "resolve"),
    )
    .await?;
    mqtt.publish(&topic, update("u-3", "start")).await?;
    stream
        .next_incident(|i| i["properties"]["status"] == "in_progress")
        .await?;
    mqtt.publish(&topic, update("u-4", "resolve")).await?;
    stream
        .next_incident(|i| i["properties"]["status"] == "resolved")
        .await?;

    let (_, _, timeline) = server
        .get(&format!("/api/v1/incidents/{id}/timeline"))
        .await?;
    let kinds: Vec<(&str, &str)> = timeline["timeline"]
        .as_array()
        .context("timeline")?
        .iter()
        .filter_map(|t| Some((t["kind"].as_str()?, t["actor"].as_str()?)))
        .collect();
    let by_agency = format!("agency:{agency}");
    assert_eq!(
        kinds
            .iter()
            .filter(|(_, actor)| *actor == by_agency)
            .map(|(k, _)| *k)
            .collect::<Vec<_>>(),
        ["acknowledge", "start", "resolve"],
        "{timeline}"
    );
    let (_, _, letters) = server.get("/api/v1/dead-letters").await?;
    let reasons: Vec<String> = letters["dead_letters"]
        .as_array()
        .context("letters")?
        .iter()
        .filter_map(|d| {
            Some(format!(
                "{} {}",
                d["topic"].as_str()?,
                d["reason"].as_str()?
            ))
        })
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:#?}");
    let has = |topic: &str, words: &str| {
        reasons
            .iter()
            .any(|r| r.contains(topic) && r.to_lowercase().contains(words))
    };
    assert!(has(&agency, "not allowed"), "{reasons:#?}");
    assert!(has("apa-brasov", "apa-brasov"), "{reasons:#?}");
    assert!(
        has("no-such-agency", "not one of this city"),
        "{reasons:#?}"
    );
    let (_, _, feeds) = server.get("/api/v1/feeds").await?;
    let feed: Value = feeds["feeds"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|f| f["feed"] == format!("agency:{agency}").as_str())
                .cloned()
        })
        .context("the agency's feed")?;
    assert_eq!(feed["rejected"], 1, "{feed}");

    // More of the log: a report joining another, a utility's fault, its update and its restored.
    mqtt.publish(
        "dispecer/v1/in/citizen/reports",
        citizen_report("agency-upd-2", "water_leak", 25.6100, 45.6500),
    )
    .await?;
    mqtt.publish(
        "dispecer/v1/in/citizen/reports",
        citizen_report("agency-upd-3", "water_leak", 25.6101, 45.6501),
    )
    .await?;
    let fault = |description: &str, kind: &str| {
        json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [25.5700, 45.6600]},
            "properties": {"id": "avarie-9", "kind": kind, "category": "no_water",
                "description": description}})
        .to_string()
    };
    let utility = "dispecer/v1/in/utilities/apa-brasov/events";
    mqtt.publish(utility, fault("Avarie", "fault")).await?;
    mqtt.publish(utility, fault("Avarie, echipă la fața locului", "fault"))
        .await?;
    mqtt.publish(utility, fault("Remediat", "restored")).await?;
    stream
        .next_incident(|i| {
            i["properties"]["category"] == "no_water" && i["properties"]["status"] == "resolved"
        })
        .await?;
    server.stop();

    // The incidents rebuilt from this log are the stored ones…
    let rebuild = || {
        std::process::Command::new(e2e::dispecer_bin()?)
            .args(["rebuild", "--database-url", &db, "--city"])
            .arg(e2e::repo_root().join("cities/brasov"))
            .output()
            .context("dispecer rebuild")
    };
    let out = rebuild()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("identical"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("rebuilt 3 incidents; 3 stored"), "{text}");
    // …and the check sees a stored incident that the log does not explain.
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db).await?;
    sqlx::query("UPDATE incidents SET report_count = 9 WHERE id = $1")
        .bind(&id)
        .execute(&mut conn)
        .await?;
    let out = rebuild()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("DIFFERENT") && text.contains("reports: stored 9, rebuilt 1"),
        "{text}"
    );
    Ok(())
}
