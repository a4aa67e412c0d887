//! `GET /api/v1/reports/routing-overrides`: per routing rule, how many incidents it routed and
//! how often they were reassigned away from its choice (and to whom), most overridden first;
//! read from the stored incidents and timeline, so it survives restarts.

use axum::extract::State;
use axum::Json;

use protocol::reports::RoutingOverridesReport;

use crate::{AppState, Problem};

/// `GET /api/v1/reports/routing-overrides`.
pub async fn routing_overrides(
    State(state): State<AppState>,
) -> Result<Json<RoutingOverridesReport>, Problem> {
    let rules = state.store.routing_overrides().await?;
    Ok(Json(RoutingOverridesReport::new(&rules)))
}
