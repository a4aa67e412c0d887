//! `GET /api/v1/feeds` (JSON) and `GET /metrics` (Prometheus text exposition format 0.0.4).
//! In cluster mode their per-feed counters are the cluster's: every instance's, summed (see
//! `engine::feeds`); the other counters of `/metrics` are this instance's.
//!
//! Both need a caller: the feeds anyone logged in (a session, a dispatcher's or an agency's
//! token; the console shows which senders went silent); `/metrics` a Prometheus scraper's token
//! (`dispecer token create --metrics`, sent as `Authorization: Bearer …`, which Prometheus's
//! `authorization` setting does), an `operator` token or a staff session.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::Json;
use chrono::Utc;
use serde_json::json;

use protocol::incident::timestamp;

use crate::accounts::{reader, viewer, Caller};
use crate::ingest::Scope;
use crate::{AppState, Problem};

/// Counters of every inbound feed.
#[utoipa::path(get, path = "/api/v1/feeds", tag = "ingest",
    security(("api_token" = []), ("session" = [])), responses(
    (status = 200, description = "Feeds", body = crate::openapi::Feeds),
    (status = 401, description = "No session and no API token", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 403, description = "The token may not read the feeds", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 503, description = "The store is unavailable", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
pub async fn feeds(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    viewer(&state, &headers).await?;
    let now = Utc::now();
    let feeds: Vec<_> = feed_counts(&state)
        .await?
        .into_iter()
        .map(|(name, c)| {
            json!({
                "feed": name,
                "received": c.received,
                "accepted": c.accepted,
                "rejected": c.rejected,
                "duplicates": c.duplicates,
                "last_seen": c.last_seen.map(timestamp),
                "silent_for_s": c.last_seen.map(|t| (now - t).num_seconds()),
                "last_lag_s": c.last_lag_s,
            })
        })
        .collect();
    Ok(Json(json!({ "feeds": feeds })))
}

/// Every feed's counters: this process's own; in cluster mode the cluster's (this instance's
/// live counters and every other instance's as last written to the store, summed).
async fn feed_counts(
    state: &AppState,
) -> Result<std::collections::BTreeMap<String, engine::feeds::FeedCounters>, Problem> {
    let own = state.engine.feeds().snapshot();
    let Some(cluster) = &state.cluster else {
        return Ok(own);
    };
    let rows = state
        .store
        .feed_counters()
        .await
        .map_err(|e| Problem::unavailable(format!("store: {e}")))?;
    Ok(engine::feeds::sum(&cluster.view.instance, own, &rows))
}

/// Escapes a label value (backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The counters for Prometheus: a `metrics` or `operator` token, or a staff session.
pub async fn prometheus(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    match reader(&state, &headers).await? {
        Caller::Token(Scope::Metrics | Scope::Operator, _) => {}
        Caller::Session(s) if s.role != store::Role::Agency => {}
        _ => {
            return Err(Problem::forbidden(
                "/metrics is for a scraper's token (dispecer token create --metrics) and the \
                 dispatch center's staff",
            ))
        }
    }
    let mut out = String::new();
    let stats = state.engine.stats();
    let counters = [
        (
            "dispecer_events_total",
            "Events recorded by the engine.",
            &stats.events,
        ),
        (
            "dispecer_incidents_opened_total",
            "Incidents opened.",
            &stats.opened,
        ),
        (
            "dispecer_reports_joined_total",
            "Events that joined an open incident.",
            &stats.joined,
        ),
        (
            "dispecer_duplicates_total",
            "Redeliveries recognised by event id.",
            &stats.duplicates,
        ),
        (
            "dispecer_store_errors_total",
            "Events, actions and escalations not taken because the store failed.",
            &stats.store_errors,
        ),
        (
            "dispecer_actions_total",
            "Actions on incidents accepted (acknowledge, resolve, ...).",
            &stats.actions,
        ),
        (
            "dispecer_escalations_total",
            "Deadlines missed and escalated.",
            &stats.escalations,
        ),
        (
            "dispecer_traffic_readings_dropped_total",
            "Stored readings the congestion detector did not see because its queue was full.",
            &stats.traffic_dropped,
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            value.load(Ordering::Relaxed)
        );
    }
    let feeds = feed_counts(&state).await?;
    type Counter = fn(&engine::feeds::FeedCounters) -> u64;
    let per_feed: [(&str, &str, Counter); 4] = [
        (
            "dispecer_feed_received_total",
            "Messages received per feed.",
            |c| c.received,
        ),
        (
            "dispecer_feed_accepted_total",
            "Messages accepted per feed.",
            |c| c.accepted,
        ),
        (
            "dispecer_feed_rejected_total",
            "Messages refused (dead letters) per feed.",
            |c| c.rejected,
        ),
        (
            "dispecer_feed_duplicates_total",
            "Redeliveries per feed.",
            |c| c.duplicates,
        ),
    ];
    for (name, help, get) in per_feed {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (feed, c) in &feeds {
            let _ = writeln!(out, "{name}{{feed=\"{}\"}} {}", label(feed), get(c));
        }
    }
    let _ = writeln!(
        out,
        "# HELP dispecer_feed_last_seen_seconds Unix time of the last message per feed.\n# TYPE dispecer_feed_last_seen_seconds gauge"
    );
    for (feed, c) in &feeds {
        if let Some(t) = c.last_seen {
            let _ = writeln!(
                out,
                "dispecer_feed_last_seen_seconds{{feed=\"{}\"}} {}",
                label(feed),
                t.timestamp_millis() as f64 / 1000.0
            );
        }
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    ))
}
