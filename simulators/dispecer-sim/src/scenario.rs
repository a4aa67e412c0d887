//! Scenarios: a TOML file of timed messages with the outcome the engine must reach.
//!
//! The format is documented in `simulators/README.md`. Loading checks everything that can be
//! checked without the engine: the TOML itself (unknown fields refused), step offsets, step
//! references, categories, agencies, sensors and districts against the city, and that every
//! message parses with `protocol` (unless the scenario expects it refused). Every refusal names
//! the file, the line and the reason.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use toml::Spanned;

use model::{City, IncidentStatus};
use protocol::topics;

use crate::wire;

/// Why a scenario file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid scenario.
    #[error("{path}:{line}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The line (from 1) the problem is on.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Romanian and English text.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Text {
    /// Romanian.
    pub ro: String,
    /// English.
    pub en: String,
}

// ---- The file as written -------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileScenario {
    name: Spanned<String>,
    title: Text,
    description: Text,
    start: Option<Spanned<String>>,
    #[serde(default, rename = "step")]
    steps: Vec<Spanned<FileStep>>,
    expect: FileExpect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStep {
    id: Option<Spanned<String>>,
    at: Spanned<f64>,
    report: Option<ReportStep>,
    utility: Option<UtilityStep>,
    traffic: Option<TrafficStep>,
    raw: Option<RawStep>,
    resend: Option<Spanned<String>>,
}

/// A citizen report in compact form; becomes a GeoJSON Feature stamped `reported_at`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReportStep {
    /// The citizen app's report id.
    pub id: String,
    /// Category id of the city.
    pub category: Spanned<String>,
    /// Longitude, degrees.
    pub lon: f64,
    /// Latitude, degrees.
    pub lat: f64,
    /// Free text.
    pub description: Option<String>,
}

/// A utility event in compact form; becomes a GeoJSON Feature stamped `starts_at`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UtilityStep {
    /// Operator id (an agency of the city); the topic's `{operator}`.
    pub operator: Spanned<String>,
    /// The utility's own id of the thing it reports (the subject of later notices).
    pub id: String,
    /// `outage`, `fault`, `planned_works` or `restored`.
    pub kind: Spanned<String>,
    /// Category id of the city.
    pub category: Spanned<String>,
    /// A Point `[lon, lat]`.
    pub point: Option<[f64; 2]>,
    /// A LineString `[[lon, lat], …]`.
    pub line: Option<Vec<[f64; 2]>>,
    /// A Polygon's outer ring `[[lon, lat], …]`; closed if it is not.
    pub polygon: Option<Vec<[f64; 2]>>,
    /// Free text.
    pub description: Option<String>,
}

/// A traffic counter's readings at the step's time; becomes a SenML JSON pack.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrafficStep {
    /// Sensor site id of the city.
    pub sensor: Spanned<String>,
    /// Vehicles counted.
    pub count: Option<f64>,
    /// Mean speed, km/h.
    pub speed: Option<f64>,
    /// Occupancy, %.
    pub occupancy: Option<f64>,
}

/// Any payload, sent as written (CAP XML, or something meant to be refused).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    /// The MQTT topic.
    pub topic: String,
    /// The payload text.
    pub payload: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileExpect {
    notes: Option<Text>,
    at: Option<Spanned<f64>>,
    #[serde(default, rename = "incident")]
    incidents: Vec<Spanned<FileIncident>>,
    #[serde(default)]
    duplicates: Vec<Spanned<String>>,
    #[serde(default)]
    refused: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIncident {
    name: Spanned<String>,
    category: Spanned<String>,
    agency: Spanned<String>,
    steps: Spanned<Vec<Spanned<String>>>,
    status: Option<Spanned<String>>,
    reports: Option<u32>,
    district: Option<Spanned<String>>,
    escalated: Option<Spanned<Vec<Spanned<String>>>>,
}

// ---- The validated scenario ----------------------------------------------------------------

/// A checked scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Where it was read from.
    pub path: PathBuf,
    /// Short name.
    pub name: String,
    /// Title.
    pub title: Text,
    /// What happens.
    pub description: Text,
    /// The wall-clock time of offset 0, if fixed; otherwise the time the scenario is run.
    pub start: Option<DateTime<Utc>>,
    /// The steps, in time order.
    pub steps: Vec<Step>,
    /// What the engine must make of them.
    pub expect: Expectation,
}

