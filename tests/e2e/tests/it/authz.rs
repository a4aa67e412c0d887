//! The authorisation matrix: every endpoint of `/api/v1/openapi.json` (and Open311's `POST
//! requests`) against every kind of caller, with the answer each must get. An endpoint added to
//! the API without a row here fails the test, and so does a row whose endpoint is gone.
//!
//! Two incidents: A (a water leak, the water company's) and B (a pothole, street maintenance's),
//! each from a citizen's report with a contact and a photo. The agency's user and token are the
//! water company's (A's); the utility's token is the gas company's. Private reads (incidents,
//! their timelines, the stream, feeds, readings, `/metrics`) need a login; the dead letters are
//! an admin's. Beside the table: an agency's user and token see no other agency's incident in
//! their list or stream (and hear no change of one), an agency informed of an incident reads it
//! but not its citizens' contacts, a utility's event counts as its own feed only, no refused
//! report leaves a contact in the dead letters, and the embedded broker lets in only tokens
//! under their own names (each kept to its own topics: `mqtt_auth.rs`).

use std::collections::BTreeSet;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use e2e::{
    dispecer_token, dispecer_user_add, free_port, login, mqtt_login, repo_root, Broker, Dispecer,
    Login, MqttClient, StreamClient, TempDir,
};

const PASSWORD: &str = "parola-lunga-1";
/// Agency A: the water company.
const AGENCY_A: &str = "apa-brasov";
/// Utility X: the gas company.
const UTILITY_X: &str = "distrigaz-sud";
/// An agency informed of A's incidents (a water leak floods the road), responsible for neither.
const INFORMED: &str = "politia-rutiera";
const EMAIL_A: &str = "ana.apa@example.org";
const EMAIL_B: &str = "bogdan.groapa@example.org";

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Anonymous,
    /// Anonymous, but knowing the tracking code of their report (B's).
    Citizen,
    /// A person's session, of agency A.
    AgencyUser,
    /// An `agency:A` API token.
    AgencyToken,
    Operator,
    Supervisor,
    Admin,
    /// An `events:X` API token (utility X).
    UtilityToken,
}

const ROLES: [Role; 8] = [
    Role::Anonymous,
    Role::Citizen,
    Role::AgencyUser,
    Role::AgencyToken,
    Role::Operator,
    Role::Supervisor,
    Role::Admin,
    Role::UtilityToken,
];

/// A caller's credentials.
#[derive(Debug, Clone, Default)]
struct Credentials {
    session: Option<Login>,
    bearer: Option<String>,
}

