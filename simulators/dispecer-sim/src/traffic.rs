//! Traffic counters of the living city: every sensor site sends a SenML pack (vehicle count,
//! mean speed, occupancy) per interval, following a day of rush hours and free flow in the city's
//! own time zone, with seeded noise. An ordinary rush hour is slow (about half the free-flow speed
//! at worst) but stays above Dispecer's default congestion thresholds (`[traffic]` in
//! `city.toml`); now and then (about every [`JAM_EVERY_MIN`] minutes) a burst water main floods
//! the road at one counter: a citizen reports the leak beside it and the counter's speed collapses
//! for half an hour or so, which Dispecer sees as a congestion explained by the leak.

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use model::{City, SensorSite};

/// Mean minutes between two burst mains that jam a counter's road (the first comes 10 to 20
/// minutes after the start).
pub const JAM_EVERY_MIN: f64 = 90.0;

/// A counter whose road is jammed until `until`.
#[derive(Debug, Clone, Copy)]
struct Jam {
    site: usize,
    until: DateTime<Utc>,
}
use protocol::topics;

/// Vehicles per minute and lane a counter sees at full demand.
const LANE_CAPACITY_PER_MIN: f64 = 25.0;

/// Demand, from 0 (empty streets) to about 1 (rush hour), at `hour` (local, fractional).
pub fn demand(hour: f64) -> f64 {
    let peak = |centre: f64, width: f64, height: f64| {
        height * (-((hour - centre) / width).powi(2) / 2.0).exp()
    };
    // Night floor, the day's plateau, the morning and evening rush.
    let day = if (6.0..22.0).contains(&hour) {
        0.35
    } else {
        0.0
    };
    (0.06 + day + peak(8.0, 1.0, 0.65) + peak(17.5, 1.4, 0.6)).min(1.0)
}

/// Seeded packs for every sensor site of a city.
#[derive(Debug)]
pub struct TrafficGenerator {
    rng: ChaCha8Rng,
    zone: Tz,
    sites: Vec<SensorSite>,
    jam: Option<Jam>,
    next_jam: Option<DateTime<Utc>>,
}

