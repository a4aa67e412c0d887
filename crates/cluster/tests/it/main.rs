//! The cluster crate against a real PostgreSQL (`DISPECER_TEST_PG_URL`, which
//! `scripts/test.sh` sets; each test in a database of its own, dropped at the end): a leader's
//! engine with [`cluster::publish_changes`], a follower's standby engine with
//! [`cluster::follow_changes`], and what the follower's listeners (its WebSocket clients) hear.

#![allow(clippy::unwrap_used)] // tests: a failure should stop the test loudly

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use engine::{Engine, EngineOptions, IncidentUpdate, IngestOutcome};
use model::{CityIndex, Event, EventKind, IncidentId, Source};
use sqlx::{Connection, PgConnection};
use store::Store;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Runs `test` with the URL of a fresh database, then drops the database, whatever happened.
async fn in_fresh_database<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let admin = std::env::var("DISPECER_TEST_PG_URL")
        .expect("DISPECER_TEST_PG_URL: run scripts/test.sh, or set it to an admin URL");
    let name = format!("dispecer_test_{}", uuid::Uuid::now_v7().simple());
    let mut conn = PgConnection::connect(&admin)
        .await
        .expect("the test server");
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .expect("create the test database");
    let (base, _) = admin
        .rsplit_once('/')
        .expect("an admin URL with a database");
    let outcome = tokio::spawn(test(format!("{base}/{name}?timescaledb=off"))).await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .expect("drop the test database");
    let _ = conn.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn brasov() -> Arc<CityIndex> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cities/brasov");
    Arc::new(CityIndex::new(city::load(&dir).expect("Brașov loads")))
}

/// The next update of `id` that `pred` accepts, within 10 s.
async fn next_of(
    updates: &mut broadcast::Receiver<IncidentUpdate>,
    id: &IncidentId,
    pred: impl Fn(&IncidentUpdate) -> bool,
) -> IncidentUpdate {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let u = updates.recv().await.expect("updates");
            if &u.incident.id == id && pred(&u) {
                return u;
            }
        }
    })
    .await
    .expect("the update within 10 s")
}

/// The engines' options here: deadlines checked only when asked (the tests move the clock).
fn options() -> EngineOptions {
    EngineOptions {
        wall_clock: false,
        ..EngineOptions::default()
    }
}

/// The leader's and the follower's stores on `url`, and the leader's engine.
async fn leader_on(
    url: &str,
    city: &Arc<CityIndex>,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> (Store, Store, Engine) {
    let on_leader = Store::connect(url).await.expect("leader's store");
    let on_follower = Store::connect(url).await.expect("follower's store");
    let leader = Engine::start_with(
        options(),
        city.clone(),
        on_leader.clone(),
        None,
        shutdown.child_token(),
        tracker,
    )
    .await
    .expect("the leader's engine");
    (on_leader, on_follower, leader)
}

/// A citizen's pothole report `id`, now, that opens an incident on `leader`.
async fn open_pothole(leader: &Engine, id: &str) -> IncidentId {
    let at = Utc::now();
    let report = Event {
        id: id.into(),
        subject: None,
        source: Source::Citizen,
        kind: EventKind::Report,
        category: "pothole".into(),
        location: geo::Point::new(25.5887, 45.6419),
        area: None,
        description: Some("Groapă".into()),
        occurred_at: at,
        received_at: at,
        payload: "{}".into(),
        contact: None,
    };
    let IngestOutcome::Opened(id) = leader.ingest(report).await.expect("ingest") else {
        panic!("a new incident");
    };
    id
}

/// An incident that misses its acknowledgement deadline on the leader escalates; the follower's
/// listeners get the change with the same escalation mark as the leader's.
#[tokio::test]
async fn a_followers_clients_see_the_escalation_mark() {
    in_fresh_database(|url| async move {
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let city = brasov();
        let (on_leader, on_follower, leader) = leader_on(&url, &city, &shutdown, &tracker).await;
        let follower = Engine::standby(
            options(),
            city,
            on_follower.clone(),
            shutdown.child_token(),
            &tracker,
        );
        let mut leaders_clients = leader.subscribe();
        let mut followers_clients = follower.subscribe();
        tracker.spawn(cluster::follow_changes(
            follower.clone(),
            on_follower.clone(),
            shutdown.child_token(),
        ));
        tracker.spawn(cluster::publish_changes(
            leader.clone(),
            on_leader.clone(),
            shutdown.child_token(),
        ));

        let id = open_pothole(&leader, "citizen:escalates").await;
        // The follower hears of it (from a notification, or from its catch-up as it starts
        // listening): it listens from now on.
        let opened = next_of(&mut followers_clients, &id, |_| true).await;
        assert!(opened.escalation.is_none(), "an opening is no escalation");
        let ack_due = opened
            .incident
            .sla
            .ack_due
            .expect("an acknowledgement deadline");

        // The acknowledgement deadline passes on the leader.
        leader
            .escalate_due(ack_due + chrono::Duration::seconds(1))
            .await
            .expect("escalate");
        let marked = next_of(&mut leaders_clients, &id, |u| u.escalation.is_some()).await;
        let followed = next_of(&mut followers_clients, &id, |u| u.escalation.is_some()).await;
        assert_eq!(followed.escalation, marked.escalation);
        assert_eq!(followed.kind, marked.kind);
        assert_eq!(followed.incident.severity, marked.incident.severity);
        assert_eq!(
            followed.incident.sla.ack_escalated_at,
            marked.incident.sla.ack_escalated_at
        );

        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
        on_leader.close().await;
        on_follower.close().await;
    })
    .await;
}

/// A follower that was not listening when the leader escalated (no notification reached it: here
/// the leader sends none) marks the escalation all the same as it catches up from the store, with
/// the leader's mark, read from the incident's timeline.
#[tokio::test]
async fn a_follower_catching_up_shows_an_escalation_it_was_not_told_of() {
    in_fresh_database(|url| async move {
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let city = brasov();
        let (on_leader, on_follower, leader) = leader_on(&url, &city, &shutdown, &tracker).await;
        let mut leaders_clients = leader.subscribe();
        let id = open_pothole(&leader, "citizen:escalated-unheard").await;
        let opened = next_of(&mut leaders_clients, &id, |_| true).await;
        let ack_due = opened.incident.sla.ack_due.expect("a deadline");
        leader
            .escalate_due(ack_due + chrono::Duration::seconds(1))
            .await
            .expect("escalate");
        let marked = next_of(&mut leaders_clients, &id, |u| u.escalation.is_some()).await;

        // The follower starts listening only now, and catches up.
        let follower = Engine::standby(
            options(),
            city,
            on_follower.clone(),
            shutdown.child_token(),
            &tracker,
        );
        let mut followers_clients = follower.subscribe();
        tracker.spawn(cluster::follow_changes(
            follower.clone(),
            on_follower.clone(),
            shutdown.child_token(),
        ));
        let followed = next_of(&mut followers_clients, &id, |_| true).await;
        assert_eq!(followed.escalation, marked.escalation);
        assert_eq!(followed.incident.severity, marked.incident.severity);

        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
        on_leader.close().await;
        on_follower.close().await;
    })
    .await;
}
