//! Two `dispecer` instances on one Mosquitto and one TimescaleDB (cluster mode, MQTT shared
//! subscriptions): both take a share of a stream of citizen reports, both consoles see every
//! change, an operator acts from the follower's and a citizen files a report at the follower's
//! address (both forwarded to the leader); the leader is killed with SIGKILL mid-stream,
//! the follower takes over and carries on; every report the broker acknowledged to its publisher
//! is stored exactly once (counted by event id), and the inbox is empty.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use serde_json::Value;

use e2e::{
    citizen_report, dispecer_user_add, login, repo_root, Broker, Dispecer, Mosquitto, MqttClient,
    PgDatabase, TempDir, GENEROUS_LIMITS,
};

const REPORTS: usize = 2000;
const KILL_AT: usize = 900;

/// Starts instance `name` of the cluster.
async fn instance(dir: &TempDir, db: &PgDatabase, broker: &Broker, name: &str) -> Result<Dispecer> {
    let mut args = GENEROUS_LIMITS.to_vec();
    args.extend(["--instance-id", name]);
    Dispecer::start_with_args(
        dir,
        &db.url,
        broker,
        &repo_root().join("cities/brasov"),
        &args,
    )
    .await
}

/// `GET /api/v1/health`'s `cluster` part.
async fn cluster_health(server: &Dispecer) -> Result<Value> {
    let (status, _, health) = server.get("/api/v1/health").await?;
    if status != 200 {
        bail!("health answered {status}: {health}");
    }
    Ok(health["cluster"].clone())
}

/// Waits until `server`'s role is `role`.
async fn wait_role(server: &Dispecer, role: &str, within: Duration) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let c = cluster_health(server).await?;
        if c["role"] == role {
            return Ok(c);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("not {role} within {within:?}: {c}\n{}", server.log());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The incident frames a console's WebSocket received so far, read without pause in the
/// background (so that the server never waits for this client). The only place the tests here
/// open the stream: when it comes to need a login, its session cookie goes here.
fn watch_stream(http: &str, session_cookie: &str) -> Result<Arc<Mutex<Vec<Value>>>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}/api/v1/stream", http.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("cookie", session_cookie.parse()?);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let frames = seen.clone();
    tokio::spawn(async move {
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(request).await else {
            return;
        };
        while let Some(Ok(msg)) = ws.next().await {
            if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
                if let Ok(v) = serde_json::from_str::<Value>(t.as_str()) {
                    if v["type"] == "incident" {
                        frames.lock().unwrap().push(v);
                    }
                }
            }
        }
    });
    Ok(seen)
}

/// Waits until `frames` holds a frame of an incident at (`lon`, `lat`); returns its id.
async fn wait_frame(frames: &Mutex<Vec<Value>>, lon: f64, lat: f64, who: &str) -> Result<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found = frames.lock().unwrap().iter().find_map(|f| {
            let c = &f["incident"]["geometry"]["coordinates"];
            let at = (c[0].as_f64()?, c[1].as_f64()?);
            ((at.0 - lon).abs() < 1e-6 && (at.1 - lat).abs() < 1e-6)
                .then(|| f["incident"]["id"].as_str().map(str::to_owned))
                .flatten()
        });
        if let Some(id) = found {
            return Ok(id);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{who}'s console never showed the incident at ({lon}, {lat})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) const BOUNDARY: &str = "dispecer-cluster-boundary";

/// A citizen's report as the citizens' page sends it (multipart, no photo); also the cluster
/// TLS test's.
pub(crate) fn report_form(id: &str, lon: f64, lat: f64) -> String {
    let (lon, lat) = (lon.to_string(), lat.to_string());
    let fields = [
        ("id", id),
        ("category", "pothole"),
        ("lat", lat.as_str()),
        ("lon", lon.as_str()),
        ("description", "Groapă lângă stație"),
    ];
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{BOUNDARY}--\r\n"));
    body
}

/// How many events with id `id` are stored.
async fn stored_once(db: &PgDatabase, id: &str) -> Result<i64> {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await?;
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM events WHERE id = $1")
            .bind(id)
            .fetch_one(&mut conn)
            .await?,
    )
}

