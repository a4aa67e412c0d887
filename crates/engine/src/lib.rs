//! The dispatcher engine: turns accepted events into incidents (fusing duplicates), chooses the
//! responsible agency, records everything durably and tells the rest of the system.
//!
//! Invariant: one task, the engine actor, owns the incident state and is its only writer. Every
//! change is committed to the store *before* it is applied in memory, announced, or answered to
//! the caller, so an acknowledgement to a sender always means "durable".
//!
//! Boundary: no wire formats and no network here; adapters hand in [`model::Event`]s, the API
//! hands in [`ActionRequest`]s, and the API and the MQTT publisher listen to
//! [`IncidentUpdate`]s.
//!
//! Lifecycle: people and agencies move incidents along the graph of [`model::lifecycle`] with
//! [`Engine::act`]; each accepted action is committed with a timeline entry (actor, action,
//! from/to state, reason, time) before it is announced. The actor also checks the open incidents'
//! deadlines every [`EngineOptions::escalation_check`] (and once as it starts, so an incident that
//! went overdue while the process was down escalates right away) and escalates each missed
//! deadline once: severity one step up, a timeline entry by `system`, an announcement.

mod derive;
pub mod feeds;
pub mod rebuild;
pub mod traffic;

pub use derive::SYSTEM;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use chrono::{DateTime, Utc};
use model::lifecycle::{self, Deadline};
use model::warning::{WarningError, WarningOp, WarningVersion};
use model::{
    Action, AgencyId, CityIndex, Event, EventId, EventKind, Incident, IncidentId, IncidentIndex,
    IncidentStatus, SlaClock, SlaPolicy, TransitionError,
};
use store::{ChangeKind, IncidentChange, NewTimelineEntry, Recorded, Store, StoreError};

/// Why the engine could not take an event.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store refused or is unreachable; nothing was recorded, the sender should retry.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The event names a category the city does not have (adapters validate; this is a bug guard).
    #[error("unknown category {0:?}")]
    UnknownCategory(String),
    /// The event cannot be taken as it is (e.g. "restored" for something no open incident
    /// follows); the sender is told why (a dead letter).
    #[error("{0}")]
    Refused(String),
    /// The engine is shutting down.
    #[error("the engine is stopped")]
    Stopped,
    /// This instance is a cluster follower ([`Engine::standby`]): only the leader's engine
    /// decides; nothing was recorded.
    #[error("this instance is a follower: the leader's engine decides")]
    NotLeader,
    /// No incident has this id.
    #[error("no incident {0}")]
    NotFound(IncidentId),
    /// The action is not allowed in the incident's state (nothing was recorded).
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// The action was asked on behalf of an agency that does not have the incident.
    #[error("incident {incident} is assigned to {assigned}, not to {asked_by}")]
    NotAssignedTo {
        /// The incident.
        incident: IncidentId,
        /// The agency that has it.
        assigned: AgencyId,
        /// The agency that asked.
        asked_by: AgencyId,
    },
    /// An assignment to an agency the city does not have.
    #[error("agency {0:?} is not one of this city's")]
    UnknownAgency(String),
    /// Only operators may take this action (merge, unmerge, split), not an agency.
    #[error("only operators may {0} incidents")]
    OperatorsOnly(model::ActionKind),
    /// The action cannot be taken on these incidents as they are (e.g. a merge into a closed
    /// incident, a split of an incident's only report); nothing was recorded.
    #[error("{0}")]
    Conflict(String),
    /// The public warning cannot be published, updated or cancelled as asked (nothing was
    /// recorded).
    #[error(transparent)]
    Warning(#[from] WarningError),
    /// The actor used this request id before, for another incident.
    #[error("request id {request_id:?} was already used for incident {incident}")]
    RequestIdReused {
        /// The request id.
        request_id: String,
        /// The incident it was used for.
        incident: IncidentId,
    },
}

impl EngineError {
    /// The same failure for another caller of a group commit that failed for all of them.
    fn again(&self) -> EngineError {
        match self {
            EngineError::Store(e) => EngineError::Store(e.again()),
            EngineError::Stopped => EngineError::Stopped,
            EngineError::NotLeader => EngineError::NotLeader,
            other => EngineError::Refused(other.to_string()),
        }
    }
}

/// An action on an incident, and who takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRequest {
    /// The incident.
    pub incident: IncidentId,
    /// What to do.
    pub action: Action,
    /// Who does it, as the timeline shows it (e.g. `agency:apa-brasov`, `operator:dsp_1a2b3c4d`).
    pub actor: String,
    /// Why, in the actor's words.
    pub reason: Option<String>,
    /// Set when the actor speaks for an agency: the action is refused
    /// ([`EngineError::NotAssignedTo`]) unless the incident is assigned to that agency.
    pub as_agency: Option<AgencyId>,
    /// The id the actor gave this request (an agency's update id), making it idempotent: a
    /// request the actor sent before with this id changes nothing the second time.
    pub request_id: Option<String>,
}

/// An operator's publication, update or cancellation of an incident's public warning.
#[derive(Debug, Clone, PartialEq)]
pub struct WarningRequest {
    /// The incident.
    pub incident: IncidentId,
    /// What to do.
    pub op: WarningOp,
    /// Who does it, as the timeline shows it.
    pub actor: String,
    /// Why, in the actor's words.
    pub reason: Option<String>,
}

/// How the engine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// How often the open incidents' deadlines are checked (default one second, at least
    /// 10 ms). The first check runs as the engine starts.
    pub escalation_check: std::time::Duration,
    /// Whether deadlines are checked against the wall clock at all (default true). Off, they
    /// are checked only when asked with [`Engine::escalate_due`], at the time given: a replay of
    /// a story set in another time (the simulators' scenarios) moves the engine's clock itself.
    pub wall_clock: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            escalation_check: std::time::Duration::from_secs(1),
            wall_clock: true,
        }
    }
}

/// What an accepted event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// It opened a new incident.
    Opened(IncidentId),
    /// It joined an open incident.
    Joined(IncidentId),
    /// It updated the incident that follows its subject.
    Updated(IncidentId),
    /// It resolved the incident that follows its subject.
    Resolved(IncidentId),
    /// It had been recorded before; nothing changed.
    Duplicate,
}

/// What happened to an incident, as announced to listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    /// A new incident.
    Opened,
    /// An existing incident changed.
    Updated,
}

/// An incident's new state, announced after it was committed.
#[derive(Debug, Clone)]
pub struct IncidentUpdate {
    /// Opened or updated.
    pub kind: UpdateKind,
    /// The incident as it is now.
    pub incident: Arc<Incident>,
    /// Set when this update is an escalation: the supervisors are told of it besides the
    /// agency (the MQTT publisher's supervisors' topic; a mark on the WebSocket frame).
    pub escalation: Option<lifecycle::Escalation>,
}

/// Counters, for health and metrics.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Events recorded.
    pub events: AtomicU64,
    /// Incidents opened.
    pub opened: AtomicU64,
    /// Events that joined an open incident.
    pub joined: AtomicU64,
    /// Redeliveries recognised by event id.
    pub duplicates: AtomicU64,
    /// Store failures (the event was not taken).
    pub store_errors: AtomicU64,
    /// Actions accepted ([`Engine::act`]).
    pub actions: AtomicU64,
    /// Deadlines missed and escalated.
    pub escalations: AtomicU64,
    /// Readings the congestion detector did not see because its queue was full.
    pub traffic_dropped: AtomicU64,
    /// Messages this instance, as a cluster follower, accepted and put into the inbox for the
    /// leader (counted by the adapters).
    pub inbox_queued: AtomicU64,
    /// Messages this instance, as a cluster leader, took from the inbox (counted by the
    /// adapters).
    pub inbox_drained: AtomicU64,
}

