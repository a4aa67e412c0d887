//! Durable storage of events and incidents: SQLite (embedded default), PostgreSQL and TimescaleDB
//! through sqlx.
//!
//! One [`Store`] API over three backends, chosen by the URL given to [`Store::connect`]:
//!
//! | URL | backend |
//! | --- | --- |
//! | `sqlite://path/to/file.sqlite` (created, with its folder, if missing) | [`Backend::Sqlite`] |
//! | `sqlite::memory:` (one connection; gone when the store closes) | [`Backend::Sqlite`] |
//! | `postgres://…` or `postgresql://…` on a server with TimescaleDB | [`Backend::Timescale`] |
//! | the same on a server without it, or with `?timescaledb=off` | [`Backend::Postgres`] |
//!
//! `timescaledb=off` is the store's own URL parameter (removed before the URL reaches the
//! driver): it stops the store from running `CREATE EXTENSION IF NOT EXISTS timescaledb`. A
//! database where the extension is already installed still gets a hypertable event log.
//!
//! The tables (see `migrations/`): `events` (the event log, every accepted event verbatim, a
//! TimescaleDB hypertable on `received_at` where the extension is present), `event_keys`
//! (PostgreSQL only: the event-id idempotency guard, since a hypertable's unique indexes must
//! include its time column), `incidents`, `incident_timeline` and `dead_letters`; `users` and `sessions` (`accounts.rs`).
//!
//! Invariant: [`Store::record`] writes the event, the incident and its timeline entry in one
//! transaction, and returns only after commit (SQLite: WAL with `synchronous=FULL`; PostgreSQL:
//! its default `fsync`). Recording an event id a second time writes nothing.
//!
//! Invariant: timestamps are stored to the microsecond (PostgreSQL's precision) on every backend;
//! anything finer is dropped on write, so what is read back may differ from what was given by
//! less than a microsecond.
//!
//! Boundary: the store does not decide anything. The engine computes an incident's new state and
//! hands it over whole; the store writes it as given.

mod error;
mod readings;
mod rows;
mod tokens;
mod types;
mod url;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::QueryBuilder;
use tracing::{info, warn};

use model::{Event, EventId, Incident, IncidentId, IncidentStatus};

use crate::rows::{
    routing_json, stored_time, DeadLetterRow, EventSummaryRow, IncidentRow, TimelineRow,
    INCIDENT_COLUMNS,
};
use crate::url::Target;

pub use crate::accounts::{Role, Session, User};
pub use crate::cluster::{
    ClusterConnection, FeedRow, InboxMessage, Listener, Member, Notification, CHANGES_CHANNEL,
    INBOX_CHANNEL, LEADER_LOCK,
};
pub use crate::config::CityConfig;
pub use crate::error::StoreError;
pub use crate::log::{LoggedEvent, LoggedTransition, SIDE_EFFECT_KINDS};
pub use crate::personal::{phone_digits, ContactSelector, Retained, StoredContact};
pub use crate::photos::Photo;
pub use crate::readings::{RollupRow, Step, MAX_ROLLUP_ROWS};
pub use crate::requests::{CitizenRequest, RequestFilter};
pub use crate::tokens::{hash_token, TokenInfo};
pub use crate::types::{
    Backend, ChangeKind, DeadLetter, EventPlace, EventSummary, IncidentChange, IncidentFilter,
    NewDeadLetter, NewTimelineEntry, Recorded, TimelineEntry,
};
pub use crate::warnings::{area_of_detail, warning_entry};

/// How many incidents [`Store::incidents`] returns when the filter sets no limit.
pub const DEFAULT_LIMIT: u32 = 1000;
/// The most incidents or dead letters one call returns, whatever the limit asked.
pub const MAX_LIMIT: u32 = 10_000;

/// How long to wait for a connection before reporting the database unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an SQLite writer waits for another one before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections to an SQLite file: one writer at a time anyway, a few readers beside it.
const SQLITE_CONNECTIONS: u32 = 4;
/// Connections to PostgreSQL.
const POSTGRES_CONNECTIONS: u32 = 8;

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the store's pool, whichever backend it is. The SQL in the
/// body must be valid on both: SQLite accepts PostgreSQL's `$1` placeholders.
macro_rules! with_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

// Declared after `with_pool!`, which they use.
mod accounts;
mod config;
mod log;
mod personal;
mod photos;
mod reports;
mod requests;

