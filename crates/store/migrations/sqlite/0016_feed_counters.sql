-- Cluster mode (PostgreSQL only) keeps each instance's per-feed counters here; on SQLite the
-- table exists only so that both backends share one schema version, and stays empty. See
-- migrations/postgres/0016_feed_counters.sql.
CREATE TABLE feed_counters (
    instance_id TEXT    NOT NULL,
    feed        TEXT    NOT NULL,
    received    INTEGER NOT NULL,
    accepted    INTEGER NOT NULL,
    rejected    INTEGER NOT NULL,
    duplicates  INTEGER NOT NULL,
    last_seen   TEXT,
    last_lag_s  REAL,
    PRIMARY KEY (instance_id, feed)
);