enum Command {
    Ingest {
        event: Box<Event>,
        reply: oneshot::Sender<Result<IngestOutcome, EngineError>>,
    },
    IngestBatch {
        events: Vec<Event>,
        reply: oneshot::Sender<BatchResult>,
    },
    Snapshot {
        reply: oneshot::Sender<Result<Vec<Arc<Incident>>, EngineError>>,
    },
    /// A standby engine becomes the leader's ([`Engine::promote`]).
    Promote {
        outbox: Option<mpsc::Sender<IncidentUpdate>>,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Act {
        request: Box<ActionRequest>,
        reply: oneshot::Sender<Result<Arc<Incident>, EngineError>>,
    },
    EscalateDue {
        at: DateTime<Utc>,
        reply: oneshot::Sender<()>,
    },
    Warn {
        request: Box<WarningRequest>,
        reply: oneshot::Sender<Result<WarningVersion, EngineError>>,
    },
}

/// What a batch of events did ([`Engine::ingest_batch`]): the outcome of each event, in order,
/// or, when the batch could not be committed, why (nothing of it was recorded).
pub type BatchResult = Result<Vec<Result<IngestOutcome, EngineError>>, EngineError>;

/// The most events the actor commits in one transaction (a group commit): a batch handed in
/// whole, or single events that were waiting in the command queue one after another.
const MAX_GROUP: usize = 256;

/// A handle on the running engine; cheap to clone.
#[derive(Debug, Clone)]
pub struct Engine {
    commands: mpsc::Sender<Command>,
    updates: broadcast::Sender<IncidentUpdate>,
    city: Arc<CityIndex>,
    stats: Arc<EngineStats>,
    feeds: Arc<feeds::Feeds>,
    /// Where stored readings go to the congestion detector, once [`traffic::start`] ran.
    traffic: Arc<std::sync::OnceLock<mpsc::Sender<Vec<model::Reading>>>>,
    /// Whether this engine decides (always, except a cluster follower's: [`Engine::standby`]).
    leading: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Ingest { event, .. } => write!(f, "Ingest({})", event.id),
            Command::IngestBatch { events, .. } => write!(f, "IngestBatch({})", events.len()),
            Command::Snapshot { .. } => f.write_str("Snapshot"),
            Command::Promote { .. } => f.write_str("Promote"),
            Command::Act { request, .. } => {
                write!(f, "Act({}, {})", request.incident, request.action.kind())
            }
            Command::EscalateDue { at, .. } => write!(f, "EscalateDue({at})"),
            Command::Warn { request, .. } => {
                write!(
                    f,
                    "Warn({}, {})",
                    request.incident,
                    request.op.message().as_str()
                )
            }
        }
    }
}

/// Capacity of the command queue. When full, callers wait (back-pressure on the adapters,
/// which then leave messages unacknowledged with the broker); nothing is dropped.
const COMMAND_QUEUE: usize = 1024;

/// Capacity of the update broadcast. A listener that falls further behind gets `Lagged` and
/// must resynchronise from a snapshot (the WebSocket does); counted by the listener.
const UPDATE_BROADCAST: usize = 4096;

