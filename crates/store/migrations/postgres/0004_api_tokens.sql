-- API tokens of senders without a broker: only the SHA-256 of each token is kept.
CREATE TABLE api_tokens (
    hash       TEXT PRIMARY KEY,
    prefix     TEXT NOT NULL,
    scope      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
