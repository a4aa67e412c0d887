-- The area an incident covers, when its sender declared one (a utility's outage Polygon or
-- MultiPolygon): GeoJSON MultiPolygon coordinates, [[[[lon, lat], ...], ...], ...]. NULL for
-- incidents at a point. Reports of the same category family inside it join the incident.
ALTER TABLE incidents ADD COLUMN area TEXT;

-- Operators merge incidents and split reports out of them (and undo either): the incident a
-- merged one went into, and for an event that was moved, the incident the log first gave it
-- (`incident_id` is then where it is now; a rebuild replays the log as it first was).
ALTER TABLE incidents ADD COLUMN merged_into TEXT;
ALTER TABLE events ADD COLUMN logged_incident TEXT;
