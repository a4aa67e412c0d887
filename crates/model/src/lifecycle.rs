//! The incident lifecycle: which actions move an incident from which state to which, its
//! deadlines (SLA) and their escalation. Pure functions; the engine supplies the clock.
//!
//! The graph (every other pair is refused with [`TransitionError::NotAllowed`]):
//!
//! ```text
//!                 assign (reassign: from any open state, back to assigned)
//!   new ──assign──► assigned ──acknowledge──► acknowledged ──start──► in_progress
//!                      │                            │                     │
//!                      └──────────── resolve ───────┴─────────────────────┴──► resolved ──close──► closed
//!                                                                                │  ▲
//!                                       reopened ◄──────────── reopen ───────────┘  │
//!                                        │  ├──acknowledge──► acknowledged          │
//!                                        │  └──start────────► in_progress           │
//!                                        └────────────── resolve ───────────────────┘
//!
//!   any open state (new, assigned, acknowledged, in_progress, reopened)
//!       ──reject──► rejected        ──duplicate──► duplicate
//! ```
//!
//! `note` is allowed in every state and changes nothing but the timeline.
//!
//! Merging and splitting (operators only; the engine moves the reports): `merge` (into another
//! incident) takes any open state to `duplicate`, remembering the incident it went into
//! ([`Incident::merged_into`]); `unmerge` undoes it, taking a merged `duplicate` back to
//! `assigned` (to the agency it had); `split` (one report out into a new incident) is allowed in
//! any open state and leaves the state as it is. A split is undone by merging the new incident
//! back.
//!
//! Invariant: `closed` and `rejected` are final: no action but `note` is accepted there;
//! `duplicate` too, except `unmerge` of an incident that was merged (not one marked duplicate by
//! hand). A `resolved` incident may only be closed or reopened.
//!
//! The engine routes a new incident as it opens it, so incidents start `assigned`; `new` exists for
//! an incident nobody was given yet (none today) and for data written by other tools.
//!
//! Deadlines: when an incident opens, its category's [`SlaPolicy`] for its severity gives the
//! time to acknowledge and the time to resolve ([`SlaClock::start`]). A reassignment gives the new
//! agency a fresh acknowledgement deadline (the resolution deadline keeps running: the city's
//! promise to the citizen does not restart); a reopening starts both deadlines again. An incident
//! that misses a deadline escalates once per deadline ([`due_escalation`], [`escalate`]): its
//! severity rises one step (at most `extreme`) and the escalation's time is kept, so it never
//! escalates twice for the same deadline. Deadlines are not recomputed when the severity rises.

use std::fmt;

use chrono::{DateTime, Duration, Utc};

use crate::ids::{AgencyId, EventId, IncidentId};
use crate::incident::{Incident, IncidentStatus, Severity};

/// Something a person or an agency does to an incident.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// Give it to an agency (again): from any open state, back to `assigned`.
    Assign {
        /// The agency that takes it.
        agency: AgencyId,
    },
    /// The agency has seen it: `assigned` or `reopened` → `acknowledged`.
    Acknowledge,
    /// Work has started: `acknowledged` or `reopened` → `in_progress`.
    Start,
    /// Fixed: `assigned`, `acknowledged`, `in_progress` or `reopened` → `resolved`.
    Resolve,
    /// Done with: `resolved` → `closed` (final).
    Close,
    /// Not an incident: any open state → `rejected` (final).
    Reject,
    /// Another incident describes the same thing: any open state → `duplicate` (final).
    Duplicate,
    /// It came back: `resolved` → `reopened`.
    Reopen,
    /// A remark for the timeline; allowed in every state, changes nothing else.
    Note,
    /// This incident is the same as `into`: any open state → `duplicate`; its reports move to
    /// `into` (the engine moves them).
    Merge {
        /// The incident it goes into.
        into: IncidentId,
    },
    /// Undoes a merge: a merged `duplicate` → `assigned`; its reports come back.
    Unmerge,
    /// One report out into a new incident, routed afresh; any open state, unchanged.
    Split {
        /// The report (event) to take out.
        event: EventId,
        /// The new incident's id: `None` for a fresh one; a rebuild gives the logged one.
        new_incident: Option<IncidentId>,
    },
}

