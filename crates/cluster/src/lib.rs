//! Cluster mode: several `dispecer run --instance-id NAME` on one broker and one PostgreSQL.
//!
//! - [`Membership`]: each instance registers itself and says every second that it is alive, on
//!   a connection of its own; [`Membership::lead`] waits until this instance holds the leader's
//!   advisory lock (PostgreSQL frees it when the holder's connection ends), and
//!   [`Membership::hold`] returns as soon as the lock may be lost (the leader must then stop
//!   deciding at once: the binary exits). Taking the lead begins a new leadership term that
//!   fences the old leader's writes (see `store::ClusterConnection::take_term`).
//! - [`publish_changes`] (the leader): after each commit its engine announces, one `NOTIFY
//!   dispecer_changes` names the incidents that changed, and carries the escalations among them.
//! - [`follow_changes`] (a follower): `LISTEN dispecer_changes`, each incident read back from the
//!   store and announced on the follower's standby engine with the escalation marks the
//!   notification carried, so its WebSocket clients see every change as the leader's do; after a
//!   lost connection or a lag it catches up from the store.
//! - [`persist_feeds`] (every instance): its per-feed counters written to the store every
//!   [`FEEDS_EVERY`], so that `/api/v1/feeds` on any instance shows the cluster's counts.
//!
//! Invariant: one leader at a time, as long as PostgreSQL says so: a leader whose lock
//! connection fails stops before the lock can be taken by another, and, should it not notice in
//! time (its lock connection dropped while the database stayed reachable), its engine commits
//! nothing once its successor took the next term.
//!
//! Boundary: no MQTT and no HTTP here (the binary wires the adapters to the roles).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use engine::{Engine, IncidentUpdate, UpdateKind};
use model::lifecycle::{Deadline, Escalation};
use model::IncidentId;
use store::{ClusterConnection, IncidentFilter, Member, Store, StoreError};

/// How often an instance says it is alive, and a follower tries to take the lead.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// Why this instance cannot go on in its role.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The leader's lock connection failed: another instance may lead now.
    #[error("the leader lock may be lost: {0}")]
    LeadLost(StoreError),
    /// Shutting down.
    #[error("stopped")]
    Stopped,
}

/// This instance's place in the cluster.
#[derive(Debug)]
pub struct Membership {
    store: Store,
    instance: String,
    conn: Option<ClusterConnection>,
    /// The leadership term this instance took (`0` until it leads).
    term: i64,
}

impl Membership {
    /// Registers `instance` (its MQTT client id base and HTTP URL, for the others) and opens its
    /// connection of its own.
    pub async fn join(
        store: Store,
        instance: &str,
        mqtt_client_id: &str,
        http_url: &str,
    ) -> Result<Membership, ClusterError> {
        let conn = store.cluster_connection().await?;
        store
            .register_member(instance, mqtt_client_id, http_url, Utc::now())
            .await?;
        Ok(Membership {
            store,
            instance: instance.to_owned(),
            conn: Some(conn),
            term: 0,
        })
    }

