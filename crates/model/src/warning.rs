//! Public warnings: what an operator tells the public about an incident (a boil-water notice, a
//! gas leak area, a closed road), as a series of versions: an `Alert`, then `Update`s, then a
//! `Cancel` (OASIS CAP's message types; `protocol::capout` writes each version as a CAP 1.2
//! document). Pure functions; the engine supplies the clock and the history.
//!
//! Rules ([`next`]): a warning is published on an open incident that has no active warning;
//! only an active warning is updated or cancelled; a cancelled warning may be published again
//! (a new series, whose `Alert` references nothing). Versions of an incident are numbered from 1
//! across series, so each version has its own identifier. Times are whole seconds (CAP's
//! `dateTime` has none finer), never earlier than the version before.
//!
//! Invariant: coordinates are (longitude, latitude); radii are meters.

use chrono::{DateTime, SubsecRound, Utc};
use geo::{MultiPolygon, Point};

use crate::i18n::Localized;
use crate::ids::{CategoryId, IncidentId};
use crate::incident::{Incident, IncidentStatus, Severity};

/// The radius of the circle around an incident's point when no area is given, in meters.
pub const DEFAULT_RADIUS_M: f64 = 500.0;

/// Which version of a warning this is, in CAP's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WarningMessage {
    /// The first version of a series.
    Alert,
    /// A change of an active warning.
    Update,
    /// The warning is withdrawn.
    Cancel,
}

impl WarningMessage {
    /// CAP's `msgType`.
    pub fn as_str(self) -> &'static str {
        match self {
            WarningMessage::Alert => "Alert",
            WarningMessage::Update => "Update",
            WarningMessage::Cancel => "Cancel",
        }
    }

    /// The timeline's name for the action that makes it.
    pub fn action(self) -> &'static str {
        match self {
            WarningMessage::Alert => "publish_warning",
            WarningMessage::Update => "update_warning",
            WarningMessage::Cancel => "cancel_warning",
        }
    }
}

impl std::str::FromStr for WarningMessage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Alert" => Ok(WarningMessage::Alert),
            "Update" => Ok(WarningMessage::Update),
            "Cancel" => Ok(WarningMessage::Cancel),
            other => Err(format!("unknown warning message type {other:?}")),
        }
    }
}

/// Where a warning applies.
#[derive(Debug, Clone, PartialEq)]
pub enum WarningArea {
    /// A circle around a point.
    Circle {
        /// The centre.
        center: Point,
        /// The radius, meters.
        radius_m: f64,
    },
    /// Polygons (closed rings).
    Polygons(MultiPolygon),
}

impl WarningArea {
    /// The incident's own place: its declared area when it has one, else a circle of
    /// `radius_m` meters around its point.
    pub fn of_incident(incident: &Incident, radius_m: f64) -> WarningArea {
        match &incident.area {
            Some(area) if !area.0.is_empty() => WarningArea::Polygons(area.clone()),
            _ => WarningArea::Circle {
                center: incident.location,
                radius_m,
            },
        }
    }
}

/// What the public reads: a headline and what to do, in both languages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarningText {
    /// A short headline.
    pub headline: Localized,
    /// What people should do.
    pub instruction: Localized,
}

/// One version of an incident's public warning.
#[derive(Debug, Clone, PartialEq)]
pub struct WarningVersion {
    /// The incident.
    pub incident: IncidentId,
    /// Its number among the incident's versions, from 1.
    pub seq: u32,
    /// Alert, Update or Cancel.
    pub message: WarningMessage,
    /// When it was issued, whole seconds.
    pub sent: DateTime<Utc>,
    /// The texts.
    pub text: WarningText,
    /// Where.
    pub area: WarningArea,
    /// The incident's category then.
    pub category: CategoryId,
    /// The incident's severity then.
    pub severity: Severity,
    /// Who issued it (as the timeline shows it).
    pub actor: String,
}

/// What an operator does to an incident's warning.
#[derive(Debug, Clone, PartialEq)]
pub enum WarningOp {
    /// Publish one (a new series): the texts, and the area (`None`: the incident's own).
    Publish {
        /// The texts.
        text: WarningText,
        /// The area, or `None` for [`WarningArea::of_incident`].
        area: Option<WarningArea>,
    },
    /// Change the active one: new texts and area, each `None` to keep the current one.
    Update {
        /// New texts.
        text: Option<WarningText>,
        /// A new area.
        area: Option<WarningArea>,
    },
    /// Withdraw the active one.
    Cancel,
}