/// Inserts `$incident` (a `&model::Incident`) or replaces the stored row with it, on the
/// executor `$conn`; `$routing` is its `routing` column text. A macro because the two pools'
/// executors are different types.
macro_rules! upsert_incident {
    ($conn:expr, $incident:expr, $routing:expr) => {{
        let incident: &Incident = $incident;
        let opt_time = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(stored_time);
        sqlx::query(
            "INSERT INTO incidents (id, category, severity, status, lon, lat, district, \
             agency, routing, report_count, description, opened_at, updated_at, external_ref, \
             ack_due, resolve_due, ack_escalated_at, resolve_escalated_at, area, merged_into, \
             explained_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18, $19, $20, $21) \
             ON CONFLICT (id) DO UPDATE SET category = excluded.category, \
             severity = excluded.severity, status = excluded.status, lon = excluded.lon, \
             lat = excluded.lat, district = excluded.district, agency = excluded.agency, \
             routing = excluded.routing, report_count = excluded.report_count, \
             description = excluded.description, opened_at = excluded.opened_at, \
             updated_at = excluded.updated_at, external_ref = excluded.external_ref, \
             ack_due = excluded.ack_due, resolve_due = excluded.resolve_due, \
             ack_escalated_at = excluded.ack_escalated_at, \
             resolve_escalated_at = excluded.resolve_escalated_at, area = excluded.area, \
             merged_into = excluded.merged_into, explained_by = excluded.explained_by",
        )
        .bind(incident.id.as_str())
        .bind(incident.category.as_str())
        .bind(incident.severity.as_str())
        .bind(incident.status.as_str())
        .bind(incident.location.x())
        .bind(incident.location.y())
        .bind(incident.district.as_ref().map(|d| d.as_str()))
        .bind(incident.agency.as_str())
        .bind($routing)
        .bind(i64::from(incident.report_count))
        .bind(incident.description.as_deref())
        .bind(stored_time(incident.opened_at))
        .bind(stored_time(incident.updated_at))
        .bind(incident.external_ref.as_deref())
        .bind(opt_time(incident.sla.ack_due))
        .bind(opt_time(incident.sla.resolve_due))
        .bind(opt_time(incident.sla.ack_escalated_at))
        .bind(opt_time(incident.sla.resolve_escalated_at))
        .bind(incident.area.as_ref().map(crate::rows::area_json))
        .bind(incident.merged_into.as_ref().map(|i| i.as_str()))
        .bind(crate::rows::explained_by_json(&incident.explained_by))
        .execute($conn)
        .await?;
    }};
}

