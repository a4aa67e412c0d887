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

/// Rows per INSERT statement on SQLite: 4 parameters each, under SQLite's limit of 32 766
/// bound parameters per statement (the bundled SQLite's `SQLITE_MAX_VARIABLE_NUMBER`).
const ROWS_PER_STATEMENT: usize = 8000;

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

/// `COPY readings FROM STDIN` in PostgreSQL's binary format, of `readings`: all or none.
///
/// Binary rather than text: the server then reads a `timestamptz` as 8 bytes and a `float8` as
/// 8 more, where the text format had it parse a date, a time and a decimal number for every
/// row (most of the server's CPU per row in the profile, on a machine it shares with the
/// broker and Dispecer).
async fn copy_readings(pool: &sqlx::PgPool, readings: &[Reading]) -> Result<u64, sqlx::Error> {
    let data = copy_binary(readings).map_err(|e| sqlx::Error::Encode(e.into()))?;
    let mut conn = pool.acquire().await?;
    let mut copy = conn
        .copy_in_raw("COPY readings (time, sensor, metric, value) FROM STDIN (FORMAT binary)")
        .await?;
    copy.send(data).await?;
    copy.finish().await
}

/// Microseconds from the Unix epoch to PostgreSQL's, 2000-01-01 00:00:00 UTC, from which its
/// binary format counts a `timestamptz`.
const PG_EPOCH_MICROS: i64 = 946_684_800 * 1_000_000;

/// A reading the binary COPY cannot say.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct CopyEncodeError(String);

/// `readings` in COPY's binary format: the signature, a flags word (0: no OIDs) and an empty
/// header extension; per row the number of fields (4) and each field as its length and its
/// bytes (`time` as microseconds since 2000-01-01 UTC, `sensor` and `metric` as UTF-8, `value`
/// as an IEEE 754 double, all big-endian); then the trailer, -1.
fn copy_binary(readings: &[Reading]) -> Result<Vec<u8>, CopyEncodeError> {
    const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
    // Per row: field count, 4 lengths, 2 × 8 bytes, and the two strings.
    let mut out = Vec::with_capacity(
        SIGNATURE.len()
            + 8
            + 2
            + readings
                .iter()
                .map(|r| 34 + r.sensor.as_str().len() + r.metric.len())
                .sum::<usize>(),
    );
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&0i32.to_be_bytes()); // flags
    out.extend_from_slice(&0i32.to_be_bytes()); // header extension length
    for r in readings {
        // Microseconds as stored (`rows::stored_time`: the instant truncated to the µs, which
        // is what `timestamp_micros` counts; a leap second reads as the next second's start,
        // as PostgreSQL reads `23:59:60.5`). Far outside PostgreSQL's range the server refuses
        // the value, as it refused the text.
        let time = r
            .time
            .timestamp_micros()
            .checked_sub(PG_EPOCH_MICROS)
            .ok_or_else(|| CopyEncodeError(format!("reading time {} is out of range", r.time)))?;
        out.extend_from_slice(&4i16.to_be_bytes());
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&time.to_be_bytes());
        copy_text_field(&mut out, r.sensor.as_str())?;
        copy_text_field(&mut out, &r.metric)?;
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&r.value.to_bits().to_be_bytes());
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

