//! Dispecer's HTTP surface (axum): the REST API under `/api/v1`, the live WebSocket stream and
//! the dashboards, embedded in the binary so that nothing is fetched from elsewhere.
//!
//! Boundary: handlers translate between HTTP and the engine/store; they hold no incident state
//! of their own. Every client error is `application/problem+json` (RFC 9457); internal errors are
//! logged once and answered generically.

mod accounts;
mod actions;
mod citizens;
mod cluster;
mod contacts;
mod dashboards;
mod headers;
mod incidents;
mod ingest;
mod limits;
mod metrics;
mod open311;
mod openapi;
mod photo;
mod problem;
mod reports;
mod sensors;
mod stream;
mod warnings;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::handler::Handler;
use axum::http::header;
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;

use engine::Engine;
use store::Store;

pub use accounts::{hash_password, verify_password, LoginLimits, PasswordError};
pub use cluster::{ClusterSetupError, ClusterView};
pub use limits::Limits;
pub use problem::Problem;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    engine: Engine,
    store: Store,
    /// `GET /api/v1/city`, serialised once at start-up.
    city_document: Arc<Vec<u8>>,
    /// `GET /api/v1/openapi.json`, built once at start-up with the city's ids.
    openapi_document: Arc<Vec<u8>>,
    shutdown: CancellationToken,
    /// Failed logins per user name and client address.
    login_limiter: Arc<accounts::LoginLimiter>,
    /// Served over plain HTTP on a loopback address: session cookies without `Secure`.
    plain_http_on_loopback: bool,
    /// Served over HTTPS by Dispecer itself: cookies `Secure`, Strict-Transport-Security on
    /// every answer.
    tls: bool,
    /// The public base URL (links in CAP documents and the Atom feed); `None`: the address each
    /// request came to.
    public_url: Option<Arc<str>>,
    /// Citizens' writes per client address, WebSocket clients, trusted proxies.
    limiter: Arc<limits::Limiter>,
    /// The dashboards' base map template (its host goes into the CSP's `img-src`).
    tile_url: Option<Arc<str>>,
    /// Set in cluster mode: while this instance follows, writes that need the engine go to the
    /// leader (`cluster.rs`).
    cluster: Option<cluster::Cluster>,
}

impl AppState {
    /// State for a router over `engine` and `store`; `tile_url` is the optional base map
    /// template given to the dashboards; WebSockets close when `shutdown` is cancelled.
    pub fn new(
        engine: Engine,
        store: Store,
        tile_url: Option<String>,
        shutdown: CancellationToken,
    ) -> Self {
        let tile = tile_url.as_deref().map(Arc::from);
        let document = protocol::city::CityDocument::new(engine.city().city(), tile_url);
        // Serialising plain data structures cannot fail; an empty body would show at once.
        let city_document = Arc::new(serde_json::to_vec(&document).unwrap_or_default());
        let openapi_document = Arc::new(openapi::json(engine.city().city()));
        AppState {
            engine,
            store,
            city_document,
            openapi_document,
            shutdown,
            login_limiter: accounts::limiter(LoginLimits::default()),
            plain_http_on_loopback: false,
            tls: false,
            public_url: None,
            limiter: Arc::new(limits::Limiter::new(Limits::default())),
            tile_url: tile,
            cluster: None,
        }
    }

    /// Cluster mode: this instance's id and who leads (see `cluster.rs` for what a follower
    /// forwards to the leader and what it refuses). An error when the certificates to trust in
    /// the leader's HTTPS are not usable.
    pub fn with_cluster(mut self, cluster: ClusterView) -> Result<Self, ClusterSetupError> {
        self.cluster = Some(cluster::Cluster::new(cluster)?);
        Ok(self)
    }

    /// The public base URL, e.g. `https://dispecer.brasov.ro`, that public warnings (CAP
    /// documents, the Atom feed) link to. Default: the address each request came to.
    pub fn with_public_url(mut self, url: Option<String>) -> Self {
        self.public_url = url.map(|u| Arc::from(u.trim_end_matches('/')));
        self
    }

    /// Replaces the default [`Limits`] (citizens' writes per address, WebSocket clients,
    /// requests in progress, request timeout, trusted proxies).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limiter = Arc::new(limits::Limiter::new(limits));
        self
    }

    /// Says that the server listens on plain HTTP on a loopback address, where browsers would
    /// not send back a `Secure` cookie: session cookies are then made without it (unless a
    /// proxy in front says `X-Forwarded-Proto: https`). Default: always `Secure`.
    pub fn plain_http_on_loopback(mut self, yes: bool) -> Self {
        self.plain_http_on_loopback = yes;
        self
    }

    /// Says that the server itself speaks HTTPS (`--tls-cert`): session cookies are always
    /// `Secure` and every answer carries `Strict-Transport-Security`, wherever it listens.
    pub fn served_over_tls(mut self, yes: bool) -> Self {
        self.tls = yes;
        self
    }

    /// Replaces the default login limits (5 failures per user name, 20 per client address, in
    /// 15 minutes).
    pub fn with_login_limits(mut self, limits: LoginLimits) -> Self {
        self.login_limiter = accounts::limiter(limits);
        self
    }
}

