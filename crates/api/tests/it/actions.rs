//! `POST /api/v1/incidents/{id}/actions` and the timeline it writes.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use chrono::Utc;
use geo::Point;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use api::{router, AppState};
use engine::{Engine, IngestOutcome};
use model::{CityIndex, Event, EventKind, Source};
use store::Store;

struct App {
    router: Router,
    engine: Engine,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

/// Tokens the tests use, with their scopes.
const OPERATOR: &str = "dsp_operator_token_0000000000000000";
const READINGS: &str = "dsp_readings_token_0000000000000000";

async fn app(agency_token: Option<(&str, &str)>) -> App {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cities/brasov");
    let city = Arc::new(CityIndex::new(city::load(&dir).expect("Brașov loads")));
    let store = Store::connect("sqlite::memory:").await.expect("store");
    let now = Utc::now();
    let mut tokens = vec![
        (OPERATOR, "operator".to_owned()),
        (READINGS, "readings".to_owned()),
    ];
    if let Some((token, agency)) = agency_token {
        tokens.push((token, format!("agency:{agency}")));
    }
    for (token, scope) in tokens {
        store
            .add_token(&store::hash_token(token), &token[..12], &scope, now)
            .await
            .expect("token");
    }
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let engine = Engine::start(city, store.clone(), None, shutdown.clone(), &tracker)
        .await
        .expect("engine");
    let router = router(AppState::new(engine.clone(), store, None, shutdown.clone()));
    App {
        router,
        engine,
        shutdown,
        tracker,
    }
}

impl App {
    async fn open_pothole(&self) -> (String, String) {
        let at = Utc::now();
        let event = Event {
            id: format!("citizen:{}", uuid::Uuid::now_v7()).as_str().into(),
            subject: None,
            source: Source::Citizen,
            kind: EventKind::Report,
            category: "pothole".into(),
            location: Point::new(25.5887, 45.6419),
            area: None,
            description: None,
            occurred_at: at,
            received_at: at,
            payload: "{}".into(),
            contact: None,
        };
        let IngestOutcome::Opened(id) = self.engine.ingest(event).await.expect("ingest") else {
            panic!("a new incident");
        };
        let (_, body) = self.get(&format!("/api/v1/incidents/{id}")).await;
        let agency = body["properties"]["agency"]
            .as_str()
            .expect("an agency")
            .to_owned();
        (id.to_string(), agency)
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, String, Value) {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let ctype = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, ctype, body)
    }