    /// This instance's id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Waits until this instance leads (trying every [`HEARTBEAT`], saying it is alive between
    /// tries; a lost connection is opened again), takes a new leadership term and fences the
    /// store with it (its engine's writes then commit only while the term is still its own:
    /// [`Store::fenced`] resolves when one was refused), then marks it the leader in the
    /// members' table. `leader` is told, at each try, the HTTP URL of the instance that leads now.
    pub async fn lead(
        &mut self,
        shutdown: &CancellationToken,
        mut leader: impl FnMut(Option<String>),
    ) -> Result<(), ClusterError> {
        loop {
            let tried = match self.conn.as_mut() {
                Some(conn) => match conn.heartbeat(&self.instance, Utc::now()).await {
                    // The lock taken, a new term at once (it waits for the old leader's last
                    // transactions, and fences every later one).
                    Ok(()) => match conn.try_lead().await {
                        Ok(true) => conn.take_term(&self.instance, Utc::now()).await.map(Some),
                        Ok(false) => Ok(None),
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                },
                None => match self.store.cluster_connection().await {
                    Ok(conn) => {
                        self.conn = Some(conn);
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            match tried {
                Ok(Some(term)) => {
                    self.store.fence(term)?;
                    self.term = term;
                    break;
                }
                Ok(None) => match self.store.members().await {
                    Ok(members) => leader(leader_url(&members)),
                    Err(e) => tracing::warn!(error = %e, "cannot read the cluster members"),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "cluster connection failed; opening another");
                    if let Some(conn) = self.conn.take() {
                        conn.close().await;
                    }
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return Err(ClusterError::Stopped),
                () = tokio::time::sleep(HEARTBEAT) => {}
            }
        }
        self.store.set_leader(&self.instance, Utc::now()).await?;
        tracing::info!(instance = %self.instance, term = self.term, "this instance leads the cluster");
        Ok(())
    }

    /// While this instance leads: says it is alive every [`HEARTBEAT`] and checks that it still
    /// holds the lock. Returns [`ClusterError::LeadLost`] as soon as that cannot be confirmed
    /// (the caller must stop deciding at once), [`ClusterError::Stopped`] at shutdown.
    pub async fn hold(&mut self, shutdown: &CancellationToken) -> ClusterError {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return ClusterError::Stopped,
                () = tokio::time::sleep(HEARTBEAT) => {}
            }
            let Some(conn) = self.conn.as_mut() else {
                return ClusterError::LeadLost(StoreError::NotPostgres);
            };
            let checked =
                tokio::time::timeout(HEARTBEAT * 3, conn.heartbeat(&self.instance, Utc::now()))
                    .await
                    .unwrap_or_else(|_| {
                        Err(StoreError::Corrupt {
                            what: "the lock connection did not answer within 3 s".into(),
                        })
                    });
            if let Err(e) = checked {
                return ClusterError::LeadLost(e);
            }
        }
    }

    /// Closes the connection (freeing the lock if held).
    pub async fn leave(mut self) {
        if let Some(conn) = self.conn.take() {
            conn.close().await;
        }
    }
}

/// The HTTP URL of the member marked leader, if any.
fn leader_url(members: &[Member]) -> Option<String> {
    members
        .iter()
        .filter(|m| m.leader_since.is_some())
        .max_by_key(|m| m.leader_since)
        .map(|m| m.http_url.clone())
}

/// Members other than `me` silent for longer than `silent_for` at `now` and not drained since
/// they were last seen: the leader takes over their broker sessions.
pub fn silent_members<'a>(
    members: &'a [Member],
    me: &str,
    now: DateTime<Utc>,
    silent_for: Duration,
) -> Vec<&'a Member> {
    let silent_for = chrono::Duration::from_std(silent_for).unwrap_or(chrono::Duration::MAX);
    members
        .iter()
        .filter(|m| m.instance_id != me)
        .filter(|m| now - m.seen_at > silent_for)
        .filter(|m| m.drained_at.is_none_or(|d| d < m.seen_at))
        .collect()
}

/// A `dispecer_changes` notification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Changes {
    /// Incidents opened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    opened: Vec<String>,
    /// Incidents changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    updated: Vec<String>,
    /// Some changes were not named: catch up from the store.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    resync: bool,
    /// Escalations among the changes (of incidents named above, in order; two when both
    /// deadlines of one were missed at once), so that a follower's clients see each escalation
    /// mark as the leader's do. Dropped with a `resync` (a catch-up reads them from the
    /// incidents' timelines).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    escalated: Vec<Escalated>,
}

/// An escalation in a `dispecer_changes` notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Escalated {
    /// The incident.
    id: String,
    /// `acknowledge` or `resolve`.
    deadline: String,
    /// When it was due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due: Option<DateTime<Utc>>,
    /// The severity before.
    severity_before: String,
    /// The severity after.
    severity: String,
}

