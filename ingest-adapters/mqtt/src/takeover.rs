//! A cluster leader's two extra duties (see [`crate::ClusterIngest`]):
//!
//! - [`run_inbox_drain`]: what the followers accepted and put into the store's inbox goes through
//!   this instance's engine, in order, with the same parsers and the same group commits as a
//!   message from the broker; its rows are deleted after the commit (a row drained twice, after a
//!   crash between the two, answers `Duplicate`).
//! - [`drain_member_sessions`]: a member that went silent (killed, crashed) leaves its persistent
//!   sessions on the broker, and the broker keeps queueing that member's share of the shared
//!   subscriptions there (Mosquitto 2.0 does, measured). The leader connects once with the
//!   member's client ids, unsubscribes its shared filters (no new message goes there) and takes
//!   what was queued and in flight through its engine, then disconnects.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{Event, Packet};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use engine::{Engine, EngineError};
use store::Store;

use crate::ingest::{
    commit_all, connection, durably, subscribed, work, Acker, ClusterIngest, Inbound, IngestStats,
    Origin, Session, MAX_BATCH,
};
use crate::{Backoff, Endpoint};

/// How often the inbox is looked at without a notification (a lost `NOTIFY`, a listener that
/// reconnected).
const INBOX_POLL: Duration = Duration::from_secs(1);

/// Starts draining the inbox on `tracker` until `shutdown`. The engine must lead.
pub fn run_inbox_drain(
    engine: Engine,
    store: Store,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) {
    tracker.spawn(drain_inbox(engine, store, shutdown));
}

async fn drain_inbox(engine: Engine, store: Store, shutdown: CancellationToken) {
    let stats = IngestStats::default();
    let mut listener = None;
    let mut backoff = Backoff::new();
    loop {
        match store.inbox_take(MAX_BATCH as u32).await {
            Ok(rows) if !rows.is_empty() => {
                backoff.reset();
                let n = rows.len() as u64;
                let msgs: Vec<Inbound> = rows
                    .into_iter()
                    .map(|m| Inbound::parse(Origin::Inbox(m), &engine, None))
                    .collect();
                let acker = Acker::Inbox(std::sync::Mutex::default());
                if !commit_all(msgs, &acker, &engine, &store, &stats, &shutdown).await {
                    return;
                }
                let done = match acker {
                    Acker::Inbox(done) => done.into_inner().unwrap_or_default(),
                    Acker::Mqtt(_) => Vec::new(),
                };
                let deleted = durably(&shutdown, || async {
                    Ok::<_, EngineError>(store.inbox_delete(&done).await?)
                })
                .await;
                if deleted.is_none() {
                    return;
                }
                engine.stats().inbox_drained.fetch_add(n, Ordering::Relaxed);
                tracing::debug!(messages = n, "inbox drained");
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot read the inbox");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                continue;
            }
        }
        if listener.is_none() {
            match store.listen(&[store::INBOX_CHANNEL]).await {
                Ok(l) => listener = Some(l),
                Err(e) => tracing::warn!(error = %e, "cannot listen to the inbox; polling it"),
            }
        }
        let notified = async {
            match listener.as_mut() {
                Some(l) => l.recv().await.map(|_| ()),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(INBOX_POLL) => {}
            r = notified => if let Err(e) = r {
                tracing::warn!(error = %e, "inbox listener failed; polling meanwhile");
                listener = None;
            },
        }
    }
}

/// Why a member's sessions could not be drained.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// The broker could not be reached, or dropped the connection (e.g. the member came back
    /// and took its session: it then takes what is queued itself).
    #[error("session {client_id}: {reason}")]
    Connection {
        /// The session's client id.
        client_id: String,
        /// What happened.
        reason: String,
    },
    /// Shutting down.
    #[error("stopped")]
    Stopped,
}

/// How long a drained session must stay quiet (nothing received, everything acknowledged)
/// before it is left.
const QUIET: Duration = Duration::from_secs(2);

/// Most time one session's drain may take.
const DRAIN_LIMIT: Duration = Duration::from_secs(300);

