//! The input side: citizen reports and utility events, QoS 1, acknowledged after commit.
//!
//! Two sessions, each with its own connection, hand-off and worker: one for events (citizen
//! reports, utilities, agencies' updates) and one for the traffic counters' readings. A broker
//! delivers a session's messages in order, so on one session a report waited behind every
//! reading queued before it (p99 report → dashboard of 680 ms with 10 000 readings/s behind,
//! `dispecer-bench --row latency`); apart, a report waits only for other events.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rumqttc::{AsyncClient, Event, EventLoop, NetworkOptions, Packet, Publish, QoS};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use engine::feeds::FeedOutcome;
use engine::{Engine, EngineError, IngestOutcome};
use protocol::{inbound, topics, traffic, WireError};

use crate::rate::{RateLimited, SenderLimiter};
use store::{InboxMessage, NewDeadLetter, Store};

use crate::{Backoff, Endpoint};

/// How the ingest client connects.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// The broker.
    pub endpoint: Endpoint,
    /// Stable client id of the events session (the readings session adds `-readings`): the
    /// broker keeps each session's subscriptions and queued messages while Dispecer is down.
    pub client_id: String,
    /// Cluster mode: the input filters are subscribed as MQTT shared subscriptions, and while
    /// this instance's engine does not lead, what it accepts goes into the store's inbox.
    pub cluster: Option<ClusterIngest>,
    /// What each sender may publish ([`crate::rate`]); beyond it, dead letters.
    pub rate: crate::SenderRate,
}

/// An instance's part in a cluster of Dispecers on one broker and one PostgreSQL.
#[derive(Debug, Clone)]
pub struct ClusterIngest {
    /// The shared subscriptions' group: each filter `f` is subscribed as `$share/{group}/f`, and
    /// the broker gives each message of a filter to one member of the group.
    pub group: String,
    /// This instance's id (noted on its inbox rows).
    pub instance_id: String,
}

/// `filter` as subscribed: shared in `group` in cluster mode.
pub(crate) fn subscribed(cluster: Option<&ClusterIngest>, filter: &str) -> String {
    match cluster {
        Some(c) => format!("$share/{}/{filter}", c.group),
        None => filter.to_owned(),
    }
}

/// Which of the two sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Session {
    Events,
    Readings,
}

impl Session {
    /// Its topic filters.
    pub(crate) fn subscriptions(self) -> &'static [&'static str] {
        match self {
            Session::Events => &[
                topics::CITIZEN_REPORTS,
                topics::UTILITY_EVENTS_FILTER,
                topics::AGENCY_UPDATES_FILTER,
                topics::REFUSED_FILTER,
            ],
            Session::Readings => &[topics::TRAFFIC_FILTER],
        }
    }

    /// Filters a session kept by the broker from before the split must drop (the events session
    /// once carried the readings too); unsubscribing what is not subscribed is harmless.
    fn stale(self) -> &'static [&'static str] {
        match self {
            Session::Events => &[topics::TRAFFIC_FILTER],
            Session::Readings => &[],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Session::Events => "events",
            Session::Readings => "readings",
        }
    }
}

/// Counters of the input side.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// Messages acknowledged after their event was committed (or recognised as a redelivery).
    pub accepted: AtomicU64,
    /// Messages refused and stored as dead letters.
    pub dead_letters: AtomicU64,
}

/// Messages waiting in the hand-off from the event loop to the worker above which a warning is
/// logged. The hand-off has no bound: the event loop must never wait for the worker, since it
/// is also what sends the worker's acknowledgements and the keep-alive pings (a full bounded
/// hand-off deadlocked the two: the worker waiting to queue an ack, the event loop waiting to
/// hand over a message). What waits there is what the broker sent without an acknowledgement:
/// its in-flight window (the vendored rumqttd: 1000; Mosquitto: `max_inflight_messages`, which
/// Debian's Mosquitto 2.0.11 was seen to exceed by thousands).
const HANDOFF_WARNING: usize = 10_000;

/// Requests (mostly acknowledgements) the worker may queue for the event loop before it waits:
/// at least the broker's in-flight window (the vendored rumqttd's: 1000), so the commit stage
/// queues a whole commit's acknowledgements and goes on to the next commit while the event loop
/// writes them. When full, the commit stage waits for the event loop.
const REQUESTS: usize = 1024;

/// Most bytes of a refused payload kept in its dead letter (the reason says what was wrong).
const MAX_DEAD_LETTER_BYTES: usize = 64 * 1024;

