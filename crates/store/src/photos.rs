//! Citizens' photos: one per report, stored apart from the event log (already stripped of their
//! metadata by the API), read by staff only.

use chrono::{DateTime, Utc};

use crate::rows::stored_time;
use crate::{Pool, Store, StoreError};

/// A stored photo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    /// `image/jpeg` or `image/png`.
    pub content_type: String,
    /// The image.
    pub data: Vec<u8>,
}

impl Store {
    /// Keeps the photo of report `event_id` (the full event id); a second photo for the same
    /// report replaces nothing (the first stays: a retry sends the same photo).
    pub async fn record_photo(
        &self,
        event_id: &str,
        photo: &Photo,
        received_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO citizen_photos (event_id, content_type, data, received_at) \
                   VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING";
        with_pool!(self, |pool| {
            sqlx::query(sql)
                .bind(event_id)
                .bind(&photo.content_type)
                .bind(&photo.data)
                .bind(stored_time(received_at))
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The photo of report `event_id` (the full event id), if it has one.
    pub async fn photo(&self, event_id: &str) -> Result<Option<Photo>, StoreError> {
        let sql = "SELECT content_type, data FROM citizen_photos WHERE event_id = $1";
        let row: Option<(String, Vec<u8>)> = with_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(event_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(content_type, data)| Photo { content_type, data }))
    }
}
