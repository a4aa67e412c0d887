//! A utility's GeoJSON event (`dispecer/v1/in/utilities/{operator}/events`): never panics; an
//! accepted event has a place inside the city (a point inside its line or area), a known
//! category, a subject naming the operator, and its logged payload parses again to the same
//! event. The first byte picks the operator id from the topic (including invalid ones).
#![no_main]

use dispecer_fuzz::{assert_replays, assert_utility, brasov, received_at};
use libfuzzer_sys::fuzz_target;
use protocol::inbound::utility_event;

const OPERATORS: [&str; 4] = ["apa-brasov", "electrica", "bad/operator", ""];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let operator = OPERATORS[usize::from(pick) % OPERATORS.len()];
    let (city, now) = (brasov(), received_at());
    if let Ok(event) = utility_event(payload, operator, city, now) {
        assert!(
            model::ids::valid_id(operator),
            "operator {operator:?} accepted"
        );
        assert_utility(city, &event, operator, now);
        let subject = event.subject.as_deref().unwrap_or_default();
        assert!(
            subject.starts_with(&format!("utility:{operator}:")),
            "{subject}"
        );
        assert!(event.id.as_str().starts_with(subject), "{:?}", event.id);
        assert!(
            event.occurred_at <= now + chrono::Duration::days(366) + dispecer_fuzz::CLOCK_SKEW,
            "starts more than a year ahead"
        );
        assert_replays(
            &event,
            utility_event(event.payload.as_bytes(), operator, city, now),
        );
    }
});
