//! The city configuration as loaded: kept whenever it changes, for the audit trail.

use chrono::{DateTime, Utc};

use crate::rows::stored_time;
use crate::{Pool, Store, StoreError};

/// A city configuration as it was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CityConfig {
    /// When it was first loaded.
    pub loaded_at: DateTime<Utc>,
    /// The city's id.
    pub city: String,
    /// SHA-256 of its files (paths and contents), hex.
    pub digest: String,
    /// The files, a JSON object from relative path to content.
    pub files: String,
}

impl Store {
    /// Keeps `config` unless the newest kept configuration of the same city has its digest.
    /// Returns whether it was new.
    pub async fn record_city_config(&self, config: &CityConfig) -> Result<bool, StoreError> {
        let latest: Option<String> = with_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT digest FROM city_configs WHERE city = $1 ORDER BY loaded_at DESC, id DESC \
                 LIMIT 1",
            )
            .bind(&config.city)
            .fetch_optional(pool)
            .await?
        });
        if latest.as_deref() == Some(config.digest.as_str()) {
            return Ok(false);
        }
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO city_configs (loaded_at, city, digest, files) VALUES ($1, $2, $3, $4)",
            )
            .bind(stored_time(config.loaded_at))
            .bind(&config.city)
            .bind(&config.digest)
            .bind(&config.files)
            .execute(pool)
            .await?;
        });
        Ok(true)
    }

    /// Every kept configuration of `city`, oldest first.
    pub async fn city_configs(&self, city: &str) -> Result<Vec<CityConfig>, StoreError> {
        let rows: Vec<(DateTime<Utc>, String, String, String)> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT loaded_at, city, digest, files FROM city_configs WHERE city = $1 \
                 ORDER BY loaded_at, id",
            )
            .bind(city)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(loaded_at, city, digest, files)| CityConfig {
                loaded_at,
                city,
                digest,
                files,
            })
            .collect())
    }
}
