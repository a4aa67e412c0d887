//! Events and incidents the story records, and raw access to the database behind a store.

use chrono::{DateTime, Duration, TimeZone, Utc};
use geo::Point;
use model::{
    Event, EventKind, Incident, IncidentStatus, InformRule, Informed, RouteCandidate,
    RoutingDecision, RoutingRule, Severity, SlaClock, Source,
};
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

/// 2026-11-22 10:00:00.123456789 UTC: nanoseconds, which the store drops.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0)
        .single()
        .expect("a valid instant")
        + Duration::nanoseconds(123_456_789)
}

/// `t` as the store keeps it: to the microsecond.
pub fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).expect("in range")
}

pub fn event(
    id: &str,
    source: Source,
    category: &str,
    lon: f64,
    lat: f64,
    at: DateTime<Utc>,
) -> Event {
    Event {
        id: id.into(),
        subject: None,
        source,
        kind: EventKind::Report,
        category: category.into(),
        location: Point::new(lon, lat),
        area: None,
        description: Some("Groapă mare în carosabil".into()),
        occurred_at: at - Duration::minutes(3),
        received_at: at,
        payload: format!(r#"{{"id":"{id}","note":"verbatim, ăîșț"}}"#),
        contact: None,
    }
}

/// A pothole in the centre, routed by jurisdiction.
pub fn pothole(opened_at: DateTime<Utc>) -> Incident {
    Incident {
        id: "0193a6f0-0000-7000-8000-000000000001".into(),
        category: "pothole".into(),
        severity: Severity::Minor,
        status: IncidentStatus::Assigned,
        location: Point::new(25.5887, 45.6419),
        area: None,
        district: Some("centru".into()),
        agency: "drumuri".into(),
        routing: RoutingDecision {
            chosen: RouteCandidate {
                agency: "drumuri".into(),
                rule: RoutingRule::Jurisdiction,
                area: Some("city".into()),
            },
            alternatives: vec![RouteCandidate {
                agency: "dispecerat".into(),
                rule: RoutingRule::Jurisdiction,
                area: Some("city".into()),
            }],
            informed: vec![],
        },
        report_count: 1,
        description: Some("Groapă mare în carosabil".into()),
        external_ref: None,
        opened_at,
        updated_at: opened_at,
        sla: SlaClock {
            ack_due: Some(opened_at + Duration::minutes(30)),
            resolve_due: Some(opened_at + Duration::days(7)),
            ack_escalated_at: None,
            resolve_escalated_at: None,
        },
        merged_into: None,
        explained_by: vec![],
    }
}

/// A water outage in Tractorul, already resolved, routed by fallback.
pub fn outage(opened_at: DateTime<Utc>) -> Incident {
    Incident {
        id: "0193a6f0-0000-7000-8000-000000000002".into(),
        category: "water_outage".into(),
        severity: Severity::Severe,
        status: IncidentStatus::Resolved,
        location: Point::new(25.6100, 45.6600),
        area: None,
        district: None,
        agency: "apa-brasov".into(),
        routing: RoutingDecision {
            chosen: RouteCandidate {
                agency: "apa-brasov".into(),
                rule: RoutingRule::Fallback,
                area: None,
            },
            alternatives: vec![],
            // The traffic police hear of it beside the water company.
            informed: vec![Informed {
                agency: "politia-rutiera".into(),
                rule: InformRule::CategoryKind,
                area: None,
            }],
        },
        report_count: 1,
        description: None,
        external_ref: Some("utility:apa-brasov:avarie-7".into()),
        opened_at,
        updated_at: opened_at,
        // As stored before deadlines existed.
        sla: SlaClock::default(),
        merged_into: None,
        explained_by: vec![],
    }
}

/// `incident` as the store gives it back.
pub fn as_stored(mut incident: Incident) -> Incident {
    incident.opened_at = micros(incident.opened_at);
    incident.updated_at = micros(incident.updated_at);
    let c = &mut incident.sla;
    for t in [
        &mut c.ack_due,
        &mut c.resolve_due,
        &mut c.ack_escalated_at,
        &mut c.resolve_escalated_at,
    ] {
        *t = t.map(micros);
    }
    incident
}

/// A connection to the database behind a store, bypassing it.
pub enum Raw {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Raw {
    pub async fn connect(url: &str) -> Raw {
        if url.starts_with("sqlite:") {
            Raw::Sqlite(
                SqlitePool::connect(url)
                    .await
                    .expect("raw sqlite connection"),
            )
        } else {
            Raw::Postgres(PgPool::connect(url).await.expect("raw postgres connection"))
        }
    }

    /// Records a migration that no Dispecer knows yet, as a newer Dispecer would.
    pub async fn add_migration(&self, version: i64) {
        let sql = "INSERT INTO _sqlx_migrations \
                   (version, description, success, checksum, execution_time) \
                   VALUES ($1, 'from the future', $2, $3, 0)";
        let checksum = vec![0u8; 48];
        match self {
            Raw::Sqlite(pool) => sqlx::query(sql)
                .bind(version)
                .bind(true)
                .bind(checksum)
                .execute(pool)
                .await
                .map(drop),
            Raw::Postgres(pool) => sqlx::query(sql)
                .bind(version)
                .bind(true)
                .bind(checksum)
                .execute(pool)
                .await
                .map(drop),
        }
        .expect("fake migration recorded");
    }

    /// Whether `events` is a TimescaleDB hypertable.
    pub async fn events_is_hypertable(&self) -> bool {
        let Raw::Postgres(pool) = self else {
            return false;
        };
        let installed: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')",
        )
        .fetch_one(pool)
        .await
        .expect("extension query");
        if !installed {
            return false;
        }
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM timescaledb_information.hypertables \
             WHERE hypertable_name = 'events'",
        )
        .fetch_one(pool)
        .await
        .expect("hypertables query");
        count == 1
    }

    pub async fn close(&self) {
        match self {
            Raw::Sqlite(pool) => pool.close().await,
            Raw::Postgres(pool) => pool.close().await,
        }
    }
}

