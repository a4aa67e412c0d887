//! What the MQTT ingest adapter makes of a message: the same parser per topic, so that a
//! scenario can be checked, and replayed in tests, exactly as Dispecer would read it.

use chrono::{DateTime, Utc};

use model::{City, Event, Reading};
use protocol::{inbound, topics, traffic, WireError};

/// A message as the adapter parses it.
#[derive(Debug, Clone)]
pub enum Parsed {
    /// A citizen report or a utility event, for the engine.
    Event(Box<Event>),
    /// A traffic counter's readings, for the store.
    Readings(Vec<Reading>),
}

/// Parses `payload` received on `topic` at `received_at`, choosing the parser as
/// `ingest-adapters/mqtt` does: citizen reports are GeoJSON; a utility payload whose first
/// non-blank byte is `<` is CAP 1.2, otherwise GeoJSON; traffic topics carry SenML (JSON or CBOR).
pub fn parse(
    topic: &str,
    payload: &[u8],
    city: &City,
    received_at: DateTime<Utc>,
) -> Result<Parsed, WireError> {
    if topic == topics::CITIZEN_REPORTS {
        inbound::citizen_report(payload, city, received_at).map(|e| Parsed::Event(Box::new(e)))
    } else if let Some(operator) = topics::utility_operator(topic) {
        let cap = payload.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<');
        if cap {
            inbound::cap_event(payload, operator, city, received_at)
        } else {
            inbound::utility_event(payload, operator, city, received_at)
        }
        .map(|e| Parsed::Event(Box::new(e)))
    } else if let Some(sensor) = topics::traffic_sensor(topic) {
        traffic::readings(payload, sensor, city, received_at).map(Parsed::Readings)
    } else {
        Err(WireError::UnknownTopic(topic.to_owned()))
    }
}
