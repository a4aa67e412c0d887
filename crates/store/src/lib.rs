//! Durable storage of events and incidents: SQLite (embedded default), PostgreSQL and TimescaleDB through sqlx.
