//! Cluster mode (PostgreSQL only): leader election, membership, the followers' inbox and the
//! change notifications that keep every instance's console live (migration 0013).
//!
//! - The leader is whoever holds the session-level advisory lock [`LEADER_LOCK`] on its
//!   [`ClusterConnection`], a connection taken out of the pool for the process's life: PostgreSQL
//!   frees the lock when that connection ends (the process died, the network dropped).
//! - A follower puts what it accepted from the broker into `inbox` ([`Store::inbox_push`], one
//!   transaction, `NOTIFY dispecer_inbox` on commit) before it acknowledges; the leader takes it
//!   in order ([`Store::inbox_take`]) and deletes it after its own commit ([`Store::inbox_delete`]).
//! - After each commit the leader sends `NOTIFY dispecer_changes` ([`Store::notify`]); the others
//!   listen ([`Store::listen`]).
//! - Fencing (migration 0015): right after it takes the lock, a new leader increments the
//!   leadership term in `cluster_leader` ([`ClusterConnection::take_term`]) and gives it to its
//!   store ([`Store::fence`]); from then on every transaction by which its engine commits
//!   (`record_batch`, `record_transition[s]`, `record_transition_and_warning`,
//!   `record_warning`, [`Store::inbox_delete`]) first reads the term `FOR SHARE` and aborts with
//!   [`StoreError::Fenced`] unless it is still its own; [`Store::fenced`] resolves then. An old
//!   leader whose lock connection dropped while the database stayed reachable thus commits
//!   nothing once its successor's term began, even before its own lock check notices.
//!
//! - Per-feed counters (migration 0016): each instance writes its own counters
//!   ([`Store::save_feed_counters`], one row per instance and feed); any instance reads every
//!   instance's ([`Store::feed_counters`]) to show the cluster's.
//!
//! Every function answers [`StoreError::NotPostgres`] on SQLite.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnection, PgListener, PgPool};
use sqlx::{Connection, Row};
use tokio::sync::watch;

use crate::rows::stored_time;
use crate::{Pool, Store, StoreError};

/// The advisory lock whose holder is the leader (any constant; "dispecer" in ASCII).
pub const LEADER_LOCK: i64 = 0x6469_7370_6563_6572;

/// The channel of the inbox's notifications (payload: the pushing instance's id).
pub const INBOX_CHANNEL: &str = "dispecer_inbox";

/// The channel of the leader's change notifications (payload: see the `cluster` crate).
pub const CHANGES_CHANNEL: &str = "dispecer_changes";

/// An instance of a cluster, as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// `--instance-id`.
    pub instance_id: String,
    /// The base of its MQTT ingest sessions' client ids.
    pub mqtt_client_id: String,
    /// Its HTTP API's base URL, as the other instances reach it.
    pub http_url: String,
    /// When it last said it was alive.
    pub seen_at: DateTime<Utc>,
    /// Since when it leads, if it does.
    pub leader_since: Option<DateTime<Utc>>,
    /// When the leader last drained its broker sessions after it went silent.
    pub drained_at: Option<DateTime<Utc>>,
}

/// A message a follower accepted, waiting in the inbox for the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxMessage {
    /// Its row (the order of arrival in the inbox); `0` for one not yet stored.
    pub id: i64,
    /// The MQTT topic it came on.
    pub topic: String,
    /// Its payload, as received.
    pub payload: Vec<u8>,
    /// When the follower received it.
    pub received_at: DateTime<Utc>,
}

/// One instance's counters of one feed (see `engine::feeds`), as kept in `feed_counters`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedRow {
    /// `--instance-id`.
    pub instance_id: String,
    /// The feed's name (`citizen`, `utility:{operator}`, …).
    pub feed: String,
    /// Messages received.
    pub received: u64,
    /// Messages taken.
    pub accepted: u64,
    /// Messages refused.
    pub rejected: u64,
    /// Redeliveries recognised.
    pub duplicates: u64,
    /// When the last message arrived.
    pub last_seen: Option<DateTime<Utc>>,
    /// Seconds between the sender's time and arrival, for the last message that had one.
    pub last_lag_s: Option<f64>,
}

/// A notification on a channel this store listens to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The channel.
    pub channel: String,
    /// Its payload.
    pub payload: String,
}

/// The leadership term a leading instance's store checks its engine's writes against (`0`:
/// none, outside cluster mode or not leading), and whether a check found it stale.
#[derive(Debug)]
pub(crate) struct Fence {
    term: AtomicI64,
    /// `Some(current)` once a write was fenced.
    lost: watch::Sender<Option<i64>>,
}

