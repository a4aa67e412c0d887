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

/// `COPY readings FROM STDIN` (text format) of `readings`: all or none.
async fn copy_readings(pool: &sqlx::PgPool, readings: &[Reading]) -> Result<u64, sqlx::Error> {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(readings.len() * 64);
    for r in readings {
        copy_time(&mut text, r.time);
        let _ = writeln!(
            text,
            "\t{}\t{}\t{}",
            copy_escaped(r.sensor.as_str()),
            copy_escaped(&r.metric),
            r.value
        );
    }
    let mut conn = pool.acquire().await?;
    let mut copy = conn
        .copy_in_raw("COPY readings (time, sensor, metric, value) FROM STDIN")
        .await?;
    copy.send(text.into_bytes()).await?;
    copy.finish().await
}

/// `t` as COPY's text format takes a `timestamptz`, to the microsecond (as stored), in UTC:
/// `2026-11-29 21:50:00.123456+00`. Written from its fields: chrono's `format` parses its
/// format string again for every row, which was most of the COPY's text in the profile.
fn copy_time(text: &mut String, t: DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write as _;
    let t = crate::rows::stored_time(t);
    let micros = t.nanosecond() / 1000;
    if !(1..=9999).contains(&t.year()) || micros >= 1_000_000 {
        // Beyond four-digit years, or a leap second: chrono says it as PostgreSQL reads it.
        let _ = write!(text, "{}", t.format("%Y-%m-%d %H:%M:%S%.6f+00"));
        return;
    }
    let _ = write!(
        text,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{micros:06}+00",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
}

/// `s` as a field of COPY's text format: backslash, tab, newline and carriage return escaped.
fn copy_escaped(s: &str) -> std::borrow::Cow<'_, str> {
    if !s
        .bytes()
        .any(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r'))
    {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.into()
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
mod copy_tests {
    use super::copy_escaped;

    #[test]
    fn copy_fields_escape_what_the_text_format_reads_specially() {
        assert_eq!(copy_escaped("speed"), "speed");
        assert_eq!(copy_escaped("a\tb\\c\nd\re"), "a\\tb\\\\c\\nd\\re");
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone, Utc};

    use super::copy_time;

    #[test]
    fn copy_time_says_what_chrono_says() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 29).expect("a date");
        let times = [
            Utc.timestamp_micros(1_795_000_000_123_456).single(),
            Utc.timestamp_opt(0, 0).single(),
            Utc.timestamp_opt(1_795_000_000, 999_999_999).single(),
            Utc.timestamp_opt(253_402_300_799, 7_000).single(),
            // A leap second.
            day.and_hms_nano_opt(23, 59, 59, 1_500_000_000)
                .map(|t| t.and_utc()),
        ];
        for t in times.into_iter().map(|t| t.expect("a valid instant")) {
            let mut text = String::new();
            copy_time(&mut text, t);
            let expected = crate::rows::stored_time(t)
                .format("%Y-%m-%d %H:%M:%S%.6f+00")
                .to_string();
            assert_eq!(text, expected, "{t:?}");
        }
    }
}
