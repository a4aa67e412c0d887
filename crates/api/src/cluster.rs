//! A cluster follower's HTTP surface (see the `cluster` crate): reads and the stream are served
//! here from the store and the leader's notifications; writes that need the engine are not.
//!
//! - Actions on incidents (`POST /api/v1/incidents/{id}/actions`) and the senders' HTTP ingest
//!   (`POST /api/v1/events`, `POST /api/v1/readings`) are forwarded to the leader as they came
//!   (method, path, body, credentials: sessions and tokens live in the shared database), and
//!   its answer is given back, so an operator on a follower's console keeps working.
//! - Citizens' writes (`POST /api/v1/reports`, Open311 `POST requests`) answer 503 naming the
//!   leader: they are limited per client address, and forwarded they would all count against
//!   the follower's address at the leader.
//! - Without a known leader (a takeover under way): 503 with `Retry-After: 1`.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use crate::{AppState, Problem};

/// This instance in a cluster, as the API sees it.
#[derive(Debug, Clone)]
pub struct ClusterView {
    /// `--instance-id`.
    pub instance: String,
    /// The HTTP base URL of the instance that leads now (`None` while unknown).
    pub leader: watch::Receiver<Option<String>>,
}

/// Most bytes of a request forwarded to the leader (the largest body of the routes forwarded).
const MAX_FORWARDED: usize = crate::ingest::MAX_BODY;

/// How long the leader may take to answer a forwarded request.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(25);

/// The request headers a forwarded request keeps.
const KEPT: [header::HeaderName; 5] = [
    header::AUTHORIZATION,
    header::COOKIE,
    header::CONTENT_TYPE,
    header::ACCEPT,
    header::USER_AGENT,
];

/// The answer headers given back.
const GIVEN_BACK: [header::HeaderName; 3] =
    [header::CONTENT_TYPE, header::LOCATION, header::RETRY_AFTER];

fn not_leading(leader: Option<&str>, what: &str) -> Response {
    let detail = match leader {
        Some(url) => format!("this instance is a follower; {what} at the leader, {url}"),
        None => format!(
            "no instance leads at the moment (a takeover is under way); {what} again in a second"
        ),
    };
    let mut response = Problem::busy(detail).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Citizens' writes on a follower: 503 naming the leader.
pub async fn leader_only(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match &state.cluster {
        Some(cluster) if !state.engine.is_leading() => {
            let leader = cluster.leader.borrow().clone();
            not_leading(leader.as_deref(), "send it")
        }
        _ => next.run(request).await,
    }
}

/// Writes that need the engine, on a follower: forwarded to the leader.
pub async fn forward_to_leader(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(cluster) = &state.cluster else {
        return next.run(request).await;
    };
    if state.engine.is_leading() {
        return next.run(request).await;
    }
    let Some(leader) = cluster.leader.borrow().clone() else {
        return not_leading(None, "send it");
    };
    match forward(&leader, request).await {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!(error = %e, leader, "cannot forward a request to the leader");
            not_leading(Some(&leader), "the leader did not answer; send it")
        }
    }
}

async fn forward(leader: &str, request: Request) -> Result<Response, String> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_FORWARDED)
        .await
        .map_err(|e| e.to_string())?;
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = format!("{}{path}", leader.trim_end_matches('/'));
    let method =
        reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).map_err(|e| e.to_string())?;
    let mut forwarded = reqwest::Client::new()
        .request(method, &url)
        .timeout(FORWARD_TIMEOUT)
        .body(body);
    for name in KEPT.iter().chain(std::iter::once(&csrf_header())) {
        for value in parts.headers.get_all(name) {
            forwarded = forwarded.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = forwarded.send().await.map_err(|e| e.to_string())?;
    let status = StatusCode::from_u16(answer.status().as_u16()).map_err(|e| e.to_string())?;
    let mut headers = Vec::new();
    for name in GIVEN_BACK {
        if let Some(v) = answer.headers().get(name.as_str()) {
            if let Ok(v) = HeaderValue::from_bytes(v.as_bytes()) {
                headers.push((name, v));
            }
        }
    }
    let bytes = answer.bytes().await.map_err(|e| e.to_string())?;
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in headers {
        response.headers_mut().insert(name, value);
    }
    Ok(response)
}

fn csrf_header() -> header::HeaderName {
    header::HeaderName::from_static("x-csrf-token")
}
