//! Traffic counters' readings: SenML packs (RFC 8428) on `dispecer/v1/in/traffic/{sensor_id}`.
//!
//! ```json
//! [{"bn": "tc-eroilor-e/", "bt": 1795000000, "n": "count", "u": "count", "v": 12},
//!  {"n": "speed", "u": "km/h", "v": 43.2},
//!  {"n": "occupancy", "u": "%", "v": 18.5}]
//! ```
//!
//! The pack may also come in SenML's CBOR form (RFC 8428 §6, `application/senml+cbor`), told
//! apart by its first byte (a CBOR array header, which no JSON text starts with).
//!
//! A record's resolved name is `{sensor_id}/{metric}` (or just `{metric}`); the metric is one of
//! `count` (vehicles, unit `count`), `speed` (mean speed, `km/h`) and `occupancy` (`%`). The
//! sensor's place comes from the city's sensor sites, never from the payload.

use chrono::{DateTime, Duration, Utc};

use model::reading::TRAFFIC_METRICS;
use model::{City, Reading, SensorSite};

use crate::error::WireError;
use crate::senml::{self, SenmlValue};

/// How far in the future a reading may be stamped before it is refused.
const CLOCK_SKEW: Duration = Duration::minutes(5);

/// Parses a SenML pack from traffic counter `sensor` (named by the topic) into readings. Record
/// names are `{sensor}/{metric}` or just `{metric}`.
pub fn readings(
    payload: &[u8],
    sensor: &str,
    city: &City,
    now: DateTime<Utc>,
) -> Result<Vec<Reading>, WireError> {
    let site = site(city, sensor)?;
    convert(payload, now, |name| {
        let metric = name
            .strip_prefix(sensor)
            .and_then(|rest| rest.strip_prefix('/'));
        Ok((site, metric.unwrap_or(name)))
    })
}

/// Parses a SenML pack that may carry several counters (`POST /api/v1/readings`): every record
/// name is `{sensor}/{metric}`.
pub fn readings_named(
    payload: &[u8],
    city: &City,
    now: DateTime<Utc>,
) -> Result<Vec<Reading>, WireError> {
    convert(payload, now, |name| {
        let (sensor, metric) = name.rsplit_once('/').ok_or_else(|| {
            WireError::Senml(format!("name {name:?} is not {{sensor}}/{{metric}}"))
        })?;
        Ok((site(city, sensor)?, metric))
    })
}

fn site<'c>(city: &'c City, sensor: &str) -> Result<&'c SensorSite, WireError> {
    city.sensors
        .iter()
        .find(|s| s.id.as_str() == sensor)
        .ok_or_else(|| WireError::UnknownSensor(sensor.to_owned()))
}

fn convert<'c>(
    payload: &[u8],
    now: DateTime<Utc>,
    resolve: impl for<'n> Fn(&'n str) -> Result<(&'c SensorSite, &'n str), WireError>,
) -> Result<Vec<Reading>, WireError> {
    let records = if senml::is_cbor(payload) {
        senml::parse_cbor(payload, now)
    } else {
        senml::parse_json(payload, now)
    }
    .map_err(|e| WireError::Senml(e.to_string()))?;
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        // Named as the SenML parser names records: their place in the pack, from 0.
        let i = r.index;
        let (site, metric) = resolve(&r.name)?;
        let Some((metric, unit)) = TRAFFIC_METRICS.iter().find(|(m, _)| *m == metric) else {
            let prefix = format!("{}/", site.id);
            return Err(WireError::Senml(format!(
                "record {i}: name {:?} is not {prefix}count, {prefix}speed or {prefix}occupancy",
                r.name
            )));
        };
        if let Some(u) = &r.unit {
            if u != unit {
                return Err(WireError::Senml(format!(
                    "record {i}: unit of {metric} must be {unit:?}, not {u:?}"
                )));
            }
        }
        let value = match r.value {
            Some(SenmlValue::Number(v)) => v,
            _ => {
                return Err(WireError::Senml(format!(
                    "record {i}: {metric} needs a numeric value \"v\""
                )))
            }
        };
        let valid = match *metric {
            "occupancy" => (0.0..=100.0).contains(&value),
            _ => (0.0..1.0e6).contains(&value),
        };
        if !valid {
            return Err(WireError::Senml(format!(
                "record {i}: {metric} value {value} is out of range"
            )));
        }
        if r.time > now + CLOCK_SKEW {
            return Err(WireError::Senml(format!(
                "record {i}: time {} is in the future",
                r.time.to_rfc3339()
            )));
        }
        out.push(Reading {
            sensor: site.id.clone(),
            metric: (*metric).into(),
            time: r.time,
            value,
        });
    }
    Ok(out)
}