/// An action's name, without its data: what the wire and the timeline call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionKind {
    /// [`Action::Assign`].
    Assign,
    /// [`Action::Acknowledge`].
    Acknowledge,
    /// [`Action::Start`].
    Start,
    /// [`Action::Resolve`].
    Resolve,
    /// [`Action::Close`].
    Close,
    /// [`Action::Reject`].
    Reject,
    /// [`Action::Duplicate`].
    Duplicate,
    /// [`Action::Reopen`].
    Reopen,
    /// [`Action::Note`].
    Note,
    /// [`Action::Merge`].
    Merge,
    /// [`Action::Unmerge`].
    Unmerge,
    /// [`Action::Split`].
    Split,
}

impl ActionKind {
    /// All, in the order of the lifecycle.
    pub const ALL: [ActionKind; 12] = [
        ActionKind::Assign,
        ActionKind::Acknowledge,
        ActionKind::Start,
        ActionKind::Resolve,
        ActionKind::Close,
        ActionKind::Reject,
        ActionKind::Duplicate,
        ActionKind::Reopen,
        ActionKind::Note,
        ActionKind::Merge,
        ActionKind::Unmerge,
        ActionKind::Split,
    ];

    /// snake_case name used on the wire and in the timeline.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Assign => "assign",
            ActionKind::Acknowledge => "acknowledge",
            ActionKind::Start => "start",
            ActionKind::Resolve => "resolve",
            ActionKind::Close => "close",
            ActionKind::Reject => "reject",
            ActionKind::Duplicate => "duplicate",
            ActionKind::Reopen => "reopen",
            ActionKind::Note => "note",
            ActionKind::Merge => "merge",
            ActionKind::Unmerge => "unmerge",
            ActionKind::Split => "split",
        }
    }

    /// Whether only operators may take it (agencies may not): merging and splitting.
    pub fn operators_only(self) -> bool {
        matches!(
            self,
            ActionKind::Merge | ActionKind::Unmerge | ActionKind::Split
        )
    }

    /// The state this action leads to; `None` for [`ActionKind::Note`] and [`ActionKind::Split`],
    /// which change none.
    pub fn target(self) -> Option<IncidentStatus> {
        match self {
            ActionKind::Assign => Some(IncidentStatus::Assigned),
            ActionKind::Acknowledge => Some(IncidentStatus::Acknowledged),
            ActionKind::Start => Some(IncidentStatus::InProgress),
            ActionKind::Resolve => Some(IncidentStatus::Resolved),
            ActionKind::Close => Some(IncidentStatus::Closed),
            ActionKind::Reject => Some(IncidentStatus::Rejected),
            ActionKind::Duplicate => Some(IncidentStatus::Duplicate),
            ActionKind::Reopen => Some(IncidentStatus::Reopened),
            ActionKind::Merge => Some(IncidentStatus::Duplicate),
            ActionKind::Unmerge => Some(IncidentStatus::Assigned),
            ActionKind::Note | ActionKind::Split => None,
        }
    }

    /// Whether this action may be taken on an incident in state `from`: the graph, as a table.
    pub fn allowed_from(self, from: IncidentStatus) -> bool {
        use IncidentStatus as S;
        let open = from.is_open();
        match self {
            ActionKind::Assign
            | ActionKind::Reject
            | ActionKind::Duplicate
            | ActionKind::Merge
            | ActionKind::Split => open,
            ActionKind::Unmerge => from == S::Duplicate,
            ActionKind::Acknowledge => matches!(from, S::Assigned | S::Reopened),
            ActionKind::Start => matches!(from, S::Acknowledged | S::Reopened),
            ActionKind::Resolve => matches!(
                from,
                S::Assigned | S::Acknowledged | S::InProgress | S::Reopened
            ),
            ActionKind::Close | ActionKind::Reopen => from == S::Resolved,
            ActionKind::Note => true,
        }
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ActionKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ActionKind::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown action {s:?} (expected one of {})",
                    ActionKind::ALL.map(ActionKind::as_str).join(", ")
                )
            })
    }
}

