//! Broken city folders: a copy of Brașov with one mistake each. Every refusal names the file, the
//! entry and the problem.

use city::CityError;

use crate::fixture::CityCopy;

/// One row: the mistake, how to make it, the error variant and words its text must contain.
struct Broken {
    name: &'static str,
    edit: fn(&CityCopy),
    variant: &'static str,
    words: &'static [&'static str],
}

fn variant(e: &CityError) -> &'static str {
    match e {
        CityError::Io { .. } => "Io",
        CityError::Parse { .. } => "Parse",
        CityError::Invalid { .. } => "Invalid",
    }
}

/// A feature to put first in a GeoJSON file.
const POINT_DISTRICT: &str = r#"{"type": "Feature", "properties": {"id": "punct", "name": "Punct"},
  "geometry": {"type": "Point", "coordinates": [25.5887, 45.6419]}}"#;
const THREE_POSITION_DISTRICT: &str = r#"{"type": "Feature", "properties": {"id": "triunghi", "name": "Triunghi"},
  "geometry": {"type": "Polygon", "coordinates": [[[25.58, 45.64], [25.59, 45.64], [25.58, 45.64]]]}}"#;
const OPEN_RING_DISTRICT: &str = r#"{"type": "Feature", "properties": {"id": "deschis", "name": "Deschis"},
  "geometry": {"type": "Polygon", "coordinates": [[[25.58, 45.64], [25.59, 45.64], [25.59, 45.65], [25.58, 45.65]]]}}"#;
const LATITUDE_FIRST_DISTRICT: &str = r#"{"type": "Feature", "properties": {"id": "inversat", "name": "Inversat"},
  "geometry": {"type": "Polygon", "coordinates": [[[45.64, 25.58], [45.64, 95.0], [45.65, 25.59], [45.64, 25.58]]]}}"#;

