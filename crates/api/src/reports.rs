//! `GET /api/v1/reports/routing-overrides`: per routing rule, how many incidents it routed and
//! how often they were reassigned away from its choice (and to whom), most overridden first;
//! read from the stored incidents and timeline, so it survives restarts. For the dispatch
//! center's staff (operators', supervisors' and admins' sessions, an `operator` token): it counts
//! every agency's incidents.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;

use protocol::reports::RoutingOverridesReport;

use crate::{AppState, Problem};

/// Per routing rule: incidents routed, how many were reassigned away and to whom, most
/// overridden first.
#[utoipa::path(get, path = "/api/v1/reports/routing-overrides", tag = "incidents", operation_id = "routing_overrides",
    security(("api_token" = []), ("session" = [])), responses(
    (status = 200, description = "The rules, most overridden first", body = RoutingOverridesReport),
    (status = 401, description = "No session and no API token", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 403, description = "Not the dispatch center's staff", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 503, description = "The store is unavailable", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
pub async fn routing_overrides(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<RoutingOverridesReport>, Problem> {
    crate::accounts::viewer(&state, &headers)
        .await?
        .staff_only("the routing-overrides report")?;
    let rules = state.store.routing_overrides().await?;
    Ok(Json(RoutingOverridesReport::new(&rules)))
}