impl Action {
    /// Its name.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Assign { .. } => ActionKind::Assign,
            Action::Acknowledge => ActionKind::Acknowledge,
            Action::Start => ActionKind::Start,
            Action::Resolve => ActionKind::Resolve,
            Action::Close => ActionKind::Close,
            Action::Reject => ActionKind::Reject,
            Action::Duplicate => ActionKind::Duplicate,
            Action::Reopen => ActionKind::Reopen,
            Action::Note => ActionKind::Note,
            Action::Merge { .. } => ActionKind::Merge,
            Action::Unmerge => ActionKind::Unmerge,
            Action::Split { .. } => ActionKind::Split,
        }
    }
}

/// Why an action cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The graph has no such edge.
    #[error("cannot {action} an incident that is {from}: {from} → {to} is not allowed")]
    NotAllowed {
        /// The action asked.
        action: ActionKind,
        /// The incident's state.
        from: IncidentStatus,
        /// The state the action leads to.
        to: IncidentStatus,
    },
    /// A reassignment to the agency that has it already.
    #[error("the incident is already assigned to {0}")]
    AlreadyAssigned(AgencyId),
    /// A merge of an incident into itself.
    #[error("an incident cannot be merged into itself")]
    MergeIntoItself,
    /// An unmerge of a duplicate that was not merged (marked duplicate by hand).
    #[error("the incident was not merged into another one, so there is nothing to unmerge")]
    NotMerged,
}

/// The state `action` moves `incident` to, or why it cannot.
pub fn next_status(
    incident: &Incident,
    action: &Action,
) -> Result<IncidentStatus, TransitionError> {
    let kind = action.kind();
    let from = incident.status;
    let Some(to) = kind.target() else {
        if !kind.allowed_from(from) {
            return Err(TransitionError::NotAllowed {
                action: kind,
                from,
                to: from,
            });
        }
        return Ok(from);
    };
    if !kind.allowed_from(from) {
        return Err(TransitionError::NotAllowed {
            action: kind,
            from,
            to,
        });
    }
    match action {
        Action::Assign { agency } if *agency == incident.agency && from != IncidentStatus::New => {
            return Err(TransitionError::AlreadyAssigned(agency.clone()));
        }
        Action::Merge { into } if *into == incident.id => {
            return Err(TransitionError::MergeIntoItself)
        }
        Action::Unmerge if incident.merged_into.is_none() => {
            return Err(TransitionError::NotMerged)
        }
        _ => {}
    }
    Ok(to)
}

/// `incident` after `action` taken at `at`: its state, agency, deadlines (from `sla`, the
/// category's policy) and `updated_at`; or why the action cannot be taken (nothing changes then).
pub fn apply(
    incident: &Incident,
    action: &Action,
    sla: &SlaPolicy,
    at: DateTime<Utc>,
) -> Result<Incident, TransitionError> {
    let to = next_status(incident, action)?;
    let mut next = incident.clone();
    next.status = to;
    next.updated_at = at;
    match action {
        Action::Assign { agency } => {
            next.agency = agency.clone();
            let d = sla.for_severity(next.severity);
            next.sla.ack_due = Some(at + d.acknowledge);
            next.sla.ack_escalated_at = None;
            if next.sla.resolve_due.is_none() {
                next.sla.resolve_due = Some(at + d.resolve);
            }
        }
        Action::Reopen => next.sla = SlaClock::start(sla.for_severity(next.severity), at),
        Action::Merge { into } => next.merged_into = Some(into.clone()),
        Action::Unmerge => next.merged_into = None,
        _ => {}
    }
    Ok(next)
}

/// How long an agency has, from the moment an incident is given to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// To acknowledge it.
    pub acknowledge: Duration,
    /// To resolve it.
    pub resolve: Duration,
}

/// A category's deadlines for each severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaPolicy {
    /// Indexed by the severity's place in [`Severity::ALL`].
    per_severity: [Deadlines; 4],
}

fn severity_index(s: Severity) -> usize {
    match s {
        Severity::Minor => 0,
        Severity::Moderate => 1,
        Severity::Severe => 2,
        Severity::Extreme => 3,
    }
}

