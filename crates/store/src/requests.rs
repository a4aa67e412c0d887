//! Citizens' reports read back as service requests (Open311 `GET requests`, the citizens' status
//! page): each report with the incident it belongs to. Nothing personal is read here: the contact
//! details live in `citizen_contacts` and never leave through this path.

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use model::{Incident, IncidentStatus};

use crate::rows::{stored_time, IncidentRow, INCIDENT_COLUMNS};
use crate::{Pool, Store, StoreError};

/// Which reports to read. Empty lists mean "any".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestFilter {
    /// Report ids without the `citizen:` prefix (Open311's `service_request_id`).
    pub ids: Vec<String>,
    /// Category id (Open311's `service_code`).
    pub category: Option<String>,
    /// Received at or after.
    pub from: Option<DateTime<Utc>>,
    /// Received at or before.
    pub to: Option<DateTime<Utc>>,
    /// The incident's status is one of these.
    pub statuses: Vec<IncidentStatus>,
    /// At most this many, newest first.
    pub limit: u32,
    /// Skip this many of the newest first (paging: `(page - 1) * page_size`).
    pub offset: u32,
}

/// A citizen's report and its incident as of now.
#[derive(Debug, Clone, PartialEq)]
pub struct CitizenRequest {
    /// Report id without the `citizen:` prefix.
    pub id: String,
    /// Category the citizen chose.
    pub category: String,
    /// Where the citizen put it (longitude, latitude).
    pub lon: f64,
    /// Latitude.
    pub lat: f64,
    /// When Dispecer received it.
    pub received_at: DateTime<Utc>,
    /// The report as logged (a GeoJSON Feature, without contact details).
    pub payload: String,
    /// The incident it opened or joined.
    pub incident: Incident,
}

#[derive(Debug, sqlx::FromRow)]
struct RequestRow {
    event_id: String,
    event_category: String,
    event_lon: f64,
    event_lat: f64,
    event_received_at: DateTime<Utc>,
    event_payload: String,
    #[sqlx(flatten)]
    incident: IncidentRow,
}

/// The event id prefix of citizens' reports.
const CITIZEN: &str = "citizen:";

impl Store {
    /// Citizens' reports matching `filter`, newest first, each with its incident.
    pub async fn citizen_requests(
        &self,
        filter: &RequestFilter,
    ) -> Result<Vec<CitizenRequest>, StoreError> {
        let columns: Vec<String> = INCIDENT_COLUMNS
            .split(',')
            .map(|c| format!("i.{}", c.trim()))
            .collect();
        let rows: Vec<RequestRow> = match &self.pool {
            Pool::Sqlite(pool) => {
                let mut q = QueryBuilder::new("");
                push_select(&mut q, &columns, filter);
                q.build_query_as().fetch_all(pool).await?
            }
            Pool::Postgres(pool) => {
                let mut q = QueryBuilder::new("");
                push_select(&mut q, &columns, filter);
                q.build_query_as().fetch_all(pool).await?
            }
        };
        rows.into_iter()
            .map(|r| {
                Ok(CitizenRequest {
                    id: r
                        .event_id
                        .strip_prefix(CITIZEN)
                        .unwrap_or(&r.event_id)
                        .to_owned(),
                    category: r.event_category,
                    lon: r.event_lon,
                    lat: r.event_lat,
                    received_at: r.event_received_at,
                    payload: r.event_payload,
                    incident: r.incident.into_model()?,
                })
            })
            .collect()
    }

    /// One citizen's report by its id (without the `citizen:` prefix).
    pub async fn citizen_request(&self, id: &str) -> Result<Option<CitizenRequest>, StoreError> {
        let filter = RequestFilter {
            ids: vec![id.to_owned()],
            limit: 1,
            ..RequestFilter::default()
        };
        Ok(self.citizen_requests(&filter).await?.into_iter().next())
    }
}

fn push_select<'a, DB>(q: &mut QueryBuilder<'a, DB>, columns: &[String], f: &'a RequestFilter)
where
    DB: sqlx::Database,
    String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    DateTime<Utc>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    q.push(format!(
        "SELECT e.id AS event_id, e.category AS event_category, e.lon AS event_lon, \
         e.lat AS event_lat, e.received_at AS event_received_at, e.payload AS event_payload, {} \
         FROM events e JOIN incidents i ON i.id = e.incident_id WHERE e.source = 'citizen'",
        columns.join(", ")
    ));
    if !f.ids.is_empty() {
        q.push(" AND e.id IN (");
        let mut list = q.separated(", ");
        for id in &f.ids {
            list.push_bind(format!("{CITIZEN}{id}"));
        }
        q.push(")");
    }
    if let Some(c) = &f.category {
        q.push(" AND e.category = ").push_bind(c.as_str());
    }
    if let Some(t) = f.from {
        q.push(" AND e.received_at >= ").push_bind(stored_time(t));
    }
    if let Some(t) = f.to {
        q.push(" AND e.received_at <= ").push_bind(stored_time(t));
    }
    if !f.statuses.is_empty() {
        q.push(" AND i.status IN (");
        let mut list = q.separated(", ");
        for s in &f.statuses {
            list.push_bind(s.as_str());
        }
        q.push(")");
    }
    q.push(" ORDER BY e.received_at DESC, e.id DESC LIMIT ")
        .push_bind(i64::from(f.limit));
    q.push(" OFFSET ").push_bind(i64::from(f.offset));
}
