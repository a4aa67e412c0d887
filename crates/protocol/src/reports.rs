//! Reports on the wire: `GET /api/v1/reports/routing-overrides`.
//!
//! ```json
//! {"rules": [{"rule": "jurisdiction", "agency": "apa-brasov", "area": "city",
//!             "routed": 4, "overridden": 3, "override_rate": 0.75,
//!             "reassigned_to": [{"agency": "domeniu-public", "count": 2}, ...]}, ...]}
//! ```

use serde::{Deserialize, Serialize};

use model::RuleOverrides;

/// The routing rules, most overridden first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RoutingOverridesReport {
    /// One entry per rule that routed at least one incident.
    pub rules: Vec<RuleOverridesDto>,
}

/// One routing rule and how operators overrode it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RuleOverridesDto {
    /// `jurisdiction` or `fallback`.
    pub rule: String,
    /// The agency the rule chose.
    pub agency: String,
    /// The area of its jurisdiction (`jurisdiction`).
    pub area: Option<String>,
    /// Incidents it routed.
    pub routed: u32,
    /// Of those, reassigned away from its agency.
    pub overridden: u32,
    /// `overridden / routed`.
    pub override_rate: f64,
    /// Where those went first, most often first.
    pub reassigned_to: Vec<ReassignedDto>,
}

/// An agency incidents were reassigned to, and how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReassignedDto {
    /// Agency id.
    pub agency: String,
    /// Incidents.
    pub count: u32,
}

impl RoutingOverridesReport {
    /// The report of `rules`, in their order.
    pub fn new(rules: &[RuleOverrides]) -> Self {
        RoutingOverridesReport {
            rules: rules
                .iter()
                .map(|r| RuleOverridesDto {
                    rule: r.rule.rule.as_str().into(),
                    agency: r.rule.agency.to_string(),
                    area: r.rule.area.as_ref().map(|a| a.as_str().to_owned()),
                    routed: r.routed,
                    overridden: r.overridden,
                    override_rate: r.override_rate(),
                    reassigned_to: r
                        .reassigned_to
                        .iter()
                        .map(|(agency, count)| ReassignedDto {
                            agency: agency.to_string(),
                            count: *count,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}