impl SlaPolicy {
    /// The same deadlines whatever the severity.
    pub fn uniform(deadlines: Deadlines) -> Self {
        SlaPolicy {
            per_severity: [deadlines; 4],
        }
    }

    /// This policy with other deadlines for `severity`.
    pub fn with_severity(mut self, severity: Severity, deadlines: Deadlines) -> Self {
        self.per_severity[severity_index(severity)] = deadlines;
        self
    }

    /// The deadlines for an incident of `severity`.
    pub fn for_severity(&self, severity: Severity) -> Deadlines {
        self.per_severity[severity_index(severity)]
    }
}

/// An incident's deadlines and their escalations. `None` deadlines (incidents stored before
/// deadlines existed) never escalate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlaClock {
    /// When the agency must have acknowledged it.
    pub ack_due: Option<DateTime<Utc>>,
    /// When it must be resolved.
    pub resolve_due: Option<DateTime<Utc>>,
    /// When it escalated for missing `ack_due`, if it did.
    pub ack_escalated_at: Option<DateTime<Utc>>,
    /// When it escalated for missing `resolve_due`, if it did.
    pub resolve_escalated_at: Option<DateTime<Utc>>,
}

impl SlaClock {
    /// Both deadlines counted from `at`, nothing escalated.
    pub fn start(deadlines: Deadlines, at: DateTime<Utc>) -> Self {
        SlaClock {
            ack_due: Some(at + deadlines.acknowledge),
            resolve_due: Some(at + deadlines.resolve),
            ack_escalated_at: None,
            resolve_escalated_at: None,
        }
    }

    /// Whether it escalated for any deadline.
    pub fn escalated(&self) -> bool {
        self.ack_escalated_at.is_some() || self.resolve_escalated_at.is_some()
    }
}

/// Which deadline was missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Deadline {
    /// To acknowledge.
    Acknowledge,
    /// To resolve.
    Resolve,
}

impl Deadline {
    /// snake_case name for the timeline.
    pub fn as_str(self) -> &'static str {
        match self {
            Deadline::Acknowledge => "acknowledge",
            Deadline::Resolve => "resolve",
        }
    }
}

/// An escalation as it happens, for those who are told of it (the agency, the supervisors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escalation {
    /// The deadline missed.
    pub deadline: Deadline,
    /// When it was due.
    pub due: Option<DateTime<Utc>>,
    /// The severity before.
    pub severity_before: Severity,
    /// The severity after (one step up, at most `extreme`).
    pub severity: Severity,
}

/// Whether an incident in `status` still waits for an acknowledgement.
pub fn awaits_acknowledgement(status: IncidentStatus) -> bool {
    matches!(
        status,
        IncidentStatus::New | IncidentStatus::Assigned | IncidentStatus::Reopened
    )
}

/// The deadlines `incident` has missed at `now` and not escalated yet, acknowledgement first.
pub fn due_escalation(incident: &Incident, now: DateTime<Utc>) -> Option<Deadline> {
    if !incident.status.is_open() {
        return None;
    }
    let c = &incident.sla;
    let missed = |due: Option<DateTime<Utc>>| due.is_some_and(|d| now >= d);
    if awaits_acknowledgement(incident.status) && missed(c.ack_due) && c.ack_escalated_at.is_none()
    {
        return Some(Deadline::Acknowledge);
    }
    if missed(c.resolve_due) && c.resolve_escalated_at.is_none() {
        return Some(Deadline::Resolve);
    }
    None
}

/// Whether `incident` is past a deadline it still has to meet at `now`.
pub fn is_overdue(incident: &Incident, now: DateTime<Utc>) -> bool {
    if !incident.status.is_open() {
        return false;
    }
    let c = &incident.sla;
    let missed = |due: Option<DateTime<Utc>>| due.is_some_and(|d| now >= d);
    (awaits_acknowledgement(incident.status) && missed(c.ack_due)) || missed(c.resolve_due)
}

/// The next severity up, if there is one.
pub fn raised(severity: Severity) -> Severity {
    match severity {
        Severity::Minor => Severity::Moderate,
        Severity::Moderate => Severity::Severe,
        Severity::Severe | Severity::Extreme => Severity::Extreme,
    }
}

