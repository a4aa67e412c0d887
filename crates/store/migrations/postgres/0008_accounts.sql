-- People who log in to the dashboards, and their sessions. Passwords are kept only as argon2
-- PHC strings (hashed by the API crate); sessions only as the SHA-256 of their random id.
CREATE TABLE users (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    -- operator | supervisor | agency | admin
    role          TEXT NOT NULL,
    -- The agency an `agency` user acts for; NULL for every other role.
    agency        TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    CHECK (role IN ('operator', 'supervisor', 'agency', 'admin')),
    CHECK ((role = 'agency') = (agency IS NOT NULL))
);

CREATE TABLE sessions (
    -- SHA-256 (hex) of the session id that the cookie carries.
    hash       TEXT PRIMARY KEY,
    username   TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    -- The token the console sends back in X-CSRF-Token on state-changing requests.
    csrf       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    -- Unix seconds, so that expiry compares as a number on every backend.
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);
