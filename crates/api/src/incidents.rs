//! `GET /api/v1/incidents`, `GET /api/v1/incidents/{id}`, its timeline, and the dead letters.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;

use model::{AgencyId, CategoryId, IncidentId, IncidentStatus};
use protocol::incident::{timestamp, IncidentCollection, IncidentFeature};
use store::IncidentFilter;

use crate::accounts::{viewer, Viewer};
use crate::{AppState, Problem};

const GEO_JSON: &str = "application/geo+json";

/// Filters of the incident list; all optional.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `west,south,east,north` in degrees.
    bbox: Option<String>,
    /// Comma-separated statuses, or `open`.
    status: Option<String>,
    /// Category id.
    category: Option<String>,
    /// Agency id.
    agency: Option<String>,
    /// At most this many (1 to 10 000; default 1 000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
}

fn parse_bbox(text: &str) -> Result<[f64; 4], Problem> {
    let bad = || {
        Problem::bad_request(format!(
            "bbox {text:?} must be west,south,east,north in degrees"
        ))
    };
    let parts: Vec<f64> = text
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let [w, s, e, n]: [f64; 4] = parts.try_into().map_err(|_| bad())?;
    // West east of east crosses the antimeridian (RFC 7946 §5.2); south north of north is an
    // empty box (it matches nothing).
    if !(model::geometry::valid_position(w, s) && model::geometry::valid_position(e, n)) {
        return Err(bad());
    }
    Ok([w, s, e, n])
}

fn parse_statuses(text: &str) -> Result<Vec<IncidentStatus>, Problem> {
    let mut out = Vec::new();
    // Exactly the document's pattern: names separated by single commas, no blanks.
    for part in text.split(',') {
        if part == "open" {
            out.extend(IncidentStatus::ALL.into_iter().filter(|s| s.is_open()));
        } else {
            out.push(
                part.parse::<IncidentStatus>()
                    .map_err(Problem::bad_request)?,
            );
        }
    }
    Ok(out)
}

