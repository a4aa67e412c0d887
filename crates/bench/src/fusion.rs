//! Fusion: events/s of `IncidentIndex` matching with 100 000 open incidents spread over the city,
//! on one thread, as the engine uses it: `find_match` for each event; a match joins the incident
//! (a copy with one more report and a new `updated_at` replaces it in the map), no match opens a
//! new incident (`insert` into the index and the map). Routing the new incident is not included
//! (the lookup rows measure it). Events per CPU second of that thread (`schedstat`). No limit: the
//! target is absolute.

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use geo::{Intersects, Point};
use model::{City, CityIndex, Incident, IncidentId, IncidentIndex, IncidentStatus, SlaClock};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::report::{Row, Target};

/// Open incidents at the start.
pub const OPEN: usize = 100_000;
/// The target: events/s on one core.
const TARGET: f64 = 100_000.0;

/// `n` seeded points inside the municipality, with a category index each (of `categories`).
pub fn places(city: &City, n: usize, seed: u64) -> Vec<(Point, usize)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let b = city.bounds;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let p = Point::new(
            rng.gen_range(b.min().x..b.max().x),
            rng.gen_range(b.min().y..b.max().y),
        );
        if city.boundary.intersects(&p) {
            out.push((p, rng.gen_range(0..city.categories.len())));
        }
    }
    out
}

/// A new open incident of category `category` (an index into the city's) at `point`, opened at
/// `at`, routed and stamped as the engine opens one.
pub fn open_incident(
    index: &CityIndex,
    category: usize,
    point: Point,
    at: DateTime<Utc>,
) -> Incident {
    let category = &index.city().categories[category];
    let routing = index.route(&category.id, point);
    let severity = category.default_severity;
    Incident {
        id: IncidentId::new(uuid::Uuid::now_v7().to_string()),
        category: category.id.clone(),
        severity,
        status: IncidentStatus::Assigned,
        location: point,
        area: None,
        district: index.district_at(point).cloned(),
        agency: routing.chosen.agency.clone(),
        routing,
        report_count: 1,
        description: None,
        external_ref: None,
        opened_at: at,
        updated_at: at,
        sla: SlaClock::start(category.sla.for_severity(severity), at),
        merged_into: None,
        explained_by: vec![],
    }
}

/// Events of a run, normal and quick.
fn events_count(quick: bool) -> usize {
    if quick {
        20_000
    } else {
        100_000
    }
}

/// The fusion row (CPU-bound: run it off the async threads).
pub fn run(city: &City, quick: bool) -> anyhow::Result<Row> {
    let index = CityIndex::new(city.clone());
    let now = Utc::now();
    let mut incidents: HashMap<IncidentId, Incident> = places(city, OPEN, 1)
        .into_iter()
        .map(|(p, c)| {
            let i = open_incident(&index, c, p, now - chrono::Duration::minutes(30));
            (i.id.clone(), i)
        })
        .collect();
    let mut fusion = IncidentIndex::bulk_load(incidents.values());
    let events = places(city, events_count(quick), 2);
    let template = open_incident(&index, 0, events[0].0, now);

    let (mut joined, mut opened) = (0u64, 0u64);
    let started = Instant::now();
    let cpu_started = crate::report::cpu_seconds("/proc/thread-self")?;
    for (point, c) in &events {
        let category = &city.categories[*c];
        match fusion.find_match(&incidents, category, *point, now) {
            Some(id) => {
                if let Some(existing) = incidents.get(&id) {
                    let mut i = existing.clone();
                    i.report_count = i.report_count.saturating_add(1);
                    i.updated_at = now;
                    incidents.insert(id, i);
                    joined += 1;
                }
            }
            None => {
                let mut i = template.clone();
                i.id = IncidentId::new(uuid::Uuid::now_v7().to_string());
                i.category = category.id.clone();
                i.location = *point;
                fusion.insert(i.id.clone(), &i.category, i.location);
                incidents.insert(i.id.clone(), i);
                opened += 1;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = crate::report::cpu_seconds("/proc/thread-self")? - cpu_started;
    let per_s = events.len() as f64 / cpu;
    Ok(Row::new(
        "fusion",
        "fusion",
        format!("{} open incidents, Brașov", thousands_plain(OPEN)),
        (per_s, "events/s/core"),
        None,
        Target::AtLeast { value: TARGET },
        quick,
        json!({
            "open_incidents_at_start": OPEN,
            "open_incidents_at_end": incidents.len(),
            "events": events.len(),
            "joined": joined,
            "opened": opened,
            "seconds": seconds,
            "cpu_seconds": cpu,
            "events_per_wall_s": events.len() as f64 / seconds,
            "measured_as": "events / CPU seconds of the one thread (/proc/thread-self/schedstat); IncidentIndex::find_match per event; join: the incident copied with one more report; no match: IncidentIndex::insert and a new incident in the map (routing not included); one thread",
        }),
    ))
}

/// `100000` → `100 000`.
fn thousands_plain(n: usize) -> String {
    crate::report::thousands(n as f64)
}
