-- Sensor readings: (time, sensor, metric, value). A TimescaleDB hypertable on `time` when the
-- extension is installed; a BRIN index on plain PostgreSQL. Idempotent by (sensor, metric, time):
-- the unique index includes the time column, as a hypertable requires.
CREATE TABLE readings (
    time   TIMESTAMPTZ      NOT NULL,
    sensor TEXT             NOT NULL,
    metric TEXT             NOT NULL,
    value  DOUBLE PRECISION NOT NULL
);
CREATE UNIQUE INDEX readings_identity ON readings (sensor, metric, time);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        PERFORM create_hypertable('readings', 'time', chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE);
    ELSE
        CREATE INDEX readings_time_brin ON readings USING BRIN (time);
    END IF;
END
$$;