impl Engine {
    /// Loads the open incidents from `store`, builds the spatial index and starts the actor on
    /// `tracker`; it stops when `shutdown` is cancelled. Every committed update is also sent to
    /// `outbox` (the agencies' publisher), waiting when it is full, so none is skipped.
    pub async fn start(
        city: Arc<CityIndex>,
        store: Store,
        outbox: Option<mpsc::Sender<IncidentUpdate>>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Result<Engine, EngineError> {
        Self::start_with(
            EngineOptions::default(),
            city,
            store,
            outbox,
            shutdown,
            tracker,
        )
        .await
    }

    /// [`Engine::start`] with `options`.
    pub async fn start_with(
        options: EngineOptions,
        city: Arc<CityIndex>,
        store: Store,
        outbox: Option<mpsc::Sender<IncidentUpdate>>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Result<Engine, EngineError> {
        let (commands, rx) = mpsc::channel(COMMAND_QUEUE);
        let (updates, _) = broadcast::channel(UPDATE_BROADCAST);
        let stats = Arc::new(EngineStats::default());
        let actor =
            Actor::load(city.clone(), store, updates.clone(), outbox, stats.clone()).await?;
        tracker.spawn(actor.run(rx, shutdown, options));
        Ok(Engine {
            commands,
            updates,
            city,
            stats,
            feeds: Arc::default(),
            traffic: Arc::default(),
            leading: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        })
    }

    /// A cluster follower's engine: it decides nothing until [`Engine::promote`]d (events,
    /// actions and warnings answer [`EngineError::NotLeader`]); its snapshot of the open
    /// incidents comes from the store (what the leader committed), and its listeners hear what
    /// is [`Engine::announce`]d (the leader's changes, as the `cluster` crate learns of them).
    pub fn standby(
        options: EngineOptions,
        city: Arc<CityIndex>,
        store: Store,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Engine {
        let (commands, rx) = mpsc::channel(COMMAND_QUEUE);
        let (updates, _) = broadcast::channel(UPDATE_BROADCAST);
        let engine = Engine {
            commands,
            updates,
            city,
            stats: Arc::default(),
            feeds: Arc::default(),
            traffic: Arc::default(),
            leading: Arc::default(),
        };
        tracker.spawn(standby(engine.clone(), store, rx, shutdown, options));
        engine
    }

    /// Makes a standby engine the leader's: it loads the open incidents from the store (the
    /// restart path) and decides from then on, on the same handle, with the same listeners.
    /// `outbox` as in [`Engine::start`]. Harmless on an engine that leads already.
    pub async fn promote(
        &self,
        outbox: Option<mpsc::Sender<IncidentUpdate>>,
    ) -> Result<(), EngineError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Promote { outbox, reply })
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Whether this engine decides (false for a follower's until it is promoted).
    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::Acquire)
    }

    /// Tells this engine's listeners of a change another instance's engine committed (a
    /// follower's console); does nothing on an engine that leads (its own commits are what it
    /// announces).
    pub fn announce(&self, update: IncidentUpdate) {
        if !self.is_leading() {
            // No listener is not an error.
            let _ = self.updates.send(update);
        }
    }
}

/// A follower's engine until it is promoted: answers from the store, decides nothing.
async fn standby(
    engine: Engine,
    store: Store,
    mut rx: mpsc::Receiver<Command>,
    shutdown: CancellationToken,
    options: EngineOptions,
) {
    loop {
        let command = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            c = rx.recv() => match c { Some(c) => c, None => return },
        };
        match command {
            Command::Promote { outbox, reply } => {
                let loaded = Actor::load(
                    engine.city.clone(),
                    store.clone(),
                    engine.updates.clone(),
                    outbox,
                    engine.stats.clone(),
                )
                .await;
                match loaded {
                    Ok(actor) => {
                        engine.leading.store(true, Ordering::Release);
                        tracing::info!("engine promoted: this instance decides now");
                        let _ = reply.send(Ok(()));
                        actor.run(rx, shutdown, options).await;
                        return;
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::Snapshot { reply } => {
                let open = store.open_incidents().await.map(|open| {
                    let mut open: Vec<Arc<Incident>> = open.into_iter().map(Arc::new).collect();
                    open.sort_by_key(|i| std::cmp::Reverse(i.opened_at));
                    open
                });
                let _ = reply.send(open.map_err(EngineError::from));
            }
            Command::Ingest { reply, .. } => {
                let _ = reply.send(Err(EngineError::NotLeader));
            }
            Command::IngestBatch { reply, .. } => {
                let _ = reply.send(Err(EngineError::NotLeader));
            }
            Command::Act { reply, .. } => {
                let _ = reply.send(Err(EngineError::NotLeader));
            }
            Command::Warn { reply, .. } => {
                let _ = reply.send(Err(EngineError::NotLeader));
            }
            // The leader escalates.
            Command::EscalateDue { reply, .. } => {
                let _ = reply.send(());
            }
        }
    }
}

/// Escalations written in one transaction.
const ESCALATION_BATCH: usize = 500;

/// `current` escalated for its missed `deadline` at `now`: the new state, its timeline entry,
/// and what the announcement says of it.
fn escalation_of(
    current: &Incident,
    deadline: Deadline,
    now: DateTime<Utc>,
) -> (Incident, NewTimelineEntry, lifecycle::Escalation) {
    let next = lifecycle::escalate(current, deadline, now);
    let due_at = match deadline {
        Deadline::Acknowledge => current.sla.ack_due,
        Deadline::Resolve => current.sla.resolve_due,
    };
    let entry = NewTimelineEntry {
        at: now,
        kind: "escalated".to_owned(),
        actor: "system".to_owned(),
        reason: Some(format!("{} deadline missed", deadline.as_str())),
        from: Some(current.status),
        to: Some(next.status),
        request_id: None,
        detail: serde_json::json!({
            "deadline": deadline.as_str(),
            "due": due_at.map(|t| t.to_rfc3339()),
            "severity_before": current.severity.as_str(),
            "severity": next.severity.as_str(),
        }),
    };
    let escalation = lifecycle::Escalation {
        deadline,
        due: due_at,
        severity_before: current.severity,
        severity: next.severity,
    };
    (next, entry, escalation)
}

impl Actor {
    /// The actor with the open incidents loaded from `store` and the spatial index built.
    async fn load(
        city: Arc<CityIndex>,
        store: Store,
        updates: broadcast::Sender<IncidentUpdate>,
        outbox: Option<mpsc::Sender<IncidentUpdate>>,
        stats: Arc<EngineStats>,
    ) -> Result<Actor, EngineError> {
        let open = store.open_incidents().await?;
        let mut index = IncidentIndex::bulk_load(open.iter());
        for i in &open {
            if let (Some(area), Some(family)) = (&i.area, family_of(&city, i)) {
                index.insert_area(&i.id, family, area);
            }
        }
        let by_subject: HashMap<String, IncidentId> = open
            .iter()
            .filter_map(|i| i.external_ref.clone().map(|r| (r, i.id.clone())))
            .collect();
        let incidents: HashMap<IncidentId, Incident> =
            open.into_iter().map(|i| (i.id.clone(), i)).collect();
        tracing::info!(open_incidents = incidents.len(), "engine state loaded");
        Ok(Actor {
            city,
            store,
            incidents,
            index,
            by_subject,
            updates,
            outbox,
            stats,
            derive: true,
        })
    }
}

impl Engine {
    /// Takes an event; returns once its effect is durable (or it was known already).
    pub async fn ingest(&self, event: Event) -> Result<IngestOutcome, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Ingest {
                event: Box::new(event),
                reply,
            })
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Takes `events` in order, as [`Engine::ingest`] takes each, with one commit for all of them
    /// (a group commit: one disk flush, not one per event); returns once they are durable.
    /// Each event's outcome is in the answer, in order: a refusal ([`EngineError::Refused`],
    /// [`EngineError::UnknownCategory`]) concerns that event alone. An `Err` for the whole batch
    /// (the store failed) means none of it was recorded: retry the batch. At most [`MAX_GROUP`]
    /// events are committed together; a longer batch is taken in several commits.
    pub async fn ingest_batch(&self, events: Vec<Event>) -> BatchResult {
        let mut outcomes = Vec::with_capacity(events.len());
        let mut events = events.into_iter().peekable();
        while events.peek().is_some() {
            let group: Vec<Event> = events.by_ref().take(MAX_GROUP).collect();
            let (reply, rx) = oneshot::channel();
            self.commands
                .send(Command::IngestBatch {
                    events: group,
                    reply,
                })
                .await
                .map_err(|_| EngineError::Stopped)?;
            outcomes.extend(rx.await.map_err(|_| EngineError::Stopped)??);
        }
        Ok(outcomes)
    }

    /// Takes an action on an incident (see [`model::lifecycle`] for the graph); returns the
    /// incident as it is after the action, once the action and its timeline entry are durable
    /// and announced.
    ///
    /// A request with a `request_id` the same actor used before for this incident was taken
    /// already: it returns the incident as it is now and records nothing.
    ///
    /// Refused, with nothing recorded: [`EngineError::NotFound`], [`EngineError::Transition`]
    /// (not allowed from the incident's state), [`EngineError::NotAssignedTo`],
    /// [`EngineError::UnknownAgency`], [`EngineError::RequestIdReused`].
    pub async fn act(&self, request: ActionRequest) -> Result<Arc<Incident>, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Act {
                request: Box::new(request),
                reply,
            })
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Publishes, updates or cancels an incident's public warning (see [`model::warning`]);
    /// returns the version issued once it and its timeline entry are durable. Refused, with
    /// nothing recorded: [`EngineError::NotFound`], [`EngineError::Warning`]. Resolving,
    /// closing, rejecting or marking duplicate an incident cancels its active warning itself
    /// ([`Engine::act`]); merging one that has an active warning is refused until it is
    /// cancelled.
    pub async fn warn(&self, request: WarningRequest) -> Result<WarningVersion, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Warn {
                request: Box::new(request),
                reply,
            })
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Escalates every deadline missed by `at` (as the periodic check does with the wall
    /// clock); returns once the escalations are recorded. For replays that keep their own time
    /// ([`EngineOptions::wall_clock`] off); harmless otherwise.
    pub async fn escalate_due(&self, at: DateTime<Utc>) -> Result<(), EngineError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::EscalateDue { at, reply })
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// The open incidents now, newest first.
    pub async fn open_incidents(&self) -> Result<Vec<Arc<Incident>>, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Snapshot { reply })
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Listens to committed incident updates.
    pub fn subscribe(&self) -> broadcast::Receiver<IncidentUpdate> {
        self.updates.subscribe()
    }

    /// The city and its spatial indexes.
    pub fn city(&self) -> &Arc<CityIndex> {
        &self.city
    }

    /// Counters.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Per-feed accounting, kept by the adapters.
    pub fn feeds(&self) -> &feeds::Feeds {
        &self.feeds
    }

    /// Hands readings the store just committed to the congestion detector
    /// ([`traffic::start`]); does nothing when it is not running. Never waits: when the
    /// detector's queue is full the readings are dropped for it (they are stored; the detector
    /// sees the next ones) and counted in [`EngineStats::traffic_dropped`].
    pub fn readings_stored(&self, readings: &[model::Reading]) {
        let Some(tx) = self.traffic.get() else {
            return;
        };
        if readings.is_empty() {
            return;
        }
        if tx.try_send(readings.to_vec()).is_err() {
            self.stats
                .traffic_dropped
                .fetch_add(readings.len() as u64, Ordering::Relaxed);
        }
    }
}

