//! Logins on the embedded broker (`dispecer run`'s default): Dispecer's own clients log in with a
//! password made for the process; operators and sensor gateways with their API tokens, an
//! operator's under the operator's id. Everyone else is refused. Each login publishes only on its
//! own topics, on the embedded broker as on Mosquitto with `deploy/mosquitto.acl`.

use anyhow::{Context, Result};
use serde_json::json;

use e2e::{
    dispecer_token, free_port, mqtt_login, repo_root, Broker, Dispecer, MqttClient, TempDir,
};

#[tokio::test(flavor = "multi_thread")]
async fn embedded_broker_lets_in_only_clients_with_tokens() -> Result<()> {
    let dir = TempDir::new("dispecer-mqtt-auth");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    let city = repo_root().join("cities/brasov");
    let city = city.to_str().context("path")?;
    let water = dispecer_token(&db, &["create", "--city", city, "--operator", "apa-brasov"])?;
    let gateway = dispecer_token(&db, &["create", "--city", city, "--readings"])?;
    let revoked = dispecer_token(
        &db,
        &["create", "--city", city, "--operator", "distrigaz-sud"],
    )?;
    dispecer_token(&db, &["revoke", &revoked[..12]])?;

    let port = free_port();
    // Ready means Dispecer's own ingest client logged in and subscribed.
    let server = Dispecer::start(&dir, &db, &Broker::EmbeddedTokens(port)).await?;

    for (login, allowed, why) in [
        (None, false, "no login"),
        (
            Some(("apa-brasov", "dsp_wrong")),
            false,
            "a password that is no token",
        ),
        (
            Some(("electrica", water.as_str())),
            false,
            "another operator's id",
        ),
        (
            Some(("distrigaz-sud", revoked.as_str())),
            false,
            "a revoked token",
        ),
        (
            Some(("$dispecer", water.as_str())),
            false,
            "Dispecer's own user name",
        ),
        (
            Some(("apa-brasov", water.as_str())),
            true,
            "the operator's token",
        ),
        (
            Some(("gateway-7", gateway.as_str())),
            true,
            "a sensor gateway's token",
        ),
    ] {
        assert_eq!(mqtt_login(port, login).await?, allowed, "{why}");
    }

    // A logged-in operator's event goes the whole way.
    let mut mqtt = MqttClient::connect_as(port, &[], Some(("apa-brasov", water.as_str()))).await?;
    let event = json!({"type": "Feature",
        "geometry": {"type": "Point", "coordinates": [25.6050, 45.6500]},
        "properties": {"id": "avarie-mqtt-auth-1", "kind": "fault", "category": "water_leak",
            "description": "Avarie conductă"}});
    mqtt.publish(
        "dispecer/v1/in/utilities/apa-brasov/events",
        event.to_string(),
    )
    .await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (_, _, feeds) = server.get("/api/v1/feeds").await?;
        let accepted = feeds["feeds"]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["feed"] == "utility:apa-brasov"))
            .and_then(|f| f["accepted"].as_u64());
        if accepted == Some(1) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the event was not accepted: {feeds}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    server.stop();
    Ok(())
}

/// A utility's power fault in the city centre, as a GeoJSON Feature.
fn power_fault(id: &str) -> String {
    json!({"type": "Feature",
        "geometry": {"type": "Point", "coordinates": [25.6050, 45.6500]},
        "properties": {"id": id, "kind": "fault", "category": "power_outage"}})
    .to_string()
}