/// Starts the ingest sessions on `tracker`. `ready` turns true once both sessions' subscriptions
/// are acknowledged by the broker (and again after every reconnect).
pub fn run_ingest(
    options: IngestOptions,
    engine: Engine,
    store: Store,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> (watch::Receiver<bool>, Arc<IngestStats>) {
    let stats = Arc::new(IngestStats::default());
    // One allowance per sender, whichever session its topic comes on.
    let limiter = Arc::new(SenderLimiter::new(options.rate));
    let mut events = run_session(
        Session::Events,
        &options.endpoint,
        options.client_id.clone(),
        options.cluster.clone(),
        engine.clone(),
        store.clone(),
        limiter.clone(),
        stats.clone(),
        shutdown.clone(),
        tracker,
    );
    let mut readings = run_session(
        Session::Readings,
        &options.endpoint,
        format!("{}-readings", options.client_id),
        options.cluster.clone(),
        engine,
        store,
        limiter,
        stats.clone(),
        shutdown.clone(),
        tracker,
    );
    let (ready_tx, ready_rx) = watch::channel(false);
    tracker.spawn(async move {
        loop {
            ready_tx.send_replace(*events.borrow_and_update() && *readings.borrow_and_update());
            tokio::select! {
                () = shutdown.cancelled() => break,
                r = events.changed() => if r.is_err() { break },
                r = readings.changed() => if r.is_err() { break },
            }
        }
    });
    (ready_rx, stats)
}

/// One session: its connection's poller and its worker.
#[allow(clippy::too_many_arguments)]
fn run_session(
    session: Session,
    endpoint: &Endpoint,
    client_id: String,
    cluster: Option<ClusterIngest>,
    engine: Engine,
    store: Store,
    limiter: Arc<SenderLimiter>,
    stats: Arc<IngestStats>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> watch::Receiver<bool> {
    let (client, eventloop) = connection(endpoint, client_id);
    let (ready_tx, ready_rx) = watch::channel(false);
    let (tx, rx) = mpsc::unbounded_channel();
    tracker.spawn(poll(
        session,
        cluster.clone(),
        eventloop,
        client.clone(),
        tx,
        ready_tx,
        shutdown.clone(),
    ));
    tracker.spawn(work(
        rx,
        client,
        engine,
        store,
        Some(limiter),
        stats,
        cluster,
        shutdown,
    ));
    ready_rx
}

/// A persistent session's client (clean session off, manual acks) and its event loop.
pub(crate) fn connection(endpoint: &Endpoint, client_id: String) -> (AsyncClient, EventLoop) {
    let mut mqtt = endpoint.options(client_id);
    mqtt.set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(15))
        .set_max_packet_size(inbound::MAX_PAYLOAD + 4096, inbound::MAX_PAYLOAD + 4096);
    let (client, mut eventloop) = AsyncClient::new(mqtt, REQUESTS);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network.set_connection_timeout(5);
    eventloop.set_network_options(network);
    (client, eventloop)
}

async fn poll(
    session: Session,
    cluster: Option<ClusterIngest>,
    mut eventloop: EventLoop,
    client: AsyncClient,
    tx: mpsc::UnboundedSender<Publish>,
    ready: watch::Sender<bool>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new();
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => break,
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff.reset();
                tracing::info!(
                    session = session.name(),
                    session_present = ack.session_present,
                    "mqtt ingest connected"
                );
                // Subscribe on every connection: a broker that lost our session (restart without
                // persistence) would otherwise deliver nothing, silently.
                let subs = session.subscriptions().iter().map(|t| {
                    rumqttc::SubscribeFilter::new(subscribed(cluster.as_ref(), t), QoS::AtLeastOnce)
                });
                if let Err(e) = client.try_subscribe_many(subs) {
                    tracing::error!(error = %e, "mqtt subscribe could not be queued");
                }
                if ack.session_present && cluster.is_none() {
                    for stale in session.stale() {
                        if let Err(e) = client.try_unsubscribe(*stale) {
                            tracing::warn!(error = %e, "mqtt unsubscribe could not be queued");
                        }
                    }
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure));
                if refused {
                    tracing::error!("the broker refused a subscription of dispecer's input topics");
                } else {
                    ready.send_replace(true);
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if tx.send(p).is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                ready.send_replace(false);
                let delay = backoff.next_delay();
                tracing::warn!(session = session.name(), error = %e, retry_in_ms = delay.as_millis() as u64, "mqtt ingest connection lost");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    let _ = client.try_disconnect();
}

/// Most messages the worker takes from the hand-off at once: whatever is already waiting, never
/// more (it never waits for a batch to fill, so a lone message is not delayed).
pub(crate) const MAX_BATCH: usize = 1024;

/// Most readings committed in one transaction.
const MAX_BATCH_READINGS: usize = 10_000;

/// A message taken from the hand-off and parsed, not yet durable nor acknowledged.
pub(crate) struct Inbound {
    origin: Origin,
    feed: String,
    received_at: DateTime<Utc>,
    parsed: Result<Parsed, Refusal>,
}

/// Why a message is refused before the engine sees it.
enum Refusal {
    /// Its payload or topic.
    Wire(WireError),
    /// Its sender published too much ([`crate::rate`]).
    RateLimited(RateLimited),
    /// The embedded broker redirected it: its sender's login may not publish on the topic it
    /// tried ([`topics::refused`]).
    NotAllowed { login: String, tried: String },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Wire(e) => e.fmt(f),
            Refusal::RateLimited(e) => e.fmt(f),
            Refusal::NotAllowed { login, tried } => write!(
                f,
                "the MQTT login {login:?} may not publish on {tried}: each sender publishes \
                 only on its own topics (see SECURITY.md)"
            ),
        }
    }
}

