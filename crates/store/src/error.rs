//! What can go wrong in the store, in terms a caller can act on.

use sqlx::migrate::MigrateError;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or refused the operation (connection, I/O, lock, full
    /// disk). Nothing was written; retry later.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// The database was migrated by a newer Dispecer than this one. Refused rather than risk
    /// writing rows the newer schema does not expect; run the newer version (or restore a backup).
    #[error(
        "the database schema is version {database}, newer than this program's version {binary}: \
         run the Dispecer that upgraded it"
    )]
    SchemaTooNew {
        /// Highest migration applied to the database.
        database: i64,
        /// Highest migration this program knows.
        binary: i64,
    },
    /// Applying the schema migrations failed.
    #[error("schema migration failed: {0}")]
    Migration(#[source] MigrateError),
    /// A stored row does not parse back into the model.
    #[error("corrupt row: {what}")]
    Corrupt {
        /// Which row and what is wrong with it.
        what: String,
    },
    /// The database URL is not one the store understands. Never contains the URL itself (it may
    /// hold a password).
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// Cluster mode (leader election, the inbox, change notifications) needs PostgreSQL; this
    /// store is SQLite.
    #[error("cluster mode needs a PostgreSQL database")]
    NotPostgres,
    /// Cluster mode: another instance took the lead (the leadership term is no longer this
    /// instance's). Nothing was written, and no later write of this leader's engine will be:
    /// it must stop deciding.
    #[error("fenced: this instance led in term {term}, the cluster is in term {current}")]
    Fenced {
        /// The term this instance took when it began to lead.
        term: i64,
        /// The term the database holds now.
        current: i64,
    },
    /// A reading of a metric the store has no place for (the metrics are
    /// `model::reading::TRAFFIC_METRICS`). Nothing of the batch was written.
    #[error("a reading of {sensor} has metric {metric:?}, not count, speed or occupancy")]
    UnknownMetric {
        /// The sensor of the reading.
        sensor: String,
        /// Its metric.
        metric: String,
    },
    /// A reading whose value is NaN, on SQLite (which reads NaN back as NULL). Nothing of the
    /// batch was written.
    #[error("a reading of {sensor}'s {metric} is NaN, which SQLite cannot store")]
    NotANumber {
        /// The sensor of the reading.
        sensor: String,
        /// Its metric.
        metric: String,
    },
}

impl StoreError {
    /// The same failure, for another caller of a write that failed for several at once (a group
    /// commit): the same kind and text, without the original source error.
    pub fn again(&self) -> StoreError {
        match self {
            StoreError::Corrupt { what } => StoreError::Corrupt { what: what.clone() },
            StoreError::SchemaTooNew { database, binary } => StoreError::SchemaTooNew {
                database: *database,
                binary: *binary,
            },
            StoreError::InvalidUrl(what) => StoreError::InvalidUrl(what.clone()),
            StoreError::NotPostgres => StoreError::NotPostgres,
            StoreError::UnknownMetric { sensor, metric } => StoreError::UnknownMetric {
                sensor: sensor.clone(),
                metric: metric.clone(),
            },
            StoreError::NotANumber { sensor, metric } => StoreError::NotANumber {
                sensor: sensor.clone(),
                metric: metric.clone(),
            },
            StoreError::Fenced { term, current } => StoreError::Fenced {
                term: *term,
                current: *current,
            },
            StoreError::Unavailable(e) => {
                StoreError::Unavailable(sqlx::Error::Io(std::io::Error::other(e.to_string())))
            }
            StoreError::Migration(e) => {
                StoreError::Unavailable(sqlx::Error::Io(std::io::Error::other(e.to_string())))
            }
        }
    }

    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        StoreError::Corrupt { what: what.into() }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnIndexOutOfBounds { .. }
            | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt {
                what: e.to_string(),
            },
            other => StoreError::Unavailable(other),
        }
    }
}
