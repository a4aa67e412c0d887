//! A citizen report (GeoJSON Feature, `dispecer/v1/in/citizen/reports`): never panics; an
//! accepted report is a Point inside the city with a known category, a valid id, no time in the
//! future, a bounded contact kept out of the logged payload, and the logged payload parses again
//! to the same event (what `dispecer rebuild` does).
#![no_main]

use dispecer_fuzz::{assert_citizen, assert_replays, brasov, received_at};
use libfuzzer_sys::fuzz_target;
use protocol::inbound::citizen_report;

fuzz_target!(|data: &[u8]| {
    let (city, now) = (brasov(), received_at());
    if let Ok(event) = citizen_report(data, city, now) {
        assert_citizen(city, &event, now);
        assert_replays(&event, citizen_report(event.payload.as_bytes(), city, now));
    }
});
