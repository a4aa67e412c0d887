-- Photos citizens attach to their reports, with their metadata (EXIF, location) already stripped.
-- Kept apart from the event log; shown to staff only (never on public endpoints).
CREATE TABLE citizen_photos (
    event_id     TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    data         BLOB NOT NULL,
    received_at  TEXT NOT NULL
);
CREATE INDEX citizen_photos_received ON citizen_photos (received_at);
