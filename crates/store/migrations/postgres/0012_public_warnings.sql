-- Public warnings (issue 6): every version of an incident's public warning, as issued, kept
-- forever (an append-only log: CAP documents are written from these rows, and an Update or a
-- Cancel references the versions before it). Versions are numbered per incident from 1; the
-- CAP identifier is `dispecer-{city}-{incident}-{seq}`. The timeline has an entry for each
-- (kind publish_warning, update_warning or cancel_warning), written in the same transaction.
CREATE TABLE public_warnings (
    incident_id    TEXT    NOT NULL REFERENCES incidents (id),
    seq            BIGINT  NOT NULL CHECK (seq >= 1),
    msg_type       TEXT    NOT NULL CHECK (msg_type IN ('Alert', 'Update', 'Cancel')),
    -- whole seconds (CAP's dateTime)
    sent           TIMESTAMPTZ    NOT NULL,
    headline_ro    TEXT    NOT NULL,
    headline_en    TEXT    NOT NULL,
    instruction_ro TEXT    NOT NULL,
    instruction_en TEXT    NOT NULL,
    -- JSON: {"circle": [lon, lat, radius_m]} or {"polygons": GeoJSON MultiPolygon coordinates}
    area           TEXT    NOT NULL,
    category       TEXT    NOT NULL,
    severity       TEXT    NOT NULL,
    actor          TEXT    NOT NULL,
    PRIMARY KEY (incident_id, seq)
);
CREATE INDEX public_warnings_sent ON public_warnings (sent);