/// (events of the load stored, distinct ids among them, rows waiting in the inbox).
async fn counts(db: &PgDatabase) -> Result<(i64, i64, i64)> {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await?;
    let (n, distinct): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT id) FROM events WHERE id LIKE 'citizen:cl-%'",
    )
    .fetch_one(&mut conn)
    .await?;
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox")
        .fetch_one(&mut conn)
        .await?;
    Ok((n, distinct, inbox))
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_share_the_load_and_survive_the_leaders_death() -> Result<()> {
    let dir = TempDir::new("dispecer-cluster");
    let db = PgDatabase::create().await?;
    let mosquitto = Mosquitto::start().await?;
    let broker = Broker::External(mosquitto.url());
    let a = instance(&dir, &db, &broker, "a").await?;
    wait_role(&a, "leader", Duration::from_secs(15)).await?;
    let b = instance(&dir, &db, &broker, "b").await?;
    let follower = wait_role(&b, "follower", Duration::from_secs(5)).await?;
    assert_eq!(follower["instance"], "b");

    // An operator logs in on the follower's console (sessions live in the shared database).
    let (ok, err) = dispecer_user_add(&db.url, "ioana", "operator", None, "parola-lunga-1")?;
    assert!(ok, "{err}");
    let session = login(&b.http, "ioana", "parola-lunga-1").await?;
    let on_a = watch_stream(&a.http, &session.cookie)?;
    let on_b = watch_stream(&b.http, &session.cookie)?;

    // A citizen files a report (the citizens' page's multipart form) at the follower's address:
    // forwarded to the leader, it answers with its tracking code, and it is stored once.
    let filed = reqwest::Client::new()
        .post(format!("{}/api/v1/reports", b.http))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(report_form("cl-on-follower", 25.6031, 45.6447))
        .send()
        .await?;
    let status = filed.status().as_u16();
    let answer: Value = filed.json().await?;
    assert_eq!(status, 200, "a citizen's report on the follower: {answer}");
    let code = answer["tracking_code"]
        .as_str()
        .context("a tracking code")?;
    let (status, _, tracked) = a.get(&format!("/api/v1/public/reports/{code}")).await?;
    assert_eq!(status, 200, "its tracking code at the leader: {tracked}");
    assert_eq!(stored_once(&db, "citizen:web-cl-on-follower").await?, 1);

    let mut publisher = MqttClient::connect(mosquitto.port(), &[]).await?;
    let mut a = Some(a);
    let mut acknowledged = 0;
    for i in 0..REPORTS {
        if i == KILL_AT {
            // Before the kill: both took a share, and the follower's console follows.
            let shares = (
                cluster_health(&b).await?,
                a.as_ref().context("leader")?.get("/api/v1/health").await?.2,
            );
            let queued = shares.0["inbox_queued"].as_u64().unwrap_or(0);
            let leader_own = shares.1["events"]
                .as_u64()
                .unwrap_or(0)
                .saturating_sub(shares.1["cluster"]["inbox_drained"].as_u64().unwrap_or(0));
            eprintln!("before the kill: follower queued {queued}, leader took {leader_own} itself");
            assert!(queued > 0, "the follower took no share: {}", shares.0);
            assert!(leader_own > 0, "the leader took no share: {}", shares.1);

            // A report the leader's engine decides appears on both consoles.
            let (lon, lat) = (25.6012, 45.6433);
            publisher
                .publish(
                    "dispecer/v1/in/citizen/reports",
                    citizen_report("cl-before", "gas_smell", lon, lat),
                )
                .await?;
            let id = wait_frame(&on_b, lon, lat, "the follower").await?;
            wait_frame(&on_a, lon, lat, "the leader").await?;
            // An operator acts from the follower's console: forwarded to the leader.
            let acted = reqwest::Client::new()
                .post(format!("{}/api/v1/incidents/{id}/actions", b.http))
                .header("cookie", &session.cookie)
                .header("x-csrf-token", &session.csrf)
                .header("content-type", "application/json")
                .body(r#"{"action": "acknowledge", "reason": "de pe consola celei de-a doua instanțe"}"#)
                .send()
                .await?;
            let status = acted.status().as_u16();
            let body = acted.text().await?;
            assert_eq!(status, 200, "an action on the follower: {body}");
            let (_, _, incident) = b.get(&format!("/api/v1/incidents/{id}")).await?;
            assert_eq!(
                incident["properties"]["status"], "acknowledged",
                "{incident}"
            );

            // Killed mid-stream.
            if let Some(leader) = a.take() {
                leader.kill();
            }
        }
        let lon = 25.57 + (i % 40) as f64 * 0.001;
        let lat = 45.63 + (i / 40) as f64 * 0.0005;
        let category = if i % 2 == 0 {
            "pothole"
        } else {
            "street_light_out"
        };
        publisher
            .publish(
                "dispecer/v1/in/citizen/reports",
                citizen_report(&format!("cl-{i}"), category, lon, lat),
            )
            .await?;
        acknowledged += 1;
    }
    assert_eq!(
        acknowledged, REPORTS,
        "the broker acknowledged every report"
    );

    // The follower took over, and its console (the same WebSocket) goes on.
    let survivor = wait_role(&b, "leader", Duration::from_secs(30)).await?;
    eprintln!("after the kill: {survivor}");
    let (lon, lat) = (25.6052, 45.6455);
    publisher
        .publish(
            "dispecer/v1/in/citizen/reports",
            citizen_report("cl-after", "gas_smell", lon, lat),
        )
        .await?;
    wait_frame(&on_b, lon, lat, "the survivor").await?;

    // Every acknowledged report stored exactly once, the dead leader's session included.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (n, distinct, inbox) = counts(&db).await?;
        if n > distinct {
            bail!("{n} events stored for {distinct} ids: something was stored twice");
        }
        let want = REPORTS as i64 + 2;
        if n == want && inbox == 0 {
            eprintln!("{want} of {want} reports stored exactly once; lost 0, twice 0");
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "{n} of {want} reports stored ({inbox} still in the inbox)\n{}",
                b.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nothing arrives late, twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (n, distinct, _) = counts(&db).await?;
    assert_eq!((n, distinct), (REPORTS as i64 + 2, REPORTS as i64 + 2));
    b.stop();
    db.drop_database().await?;
    Ok(())
}
