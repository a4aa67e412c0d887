-- Cluster mode's fencing (issue 9): the leadership term. One row. A new leader, right after it
-- took the advisory lock, increments `term` in a transaction of its own and keeps the result;
-- every transaction by which its engine commits anything first reads the row `FOR SHARE` and
-- aborts unless the term is still its own. The increment waits for the old leader's open
-- transactions (they hold the row's share lock), and every later transaction of the old
-- leader sees the new term: an old leader that has not noticed it lost the lock commits
-- nothing after its successor's term began.
CREATE TABLE cluster_leader (
    id          SMALLINT    NOT NULL PRIMARY KEY CHECK (id = 1),
    -- 0 before any instance ever led
    term        BIGINT      NOT NULL,
    -- the instance that took `term`, and when
    instance_id TEXT,
    since       TIMESTAMPTZ
);
INSERT INTO cluster_leader (id, term) VALUES (1, 0);
