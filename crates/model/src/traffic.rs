//! Traffic congestion, detected from the traffic counters' readings.
//!
//! Each sensor keeps a speed baseline per slot of the local day (`slot_minutes` long, in the
//! city's time zone). A slot starts at the sensor's free-flow speed and learns from history: when
//! a slot of a day is over, the mean speed measured in it moves the slot's baseline by
//! `learning_rate` of the difference (an exponential moving average of the daily means). Every
//! reading counts, congested or not: one bad day moves a slot a fraction of the way, and a rush
//! hour that comes back every day at the same time becomes that slot's baseline within a few
//! days, after which it is no longer news.
//!
//! A reading *looks congested* when its speed is below `speed_ratio` × the slot's baseline or its
//! occupancy is above `occupancy_percent`. `sustain_readings` consecutive such readings spanning at
//! least `sustain_minutes` open an episode ([`Change::Started`], dated from the first of them);
//! a single dip does not. The episode ends ([`Change::Ended`]) after `recover_readings`
//! consecutive readings that *look recovered* — speed at least `recover_ratio` × baseline and
//! occupancy below `recover_occupancy_percent`, a stricter bar than the one that opened it
//! (hysteresis) — spanning at least `recover_minutes`.
//!
//! Readings older than or as old as the sensor's last one are ignored (a redelivery), so
//! feeding the same readings twice changes nothing.
//!
//! Boundary: pure; time comes from the readings, the caller turns [`Change`]s into events.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;

use crate::city::City;
use crate::ids::{CategoryId, SensorId};

/// The rules of congestion, from the city data (`city.toml`, `[traffic]`); every field has a
/// default ([`TrafficRules::default`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficRules {
    /// The category of the incidents congestion opens; `None` turns detection off.
    pub category: Option<CategoryId>,
    /// Length of a baseline slot of the local day, minutes (divides 1440).
    pub slot_minutes: u32,
    /// Weight of one day's mean in a slot's baseline, in (0, 1].
    pub learning_rate: f64,
    /// A reading looks congested below this fraction of the baseline speed.
    pub speed_ratio: f64,
    /// ... or above this occupancy, percent.
    pub occupancy_percent: f64,
    /// Consecutive congested-looking readings that open an episode...
    pub sustain_readings: u32,
    /// ...spanning at least this long from the first to the last.
    pub sustain_minutes: u32,
    /// A reading looks recovered at or above this fraction of the baseline speed...
    pub recover_ratio: f64,
    /// ...and below this occupancy, percent.
    pub recover_occupancy_percent: f64,
    /// Consecutive recovered-looking readings that end an episode...
    pub recover_readings: u32,
    /// ...spanning at least this long.
    pub recover_minutes: u32,
    /// An open incident of these categories within `link_radius_m` explains a congestion (a
    /// burst main flooding the road, an accident): the congestion incident is linked to it.
    pub explained_by: Vec<CategoryId>,
    /// How far an explaining incident may be, meters.
    pub link_radius_m: f64,
}

impl Default for TrafficRules {
    fn default() -> Self {
        TrafficRules {
            category: Some(CategoryId::new("congestion")),
            slot_minutes: 15,
            learning_rate: 0.3,
            speed_ratio: 0.5,
            occupancy_percent: 60.0,
            sustain_readings: 3,
            sustain_minutes: 5,
            recover_ratio: 0.7,
            recover_occupancy_percent: 40.0,
            recover_readings: 3,
            recover_minutes: 5,
            explained_by: Vec::new(),
            link_radius_m: 300.0,
        }
    }
}

/// What one counter measured at one time (the readings of one SenML pack).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// When.
    pub time: DateTime<Utc>,
    /// Mean speed, km/h.
    pub speed: Option<f64>,
    /// Occupancy, percent.
    pub occupancy: Option<f64>,
}

