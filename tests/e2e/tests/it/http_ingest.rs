//! HTTP ingest for senders without a broker: per-sender API tokens made with `dispecer token`,
//! `POST /api/v1/events` (a Feature or a FeatureCollection batch) and `POST /api/v1/readings`.

use anyhow::{Context, Result};
use serde_json::{json, Value};

use e2e::{dispecer_bin, dispecer_token, free_port, repo_root, Broker, Dispecer, TempDir};

async fn post(
    server: &Dispecer,
    path: &str,
    token: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> Result<(u16, String, Value)> {
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", server.http))
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    Ok((status, ctype, resp.json().await.unwrap_or(Value::Null)))
}

fn fault(id: &str, lon: f64, lat: f64) -> Value {
    json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {"id": id, "kind": "fault", "category": "water_leak", "description": "Avarie"}})
}

#[tokio::test(flavor = "multi_thread")]
async fn http_ingest_with_tokens() -> Result<()> {
    let dir = TempDir::new("dispecer-http");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    let city = repo_root().join("cities/brasov");
    let city = city.to_str().context("path")?;
    let water = dispecer_token(&db, &["create", "--city", city, "--operator", "apa-brasov"])?;
    let gateway = dispecer_token(&db, &["create", "--city", city, "--readings"])?;
    assert!(water.starts_with("dsp_") && water.len() == 68, "{water}");
    let out = std::process::Command::new(dispecer_bin()?)
        .args([
            "token",
            "create",
            "--city",
            city,
            "--operator",
            "no-such-agency",
            "--database-url",
            &db,
        ])
        .output()?;
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no-such-agency")
    );
    let server = Dispecer::start(&dir, &db, &Broker::Embedded(free_port())).await?;

    let one = fault("avarie-http-1", 25.6050, 45.6500).to_string();
    for (token, status) in [
        (None, 401),
        (Some("dsp_wrong"), 401),
        (Some(gateway.as_str()), 403),
    ] {
        let (s, ctype, body) = post(&server, "/api/v1/events", token, one.clone()).await?;
        assert_eq!(
            (s, ctype.as_str()),
            (status, "application/problem+json"),
            "{body}"
        );
    }
    let (s, _, body) = post(&server, "/api/v1/events", Some(&water), one.clone()).await?;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["accepted"], 1);
    let incident = body["results"][0]["incident"]
        .as_str()
        .context("incident id")?
        .to_owned();
    let (_, _, got) = server.get(&format!("/api/v1/incidents/{incident}")).await?;
    assert_eq!(got["properties"]["agency"], "apa-brasov");
    // The same body again: recognised, nothing new.
    let (_, _, again) = post(&server, "/api/v1/events", Some(&water), one).await?;
    assert_eq!(
        (again["accepted"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    // A batch with a bad feature: the good ones are taken, the bad one is named.
    let batch = json!({"type": "FeatureCollection", "features": [
        fault("avarie-http-2", 25.6200, 45.6600),
        fault("avarie-http-3", 25.5800, 45.6400),
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [45.64, 25.58]}, "properties": {"id": "x", "kind": "fault", "category": "water_leak"}},
    ]});
    let (s, _, body) = post(&server, "/api/v1/events", Some(&water), batch.to_string()).await?;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["rejected"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(
        body["results"][2]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("outside the city")),
        "{body}"
    );
    // One bad feature alone: 400 with the reason; too large: 413.
    let (s, ctype, body) = post(
        &server,
        "/api/v1/events",
        Some(&water),
        "{\"type\": \"Feature\"",
    )
    .await?;
    assert_eq!(
        (s, ctype.as_str()),
        (400, "application/problem+json"),
        "{body}"
    );
    // A FeatureCollection with no `features` array is refused, not taken as an empty batch.
    let (s, ctype, body) = post(
        &server,
        "/api/v1/events",
        Some(&water),
        json!({"type": "FeatureCollection"}).to_string(),
    )
    .await?;
    assert_eq!(
        (s, ctype.as_str()),
        (400, "application/problem+json"),
        "{body}"
    );
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("features")),
        "{body}"
    );
    let (s, ctype, _) = post(
        &server,
        "/api/v1/events",
        Some(&water),
        vec![b' '; 6 * 1024 * 1024],
    )
    .await?;
    assert_eq!((s, ctype.as_str()), (413, "application/problem+json"));

    // Readings of two counters in one pack.
    let (_, _, city_doc) = server.get("/api/v1/city").await?;
    let s1 = city_doc["sensors"]["features"][0]["id"]
        .as_str()
        .context("sensor")?
        .to_owned();
    let s2 = city_doc["sensors"]["features"][1]["id"]
        .as_str()
        .context("sensor")?
        .to_owned();
    let t = chrono::Utc::now().timestamp() - 60;
    let pack = json!([
        {"bt": t, "n": format!("{s1}/count"), "u": "count", "v": 5},
        {"n": format!("{s2}/speed"), "u": "km/h", "v": 38.0},
    ]);
    let (s, _, body) = post(&server, "/api/v1/readings", Some(&water), pack.to_string()).await?;
    assert_eq!(s, 403, "an operator's token may not send readings: {body}");
    let (s, _, body) = post(
        &server,
        "/api/v1/readings",
        Some(&gateway),
        pack.to_string(),
    )
    .await?;
    assert_eq!(
        (s, body["readings"].as_u64(), body["new"].as_u64()),
        (200, Some(2), Some(2)),
        "{body}"
    );
    let (s, _, body) = post(
        &server,
        "/api/v1/readings",
        Some(&gateway),
        json!([{"n": "nowhere/count", "v": 1}]).to_string(),
    )
    .await?;
    assert_eq!(s, 400);
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("nowhere")),
        "{body}"
    );

    // A revoked token stops working.
    let prefix = &water[..12];
    dispecer_token(&db, &["revoke", prefix])?;
    let listed = dispecer_token(&db, &["list"])?;
    assert!(
        listed.contains(prefix) && listed.contains("revoked"),
        "{listed}"
    );
    let (s, _, _) = post(
        &server,
        "/api/v1/events",
        Some(&water),
        fault("avarie-http-4", 25.6, 45.65).to_string(),
    )
    .await?;
    assert_eq!(s, 401);
    server.stop();
    Ok(())
}
