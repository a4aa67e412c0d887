//! Sensor readings: one value of one metric of one sensor at one time.

use chrono::{DateTime, Utc};
use smol_str::SmolStr;

use crate::ids::SensorId;

/// A traffic counter's metrics, with the unit each is stored in.
pub const TRAFFIC_METRICS: [(&str, &str); 3] =
    [("count", "count"), ("speed", "km/h"), ("occupancy", "%")];

/// One reading. Identity: (sensor, metric, time) — the same reading delivered twice is stored once.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The sensor site.
    pub sensor: SensorId,
    /// What was measured, e.g. `count`, `speed`, `occupancy` (inline up to 23 bytes: a reading
    /// is cloned into the store's batch and the congestion detector's without allocating).
    pub metric: SmolStr,
    /// When.
    pub time: DateTime<Utc>,
    /// The value, in the metric's unit.
    pub value: f64,
}