enum Parsed {
    Event(Box<model::Event>),
    Readings(Vec<model::Reading>),
    /// An agency's action on one of its incidents (`dispecer/v1/in/agencies/{agency}/updates`).
    Update {
        agency: String,
        update: protocol::action::AgencyUpdate,
    },
}

/// Where a message came from, and so how it is acknowledged once durable.
pub(crate) enum Origin {
    /// From the broker: a PUBACK.
    Mqtt(Publish),
    /// From the inbox, put there by a follower: its row is deleted.
    Inbox(InboxMessage),
}

/// How the messages of a batch are acknowledged once durable (see [`Origin`]).
pub(crate) enum Acker {
    Mqtt(AsyncClient),
    /// The inbox rows made durable, to delete after the batch.
    Inbox(std::sync::Mutex<Vec<i64>>),
}

impl Acker {
    async fn ack(&self, msg: &Inbound) {
        match (self, &msg.origin) {
            (Acker::Mqtt(client), Origin::Mqtt(publish)) => ack(client, publish).await,
            (Acker::Inbox(done), Origin::Inbox(row)) => {
                if let Ok(mut done) = done.lock() {
                    done.push(row.id);
                }
            }
            // Never mixed: a batch comes from one origin.
            _ => {}
        }
    }
}

impl Inbound {
    fn topic(&self) -> &str {
        match &self.origin {
            Origin::Mqtt(p) => p.topic.as_str(),
            Origin::Inbox(m) => m.topic.as_str(),
        }
    }

    fn payload(&self) -> &[u8] {
        match &self.origin {
            Origin::Mqtt(p) => &p.payload,
            Origin::Inbox(m) => &m.payload,
        }
    }

    /// A broker's redelivery (DUP flag).
    fn dup(&self) -> bool {
        matches!(&self.origin, Origin::Mqtt(p) if p.dup)
    }