impl WarningOp {
    /// The message type it issues.
    pub fn message(&self) -> WarningMessage {
        match self {
            WarningOp::Publish { .. } => WarningMessage::Alert,
            WarningOp::Update { .. } => WarningMessage::Update,
            WarningOp::Cancel => WarningMessage::Cancel,
        }
    }
}

/// Why a warning cannot be issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WarningError {
    /// A publication on an incident that already has an active warning.
    #[error("incident {0} already has an active public warning; update or cancel it")]
    AlreadyActive(IncidentId),
    /// An update or a cancellation with no active warning.
    #[error("incident {0} has no active public warning")]
    NotActive(IncidentId),
    /// A publication or an update on an incident that is no longer open.
    #[error("incident {incident} is {status}: only an open incident gets a public warning")]
    NotOpen {
        /// The incident.
        incident: IncidentId,
        /// Its state.
        status: IncidentStatus,
    },
}

/// The active warning in `history` (the incident's versions in order): the last version, unless
/// it is a cancellation.
pub fn active(history: &[WarningVersion]) -> Option<&WarningVersion> {
    history
        .last()
        .filter(|v| v.message != WarningMessage::Cancel)
}

/// The versions of the series `history`'s last version belongs to: from its last `Alert` on.
/// An `Update` or `Cancel` references every earlier version of its series.
pub fn series(history: &[WarningVersion]) -> &[WarningVersion] {
    let start = history
        .iter()
        .rposition(|v| v.message == WarningMessage::Alert)
        .unwrap_or(0);
    &history[start..]
}