/// One timed message.
#[derive(Debug, Clone)]
pub struct Step {
    /// The step's id (`#n`, from 1, when the file gives none).
    pub id: String,
    /// Seconds after the start.
    pub at: f64,
    /// Its line in the file.
    pub line: usize,
    /// What it sends.
    pub action: Action,
}

/// What a step sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A citizen report.
    Report(ReportStep),
    /// A utility event (GeoJSON).
    Utility(UtilityStep),
    /// Traffic readings.
    Traffic(TrafficStep),
    /// A payload as written.
    Raw(RawStep),
    /// The very same message as an earlier step (by index), e.g. a redelivery.
    Resend(usize),
}

/// The outcome the engine must reach.
#[derive(Debug, Clone, Default)]
pub struct Expectation {
    /// Notes, e.g. what the engine cannot do yet.
    pub notes: Option<Text>,
    /// Seconds after the start at which the outcome holds: the story's end (at least the last
    /// step's offset; by default that offset). Deadlines missed by then have escalated.
    pub at: f64,
    /// The incidents, and which steps' events each must contain.
    pub incidents: Vec<ExpectedIncident>,
    /// Steps whose event must be recognised as already recorded.
    pub duplicates: Vec<String>,
    /// Steps that must be refused (a dead letter): by the parser or by the engine.
    pub refused: Vec<String>,
}

/// An incident the engine must form.
#[derive(Debug, Clone)]
pub struct ExpectedIncident {
    /// A name for reports.
    pub name: String,
    /// Its category.
    pub category: String,
    /// The responsible agency.
    pub agency: String,
    /// The steps whose events it contains (the first opened it).
    pub steps: Vec<String>,
    /// Its status at the end, if checked.
    pub status: Option<IncidentStatus>,
    /// Its report count at the end, if checked.
    pub reports: Option<u32>,
    /// Its district, if checked.
    pub district: Option<String>,
    /// The deadlines it missed by the end (`acknowledge`, `resolve`: nobody in a scenario
    /// acknowledges), if checked; an empty list checks that it escalated for none.
    pub escalated: Option<Vec<String>>,
}

/// The deadlines an incident can miss, as `escalated` names them.
pub const DEADLINES: [&str; 2] = ["acknowledge", "resolve"];

/// One message of a scenario, ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioMessage {
    /// The step it comes from.
    pub step: String,
    /// Seconds after the start.
    pub at: f64,
    /// MQTT topic.
    pub topic: String,
    /// Payload bytes, exactly as published.
    pub payload: Vec<u8>,
}

/// Reads and checks a scenario file against `city`.
pub fn load(path: &Path, city: &City) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path, city)
}

