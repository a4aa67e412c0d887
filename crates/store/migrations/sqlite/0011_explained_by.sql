-- Incidents nearby that explain an incident (a congestion beside a burst water main or an
-- accident): a JSON array of incident ids, in the order they were linked; NULL when none.
ALTER TABLE incidents ADD COLUMN explained_by TEXT;