impl Default for Fence {
    fn default() -> Self {
        Fence {
            term: AtomicI64::new(0),
            lost: watch::Sender::new(None),
        }
    }
}

impl Fence {
    /// The term to check, if any.
    pub(crate) fn term(&self) -> Option<i64> {
        match self.term.load(Ordering::Acquire) {
            0 => None,
            term => Some(term),
        }
    }

    /// A write of term `term` found the database in term `current`.
    pub(crate) fn lost(&self, term: i64, current: i64) {
        if self.lost.send_replace(Some(current)).is_none() {
            tracing::error!(
                term,
                current,
                "fenced: another instance leads now; this instance's writes are refused"
            );
        }
    }
}

/// A connection of its own, out of the pool for the process's life: it holds the leader lock
/// when this instance leads, and says every second that the instance is alive.
#[derive(Debug)]
pub struct ClusterConnection {
    conn: PgConnection,
    leading: bool,
}

impl ClusterConnection {
    /// Tries to take the leader lock (never waits); `true` when this instance leads now (also
    /// when it led already).
    pub async fn try_lead(&mut self) -> Result<bool, StoreError> {
        if self.leading {
            return Ok(true);
        }
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LEADER_LOCK)
            .fetch_one(&mut self.conn)
            .await?;
        self.leading = got;
        Ok(got)
    }

    /// Begins a new leadership term (call it right after [`ClusterConnection::try_lead`] said
    /// this instance leads): increments `cluster_leader.term` in a transaction of its own, which
    /// waits for the old leader's transactions still open, and returns the new term (give it to
    /// the store with [`Store::fence`]).
    pub async fn take_term(
        &mut self,
        instance: &str,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        if !self.leading {
            return Err(StoreError::corrupt(
                "a leadership term taken without the leader lock",
            ));
        }
        let mut tx = self.conn.begin().await?;
        // An old leader's transaction that holds the row longer than this is stuck: give up
        // (the caller lets the lock go and tries again) rather than wait for ever.
        sqlx::query("SET LOCAL lock_timeout = '10s'")
            .execute(&mut *tx)
            .await?;
        let term: i64 = sqlx::query_scalar(
            "UPDATE cluster_leader SET term = term + 1, instance_id = $1, since = $2 \
             WHERE id = 1 RETURNING term",
        )
        .bind(instance)
        .bind(stored_time(at))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(term)
    }

    /// Refreshes `instance`'s `seen_at` over this connection, and, when this instance leads,
    /// checks that this connection still holds the lock. An error means the connection (and with
    /// it the lock) may be gone: a leader must stop leading at once.
    pub async fn heartbeat(&mut self, instance: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE cluster_members SET seen_at = $2 WHERE instance_id = $1")
            .bind(instance)
            .bind(stored_time(at))
            .execute(&mut self.conn)
            .await?;
        if self.leading {
            let held: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
                 AND pid = pg_backend_pid() AND granted \
                 AND ((classid::bigint << 32) | objid::bigint) = $1)",
            )
            .bind(LEADER_LOCK)
            .fetch_one(&mut self.conn)
            .await?;
            if !held {
                return Err(StoreError::corrupt("the leader lock is no longer held"));
            }
        }
        Ok(())
    }

    /// Closes the connection (releasing the lock, if held).
    pub async fn close(self) {
        let _ = self.conn.close().await;
    }
}

impl Store {
    fn postgres(&self) -> Result<&PgPool, StoreError> {
        match &self.pool {
            Pool::Postgres(pool) => Ok(pool),
            Pool::Sqlite(_) => Err(StoreError::NotPostgres),
        }
    }

    /// From now on, the engine's writes through this store (and its clones) check that the
    /// leadership term is still `term` (see the module's documentation). [`StoreError::NotPostgres`]
    /// on SQLite; a term below 1 is refused.
    pub fn fence(&self, term: i64) -> Result<(), StoreError> {
        self.postgres()?;
        if term < 1 {
            return Err(StoreError::corrupt(format!("leadership term {term}")));
        }
        self.fence.term.store(term, Ordering::Release);
        Ok(())
    }

    /// Resolves once a write of this store was fenced (another instance leads now), with the
    /// database's term; never resolves outside cluster mode.
    pub async fn fenced(&self) -> i64 {
        let mut lost = self.fence.lost.subscribe();
        loop {
            if let Some(current) = *lost.borrow_and_update() {
                return current;
            }
            if lost.changed().await.is_err() {
                // The sender lives as long as this store: not reached.
                std::future::pending::<()>().await;
            }
        }
    }

