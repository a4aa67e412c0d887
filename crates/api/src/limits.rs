//! What one client may take: the rate of citizens' writes per client address (governor's GCRA
//! limiter, keyed by address), the number of live WebSocket clients, the requests in flight at
//! once and how long one may take (tower's global concurrency limit, load shedding and timeout),
//! and who the client is when a trusted reverse proxy stands in front.
//!
//! Boundary: only the server binary knows the configured numbers; it hands them over as
//! [`Limits`]. The defaults are defined here, once, and the binary's flags show them.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{AppState, Problem};

/// The limits a router enforces (see `SECURITY.md`, "Limits on what comes from outside").
#[derive(Debug, Clone)]
pub struct Limits {
    /// Citizens' writes (`POST /api/v1/reports`, Open311 `POST requests`) per client address
    /// and minute, sustained.
    pub reports_per_minute: NonZeroU32,
    /// Citizens' writes one client address may send at once before the per-minute pace applies.
    pub reports_burst: NonZeroU32,
    /// Live WebSocket clients of `/api/v1/stream` at once; more are answered 503.
    pub max_stream_clients: usize,
    /// HTTP requests in progress at once; more are answered 503 at once (not queued).
    pub max_concurrent_requests: usize,
    /// Longest time one HTTP request may take (a WebSocket only until its upgrade); then 503.
    pub request_timeout: Duration,
    /// Reverse proxies whose `X-Forwarded-For` names the client (and whose
    /// `X-Forwarded-Proto: https` turns on `Strict-Transport-Security`); nobody's by default.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Limits {
    /// Default of [`Limits::reports_per_minute`].
    pub const REPORTS_PER_MINUTE: u32 = 10;
    /// Default of [`Limits::reports_burst`].
    pub const REPORTS_BURST: u32 = 10;
    /// Default of [`Limits::max_stream_clients`].
    pub const MAX_STREAM_CLIENTS: usize = 1000;
    /// Default of [`Limits::max_concurrent_requests`].
    pub const MAX_CONCURRENT_REQUESTS: usize = 512;
    /// Default of [`Limits::request_timeout`], in seconds.
    pub const REQUEST_TIMEOUT_S: u64 = 30;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            reports_per_minute: NonZeroU32::new(Self::REPORTS_PER_MINUTE)
                .unwrap_or(NonZeroU32::MIN),
            reports_burst: NonZeroU32::new(Self::REPORTS_BURST).unwrap_or(NonZeroU32::MIN),
            max_stream_clients: Self::MAX_STREAM_CLIENTS,
            max_concurrent_requests: Self::MAX_CONCURRENT_REQUESTS,
            request_timeout: Duration::from_secs(Self::REQUEST_TIMEOUT_S),
            trusted_proxies: Vec::new(),
        }
    }
}

/// Most client addresses the write limiter remembers before it forgets those back at full
/// allowance (governor's `retain_recent`).
const MAX_KEYS: usize = 10_000;

/// The shared state of the limits.
#[derive(Debug)]
pub(crate) struct Limiter {
    pub(crate) limits: Limits,
    writes: DefaultKeyedRateLimiter<IpAddr>,
    stream_slots: Arc<Semaphore>,
}

impl Limiter {
    pub(crate) fn new(limits: Limits) -> Self {
        let quota = Quota::per_minute(limits.reports_per_minute).allow_burst(limits.reports_burst);
        Limiter {
            writes: RateLimiter::keyed(quota),
            stream_slots: Arc::new(Semaphore::new(limits.max_stream_clients)),
            limits,
        }
    }

    /// Takes one citizen's write of `client`; `Err(wait)` when it must wait that long.
    fn write(&self, client: IpAddr) -> Result<(), Duration> {
        if self.writes.len() > MAX_KEYS {
            self.writes.retain_recent();
            self.writes.shrink_to_fit();
        }
        self.writes
            .check_key(&client)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// A place for one more WebSocket client, held as long as the permit lives.
    pub(crate) fn stream_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.stream_slots.clone().try_acquire_owned().ok()
    }

    fn trusted(&self, peer: IpAddr) -> bool {
        self.limits.trusted_proxies.contains(&peer)
    }

    /// The client's address: the connection's peer, or, when the peer is a trusted proxy, the
    /// last address of `X-Forwarded-For` that is not itself a trusted proxy.
    pub(crate) fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trusted(peer) {
            return Some(peer);
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        Some(
            forwarded
                .into_iter()
                .rev()
                .find(|a| !self.trusted(*a))
                .unwrap_or(peer),
        )
    }

    /// Whether the request reached a trusted proxy over HTTPS (`X-Forwarded-Proto: https`).
    fn via_trusted_https(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> bool {
        peer.is_some_and(|p| self.trusted(p))
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
    }
}

/// The connection's peer address (absent only for in-process routers without connect info).
pub(crate) fn peer(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip())
}

/// Whole seconds to put in `Retry-After` (at least 1).
fn retry_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

fn retry_after(mut response: Response, secs: u64) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    response
}