/// Checks a scenario's `text` (read from `path`, for messages) against `city`.
pub fn parse(text: &str, path: &Path, city: &City) -> Result<Scenario, ScenarioError> {
    let invalid = |span: Range<usize>, reason: String| ScenarioError::Invalid {
        path: path.to_owned(),
        line: line_of(text, span.start),
        reason,
    };
    let file: FileScenario = toml::from_str(text)
        .map_err(|e| invalid(e.span().unwrap_or(0..0), e.message().trim_end().to_owned()))?;
    if file.name.get_ref().trim().is_empty() {
        return Err(invalid(file.name.span(), "the name is empty".into()));
    }
    let start = match &file.start {
        None => None,
        Some(s) => Some(
            DateTime::parse_from_rfc3339(s.get_ref())
                .map_err(|e| {
                    invalid(
                        s.span(),
                        format!("start {:?} is not an RFC 3339 date-time ({e})", s.get_ref()),
                    )
                })?
                .with_timezone(&Utc),
        ),
    };
    if file.steps.is_empty() {
        return Err(invalid(0..0, "the scenario has no [[step]]".into()));
    }

    // Steps: ids, offsets, one action each, references to the city.
    let mut steps: Vec<Step> = Vec::with_capacity(file.steps.len());
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut previous_at = 0.0_f64;
    for (n, spanned) in file.steps.iter().enumerate() {
        let span = spanned.span();
        let s = spanned.get_ref();
        let id = match &s.id {
            Some(id) => {
                let v = id.get_ref();
                if v.is_empty() || v.starts_with('#') {
                    return Err(invalid(
                        id.span(),
                        format!("step id {v:?} must be non-empty and not start with '#'"),
                    ));
                }
                if index.contains_key(v) {
                    return Err(invalid(id.span(), format!("step id {v:?} is used twice")));
                }
                v.clone()
            }
            None => format!("#{}", n + 1),
        };
        let at = *s.at.get_ref();
        if !at.is_finite() || at < 0.0 {
            return Err(invalid(
                s.at.span(),
                format!("at = {at}: an offset is a number of seconds, 0 or more"),
            ));
        }
        if at < previous_at {
            return Err(invalid(
                s.at.span(),
                format!("at = {at} comes before the previous step's {previous_at}: steps must be in time order"),
            ));
        }
        previous_at = at;
        let mut actions = Vec::new();
        if let Some(r) = &s.report {
            check_category(city, &r.category).map_err(|(sp, m)| invalid(sp, m))?;
            actions.push(Action::Report(r.clone()));
        }
        if let Some(u) = &s.utility {
            check_category(city, &u.category).map_err(|(sp, m)| invalid(sp, m))?;
            if city.agency(u.operator.get_ref()).is_none() {
                return Err(invalid(
                    u.operator.span(),
                    format!(
                        "operator {:?} is not an agency of {}",
                        u.operator.get_ref(),
                        city.id
                    ),
                ));
            }
            if !matches!(
                u.kind.get_ref().as_str(),
                "outage" | "fault" | "planned_works" | "restored"
            ) {
                return Err(invalid(
                    u.kind.span(),
                    format!(
                        "kind {:?} is not one of outage, fault, planned_works, restored",
                        u.kind.get_ref()
                    ),
                ));
            }
            let shapes = [u.point.is_some(), u.line.is_some(), u.polygon.is_some()];
            if shapes.iter().filter(|b| **b).count() != 1 {
                return Err(invalid(
                    span.clone(),
                    format!("step {id}: a utility event has exactly one of point, line, polygon"),
                ));
            }
            actions.push(Action::Utility(u.clone()));
        }
        if let Some(t) = &s.traffic {
            if !city
                .sensors
                .iter()
                .any(|x| x.id.as_str() == t.sensor.get_ref())
            {
                return Err(invalid(
                    t.sensor.span(),
                    format!(
                        "sensor {:?} is not a sensor site of {}",
                        t.sensor.get_ref(),
                        city.id
                    ),
                ));
            }
            if t.count.is_none() && t.speed.is_none() && t.occupancy.is_none() {
                return Err(invalid(
                    span.clone(),
                    format!("step {id}: traffic needs count, speed or occupancy"),
                ));
            }
            actions.push(Action::Traffic(t.clone()));
        }
        if let Some(r) = &s.raw {
            actions.push(Action::Raw(r.clone()));
        }
        if let Some(r) = &s.resend {
            let earlier = index.get(r.get_ref()).copied().ok_or_else(|| {
                invalid(
                    r.span(),
                    format!("resend = {:?}: no earlier step has that id", r.get_ref()),
                )
            })?;
            actions.push(Action::Resend(earlier));
        }
        if actions.len() != 1 {
            return Err(invalid(
                span,
                format!(
                    "step {id} has {} actions: give exactly one of report, utility, traffic, raw, resend",
                    actions.len()
                ),
            ));
        }
        let Some(action) = actions.pop() else {
            continue;
        };
        index.insert(id.clone(), steps.len());
        steps.push(Step {
            id,
            at,
            line: line_of(text, span.start),
            action,
        });
    }

    // The expected outcome: every step named exists and is accounted for at most once, and
    // every step that sends an event (not readings) is accounted for.
    let mut accounted: HashMap<usize, &'static str> = HashMap::new();
    let mut account = |r: &Spanned<String>, place: &'static str| -> Result<usize, ScenarioError> {
        let i = *index
            .get(r.get_ref())
            .ok_or_else(|| invalid(r.span(), format!("no step has the id {:?}", r.get_ref())))?;
        if let Some(other) = accounted.insert(i, place) {
            return Err(invalid(
                r.span(),
                format!(
                    "step {:?} is expected twice (in {other} and in {place})",
                    r.get_ref()
                ),
            ));
        }
        Ok(i)
    };
    let mut incidents = Vec::new();
    let mut names = HashSet::new();
    for spanned in &file.expect.incidents {
        let inc = spanned.get_ref();
        if !names.insert(inc.name.get_ref().clone()) {
            return Err(invalid(
                inc.name.span(),
                format!("incident name {:?} is used twice", inc.name.get_ref()),
            ));
        }
        check_category(city, &inc.category).map_err(|(sp, m)| invalid(sp, m))?;
        if city.agency(inc.agency.get_ref()).is_none() {
            return Err(invalid(
                inc.agency.span(),
                format!(
                    "agency {:?} is not an agency of {}",
                    inc.agency.get_ref(),
                    city.id
                ),
            ));
        }
        if let Some(d) = &inc.district {
            if !city.districts.iter().any(|x| x.id.as_str() == d.get_ref()) {
                return Err(invalid(
                    d.span(),
                    format!(
                        "district {:?} is not a district of {}",
                        d.get_ref(),
                        city.id
                    ),
                ));
            }
        }
        let status = match &inc.status {
            None => None,
            Some(s) => Some(
                IncidentStatus::ALL
                    .into_iter()
                    .find(|x| x.as_str() == s.get_ref())
                    .ok_or_else(|| {
                        invalid(
                            s.span(),
                            format!(
                                "status {:?} is not one of {}",
                                s.get_ref(),
                                IncidentStatus::ALL.map(IncidentStatus::as_str).join(", ")
                            ),
                        )
                    })?,
            ),
        };
        let escalated = match &inc.escalated {
            None => None,
            Some(list) => {
                let mut names: Vec<String> = Vec::new();
                for d in list.get_ref() {
                    if !DEADLINES.contains(&d.get_ref().as_str()) {
                        return Err(invalid(
                            d.span(),
                            format!(
                                "escalated {:?} is not a deadline; one of {}",
                                d.get_ref(),
                                DEADLINES.join(", ")
                            ),
                        ));
                    }
                    if names.contains(d.get_ref()) {
                        return Err(invalid(
                            d.span(),
                            format!("escalated {:?} is named twice", d.get_ref()),
                        ));
                    }
                    names.push(d.get_ref().clone());
                }
                names.sort();
                Some(names)
            }
        };
        if inc.steps.get_ref().is_empty() {
            return Err(invalid(
                inc.steps.span(),
                format!("incident {:?} lists no steps", inc.name.get_ref()),
            ));
        }
        for r in inc.steps.get_ref() {
            let i = account(r, "an incident")?;
            if event_action(&steps, i).is_none() {
                return Err(invalid(
                    r.span(),
                    format!(
                        "step {:?} sends traffic readings, which never join an incident",
                        r.get_ref()
                    ),
                ));
            }
        }
        incidents.push(ExpectedIncident {
            name: inc.name.get_ref().clone(),
            category: inc.category.get_ref().clone(),
            agency: inc.agency.get_ref().clone(),
            steps: inc
                .steps
                .get_ref()
                .iter()
                .map(|s| s.get_ref().clone())
                .collect(),
            status,
            reports: inc.reports,
            district: inc.district.as_ref().map(|d| d.get_ref().clone()),
            escalated,
        });
    }
    for r in &file.expect.duplicates {
        account(r, "duplicates")?;
    }
    for r in &file.expect.refused {
        account(r, "refused")?;
    }
    if let Some((i, _)) = steps
        .iter()
        .enumerate()
        .find(|(i, _)| !accounted.contains_key(i) && event_action(&steps, *i).is_some())
    {
        let step = &steps[i];
        return Err(ScenarioError::Invalid {
            path: path.to_owned(),
            line: step.line,
            reason: format!(
                "step {} sends an event that no expected incident, duplicates or refused names",
                step.id
            ),
        });
    }

    let last = steps.last().map_or(0.0, |s| s.at);
    let at = match &file.expect.at {
        None => last,
        Some(a) if !a.get_ref().is_finite() || *a.get_ref() < last => {
            return Err(invalid(
                a.span(),
                format!(
                    "expect.at {} is before the last step (at {last}); the outcome is checked at the story's end",
                    a.get_ref()
                ),
            ))
        }
        Some(a) => *a.get_ref(),
    };

    let scenario = Scenario {
        path: path.to_owned(),
        name: file.name.into_inner(),
        title: file.title,
        description: file.description,
        start,
        steps,
        expect: Expectation {
            notes: file.expect.notes,
            at,
            incidents,
            duplicates: file
                .expect
                .duplicates
                .into_iter()
                .map(Spanned::into_inner)
                .collect(),
            refused: file
                .expect
                .refused
                .into_iter()
                .map(Spanned::into_inner)
                .collect(),
        },
    };

    // Every message must be read by Dispecer's parsers as it will be, unless expected refused.
    let start = scenario.start.unwrap_or_else(Utc::now);
    for (m, step) in scenario.messages(start).iter().zip(&scenario.steps) {
        if scenario.expect.refused.contains(&step.id) {
            continue;
        }
        if let Err(e) = wire::parse(&m.topic, &m.payload, city, m.received_at(start)) {
            return Err(ScenarioError::Invalid {
                path: path.to_owned(),
                line: step.line,
                reason: format!(
                    "step {}: Dispecer would refuse this message ({e}); fix it, or list it in expect.refused",
                    step.id
                ),
            });
        }
    }
    Ok(scenario)
}