/// Incidents, newest first, filtered.
#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents", params(ListQuery),
    security(("api_token" = []), ("session" = [])), responses(
    (status = 200, description = "A GeoJSON FeatureCollection (an agency's: those it is responsible for or informed of)", body = protocol::incident::IncidentCollection, content_type = "application/geo+json"),
    (status = 400, description = "A filter is malformed or names nothing in this city", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 401, description = "No session and no API token", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 403, description = "The token may not read incidents", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 503, description = "The store is unavailable", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<impl IntoResponse, Problem> {
    let viewer = viewer(&state, &headers).await?;
    let Query(q) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
    let city = state.engine.city().city();
    if let Some(c) = &q.category {
        if city.category(c).is_none() {
            return Err(Problem::bad_request(format!(
                "category {c:?} is not one of this city's"
            )));
        }
    }
    if let Some(a) = &q.agency {
        if city.agency(a).is_none() {
            return Err(Problem::bad_request(format!(
                "agency {a:?} is not one of this city's"
            )));
        }
    }
    if matches!(q.limit, Some(l) if l == 0 || l > 10_000) {
        return Err(Problem::bad_request("limit must be between 1 and 10000"));
    }
    let filter = IncidentFilter {
        bbox: q.bbox.as_deref().map(parse_bbox).transpose()?,
        statuses: q
            .status
            .as_deref()
            .map(parse_statuses)
            .transpose()?
            .unwrap_or_default(),
        category: q.category.as_deref().map(CategoryId::from),
        agency: q.agency.as_deref().map(AgencyId::from),
        // An agency's user or token sees its agency's incidents only, whatever it asked for.
        visible_to: viewer.agency().cloned(),
        since: None,
        limit: q.limit,
    };
    let empty_box = filter.bbox.is_some_and(|[_, s, _, n]| s > n);
    let incidents = if empty_box {
        Vec::new()
    } else {
        state.store.incidents(&filter).await?
    };
    Ok((
        [(header::CONTENT_TYPE, GEO_JSON)],
        Json(IncidentCollection::new(incidents.iter())),
    ))
}

/// One incident.
#[utoipa::path(get, path = "/api/v1/incidents/{id}", tag = "incidents", operation_id = "one",
    params(("id" = String, Path, description = "Incident id")),
    security(("api_token" = []), ("session" = [])), responses(
    (status = 200, description = "A GeoJSON Feature", body = protocol::incident::IncidentFeature, content_type = "application/geo+json"),
    (status = 401, description = "No session and no API token", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 403, description = "The token may not read incidents, or the incident is another agency's", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 404, description = "No such incident", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 503, description = "The store is unavailable", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
pub async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    let viewer = viewer(&state, &headers).await?;
    let incident = state
        .store
        .incident(&IncidentId::new(id.clone()))
        .await?
        .ok_or_else(|| Problem::not_found(format!("no incident {id:?}")))?;
    viewer.may_read(&incident)?;
    Ok((
        [(header::CONTENT_TYPE, GEO_JSON)],
        Json(IncidentFeature::from(&incident)),
    ))
}

/// An incident's events and timeline.
#[utoipa::path(get, path = "/api/v1/incidents/{id}/timeline", tag = "incidents", operation_id = "timeline",
    params(("id" = String, Path, description = "Incident id")),
    security(("api_token" = []), ("session" = [])), responses(
    (status = 200, description = "Events and timeline, oldest first", body = crate::openapi::Timeline),
    (status = 401, description = "No session and no API token", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 403, description = "The token may not read incidents, or the incident is another agency's", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 404, description = "No such incident", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 503, description = "The store is unavailable", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
pub async fn timeline(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    let viewer = viewer(&state, &headers).await?;
    let id = IncidentId::new(id);
    let incident = state
        .store
        .incident(&id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no incident {:?}", id.as_str())))?;
    viewer.may_read(&incident)?;
    let entries = state.store.timeline(&id).await?;
    let events = state.store.incident_events(&id).await?;
    Ok(Json(serde_json::json!({
        "incident": id.as_str(),
        "events": events.iter().map(|e| serde_json::json!({
            "id": e.id.as_str(), "source": e.source, "received_at": timestamp(e.received_at),
        })).collect::<Vec<_>>(),
        "timeline": entries.iter().map(|t| serde_json::json!({
            "at": timestamp(t.at), "kind": t.kind, "actor": t.actor, "reason": t.reason,
            "from": t.from.map(|s| s.as_str()), "to": t.to.map(|s| s.as_str()),
            "detail": t.detail,
        })).collect::<Vec<_>>(),
    })))
}

/// `?limit=` for the dead letters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    /// At most this many (1 to 10 000; default 100).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
}

/// Inbound messages that were refused, newest first: admins only (a refused payload is shown
/// whole, and may be any sender's).
#[utoipa::path(get, path = "/api/v1/dead-letters", tag = "ingest", params(DeadLetterQuery),
    security(("session" = [])), responses(
    (status = 200, description = "Dead letters", body = crate::openapi::DeadLetters),
    (status = 400, description = "The limit is out of range", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 401, description = "No session and no API token", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 403, description = "Not an admin's session", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 503, description = "The store is unavailable", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
pub async fn dead_letters(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<DeadLetterQuery>, QueryRejection>,
) -> Result<impl IntoResponse, Problem> {
    match viewer(&state, &headers).await? {
        Viewer::Staff { admin: true, .. } => {}
        _ => {
            return Err(Problem::forbidden(
                "the dead letters are shown to admins only (an admin's session)",
            ))
        }
    }
    let Query(q) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 10_000 {
        return Err(Problem::bad_request("limit must be between 1 and 10000"));
    }
    let letters = state.store.dead_letters(limit).await?;
    Ok(Json(serde_json::json!({
        "dead_letters": letters.iter().map(|d| serde_json::json!({
            "id": d.id,
            "received_at": timestamp(d.received_at),
            "channel": d.channel,
            "topic": d.topic,
            "reason": d.reason,
            "payload": String::from_utf8_lossy(&d.payload),
        })).collect::<Vec<_>>(),
    })))
}