/// A congestion episode starting or ending.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Traffic at `sensor` has been congested since `since` (the first congested reading);
    /// `at` is the reading that made it sustained.
    Started {
        /// The counter.
        sensor: SensorId,
        /// The episode's start: with the sensor, its identity.
        since: DateTime<Utc>,
        /// The reading that opened it.
        at: DateTime<Utc>,
        /// Its speed, km/h, if measured.
        speed: Option<f64>,
        /// Its occupancy, percent, if measured.
        occupancy: Option<f64>,
        /// The slot's baseline speed then, km/h.
        baseline: f64,
    },
    /// The episode that started at `since` is over: traffic recovered by `at`.
    Ended {
        /// The counter.
        sensor: SensorId,
        /// The episode's start.
        since: DateTime<Utc>,
        /// The reading that ended it.
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone)]
enum State {
    Normal {
        /// Consecutive congested-looking readings: how many, and the first's time.
        run: Option<(u32, DateTime<Utc>)>,
    },
    Congested {
        since: DateTime<Utc>,
        /// Consecutive recovered-looking readings: how many, and the first's time.
        ok: Option<(u32, DateTime<Utc>)>,
    },
}

#[derive(Debug, Clone)]
struct SensorState {
    baseline: Vec<f64>,
    /// The slot being measured now: (local date, slot), sum and count of its speeds.
    current: Option<((NaiveDate, usize), f64, u32)>,
    last: Option<DateTime<Utc>>,
    state: State,
}

/// Congestion detection for every counter of a city.
#[derive(Debug, Clone)]
pub struct Detector {
    rules: TrafficRules,
    tz: Tz,
    sensors: HashMap<SensorId, SensorState>,
}

impl Detector {
    /// A detector for `city`'s counters with `city.traffic`'s rules, every baseline at the
    /// counter's free-flow speed. The slots follow the city's time zone (UTC if it names none
    /// this build knows).
    pub fn new(city: &City) -> Detector {
        let rules = city.traffic.clone();
        let slots = slots_per_day(&rules);
        let tz = city.time_zone.parse().unwrap_or(Tz::UTC);
        let sensors = city
            .sensors
            .iter()
            .map(|s| {
                (
                    s.id.clone(),
                    SensorState {
                        baseline: vec![s.free_flow_speed_kmh; slots],
                        current: None,
                        last: None,
                        state: State::Normal { run: None },
                    },
                )
            })
            .collect();
        Detector { rules, tz, sensors }
    }

    /// The rules in force.
    pub fn rules(&self) -> &TrafficRules {
        &self.rules
    }

    /// The slot of the local day `time` falls in, and that day.
    fn slot(&self, time: DateTime<Utc>) -> (NaiveDate, usize) {
        let local = time.with_timezone(&self.tz);
        let minutes = local.hour() * 60 + local.minute();
        let slot = (minutes / self.rules.slot_minutes.max(1)) as usize;
        (local.date_naive(), slot.min(slots_per_day(&self.rules) - 1))
    }

    /// `sensor`'s baseline speed at `time`, km/h (`None` for a sensor the city does not have).
    pub fn baseline(&self, sensor: &SensorId, time: DateTime<Utc>) -> Option<f64> {
        let (_, slot) = self.slot(time);
        self.sensors.get(sensor).map(|s| s.baseline[slot])
    }

    /// Whether `sensor` is in a congestion episode, and since when.
    pub fn congested_since(&self, sensor: &SensorId) -> Option<DateTime<Utc>> {
        match self.sensors.get(sensor)?.state {
            State::Congested { since, .. } => Some(since),
            State::Normal { .. } => None,
        }
    }

    /// Learns one past slot's mean speed (`mean_kmh` over the slot starting at `bucket`, e.g.
    /// a 15-minute rollup of the stored history), as if that slot had just ended. Feed history
    /// oldest first, before any live sample.
    pub fn learn(&mut self, sensor: &SensorId, bucket: DateTime<Utc>, mean_kmh: f64) {
        if !(mean_kmh.is_finite() && mean_kmh >= 0.0) {
            return;
        }
        let (_, slot) = self.slot(bucket);
        let rate = self.rules.learning_rate;
        if let Some(s) = self.sensors.get_mut(sensor) {
            s.baseline[slot] += rate * (mean_kmh - s.baseline[slot]);
        }
    }

    /// Resumes an episode that an incident still shows open (after a restart): `sensor` is
    /// congested since `since` until readings say it recovered.
    pub fn resume(&mut self, sensor: &SensorId, since: DateTime<Utc>) {
        if let Some(s) = self.sensors.get_mut(sensor) {
            s.state = State::Congested { since, ok: None };
        }
    }

