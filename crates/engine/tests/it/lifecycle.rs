//! Actions on incidents and escalations, against a real SQLite store and the Brașov city.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use engine::{ActionRequest, Engine, EngineError, EngineOptions, IncidentUpdate, IngestOutcome};
use geo::Point;
use model::lifecycle::Deadline;
use model::{
    Action, ActionKind, City, CityIndex, Deadlines, Event, EventKind, IncidentId, IncidentStatus,
    Severity, SlaPolicy, Source, TransitionError,
};
use store::Store;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A folder under the system's temporary folder, removed when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> TempDir {
        TempDir(std::env::temp_dir().join(format!("dispecer-engine-{}", uuid::Uuid::now_v7())))
    }

    pub(crate) fn database_url(&self) -> String {
        format!("sqlite://{}", self.0.join("dispecer.sqlite").display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Brașov, with the pothole's deadlines replaced: 30 minutes to acknowledge, 8 hours to resolve.
pub(crate) fn brasov() -> Arc<CityIndex> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cities/brasov");
    let mut city: City = city::load(&dir).expect("the Brașov city folder loads");
    let pothole = city
        .categories
        .iter_mut()
        .find(|c| c.id.as_str() == "pothole")
        .expect("a pothole category");
    pothole.sla = SlaPolicy::uniform(Deadlines {
        acknowledge: Duration::minutes(30),
        resolve: Duration::hours(8),
    });
    Arc::new(CityIndex::new(city))
}

/// A running engine and what it needs to stop.
pub(crate) struct Running {
    pub(crate) engine: Engine,
    store: Store,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Running {
    pub(crate) async fn start(url: &str, check: StdDuration) -> Running {
        let store = Store::connect(url).await.expect("store");
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let engine = Engine::start_with(
            EngineOptions {
                escalation_check: check,
                ..EngineOptions::default()
            },
            brasov(),
            store.clone(),
            None,
            shutdown.clone(),
            &tracker,
        )
        .await
        .expect("engine starts");
        Running {
            engine,
            store,
            shutdown,
            tracker,
        }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Starts the congestion detector beside the engine, writing events as the binary does.
    pub(crate) async fn start_traffic(&self) {
        engine::traffic::start(
            &self.engine,
            self.store.clone(),
            |change, city, at| {
                protocol::derived::congestion_event(change, city, at).map_err(|e| e.to_string())
            },
            self.shutdown.clone(),
            &self.tracker,
        );
    }

    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        self.store.close().await;
    }
}

/// A citizen's pothole report in the centre, received at `at`.
pub(crate) fn pothole_report(id: &str, at: DateTime<Utc>) -> Event {
    Event {
        id: id.into(),
        subject: None,
        source: Source::Citizen,
        kind: EventKind::Report,
        category: "pothole".into(),
        location: Point::new(25.5887, 45.6419),
        area: None,
        description: Some("Groapă".into()),
        occurred_at: at,
        received_at: at,
        payload: "{}".into(),
        contact: None,
    }
}

async fn open(engine: &Engine, id: &str, at: DateTime<Utc>) -> IncidentId {
    match engine.ingest(pothole_report(id, at)).await.expect("ingest") {
        IngestOutcome::Opened(id) => id,
        other => panic!("expected a new incident, got {other:?}"),
    }
}

pub(crate) fn request(incident: &IncidentId, action: Action, actor: &str) -> ActionRequest {
    ActionRequest {
        incident: incident.clone(),
        action,
        actor: actor.into(),
        reason: Some(format!("{actor} says so")),
        as_agency: None,
        request_id: None,
    }
}

/// The next announced update, waiting at most 10 s.
async fn next_update(rx: &mut broadcast::Receiver<IncidentUpdate>) -> IncidentUpdate {
    tokio::time::timeout(StdDuration::from_secs(10), rx.recv())
        .await
        .expect("an update within 10 s")
        .expect("the broadcast is open")
}

/// Effectively never, for engines whose only deadline check is the one at start.
pub(crate) const NEVER: StdDuration = StdDuration::from_secs(24 * 3600);

#[tokio::test]
async fn actions_follow_the_graph_and_are_recorded() {
    let dir = TempDir::new();
    let url = dir.database_url();
    let running = Running::start(&url, NEVER).await;
    let engine = &running.engine;
    let mut updates = engine.subscribe();

    let id = open(engine, "citizen:r-1", Utc::now()).await;
    let opened = next_update(&mut updates).await.incident;
    assert_eq!(
        opened.status,
        IncidentStatus::Assigned,
        "routed as it opens"
    );
    let agency = opened.agency.clone();
    assert_eq!(
        opened.sla.ack_due,
        Some(opened.opened_at + Duration::minutes(30)),
        "deadlines from the category"
    );

    // The agency acknowledges; the change is announced and in the store with actor and reason.
    let actor = format!("agency:{agency}");
    let mut ack = request(&id, Action::Acknowledge, &actor);
    ack.as_agency = Some(agency.clone());
    let acknowledged = engine.act(ack).await.expect("acknowledge");
    assert_eq!(acknowledged.status, IncidentStatus::Acknowledged);
    let announced = next_update(&mut updates).await.incident;
    assert_eq!(announced, acknowledged);
    let timeline = running.store.timeline(&id).await.expect("timeline");
    let last = timeline.last().expect("entries");
    assert_eq!(
        (
            last.kind.as_str(),
            last.actor.as_str(),
            last.reason.as_deref(),
            last.from,
            last.to
        ),
        (
            "acknowledge",
            actor.as_str(),
            Some(format!("{actor} says so").as_str()),
            Some(IncidentStatus::Assigned),
            Some(IncidentStatus::Acknowledged)
        )
    );

    // Not allowed from here: a typed refusal, nothing recorded.
    let refused = engine.act(request(&id, Action::Close, "operator")).await;
    assert!(
        matches!(
            refused,
            Err(EngineError::Transition(TransitionError::NotAllowed {
                action: ActionKind::Close,
                from: IncidentStatus::Acknowledged,
                to: IncidentStatus::Closed,
            }))
        ),
        "{refused:?}"
    );
    assert_eq!(
        running.store.timeline(&id).await.expect("timeline").len(),
        timeline.len()
    );

    // Another agency may not act on it; an unknown incident or agency is refused.
    let mut foreign = request(&id, Action::Start, "agency:other");
    foreign.as_agency = Some("not-the-agency".into());
    assert!(matches!(
        engine.act(foreign).await,
        Err(EngineError::NotAssignedTo { .. })
    ));
    assert!(matches!(
        engine
            .act(request(&"nope".into(), Action::Start, "operator"))
            .await,
        Err(EngineError::NotFound(_))
    ));
    let to_nobody = Action::Assign {
        agency: "no-such-agency".into(),
    };
    assert!(matches!(
        engine.act(request(&id, to_nobody, "operator")).await,
        Err(EngineError::UnknownAgency(_))
    ));

    // Start, resolve: it leaves the open incidents; reopen: it comes back, from the store.
    for action in [Action::Start, Action::Resolve] {
        engine
            .act(request(&id, action, "operator"))
            .await
            .expect("allowed");
    }
    let open_now = engine.open_incidents().await.expect("snapshot");
    assert!(open_now.iter().all(|i| i.id != id), "resolved is not open");
    let reopened = engine
        .act(request(&id, Action::Reopen, "operator"))
        .await
        .expect("reopen");
    assert_eq!(reopened.status, IncidentStatus::Reopened);
    assert!(
        reopened.sla.ack_due > acknowledged.sla.ack_due,
        "deadlines start again"
    );
    let open_now = engine.open_incidents().await.expect("snapshot");
    assert!(
        open_now.iter().any(|i| i.id == id),
        "reopened is open again"
    );
    // A report at the same place joins it again: it is back in the spatial index.
    match engine
        .ingest(pothole_report("citizen:r-2", Utc::now()))
        .await
        .expect("ingest")
    {
        IngestOutcome::Joined(joined) => assert_eq!(joined, id),
        other => panic!("expected the report to join the reopened incident, got {other:?}"),
    }

    // Resolve and close: final, even for a note's neighbours.
    for action in [Action::Resolve, Action::Close] {
        engine
            .act(request(&id, action, "operator"))
            .await
            .expect("allowed");
    }
    assert!(matches!(
        engine.act(request(&id, Action::Reopen, "operator")).await,
        Err(EngineError::Transition(_))
    ));
    let noted = engine
        .act(request(&id, Action::Note, "operator"))
        .await
        .expect("a note is always allowed");
    assert_eq!(noted.status, IncidentStatus::Closed);
    let stored = running
        .store
        .incident(&id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.status, IncidentStatus::Closed);
    let kinds: Vec<String> = running
        .store
        .timeline(&id)
        .await
        .expect("timeline")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "opened",
            "acknowledge",
            "start",
            "resolve",
            "reopen",
            "report_joined",
            "resolve",
            "close",
            "note"
        ]
    );
    running.stop().await;
}