impl Escalated {
    fn new(id: &str, e: &Escalation) -> Self {
        Escalated {
            id: id.to_owned(),
            deadline: e.deadline.as_str().to_owned(),
            due: e.due,
            severity_before: e.severity_before.as_str().to_owned(),
            severity: e.severity.as_str().to_owned(),
        }
    }

    /// The escalation, if every part is understood.
    fn escalation(&self) -> Option<Escalation> {
        let deadline = match self.deadline.as_str() {
            "acknowledge" => Deadline::Acknowledge,
            "resolve" => Deadline::Resolve,
            _ => return None,
        };
        Some(Escalation {
            deadline,
            due: self.due,
            severity_before: self.severity_before.parse().ok()?,
            severity: self.severity.parse().ok()?,
        })
    }
}

/// How many ids an escalation weighs in a notification (its deadline, due time and severities
/// take about three ids' bytes).
const ESCALATION_WEIGHT: usize = 4;

impl Changes {
    /// Its size in ids (see [`IDS_PER_NOTIFY`]).
    fn weight(&self) -> usize {
        self.opened.len() + self.updated.len() + ESCALATION_WEIGHT * self.escalated.len()
    }

    /// The escalations announced for `id`, in order (those not understood left out).
    fn escalations_of(&self, id: &IncidentId) -> Vec<Escalation> {
        self.escalated
            .iter()
            .filter(|e| e.id == id.as_str())
            .filter_map(|e| {
                let escalation = e.escalation();
                if escalation.is_none() {
                    tracing::warn!(incident = %e.id, "an escalation in a change notification not understood");
                }
                escalation
            })
            .collect()
    }
}

/// Most incident ids in one notification (PostgreSQL's limit is 8000 bytes a payload).
const IDS_PER_NOTIFY: usize = 100;

/// The leader's side: every change its engine announces is named in a `NOTIFY
/// dispecer_changes` (changes waiting together share one), until `shutdown`.
pub async fn publish_changes(engine: Engine, store: Store, shutdown: CancellationToken) {
    let mut updates = engine.subscribe();
    // After a takeover the followers may have missed the last changes of the leader that died.
    let mut pending = Changes {
        resync: true,
        ..Changes::default()
    };
    loop {
        if pending != Changes::default() {
            let sent = store
                .notify(
                    store::CHANGES_CHANNEL,
                    &serde_json::to_string(&pending).unwrap_or_default(),
                )
                .await;
            match sent {
                Ok(()) => pending = Changes::default(),
                Err(e) => {
                    // Kept, and sent with the next ones.
                    tracing::warn!(error = %e, "cannot notify the followers of changes");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(HEARTBEAT) => {}
                    }
                    continue;
                }
            }
        }
        let first = tokio::select! {
            () = shutdown.cancelled() => return,
            u = updates.recv() => u,
        };
        let mut next = Some(first);
        while let Some(update) = next.take() {
            match update {
                Ok(u) => {
                    let list = match u.kind {
                        UpdateKind::Opened => &mut pending.opened,
                        UpdateKind::Updated => &mut pending.updated,
                    };
                    let id = u.incident.id.as_str().to_owned();
                    if let Some(e) = &u.escalation {
                        pending.escalated.push(Escalated::new(&id, e));
                    }
                    if !list.contains(&id) {
                        list.push(id);
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "change notifications fell behind; followers resync");
                    pending.resync = true;
                }
                Err(RecvError::Closed) => return,
            }
            if pending.weight() >= IDS_PER_NOTIFY {
                break;
            }
            next = match updates.try_recv() {
                Ok(u) => Some(Ok(u)),
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => {
                    Some(Err(RecvError::Lagged(n)))
                }
                Err(_) => None,
            };
        }
        if pending.resync {
            pending.opened.clear();
            pending.updated.clear();
            pending.escalated.clear();
        }
    }
}