    /// Takes one sample of `sensor`; returns the episode it opened or ended, if any. A sample
    /// of an unknown sensor, one not newer than the sensor's last, or one with neither speed
    /// nor occupancy changes nothing.
    pub fn observe(&mut self, sensor: &SensorId, sample: Sample) -> Option<Change> {
        let speed = sample.speed.filter(|v| v.is_finite() && *v >= 0.0);
        let occupancy = sample.occupancy.filter(|v| v.is_finite() && *v >= 0.0);
        if speed.is_none() && occupancy.is_none() {
            return None;
        }
        let key = self.slot(sample.time);
        let rules = self.rules.clone();
        let s = self.sensors.get_mut(sensor)?;
        if s.last.is_some_and(|last| sample.time <= last) {
            return None;
        }
        s.last = Some(sample.time);
        // A new slot: the one that ended teaches its baseline.
        match &mut s.current {
            Some((k, sum, n)) if *k == key => {
                if let Some(v) = speed {
                    *sum += v;
                    *n += 1;
                }
            }
            current => {
                if let Some(((_, slot), sum, n)) = current.take() {
                    if n > 0 {
                        let mean = sum / f64::from(n);
                        s.baseline[slot] += rules.learning_rate * (mean - s.baseline[slot]);
                    }
                }
                *current = Some((key, speed.unwrap_or(0.0), u32::from(speed.is_some())));
            }
        }
        let baseline = s.baseline[key.1];
        let congested = speed.is_some_and(|v| v < rules.speed_ratio * baseline)
            || occupancy.is_some_and(|o| o > rules.occupancy_percent);
        let recovered = speed.is_none_or(|v| v >= rules.recover_ratio * baseline)
            && occupancy.is_none_or(|o| o < rules.recover_occupancy_percent);
        let sustained = |n: u32, first: DateTime<Utc>, readings: u32, minutes: u32| {
            n >= readings.max(1) && sample.time - first >= Duration::minutes(i64::from(minutes))
        };
        match &mut s.state {
            State::Normal { run } => {
                if !congested {
                    *run = None;
                    return None;
                }
                let (n, first) = match run {
                    Some((n, first)) => (*n + 1, *first),
                    None => (1, sample.time),
                };
                if sustained(n, first, rules.sustain_readings, rules.sustain_minutes) {
                    s.state = State::Congested {
                        since: first,
                        ok: None,
                    };
                    return Some(Change::Started {
                        sensor: sensor.clone(),
                        since: first,
                        at: sample.time,
                        speed,
                        occupancy,
                        baseline,
                    });
                }
                *run = Some((n, first));
                None
            }
            State::Congested { since, ok } => {
                if !recovered {
                    *ok = None;
                    return None;
                }
                let (n, first) = match ok {
                    Some((n, first)) => (*n + 1, *first),
                    None => (1, sample.time),
                };
                if sustained(n, first, rules.recover_readings, rules.recover_minutes) {
                    let since = *since;
                    s.state = State::Normal { run: None };
                    return Some(Change::Ended {
                        sensor: sensor.clone(),
                        since,
                        at: sample.time,
                    });
                }
                *ok = Some((n, first));
                None
            }
        }
    }
}

