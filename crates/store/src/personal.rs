//! Personal data and retention: citizens' contact details apart from their reports (shown only to
//! those allowed, erased on request, dropped after a retention period), and the retention of
//! sensor readings (whole chunks with `drop_chunks` on TimescaleDB).

use chrono::{DateTime, Utc};

use model::IncidentId;

use crate::rows::stored_time;
use crate::{Backend, Pool, Store, StoreError};

/// Which contacts to erase: every contact with this e-mail address or these phone digits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactSelector {
    /// E-mail address (compared lowercased).
    pub email: Option<String>,
    /// Phone number (compared by its digits only).
    pub phone: Option<String>,
}

/// A citizen's contact as stored, with the report it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredContact {
    /// The report (event id).
    pub event_id: String,
    /// Name.
    pub name: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// When the report arrived.
    pub received_at: DateTime<Utc>,
}

/// The digits of a phone number, by which it is found.
pub fn phone_digits(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

/// What a retention run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retained {
    /// Contacts older than their retention period, deleted.
    pub contacts: u64,
    /// Citizens' photos older than the contacts' retention period, deleted.
    pub photos: u64,
    /// Readings older than theirs: rows deleted (SQLite, PostgreSQL) or whole chunks dropped
    /// (TimescaleDB, which counts chunks, not rows).
    pub readings: u64,
}

impl Store {
    /// Erases every citizen contact the selector matches; the reports stay, with nothing left
    /// that leads back to the person. Returns how many contacts were erased.
    pub async fn erase_contacts(&self, selector: &ContactSelector) -> Result<u64, StoreError> {
        let email = selector
            .email
            .as_deref()
            .map(|e| e.trim().to_lowercase())
            .filter(|e| !e.is_empty());
        let digits = selector
            .phone
            .as_deref()
            .map(phone_digits)
            .filter(|d| !d.is_empty());
        if email.is_none() && digits.is_none() {
            return Ok(0);
        }
        // The person's photos first (a photo may show them or their home), then the contacts
        // that lead to them; a failure between the two is finished by running it again.
        let photos = "DELETE FROM citizen_photos WHERE event_id IN \
                      (SELECT event_id FROM citizen_contacts WHERE email = $1 OR phone_digits = $2)";
        with_pool!(self, |pool| {
            sqlx::query(photos)
                .bind(email.as_deref())
                .bind(digits.as_deref())
                .execute(pool)
                .await?;
        });
        let sql = "DELETE FROM citizen_contacts WHERE email = $1 OR phone_digits = $2";
        let n = with_pool!(self, |pool| {
            sqlx::query(sql)
                .bind(email.as_deref())
                .bind(digits.as_deref())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n)
    }

    /// The contacts left by the citizens who reported an incident, oldest first.
    pub async fn contacts_of_incident(
        &self,
        incident: &IncidentId,
    ) -> Result<Vec<StoredContact>, StoreError> {
        let sql = "SELECT event_id, name, email, phone, received_at FROM citizen_contacts \
                   WHERE incident_id = $1 ORDER BY received_at, event_id";
        type Row = (
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            DateTime<Utc>,
        );
        let rows: Vec<Row> = with_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(incident.as_str())
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(event_id, name, email, phone, received_at)| StoredContact {
                    event_id,
                    name,
                    email,
                    phone,
                    received_at,
                },
            )
            .collect())
    }

    /// Deletes the contacts (and citizens' photos) that arrived before `contacts_before` and the readings taken before
    /// `readings_before` (on TimescaleDB by dropping whole chunks, which holds only whole days
    /// that are entirely older; elsewhere row by row).
    pub async fn apply_retention(
        &self,
        contacts_before: Option<DateTime<Utc>>,
        readings_before: Option<DateTime<Utc>>,
    ) -> Result<Retained, StoreError> {
        let mut done = Retained::default();
        if let Some(before) = contacts_before {
            let before = stored_time(before);
            done.contacts = with_pool!(self, |pool| {
                sqlx::query("DELETE FROM citizen_contacts WHERE received_at < $1")
                    .bind(before)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
            // Photos are personal data too: they go with the contacts.
            done.photos = with_pool!(self, |pool| {
                sqlx::query("DELETE FROM citizen_photos WHERE received_at < $1")
                    .bind(before)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
        }
        if let Some(before) = readings_before {
            let before = stored_time(before);
            done.readings = match (&self.pool, self.backend) {
                (Pool::Postgres(pool), Backend::Timescale) => {
                    let dropped: Vec<String> = sqlx::query_scalar(
                        "SELECT drop_chunks('readings', older_than => $1)::text",
                    )
                    .bind(before)
                    .fetch_all(pool)
                    .await?;
                    dropped.len() as u64
                }
                (Pool::Postgres(pool), _) => sqlx::query("DELETE FROM readings WHERE time < $1")
                    .bind(before)
                    .execute(pool)
                    .await?
                    .rows_affected(),
                (Pool::Sqlite(pool), _) => sqlx::query("DELETE FROM readings WHERE time_us < $1")
                    .bind(before.timestamp_micros())
                    .execute(pool)
                    .await?
                    .rows_affected(),
            };
        }
        Ok(done)
    }
}