impl TrafficGenerator {
    /// Counters of `city`; its `time_zone` decides when the rush hours are (UTC if unknown).
    pub fn new(city: &City, seed: u64) -> Self {
        TrafficGenerator {
            // Another stream than the reports', from the same seed.
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x7472_6166_6669_6300),
            zone: city.time_zone.parse().unwrap_or(Tz::UTC),
            sites: city.sensors.clone(),
            jam: None,
            next_jam: None,
        }
    }

    /// What the living city sends for the interval of `interval_s` seconds ending at `at`:
    /// every counter's pack, and, when a burst main starts jamming a road, the citizen's report
    /// of the leak beside its counter (first). `(topic, JSON)`.
    pub fn messages(&mut self, at: DateTime<Utc>, interval_s: f64) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        let next = match self.next_jam {
            Some(next) => next,
            None => {
                let first = at + chrono::Duration::seconds(self.rng.gen_range(600..1200));
                *self.next_jam.insert(first)
            }
        };
        if self.jam.is_none() && at >= next && !self.sites.is_empty() {
            let site = self.rng.gen_range(0..self.sites.len());
            let minutes = self.rng.gen_range(25..45);
            let until = at + chrono::Duration::minutes(minutes);
            self.jam = Some(Jam { site, until });
            // Exponential gaps between jams, counted from the end of this one.
            let gap = -JAM_EVERY_MIN * (1.0 - self.rng.gen::<f64>()).ln();
            self.next_jam = Some(until + chrono::Duration::seconds((gap * 60.0) as i64));
            let s = &self.sites[site];
            // About 60 m north-east of the counter.
            let (lon, lat) = (s.location.x() + 0.0005, s.location.y() + 0.0003);
            let round6 = |v: f64| (v * 1e6).round() / 1e6;
            out.push((
                topics::CITIZEN_REPORTS.to_owned(),
                json!({"type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [round6(lon), round6(lat)]},
                    "properties": {
                        "id": format!("sim-burst-{}-{}", s.id, at.timestamp()),
                        "category": "water_leak",
                        "description": format!("Conductă spartă, apa curge pe {} / Burst main, water on {}", s.road, s.road),
                        "reported_at": at.to_rfc3339()}}),
            ));
        }
        out.extend(self.packs(at, interval_s));
        if self.jam.is_some_and(|j| at >= j.until) {
            self.jam = None;
        }
        out
    }

    /// One pack per sensor site, for the interval of `interval_s` seconds ending at `at`:
    /// `(topic, SenML JSON)`.
    pub fn packs(&mut self, at: DateTime<Utc>, interval_s: f64) -> Vec<(String, Value)> {
        let local = at.with_timezone(&self.zone);
        let hour = f64::from(local.hour()) + f64::from(local.minute()) / 60.0;
        let d = demand(hour);
        let minutes = interval_s / 60.0;
        let time = at.timestamp();
        let sites = self.sites.clone();
        let jammed = self.jam.filter(|j| at < j.until).map(|j| j.site);
        sites
            .iter()
            .enumerate()
            .map(|(i, site)| {
                let noise = self.rng.gen_range(0.85..1.15);
                let load = (d * noise).min(1.0);
                let count = (LANE_CAPACITY_PER_MIN * f64::from(site.lanes.max(1)) * minutes * load)
                    .round();
                // Speed falls as the road fills, to about half the free flow at capacity.
                let mut speed = (site.free_flow_speed_kmh
                    * (1.0 - 0.45 * load.powi(3))
                    * self.rng.gen_range(0.95..1.05))
                .max(5.0);
                let mut occupancy = (4.0 + 50.0 * load.powf(1.8)).min(98.0);
                if jammed == Some(i) {
                    // Water on the road: a crawl, the loops covered.
                    speed = (site.free_flow_speed_kmh * self.rng.gen_range(0.1..0.25)).max(3.0);
                    occupancy = self.rng.gen_range(70.0..88.0);
                }
                let pack = json!([
                    {"bn": format!("{}/", site.id), "bt": time, "n": "count", "u": "count", "v": count},
                    {"n": "speed", "u": "km/h", "v": (speed * 10.0).round() / 10.0},
                    {"n": "occupancy", "u": "%", "v": (occupancy * 10.0).round() / 10.0},
                ]);
                (topics::traffic(site.id.as_str()), pack)
            })
            .collect()
    }
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
    fn rush_hours_are_busier_and_slower_than_the_night() {
        assert!(demand(8.0) > 0.9 && demand(17.5) > 0.9, "rush hours");
        assert!(demand(3.0) < 0.1, "night");
        assert!(
            demand(12.0) > demand(3.0) && demand(12.0) < demand(8.0),
            "midday"
        );

        let city = brasov();
        let mut g = TrafficGenerator::new(&city, 1);
        // 08:00 and 03:00 in Brașov (UTC+2 in November).
        let rush = DateTime::parse_from_rfc3339("2026-11-23T06:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        let night = rush - chrono::Duration::hours(5);
        let sum = |packs: &[(String, Value)], i: usize| -> f64 {
            packs.iter().filter_map(|(_, p)| p[i]["v"].as_f64()).sum()
        };
        let at_rush = g.packs(rush, 60.0);
        let at_night = g.packs(night, 60.0);
        assert_eq!(at_rush.len(), city.sensors.len());
        assert!(
            sum(&at_rush, 0) > 4.0 * sum(&at_night, 0),
            "more vehicles at 08:00"
        );
        assert!(sum(&at_rush, 1) < sum(&at_night, 1), "slower at 08:00");
        assert!(sum(&at_rush, 2) > sum(&at_night, 2), "fuller at 08:00");
    }

    #[test]
    fn an_ordinary_day_stays_above_the_congestion_thresholds_and_a_burst_main_jams_a_road() {
        let city = brasov();
        let rules = &city.traffic;
        let mut g = TrafficGenerator::new(&city, 3);
        let start = DateTime::parse_from_rfc3339("2026-11-23T04:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        let mut jams = Vec::new();
        let mut slow_minutes = 0;
        // Six hours, every minute, the morning rush included.
        for minute in 0..360 {
            let at = start + chrono::Duration::minutes(minute);
            let messages = g.messages(at, 60.0);
            if let Some((_, report)) = messages.iter().find(|(t, _)| t == topics::CITIZEN_REPORTS) {
                jams.push((at, report.clone()));
            }
            let jammed = g.jam.filter(|j| at < j.until).map(|j| j.site);
            for (i, (_, pack)) in messages
                .iter()
                .filter(|(t, _)| t != topics::CITIZEN_REPORTS)
                .enumerate()
            {
                let ff = city.sensors[i].free_flow_speed_kmh;
                let (speed, occupancy) = (
                    pack[1]["v"].as_f64().unwrap_or(0.0),
                    pack[2]["v"].as_f64().unwrap_or(0.0),
                );
                let congested =
                    speed < rules.speed_ratio * ff || occupancy > rules.occupancy_percent;
                if jammed == Some(i) {
                    assert!(congested, "a jammed road is congested: {pack}");
                    slow_minutes += 1;
                } else {
                    assert!(
                        !congested,
                        "an ordinary minute is not: {pack} (free flow {ff})"
                    );
                }
            }
        }
        let (first, report) = jams.first().cloned().unwrap_or_default();
        assert!(
            (start + chrono::Duration::minutes(10)..=start + chrono::Duration::minutes(20))
                .contains(&first),
            "the first burst main comes soon: {first}"
        );
        assert_eq!(report["properties"]["category"], "water_leak");
        let payload = serde_json::to_vec(&report).unwrap_or_default();
        assert!(
            protocol::inbound::citizen_report(&payload, &city, first).is_ok(),
            "{report}"
        );
        assert!(
            slow_minutes >= 25,
            "a jam lasts half an hour or so: {slow_minutes}"
        );
        assert!(jams.len() >= 2, "now and then: {jams:?}");
    }

    #[test]
    fn every_pack_is_accepted_and_the_same_seed_gives_the_same_packs() {
        let city = brasov();
        let at = Utc::now() - chrono::Duration::seconds(5);
        let a = TrafficGenerator::new(&city, 9).packs(at, 60.0);
        assert_eq!(a, TrafficGenerator::new(&city, 9).packs(at, 60.0));
        assert_ne!(a, TrafficGenerator::new(&city, 10).packs(at, 60.0));
        for (topic, pack) in &a {
            let sensor = topics::traffic_sensor(topic).unwrap_or_default();
            let payload = serde_json::to_vec(pack).unwrap_or_default();
            let readings = protocol::traffic::readings(&payload, sensor, &city, Utc::now());
            assert!(readings.is_ok_and(|r| r.len() == 3), "{topic}: {pack}");
        }
    }
}
