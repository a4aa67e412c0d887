-- Cluster mode's per-feed accounting (issue 9): each instance counts what its own ingest and
-- API received (`engine::feeds`, in its memory) and writes its counters here every few seconds,
-- one row per (instance, feed); `/api/v1/feeds` and `/metrics` on any instance show the sum over
-- the instances (its own counters read live). Counts run from each instance's start, as a single
-- instance's do: a restarted instance's row starts again from zero. A single instance never
-- writes here.
CREATE TABLE feed_counters (
    instance_id TEXT             NOT NULL,
    feed        TEXT             NOT NULL,
    received    BIGINT           NOT NULL,
    accepted    BIGINT           NOT NULL,
    rejected    BIGINT           NOT NULL,
    duplicates  BIGINT           NOT NULL,
    last_seen   TIMESTAMPTZ,
    -- seconds between the sender's time and arrival, for the last message that had one
    last_lag_s  DOUBLE PRECISION,
    PRIMARY KEY (instance_id, feed)
);
