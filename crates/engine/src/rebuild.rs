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
use model::warning::{WarningOp, WarningText, WarningVersion};
use model::{AgencyId, CityIndex, Event, EventId, Incident, IncidentId, IncidentIndex};
use store::Store;

use crate::{ActionRequest, Actor, EngineError, EngineStats, WarningRequest};

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
    /// A public warning's version an operator issued (not the Cancel that resolving the
    /// incident issued: replaying the resolution issues that one again).
    Warning {
        /// The incident.
        incident: IncidentId,
        /// When.
        at: DateTime<Utc>,
        /// What, with the texts and area the version had.
        op: WarningOp,
        /// Who.
        actor: String,
        /// Why.
        reason: Option<String>,
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

/// The log entry of a recorded timeline transition (an action, an escalation, a link, a public
/// warning's version); `None` for an entry that replaying another one issues again (the Cancel
/// a resolution issued); an error names the entry the log cannot replay.
pub fn transition_entry(t: store::LoggedTransition) -> Result<Option<LogEntry>, String> {
    Ok(Some(match t.kind.as_str() {
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
        kind if WARNING_KINDS.contains(&kind) => {
            let op = warning_of(kind, &t.detail)
                .map_err(|e| format!("timeline of {}: entry {kind:?}: {e}", t.incident))?;
            let Some(op) = op else {
                return Ok(None);
            };
            LogEntry::Warning {
                incident: t.incident,
                at: t.at,
                op,
                actor: t.actor,
                reason: t.reason,
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
    }))
}

/// The timeline kinds of public warnings' versions.
pub const WARNING_KINDS: [&str; 3] = ["publish_warning", "update_warning", "cancel_warning"];

/// A warning's timeline entry (`kind` one of [`WARNING_KINDS`]) as the operation that issued
/// it: `Ok(None)` for the Cancel that resolving an incident issued (`detail.automatic`), not
/// replayed; `Err` when `detail` lacks what the entry must say. The operation carries the
/// version's texts and area, so replaying it issues the same version.
pub fn warning_of(kind: &str, detail: &serde_json::Value) -> Result<Option<WarningOp>, String> {
    if detail.get("automatic").and_then(serde_json::Value::as_bool) == Some(true) {
        return Ok(None);
    }
    let localized = |name: &str| -> Result<model::Localized, String> {
        let v = detail.get(name).ok_or(format!("no {name}"))?;
        let lang = |l: &str| {
            v.get(l)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
                .ok_or(format!("no {name}.{l}"))
        };
        Ok(model::Localized {
            ro: lang("ro")?,
            en: lang("en")?,
        })
    };
    let text = || -> Result<WarningText, String> {
        Ok(WarningText {
            headline: localized("headline")?,
            instruction: localized("instruction")?,
        })
    };
    let area = || store::area_of_detail(detail).ok_or_else(|| "no area".to_owned());
    Ok(Some(match kind {
        "publish_warning" => WarningOp::Publish {
            text: text()?,
            area: Some(area()?),
        },
        "update_warning" => WarningOp::Update {
            text: Some(text()?),
            area: Some(area()?),
        },
        "cancel_warning" => WarningOp::Cancel,
        other => return Err(format!("{other:?} is not a warning's entry")),
    }))
}

/// Replays `log` for `city` into a fresh in-memory store and returns every incident it ends
/// with, by id.
pub async fn rebuild(
    city: Arc<CityIndex>,
    log: Vec<LogEntry>,
) -> Result<Vec<Incident>, RebuildError> {
    Ok(rebuild_all(city, log).await?.0)
}

/// [`rebuild`], with every public warning's versions it ends with (by incident, then number).
pub async fn rebuild_all(
    city: Arc<CityIndex>,
    log: Vec<LogEntry>,
) -> Result<(Vec<Incident>, Vec<WarningVersion>), RebuildError> {
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
            LogEntry::Warning {
                incident,
                at,
                op,
                actor: who,
                reason,
            } => {
                let what = format!("{} of {incident} by {who}", op.message().action());
                let request = WarningRequest {
                    incident,
                    op,
                    actor: who,
                    reason,
                };
                actor
                    .warn(request, at)
                    .await
                    .map_err(|e| refused(what, e))?;
            }
            LogEntry::Escalation { at } => actor.escalate_overdue(at).await,
        }
    }
    let all = store.all_incidents().await?;
    let warnings = store.all_warnings().await?;
    store.close().await;
    Ok((all, warnings))
}
