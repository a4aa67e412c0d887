//! People's accounts through the binary: `dispecer user add`, login and logout, the session
//! cookie's attributes, CSRF on actions, an agency user limited to its agency (list, stream,
//! actions), and the login rate limits per user name and per client address.

use anyhow::{Context, Result};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use e2e::{
    citizen_report, dispecer_user_add, free_port, login, login_raw, Broker, Dispecer, Login,
    MqttClient, StreamClient, TempDir,
};

const PASSWORD: &str = "parola-lunga-1";

/// `POST /api/v1/incidents/{id}/actions` with a session cookie and, if given, a CSRF token.
async fn act(
    http: &str,
    who: &Login,
    csrf: Option<&str>,
    id: &str,
    body: Value,
) -> Result<(u16, Value)> {
    let mut req = reqwest::Client::new()
        .post(format!("{http}/api/v1/incidents/{id}/actions"))
        .header("cookie", &who.cookie)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(c) = csrf {
        req = req.header("x-csrf-token", c);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

async fn get_as(http: &str, who: &Login, path: &str) -> Result<(u16, Value)> {
    let resp = reqwest::Client::new()
        .get(format!("{http}{path}"))
        .header("cookie", &who.cookie)
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client of the stream with `cookie`, and the ids and agencies of its snapshot.
async fn stream_as(http: &str, cookie: &str) -> Result<(Ws, Vec<(String, String)>)> {
    let mut req =
        format!("{}/api/v1/stream", http.replacen("http://", "ws://", 1)).into_client_request()?;
    req.headers_mut().insert("cookie", cookie.parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    let frame = next_frame(&mut ws).await?;
    assert_eq!(frame["type"], "snapshot");
    let ids = frame["incidents"]["features"]
        .as_array()
        .context("features")?
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap_or("").to_owned(),
                f["properties"]["agency"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    Ok((ws, ids))
}

async fn next_frame(ws: &mut Ws) -> Result<Value> {
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(15), ws.next())
            .await
            .context("no frame within 15 s")?
            .context("closed")??;
        if let Ok(text) = msg.to_text() {
            if !text.is_empty() {
                return Ok(serde_json::from_str(text)?);
            }
        }
    }
}

/// The ids and agencies of the snapshot a WebSocket client with `cookie` gets first.
async fn stream_snapshot(http: &str, cookie: &str) -> Result<Vec<(String, String)>> {
    Ok(stream_as(http, cookie).await?.1)
}

#[tokio::test(flavor = "multi_thread")]
async fn users_log_in_act_with_csrf_and_agencies_see_only_theirs() -> Result<()> {
    let dir = TempDir::new("dispecer-accounts");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());

    // `user add`: refusals first, then the three users.
    let refused = [
        ("x", "agency", None, PASSWORD, "needs --agency"),
        ("x", "agency", Some("no-such"), PASSWORD, "not an agency"),
        (
            "x",
            "operator",
            Some("apa-brasov"),
            PASSWORD,
            "only for --role agency",
        ),
        ("x", "operator", None, "short", "at least 10"),
    ];
    for (name, role, agency, password, why) in refused {
        let (ok, err) = dispecer_user_add(&db, name, role, agency, password)?;
        assert!(!ok && err.contains(why), "{role} {agency:?}: {err}");
    }
    for (name, role, agency) in [
        ("ana", "operator", None),
        ("ioana", "agency", Some("apa-brasov")),
    ] {
        let (ok, err) = dispecer_user_add(&db, name, role, agency, PASSWORD)?;
        assert!(ok, "{err}");
    }
    let (ok, err) = dispecer_user_add(&db, "ana", "admin", None, PASSWORD)?;
    assert!(!ok && err.contains("already"), "{err}");

    let server = Dispecer::start(&dir, &db, &Broker::Embedded(free_port())).await?;
    let http = server.http.clone();

    // Wrong password and unknown user: the same 401, as problem+json.
    for (name, password) in [("ana", "gresit-gresit"), ("nimeni", PASSWORD)] {
        let (status, headers, body) = login_raw(&http, name, password).await?;
        assert_eq!(status, 401, "{body}");
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
        assert_eq!(body["detail"], "wrong user name or password");
        assert!(headers.get("set-cookie").is_none());
    }
    // A login that is not JSON (what a cross-site form would send) is refused.
    let form = reqwest::Client::new()
        .post(format!("{http}/api/v1/session"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("username=ana&password={PASSWORD}"))
        .send()
        .await?;
    assert_eq!(form.status().as_u16(), 415);

    let (status, headers, me) = login_raw(&http, "ana", PASSWORD).await?;
    assert_eq!(status, 200, "{me}");
    let set_cookie = headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .context("set-cookie")?;
    for part in ["dispecer_session=", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(part), "{set_cookie}");
    }
    // Plain HTTP on loopback: a Secure cookie would never come back, so none is asked for.
    assert!(!set_cookie.contains("Secure"), "{set_cookie}");
    assert_eq!(
        (me["username"].as_str(), me["role"].as_str()),
        (Some("ana"), Some("operator"))
    );
    let ana = login(&http, "ana", PASSWORD).await?;
    assert_ne!(ana.csrf, me["csrf"], "each session has its own CSRF token");
    let (status, who) = get_as(&http, &ana, "/api/v1/session").await?;
    assert_eq!(
        (status, who["csrf"].as_str()),
        (200, Some(ana.csrf.as_str()))
    );
    let ioana = login(&http, "ioana", PASSWORD).await?;
    assert_eq!(ioana.me["agency"], "apa-brasov");
    assert_eq!(ioana.me["role"], "agency");

    // Two incidents: a pothole (street maintenance) and a water leak (the water company).
    let (mut stream, _) = StreamClient::connect(&http, &ana).await?;
    let mut mqtt = MqttClient::connect(server.mqtt_port, &[]).await?;
    let mut opened = Vec::new();
    for (id, category, lon, lat) in [
        ("acc-1", "pothole", 25.5887, 45.6419),
        ("acc-2", "water_leak", 25.6012, 45.6551),
    ] {
        mqtt.publish(
            "dispecer/v1/in/citizen/reports",
            citizen_report(id, category, lon, lat),
        )
        .await?;
        let f = stream.next_incident(|_| true).await?;
        opened.push((
            f["incident"]["id"].as_str().context("id")?.to_owned(),
            f["incident"]["properties"]["agency"]
                .as_str()
                .context("agency")?
                .to_owned(),
        ));
    }
    let (pothole, water) = (opened[0].clone(), opened[1].clone());
    assert_eq!(pothole.1, "domeniu-public");
    assert_eq!(water.1, "apa-brasov");

    // The operator acts on any incident, with the CSRF token only.
    let ack = json!({"action": "acknowledge", "reason": "văzut"});
    let (status, body) = act(&http, &ana, None, &pothole.0, ack.clone()).await?;
    assert_eq!(status, 403, "no CSRF token: {body}");
    let (status, body) = act(&http, &ana, Some("not-the-token"), &pothole.0, ack.clone()).await?;
    assert_eq!(status, 403, "a wrong CSRF token: {body}");
    let (status, body) = act(&http, &ana, Some(&ana.csrf), &pothole.0, ack.clone()).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["properties"]["status"], "acknowledged");
    let (_, timeline) = get_as(
        &http,
        &ana,
        &format!("/api/v1/incidents/{}/timeline", pothole.0),
    )
    .await?;
    assert!(
        timeline["timeline"]
            .as_array()
            .context("timeline")?
            .iter()
            .any(|t| t["kind"] == "acknowledge" && t["actor"] == "user:ana"),
        "{timeline}"
    );
    // Another session's CSRF token is not this one's.
    let (status, _) = act(&http, &ana, Some(&ioana.csrf), &water.0, ack.clone()).await?;
    assert_eq!(status, 403);

    // The agency user: only the water company's incidents, in the list and the stream.
    let (status, list) = get_as(&http, &ioana, "/api/v1/incidents?status=open").await?;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list["features"]
        .as_array()
        .context("features")?
        .iter()
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert_eq!(ids, [water.0.as_str()]);
    // Asking for another agency does not widen it.
    let (_, list) = get_as(&http, &ioana, "/api/v1/incidents?agency=domeniu-public").await?;
    let agencies: Vec<&str> = list["features"]
        .as_array()
        .context("features")?
        .iter()
        .filter_map(|f| f["properties"]["agency"].as_str())
        .collect();
    assert!(agencies.iter().all(|a| *a == "apa-brasov"), "{agencies:?}");
    // The operator sees both.
    let (_, list) = get_as(&http, &ana, "/api/v1/incidents?status=open").await?;
    assert_eq!(list["features"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        stream_snapshot(&http, &ioana.cookie).await?,
        [(water.0.clone(), "apa-brasov".to_owned())]
    );
    assert_eq!(stream_snapshot(&http, &ana.cookie).await?.len(), 2);
    // It acts on its own incident, not on another agency's.
    let (status, body) = act(
        &http,
        &ioana,
        Some(&ioana.csrf),
        &pothole.0,
        json!({"action": "resolve"}),
    )
    .await?;
    assert_eq!(status, 403, "{body}");
    for action in ["acknowledge", "resolve"] {
        let (status, body) = act(
            &http,
            &ioana,
            Some(&ioana.csrf),
            &water.0,
            json!({"action": action}),
        )
        .await?;
        assert_eq!(status, 200, "{action}: {body}");
    }

    // Citizens' contact details: operators, and the agency responsible only.
    assert_eq!(
        get_as(
            &http,
            &ana,
            &format!("/api/v1/incidents/{}/contacts", pothole.0)
        )
        .await?
        .0,
        200
    );
    assert_eq!(
        get_as(
            &http,
            &ioana,
            &format!("/api/v1/incidents/{}/contacts", water.0)
        )
        .await?
        .0,
        200
    );
    let (status, body) = get_as(
        &http,
        &ioana,
        &format!("/api/v1/incidents/{}/contacts", pothole.0),
    )
    .await?;
    assert_eq!(status, 403, "{body}");

    // The agency's stream: a new water leak comes; once reassigned to another agency it is
    // heard of once more (so the console can drop it), then no longer.
    let (mut ioana_ws, _) = stream_as(&http, &ioana.cookie).await?;
    mqtt.publish(
        "dispecer/v1/in/citizen/reports",
        citizen_report("acc-3", "water_leak", 25.5600, 45.6300),
    )
    .await?;
    let f = next_frame(&mut ioana_ws).await?;
    assert_eq!(
        (&f["type"], &f["change"]),
        (&json!("incident"), &json!("opened")),
        "{f}"
    );
    let third = f["incident"]["id"].as_str().context("id")?.to_owned();
    let (status, body) = act(
        &http,
        &ana,
        Some(&ana.csrf),
        &third,
        json!({"action": "assign", "agency": "domeniu-public"}),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let f = next_frame(&mut ioana_ws).await?;
    assert_eq!(
        (
            f["incident"]["id"].as_str(),
            f["incident"]["properties"]["agency"].as_str()
        ),
        (Some(third.as_str()), Some("domeniu-public")),
        "the agency hears once that it left: {f}"
    );
    let (status, body) = act(
        &http,
        &ana,
        Some(&ana.csrf),
        &third,
        json!({"action": "note", "reason": "nu mai e al apei"}),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    mqtt.publish(
        "dispecer/v1/in/citizen/reports",
        citizen_report("acc-4", "water_leak", 25.6300, 45.6700),
    )
    .await?;
    let f = next_frame(&mut ioana_ws).await?;
    assert_ne!(
        f["incident"]["id"].as_str(),
        Some(third.as_str()),
        "not another agency's: {f}"
    );
    assert_eq!(f["incident"]["properties"]["agency"], "apa-brasov", "{f}");

    // Logout needs the CSRF token, ends the session and clears the cookie.
    let logout = |csrf: Option<String>| {
        let mut req = reqwest::Client::new()
            .delete(format!("{http}/api/v1/session"))
            .header("cookie", &ana.cookie);
        if let Some(c) = csrf {
            req = req.header("x-csrf-token", c);
        }
        req.send()
    };
    assert_eq!(logout(None).await?.status().as_u16(), 403);
    let out = logout(Some(ana.csrf.clone())).await?;
    assert_eq!(out.status().as_u16(), 204);
    let cleared = out
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .context("cleared cookie")?;
    assert!(
        cleared.starts_with("dispecer_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let (status, _) = get_as(&http, &ana, "/api/v1/session").await?;
    assert_eq!(status, 401);
    let (status, _) = act(
        &http,
        &ana,
        Some(&ana.csrf),
        &pothole.0,
        json!({"action": "start"}),
    )
    .await?;
    assert_eq!(status, 401, "a logged-out session acts no more");

    // `user list` names the users; `user passwd` changes a password and ends the sessions.
    // Whether it succeeded, its standard output, and both outputs.
    let cli = |args: &[&str], stdin: &str| -> Result<(bool, String, String)> {
        use std::io::Write;
        let mut child = std::process::Command::new(e2e::dispecer_bin()?)
            .args(["user"])
            .args(args)
            .args(["--database-url", &db])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(stdin.as_bytes())?;
        let out = child.wait_with_output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let all = stdout.clone() + &String::from_utf8_lossy(&out.stderr);
        Ok((out.status.success(), stdout, all))
    };
    let (ok, listed, _) = cli(&["list"], "")?;
    assert!(ok, "{listed}");
    let rows: Vec<Vec<&str>> = listed
        .lines()
        .map(|l| l.split_whitespace().take(3).collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["ana", "operator", "-"],
            vec!["ioana", "agency", "apa-brasov"]
        ],
        "{listed}"
    );
    assert!(!listed.contains("argon2"), "no hash is listed");
    let (ok, _, said) = cli(
        &["passwd", "--username", "ioana", "--password-stdin"],
        "alta-parola-lunga\n",
    )?;
    assert!(ok, "{said}");
    let (status, _) = get_as(&http, &ioana, "/api/v1/session").await?;
    assert_eq!(status, 401, "a new password ends the sessions");
    assert_eq!(login_raw(&http, "ioana", PASSWORD).await?.0, 401);
    login(&http, "ioana", "alta-parola-lunga").await?;
    let (ok, _, said) = cli(
        &["passwd", "--username", "nimeni", "--password-stdin"],
        "alta-parola-lunga\n",
    )?;
    assert!(!ok && said.contains("no user"), "{said}");

    // Stored: only hashes.
    let log = server.stop();
    assert!(!log.contains(PASSWORD), "a password reached the log");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn logins_are_rate_limited_per_name_and_per_address() -> Result<()> {
    let dir = TempDir::new("dispecer-login-limit");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    let (ok, err) = dispecer_user_add(&db, "ana", "operator", None, PASSWORD)?;
    assert!(ok, "{err}");
    let server = Dispecer::start(&dir, &db, &Broker::Embedded(free_port())).await?;
    let http = server.http.clone();

    // Five wrong passwords for one name; the sixth attempt, even with the right password, waits.
    for _ in 0..5 {
        let (status, _, _) = login_raw(&http, "ana", "gresit-gresit").await?;
        assert_eq!(status, 401);
    }
    let (status, headers, body) = login_raw(&http, "ana", PASSWORD).await?;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let retry: u64 = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .context("Retry-After in seconds")?;
    assert!((1..=900).contains(&retry), "{retry}");

    // Per address: 20 failures in all from 127.0.0.1 (5 already), then even a fresh name waits.
    for i in 0..15 {
        let (status, _, _) = login_raw(&http, &format!("nimeni-{i}"), "gresit-gresit").await?;
        assert_eq!(status, 401, "attempt {i}");
    }
    let (status, _, _) = login_raw(&http, "altcineva", "gresit-gresit").await?;
    assert_eq!(status, 429);
    Ok(())
}

/// `dispecer demo` makes an operator, a supervisor and a water-company user, prints their
/// passwords once it is ready, and they can log in.
#[tokio::test(flavor = "multi_thread")]
async fn the_demo_prints_users_who_can_log_in() -> Result<()> {
    let dir = TempDir::new("dispecer-demo-users");
    let log = dir.path().join("demo.log");
    let mut child = std::process::Command::new(e2e::dispecer_bin()?)
        .args([
            "demo",
            "--traffic-every-s",
            "0",
            "--reports-per-minute",
            "0",
        ])
        .args(["--utility-events-per-minute", "0"])
        .arg("--database-url")
        .arg(format!("sqlite://{}/d.sqlite", dir.path().display()))
        .arg("--city")
        .arg(e2e::repo_root().join("cities/brasov"))
        .args(["--http-addr", "127.0.0.1:0", "--mqtt-listen"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--ready-file")
        .arg(dir.path().join("ready.json"))
        .args(["--mqtt-client-id", "dispecer-e2e-demo-users"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let result = async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let (text, http) = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let ready = std::fs::read_to_string(dir.path().join("ready.json")).ok();
            if let (true, Some(ready)) = (text.contains("demo-agency "), ready) {
                let doc: Value = serde_json::from_str(&ready)?;
                break (
                    text,
                    format!("http://{}", doc["http"].as_str().context("http")?),
                );
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "no demo users printed:\n{text}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        let password = |name: &str| -> Result<String> {
            text.lines()
                .map(str::split_whitespace)
                .find_map(|mut w| (w.next() == Some(name)).then(|| w.next()).flatten())
                .map(str::to_owned)
                .with_context(|| format!("no password printed for {name}:\n{text}"))
        };
        for (name, role, agency) in [
            ("demo-operator", "operator", Value::Null),
            ("demo-supervisor", "supervisor", Value::Null),
            ("demo-agency", "agency", json!("apa-brasov")),
        ] {
            let me = login(&http, name, &password(name)?).await?.me;
            assert_eq!(
                (&me["role"], &me["agency"]),
                (&json!(role), &agency),
                "{me}"
            );
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result
}
