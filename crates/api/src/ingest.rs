//! HTTP ingest for senders without a broker, with a per-sender API token:
//! `POST /api/v1/events` (a utility's GeoJSON Feature or FeatureCollection) and
//! `POST /api/v1/readings` (a SenML pack whose record names are `{sensor}/{metric}`).
//!
//! The same parsing, engine and store as the MQTT adapters; the answer comes after commit, so a
//! 200 means durable. Re-sending the same body is harmless (idempotent by event identity).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::{json, Value};

use engine::feeds::FeedOutcome;
use engine::{EngineError, IngestOutcome};
use protocol::{inbound, traffic, WireError};
use store::NewDeadLetter;

use crate::{AppState, Problem};

/// Largest request body, in bytes.
pub const MAX_BODY: usize = 5 * 1024 * 1024;
/// Most features in one FeatureCollection.
const MAX_FEATURES: usize = 1000;

/// What a token allows (its `scope` in the store).
pub(crate) enum Scope {
    /// `events:{operator}`: utility events of this operator.
    Events(String),
    /// `readings`: readings of any of the city's sensors.
    Readings,
    /// `agency:{agency}`: actions on the incidents assigned to this agency.
    Agency(String),
    /// `operator`: actions on any incident (the dispatch center's operators).
    Operator,
    /// `citizens-app`: citizens' reports through Open311 (the token is the app's `api_key`).
    CitizensApp,
    /// `metrics`: reads `/metrics` only (a Prometheus scraper).
    Metrics,
}

impl Scope {
    pub(crate) fn parse(scope: &str) -> Option<Scope> {
        if let Some(op) = scope.strip_prefix("events:") {
            return Some(Scope::Events(op.to_owned()));
        }
        if let Some(agency) = scope.strip_prefix("agency:") {
            return Some(Scope::Agency(agency.to_owned()));
        }
        match scope {
            "readings" => Some(Scope::Readings),
            "operator" => Some(Scope::Operator),
            "citizens-app" => Some(Scope::CitizensApp),
            "metrics" => Some(Scope::Metrics),
            _ => None,
        }
    }

    /// What the token may do, for a 403's detail.
    pub(crate) fn allows(&self) -> &'static str {
        match self {
            Scope::Events(_) => "send events",
            Scope::Readings => "send readings",
            Scope::Agency(_) => "act on its agency's incidents",
            Scope::Operator => "act on incidents",
            Scope::CitizensApp => "file citizens' reports through Open311",
            Scope::Metrics => "read /metrics",
        }
    }
}

/// The bearer token of `headers` and what it allows: 401 without a live token.
pub(crate) async fn scope(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Scope, String), Problem> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Problem::unauthorized("an API token is required: Authorization: Bearer <token>")
        })?;
    let scope = state
        .store
        .token_scope(&store::hash_token(token))
        .await?
        .ok_or_else(|| Problem::unauthorized("the API token is not valid (unknown or revoked)"))?;
    let scope = Scope::parse(&scope).ok_or_else(|| {
        Problem::forbidden(format!(
            "the API token's scope {scope:?} allows nothing here"
        ))
    })?;
    // The prefix `token list` shows, to name the token in timelines; never the whole token.
    let prefix: String = token.chars().take(TOKEN_PREFIX).collect();
    Ok((scope, prefix))
}

/// Characters of a token that `dispecer token create` keeps as its prefix.
const TOKEN_PREFIX: usize = 12;

fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Problem> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::too_large(format!("the body is larger than {MAX_BODY} bytes"))
        } else {
            Problem::bad_request(e.body_text())
        }
    })
}

async fn dead_letter(
    state: &AppState,
    path: &str,
    payload: &[u8],
    reason: &str,
) -> Result<(), Problem> {
    let mut payload = payload.to_vec();
    payload.truncate(64 * 1024);
    state
        .store
        .record_dead_letter(&NewDeadLetter {
            received_at: Utc::now(),
            channel: "http".into(),
            topic: path.to_owned(),
            payload,
            reason: reason.to_owned(),
        })
        .await?;
    Ok(())
}

