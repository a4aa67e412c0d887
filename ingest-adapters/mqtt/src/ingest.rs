//! The input side: citizen reports and utility events, QoS 1, acknowledged after commit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Packet, Publish, QoS};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use engine::feeds::FeedOutcome;
use engine::{Engine, EngineError, IngestOutcome};
use protocol::{inbound, topics, traffic, WireError};
use store::{NewDeadLetter, Store};

use crate::{Backoff, Endpoint};

/// How the ingest client connects.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// The broker.
    pub endpoint: Endpoint,
    /// Stable client id: the broker keeps this session's subscriptions and queued messages
    /// while Dispecer is down.
    pub client_id: String,
}

/// Counters of the input side.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// Messages acknowledged after their event was committed (or recognised as a redelivery).
    pub accepted: AtomicU64,
    /// Messages refused and stored as dead letters.
    pub dead_letters: AtomicU64,
}

/// Messages handed from the event loop to the worker. The event loop waits when this is full,
/// which stops reading from the socket: the broker then holds the messages (QoS 1 in flight), so
/// nothing is lost. It never fills in practice: the broker sends at most its in-flight window
/// of unacknowledged messages, far fewer than this.
const HANDOFF: usize = 1024;

/// Most bytes of a refused payload kept in its dead letter (the reason says what was wrong).
const MAX_DEAD_LETTER_BYTES: usize = 64 * 1024;

/// Starts the ingest client on `tracker`. `ready` turns true once the subscriptions are
/// acknowledged by the broker (and again after every reconnect).
pub fn run_ingest(
    options: IngestOptions,
    engine: Engine,
    store: Store,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> (watch::Receiver<bool>, Arc<IngestStats>) {
    let mut mqtt = MqttOptions::new(
        options.client_id,
        options.endpoint.host.clone(),
        options.endpoint.port,
    );
    mqtt.set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(15))
        .set_max_packet_size(inbound::MAX_PAYLOAD + 4096, inbound::MAX_PAYLOAD + 4096);
    let (client, mut eventloop) = AsyncClient::new(mqtt, 64);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network.set_connection_timeout(5);
    eventloop.set_network_options(network);
    let (ready_tx, ready_rx) = watch::channel(false);
    let (tx, rx) = mpsc::channel(HANDOFF);
    let stats = Arc::new(IngestStats::default());
    tracker.spawn(poll(
        eventloop,
        client.clone(),
        tx,
        ready_tx,
        shutdown.clone(),
    ));
    tracker.spawn(work(rx, client, engine, store, stats.clone(), shutdown));
    (ready_rx, stats)
}

async fn poll(
    mut eventloop: EventLoop,
    client: AsyncClient,
    tx: mpsc::Sender<Publish>,
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
                    session_present = ack.session_present,
                    "mqtt ingest connected"
                );
                // Subscribe on every connection: a broker that lost our session (restart without
                // persistence) would otherwise deliver nothing, silently.
                let subs = [
                    topics::CITIZEN_REPORTS,
                    topics::UTILITY_EVENTS_FILTER,
                    topics::TRAFFIC_FILTER,
                ]
                .map(|t| rumqttc::SubscribeFilter::new(t.to_owned(), QoS::AtLeastOnce));
                if let Err(e) = client.try_subscribe_many(subs) {
                    tracing::error!(error = %e, "mqtt subscribe could not be queued");
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
                if tx.send(p).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                ready.send_replace(false);
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "mqtt ingest connection lost");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    let _ = client.try_disconnect();
}

enum Handled {
    Accepted,
    DeadLetter,
}

