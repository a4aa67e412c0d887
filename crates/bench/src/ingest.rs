//! End-to-end ingest: SenML packs (or, for the `events-*` row, citizens' reports) published at
//! full speed until every reading (every event, through the engine) is durable, against the raw
//! publish→subscribe limit of the same broker, measured in the same run.
//!
//! The raw limit is measured through the broker of the very `dispecer` process the row then
//! ingests with, just before: for the embedded broker that is rumqttd exactly as
//! `crates/dispecer/src/broker.rs` configures it, in the process it shares with Dispecer's own
//! tasks, as in production, and without a copy of its configuration that could drift. Dispecer
//! is idle meanwhile: the raw topics (`benchraw/v1/in/traffic/…`, as long as the real ones) are
//! outside its subscriptions. For Mosquitto it is the Mosquitto the row uses.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::mqtt::{self, INGEST_PREFIX};
use crate::services::{free_port, Broker, Dispecer, Mosquitto, PgDatabase, TempDir};

/// The target of every ingest row: at least half the broker's raw QoS 1 throughput.
pub const TARGET: f64 = 0.5;
/// Readings per SenML pack (count, speed, occupancy).
const READINGS_PER_PACK: u64 = 3;
/// How often the feeds are polled while waiting for the last reading.
const POLL: Duration = Duration::from_millis(5);
/// A run fails when Dispecer makes no progress for this long.
const STALL: Duration = Duration::from_secs(60);

/// Which store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// A SQLite file in a temporary folder.
    Sqlite,
    /// A fresh database on the TimescaleDB server.
    Timescale,
}

/// Which broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// Dispecer's embedded rumqttd.
    Embedded,
    /// Mosquitto with `deploy/mosquitto.conf`.
    Mosquitto,
}

/// What the row's messages carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carries {
    /// SenML packs of the traffic counters (three readings each), into the readings table.
    Readings,
    /// Citizens' pothole and water reports (GeoJSON, one event each), through the engine (fusion,
    /// routing, the event log, incidents and their timelines; the engine's group commit).
    Events,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct RowSpec {
    /// Its name (`--row`).
    pub id: &'static str,
    /// The store.
    pub db: Db,
    /// The broker.
    pub broker: BrokerKind,
    /// What its messages carry.
    pub carries: Carries,
}

/// Every ingest row, in the order they run.
pub const ROWS: [RowSpec; 4] = [
    RowSpec {
        id: "sqlite-embedded",
        db: Db::Sqlite,
        broker: BrokerKind::Embedded,
        carries: Carries::Readings,
    },
    RowSpec {
        id: "timescaledb-embedded",
        db: Db::Timescale,
        broker: BrokerKind::Embedded,
        carries: Carries::Readings,
    },
    RowSpec {
        id: "timescaledb-mosquitto",
        db: Db::Timescale,
        broker: BrokerKind::Mosquitto,
        carries: Carries::Readings,
    },
    RowSpec {
        id: "events-sqlite-embedded",
        db: Db::Sqlite,
        broker: BrokerKind::Embedded,
        carries: Carries::Events,
    },
];

impl Carries {
    /// Rows stored per message.
    fn per_message(self) -> u64 {
        match self {
            Carries::Readings => READINGS_PER_PACK,
            Carries::Events => 1,
        }
    }

    /// The topics' prefix and the names after it (the sensors; the citizens' one topic).
    fn topics(self, sensors: &[String]) -> (&'static str, Vec<String>) {
        match self {
            Carries::Readings => (INGEST_PREFIX, sensors.to_vec()),
            Carries::Events => (CITIZEN_PREFIX, vec!["reports".to_owned()]),
        }
    }

    /// Messages number `range` of a run.
    fn messages(
        self,
        sensors: &[String],
        range: std::ops::Range<usize>,
        first_time: i64,
    ) -> Vec<mqtt::Pack> {
        match self {
            Carries::Readings => mqtt::packs(sensors, range, first_time),
            Carries::Events => reports(range),
        }
    }

    /// The feeds that count this row's messages.
    fn counted_by(self, feed: &str) -> bool {
        match self {
            Carries::Readings => feed.starts_with("traffic:"),
            Carries::Events => feed == "citizen",
        }
    }
}

/// The citizens' reports topic, as `{prefix}{name}`.
const CITIZEN_PREFIX: &str = "dispecer/v1/in/citizen/";

