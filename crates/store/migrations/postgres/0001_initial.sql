-- Dispecer's schema, PostgreSQL and TimescaleDB. The store runs
-- `CREATE EXTENSION IF NOT EXISTS timescaledb` before this migration where it may; the event log
-- becomes a hypertable only if the extension is installed by then.

-- Idempotency guard for the event log. A unique index on a hypertable must include its time
-- column, so event ids are claimed here first (INSERT ... ON CONFLICT DO NOTHING; zero rows means
-- the event is a duplicate).
CREATE TABLE event_keys (
    id          TEXT        NOT NULL PRIMARY KEY,
    received_at TIMESTAMPTZ NOT NULL
);

-- The event log: every accepted event, verbatim, once.
CREATE TABLE events (
    id          TEXT             NOT NULL,
    source      TEXT             NOT NULL,
    kind        TEXT             NOT NULL,
    category    TEXT             NOT NULL,
    lon         DOUBLE PRECISION NOT NULL,
    lat         DOUBLE PRECISION NOT NULL,
    occurred_at TIMESTAMPTZ      NOT NULL,
    received_at TIMESTAMPTZ      NOT NULL,
    incident_id TEXT             NOT NULL,
    payload     TEXT             NOT NULL
);
CREATE INDEX events_incident ON events (incident_id, received_at);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        -- Chunks by received_at; TimescaleDB adds its own index on the time column.
        PERFORM create_hypertable('events', 'received_at', if_not_exists => TRUE);
    ELSE
        -- Append-only and in time order: a BRIN index is small and enough.
        CREATE INDEX events_received_at ON events USING brin (received_at);
    END IF;
END
$$;

CREATE TABLE incidents (
    id           TEXT             NOT NULL PRIMARY KEY,
    category     TEXT             NOT NULL,
    severity     TEXT             NOT NULL,
    status       TEXT             NOT NULL,
    lon          DOUBLE PRECISION NOT NULL,
    lat          DOUBLE PRECISION NOT NULL,
    district     TEXT,
    agency       TEXT             NOT NULL,
    -- {"chosen":{"agency","rule","area"},"alternatives":[...]}
    routing      TEXT             NOT NULL,
    report_count BIGINT           NOT NULL,
    description  TEXT,
    opened_at    TIMESTAMPTZ      NOT NULL,
    updated_at   TIMESTAMPTZ      NOT NULL
);
CREATE INDEX incidents_status ON incidents (status);
CREATE INDEX incidents_updated_at ON incidents (updated_at);
CREATE INDEX incidents_agency ON incidents (agency);

CREATE TABLE incident_timeline (
    id          BIGSERIAL   NOT NULL PRIMARY KEY,
    incident_id TEXT        NOT NULL REFERENCES incidents (id),
    at          TIMESTAMPTZ NOT NULL,
    kind        TEXT        NOT NULL,
    actor       TEXT        NOT NULL,
    -- JSON object
    detail      TEXT        NOT NULL
);
CREATE INDEX incident_timeline_incident ON incident_timeline (incident_id, at);

-- Inbound messages that could not be accepted, kept for an operator to inspect.
CREATE TABLE dead_letters (
    id          BIGSERIAL   NOT NULL PRIMARY KEY,
    received_at TIMESTAMPTZ NOT NULL,
    channel     TEXT        NOT NULL,
    topic       TEXT        NOT NULL,
    payload     BYTEA       NOT NULL,
    reason      TEXT        NOT NULL
);
CREATE INDEX dead_letters_received_at ON dead_letters (received_at);
