//! `GET /api/v1/reports/routing-overrides`: per routing rule, how many incidents it routed and
//! how often they were reassigned away from its choice (and to whom), most overridden first;
//! read from the stored incidents and timeline, so it survives restarts.

use axum::extract::State;
use axum::Json;

use protocol::reports::RoutingOverridesReport;

use crate::{AppState, Problem};

/// Per routing rule: incidents routed, how many were reassigned away and to whom, most
/// overridden first.
#[utoipa::path(get, path = "/api/v1/reports/routing-overrides", tag = "incidents", operation_id = "routing_overrides",
    responses(
    (status = 200, description = "The rules, most overridden first", body = RoutingOverridesReport),
    (status = 503, description = "The store is unavailable", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
pub async fn routing_overrides(
    State(state): State<AppState>,
) -> Result<Json<RoutingOverridesReport>, Problem> {
    let rules = state.store.routing_overrides().await?;
    Ok(Json(RoutingOverridesReport::new(&rules)))
}
