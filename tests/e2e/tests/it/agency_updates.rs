//! Agencies act on their incidents over MQTT (`dispecer/v1/in/agencies/{agency}/updates`): an
//! acknowledgement, work started, resolution, each pushed live; a redelivered update changes
//! nothing; an update the state machine forbids, one about another agency's incident, and one
//! from an agency the city does not have become dead letters with the reason. Escalations reach
//! the supervisors too.

use anyhow::{Context, Result};
use serde_json::{json, Value};

use e2e::{citizen_report, free_port, Broker, Dispecer, MqttClient, TempDir};

#[tokio::test(flavor = "multi_thread")]
async fn agencies_acknowledge_start_and_resolve_over_mqtt() -> Result<()> {
    let dir = TempDir::new("dispecer-agency-updates");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    let server = Dispecer::start(&dir, &db, &Broker::Embedded(free_port())).await?;
    let (mut stream, _) = server.stream().await?;
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
    let leak = stream
        .next_incident(|i| {
            i["properties"]["category"] == "water_leak" && i["properties"]["report_count"] == 2
        })
        .await?;
    stream
        .next_incident(|i| {
            i["properties"]["category"] == "no_water" && i["properties"]["status"] == "resolved"
        })
        .await?;
    // An operator splits the second leak report out, then undoes it by merging it back.
    let leak = leak["incident"]["id"]
        .as_str()
        .context("leak id")?
        .to_owned();
    let city = e2e::repo_root().join("cities/brasov");
    let city = city.to_str().context("city path")?;
    let operator = e2e::dispecer_token(&db, &["create", "--city", city, "--dispatcher"])?;
    let act = |incident: &str, body: Value| {
        let req = reqwest::Client::new()
            .post(format!(
                "{}/api/v1/incidents/{incident}/actions",
                server.http
            ))
            .bearer_auth(&operator)
            .json(&body);
        async move {
            let resp = req.send().await?;
            let status = resp.status().as_u16();
            anyhow::Ok((status, resp.json::<Value>().await?))
        }
    };
    let (status, split) = act(
        &leak,
        json!({"action": "split", "event": "citizen:agency-upd-3", "reason": "altă conductă"}),
    )
    .await?;
    assert_eq!(status, 200, "{split}");
    assert_eq!(split["properties"]["report_count"], 1, "{split}");
    let apart = stream
        .next_incident(|i| i["properties"]["category"] == "water_leak" && i["id"] != leak.as_str())
        .await?;
    let apart = apart["incident"]["id"]
        .as_str()
        .context("new id")?
        .to_owned();
    let (status, merged) = act(
        &apart,
        json!({"action": "merge", "into": leak, "reason": "aceeași conductă, până la urmă"}),
    )
    .await?;
    assert_eq!(status, 200, "{merged}");
    assert_eq!(merged["properties"]["status"], "duplicate", "{merged}");
    assert_eq!(
        merged["properties"]["merged_into"],
        leak.as_str(),
        "{merged}"
    );
    let (status, refused) = act(&leak, json!({"action": "merge", "into": leak})).await?;
    assert_eq!(status, 409, "{refused}");
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
    assert!(text.contains("rebuilt 4 incidents; 4 stored"), "{text}");
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

/// An escalation reaches the supervisors (`dispecer/v1/out/supervisors/escalations`) besides
/// the agency, and is marked on the WebSocket frame: once for the acknowledgement deadline missed
/// while the server was down (escalated as it starts), once for the resolution deadline passing
/// while it runs.
#[tokio::test(flavor = "multi_thread")]
async fn escalations_reach_the_supervisors_and_are_marked_on_the_stream() -> Result<()> {
    const SUPERVISORS: &str = "dispecer/v1/out/supervisors/escalations";
    const AGENCY: &str = "dispecer/v1/out/agencies/domeniu-public/incidents";
    let dir = TempDir::new("dispecer-escalations");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    let mosquitto = e2e::Mosquitto::start().await?;
    let broker = Broker::External(mosquitto.url());
    let server = Dispecer::start(&dir, &db, &broker).await?;
    let mut watch = MqttClient::connect(mosquitto.port(), &[SUPERVISORS, AGENCY]).await?;
    let (mut stream, _) = server.stream().await?;
    watch
        .publish(
            "dispecer/v1/in/citizen/reports",
            citizen_report("escalation-1", "pothole", 25.5887, 45.6419),
        )
        .await?;
    let opened = stream.next_incident(|_| true).await?;
    assert!(opened.get("escalation").is_none(), "{opened}");
    let id = opened["incident"]["id"]
        .as_str()
        .context("incident id")?
        .to_owned();
    // The agency hears of the opening; the supervisors do not.
    let (_, first) = watch.next_matching(|t, _| t == AGENCY).await?;
    assert!(first.get("escalation").is_none(), "{first}");
    server.stop();

    // While the server is down the acknowledgement deadline passes; the resolution deadline
    // is a few seconds away.
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db).await?;
    let now = chrono::Utc::now();
    sqlx::query("UPDATE incidents SET ack_due = $2, resolve_due = $3 WHERE id = $1")
        .bind(&id)
        .bind(now - chrono::Duration::minutes(5))
        .bind(now + chrono::Duration::seconds(12))
        .execute(&mut conn)
        .await?;
    drop(conn);
    let server = Dispecer::start(&dir, &db, &broker).await?;
    let (_, told) = watch.next_matching(|t, _| t == SUPERVISORS).await?;
    assert_eq!(told["incident"]["id"], id.as_str(), "{told}");
    assert_eq!(told["escalation"]["deadline"], "acknowledge", "{told}");
    assert_eq!(
        told["escalation"]["notified"],
        json!(["supervisors", "agency:domeniu-public"]),
        "{told}"
    );
    assert_eq!(told["incident"]["properties"]["escalated"], true, "{told}");
    let (_, agency) = watch
        .next_matching(|t, v| t == AGENCY && v["escalation"]["deadline"] == "acknowledge")
        .await?;
    assert_eq!(agency["incident"]["id"], id.as_str(), "{agency}");

    // The resolution deadline passes while it runs: the stream marks the frame.
    let (mut stream, _) = server.stream().await?;
    let marked = loop {
        let f = stream.next_frame().await?;
        if f["type"] == "incident" && f["incident"]["id"] == id.as_str() {
            break f;
        }
    };
    assert_eq!(marked["escalation"]["deadline"], "resolve", "{marked}");
    assert_eq!(
        marked["escalation"]["severity_before"], "moderate",
        "{marked}"
    );
    assert_eq!(marked["escalation"]["severity"], "severe", "{marked}");
    let (_, told) = watch.next_matching(|t, _| t == SUPERVISORS).await?;
    assert_eq!(told["escalation"]["deadline"], "resolve", "{told}");
    server.stop();
    Ok(())
}