/// Slots in a day (at least one).
fn slots_per_day(rules: &TrafficRules) -> usize {
    (1440 / rules.slot_minutes.clamp(1, 1440)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::city::SensorSite;
    use chrono::TimeZone;
    use geo::{MultiPolygon, Point, Rect};

    const SENSOR: &str = "tc-1";

    fn city() -> City {
        City {
            id: "t".into(),
            name: crate::Localized {
                ro: "T".into(),
                en: "T".into(),
            },
            default_language: crate::Language::Ro,
            languages: vec![crate::Language::Ro, crate::Language::En],
            time_zone: "Europe/Bucharest".into(),
            bounds: Rect::new((25.0, 45.0), (26.0, 46.0)),
            center: Point::new(25.5, 45.5),
            boundary: MultiPolygon::new(vec![]),
            districts: vec![],
            categories: vec![],
            agencies: vec![],
            sensors: vec![SensorSite {
                id: SENSOR.into(),
                name: "T".into(),
                location: Point::new(25.5, 45.5),
                road: "R".into(),
                direction: "N".into(),
                free_flow_speed_kmh: 50.0,
                lanes: 2,
            }],
            fallback_agency: "x".into(),
            traffic: TrafficRules::default(),
        }
    }

    /// Local time in Brașov (UTC+2 in winter) on day `day` of November 2026.
    fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        chrono_tz::Europe::Bucharest
            .with_ymd_and_hms(2026, 11, day, hour, minute, 0)
            .single()
            .map(|t| t.with_timezone(&Utc))
            .expect("a valid local time")
    }

    /// A day of samples every `step` minutes from `from` to `to` (local hours), speed by time.
    fn day(
        d: u32,
        (from, to): (u32, u32),
        step: u32,
        speed: impl Fn(u32, u32) -> f64,
    ) -> Vec<Sample> {
        let mut out = Vec::new();
        for minutes in (from * 60..to * 60).step_by(step as usize) {
            let (h, m) = (minutes / 60, minutes % 60);
            out.push(Sample {
                time: at(d, h, m),
                speed: Some(speed(h, m)),
                occupancy: Some(10.0),
            });
        }
        out
    }

    fn run(detector: &mut Detector, samples: &[Sample]) -> Vec<Change> {
        let id = SensorId::new(SENSOR);
        samples
            .iter()
            .filter_map(|s| detector.observe(&id, *s))
            .collect()
    }

    fn kinds(changes: &[Change]) -> Vec<(&'static str, DateTime<Utc>)> {
        changes
            .iter()
            .map(|c| match c {
                Change::Started { since, .. } => ("started", *since),
                Change::Ended { since, .. } => ("ended", *since),
            })
            .collect()
    }

    #[test]
    fn scenarios() {
        // (name, samples (day, local hour, minute, speed, occupancy), expected changes)
        type S = (u32, u32, u32, f64, f64);
        type Expected = Vec<(&'static str, (u32, u32, u32))>;
        let table: Vec<(&str, Vec<S>, Expected)> = vec![
            (
                "free flow all along",
                (0..30)
                    .map(|i| (2, 10, i * 2, 48.0 + f64::from(i % 3), 12.0))
                    .collect(),
                vec![],
            ),
            (
                "a single dip is not congestion",
                vec![
                    (2, 10, 0, 50.0, 10.0),
                    (2, 10, 1, 12.0, 10.0),
                    (2, 10, 2, 50.0, 10.0),
                    (2, 10, 3, 11.0, 10.0),
                    (2, 10, 4, 49.0, 10.0),
                ],
                vec![],
            ),
            (
                "three slow readings over two minutes are not yet sustained",
                vec![
                    (2, 10, 0, 10.0, 10.0),
                    (2, 10, 1, 10.0, 10.0),
                    (2, 10, 2, 10.0, 10.0),
                ],
                vec![],
            ),
            (
                "a sustained drop opens one episode, dated from its first reading",
                (0..10).map(|i| (2, 10, i, 12.0, 20.0)).collect(),
                vec![("started", (2, 10, 0))],
            ),
            (
                "high occupancy alone is congestion",
                (0..8).map(|i| (2, 10, i, 45.0, 80.0)).collect(),
                vec![("started", (2, 10, 0))],
            ),
            (
                "recovery ends the episode",
                (0..8)
                    .map(|i| (2, 10, i, 12.0, 20.0))
                    .chain((8..16).map(|i| (2, 10, i, 48.0, 10.0)))
                    .collect(),
                vec![("started", (2, 10, 0)), ("ended", (2, 10, 0))],
            ),
            (
                "half-way speeds keep it open (hysteresis)",
                (0..8)
                    .map(|i| (2, 10, i, 12.0, 20.0))
                    .chain((8..30).map(|i| (2, 10, i, 30.0, 20.0)))
                    .collect(),
                vec![("started", (2, 10, 0))],
            ),
            (
                "a recovery interrupted by a slow reading starts counting again",
                (0..8)
                    .map(|i| (2, 10, i, 12.0, 20.0))
                    .chain([
                        (2, 10, 8, 48.0, 10.0),
                        (2, 10, 9, 48.0, 10.0),
                        (2, 10, 10, 48.0, 10.0),
                        (2, 10, 11, 10.0, 10.0),
                    ])
                    .chain((12..18).map(|i| (2, 10, i, 48.0, 10.0)))
                    .collect(),
                vec![("started", (2, 10, 0)), ("ended", (2, 10, 0))],
            ),
        ];
        for (name, samples, expected) in table {
            let mut d = Detector::new(&city());
            let samples: Vec<Sample> = samples
                .iter()
                .map(|&(day, h, m, speed, occ)| Sample {
                    time: at(day, h, m),
                    speed: Some(speed),
                    occupancy: Some(occ),
                })
                .collect();
            let got = run(&mut d, &samples);
            let want: Vec<(&str, DateTime<Utc>)> = expected
                .iter()
                .map(|&(k, (day, h, m))| (k, at(day, h, m)))
                .collect();
            assert_eq!(kinds(&got), want, "{name}");
        }
    }

    #[test]
    fn a_redelivered_sample_changes_nothing() {
        let mut d = Detector::new(&city());
        let slow: Vec<Sample> = (0..6)
            .map(|i| Sample {
                time: at(2, 10, i),
                speed: Some(10.0),
                occupancy: None,
            })
            .collect();
        assert_eq!(run(&mut d, &slow).len(), 1);
        assert!(run(&mut d, &slow).is_empty(), "the same samples again");
        assert_eq!(d.congested_since(&SENSOR.into()), Some(at(2, 10, 0)));
    }

    #[test]
    fn an_everyday_rush_hour_becomes_the_baseline() {
        // 50 km/h all day, 15 km/h from 08:00 to 09:00 every day.
        let speed = |h: u32, _m: u32| if h == 8 { 15.0 } else { 50.0 };
        let mut d = Detector::new(&city());
        let mut episodes_per_day = Vec::new();
        for day_of_month in 2..12 {
            let changes = run(&mut d, &day(day_of_month, (6, 11), 1, speed));
            episodes_per_day.push(
                changes
                    .iter()
                    .filter(|c| matches!(c, Change::Started { .. }))
                    .count(),
            );
        }
        assert_eq!(episodes_per_day[0], 1, "new at first: {episodes_per_day:?}");
        assert_eq!(
            episodes_per_day[episodes_per_day.len() - 1],
            0,
            "learnt after days: {episodes_per_day:?}"
        );
        let rush = d.baseline(&SENSOR.into(), at(12, 8, 30)).unwrap_or(0.0);
        let noon = d.baseline(&SENSOR.into(), at(12, 10, 30)).unwrap_or(0.0);
        assert!(rush < 25.0, "rush-hour baseline {rush}");
        assert!(
            (noon - 50.0).abs() < 1e-9,
            "other hours keep free flow: {noon}"
        );
        // The same drop at another hour is still congestion.
        let other = run(&mut d, &day(12, (14, 15), 1, |_, _| 15.0));
        assert_eq!(kinds(&other), vec![("started", at(12, 14, 0))]);
    }

    #[test]
    fn learnt_history_sets_the_slot() {
        let mut d = Detector::new(&city());
        let id = SensorId::new(SENSOR);
        for day in 2..20 {
            d.learn(&id, at(day, 8, 0), 20.0);
        }
        let b = d.baseline(&id, at(21, 8, 5)).unwrap_or(0.0);
        assert!((b - 20.0).abs() < 0.1, "{b}");
        assert_eq!(d.baseline(&id, at(21, 8, 15)), Some(50.0));
        // 12 km/h is no longer less than half of the usual at 08:00.
        assert!(run(
            &mut d,
            &day(21, (8, 9), 1, |_, m| if m < 15 { 12.0 } else { 50.0 })
        )
        .is_empty());
    }

    #[test]
    fn a_resumed_episode_ends_on_recovery() {
        let mut d = Detector::new(&city());
        let id = SensorId::new(SENSOR);
        d.resume(&id, at(2, 9, 0));
        let got = run(&mut d, &day(2, (10, 11), 1, |_, _| 50.0));
        assert_eq!(kinds(&got), vec![("ended", at(2, 9, 0))]);
    }

    #[test]
    fn unknown_sensors_and_empty_samples_change_nothing() {
        let mut d = Detector::new(&city());
        let empty = Sample {
            time: at(2, 10, 0),
            speed: None,
            occupancy: None,
        };
        assert_eq!(d.observe(&SENSOR.into(), empty), None);
        let slow = Sample {
            speed: Some(1.0),
            ..empty
        };
        for i in 0..10 {
            let s = Sample {
                time: at(2, 10, i),
                ..slow
            };
            assert_eq!(d.observe(&"nope".into(), s), None);
        }
    }
}