/// The family of `incident`'s category (`None` for a category the city no longer has).
/// What a committed change of incident `id` is, to its sender and to the listeners.
fn outcome_of(id: &IncidentId, kind: ChangeKind) -> (IngestOutcome, UpdateKind) {
    match kind {
        ChangeKind::Opened => (IngestOutcome::Opened(id.clone()), UpdateKind::Opened),
        ChangeKind::ReportJoined => (IngestOutcome::Joined(id.clone()), UpdateKind::Updated),
        ChangeKind::Updated => (IngestOutcome::Updated(id.clone()), UpdateKind::Updated),
        ChangeKind::Resolved => (IngestOutcome::Resolved(id.clone()), UpdateKind::Updated),
    }
}

/// An in-memory change not yet committed, and how to take it back: the incident as it was in
/// memory (`None`: not there), and who followed each subject it touches.
struct Undo {
    id: IncidentId,
    before: Option<Incident>,
    subjects: Vec<(String, Option<IncidentId>)>,
}

fn family_of<'a>(city: &'a CityIndex, incident: &Incident) -> Option<&'a str> {
    city.city()
        .category(incident.category.as_str())
        .map(|c| c.family.as_str())
}

/// The time of an action or an escalation, to the microsecond, as the store keeps it: what is
/// in memory is then exactly what a restart reads back.
fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

struct Actor {
    city: Arc<CityIndex>,
    store: Store,
    /// The open incidents (closed ones live only in the store).
    incidents: HashMap<IncidentId, Incident>,
    index: IncidentIndex,
    /// Open incidents by the subject of the sender's notices they follow.
    by_subject: HashMap<String, IncidentId>,
    updates: broadcast::Sender<IncidentUpdate>,
    outbox: Option<mpsc::Sender<IncidentUpdate>>,
    stats: Arc<EngineStats>,
    /// Whether the actor takes its own decisions after an event (links, absorption: see
    /// `derive.rs`); off in a rebuild, which replays the decisions the log holds.
    derive: bool,
}