/// A restart after a long stop finds a backlog of overdue incidents, more than the agencies'
/// publisher queues at once: every one escalates (each reaching the supervisors, each with its
/// timeline entry), and the server is ready all the same. Before, start-up waited on an engine
/// blocked behind the agencies' publisher it had not yet started, and never got ready.
#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_of_overdue_incidents_escalates_as_the_server_starts() -> Result<()> {
    const SUPERVISORS: &str = "dispecer/v1/out/supervisors/escalations";
    const BACKLOG: i64 = 3_000;
    let dir = TempDir::new("dispecer-escalation-backlog");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    let mosquitto = e2e::Mosquitto::start().await?;
    let broker = Broker::External(mosquitto.url());
    let server = Dispecer::start(&dir, &db, &broker).await?;
    let (mut stream, _) = server.stream().await?;
    let mut watch = MqttClient::connect(mosquitto.port(), &[SUPERVISORS]).await?;
    watch
        .publish(
            "dispecer/v1/in/citizen/reports",
            citizen_report("backlog-1", "pothole", 25.5887, 45.6419),
        )
        .await?;
    stream.next_incident(|_| true).await?;
    server.stop();

    // The one incident copied into a backlog, all past their acknowledgement deadline.
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db).await?;
    for statement in [
        "CREATE TEMP TABLE copies AS WITH RECURSIVE n(i) AS \
         (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
         SELECT incidents.* FROM incidents, n",
        "UPDATE copies SET id = id || '-' || rowid",
        "INSERT INTO incidents SELECT * FROM copies",
    ] {
        sqlx::query(statement)
            .bind(BACKLOG - 1)
            .execute(&mut conn)
            .await?;
    }
    sqlx::query("UPDATE incidents SET ack_due = $1")
        .bind(chrono::Utc::now() - chrono::Duration::minutes(5))
        .execute(&mut conn)
        .await?;
    let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM incidents")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(open, BACKLOG);
    drop(conn);

    let server = Dispecer::start(&dir, &db, &broker).await?;
    let mut told = std::collections::HashSet::new();
    while told.len() < BACKLOG as usize {
        let (_, v) = watch.next_matching(|t, _| t == SUPERVISORS).await?;
        assert_eq!(v["escalation"]["deadline"], "acknowledge", "{v}");
        told.insert(v["incident"]["id"].as_str().context("id")?.to_owned());
    }
    // The engine decides again after its backlog: a new report opens a new incident.
    let (mut stream, _) = server.stream().await?;
    watch
        .publish(
            "dispecer/v1/in/citizen/reports",
            citizen_report("backlog-2", "water_leak", 25.6100, 45.6500),
        )
        .await?;
    stream
        .next_incident(|i| i["properties"]["category"] == "water_leak")
        .await?;
    server.stop();
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db).await?;
    let escalated: i64 = sqlx::query_scalar(
        "SELECT COUNT(DISTINCT incident_id) FROM incident_timeline WHERE kind = 'escalated'",
    )
    .fetch_one(&mut conn)
    .await?;
    assert_eq!(escalated, BACKLOG);
    Ok(())
}

