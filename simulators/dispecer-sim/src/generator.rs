//! The deterministic part of the simulation: which message comes next, and when.

use chrono::{DateTime, SecondsFormat, Utc};
use geo::{BoundingRect, Contains, MultiPolygon, Point};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use model::City;
use protocol::topics;

/// One message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct SimMessage {
    /// MQTT topic.
    pub topic: String,
    /// JSON payload.
    pub payload: Value,
    /// Seconds to wait before publishing it (after the previous one).
    pub delay_s: f64,
}

/// Relative frequency of citizen report categories (ids absent from the city are skipped).
const CITIZEN_MIX: &[(&str, u32, &str)] = &[
    ("pothole", 16, "Groapă mare în carosabil"),
    (
        "street_light_out",
        12,
        "Stâlpul de iluminat nu funcționează",
    ),
    ("illegal_dumping", 9, "Deșeuri aruncate lângă bloc"),
    ("fallen_tree", 5, "Copac căzut pe trotuar"),
    ("no_water", 6, "Nu avem apă la robinet"),
    ("water_leak", 5, "Apă curge din carosabil"),
    ("traffic_light_failure", 4, "Semaforul nu funcționează"),
    ("abandoned_vehicle", 4, "Mașină abandonată de luni de zile"),
    ("road_damage", 5, "Asfalt deteriorat"),
    ("sewer_overflow", 3, "Canalizarea dă pe dinafară"),
    ("power_outage", 3, "Nu avem curent în bloc"),
    ("snow_ice", 3, "Gheață pe trotuar"),
    ("flooding", 2, "Strada este inundată"),
    ("gas_smell", 1, "Miros puternic de gaz"),
    ("congestion", 2, "Trafic blocat"),
    ("other", 3, "Altă problemă"),
];

/// Utility events: (agency kind, category, description).
const UTILITY_MIX: &[(&str, &str, &str)] = &[
    ("water", "water_leak", "Avarie conductă de distribuție"),
    ("water", "no_water", "Întrerupere furnizare apă"),
    (
        "power",
        "power_outage",
        "Întrerupere alimentare energie electrică",
    ),
    ("gas", "gas_smell", "Intervenție rețea gaze"),
    (
        "heating",
        "district_heating_failure",
        "Avarie rețea termoficare",
    ),
];

