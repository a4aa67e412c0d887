//! The city folder's files (`city.toml`, `boundary.geojson`, `districts.geojson`,
//! `categories.toml`, `agencies.toml`, `sensors.toml`, a jurisdiction's GeoJSON), through
//! `city::from_texts`, which validates them exactly as `city::load` does a folder. The first
//! byte picks the file; the rest replaces it in the Brașov city. Never panics; an accepted city
//! has valid unique ids, a bounds box holding its centre, areas of closed rings on Earth, every
//! category handled by an agency, a fallback agency, sensors inside the city, sane deadlines and
//! merge rules.
#![no_main]

use std::collections::HashSet;

use dispecer_fuzz::brasov_texts;
use geo::{Contains, Intersects, MultiPolygon};
use libfuzzer_sys::fuzz_target;
use model::ids::valid_id;
use model::{City, Severity};

const FILES: [&str; 7] = [
    "city.toml",
    "boundary.geojson",
    "districts.geojson",
    "categories.toml",
    "agencies.toml",
    "sensors.toml",
    "jurisdictions/salubrizare-zona-1.geojson",
];

fn unique<'a>(what: &str, ids: impl Iterator<Item = &'a str>) {
    let mut seen = HashSet::new();
    for id in ids {
        assert!(valid_id(id), "{what} id {id:?}");
        assert!(seen.insert(id), "{what} id {id:?} twice");
    }
}

fn assert_area(what: &str, area: &MultiPolygon) {
    assert!(!area.0.is_empty(), "{what}: empty area");
    for p in &area.0 {
        for ring in std::iter::once(p.exterior()).chain(p.interiors()) {
            assert!(
                ring.0.len() >= 4,
                "{what}: a ring of {} positions",
                ring.0.len()
            );
            assert_eq!(ring.0.first(), ring.0.last(), "{what}: an open ring");
            for c in &ring.0 {
                assert!(model::geometry::valid_position(c.x, c.y), "{what}: {c:?}");
            }
        }
    }
}

fn assert_city(city: &City) {
    assert!(valid_id(&city.id), "city id {:?}", city.id);
    assert!(!city.name.ro.trim().is_empty() && !city.name.en.trim().is_empty());
    assert_eq!(city.languages.first(), Some(&city.default_language));
    let (min, max) = (city.bounds.min(), city.bounds.max());
    assert!(model::geometry::valid_position(min.x, min.y));
    assert!(model::geometry::valid_position(max.x, max.y));
    assert!(min.x < max.x && min.y < max.y, "bounds {:?}", city.bounds);
    assert!(city.bounds.contains(&city.center), "centre outside bounds");
    assert_area("boundary", &city.boundary);
    unique("district", city.districts.iter().map(|d| d.id.as_str()));
    for d in &city.districts {
        assert!(!d.name.trim().is_empty(), "district without a name");
        assert_area("district", &d.area);
    }
    assert!(!city.categories.is_empty(), "no categories");
    unique("category", city.categories.iter().map(|c| c.id.as_str()));
    for c in &city.categories {
        assert!(c.merge_radius_m > 0.0 && c.merge_radius_m <= 50_000.0);
        assert!(c.merge_window > chrono::Duration::zero());
        for s in [
            Severity::Minor,
            Severity::Moderate,
            Severity::Severe,
            Severity::Extreme,
        ] {
            let d = c.sla.for_severity(s);
            assert!(
                d.acknowledge > chrono::Duration::zero(),
                "ack deadline {d:?}"
            );
            assert!(d.acknowledge <= d.resolve, "ack after resolve {d:?}");
        }
        assert!(
            city.agencies.iter().any(|a| a.handles(&c.id)),
            "category {:?} handled by no agency",
            c.id
        );
    }
    unique("agency", city.agencies.iter().map(|a| a.id.as_str()));
    for a in &city.agencies {
        assert!(!a.areas.is_empty(), "agency {:?} without areas", a.id);
        for area in &a.areas {
            assert_area("jurisdiction", &area.geometry);
        }
        for c in &a.categories {
            assert!(
                city.category(c.as_str()).is_some(),
                "unknown category {c:?}"
            );
        }
    }
    assert!(
        city.agency(city.fallback_agency.as_str()).is_some(),
        "no fallback agency"
    );
    unique("sensor", city.sensors.iter().map(|s| s.id.as_str()));
    for s in &city.sensors {
        assert!(
            city.bounds.contains(&s.location) || city.boundary.intersects(&s.location),
            "sensor {:?} outside the city",
            s.id
        );
        assert!(s.free_flow_speed_kmh > 0.0 && s.free_flow_speed_kmh <= 200.0);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, text)) = data.split_first() else {
        return;
    };
    // A file that is not UTF-8 is refused by `fs::read_to_string` before any parsing.
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let mut files = brasov_texts();
    files.insert(
        FILES[usize::from(pick) % FILES.len()].to_owned(),
        text.to_owned(),
    );
    if let Ok(city) = city::from_texts(&files) {
        assert_city(&city);
    }
});
