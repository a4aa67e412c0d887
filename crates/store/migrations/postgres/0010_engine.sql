-- The area an incident covers, when its sender declared one (a utility's outage Polygon or
-- MultiPolygon): GeoJSON MultiPolygon coordinates, [[[[lon, lat], ...], ...], ...]. NULL for
-- incidents at a point. Reports of the same category family inside it join the incident.
ALTER TABLE incidents ADD COLUMN area TEXT;
