//! Rebuilding the incidents from the log: every accepted event and every recorded action and
//! escalation, replayed in order through the same decisions as the running engine, into a fresh
//! in-memory store. Event sourcing's promise, checked: the result must equal what the store
//! holds (`dispecer rebuild --check`, and the engine's tests).
//!
//! The log's events come back as [`model::Event`]s by parsing their logged payloads again (the
//! caller does it, with `protocol`: this crate knows no wire format). An incident an event opens
//! gets the id the log gave it, so that the two can be compared incident by incident.
//!
//! The engine's own decisions (links of a congestion to what explains it, reports absorbed by a
//! declared outage area: see `derive.rs`) are not taken again: the log's `linked` and `merge`
//! entries by `system` replay them.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use model::lifecycle::Action;
use model::{AgencyId, CityIndex, Event, EventId, Incident, IncidentId, IncidentIndex};
use store::Store;

use crate::{ActionRequest, Actor, EngineError, EngineStats};

/// One entry of the log, in the order it happened.
#[derive(Debug, Clone)]
pub enum LogEntry {
    /// An accepted event, and the incident the log says it went to.
    Event {
        /// The event, parsed again from its logged payload.
        event: Box<Event>,
        /// Its incident in the log.
        incident: IncidentId,
    },
    /// An action recorded in an incident's timeline.
    Action {
        /// The incident.
        incident: IncidentId,
        /// When.
        at: DateTime<Utc>,
        /// What.
        action: Action,
        /// Who.
        actor: String,
        /// Why.
        reason: Option<String>,
        /// The actor's request id.
        request_id: Option<String>,
    },
    /// The engine's link of an incident to one that explains it (timeline kind `linked`).
    Link {
        /// The incident explained (a congestion).
        incident: IncidentId,
        /// When.
        at: DateTime<Utc>,
        /// The incident that explains it.
        to: IncidentId,
    },
    /// The engine's deadline check that escalated something at `at`.
    Escalation {
        /// When.
        at: DateTime<Utc>,
    },
}

/// Why a log could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// The in-memory store failed.
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    /// An entry the running engine accepted is refused on replay: the log and the decisions
    /// disagree (or the city changed).
    #[error("entry {index} ({what}) is refused on replay: {error}")]
    Refused {
        /// Its place in the log, from 0.
        index: usize,
        /// What it is.
        what: String,
        /// The engine's refusal.
        error: EngineError,
    },
}

/// The action named `kind` in a timeline, with its particulars (`assign` names its agency in
/// `detail.agency`, `merge` its target in `detail.into`, `split` its report and the incident it
/// opened in `detail.event` and `detail.new_incident`); `None` for a kind that is not an action.
pub fn action_of(kind: &str, detail: &serde_json::Value) -> Option<Action> {
    Some(match kind {
        "assign" => Action::Assign {
            agency: AgencyId::new(detail.get("agency")?.as_str()?),
        },
        "acknowledge" => Action::Acknowledge,
        "start" => Action::Start,
        "resolve" => Action::Resolve,
        "close" => Action::Close,
        "reject" => Action::Reject,
        "duplicate" => Action::Duplicate,
        "reopen" => Action::Reopen,
        "note" => Action::Note,
        "merge" => Action::Merge {
            into: IncidentId::new(detail.get("into")?.as_str()?),
        },
        "unmerge" => Action::Unmerge,
        "split" => Action::Split {
            event: EventId::new(detail.get("event")?.as_str()?),
            new_incident: Some(IncidentId::new(detail.get("new_incident")?.as_str()?)),
        },
        _ => return None,
    })
}

/// The log entry of a recorded timeline transition (an action, an escalation, a link); an
/// error names the entry the log cannot replay.
pub fn transition_entry(t: store::LoggedTransition) -> Result<LogEntry, String> {
    Ok(match t.kind.as_str() {
        "escalated" => LogEntry::Escalation { at: t.at },
        "linked" => {
            let to = t
                .detail
                .get("to")
                .and_then(|v| v.as_str())
                .ok_or_else(|| format!("timeline of {}: a link to nothing", t.incident))?;
            LogEntry::Link {
                incident: t.incident,
                at: t.at,
                to: IncidentId::new(to),
            }
        }
        kind => {
            let action = action_of(kind, &t.detail)
                .ok_or_else(|| format!("timeline of {}: unknown entry {kind:?}", t.incident))?;
            LogEntry::Action {
                incident: t.incident,
                at: t.at,
                action,
                actor: t.actor,
                reason: t.reason,
                request_id: t.request_id,
            }
        }
    })
}

/// Replays `log` for `city` into a fresh in-memory store and returns every incident it ends
/// with, by id.
pub async fn rebuild(
    city: Arc<CityIndex>,
    log: Vec<LogEntry>,
) -> Result<Vec<Incident>, RebuildError> {
    let store = Store::connect("sqlite::memory:").await?;
    let (updates, _) = broadcast::channel(16);
    let mut actor = Actor {
        city,
        store: store.clone(),
        incidents: HashMap::new(),
        index: IncidentIndex::bulk_load(std::iter::empty()),
        by_subject: HashMap::new(),
        updates,
        outbox: None,
        stats: Arc::new(EngineStats::default()),
        // The engine's own decisions are in the log: replayed, not taken again.
        derive: false,
    };
    for (index, entry) in log.into_iter().enumerate() {
        let refused =
            |what: String, error: EngineError| RebuildError::Refused { index, what, error };
        match entry {
            LogEntry::Event { event, incident } => {
                let what = format!("event {}", event.id);
                actor
                    .ingest(*event, Some(incident))
                    .await
                    .map_err(|e| refused(what, e))?;
            }
            LogEntry::Action {
                incident,
                at,
                action,
                actor: who,
                reason,
                request_id,
            } => {
                let what = format!("{} of {} by {who}", action.kind().as_str(), incident);
                let request = ActionRequest {
                    incident,
                    action,
                    actor: who,
                    reason,
                    as_agency: None,
                    request_id,
                };
                actor.act(request, at).await.map_err(|e| refused(what, e))?;
            }
            LogEntry::Link { incident, at, to } => {
                let what = format!("link of {incident} to {to}");
                actor
                    .link(&incident, &to, at)
                    .await
                    .map_err(|e| refused(what, e))?;
            }
            LogEntry::Escalation { at } => actor.escalate_overdue(at).await,
        }
    }
    let all = store.all_incidents().await?;
    store.close().await;
    Ok(all)
}