/// A burst water main informs the traffic police and public transport: the incident reaches
/// their topics too, its routing saying who is informed and why.
#[tokio::test(flavor = "multi_thread")]
async fn informed_agencies_receive_the_incident_on_their_topics() -> Result<()> {
    let dir = TempDir::new("dispecer-informed");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    let server = Dispecer::start(&dir, &db, &Broker::Embedded(free_port())).await?;
    let topic = |agency: &str| format!("dispecer/v1/out/agencies/{agency}/incidents");
    let (water, police, transport, roads) = (
        topic("apa-brasov"),
        topic("politia-rutiera"),
        topic("rat-brasov"),
        topic("domeniu-public"),
    );
    let mut mqtt =
        MqttClient::connect(server.mqtt_port, &[&water, &police, &transport, &roads]).await?;
    mqtt.publish(
        "dispecer/v1/in/citizen/reports",
        citizen_report("informed-1", "water_leak", 25.5887, 45.6419),
    )
    .await?;
    let mut heard = Vec::new();
    for _ in 0..3 {
        let (t, frame) = mqtt.next_matching(|_, v| v["type"] == "incident").await?;
        assert_eq!(
            frame["incident"]["properties"]["agency"], "apa-brasov",
            "{frame}"
        );
        assert_eq!(
            frame["incident"]["properties"]["routing"]["informed"],
            json!([
                {"agency": "politia-rutiera", "rule": "category_kind", "area": "city"},
                {"agency": "rat-brasov", "rule": "category_kind", "area": "city"}
            ]),
            "{frame}"
        );
        heard.push(t);
    }
    heard.sort();
    let mut expected = vec![water, police, transport];
    expected.sort();
    assert_eq!(heard, expected);
    // A pothole informs nobody: its agency hears of it, with nobody informed.
    mqtt.publish(
        "dispecer/v1/in/citizen/reports",
        citizen_report("informed-2", "pothole", 25.6100, 45.6500),
    )
    .await?;
    let (t, frame) = mqtt.next_matching(|_, v| v["type"] == "incident").await?;
    assert_eq!(t, roads, "{frame}");
    assert_eq!(
        frame["incident"]["properties"]["routing"]["informed"],
        json!([])
    );
    server.stop();
    Ok(())
}