/// Citizens' reports number `range` of a run: potholes and "no water" on a grid of 40 × 40
/// points about 55 m apart in the centre of Brașov (each point gets a new report every 1 600
/// messages: a report fuses with an open incident there, as bursts of reports do), each with
/// its own id (`bench-{run}-{i}`).
fn reports(range: std::ops::Range<usize>) -> Vec<mqtt::Pack> {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    range
        .map(|i| {
            let cell = i % 1_600;
            let lon = 25.575 + (cell % 40) as f64 * 0.0007;
            let lat = 45.635 + (cell / 40) as f64 * 0.0005;
            let category = if (i / 1_600) % 2 == 0 { "pothole" } else { "no_water" };
            let payload = format!(
                r#"{{"type":"Feature","geometry":{{"type":"Point","coordinates":[{lon:.6},{lat:.6}]}},"properties":{{"id":"bench-{run}-{i}","category":"{category}","description":"bench {i}","reported_at":"{now}"}}}}"#
            );
            mqtt::Pack::new(0, payload.into_bytes())
        })
        .collect()
}

/// What one row needs from the command line.
#[derive(Debug)]
pub struct Setup {
    /// The `dispecer` binary.
    pub dispecer: PathBuf,
    /// The city folder.
    pub city: PathBuf,
    /// `deploy/mosquitto.conf`.
    pub mosquitto_conf: PathBuf,
    /// The Mosquitto binary.
    pub mosquitto: PathBuf,
    /// An existing database on the TimescaleDB server.
    pub pg_url: String,
    /// Packs published end to end (`None`: sized from the warm-up to last [`Setup::seconds`]).
    pub messages: Option<usize>,
    /// Messages of the raw measurement (`None`: sized from its warm-up likewise).
    pub raw_messages: Option<usize>,
    /// About how long each measurement should last when its size is not given.
    pub seconds: f64,
    /// Short mode: no verdict on speed.
    pub quick: bool,
    /// Where to keep each row's `dispecer` log (`{row}.log`), if anywhere.
    pub logs: Option<PathBuf>,
}

/// Packs of the end-to-end warm-up (its rate sizes the measurement), normal and quick.
const WARMUP_PACKS: (usize, usize) = (2_000, 200);
/// Messages of the raw warm-up, normal and quick.
const WARMUP_RAW: (usize, usize) = (2_000, 500);
/// Fewest messages of a measurement sized from its warm-up, normal and quick.
const MIN_SIZE: (usize, usize) = (1_000, 200);
/// Most messages of a measurement sized from its warm-up: keeps a backlog well inside the
/// embedded broker's in-memory log (10 segments of 16 MB; it drops the oldest when full).
const MAX_SIZE: usize = 300_000;

impl Setup {
    fn pick(&self, (normal, quick): (usize, usize)) -> usize {
        if self.quick {
            quick
        } else {
            normal
        }
    }

    /// The size of a measurement: as given, or about `seconds` at `rate` per second.
    fn sized(&self, given: Option<usize>, rate: f64, seconds: f64) -> usize {
        given.unwrap_or_else(|| ((rate * seconds) as usize).clamp(self.pick(MIN_SIZE), MAX_SIZE))
    }
}

/// The figures of one row.
#[derive(Debug, Clone, Serialize)]
pub struct RowResult {
    /// The row's name.
    pub row: String,
    /// The store, as Dispecer reports it (`GET /api/v1/health`).
    pub store: String,
    /// The broker.
    pub broker: String,
    /// "SQLite + embedded broker (rumqttd)", …
    pub label: String,
    /// SenML packs published end to end (after a warm-up of [`RowResult::warmup_messages`]).
    pub messages: u64,
    /// SenML packs of the warm-up, stored too but not timed.
    pub warmup_messages: u64,
    /// Readings in them.
    pub readings: u64,
    /// Seconds from the first publish until every reading was durable.
    pub seconds: f64,
    /// Seconds from the first publish until the broker had acknowledged the last one.
    pub publish_seconds: f64,
    /// End-to-end packs per second.
    pub messages_per_s: f64,
    /// End-to-end readings per second.
    pub readings_per_s: f64,
    /// Messages of the raw measurement.
    pub raw_messages: u64,
    /// Raw QoS 1 publish→subscribe messages per second of the same broker, same run.
    pub raw_messages_per_s: f64,
    /// `messages_per_s / raw_messages_per_s`.
    pub ratio: f64,
    /// The target ratio.
    pub target: f64,
    /// Whether the ratio meets the target (`None` in quick mode: no verdict on speed).
    pub pass: Option<bool>,
    /// Rows counted in the `readings` table at the end (warm-up included).
    pub stored_readings: u64,
    /// Readings published (warm-up included) but not in the table (must be 0).
    pub lost_readings: i64,
}

fn label(db: Db, broker: BrokerKind) -> (&'static str, &'static str) {
    // (The events row says what it carries in its label, below.)
    (
        match db {
            Db::Sqlite => "SQLite",
            Db::Timescale => "TimescaleDB",
        },
        match broker {
            BrokerKind::Embedded => "embedded (rumqttd)",
            BrokerKind::Mosquitto => "Mosquitto",
        },
    )
}

