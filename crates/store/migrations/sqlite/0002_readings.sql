-- Sensor readings: (time, sensor, metric, value). Time as integer microseconds since the Unix
-- epoch, so that rollups are integer arithmetic. Idempotent by (sensor, metric, time).
CREATE TABLE readings (
    sensor  TEXT    NOT NULL,
    metric  TEXT    NOT NULL,
    time_us INTEGER NOT NULL,
    value   REAL    NOT NULL,
    PRIMARY KEY (sensor, metric, time_us)
) WITHOUT ROWID;