/// What a request sends.
#[derive(Debug, Clone)]
enum Body {
    None,
    Json(Value),
    /// `application/x-www-form-urlencoded`; `{key}` is replaced by the caller's API token (or
    /// nothing).
    Form(&'static str),
    /// A citizen's report: multipart, with a photo.
    Report {
        category: &'static str,
    },
    /// A WebSocket upgrade: 101 when it is accepted.
    WebSocket,
}

/// One row of the matrix: a request and the status each role must get, in [`ROLES`]' order.
struct Row {
    method: &'static str,
    /// The endpoint as the OpenAPI document names it.
    template: &'static str,
    /// The request's path (for [`Role::Anonymous`], `{code}` is a code it does not know).
    path: String,
    body: Body,
    expect: [u16; 8],
    why: &'static str,
}

fn row(
    method: &'static str,
    template: &'static str,
    path: impl Into<String>,
    body: Body,
    expect: [u16; 8],
    why: &'static str,
) -> Row {
    Row {
        method,
        template,
        path: path.into(),
        body,
        expect,
        why,
    }
}

/// A tiny JPEG (one grey 8x8 block).
fn jpeg() -> Vec<u8> {
    fn segment(marker: u8, body: &[u8]) -> Vec<u8> {
        let mut s = vec![0xFF, marker];
        s.extend_from_slice(&u16::try_from(body.len() + 2).unwrap_or(0).to_be_bytes());
        s.extend_from_slice(body);
        s
    }
    let mut j = vec![0xFF, 0xD8];
    j.extend(segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
    let mut dqt = vec![0u8];
    dqt.extend([1u8; 64]);
    j.extend(segment(0xDB, &dqt));
    j.extend(segment(0xC0, &[8, 0, 8, 0, 8, 1, 1, 0x11, 0]));
    for class in [0x00, 0x10] {
        let mut dht = vec![class, 1];
        dht.extend([0u8; 15]);
        dht.push(0);
        j.extend(segment(0xC4, &dht));
    }
    j.extend(segment(0xDA, &[1, 1, 0x00, 0, 63, 0]));
    j.push(0b0011_1111);
    j.extend([0xFF, 0xD9]);
    j
}

/// A citizen's report as the citizens' page sends it, with a contact and a photo.
fn report(id: &str, category: &str, (lon, lat): (f64, f64), email: &str) -> (String, Vec<u8>) {
    let boundary = "dispecer-authz-boundary";
    let mut body = Vec::new();
    for (name, value) in [
        ("id", id.to_owned()),
        ("category", category.to_owned()),
        ("lat", lat.to_string()),
        ("lon", lon.to_string()),
        (
            "description",
            "Raportat din testul de autorizare".to_owned(),
        ),
        ("email", email.to_owned()),
    ] {
        body.extend(
            format!(
                "--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .into_bytes(),
        );
    }
    body.extend(
        format!(
            "--{boundary}\r\ncontent-disposition: form-data; name=\"photo\"; \
             filename=\"p.jpg\"\r\ncontent-type: image/jpeg\r\n\r\n"
        )
        .into_bytes(),
    );
    body.extend(jpeg());
    body.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Sends `row`'s request as `who`; the answer's status (101 for an accepted WebSocket).
async fn send(http: &str, row: &Row, role: Role, who: &Credentials, n: usize) -> Result<u16> {
    if matches!(row.body, Body::WebSocket) {
        let mut req = format!("{}{}", http.replacen("http://", "ws://", 1), row.path)
            .into_client_request()?;
        if let Some(s) = &who.session {
            req.headers_mut().insert("cookie", s.cookie.parse()?);
        }
        if let Some(b) = &who.bearer {
            req.headers_mut()
                .insert("authorization", format!("Bearer {b}").parse()?);
        }
        return match tokio_tungstenite::connect_async(req).await {
            Ok((mut ws, resp)) => {
                let _ = ws.close(None).await;
                Ok(resp.status().as_u16())
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Ok(resp.status().as_u16()),
            Err(e) => Err(e.into()),
        };
    }
    let method: reqwest::Method = row.method.parse()?;
    let mut req = reqwest::Client::new().request(method, format!("{http}{}", row.path));
    if let Some(s) = &who.session {
        req = req
            .header("cookie", &s.cookie)
            .header("x-csrf-token", &s.csrf);
    }
    if let Some(b) = &who.bearer {
        req = req.bearer_auth(b);
    }
    req = match &row.body {
        Body::None | Body::WebSocket => req,
        // `{role}` names the caller (a login's user name: the limit per name stays unreached).
        Body::Json(v) => req
            .header("content-type", "application/json")
            .body(v.to_string().replace("{role}", &format!("{role:?}"))),
        Body::Form(form) => req
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.replace("{key}", who.bearer.as_deref().unwrap_or(""))),
        Body::Report { category } => {
            let (content_type, body) = report(
                &format!("authz-{role:?}-{n}"),
                category,
                (25.5950, 45.6450),
                "x@example.org",
            );
            req.header("content-type", content_type).body(body)
        }
    };
    Ok(req.send().await?.status().as_u16())
}

/// The next text frame of a raw WebSocket, as JSON.
async fn next_text(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Result<Value> {
    use futures_util::StreamExt;
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(15), ws.next())
            .await
            .context("no frame within 15 s")?
            .context("closed")??;
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            return Ok(serde_json::from_str(t.as_str())?);
        }
    }
}

/// `(METHOD, path)` of every operation of the OpenAPI document.
fn documented(doc: &Value) -> Result<BTreeSet<(String, String)>> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().context("paths")? {
        for method in item.as_object().context("path item")?.keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    Ok(out)
}

/// The id of the incident of `category` among those `list` (a FeatureCollection) holds.
fn incident_of(list: &Value, category: &str) -> Result<String> {
    list["features"]
        .as_array()
        .context("features")?
        .iter()
        .find(|f| f["properties"]["category"] == category)
        .and_then(|f| f["id"].as_str())
        .map(str::to_owned)
        .with_context(|| format!("no {category} incident in {list}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_answers_each_caller_as_the_table_says() -> Result<()> {
    let dir = TempDir::new("dispecer-authz");
    let db = format!("sqlite://{}/d.sqlite", dir.path().display());
    let city = repo_root().join("cities/brasov");
    let city_arg = city.to_str().context("path")?;
    let agency_token =
        dispecer_token(&db, &["create", "--city", city_arg, "--acts-for", AGENCY_A])?;
    let utility_token = dispecer_token(
        &db,
        &["create", "--city", city_arg, "--operator", UTILITY_X],
    )?;
    for (name, role, agency) in [
        ("ioana", "agency", Some(AGENCY_A)),
        ("ana", "operator", None),
        ("sorin", "supervisor", None),
        ("adi", "admin", None),
        ("petru", "agency", Some(INFORMED)),
    ] {
        let (ok, err) = dispecer_user_add(&db, name, role, agency, PASSWORD)?;
        assert!(ok, "{err}");
    }
    let port = free_port();
    let server = Dispecer::start(&dir, &db, &Broker::EmbeddedTokens(port)).await?;
    let http = server.http.clone();

    // The two citizens' reports, A's and B's, each with a contact and a photo.
    let mut codes = Vec::new();
    for (id, category, place, email) in [
        ("authz-aaaa", "water_leak", (25.6050, 45.6500), EMAIL_A),
        ("authz-bbbb", "pothole", (25.5887, 45.6419), EMAIL_B),
    ] {
        let (content_type, body) = report(id, category, place, email);
        let resp = reqwest::Client::new()
            .post(format!("{http}/api/v1/reports"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await?;
        let filed: Value = resp.json().await?;
        assert_eq!(filed["photo"], true, "{filed}");
        codes.push(
            filed["tracking_code"]
                .as_str()
                .context("tracking code")?
                .to_owned(),
        );
    }
    let (code_a, code_b) = (codes[0].clone(), codes[1].clone());
    let (_, _, list) = server.get("/api/v1/incidents").await?;
    let incident_a = incident_of(&list, "water_leak")?;
    let incident_b = incident_of(&list, "pothole")?;
    let (_, _, one) = server
        .get(&format!("/api/v1/incidents/{incident_a}"))
        .await?;
    assert_eq!(one["properties"]["agency"], AGENCY_A, "{one}");
    let (_, _, one) = server
        .get(&format!("/api/v1/incidents/{incident_b}"))
        .await?;
    assert_ne!(one["properties"]["agency"], AGENCY_A, "{one}");

    let mut who = Vec::new();
    for role in ROLES {
        let session = |name: &'static str| {
            let http = http.clone();
            async move { login(&http, name, PASSWORD).await.map(Some) }
        };
        who.push(match role {
            Role::Anonymous | Role::Citizen => Credentials::default(),
            Role::AgencyUser => Credentials {
                session: session("ioana").await?,
                bearer: None,
            },
            Role::AgencyToken => Credentials {
                session: None,
                bearer: Some(agency_token.clone()),
            },
            Role::Operator => Credentials {
                session: session("ana").await?,
                bearer: None,
            },
            Role::Supervisor => Credentials {
                session: session("sorin").await?,
                bearer: None,
            },
            Role::Admin => Credentials {
                session: session("adi").await?,
                bearer: None,
            },
            Role::UtilityToken => Credentials {
                session: None,
                bearer: Some(utility_token.clone()),
            },
        });
    }

    // Statuses in the order of ROLES:
    //   anonymous, citizen, agency user A, agency token A, operator, supervisor, admin, utility X
    const OPEN: [u16; 8] = [200; 8];
    // A private read: anyone logged in or with a dispatcher's or agency's token.
    const READ: [u16; 8] = [401, 401, 200, 200, 200, 200, 200, 403];
    let note = || Body::Json(json!({"action": "note", "reason": "verificare de acces"}));
    let event = Body::Json(json!({"type": "Feature",
        "geometry": {"type": "Point", "coordinates": [25.6050, 45.6500]},
        "properties": {"id": "authz-gaz-1", "kind": "fault", "category": "gas_smell",
            "description": "Miros de gaz"}}));
    let readings = Body::Json(json!([{"bn": "urn:dev:tc-eroilor-e:", "n": "count", "v": 3}]));
    let rows = vec![
        row(
            "GET",
            "/api/v1/health",
            "/api/v1/health",
            Body::None,
            OPEN,
            "open",
        ),
        row(
            "GET",
            "/api/v1/openapi.json",
            "/api/v1/openapi.json",
            Body::None,
            OPEN,
            "open",
        ),
        row(
            "GET",
            "/api/v1/city",
            "/api/v1/city",
            Body::None,
            OPEN,
            "open",
        ),
        row(
            "GET",
            "/api/v1/session",
            "/api/v1/session",
            Body::None,
            [401, 401, 200, 401, 200, 200, 200, 401],
            "a session's own description; a token is not a session",
        ),
        row(
            "POST",
            "/api/v1/session",
            "/api/v1/session",
            Body::Json(json!({"username": "nimeni-{role}", "password": "gresit-gresit"})),
            [401; 8],
            "a wrong login is refused whoever tries",
        ),
        row(
            "GET",
            "/api/v1/incidents",
            "/api/v1/incidents",
            Body::None,
            READ,
            "a login (an agency's list is narrowed: checked below)",
        ),
        row(
            "GET",
            "/api/v1/incidents/{id}",
            format!("/api/v1/incidents/{incident_b}"),
            Body::None,
            [401, 401, 403, 403, 200, 200, 200, 403],
            "another agency's incident",
        ),
        row(
            "GET",
            "/api/v1/incidents/{id}",
            format!("/api/v1/incidents/{incident_a}"),
            Body::None,
            READ,
            "the agency's own incident",
        ),
        row(
            "GET",
            "/api/v1/incidents/{id}",
            "/api/v1/incidents/no-such-incident",
            Body::None,
            [401, 401, 404, 404, 404, 404, 404, 403],
            "an incident that does not exist, once the caller may read",
        ),
        row(
            "GET",
            "/api/v1/incidents/{id}/timeline",
            format!("/api/v1/incidents/{incident_b}/timeline"),
            Body::None,
            [401, 401, 403, 403, 200, 200, 200, 403],
            "another agency's incident's history",
        ),
        row(
            "GET",
            "/api/v1/incidents/{id}/timeline",
            format!("/api/v1/incidents/{incident_a}/timeline"),
            Body::None,
            READ,
            "the agency's own incident's history",
        ),
        row(
            "GET",
            "/api/v1/incidents/{id}/contacts",
            format!("/api/v1/incidents/{incident_b}/contacts"),
            Body::None,
            [401, 401, 403, 403, 200, 200, 200, 403],
            "personal data of another agency's incident",
        ),
        row(
            "GET",
            "/api/v1/incidents/{id}/contacts",
            format!("/api/v1/incidents/{incident_a}/contacts"),
            Body::None,
            [401, 401, 200, 200, 200, 200, 200, 403],
            "personal data of the agency's own incident",
        ),
        row(
            "POST",
            "/api/v1/incidents/{id}/actions",
            format!("/api/v1/incidents/{incident_b}/actions"),
            note(),
            [401, 401, 403, 403, 200, 200, 200, 403],
            "acting on another agency's incident",
        ),
        row(
            "POST",
            "/api/v1/incidents/{id}/actions",
            format!("/api/v1/incidents/{incident_a}/actions"),
            note(),
            [401, 401, 200, 200, 200, 200, 200, 403],
            "acting on the agency's own incident",
        ),
        row(
            "GET",
            "/api/v1/dead-letters",
            "/api/v1/dead-letters",
            Body::None,
            [401, 401, 403, 403, 403, 403, 200, 403],
            "admins only (refused citizens' reports keep no contact: checked below)",
        ),
        row(
            "GET",
            "/api/v1/reports/routing-overrides",
            "/api/v1/reports/routing-overrides",
            Body::None,
            [401, 401, 403, 403, 200, 200, 200, 403],
            "the dispatch center's staff: it counts every agency's incidents",
        ),
        row(
            "POST",
            "/api/v1/reports",
            "/api/v1/reports",
            Body::Report {
                category: "pothole",
            },
            OPEN,
            "anyone may report",
        ),
        row(
            "GET",
            "/api/v1/reports/{code}/photo",
            format!("/api/v1/reports/{code_b}/photo"),
            Body::None,
            [401, 401, 403, 403, 200, 200, 200, 403],
            "a photo of another agency's incident (not even its citizen, who has no account)",
        ),
        row(
            "GET",
            "/api/v1/reports/{code}/photo",
            format!("/api/v1/reports/{code_a}/photo"),
            Body::None,
            [401, 401, 200, 200, 200, 200, 200, 403],
            "a photo of the agency's own incident",
        ),
        row(
            "GET",
            "/api/v1/public/reports/{code}",
            "/api/v1/public/reports/{code}",
            Body::None,
            [404, 200, 200, 200, 200, 200, 200, 200],
            "a report's status for whoever knows its code",
        ),
        row(
            "GET",
            "/api/v1/public/incidents",
            "/api/v1/public/incidents",
            Body::None,
            OPEN,
            "open",
        ),
        row(
            "GET",
            "/api/v1/public/warnings",
            "/api/v1/public/warnings",
            Body::None,
            OPEN,
            "public warnings are for everyone",
        ),
        row(
            "GET",
            "/api/v1/public/warnings.atom",
            "/api/v1/public/warnings.atom",
            Body::None,
            OPEN,
            "public warnings are for everyone",
        ),
        row(
            "GET",
            "/api/v1/public/warnings/{file}",
            "/api/v1/public/warnings/dispecer-brasov-nothing-1.xml",
            Body::None,
            [404; 8],
            "a CAP document that does not exist, whoever asks",
        ),
        row(
            "GET",
            "/api/v1/sensors/{id}/readings",
            "/api/v1/sensors/tc-eroilor-e/readings",
            Body::None,
            READ,
            "a login",
        ),
        row(
            "GET",
            "/api/v1/feeds",
            "/api/v1/feeds",
            Body::None,
            READ,
            "a login (the console shows silent feeds to everyone in it)",
        ),
        row(
            "GET",
            "/metrics",
            "/metrics",
            Body::None,
            [401, 401, 403, 403, 200, 200, 200, 403],
            "staff and a scraper's token (--metrics: ingest.rs), not agencies",
        ),
        row(
            "POST",
            "/api/v1/events",
            "/api/v1/events",
            event,
            [401, 401, 401, 403, 401, 401, 401, 200],
            "only a utility's token, as that utility (checked below)",
        ),
        row(
            "POST",
            "/api/v1/readings",
            "/api/v1/readings",
            readings,
            [401, 401, 401, 403, 401, 401, 401, 403],
            "only a sensor gateway's token",
        ),
        row(
            "GET",
            "/api/v1/stream",
            "/api/v1/stream",
            Body::WebSocket,
            [401, 401, 101, 101, 101, 101, 101, 403],
            "a login (an agency's stream is narrowed: checked below)",
        ),
        row(
            "POST",
            "/open311/v2/requests.json",
            "/open311/v2/requests.json",
            Body::Form("api_key={key}&service_code=pothole&lat=45.6419&long=25.5887"),
            [403; 8],
            "only a citizens' app's key files through Open311 (no staff token, no session)",
        ),
        // Last: it ends the sessions.
        row(
            "DELETE",
            "/api/v1/session",
            "/api/v1/session",
            Body::None,
            [401, 401, 204, 401, 204, 204, 204, 401],
            "only a session can end itself",
        ),
    ];

    // The table covers the API document exactly.
    let (_, _, doc) = server.get("/api/v1/openapi.json").await?;
    let in_doc = documented(&doc)?;
    let in_table: BTreeSet<(String, String)> = rows
        .iter()
        .filter(|r| r.template.starts_with("/api/"))
        .map(|r| (r.method.to_owned(), r.template.to_owned()))
        .collect();
    let missing: Vec<_> = in_doc.difference(&in_table).collect();
    let stale: Vec<_> = in_table.difference(&in_doc).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "endpoints without a row: {missing:?}; rows without an endpoint: {stale:?}"
    );

    let mut wrong = Vec::new();
    for (n, r) in rows.iter().enumerate() {
        for (i, role) in ROLES.iter().enumerate() {
            let code = if *role == Role::Anonymous {
                "ZZZZ-ZZZZ"
            } else {
                code_b.as_str()
            };
            let concrete = Row {
                path: r.path.replace("{code}", code),
                body: r.body.clone(),
                ..row(r.method, r.template, "", Body::None, r.expect, r.why)
            };
            let got = send(&http, &concrete, *role, &who[i], n).await?;
            if got != r.expect[i] {
                wrong.push(format!(
                    "{} {} as {role:?}: {got}, expected {} ({})",
                    r.method, concrete.path, r.expect[i], r.why
                ));
            }
        }
    }
    if !wrong.is_empty() {
        bail!(
            "{} answers differ from the table:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
    }

    // An agency's user and token: their list and their stream hold only their agency's
    // incidents, and a change of another agency's incident never reaches their stream.
    let ioana = login(&http, "ioana", PASSWORD).await?;
    let agencies_of = |list: &Value| -> Result<BTreeSet<String>> {
        Ok(list["features"]
            .as_array()
            .context("features")?
            .iter()
            .filter_map(|f| f["properties"]["agency"].as_str().map(str::to_owned))
            .collect())
    };
    let only_a = BTreeSet::from([AGENCY_A.to_owned()]);
    let (_, _, list) = server.get_with("/api/v1/incidents", Some(&ioana)).await?;
    assert_eq!(agencies_of(&list)?, only_a, "the user's list: {list}");
    let list: Value = reqwest::Client::new()
        .get(format!("{http}/api/v1/incidents?agency=domeniu-public"))
        .bearer_auth(&agency_token)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        agencies_of(&list)?,
        BTreeSet::new(),
        "asking for another agency widens nothing: {list}"
    );
    let (mut user_stream, snapshot) = StreamClient::connect(&http, &ioana).await?;
    assert_eq!(
        agencies_of(&snapshot["incidents"])?,
        only_a,
        "the user's snapshot: {snapshot}"
    );
    let mut request =
        format!("{}/api/v1/stream", http.replacen("http://", "ws://", 1)).into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {agency_token}").parse()?);
    let (mut token_stream, _) = tokio_tungstenite::connect_async(request).await?;
    let snapshot = next_text(&mut token_stream).await?;
    assert_eq!(
        agencies_of(&snapshot["incidents"])?,
        only_a,
        "the token's snapshot: {snapshot}"
    );
    // A note on B, then one on A: the agency's streams hear of A only.
    let operator = login(&http, "ana", PASSWORD).await?;
    for incident in [&incident_b, &incident_a] {
        let resp = reqwest::Client::new()
            .post(format!("{http}/api/v1/incidents/{incident}/actions"))
            .header("cookie", &operator.cookie)
            .header("x-csrf-token", &operator.csrf)
            .json(&json!({"action": "note", "reason": "după tabel"}))
            .send()
            .await?;
        assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await?);
    }
    let frame = user_stream.next_frame().await?;
    assert_eq!(
        frame["incident"]["id"],
        incident_a.as_str(),
        "user: {frame}"
    );
    let frame = next_text(&mut token_stream).await?;
    assert_eq!(
        frame["incident"]["id"],
        incident_a.as_str(),
        "token: {frame}"
    );

    // An agency informed of A (not responsible) reads it, in its list and its stream, but not
    // its citizens' contacts, and acts on it no more than on B.
    let petru = login(&http, "petru", PASSWORD).await?;
    let (_, _, list) = server.get_with("/api/v1/incidents", Some(&petru)).await?;
    let ids: BTreeSet<&str> = list["features"]
        .as_array()
        .context("features")?
        .iter()
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert!(ids.contains(incident_a.as_str()), "{list}");
    assert!(!ids.contains(incident_b.as_str()), "{list}");
    let (_, snapshot) = StreamClient::connect(&http, &petru).await?;
    assert!(
        snapshot.to_string().contains(incident_a.as_str())
            && !snapshot.to_string().contains(incident_b.as_str()),
        "{snapshot}"
    );
    for (path, expected) in [
        (format!("/api/v1/incidents/{incident_a}"), 200),
        (format!("/api/v1/incidents/{incident_a}/timeline"), 200),
        (format!("/api/v1/incidents/{incident_a}/contacts"), 403),
        (format!("/api/v1/incidents/{incident_b}"), 403),
    ] {
        let (status, _, body) = server.get_with(&path, Some(&petru)).await?;
        assert_eq!(status, expected, "{path} as the informed agency: {body}");
    }

    // The utility's event counted as its own feed, no other utility's.
    let (_, _, feeds) = server.get("/api/v1/feeds").await?;
    let accepted = |feed: &str| {
        feeds["feeds"]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["feed"] == feed))
            .and_then(|f| f["accepted"].as_u64())
            .unwrap_or(0)
    };
    assert_eq!(accepted(&format!("utility:{UTILITY_X}")), 1, "{feeds}");
    assert_eq!(accepted(&format!("utility:{AGENCY_A}")), 0, "{feeds}");

    // The embedded broker: only tokens, each under its own name.
    for (login, allowed, why) in [
        (None, false, "anonymous"),
        (Some(("ana", PASSWORD)), false, "a person's password"),
        (
            Some((UTILITY_X, utility_token.as_str())),
            true,
            "utility X as X",
        ),
        (
            Some((AGENCY_A, utility_token.as_str())),
            false,
            "utility X as another",
        ),
        (
            Some((AGENCY_A, agency_token.as_str())),
            true,
            "agency A's token as A",
        ),
        (
            Some(("deer-brasov", agency_token.as_str())),
            false,
            "agency A as another",
        ),
    ] {
        assert_eq!(mqtt_login(port, login).await?, allowed, "MQTT login: {why}");
    }

    // A citizen's report refused at the MQTT door (outside the city) is kept as a dead letter
    // (an admin's to read): without its contact.
    let mut mqtt =
        MqttClient::connect_as(port, &[], Some((UTILITY_X, utility_token.as_str()))).await?;
    let outside = json!({"type": "Feature",
        "geometry": {"type": "Point", "coordinates": [26.1025, 44.4268]},
        "properties": {"id": "authz-outside", "category": "pothole",
            "reported_at": chrono::Utc::now().to_rfc3339(),
            "contact": {"email": "cineva@example.org", "phone": "0722000111"}}});
    mqtt.publish("dispecer/v1/in/citizen/reports", outside.to_string())
        .await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let letters = loop {
        let (_, _, letters) = server.get("/api/v1/dead-letters").await?;
        let text = letters.to_string();
        if text.contains("authz-outside") {
            break text;
        }
        if std::time::Instant::now() > deadline {
            bail!("no dead letter for the refused report: {text}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    for personal in ["cineva@example.org", "0722000111", EMAIL_A, EMAIL_B] {
        assert!(!letters.contains(personal), "{personal} in {letters}");
    }
    server.stop();
    Ok(())
}