/// Inserts the timeline entry `$entry` (a `&NewTimelineEntry`) of incident `$incident` (a
/// `&str`) on the executor `$conn`.
macro_rules! insert_timeline {
    ($conn:expr, $incident:expr, $entry:expr) => {{
        let entry: &NewTimelineEntry = $entry;
        sqlx::query(
            "INSERT INTO incident_timeline \
             (incident_id, at, kind, actor, detail, reason, from_status, to_status, \
             request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind($incident)
        .bind(stored_time(entry.at))
        .bind(&entry.kind)
        .bind(&entry.actor)
        .bind(entry.detail.to_string())
        .bind(entry.reason.as_deref())
        .bind(entry.from.map(IncidentStatus::as_str))
        .bind(entry.to.map(IncidentStatus::as_str))
        .bind(entry.request_id.as_deref())
        .execute($conn)
        .await?;
    }};
}

/// Inserts the public warning version `$w` (a `&model::WarningVersion`) on the executor
/// `$conn`.
macro_rules! insert_warning {
    ($conn:expr, $w:expr) => {{
        let w: &model::WarningVersion = $w;
        sqlx::query(
            "INSERT INTO public_warnings (incident_id, seq, msg_type, sent, headline_ro, \
             headline_en, instruction_ro, instruction_en, area, category, severity, actor) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(w.incident.as_str())
        .bind(i64::from(w.seq))
        .bind(w.message.as_str())
        .bind(w.sent)
        .bind(&w.text.headline.ro)
        .bind(&w.text.headline.en)
        .bind(&w.text.instruction.ro)
        .bind(&w.text.instruction.en)
        .bind(crate::warnings::area_text(&w.area))
        .bind(w.category.as_str())
        .bind(w.severity.as_str())
        .bind(&w.actor)
        .execute($conn)
        .await?;
    }};
}

/// In cluster mode, once this instance leads (a term is set, see [`Store::fence`]): reads the
/// leadership term on the transaction `$tx` (`FOR SHARE`: a successor's increment waits for this
/// transaction, and this transaction sees a successor's committed term) and returns
/// [`StoreError::Fenced`] from the enclosing function, the transaction rolled back by its drop,
/// unless the term is still this instance's. Outside cluster mode it runs no query.
macro_rules! check_fence {
    ($store:expr, $tx:expr) => {{
        if let Some(term) = $store.fence.term() {
            let current: i64 =
                sqlx::query_scalar("SELECT term FROM cluster_leader WHERE id = 1 FOR SHARE")
                    .fetch_one($tx)
                    .await?;
            if current != term {
                $store.fence.lost(term, current);
                return Err(StoreError::Fenced { term, current });
            }
        }
    }};
}

// Declared after the macros they use.
mod cluster;
mod warnings;

/// Events, incidents, their timelines and dead letters, durably. Cheap to clone: clones share
/// one connection pool.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    backend: Backend,
    writes: Arc<WriteHealth>,
    /// SQLite's writers take turns here, first come first served: SQLite admits one writer at
    /// a time, and a writer that finds the database locked sleeps in SQLite's busy handler in
    /// growing steps (up to 100 ms), so a citizen report waiting behind a batch of readings
    /// could wait several times as long as the batch took (`dispecer-bench --row latency`).
    /// Unused on PostgreSQL, which has row locks.
    ///
    /// The turn holds the connection that stores readings ([`WriterSlot`]).
    write_turns: Arc<tokio::sync::Mutex<WriterSlot>>,
    /// Cluster mode's leadership term, once this instance leads (see `cluster.rs`): the
    /// engine's writes check it in their transactions. Unused outside cluster mode.
    fence: Arc<cluster::Fence>,
}

/// The SQLite connection that stores readings, kept out of the pool between batches. SQLite
/// drops a connection's page cache whenever another connection wrote since its last
/// transaction, and the pool hands out its idle connections in turn, so every batch of readings
/// read the pages of the readings' B-tree it touched back from the OS (copies from the kernel
/// and page allocations were a third of SQLite's time in `dispecer-bench --row sqlite-embedded`);
/// one connection keeps its cache warm from batch to batch. `None` before the first batch, after
/// a failed one (the connection goes back to the pool, which closes it if a transaction was
/// left open), on an in-memory database (its one connection stays the pool's) and once closed.
pub(crate) type WriterSlot = Option<sqlx::pool::PoolConnection<sqlx::Sqlite>>;

/// Writes that keep failing (a full disk, a database that went away): since when, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFailure {
    /// The first failure of the current run of failures.
    pub since: DateTime<Utc>,
    /// The last failure's error.
    pub error: String,
}

/// The outcome of the last write of events, readings or dead letters.
#[derive(Debug, Default)]
struct WriteHealth {
    failing: std::sync::Mutex<Option<WriteFailure>>,
}

impl WriteHealth {
    fn note<T>(&self, result: &Result<T, StoreError>) {
        let Ok(mut failing) = self.failing.lock() else {
            return;
        };
        match result {
            Ok(_) => {
                if let Some(f) = failing.take() {
                    tracing::info!(since = %f.since, "store writes succeed again");
                }
            }
            Err(e) => {
                let error = e.to_string();
                match failing.as_mut() {
                    Some(f) => f.error = error,
                    None => {
                        tracing::error!(error = %error, "store writes failing");
                        *failing = Some(WriteFailure {
                            since: Utc::now(),
                            error,
                        });
                    }
                }
            }
        }
    }
}

