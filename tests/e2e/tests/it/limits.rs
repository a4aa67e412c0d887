//! What every answer carries (security headers) and what one client may take (reports per
//! address, Open311 requests, live WebSocket clients), against the binary with its own default
//! limits. Other clients are other loopback addresses (127.0.0.2 is this machine too), or a
//! client named by a trusted proxy's `X-Forwarded-For`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use reqwest::header::HeaderMap;
use serde_json::Value;

use e2e::{dispecer_token, free_port, repo_root, Broker, Dispecer, TempDir};

/// A client whose connections come from `ip` (any 127.x address is this machine).
fn client_from(ip: [u8; 4]) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::from(ip)))
        .build()?)
}

/// A citizen's report as the citizens' page sends it (multipart, no photo).
fn report_body(id: &str) -> (String, String) {
    let boundary = "dispecer-e2e-boundary";
    let fields = [
        ("id", id),
        ("category", "pothole"),
        ("lat", "45.6419"),
        ("lon", "25.5887"),
        ("description", "Groapă"),
    ];
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn file_report(
    client: &reqwest::Client,
    server: &Dispecer,
    id: &str,
) -> Result<reqwest::Response> {
    let (content_type, body) = report_body(id);
    Ok(client
        .post(format!("{}/api/v1/reports", server.http))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await?)
}

fn open311_form(key: &str, n: usize) -> String {
    format!("api_key={key}&service_code=pothole&lat=45.6419&long=25.5887&description=Groapa+{n}")
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// The headers every answer must carry, whatever answered.
fn assert_security_headers(what: &str, h: &HeaderMap) {
    let csp = header(h, "content-security-policy");
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(
            csp.contains(directive),
            "{what}: CSP {csp:?} lacks {directive}"
        );
    }
    assert!(!csp.contains("unsafe-inline"), "{what}: CSP {csp:?}");
    assert!(!csp.contains("unsafe-eval"), "{what}: CSP {csp:?}");
    assert_eq!(header(h, "x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header(h, "x-frame-options"), "DENY", "{what}");
    assert_eq!(header(h, "referrer-policy"), "no-referrer", "{what}");
    assert_eq!(
        header(h, "cross-origin-opener-policy"),
        "same-origin",
        "{what}"
    );
    let permissions = header(h, "permissions-policy");
    assert!(
        permissions.contains("geolocation=(self)") && permissions.contains("microphone=()"),
        "{what}: {permissions:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn security_headers_on_every_answer() -> Result<()> {
    let dir = TempDir::new("dispecer-headers");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    // 127.0.0.3 is a TLS-terminating proxy in front.
    let server = Dispecer::start_with_args(
        &dir,
        &db,
        &Broker::Embedded(free_port()),
        &repo_root().join("cities/brasov"),
        &["--trusted-proxy", "127.0.0.3"],
    )
    .await?;
    let http = reqwest::Client::new();
    for (path, status) in [
        ("/", 200),
        ("/app.js", 200),
        ("/report/", 200),
        ("/api/v1/health", 200),
        ("/api/v1/city", 200),
        ("/open311/v2/discovery.json", 200),
        ("/open311/v2/services.xml", 200),
        // Private reads: 401 without a login (the headers all the same).
        ("/api/v1/incidents/no-such-incident", 401),
        ("/open311/v2/nothing.json", 404),
        ("/no/such/page", 404),
        ("/api/v1/stream", 401),
    ] {
        let resp = http.get(format!("{}{path}", server.http)).send().await?;
        assert_eq!(resp.status().as_u16(), status, "GET {path}");
        assert_security_headers(path, resp.headers());
        assert!(
            resp.headers().get("strict-transport-security").is_none(),
            "{path}: HSTS over plain HTTP"
        );
    }
    // A refused write and a method not allowed carry them too.
    let resp = http
        .post(format!("{}/api/v1/reports", server.http))
        .body("x")
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 400);
    assert_security_headers("POST /api/v1/reports", resp.headers());
    let resp = http
        .delete(format!("{}/api/v1/city", server.http))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 405);
    assert_security_headers("DELETE /api/v1/city", resp.headers());

    // HTTPS at the trusted proxy: HSTS. The same claim from anyone else: none.
    let proxy = client_from([127, 0, 0, 3])?;
    let resp = proxy
        .get(format!("{}/", server.http))
        .header("x-forwarded-proto", "https")
        .send()
        .await?;
    assert_eq!(
        header(resp.headers(), "strict-transport-security"),
        "max-age=31536000"
    );
    let resp = http
        .get(format!("{}/", server.http))
        .header("x-forwarded-proto", "https")
        .send()
        .await?;
    assert!(resp.headers().get("strict-transport-security").is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_are_limited_per_client() -> Result<()> {
    let dir = TempDir::new("dispecer-rate");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    let city = repo_root().join("cities/brasov");
    let app = dispecer_token(
        &db,
        &[
            "create",
            "--city",
            city.to_str().context("path")?,
            "--citizens-app",
        ],
    )?;
    // The binary's default limits (10 a minute, burst 10); 127.0.0.3 a trusted proxy.
    let server = Dispecer::start_with_args(
        &dir,
        &db,
        &Broker::Embedded(free_port()),
        &city,
        &["--trusted-proxy", "127.0.0.3"],
    )
    .await?;
    let citizen = client_from([127, 0, 0, 1])?;
    let started = Instant::now();
    for i in 0..10 {
        let resp = file_report(&citizen, &server, &format!("rate-limit-{i:04}")).await?;
        assert_eq!(
            resp.status().as_u16(),
            200,
            "report {i}: {}",
            resp.text().await?
        );
    }
    // Within the minute (10 a minute: one more is allowed 6 s after the burst).
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "too slow to test"
    );
    let resp = file_report(&citizen, &server, "rate-limit-0010").await?;
    assert_eq!(resp.status().as_u16(), 429);
    let retry: u64 = header(resp.headers(), "retry-after").parse()?;
    assert!((1..=6).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        header(resp.headers(), "content-type"),
        "application/problem+json"
    );
    assert_security_headers("429", resp.headers());
    let problem: Value = resp.json().await?;
    assert_eq!(problem["status"], 429);
    let detail = problem["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("too many reports") && detail.contains("prea multe sesizări"),
        "{problem}"
    );
    // The same form again is still refused: nothing was filed.
    let resp = file_report(&citizen, &server, "rate-limit-0010").await?;
    assert_eq!(resp.status().as_u16(), 429);

    // Open311 shares the citizen's allowance, and answers in its own error format.
    for fmt in ["json", "xml"] {
        let resp = citizen
            .post(format!("{}/open311/v2/requests.{fmt}", server.http))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(open311_form(&app, 0))
            .send()
            .await?;
        assert_eq!(resp.status().as_u16(), 429, "{fmt}");
        assert!(header(resp.headers(), "retry-after").parse::<u64>().is_ok());
        let text = resp.text().await?;
        if fmt == "json" {
            let errors: Value = serde_json::from_str(&text)?;
            assert_eq!(errors[0]["code"], 429, "{text}");
            assert!(
                errors[0]["description"]
                    .as_str()
                    .is_some_and(|d| d.contains("too many reports")),
                "{text}"
            );
        } else {
            assert!(text.contains("<code>429</code>"), "{text}");
        }
    }
    // X-Forwarded-For from an untrusted peer changes nothing.
    let resp = citizen
        .post(format!("{}/api/v1/reports", server.http))
        .header("x-forwarded-for", "198.51.100.200")
        .header("content-type", report_body("rate-limit-spoof").0)
        .body(report_body("rate-limit-spoof").1)
        .send()
        .await?;
    assert_eq!(
        resp.status().as_u16(),
        429,
        "X-Forwarded-For must not be believed"
    );

    // Another client is unaffected: another address, or one a trusted proxy names.
    let neighbour = client_from([127, 0, 0, 2])?;
    let resp = file_report(&neighbour, &server, "rate-limit-neighbour").await?;
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await?);
    let resp = neighbour
        .post(format!("{}/open311/v2/requests.json", server.http))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(open311_form(&app, 1))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await?);
    let proxy = client_from([127, 0, 0, 3])?;
    let (content_type, body) = report_body("rate-limit-proxied");
    let resp = proxy
        .post(format!("{}/api/v1/reports", server.http))
        .header("x-forwarded-for", "203.0.113.7")
        .header("content-type", content_type)
        .body(body)
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await?);

    // The reads stay open to the limited client.
    let resp = citizen
        .get(format!("{}/api/v1/public/incidents", server.http))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);

    // After Retry-After, the limited client may file again.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let resp = file_report(&citizen, &server, "rate-limit-later").await?;
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_clients_are_capped() -> Result<()> {
    let dir = TempDir::new("dispecer-ws-cap");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    let server = Dispecer::start_with_args(
        &dir,
        &db,
        &Broker::Embedded(free_port()),
        &repo_root().join("cities/brasov"),
        &["--max-stream-clients", "2"],
    )
    .await?;
    let url = format!("{}/api/v1/stream", server.http.replacen("http", "ws", 1));
    let cookie = server.staff().await?.cookie.clone();
    let request = || -> Result<_> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut r = url.as_str().into_client_request()?;
        r.headers_mut().insert("cookie", cookie.parse()?);
        Ok(r)
    };
    let (first, _) = tokio_tungstenite::connect_async(request()?).await?;
    let (second, _) = tokio_tungstenite::connect_async(request()?).await?;
    match tokio_tungstenite::connect_async(request()?).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 503);
            assert_eq!(
                header(resp.headers(), "content-type"),
                "application/problem+json"
            );
            assert!(header(resp.headers(), "retry-after").parse::<u64>().is_ok());
            let body = resp.body().as_deref().unwrap_or_default();
            let problem: Value = serde_json::from_slice(body)?;
            assert!(
                problem["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("too many live clients")),
                "{problem}"
            );
        }
        Err(e) => anyhow::bail!("the third client failed otherwise: {e}"),
        Ok(_) => anyhow::bail!("a third client was let in beyond the cap of 2"),
    }
    // Plain HTTP is not counted against the WebSocket cap.
    let resp = reqwest::get(format!("{}/api/v1/health", server.http)).await?;
    assert_eq!(resp.status().as_u16(), 200);
    // A client that leaves frees its place.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(15);
    let third = loop {
        match tokio_tungstenite::connect_async(request()?).await {
            Ok((ws, _)) => break ws,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => anyhow::bail!("the freed place was not given back: {e}"),
        }
    };
    drop((second, third));
    Ok(())
}