    /// Parses a message. `limiter` is the senders' allowance, checked on what comes from the
    /// broker (`None` for the inbox: the follower that took the message checked it).
    pub(crate) fn parse(origin: Origin, engine: &Engine, limiter: Option<&SenderLimiter>) -> Self {
        let (topic, payload, received_at) = match &origin {
            Origin::Mqtt(p) => (p.topic.as_str(), &p.payload[..], Utc::now()),
            Origin::Inbox(m) => (m.topic.as_str(), &m.payload[..], m.received_at),
        };
        let city = engine.city().city();
        // A broker's redelivery was counted when it first came.
        let allowed = match (limiter, &origin) {
            (Some(limiter), Origin::Mqtt(p)) if !p.dup => limiter.check(topic, city),
            _ => Ok(()),
        };
        let (feed, parsed) = if topic == topics::CITIZEN_REPORTS {
            (
                "citizen".to_owned(),
                inbound::citizen_report(payload, city, received_at)
                    .map(|e| Parsed::Event(Box::new(e))),
            )
        } else if let Some(operator) = topics::utility_operator(topic) {
            (
                format!("utility:{operator}"),
                // CAP 1.2 XML or a GeoJSON Feature, told apart by the first character.
                if payload.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<') {
                    inbound::cap_event(payload, operator, city, received_at)
                        .map(|e| Parsed::Event(Box::new(e)))
                } else {
                    inbound::utility_event(payload, operator, city, received_at)
                        .map(|e| Parsed::Event(Box::new(e)))
                },
            )
        } else if let Some(sensor) = topics::traffic_sensor(topic) {
            (
                format!("traffic:{sensor}"),
                traffic::readings(payload, sensor, city, received_at).map(Parsed::Readings),
            )
        } else if let Some(agency) = topics::updating_agency(topic) {
            (
                format!("agency:{agency}"),
                if city.agencies.iter().any(|a| a.id.as_str() == agency) {
                    protocol::action::agency_update(payload, city).map(|update| Parsed::Update {
                        agency: agency.to_owned(),
                        update,
                    })
                } else {
                    Err(WireError::Invalid {
                        name: "topic",
                        reason: format!("{agency:?} is not one of this city's agencies"),
                    })
                },
            )
        } else {
            (
                "unknown".to_owned(),
                Err(WireError::UnknownTopic(topic.to_owned())),
            )
        };
        // Beyond the sender's allowance: refused whatever the payload (parsed all the same, for
        // the feed's name; a parse is cheap beside the commit it saves).
        let mut parsed = match allowed {
            Ok(()) => parsed.map_err(Refusal::Wire),
            Err(limited) => Err(Refusal::RateLimited(limited)),
        };
        let mut feed = feed;
        if let Some((login, tried)) = topics::refused_parts(topic) {
            feed = format!("login:{login}");
            parsed = Err(Refusal::NotAllowed {
                login,
                tried: tried.to_owned(),
            });
        }
        Inbound {
            origin,
            feed,
            received_at,
            parsed,
        }
    }

    /// Its readings, if it is a valid SenML pack that may share a transaction with others.
    /// A broker's redelivery (DUP flag) is committed alone, so that whether it was already
    /// stored is counted exactly (see [`outcomes`]).
    fn batchable_readings(&self) -> Option<&[model::Reading]> {
        match &self.parsed {
            Ok(Parsed::Readings(r)) if !self.dup() => Some(r),
            _ => None,
        }
    }

    /// Its event, if it is a valid event that may share a commit with others. A broker's
    /// redelivery (DUP flag) is committed alone, so that whether it was already stored is
    /// counted exactly.
    fn batchable_event(&self) -> Option<&model::Event> {
        match &self.parsed {
            Ok(Parsed::Event(e)) if !self.dup() => Some(&**e),
            _ => None,
        }
    }

    fn readings(&self) -> &[model::Reading] {
        match &self.parsed {
            Ok(Parsed::Readings(r)) => r,
            _ => &[],
        }
    }
}

/// Batches parsed and waiting for the commit stage: when full, the parse stage waits, and what
/// waits meanwhile is in the hand-off, which the broker's in-flight window bounds. A few keep the
/// commit stage fed (it merges the batches waiting into one) without parsing far ahead of it.
const STAGED_BATCHES: usize = 4;

/// The worker, in two stages that overlap: the parse stage takes every message already waiting
/// (up to [`MAX_BATCH`]) and parses it; the commit stage makes each message durable and
/// acknowledges them in the order they arrived, while the parse stage already parses what the
/// broker sent meanwhile. The batches parsed during a commit are merged into the next one.
/// Consecutive SenML packs share one transaction (one commit, one disk flush for all of them),
/// and so do consecutive events (the engine's group commit, [`Engine::ingest_batch`]); anything
/// else (an agency's update, a refusal, a redelivery) is committed on its own, after everything
/// before it. In cluster mode a follower puts what it accepts into the inbox instead (decided
/// per merged batch, as it is committed). Brokers require acknowledgements in order (rumqttd
/// drops a client that acknowledges out of order; MQTT 3.1.1 §4.6 requires it): every message
/// is acknowledged only after it and every message before it are durable.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn work(
    rx: mpsc::UnboundedReceiver<Publish>,
    client: AsyncClient,
    engine: Engine,
    store: Store,
    limiter: Option<Arc<SenderLimiter>>,
    stats: Arc<IngestStats>,
    cluster: Option<ClusterIngest>,
    shutdown: CancellationToken,
) {
    // Bounded: when full, the parse stage waits for the commit stage (see STAGED_BATCHES).
    let (parsed_tx, parsed_rx) = mpsc::channel(STAGED_BATCHES);
    // Its own task, so that parsing a large batch never delays the next commit; awaited here,
    // so the worker ends only once it has. Either stage ending ends the other (the channel
    // closes), and nothing parsed but not committed is acknowledged.
    let commit = tokio::spawn(commit_stage(
        parsed_rx,
        Acker::Mqtt(client),
        engine.clone(),
        store,
        stats,
        cluster,
        shutdown.clone(),
    ));
    parse_stage(rx, parsed_tx, engine, limiter, shutdown).await;
    if let Err(e) = commit.await {
        tracing::error!(error = %e, "mqtt ingest commit stage failed");
    }
}