/// `readings` as one INSERT … SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING: one parse, no
/// bind-parameter limit; returns how many were new.
async fn insert_readings_pg(pool: &sqlx::PgPool, readings: &[Reading]) -> Result<u64, sqlx::Error> {
    let mut times = Vec::with_capacity(readings.len());
    let mut sensors = Vec::with_capacity(readings.len());
    let mut metrics = Vec::with_capacity(readings.len());
    let mut values = Vec::with_capacity(readings.len());
    for r in readings {
        times.push(crate::rows::stored_time(r.time));
        sensors.push(r.sensor.as_str());
        metrics.push(r.metric.as_str());
        values.push(r.value);
    }
    Ok(sqlx::query(
        "INSERT INTO readings (time, sensor, metric, value) \
         SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::float8[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&times)
    .bind(&sensors)
    .bind(&metrics)
    .bind(&values)
    .execute(pool)
    .await?
    .rows_affected())
}

/// `readings` into SQLite in one transaction. A batch that fits in one statement (every batch
/// of the MQTT adapter on the embedded broker) is that statement alone: outside an explicit
/// transaction a statement is its own transaction, all or nothing, and durable when it returns
/// (WAL, `synchronous=FULL`). That is one round trip to the connection's thread instead of three
/// (`BEGIN`, `INSERT`, `COMMIT`), each two thread wake-ups, which under CPU contention was most
/// of a small batch's time. Larger batches go in several statements inside `BEGIN … COMMIT`.
/// Returns how many were new, after the commit. Runs on the writer kept in `slot` (see
/// [`crate::WriterSlot`]) when there is one to keep.
async fn insert_readings_sqlite(
    pool: &sqlx::SqlitePool,
    slot: Option<&mut crate::WriterSlot>,
    readings: &[Reading],
) -> Result<u64, sqlx::Error> {
    // An in-memory database has one connection: keeping it would starve everyone else.
    let Some(slot) = slot.filter(|_| pool.options().get_max_connections() > 1) else {
        let mut conn = pool.acquire().await?;
        return insert_readings_on(&mut conn, readings).await;
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
    let result = insert_readings_on(conn, readings).await;
    if result.is_err() {
        // Back to the pool, which closes it if a transaction was left open.
        *slot = None;
    }
    result
}

/// `readings` into SQLite through `conn`: one statement when they fit in one, else several in
/// one transaction. Returns how many were new, after the commit.
async fn insert_readings_on(
    conn: &mut sqlx::SqliteConnection,
    readings: &[Reading],
) -> Result<u64, sqlx::Error> {
    if readings.len() <= ROWS_PER_STATEMENT {
        return Ok(insert_statement(readings)
            .build()
            .persistent(false)
            .execute(&mut *conn)
            .await?
            .rows_affected());
    }
    let mut tx = sqlx::Connection::begin(conn).await?;
    let mut inserted = 0;
    for chunk in readings.chunks(ROWS_PER_STATEMENT) {
        inserted += insert_statement(chunk)
            .build()
            .persistent(false)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    tx.commit().await?;
    Ok(inserted)
}

/// One INSERT of `rows` into SQLite's readings, skipping those already stored. Not kept in the
/// statement cache (`persistent(false)` where it is run): its text changes with the number of
/// rows, and would push the events' statements out.
fn insert_statement(rows: &[Reading]) -> QueryBuilder<'_, sqlx::Sqlite> {
    let mut q = QueryBuilder::new("INSERT INTO readings (sensor, metric, time_us, value) ");
    q.push_values(rows, |mut b, r| {
        b.push_bind(r.sensor.as_str())
            .push_bind(r.metric.as_str())
            .push_bind(micros(r.time))
            .push_bind(r.value);
    });
    q.push(" ON CONFLICT DO NOTHING");
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
            Pool::Sqlite(pool) => Ok(insert_readings_sqlite(pool, writer, readings).await?),
            Pool::Postgres(pool) => {
                // The fast path is COPY, the server's bulk load; it refuses the whole batch when
                // one reading is stored already (a redelivery after a crash or a reconnect), and
                // the batch then goes in as one INSERT … ON CONFLICT DO NOTHING over arrays. (That
                // statement alone measured 0.63–0.68× of COPY in `dispecer-bench`.)
                match copy_readings(pool, readings).await {
                    Ok(n) => Ok(n),
                    Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {
                        Ok(insert_readings_pg(pool, readings).await?)
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
                let sql = if step == Step::Raw {
                    "SELECT time_us, metric, value, value, value, 1 FROM readings \
                     WHERE sensor = $1 AND time_us >= $2 AND time_us < $3 AND $5 >= 0 ORDER BY time_us, metric LIMIT $4"
                } else {
                    "SELECT (time_us / $5) * $5 AS b, metric, avg(value), min(value), max(value), count(*) \
                     FROM readings WHERE sensor = $1 AND time_us >= $2 AND time_us < $3 \
                     GROUP BY b, metric ORDER BY b, metric LIMIT $4"
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
                    (Step::Raw, _) => "time",
                    (_, Backend::Timescale) => "time_bucket(make_interval(secs => $5), time)",
                    _ => "date_bin(make_interval(secs => $5), time, TIMESTAMPTZ '1970-01-01 00:00:00+00')",
                };
                let sql = if step == Step::Raw {
                    "SELECT time, metric, value, value, value, 1::BIGINT FROM readings \
                     WHERE sensor = $1 AND time >= $2 AND time < $3 AND $5 >= 0 ORDER BY time, metric LIMIT $4"
                        .to_owned()
                } else {
                    format!(
                        "SELECT {bucket} AS b, metric, avg(value), min(value), max(value), count(*) \
                         FROM readings WHERE sensor = $1 AND time >= $2 AND time < $3 \
                         GROUP BY b, metric ORDER BY b, metric LIMIT $4"
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

    use super::copy_binary;

    #[test]
    fn binary_copy_is_laid_out_as_postgresql_reads_it() {
        // 2000-01-01 00:00:01.5 UTC: 1.5 s after PostgreSQL's epoch.
        let time = DateTime::<Utc>::from_timestamp_micros(946_684_801_500_000).expect("a time");
        let r = Reading {
            sensor: "tc-a".into(),
            metric: "speed".into(),
            time,
            value: -2.5,
        };
        let data = copy_binary(std::slice::from_ref(&r)).expect("encodable");
        let mut expected = b"PGCOPY\n\xff\r\n\0".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[0, 4]);
        expected.extend_from_slice(&[0, 0, 0, 8]);
        expected.extend_from_slice(&1_500_000i64.to_be_bytes());
        expected.extend_from_slice(&[0, 0, 0, 4]);
        expected.extend_from_slice(b"tc-a");
        expected.extend_from_slice(&[0, 0, 0, 5]);
        expected.extend_from_slice(b"speed");
        expected.extend_from_slice(&[0, 0, 0, 8]);
        expected.extend_from_slice(&(-2.5f64).to_be_bytes());
        expected.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(data, expected);
        // Before 2000, and below the microsecond: truncated to the µs before, as stored.
        let early = DateTime::<Utc>::from_timestamp_nanos(-1_999);
        assert_eq!(crate::rows::stored_time(early).timestamp_micros(), -2);
        let data = copy_binary(&[Reading {
            time: early,
            ..r.clone()
        }])
        .expect("encodable");
        assert_eq!(data[25..33], (-946_684_800_000_000i64 - 2).to_be_bytes());
    }
}
