//! Sensor readings: batched idempotent writes and rollups by time bucket.
//!
//! TimescaleDB: a hypertable on `time`, rollups with `time_bucket`. Plain PostgreSQL: the same
//! table with a BRIN index, rollups with `date_bin`. SQLite: time as integer microseconds,
//! rollups by integer arithmetic. All three give the same buckets (aligned to the Unix epoch).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::QueryBuilder;

use model::{Reading, SensorId};

use crate::{Backend, Pool, Store, StoreError};

/// Rows per INSERT statement on SQLite: 5 parameters each, under SQLite's limit of 32 766
/// bound parameters per statement (the bundled SQLite's `SQLITE_MAX_VARIABLE_NUMBER`).
const ROWS_PER_STATEMENT: usize = 6000;

/// Most rows a rollup query returns.
pub const MAX_ROLLUP_ROWS: i64 = 100_000;

/// Width of a rollup bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Every reading as it was stored.
    Raw,
    /// 1 minute.
    Minute,
    /// 15 minutes.
    FifteenMinutes,
    /// 1 hour.
    Hour,
}

impl Step {
    /// Bucket width in seconds (0 for raw).
    pub fn seconds(self) -> i64 {
        match self {
            Step::Raw => 0,
            Step::Minute => 60,
            Step::FifteenMinutes => 900,
            Step::Hour => 3600,
        }
    }
}

impl FromStr for Step {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "raw" => Ok(Step::Raw),
            "1m" => Ok(Step::Minute),
            "15m" => Ok(Step::FifteenMinutes),
            "1h" => Ok(Step::Hour),
            other => Err(format!("step {other:?} must be raw, 1m, 15m or 1h")),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Raw => "raw",
            Step::Minute => "1m",
            Step::FifteenMinutes => "15m",
            Step::Hour => "1h",
        })
    }
}

/// One bucket of one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupRow {
    /// Start of the bucket.
    pub bucket: DateTime<Utc>,
    /// Metric.
    pub metric: String,
    /// Mean value.
    pub avg: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Readings in the bucket.
    pub count: i64,
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(us: i64) -> Result<DateTime<Utc>, StoreError> {
    Utc.timestamp_micros(us)
        .single()
        .ok_or_else(|| StoreError::Corrupt {
            what: format!("reading time {us} µs is out of range"),
        })
}

/// The metrics a reading may have, in the order of PostgreSQL's columns of them.
const METRICS: [&str; 3] = ["count", "speed", "occupancy"];

/// The readings of one sensor at one instant, as PostgreSQL stores them: one row, each metric in
/// its column (`None`: not in this batch).
#[derive(Debug, Clone, PartialEq)]
struct Instant<'a> {
    /// As stored: truncated to the microsecond ([`crate::rows::stored_time`]).
    time: DateTime<Utc>,
    sensor: &'a str,
    values: [Option<f64>; 3],
}

/// `readings` grouped by sensor and instant, in the order each instant first appears; of a metric
/// given twice for one instant the first value is kept (as the store keeps the first one
/// stored). Also returns how many readings that leaves. A metric other than the three is
/// refused: there is no column for it.
fn instants(readings: &[Reading]) -> Result<(Vec<Instant<'_>>, u64), StoreError> {
    let mut rows: Vec<Instant<'_>> = Vec::with_capacity(readings.len() / METRICS.len() + 1);
    let mut index: foldhash::HashMap<(&str, i64), usize> =
        foldhash::HashMap::with_capacity_and_hasher(rows.capacity(), Default::default());
    let mut distinct = 0;
    for r in readings {
        let Some(m) = METRICS.iter().position(|m| *m == r.metric.as_str()) else {
            return Err(StoreError::UnknownMetric {
                sensor: r.sensor.to_string(),
                metric: r.metric.to_string(),
            });
        };
        let time = crate::rows::stored_time(r.time);
        let i = *index
            .entry((r.sensor.as_str(), time.timestamp_micros()))
            .or_insert_with(|| {
                rows.push(Instant {
                    time,
                    sensor: r.sensor.as_str(),
                    values: [None; 3],
                });
                rows.len() - 1
            });
        let slot = &mut rows[i].values[m];
        if slot.is_none() {
            *slot = Some(r.value);
            distinct += 1;
        }
    }
    Ok((rows, distinct))
}