/// The parse stage: every message waiting in the hand-off (up to [`MAX_BATCH`]), parsed and
/// handed to the commit stage as one batch, in arrival order.
async fn parse_stage(
    mut rx: mpsc::UnboundedReceiver<Publish>,
    parsed: mpsc::Sender<Vec<Inbound>>,
    engine: Engine,
    limiter: Option<Arc<SenderLimiter>>,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut warned = false;
    loop {
        let received = tokio::select! {
            () = shutdown.cancelled() => 0,
            n = rx.recv_many(&mut batch, MAX_BATCH) => n,
        };
        if received == 0 {
            break;
        }
        let waiting = rx.len();
        if waiting > HANDOFF_WARNING && !warned {
            warned = true;
            tracing::warn!(
                waiting,
                "the broker sends far more unacknowledged messages than its in-flight window; \
                 they wait in memory"
            );
        } else if waiting < HANDOFF_WARNING / 2 {
            warned = false;
        }
        let msgs: Vec<Inbound> = batch
            .drain(..)
            .map(|p| Inbound::parse(Origin::Mqtt(p), &engine, limiter.as_deref()))
            .collect();
        let sent = tokio::select! {
            () = shutdown.cancelled() => false,
            sent = parsed.send(msgs) => sent.is_ok(),
        };
        if !sent {
            return;
        }
    }
}

/// The commit stage: each parsed batch, with the batches already waiting behind it, made
/// durable (or, on a follower, put into the inbox), counted and acknowledged, in order.
async fn commit_stage(
    mut parsed: mpsc::Receiver<Vec<Inbound>>,
    acker: Acker,
    engine: Engine,
    store: Store,
    stats: Arc<IngestStats>,
    cluster: Option<ClusterIngest>,
    shutdown: CancellationToken,
) {
    loop {
        let mut msgs = tokio::select! {
            () = shutdown.cancelled() => return,
            msgs = parsed.recv() => match msgs {
                Some(msgs) => msgs,
                None => return,
            },
        };
        // What was parsed while the previous commit was in flight goes with it.
        while let Ok(more) = parsed.try_recv() {
            msgs.extend(more);
        }
        let done = match &cluster {
            // A follower: the leader's engine decides, through the inbox.
            Some(cluster) if !engine.is_leading() => {
                queue(msgs, &acker, &engine, &store, &stats, cluster, &shutdown).await
            }
            _ => commit_all(msgs, &acker, &engine, &store, &stats, &shutdown).await,
        };
        if !done {
            return;
        }
    }
}