async fn work(
    mut rx: mpsc::Receiver<Publish>,
    client: AsyncClient,
    engine: Engine,
    store: Store,
    stats: Arc<IngestStats>,
    shutdown: CancellationToken,
) {
    while let Some(publish) =
        tokio::select! { () = shutdown.cancelled() => None, p = rx.recv() => p }
    {
        let mut backoff = Backoff::new();
        // Retry the same message until it is durable: acknowledging out of order or skipping it
        // would lose it.
        let handled = loop {
            match handle(&publish, &engine, &store).await {
                Ok(h) => break Some(h),
                Err(EngineError::Stopped) => break None,
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "event not durable yet; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => break None,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        };
        let Some(handled) = handled else { break };
        match handled {
            Handled::Accepted => stats.accepted.fetch_add(1, Ordering::Relaxed),
            Handled::DeadLetter => stats.dead_letters.fetch_add(1, Ordering::Relaxed),
        };
        if publish.qos != QoS::AtMostOnce {
            if let Err(e) = client.ack(&publish).await {
                // The broker will redeliver; the engine recognises the event.
                tracing::warn!(error = %e, "mqtt ack not sent");
            }
        }
    }
}

async fn handle(publish: &Publish, engine: &Engine, store: &Store) -> Result<Handled, EngineError> {
    let received_at = Utc::now();
    let topic = publish.topic.as_str();
    let city = engine.city().city();
    let (feed, parsed) = if topic == topics::CITIZEN_REPORTS {
        (
            "citizen".to_owned(),
            inbound::citizen_report(&publish.payload, city, received_at).map(Parsed::Event),
        )
    } else if let Some(operator) = topics::utility_operator(topic) {
        (
            format!("utility:{operator}"),
            // CAP 1.2 XML or a GeoJSON Feature, told apart by the first character.
            if publish.payload.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<') {
                inbound::cap_event(&publish.payload, operator, city, received_at).map(Parsed::Event)
            } else {
                inbound::utility_event(&publish.payload, operator, city, received_at)
                    .map(Parsed::Event)
            },
        )
    } else if let Some(sensor) = topics::traffic_sensor(topic) {
        (
            format!("traffic:{sensor}"),
            traffic::readings(&publish.payload, sensor, city, received_at).map(Parsed::Readings),
        )
    } else {
        (
            "unknown".to_owned(),
            Err(WireError::UnknownTopic(topic.to_owned())),
        )
    };
    let feeds = engine.feeds();
    let refusal = match parsed {
        Ok(Parsed::Event(event)) => {
            let sent_at = Some(event.occurred_at);
            match engine.ingest(event).await {
                Ok(outcome) => {
                    let outcome = match outcome {
                        IngestOutcome::Duplicate => FeedOutcome::Duplicate,
                        _ => FeedOutcome::Accepted,
                    };
                    feeds.record(&feed, outcome, received_at, sent_at);
                    return Ok(Handled::Accepted);
                }
                // The engine will never take it: tell the sender (a dead letter), move on.
                Err(EngineError::Refused(reason)) => reason,
                Err(e @ EngineError::UnknownCategory(_)) => e.to_string(),
                Err(e) => return Err(e),
            }
        }
        Ok(Parsed::Readings(readings)) => {
            let sent_at = readings.iter().map(|r| r.time).max();
            let new = store.record_readings(&readings).await?;
            let outcome = if new == 0 && !readings.is_empty() {
                FeedOutcome::Duplicate
            } else {
                FeedOutcome::Accepted
            };
            feeds.record(&feed, outcome, received_at, sent_at);
            return Ok(Handled::Accepted);
        }
        Err(reason) => reason.to_string(),
    };
    tracing::info!(topic, reason = %refusal, "message refused, stored as a dead letter");
    let mut payload = publish.payload.to_vec();
    payload.truncate(MAX_DEAD_LETTER_BYTES);
    store
        .record_dead_letter(&NewDeadLetter {
            received_at,
            channel: "mqtt".into(),
            topic: topic.to_owned(),
            payload,
            reason: refusal,
        })
        .await?;
    feeds.record(&feed, FeedOutcome::Rejected, received_at, None);
    Ok(Handled::DeadLetter)
}

enum Parsed {
    Event(model::Event),
    Readings(Vec<model::Reading>),
}