/// Runs one row: its broker, its store and a `dispecer` on them; the raw limit first (Dispecer
/// idle beside the broker), then end-to-end ingest; then counts the stored readings.
pub async fn run_row(spec: RowSpec, ctx: &Setup) -> Result<RowResult> {
    let dir = TempDir::new(&format!("dispecer-bench-{}", spec.id))?;
    let mosquitto = match spec.broker {
        BrokerKind::Mosquitto => Some(Mosquitto::start(&ctx.mosquitto, &ctx.mosquitto_conf).await?),
        BrokerKind::Embedded => None,
    };
    let broker = match &mosquitto {
        Some(m) => Broker::External(m.port()),
        None => Broker::Embedded(free_port()?),
    };
    let pg = match spec.db {
        Db::Timescale => Some(PgDatabase::create(&ctx.pg_url).await?),
        Db::Sqlite => None,
    };
    let sqlite_file = dir.path().join("bench.sqlite");
    let database_url = match &pg {
        Some(pg) => pg.url.clone(),
        None => format!("sqlite://{}", sqlite_file.display()),
    };
    let result = async {
        let server =
            Dispecer::start(&ctx.dispecer, &ctx.city, &dir, &database_url, &broker).await?;
        let out = measure(spec, ctx, &server, &broker, &database_url, &sqlite_file).await;
        let out = out.map_err(|e| {
            let broker_log = mosquitto.as_ref().map(|m| m.log_tail()).unwrap_or_default();
            e.context(format!(
                "dispecer log:\n{}\n{broker_log}",
                server.log_tail()
            ))
        });
        let log = ctx
            .logs
            .as_ref()
            .map(|d| d.join(format!("{}.log", spec.id)));
        server.stop(log.as_deref())?;
        out
    }
    .await;
    if let Some(pg) = pg {
        if let Err(e) = pg.drop_database().await {
            eprintln!("bench: could not drop the benchmark database: {e:#}");
        }
    }
    drop(mosquitto);
    result
}

async fn measure(
    spec: RowSpec,
    ctx: &Setup,
    server: &Dispecer,
    broker: &Broker,
    database_url: &str,
    sqlite_file: &Path,
) -> Result<RowResult> {
    let http = reqwest::Client::new();
    let city = server.get(&http, "/api/v1/city").await?;
    let sensors: Vec<String> = city["sensors"]["features"]
        .as_array()
        .context("the city document has no sensors")?
        .iter()
        .filter_map(|f| f["id"].as_str().map(str::to_owned))
        .collect();
    if sensors.is_empty() {
        bail!("the city has no traffic sensors");
    }
    let health = server.get(&http, "/api/v1/health").await?;
    let store = health["store"].as_str().unwrap_or("?").to_owned();
    let (db_name, broker_name) = label(spec.db, spec.broker);
    if spec.db == Db::Timescale && store != "timescaledb" {
        bail!("the PostgreSQL server has no TimescaleDB (Dispecer reports the store as {store})");
    }

    // The raw limit: the same broker, the same payloads, a subscriber with Dispecer's session
    // kind (persistent, QoS 1) but no work to do. A warm-up first, which also sizes it.
    let warmup = ctx.pick(WARMUP_PACKS);
    let first_time = chrono::Utc::now().timestamp()
        - (warmup + MAX_SIZE.max(ctx.messages.unwrap_or(0))).div_ceil(sensors.len()) as i64
        - 3600;
    let port = broker.port();
    let carries = spec.carries;
    let (_, names) = carries.topics(&sensors);
    let warm = mqtt::raw_throughput(
        port,
        &names,
        carries.messages(&sensors, 0..ctx.pick(WARMUP_RAW), first_time),
        true,
    )
    .await
    .context("raw publish→subscribe (warm-up)")?;
    let raw_n = ctx.sized(ctx.raw_messages, warm, ctx.seconds / 2.0);
    let raw = mqtt::raw_throughput(
        port,
        &names,
        carries.messages(&sensors, 0..raw_n, first_time),
        true,
    )
    .await
    .context("raw publish→subscribe")?;

    // End to end: a warm-up, then the measurement; each done when every pack is counted in its
    // feed (then every reading is committed: a pack is counted after its commit).
    let warm = ingest(
        server,
        &http,
        port,
        carries,
        &sensors,
        carries.messages(&sensors, 0..warmup, first_time),
        0,
    )
    .await
    .context("warm-up")?;
    let n = ctx.sized(ctx.messages, warmup as f64 / warm.seconds, ctx.seconds);
    let run = ingest(
        server,
        &http,
        port,
        carries,
        &sensors,
        carries.messages(&sensors, warmup..warmup + n, first_time),
        warmup as u64,
    )
    .await?;

    let stored = count_stored(carries, spec.db, database_url, sqlite_file).await?;
    let n = n as u64;
    let readings = n * carries.per_message();
    let messages_per_s = n as f64 / run.seconds;
    let ratio = messages_per_s / raw;
    Ok(RowResult {
        row: spec.id.to_owned(),
        store,
        broker: broker_name.to_owned(),
        label: match carries {
            Carries::Readings => format!("{db_name} + {broker_name}"),
            Carries::Events => format!("{db_name} + {broker_name}, citizens' reports"),
        },
        messages: n,
        warmup_messages: warmup as u64,
        readings,
        seconds: run.seconds,
        publish_seconds: run.publish_seconds,
        messages_per_s,
        readings_per_s: readings as f64 / run.seconds,
        raw_messages: raw_n as u64,
        raw_messages_per_s: raw,
        ratio,
        target: TARGET,
        pass: (!ctx.quick).then_some(ratio >= TARGET),
        stored_readings: stored,
        lost_readings: ((n + warmup as u64) * carries.per_message()) as i64 - stored as i64,
    })
}

