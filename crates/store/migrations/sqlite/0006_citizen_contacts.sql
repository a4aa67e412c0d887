-- Citizens' contact details: personal data, kept apart from their reports (whose logged payload
-- no longer carries them) so that they can be shown only to those allowed, erased on request
-- (`dispecer gdpr erase`) and dropped after the retention period, while the reports stay.
CREATE TABLE citizen_contacts (
    event_id     TEXT PRIMARY KEY,
    incident_id  TEXT NOT NULL,
    name         TEXT,
    email        TEXT,
    phone        TEXT,
    -- The phone number's digits only, to find it however it was written.
    phone_digits TEXT,
    received_at  TEXT NOT NULL
);
CREATE INDEX citizen_contacts_email ON citizen_contacts (email);
CREATE INDEX citizen_contacts_phone ON citizen_contacts (phone_digits);
CREATE INDEX citizen_contacts_incident ON citizen_contacts (incident_id);
CREATE INDEX citizen_contacts_received ON citizen_contacts (received_at);