#[tokio::test]
async fn reassignment_moves_the_incident_and_restarts_the_acknowledgement_clock() {
    let dir = TempDir::new();
    let running = Running::start(&dir.database_url(), NEVER).await;
    let engine = &running.engine;
    let id = open(engine, "citizen:r-1", Utc::now()).await;
    let before = engine
        .open_incidents()
        .await
        .expect("snapshot")
        .into_iter()
        .find(|i| i.id == id)
        .expect("open");
    let other = before
        .routing
        .alternatives
        .first()
        .expect("the centre has an alternative agency")
        .agency
        .clone();
    let moved = engine
        .act(request(
            &id,
            Action::Assign {
                agency: other.clone(),
            },
            "operator",
        ))
        .await
        .expect("reassign");
    assert_eq!(moved.agency, other);
    assert_eq!(moved.status, IncidentStatus::Assigned);
    assert!(moved.sla.ack_due > before.sla.ack_due);
    assert_eq!(moved.sla.resolve_due, before.sla.resolve_due);
    let last = running
        .store
        .timeline(&id)
        .await
        .expect("timeline")
        .pop()
        .expect("entries");
    assert_eq!(last.detail["previous_agency"], before.agency.as_str());
    assert_eq!(last.detail["agency"], other.as_str());
    running.stop().await;
}