impl Store {
    /// Connects to `url` (see the [crate] documentation for the forms it takes), applies the
    /// schema migrations and detects TimescaleDB.
    ///
    /// Refuses with [`StoreError::SchemaTooNew`] a database migrated by a newer Dispecer.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let store = match url::parse(url)? {
            Target::Sqlite { url, in_memory } => Self::open_sqlite(&url, in_memory).await?,
            Target::Postgres {
                url,
                try_timescaledb,
            } => Self::open_postgres(&url, try_timescaledb).await?,
        };
        if let Err(e) = store.migrate().await {
            store.close().await;
            return Err(e);
        }
        let store = match store.detect_backend().await {
            Ok(backend) => Store { backend, ..store },
            Err(e) => {
                store.close().await;
                return Err(e);
            }
        };
        info!(backend = %store.backend, "store ready");
        Ok(store)
    }

    /// This writer's turn on SQLite (held until the returned guard drops); nothing to wait for on
    /// PostgreSQL.
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, WriterSlot>> {
        match self.pool {
            Pool::Sqlite(_) => Some(self.write_turns.lock().await),
            Pool::Postgres(_) => None,
        }
    }

    async fn open_sqlite(url: &str, in_memory: bool) -> Result<Store, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::InvalidUrl(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            // 16 MiB of page cache per connection (the default is 2 MiB: the readings' B-tree
            // was read back from the OS on every batch), and statement journals in memory.
            .pragma("cache_size", "-16384")
            .pragma("temp_store", "MEMORY");
        let pool_options = if in_memory {
            // An in-memory database lives as long as its last connection: keep exactly one.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            if let Some(folder) = options.get_filename().parent() {
                if !folder.as_os_str().is_empty() {
                    tokio::fs::create_dir_all(folder)
                        .await
                        .map_err(|e| StoreError::Unavailable(sqlx::Error::Io(e)))?;
                }
            }
            SqlitePoolOptions::new()
                .max_connections(SQLITE_CONNECTIONS)
                // No ping before each use: a connection to a local file does not go stale, and
                // the ping is a round trip to the connection's thread on every write.
                .test_before_acquire(false)
                // A connection whose transaction did not end cleanly (a COMMIT refused by a full
                // disk, then a ROLLBACK that found nothing to undo) must never be reused: sqlx
                // would take its next transaction for a nested one, and "commit" a savepoint
                // inside a transaction that is never committed, holding the write lock. It is
                // closed instead (which rolls back whatever SQLite still holds open).
                .after_release(|conn, _| {
                    Box::pin(async move {
                        let clean = !sqlx::Connection::is_in_transaction(conn);
                        if !clean {
                            warn!("closing a SQLite connection left inside a failed transaction");
                        }
                        Ok(clean)
                    })
                })
                .before_acquire(|conn, _| {
                    Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) })
                })
        };
        let pool = pool_options
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(StoreError::Unavailable)?;
        Ok(Store {
            pool: Pool::Sqlite(pool),
            backend: Backend::Sqlite,
            writes: Arc::default(),
            write_turns: Arc::default(),
            fence: Arc::default(),
        })
    }

    async fn open_postgres(url: &str, try_timescaledb: bool) -> Result<Store, StoreError> {
        let options =
            PgConnectOptions::from_str(url).map_err(|e| StoreError::InvalidUrl(e.to_string()))?;
        let pool = PgPoolOptions::new()
            .max_connections(POSTGRES_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(StoreError::Unavailable)?;
        if try_timescaledb {
            // Before the migrations, so that the event log is created as a hypertable.
            match sqlx::query("CREATE EXTENSION IF NOT EXISTS timescaledb")
                .execute(&pool)
                .await
            {
                Ok(_) => {}
                Err(sqlx::Error::Database(e)) => {
                    info!(reason = %e, "timescaledb is not available, using plain postgresql");
                }
                Err(e) => {
                    pool.close().await;
                    return Err(StoreError::Unavailable(e));
                }
            }
        }
        Ok(Store {
            pool: Pool::Postgres(pool),
            backend: Backend::Postgres,
            writes: Arc::default(),
            write_turns: Arc::default(),
            fence: Arc::default(),
        })
    }

    fn migrator(&self) -> &'static Migrator {
        match self.pool {
            Pool::Sqlite(_) => &SQLITE_MIGRATOR,
            Pool::Postgres(_) => &POSTGRES_MIGRATOR,
        }
    }

    /// Applies pending migrations; refuses a database that has migrations this binary lacks.
    async fn migrate(&self) -> Result<(), StoreError> {
        let result = match &self.pool {
            Pool::Sqlite(pool) => SQLITE_MIGRATOR.run(pool).await,
            Pool::Postgres(pool) => POSTGRES_MIGRATOR.run(pool).await,
        };
        match result {
            Ok(()) => Ok(()),
            Err(MigrateError::VersionMissing(missing)) => {
                let binary = self.migrator().iter().map(|m| m.version).max().unwrap_or(0);
                let database: Option<i64> = with_pool!(self, |pool| {
                    sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
                        .fetch_one(pool)
                        .await?
                });
                match database {
                    Some(database) if database > binary => {
                        Err(StoreError::SchemaTooNew { database, binary })
                    }
                    _ => Err(StoreError::Migration(MigrateError::VersionMissing(missing))),
                }
            }
            Err(e) => Err(StoreError::Migration(e)),
        }
    }

    /// TimescaleDB if the extension is installed and the event log is a hypertable.
    async fn detect_backend(&self) -> Result<Backend, StoreError> {
        let Pool::Postgres(pool) = &self.pool else {
            return Ok(Backend::Sqlite);
        };
        let installed: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')",
        )
        .fetch_one(pool)
        .await?;
        if !installed {
            return Ok(Backend::Postgres);
        }
        let hypertables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM timescaledb_information.hypertables \
             WHERE hypertable_name = 'events' AND hypertable_schema = current_schema()",
        )
        .fetch_one(pool)
        .await?;
        if hypertables == 0 {
            warn!(
                "timescaledb is installed but the event log was created before it and is not a \
                 hypertable; using it as plain postgresql"
            );
            return Ok(Backend::Postgres);
        }
        Ok(Backend::Timescale)
    }

    /// The database behind this store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Durably records an accepted event and its effect on an incident, in one transaction: the
    /// event (into the event log), then the incident (inserted or replaced as given), then a
    /// timeline entry.
    ///
    /// The timeline entry has `kind` [`ChangeKind::as_str`], `actor` the event's source label,
    /// `at` the incident's `updated_at`, and `detail`:
    /// - opened: `{"event", "category", "severity", "status", "agency", "rule", "area",
    ///   "district"}`;
    /// - report joined: `{"event", "report_count"}`.
    ///
    /// If the event id is already recorded, writes nothing and returns [`Recorded::Duplicate`].
    /// Returns only after commit.
    pub async fn record(
        &self,
        event: &Event,
        change: &IncidentChange,
    ) -> Result<Recorded, StoreError> {
        Ok(match self.record_batch(&[(event, change)]).await? {
            true => Recorded::Stored,
            false => Recorded::Duplicate,
        })
    }

    /// [`Store::record`] for several events in one transaction (group commit: one commit, one
    /// disk flush for all of them), in order; an incident several of them change is written
    /// once per change, each with its timeline entry. All or nothing: if any event id is
    /// already recorded, nothing is written and the answer is `false` (the caller takes the
    /// events one by one, or leaves out those [`Store::known_events`] names). Returns only
    /// after commit.
    pub async fn record_batch(
        &self,
        items: &[(&Event, &IncidentChange)],
    ) -> Result<bool, StoreError> {
        if items.is_empty() {
            return Ok(true);
        }
        let result = {
            let _turn = self.write_turn().await;
            self.record_batch_once(items).await
        };
        self.writes.note(&result);
        result
    }

    /// Writes that keep failing since the last success, if they do (for health and alarms).
    pub fn write_failure(&self) -> Option<WriteFailure> {
        self.writes.failing.lock().ok().and_then(|f| f.clone())
    }

    async fn record_batch_once(
        &self,
        items: &[(&Event, &IncidentChange)],
    ) -> Result<bool, StoreError> {
        // PostgreSQL claims the id in `event_keys`; SQLite's `events.id` is the primary key.
        let claim_key = self.backend != Backend::Sqlite;
        let insert_event = if claim_key {
            "INSERT INTO events (id, source, kind, category, lon, lat, occurred_at, received_at, \
             incident_id, payload, subject) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        } else {
            "INSERT INTO events (id, source, kind, category, lon, lat, occurred_at, received_at, \
             incident_id, payload, subject) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (id) DO NOTHING"
        };
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            check_fence!(self, &mut *tx);
            for &(event, change) in items {
                let incident = &change.incident;
                let received_at = stored_time(event.received_at);
                let occurred_at = stored_time(event.occurred_at);
                let source = event.source.as_label();
                let routing = routing_json(&incident.routing);
                let detail = timeline_detail(event, change).to_string();
                if claim_key {
                    let claimed = sqlx::query(
                        "INSERT INTO event_keys (id, received_at) VALUES ($1, $2) \
                         ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(event.id.as_str())
                    .bind(received_at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if claimed == 0 {
                        tx.rollback().await?;
                        return Ok(false);
                    }
                }
                let inserted = sqlx::query(insert_event)
                    .bind(event.id.as_str())
                    .bind(&source)
                    .bind(event.kind.as_str())
                    .bind(event.category.as_str())
                    .bind(event.location.x())
                    .bind(event.location.y())
                    .bind(occurred_at)
                    .bind(received_at)
                    .bind(incident.id.as_str())
                    .bind(&event.payload)
                    .bind(event.subject.as_deref())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if inserted == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                upsert_incident!(&mut *tx, incident, &routing);
                if let Some(contact) = &event.contact {
                    sqlx::query(
                        "INSERT INTO citizen_contacts (event_id, incident_id, name, email, phone, \
                         phone_digits, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(event.id.as_str())
                    .bind(incident.id.as_str())
                    .bind(contact.name.as_deref())
                    .bind(contact.email.as_deref())
                    .bind(contact.phone.as_deref())
                    .bind(contact.phone.as_deref().map(crate::personal::phone_digits))
                    .bind(received_at)
                    .execute(&mut *tx)
                    .await?;
                }
                // Opening and resolving set a state; the state before is not what the event
                // knows.
                let to_status = matches!(change.kind, ChangeKind::Opened | ChangeKind::Resolved)
                    .then(|| incident.status.as_str());
                sqlx::query(
                    "INSERT INTO incident_timeline (incident_id, at, kind, actor, detail, \
                     to_status) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(incident.id.as_str())
                .bind(stored_time(incident.updated_at))
                .bind(change.kind.as_str())
                .bind(&source)
                .bind(&detail)
                .bind(to_status)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(true)
    }

    /// Durably records a change of an incident that no event caused (a person's or an agency's
    /// action, an escalation), in one transaction: the incident as given (inserted or replaced),
    /// then `entry` in its timeline. Returns only after commit.
    pub async fn record_transition(
        &self,
        incident: &Incident,
        entry: &NewTimelineEntry,
    ) -> Result<(), StoreError> {
        self.record_transition_and_warning(incident, entry, None)
            .await
    }

    /// [`Store::record_transition`], and in the same transaction a public warning's version
    /// with its own timeline entry (the Cancel that resolving an incident issues).
    pub async fn record_transition_and_warning(
        &self,
        incident: &Incident,
        entry: &NewTimelineEntry,
        warning: Option<(&model::WarningVersion, &NewTimelineEntry)>,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        let routing = routing_json(&incident.routing);
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            check_fence!(self, &mut *tx);
            upsert_incident!(&mut *tx, incident, &routing);
            insert_timeline!(&mut *tx, incident.id.as_str(), entry);
            if let Some((version, warning_entry)) = warning {
                insert_warning!(&mut *tx, version);
                insert_timeline!(&mut *tx, incident.id.as_str(), warning_entry);
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Durably records several incidents' changes that one action caused (a merge, an unmerge,
    /// a split), in one transaction: each incident as given with its timeline entry, then the
    /// events `moves` moved to incident `to` (with their citizens' contacts); an event moved for
    /// the first time keeps the incident the log gave it in `logged_incident`. Returns only
    /// after commit.
    pub async fn record_transitions(
        &self,
        changes: &[(&Incident, &NewTimelineEntry)],
        moves: &[EventId],
        to: &IncidentId,
    ) -> Result<(), StoreError> {
        self.write_transitions(changes, Some((moves, to))).await
    }

    /// Durably records several incidents' changes, each with its timeline entry, in one
    /// transaction: all or none (the escalations of one deadline check).
    pub async fn record_transition_batch(
        &self,
        changes: &[(&Incident, &NewTimelineEntry)],
    ) -> Result<(), StoreError> {
        self.write_transitions(changes, None).await
    }

    /// The incidents' changes, then the events moved (`moves`: which, and to what incident).
    async fn write_transitions(
        &self,
        changes: &[(&Incident, &NewTimelineEntry)],
        moves: Option<(&[EventId], &IncidentId)>,
    ) -> Result<(), StoreError> {
        if changes.is_empty() && moves.is_none_or(|(m, _)| m.is_empty()) {
            return Ok(());
        }
        let _turn = self.write_turn().await;
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            check_fence!(self, &mut *tx);
            for (incident, entry) in changes {
                let routing = routing_json(&incident.routing);
                upsert_incident!(&mut *tx, incident, &routing);
                insert_timeline!(&mut *tx, incident.id.as_str(), entry);
            }
            if let Some((moves, to)) = moves {
                for event in moves {
                    sqlx::query(
                        "UPDATE events SET logged_incident = COALESCE(logged_incident, incident_id), \
                         incident_id = $2 WHERE id = $1",
                    )
                    .bind(event.as_str())
                    .bind(to.as_str())
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("UPDATE citizen_contacts SET incident_id = $2 WHERE event_id = $1")
                        .bind(event.as_str())
                        .bind(to.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Where an accepted event is and what it is: its category, place, the incident it is in
    /// now, and its subject (a sender's notice); `None` for an unknown event.
    pub async fn event_place(&self, id: &EventId) -> Result<Option<EventPlace>, StoreError> {
        let row: Option<(String, f64, f64, String, Option<String>)> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT category, lon, lat, incident_id, subject FROM events WHERE id = $1",
            )
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?
        });
        Ok(
            row.map(|(category, lon, lat, incident, subject)| EventPlace {
                category: category.as_str().into(),
                location: geo::Point::new(lon, lat),
                incident: IncidentId::new(incident),
                subject,
            }),
        )
    }

    /// The incident that `actor`'s request `request_id` was recorded for, if it was
    /// ([`NewTimelineEntry::request_id`]).
    pub async fn known_request(
        &self,
        actor: &str,
        request_id: &str,
    ) -> Result<Option<IncidentId>, StoreError> {
        let id: Option<String> = with_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT incident_id FROM incident_timeline WHERE actor = $1 AND request_id = $2",
            )
            .bind(actor)
            .bind(request_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(id.map(IncidentId::new))
    }

    /// Whether an event with this id is recorded.
    pub async fn is_known_event(&self, id: &EventId) -> Result<bool, StoreError> {
        let sql = match self.backend {
            Backend::Sqlite => "SELECT count(*) FROM events WHERE id = $1",
            Backend::Postgres | Backend::Timescale => {
                "SELECT count(*) FROM event_keys WHERE id = $1"
            }
        };
        let count: i64 = with_pool!(self, |pool| {
            sqlx::query_scalar(sql)
                .bind(id.as_str())
                .fetch_one(pool)
                .await?
        });
        Ok(count > 0)
    }

    /// Which of `ids` are recorded (one query; for the engine's group commit).
    pub async fn known_events(
        &self,
        ids: &[&EventId],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let table = match self.backend {
            Backend::Sqlite => "events",
            Backend::Postgres | Backend::Timescale => "event_keys",
        };
        let known: Vec<String> = with_pool!(self, |pool| {
            let mut query =
                sqlx::QueryBuilder::new(format!("SELECT id FROM {table} WHERE id IN ("));
            let mut list = query.separated(", ");
            for id in ids {
                list.push_bind(id.as_str());
            }
            query.push(")");
            query.build_query_scalar().fetch_all(pool).await?
        });
        Ok(known.into_iter().collect())
    }

    /// Every incident whose status is open ([`IncidentStatus::is_open`]), newest update first,
    /// however many: for the engine's start-up.
    pub async fn open_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        let filter = IncidentFilter {
            statuses: IncidentStatus::ALL
                .into_iter()
                .filter(|s| s.is_open())
                .collect(),
            ..IncidentFilter::default()
        };
        self.select_incidents(&filter, None).await
    }

    /// The incident with this id.
    pub async fn incident(&self, id: &IncidentId) -> Result<Option<Incident>, StoreError> {
        let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1");
        let row: Option<IncidentRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(id.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(IncidentRow::into_model).transpose()
    }

    /// The incidents that match `filter`, newest `updated_at` first; at most the filter's limit
    /// ([`DEFAULT_LIMIT`] if unset, never more than [`MAX_LIMIT`]).
    pub async fn incidents(&self, filter: &IncidentFilter) -> Result<Vec<Incident>, StoreError> {
        let limit = filter.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
        self.select_incidents(filter, Some(limit)).await
    }

    async fn select_incidents(
        &self,
        filter: &IncidentFilter,
        limit: Option<u32>,
    ) -> Result<Vec<Incident>, StoreError> {
        let sqlite = matches!(self.pool, Pool::Sqlite(_));
        let rows: Vec<IncidentRow> = with_pool!(self, |pool| {
            let mut q = QueryBuilder::new(format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE 1 = 1"
            ));
            if let Some([west, south, east, north]) = filter.bbox {
                if west <= east {
                    q.push(" AND lon >= ").push_bind(west);
                    q.push(" AND lon <= ").push_bind(east);
                } else {
                    // Across the antimeridian.
                    q.push(" AND (lon >= ").push_bind(west);
                    q.push(" OR lon <= ").push_bind(east).push(")");
                }
                q.push(" AND lat >= ").push_bind(south);
                q.push(" AND lat <= ").push_bind(north);
            }
            if !filter.statuses.is_empty() {
                q.push(" AND status IN (");
                let mut list = q.separated(", ");
                for status in &filter.statuses {
                    list.push_bind(status.as_str());
                }
                q.push(")");
            }
            if let Some(category) = &filter.category {
                q.push(" AND category = ").push_bind(category.as_str());
            }
            if let Some(agency) = &filter.agency {
                q.push(" AND agency = ").push_bind(agency.as_str());
            }
            if let Some(agency) = &filter.visible_to {
                // Responsible, or named in the routing column's `informed` array.
                q.push(" AND (agency = ").push_bind(agency.as_str());
                if sqlite {
                    q.push(
                        " OR EXISTS (SELECT 1 FROM json_each(incidents.routing, '$.informed') \
                         AS i WHERE json_extract(i.value, '$.agency') = ",
                    )
                    .push_bind(agency.as_str())
                    .push("))");
                } else {
                    q.push(
                        " OR (routing::jsonb -> 'informed') @> \
                         jsonb_build_array(jsonb_build_object('agency', ",
                    )
                    .push_bind(agency.as_str())
                    .push("::text)))");
                }
            }
            if let Some(since) = filter.since {
                q.push(" AND updated_at >= ").push_bind(stored_time(since));
            }
            q.push(" ORDER BY updated_at DESC, id DESC");
            if let Some(limit) = limit {
                q.push(" LIMIT ").push_bind(i64::from(limit));
            }
            q.build_query_as().fetch_all(pool).await?
        });
        rows.into_iter().map(IncidentRow::into_model).collect()
    }

    /// The events that make up an incident, oldest first.
    pub async fn incident_events(&self, id: &IncidentId) -> Result<Vec<EventSummary>, StoreError> {
        let rows: Vec<EventSummaryRow> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, source, received_at FROM events WHERE incident_id = $1 \
                 ORDER BY received_at, id",
            )
            .bind(id.as_str())
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// An incident's history, oldest first.
    pub async fn timeline(&self, id: &IncidentId) -> Result<Vec<TimelineEntry>, StoreError> {
        let rows: Vec<TimelineRow> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, at, kind, actor, detail, reason, from_status, to_status \
                 FROM incident_timeline \
                 WHERE incident_id = $1 ORDER BY at, id",
            )
            .bind(id.as_str())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(|r| r.into_model(id)).collect()
    }

    /// Keeps a message that could not be accepted; returns its number.
    pub async fn record_dead_letter(&self, dl: &NewDeadLetter) -> Result<i64, StoreError> {
        let result = {
            let _turn = self.write_turn().await;
            self.record_dead_letter_once(dl).await
        };
        self.writes.note(&result);
        result
    }

    async fn record_dead_letter_once(&self, dl: &NewDeadLetter) -> Result<i64, StoreError> {
        let id: i64 = with_pool!(self, |pool| {
            sqlx::query_scalar(
                "INSERT INTO dead_letters (received_at, channel, topic, payload, reason) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(stored_time(dl.received_at))
            .bind(&dl.channel)
            .bind(&dl.topic)
            .bind(&dl.payload)
            .bind(&dl.reason)
            .fetch_one(pool)
            .await?
        });
        Ok(id)
    }

    /// The newest dead letters, newest first; at most `limit` (never more than [`MAX_LIMIT`]).
    pub async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        let limit = i64::from(limit.min(MAX_LIMIT));
        let rows: Vec<DeadLetterRow> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, received_at, channel, topic, payload, reason FROM dead_letters \
                 ORDER BY received_at DESC, id DESC LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Waits for queries in flight, then closes every connection. Clones of this store are
    /// closed too; their calls fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        // Closing the pool waits for every connection, the kept writer's too.
        if let Some(mut turn) = self.write_turn().await {
            turn.take();
        }
        with_pool!(self, |pool| pool.close().await)
    }
}

/// The `detail` of the timeline entry for `change`.
fn timeline_detail(event: &Event, change: &IncidentChange) -> serde_json::Value {
    let incident = &change.incident;
    match change.kind {
        ChangeKind::Opened => json!({
            "event": event.id.as_str(),
            "category": incident.category.as_str(),
            "severity": incident.severity.as_str(),
            "status": incident.status.as_str(),
            "agency": incident.agency.as_str(),
            "rule": incident.routing.chosen.rule.as_str(),
            "area": incident.routing.chosen.area.as_ref().map(|a| a.as_str()),
            "district": incident.district.as_ref().map(|d| d.as_str()),
        }),
        ChangeKind::ReportJoined => json!({
            "event": event.id.as_str(),
            "report_count": incident.report_count,
        }),
        ChangeKind::Updated | ChangeKind::Resolved => json!({
            "event": event.id.as_str(),
            "status": incident.status.as_str(),
            "description": incident.description,
        }),
    }
}