/// How often an instance writes its per-feed counters (only the feeds that changed).
pub const FEEDS_EVERY: Duration = Duration::from_secs(2);

/// Writes `engine`'s per-feed counters as `instance`'s every [`FEEDS_EVERY`] (those that changed
/// since the last write), and once more at `shutdown`. A failed write is tried again with the
/// next (the counters stay in memory).
pub async fn persist_feeds(
    engine: Engine,
    store: Store,
    instance: String,
    shutdown: CancellationToken,
) {
    let mut saved = std::collections::BTreeMap::new();
    loop {
        let stopping = tokio::select! {
            () = shutdown.cancelled() => true,
            () = tokio::time::sleep(FEEDS_EVERY) => false,
        };
        let mut before = saved.clone();
        let rows = engine.feeds().rows(&instance, &mut saved);
        if let Err(e) = store.save_feed_counters(&rows).await {
            tracing::warn!(error = %e, "cannot write this instance's feed counters");
            // Written with the next ones.
            std::mem::swap(&mut saved, &mut before);
        }
        if stopping {
            return;
        }
    }
}

/// How far back a follower catches up after it may have missed notifications.
const CATCH_UP: Duration = Duration::from_secs(60);

/// A follower's side: the leader's changes, read back from the store, announced on `engine`
/// (a standby engine) until `shutdown`.
pub async fn follow_changes(engine: Engine, store: Store, shutdown: CancellationToken) {
    let mut listener = None;
    let mut caught_up_to = Utc::now();
    let mut marks = Marks::default();
    loop {
        if listener.is_none() {
            match store.listen(&[store::CHANGES_CHANNEL]).await {
                Ok(l) => {
                    listener = Some(l);
                    // Whatever changed while not listening.
                    caught_up_to = catch_up(&engine, &store, caught_up_to, &mut marks).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen to the leader's changes");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(HEARTBEAT) => {}
                    }
                    continue;
                }
            }
        }
        let Some(l) = listener.as_mut() else { continue };
        let received = tokio::select! {
            () = shutdown.cancelled() => return,
            r = l.recv() => r,
        };
        match received {
            Ok(Some(n)) => {
                let changes: Changes = match serde_json::from_str(&n.payload) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "a change notification not understood; catching up");
                        Changes {
                            resync: true,
                            ..Changes::default()
                        }
                    }
                };
                if changes.resync {
                    caught_up_to = catch_up(&engine, &store, caught_up_to, &mut marks).await;
                    continue;
                }
                let named = changes
                    .opened
                    .iter()
                    .map(|id| (id, UpdateKind::Opened))
                    .chain(changes.updated.iter().map(|id| (id, UpdateKind::Updated)));
                for (id, kind) in named {
                    match store.incident(&IncidentId::from(id.as_str())).await {
                        Ok(Some(incident)) => {
                            caught_up_to = caught_up_to.max(incident.updated_at);
                            let escalations = changes.escalations_of(&incident.id);
                            let incident = std::sync::Arc::new(incident);
                            if escalations.is_empty() {
                                engine.announce(IncidentUpdate {
                                    kind,
                                    incident,
                                    escalation: None,
                                });
                            } else {
                                // One frame per escalation, as the leader's clients get, each
                                // with the incident as it is now.
                                for escalation in escalations {
                                    marks.insert(&incident.id, &escalation);
                                    engine.announce(IncidentUpdate {
                                        kind,
                                        incident: incident.clone(),
                                        escalation: Some(escalation),
                                    });
                                }
                            }
                        }
                        Ok(None) => {
                            tracing::warn!(incident = %id, "a changed incident is not in the store")
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, incident = %id, "cannot read a changed incident")
                        }
                    }
                }
            }
            // The connection was lost (and notifications with it): catch up once listening again.
            Ok(None) => listener = None,
            Err(e) => {
                tracing::warn!(error = %e, "the change listener failed");
                listener = None;
            }
        }
    }
}