impl Actor {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        shutdown: CancellationToken,
        options: EngineOptions,
    ) {
        // What went overdue while the process was down escalates before any command is served.
        if options.wall_clock {
            self.escalate_overdue(now()).await;
            self.cancel_stale_warnings().await;
        }
        // `interval` refuses a zero period.
        let period = options
            .escalation_check
            .max(std::time::Duration::from_millis(10));
        let mut deadlines = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        deadlines.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A command taken from the queue while gathering single events into one commit.
        let mut next: Option<Command> = None;
        loop {
            let command = match next.take() {
                Some(c) => c,
                None => tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    _ = deadlines.tick(), if options.wall_clock => {
                        self.escalate_overdue(now()).await;
                        continue;
                    }
                    c = rx.recv() => match c { Some(c) => c, None => break },
                },
            };
            match command {
                Command::Ingest { event, reply } => {
                    // Single events waiting one after another (HTTP senders, the adapters'
                    // single messages) share one commit.
                    let mut events = vec![*event];
                    let mut replies = vec![reply];
                    while events.len() < MAX_GROUP {
                        match rx.try_recv() {
                            Ok(Command::Ingest { event, reply }) => {
                                events.push(*event);
                                replies.push(reply);
                            }
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    // The callers may have given up (shutdown); the outcomes are durable either
                    // way.
                    match self.ingest_group(events).await {
                        Ok(outcomes) => {
                            for (outcome, reply) in outcomes.into_iter().zip(replies) {
                                let _ = reply.send(outcome);
                            }
                        }
                        Err(e) => {
                            for reply in replies {
                                let _ = reply.send(Err(e.again()));
                            }
                        }
                    }
                }
                Command::IngestBatch { events, reply } => {
                    let _ = reply.send(self.ingest_group(events).await);
                }
                Command::Snapshot { reply } => {
                    let mut open: Vec<Arc<Incident>> = self
                        .incidents
                        .values()
                        .filter(|i| i.status.is_open())
                        .map(|i| Arc::new(i.clone()))
                        .collect();
                    open.sort_by_key(|i| std::cmp::Reverse(i.opened_at));
                    let _ = reply.send(Ok(open));
                }
                // It leads already.
                Command::Promote { reply, .. } => {
                    let _ = reply.send(Ok(()));
                }
                Command::Act { request, reply } => {
                    let result = self.act(*request, now()).await;
                    let _ = reply.send(result);
                }
                Command::EscalateDue { at, reply } => {
                    self.escalate_overdue(chrono::SubsecRound::trunc_subsecs(at, 6))
                        .await;
                    let _ = reply.send(());
                }
                Command::Warn { request, reply } => {
                    let result = self.warn(*request, now()).await;
                    let _ = reply.send(result);
                }
            }
        }
        tracing::info!("engine stopped");
    }

    /// What `event` does to the incidents: the new state of one incident and how it changed.
    fn decide(
        &self,
        event: &Event,
        new_id: Option<IncidentId>,
    ) -> Result<(Incident, ChangeKind), EngineError> {
        let city = self.city.city();
        let category = city
            .category(event.category.as_str())
            .ok_or_else(|| EngineError::UnknownCategory(event.category.to_string()))?;
        let now = event.received_at;
        let followed = event
            .subject
            .as_ref()
            .and_then(|s| self.by_subject.get(s))
            .and_then(|id| self.incidents.get(id));
        if let Some(existing) = followed {
            // A sender's later notice about the same subject updates or resolves that incident.
            let mut i = existing.clone();
            i.updated_at = now;
            if event.kind == EventKind::Restored {
                i.status = lifecycle::next_status(&i, &Action::Resolve)
                    .map_err(|e| EngineError::Refused(format!("restored: {e}")))?;
                return Ok((i, ChangeKind::Resolved));
            }
            if event.description.is_some() {
                i.description = event.description.clone();
            }
            if event.area.is_some() {
                // The sender redrew its area.
                i.area = event.area.clone();
            }
            return Ok((i, ChangeKind::Updated));
        }
        if event.kind == EventKind::Restored {
            return Err(EngineError::Refused(format!(
                "restored: no open incident follows {}",
                event.subject.as_deref().unwrap_or("this event")
            )));
        }
        let joined = self
            .index
            .find_match(&self.incidents, category, event.location, now)
            .and_then(|id| self.incidents.get(&id))
            // A sender's notice never joins an incident that follows another subject.
            .filter(|i| event.subject.is_none() || i.external_ref.is_none());
        if let Some(existing) = joined {
            let mut i = existing.clone();
            i.report_count = i.report_count.saturating_add(1);
            i.updated_at = now;
            if i.external_ref.is_none() {
                i.external_ref = event.subject.clone();
            }
            if i.area.is_none() && event.subject.is_some() {
                // A sender's notice that joins a report-opened incident declares its area.
                i.area = event.area.clone();
            }
            return Ok((i, ChangeKind::ReportJoined));
        }
        let mut incident = self.new_incident(new_id, category, event.location, now);
        incident.area = event.area.clone();
        incident.description = event.description.clone();
        incident.external_ref = event.subject.clone();
        Ok((incident, ChangeKind::Opened))
    }

    /// A new incident of `category` at `point`, opened at `now` with one report, routed (so it
    /// starts `assigned`), with `id` or a fresh one.
    fn new_incident(
        &self,
        id: Option<IncidentId>,
        category: &model::Category,
        point: geo::Point,
        now: DateTime<Utc>,
    ) -> Incident {
        let routing = self.city.route(&category.id, point);
        let severity = category.default_severity;
        Incident {
            id: id.unwrap_or_else(|| IncidentId::new(uuid::Uuid::now_v7().to_string())),
            category: category.id.clone(),
            severity,
            // Routed as it opens: it starts with an agency.
            status: IncidentStatus::Assigned,
            location: point,
            area: None,
            district: self.city.district_at(point).cloned(),
            agency: routing.chosen.agency.clone(),
            routing,
            report_count: 1,
            description: None,
            external_ref: None,
            opened_at: now,
            updated_at: now,
            sla: SlaClock::start(category.sla.for_severity(severity), now),
            merged_into: None,
            explained_by: vec![],
        }
    }

    /// Takes `event`; an incident it opens gets `new_id` (a rebuild gives the logged one) or a
    /// fresh id.
    async fn ingest(
        &mut self,
        event: Event,
        new_id: Option<IncidentId>,
    ) -> Result<IngestOutcome, EngineError> {
        let (incident, kind) = self.decide(&event, new_id)?;
        let area_before = self
            .incidents
            .get(&incident.id)
            .and_then(|i| i.area.clone());
        let change = IncidentChange { incident, kind };
        match self.store.record(&event, &change).await {
            Err(e) => {
                self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(event = %event.id, error = %e, "event not recorded");
                return Err(e.into());
            }
            Ok(Recorded::Duplicate) => {
                self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                return Ok(IngestOutcome::Duplicate);
            }
            Ok(Recorded::Stored) => {}
        }
        self.stats.events.fetch_add(1, Ordering::Relaxed);
        let IncidentChange { incident, kind } = change;
        let id = incident.id.clone();
        let (outcome, update_kind) = outcome_of(&id, kind);
        match kind {
            ChangeKind::Opened => {
                self.stats.opened.fetch_add(1, Ordering::Relaxed);
                self.index
                    .insert(id.clone(), &incident.category, incident.location);
                tracing::debug!(incident = %id, agency = %incident.agency, "incident opened");
            }
            ChangeKind::ReportJoined => {
                self.stats.joined.fetch_add(1, Ordering::Relaxed);
            }
            ChangeKind::Updated | ChangeKind::Resolved => {}
        }
        let shared = self.apply_and_announce(incident, update_kind).await;
        if kind == ChangeKind::Resolved {
            self.cancel_warning_of(&shared, &event.source.as_label(), event.received_at)
                .await;
        }
        if self.derive {
            let opened = update_kind == UpdateKind::Opened;
            self.derive_after(&shared, opened, area_before.as_ref(), event.received_at)
                .await;
        }
        Ok(outcome)
    }

    /// Takes `events` in order with one commit (a group commit). Each is decided against the
    /// state its predecessors in the group leave (a burst of reports of one pothole fuses into
    /// one incident), applied in memory as it is decided, and undone there if the commit fails;
    /// announced only after the commit. Events recorded before answer `Duplicate` without a
    /// write (one query for the group).
    async fn ingest_group(&mut self, events: Vec<Event>) -> BatchResult {
        if let [_] = events.as_slice() {
            // One event: its own commit tells whether it was known; no query before it.
            let event = events.into_iter().next().ok_or(EngineError::Stopped)?;
            return Ok(vec![self.ingest(event, None).await]);
        }
        let ids: Vec<&EventId> = events.iter().map(|e| &e.id).collect();
        let known = match self.store.known_events(&ids).await {
            Ok(known) => known,
            Err(e) => {
                self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(events = events.len(), error = %e, "events not recorded");
                return Err(e.into());
            }
        };
        let mut seen = std::collections::HashSet::new();
        let mut outcomes = Vec::with_capacity(events.len());
        let mut changes: Vec<(usize, IncidentChange)> = Vec::new();
        let mut undo: Vec<Undo> = Vec::new();
        let mut updates: Vec<IncidentUpdate> = Vec::new();
        for (at, event) in events.iter().enumerate() {
            if known.contains(event.id.as_str()) || !seen.insert(event.id.as_str()) {
                outcomes.push(Ok(IngestOutcome::Duplicate));
                continue;
            }
            let (incident, kind) = match self.decide(event, None) {
                Ok(decided) => decided,
                Err(e) => {
                    outcomes.push(Err(e));
                    continue;
                }
            };
            undo.push(self.undo_point(&incident));
            let (outcome, update_kind) = outcome_of(&incident.id, kind);
            if kind == ChangeKind::Opened {
                self.index
                    .insert(incident.id.clone(), &incident.category, incident.location);
            }
            updates.push(self.apply(incident.clone(), update_kind, None));
            changes.push((at, IncidentChange { incident, kind }));
            outcomes.push(Ok(outcome));
        }
        let items: Vec<(&Event, &IncidentChange)> =
            changes.iter().map(|(at, c)| (&events[*at], c)).collect();
        match self.store.record_batch(&items).await {
            Ok(true) => {}
            Ok(false) => {
                // Another writer recorded one of these ids since the query: back to the state
                // before the group, then one event at a time (each commit tells its own).
                self.undo(undo);
                let mut outcomes = Vec::with_capacity(events.len());
                for event in events {
                    match self.ingest(event, None).await {
                        Err(e @ EngineError::Store(_)) => return Err(e),
                        outcome => outcomes.push(outcome),
                    }
                }
                return Ok(outcomes);
            }
            Err(e) => {
                self.undo(undo);
                self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(events = events.len(), error = %e, "events not recorded");
                return Err(e.into());
            }
        }
        self.stats
            .events
            .fetch_add(changes.len() as u64, Ordering::Relaxed);
        for (_, change) in &changes {
            match change.kind {
                ChangeKind::Opened => self.stats.opened.fetch_add(1, Ordering::Relaxed),
                ChangeKind::ReportJoined => self.stats.joined.fetch_add(1, Ordering::Relaxed),
                ChangeKind::Updated | ChangeKind::Resolved => 0,
            };
        }
        let duplicates = outcomes
            .iter()
            .filter(|o| matches!(o, Ok(IngestOutcome::Duplicate)))
            .count();
        self.stats
            .duplicates
            .fetch_add(duplicates as u64, Ordering::Relaxed);
        let derived: Vec<(Arc<Incident>, bool, Option<geo::MultiPolygon>)> = updates
            .iter()
            .zip(&undo)
            .map(|(u, point)| {
                (
                    u.incident.clone(),
                    u.kind == UpdateKind::Opened,
                    point.before.as_ref().and_then(|b| b.area.clone()),
                )
            })
            .collect();
        for update in updates {
            self.announce(update).await;
        }
        for ((incident, _, _), (at, change)) in derived.iter().zip(&changes) {
            if change.kind == ChangeKind::Resolved {
                let event = &events[*at];
                self.cancel_warning_of(incident, &event.source.as_label(), event.received_at)
                    .await;
            }
        }
        if self.derive {
            // What follows each committed change (links, absorption into a declared area), in
            // order, once the whole group is announced.
            for ((incident, opened, area_before), (at, _)) in derived.iter().zip(&changes) {
                self.derive_after(
                    incident,
                    *opened,
                    area_before.as_ref(),
                    events[*at].received_at,
                )
                .await;
            }
        }
        Ok(outcomes)
    }

    /// What is needed to take back the in-memory change to `incident` (its next state) that
    /// [`Actor::apply`] is about to make.
    fn undo_point(&self, incident: &Incident) -> Undo {
        let before = self.incidents.get(&incident.id).cloned();
        let mut subjects: Vec<(String, Option<IncidentId>)> = Vec::new();
        for subject in [
            before.as_ref().and_then(|b| b.external_ref.as_ref()),
            incident.external_ref.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            if subjects.iter().all(|(s, _)| s != subject) {
                subjects.push((subject.clone(), self.by_subject.get(subject).cloned()));
            }
        }
        Undo {
            id: incident.id.clone(),
            before,
            subjects,
        }
    }

    /// Takes back uncommitted in-memory changes, the latest first.
    fn undo(&mut self, points: Vec<Undo>) {
        let city = self.city.clone();
        for point in points.into_iter().rev() {
            if let Some(now) = self.incidents.remove(&point.id) {
                self.index.remove(&now.id, &now.category, now.location);
                if let (Some(area), Some(family)) = (&now.area, family_of(&city, &now)) {
                    self.index.remove_area(&now.id, family, area);
                }
            }
            if let Some(before) = point.before {
                self.index
                    .insert(before.id.clone(), &before.category, before.location);
                if let (Some(area), Some(family)) = (&before.area, family_of(&city, &before)) {
                    self.index.insert_area(&before.id, family, area);
                }
                self.incidents.insert(before.id.clone(), before);
            }
            for (subject, owner) in point.subjects {
                match owner {
                    Some(id) => self.by_subject.insert(subject, id),
                    None => self.by_subject.remove(&subject),
                };
            }
        }
    }

    /// Puts a committed incident state in memory (or takes it out, when it is no longer open)
    /// and tells the listeners and the agencies.
    async fn apply_and_announce(&mut self, incident: Incident, kind: UpdateKind) -> Arc<Incident> {
        self.announce_escalation(incident, kind, None).await
    }

    /// [`Actor::apply_and_announce`], marking the update as `escalation`, if it is one.
    async fn announce_escalation(
        &mut self,
        incident: Incident,
        kind: UpdateKind,
        escalation: Option<lifecycle::Escalation>,
    ) -> Arc<Incident> {
        let update = self.apply(incident, kind, escalation);
        let shared = update.incident.clone();
        self.announce(update).await;
        shared
    }

    /// Puts an incident state in memory (or takes it out, when it is no longer open); the
    /// update to announce once it is committed.
    fn apply(
        &mut self,
        incident: Incident,
        kind: UpdateKind,
        escalation: Option<lifecycle::Escalation>,
    ) -> IncidentUpdate {
        let id = incident.id.clone();
        let update = IncidentUpdate {
            kind,
            incident: Arc::new(incident.clone()),
            escalation,
        };
        self.reindex_area(
            self.incidents.get(&id).and_then(|i| i.area.clone()),
            &incident,
        );
        if incident.status.is_open() {
            if let Some(subject) = &incident.external_ref {
                // A reopened incident does not take over a subject another open incident
                // follows now.
                self.by_subject
                    .entry(subject.clone())
                    .or_insert_with(|| id.clone());
            }
            if !self.incidents.contains_key(&id) && kind == UpdateKind::Updated {
                // Back from the store (reopened): back in the spatial index too.
                self.index
                    .insert(id.clone(), &incident.category, incident.location);
            }
            self.incidents.insert(id, incident);
        } else if self.incidents.remove(&id).is_some() {
            // A closed incident leaves memory and the spatial index; the store keeps it.
            self.index
                .remove(&id, &incident.category, incident.location);
            if let Some(subject) = &incident.external_ref {
                if self.by_subject.get(subject) == Some(&id) {
                    self.by_subject.remove(subject);
                }
            }
        }
        update
    }

    /// Tells the listeners and the agencies of a committed update.
    async fn announce(&self, update: IncidentUpdate) {
        // No listener is fine (nobody watching); laggards resynchronise from a snapshot.
        let _ = self.updates.send(update.clone());
        if let Some(outbox) = &self.outbox {
            if outbox.send(update).await.is_err() {
                tracing::warn!("agency outbox closed; agencies will not be told of this change");
            }
        }
    }

    /// Keeps the declared-area index in step with `incident`'s new state: the area it had in
    /// memory (`before`) out, its area in if it is open.
    fn reindex_area(&mut self, before: Option<geo::MultiPolygon>, incident: &Incident) {
        let after = incident.area.as_ref().filter(|_| incident.status.is_open());
        if before.as_ref() == after {
            return;
        }
        let Some(family) = family_of(&self.city, incident).map(str::to_owned) else {
            return;
        };
        if let Some(area) = &before {
            self.index.remove_area(&incident.id, &family, area);
        }
        if let Some(area) = after {
            self.index.insert_area(&incident.id, &family, area);
        }
    }

    /// The category's deadlines for `incident`.
    fn sla_of(&self, incident: &Incident) -> Result<SlaPolicy, EngineError> {
        self.city
            .city()
            .category(incident.category.as_str())
            .map(|c| c.sla)
            .ok_or_else(|| EngineError::UnknownCategory(incident.category.to_string()))
    }

    async fn act(
        &mut self,
        request: ActionRequest,
        now: DateTime<Utc>,
    ) -> Result<Arc<Incident>, EngineError> {
        let ActionRequest {
            incident: id,
            action,
            actor,
            reason,
            as_agency,
            request_id,
        } = request;
        // Open incidents are in memory; resolved and final ones only in the store.
        let current = match self.incidents.get(&id) {
            Some(i) => i.clone(),
            None => self
                .store
                .incident(&id)
                .await?
                .ok_or_else(|| EngineError::NotFound(id.clone()))?,
        };
        if let Some(rid) = &request_id {
            // One writer: nothing can record this request between the check and the write.
            match self.store.known_request(&actor, rid).await? {
                Some(seen) if seen == id => {
                    tracing::debug!(incident = %id, request = %rid, "request seen before");
                    return Ok(Arc::new(current));
                }
                Some(seen) => {
                    return Err(EngineError::RequestIdReused {
                        request_id: rid.clone(),
                        incident: seen,
                    })
                }
                None => {}
            }
        }
        if as_agency.is_some() && action.kind().operators_only() {
            return Err(EngineError::OperatorsOnly(action.kind()));
        }
        if let Some(agency) = as_agency {
            if agency != current.agency {
                return Err(EngineError::NotAssignedTo {
                    incident: id,
                    assigned: current.agency,
                    asked_by: agency,
                });
            }
        }
        if let Action::Assign { agency } = &action {
            if self.city.city().agency(agency.as_str()).is_none() {
                return Err(EngineError::UnknownAgency(agency.to_string()));
            }
        }
        let sla = self.sla_of(&current)?;
        let next = lifecycle::apply(&current, &action, &sla, now)?;
        let entry = |kind: &str, to: IncidentStatus, detail: serde_json::Value| NewTimelineEntry {
            at: now,
            kind: kind.to_owned(),
            actor: actor.clone(),
            reason: reason.clone(),
            from: Some(current.status),
            to: Some(to),
            request_id: request_id.clone(),
            detail,
        };
        match &action {
            Action::Merge { into } => {
                if model::warning::active(&self.store.warnings_of(&id).await?).is_some() {
                    return Err(EngineError::Conflict(format!(
                        "incident {id} has an active public warning; cancel it before merging"
                    )));
                }
                let own = entry("merge", next.status, serde_json::Value::Null);
                return self.merge(current, next, into, own, now).await;
            }
            Action::Unmerge => {
                let own = entry("unmerge", next.status, serde_json::Value::Null);
                return self.unmerge(current, next, own, now).await;
            }
            Action::Split {
                event,
                new_incident,
            } => {
                let own = entry("split", next.status, serde_json::Value::Null);
                return self
                    .split(current, next, event, new_incident.clone(), own, now)
                    .await;
            }
            _ => {}
        }
        let mut detail = serde_json::json!({ "agency": next.agency.as_str() });
        if next.agency != current.agency {
            detail["previous_agency"] = current.agency.as_str().into();
        }
        let entry = NewTimelineEntry {
            at: now,
            kind: action.kind().as_str().to_owned(),
            actor,
            reason,
            from: Some(current.status),
            to: Some(next.status),
            request_id,
            detail,
        };
        // An incident that stops being open takes its public warning with it: a Cancel, in the
        // same transaction, by the same actor.
        let cancel = if current.status.is_open() && !next.status.is_open() {
            self.automatic_cancel(&next, &entry.actor, now).await?
        } else {
            None
        };
        let warning = cancel.as_ref().map(|(v, e)| (v, e));
        if let Err(e) = self
            .store
            .record_transition_and_warning(&next, &entry, warning)
            .await
        {
            self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(incident = %id, error = %e, "action not recorded");
            return Err(e.into());
        }
        self.stats.actions.fetch_add(1, Ordering::Relaxed);
        if let Some((v, _)) = &cancel {
            tracing::info!(incident = %id, seq = v.seq, "public warning cancelled with its incident");
        }
        tracing::debug!(
            incident = %id,
            action = %action.kind(),
            from = %current.status,
            to = %next.status,
            "incident acted on"
        );
        Ok(self.apply_and_announce(next, UpdateKind::Updated).await)
    }

    /// Issues a version of `request.incident`'s public warning at `now`.
    async fn warn(
        &mut self,
        request: WarningRequest,
        now: DateTime<Utc>,
    ) -> Result<WarningVersion, EngineError> {
        let WarningRequest {
            incident: id,
            op,
            actor,
            reason,
        } = request;
        let incident = match self.incidents.get(&id) {
            Some(i) => i.clone(),
            None => self
                .store
                .incident(&id)
                .await?
                .ok_or_else(|| EngineError::NotFound(id.clone()))?,
        };
        let history = self.store.warnings_of(&id).await?;
        let version = model::warning::next(&incident, &history, op, &actor, now)?;
        let entry = store::warning_entry(&version, now, incident.status, reason, false);
        if let Err(e) = self.store.record_warning(&version, &entry).await {
            self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(incident = %id, error = %e, "public warning not recorded");
            return Err(e.into());
        }
        self.stats.actions.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            incident = %id,
            seq = version.seq,
            msg_type = version.message.as_str(),
            "public warning issued"
        );
        Ok(version)
    }

    /// Cancels the active public warning of `incident`, which a sender's "restored" has just
    /// taken out of the open states (committed): automatic, by that sender (`actor`), as an
    /// action that resolves an incident cancels its warning. Failures are logged: the event is
    /// durable already, and the engine's start cancels what is left active on an incident no
    /// longer open ([`Actor::cancel_stale_warnings`]). A rebuild replays it likewise.
    async fn cancel_warning_of(&mut self, incident: &Incident, actor: &str, at: DateTime<Utc>) {
        let result = async {
            if let Some((version, entry)) = self.automatic_cancel(incident, actor, at).await? {
                self.store.record_warning(&version, &entry).await?;
            }
            Ok::<_, EngineError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(incident = %incident.id, error = %e, "public warning not cancelled");
        }
    }

    /// The Cancel (and its timeline entry, marked automatic) of `incident`'s active public
    /// warning now that it is no longer open, by `actor`; `None` when no warning is active.
    async fn automatic_cancel(
        &self,
        incident: &Incident,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<(WarningVersion, NewTimelineEntry)>, EngineError> {
        let history = self.store.warnings_of(&incident.id).await?;
        if model::warning::active(&history).is_none() {
            return Ok(None);
        }
        let version = model::warning::next(incident, &history, WarningOp::Cancel, actor, at)?;
        let entry = store::warning_entry(
            &version,
            at,
            incident.status,
            Some(format!("the incident is {}", incident.status)),
            true,
        );
        Ok(Some((version, entry)))
    }

    /// Cancels every public warning still active on an incident no longer open (a cancel that
    /// failed, or a crash between a resolution and its cancel): by `system`, at start.
    async fn cancel_stale_warnings(&mut self) {
        let all = match self.store.all_warnings().await {
            Ok(all) => all,
            Err(e) => {
                tracing::warn!(error = %e, "public warnings not checked");
                return;
            }
        };
        let mut by_incident: HashMap<IncidentId, Vec<WarningVersion>> = HashMap::new();
        for v in all {
            by_incident.entry(v.incident.clone()).or_default().push(v);
        }
        for (id, history) in by_incident {
            if self.incidents.contains_key(&id) || model::warning::active(&history).is_none() {
                continue;
            }
            match self.store.incident(&id).await {
                Ok(Some(incident)) if !incident.status.is_open() => {
                    let at = now();
                    self.cancel_warning_of(&incident, derive::SYSTEM, at).await;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(incident = %id, error = %e, "public warning not checked"),
            }
        }
    }

    /// Commits the changes of one merge, unmerge or split (`changes`, with the events `moves`
    /// moved to incident `to`), then announces each incident, the one acted on first.
    async fn commit_many(
        &mut self,
        changes: Vec<(Incident, NewTimelineEntry, UpdateKind)>,
        moves: &[EventId],
        to: &IncidentId,
    ) -> Result<Arc<Incident>, EngineError> {
        let refs: Vec<(&Incident, &NewTimelineEntry)> =
            changes.iter().map(|(i, e, _)| (i, e)).collect();
        if let Err(e) = self.store.record_transitions(&refs, moves, to).await {
            self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(incident = %changes[0].0.id, error = %e, "action not recorded");
            return Err(e.into());
        }
        self.stats.actions.fetch_add(1, Ordering::Relaxed);
        let mut first = None;
        for (incident, entry, kind) in changes {
            tracing::debug!(incident = %incident.id, kind = %entry.kind, "incident acted on");
            if kind == UpdateKind::Opened {
                self.index
                    .insert(incident.id.clone(), &incident.category, incident.location);
            }
            let shared = self.apply_and_announce(incident, kind).await;
            first.get_or_insert(shared);
        }
        first.ok_or_else(|| EngineError::Conflict("nothing to record".into()))
    }

    /// The ids of the events in incident `id` now.
    async fn events_of(&self, id: &IncidentId) -> Result<Vec<EventId>, EngineError> {
        Ok(self
            .store
            .incident_events(id)
            .await?
            .into_iter()
            .map(|e| e.id)
            .collect())
    }

    /// `current` (now `next`, a merged duplicate) goes into `into`: its reports move there.
    async fn merge(
        &mut self,
        current: Incident,
        mut next: Incident,
        into: &IncidentId,
        mut own: NewTimelineEntry,
        now: DateTime<Utc>,
    ) -> Result<Arc<Incident>, EngineError> {
        if current.external_ref.is_some() {
            return Err(EngineError::Conflict(format!(
                "incident {} follows a sender's notices ({}); merge the others into it instead",
                current.id,
                current.external_ref.as_deref().unwrap_or_default()
            )));
        }
        let Some(target) = self.incidents.get(into).cloned() else {
            return Err(match self.store.incident(into).await? {
                Some(t) => EngineError::Conflict(format!(
                    "incident {into} is {}: only an open incident takes reports",
                    t.status
                )),
                None => EngineError::NotFound(into.clone()),
            });
        };
        let events = self.events_of(&current.id).await?;
        let moved = u32::try_from(events.len()).unwrap_or(u32::MAX);
        let ids: Vec<&str> = events.iter().map(EventId::as_str).collect();
        next.report_count = 0;
        own.detail = serde_json::json!({
            "into": into.as_str(),
            "events": ids,
            "agency": next.agency.as_str(),
        });
        let mut target_next = target.clone();
        target_next.report_count = target.report_count.saturating_add(moved);
        target_next.updated_at = now;
        let theirs = NewTimelineEntry {
            kind: "merged_in".into(),
            from: Some(target.status),
            to: Some(target.status),
            request_id: None,
            detail: serde_json::json!({
                "from": current.id.as_str(),
                "events": ids,
                "report_count": target_next.report_count,
            }),
            ..own.clone()
        };
        self.commit_many(
            vec![
                (next, own, UpdateKind::Updated),
                (target_next, theirs, UpdateKind::Updated),
            ],
            &events,
            into,
        )
        .await
    }

    /// Undoes the last merge of `current` (now `next`, back to `assigned`): the reports it
    /// took along come back from the incident it went into.
    async fn unmerge(
        &mut self,
        current: Incident,
        mut next: Incident,
        mut own: NewTimelineEntry,
        now: DateTime<Utc>,
    ) -> Result<Arc<Incident>, EngineError> {
        let into = current
            .merged_into
            .clone()
            .ok_or(EngineError::Transition(TransitionError::NotMerged))?;
        let timeline = self.store.timeline(&current.id).await?;
        let events: Vec<EventId> = timeline
            .iter()
            .rev()
            .find(|e| e.kind == "merge")
            .and_then(|e| e.detail.get("events")?.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.as_str().map(EventId::new))
            .collect();
        let target = match self.incidents.get(&into) {
            Some(t) => t.clone(),
            None => self
                .store
                .incident(&into)
                .await?
                .ok_or_else(|| EngineError::NotFound(into.clone()))?,
        };
        for e in &events {
            let place = self.store.event_place(e).await?;
            if place.as_ref().map(|p| &p.incident) != Some(&into) {
                return Err(EngineError::Conflict(format!(
                    "report {e} is no longer in incident {into}; split it out and merge it \
                     back instead"
                )));
            }
        }
        let moved = u32::try_from(events.len()).unwrap_or(u32::MAX);
        let ids: Vec<&str> = events.iter().map(EventId::as_str).collect();
        next.report_count = moved;
        own.detail = serde_json::json!({
            "from": into.as_str(),
            "events": ids,
            "agency": next.agency.as_str(),
        });
        let mut target_next = target.clone();
        target_next.report_count = target.report_count.saturating_sub(moved);
        target_next.updated_at = now;
        let theirs = NewTimelineEntry {
            kind: "unmerged_out".into(),
            from: Some(target.status),
            to: Some(target.status),
            request_id: None,
            detail: serde_json::json!({
                "to": current.id.as_str(),
                "events": ids,
                "report_count": target_next.report_count,
            }),
            ..own.clone()
        };
        let back = current.id.clone();
        self.commit_many(
            vec![
                (next, own, UpdateKind::Updated),
                (target_next, theirs, UpdateKind::Updated),
            ],
            &events,
            &back,
        )
        .await
    }

    /// Takes report `event` out of `current` (now `next`, its state unchanged) into a new
    /// incident, routed afresh at the report's place; `new_id` is the new incident's id, if
    /// given (a rebuild gives the logged one).
    async fn split(
        &mut self,
        current: Incident,
        mut next: Incident,
        event: &EventId,
        new_id: Option<IncidentId>,
        mut own: NewTimelineEntry,
        now: DateTime<Utc>,
    ) -> Result<Arc<Incident>, EngineError> {
        let Some(place) = self.store.event_place(event).await? else {
            return Err(EngineError::Conflict(format!("there is no report {event}")));
        };
        if place.incident != current.id {
            return Err(EngineError::Conflict(format!(
                "report {event} is in incident {}, not in {}",
                place.incident, current.id
            )));
        }
        if place.subject.is_some() {
            return Err(EngineError::Conflict(format!(
                "{event} is a sender's notice, which its incident follows: it cannot be split out"
            )));
        }
        let (category, point) = (place.category, place.location);
        if self.events_of(&current.id).await?.len() < 2 {
            return Err(EngineError::Conflict(format!(
                "report {event} is the only one of incident {}: nothing to split it from",
                current.id
            )));
        }
        let category = self
            .city
            .city()
            .category(category.as_str())
            .ok_or_else(|| EngineError::UnknownCategory(category.to_string()))?;
        let opened = self.new_incident(new_id, category, point, now);
        next.report_count = current.report_count.saturating_sub(1);
        own.detail = serde_json::json!({
            "event": event.as_str(),
            "new_incident": opened.id.as_str(),
            "agency": next.agency.as_str(),
        });
        let theirs = NewTimelineEntry {
            kind: "opened_by_split".into(),
            from: None,
            to: Some(opened.status),
            request_id: None,
            detail: serde_json::json!({
                "from": current.id.as_str(),
                "event": event.as_str(),
                "category": opened.category.as_str(),
                "severity": opened.severity.as_str(),
                "agency": opened.agency.as_str(),
                "rule": opened.routing.chosen.rule.as_str(),
                "area": opened.routing.chosen.area.as_ref().map(|a| a.as_str()),
                "district": opened.district.as_ref().map(|d| d.as_str()),
            }),
            ..own.clone()
        };
        let to = opened.id.clone();
        self.commit_many(
            vec![
                (next, own, UpdateKind::Updated),
                (opened, theirs, UpdateKind::Opened),
            ],
            std::slice::from_ref(event),
            &to,
        )
        .await
    }

    /// Escalates every deadline missed by `now` and not escalated yet, [`ESCALATION_BATCH`] at
    /// a time, each batch in one transaction (a restart after a long stop may find a whole city's
    /// incidents overdue). A store failure stops the round; the next check tries again.
    async fn escalate_overdue(&mut self, now: DateTime<Utc>) {
        let mut due: Vec<(IncidentId, Deadline)> = self
            .incidents
            .values()
            .filter_map(|i| lifecycle::due_escalation(i, now).map(|d| (i.id.clone(), d)))
            .collect();
        // Oldest deadlines first, so a slow round handles the longest waiting first.
        due.sort_by_key(|(id, _)| self.incidents.get(id).and_then(lifecycle::next_deadline));
        for chunk in due.chunks(ESCALATION_BATCH) {
            let mut escalated = Vec::with_capacity(chunk.len());
            for (id, deadline) in chunk {
                let Some(current) = self.incidents.get(id) else {
                    continue;
                };
                escalated.push(escalation_of(current, *deadline, now));
            }
            let changes: Vec<(&Incident, &NewTimelineEntry)> = escalated
                .iter()
                .map(|(next, entry, _)| (next, entry))
                .collect();
            if let Err(e) = self.store.record_transition_batch(&changes).await {
                self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(incidents = changes.len(), error = %e, "escalations not recorded; retrying later");
                return;
            }
            for (next, _, escalation) in escalated {
                self.stats.escalations.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    incident = %next.id,
                    deadline = escalation.deadline.as_str(),
                    severity = %next.severity,
                    "deadline missed; incident escalated"
                );
                self.announce_escalation(next, UpdateKind::Updated, Some(escalation))
                    .await;
            }
        }
    }
}
