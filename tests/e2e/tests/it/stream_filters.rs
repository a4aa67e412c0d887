//! The WebSocket stream's filters against the real binary: two clients with different filters
//! each hear of their incidents only (snapshot and changes), one hears once that an incident left
//! its filter (reassigned away) and then nothing more of it, and bad parameters are an HTTP 400
//! naming the parameter before any upgrade.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite;

use e2e::{citizen_report, free_port, Broker, Dispecer, MqttClient, StreamClient, TempDir};

/// A box around the Old Town.
const BOX: &str = "25.57,45.63,25.61,45.66";

/// `(lon, lat)` of an incident frame's incident.
fn place(incident: &Value) -> (f64, f64) {
    let c = &incident["geometry"]["coordinates"];
    (
        c[0].as_f64().unwrap_or(f64::NAN),
        c[1].as_f64().unwrap_or(f64::NAN),
    )
}

fn at(incident: &Value, (lon, lat): (f64, f64)) -> bool {
    let (x, y) = place(incident);
    (x - lon).abs() < 1e-6 && (y - lat).abs() < 1e-6
}

/// Reads incident frames until one is at `sentinel`; returns every frame before it.
async fn frames_until(client: &mut StreamClient, sentinel: (f64, f64)) -> Result<Vec<Value>> {
    let mut before = Vec::new();
    loop {
        let frame = client.next_frame().await?;
        if frame["type"] != "incident" {
            bail!("unexpected frame {frame}");
        }
        if at(&frame["incident"], sentinel) {
            return Ok(before);
        }
        before.push(frame);
    }
}