/// Announces every incident changed since `since` − [`CATCH_UP`], each escalation among those
/// changes with its mark (read from the incident's timeline) unless `marks` says it was
/// announced already; returns the latest change seen.
async fn catch_up(
    engine: &Engine,
    store: &Store,
    since: DateTime<Utc>,
    marks: &mut Marks,
) -> DateTime<Utc> {
    let from = since - chrono::Duration::from_std(CATCH_UP).unwrap_or_default();
    let filter = IncidentFilter {
        since: Some(from),
        limit: Some(store::MAX_LIMIT),
        ..IncidentFilter::default()
    };
    match store.incidents(&filter).await {
        Ok(incidents) => {
            let mut latest = since;
            // Oldest first, as they happened.
            for incident in incidents.into_iter().rev() {
                latest = latest.max(incident.updated_at);
                let escalated_lately = [
                    incident.sla.ack_escalated_at,
                    incident.sla.resolve_escalated_at,
                ]
                .into_iter()
                .flatten()
                .any(|at| at >= from);
                let mut missed = Vec::new();
                if escalated_lately {
                    match store.timeline(&incident.id).await {
                        Ok(entries) => {
                            missed = escalations_since(&entries, from)
                                .into_iter()
                                .filter(|e| marks.insert(&incident.id, e))
                                .collect();
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, incident = %incident.id, "cannot read an escalated incident's timeline; its mark is not shown");
                        }
                    }
                }
                // One frame per escalation, as the leader's clients got (the state alone if none).
                let frames: Vec<Option<Escalation>> = if missed.is_empty() {
                    vec![None]
                } else {
                    missed.into_iter().map(Some).collect()
                };
                let incident = std::sync::Arc::new(incident);
                for escalation in frames {
                    engine.announce(IncidentUpdate {
                        kind: UpdateKind::Updated,
                        incident: incident.clone(),
                        escalation,
                    });
                }
            }
            latest
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot catch up with the leader's changes");
            since
        }
    }
}

/// The escalations a timeline records at or after `from`, in order (an entry not understood is
/// left out).
fn escalations_since(entries: &[store::TimelineEntry], from: DateTime<Utc>) -> Vec<Escalation> {
    entries
        .iter()
        .filter(|e| e.kind == "escalated" && e.at >= from)
        .filter_map(|e| {
            let text = |key: &str| {
                e.detail
                    .get(key)
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            };
            Escalated {
                id: String::new(),
                deadline: text("deadline")?,
                due: text("due")
                    .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                    .map(|t| t.with_timezone(&Utc)),
                severity_before: text("severity_before")?,
                severity: text("severity")?,
            }
            .escalation()
        })
        .collect()
}

/// The escalation marks a follower announced lately (the last [`Marks::KEPT`]), so that a
/// catch-up, which reads back a minute of changes, does not mark one twice.
#[derive(Debug, Default)]
struct Marks {
    seen: std::collections::HashSet<(IncidentId, Deadline, Option<DateTime<Utc>>)>,
    order: std::collections::VecDeque<(IncidentId, Deadline, Option<DateTime<Utc>>)>,
}

impl Marks {
    const KEPT: usize = 10_000;

