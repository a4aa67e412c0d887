//! Cluster mode's wiring (`--instance-id`): an instance starts as a follower (a standby engine,
//! the leader's changes followed for its console, its share of the input put into the inbox),
//! takes the lead when it can, and then does what a single instance does, plus draining the
//! inbox, notifying the followers of every change and taking over the broker sessions of
//! members that went silent. A leader exits with status 75 as soon as it cannot confirm its lock
//! or one of its engine's writes is fenced (another instance took a newer leadership term). See
//! the `cluster` crate and ARCHITECTURE.md.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use cluster::{ClusterError, Membership};
use engine::{Engine, IncidentUpdate};
use mqtt::{ClusterIngest, Endpoint};
use store::Store;

/// How long a member must be silent before the leader takes over its broker sessions (several
/// heartbeats, so that a slow instance is not mistaken for a dead one).
const SILENT_FOR: Duration = Duration::from_secs(10);

/// How often the leader looks for silent members.
const REAP_EVERY: Duration = Duration::from_secs(5);

/// What the instance needs to lead.
pub(crate) struct Duties {
    pub engine: Engine,
    pub store: Store,
    pub endpoint: Endpoint,
    /// `{--mqtt-client-id}-{instance}`.
    pub client_base: String,
    pub cluster: ClusterIngest,
    pub http_url: String,
    pub outbox_tx: mpsc::Sender<IncidentUpdate>,
    pub outbox_rx: mpsc::Receiver<IncidentUpdate>,
    pub leader: watch::Sender<Option<String>>,
}

/// The instance's life in the cluster: follower until it takes the lead, then leader until it
/// stops. A leader that cannot confirm it still holds the lock, or whose write was fenced,
/// exits the process at once (another instance may be leading already; deciding on would split
/// the truth).
pub(crate) async fn run(
    mut membership: Membership,
    duties: Duties,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let Duties {
        engine,
        store,
        endpoint,
        client_base,
        cluster,
        http_url,
        outbox_tx,
        outbox_rx,
        leader,
    } = duties;
    tracker.spawn(cluster::persist_feeds(
        engine.clone(),
        store.clone(),
        membership.instance().to_owned(),
        shutdown.child_token(),
    ));
    let following = shutdown.child_token();
    tracker.spawn(cluster::follow_changes(
        engine.clone(),
        store.clone(),
        following.clone(),
    ));
    tracing::info!(
        instance = membership.instance(),
        "cluster: following until this instance can lead"
    );
    let led = membership
        .lead(&shutdown, |url| {
            leader.send_replace(url);
        })
        .await;
    if led.is_err() {
        membership.leave().await;
        return;
    }
    // The restart path: the open incidents from the store, on the same engine handle.
    let mut backoff = Duration::from_millis(100);
    loop {
        match engine.promote(Some(outbox_tx.clone())).await {
            Ok(()) => break,
            Err(engine::EngineError::Stopped) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot take the lead yet; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    following.cancel();
    leader.send_replace(Some(http_url));
    if let Err(e) = crate::app::start_leader_duties(
        &engine,
        &store,
        &endpoint,
        &client_base,
        outbox_rx,
        &shutdown,
        &tracker,
    )
    .await
    {
        tracing::error!(error = %e, "cluster: the leader's duties could not start; stopping");
        std::process::exit(1);
    }
    mqtt::run_inbox_drain(
        engine.clone(),
        store.clone(),
        shutdown.child_token(),
        &tracker,
    );
    tracker.spawn(cluster::publish_changes(
        engine.clone(),
        store.clone(),
        shutdown.child_token(),
    ));
    tracker.spawn(reap(
        engine,
        store.clone(),
        endpoint,
        cluster,
        membership.instance().to_owned(),
        shutdown.child_token(),
    ));
    // Whichever comes first: the lock check fails, or a write of the engine was fenced (another
    // instance took a newer term while this one's lock connection had dropped unnoticed).
    let ended = tokio::select! {
        e = membership.hold(&shutdown) => Some(e),
        current = store.fenced() => {
            tracing::error!(current_term = current, "cluster: fenced, another instance leads; exiting at once");
            None
        }
    };
    match ended {
        Some(ClusterError::Stopped) => membership.leave().await,
        Some(e) => {
            tracing::error!(error = %e, "cluster: this instance may no longer lead; exiting at once");
            std::process::exit(75);
        }
        None => std::process::exit(75),
    }
}

/// The leader's watch over the other members: the broker sessions of one that went silent are
/// taken over (see `mqtt::drain_member_sessions`).
async fn reap(
    engine: Engine,
    store: Store,
    endpoint: Endpoint,
    cluster: ClusterIngest,
    me: String,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(REAP_EVERY) => {}
        }
        let members = match store.members().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the cluster members");
                continue;
            }
        };
        let now = Utc::now();
        for member in cluster::silent_members(&members, &me, now, SILENT_FOR) {
            tracing::info!(instance = %member.instance_id, seen_at = %member.seen_at, "cluster: a member went silent; taking over its broker sessions");
            match mqtt::drain_member_sessions(
                &endpoint,
                &member.mqtt_client_id,
                &cluster,
                &engine,
                &store,
                &shutdown,
            )
            .await
            {
                Ok(n) => {
                    tracing::info!(instance = %member.instance_id, messages = n, "cluster: a silent member's sessions drained");
                    if let Err(e) = store.member_drained(&member.instance_id, now).await {
                        tracing::warn!(error = %e, "cannot note a drained member");
                    }
                }
                Err(mqtt::DrainError::Stopped) => return,
                Err(e) => {
                    tracing::warn!(instance = %member.instance_id, error = %e, "cluster: cannot drain a silent member's sessions; trying again");
                }
            }
        }
    }
}