/// The status and body of a refused upgrade asked with `who`'s session.
async fn refused(http: &str, query: &str, who: &e2e::Login) -> Result<(u16, String)> {
    use tungstenite::client::IntoClientRequest;
    let mut request = format!(
        "{}/api/v1/stream?{query}",
        http.replacen("http://", "ws://", 1)
    )
    .into_client_request()?;
    request.headers_mut().insert("cookie", who.cookie.parse()?);
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => bail!("{query} was accepted"),
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            let kind = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            assert_eq!(kind, "application/problem+json", "{query}");
            Ok((resp.status().as_u16(), body))
        }
        Err(e) => bail!("{query}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_filters() -> Result<()> {
    let dir = TempDir::new("dispecer-stream-filters");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    let server = Dispecer::start(&dir, &db, &Broker::Embedded(free_port())).await?;
    let result = async {
        // Bad parameters: 400 problem+json naming the parameter, no upgrade.
        for (query, parameter) in [
            ("bbox=25.61,45.63,25.57,45.66", "bbox"),
            ("bbox=25.57,45.63,25.61,95", "bbox"),
            ("bbox=25.57,45.63,east,45.66", "bbox"),
            ("categories=pothole,volcano", "categories"),
            ("agency=nasa", "agency"),
            ("status=closed", "status"),
        ] {
            let (status, body) = refused(&server.http, query, server.staff().await?).await?;
            assert_eq!(status, 400, "{query}: {body}");
            let problem: Value = serde_json::from_str(&body).context("problem+json")?;
            let detail = problem["detail"].as_str().unwrap_or_default();
            assert!(detail.starts_with(parameter), "{query}: {detail}");
        }

        let mut mqtt = MqttClient::connect(server.mqtt_port, &[]).await?;
        // Before anyone connects: a pothole in the box, one outside it, and a water leak in it.
        let pothole_in = (25.5900, 45.6420);
        let pothole_out = (25.6300, 45.6700);
        let leak_in = (25.5950, 45.6450);
        for (id, category, (lon, lat)) in [
            ("sf-1", "pothole", pothole_in),
            ("sf-2", "pothole", pothole_out),
            ("sf-3", "water_leak", leak_in),
        ] {
            mqtt.publish(
                "dispecer/v1/in/citizen/reports",
                citizen_report(id, category, lon, lat),
            )
            .await?;
        }
        // Wait until the three are stored.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while server.get("/api/v1/incidents").await?.2["features"]
            .as_array()
            .map_or(0, Vec::len)
            < 3
        {
            anyhow::ensure!(std::time::Instant::now() < deadline, "reports not stored");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }

        // Client A: potholes in the box. Client B: what the water company handles or hears of.
        let (mut a, snap_a) =
            server.stream_filtered(&format!("bbox={BOX}&categories=pothole"))
                .await?;
        let (mut b, snap_b) = server.stream_filtered("agency=apa-brasov&status=open",
        )
        .await?;
        let features = |snap: &Value| snap["incidents"]["features"].as_array().cloned().unwrap_or_default();
        let snap_a = features(&snap_a);
        let snap_b = features(&snap_b);
        assert_eq!(snap_a.len(), 1, "A's snapshot: {snap_a:?}");
        assert!(at(&snap_a[0], pothole_in), "{snap_a:?}");
        assert_eq!(snap_b.len(), 1, "B's snapshot: {snap_b:?}");
        assert!(at(&snap_b[0], leak_in), "{snap_b:?}");
        assert_eq!(snap_b[0]["properties"]["agency"], "apa-brasov");
        let pothole_id = snap_a[0]["id"].as_str().context("pothole id")?.to_owned();

        // Live: another of each, then a sentinel each client matches (far enough from the
        // others not to join them). Neither hears of the other's.
        let pothole_in_2 = (25.6050, 45.6550);
        let leak_out = (25.6400, 45.6800);
        let sentinel_a = (25.5750, 45.6350);
        let sentinel_b = (25.6200, 45.6250);
        for (id, category, (lon, lat)) in [
            ("sf-4", "pothole", pothole_in_2),
            ("sf-5", "pothole", (25.6500, 45.6900)),
            ("sf-6", "water_leak", leak_out),
            ("sf-7", "fallen_tree", (25.5920, 45.6430)),
            ("sf-8", "pothole", sentinel_a),
            ("sf-9", "water_leak", sentinel_b),
        ] {
            mqtt.publish(
                "dispecer/v1/in/citizen/reports",
                citizen_report(id, category, lon, lat),
            )
            .await?;
        }
        let heard_a = frames_until(&mut a, sentinel_a).await?;
        assert_eq!(heard_a.len(), 1, "A heard {heard_a:?}");
        assert!(at(&heard_a[0]["incident"], pothole_in_2), "{heard_a:?}");
        assert_eq!(heard_a[0]["change"], "opened");
        let heard_b = frames_until(&mut b, sentinel_b).await?;
        assert_eq!(heard_b.len(), 1, "B heard {heard_b:?}");
        assert!(at(&heard_b[0]["incident"], leak_out), "{heard_b:?}");

        // An operator hands the first pothole to the water company: B now hears of it; then back
        // to roads: B hears once that it left (left_filter), then nothing of its note.
        let city = e2e::repo_root().join("cities/brasov");
        let city = city.to_str().context("city path")?;
        let operator = e2e::dispecer_token(&db, &["create", "--city", city, "--dispatcher"])?;
        let roads = snap_a[0]["properties"]["agency"]
            .as_str()
            .context("pothole agency")?
            .to_owned();
        let act = |body: Value| {
            let req = reqwest::Client::new()
                .post(format!(
                    "{}/api/v1/incidents/{pothole_id}/actions",
                    server.http
                ))
                .bearer_auth(&operator)
                .json(&body);
            async move {
                let resp = req.send().await?;
                anyhow::ensure!(resp.status().is_success(), "{body}: {}", resp.text().await?);
                anyhow::Ok(())
            }
        };
        act(json!({"action": "assign", "agency": "apa-brasov", "reason": "conductă spartă sub groapă"})).await?;
        let came = b.next_frame().await?;
        assert_eq!(came["incident"]["id"], pothole_id.as_str(), "{came}");
        assert!(came.get("left_filter").is_none(), "{came}");
        act(json!({"action": "assign", "agency": roads, "reason": "nu era conducta"})).await?;
        let left = b.next_frame().await?;
        assert_eq!(left["incident"]["id"], pothole_id.as_str(), "{left}");
        assert_eq!(left["left_filter"], true, "{left}");
        act(json!({"action": "note", "reason": "echipa e pe drum"})).await?;
        let sentinel_b2 = (25.5600, 45.6600);
        let sentinel_a2 = (25.5780, 45.6580);
        for (id, category, (lon, lat)) in [
            ("sf-10", "water_leak", sentinel_b2),
            ("sf-11", "pothole", sentinel_a2),
        ] {
            mqtt.publish(
                "dispecer/v1/in/citizen/reports",
                citizen_report(id, category, lon, lat),
            )
            .await?;
        }
        let after = frames_until(&mut b, sentinel_b2).await?;
        assert!(after.is_empty(), "B heard more of what left it: {after:?}");
        // A's pothole never left A's filter: every change of it, none marked as leaving.
        let heard_a = frames_until(&mut a, sentinel_a2).await?;
        let agencies: Vec<&str> = heard_a
            .iter()
            .map(|f| {
                assert_eq!(f["incident"]["id"], pothole_id.as_str(), "{f}");
                assert!(f.get("left_filter").is_none(), "{f}");
                f["incident"]["properties"]["agency"].as_str().unwrap_or_default()
            })
            .collect();
        assert_eq!(agencies, ["apa-brasov", roads.as_str(), roads.as_str()], "A heard {heard_a:?}");
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if result.is_err() {
        eprintln!("dispecer log:\n{}", server.log());
    }
    server.stop();
    result
}