/// Publishes `payload` on `topic` at QoS 1 with `mosquitto_pub` (a client nobody here wrote),
/// logged in as `login`, and asserts the broker acknowledged it.
fn mosquitto_pub(port: u16, login: (&str, &str), topic: &str, payload: &str) -> Result<()> {
    let out = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-u", login.0, "-P", login.1, "-i", "e2e-forger"])
        .args(["-t", topic, "-m", payload])
        .output()
        .context("mosquitto_pub (scripts/deps.sh installs mosquitto-clients)")?;
    anyhow::ensure!(
        out.status.success(),
        "mosquitto_pub: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Waits until the feed `name` counts `accepted` messages.
async fn accepted(server: &Dispecer, name: &str, accepted: u64) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (_, _, feeds) = server.get("/api/v1/feeds").await?;
        let got = feeds["feeds"]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["feed"] == name))
            .and_then(|f| f["accepted"].as_u64());
        if got == Some(accepted) {
            return Ok(());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} did not reach {accepted} accepted: {feeds}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mosquitto_with_the_documented_acl_keeps_each_utility_to_its_own_topic() -> Result<()> {
    let mosquitto = e2e::Mosquitto::start_with_acl(&[
        ("dispecer", "pw-dispecer"),
        ("apa-brasov", "pw-apa"),
        ("deer-brasov", "pw-deer"),
    ])
    .await?;
    let port = mosquitto.port();
    assert!(
        !mqtt_login(port, None).await?,
        "anonymous clients are refused"
    );
    assert!(!mqtt_login(port, Some(("apa-brasov", "pw-deer"))).await?);

    let dir = TempDir::new("dispecer-mosquitto-acl");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    let url = format!("mqtt://dispecer:pw-dispecer@127.0.0.1:{port}");
    let server = Dispecer::start(&dir, &db, &Broker::External(url)).await?;

    // Under another operator's topic first, with a client nobody here wrote: Mosquitto
    // acknowledges it and drops it (MQTT 3.1.1 has no way to refuse a publish). Mosquitto 2.0.11
    // answers with a PUBACK carrying a v5 reason code, which rumqttc takes for a malformed packet
    // (it drops the connection and, with a clean session, what it had not sent yet), hence
    // mosquitto_pub here. Then one under its own topic, which Dispecer receives after anything
    // the broker took before it.
    mosquitto_pub(
        port,
        ("apa-brasov", "pw-apa"),
        "dispecer/v1/in/utilities/deer-brasov/events",
        &power_fault("forged-1"),
    )?;
    let mut apa = MqttClient::connect_as(port, &[], Some(("apa-brasov", "pw-apa"))).await?;
    apa.publish(
        "dispecer/v1/in/utilities/apa-brasov/events",
        json!({"type": "Feature",
            "geometry": {"type": "Point", "coordinates": [25.6050, 45.6500]},
            "properties": {"id": "avarie-acl-1", "kind": "fault", "category": "water_leak"}})
        .to_string(),
    )
    .await
    .with_context(|| format!("own publish; mosquitto log:\n{}", mosquitto.log()))?;
    accepted(&server, "utility:apa-brasov", 1).await?;
    let (_, _, feeds) = server.get("/api/v1/feeds").await?;
    assert!(
        !feeds.to_string().contains("utility:deer-brasov"),
        "a forged event reached Dispecer: {feeds}"
    );
    // The real operator gets through.
    let mut deer = MqttClient::connect_as(port, &[], Some(("deer-brasov", "pw-deer"))).await?;
    deer.publish(
        "dispecer/v1/in/utilities/deer-brasov/events",
        power_fault("avarie-acl-2"),
    )
    .await
    .with_context(|| format!("deer publish; mosquitto log:\n{}", mosquitto.log()))?;
    accepted(&server, "utility:deer-brasov", 1).await?;
    server.stop();
    Ok(())
}

