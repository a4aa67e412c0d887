-- The incident lifecycle: deadlines to acknowledge and to resolve, computed by the engine when an
-- incident is opened, reassigned or reopened, and when each missed deadline was escalated (at most
-- once per deadline). NULL deadlines (incidents stored before this migration) never escalate.
ALTER TABLE incidents ADD COLUMN ack_due TEXT;
ALTER TABLE incidents ADD COLUMN resolve_due TEXT;
ALTER TABLE incidents ADD COLUMN ack_escalated_at TEXT;
ALTER TABLE incidents ADD COLUMN resolve_escalated_at TEXT;

-- Who did what and why: the reason given with an action, and the state before and after it
-- (NULL where an entry changed no state or, for entries written by events, the state before is
-- not recorded).
ALTER TABLE incident_timeline ADD COLUMN reason TEXT;
ALTER TABLE incident_timeline ADD COLUMN from_status TEXT;
ALTER TABLE incident_timeline ADD COLUMN to_status TEXT;

-- The id a sender gave its action (an agency's update id), so that a redelivered update is
-- recognised and applied once; unique per actor.
ALTER TABLE incident_timeline ADD COLUMN request_id TEXT;
CREATE UNIQUE INDEX incident_timeline_request ON incident_timeline (actor, request_id)
    WHERE request_id IS NOT NULL;
