//! A citizen's contact details travel with their report over MQTT but are stored apart from it:
//! the event log has the report without them, and `dispecer gdpr erase` removes them while the
//! report, its place and its incident stay.

use anyhow::{Context, Result};
use serde_json::json;
use sqlx::Connection;

use e2e::{dispecer_bin, free_port, Broker, Dispecer, MqttClient, TempDir};

async fn count(db: &str, sql: &str) -> Result<i64> {
    let mut conn = sqlx::SqliteConnection::connect(db).await?;
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await?;
    conn.close().await?;
    Ok(n)
}

#[tokio::test(flavor = "multi_thread")]
async fn contact_details_are_stored_apart_and_erased_on_request() -> Result<()> {
    let dir = TempDir::new("dispecer-gdpr");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    let server = Dispecer::start(&dir, &db, &Broker::Embedded(free_port())).await?;
    let mut mqtt = MqttClient::connect(server.mqtt_port, &[]).await?;
    let report = |id: &str, email: &str| {
        json!({"type": "Feature",
            "geometry": {"type": "Point", "coordinates": [25.5887, 45.6419]},
            "properties": {"id": id, "category": "pothole", "description": "Groapă",
                "reported_at": chrono::Utc::now().to_rfc3339(),
                "contact": {"name": "Ana Pop", "email": email, "phone": "+40 722 123 456"}}})
        .to_string()
    };
    mqtt.publish(
        "dispecer/v1/in/citizen/reports",
        report("gdpr-1", "Ana.Pop@example.ro"),
    )
    .await?;
    mqtt.publish(
        "dispecer/v1/in/citizen/reports",
        report("gdpr-2", "ion@example.ro"),
    )
    .await?;
    // The city configuration in force is kept with the data (once, while it does not change).
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM city_configs WHERE city = 'brasov' \
             AND files LIKE '%categories.toml%' AND files LIKE '%jurisdictions/%'"
        )
        .await?,
        1
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while count(&db, "SELECT count(*) FROM citizen_contacts").await? < 2 {
        assert!(std::time::Instant::now() < deadline, "contacts not stored");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM events WHERE payload LIKE '%example.ro%' OR payload LIKE '%722%' \
             OR payload LIKE '%contact%'"
        )
        .await?,
        0,
        "the event log keeps no contact details"
    );

    // Shown only to operators and to the agency responsible.
    let (_, _, list) = server.get("/api/v1/incidents").await?;
    let incident_id = list["features"][0]["id"]
        .as_str()
        .context("an incident")?
        .to_owned();
    let token = |args: &[&str]| -> Result<String> {
        let out = std::process::Command::new(dispecer_bin()?)
            .args(["token", "create", "--city"])
            .arg(e2e::repo_root().join("cities/brasov"))
            .args(args)
            .args(["--database-url", &db])
            .output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    };
    let operator = token(&["--dispatcher"])?;
    let responsible = token(&["--acts-for", "domeniu-public"])?;
    let other_agency = token(&["--acts-for", "apa-brasov"])?;
    let gateway = token(&["--readings"])?;
    let contacts = |token: Option<String>| {
        let url = format!("{}/api/v1/incidents/{incident_id}/contacts", server.http);
        async move {
            let mut req = reqwest::Client::new().get(url);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await?;
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            anyhow::Ok((status, body))
        }
    };
    assert_eq!(contacts(None).await?.0, 401);
    assert_eq!(contacts(Some(gateway)).await?.0, 403);
    assert_eq!(contacts(Some(other_agency)).await?.0, 403);
    let (status, body) = contacts(Some(responsible.clone())).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["contacts"].as_array().map(Vec::len), Some(2), "{body}");
    assert_eq!(body["contacts"][0]["email"], "ana.pop@example.ro");
    let (status, body) = contacts(Some(operator.clone())).await?;
    assert_eq!(
        (status, body["contacts"][1]["phone"].as_str()),
        (200, Some("+40 722 123 456"))
    );

    let out = std::process::Command::new(dispecer_bin()?)
        .args([
            "gdpr",
            "erase",
            "--email",
            "ana.pop@EXAMPLE.ro",
            "--database-url",
            &db,
        ])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("erased the contact details of 1 report"),
        "{stdout}"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM citizen_contacts WHERE email LIKE 'ana%'"
        )
        .await?,
        0
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM citizen_contacts").await?,
        1,
        "the other citizen's contact stays"
    );
    // The reports and their incident stay.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM events WHERE id LIKE 'citizen:gdpr-%'"
        )
        .await?,
        2
    );
    let (_, body) = contacts(Some(operator)).await?;
    assert_eq!(body["contacts"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["contacts"][0]["email"], "ion@example.ro");
    let (_, _, list) = server.get("/api/v1/incidents").await?;
    let incident = &list["features"][0];
    assert_eq!(incident["properties"]["report_count"], 2, "{list}");
    let text = list.to_string();
    assert!(
        !text.contains("example.ro") && !text.contains("Ana"),
        "{text}"
    );

    // Neither e-mail nor phone: refused with a clear message.
    let out = std::process::Command::new(dispecer_bin()?)
        .args(["gdpr", "erase", "--database-url", &db])
        .output()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--email"), "{stderr}");
    server.stop();
    incident["id"].as_str().context("an incident id")?;
    Ok(())
}
