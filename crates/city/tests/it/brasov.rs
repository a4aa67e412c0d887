//! The Brașov demo folder loads as its README describes it.

use geo::{Contains, Intersects};

use model::Language;

use crate::fixture::brasov_dir;

#[test]
fn brasov_loads_as_documented() {
    let city = city::load(&brasov_dir()).unwrap_or_else(|e| panic!("Brașov must load: {e}"));
    assert_eq!(city.id, "brasov");
    assert_eq!(city.name.ro, "Brașov");
    assert_eq!(city.time_zone, "Europe/Bucharest");
    assert_eq!(city.districts.len(), 24, "districts");
    assert_eq!(city.categories.len(), 19, "categories");
    assert_eq!(city.agencies.len(), 16, "agencies");
    assert_eq!(city.sensors.len(), 28, "sensors");

    assert_eq!(city.default_language, Language::Ro);
    assert_eq!(
        city.languages,
        vec![Language::Ro, Language::En],
        "default first"
    );

    // [west, south, east, north] and a (longitude, latitude) centre: Piața Sfatului.
    let (min, max) = (city.bounds.min(), city.bounds.max());
    assert_eq!((min.x, min.y, max.x, max.y), (25.5, 45.525, 25.692, 45.755));
    assert_eq!((city.center.x(), city.center.y()), (25.5887, 45.6419));
    assert!(
        city.boundary.contains(&city.center),
        "the centre is in the municipality"
    );

    assert_eq!(city.fallback_agency.as_str(), "city-dispatch");
    assert!(city.agency("city-dispatch").is_some());
    for agency in &city.agencies {
        assert!(!agency.areas.is_empty(), "agency {} has no area", agency.id);
        assert!(
            !agency.categories.is_empty(),
            "agency {} handles nothing",
            agency.id
        );
    }
    for category in &city.categories {
        assert!(
            city.agencies.iter().any(|a| a.handles(&category.id)),
            "nobody handles {}",
            category.id
        );
    }
    for sensor in &city.sensors {
        assert!(
            city.boundary.intersects(&sensor.location),
            "sensor {} is outside the municipality",
            sensor.id
        );
    }
}

#[test]
fn jurisdictions_come_from_all_three_sources() {
    let city = city::load(&brasov_dir()).unwrap_or_else(|e| panic!("Brașov must load: {e}"));
    let areas = |id: &str| -> Vec<String> {
        city.agency(id)
            .unwrap_or_else(|| panic!("agency {id}"))
            .areas
            .iter()
            .map(|a| a.id.as_str().to_owned())
            .collect()
    };
    // whole_city = true
    assert_eq!(areas("apa-brasov"), vec!["city"]);
    // districts = [...], in the file's order
    assert_eq!(areas("termoficare-brasov")[..2], ["astra", "noua"]);
    // file = "jurisdictions/..."
    assert_eq!(
        areas("poiana-brasov-statiune"),
        vec!["statiunea-poiana-brasov"]
    );

    let pothole = city.category("pothole").expect("pothole");
    assert_eq!(pothole.merge_radius_m, 50.0);
    assert_eq!(pothole.merge_window, chrono::Duration::days(7));
    // Deadlines: the category's, with the severities' overrides on top.
    let minutes = chrono::Duration::minutes;
    let at = |s| pothole.sla.for_severity(s);
    assert_eq!(at(model::Severity::Minor).acknowledge, minutes(1440));
    assert_eq!(at(model::Severity::Minor).resolve, minutes(10080));
    assert_eq!(at(model::Severity::Moderate).acknowledge, minutes(480));
    assert_eq!(at(model::Severity::Severe).resolve, minutes(1440));
    assert_eq!(at(model::Severity::Extreme), at(model::Severity::Minor));
    for category in &city.categories {
        for severity in model::Severity::ALL {
            let d = category.sla.for_severity(severity);
            assert!(
                d.acknowledge > chrono::Duration::zero() && d.acknowledge <= d.resolve,
                "{}: {severity}",
                category.id
            );
        }
    }
    assert_eq!(pothole.default_severity, model::Severity::Minor);
}