/// The version `op` issues on `incident`, whose earlier versions are `history` (in order), by
/// `actor` at `at`; or why it cannot. A cancellation is allowed whatever the incident's state
/// (it is how a warning ends when the incident does).
pub fn next(
    incident: &Incident,
    history: &[WarningVersion],
    op: WarningOp,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<WarningVersion, WarningError> {
    let current = active(history);
    let open = incident.status.is_open();
    let not_open = || WarningError::NotOpen {
        incident: incident.id.clone(),
        status: incident.status,
    };
    let message = op.message();
    let (text, area) = match (op, current) {
        (WarningOp::Publish { .. }, Some(_)) => {
            return Err(WarningError::AlreadyActive(incident.id.clone()))
        }
        (WarningOp::Publish { .. }, None) if !open => return Err(not_open()),
        (WarningOp::Publish { text, area }, None) => (
            text,
            area.unwrap_or_else(|| WarningArea::of_incident(incident, DEFAULT_RADIUS_M)),
        ),
        (WarningOp::Update { .. } | WarningOp::Cancel, None) => {
            return Err(WarningError::NotActive(incident.id.clone()))
        }
        (WarningOp::Update { .. }, Some(_)) if !open => return Err(not_open()),
        (WarningOp::Update { text, area }, Some(cur)) => (
            text.unwrap_or_else(|| cur.text.clone()),
            area.unwrap_or_else(|| cur.area.clone()),
        ),
        (WarningOp::Cancel, Some(cur)) => (cur.text.clone(), cur.area.clone()),
    };
    let mut sent = at.trunc_subsecs(0);
    if let Some(last) = history.last() {
        sent = sent.max(last.sent);
    }
    let seq = history.last().map_or(1, |v| v.seq.saturating_add(1));
    Ok(WarningVersion {
        incident: incident.id.clone(),
        seq,
        message,
        sent,
        text,
        area,
        category: incident.category.clone(),
        severity: incident.severity,
        actor: actor.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AgencyId;
    use crate::lifecycle::SlaClock;
    use crate::routing::{RouteCandidate, RoutingDecision, RoutingRule};
    use chrono::TimeZone;

    fn incident(status: IncidentStatus) -> Incident {
        let at = Utc
            .with_ymd_and_hms(2026, 3, 1, 8, 0, 0)
            .single()
            .unwrap_or_default();
        Incident {
            id: IncidentId::new("i-1"),
            category: CategoryId::new("gas_leak"),
            severity: Severity::Severe,
            status,
            location: Point::new(25.59, 45.64),
            area: None,
            district: None,
            agency: AgencyId::new("distrigaz"),
            routing: RoutingDecision {
                chosen: RouteCandidate {
                    agency: AgencyId::new("distrigaz"),
                    rule: RoutingRule::Fallback,
                    area: None,
                },
                alternatives: Vec::new(),
                informed: Vec::new(),
            },
            report_count: 1,
            description: None,
            external_ref: None,
            opened_at: at,
            updated_at: at,
            sla: SlaClock::default(),
            merged_into: None,
            explained_by: Vec::new(),
        }
    }

    fn text(h: &str) -> WarningText {
        WarningText {
            headline: Localized {
                ro: format!("{h} ro"),
                en: format!("{h} en"),
            },
            instruction: Localized {
                ro: "Evitați zona".into(),
                en: "Avoid the area".into(),
            },
        }
    }

    fn publish(h: &str) -> WarningOp {
        WarningOp::Publish {
            text: text(h),
            area: None,
        }
    }

    /// A scenario: operations in order, with the expected outcome of each (`Ok(message)` or
    /// the refusal).
    #[test]
    fn the_series_rules() {
        use WarningMessage as M;
        let at = Utc
            .with_ymd_and_hms(2026, 3, 1, 9, 0, 0)
            .single()
            .unwrap_or_default();
        let open = incident(IncidentStatus::Assigned);
        let resolved = incident(IncidentStatus::Resolved);
        let update = || WarningOp::Update {
            text: Some(text("b")),
            area: None,
        };
        let table: Vec<(&Incident, WarningOp, Result<M, WarningError>)> = vec![
            (
                &open,
                update(),
                Err(WarningError::NotActive(open.id.clone())),
            ),
            (
                &open,
                WarningOp::Cancel,
                Err(WarningError::NotActive(open.id.clone())),
            ),
            (
                &resolved,
                publish("a"),
                Err(WarningError::NotOpen {
                    incident: open.id.clone(),
                    status: IncidentStatus::Resolved,
                }),
            ),
            (&open, publish("a"), Ok(M::Alert)),
            (
                &open,
                publish("a"),
                Err(WarningError::AlreadyActive(open.id.clone())),
            ),
            (&open, update(), Ok(M::Update)),
            (
                &resolved,
                update(),
                Err(WarningError::NotOpen {
                    incident: open.id.clone(),
                    status: IncidentStatus::Resolved,
                }),
            ),
            (&resolved, WarningOp::Cancel, Ok(M::Cancel)),
            (
                &open,
                WarningOp::Cancel,
                Err(WarningError::NotActive(open.id.clone())),
            ),
            (&open, publish("c"), Ok(M::Alert)),
        ];
        let mut history: Vec<WarningVersion> = Vec::new();
        for (i, (inc, op, want)) in table.into_iter().enumerate() {
            let got = next(inc, &history, op, "operator:x", at).map(|v| {
                history.push(v.clone());
                v.message
            });
            assert_eq!(got, want, "step {i}");
        }
        let seqs: Vec<u32> = history.iter().map(|v| v.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
        // The second series starts at the second Alert.
        assert_eq!(series(&history).len(), 1);
        assert_eq!(series(&history[..3]).len(), 3);
        assert_eq!(active(&history).map(|v| v.seq), Some(4));
        assert!(active(&history[..3]).is_none());
    }

    #[test]
    fn update_keeps_what_it_does_not_change_and_cancel_keeps_everything() {
        let at = Utc
            .with_ymd_and_hms(2026, 3, 1, 9, 0, 0)
            .single()
            .unwrap_or_default();
        let open = incident(IncidentStatus::Assigned);
        let first =
            next(&open, &[], publish("a"), "operator:x", at).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            first.area,
            WarningArea::Circle {
                center: open.location,
                radius_m: DEFAULT_RADIUS_M
            }
        );
        let new_area = WarningArea::Circle {
            center: Point::new(25.6, 45.65),
            radius_m: 200.0,
        };
        let op = WarningOp::Update {
            text: None,
            area: Some(new_area.clone()),
        };
        let second = next(&open, std::slice::from_ref(&first), op, "operator:y", at)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(second.text, first.text);
        assert_eq!(second.area, new_area);
        let history = [first, second.clone()];
        let third = next(&open, &history, WarningOp::Cancel, "system", at)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((third.text, third.area), (second.text, second.area));
    }

    #[test]
    fn times_are_whole_seconds_and_never_go_back() {
        let open = incident(IncidentStatus::Assigned);
        let at = Utc
            .with_ymd_and_hms(2026, 3, 1, 9, 0, 5)
            .single()
            .unwrap_or_default()
            + chrono::Duration::milliseconds(700);
        let first = next(&open, &[], publish("a"), "o", at).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.sent, at.trunc_subsecs(0));
        let earlier = at - chrono::Duration::seconds(30);
        let second = next(
            &open,
            std::slice::from_ref(&first),
            WarningOp::Cancel,
            "o",
            earlier,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(second.sent, first.sent);
    }
}