/// The whole router: API, stream and dashboards, behind the security headers and the global
/// request limits.
pub fn router(state: AppState) -> Router {
    let limits = &state.limiter.limits;
    let global = tower::ServiceBuilder::new()
        .layer(axum::error_handling::HandleErrorLayer::new(
            limits::overloaded,
        ))
        .load_shed()
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            limits.max_concurrent_requests,
        ))
        .timeout(limits.request_timeout);
    let tile_url = state.tile_url.clone();
    let report_limit = from_fn_with_state(state.clone(), limits::limit_reports);
    let open311_limit = from_fn_with_state(state.clone(), limits::limit_open311);
    let hsts = from_fn_with_state(state.clone(), limits::hsts);
    let to_leader = from_fn_with_state(state.clone(), cluster::forward_to_leader);
    let routes = Router::new()
        .route("/api/v1/health", get(health))
        .route(
            "/api/v1/session",
            get(accounts::whoami)
                .post(accounts::login)
                .delete(accounts::logout)
                .layer(DefaultBodyLimit::max(accounts::MAX_LOGIN_BODY)),
        )
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/city", get(city))
        .route("/api/v1/incidents", get(incidents::list))
        .route("/api/v1/incidents/{id}", get(incidents::one))
        .route("/api/v1/incidents/{id}/timeline", get(incidents::timeline))
        .route("/api/v1/incidents/{id}/contacts", get(contacts::list))
        .route(
            "/api/v1/incidents/{id}/actions",
            post(actions::act)
                .layer(DefaultBodyLimit::max(actions::MAX_BODY))
                .layer(to_leader.clone()),
        )
        .route("/api/v1/dead-letters", get(incidents::dead_letters))
        .route(
            "/api/v1/reports/routing-overrides",
            get(reports::routing_overrides),
        )
        .route(
            "/api/v1/reports",
            post(citizens::file)
                .layer(DefaultBodyLimit::max(citizens::MAX_BODY))
                .layer(to_leader.clone())
                .layer(report_limit),
        )
        .route("/api/v1/reports/{code}/photo", get(citizens::photo))
        .route("/api/v1/public/reports/{code}", get(citizens::status))
        .route("/api/v1/public/incidents", get(citizens::public_incidents))
        .route("/api/v1/public/warnings", get(warnings::list))
        .route("/api/v1/public/warnings.atom", get(warnings::atom))
        .route("/api/v1/public/warnings/{file}", get(warnings::document))
        .route("/api/v1/sensors/{id}/readings", get(sensors::readings))
        .route("/api/v1/feeds", get(metrics::feeds))
        .route(
            "/api/v1/events",
            post(ingest::events)
                .layer(DefaultBodyLimit::max(ingest::MAX_BODY))
                .layer(to_leader.clone()),
        )
        .route(
            "/api/v1/readings",
            post(ingest::readings)
                .layer(DefaultBodyLimit::max(ingest::MAX_BODY))
                .layer(to_leader.clone()),
        )
        .route(
            "/open311/v2/{file}",
            get(open311::get_top)
                .post(open311::post_top.layer(to_leader).layer(open311_limit))
                .layer(DefaultBodyLimit::max(open311::MAX_BODY)),
        )
        .route(
            "/open311/v2/services/{file}",
            get(open311::service_definition),
        )
        .route("/open311/v2/requests/{file}", get(open311::request))
        .route("/open311/v2/tokens/{file}", get(open311::token))
        .route("/open311/{*rest}", any(open311::not_found))
        .route("/report", get(dashboards::citizen))
        .route("/report/", get(dashboards::citizen))
        .route("/report/{*file}", get(dashboards::citizen))
        .route("/metrics", get(metrics::prometheus))
        .route("/api/v1/stream", get(stream::upgrade))
        .fallback(dashboards::serve)
        .layer(global)
        .layer(hsts);
    headers::layer(routes, tile_url.as_deref())
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Whether the store is reachable and writable, with the engine's counters.
#[utoipa::path(get, path = "/api/v1/health", tag = "meta", responses(
    (status = 200, description = "Healthy", body = openapi::Health),
    (status = 503, description = "The store is unreachable or failing to write", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
async fn health(State(state): State<AppState>) -> Result<impl IntoResponse, Problem> {
    state
        .store
        .ping()
        .await
        .map_err(|e| Problem::unavailable(format!("store: {e}")))?;
    // Reachable is not enough: a full disk answers reads and refuses every write.
    if let Some(f) = state.store.write_failure() {
        return Err(Problem::unavailable(format!(
            "store: writes failing since {}: {}; the broker keeps what is not yet stored",
            f.since.to_rfc3339(),
            f.error
        )));
    }
    let stats = state.engine.stats();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let cluster = state.cluster.as_ref().map(|c| {
        serde_json::json!({
            "instance": c.view.instance,
            "role": if state.engine.is_leading() { "leader" } else { "follower" },
            "leader": *c.view.leader.borrow(),
            "inbox_queued": load(&stats.inbox_queued),
            "inbox_drained": load(&stats.inbox_drained),
        })
    });
    Ok(Json(serde_json::json!({
        "cluster": cluster,
        "status": "ok",
        "store": state.store.backend().to_string(),
        "events": load(&stats.events),
        "incidents_opened": load(&stats.opened),
        "reports_joined": load(&stats.joined),
        "duplicates": load(&stats.duplicates),
        "store_errors": load(&stats.store_errors),
        "actions": load(&stats.actions),
        "escalations": load(&stats.escalations),
    })))
}

/// The city for the dashboards: categories, agencies, districts, jurisdictions, sensors.
#[utoipa::path(get, path = "/api/v1/city", tag = "city", responses(
    (status = 200, description = "The city document", body = protocol::city::CityDocument),
))]
async fn city(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.city_document.as_ref().clone(),
    )
}