fn table() -> Vec<Broken> {
    vec![
        // ---- categories.toml: who else is informed -------------------------------------------
        Broken {
            name: "an unknown agency to inform",
            edit: |c| {
                c.replace_in_entry(
                    "categories.toml",
                    "id = \"water_leak\"",
                    "inform_kinds = ",
                    "inform_agencies = [\"politia-rutera\"]\ninform_kinds = ",
                )
            },
            variant: "Invalid",
            words: &[
                "categories.toml",
                "category \"water_leak\"",
                "inform_agencies names agency \"politia-rutera\"",
                "agencies.toml does not define",
            ],
        },
        Broken {
            name: "an unknown kind of agency to inform",
            edit: |c| {
                c.replace_in_entry(
                    "categories.toml",
                    "id = \"water_leak\"",
                    "\"traffic_police\"",
                    "\"trafic_police\"",
                )
            },
            variant: "Invalid",
            words: &[
                "categories.toml",
                "category \"water_leak\"",
                "inform_kinds names kind \"trafic_police\"",
                "no agency",
            ],
        },
        // ---- city.toml --------------------------------------------------------------------------
        Broken {
            name: "city.toml missing",
            edit: |c| c.remove("city.toml"),
            variant: "Io",
            words: &["city.toml", "cannot read"],
        },
        Broken {
            name: "a typo in a field of city.toml",
            edit: |c| c.replace("city.toml", "time_zone = ", "time_zon = "),
            variant: "Parse",
            words: &["city.toml", "`time_zon`", "unknown field"],
        },
        // ---- city.toml: [traffic] ----------------------------------------------------------------
        Broken {
            name: "an unknown category explains congestion",
            edit: |c| c.replace("city.toml", "\"fallen_tree\"", "\"falen_tree\""),
            variant: "Invalid",
            words: &[
                "city.toml",
                "traffic.explained_by",
                "\"falen_tree\" is not defined in categories.toml",
            ],
        },
        Broken {
            name: "a slot that does not divide the day",
            edit: |c| c.replace("city.toml", "slot_minutes = 15", "slot_minutes = 7"),
            variant: "Invalid",
            words: &["city.toml", "traffic.slot_minutes", "must divide a day"],
        },
        Broken {
            name: "recovery easier than congestion",
            edit: |c| c.replace("city.toml", "recover_ratio = 0.7", "recover_ratio = 0.4"),
            variant: "Invalid",
            words: &["traffic.recover_ratio", "below speed_ratio 0.5"],
        },
        Broken {
            name: "a ratio above one",
            edit: |c| c.replace("city.toml", "speed_ratio = 0.5", "speed_ratio = 1.5"),
            variant: "Invalid",
            words: &["traffic.speed_ratio", "must be in (0, 1]"],
        },
        Broken {
            name: "a typo in [traffic]",
            edit: |c| c.replace("city.toml", "link_radius_m = ", "link_radius = "),
            variant: "Parse",
            words: &["city.toml", "`link_radius`", "unknown field"],
        },
        Broken {
            name: "default_language fr",
            edit: |c| {
                c.replace(
                    "city.toml",
                    "default_language = \"ro\"",
                    "default_language = \"fr\"",
                )
            },
            variant: "Invalid",
            words: &["city.toml", "default_language", "unknown language \"fr\""],
        },
        Broken {
            name: "languages without en",
            edit: |c| {
                c.replace(
                    "city.toml",
                    "languages = [\"ro\", \"en\"]",
                    "languages = [\"ro\"]",
                )
            },
            variant: "Invalid",
            words: &["city.toml", "languages", "must include \"en\""],
        },
        Broken {
            name: "an unknown language",
            edit: |c| {
                c.replace(
                    "city.toml",
                    "languages = [\"ro\", \"en\"]",
                    "languages = [\"ro\", \"en\", \"hu\"]",
                )
            },
            variant: "Invalid",
            words: &["city.toml", "languages", "unknown language \"hu\""],
        },
        Broken {
            name: "bounds with west > east",
            edit: |c| {
                c.replace(
                    "city.toml",
                    "[25.500, 45.525, 25.692, 45.755]",
                    "[25.692, 45.525, 25.500, 45.755]",
                )
            },
            variant: "Invalid",
            words: &["city.toml", "bounds", "west < east"],
        },
        Broken {
            name: "bounds with south > north",
            edit: |c| {
                c.replace(
                    "city.toml",
                    "[25.500, 45.525, 25.692, 45.755]",
                    "[25.500, 45.755, 25.692, 45.525]",
                )
            },
            variant: "Invalid",
            words: &["city.toml", "bounds", "south < north"],
        },
        Broken {
            // Well-formed bounds of the wrong place: the centre gives it away.
            name: "bounds latitude first",
            edit: |c| {
                c.replace(
                    "city.toml",
                    "[25.500, 45.525, 25.692, 45.755]",
                    "[45.525, 25.500, 45.755, 25.692]",
                )
            },
            variant: "Invalid",
            words: &["city.toml", "center", "outside bounds"],
        },
        Broken {
            name: "center outside bounds",
            edit: |c| {
                c.replace(
                    "city.toml",
                    "center = [25.5887, 45.6419]",
                    "center = [45.6419, 25.5887]",
                )
            },
            variant: "Invalid",
            words: &["city.toml", "center", "outside bounds"],
        },
        Broken {
            name: "time zone that is not IANA",
            edit: |c| c.replace("city.toml", "\"Europe/Bucharest\"", "\"EET\""),
            variant: "Invalid",
            words: &["city.toml", "time_zone", "IANA"],
        },
        Broken {
            name: "fallback_agency unknown",
            edit: |c| {
                c.replace(
                    "city.toml",
                    "fallback_agency = \"city-dispatch\"",
                    "fallback_agency = \"dispeceratul\"",
                )
            },
            variant: "Invalid",
            words: &[
                "city.toml",
                "fallback_agency",
                "\"dispeceratul\"",
                "not defined in agencies.toml",
            ],
        },
        // ---- categories.toml --------------------------------------------------------------------
        Broken {
            name: "a duplicate category id",
            edit: |c| {
                c.replace(
                    "categories.toml",
                    "id = \"no_water\"",
                    "id = \"water_leak\"",
                )
            },
            variant: "Invalid",
            words: &["categories.toml", "category \"water_leak\"", "used twice"],
        },
        Broken {
            name: "an unknown severity",
            edit: |c| {
                c.replace_in_entry(
                    "categories.toml",
                    "id = \"pothole\"",
                    "\"minor\"",
                    "\"catastrophic\"",
                )
            },
            variant: "Invalid",
            words: &[
                "categories.toml",
                "category \"pothole\"",
                "unknown severity \"catastrophic\"",
            ],
        },
        Broken {
            name: "merge_radius_m = 0",
            edit: |c| {
                c.replace_in_entry(
                    "categories.toml",
                    "id = \"pothole\"",
                    "merge_radius_m = 50",
                    "merge_radius_m = 0",
                )
            },
            variant: "Invalid",
            words: &[
                "categories.toml",
                "category \"pothole\"",
                "merge_radius_m",
                "not 0",
            ],
        },
        Broken {
            name: "merge_window_minutes = 0",
            edit: |c| {
                c.replace_in_entry(
                    "categories.toml",
                    "id = \"pothole\"",
                    "merge_window_minutes = 10080",
                    "merge_window_minutes = 0",
                )
            },
            variant: "Invalid",
            words: &[
                "categories.toml",
                "category \"pothole\"",
                "merge_window_minutes",
            ],
        },
        Broken {
            name: "a typo in a field of a category",
            edit: |c| {
                c.replace_in_entry(
                    "categories.toml",
                    "id = \"pothole\"",
                    "merge_radius_m = ",
                    "merge_radius = ",
                )
            },
            variant: "Parse",
            words: &["categories.toml", "`merge_radius`", "unknown field"],
        },
        Broken {
            name: "a typo in a category's deadlines",
            edit: |c| {
                c.replace_in_entry(
                    "categories.toml",
                    "id = \"pothole\"",
                    "deadlines = { acknowledge_minutes",
                    "deadlines = { acknowledge_minute",
                )
            },
            variant: "Parse",
            words: &["categories.toml", "`acknowledge_minute`", "unknown field"],
        },
        Broken {
            name: "a typo in a severity's deadlines",
            edit: |c| {
                c.replace_in_entry(
                    "categories.toml",
                    "id = \"pothole\"",
                    "severe = { acknowledge_minutes = 60",
                    "sever = { acknowledge_minutes = 60",
                )
            },
            variant: "Parse",
            words: &["categories.toml", "`sever`", "unknown field"],
        },
        Broken {
            name: "a category without deadlines",
            edit: |c| {
                c.replace_in_entry(
                    "categories.toml",
                    "id = \"congestion\"",
                    "deadlines = { acknowledge_minutes = 15, resolve_minutes = 120 }",
                    "",
                )
            },
            variant: "Parse",
            words: &["categories.toml", "missing field `deadlines`"],
        },
        Broken {
            name: "acknowledge_minutes = 0",
            edit: |c| {
                c.replace_in_entry(
                    "categories.toml",
                    "id = \"congestion\"",
                    "acknowledge_minutes = 15",
                    "acknowledge_minutes = 0",
                )
            },
            variant: "Invalid",
            words: &[
                "categories.toml",
                "category \"congestion\"",
                "deadlines.acknowledge_minutes must be between 1 and 525600, not 0",
            ],
        },
        Broken {
            name: "a severity that acknowledges after it resolves",
            edit: |c| {
                c.replace_in_entry(
                    "categories.toml",
                    "id = \"pothole\"",
                    "severe = { acknowledge_minutes = 60, resolve_minutes = 1440 }",
                    "severe = { acknowledge_minutes = 60, resolve_minutes = 30 }",
                )
            },
            variant: "Invalid",
            words: &[
                "categories.toml",
                "category \"pothole\"",
                "deadlines.severe.acknowledge_minutes (60) is longer than resolve_minutes (30)",
            ],
        },
        Broken {
            name: "an empty severity override",
            edit: |c| {
                c.replace_in_entry(
                    "categories.toml",
                    "id = \"pothole\"",
                    "severe = { acknowledge_minutes = 60, resolve_minutes = 1440 }",
                    "severe = {}",
                )
            },
            variant: "Invalid",
            words: &[
                "categories.toml",
                "category \"pothole\"",
                "deadlines.severe sets nothing",
            ],
        },
        Broken {
            name: "a category nobody handles",
            edit: |c| {
                c.replace_all("agencies.toml", "\"gas_smell\", ", "");
                c.replace_all("agencies.toml", "\"gas_smell\"", "");
            },
            variant: "Invalid",
            words: &[
                "categories.toml",
                "category \"gas_smell\"",
                "no agency in agencies.toml handles it",
            ],
        },
        // ---- agencies.toml ----------------------------------------------------------------------
        Broken {
            name: "an agency handling an unknown category",
            edit: |c| {
                c.replace_in_entry(
                    "agencies.toml",
                    "id = \"apa-brasov\"",
                    "\"water_leak\"",
                    "\"water_lake\"",
                )
            },
            variant: "Invalid",
            words: &[
                "agencies.toml",
                "agency \"apa-brasov\"",
                "\"water_lake\"",
                "categories.toml does not define",
            ],
        },
        Broken {
            name: "a jurisdiction naming an unknown district",
            edit: |c| {
                c.replace_in_entry(
                    "agencies.toml",
                    "id = \"termoficare-brasov\"",
                    "\"astra\"",
                    "\"astro\"",
                )
            },
            variant: "Invalid",
            words: &[
                "agencies.toml",
                "agency \"termoficare-brasov\"",
                "district \"astro\"",
                "districts.geojson does not define",
            ],
        },
        Broken {
            name: "an empty jurisdiction",
            edit: |c| {
                c.replace_in_entry(
                    "agencies.toml",
                    "id = \"apa-brasov\"",
                    "whole_city = true",
                    "whole_city = false",
                )
            },
            variant: "Invalid",
            words: &[
                "agencies.toml",
                "agency \"apa-brasov\"",
                "jurisdiction is empty",
            ],
        },
        Broken {
            name: "a jurisdiction file missing",
            edit: |c| c.remove("jurisdictions/poiana-brasov-statiune.geojson"),
            variant: "Io",
            words: &[
                "jurisdictions/poiana-brasov-statiune.geojson",
                "cannot read",
            ],
        },
        Broken {
            name: "a jurisdiction file outside the folder",
            edit: |c| {
                c.replace_in_entry(
                    "agencies.toml",
                    "id = \"poiana-brasov-statiune\"",
                    "\"jurisdictions/poiana-brasov-statiune.geojson\"",
                    "\"../x.geojson\"",
                )
            },
            variant: "Invalid",
            words: &[
                "agencies.toml",
                "agency \"poiana-brasov-statiune\"",
                "\"../x.geojson\"",
                "inside the city folder",
            ],
        },
        Broken {
            name: "a jurisdiction file given as an absolute path",
            edit: |c| {
                c.replace_in_entry(
                    "agencies.toml",
                    "id = \"poiana-brasov-statiune\"",
                    "\"jurisdictions/poiana-brasov-statiune.geojson\"",
                    "\"/etc/x.geojson\"",
                )
            },
            variant: "Invalid",
            words: &[
                "agencies.toml",
                "agency \"poiana-brasov-statiune\"",
                "\"/etc/x.geojson\"",
                "inside the city folder",
            ],
        },
        Broken {
            name: "a duplicate agency id",
            edit: |c| {
                c.replace(
                    "agencies.toml",
                    "id = \"deer-brasov\"",
                    "id = \"apa-brasov\"",
                )
            },
            variant: "Invalid",
            words: &["agencies.toml", "agency \"apa-brasov\"", "used twice"],
        },
        // ---- districts.geojson ------------------------------------------------------------------
        Broken {
            name: "a district without \"id\"",
            edit: |c| c.replace("districts.geojson", "\"id\": \"centrul-istoric\",", ""),
            variant: "Invalid",
            words: &[
                "districts.geojson",
                "feature 0",
                "property \"id\" is required",
            ],
        },
        Broken {
            name: "a district with a Point geometry",
            edit: |c| c.insert_feature("districts.geojson", POINT_DISTRICT),
            variant: "Invalid",
            words: &[
                "districts.geojson",
                "feature 0 (punct)",
                "must be a Polygon or MultiPolygon",
            ],
        },
        Broken {
            name: "a ring with 3 positions",
            edit: |c| c.insert_feature("districts.geojson", THREE_POSITION_DISTRICT),
            variant: "Invalid",
            words: &[
                "districts.geojson",
                "feature 0 (triunghi)",
                "3 positions; at least 4",
            ],
        },
        Broken {
            name: "a ring that is not closed",
            edit: |c| c.insert_feature("districts.geojson", OPEN_RING_DISTRICT),
            variant: "Invalid",
            words: &["districts.geojson", "feature 0 (deschis)", "not closed"],
        },
        Broken {
            name: "a ring with a position off the Earth",
            edit: |c| c.insert_feature("districts.geojson", LATITUDE_FIRST_DISTRICT),
            variant: "Invalid",
            words: &[
                "districts.geojson",
                "feature 0 (inversat)",
                "[45.64, 95]",
                "[longitude, latitude]",
            ],
        },
        Broken {
            name: "a duplicate district id",
            edit: |c| {
                c.replace(
                    "districts.geojson",
                    "\"id\": \"prund\"",
                    "\"id\": \"centrul-istoric\"",
                )
            },
            variant: "Invalid",
            words: &[
                "districts.geojson",
                "district \"centrul-istoric\"",
                "used twice",
            ],
        },
        Broken {
            name: "districts.geojson that is not GeoJSON",
            edit: |c| {
                c.replace(
                    "districts.geojson",
                    "\"type\": \"FeatureCollection\"",
                    "\"type\": \"Districts\"",
                )
            },
            variant: "Parse",
            words: &["districts.geojson"],
        },
        // ---- sensors.toml -----------------------------------------------------------------------
        Broken {
            name: "a sensor with a latitude-first location",
            edit: |c| {
                c.replace_in_entry(
                    "sensors.toml",
                    "id = \"tc-eroilor-e\"",
                    "location = [25.5930, 45.6458]",
                    "location = [45.6458, 25.5930]",
                )
            },
            variant: "Invalid",
            words: &[
                "sensors.toml",
                "sensor \"tc-eroilor-e\"",
                "[45.6458, 25.593]",
                "outside the city's bounds",
                "[longitude, latitude]",
            ],
        },
        Broken {
            name: "a sensor with no speed",
            edit: |c| {
                c.replace_in_entry(
                    "sensors.toml",
                    "id = \"tc-eroilor-e\"",
                    "free_flow_speed_kmh = 50",
                    "free_flow_speed_kmh = 0",
                )
            },
            variant: "Invalid",
            words: &[
                "sensors.toml",
                "sensor \"tc-eroilor-e\"",
                "free_flow_speed_kmh",
            ],
        },
    ]
}

