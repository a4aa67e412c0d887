//! What the engine decides on its own after an event changed an incident, each decision
//! recorded in a timeline by `system` and announced like any change:
//!
//! - **Links.** A congestion incident (the city's `[traffic] category`) is explained by open
//!   incidents of the `explained_by` categories within `link_radius_m` (a burst main flooding
//!   the road, an accident): when either opens, the congestion incident lists the other in
//!   `explained_by`, with a `linked` timeline entry (detail `to`, `category`, `distance_m`).
//! - **Absorption.** When an incident's declared area (a utility's outage polygon) appears or is
//!   redrawn, the open incidents of the same category family inside it that only citizens
//!   reported — filed before the declaration — are merged into it (the operators' `merge`, by
//!   `system`, reason "inside declared outage area {id}"; an operator can `unmerge`). The
//!   utility's "restored" then resolves them with it.
//!
//! A rebuild does not decide these again: it replays the `linked` and `merge` entries the log
//! holds ([`crate::rebuild::LogEntry::Link`], [`crate::rebuild::LogEntry::Action`]), so it
//! reproduces what happened even when a decision was cut short by a crash.

use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use geo::MultiPolygon;

use model::{Action, CategoryId, Incident, IncidentId};
use store::NewTimelineEntry;

use crate::{ActionRequest, Actor, EngineError, UpdateKind};

/// The actor of the engine's own decisions in timelines.
pub const SYSTEM: &str = "system";

impl Actor {
    /// The decisions that follow `incident`'s new committed state (`area_before`: the area it
    /// had before this event). Failures are logged: the event itself is durable already.
    pub(crate) async fn derive_after(
        &mut self,
        incident: &Incident,
        opened: bool,
        area_before: Option<&MultiPolygon>,
        at: DateTime<Utc>,
    ) {
        if opened {
            if let Err(e) = self.link_opened(incident, at).await {
                tracing::warn!(incident = %incident.id, error = %e, "incidents not linked");
            }
        }
        if let Some(area) = incident.area.as_ref().filter(|_| incident.status.is_open()) {
            if area_before != Some(area) {
                if let Err(e) = self.absorb(incident, area, at).await {
                    tracing::warn!(incident = %incident.id, error = %e, "reports not absorbed");
                }
            }
        }
    }

    /// Links a newly opened congestion incident to what explains it, or a newly opened
    /// explaining incident to the congestion incidents it explains.
    async fn link_opened(
        &mut self,
        incident: &Incident,
        at: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let rules = &self.city.city().traffic;
        let Some(congestion) = rules.category.clone() else {
            return Ok(());
        };
        let radius = rules.link_radius_m;
        let pairs: Vec<(IncidentId, IncidentId)> = if incident.category == congestion {
            self.index
                .near(&rules.explained_by, incident.location, radius)
                .into_iter()
                .map(|(other, _)| (incident.id.clone(), other))
                .collect()
        } else if rules.explained_by.contains(&incident.category) {
            self.index
                .near(std::slice::from_ref(&congestion), incident.location, radius)
                .into_iter()
                .map(|(c, _)| (c, incident.id.clone()))
                .collect()
        } else {
            Vec::new()
        };
        for (congested, explaining) in pairs {
            self.link(&congested, &explaining, at).await?;
        }
        Ok(())
    }

    /// Records that `explaining` explains `incident` (both open), unless it does already.
    pub(crate) async fn link(
        &mut self,
        incident: &IncidentId,
        explaining: &IncidentId,
        at: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let Some(current) = self.incidents.get(incident).cloned() else {
            return Err(EngineError::NotFound(incident.clone()));
        };
        if current.explained_by.contains(explaining) || incident == explaining {
            return Ok(());
        }
        let Some(other) = self.incidents.get(explaining) else {
            return Err(EngineError::Conflict(format!(
                "incident {explaining} is not open: it explains nothing new"
            )));
        };
        let distance = model::geometry::distance_m(current.location, other.location).round();
        let category = other.category.clone();
        let mut next = current.clone();
        next.explained_by.push(explaining.clone());
        next.updated_at = at;
        let entry = NewTimelineEntry {
            at,
            kind: "linked".into(),
            actor: SYSTEM.into(),
            reason: Some(format!(
                "explained by {category} {explaining}, {distance} m away"
            )),
            from: Some(current.status),
            to: Some(current.status),
            request_id: None,
            detail: serde_json::json!({
                "to": explaining.as_str(),
                "category": category.as_str(),
                "distance_m": distance,
            }),
        };
        if let Err(e) = self.store.record_transition(&next, &entry).await {
            self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
            return Err(e.into());
        }
        tracing::info!(incident = %incident, explained_by = %explaining, "incidents linked");
        self.apply_and_announce(next, UpdateKind::Updated).await;
        Ok(())
    }

    /// Merges into `outage` the open incidents of its family inside `area` that only citizens
    /// reported.
    async fn absorb(
        &mut self,
        outage: &Incident,
        area: &MultiPolygon,
        at: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let city = self.city.city();
        let Some(family) = city
            .category(outage.category.as_str())
            .map(|c| c.family.clone())
        else {
            return Ok(());
        };
        let categories: Vec<CategoryId> = city
            .categories
            .iter()
            .filter(|c| c.family == family)
            .map(|c| c.id.clone())
            .collect();
        let candidates: Vec<IncidentId> = self
            .index
            .inside(&categories, area)
            .into_iter()
            .filter(|id| *id != outage.id)
            .filter(|id| {
                self.incidents.get(id).is_some_and(|i| {
                    i.status.is_open() && i.external_ref.is_none() && i.area.is_none()
                })
            })
            .collect();
        for id in candidates {
            let sources = self.store.incident_events(&id).await?;
            if sources.is_empty() || sources.iter().any(|e| e.source != "citizen") {
                continue;
            }
            let request = ActionRequest {
                incident: id.clone(),
                action: Action::Merge {
                    into: outage.id.clone(),
                },
                actor: SYSTEM.into(),
                reason: Some(format!("inside declared outage area {}", outage.id)),
                as_agency: None,
                request_id: None,
            };
            match self.act(request, at).await {
                Ok(_) => {
                    tracing::info!(incident = %id, into = %outage.id, "report absorbed by declared area")
                }
                Err(e @ EngineError::Store(_)) => return Err(e),
                // The incident refuses (its state moved): leave it to the operators.
                Err(e) => tracing::debug!(incident = %id, error = %e, "not absorbed"),
            }
        }
        Ok(())
    }
}