/// `POST /api/v1/events`.
#[utoipa::path(post, path = "/api/v1/events", tag = "ingest",
    request_body(content = Object, content_type = "application/geo+json",
        description = "A utility's GeoJSON Feature or FeatureCollection (at most 1000 features)"),
    security(("api_token" = [])), responses(
    (status = 200, description = "Every feature's outcome, once durable", body = crate::openapi::EventsAccepted),
    (status = 400, description = "The body is not a valid event", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 401, description = "No or a bad API token", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 403, description = "The token may not send events", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 413, description = "The body or the collection is too large", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 503, description = "The store is unavailable", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    match events_inner(&state, &headers, raw).await {
        Ok(r) => r.into_response(),
        Err(p) => p.into_response(),
    }
}

async fn events_inner(
    state: &AppState,
    headers: &HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, Problem> {
    let operator = match scope(state, headers).await?.0 {
        Scope::Events(operator) => operator,
        other => {
            return Err(Problem::forbidden(format!(
                "this token may {}, not send events",
                other.allows()
            )))
        }
    };
    let raw = body(raw)?;
    let value: Value = match serde_json::from_slice(&raw) {
        Ok(v) => v,
        Err(e) => {
            let reason = WireError::NotJson(e.to_string()).to_string();
            dead_letter(state, "/api/v1/events", &raw, &reason).await?;
            return Err(Problem::bad_request(reason));
        }
    };
    let (single, features): (bool, Vec<Vec<u8>>) = match value.get("type").and_then(Value::as_str) {
        Some("FeatureCollection") => {
            let Some(features) = value.get("features").and_then(Value::as_array).cloned() else {
                let reason = "a FeatureCollection must have a `features` array \
                              (RFC 7946 §3.3)"
                    .to_owned();
                dead_letter(state, "/api/v1/events", &raw, &reason).await?;
                return Err(Problem::bad_request(reason));
            };
            if features.len() > MAX_FEATURES {
                return Err(Problem::too_large(format!(
                    "{} features; at most {MAX_FEATURES} per request",
                    features.len()
                )));
            }
            (
                false,
                features
                    .iter()
                    .map(|f| serde_json::to_vec(f).unwrap_or_default())
                    .collect(),
            )
        }
        _ => (true, vec![raw.to_vec()]),
    };
    let city = state.engine.city().city();
    let feed = format!("utility:{operator}");
    let now = Utc::now();
    let parsed: Vec<Result<model::Event, String>> = features
        .iter()
        .map(|f| inbound::utility_event(f, &operator, city, now).map_err(|e| e.to_string()))
        .collect();
    // The valid events go through the engine together: one commit for the request (a group
    // commit). When the store fails nothing of it was taken, and the sender retries the whole
    // request.
    let events: Vec<model::Event> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok())
        .cloned()
        .collect();
    let mut outcomes = state
        .engine
        .ingest_batch(events)
        .await
        .map_err(|e| Problem::unavailable(e.to_string()))?
        .into_iter();
    let mut results = Vec::with_capacity(features.len());
    let (mut accepted, mut duplicates, mut rejected) = (0, 0, 0);
    for (index, (feature, parsed)) in features.iter().zip(parsed).enumerate() {
        let refusal = match parsed {
            Ok(event) => {
                let sent_at = Some(event.occurred_at);
                match outcomes.next() {
                    Some(Ok(outcome)) => {
                        let (incident, feed_outcome) = match outcome {
                            IngestOutcome::Duplicate => (None, FeedOutcome::Duplicate),
                            IngestOutcome::Opened(id)
                            | IngestOutcome::Joined(id)
                            | IngestOutcome::Updated(id)
                            | IngestOutcome::Resolved(id) => {
                                (Some(id.to_string()), FeedOutcome::Accepted)
                            }
                        };
                        let status = if feed_outcome == FeedOutcome::Duplicate {
                            duplicates += 1;
                            "duplicate"
                        } else {
                            accepted += 1;
                            "accepted"
                        };
                        state
                            .engine
                            .feeds()
                            .record(&feed, feed_outcome, now, sent_at);
                        results
                            .push(json!({"index": index, "status": status, "incident": incident}));
                        continue;
                    }
                    Some(Err(EngineError::Refused(reason))) => reason,
                    Some(Err(e @ EngineError::UnknownCategory(_))) => e.to_string(),
                    // Taken one by one after a conflict, and the store failed on this one:
                    // the sender retries the whole request (what was taken is recognised then).
                    Some(Err(e)) => return Err(Problem::unavailable(e.to_string())),
                    None => return Err(Problem::internal("the engine answered fewer events")),
                }
            }
            Err(reason) => reason,
        };
        rejected += 1;
        state
            .engine
            .feeds()
            .record(&feed, FeedOutcome::Rejected, now, None);
        dead_letter(state, "/api/v1/events", feature, &refusal).await?;
        if single {
            return Err(Problem::bad_request(refusal));
        }
        results.push(json!({"index": index, "status": "rejected", "reason": refusal}));
    }
    Ok(Json(
        json!({"accepted": accepted, "duplicates": duplicates, "rejected": rejected, "results": results}),
    ))
}

/// `POST /api/v1/readings`.
#[utoipa::path(post, path = "/api/v1/readings", tag = "ingest",
    request_body(content = Vec<Object>, content_type = "application/senml+json",
        description = "A SenML pack (RFC 8428) whose names are `{sensor}/{metric}`"),
    security(("api_token" = [])), responses(
    (status = 200, description = "Readings stored", body = crate::openapi::ReadingsAccepted),
    (status = 400, description = "The body is not a valid SenML pack of this city's sensors", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 401, description = "No or a bad API token", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 403, description = "The token may not send readings", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 413, description = "The body is too large", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 503, description = "The store is unavailable", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
pub async fn readings(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    match readings_inner(&state, &headers, raw).await {
        Ok(r) => r.into_response(),
        Err(p) => p.into_response(),
    }
}

async fn readings_inner(
    state: &AppState,
    headers: &HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, Problem> {
    match scope(state, headers).await?.0 {
        Scope::Readings => {}
        other => {
            return Err(Problem::forbidden(format!(
                "this token may {}, not send readings",
                other.allows()
            )))
        }
    }
    let raw = body(raw)?;
    let now = Utc::now();
    let readings = match traffic::readings_named(&raw, state.engine.city().city(), now) {
        Ok(r) => r,
        Err(reason) => {
            let reason = reason.to_string();
            dead_letter(state, "/api/v1/readings", &raw, &reason).await?;
            state
                .engine
                .feeds()
                .record("traffic:http", FeedOutcome::Rejected, now, None);
            return Err(Problem::bad_request(reason));
        }
    };
    let new = state.store.record_readings(&readings).await?;
    // Committed: the congestion detector may look (it never makes the sender wait).
    state.engine.readings_stored(&readings);
    let outcome = if new == 0 {
        FeedOutcome::Duplicate
    } else {
        FeedOutcome::Accepted
    };
    state.engine.feeds().record(
        "traffic:http",
        outcome,
        now,
        readings.iter().map(|r| r.time).max(),
    );
    Ok(Json(json!({"readings": readings.len(), "new": new})))
}