/// `COPY readings FROM STDIN` in PostgreSQL's binary format, of `rows`: all or none.
///
/// Binary rather than text: the server then reads a `timestamptz` as 8 bytes and a `float8` as
/// 8 more, where the text format had it parse a date, a time and a decimal number for every
/// row (most of the server's CPU per row in the profile, on a machine it shares with the
/// broker and Dispecer).
async fn copy_readings(pool: &sqlx::PgPool, rows: &[Instant<'_>]) -> Result<(), sqlx::Error> {
    let data = copy_binary(rows).map_err(|e| sqlx::Error::Encode(e.into()))?;
    let mut conn = pool.acquire().await?;
    let mut copy = conn
        .copy_in_raw(
            "COPY readings (time, sensor, count, speed, occupancy) FROM STDIN (FORMAT binary)",
        )
        .await?;
    copy.send(data).await?;
    copy.finish().await?;
    Ok(())
}

/// Microseconds from the Unix epoch to PostgreSQL's, 2000-01-01 00:00:00 UTC, from which its
/// binary format counts a `timestamptz`.
const PG_EPOCH_MICROS: i64 = 946_684_800 * 1_000_000;

/// A reading the binary COPY cannot say.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct CopyEncodeError(String);

/// `rows` in COPY's binary format: the signature, a flags word (0: no OIDs) and an empty header
/// extension; per row the number of fields (5) and each field as its length and its bytes
/// (`time` as microseconds since 2000-01-01 UTC, `sensor` as UTF-8, each metric as an IEEE 754
/// double or, absent, the length -1 that is NULL; all big-endian); then the trailer, -1.
fn copy_binary(rows: &[Instant<'_>]) -> Result<Vec<u8>, CopyEncodeError> {
    const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
    // Per row: field count, 5 lengths, 4 × 8 bytes at most, and the sensor.
    let mut out = Vec::with_capacity(
        SIGNATURE.len() + 8 + 2 + rows.iter().map(|r| 54 + r.sensor.len()).sum::<usize>(),
    );
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&0i32.to_be_bytes()); // flags
    out.extend_from_slice(&0i32.to_be_bytes()); // header extension length
    for r in rows {
        // Microseconds as stored (`rows::stored_time`: the instant truncated to the µs, which
        // is what `timestamp_micros` counts; a leap second reads as the next second's start,
        // as PostgreSQL reads `23:59:60.5`). Far outside PostgreSQL's range the server refuses
        // the value, as it refused the text.
        let time = r
            .time
            .timestamp_micros()
            .checked_sub(PG_EPOCH_MICROS)
            .ok_or_else(|| CopyEncodeError(format!("reading time {} is out of range", r.time)))?;
        out.extend_from_slice(&5i16.to_be_bytes());
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&time.to_be_bytes());
        copy_text_field(&mut out, r.sensor)?;
        for v in r.values {
            match v {
                Some(v) => {
                    out.extend_from_slice(&8i32.to_be_bytes());
                    out.extend_from_slice(&v.to_bits().to_be_bytes());
                }
                None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    Ok(out)
}

/// `s` as a `text` field of the binary COPY: its length in bytes, then its UTF-8.
fn copy_text_field(out: &mut Vec<u8>, s: &str) -> Result<(), CopyEncodeError> {
    let len = i32::try_from(s.len())
        .map_err(|_| CopyEncodeError(format!("a text of {} bytes is too long", s.len())))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// How many of the readings of `rows` are not stored yet, `stored` telling which metrics of an
/// instant are (`None`: the instant is not).
fn new_readings(rows: &[Instant<'_>], stored: impl Fn(&Instant<'_>) -> Option<[bool; 3]>) -> u64 {
    rows.iter()
        .map(|r| {
            let had = stored(r).unwrap_or_default();
            r.values
                .iter()
                .zip(had)
                .filter(|(v, had)| v.is_some() && !had)
                .count() as u64
        })
        .sum()
}

/// `rows` merged into what is stored, in one transaction: an instant not stored yet is inserted,
/// one stored already gets the metrics it lacked (a value stored is never replaced). Returns
/// how many readings were new. The stored instants are read and locked first, so that the count
/// is exact (an instance writing the same new instant at the same moment may count it too; what
/// is stored is right either way).
async fn merge_readings_pg(pool: &sqlx::PgPool, rows: &[Instant<'_>]) -> Result<u64, sqlx::Error> {
    let mut times = Vec::with_capacity(rows.len());
    let mut sensors = Vec::with_capacity(rows.len());
    let mut columns: [Vec<Option<f64>>; 3] = Default::default();
    for r in rows {
        times.push(r.time);
        sensors.push(r.sensor);
        for (column, v) in columns.iter_mut().zip(r.values) {
            column.push(v);
        }
    }
    let mut tx = pool.begin().await?;
    let stored: Vec<(String, DateTime<Utc>, bool, bool, bool)> = sqlx::query_as(
        "SELECT sensor, time, count IS NOT NULL, speed IS NOT NULL, occupancy IS NOT NULL \
         FROM readings WHERE (sensor, time) IN (SELECT * FROM unnest($1::text[], $2::timestamptz[])) \
         FOR UPDATE",
    )
    .bind(&sensors)
    .bind(&times)
    .fetch_all(&mut *tx)
    .await?;
    let stored: foldhash::HashMap<(&str, i64), [bool; 3]> = stored
        .iter()
        .map(|(sensor, time, c, s, o)| ((sensor.as_str(), time.timestamp_micros()), [*c, *s, *o]))
        .collect();
    let new = new_readings(rows, |r| {
        stored.get(&(r.sensor, r.time.timestamp_micros())).copied()
    });
    if new > 0 {
        let [count, speed, occupancy] = &columns;
        sqlx::query(
            "INSERT INTO readings (time, sensor, count, speed, occupancy) \
             SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::float8[], $4::float8[], $5::float8[]) \
             ON CONFLICT (sensor, time) DO UPDATE SET \
                 count = COALESCE(readings.count, EXCLUDED.count), \
                 speed = COALESCE(readings.speed, EXCLUDED.speed), \
                 occupancy = COALESCE(readings.occupancy, EXCLUDED.occupancy)",
        )
        .bind(&times)
        .bind(&sensors)
        .bind(count)
        .bind(speed)
        .bind(occupancy)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(new)
}

/// `rows` into SQLite, all or nothing. A batch that fits in one statement (every batch of the
/// MQTT adapter on the embedded broker) is that statement alone: outside an explicit
/// transaction a statement is its own transaction, all or nothing, and durable when it returns
/// (WAL, `synchronous=FULL`). That is one round trip to the connection's thread instead of three
/// (`BEGIN`, `INSERT`, `COMMIT`), each two thread wake-ups, which under CPU contention was most
/// of a small batch's time. Larger batches go in several statements inside `BEGIN … COMMIT`.
/// The plain INSERT refuses the batch when one instant is stored already (a redelivery), as
/// PostgreSQL's COPY does, and the batch is then merged into what is stored
/// ([`merge_readings_sqlite`]). Returns how many readings were new (`distinct`, the batch's,
/// when every instant was), after the commit. Runs on the writer kept in `slot` (see
/// [`crate::WriterSlot`]) when there is one to keep.
async fn insert_readings_sqlite(
    pool: &sqlx::SqlitePool,
    slot: Option<&mut crate::WriterSlot>,
    rows: &[Instant<'_>],
    distinct: u64,
) -> Result<u64, sqlx::Error> {
    // An in-memory database has one connection: keeping it would starve everyone else.
    let Some(slot) = slot.filter(|_| pool.options().get_max_connections() > 1) else {
        let mut conn = pool.acquire().await?;
        return insert_readings_on(&mut conn, rows, distinct).await;
    };
    // A batch cancelled halfway leaves its transaction to roll back: not ours to reuse.
    if slot
        .as_mut()
        .is_some_and(|conn| sqlx::Connection::is_in_transaction(&**conn))
    {
        *slot = None;
    }
    let conn = match slot {
        Some(conn) => conn,
        None => slot.insert(pool.acquire().await?),
    };
    let result = insert_readings_on(conn, rows, distinct).await;
    if result.is_err() {
        // Back to the pool, which closes it if a transaction was left open.
        *slot = None;
    }
    result
}

/// `rows` into SQLite through `conn`; see [`insert_readings_sqlite`].
async fn insert_readings_on(
    conn: &mut sqlx::SqliteConnection,
    rows: &[Instant<'_>],
    distinct: u64,
) -> Result<u64, sqlx::Error> {
    let inserted = if rows.len() <= ROWS_PER_STATEMENT {
        insert_statement(rows, false)
            .build()
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map(|_| ())
    } else {
        insert_in_transaction(conn, rows).await
    };
    match inserted {
        Ok(()) => Ok(distinct),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            merge_readings_sqlite(conn, rows).await
        }
        Err(e) => Err(e),
    }
}

/// `rows` in several INSERT statements inside one transaction.
async fn insert_in_transaction(
    conn: &mut sqlx::SqliteConnection,
    rows: &[Instant<'_>],
) -> Result<(), sqlx::Error> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        insert_statement(chunk, false)
            .build()
            .persistent(false)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// `rows` merged into what SQLite stores, in one transaction: an instant not stored yet is
/// inserted, one stored already gets the metrics it lacked (a value stored is never replaced).
/// Returns how many readings were new: the stored instants are read first, inside the
/// transaction, and SQLite has one writer at a time.
async fn merge_readings_sqlite(
    conn: &mut sqlx::SqliteConnection,
    rows: &[Instant<'_>],
) -> Result<u64, sqlx::Error> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    let mut stored: foldhash::HashMap<(String, i64), [bool; 3]> = Default::default();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT sensor, time_us, count IS NOT NULL, speed IS NOT NULL, \
             occupancy IS NOT NULL FROM readings WHERE (sensor, time_us) IN (",
        );
        q.push_values(chunk, |mut b, r| {
            b.push_bind(r.sensor).push_bind(micros(r.time));
        });
        q.push(")");
        let found: Vec<(String, i64, bool, bool, bool)> = q
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *tx)
            .await?;
        stored.extend(
            found
                .into_iter()
                .map(|(sensor, time, c, s, o)| ((sensor, time), [c, s, o])),
        );
    }
    let new = new_readings(rows, |r| {
        stored.get(&(r.sensor.to_owned(), micros(r.time))).copied()
    });
    if new > 0 {
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            insert_statement(chunk, true)
                .build()
                .persistent(false)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(new)
}

/// One INSERT of `rows` into SQLite's readings: plain (refused as a whole when an instant is
/// stored already), or with `merge` adding to a stored instant the metrics it lacks. Not kept in
/// the statement cache (`persistent(false)` where it is run): its text changes with the number
/// of rows, and would push the events' statements out.
fn insert_statement<'a>(rows: &'a [Instant<'a>], merge: bool) -> QueryBuilder<'a, sqlx::Sqlite> {
    let mut q =
        QueryBuilder::new("INSERT INTO readings (sensor, time_us, count, speed, occupancy) ");
    q.push_values(rows, |mut b, r| {
        b.push_bind(r.sensor).push_bind(micros(r.time));
        for v in r.values {
            b.push_bind(v);
        }
    });
    if merge {
        q.push(
            " ON CONFLICT (sensor, time_us) DO UPDATE SET \
             count = coalesce(count, excluded.count), \
             speed = coalesce(speed, excluded.speed), \
             occupancy = coalesce(occupancy, excluded.occupancy)",
        );
    }
    q
}

impl Store {
    /// Stores `readings` in one transaction; a reading already stored (same sensor, metric and
    /// time) is skipped. Returns how many were new. Returns only after commit.
    pub async fn record_readings(&self, readings: &[Reading]) -> Result<u64, StoreError> {
        let result = {
            let mut turn = self.write_turn().await;
            self.record_readings_once(readings, turn.as_deref_mut())
                .await
        };
        self.writes.note(&result);
        result
    }

    async fn record_readings_once(
        &self,
        readings: &[Reading],
        writer: Option<&mut crate::WriterSlot>,
    ) -> Result<u64, StoreError> {
        if readings.is_empty() {
            return Ok(0);
        }
        match &self.pool {
            Pool::Sqlite(pool) => {
                let (rows, distinct) = instants(readings)?;
                // SQLite reads NaN back as NULL: a reading it would lose is refused.
                if let Some((r, m)) = rows.iter().find_map(|r| {
                    let m = r.values.iter().position(|v| v.is_some_and(f64::is_nan))?;
                    Some((r, m))
                }) {
                    return Err(StoreError::NotANumber {
                        sensor: r.sensor.to_owned(),
                        metric: METRICS[m].to_owned(),
                    });
                }
                Ok(insert_readings_sqlite(pool, writer, &rows, distinct).await?)
            }
            Pool::Postgres(pool) => {
                let (rows, distinct) = instants(readings)?;
                // The fast path is COPY, the server's bulk load; it refuses the whole batch when
                // one instant is stored already (a redelivery after a crash or a reconnect), and
                // the batch is then merged into what is stored (`merge_readings_pg`).
                match copy_readings(pool, &rows).await {
                    Ok(()) => Ok(distinct),
                    Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {
                        Ok(merge_readings_pg(pool, &rows).await?)
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// The readings of `sensor` in `[from, to)`, rolled up by `step`, oldest first, at most
    /// [`MAX_ROLLUP_ROWS`] rows.
    pub async fn readings_rollup(
        &self,
        sensor: &SensorId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        step: Step,
    ) -> Result<Vec<RollupRow>, StoreError> {
        let rows: Vec<RollupRow> = match &self.pool {
            Pool::Sqlite(pool) => {
                let width = step.seconds() * 1_000_000;
                // One row per instant, as on PostgreSQL (there without LATERAL: a SELECT per
                // metric, and each bucket aggregated once, column by column).
                let sql = if step == Step::Raw {
                    "SELECT time_us, metric, value, value, value, 1 FROM ( \
                     SELECT time_us, 'count' AS metric, count AS value FROM readings \
                      WHERE sensor = $1 AND time_us >= $2 AND time_us < $3 AND count IS NOT NULL \
                     UNION ALL SELECT time_us, 'occupancy', occupancy FROM readings \
                      WHERE sensor = $1 AND time_us >= $2 AND time_us < $3 AND occupancy IS NOT NULL \
                     UNION ALL SELECT time_us, 'speed', speed FROM readings \
                      WHERE sensor = $1 AND time_us >= $2 AND time_us < $3 AND speed IS NOT NULL) \
                     WHERE $5 >= 0 ORDER BY time_us, metric LIMIT $4"
                } else {
                    "WITH g AS (SELECT (time_us / $5) * $5 AS b, \
                      avg(count) AS ca, min(count) AS cmin, max(count) AS cmax, count(count) AS cn, \
                      avg(occupancy) AS oa, min(occupancy) AS omin, max(occupancy) AS omax, \
                      count(occupancy) AS on_, \
                      avg(speed) AS sa, min(speed) AS smin, max(speed) AS smax, count(speed) AS sn \
                      FROM readings WHERE sensor = $1 AND time_us >= $2 AND time_us < $3 GROUP BY b) \
                     SELECT b, 'count', ca, cmin, cmax, cn FROM g WHERE cn > 0 \
                     UNION ALL SELECT b, 'occupancy', oa, omin, omax, on_ FROM g WHERE on_ > 0 \
                     UNION ALL SELECT b, 'speed', sa, smin, smax, sn FROM g WHERE sn > 0 \
                     ORDER BY 1, 2 LIMIT $4"
                };
                let raw: Vec<(i64, String, f64, f64, f64, i64)> = sqlx::query_as(sql)
                    .bind(sensor.as_str())
                    .bind(micros(from))
                    .bind(micros(to))
                    .bind(MAX_ROLLUP_ROWS)
                    .bind(width)
                    .fetch_all(pool)
                    .await?;
                raw.into_iter()
                    .map(|(b, metric, avg, min, max, count)| {
                        Ok(RollupRow {
                            bucket: from_micros(b)?,
                            metric,
                            avg,
                            min,
                            max,
                            count,
                        })
                    })
                    .collect::<Result<_, StoreError>>()?
            }
            Pool::Postgres(pool) => {
                let bucket = match (step, self.backend) {
                    (Step::Raw, _) => "r.time",
                    (_, Backend::Timescale) => "time_bucket(make_interval(secs => $5), r.time)",
                    _ => "date_bin(make_interval(secs => $5), r.time, TIMESTAMPTZ '1970-01-01 00:00:00+00')",
                };
                // One row per instant, a reading per metric stored in it. Rolled up, each
                // bucket is aggregated once, column by column, and then told as a row per
                // metric (unpivoting every instant first took twice as long).
                let sql = if step == Step::Raw {
                    "SELECT r.time, m.metric, m.value, m.value, m.value, 1::BIGINT \
                     FROM readings r CROSS JOIN LATERAL \
                     (VALUES ('count', r.count), ('occupancy', r.occupancy), ('speed', r.speed)) \
                     AS m(metric, value) \
                     WHERE r.sensor = $1 AND r.time >= $2 AND r.time < $3 AND m.value IS NOT NULL \
                     AND $5 >= 0 ORDER BY r.time, m.metric LIMIT $4"
                        .to_owned()
                } else {
                    let columns = ["count", "occupancy", "speed"]
                        .map(|c| format!("avg({c}), min({c}), max({c}), count({c})"))
                        .join(", ");
                    format!(
                        "SELECT g.b, m.metric, m.avg, m.min, m.max, m.n FROM \
                         (SELECT {bucket} AS b, {columns} FROM readings r \
                          WHERE r.sensor = $1 AND r.time >= $2 AND r.time < $3 GROUP BY b) \
                         AS g(b, ca, cmin, cmax, cn, oa, omin, omax, on_, sa, smin, smax, sn) \
                         CROSS JOIN LATERAL (VALUES \
                          ('count', g.ca, g.cmin, g.cmax, g.cn), \
                          ('occupancy', g.oa, g.omin, g.omax, g.on_), \
                          ('speed', g.sa, g.smin, g.smax, g.sn)) AS m(metric, avg, min, max, n) \
                         WHERE m.n > 0 ORDER BY g.b, m.metric LIMIT $4"
                    )
                };
                let raw: Vec<(DateTime<Utc>, String, f64, f64, f64, i64)> = sqlx::query_as(&sql)
                    .bind(sensor.as_str())
                    .bind(from)
                    .bind(to)
                    .bind(MAX_ROLLUP_ROWS)
                    .bind(step.seconds() as f64)
                    .fetch_all(pool)
                    .await?;
                raw.into_iter()
                    .map(|(bucket, metric, avg, min, max, count)| RollupRow {
                        bucket,
                        metric,
                        avg,
                        min,
                        max,
                        count,
                    })
                    .collect()
            }
        };
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use model::Reading;

    use super::{copy_binary, instants};
    use crate::StoreError;

    #[test]
    fn binary_copy_is_laid_out_as_postgresql_reads_it() {
        // 2000-01-01 00:00:01.5 UTC: 1.5 s after PostgreSQL's epoch.
        let time = DateTime::<Utc>::from_timestamp_micros(946_684_801_500_000).expect("a time");
        let r = |metric: &str, value| Reading {
            sensor: "tc-a".into(),
            metric: metric.into(),
            time,
            value,
        };
        let batch = [r("speed", -2.5), r("count", 7.0)];
        let (rows, n) = instants(&batch).expect("known metrics");
        assert_eq!(n, 2);
        let data = copy_binary(&rows).expect("encodable");
        let mut expected = b"PGCOPY\n\xff\r\n\0".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[0, 5]);
        expected.extend_from_slice(&[0, 0, 0, 8]);
        expected.extend_from_slice(&1_500_000i64.to_be_bytes());
        expected.extend_from_slice(&[0, 0, 0, 4]);
        expected.extend_from_slice(b"tc-a");
        expected.extend_from_slice(&[0, 0, 0, 8]);
        expected.extend_from_slice(&7.0f64.to_be_bytes());
        expected.extend_from_slice(&[0, 0, 0, 8]);
        expected.extend_from_slice(&(-2.5f64).to_be_bytes());
        expected.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // occupancy: NULL
        expected.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(data, expected);
        // Before 2000, and below the microsecond: truncated to the µs before, as stored.
        let early = DateTime::<Utc>::from_timestamp_nanos(-1_999);
        assert_eq!(crate::rows::stored_time(early).timestamp_micros(), -2);
        let batch = [Reading {
            time: early,
            ..r("speed", 1.0)
        }];
        let (rows, _) = instants(&batch).expect("known metrics");
        let data = copy_binary(&rows).expect("encodable");
        assert_eq!(data[25..33], (-946_684_800_000_000i64 - 2).to_be_bytes());
    }

    #[test]
    fn readings_group_into_one_row_per_sensor_and_instant() {
        let t = |us| DateTime::<Utc>::from_timestamp_micros(us).expect("a time");
        let r = |sensor: &str, metric: &str, time, value| Reading {
            sensor: sensor.into(),
            metric: metric.into(),
            time,
            value,
        };
        let batch = [
            r("a", "count", t(1), 1.0),
            r("b", "count", t(1), 2.0),
            r("a", "speed", t(1), 3.0),
            // The same instant to the microsecond: merged; the first value of a metric kept.
            r(
                "a",
                "count",
                DateTime::<Utc>::from_timestamp_nanos(1_999),
                9.0,
            ),
            r("a", "occupancy", t(2), 4.0),
        ];
        let (rows, n) = instants(&batch).expect("known metrics");
        assert_eq!(n, 4);
        let got: Vec<_> = rows
            .iter()
            .map(|i| (i.sensor, i.time.timestamp_micros(), i.values))
            .collect();
        assert_eq!(
            got,
            [
                ("a", 1, [Some(1.0), Some(3.0), None]),
                ("b", 1, [Some(2.0), None, None]),
                ("a", 2, [None, None, Some(4.0)]),
            ]
        );
        let refused = instants(&[r("a", "headway", t(1), 1.0)]).expect_err("unknown metric");
        assert!(
            matches!(&refused, StoreError::UnknownMetric { metric, .. } if metric == "headway"),
            "{refused:?}"
        );
    }
}
