-- The city configuration as loaded at each start where it changed: every file the loader reads,
-- verbatim, with its digest. Auditors can then tell which categories, deadlines, agencies and
-- jurisdictions were in force when a decision was taken.
CREATE TABLE city_configs (
    id        BIGSERIAL PRIMARY KEY,
    loaded_at TIMESTAMPTZ NOT NULL,
    city      TEXT NOT NULL,
    -- SHA-256 of the files (their paths and contents), hex.
    digest    TEXT NOT NULL,
    -- JSON object: relative path -> file content.
    files     TEXT NOT NULL
);
CREATE INDEX city_configs_loaded ON city_configs (loaded_at);