/// A follower's part: stores the refusals of `msgs` as dead letters and puts the rest, as
/// received, into the inbox for the leader (one transaction), then acknowledges all of them in
/// order. `false` when shutting down (nothing acknowledged: the broker redelivers).
async fn queue(
    msgs: Vec<Inbound>,
    acker: &Acker,
    engine: &Engine,
    store: &Store,
    stats: &IngestStats,
    cluster: &ClusterIngest,
    shutdown: &CancellationToken,
) -> bool {
    let mut valid = Vec::with_capacity(msgs.len());
    for msg in &msgs {
        match &msg.parsed {
            Ok(_) => valid.push(InboxMessage {
                id: 0,
                topic: msg.topic().to_owned(),
                payload: msg.payload().to_vec(),
                received_at: msg.received_at,
            }),
            Err(reason) => {
                let reason = reason.to_string();
                if durably(shutdown, || dead_letter(msg, reason.clone(), store, engine))
                    .await
                    .is_none()
                {
                    return false;
                }
                stats.dead_letters.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let queued = valid.len() as u64;
    let pushed = durably(shutdown, || async {
        Ok::<_, EngineError>(store.inbox_push(&cluster.instance_id, &valid).await?)
    })
    .await;
    if pushed.is_none() {
        return false;
    }
    engine
        .stats()
        .inbox_queued
        .fetch_add(queued, Ordering::Relaxed);
    for msg in &msgs {
        acker.ack(msg).await;
    }
    true
}

/// Makes every message of `msgs` durable through the engine and the store (see [`work`]) and
/// acknowledges them in order. `false` when shutting down.
pub(crate) async fn commit_all(
    msgs: Vec<Inbound>,
    acker: &Acker,
    engine: &Engine,
    store: &Store,
    stats: &IngestStats,
    shutdown: &CancellationToken,
) -> bool {
    let mut packs: Vec<Inbound> = Vec::new();
    let mut events: Vec<Inbound> = Vec::new();
    let mut pack_readings = 0;
    for msg in msgs {
        if msg.batchable_event().is_some() {
            // The packs before it first, in order.
            let done = std::mem::take(&mut packs);
            pack_readings = 0;
            if !commit_packs(done, acker, store, engine, stats, shutdown).await {
                return false;
            }
            events.push(msg);
            continue;
        }
        let done = std::mem::take(&mut events);
        if !commit_events(done, acker, store, engine, stats, shutdown).await {
            return false;
        }
        if let Some(r) = msg.batchable_readings() {
            if pack_readings + r.len() > MAX_BATCH_READINGS && !packs.is_empty() {
                let done = std::mem::take(&mut packs);
                pack_readings = 0;
                if !commit_packs(done, acker, store, engine, stats, shutdown).await {
                    return false;
                }
            }
            pack_readings += r.len();
            packs.push(msg);
            continue;
        }
        // Everything before it first, in order.
        let done = std::mem::take(&mut packs);
        pack_readings = 0;
        if !commit_packs(done, acker, store, engine, stats, shutdown).await {
            return false;
        }
        if !commit_one(msg, acker, store, engine, stats, shutdown).await {
            return false;
        }
    }
    if !commit_events(events, acker, store, engine, stats, shutdown).await {
        return false;
    }
    commit_packs(packs, acker, store, engine, stats, shutdown).await
}

/// Takes the events of `msgs` (valid events, in arrival order) through the engine with one
/// commit, stores the refusals among them as dead letters, counts each in its feed, then
/// acknowledges them in order. `false` when shutting down (nothing acknowledged: the broker
/// redelivers).
async fn commit_events(
    msgs: Vec<Inbound>,
    acker: &Acker,
    store: &Store,
    engine: &Engine,
    stats: &IngestStats,
    shutdown: &CancellationToken,
) -> bool {
    match msgs.len() {
        0 => return true,
        1 => {
            let Some(msg) = msgs.into_iter().next() else {
                return true;
            };
            return commit_one(msg, acker, store, engine, stats, shutdown).await;
        }
        _ => {}
    }
    let events: Vec<model::Event> = msgs
        .iter()
        .filter_map(|m| m.batchable_event().cloned())
        .collect();
    let Some(outcomes) = durably(shutdown, || engine.ingest_batch(events.clone())).await else {
        return false;
    };
    let feeds = engine.feeds();
    for (msg, outcome) in msgs.iter().zip(outcomes) {
        let sent_at = msg.batchable_event().map(|e| e.occurred_at);
        let refusal = match outcome {
            Ok(IngestOutcome::Duplicate) => {
                feeds.record(&msg.feed, FeedOutcome::Duplicate, msg.received_at, sent_at);
                stats.accepted.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Ok(_) => {
                feeds.record(&msg.feed, FeedOutcome::Accepted, msg.received_at, sent_at);
                stats.accepted.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            // The engine will never take it: tell the sender (a dead letter), move on.
            Err(EngineError::Refused(reason)) => reason,
            Err(e) => e.to_string(),
        };
        if durably(shutdown, || {
            dead_letter(msg, refusal.clone(), store, engine)
        })
        .await
        .is_none()
        {
            return false;
        }
        stats.dead_letters.fetch_add(1, Ordering::Relaxed);
    }
    for msg in &msgs {
        acker.ack(msg).await;
    }
    true
}

/// Runs `attempt` until it succeeds: a store failure is retried with back-off, never skipped
/// (acknowledging out of order or skipping would lose a message). `None` when shutting down.
pub(crate) async fn durably<T, F, Fut>(shutdown: &CancellationToken, mut attempt: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, EngineError>>,
{
    let mut backoff = Backoff::new();
    loop {
        match attempt().await {
            Ok(v) => return Some(v),
            Err(EngineError::Stopped) => return None,
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "not durable yet; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return None,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

async fn ack(client: &AsyncClient, publish: &Publish) {
    if publish.qos != QoS::AtMostOnce {
        if let Err(e) = client.ack(publish).await {
            // The broker will redeliver; the store recognises what it already has.
            tracing::warn!(error = %e, "mqtt ack not sent");
        }
    }
}

/// Commits the readings of `packs` (valid SenML packs, in arrival order) in one transaction,
/// counts each pack in its feed, then acknowledges them in order. `false` when shutting down
/// (nothing acknowledged: the broker redelivers).
async fn commit_packs(
    packs: Vec<Inbound>,
    acker: &Acker,
    store: &Store,
    engine: &Engine,
    stats: &IngestStats,
    shutdown: &CancellationToken,
) -> bool {
    if packs.is_empty() {
        return true;
    }
    let groups: Vec<&[model::Reading]> = packs.iter().map(Inbound::readings).collect();
    let (rows, fresh) = first_occurrences(&groups);
    let started = std::time::Instant::now();
    let Some(new) = durably(shutdown, || async {
        Ok::<_, EngineError>(store.record_readings(&rows).await?)
    })
    .await
    else {
        return false;
    };
    tracing::debug!(
        packs = packs.len(),
        readings = rows.len(),
        commit_us = started.elapsed().as_micros() as u64,
        "readings committed"
    );
    // Committed: the congestion detector may look (it never makes us wait).
    engine.readings_stored(&rows);
    let feeds = engine.feeds();
    for (msg, outcome) in packs.iter().zip(outcomes(&groups, &fresh, new)) {
        let sent_at = msg.readings().iter().map(|r| r.time).max();
        feeds.record(&msg.feed, outcome, msg.received_at, sent_at);
        stats.accepted.fetch_add(1, Ordering::Relaxed);
    }
    for msg in &packs {
        acker.ack(msg).await;
    }
    true
}

/// The readings of `groups` (one per pack, in order) without repeats (same sensor, metric and
/// time to the microsecond, as the store keys them), the first occurrence kept; and for each
/// pack whether it has a reading no earlier pack of the batch has.
fn first_occurrences(groups: &[&[model::Reading]]) -> (Vec<model::Reading>, Vec<bool>) {
    let total = groups.iter().map(|g| g.len()).sum();
    // foldhash rather than std's SipHash: a lookup per reading on the ingest path. Its seed is
    // random per map, so a sender cannot pick colliding sensor or metric names in advance.
    let mut seen = foldhash::HashSet::with_capacity_and_hasher(total, Default::default());
    let mut rows = Vec::with_capacity(total);
    let fresh = groups
        .iter()
        .map(|g| {
            let mut any = false;
            for r in *g {
                if seen.insert((
                    r.sensor.as_str(),
                    r.metric.as_str(),
                    r.time.timestamp_micros(),
                )) {
                    rows.push(r.clone());
                    any = true;
                }
            }
            any
        })
        .collect();
    (rows, fresh)
}

/// Each pack's outcome once the batch's `rows` distinct readings are committed and `new` of them
/// were not stored before. A pack is a duplicate when none of its readings was new: exact when
/// the batch was all new or all known, or is a single pack (every broker redelivery is). In a
/// batch that was partly known — a sender sending again, as a new message, a pack it had sent
/// in an earlier batch — the store does not say which pack was, and every pack with a reading
/// first in the batch counts as accepted.
fn outcomes(groups: &[&[model::Reading]], fresh: &[bool], new: u64) -> Vec<FeedOutcome> {
    groups
        .iter()
        .zip(fresh)
        .map(|(g, &fresh)| {
            if g.is_empty() || (fresh && new > 0) {
                FeedOutcome::Accepted
            } else {
                FeedOutcome::Duplicate
            }
        })
        .collect()
}

/// Makes one message durable on its own (an event, a refusal, or a pack the broker redelivers),
/// counts it and acknowledges it. `false` when shutting down.
async fn commit_one(
    msg: Inbound,
    acker: &Acker,
    store: &Store,
    engine: &Engine,
    stats: &IngestStats,
    shutdown: &CancellationToken,
) -> bool {
    let Some(accepted) = durably(shutdown, || handle(&msg, engine, store)).await else {
        return false;
    };
    if accepted {
        stats.accepted.fetch_add(1, Ordering::Relaxed);
    } else {
        stats.dead_letters.fetch_add(1, Ordering::Relaxed);
    }
    acker.ack(&msg).await;
    true
}

/// An event through the engine, a pack's readings into the store, or a refusal into the dead
/// letters, each in its own transaction. `Ok(true)` when accepted (or recognised as a
/// redelivery), `Ok(false)` when stored as a dead letter.
async fn handle(msg: &Inbound, engine: &Engine, store: &Store) -> Result<bool, EngineError> {
    let feeds = engine.feeds();
    let refusal = match &msg.parsed {
        Ok(Parsed::Event(event)) => {
            let sent_at = Some(event.occurred_at);
            match engine.ingest((**event).clone()).await {
                Ok(outcome) => {
                    let outcome = match outcome {
                        IngestOutcome::Duplicate => FeedOutcome::Duplicate,
                        _ => FeedOutcome::Accepted,
                    };
                    feeds.record(&msg.feed, outcome, msg.received_at, sent_at);
                    return Ok(true);
                }
                // The engine will never take it: tell the sender (a dead letter), move on.
                Err(EngineError::Refused(reason)) => reason,
                Err(e @ EngineError::UnknownCategory(_)) => e.to_string(),
                Err(e) => return Err(e),
            }
        }
        Ok(Parsed::Update { agency, update }) => {
            let request = engine::ActionRequest {
                incident: update.incident.clone(),
                action: update.command.action.clone(),
                actor: format!("agency:{agency}"),
                reason: update.command.reason.clone(),
                as_agency: Some(model::AgencyId::new(agency.clone())),
                request_id: Some(update.id.clone()),
            };
            match engine.act(request).await {
                Ok(_) => {
                    feeds.record(&msg.feed, FeedOutcome::Accepted, msg.received_at, None);
                    return Ok(true);
                }
                // Not durable yet: retried, never skipped.
                Err(e @ (EngineError::Store(_) | EngineError::Stopped)) => return Err(e),
                // Refused with nothing recorded (unknown incident, a transition the incident's
                // state does not allow, not this agency's incident, an update id reused):
                // the agency is told why, in a dead letter.
                Err(e) => e.to_string(),
            }
        }
        Ok(Parsed::Readings(readings)) => {
            let sent_at = readings.iter().map(|r| r.time).max();
            let new = store.record_readings(readings).await?;
            engine.readings_stored(readings);
            let outcome = if new == 0 && !readings.is_empty() {
                FeedOutcome::Duplicate
            } else {
                FeedOutcome::Accepted
            };
            feeds.record(&msg.feed, outcome, msg.received_at, sent_at);
            return Ok(true);
        }
        Err(reason) => reason.to_string(),
    };
    dead_letter(msg, refusal, store, engine).await?;
    Ok(false)
}

/// Stores `msg` as a dead letter refused for `refusal`, and counts it in its feed.
async fn dead_letter(
    msg: &Inbound,
    refusal: String,
    store: &Store,
    engine: &Engine,
) -> Result<(), EngineError> {
    let topic = msg.topic();
    tracing::info!(topic, reason = %refusal, "message refused, stored as a dead letter");
    // A citizen's contact details are personal data; the dead letters are not (anyone may read
    // them, as the HTTP path's refused reports, which keep no payload at all). A report refused
    // by the broker's policy is as personal as one refused here.
    let tried = topics::refused_parts(topic).map_or(topic, |(_, tried)| tried);
    let mut payload = if topic == topics::CITIZEN_REPORTS || tried == topics::CITIZEN_REPORTS {
        inbound::citizen_report_for_dead_letter(msg.payload())
    } else {
        msg.payload().to_vec()
    };
    payload.truncate(MAX_DEAD_LETTER_BYTES);
    store
        .record_dead_letter(&NewDeadLetter {
            received_at: msg.received_at,
            channel: "mqtt".into(),
            topic: topic.to_owned(),
            payload,
            reason: refusal,
        })
        .await?;
    engine
        .feeds()
        .record(&msg.feed, FeedOutcome::Rejected, msg.received_at, None);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(sensor: &str, second: i64) -> Vec<model::Reading> {
        ["count", "speed", "occupancy"]
            .iter()
            .map(|m| model::Reading {
                sensor: model::SensorId::new(sensor),
                metric: (*m).into(),
                time: DateTime::<Utc>::UNIX_EPOCH
                    + chrono::Duration::seconds(1_795_000_000 + second),
                value: 1.0,
            })
            .collect()
    }

    #[test]
    fn a_batch_stores_each_reading_once_and_knows_which_pack_brought_it() {
        let a = pack("tc-a", 0);
        let b = pack("tc-b", 0);
        let a_again = pack("tc-a", 0);
        let groups: Vec<&[model::Reading]> = vec![&a, &b, &a_again];
        let (rows, fresh) = first_occurrences(&groups);
        assert_eq!(rows.len(), 6);
        assert_eq!(fresh, [true, true, false]);
        // All new: the repeat inside the batch is the only duplicate.
        assert_eq!(
            outcomes(&groups, &fresh, 6),
            [
                FeedOutcome::Accepted,
                FeedOutcome::Accepted,
                FeedOutcome::Duplicate
            ]
        );
        // All stored before (a redelivered batch): every pack is a duplicate.
        assert_eq!(outcomes(&groups, &fresh, 0), [FeedOutcome::Duplicate; 3]);
    }

    #[test]
    fn an_empty_pack_is_accepted_as_before() {
        let empty: Vec<model::Reading> = Vec::new();
        let groups: Vec<&[model::Reading]> = vec![&empty];
        let (rows, fresh) = first_occurrences(&groups);
        assert!(rows.is_empty());
        assert_eq!(outcomes(&groups, &fresh, 0), [FeedOutcome::Accepted]);
    }
}