/// Whether the step at `i` sends an event (`Some`), or traffic readings (`None`). A raw
/// message counts as an event unless its topic is a traffic topic.
fn event_action(steps: &[Step], i: usize) -> Option<()> {
    let mut action = &steps.get(i)?.action;
    // A resend sends what its original sent; originals come earlier, so this ends.
    for _ in 0..steps.len() {
        match action {
            Action::Resend(j) => action = &steps.get(*j)?.action,
            _ => break,
        }
    }
    match action {
        Action::Traffic(_) => None,
        Action::Raw(r) if topics::traffic_sensor(&r.topic).is_some() => None,
        _ => Some(()),
    }
}

fn check_category(city: &City, c: &Spanned<String>) -> Result<(), (Range<usize>, String)> {
    if city.category(c.get_ref()).is_some() {
        Ok(())
    } else {
        Err((
            c.span(),
            format!(
                "category {:?} is not a category of {}",
                c.get_ref(),
                city.id
            ),
        ))
    }
}

/// The line (from 1) of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

impl ScenarioMessage {
    /// When Dispecer receives it, if the scenario starts at `start`.
    pub fn received_at(&self, start: DateTime<Utc>) -> DateTime<Utc> {
        start + seconds(self.at)
    }
}

impl Scenario {
    /// The time at which the expected outcome holds (`expect.at` after `start`).
    pub fn end_at(&self, start: DateTime<Utc>) -> DateTime<Utc> {
        start + seconds(self.expect.at)
    }
}