/// A utility flooding its MQTT topic beyond its allowance (here a burst of 3, then 1 a minute):
/// the excess is refused as dead letters "rate limit", counted as rejected in its own feed, and
/// another utility publishing meanwhile is not held up.
#[tokio::test(flavor = "multi_thread")]
async fn an_mqtt_sender_beyond_its_rate_gets_dead_letters_others_do_not() -> Result<()> {
    let dir = TempDir::new("dispecer-mqtt-rate");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    let server = Dispecer::start_with_args(
        &dir,
        &db,
        &Broker::Embedded(free_port()),
        &repo_root().join("cities/brasov"),
        &["--mqtt-sender-per-minute", "1", "--mqtt-sender-burst", "3"],
    )
    .await?;
    let event = |id: &str, lon: f64| {
        serde_json::json!({"type": "Feature",
            "geometry": {"type": "Point", "coordinates": [lon, 45.6500]},
            "properties": {"id": id, "kind": "fault", "category": "water_leak",
                "description": "Conductă spartă"}})
        .to_string()
    };
    let mut mqtt = e2e::MqttClient::connect(server.mqtt_port, &[]).await?;
    for i in 0..6 {
        mqtt.publish(
            "dispecer/v1/in/utilities/apa-brasov/events",
            event(&format!("flood-{i}"), 25.58 + f64::from(i) * 0.005),
        )
        .await?;
    }
    mqtt.publish(
        "dispecer/v1/in/utilities/distrigaz-sud/events",
        serde_json::json!({"type": "Feature",
            "geometry": {"type": "Point", "coordinates": [25.6050, 45.6500]},
            "properties": {"id": "gaz-1", "kind": "fault", "category": "gas_smell"}})
        .to_string(),
    )
    .await?;
    // Every message is answered (acknowledged) whatever happened to it; wait for all seven.
    let deadline = Instant::now() + Duration::from_secs(20);
    let feeds = loop {
        let (_, _, feeds) = server.get("/api/v1/feeds").await?;
        let received: u64 = feeds["feeds"]
            .as_array()
            .context("feeds")?
            .iter()
            .filter_map(|f| f["received"].as_u64())
            .sum();
        if received >= 7 {
            break feeds;
        }
        anyhow::ensure!(Instant::now() < deadline, "not all counted: {feeds}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let feed = |name: &str| {
        feeds["feeds"]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["feed"] == name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let flood = feed("utility:apa-brasov");
    assert_eq!(
        (flood["accepted"].as_u64(), flood["rejected"].as_u64()),
        (Some(3), Some(3)),
        "{flood}"
    );
    let other = feed("utility:distrigaz-sud");
    assert_eq!(other["accepted"].as_u64(), Some(1), "{other}");
    let (_, _, letters) = server.get("/api/v1/dead-letters").await?;
    let limited: Vec<&Value> = letters["dead_letters"]
        .as_array()
        .context("dead letters")?
        .iter()
        .filter(|d| {
            d["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("rate limit: utility:apa-brasov"))
        })
        .collect();
    assert_eq!(limited.len(), 3, "{letters}");
    // The refused payloads are kept whole (they were never looked at).
    assert!(limited
        .iter()
        .all(|d| d["payload"].as_str().is_some_and(|p| p.contains("flood-"))));
    Ok(())
}