/// The migrations of `backend` ("sqlite" or "postgres") before `version`: the schema a database
/// had when the release before that migration left it.
pub async fn migrations_before(backend: &str, version: i64) -> sqlx::migrate::Migrator {
    let mut m = sqlx::migrate::Migrator::new(std::path::PathBuf::from(format!(
        "{}/migrations/{backend}",
        env!("CARGO_MANIFEST_DIR")
    )))
    .await
    .expect("the migrations");
    m.migrations = m
        .migrations
        .iter()
        .filter(|m| m.version < version)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    m
}

/// A reading of sensor `tc-old` at `minutes` after 2026-11-29 23:59 UTC (the next day from
/// minute 1: two TimescaleDB chunks).
pub fn old_reading(metric: &str, minutes: i64, value: f64) -> model::Reading {
    model::Reading {
        sensor: "tc-old".into(),
        metric: metric.into(),
        time: old_t0() + Duration::minutes(minutes),
        value,
    }
}

/// The first instant of [`old_reading`]s.
pub fn old_t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 23, 59, 0)
        .single()
        .expect("a time")
}

/// Readings stored by the schema before migration 0017 (one row per metric): two instants, two
/// metrics each.
pub fn old_readings() -> [model::Reading; 4] {
    [
        old_reading("count", 0, 10.0),
        old_reading("speed", 0, 41.5),
        old_reading("count", 2, 12.0),
        old_reading("occupancy", 2, 7.25),
    ]
}

/// What `store` reads back of [`old_readings`] (raw), and that a second write of them is
/// all duplicates while a metric an instant lacked and a new instant are new.
pub async fn old_readings_read_back_and_merge(store: &store::Store) {
    let old = old_readings();
    let back = store
        .readings_rollup(
            &"tc-old".into(),
            old_t0(),
            old_t0() + Duration::minutes(5),
            store::Step::Raw,
        )
        .await
        .expect("read back");
    let back: Vec<_> = back
        .iter()
        .map(|r| (r.bucket, r.metric.as_str(), r.avg))
        .collect();
    assert_eq!(
        back,
        [
            (old[0].time, "count", 10.0),
            (old[1].time, "speed", 41.5),
            (old[2].time, "count", 12.0),
            (old[3].time, "occupancy", 7.25),
        ]
    );
    assert_eq!(store.record_readings(&old).await.expect("again"), 0);
    let more = [
        old_reading("count", 0, 99.0),
        old_reading("occupancy", 0, 3.0),
        old_reading("speed", 10, 50.0),
    ];
    assert_eq!(store.record_readings(&more).await.expect("more"), 2);
}
