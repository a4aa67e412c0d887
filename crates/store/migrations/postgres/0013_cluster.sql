-- Cluster mode (issues 3 and 9): several `dispecer run --instance-id NAME` on one PostgreSQL and
-- one broker. The leader (the holder of a session-level advisory lock) runs the engine; the
-- others (followers) take their share of the broker's messages (MQTT shared subscriptions),
-- validate them and put them here, and the leader drains this table through its engine.

-- Every instance that ever ran in cluster mode. `seen_at` is refreshed every second by a live
-- instance; the leader drains the broker sessions of a member silent for long enough (their
-- share of a shared subscription is queued there while they are down) and notes `drained_at`.
CREATE TABLE cluster_members (
    instance_id    TEXT        NOT NULL PRIMARY KEY,
    -- the base of its MQTT ingest sessions' client ids ({base}-ingest, {base}-ingest-readings)
    mqtt_client_id TEXT        NOT NULL,
    -- where its HTTP API is reached by the other instances (actions are forwarded to the leader)
    http_url       TEXT        NOT NULL,
    started_at     TIMESTAMPTZ NOT NULL,
    seen_at        TIMESTAMPTZ NOT NULL,
    -- set on the leader's row when it took the lead (NULL on every other row)
    leader_since   TIMESTAMPTZ,
    drained_at     TIMESTAMPTZ
);

-- Messages a follower accepted (parsed and valid) and acknowledged to the broker, waiting for the
-- leader's engine: the raw topic and payload, parsed again by the leader with the same parsers.
-- `key` (SHA-256 of topic and payload) makes a broker's redelivery one row; a row the leader
-- drained twice is harmless (the engine knows event ids).
CREATE TABLE inbox (
    id          BIGSERIAL   PRIMARY KEY,
    key         TEXT        NOT NULL UNIQUE,
    topic       TEXT        NOT NULL,
    payload     BYTEA       NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    instance_id TEXT        NOT NULL
);