/// Takes over the persistent sessions of a member that went silent: its events and readings
/// sessions (`{base}-ingest`, `{base}-ingest-readings`, as [`crate::run_ingest`] names them from
/// `base_client_id` = the member's `--mqtt-client-id`), each unsubscribed from its shared
/// filters and emptied through `engine` (which must lead). Returns how many messages it took.
pub async fn drain_member_sessions(
    endpoint: &Endpoint,
    base_client_id: &str,
    cluster: &ClusterIngest,
    engine: &Engine,
    store: &Store,
    shutdown: &CancellationToken,
) -> Result<u64, DrainError> {
    let mut taken = 0;
    for (session, client_id) in [
        (Session::Events, format!("{base_client_id}-ingest")),
        (
            Session::Readings,
            format!("{base_client_id}-ingest-readings"),
        ),
    ] {
        taken += drain_session(
            endpoint, session, client_id, cluster, engine, store, shutdown,
        )
        .await?;
    }
    Ok(taken)
}

async fn drain_session(
    endpoint: &Endpoint,
    session: Session,
    client_id: String,
    cluster: &ClusterIngest,
    engine: &Engine,
    store: &Store,
    shutdown: &CancellationToken,
) -> Result<u64, DrainError> {
    let (client, mut eventloop) = connection(endpoint, client_id.clone());
    let (tx, rx) = mpsc::unbounded_channel();
    let stats = Arc::new(IngestStats::default());
    let stop_worker = shutdown.child_token();
    let worker = tokio::spawn(work(
        rx,
        client.clone(),
        engine.clone(),
        store.clone(),
        // A dead member's backlog is taken unmetered: it piled up while nobody took it, and
        // metering it now, all at once, would refuse what its senders sent at their pace.
        None,
        stats.clone(),
        None,
        stop_worker.clone(),
    ));
    let started = tokio::time::Instant::now();
    let failed = |reason: String| DrainError::Connection {
        client_id: client_id.clone(),
        reason,
    };
    let mut received: u64 = 0;
    // Unsubscribe acknowledgements still awaited (`None`: not connected yet).
    let mut unsubscribing: Option<usize> = None;
    let result = loop {
        if started.elapsed() > DRAIN_LIMIT {
            break Err(failed(
                "still receiving after the drain's time limit".into(),
            ));
        }
        let event = tokio::select! {
            () = shutdown.cancelled() => break Err(DrainError::Stopped),
            e = tokio::time::timeout(QUIET, eventloop.poll()) => e,
        };
        match event {
            // Quiet: done once unsubscribed and everything received is acknowledged.
            Err(_) => {
                let done = stats.accepted.load(Ordering::Relaxed)
                    + stats.dead_letters.load(Ordering::Relaxed);
                if unsubscribing == Some(0) && done == received {
                    break Ok(received);
                }
            }
            Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                if !ack.session_present {
                    // The broker has no such session: nothing was queued for it.
                    break Ok(0);
                }
                let filters: Vec<String> = session
                    .subscriptions()
                    .iter()
                    .map(|f| subscribed(Some(cluster), f))
                    .collect();
                unsubscribing = Some(filters.len());
                if let Some(e) = filters
                    .into_iter()
                    .find_map(|f| client.try_unsubscribe(f).err())
                {
                    break Err(failed(format!("unsubscribe not queued: {e}")));
                }
            }
            Ok(Ok(Event::Incoming(Packet::UnsubAck(_)))) => {
                unsubscribing = unsubscribing.map(|n| n.saturating_sub(1));
            }
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                received += 1;
                if tx.send(p).is_err() {
                    break Err(failed("the worker stopped".into()));
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => break Err(failed(e.to_string())),
        }
    };
    // Leave the session as it is now (unsubscribed, emptied) for the member, should it return.
    if result.is_ok() {
        let _ = client.try_disconnect();
        for _ in 0..10 {
            match tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await {
                Ok(Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect))) | Ok(Err(_)) | Err(_) => {
                    break
                }
                Ok(Ok(_)) => {}
            }
        }
    }
    stop_worker.cancel();
    let _ = worker.await;
    if let Ok(n) = &result {
        tracing::info!(client_id, messages = n, "a silent member's session drained");
    }
    result
}