/// One end-to-end run.
struct Run {
    /// From the first publish until every pack was counted.
    seconds: f64,
    /// From the first publish until the broker had acknowledged the last one.
    publish_seconds: f64,
}

/// Publishes `packs` at full speed and waits until Dispecer has counted all of them (and the
/// `before` counted earlier) in its `traffic:*` feeds. Polls `GET /api/v1/feeds`; the end is
/// the first poll that shows them all.
async fn ingest(
    server: &Dispecer,
    http: &reqwest::Client,
    port: u16,
    carries: Carries,
    sensors: &[String],
    packs: Vec<mqtt::Pack>,
    before: u64,
) -> Result<Run> {
    let total = before + packs.len() as u64;
    let (started_tx, started_rx) = oneshot::channel();
    let (prefix, names) = carries.topics(sensors);
    let mut publisher = Some(tokio::spawn(async move {
        mqtt::publish_all(port, prefix, &names, packs, started_tx).await
    }));
    let mut published = None;
    let started = started_rx
        .await
        .context("the publisher stopped before its first publish")?;
    let mut last = (before, Instant::now());
    let done = loop {
        let feeds = server.get(http, "/api/v1/feeds").await?;
        let now = Instant::now();
        let (accepted, rejected, duplicates) = totals(&feeds, carries);
        if rejected > 0 {
            let letters = server
                .get(http, "/api/v1/dead-letters")
                .await
                .unwrap_or(Value::Null);
            bail!(
                "{rejected} packs were refused: {}",
                letters["dead_letters"][0]["reason"]
            );
        }
        if accepted + duplicates >= total {
            break now;
        }
        if accepted != last.0 {
            last = (accepted, now);
        } else if now - last.1 > STALL {
            bail!("Dispecer counted {accepted} of {total} packs, and none for {STALL:?}");
        }
        if let Some(p) = publisher.take_if(|p| p.is_finished()) {
            // A publisher that failed: report its error rather than a stall.
            published = Some(p.await.context("publisher task")??);
        }
        tokio::time::sleep(POLL).await;
    };
    let published = match (published, publisher) {
        (Some(p), _) => p,
        (None, Some(p)) => p.await.context("publisher task")??,
        (None, None) => bail!("no publisher"),
    };
    Ok(Run {
        seconds: (done - started).as_secs_f64(),
        publish_seconds: (published.acked - published.started).as_secs_f64(),
    })
}

/// Sums of accepted, rejected and duplicate messages over the feeds that count the row's
/// messages.
fn totals(feeds: &Value, carries: Carries) -> (u64, u64, u64) {
    let mut totals = (0, 0, 0);
    for f in feeds["feeds"].as_array().into_iter().flatten() {
        if f["feed"].as_str().is_some_and(|n| carries.counted_by(n)) {
            totals.0 += f["accepted"].as_u64().unwrap_or(0);
            totals.1 += f["rejected"].as_u64().unwrap_or(0);
            totals.2 += f["duplicates"].as_u64().unwrap_or(0);
        }
    }
    totals
}

/// Readings stored (events stored), counted in the database itself.
async fn count_stored(
    carries: Carries,
    db: Db,
    database_url: &str,
    sqlite_file: &Path,
) -> Result<u64> {
    let query = match carries {
        // A row per sensor and instant, a column per metric.
        Carries::Readings => "SELECT count(count) + count(speed) + count(occupancy) FROM readings",
        Carries::Events => "SELECT count(*) FROM events",
    };
    let n: i64 = match db {
        Db::Sqlite => {
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(sqlite_file)
                .read_only(true);
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&opts)
                .await
                .with_context(|| format!("cannot open {}", sqlite_file.display()))?;
            sqlx::query_scalar(query).fetch_one(&mut conn).await?
        }
        Db::Timescale => {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(database_url).await?;
            sqlx::query_scalar(query).fetch_one(&mut conn).await?
        }
    };
    u64::try_from(n).context("negative count")
}