    /// Reads as a dispatcher (the private reads need a caller).
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let request = Request::get(path)
            .header(header::AUTHORIZATION, format!("Bearer {OPERATOR}"))
            .body(Body::empty())
            .expect("request");
        let (status, _, body) = self.send(request).await;
        (status, body)
    }

    async fn act(&self, id: &str, token: Option<&str>, body: &str) -> (StatusCode, String, Value) {
        let mut request = Request::post(format!("/api/v1/incidents/{id}/actions"))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(request.body(Body::from(body.to_owned())).expect("request"))
            .await
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

#[tokio::test]
async fn an_operator_moves_an_incident_along_its_lifecycle() {
    let app = app(None).await;
    let (id, _) = app.open_pothole().await;
    let (status, body) = app.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let props = &body["properties"];
    assert_eq!(props["status"], "assigned");
    assert!(
        props["ack_due"].is_string() && props["resolve_due"].is_string(),
        "{props}"
    );
    assert_eq!(props["overdue"], false);
    assert_eq!(props["escalated"], false);

    let (status, ctype, body) = app
        .act(
            &id,
            Some(OPERATOR),
            r#"{"action":"acknowledge","reason":"dispeceratul a preluat"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ctype, "application/geo+json");
    assert_eq!(body["properties"]["status"], "acknowledged");

    // Closing an acknowledged incident: 409, naming both states; nothing changes.
    let (status, ctype, body) = app.act(&id, Some(OPERATOR), r#"{"action":"close"}"#).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(ctype, "application/problem+json");
    let detail = body["detail"].as_str().expect("a detail");
    assert!(
        detail.contains("acknowledged → closed is not allowed"),
        "{detail}"
    );

    let (_, timeline) = app.get(&format!("/api/v1/incidents/{id}/timeline")).await;
    let entries = timeline["timeline"].as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{timeline}");
    let ack = &entries[1];
    assert_eq!(ack["kind"], "acknowledge");
    assert_eq!(ack["actor"], format!("operator:{}", &OPERATOR[..12]));
    assert_eq!(ack["reason"], "dispeceratul a preluat");
    assert_eq!(ack["from"], "assigned");
    assert_eq!(ack["to"], "acknowledged");
    assert_eq!(entries[0]["kind"], "opened");
    assert_eq!(entries[0]["to"], "assigned");
    assert_eq!(entries[0]["reason"], Value::Null);

    // Reassigned by the operator: back to assigned, with the new agency.
    let (status, _, body) = app
        .act(
            &id,
            Some(OPERATOR),
            r#"{"action":"assign","agency":"city-dispatch","reason":"nu e al lor"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["properties"]["status"], "assigned");
    assert_eq!(body["properties"]["agency"], "city-dispatch");
    app.stop().await;
}

#[tokio::test]
async fn refusals_have_their_status_codes() {
    let agency_token = "dsp_agency_token_00000000000000000000";
    // The agency is only known once the incident is routed: make a token for the right one.
    let probe = app(None).await;
    let (_, agency) = probe.open_pothole().await;
    probe.stop().await;

    let app = app(Some((agency_token, &agency))).await;
    let (id, routed_to) = app.open_pothole().await;
    assert_eq!(routed_to, agency);
    /// name, incident, token, body, status, words of the detail.
    type Row<'a> = (
        &'a str,
        String,
        Option<&'a str>,
        &'a str,
        StatusCode,
        &'a str,
    );
    let rows: Vec<Row> = vec![
        (
            "no token",
            id.clone(),
            None,
            r#"{"action":"start"}"#,
            StatusCode::UNAUTHORIZED,
            "API token is required",
        ),
        (
            "unknown token",
            id.clone(),
            Some("dsp_nope"),
            r#"{"action":"start"}"#,
            StatusCode::UNAUTHORIZED,
            "not valid",
        ),
        (
            "a readings token",
            id.clone(),
            Some(READINGS),
            r#"{"action":"start"}"#,
            StatusCode::FORBIDDEN,
            "may send readings, not act",
        ),
        (
            "unknown incident",
            "nope".into(),
            Some(OPERATOR),
            r#"{"action":"start"}"#,
            StatusCode::NOT_FOUND,
            "no incident \"nope\"",
        ),
        (
            "not JSON",
            id.clone(),
            Some(OPERATOR),
            "start",
            StatusCode::BAD_REQUEST,
            "not valid JSON",
        ),
        (
            "unknown action",
            id.clone(),
            Some(OPERATOR),
            r#"{"action":"fix"}"#,
            StatusCode::BAD_REQUEST,
            "unknown action",
        ),
        (
            "unknown field",
            id.clone(),
            Some(OPERATOR),
            r#"{"action":"start","by":"me"}"#,
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (
            "assign to nobody",
            id.clone(),
            Some(OPERATOR),
            r#"{"action":"assign","agency":"nobody"}"#,
            StatusCode::BAD_REQUEST,
            "not one of this city's agencies",
        ),
        (
            "start before acknowledging",
            id.clone(),
            Some(agency_token),
            r#"{"action":"start"}"#,
            StatusCode::CONFLICT,
            "assigned → in_progress is not allowed",
        ),
    ];
    for (name, incident, token, body, status, words) in rows {
        let (got, ctype, answer) = app.act(&incident, token, body).await;
        assert_eq!(got, status, "{name}: {answer}");
        assert_eq!(ctype, "application/problem+json", "{name}");
        let detail = answer["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(words), "{name}: {detail}");
    }

    // The agency acknowledges its own incident, as itself.
    let (status, _, body) = app
        .act(&id, Some(agency_token), r#"{"action":"acknowledge"}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, timeline) = app.get(&format!("/api/v1/incidents/{id}/timeline")).await;
    assert_eq!(timeline["timeline"][1]["actor"], format!("agency:{agency}"));

    // Handed to another agency, it is no longer this agency's to act on.
    let other = if agency == "city-dispatch" {
        "apa-brasov"
    } else {
        "city-dispatch"
    };
    let (status, _, body) = app
        .act(
            &id,
            Some(OPERATOR),
            &json!({"action": "assign", "agency": other}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, ctype, body) = app
        .act(&id, Some(agency_token), r#"{"action":"acknowledge"}"#)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(ctype, "application/problem+json");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("assigned to {other}")),
        "{body}"
    );
    app.stop().await;
}

impl App {
    /// A citizen's report of `category` at (`lon`, `lat`) that opens an incident; its id.
    async fn open_at(&self, category: &str, lon: f64, lat: f64) -> String {
        let at = Utc::now();
        let event = Event {
            id: format!("citizen:{}", uuid::Uuid::now_v7()).as_str().into(),
            subject: None,
            source: Source::Citizen,
            kind: EventKind::Report,
            category: category.into(),
            location: Point::new(lon, lat),
            area: None,
            description: None,
            occurred_at: at,
            received_at: at,
            payload: "{}".into(),
            contact: None,
        };
        let IngestOutcome::Opened(id) = self.engine.ingest(event).await.expect("ingest") else {
            panic!("a new incident");
        };
        id.to_string()
    }
}

#[tokio::test]
async fn reassignments_are_counted_per_routing_rule() {
    const AGENCY: &str = "dsp_agency_token_00000000000000000000";
    let app = app(Some((AGENCY, "domeniu-public"))).await;
    let potholes = [
        app.open_at("pothole", 25.5887, 45.6419).await,
        app.open_at("pothole", 25.6100, 45.6500).await,
        app.open_at("pothole", 25.5700, 45.6600).await,
    ];
    app.open_at("water_leak", 25.5887, 45.6419).await;
    let assign = |agency: &str| format!(r#"{{"action":"assign","agency":"{agency}"}}"#);
    for (id, to) in [
        (&potholes[0], "city-dispatch"),
        (&potholes[1], "city-dispatch"),
        // Moved on again: the first reassignment away from the rule's choice counts, once.
        (&potholes[1], "apa-brasov"),
    ] {
        let (status, _, body) = app.act(id, Some(OPERATOR), &assign(to)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // An agency may not merge.
    let merge = format!(r#"{{"action":"merge","into":"{}"}}"#, potholes[1]);
    let (status, _, body) = app.act(&potholes[2], Some(AGENCY), &merge).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let (status, report) = app.get("/api/v1/reports/routing-overrides").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let rules = report["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 2, "{report}");
    assert_eq!(
        rules[0],
        json!({"rule": "jurisdiction", "agency": "domeniu-public", "area": "city",
               "routed": 3, "overridden": 2, "override_rate": 2.0 / 3.0,
               "reassigned_to": [{"agency": "city-dispatch", "count": 2}]})
    );
    assert_eq!(
        (
            &rules[1]["agency"],
            &rules[1]["routed"],
            &rules[1]["overridden"]
        ),
        (&json!("apa-brasov"), &json!(1), &json!(0)),
        "{report}"
    );
    app.stop().await;
}
