-- Dispecer's schema, SQLite. Timestamps are RFC 3339 text in UTC (sqlx's chrono encoding), which
-- sorts in time order.

-- The event log: every accepted event, verbatim, once. The primary key is the idempotency guard.
CREATE TABLE events (
    id          TEXT    NOT NULL PRIMARY KEY,
    source      TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    category    TEXT    NOT NULL,
    lon         REAL    NOT NULL,
    lat         REAL    NOT NULL,
    occurred_at TEXT    NOT NULL,
    received_at TEXT    NOT NULL,
    incident_id TEXT    NOT NULL,
    payload     TEXT    NOT NULL
);
CREATE INDEX events_incident ON events (incident_id, received_at);
CREATE INDEX events_received_at ON events (received_at);

CREATE TABLE incidents (
    id           TEXT    NOT NULL PRIMARY KEY,
    category     TEXT    NOT NULL,
    severity     TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    lon          REAL    NOT NULL,
    lat          REAL    NOT NULL,
    district     TEXT,
    agency       TEXT    NOT NULL,
    -- {"chosen":{"agency","rule","area"},"alternatives":[...]}
    routing      TEXT    NOT NULL,
    report_count INTEGER NOT NULL,
    description  TEXT,
    opened_at    TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL
);
CREATE INDEX incidents_status ON incidents (status);
CREATE INDEX incidents_updated_at ON incidents (updated_at);
CREATE INDEX incidents_agency ON incidents (agency);

CREATE TABLE incident_timeline (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT    NOT NULL REFERENCES incidents (id),
    at          TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    -- JSON object
    detail      TEXT    NOT NULL
);
CREATE INDEX incident_timeline_incident ON incident_timeline (incident_id, at);

-- Inbound messages that could not be accepted, kept for an operator to inspect.
CREATE TABLE dead_letters (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    received_at TEXT    NOT NULL,
    channel     TEXT    NOT NULL,
    topic       TEXT    NOT NULL,
    payload     BLOB    NOT NULL,
    reason      TEXT    NOT NULL
);
CREATE INDEX dead_letters_received_at ON dead_letters (received_at);