/// The embedded broker keeps each login to its own topics, as `deploy/mosquitto.acl` does on
/// Mosquitto: a publish elsewhere is acknowledged (MQTT 3.1.1 cannot refuse one) and kept as a
/// dead letter naming the login, never taken as the other sender's; a subscription elsewhere
/// gets the SUBACK failure code (a dispatcher's token reads the escalations and every agency's
/// incidents); a last will elsewhere refuses the CONNECT.
#[tokio::test(flavor = "multi_thread")]
async fn embedded_broker_keeps_each_login_to_its_own_topics() -> Result<()> {
    use rumqttc::{
        AsyncClient, ConnectReturnCode, Event, LastWill, MqttOptions, Packet, QoS,
        SubscribeReasonCode,
    };
    use std::time::Duration;

    let dir = TempDir::new("dispecer-mqtt-policy");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    let city = repo_root().join("cities/brasov");
    let city = city.to_str().context("path")?;
    let water = dispecer_token(&db, &["create", "--city", city, "--operator", "apa-brasov"])?;
    let gateway = dispecer_token(&db, &["create", "--city", city, "--readings"])?;
    let app = dispecer_token(&db, &["create", "--city", city, "--citizens-app"])?;
    let dispatcher = dispecer_token(&db, &["create", "--city", city, "--dispatcher"])?;
    let police = dispecer_token(
        &db,
        &[
            "create",
            "--city",
            city,
            "--acts-for",
            "politia-locala-nord",
        ],
    )?;
    let port = free_port();
    let server = Dispecer::start(&dir, &db, &Broker::EmbeddedTokens(port)).await?;

    // The water company under the power company's topic, with a client nobody here wrote.
    mosquitto_pub(
        port,
        ("apa-brasov", &water),
        "dispecer/v1/in/utilities/electrica/events",
        &power_fault("forged-1"),
    )?;
    // A gateway tries a citizen's report carrying the citizen's contact.
    let mut gw = MqttClient::connect_as(port, &[], Some(("gateway-7", gateway.as_str()))).await?;
    let report = json!({"type": "Feature",
        "geometry": {"type": "Point", "coordinates": [25.6050, 45.6500]},
        "properties": {"id": "r-policy-1", "category": "pothole", "description": "groapă",
            "contact": {"email": "ion.popescu@example.ro"}}});
    gw.publish("dispecer/v1/in/citizen/reports", report.to_string())
        .await?;
    // Each on its own topic gets through, after what it sent before.
    let mut apa = MqttClient::connect_as(port, &[], Some(("apa-brasov", water.as_str()))).await?;
    apa.publish(
        "dispecer/v1/in/utilities/apa-brasov/events",
        json!({"type": "Feature",
            "geometry": {"type": "Point", "coordinates": [25.6050, 45.6500]},
            "properties": {"id": "avarie-policy-1", "kind": "fault", "category": "water_leak"}})
        .to_string(),
    )
    .await?;
    accepted(&server, "utility:apa-brasov", 1).await?;
    let mut citizens = MqttClient::connect_as(port, &[], Some(("app", app.as_str()))).await?;
    citizens
        .publish(
            "dispecer/v1/in/citizen/reports",
            e2e::citizen_report("r-policy-2", "pothole", 25.6050, 45.6500),
        )
        .await?;
    accepted(&server, "citizen", 1).await?;

    let (_, _, feeds) = server.get("/api/v1/feeds").await?;
    let feed = |name: &str| {
        feeds["feeds"]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["feed"] == name))
            .cloned()
    };
    assert!(
        feed("utility:electrica").is_none(),
        "a forged event reached Dispecer as the power company's: {feeds}"
    );
    for login in ["login:apa-brasov", "login:gateway-7"] {
        assert_eq!(
            feed(login).map(|f| f["rejected"].clone()),
            Some(json!(1)),
            "{login}: {feeds}"
        );
    }
    let (_, _, letters) = server.get("/api/v1/dead-letters").await?;
    let letters = letters["dead_letters"].as_array().context("letters")?;
    let letter = |topic: &str| {
        letters
            .iter()
            .find(|d| d["topic"] == topic)
            .cloned()
            .with_context(|| format!("no dead letter on {topic}: {letters:?}"))
    };
    let forged =
        letter("dispecer/v1/refused/apa-brasov/dispecer/v1/in/utilities/electrica/events")?;
    assert!(
        forged["reason"].as_str().is_some_and(|r| r.contains(
            "\"apa-brasov\" may not publish on dispecer/v1/in/utilities/electrica/events"
        )),
        "{forged}"
    );
    let personal = letter("dispecer/v1/refused/gateway-7/dispecer/v1/in/citizen/reports")?;
    assert!(
        !personal.to_string().contains("popescu"),
        "a citizen's contact kept in a dead letter: {personal}"
    );

    // Subscriptions: an agency its own incidents only, in one SUBSCRIBE; a utility nothing.
    let subacks = |user: &'static str, password: String, filters: Vec<&'static str>| async move {
        let mut opts = MqttOptions::new(format!("e2e-sub-{user}"), "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_credentials(user, password);
        let (client, mut eventloop) = AsyncClient::new(opts, 8);
        client
            .subscribe_many(
                filters
                    .into_iter()
                    .map(|f| rumqttc::SubscribeFilter::new(f.to_owned(), QoS::AtLeastOnce)),
            )
            .await?;
        let codes = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(ack))) => return Ok(ack.return_codes),
                    Ok(_) => {}
                    Err(e) => return Err(anyhow::anyhow!("{e}")),
                }
            }
        })
        .await
        .context("no SubAck within 15 s")??;
        Ok::<_, anyhow::Error>(codes)
    };
    assert_eq!(
        subacks(
            "politia-locala-nord",
            police.clone(),
            vec![
                "dispecer/v1/out/agencies/politia-locala-nord/incidents",
                "dispecer/v1/out/agencies/politia-locala-sud/incidents",
                "dispecer/v1/in/#",
            ]
        )
        .await?,
        [
            SubscribeReasonCode::Success(QoS::AtLeastOnce),
            SubscribeReasonCode::Failure,
            SubscribeReasonCode::Failure
        ]
    );
    assert_eq!(
        subacks("apa-brasov", water.clone(), vec!["dispecer/v1/refused/#"]).await?,
        [SubscribeReasonCode::Failure]
    );
    assert_eq!(
        subacks(
            "supervisors-pager",
            dispatcher.clone(),
            vec![
                "dispecer/v1/out/supervisors/escalations",
                "dispecer/v1/out/agencies/+/incidents",
                "dispecer/v1/in/#",
            ]
        )
        .await?,
        [
            SubscribeReasonCode::Success(QoS::AtLeastOnce),
            SubscribeReasonCode::Success(QoS::AtLeastOnce),
            SubscribeReasonCode::Failure
        ]
    );

    // A last will on someone else's topic: the CONNECT is refused, with the reason code.
    let mut opts = MqttOptions::new("e2e-will", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_credentials("apa-brasov", water.as_str());
    opts.set_last_will(LastWill::new(
        "dispecer/v1/in/utilities/electrica/events",
        power_fault("will-1"),
        QoS::AtLeastOnce,
        false,
    ));
    let (_client, mut eventloop) = AsyncClient::new(opts, 4);
    let refused = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => return Some(ack.code),
                Ok(_) => {}
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => return Some(code),
                Err(_) => return None,
            }
        }
    })
    .await
    .context("no answer to the CONNECT")?;
    assert_eq!(refused, Some(ConnectReturnCode::NotAuthorized));
    server.stop();
    Ok(())
}