fn seconds(s: f64) -> Duration {
    // Offsets are checked finite and non-negative; microseconds are plenty.
    Duration::microseconds((s * 1e6).round() as i64)
}

impl Scenario {
    /// The messages, one per step, with compact steps turned into wire payloads stamped
    /// `start + at`.
    pub fn messages(&self, start: DateTime<Utc>) -> Vec<ScenarioMessage> {
        let mut out: Vec<ScenarioMessage> = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            let time = start + seconds(step.at);
            let stamp = time.to_rfc3339_opts(SecondsFormat::Secs, true);
            let (topic, payload) = match &step.action {
                Action::Report(r) => {
                    let mut props = json!({"id": r.id, "category": r.category.get_ref(),
                                           "reported_at": stamp});
                    if let Some(d) = &r.description {
                        props["description"] = json!(d);
                    }
                    let f = json!({"type": "Feature",
                        "geometry": {"type": "Point", "coordinates": [r.lon, r.lat]},
                        "properties": props});
                    (
                        topics::CITIZEN_REPORTS.to_owned(),
                        f.to_string().into_bytes(),
                    )
                }
                Action::Utility(u) => {
                    let geometry = if let Some(p) = u.point {
                        json!({"type": "Point", "coordinates": p})
                    } else if let Some(l) = &u.line {
                        json!({"type": "LineString", "coordinates": l})
                    } else {
                        let mut ring = u.polygon.clone().unwrap_or_default();
                        if let (Some(first), Some(last)) = (ring.first(), ring.last()) {
                            if first != last {
                                ring.push(*first);
                            }
                        }
                        json!({"type": "Polygon", "coordinates": [ring]})
                    };
                    let mut props = json!({"id": u.id, "kind": u.kind.get_ref(),
                        "category": u.category.get_ref(), "starts_at": stamp});
                    if let Some(d) = &u.description {
                        props["description"] = json!(d);
                    }
                    let f = json!({"type": "Feature", "geometry": geometry, "properties": props});
                    (
                        topics::utility_events(u.operator.get_ref()),
                        f.to_string().into_bytes(),
                    )
                }
                Action::Traffic(t) => {
                    let sensor = t.sensor.get_ref();
                    let bt = time.timestamp_micros() as f64 / 1e6;
                    let mut pack: Vec<Value> = Vec::new();
                    for (name, unit, v) in [
                        ("count", "count", t.count),
                        ("speed", "km/h", t.speed),
                        ("occupancy", "%", t.occupancy),
                    ] {
                        if let Some(v) = v {
                            pack.push(json!({"n": name, "u": unit, "v": v}));
                        }
                    }
                    if let Some(first) = pack.first_mut() {
                        first["bn"] = json!(format!("{sensor}/"));
                        first["bt"] = json!(bt);
                    }
                    (
                        format!("dispecer/v1/in/traffic/{sensor}"),
                        Value::Array(pack).to_string().into_bytes(),
                    )
                }
                Action::Raw(r) => (r.topic.clone(), r.payload.clone().into_bytes()),
                Action::Resend(j) => match out.get(*j) {
                    Some(m) => (m.topic.clone(), m.payload.clone()),
                    // Checked at load: a resend names an earlier step.
                    None => continue,
                },
            };
            out.push(ScenarioMessage {
                step: step.id.clone(),
                at: step.at,
                topic,
                payload,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brasov() -> City {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cities/brasov");
        city::load(&dir).unwrap_or_else(|e| panic!("demo city must load: {e}"))
    }

    /// A valid scenario; its line numbers are those the table below expects.
    const VALID: &str = r#"name = "t"
title = { ro = "Test", en = "Test" }
description = { ro = "Două gropi", en = "Two potholes" }
start = "2026-11-24T06:00:00Z"

[[step]]
id = "a"
at = 0
report = { id = "r-1", category = "pothole", lon = 25.5887, lat = 45.6419 }

[[step]]
id = "b"
at = 10
report = { id = "r-2", category = "pothole", lon = 25.5888, lat = 45.6419 }

[[step]]
id = "c"
at = 20
resend = "b"

[expect]
duplicates = ["c"]

[[expect.incident]]
name = "hole"
category = "pothole"
agency = "domeniu-public"
steps = ["a", "b"]
status = "assigned"
"#;

    #[test]
    fn the_valid_scenario_loads_and_builds_wire_payloads() {
        let city = brasov();
        let s = parse(VALID, Path::new("t.toml"), &city)
            .unwrap_or_else(|e| panic!("valid scenario refused: {e}"));
        assert_eq!(s.steps.len(), 3);
        assert_eq!(s.steps[1].line, 11);
        let start = s.start.unwrap_or_else(Utc::now);
        let m = s.messages(start);
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].payload, m[2].payload, "a resend sends the same bytes");
        assert_eq!(m[0].topic, topics::CITIZEN_REPORTS);
        let text = String::from_utf8_lossy(&m[1].payload);
        assert!(
            text.contains("\"reported_at\":\"2026-11-24T06:00:10Z\""),
            "{text}"
        );
    }

    #[test]
    fn malformed_scenarios_are_refused_with_the_line_and_the_reason() {
        let city = brasov();
        // (what to change in VALID, into what, the line, a part of the reason)
        let cases: &[(&str, &str, usize, &str)] = &[
            (
                "start = \"2026-11-24T06:00:00Z\"",
                "start = \"2026-11-24T06:00:00Z\"\ncolour = \"red\"",
                5,
                "unknown field `colour`",
            ),
            ("name = \"t\"", "name = \"t", 1, "invalid basic string"),
            (
                "start = \"2026-11-24T06:00:00Z\"",
                "start = \"tomorrow\"",
                4,
                "is not an RFC 3339 date-time",
            ),
            (
                "category = \"pothole\", lon = 25.5888",
                "category = \"pot_hole\", lon = 25.5888",
                14,
                "category \"pot_hole\" is not a category of brasov",
            ),
            ("at = 0\n", "at = 15\n", 13, "must be in time order"),
            ("at = 20\n", "at = -1\n", 18, "0 or more"),
            ("steps = [\"a\", \"b\"]", "steps = [\"a\", \"x\"]", 28, "no step has the id \"x\""),
            ("steps = [\"a\", \"b\"]", "steps = [\"a\"]", 11, "step b sends an event that no expected incident"),
            ("duplicates = [\"c\"]", "duplicates = [\"c\", \"a\"]", 22, "step \"a\" is expected twice"),
            ("agency = \"domeniu-public\"", "agency = \"primaria\"", 27, "agency \"primaria\" is not an agency"),
            ("status = \"assigned\"", "status = \"fixed\"", 29, "status \"fixed\" is not one of"),
            ("resend = \"b\"", "resend = \"z\"", 19, "no earlier step has that id"),
            (
                "resend = \"b\"",
                "resend = \"b\"\nreport = { id = \"r-3\", category = \"pothole\", lon = 25.6, lat = 45.64 }",
                16,
                "has 2 actions",
            ),
            (
                "lon = 25.5888, lat = 45.6419",
                "lon = 26.5888, lat = 45.6419",
                11,
                "Dispecer would refuse this message",
            ),
            ("id = \"b\"", "id = \"a\"", 12, "step id \"a\" is used twice"),
            ("name = \"hole\"", "name = \"hole\"\nseverity = 3", 26, "unknown field `severity`"),
            ("status = \"assigned\"", "status = \"assigned\"\nescalated = [\"ack\"]", 30, "escalated \"ack\" is not a deadline"),
            (
                "status = \"assigned\"",
                "status = \"assigned\"\nescalated = [\"resolve\", \"resolve\"]",
                30,
                "escalated \"resolve\" is named twice",
            ),
            ("duplicates = [\"c\"]", "duplicates = [\"c\"]\nat = 19", 23, "expect.at 19 is before the last step"),
        ];
        for (from, to, line, reason) in cases {
            assert!(VALID.contains(from), "case {from:?} changes nothing");
            let text = VALID.replacen(from, to, 1);
            match parse(&text, Path::new("bad.toml"), &city) {
                Ok(_) => panic!("accepted with {to:?}"),
                Err(ScenarioError::Invalid {
                    path,
                    line: l,
                    reason: r,
                }) => {
                    assert_eq!(path, Path::new("bad.toml"));
                    assert!(
                        r.contains(reason),
                        "with {to:?}: reason {r:?}, expected {reason:?}"
                    );
                    assert_eq!(l, *line, "with {to:?}: {r}");
                }
                Err(e) => panic!("with {to:?}: {e}"),
            }
        }
    }
}