#[tokio::test]
async fn an_overdue_incident_escalates_once_after_a_restart() {
    let dir = TempDir::new();
    let url = dir.database_url();

    // Opened 40 minutes ago (30 to acknowledge), by an engine that checks deadlines only as it
    // starts: nobody escalates it before the restart.
    let first = Running::start(&url, NEVER).await;
    let opened_at = Utc::now() - Duration::minutes(40);
    let id = open(&first.engine, "citizen:r-late", opened_at).await;
    let stored = first
        .store
        .incident(&id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.severity, Severity::Minor);
    assert_eq!(stored.sla.ack_escalated_at, None);
    first.stop().await;

    // Restarted on the same file: the check at start escalates it at once, and says so.
    let second = Running::start(&url, NEVER).await;
    let snapshot = second.engine.open_incidents().await.expect("snapshot");
    let escalated = snapshot
        .iter()
        .find(|i| i.id == id)
        .expect("still open")
        .clone();
    assert_eq!(escalated.severity, Severity::Moderate, "one step up");
    assert_eq!(escalated.status, IncidentStatus::Assigned);
    assert!(escalated.sla.ack_escalated_at.is_some());
    assert_eq!(escalated.sla.resolve_escalated_at, None, "8 h not over yet");
    let timeline = second.store.timeline(&id).await.expect("timeline");
    let entry = timeline.last().expect("entries");
    assert_eq!(
        (
            entry.kind.as_str(),
            entry.actor.as_str(),
            entry.reason.as_deref()
        ),
        ("escalated", "system", Some("acknowledge deadline missed"))
    );
    assert_eq!(entry.detail["severity_before"], "minor");
    assert_eq!(
        second
            .engine
            .stats()
            .escalations
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    second.stop().await;

    // Once per deadline: a third start finds nothing more to escalate.
    let third = Running::start(&url, NEVER).await;
    third.engine.open_incidents().await.expect("snapshot");
    let timeline = third.store.timeline(&id).await.expect("timeline");
    assert_eq!(timeline.iter().filter(|e| e.kind == "escalated").count(), 1);
    assert_eq!(
        third
            .store
            .incident(&id)
            .await
            .expect("read")
            .expect("stored")
            .severity,
        Severity::Moderate
    );
    third.stop().await;
}

#[tokio::test]
async fn a_running_engine_escalates_when_a_deadline_passes() {
    let dir = TempDir::new();
    let running = Running::start(&dir.database_url(), StdDuration::from_millis(50)).await;
    let mut updates = running.engine.subscribe();
    // Opened 8 h 1 min ago: both deadlines missed; acknowledgement escalates first, then
    // resolution, one announcement each.
    let id = open(
        &running.engine,
        "citizen:r-old",
        Utc::now() - Duration::hours(8) - Duration::minutes(1),
    )
    .await;
    let opened = next_update(&mut updates).await;
    assert_eq!(opened.incident.id, id, "opened");
    assert!(opened.escalation.is_none(), "an opening is no escalation");
    let first = next_update(&mut updates).await;
    let escalation = first.escalation.expect("marked as an escalation");
    assert_eq!(
        (escalation.deadline, escalation.due),
        (Deadline::Acknowledge, first.incident.sla.ack_due)
    );
    assert_eq!(
        (escalation.severity_before, escalation.severity),
        (Severity::Minor, Severity::Moderate)
    );
    let first = first.incident;
    assert!(first.sla.ack_escalated_at.is_some());
    assert_eq!(first.severity, Severity::Moderate);
    let second = next_update(&mut updates).await;
    assert_eq!(
        second.escalation.map(|e| (e.deadline, e.severity)),
        Some((Deadline::Resolve, Severity::Severe))
    );
    let second = second.incident;
    assert!(second.sla.resolve_escalated_at.is_some());
    assert_eq!(second.severity, Severity::Severe);
    // Acknowledging now does not escalate again: the resolution was escalated already.
    running
        .engine
        .act(request(&id, Action::Acknowledge, "operator"))
        .await
        .expect("acknowledge");
    let acknowledged = next_update(&mut updates).await;
    assert!(
        acknowledged.escalation.is_none(),
        "an action is no escalation"
    );
    let acknowledged = acknowledged.incident;
    assert_eq!(acknowledged.status, IncidentStatus::Acknowledged);
    running.stop().await;
    assert_eq!(
        running_escalations(&dir.database_url(), &id).await,
        2,
        "one per deadline"
    );
}

async fn running_escalations(url: &str, id: &IncidentId) -> usize {
    let store = Store::connect(url).await.expect("store");
    let n = store
        .timeline(id)
        .await
        .expect("timeline")
        .iter()
        .filter(|e| e.kind == "escalated")
        .count();
    store.close().await;
    n
}

#[tokio::test]
async fn an_agency_update_delivered_twice_is_taken_once() {
    let dir = TempDir::new();
    let running = Running::start(&dir.database_url(), NEVER).await;
    let engine = &running.engine;
    let id = open(engine, "citizen:r-1", Utc::now()).await;
    let far = Event {
        location: Point::new(25.61, 45.66),
        ..pothole_report("citizen:r-far", Utc::now())
    };
    let IngestOutcome::Opened(other) = engine.ingest(far).await.expect("ingest") else {
        panic!("a report 2 km away opens its own incident");
    };
    let update = ActionRequest {
        request_id: Some("u-1".into()),
        ..request(&id, Action::Acknowledge, "agency:x")
    };
    let first = engine.act(update.clone()).await.expect("taken");
    assert_eq!(first.status, IncidentStatus::Acknowledged);
    // Redelivered (an MQTT QoS 1 retry): no 409, nothing recorded again.
    let again = engine.act(update.clone()).await.expect("recognised");
    assert_eq!(again, first);
    let acks = running
        .store
        .timeline(&id)
        .await
        .expect("timeline")
        .iter()
        .filter(|e| e.kind == "acknowledge")
        .count();
    assert_eq!(acks, 1);
    // The same id for another incident is a mistake of the sender's.
    let reused = ActionRequest {
        incident: other,
        ..update
    };
    assert!(matches!(
        engine.act(reused).await,
        Err(EngineError::RequestIdReused { .. })
    ));
    running.stop().await;
}

/// Event sourcing's promise: replaying the log (events, actions, escalations) through the same
/// decisions gives exactly the stored incidents.
#[tokio::test]
async fn the_incidents_rebuilt_from_the_log_are_the_stored_ones() {
    use engine::rebuild::rebuild;
    let dir = TempDir::new();
    let running = Running::start(&dir.database_url(), StdDuration::from_millis(50)).await;
    let mut updates = running.engine.subscribe();
    let t = Utc::now();
    let mut events = vec![
        // Both deadlines long missed: two escalations, one per round.
        pothole_report("citizen:r-old", t - Duration::hours(9)),
        // Joins it (same place, within the window of its last update).
        pothole_report("citizen:r-again", t - Duration::hours(8)),
    ];
    let mut far = pothole_report("citizen:r-far", t - Duration::minutes(5));
    far.location = Point::new(25.6200, 45.6600);
    events.push(far);
    let mut ids = Vec::new();
    for e in &events {
        ids.push(running.engine.ingest(e.clone()).await.expect("ingest"));
    }
    let IngestOutcome::Opened(old) = ids[0].clone() else {
        panic!("opened: {ids:?}");
    };
    let IngestOutcome::Opened(far) = ids[2].clone() else {
        panic!("opened: {ids:?}");
    };
    assert!(matches!(ids[1], IngestOutcome::Joined(_)), "{ids:?}");
    // Wait for both escalations of the old one.
    loop {
        let u = next_update(&mut updates).await.incident;
        if u.id == old && u.sla.resolve_escalated_at.is_some() {
            break;
        }
    }
    for (id, action) in [
        (
            &far,
            Action::Assign {
                agency: "city-dispatch".into(),
            },
        ),
        (&far, Action::Acknowledge),
        (&old, Action::Acknowledge),
        (&old, Action::Start),
        (&old, Action::Resolve),
        (&old, Action::Reopen),
        (&old, Action::Note),
    ] {
        running
            .engine
            .act(request(id, action, "operator"))
            .await
            .expect("act");
    }
    running.stop().await;

    let store = Store::connect(&dir.database_url()).await.expect("store");
    let transitions = store.transitions().await.expect("transitions");
    assert_eq!(
        transitions.iter().filter(|t| t.kind == "escalated").count(),
        2
    );
    let log = log_of(&store, &events).await;
    let rebuilt = rebuild(brasov(), log).await.expect("rebuild");
    let stored = store.all_incidents().await.expect("incidents");
    assert_eq!(stored.len(), 2);
    assert_eq!(
        rebuilt, stored,
        "the log rebuilds exactly the stored incidents"
    );
    let reopened = stored.iter().find(|i| i.id == old).expect("old");
    assert_eq!(
        (reopened.status, reopened.severity, reopened.report_count),
        (IncidentStatus::Reopened, Severity::Severe, 2)
    );
    store.close().await;
}

/// The log of `store` as `dispecer rebuild` reads it: its events (the ones in `events`, by id)
/// and its transitions, in order.
pub(crate) async fn log_of(store: &Store, events: &[Event]) -> Vec<engine::rebuild::LogEntry> {
    use engine::rebuild::{transition_entry, LogEntry};
    let logged = store.event_log().await.expect("event log");
    let mut log: Vec<(DateTime<Utc>, u8, i64, LogEntry)> = logged
        .iter()
        .enumerate()
        .map(|(i, l)| {
            // One we sent, or one the engine derived (parsed again, as `dispecer rebuild` does).
            let event = match events.iter().find(|e| e.id.as_str() == l.id) {
                Some(e) => e.clone(),
                None => {
                    let component = l.source.strip_prefix("system:").expect("a derived event");
                    let city = brasov();
                    protocol::derived::derived_event(
                        l.payload.as_bytes(),
                        component,
                        city.city(),
                        l.received_at,
                    )
                    .expect("a derived event parses again")
                }
            };
            (
                l.received_at,
                0,
                i as i64,
                LogEntry::Event {
                    event: Box::new(event),
                    incident: l.incident.clone(),
                },
            )
        })
        .collect();
    let transitions = store.transitions().await.expect("transitions");
    for t in transitions {
        let (at, seq) = (t.at, t.seq);
        // `None`: the Cancel a resolution issued comes again from replaying the resolution.
        if let Some(entry) = transition_entry(t).expect("a replayable entry") {
            log.push((at, 1, seq, entry));
        }
    }
    log.sort_by_key(|e| (e.0, e.1, e.2));
    log.into_iter().map(|(_, _, _, e)| e).collect()
}