    /// A connection of the cluster's own (see [`ClusterConnection`]).
    pub async fn cluster_connection(&self) -> Result<ClusterConnection, StoreError> {
        let conn = self.postgres()?.acquire().await?.detach();
        Ok(ClusterConnection {
            conn,
            leading: false,
        })
    }

    /// Registers (or re-registers, after a restart) an instance: alive now, not leading, not
    /// drained.
    pub async fn register_member(
        &self,
        instance: &str,
        mqtt_client_id: &str,
        http_url: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let at = stored_time(at);
        sqlx::query(
            "INSERT INTO cluster_members (instance_id, mqtt_client_id, http_url, started_at, \
             seen_at) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (instance_id) DO UPDATE SET mqtt_client_id = excluded.mqtt_client_id, \
             http_url = excluded.http_url, started_at = excluded.started_at, \
             seen_at = excluded.seen_at, leader_since = NULL, drained_at = NULL",
        )
        .bind(instance)
        .bind(mqtt_client_id)
        .bind(http_url)
        .bind(at)
        .execute(self.postgres()?)
        .await?;
        Ok(())
    }

    /// Marks `instance` as the leader since `at` (and no other).
    pub async fn set_leader(&self, instance: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE cluster_members SET leader_since = \
             CASE WHEN instance_id = $1 THEN $2 ELSE NULL END",
        )
        .bind(instance)
        .bind(stored_time(at))
        .execute(self.postgres()?)
        .await?;
        Ok(())
    }

    /// Every registered instance.
    pub async fn members(&self) -> Result<Vec<Member>, StoreError> {
        let rows = sqlx::query(
            "SELECT instance_id, mqtt_client_id, http_url, seen_at, leader_since, drained_at \
             FROM cluster_members ORDER BY instance_id",
        )
        .fetch_all(self.postgres()?)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Member {
                    instance_id: r.try_get("instance_id")?,
                    mqtt_client_id: r.try_get("mqtt_client_id")?,
                    http_url: r.try_get("http_url")?,
                    seen_at: r.try_get("seen_at")?,
                    leader_since: r.try_get("leader_since")?,
                    drained_at: r.try_get("drained_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Notes that the leader drained `instance`'s broker sessions at `at`.
    pub async fn member_drained(
        &self,
        instance: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE cluster_members SET drained_at = $2 WHERE instance_id = $1")
            .bind(instance)
            .bind(stored_time(at))
            .execute(self.postgres()?)
            .await?;
        Ok(())
    }

    /// Puts `messages` into the inbox in one transaction (a message already waiting there, by
    /// its topic and payload, is not added twice) and notifies [`INBOX_CHANNEL`] on commit.
    /// Returns once committed: only then may the follower acknowledge them.
    pub async fn inbox_push(
        &self,
        instance: &str,
        messages: &[InboxMessage],
    ) -> Result<(), StoreError> {
        let result = self.inbox_push_once(instance, messages).await;
        self.writes.note(&result);
        result
    }

    async fn inbox_push_once(
        &self,
        instance: &str,
        messages: &[InboxMessage],
    ) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut keys = Vec::with_capacity(messages.len());
        let mut topics = Vec::with_capacity(messages.len());
        let mut payloads = Vec::with_capacity(messages.len());
        let mut times = Vec::with_capacity(messages.len());
        for m in messages {
            let mut keyed = m.topic.as_bytes().to_vec();
            keyed.push(0);
            keyed.extend_from_slice(&m.payload);
            keys.push(hash_bytes(&keyed));
            topics.push(m.topic.clone());
            payloads.push(m.payload.clone());
            times.push(stored_time(m.received_at));
        }
        let mut tx = self.postgres()?.begin().await?;
        sqlx::query(
            "INSERT INTO inbox (key, topic, payload, received_at, instance_id) \
             SELECT k, t, p, r, $5 FROM unnest($1::text[], $2::text[], $3::bytea[], \
             $4::timestamptz[]) WITH ORDINALITY AS m(k, t, p, r, n) ORDER BY n \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(&keys)
        .bind(&topics)
        .bind(&payloads)
        .bind(&times)
        .bind(instance)
        .execute(&mut *tx)
        .await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(INBOX_CHANNEL)
            .bind(instance)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The oldest `limit` messages of the inbox, in the order they came in.
    pub async fn inbox_take(&self, limit: u32) -> Result<Vec<InboxMessage>, StoreError> {
        let rows =
            sqlx::query("SELECT id, topic, payload, received_at FROM inbox ORDER BY id LIMIT $1")
                .bind(i64::from(limit))
                .fetch_all(self.postgres()?)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(InboxMessage {
                    id: r.try_get("id")?,
                    topic: r.try_get("topic")?,
                    payload: r.try_get("payload")?,
                    received_at: r.try_get("received_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Deletes drained inbox rows (after what they carried was committed); fenced like the
    /// engine's writes (a fenced leader leaves them to its successor).
    pub async fn inbox_delete(&self, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.postgres()?.begin().await?;
        check_fence!(self, &mut *tx);
        sqlx::query("DELETE FROM inbox WHERE id = ANY($1)")
            .bind(ids)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Writes `rows` (one instance's counters; each replaces the row of its instance and feed)
    /// in one statement.
    pub async fn save_feed_counters(&self, rows: &[FeedRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let count = |f: fn(&FeedRow) -> u64| -> Vec<i64> {
            rows.iter()
                .map(|r| i64::try_from(f(r)).unwrap_or(i64::MAX))
                .collect()
        };
        let instances: Vec<&str> = rows.iter().map(|r| r.instance_id.as_str()).collect();
        let feeds: Vec<&str> = rows.iter().map(|r| r.feed.as_str()).collect();
        let seen: Vec<Option<DateTime<Utc>>> =
            rows.iter().map(|r| r.last_seen.map(stored_time)).collect();
        let lags: Vec<Option<f64>> = rows.iter().map(|r| r.last_lag_s).collect();
        sqlx::query(
            "INSERT INTO feed_counters (instance_id, feed, received, accepted, rejected, \
             duplicates, last_seen, last_lag_s) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], \
             $5::bigint[], $6::bigint[], $7::timestamptz[], $8::float8[]) \
             ON CONFLICT (instance_id, feed) DO UPDATE SET received = excluded.received, \
             accepted = excluded.accepted, rejected = excluded.rejected, \
             duplicates = excluded.duplicates, last_seen = excluded.last_seen, \
             last_lag_s = excluded.last_lag_s",
        )
        .bind(&instances)
        .bind(&feeds)
        .bind(count(|r| r.received))
        .bind(count(|r| r.accepted))
        .bind(count(|r| r.rejected))
        .bind(count(|r| r.duplicates))
        .bind(&seen)
        .bind(&lags)
        .execute(self.postgres()?)
        .await?;
        Ok(())
    }

    /// Every instance's counters of every feed, by instance and feed.
    pub async fn feed_counters(&self) -> Result<Vec<FeedRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT instance_id, feed, received, accepted, rejected, duplicates, last_seen, \
             last_lag_s FROM feed_counters ORDER BY instance_id, feed",
        )
        .fetch_all(self.postgres()?)
        .await?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        rows.iter()
            .map(|r| {
                Ok(FeedRow {
                    instance_id: r.try_get("instance_id")?,
                    feed: r.try_get("feed")?,
                    received: count(r.try_get("received")?),
                    accepted: count(r.try_get("accepted")?),
                    rejected: count(r.try_get("rejected")?),
                    duplicates: count(r.try_get("duplicates")?),
                    last_seen: r.try_get("last_seen")?,
                    last_lag_s: r.try_get("last_lag_s")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Sends `payload` on `channel` (PostgreSQL's `NOTIFY`; at most 8000 bytes).
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(self.postgres()?)
            .await?;
        Ok(())
    }

    /// Listens to `channels` on a connection of its own.
    pub async fn listen(&self, channels: &[&str]) -> Result<Listener, StoreError> {
        let mut listener = PgListener::connect_with(self.postgres()?).await?;
        listener.listen_all(channels.iter().copied()).await?;
        Ok(Listener { listener })
    }
}

/// Notifications of the channels given to [`Store::listen`].
#[derive(Debug)]
pub struct Listener {
    listener: PgListener,
}

impl Listener {
    /// The next notification; `Ok(None)` when the connection was lost (notifications sent
    /// meanwhile are lost too: catch up from the tables), reconnecting at the next call.
    pub async fn recv(&mut self) -> Result<Option<Notification>, StoreError> {
        Ok(self.listener.try_recv().await?.map(|n| Notification {
            channel: n.channel().to_owned(),
            payload: n.payload().to_owned(),
        }))
    }
}

fn hash_bytes(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
