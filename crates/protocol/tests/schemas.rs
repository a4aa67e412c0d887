//! The published JSON Schemas (`docs/schemas/`) and examples (`docs/examples/`) against the
//! parsers, so that the documentation cannot drift from what Dispecer accepts:
//!
//! - every example validates against its schema, and its parser accepts it (the CAP example: the
//!   official CAP 1.2 XSD through `xmllint`, when installed, and [`inbound::cap_event`]);
//! - every document of [`invalid`] is refused by both the schema and the parser;
//! - [`parser_only`] lists what the parser refuses and JSON Schema cannot express (the city's
//!   data, the clock, bytes, names joined across records), and [`schema_only`] what the schemas
//!   refuse, following RFC 7946 or RFC 3339 to the letter, and the parser lets through. Both lists
//!   are asserted as they are, so a change on either side shows up here.
//!
//! The validator never fetches anything: the crate is built without its HTTP and file resolvers,
//! `offline()` refuses any retrieval, and the one cross-file reference (the batch's features) is
//! served from a registry holding `utility-event.schema.json`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use geo::{Contains, Point};
use jsonschema::{Draft, Registry, Validator};
use serde_json::{json, Value};

use model::{City, Event, EventKind};
use protocol::{inbound, traffic};

/// The operator whose topic (or token) the utility examples come from.
const OPERATOR: &str = "apa-brasov";
/// The traffic counter whose topic the traffic example is published on.
const SENSOR: &str = "tc-eroilor-e";
/// `bt` of the SenML examples: 2026-11-22T09:55:00Z.
const BT: i64 = 1_795_341_300;
/// The batch refers to the single utility event by this `$id`.
const UTILITY_ID: &str = "https://dispecer.example/schemas/v1/utility-event.schema.json";

/// When every document is received: 2026-11-22 12:00 in Brașov, after every example's time (the
/// planned works announced for later excepted, as they may be).
fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
        .expect("a valid instant")
        .with_timezone(&Utc)
}

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

fn read(relative: &str) -> Vec<u8> {
    let path = docs().join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_json(relative: &str) -> Value {
    serde_json::from_slice(&read(relative))
        .unwrap_or_else(|e| panic!("docs/{relative} is not JSON: {e}"))
}

/// The Brașov demo city, loaded once.
fn city() -> &'static City {
    static CITY: OnceLock<City> = OnceLock::new();
    CITY.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cities/brasov");
        city::load(&dir).unwrap_or_else(|e| panic!("the Brașov demo city must load: {e}"))
    })
}

/// Whether `point` lies in the district `id` of Brașov.
fn in_district(point: Point, id: &str) -> bool {
    city()
        .district(id)
        .unwrap_or_else(|| panic!("Brașov has a district {id}"))
        .area
        .contains(&point)
}

// ---------------------------------------------------------------------------------------------
// The sources

/// An input of Dispecer with a JSON Schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `dispecer/v1/in/citizen/reports`.
    Citizen,
    /// `dispecer/v1/in/utilities/{operator}/events`, or one Feature to `POST /api/v1/events`.
    Utility,
    /// A FeatureCollection to `POST /api/v1/events`.
    Batch,
    /// `dispecer/v1/in/traffic/{sensor}`.
    Traffic,
    /// `POST /api/v1/readings`.
    Readings,
}

use Source::{Batch, Citizen, Readings, Traffic, Utility};

impl Source {
    const ALL: [Source; 5] = [Citizen, Utility, Batch, Traffic, Readings];

    fn schema_file(self) -> &'static str {
        match self {
            Citizen => "citizen-report.schema.json",
            Utility => "utility-event.schema.json",
            Batch => "utility-events-batch.schema.json",
            Traffic => "traffic-senml.schema.json",
            Readings => "readings-senml.schema.json",
        }
    }

    fn validator(self) -> &'static Validator {
        static VALIDATORS: OnceLock<Vec<Validator>> = OnceLock::new();
        let all = VALIDATORS.get_or_init(|| Source::ALL.iter().map(|s| build(*s)).collect());
        let index = Source::ALL
            .iter()
            .position(|s| *s == self)
            .expect("every source is in ALL");
        &all[index]
    }

    /// The schema's errors for `payload` (a refusal when it is not JSON at all).
    fn schema_errors(self, payload: &[u8]) -> Vec<String> {
        match serde_json::from_slice::<Value>(payload) {
            Ok(value) => self
                .validator()
                .iter_errors(&value)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect(),
            Err(e) => vec![format!("not JSON: {e}")],
        }
    }

    /// The parser's verdict on `payload`, received at [`now`].
    fn parse(self, payload: &[u8]) -> Result<(), String> {
        let city = city();
        match self {
            Citizen => inbound::citizen_report(payload, city, now()).map(drop),
            Utility => inbound::utility_event(payload, OPERATOR, city, now()).map(drop),
            Batch => return batch(payload).map(drop),
            Traffic => traffic::readings(payload, SENSOR, city, now()).map(drop),
            Readings => traffic::readings_named(payload, city, now()).map(drop),
        }
        .map_err(|e| e.to_string())
    }
}

