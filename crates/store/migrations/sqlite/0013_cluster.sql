-- Cluster mode (issues 3 and 9) needs PostgreSQL: on SQLite these tables exist only so that both
-- backends share one schema version, and stay empty (an SQLite Dispecer is a single instance).
-- See migrations/postgres/0013_cluster.sql for what they hold.
CREATE TABLE cluster_members (
    instance_id    TEXT    NOT NULL PRIMARY KEY,
    mqtt_client_id TEXT    NOT NULL,
    http_url       TEXT    NOT NULL,
    started_at     TEXT    NOT NULL,
    seen_at        TEXT    NOT NULL,
    leader_since   TEXT,
    drained_at     TEXT
);

CREATE TABLE inbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    key         TEXT    NOT NULL UNIQUE,
    topic       TEXT    NOT NULL,
    payload     BLOB    NOT NULL,
    received_at TEXT    NOT NULL,
    instance_id TEXT    NOT NULL
);
