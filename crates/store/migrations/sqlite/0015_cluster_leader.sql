-- Cluster mode (and its fencing) needs PostgreSQL: on SQLite this table exists only so that both
-- backends share one schema version, and is never read (an SQLite Dispecer is a single
-- instance). See migrations/postgres/0015_cluster_leader.sql for what it holds.
CREATE TABLE cluster_leader (
    id          INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    term        INTEGER NOT NULL,
    instance_id TEXT,
    since       TEXT
);
INSERT INTO cluster_leader (id, term) VALUES (1, 0);