/// Compiles one schema, after checking it against the draft 2020-12 meta-schema and the
/// conventions of the folder.
fn build(source: Source) -> Validator {
    let file = source.schema_file();
    let schema = read_json(&format!("schemas/{file}"));
    if let Err(e) = jsonschema::meta::validate(&schema) {
        panic!("{file} is not a valid JSON Schema: {e}");
    }
    assert_eq!(
        schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
        "{file}"
    );
    assert_eq!(
        schema["$id"],
        format!("https://dispecer.example/schemas/v1/{file}"),
        "{file}"
    );
    for keyword in ["title", "description"] {
        assert!(schema[keyword].is_string(), "{file} has no {keyword}");
    }
    assert!(
        schema["examples"].as_array().is_some_and(|e| !e.is_empty()),
        "{file} has no examples"
    );
    let utility = read_json("schemas/utility-event.schema.json");
    let registry = Registry::new()
        .add(UTILITY_ID, utility)
        .and_then(|r| r.prepare())
        .expect("a registry of the utility event schema");
    let validator = jsonschema::options()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(true)
        .offline()
        .with_registry(&registry)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{file} does not compile: {e}"));
    for (i, example) in schema["examples"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let errors: Vec<String> = validator
            .iter_errors(example)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{file}: examples[{i}] is invalid: {errors:#?}"
        );
    }
    validator
}