/// `incident` escalated at `at` for missing `deadline`: severity one step up, the escalation
/// kept so that it happens once. The state does not change.
pub fn escalate(incident: &Incident, deadline: Deadline, at: DateTime<Utc>) -> Incident {
    let mut next = incident.clone();
    next.severity = raised(next.severity);
    next.updated_at = at;
    match deadline {
        Deadline::Acknowledge => next.sla.ack_escalated_at = Some(at),
        Deadline::Resolve => next.sla.resolve_escalated_at = Some(at),
    }
    next
}

/// The earliest moment at which [`due_escalation`] may answer something for `incident`.
pub fn next_deadline(incident: &Incident) -> Option<DateTime<Utc>> {
    if !incident.status.is_open() {
        return None;
    }
    let c = &incident.sla;
    let ack = (awaits_acknowledgement(incident.status) && c.ack_escalated_at.is_none())
        .then_some(c.ack_due)
        .flatten();
    let resolve = c
        .resolve_escalated_at
        .is_none()
        .then_some(c.resolve_due)
        .flatten();
    match (ack, resolve) {
        (Some(a), Some(r)) => Some(a.min(r)),
        (a, r) => a.or(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::{RouteCandidate, RoutingDecision, RoutingRule};
    use chrono::TimeZone;
    use geo::Point;
    use proptest::prelude::*;
    use IncidentStatus as S;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 8, 0, 0)
            .single()
            .expect("valid time")
    }

    fn policy() -> SlaPolicy {
        SlaPolicy::uniform(Deadlines {
            acknowledge: Duration::minutes(30),
            resolve: Duration::minutes(480),
        })
        .with_severity(
            Severity::Severe,
            Deadlines {
                acknowledge: Duration::minutes(10),
                resolve: Duration::minutes(120),
            },
        )
    }

    fn incident(status: IncidentStatus) -> Incident {
        let at = t0();
        Incident {
            id: "i1".into(),
            category: "pothole".into(),
            severity: Severity::Moderate,
            status,
            location: Point::new(25.6, 45.6),
            area: None,
            district: None,
            agency: "roads".into(),
            routing: RoutingDecision {
                chosen: RouteCandidate {
                    agency: "roads".into(),
                    rule: RoutingRule::Fallback,
                    area: None,
                },
                alternatives: vec![],
                informed: vec![],
            },
            report_count: 1,
            description: None,
            external_ref: None,
            opened_at: at,
            updated_at: at,
            sla: SlaClock::start(policy().for_severity(Severity::Moderate), at),
            merged_into: (status == S::Duplicate).then(|| "i0".into()),
            explained_by: vec![],
        }
    }

    fn action(kind: ActionKind) -> Action {
        match kind {
            ActionKind::Assign => Action::Assign {
                agency: "other".into(),
            },
            ActionKind::Acknowledge => Action::Acknowledge,
            ActionKind::Start => Action::Start,
            ActionKind::Resolve => Action::Resolve,
            ActionKind::Close => Action::Close,
            ActionKind::Reject => Action::Reject,
            ActionKind::Duplicate => Action::Duplicate,
            ActionKind::Reopen => Action::Reopen,
            ActionKind::Note => Action::Note,
            ActionKind::Merge => Action::Merge { into: "i2".into() },
            ActionKind::Unmerge => Action::Unmerge,
            ActionKind::Split => Action::Split {
                event: "e2".into(),
                new_incident: None,
            },
        }
    }

    /// Every allowed (from, action) pair and where it leads; every pair not listed is refused.
    const ALLOWED: &[(IncidentStatus, ActionKind, IncidentStatus)] = &[
        (S::New, ActionKind::Assign, S::Assigned),
        (S::Assigned, ActionKind::Assign, S::Assigned),
        (S::Acknowledged, ActionKind::Assign, S::Assigned),
        (S::InProgress, ActionKind::Assign, S::Assigned),
        (S::Reopened, ActionKind::Assign, S::Assigned),
        (S::Assigned, ActionKind::Acknowledge, S::Acknowledged),
        (S::Reopened, ActionKind::Acknowledge, S::Acknowledged),
        (S::Acknowledged, ActionKind::Start, S::InProgress),
        (S::Reopened, ActionKind::Start, S::InProgress),
        (S::Assigned, ActionKind::Resolve, S::Resolved),
        (S::Acknowledged, ActionKind::Resolve, S::Resolved),
        (S::InProgress, ActionKind::Resolve, S::Resolved),
        (S::Reopened, ActionKind::Resolve, S::Resolved),
        (S::Resolved, ActionKind::Close, S::Closed),
        (S::Resolved, ActionKind::Reopen, S::Reopened),
        (S::New, ActionKind::Reject, S::Rejected),
        (S::Assigned, ActionKind::Reject, S::Rejected),
        (S::Acknowledged, ActionKind::Reject, S::Rejected),
        (S::InProgress, ActionKind::Reject, S::Rejected),
        (S::Reopened, ActionKind::Reject, S::Rejected),
        (S::New, ActionKind::Duplicate, S::Duplicate),
        (S::Assigned, ActionKind::Duplicate, S::Duplicate),
        (S::Acknowledged, ActionKind::Duplicate, S::Duplicate),
        (S::InProgress, ActionKind::Duplicate, S::Duplicate),
        (S::Reopened, ActionKind::Duplicate, S::Duplicate),
        (S::New, ActionKind::Merge, S::Duplicate),
        (S::Assigned, ActionKind::Merge, S::Duplicate),
        (S::Acknowledged, ActionKind::Merge, S::Duplicate),
        (S::InProgress, ActionKind::Merge, S::Duplicate),
        (S::Reopened, ActionKind::Merge, S::Duplicate),
        // `incident(Duplicate)` was merged (into "i0"), so it can be unmerged.
        (S::Duplicate, ActionKind::Unmerge, S::Assigned),
        (S::New, ActionKind::Split, S::New),
        (S::Assigned, ActionKind::Split, S::Assigned),
        (S::Acknowledged, ActionKind::Split, S::Acknowledged),
        (S::InProgress, ActionKind::Split, S::InProgress),
        (S::Reopened, ActionKind::Split, S::Reopened),
    ];

    #[test]
    fn the_graph_table() {
        let mut checked = 0;
        for from in IncidentStatus::ALL {
            for kind in ActionKind::ALL {
                let got = next_status(&incident(from), &action(kind));
                if kind == ActionKind::Note {
                    assert_eq!(got, Ok(from), "note on {from}");
                    continue;
                }
                let expected = ALLOWED
                    .iter()
                    .find(|(f, a, _)| *f == from && *a == kind)
                    .map(|(_, _, to)| *to);
                match expected {
                    Some(to) => assert_eq!(got, Ok(to), "{kind} from {from}"),
                    None => assert_eq!(
                        got,
                        Err(TransitionError::NotAllowed {
                            action: kind,
                            from,
                            to: kind.target().unwrap_or(from),
                        }),
                        "{kind} from {from} must be refused"
                    ),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 9 * 11);
    }

    #[test]
    fn merge_and_unmerge() {
        let i = incident(S::Acknowledged);
        assert_eq!(
            next_status(&i, &Action::Merge { into: "i1".into() }),
            Err(TransitionError::MergeIntoItself)
        );
        let merged =
            apply(&i, &Action::Merge { into: "i2".into() }, &policy(), t0()).expect("merge");
        assert_eq!(
            (merged.status, merged.merged_into.clone()),
            (S::Duplicate, Some("i2".into()))
        );
        let back = apply(&merged, &Action::Unmerge, &policy(), t0()).expect("unmerge");
        assert_eq!((back.status, back.merged_into), (S::Assigned, None));
        assert_eq!(back.sla, i.sla, "the deadlines run on");
        let by_hand = apply(&i, &Action::Duplicate, &policy(), t0()).expect("duplicate");
        assert_eq!(
            next_status(&by_hand, &Action::Unmerge),
            Err(TransitionError::NotMerged),
            "a duplicate marked by hand has nothing to unmerge"
        );
    }

    #[test]
    fn refusal_names_both_states() {
        let e = next_status(&incident(S::Closed), &Action::Reopen).expect_err("closed is final");
        assert_eq!(
            e.to_string(),
            "cannot reopen an incident that is closed: closed → reopened is not allowed"
        );
    }

    #[test]
    fn reassigning_to_the_same_agency_is_refused() {
        let i = incident(S::Acknowledged);
        assert_eq!(
            next_status(
                &i,
                &Action::Assign {
                    agency: "roads".into()
                }
            ),
            Err(TransitionError::AlreadyAssigned("roads".into()))
        );
    }

    #[test]
    fn action_names_round_trip() {
        for kind in ActionKind::ALL {
            assert_eq!(kind.as_str().parse::<ActionKind>(), Ok(kind));
        }
        assert!("ack".parse::<ActionKind>().is_err());
    }

    #[test]
    fn deadlines_on_open_reassign_and_reopen() {
        let i = incident(S::Assigned);
        assert_eq!(i.sla.ack_due, Some(t0() + Duration::minutes(30)));
        assert_eq!(i.sla.resolve_due, Some(t0() + Duration::minutes(480)));

        // Reassigned after an hour: a new acknowledgement deadline, the same resolution one.
        let later = t0() + Duration::hours(1);
        let escalated = escalate(&i, Deadline::Acknowledge, later);
        let moved = apply(
            &escalated,
            &Action::Assign {
                agency: "other".into(),
            },
            &policy(),
            later,
        )
        .expect("reassign");
        assert_eq!(moved.agency.as_str(), "other");
        assert_eq!(
            moved.sla.ack_due,
            Some(later + Duration::minutes(10)),
            "severe now"
        );
        assert_eq!(moved.sla.ack_escalated_at, None);
        assert_eq!(moved.sla.resolve_due, i.sla.resolve_due);
        assert_eq!(moved.updated_at, later);

        // Resolved, then reopened: both deadlines again from the reopening.
        let resolved = apply(&moved, &Action::Resolve, &policy(), later).expect("resolve");
        let back = t0() + Duration::days(2);
        let reopened = apply(&resolved, &Action::Reopen, &policy(), back).expect("reopen");
        assert_eq!(
            reopened.sla,
            SlaClock::start(policy().for_severity(Severity::Severe), back)
        );
    }

    #[test]
    fn escalation_table() {
        let ack_due = t0() + Duration::minutes(30);
        let resolve_due = t0() + Duration::minutes(480);
        let before = ack_due - Duration::seconds(1);
        let between = ack_due + Duration::minutes(1);
        let after = resolve_due + Duration::minutes(1);
        let acked = |i: Incident| Incident {
            status: S::Acknowledged,
            ..i
        };
        let escalated = || escalate(&incident(S::Assigned), Deadline::Acknowledge, between);
        let no_deadlines = Incident {
            sla: SlaClock::default(),
            ..incident(S::Assigned)
        };
        // name, incident, now, escalation due, overdue
        type Case = (
            &'static str,
            Incident,
            DateTime<Utc>,
            Option<Deadline>,
            bool,
        );
        let cases: Vec<Case> = vec![
            ("in time", incident(S::Assigned), before, None, false),
            (
                "ack missed",
                incident(S::Assigned),
                between,
                Some(Deadline::Acknowledge),
                true,
            ),
            (
                "reopened waits for an ack",
                incident(S::Reopened),
                between,
                Some(Deadline::Acknowledge),
                true,
            ),
            (
                "acknowledged in time",
                acked(incident(S::Assigned)),
                between,
                None,
                false,
            ),
            (
                "ack escalated once, still overdue",
                escalated(),
                between,
                None,
                true,
            ),
            (
                "then resolve missed",
                escalated(),
                after,
                Some(Deadline::Resolve),
                true,
            ),
            (
                "both missed: ack first",
                incident(S::Assigned),
                after,
                Some(Deadline::Acknowledge),
                true,
            ),
            (
                "acknowledged, resolve missed",
                acked(incident(S::Assigned)),
                after,
                Some(Deadline::Resolve),
                true,
            ),
            ("resolved", incident(S::Resolved), after, None, false),
            ("closed", incident(S::Closed), after, None, false),
            ("no deadlines", no_deadlines, after, None, false),
        ];
        for (name, i, now, escalation, overdue) in cases {
            assert_eq!(due_escalation(&i, now), escalation, "{name}");
            assert_eq!(is_overdue(&i, now), overdue, "{name}: overdue");
        }
    }

    #[test]
    fn escalation_raises_severity_once_per_step() {
        let i = incident(S::Assigned);
        let e = escalate(&i, Deadline::Acknowledge, t0());
        assert_eq!(e.severity, Severity::Severe);
        assert_eq!(e.status, S::Assigned);
        let e = escalate(&e, Deadline::Resolve, t0());
        assert_eq!(e.severity, Severity::Extreme);
        assert_eq!(raised(Severity::Extreme), Severity::Extreme);
        assert_eq!(next_deadline(&e), None);
        assert_eq!(next_deadline(&i), i.sla.ack_due);
    }

    fn any_action() -> impl Strategy<Value = Action> {
        prop_oneof![
            prop_oneof![Just("roads"), Just("water"), Just("power")]
                .prop_map(|a| Action::Assign { agency: a.into() }),
            Just(Action::Acknowledge),
            Just(Action::Start),
            Just(Action::Resolve),
            Just(Action::Close),
            Just(Action::Reject),
            Just(Action::Duplicate),
            Just(Action::Reopen),
            Just(Action::Note),
            prop_oneof![Just("i1"), Just("i2")].prop_map(|i| Action::Merge { into: i.into() }),
            Just(Action::Unmerge),
            Just(Action::Split {
                event: "e2".into(),
                new_incident: None
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Whatever actions are tried, in whatever order, with escalations in between: every
        /// accepted step is an edge of the graph, refused steps change nothing, final states
        /// stay final, and escalation happens at most once per deadline.
        #[test]
        fn no_sequence_leaves_the_graph(
            steps in proptest::collection::vec((any_action(), 0i64..600), 0..40),
            start in prop_oneof![Just(S::New), Just(S::Assigned)],
        ) {
            let mut i = incident(start);
            let mut now = t0();
            let mut moved = false;
            for (action, minutes) in steps {
                now += Duration::minutes(minutes);
                if let Some(d) = due_escalation(&i, now) {
                    let e = escalate(&i, d, now);
                    prop_assert_eq!(e.status, i.status);
                    prop_assert!(e.severity >= i.severity);
                    prop_assert_eq!(due_escalation(&e, now).is_some_and(|again| again == d), false);
                    i = e;
                }
                let before = i.clone();
                match apply(&i, &action, &policy(), now) {
                    Ok(next) => {
                        let kind = action.kind();
                        prop_assert!(kind.allowed_from(before.status), "{} from {}", kind, before.status);
                        let unmerged = kind == ActionKind::Unmerge && before.merged_into.is_some();
                        prop_assert!(
                            !matches!(before.status, S::Closed | S::Rejected | S::Duplicate)
                                || next.status == before.status
                                || (before.status == S::Duplicate && unmerged),
                            "final state {} changed to {}", before.status, next.status
                        );
                        prop_assert_eq!(
                            Some(next.status).filter(|_| !matches!(kind, ActionKind::Note | ActionKind::Split)),
                            kind.target()
                        );
                        // Only a merge marks the incident merged (into another one), only an
                        // unmerge clears it, and only a duplicate is merged.
                        let expected = match &action {
                            Action::Merge { into } => Some(into.clone()),
                            Action::Unmerge => None,
                            _ => before.merged_into.clone(),
                        };
                        prop_assert_eq!(&next.merged_into, &expected);
                        prop_assert!(next.merged_into.is_none() || next.status == S::Duplicate);
                        prop_assert!(next.merged_into.as_ref() != Some(&next.id));
                        if next.status.is_open() {
                            prop_assert!(next.sla.ack_due.is_some() && next.sla.resolve_due.is_some());
                        }
                        moved |= next.status != before.status;
                        i = next;
                    }
                    Err(_) => prop_assert_eq!(&i, &before),
                }
                prop_assert!(IncidentStatus::ALL.contains(&i.status));
                prop_assert!(!(moved && i.status == S::New), "nothing leads back to new");
            }
        }
    }
}