/// Generates a plausible, seeded stream for a city.
#[derive(Debug)]
pub struct Generator {
    rng: ChaCha8Rng,
    seed: u64,
    districts: Vec<(MultiPolygon, geo::Rect)>,
    citizen: Vec<(String, u32, &'static str)>,
    citizen_total: u32,
    utility: Vec<(String, String, &'static str)>,
    reports_per_s: f64,
    utility_per_s: f64,
    recent: Vec<(String, Point)>,
    counter: u64,
}

impl Generator {
    /// A generator for `city`, with the given rates per minute.
    pub fn new(city: &City, seed: u64, reports_per_minute: f64, utility_per_minute: f64) -> Self {
        let districts = city
            .districts
            .iter()
            .filter_map(|d| d.area.bounding_rect().map(|r| (d.area.clone(), r)))
            .collect();
        let citizen: Vec<(String, u32, &'static str)> = CITIZEN_MIX
            .iter()
            .filter(|(id, _, _)| city.category(id).is_some())
            .map(|(id, w, d)| ((*id).to_owned(), *w, *d))
            .collect();
        let citizen_total = citizen.iter().map(|c| c.1).sum();
        let utility = UTILITY_MIX
            .iter()
            .filter(|(_, cat, _)| city.category(cat).is_some())
            .filter_map(|(kind, cat, d)| {
                city.agencies
                    .iter()
                    .find(|a| a.kind == *kind && a.categories.iter().any(|c| c.as_str() == *cat))
                    .map(|a| (a.id.to_string(), (*cat).to_owned(), *d))
            })
            .collect();
        Generator {
            rng: ChaCha8Rng::seed_from_u64(seed),
            seed,
            districts,
            citizen,
            citizen_total,
            utility,
            reports_per_s: (reports_per_minute / 60.0).max(0.0),
            utility_per_s: (utility_per_minute / 60.0).max(0.0),
            recent: Vec::new(),
            counter: 0,
        }
    }

    fn exp_delay(&mut self, rate_per_s: f64) -> f64 {
        let u: f64 = self.rng.gen_range(f64::EPSILON..1.0);
        -u.ln() / rate_per_s
    }

    fn point_in_city(&mut self) -> Option<Point> {
        if self.districts.is_empty() {
            return None;
        }
        let i = self.rng.gen_range(0..self.districts.len());
        let (area, rect) = &self.districts[i];
        let (area, rect) = (area.clone(), *rect);
        for _ in 0..64 {
            let p = Point::new(
                self.rng.gen_range(rect.min().x..=rect.max().x),
                self.rng.gen_range(rect.min().y..=rect.max().y),
            );
            if area.contains(&p) {
                return Some(p);
            }
        }
        None
    }

    /// The next message, stamped with `now` as its report time.
    pub fn next_message(&mut self, now: DateTime<Utc>) -> Option<SimMessage> {
        let total_rate = self.reports_per_s + self.utility_per_s;
        if total_rate <= 0.0 {
            return None;
        }
        let delay_s = self.exp_delay(total_rate);
        self.counter += 1;
        let id = format!("sim-{}-{}", self.seed, self.counter);
        let time = now.to_rfc3339_opts(SecondsFormat::Secs, true);
        let utility =
            !self.utility.is_empty() && self.rng.gen_bool(self.utility_per_s / total_rate);
        if utility {
            let (operator, category, description) =
                self.utility[self.rng.gen_range(0..self.utility.len())].clone();
            let at = self.point_in_city()?;
            let kind = ["fault", "outage", "planned_works"][self.rng.gen_range(0..3)];
            let geometry = if self.rng.gen_bool(0.5) {
                json!({"type": "Point", "coordinates": [round6(at.x()), round6(at.y())]})
            } else {
                // A small outage area around the point, counter-clockwise.
                let r = self.rng.gen_range(0.002..0.006);
                let ring: Vec<Value> = (0..=8)
                    .map(|k| {
                        let a = f64::from(k % 8) * std::f64::consts::TAU / 8.0;
                        json!([
                            round6(at.x() + r * a.cos() * 1.4),
                            round6(at.y() + r * a.sin())
                        ])
                    })
                    .collect();
                json!({"type": "Polygon", "coordinates": [ring]})
            };
            return Some(SimMessage {
                topic: topics::utility_events(&operator),
                payload: json!({"type": "Feature", "geometry": geometry, "properties": {
                    "id": id, "kind": kind, "category": category, "description": description,
                    "starts_at": time,
                }}),
                delay_s,
            });
        }
        // A quarter of citizen reports describe something already reported nearby.
        let (category, at, description) = if !self.recent.is_empty() && self.rng.gen_bool(0.25) {
            let (cat, p) = self.recent[self.rng.gen_range(0..self.recent.len())].clone();
            let jitter = Point::new(
                p.x() + self.rng.gen_range(-0.0002..0.0002),
                p.y() + self.rng.gen_range(-0.00015..0.00015),
            );
            let desc = CITIZEN_MIX
                .iter()
                .find(|c| c.0 == cat)
                .map(|c| c.2)
                .unwrap_or("Altă problemă");
            (cat, jitter, desc)
        } else {
            let mut pick = self.rng.gen_range(0..self.citizen_total.max(1));
            let mut chosen = self.citizen.first()?.clone();
            for c in &self.citizen {
                if pick < c.1 {
                    chosen = c.clone();
                    break;
                }
                pick -= c.1;
            }
            let at = self.point_in_city()?;
            self.recent.push((chosen.0.clone(), at));
            if self.recent.len() > 50 {
                self.recent.remove(0);
            }
            (chosen.0, at, chosen.2)
        };
        Some(SimMessage {
            topic: topics::CITIZEN_REPORTS.to_owned(),
            payload: json!({"type": "Feature",
                "geometry": {"type": "Point", "coordinates": [round6(at.x()), round6(at.y())]},
                "properties": {"id": id, "category": category, "description": description, "reported_at": time}}),
            delay_s,
        })
    }
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn brasov() -> City {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cities/brasov");
        city::load(&dir).unwrap_or_else(|e| panic!("demo city must load: {e}"))
    }

    #[test]
    fn same_seed_same_stream_other_seed_other_stream() {
        let city = brasov();
        let now = Utc::now();
        let take = |seed| {
            let mut g = Generator::new(&city, seed, 60.0, 6.0);
            (0..200)
                .filter_map(|_| g.next_message(now))
                .collect::<Vec<_>>()
        };
        let a = take(7);
        assert_eq!(a.len(), 200);
        assert_eq!(a, take(7));
        assert_ne!(a, take(8));
        assert!(
            a.iter()
                .any(|m| m.topic.starts_with("dispecer/v1/in/utilities/")),
            "utility events too"
        );
    }

    #[test]
    fn every_message_is_accepted_by_the_protocol() {
        let city = brasov();
        let now = Utc::now();
        let mut g = Generator::new(&city, 1, 60.0, 6.0);
        for _ in 0..300 {
            let m = g
                .next_message(now)
                .unwrap_or_else(|| panic!("stream ended"));
            let payload = serde_json::to_vec(&m.payload).unwrap_or_default();
            let parsed = match topics::utility_operator(&m.topic) {
                Some(op) => protocol::inbound::utility_event(&payload, op, &city, now),
                None => protocol::inbound::citizen_report(&payload, &city, now),
            };
            assert!(
                parsed.is_ok(),
                "{} {}: {:?}",
                m.topic,
                m.payload,
                parsed.err()
            );
        }
    }
}
