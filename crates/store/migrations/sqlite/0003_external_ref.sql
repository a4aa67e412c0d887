-- The subject of a sender's notices (e.g. a utility's own event id) that an incident follows, so
-- that the sender's updates and "restored" notices reach the same incident.
ALTER TABLE incidents ADD COLUMN external_ref TEXT;
CREATE INDEX incidents_external_ref ON incidents (external_ref) WHERE external_ref IS NOT NULL;
ALTER TABLE events ADD COLUMN subject TEXT;