#[test]
fn broken_folders_are_refused_with_the_file_the_entry_and_the_problem() {
    let table = table();
    let total = table.len();
    let mut failures = Vec::new();
    for case in table {
        let copy = CityCopy::new();
        (case.edit)(&copy);
        match copy.load() {
            Ok(_) => failures.push(format!("{}: loaded", case.name)),
            Err(e) => {
                let text = e.to_string();
                if variant(&e) != case.variant {
                    failures.push(format!(
                        "{}: {e:?}, expected CityError::{}",
                        case.name, case.variant
                    ));
                }
                for word in case.words.iter().filter(|w| !text.contains(*w)) {
                    failures.push(format!("{}: {text:?} does not contain {word:?}", case.name));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} problems in a table of {total} rows:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

#[test]
fn a_copy_with_no_mistake_loads() {
    // The fixture itself breaks nothing: every refusal above comes from its one edit.
    let copy = CityCopy::new();
    let city = copy
        .load()
        .unwrap_or_else(|e| panic!("an unedited copy must load: {e}"));
    assert_eq!(city.districts.len(), 24);
    assert_eq!(
        city.traffic.category.as_ref().map(|c| c.as_str()),
        Some("congestion")
    );
    assert!(city
        .traffic
        .explained_by
        .iter()
        .any(|c| c.as_str() == "water_leak"));
}

#[test]
fn invalid_toml_names_the_file_and_the_line() {
    let copy = CityCopy::new();
    let text = std::fs::read_to_string(crate::fixture::brasov_dir().join("categories.toml"))
        .expect("read categories.toml");
    let line = 1 + text
        .lines()
        .position(|l| l == "id = \"pothole\"")
        .expect("categories.toml defines pothole");
    copy.replace("categories.toml", "id = \"pothole\"", "id = \"pothole");
    let e = copy
        .load()
        .expect_err("a string that never ends is not TOML");
    let text = e.to_string();
    assert!(matches!(e, CityError::Parse { .. }), "{e:?}");
    assert!(text.contains("categories.toml"), "{text}");
    assert!(
        text.contains(&format!("line {line}")),
        "line {line}: {text}"
    );
}

#[test]
fn the_temporary_copies_are_removed() {
    let copy = CityCopy::new();
    let path = copy.path().to_path_buf();
    assert!(
        path.join("city.toml").exists(),
        "{} is a copy",
        path.display()
    );
    drop(copy);
    assert!(!path.exists(), "{} is left behind", path.display());
}
