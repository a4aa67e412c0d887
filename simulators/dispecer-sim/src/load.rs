//! Load: a given number of valid messages per second per source kind, for a given time.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use model::City;

use crate::generator::Generator;
use crate::mqtt::{Delivery, MqttError, Publisher};

/// A source of messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// SenML packs of the city's traffic counters.
    Traffic,
    /// Citizen reports.
    Citizen,
    /// Utility events (GeoJSON).
    Utility,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Traffic => "traffic",
            Kind::Citizen => "citizen",
            Kind::Utility => "utility",
        })
    }
}

/// Valid messages of one kind, seeded.
#[derive(Debug)]
pub struct Source {
    kind: Kind,
    generator: Generator,
    rng: ChaCha8Rng,
    sensors: Vec<String>,
    next_sensor: usize,
}

impl Source {
    /// A source of `kind` messages for `city`.
    pub fn new(kind: Kind, city: &City, seed: u64) -> Source {
        // The generator's stream is a mix; a rate of zero for the other kind leaves one kind.
        let (reports, utility) = match kind {
            Kind::Utility => (0.0, 60.0),
            _ => (60.0, 0.0),
        };
        Source {
            kind,
            generator: Generator::new(city, seed, reports, utility),
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x7472_6166),
            sensors: city.sensors.iter().map(|s| s.id.to_string()).collect(),
            next_sensor: 0,
        }
    }

    /// The next message (topic, payload) stamped `now`; `None` if the city has nothing of this
    /// kind (no sensors, no utility operators).
    pub fn next(&mut self, now: DateTime<Utc>) -> Option<(String, Vec<u8>)> {
        match self.kind {
            Kind::Citizen | Kind::Utility => self
                .generator
                .next_message(now)
                .map(|m| (m.topic, m.payload.to_string().into_bytes())),
            Kind::Traffic => {
                let sensor = self.sensors.get(self.next_sensor)?.clone();
                self.next_sensor = (self.next_sensor + 1) % self.sensors.len();
                // Microseconds keep packs distinct: readings are idempotent by (sensor, metric, time).
                let bt = now.timestamp_micros() as f64 / 1e6;
                let count: u32 = self.rng.gen_range(0..60);
                let speed: f64 = self.rng.gen_range(5.0..70.0);
                let occupancy: f64 = self.rng.gen_range(0.0..95.0);
                let pack = json!([
                    {"bn": format!("{sensor}/"), "bt": bt, "n": "count", "u": "count", "v": count},
                    {"n": "speed", "u": "km/h", "v": (speed * 10.0).round() / 10.0},
                    {"n": "occupancy", "u": "%", "v": (occupancy * 10.0).round() / 10.0}
                ]);
                Some((
                    format!("dispecer/v1/in/traffic/{sensor}"),
                    pack.to_string().into_bytes(),
                ))
            }
        }
    }
}

/// The result of a load run.
#[derive(Debug, Clone)]
pub struct LoadSummary {
    /// Messages published per kind.
    pub per_kind: Vec<(Kind, u64)>,
    /// Wall-clock seconds of publishing.
    pub seconds: f64,
    /// What the broker acknowledged.
    pub delivery: Delivery,
}

impl LoadSummary {
    /// Messages per second achieved, all kinds together.
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.delivery.sent as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Publishes `rate` messages per second of each of `kinds` for `seconds`, evenly spaced, then
/// waits (up to 10 s) for the acknowledgements. Stops early on `shutdown`.
pub async fn run(
    city: &City,
    mut publisher: Publisher,
    kinds: &[Kind],
    rate: f64,
    seconds: f64,
    seed: u64,
    shutdown: CancellationToken,
) -> Result<LoadSummary, MqttError> {
    let per_kind_total = (rate * seconds).round().max(0.0) as u64;
    let interval = if rate > 0.0 { 1.0 / rate } else { 0.0 };
    // (source, messages sent, whether it ran dry)
    let mut sources: Vec<(Source, u64, bool)> = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| (Source::new(*k, city, seed.wrapping_add(i as u64)), 0, false))
        .collect();
    let start = tokio::time::Instant::now();
    // The kind whose next message is due first.
    let next_due = |sources: &[(Source, u64, bool)]| {
        sources
            .iter()
            .enumerate()
            .filter(|(_, (_, n, dry))| *n < per_kind_total && !*dry)
            .min_by_key(|(_, (_, n, _))| *n)
            .map(|(i, (_, n, _))| (i, *n))
    };
    while let Some((i, n)) = next_due(&sources) {
        let due = start + Duration::from_secs_f64(n as f64 * interval);
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep_until(due) => {}
        }
        let Some((source, sent, dry)) = sources.get_mut(i) else {
            break;
        };
        match source.next(Utc::now()) {
            Some((topic, payload)) => {
                publisher.publish(&topic, payload).await?;
                *sent += 1;
            }
            None => {
                tracing::warn!(kind = %source.kind, "the city has nothing of this kind to send");
                *dry = true;
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let per_kind = sources.iter().map(|(s, n, _)| (s.kind, *n)).collect();
    let delivery = publisher.finish(Duration::from_secs(10)).await;
    Ok(LoadSummary {
        per_kind,
        seconds,
        delivery,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn every_kind_sends_payloads_dispecer_accepts() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cities/brasov");
        let city = city::load(&dir).unwrap_or_else(|e| panic!("{e}"));
        let now = Utc::now();
        for kind in [Kind::Traffic, Kind::Citizen, Kind::Utility] {
            let mut source = Source::new(kind, &city, 3);
            for _ in 0..60 {
                let Some((topic, payload)) = source.next(now) else {
                    panic!("{kind}: nothing to send")
                };
                let parsed = crate::wire::parse(&topic, &payload, &city, now);
                match (kind, parsed) {
                    (Kind::Traffic, Ok(crate::wire::Parsed::Readings(r))) => assert_eq!(r.len(), 3),
                    (Kind::Citizen | Kind::Utility, Ok(crate::wire::Parsed::Event(e))) => {
                        let citizen = e.source == model::Source::Citizen;
                        assert_eq!(citizen, kind == Kind::Citizen, "{topic}");
                    }
                    (_, other) => panic!("{kind} {topic}: {other:?}"),
                }
            }
        }
    }
}
