//! Reports computed from what is stored: how operators override the routing rules.

use model::{override_report, AgencyId, IncidentId, RuleOverrides};

use crate::rows::parse_routing;
use crate::{Pool, Store, StoreError};

impl Store {
    /// Per routing rule (the kind, agency and area that chose an incident's first agency): how
    /// many incidents it routed and how many were reassigned away from its choice, and to whom,
    /// most overridden first (see [`model::override_report`]). Read from the incidents' routing
    /// and the timeline's `assign` entries, so it survives restarts.
    pub async fn routing_overrides(&self) -> Result<Vec<RuleOverrides>, StoreError> {
        let incidents: Vec<(String, String)> = with_pool!(self, |pool| {
            sqlx::query_as("SELECT id, routing FROM incidents")
                .fetch_all(pool)
                .await?
        });
        let assigns: Vec<(String, String)> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT incident_id, detail FROM incident_timeline WHERE kind = 'assign' \
                 ORDER BY at, id",
            )
            .fetch_all(pool)
            .await?
        });
        let routed = incidents
            .into_iter()
            .map(|(id, routing)| {
                let decision = parse_routing(&routing).ok_or_else(|| {
                    StoreError::corrupt(format!("incident {id}: routing is not a routing decision"))
                })?;
                Ok((IncidentId::new(id), decision.chosen))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut reassignments = Vec::with_capacity(assigns.len());
        for (incident, detail) in assigns {
            let detail: serde_json::Value = serde_json::from_str(&detail).map_err(|e| {
                StoreError::corrupt(format!("assign entry of {incident}: detail: {e}"))
            })?;
            let agency = |key: &str| detail.get(key).and_then(|v| v.as_str()).map(AgencyId::new);
            // An assignment from `new` names no previous agency: it overrides nothing.
            if let (Some(from), Some(to)) = (agency("previous_agency"), agency("agency")) {
                reassignments.push((IncidentId::new(incident), from, to));
            }
        }
        Ok(override_report(routed, reassignments))
    }
}