    /// Records `e` of `id`; whether it is new.
    fn insert(&mut self, id: &IncidentId, e: &Escalation) -> bool {
        let key = (id.clone(), e.deadline, e.due);
        if !self.seen.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > Self::KEPT {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, seen: i64, drained: Option<i64>) -> Member {
        let t = |s| DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(s);
        Member {
            instance_id: id.into(),
            mqtt_client_id: format!("d-{id}"),
            http_url: format!("http://{id}"),
            seen_at: t(seen),
            leader_since: None,
            drained_at: drained.map(t),
        }
    }

    #[test]
    fn an_escalation_mark_is_announced_once() {
        let id = IncidentId::from("i-1");
        let e = Escalation {
            deadline: Deadline::Acknowledge,
            due: Some(Utc::now()),
            severity_before: model::Severity::Minor,
            severity: model::Severity::Moderate,
        };
        let mut marks = Marks::default();
        assert!(marks.insert(&id, &e));
        assert!(!marks.insert(&id, &e), "the same mark twice");
        let resolve = Escalation {
            deadline: Deadline::Resolve,
            ..e
        };
        assert!(
            marks.insert(&id, &resolve),
            "the other deadline is another mark"
        );
        for i in 0..Marks::KEPT {
            marks.insert(&IncidentId::from(format!("other-{i}").as_str()), &e);
        }
        assert!(marks.insert(&id, &e), "forgotten after KEPT newer marks");
    }

    #[test]
    fn a_member_silent_long_enough_and_not_drained_since_is_taken_over() {
        let now = DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(100);
        let members = [
            member("me", 0, None),
            member("alive", 98, None),
            member("dead", 80, None),
            member("dead-drained", 80, Some(85)),
            member("back-and-dead-again", 80, Some(70)),
        ];
        let silent: Vec<&str> = silent_members(&members, "me", now, Duration::from_secs(10))
            .iter()
            .map(|m| m.instance_id.as_str())
            .collect();
        assert_eq!(silent, ["dead", "back-and-dead-again"]);
    }

    #[test]
    fn notifications_name_what_changed_and_stay_small() {
        let c = Changes {
            opened: vec!["INC-1".into()],
            ..Changes::default()
        };
        let text = serde_json::to_string(&c).expect("serialises");
        assert_eq!(text, r#"{"opened":["INC-1"]}"#);
        assert_eq!(serde_json::from_str::<Changes>(&text).expect("parses"), c);
        let long = Changes {
            updated: (0..IDS_PER_NOTIFY).map(|i| format!("{:040}", i)).collect(),
            ..Changes::default()
        };
        assert!(serde_json::to_string(&long).expect("serialises").len() < 8000);
        // The largest: every id escalated, the last one past the limit.
        let n = IDS_PER_NOTIFY / (ESCALATION_WEIGHT + 1) + 1;
        let escalated = Changes {
            updated: (0..n).map(|i| format!("{:040}", i)).collect(),
            escalated: (0..n)
                .map(|i| Escalated {
                    id: format!("{:040}", i),
                    deadline: "acknowledge".into(),
                    due: Some(Utc::now()),
                    severity_before: "moderate".into(),
                    severity: "severe".into(),
                })
                .collect(),
            ..Changes::default()
        };
        assert!(serde_json::to_string(&escalated).expect("serialises").len() < 8000);
    }

    /// An escalation goes to the followers with its change, and comes back as it was.
    #[test]
    fn escalations_travel_with_their_change() {
        let due = DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(90);
        let e = Escalation {
            deadline: Deadline::Resolve,
            due: Some(due),
            severity_before: model::Severity::Moderate,
            severity: model::Severity::Severe,
        };
        let c = Changes {
            updated: vec!["INC-1".into(), "INC-2".into()],
            escalated: vec![Escalated::new("INC-2", &e)],
            ..Changes::default()
        };
        let text = serde_json::to_string(&c).expect("serialises");
        let back: Changes = serde_json::from_str(&text).expect("parses");
        assert_eq!(back.escalations_of(&IncidentId::from("INC-2")), [e]);
        assert_eq!(back.escalations_of(&IncidentId::from("INC-1")), []);
        // An older follower's notification (no `escalated`) still parses.
        let old: Changes = serde_json::from_str(r#"{"updated":["INC-1"]}"#).expect("parses");
        assert!(old.escalated.is_empty());
        // A deadline this follower does not know: the change without the mark.
        let odd = Changes {
            escalated: vec![Escalated {
                deadline: "someday".into(),
                ..Escalated::new("INC-3", &e)
            }],
            ..Changes::default()
        };
        assert_eq!(odd.escalations_of(&IncidentId::from("INC-3")), []);
    }
}
