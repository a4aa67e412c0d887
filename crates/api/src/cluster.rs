//! A cluster follower's HTTP surface (see the `cluster` crate): reads and the stream are served
//! here from the store and the leader's notifications; writes that need the engine are
//! forwarded to the leader.
//!
//! - Actions on incidents (`POST /api/v1/incidents/{id}/actions`), the senders' HTTP ingest
//!   (`POST /api/v1/events`, `POST /api/v1/readings`) and citizens' writes (`POST
//!   /api/v1/reports`, Open311 `POST requests`) are forwarded to the leader as they came
//!   (method, path and query, body, content type, credentials: sessions and tokens live in the
//!   shared database), and its answer is given back, so an operator on a follower's console and
//!   a citizen on a follower's address keep working. One HTTP client (and its connection pool)
//!   serves every forward.
//! - The client's address goes along in `X-Forwarded-For` (the address this instance's limits
//!   give the client: its peer, or what a `--trusted-proxy` named; a client's own
//!   `X-Forwarded-For` is not passed on). A leader that lists the followers in its
//!   `--trusted-proxy` thus counts citizens' writes per citizen; one that does not counts them
//!   per follower. Citizens' writes are also limited here, before they are forwarded.
//! - The leader's address is the URL it registered (`cluster_members.http_url`): `https://…`
//!   when it serves TLS. The forwarding client trusts only the certificates the binary hands over
//!   in [`ClusterView::trust`] (the system's roots, `--cluster-ca`, this instance's own
//!   `--tls-cert` chain) and checks the leader's name as any HTTPS client does.
//! - Without a known leader (a takeover under way), or when it does not answer: 503 with
//!   `Retry-After: 1`.

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
    /// The certificates (DER) a leader's HTTPS certificate may chain to; none: only plain
    /// `http://` leaders can be reached.
    pub trust: Vec<Vec<u8>>,
}

/// Why the forwarding client cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ClusterSetupError {
    /// A certificate to trust is not one rustls can use.
    #[error("certificate {index} of the cluster's trusted certificates is not usable: {source}")]
    BadCertificate {
        /// Its place in [`ClusterView::trust`].
        index: usize,
        /// Why.
        source: reqwest::Error,
    },
    /// The HTTP client cannot be built.
    #[error("cannot build the client that forwards to the leader: {0}")]
    Client(reqwest::Error),
}

/// What the router keeps of cluster mode: the view, and the one HTTP client of every forward.
#[derive(Debug, Clone)]
pub(crate) struct Cluster {
    pub(crate) view: ClusterView,
    client: reqwest::Client,
}

impl Cluster {
    pub(crate) fn new(view: ClusterView) -> Result<Self, ClusterSetupError> {
        // Only the roots given: no built-in list, so `--cluster-ca` means what it says.
        let mut builder = reqwest::Client::builder().tls_built_in_root_certs(false);
        for (index, der) in view.trust.iter().enumerate() {
            let cert = reqwest::Certificate::from_der(der)
                .map_err(|source| ClusterSetupError::BadCertificate { index, source })?;
            builder = builder.add_root_certificate(cert);
        }
        let client = builder.build().map_err(ClusterSetupError::Client)?;
        Ok(Cluster { view, client })
    }
}

/// Most bytes of a request forwarded to the leader (the largest body of the routes forwarded).
const MAX_FORWARDED: usize = max(
    crate::ingest::MAX_BODY,
    max(crate::citizens::MAX_BODY, crate::open311::MAX_BODY),
);

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

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
    let Some(leader) = cluster.view.leader.borrow().clone() else {
        return not_leading(None, "send it");
    };
    let client = state
        .limiter
        .client(crate::limits::peer(request.extensions()), request.headers());
    match forward(&cluster.client, &leader, client, request).await {
        Err(Forward::TooLarge) => Problem::too_large(format!(
            "the request's body could not be read within {MAX_FORWARDED} bytes"
        ))
        .into_response(),
        Ok(response) => response,
        Err(Forward::Failed(e)) => {
            tracing::warn!(error = %e, leader, "cannot forward a request to the leader");
            not_leading(Some(&leader), "the leader did not answer; send it")
        }
    }
}

/// Why a request could not be forwarded.
enum Forward {
    /// Its body is larger than [`MAX_FORWARDED`] (or did not come whole).
    TooLarge,
    /// The leader did not answer (or the request could not be read).
    Failed(String),
}

impl From<reqwest::Error> for Forward {
    fn from(e: reqwest::Error) -> Self {
        Forward::Failed(e.to_string())
    }
}

/// Sends `request` to `leader` with `http`, `client` (the client's address, if known) in
/// `X-Forwarded-For`, and gives its answer back.
async fn forward(
    http: &reqwest::Client,
    leader: &str,
    client: Option<std::net::IpAddr>,
    request: Request,
) -> Result<Response, Forward> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_FORWARDED)
        .await
        // The only failures here are the client's: a body beyond the limit, or one it did not
        // send whole.
        .map_err(|_| Forward::TooLarge)?;
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = format!("{}{path}", leader.trim_end_matches('/'));
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())
        .map_err(|e| Forward::Failed(e.to_string()))?;
    let mut forwarded = http
        .request(method, &url)
        .timeout(FORWARD_TIMEOUT)
        .body(body);
    for name in KEPT.iter().chain(std::iter::once(&csrf_header())) {
        for value in parts.headers.get_all(name) {
            forwarded = forwarded.header(name.as_str(), value.as_bytes());
        }
    }
    if let Some(client) = client {
        forwarded = forwarded.header("x-forwarded-for", client.to_string());
    }
    let answer = forwarded.send().await?;
    let status = StatusCode::from_u16(answer.status().as_u16())
        .map_err(|e| Forward::Failed(e.to_string()))?;
    let mut headers = Vec::new();
    for name in GIVEN_BACK {
        if let Some(v) = answer.headers().get(name.as_str()) {
            if let Ok(v) = HeaderValue::from_bytes(v.as_bytes()) {
                headers.push((name, v));
            }
        }
    }
    let bytes = answer.bytes().await?;
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
