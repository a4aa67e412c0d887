//! `GET /api/v1/sensors/{id}/readings?from&to&step`: a sensor's readings, rolled up; for anyone
//! logged in (a session, a dispatcher's or an agency's token).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use model::SensorId;
use protocol::incident::timestamp;
use store::Step;

use crate::{AppState, Problem};

/// Most buckets one answer may span.
const MAX_BUCKETS: i64 = 50_000;
/// Longest range for raw readings.
const MAX_RAW_RANGE: Duration = Duration::hours(6);

/// The query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReadingsQuery {
    /// RFC 3339; default `to` − 24 h.
    #[param(format = DateTime)]
    from: Option<String>,
    /// RFC 3339; default now.
    #[param(format = DateTime)]
    to: Option<String>,
    /// `raw`, `1m` (default), `15m` or `1h`.
    #[param(pattern = "^(raw|1m|15m|1h)$")]
    step: Option<String>,
}

fn time(name: &str, text: &str) -> Result<DateTime<Utc>, Problem> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            Problem::bad_request(format!(
                "{name} {text:?} is not an RFC 3339 date-time with a time zone: {e}"
            ))
        })
}

/// A sensor's readings, rolled up per step.
#[utoipa::path(get, path = "/api/v1/sensors/{id}/readings", tag = "sensors",
    params(("id" = String, Path, description = "Sensor id"), ReadingsQuery),
    security(("api_token" = []), ("session" = [])), responses(
    (status = 200, description = "Buckets per metric", body = crate::openapi::SensorReadings),
    (status = 400, description = "The range or step is malformed or too large", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 401, description = "No session and no API token", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 403, description = "The token may not read readings", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 404, description = "No such sensor in this city", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 503, description = "The store is unavailable", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
pub async fn readings(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<ReadingsQuery>, QueryRejection>,
) -> Result<impl IntoResponse, Problem> {
    crate::accounts::viewer(&state, &headers).await?;
    let Query(q) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
    let city = state.engine.city().city();
    let sensor = city
        .sensors
        .iter()
        .find(|s| s.id.as_str() == id)
        .ok_or_else(|| Problem::not_found(format!("no sensor {id:?} in this city")))?;
    let to =
        q.to.as_deref()
            .map(|t| time("to", t))
            .transpose()?
            .unwrap_or_else(Utc::now);
    let from = q
        .from
        .as_deref()
        .map(|t| time("from", t))
        .transpose()?
        .unwrap_or(to - Duration::hours(24));
    if from >= to {
        return Err(Problem::bad_request("from must be before to"));
    }
    let step: Step = q
        .step
        .as_deref()
        .unwrap_or("1m")
        .parse()
        .map_err(Problem::bad_request)?;
    let range = to - from;
    match step {
        Step::Raw if range > MAX_RAW_RANGE => {
            return Err(Problem::bad_request("raw readings span at most 6 hours; use step=1m, 15m or 1h"))
        }
        Step::Raw => {}
        s if range.num_seconds() / s.seconds() > MAX_BUCKETS => {
            return Err(Problem::bad_request(format!(
                "{} buckets of {s} are too many (at most {MAX_BUCKETS}); use a larger step or a shorter range",
                range.num_seconds() / s.seconds()
            )))
        }
        _ => {}
    }
    let rows = state
        .store
        .readings_rollup(&SensorId::new(id.clone()), from, to, step)
        .await?;
    let mut series: Map<String, Value> = Map::new();
    for r in rows {
        let points = series
            .entry(r.metric.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(points) = points {
            points.push(json!({"t": timestamp(r.bucket), "avg": r.avg, "min": r.min, "max": r.max, "n": r.count}));
        }
    }
    Ok(Json(json!({
        "sensor": sensor.id.as_str(),
        "name": sensor.name,
        "free_flow_speed_kmh": sensor.free_flow_speed_kmh,
        "from": timestamp(from),
        "to": timestamp(to),
        "step": step.to_string(),
        "series": series,
    })))
}