/// Which answer a refused write gets: problem+json, or Open311's error array.
#[derive(Debug, Clone, Copy)]
enum Dialect {
    Problem,
    Open311,
}

async fn limit_writes(
    state: &AppState,
    dialect: Dialect,
    request: Request,
    next: Next,
) -> Response {
    let client = state
        .limiter
        .client(peer(request.extensions()), request.headers());
    // Only routers built without connect info (in-process tests) know no address.
    if let Some(client) = client {
        if let Err(wait) = state.limiter.write(client) {
            let secs = retry_secs(wait);
            tracing::warn!(client = %client, retry_after_s = secs, path = %request.uri().path(), "citizen write refused: rate limited");
            let per_minute = state.limiter.limits.reports_per_minute;
            let detail = format!(
                "too many reports from your address (at most {per_minute} a minute); try again \
                 in {secs} seconds / prea multe sesizări de la adresa dumneavoastră (cel mult \
                 {per_minute} pe minut); încercați din nou peste {secs} secunde"
            );
            let response = match dialect {
                Dialect::Problem => Problem::too_many_requests(detail).into_response(),
                Dialect::Open311 => crate::open311::too_many(request.uri().path(), detail),
            };
            return retry_after(response, secs);
        }
    }
    next.run(request).await
}

/// Middleware of `POST /api/v1/reports`: the per-address rate of citizens' writes.
pub(crate) async fn limit_reports(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    limit_writes(&state, Dialect::Problem, request, next).await
}

/// Middleware of Open311 `POST`: the same rate, shared with `/api/v1/reports`, answered as
/// Open311 errors.
pub(crate) async fn limit_open311(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    limit_writes(&state, Dialect::Open311, request, next).await
}

/// The answer to a WebSocket client beyond [`Limits::max_stream_clients`].
pub(crate) fn stream_full(max: usize) -> Response {
    tracing::warn!(max, "websocket client refused: too many clients");
    retry_after(
        Problem::busy(format!(
            "too many live clients ({max}); try again shortly / prea mulți clienți conectați \
             ({max}); încercați din nou în curând"
        ))
        .into_response(),
        5,
    )
}

/// What the global request limits answer: load shed (too many in progress) or timed out.
pub(crate) async fn overloaded(error: tower::BoxError) -> Response {
    if error.is::<tower::load_shed::error::Overloaded>() {
        tracing::warn!("request refused: too many in progress");
        retry_after(
            Problem::busy(
                "the server is busy; try again shortly / serverul este ocupat; încercați din nou \
                 în curând",
            )
            .into_response(),
            1,
        )
    } else if error.is::<tower::timeout::error::Elapsed>() {
        tracing::warn!("request timed out");
        Problem::busy(
            "the request took too long and was stopped / cererea a durat prea mult și a fost \
             oprită",
        )
        .into_response()
    } else {
        Problem::internal(error).into_response()
    }
}

/// `Strict-Transport-Security`, only on answers that went out over HTTPS: Dispecer's own (with
/// `--tls-cert`), or a trusted proxy's.
pub(crate) async fn hsts(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let https = state.tls
        || state
            .limiter
            .via_trusted_https(peer(request.extensions()), request.headers());
    let mut response = next.run(request).await;
    if https {
        response.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(trusted: &[&str]) -> Limiter {
        Limiter::new(Limits {
            reports_per_minute: NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN),
            reports_burst: NonZeroU32::new(3).unwrap_or(NonZeroU32::MIN),
            trusted_proxies: trusted.iter().filter_map(|a| a.parse().ok()).collect(),
            ..Limits::default()
        })
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert("x-forwarded-for", v);
        }
        h
    }

    #[test]
    fn the_burst_then_a_wait_per_address() {
        let l = limiter(&[]);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        for _ in 0..3 {
            assert!(l.write(a).is_ok());
        }
        let wait = l.write(a).err();
        // Two a minute: the next one in about 30 s.
        assert!(
            wait.is_some_and(|w| w > Duration::from_secs(25) && w <= Duration::from_secs(30)),
            "{wait:?}"
        );
        assert!(l.write(b).is_ok(), "another address is not affected");
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let peer: IpAddr = [127, 0, 0, 1].into();
        let h = forwarded("203.0.113.9, 198.51.100.7");
        // Not trusted: the header is ignored.
        assert_eq!(limiter(&[]).client(Some(peer), &h), Some(peer));
        // Trusted: the last address not itself a trusted proxy.
        let l = limiter(&["127.0.0.1", "198.51.100.7"]);
        assert_eq!(l.client(Some(peer), &h), "203.0.113.9".parse().ok());
        // A trusted proxy with nothing (or garbage) forwarded: the proxy itself.
        assert_eq!(l.client(Some(peer), &forwarded("nonsense")), Some(peer));
        assert_eq!(l.client(None, &h), None);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_secs(Duration::from_secs(6)), 6);
        assert_eq!(retry_secs(Duration::from_millis(6001)), 7);
    }
}
