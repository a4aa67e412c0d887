//! The story on TimescaleDB and on plain PostgreSQL, each in a database of its own.

use std::future::Future;

use sqlx::{Connection, PgConnection};
use store::Backend;

use crate::story::{self, Target};

const ADMIN_URL_VAR: &str = "DISPECER_TEST_PG_URL";

/// The admin URL of the test server. Fails (never skips) when it is not set.
fn admin_url() -> String {
    match std::env::var(ADMIN_URL_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{ADMIN_URL_VAR} is not set: run scripts/test.sh (it starts a TimescaleDB server and \
             sets it), or set it to an admin URL such as \
             postgres://postgres:dispecer@127.0.0.1:55432/postgres"
        ),
    }
}

/// `admin` with its database replaced by `database`.
fn with_database(admin: &str, database: &str) -> String {
    let (base, query) = admin.split_once('?').unwrap_or((admin, ""));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut url = format!("{}/{database}", &base[..path_start]);
    if !query.is_empty() {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// Runs `test` with the URL of a fresh database, then drops the database, whatever happened.
pub(crate) async fn in_fresh_database<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let admin = admin_url();
    let name = format!("dispecer_test_{}", uuid::Uuid::now_v7().simple());
    let mut conn = PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test server at {ADMIN_URL_VAR}: {e}"));
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .expect("create the test database");
    let outcome = tokio::spawn(test(with_database(&admin, &name))).await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .expect("drop the test database");
    let _ = conn.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn story_on_timescaledb() {
    in_fresh_database(|url| async move {
        story::run(Target {
            url: url.clone(),
            raw_url: url,
            backend: Backend::Timescale,
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn story_on_plain_postgresql() {
    in_fresh_database(|url| async move {
        story::run(Target {
            url: format!("{url}?timescaledb=off"),
            raw_url: url,
            backend: Backend::Postgres,
        })
        .await;
    })
    .await;
}

#[test]
fn database_urls() {
    assert_eq!(
        with_database("postgres://u:p@127.0.0.1:55432/postgres", "x"),
        "postgres://u:p@127.0.0.1:55432/x"
    );
    assert_eq!(
        with_database("postgresql://h:1/postgres?sslmode=disable", "x"),
        "postgresql://h:1/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
}

/// Readings written by `Store::record_readings` (binary COPY) and read back as stored: every
/// time to the microsecond (before and after PostgreSQL's epoch of 2000, at the ends of its
/// range, a leap second) and every value bit for bit; texts with the characters COPY's text
/// format escaped; a time PostgreSQL cannot hold refuses the whole batch.
async fn readings_round_trip(url: String) {
    use chrono::{DateTime, NaiveDate, TimeZone, Utc};
    use model::Reading;

    let store = store::Store::connect(&url).await.expect("connect");
    let at = |y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, us: u32| -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|d| d.and_hms_micro_opt(h, mi, s, us))
            .expect("a valid date")
            .and_utc()
    };
    let times = [
        at(2026, 11, 29, 21, 50, 0, 123_456),
        DateTime::<Utc>::UNIX_EPOCH,
        // 1969-12-31 23:59:59.999998001: stored as …998.
        DateTime::<Utc>::from_timestamp_nanos(-1_999),
        at(2000, 1, 1, 0, 0, 0, 0),
        at(1999, 12, 31, 23, 59, 59, 999_999),
        at(9999, 12, 31, 23, 59, 59, 999_999),
        at(1, 1, 1, 0, 0, 0, 0),
        // PostgreSQL's first and (nearly) last representable instants: 4714-11-24 BC, 294276.
        at(-4713, 11, 24, 0, 0, 0, 0),
        at(200_000, 6, 1, 12, 0, 0, 1),
        // A leap second: PostgreSQL reads 23:59:60.5 as the next day's 00:00:00.5.
        NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_micro_opt(23, 59, 59, 1_500_000))
            .expect("a leap second")
            .and_utc(),
    ];
    let values = [
        0.1 + 0.2,
        -0.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MIN_POSITIVE,
        5e-324,
        f64::MAX,
        -1e300,
        12.0,
    ];
    let sensors = ["tc-a", "tc-ş\t\\\n\r b"];
    let mut batch = Vec::new();
    for (i, (time, value)) in times.iter().zip(values).enumerate() {
        batch.push(Reading {
            sensor: sensors[i % 2].into(),
            metric: ["count", "speed", "occupancy"][i % 3].into(),
            time: *time,
            value,
        });
    }
    assert_eq!(
        store.record_readings(&batch).await.expect("record"),
        batch.len() as u64
    );
    // Again: every one a duplicate (COPY refuses the batch, the merge finds them all stored).
    assert_eq!(store.record_readings(&batch).await.expect("again"), 0);
    // A stored instant with a metric it lacked, beside a duplicate: one new reading, merged
    // into the instant's row; the stored value of the duplicate is kept.
    let another_metric = Reading {
        metric: "occupancy".into(),
        value: 42.0,
        ..batch[1].clone()
    };
    let changed_duplicate = Reading {
        value: -1.0,
        ..batch[0].clone()
    };
    assert_eq!(
        store
            .record_readings(&[changed_duplicate, another_metric.clone()])
            .await
            .expect("merge"),
        1
    );
    batch.push(another_metric);
    // A time before PostgreSQL's range, or a metric with no column: the whole batch is refused,
    // nothing is stored.
    let too_early = Reading {
        time: at(-5000, 1, 1, 0, 0, 0, 0),
        ..batch[0].clone()
    };
    let fresh = Reading {
        time: batch[0].time + chrono::Duration::seconds(1),
        ..batch[0].clone()
    };
    assert!(store
        .record_readings(&[fresh.clone(), too_early])
        .await
        .is_err());
    let unknown = Reading {
        metric: "m\\t".into(),
        ..fresh.clone()
    };
    assert!(matches!(
        store.record_readings(&[fresh, unknown]).await,
        Err(store::StoreError::UnknownMetric { .. })
    ));

    let mut conn = PgConnection::connect(&url).await.expect("connect");
    let stored: Vec<(DateTime<Utc>, String, String, f64)> = sqlx::query_as(
        "SELECT r.time, r.sensor, m.metric, m.value FROM readings r CROSS JOIN LATERAL \
             (VALUES ('count', r.count), ('speed', r.speed), ('occupancy', r.occupancy)) \
             AS m(metric, value) WHERE m.value IS NOT NULL",
    )
    .fetch_all(&mut conn)
    .await
    .expect("read back");
    assert_eq!(stored.len(), batch.len());
    for r in &batch {
        let time = Utc
            .timestamp_micros(r.time.timestamp_micros())
            .single()
            .expect("a time");
        let found = stored
            .iter()
            .find(|(t, s, m, _)| *t == time && s == r.sensor.as_str() && m == r.metric.as_str())
            .unwrap_or_else(|| panic!("{r:?} not stored as {time:?}"));
        assert!(
            found.3.to_bits() == r.value.to_bits() || (found.3.is_nan() && r.value.is_nan()),
            "{r:?} stored as {found:?}"
        );
    }
    // The server reads the times as meant, not only as this client decodes them.
    let texts: Vec<String> = sqlx::query_scalar(
        "SELECT to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US BC') FROM readings \
         ORDER BY time",
    )
    .fetch_all(&mut conn)
    .await
    .expect("read as text");
    assert_eq!(
        texts,
        [
            "4714-11-24 00:00:00.000000 BC",
            "0001-01-01 00:00:00.000000 AD",
            "1969-12-31 23:59:59.999998 AD",
            "1970-01-01 00:00:00.000000 AD",
            "1999-12-31 23:59:59.999999 AD",
            "2000-01-01 00:00:00.000000 AD",
            "2017-01-01 00:00:00.500000 AD",
            "2026-11-29 21:50:00.123456 AD",
            "9999-12-31 23:59:59.999999 AD",
            "200000-06-01 12:00:00.000001 AD",
        ]
    );
    let _ = conn.close().await;
    store.close().await;
}

#[tokio::test]
async fn readings_round_trip_on_timescaledb() {
    in_fresh_database(readings_round_trip).await;
}

#[tokio::test]
async fn readings_round_trip_on_plain_postgresql() {
    in_fresh_database(|url| readings_round_trip(format!("{url}?timescaledb=off"))).await;
}

/// Migration 0017 on a database that already holds readings (one row per metric): they are
/// copied into one row per sensor and instant, each still stored once; the table has one
/// B-tree, the unique `(sensor, time)` (plus the BRIN index on plain PostgreSQL), on the
/// hypertable's chunks as well, and the sensor compares byte by byte.
async fn readings_migrate_to_one_row_per_instant(url: String, timescale: bool) {
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    if timescale {
        sqlx::query("CREATE EXTENSION IF NOT EXISTS timescaledb")
            .execute(&pool)
            .await
            .expect("timescaledb");
    }
    // The schema as the release before 0017 left it, with readings in two days (two chunks).
    crate::fixtures::migrations_before("postgres", 17)
        .await
        .run(&pool)
        .await
        .expect("migrate to 0016");
    let old = crate::fixtures::old_readings();
    for r in &old {
        sqlx::query("INSERT INTO readings (time, sensor, metric, value) VALUES ($1, $2, $3, $4)")
            .bind(r.time)
            .bind(r.sensor.as_str())
            .bind(r.metric.as_str())
            .bind(r.value)
            .execute(&pool)
            .await
            .expect("an old reading");
    }

    let store = store::Store::connect(&url)
        .await
        .expect("connect and migrate");
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'readings' ORDER BY indexname",
    )
    .fetch_all(&pool)
    .await
    .expect("indexes");
    let unique =
        "CREATE UNIQUE INDEX readings_sensor_time ON public.readings USING btree (sensor, \"time\")";
    if timescale {
        assert_eq!(indexes, [unique]);
    } else {
        let brin = "CREATE INDEX readings_time_brin ON public.readings USING brin (\"time\")";
        assert_eq!(indexes, [unique, brin]);
    }
    let collation: Option<String> = sqlx::query_scalar(
        "SELECT collation_name::text FROM information_schema.columns \
         WHERE table_name = 'readings' AND column_name = 'sensor'",
    )
    .fetch_one(&pool)
    .await
    .expect("collation");
    assert_eq!(collation.as_deref(), Some("C"));
    // Nothing of the old table is left, on no chunk.
    let stale: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class WHERE relname LIKE '%readings_by_metric%' \
         OR relname LIKE '%readings_identity' OR relname LIKE '%readings_time_idx'",
    )
    .fetch_one(&pool)
    .await
    .expect("stale relations");
    assert_eq!(stale, 0);
    if timescale {
        let chunks: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'readings'",
        )
        .fetch_one(&pool)
        .await
        .expect("chunks");
        assert_eq!(chunks, 2);
    }
    // The old readings read back as they were, two instants.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM readings")
        .fetch_one(&pool)
        .await
        .expect("rows");
    assert_eq!(rows, 2);
    crate::fixtures::old_readings_read_back_and_merge(&store).await;
    let readings: i64 =
        sqlx::query_scalar("SELECT count(count) + count(speed) + count(occupancy) FROM readings")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(readings, 6);
    pool.close().await;
    store.close().await;
}

#[tokio::test]
async fn readings_migrate_to_one_row_per_instant_on_timescaledb() {
    in_fresh_database(|url| readings_migrate_to_one_row_per_instant(url, true)).await;
}

#[tokio::test]
async fn readings_migrate_to_one_row_per_instant_on_plain_postgresql() {
    in_fresh_database(|url| {
        readings_migrate_to_one_row_per_instant(format!("{url}?timescaledb=off"), false)
    })
    .await;
}
