//! The files of a city folder, as written by people. Unknown fields are refused so that a typo
//! never silently becomes a default.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Names {
    pub ro: String,
    pub en: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CityFile {
    pub id: String,
    pub name: Names,
    pub default_language: String,
    pub languages: Vec<String>,
    pub time_zone: String,
    /// west, south, east, north
    pub bounds: [f64; 4],
    /// longitude, latitude
    pub center: [f64; 2],
    pub fallback_agency: String,
    /// Congestion detection; every field optional (defaults: `model::traffic::TrafficRules`).
    #[serde(default)]
    pub traffic: Option<TrafficEntry>,
}

/// `[traffic]` in `city.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficEntry {
    /// `""` turns detection off.
    pub category: Option<String>,
    pub slot_minutes: Option<u32>,
    pub learning_rate: Option<f64>,
    pub speed_ratio: Option<f64>,
    pub occupancy_percent: Option<f64>,
    pub sustain_readings: Option<u32>,
    pub sustain_minutes: Option<u32>,
    pub recover_ratio: Option<f64>,
    pub recover_occupancy_percent: Option<f64>,
    pub recover_readings: Option<u32>,
    pub recover_minutes: Option<u32>,
    pub explained_by: Option<Vec<String>>,
    pub link_radius_m: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoriesFile {
    #[serde(default)]
    pub category: Vec<CategoryEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryEntry {
    pub id: String,
    pub name: Names,
    pub family: String,
    pub default_severity: String,
    pub agency_kind: String,
    pub merge_radius_m: f64,
    pub merge_window_minutes: u32,
    pub deadlines: DeadlinesEntry,
    /// Kinds of agency also told of its incidents (the one covering the place).
    #[serde(default)]
    pub inform_kinds: Vec<String>,
    /// Agencies also told of its incidents, wherever they are.
    #[serde(default)]
    pub inform_agencies: Vec<String>,
}

/// `deadlines = { acknowledge_minutes, resolve_minutes, severe = { ... }, ... }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlinesEntry {
    pub acknowledge_minutes: u32,
    pub resolve_minutes: u32,
    pub minor: Option<DeadlineOverride>,
    pub moderate: Option<DeadlineOverride>,
    pub severe: Option<DeadlineOverride>,
    pub extreme: Option<DeadlineOverride>,
}

/// Other deadlines for one severity; an absent field keeps the category's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlineOverride {
    pub acknowledge_minutes: Option<u32>,
    pub resolve_minutes: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgenciesFile {
    #[serde(default)]
    pub agency: Vec<AgencyEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgencyEntry {
    pub id: String,
    pub kind: String,
    pub name: Names,
    pub categories: Vec<String>,
    pub priority: i32,
    pub contact: Option<ContactEntry>,
    pub jurisdiction: JurisdictionEntry,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactEntry {
    pub phone: Option<String>,
    pub email: Option<String>,
    pub url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JurisdictionEntry {
    #[serde(default)]
    pub whole_city: bool,
    #[serde(default)]
    pub districts: Vec<String>,
    pub file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorsFile {
    #[serde(default)]
    pub sensor: Vec<SensorEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorEntry {
    pub id: String,
    pub name: String,
    /// longitude, latitude
    pub location: [f64; 2],
    pub road: String,
    pub direction: String,
    pub free_flow_speed_kmh: f64,
    #[serde(default = "one_lane")]
    pub lanes: u32,
}

fn one_lane() -> u32 {
    1
}