/// What `POST /api/v1/events` does with a body (`crates/api/src/ingest.rs`): a FeatureCollection
/// is at most 1000 features, each parsed on its own as a utility event (re-serialised, as the API
/// does); anything else is one utility event. Here, the first refused feature refuses the batch
/// (the API answers it `rejected` and goes on with the next).
fn batch(payload: &[u8]) -> Result<Vec<Event>, String> {
    let value: Value = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    if value.get("type").and_then(Value::as_str) != Some("FeatureCollection") {
        return inbound::utility_event(payload, OPERATOR, city(), now())
            .map(|e| vec![e])
            .map_err(|e| e.to_string());
    }
    let features = value
        .get("features")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if features.len() > 1000 {
        return Err(format!("{} features; at most 1000", features.len()));
    }
    features
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let bytes = serde_json::to_vec(f).map_err(|e| e.to_string())?;
            inbound::utility_event(&bytes, OPERATOR, city(), now())
                .map_err(|e| format!("feature {i}: {e}"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The examples

const EXAMPLES: [(Source, &str); 6] = [
    (Citizen, "citizen-report.json"),
    (Utility, "utility-fault.json"),
    (Utility, "utility-restored.json"),
    (Batch, "utility-batch.json"),
    (Traffic, "traffic-pack.json"),
    (Readings, "readings-pack.json"),
];

#[test]
fn every_example_is_valid_for_its_schema_and_its_parser() {
    for (source, file) in EXAMPLES {
        let payload = read(&format!("examples/{file}"));
        let errors = source.schema_errors(&payload);
        assert!(
            errors.is_empty(),
            "{file} is invalid for {}: {errors:#?}",
            source.schema_file()
        );
        if let Err(e) = source.parse(&payload) {
            panic!("{file} is refused by the {source:?} parser: {e}");
        }
    }
}

#[test]
fn every_example_is_listed_in_the_index() {
    let index = String::from_utf8(read("README.md")).expect("UTF-8");
    let examples = std::fs::read_dir(docs().join("examples")).expect("docs/examples");
    for entry in examples {
        let name = entry.expect("a directory entry").file_name();
        let name = name.to_string_lossy();
        assert!(
            index.contains(&format!("examples/{name}")),
            "docs/README.md does not link examples/{name}"
        );
    }
    for source in Source::ALL {
        assert!(
            index.contains(&format!("schemas/{}", source.schema_file())),
            "docs/README.md does not link {}",
            source.schema_file()
        );
    }
}

#[test]
fn the_examples_say_what_the_docs_say() {
    let report = inbound::citizen_report(&read("examples/citizen-report.json"), city(), now())
        .expect("the citizen report example");
    assert_eq!(report.category.as_str(), "pothole");
    assert!(in_district(report.location, "brasovechi"), "Str. Lungă");

    let fault = inbound::utility_event(
        &read("examples/utility-fault.json"),
        OPERATOR,
        city(),
        now(),
    )
    .expect("the fault example");
    let restored = inbound::utility_event(
        &read("examples/utility-restored.json"),
        OPERATOR,
        city(),
        now(),
    )
    .expect("the restored example");
    assert_eq!(
        (fault.kind, restored.kind),
        (EventKind::Notice, EventKind::Restored)
    );
    assert_eq!(
        fault.subject, restored.subject,
        "restored follows the fault"
    );
    assert_ne!(fault.id, restored.id, "two versions of one notice");
    assert!(
        in_district(fault.location, "centrul-nou"),
        "Bd. 15 Noiembrie"
    );

    let events = batch(&read("examples/utility-batch.json")).expect("the batch example");
    assert_eq!(events.len(), 3);
    assert!(
        events[0].occurred_at > now(),
        "planned works are announced ahead"
    );
    assert!(in_district(events[0].location, "tractorul"));
    assert!(in_district(events[1].location, "noua"));
    assert_eq!(events[2].kind, EventKind::Restored);
    assert!(in_district(events[2].location, "racadau"));

    let readings = traffic::readings(&read("examples/traffic-pack.json"), SENSOR, city(), now())
        .expect("the traffic example");
    assert_eq!(readings.len(), 6);
    assert!(readings.iter().all(|r| r.sensor.as_str() == SENSOR));
    assert_eq!(readings[0].time.timestamp(), BT);
    assert_eq!(readings[5].time.timestamp(), BT + 60);

    let readings = traffic::readings_named(&read("examples/readings-pack.json"), city(), now())
        .expect("the readings example");
    let mut sensors: Vec<&str> = readings.iter().map(|r| r.sensor.as_str()).collect();
    sensors.dedup();
    assert_eq!(sensors, ["tc-eroilor-e", "tc-carpatilor-e", "tc-garii-n"]);
}

// ---------------------------------------------------------------------------------------------
// Documents both refuse, and those only one of them can

/// One document for one source.
struct Case {
    name: &'static str,
    source: Source,
    payload: Vec<u8>,
}

fn case(name: &'static str, source: Source, doc: &Value) -> Case {
    Case {
        name,
        source,
        payload: serde_json::to_vec(doc).expect("a JSON value serialises"),
    }
}

/// A document that only exists as text (JSON with a label twice, say).
fn raw(name: &'static str, source: Source, text: &str) -> Case {
    Case {
        name,
        source,
        payload: text.as_bytes().to_vec(),
    }
}

/// `base` with the value at the JSON pointer `at` replaced (or inserted), or removed if `new` is
/// `None`.
fn edit(base: &Value, at: &str, new: Option<Value>) -> Value {
    let mut doc = base.clone();
    let (parent, last) = at.rsplit_once('/').expect("a JSON pointer");
    match (doc.pointer_mut(parent), new) {
        (Some(Value::Object(map)), Some(new)) => {
            map.insert(last.to_owned(), new);
        }
        (Some(Value::Object(map)), None) => {
            map.remove(last);
        }
        (Some(Value::Array(items)), Some(new)) => {
            items[last.parse::<usize>().expect("an index")] = new;
        }
        _ => panic!("{at} is not in the document"),
    }
    doc
}

fn set(base: &Value, at: &str, new: Value) -> Value {
    edit(base, at, Some(new))
}

fn remove(base: &Value, at: &str) -> Value {
    edit(base, at, None)
}

fn citizen() -> Value {
    read_json("examples/citizen-report.json")
}

fn utility() -> Value {
    read_json("examples/utility-fault.json")
}

/// A pack of one record of [`SENSOR`] at [`BT`]: `{"bn": "tc-eroilor-e/", "bt": BT}` and `fields`.
fn one(fields: Value) -> Value {
    let mut record = json!({"bn": format!("{SENSOR}/"), "bt": BT});
    if let (Some(record), Value::Object(fields)) = (record.as_object_mut(), fields) {
        record.extend(fields);
    }
    json!([record])
}

/// Refused by the schema and by the parser.
fn invalid() -> Vec<Case> {
    let c = citizen();
    let u = utility();
    let long_id = "r".repeat(129);
    let long_text = "ă".repeat(4001);
    let point = |lon: f64, lat: f64| json!({"type": "Point", "coordinates": [lon, lat]});
    let mut batch_bad = read_json("examples/utility-batch.json");
    batch_bad["features"][1]["properties"]["kind"] = json!("burst");
    let mut batch_big = read_json("examples/utility-batch.json");
    batch_big["features"] = Value::Array(vec![u.clone(); 1001]);
    vec![
        // RFC 7946 §3.1.4: a LineString has two or more positions; refused by both.
        case(
            "utility: a LineString of one position",
            Utility,
            &set(&u, "/geometry/coordinates", json!([[25.604, 45.65]])),
        ),
        // RFC 7946 §3.1.6: a ring has four or more positions; refused by both.
        case(
            "utility: a ring of three positions",
            Utility,
            &set(
                &u,
                "/geometry",
                json!({
                    "type": "Polygon",
                    "coordinates": [[[25.60, 45.65], [25.61, 45.65], [25.61, 45.66]]]
                }),
            ),
        ),
        // Citizen reports.
        case("citizen: no id", Citizen, &remove(&c, "/properties/id")),
        case(
            "citizen: id with '/'",
            Citizen,
            &set(&c, "/properties/id", json!("r/2026/1")),
        ),
        case(
            "citizen: id with a space",
            Citizen,
            &set(&c, "/properties/id", json!("r 1")),
        ),
        case(
            "citizen: id with '#'",
            Citizen,
            &set(&c, "/properties/id", json!("r#1")),
        ),
        case(
            "citizen: empty id",
            Citizen,
            &set(&c, "/properties/id", json!("")),
        ),
        case(
            "citizen: id of 129 characters",
            Citizen,
            &set(&c, "/properties/id", json!(long_id)),
        ),
        case(
            "citizen: id a number",
            Citizen,
            &set(&c, "/properties/id", json!(17)),
        ),
        case(
            "citizen: numeric Feature id instead of properties.id",
            Citizen,
            &set(&remove(&c, "/properties/id"), "/id", json!(17)),
        ),
        case(
            "citizen: no category",
            Citizen,
            &remove(&c, "/properties/category"),
        ),
        case(
            "citizen: category a number",
            Citizen,
            &set(&c, "/properties/category", json!(3)),
        ),
        case(
            "citizen: a LineString",
            Citizen,
            &set(
                &c,
                "/geometry",
                json!({"type": "LineString", "coordinates": [[25.58, 45.65], [25.59, 45.65]]}),
            ),
        ),
        case("citizen: no geometry", Citizen, &remove(&c, "/geometry")),
        case(
            "citizen: null geometry",
            Citizen,
            &set(&c, "/geometry", Value::Null),
        ),
        case(
            "citizen: latitude beyond 90",
            Citizen,
            &set(&c, "/geometry", point(25.5858, 145.6515)),
        ),
        case(
            "citizen: Melbourne written latitude first (latitude 144.96)",
            Citizen,
            &set(&c, "/geometry", point(-37.81, 144.96)),
        ),
        case(
            "citizen: a position of one number",
            Citizen,
            &set(&c, "/geometry/coordinates", json!([25.5858])),
        ),
        case(
            "citizen: coordinates as strings",
            Citizen,
            &set(&c, "/geometry/coordinates", json!(["25.5858", "45.6515"])),
        ),
        case(
            "citizen: description of 4001 characters",
            Citizen,
            &set(&c, "/properties/description", json!(long_text)),
        ),
        case(
            "citizen: reported_at without an offset",
            Citizen,
            &set(&c, "/properties/reported_at", json!("2026-11-22T11:40:00")),
        ),
        case(
            "citizen: reported_at in Romanian style",
            Citizen,
            &set(&c, "/properties/reported_at", json!("22.11.2026 11:40")),
        ),
        case(
            "citizen: reported_at as a Unix time",
            Citizen,
            &set(&c, "/properties/reported_at", json!(1_795_340_400)),
        ),
        case(
            "citizen: no reported_at",
            Citizen,
            &remove(&c, "/properties/reported_at"),
        ),
        case(
            "citizen: not a Feature",
            Citizen,
            &set(&c, "/type", json!("FeatureCollection")),
        ),
        case(
            "citizen: properties a string",
            Citizen,
            &set(&c, "/properties", json!("pothole")),
        ),
        case(
            "citizen: no properties",
            Citizen,
            &remove(&c, "/properties"),
        ),
        // Utility events.
        case(
            "utility: unknown kind",
            Utility,
            &set(&u, "/properties/kind", json!("burst")),
        ),
        case(
            "utility: kind in capitals",
            Utility,
            &set(&u, "/properties/kind", json!("FAULT")),
        ),
        case("utility: no kind", Utility, &remove(&u, "/properties/kind")),
        case("utility: no id", Utility, &remove(&u, "/properties/id")),
        case(
            "utility: id with '+'",
            Utility,
            &set(&u, "/properties/id", json!("apa+3187")),
        ),
        case(
            "utility: no category",
            Utility,
            &remove(&u, "/properties/category"),
        ),
        case(
            "utility: a MultiPoint",
            Utility,
            &set(
                &u,
                "/geometry",
                json!({"type": "MultiPoint", "coordinates": [[25.60, 45.65]]}),
            ),
        ),
        case(
            "utility: a Polygon without rings",
            Utility,
            &set(
                &u,
                "/geometry",
                json!({"type": "Polygon", "coordinates": []}),
            ),
        ),
        case(
            "utility: a MultiPolygon without polygons",
            Utility,
            &set(
                &u,
                "/geometry",
                json!({"type": "MultiPolygon", "coordinates": []}),
            ),
        ),
        case(
            "utility: an empty LineString",
            Utility,
            &set(&u, "/geometry/coordinates", json!([])),
        ),
        case(
            "utility: longitude beyond 180",
            Utility,
            &set(&u, "/geometry/coordinates/1", json!([225.604, 45.65])),
        ),
        case(
            "utility: starts_at not a date-time",
            Utility,
            &set(&u, "/properties/starts_at", json!("yesterday")),
        ),
        case(
            "utility: starts_at without seconds",
            Utility,
            &set(&u, "/properties/starts_at", json!("2026-11-22T07:40+02:00")),
        ),
        case(
            "utility: description of 4001 characters",
            Utility,
            &set(&u, "/properties/description", json!(long_text)),
        ),
        case(
            "utility: description a number",
            Utility,
            &set(&u, "/properties/description", json!(42)),
        ),
        // Batches.
        case("batch: one feature of an unknown kind", Batch, &batch_bad),
        // The limit is the API's (crates/api MAX_FEATURES), mirrored by `batch`.
        case("batch: 1001 features", Batch, &batch_big),
        case(
            "batch: a feature that is not a Feature",
            Batch,
            &json!({
                "type": "FeatureCollection",
                "features": [{"type": "Point", "coordinates": [25.6, 45.65]}]
            }),
        ),
        // Traffic counters.
        case(
            "traffic: two values in one record",
            Traffic,
            &one(json!({"n": "count", "u": "count", "v": 12, "vs": "12"})),
        ),
        case(
            "traffic: speed in m/s",
            Traffic,
            &one(json!({"n": "speed", "u": "m/s", "v": 12})),
        ),
        case(
            "traffic: a count in km/h",
            Traffic,
            &one(json!({"n": "count", "u": "km/h", "v": 12})),
        ),
        case(
            "traffic: a count whose base unit is km/h",
            Traffic,
            &one(json!({"bu": "km/h", "n": "count", "v": 12})),
        ),
        case(
            "traffic: unknown metric",
            Traffic,
            &one(json!({"n": "flow", "u": "count", "v": 12})),
        ),
        case(
            "traffic: a space in the name",
            Traffic,
            &json!([{"bt": BT, "n": "tc eroilor e/count", "u": "count", "v": 12}]),
        ),
        case(
            "traffic: a name starting with '-'",
            Traffic,
            &json!([{"bt": BT, "n": "-tc/count", "u": "count", "v": 12}]),
        ),
        case(
            "traffic: no value",
            Traffic,
            &one(json!({"n": "speed", "u": "km/h"})),
        ),
        case(
            "traffic: a string value",
            Traffic,
            &one(json!({"n": "count", "u": "count", "vs": "12"})),
        ),
        case(
            "traffic: a sum and no value",
            Traffic,
            &one(json!({"n": "count", "u": "count", "s": 1200})),
        ),
        case(
            "traffic: a value as a string",
            Traffic,
            &one(json!({"n": "count", "u": "count", "v": "12"})),
        ),
        case(
            "traffic: occupancy of 120 %",
            Traffic,
            &one(json!({"n": "occupancy", "u": "%", "v": 120})),
        ),
        case(
            "traffic: a negative count",
            Traffic,
            &one(json!({"n": "count", "u": "count", "v": -1})),
        ),
        case("traffic: an empty pack", Traffic, &json!([])),
        case(
            "traffic: a record, not a pack",
            Traffic,
            &json!({"bn": "tc-eroilor-e/", "bt": BT, "n": "count", "u": "count", "v": 12}),
        ),
        case(
            "traffic: base fields only",
            Traffic,
            &json!([{"bn": "tc-eroilor-e/", "bt": BT}]),
        ),
        case(
            "traffic: a field that must be understood",
            Traffic,
            &one(json!({"n": "count", "u": "count", "v": 12, "x_": 1})),
        ),
        case(
            "traffic: SenML version 11",
            Traffic,
            &one(json!({"bver": 11, "n": "count", "u": "count", "v": 12})),
        ),
        case(
            "traffic: bt as a string",
            Traffic,
            &one(json!({"bt": "1795341300", "n": "count", "u": "count", "v": 12})),
        ),
        case(
            "traffic: a first record without a name",
            Traffic,
            &json!([{"bt": BT, "u": "count", "v": 12}]),
        ),
        case(
            "traffic: the sensor in bn and in n",
            Traffic,
            &one(json!({"n": "tc-eroilor-e/count", "u": "count", "v": 12})),
        ),
        case(
            "traffic: a record that is not an object",
            Traffic,
            &json!([{"bn": "tc-eroilor-e/", "bt": BT, "n": "count", "u": "count", "v": 12}, 13]),
        ),
        // HTTP readings.
        case(
            "readings: a name without its sensor",
            Readings,
            &json!([{"bt": BT, "n": "count", "u": "count", "v": 12}]),
        ),
        case(
            "readings: a base name holding the metric, then n",
            Readings,
            &json!([{"bn": "tc-eroilor-e/count", "bt": BT, "n": "speed", "u": "km/h", "v": 40}]),
        ),
        case(
            "readings: a speed of a million km/h",
            Readings,
            &one(json!({"n": "speed", "u": "km/h", "v": 1_000_000})),
        ),
        case(
            "readings: occupancy without a unit but a base unit of count",
            Readings,
            &one(json!({"bu": "count", "n": "occupancy", "v": 10})),
        ),
        case(
            "readings: two values in one record",
            Readings,
            &one(json!({"n": "count", "v": 12, "vb": true})),
        ),
    ]
}

/// Refused by the parser, accepted by the schema: what JSON Schema cannot express.
fn parser_only() -> Vec<Case> {
    let c = citizen();
    let u = utility();
    let point = |lon: f64, lat: f64| json!({"type": "Point", "coordinates": [lon, lat]});
    let mut oversized = c.clone();
    oversized["properties"]["photo"] = json!("A".repeat(300 * 1024));
    vec![
        // Latitude first in Brașov: 45.65 and 25.59 are both valid degrees either way round; only
        // the city's boundary shows that [45.6515, 25.5858] (Iraq) is not in Brașov.
        case(
            "citizen: latitude first",
            Citizen,
            &set(&c, "/geometry", point(45.6515, 25.5858)),
        ),
        // The city decides its categories (categories.toml), not the protocol.
        case(
            "citizen: a category Brașov does not have",
            Citizen,
            &set(&c, "/properties/category", json!("dragon")),
        ),
        // The city's boundary is data, not a schema.
        case(
            "citizen: a place in Bucharest",
            Citizen,
            &set(&c, "/geometry", point(26.1025, 44.4268)),
        ),
        // "Not in the future" depends on the moment of reception.
        case(
            "citizen: reported_at 30 minutes ahead",
            Citizen,
            &set(
                &c,
                "/properties/reported_at",
                json!("2026-11-22T12:30:00+02:00"),
            ),
        ),
        // JSON Schema counts characters; the parser counts UTF-8 bytes (200 here).
        case(
            "citizen: id of 100 'ă'",
            Citizen,
            &set(&c, "/properties/id", json!("ă".repeat(100))),
        ),
        // JSON Schema does not see bytes: the payload is over 256 KiB.
        case("citizen: a payload over 256 KiB", Citizen, &oversized),
        case(
            "utility: a category Brașov does not have",
            Utility,
            &set(&u, "/properties/category", json!("volcano")),
        ),
        case(
            "utility: a fault starting tomorrow",
            Utility,
            &set(
                &u,
                "/properties/starts_at",
                json!("2026-11-23T07:40:00+02:00"),
            ),
        ),
        case(
            "utility: planned works more than 366 days ahead",
            Utility,
            &set(
                &set(&u, "/properties/kind", json!("planned_works")),
                "/properties/starts_at",
                json!("2028-01-10T08:00:00+02:00"),
            ),
        ),
        // The topic names the sensor; the schema does not see the topic.
        case(
            "traffic: another sensor's name on this topic",
            Traffic,
            &json!([{"bt": BT, "n": "tc-eroilor-w/count", "u": "count", "v": 12}]),
        ),
        // Sensors are the city's data.
        case(
            "readings: a sensor Brașov does not have",
            Readings,
            &json!([{"bn": "tc-nowhere/", "bt": BT, "n": "count", "u": "count", "v": 12}]),
        ),
        // The clock.
        case(
            "traffic: an hour in the future",
            Traffic,
            &json!([{"bn": "tc-eroilor-e/", "bt": BT + 7200, "n": "count", "u": "count", "v": 12}]),
        ),
        // A relative time (below 2^28 s) 2e9 s before now: before 1970.
        case(
            "traffic: a relative time before 1970",
            Traffic,
            &json!([{"bn": "tc-eroilor-e/", "t": -2.0e9, "n": "count", "u": "count", "v": 12}]),
        ),
        // The name is bn + n with bn from an earlier record: "tc-eroilor-e/tc-eroilor-e/count".
        case(
            "traffic: bn and n joined across records",
            Traffic,
            &json!([
                {"bn": "tc-eroilor-e/", "bt": BT},
                {"n": "tc-eroilor-e/count", "u": "count", "v": 12}
            ]),
        ),
        // The unit of the count comes from the first record's bu.
        case(
            "traffic: a base unit from an earlier record",
            Traffic,
            &json!([
                {"bn": "tc-eroilor-e/", "bt": BT, "bu": "km/h", "n": "speed", "v": 40},
                {"n": "count", "v": 12}
            ]),
        ),
        // 100 + 5 > 100 %: with a base value in the pack, ranges are left to the parser.
        case(
            "traffic: occupancy over 100 % once bv is added",
            Traffic,
            &one(json!({"bv": 100, "n": "occupancy", "u": "%", "v": 5})),
        ),
        case(
            "traffic: two SenML versions in one pack",
            Traffic,
            &json!([
                {"bver": 10, "bn": "tc-eroilor-e/", "bt": BT, "n": "count", "u": "count", "v": 12},
                {"bver": 5, "n": "speed", "u": "km/h", "v": 40}
            ]),
        ),
        // JSON Schema sees the parsed object, where a repeated label is gone.
        raw(
            "traffic: a label twice in one record",
            Traffic,
            r#"[{"bn": "tc-eroilor-e/", "bt": 1795341300, "n": "count", "v": 12, "v": 13}]"#,
        ),
        // JSON Schema's "integer" is any number with no fractional part; the parser wants an
        // integer literal.
        case(
            "traffic: bver written 10.0",
            Traffic,
            &one(json!({"bver": 10.0, "n": "count", "u": "count", "v": 12})),
        ),
    ]
}

/// Refused by the schema, accepted by the parser: the schema follows the RFCs (or asks for the
/// one sane way of writing a name), the parser is lenient. Senders should follow the schema.
fn schema_only() -> Vec<Case> {
    let c = citizen();
    vec![
        // RFC 3339 §5.6 writes "T"; chrono also reads the space its note allows.
        case(
            "citizen: a space instead of 'T'",
            Citizen,
            &set(
                &c,
                "/properties/reported_at",
                json!("2026-11-22 11:40:00+02:00"),
            ),
        ),
        // The name split inside the metric: "tc-eroilor-e/c" + "ount".
        case(
            "traffic: a name split inside the metric",
            Traffic,
            &json!([{"bn": "tc-eroilor-e/c", "bt": BT, "n": "ount", "u": "count", "v": 12}]),
        ),
        // The API reads a FeatureCollection without features as an empty one.
        case(
            "batch: no features",
            Batch,
            &json!({"type": "FeatureCollection"}),
        ),
        case(
            "batch: features not an array",
            Batch,
            &json!({"type": "FeatureCollection", "features": {"0": utility()}}),
        ),
    ]
}

#[test]
fn invalid_documents_are_refused_by_schema_and_parser() {
    let mut failures = Vec::new();
    for c in invalid() {
        let schema = c.source.schema_errors(&c.payload);
        let parser = c.source.parse(&c.payload);
        if schema.is_empty() {
            failures.push(format!("{}: the schema accepts it", c.name));
        }
        if parser.is_ok() {
            failures.push(format!("{}: the parser accepts it", c.name));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn what_only_the_parser_refuses() {
    let mut failures = Vec::new();
    for c in parser_only() {
        let schema = c.source.schema_errors(&c.payload);
        if !schema.is_empty() {
            failures.push(format!(
                "{}: the schema refuses it too ({schema:?}): move it to invalid()",
                c.name
            ));
        }
        if c.source.parse(&c.payload).is_ok() {
            failures.push(format!("{}: the parser accepts it", c.name));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn what_only_the_schema_refuses() {
    let mut failures = Vec::new();
    for c in schema_only() {
        if c.source.schema_errors(&c.payload).is_empty() {
            failures.push(format!("{}: the schema accepts it", c.name));
        }
        if let Err(e) = c.source.parse(&c.payload) {
            failures.push(format!(
                "{}: the parser refuses it too ({e}): move it to invalid()",
                c.name
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

// ---------------------------------------------------------------------------------------------
// CAP: the official XSD and Dispecer's extra rules

/// The example alert, as an Update or Cancel names it.
const REFERENCES: &str = "<references>dispecerat@deer-brasov.example,deer-bv-2026-11-0042,\
                          2026-11-20T09:00:00+02:00</references>";

fn cap_example() -> String {
    String::from_utf8(read("examples/cap-planned-power-cut.xml")).expect("UTF-8")
}

/// `Some(valid)` from `xmllint --noout --nonet --schema docs/schemas/CAP-v1.2.xsd`, or `None`
/// when xmllint is not installed.
fn xmllint(name: &str, doc: &str) -> Option<bool> {
    let dir = std::env::temp_dir().join(format!("dispecer-docs-cap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let file = dir.join(format!("{}.xml", name.replace([' ', ':', '/'], "-")));
    std::fs::write(&file, doc).expect("write a temporary file");
    let output = Command::new("xmllint")
        .arg("--noout")
        .arg("--nonet")
        .arg("--schema")
        .arg(docs().join("schemas/CAP-v1.2.xsd"))
        .arg(&file)
        .output();
    std::fs::remove_file(&file).ok();
    let output = output.ok()?;
    Some(output.status.success())
}

#[test]
fn the_cap_example_is_valid_for_the_official_xsd_and_for_dispecer() {
    let doc = cap_example();
    let event = inbound::cap_event(doc.as_bytes(), "deer-brasov", city(), now())
        .unwrap_or_else(|e| panic!("the CAP example is refused: {e}"));
    assert_eq!(event.kind, EventKind::Notice);
    assert_eq!(event.category.as_str(), "power_outage");
    assert!(
        in_district(event.location, "racadau"),
        "{:?}",
        event.location
    );
    assert!(event.occurred_at > now(), "the onset, announced ahead");
    // A later Update or Cancel that names the alert follows the same incident.
    for (msg_type, kind) in [
        ("Update", EventKind::Notice),
        ("Cancel", EventKind::Restored),
    ] {
        let later = doc
            .replacen("deer-bv-2026-11-0042", "deer-bv-2026-11-0043", 1)
            .replacen(
                "<msgType>Alert</msgType>\n  <scope>Public</scope>",
                &format!("<msgType>{msg_type}</msgType>\n  <scope>Public</scope>\n  {REFERENCES}"),
                1,
            );
        let follow = inbound::cap_event(later.as_bytes(), "deer-brasov", city(), now())
            .unwrap_or_else(|e| panic!("{msg_type}: refused: {e}"));
        assert_eq!(
            (follow.kind, &follow.subject),
            (kind, &event.subject),
            "{msg_type}"
        );
        if let Some(valid) = xmllint(msg_type, &later) {
            assert!(valid, "xmllint refuses the {msg_type}");
        }
    }
    match xmllint("example", &doc) {
        Some(valid) => assert!(valid, "xmllint refuses the CAP example"),
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "xmllint is missing on CI (scripts/deps.sh installs libxml2-utils)"
            );
            eprintln!("xmllint not found: XSD check skipped");
        }
    }
}

#[test]
fn dispecers_cap_rules_beyond_the_xsd() {
    let doc = cap_example();
    let swap = |from: &str, to: &str| {
        assert!(doc.contains(from), "the example has {from:?}");
        doc.replacen(from, to, 1)
    };
    // (name, document, what the official XSD says)
    let cases = [
        (
            "trailing Z",
            swap("2026-11-20T09:00:00+02:00", "2026-11-20T07:00:00Z"),
            false,
        ),
        (
            "fractional seconds",
            swap("2026-11-20T09:00:00+02:00", "2026-11-20T09:00:00.5+02:00"),
            false,
        ),
        (
            "status Exercise",
            swap("<status>Actual</status>", "<status>Exercise</status>"),
            true,
        ),
        (
            "status Test",
            swap("<status>Actual</status>", "<status>Test</status>"),
            true,
        ),
        (
            "an Update without references",
            swap("<msgType>Alert</msgType>", "<msgType>Update</msgType>"),
            true,
        ),
        (
            "a Cancel without references",
            swap("<msgType>Alert</msgType>", "<msgType>Cancel</msgType>"),
            true,
        ),
        (
            "an Ack",
            swap(
                "<msgType>Alert</msgType>\n  <scope>Public</scope>",
                &format!("<msgType>Ack</msgType>\n  <scope>Public</scope>\n  {REFERENCES}"),
            ),
            true,
        ),
        (
            "a category Brașov does not have",
            swap("<value>power_outage</value>", "<value>volcano</value>"),
            true,
        ),
        (
            "the polygon longitude first",
            swap(
                "45.6360,25.6070 45.6360,25.6160 45.6405,25.6160 45.6405,25.6070 45.6360,25.6070",
                "25.6070,45.6360 25.6160,45.6360 25.6160,45.6405 25.6070,45.6405 25.6070,45.6360",
            ),
            true,
        ),
        (
            "an open polygon",
            swap(
                "45.6405,25.6070 45.6360,25.6070</polygon>",
                "45.6405,25.6070</polygon>",
            ),
            true,
        ),
        (
            "CAP 1.1",
            swap(
                "urn:oasis:names:tc:emergency:cap:1.2",
                "urn:oasis:names:tc:emergency:cap:1.1",
            ),
            false,
        ),
    ];
    let lint = xmllint("probe", &doc).is_some();
    for (name, doc, xsd) in &cases {
        if let Ok(event) = inbound::cap_event(doc.as_bytes(), "deer-brasov", city(), now()) {
            panic!("{name}: accepted by Dispecer: {event:?}");
        }
        if lint {
            assert_eq!(
                xmllint(name, doc),
                Some(*xsd),
                "{name}: the official XSD's verdict changed"
            );
        }
    }
    // A DTD is refused before anything else (never handed to xmllint).
    let dtd = doc.replacen(
        "<alert ",
        "<!DOCTYPE alert [<!ENTITY power \"power_outage\">]>\n<alert ",
        1,
    );
    let e = inbound::cap_event(dtd.as_bytes(), "deer-brasov", city(), now())
        .expect_err("a DOCTYPE is refused");
    assert!(e.to_string().contains("DOCTYPE"), "{e}");
}
