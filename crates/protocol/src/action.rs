//! Actions on incidents, on the wire: the body of `POST /api/v1/incidents/{id}/actions`
//! (`{"action": "acknowledge", "reason": "…", "agency": "…"}`) and an agency's update on
//! `dispecer/v1/in/agencies/{agency}/updates` (the same, plus `"incident"` and the update's own
//! `"id"`).
//!
//! `action` is one of `assign`, `acknowledge`, `start`, `resolve`, `close`, `reject`,
//! `duplicate`, `reopen`, `note`, `merge`, `unmerge`, `split` (see `model::lifecycle` for which
//! is allowed when); `agency` is required with `assign` and refused with anything else; `into`
//! (the incident to merge into) is required with `merge` and `event` (the report to take out) with
//! `split`, each refused with anything else; `reason` is optional (required with `note`), at most
//! [`MAX_REASON`] characters, trimmed. Unknown fields are refused. `merge`, `unmerge` and `split`
//! are operators' actions: an agency's update naming one is refused.

use serde::Deserialize;

use model::{Action, ActionKind, City, IncidentId};

use crate::WireError;

/// The longest reason accepted, in characters.
pub const MAX_REASON: usize = 2000;
/// The longest payload accepted, in bytes.
pub const MAX_PAYLOAD: usize = 16 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionJson {
    action: String,
    reason: Option<String>,
    agency: Option<String>,
    into: Option<String>,
    event: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateJson {
    id: String,
    incident: String,
    action: String,
    reason: Option<String>,
    agency: Option<String>,
}

/// An action, validated against the city.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionCommand {
    /// What to do.
    pub action: Action,
    /// Why, trimmed; `None` when absent or blank.
    pub reason: Option<String>,
}

/// An agency's update: an action on one of its incidents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgencyUpdate {
    /// The update's own id, chosen by the agency (for its records and for idempotency).
    pub id: String,
    /// The incident.
    pub incident: IncidentId,
    /// The action and its reason.
    pub command: ActionCommand,
}

fn parse<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, WireError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(WireError::TooLarge {
            size: payload.len(),
            limit: MAX_PAYLOAD,
        });
    }
    let text = std::str::from_utf8(payload).map_err(|e| WireError::NotJson(e.to_string()))?;
    serde_json::from_str(text).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            WireError::NotJson(e.to_string())
        } else {
            WireError::NotAnAction(e.to_string())
        }
    })
}

fn command(
    action: &str,
    reason: Option<String>,
    agency: Option<String>,
    city: &City,
) -> Result<ActionCommand, WireError> {
    command_with(action, reason, agency, None, None, city)
}

/// An identifier given in a body (an incident or event id): 1 to 200 characters, trimmed.
fn identifier(name: &'static str, v: &str) -> Result<String, WireError> {
    let v = v.trim();
    if v.is_empty() || v.len() > 200 {
        Err(WireError::Invalid {
            name,
            reason: "must be 1 to 200 characters".into(),
        })
    } else {
        Ok(v.to_owned())
    }
}

fn command_with(
    action: &str,
    reason: Option<String>,
    agency: Option<String>,
    into: Option<String>,
    event: Option<String>,
    city: &City,
) -> Result<ActionCommand, WireError> {
    let kind: ActionKind = action.parse().map_err(|reason| WireError::Invalid {
        name: "action",
        reason,
    })?;
    let reason = reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if let Some(r) = &reason {
        let chars = r.chars().count();
        if chars > MAX_REASON {
            return Err(WireError::Invalid {
                name: "reason",
                reason: format!("{chars} characters; at most {MAX_REASON}"),
            });
        }
    }
    if kind == ActionKind::Note && reason.is_none() {
        return Err(WireError::Invalid {
            name: "reason",
            reason: "a note needs its text in \"reason\"".into(),
        });
    }
    match (kind, &into, &event) {
        (ActionKind::Merge, None, _) => return Err(WireError::Missing("into")),
        (ActionKind::Split, _, None) => return Err(WireError::Missing("event")),
        (k, Some(_), _) if k != ActionKind::Merge => {
            return Err(WireError::Invalid {
                name: "into",
                reason: format!("only \"merge\" takes \"into\", not {:?}", k.as_str()),
            })
        }
        (k, _, Some(_)) if k != ActionKind::Split => {
            return Err(WireError::Invalid {
                name: "event",
                reason: format!("only \"split\" takes \"event\", not {:?}", k.as_str()),
            })
        }
        _ => {}
    }
    let action = match (kind, agency) {
        (ActionKind::Assign, None) => return Err(WireError::Missing("agency")),
        (ActionKind::Assign, Some(agency)) => {
            if city.agency(&agency).is_none() {
                return Err(WireError::Invalid {
                    name: "agency",
                    reason: format!("{agency:?} is not one of this city's agencies"),
                });
            }
            Action::Assign {
                agency: agency.as_str().into(),
            }
        }
        (other, Some(_)) => {
            return Err(WireError::Invalid {
                name: "agency",
                reason: format!("only \"assign\" takes an agency, not {:?}", other.as_str()),
            })
        }
        (ActionKind::Acknowledge, None) => Action::Acknowledge,
        (ActionKind::Start, None) => Action::Start,
        (ActionKind::Resolve, None) => Action::Resolve,
        (ActionKind::Close, None) => Action::Close,
        (ActionKind::Reject, None) => Action::Reject,
        (ActionKind::Duplicate, None) => Action::Duplicate,
        (ActionKind::Reopen, None) => Action::Reopen,
        (ActionKind::Note, None) => Action::Note,
        (ActionKind::Merge, None) => Action::Merge {
            into: IncidentId::new(identifier("into", into.as_deref().unwrap_or_default())?),
        },
        (ActionKind::Unmerge, None) => Action::Unmerge,
        (ActionKind::Split, None) => Action::Split {
            event: model::EventId::new(identifier("event", event.as_deref().unwrap_or_default())?),
            new_incident: None,
        },
    };
    Ok(ActionCommand { action, reason })
}

/// The body of `POST /api/v1/incidents/{id}/actions`.
pub fn action_request(payload: &[u8], city: &City) -> Result<ActionCommand, WireError> {
    let json: ActionJson = parse(payload)?;
    command_with(
        &json.action,
        json.reason,
        json.agency,
        json.into,
        json.event,
        city,
    )
}

/// An update published by `agency` on `dispecer/v1/in/agencies/{agency}/updates`.
pub fn agency_update(payload: &[u8], city: &City) -> Result<AgencyUpdate, WireError> {
    let json: UpdateJson = parse(payload)?;
    let nonblank = |name: &'static str, v: &str| {
        let v = v.trim();
        if v.is_empty() || v.len() > 200 {
            Err(WireError::Invalid {
                name,
                reason: "must be 1 to 200 characters".into(),
            })
        } else {
            Ok(v.to_owned())
        }
    };
    let id = nonblank("id", &json.id)?;
    let incident = IncidentId::new(nonblank("incident", &json.incident)?);
    let command = command(&json.action, json.reason, json.agency, city)?;
    if command.action.kind().operators_only() {
        return Err(WireError::Invalid {
            name: "action",
            reason: format!(
                "only operators may {} incidents, not agencies",
                command.action.kind()
            ),
        });
    }
    Ok(AgencyUpdate {
        id,
        incident,
        command,
    })
}
