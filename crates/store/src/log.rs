//! The log read back whole, in the order it was written: for rebuilding the incidents from it
//! and checking that the result is what the store holds.

use chrono::{DateTime, Utc};

use model::{Incident, IncidentId, IncidentStatus};

use crate::{IncidentFilter, Pool, Store, StoreError};

/// Timeline kinds that an action on another incident writes beside its own entry (in the
/// incident merged into, the incident unmerged from, the incident a split opened): not replayed,
/// the action on the other incident is.
pub const SIDE_EFFECT_KINDS: [&str; 3] = ["merged_in", "unmerged_out", "opened_by_split"];

/// An accepted event as the event log keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    /// The event's id.
    pub id: String,
    /// Its source label (`citizen`, `utility:apa-brasov`).
    pub source: String,
    /// When Dispecer received it.
    pub received_at: DateTime<Utc>,
    /// The incident it went to when it was received (an operator may have moved it since).
    pub incident: IncidentId,
    /// The payload as logged (a citizen's contact removed).
    pub payload: String,
}

/// A timeline entry that no event caused: a person's or an agency's action, or an escalation.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedTransition {
    /// Its incident.
    pub incident: IncidentId,
    /// When.
    pub at: DateTime<Utc>,
    /// The action's name (`acknowledge`, `assign`, …), `escalated`, or `linked` (the engine
    /// linked the incident to one that explains it; `detail.to`).
    pub kind: String,
    /// Who.
    pub actor: String,
    /// Why.
    pub reason: Option<String>,
    /// The actor's request id, if it gave one.
    pub request_id: Option<String>,
    /// Particulars (for `assign`: the agency).
    pub detail: serde_json::Value,
    /// Its order among entries of the same time.
    pub seq: i64,
}

impl Store {
    /// Every accepted event, in the order received.
    pub async fn event_log(&self) -> Result<Vec<LoggedEvent>, StoreError> {
        type Row = (String, String, DateTime<Utc>, String, String);
        let rows: Vec<Row> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, source, received_at, COALESCE(logged_incident, incident_id), payload \
                 FROM events \
                 ORDER BY received_at, id",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, source, received_at, incident, payload)| LoggedEvent {
                id,
                source,
                received_at,
                incident: IncidentId::new(incident),
                payload,
            })
            .collect())
    }

    /// Every action and escalation of every incident, in the order recorded (the timeline's
    /// other kinds, those of [`crate::ChangeKind`], are written by events, and
    /// [`SIDE_EFFECT_KINDS`] by an action on another incident).
    pub async fn transitions(&self) -> Result<Vec<LoggedTransition>, StoreError> {
        type Row = (
            i64,
            String,
            DateTime<Utc>,
            String,
            String,
            Option<String>,
            Option<String>,
            String,
        );
        let rows: Vec<Row> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, incident_id, at, kind, actor, reason, request_id, detail \
                 FROM incident_timeline \
                 WHERE kind NOT IN ('opened', 'report_joined', 'updated', 'resolved', \
                 'merged_in', 'unmerged_out', 'opened_by_split') \
                 ORDER BY at, id",
            )
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(
                |(seq, incident, at, kind, actor, reason, request_id, detail)| {
                    Ok(LoggedTransition {
                        incident: IncidentId::new(incident),
                        at,
                        kind,
                        actor,
                        reason,
                        request_id,
                        detail: serde_json::from_str(&detail).map_err(|e| {
                            StoreError::corrupt(format!("timeline entry {seq}: detail: {e}"))
                        })?,
                        seq,
                    })
                },
            )
            .collect()
    }

    /// Every incident, whatever its state (for comparing a rebuild), by id.
    pub async fn all_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        let filter = IncidentFilter {
            statuses: IncidentStatus::ALL.to_vec(),
            ..IncidentFilter::default()
        };
        let mut all = self.select_incidents(&filter, None).await?;
        all.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        Ok(all)
    }
}
