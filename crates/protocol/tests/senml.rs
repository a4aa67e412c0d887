//! SenML JSON packs (RFC 8428): the RFC's examples of §5.1 and their resolved forms, base values
//! and sums, relative times, Dispecer's traffic-counter pack, and every refusal.
//!
//! Tables: one pack per row, and what must come of it (these resolved records, or a refusal of
//! this `SenmlError` variant whose text contains these words: the record index and the field).

use std::panic::{catch_unwind, AssertUnwindSafe};

use chrono::{DateTime, Duration, Utc};

use protocol::senml::{
    parse_json, Record, SenmlError, SenmlValue, MAX_NAME_LEN, MAX_PAYLOAD, MAX_RECORDS,
    MAX_UNIT_LEN,
};

/// When every pack of the tables is received.
fn now() -> DateTime<Utc> {
    utc("2026-11-22T09:00:00Z")
}

/// An RFC 3339 instant, for expectations.
fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is a valid test instant: {e}"))
        .with_timezone(&Utc)
}

/// A resolved record with a value, no sum and no update time.
fn rec(name: &str, unit: Option<&str>, value: SenmlValue, time: DateTime<Utc>) -> Record {
    Record {
        index: 0,
        name: name.to_owned(),
        unit: unit.map(str::to_owned),
        value: Some(value),
        sum: None,
        time,
        update_time: None,
    }
}

/// A resolved record with a number.
fn num(name: &str, unit: Option<&str>, v: f64, time: DateTime<Utc>) -> Record {
    rec(name, unit, SenmlValue::Number(v), time)
}

/// `record` with a sum.
fn with_sum(record: Record, sum: f64) -> Record {
    Record {
        sum: Some(sum),
        ..record
    }
}

/// One accepted row: the pack and its resolved records.
struct Accepted {
    name: &'static str,
    pack: Vec<u8>,
    records: Vec<Record>,
}

fn accepted(name: &'static str, pack: impl Into<Vec<u8>>, records: Vec<Record>) -> Accepted {
    Accepted {
        name,
        pack: pack.into(),
        records,
    }
}

/// Parses every row at [`now`] and fails once, listing every row that went wrong.
fn run_accepted(rows: Vec<Accepted>) {
    let total = rows.len();
    let mut failures = Vec::new();
    for row in rows {
        match catch_unwind(AssertUnwindSafe(|| parse_json(&row.pack, now()))) {
            Err(_) => failures.push(format!("{}: parsing panicked", row.name)),
            Ok(Err(e)) => failures.push(format!("{}: refused with {e:?} ({e})", row.name)),
            Ok(Ok(records)) if records.len() != row.records.len() => failures.push(format!(
                "{}: {} records, expected {}: {records:#?}",
                row.name,
                records.len(),
                row.records.len()
            )),
            Ok(Ok(records)) => {
                for (i, (got, want)) in records.iter().zip(&row.records).enumerate() {
                    // The tables do not spell out each record's place in the pack; a test of
                    // its own checks it.
                    let got = &Record {
                        index: 0,
                        ..got.clone()
                    };
                    if got != want {
                        failures.push(format!(
                            "{}: record {i} is\n    {got:?}\n  expected\n    {want:?}",
                            row.name
                        ));
                    }
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

/// One refused row: the pack, the variant expected, and words its text must contain.
struct Refused {
    name: &'static str,
    pack: Vec<u8>,
    is: fn(&SenmlError) -> bool,
    pattern: &'static str,
    words: Vec<String>,
}

/// A row whose pack must be refused with a `SenmlError` matching the pattern, whose text contains
/// every word.
macro_rules! refused {
    ($name:expr, $pack:expr, $pattern:pat $(if $guard:expr)?, [$($word:expr),+ $(,)?]) => {
        Refused {
            name: $name,
            pack: Vec::from($pack),
            is: |e| matches!(e, $pattern $(if $guard)?),
            pattern: stringify!($pattern $(if $guard)?),
            words: vec![$(String::from($word)),+],
        }
    };
}

fn run_refused(rows: Vec<Refused>) {
    let total = rows.len();
    let mut failures = Vec::new();
    for row in rows {
        match catch_unwind(AssertUnwindSafe(|| parse_json(&row.pack, now()))) {
            Err(_) => failures.push(format!("{}: parsing panicked", row.name)),
            Ok(Ok(records)) => failures.push(format!(
                "{}: accepted as {records:?}, expected {}",
                row.name, row.pattern
            )),
            Ok(Err(e)) => {
                let text = e.to_string();
                if !(row.is)(&e) {
                    failures.push(format!(
                        "{}: refused with {e:?} ({text}), expected {}",
                        row.name, row.pattern
                    ));
                }
                for word in row.words.iter().filter(|w| !text.contains(w.as_str())) {
                    failures.push(format!(
                        "{}: the text {text:?} does not contain {word:?}",
                        row.name
                    ));
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

// ---- RFC 8428 §5.1 -----------------------------------------------------------------------------

const EX_5_1_1: &str = r#"[
  {"n":"urn:dev:ow:10e2073a01080063","u":"Cel","v":23.1}
]"#;

const EX_5_1_2_NOW: &str = r#"[
  {"bn":"urn:dev:ow:10e2073a01080063:","n":"voltage","u":"V","v":120.1},
  {"n":"current","u":"A","v":1.2}
]"#;

// As printed in the RFC, base name "...0108006:" included.
const EX_5_1_2_TIMED: &str = r#"[
  {"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,
   "bu":"A","bver":5,
   "n":"voltage","u":"V","v":120.1},
  {"n":"current","t":-5,"v":1.2},
  {"n":"current","t":-4,"v":1.3},
  {"n":"current","t":-3,"v":1.4},
  {"n":"current","t":-2,"v":1.5},
  {"n":"current","t":-1,"v":1.6},
  {"n":"current","v":1.7}
]"#;

// The SensML stream of §5.1.2, as far as the RFC prints it, closed.
const EX_5_1_2_STREAM: &str = r#"[
  {"bn":"urn:dev:ow:10e2073a01080063","bt":1.320067464e+09,
   "bu":"%RH","v":21.2},
  {"t":10,"v":21.3},
  {"t":20,"v":21.4},
  {"t":30,"v":21.4},
  {"t":40,"v":21.5},
  {"t":50,"v":21.5},
  {"t":60,"v":21.5},
  {"t":70,"v":21.6},
  {"t":80,"v":21.7}
]"#;

const EX_5_1_3: &str = r#"[
  {"bn":"urn:dev:ow:10e2073a01080063","bt":1.320067464e+09,
   "bu":"%RH","v":20},
  {"u":"lon","v":24.30621},
  {"u":"lat","v":60.07965},
  {"t":60,"v":20.3},
  {"u":"lon","t":60,"v":24.30622},
  {"u":"lat","t":60,"v":60.07965},
  {"t":120,"v":20.7},
  {"u":"lon","t":120,"v":24.30623},
  {"u":"lat","t":120,"v":60.07966},
  {"u":"%EL","t":150,"v":98},
  {"t":180,"v":21.2},
  {"u":"lon","t":180,"v":24.30628},
  {"u":"lat","t":180,"v":60.07967}
]"#;

const EX_5_1_4: &str = r#"[
  {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067464e+09,
   "v":20},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067464e+09,
   "v":24.30621},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067464e+09,
   "v":60.07965},
  {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067524e+09,
   "v":20.3},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067524e+09,
   "v":24.30622},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067524e+09,
   "v":60.07965},
  {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067584e+09,
   "v":20.7},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067584e+09,
   "v":24.30623},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067584e+09,
   "v":60.07966},
  {"n":"urn:dev:ow:10e2073a01080063","u":"%EL","t":1.320067614e+09,
   "v":98},
  {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067644e+09,
   "v":21.2},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067644e+09,
   "v":24.30628},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067644e+09,
   "v":60.07967}
]"#;

const EX_5_1_5: &str = r#"[
  {"bn":"urn:dev:ow:10e2073a01080063:","n":"temp","u":"Cel","v":23.1},
  {"n":"label","vs":"Machine Room"},
  {"n":"open","vb":false},
  {"n":"nfc-reader","vd":"aGkgCg"}
]"#;

const EX_5_1_6: &str = r#"[
  {"bn":"2001:db8::2/","bt":1.320078429e+09,
   "n":"temperature","u":"Cel","v":25.2},
  {"n":"humidity","u":"%RH","v":30},
  {"bn":"2001:db8::1/","n":"temperature","u":"Cel","v":12.3},
  {"n":"humidity","u":"%RH","v":67}
]"#;

const EX_5_1_7_THERMOSTAT: &str = r#"[
  {"bn":"urn:dev:ow:10e2073a01080063:"},
  {"n":"temp","u":"Cel","v":23.1},
  {"n":"heat","u":"/","v":1},
  {"n":"fan","u":"/","v":0}
]"#;

const EX_5_1_7_LIGHTS_ON: &str = r#"[
  {"bt":1.320078429e+09,"bu":"/","n":"2001:db8::3","v":1},
  {"n":"2001:db8::4","v":1}
]"#;

const EX_5_1_7_LIGHTS_OFF: &str = r#"[
  {"bt":1.320078429e+09,"bu":"/","n":"2001:db8::3","v":0.5},
  {"n":"2001:db8::4","v":0.5},
  {"n":"2001:db8::3","t":0.1,"v":0},
  {"n":"2001:db8::4","t":0.1,"v":0}
]"#;

/// The resolved form of §5.1.3, as §5.1.4 prints it: (unit, time, value).
fn resolved_5_1_4() -> Vec<Record> {
    let dev = "urn:dev:ow:10e2073a01080063";
    [
        ("%RH", "2011-10-31T13:24:24Z", 20.0),
        ("lon", "2011-10-31T13:24:24Z", 24.30621),
        ("lat", "2011-10-31T13:24:24Z", 60.07965),
        ("%RH", "2011-10-31T13:25:24Z", 20.3),
        ("lon", "2011-10-31T13:25:24Z", 24.30622),
        ("lat", "2011-10-31T13:25:24Z", 60.07965),
        ("%RH", "2011-10-31T13:26:24Z", 20.7),
        ("lon", "2011-10-31T13:26:24Z", 24.30623),
        ("lat", "2011-10-31T13:26:24Z", 60.07966),
        ("%EL", "2011-10-31T13:26:54Z", 98.0),
        ("%RH", "2011-10-31T13:27:24Z", 21.2),
        ("lon", "2011-10-31T13:27:24Z", 24.30628),
        ("lat", "2011-10-31T13:27:24Z", 60.07967),
    ]
    .into_iter()
    .map(|(unit, time, v)| num(dev, Some(unit), v, utc(time)))
    .collect()
}

#[test]
fn rfc_8428_examples_resolve_as_the_rfc_says() {
    let dev = "urn:dev:ow:10e2073a01080063";
    let at_16 = utc("2010-06-08T18:01:16.001Z");
    let stream_start = utc("2011-10-31T13:24:24Z");
    let oct_31 = utc("2011-10-31T16:27:09Z");
    run_accepted(vec![
        accepted(
            "5.1.1 single datapoint, now",
            EX_5_1_1,
            vec![num(dev, Some("Cel"), 23.1, now())],
        ),
        accepted(
            "5.1.2 multiple datapoints, now",
            EX_5_1_2_NOW,
            vec![
                num(&format!("{dev}:voltage"), Some("V"), 120.1, now()),
                num(&format!("{dev}:current"), Some("A"), 1.2, now()),
            ],
        ),
        accepted(
            "5.1.2 multiple datapoints, Tue Jun 8 18:01:16.001 UTC 2010 and the 5 s before",
            EX_5_1_2_TIMED,
            {
                let dev = "urn:dev:ow:10e2073a0108006";
                let mut records = vec![num(&format!("{dev}:voltage"), Some("V"), 120.1, at_16)];
                for (t, v) in [
                    (-5, 1.2),
                    (-4, 1.3),
                    (-3, 1.4),
                    (-2, 1.5),
                    (-1, 1.6),
                    (0, 1.7),
                ] {
                    records.push(num(
                        &format!("{dev}:current"),
                        Some("A"),
                        v,
                        at_16 + Duration::seconds(t),
                    ));
                }
                records
            },
        ),
        accepted(
            "5.1.2 SensML stream, every 10 s from Mon Oct 31 13:24:24 UTC 2011",
            EX_5_1_2_STREAM,
            [21.2, 21.3, 21.4, 21.4, 21.5, 21.5, 21.5, 21.6, 21.7]
                .into_iter()
                .zip(0..)
                .map(|(v, i)| {
                    num(
                        dev,
                        Some("%RH"),
                        v,
                        stream_start + Duration::seconds(10 * i),
                    )
                })
                .collect(),
        ),
        accepted(
            "5.1.3 multiple measurements, resolved as in 5.1.4",
            EX_5_1_3,
            resolved_5_1_4(),
        ),
        accepted("5.1.4 resolved data", EX_5_1_4, resolved_5_1_4()),
        accepted(
            "5.1.5 multiple data types",
            EX_5_1_5,
            vec![
                num(&format!("{dev}:temp"), Some("Cel"), 23.1, now()),
                rec(
                    &format!("{dev}:label"),
                    None,
                    SenmlValue::String("Machine Room".into()),
                    now(),
                ),
                rec(&format!("{dev}:open"), None, SenmlValue::Bool(false), now()),
                rec(
                    &format!("{dev}:nfc-reader"),
                    None,
                    SenmlValue::Data("aGkgCg".into()),
                    now(),
                ),
            ],
        ),
        accepted(
            "5.1.6 collection of resources: the last record has bn of the 3rd, bt of the 1st",
            EX_5_1_6,
            vec![
                num("2001:db8::2/temperature", Some("Cel"), 25.2, oct_31),
                num("2001:db8::2/humidity", Some("%RH"), 30.0, oct_31),
                num("2001:db8::1/temperature", Some("Cel"), 12.3, oct_31),
                num("2001:db8::1/humidity", Some("%RH"), 67.0, oct_31),
            ],
        ),
        accepted(
            "5.1.7 setting an actuator: the base-name-only record resolves to nothing",
            EX_5_1_7_THERMOSTAT,
            vec![
                num(&format!("{dev}:temp"), Some("Cel"), 23.1, now()),
                num(&format!("{dev}:heat"), Some("/"), 1.0, now()),
                num(&format!("{dev}:fan"), Some("/"), 0.0, now()),
            ],
        ),
        accepted(
            "5.1.7 two lights on at one time",
            EX_5_1_7_LIGHTS_ON,
            vec![
                num("2001:db8::3", Some("/"), 1.0, oct_31),
                num("2001:db8::4", Some("/"), 1.0, oct_31),
            ],
        ),
        accepted(
            "5.1.7 two lights dimmed now, off 100 ms later",
            EX_5_1_7_LIGHTS_OFF,
            vec![
                num("2001:db8::3", Some("/"), 0.5, oct_31),
                num("2001:db8::4", Some("/"), 0.5, oct_31),
                num(
                    "2001:db8::3",
                    Some("/"),
                    0.0,
                    utc("2011-10-31T16:27:09.100Z"),
                ),
                num(
                    "2001:db8::4",
                    Some("/"),
                    0.0,
                    utc("2011-10-31T16:27:09.100Z"),
                ),
            ],
        ),
    ]);
}

#[test]
fn the_pack_of_5_1_3_and_its_resolved_form_of_5_1_4_are_the_same_records() {
    let packed = parse_json(EX_5_1_3.as_bytes(), now()).expect("5.1.3 is accepted");
    let resolved = parse_json(EX_5_1_4.as_bytes(), now()).expect("5.1.4 is accepted");
    assert_eq!(packed, resolved);
}

// ---- Dispecer's traffic counters ---------------------------------------------------------------

#[test]
fn a_traffic_counter_pack() {
    let at = utc("2026-11-18T11:06:40Z"); // Unix time 1795000000
    run_accepted(vec![accepted(
        "tc-eroilor-e: count, speed and occupancy",
        r#"[{"bn":"tc-eroilor-e/","bt":1795000000,"n":"count","u":"count","v":12},{"n":"speed","u":"km/h","v":43.2},{"n":"occupancy","u":"%","v":18.5}]"#,
        vec![
            num("tc-eroilor-e/count", Some("count"), 12.0, at),
            num("tc-eroilor-e/speed", Some("km/h"), 43.2, at),
            num("tc-eroilor-e/occupancy", Some("%"), 18.5, at),
        ],
    )]);
}

// ---- base fields -------------------------------------------------------------------------------

#[test]
fn base_fields_apply_until_changed() {
    let n = now();
    run_accepted(vec![
        accepted(
            "bv is added to v, bs to s",
            r#"[{"bn":"meter/","bv":1000,"bs":50,"n":"e","v":1.5,"s":2},{"n":"e","v":-3,"s":0.5}]"#,
            vec![
                with_sum(num("meter/e", None, 1001.5, n), 52.0),
                with_sum(num("meter/e", None, 997.0, n), 50.5),
            ],
        ),
        accepted(
            "a record with a sum and no value",
            r#"[{"n":"energy","u":"J","s":1200.5}]"#,
            vec![Record {
                index: 0,
                name: "energy".into(),
                unit: Some("J".into()),
                value: None,
                sum: Some(1200.5),
                time: n,
                update_time: None,
            }],
        ),
        accepted(
            "bs without s is the sum (RFC 8428 §4.5.4: a missing s counts as 0)",
            r#"[{"bs":7,"n":"a","v":1}]"#,
            vec![with_sum(num("a", None, 1.0, n), 7.0)],
        ),
        accepted(
            "bv does not touch vs, vb or vd, nor make a value for a sum-only record",
            r#"[{"bv":10,"n":"s","vs":"x"},{"n":"b","vb":true},{"n":"d","vd":"AQ"},{"n":"sum","s":1}]"#,
            vec![
                rec("s", None, SenmlValue::String("x".into()), n),
                rec("b", None, SenmlValue::Bool(true), n),
                rec("d", None, SenmlValue::Data("AQ".into()), n),
                Record {
                    index: 0,
                    name: "sum".into(),
                    unit: None,
                    value: None,
                    sum: Some(1.0),
                    time: n,
                    update_time: None,
                },
            ],
        ),
        accepted(
            "a later bv replaces the earlier one, also from a base-only record",
            r#"[{"bv":10,"n":"a","v":1},{"bv":-0.5},{"n":"a","v":1},{"bv":0,"n":"a","v":1}]"#,
            vec![
                num("a", None, 11.0, n),
                num("a", None, 0.5, n),
                num("a", None, 1.0, n),
            ],
        ),
        accepted(
            "u wins over bu; bu applies again on the next record",
            r#"[{"bu":"V","n":"a","v":1},{"n":"b","u":"A","v":2},{"n":"c","v":3},{"bu":"W","n":"d","v":4}]"#,
            vec![
                num("a", Some("V"), 1.0, n),
                num("b", Some("A"), 2.0, n),
                num("c", Some("V"), 3.0, n),
                num("d", Some("W"), 4.0, n),
            ],
        ),
        accepted(
            "bn without n is the whole name; bn is replaced, not appended",
            r#"[{"bn":"dev1","v":1},{"bn":"dev2/","n":"x","v":2},{"n":"y","v":3}]"#,
            vec![
                num("dev1", None, 1.0, n),
                num("dev2/x", None, 2.0, n),
                num("dev2/y", None, 3.0, n),
            ],
        ),
        accepted(
            "ut is kept; bver 10 and earlier versions are accepted",
            r#"[{"bver":10,"n":"a","v":1,"ut":60},{"bver":10,"n":"b","v":2}]"#,
            vec![
                Record {
                    update_time: Some(60.0),
                    ..num("a", None, 1.0, n)
                },
                num("b", None, 2.0, n),
            ],
        ),
        accepted(
            "bver 1",
            r#"[{"bver":1,"n":"a","v":1}]"#,
            vec![num("a", None, 1.0, n)],
        ),
        accepted(
            "unknown fields are ignored, whatever their type",
            r#"[{"n":"a","v":1,"l":null,"x":{"deep":[1,{"a":"b"}]},"_x":1,"b_x":true}]"#,
            vec![num("a", None, 1.0, n)],
        ),
        accepted(
            "every name character the RFC allows",
            r#"[{"bn":"Az09-:./_","n":"zA9_","v":1},{"bn":"","n":"9","v":2}]"#,
            vec![num("Az09-:./_zA9_", None, 1.0, n), num("9", None, 2.0, n)],
        ),
        accepted(
            "an empty vd is zero bytes; empty units are kept",
            r#"[{"n":"d","vd":"","u":""}]"#,
            vec![rec("d", Some(""), SenmlValue::Data(String::new()), n)],
        ),
        accepted(
            "integers, exponents and negative zero",
            r#"[{"n":"a","v":-0},{"n":"b","v":1E3},{"n":"c","v":18446744073709551615},{"n":"d","v":1e-400}]"#,
            vec![
                num("a", None, -0.0, n),
                num("b", None, 1000.0, n),
                num("c", None, 18_446_744_073_709_551_615.0, n),
                num("d", None, 0.0, n),
            ],
        ),
    ]);
}

// ---- times ------------------------------------------------------------------------------------

#[test]
fn times_below_two_to_the_28_are_relative_to_now() {
    let n = now();
    let at = |t: &str| num("a", None, 1.0, utc(t));
    run_accepted(vec![
        accepted(
            "no time is now",
            r#"[{"n":"a","v":1}]"#,
            vec![num("a", None, 1.0, n)],
        ),
        accepted(
            "t 0 is now",
            r#"[{"n":"a","v":1,"t":0}]"#,
            vec![at("2026-11-22T09:00:00Z")],
        ),
        accepted(
            "t -60 is a minute ago",
            r#"[{"n":"a","v":1,"t":-60}]"#,
            vec![at("2026-11-22T08:59:00Z")],
        ),
        accepted(
            "bt -10 + t -5 is 15 s ago",
            r#"[{"bt":-10,"n":"a","v":1,"t":-5}]"#,
            vec![at("2026-11-22T08:59:45Z")],
        ),
        accepted(
            "fractions of relative seconds",
            r#"[{"n":"a","v":1,"t":-0.25},{"n":"a","v":1,"t":1.5e-3}]"#,
            vec![
                at("2026-11-22T08:59:59.750Z"),
                at("2026-11-22T09:00:00.0015Z"),
            ],
        ),
        accepted(
            "positive values below 2^28 are in the future",
            r#"[{"n":"a","v":1,"t":268435455}]"#,
            vec![num("a", None, 1.0, n + Duration::seconds(268_435_455))],
        ),
        accepted(
            "2^28 is Unix time",
            r#"[{"n":"a","v":1,"t":268435456}]"#,
            vec![at("1978-07-04T21:24:16Z")],
        ),
        accepted(
            "bt + t is classified after the addition",
            r#"[{"bt":268435000,"n":"a","v":1,"t":456},{"bt":268436000,"n":"a","v":1,"t":-1000}]"#,
            vec![
                at("1978-07-04T21:24:16Z"),
                num("a", None, 1.0, n + Duration::seconds(268_435_000)),
            ],
        ),
        accepted(
            "an absolute bt with relative offsets and fractions",
            r#"[{"bt":1795000000.25,"n":"a","v":1,"t":-60},{"n":"a","v":1,"t":0.5}]"#,
            vec![
                at("2026-11-18T11:05:40.250Z"),
                at("2026-11-18T11:06:40.750Z"),
            ],
        ),
        accepted(
            "below -2^28 is still relative (RFC 8428 §4.5.3: all values below 2^28 are)",
            r#"[{"n":"a","v":1,"t":-1e9}]"#,
            vec![num("a", None, 1.0, n - Duration::seconds(1_000_000_000))],
        ),
        accepted(
            "the last second of 9999",
            r#"[{"n":"a","v":1,"t":253402300799}]"#,
            vec![at("9999-12-31T23:59:59Z")],
        ),
        accepted(
            "times are rounded to the microsecond",
            r#"[{"n":"a","v":1,"t":1795000000.123456},{"n":"a","v":1,"t":1.0000006},{"n":"a","v":1,"t":-4e-7}]"#,
            vec![
                at("2026-11-18T11:06:40.123456Z"),
                at("2026-11-22T09:00:01.000001Z"),
                at("2026-11-22T09:00:00Z"),
            ],
        ),
    ]);
}

// ---- limits -----------------------------------------------------------------------------------

/// A pack of one record whose unknown field `pad` makes it exactly `size` bytes long.
fn padded_to(size: usize) -> Vec<u8> {
    let empty = r#"[{"n":"a","v":1,"pad":""}]"#;
    let missing = size - empty.len();
    let pack = format!(r#"[{{"n":"a","v":1,"pad":"{}"}}]"#, "x".repeat(missing));
    assert_eq!(pack.len(), size);
    pack.into_bytes()
}

/// A pack of `count` records.
fn records(count: usize) -> Vec<u8> {
    let mut pack = String::from("[");
    for i in 0..count {
        if i > 0 {
            pack.push(',');
        }
        pack.push_str(r#"{"n":"a","v":1}"#);
    }
    pack.push(']');
    pack.into_bytes()
}

#[test]
fn limits_are_inclusive() {
    let n = now();
    run_accepted(vec![
        accepted(
            "a payload of exactly MAX_PAYLOAD bytes",
            padded_to(MAX_PAYLOAD),
            vec![num("a", None, 1.0, n)],
        ),
        accepted(
            "exactly MAX_RECORDS records",
            records(MAX_RECORDS),
            vec![num("a", None, 1.0, n); MAX_RECORDS],
        ),
        accepted(
            "a name of MAX_NAME_LEN bytes",
            format!(
                r#"[{{"bn":"{}","n":"b","v":1}}]"#,
                "a".repeat(MAX_NAME_LEN - 1)
            ),
            vec![num(
                &format!("{}b", "a".repeat(MAX_NAME_LEN - 1)),
                None,
                1.0,
                n,
            )],
        ),
        accepted(
            "a unit of MAX_UNIT_LEN bytes",
            format!(r#"[{{"n":"a","u":"{}","v":1}}]"#, "u".repeat(MAX_UNIT_LEN)),
            vec![num("a", Some(&"u".repeat(MAX_UNIT_LEN)), 1.0, n)],
        ),
    ]);
}

// ---- refusals ---------------------------------------------------------------------------------

#[test]
fn every_refusal_names_the_record_and_the_problem() {
    use SenmlError as E;
    run_refused(vec![
        // ---- the payload as a whole ------------------------------------------------------------
        refused!(
            "one byte more than MAX_PAYLOAD",
            padded_to(MAX_PAYLOAD + 1),
            E::TooLarge { size, limit } if *size == MAX_PAYLOAD + 1 && *limit == MAX_PAYLOAD,
            ["1048577 bytes", "1048576"]
        ),
        refused!(
            "not UTF-8",
            &b"[{\"n\":\"a\xff\",\"v\":1}]"[..],
            E::NotUtf8(_),
            ["not UTF-8"]
        ),
        refused!("an empty payload", "", E::NotJson(_), ["not valid JSON"]),
        refused!("not JSON", "hello", E::NotJson(_), ["not valid JSON"]),
        refused!(
            "text after the pack",
            r#"[{"n":"a","v":1}] x"#,
            E::NotJson(_),
            ["not valid JSON", "trailing"]
        ),
        refused!(
            "a byte-order mark",
            "\u{feff}[{\"n\":\"a\",\"v\":1}]",
            E::NotJson(_),
            ["not valid JSON"]
        ),
        refused!(
            "an object instead of an array",
            r#"{"n":"a","v":1}"#,
            E::NotAPack("an object"),
            ["is an object", "not a SenML pack"]
        ),
        refused!("a number", "42", E::NotAPack("a number"), ["is a number"]),
        refused!(
            "a string",
            r#""[]""#,
            E::NotAPack("a string"),
            ["is a string"]
        ),
        refused!("null", "null", E::NotAPack("null"), ["is null"]),
        refused!(
            "a boolean",
            "true",
            E::NotAPack("a boolean"),
            ["is a boolean"]
        ),
        refused!("an empty pack", "[]", E::Empty, ["empty"]),
        refused!(
            "only base fields",
            r#"[{"bn":"a/","bt":1795000000},{"bu":"V"}]"#,
            E::OnlyBaseFields,
            ["no measurement", "base fields"]
        ),
        refused!(
            "one record more than MAX_RECORDS",
            records(MAX_RECORDS + 1),
            E::TooManyRecords { limit: MAX_RECORDS },
            ["more than 10000 records"]
        ),
        // ---- JSON inside a record ----------------------------------------------------------------
        refused!(
            "a number too large for a double",
            r#"[{"n":"a","v":1e400}]"#,
            E::InvalidJson { index: 0, field: Some(f), .. } if f == "v",
            ["record 0", "field \"v\"", "number out of range"]
        ),
        refused!(
            "a negative number too large, in a later record",
            r#"[{"n":"a","v":1},{"n":"b","v":1},{"n":"a","bt":-1e400,"v":1}]"#,
            E::InvalidJson { index: 2, field: Some(f), .. } if f == "bt",
            ["record 2", "field \"bt\"", "out of range"]
        ),
        refused!(
            "a huge number in an unknown field is refused too",
            r#"[{"n":"a","v":1,"x":[1e999]}]"#,
            E::InvalidJson { index: 0, field: Some(f), .. } if f == "x",
            ["record 0", "field \"x\"", "out of range"]
        ),
        refused!(
            "NaN is not JSON",
            r#"[{"n":"a","v":NaN}]"#,
            E::InvalidJson { index: 0, field: Some(f), .. } if f == "v",
            ["record 0", "field \"v\"", "not valid JSON"]
        ),
        refused!(
            "a truncated pack",
            r#"[{"n":"a","v":1},{"n":"b","#,
            E::InvalidJson { index: 1, .. },
            ["record 1", "not valid JSON"]
        ),
        refused!(
            "a lone surrogate",
            r#"[{"n":"a","v":1,"vs":"\ud800"}]"#,
            E::InvalidJson { index: 0, field: Some(f), .. } if f == "vs",
            ["record 0", "field \"vs\""]
        ),
        refused!(
            "a record that is a number",
            r#"[{"n":"a","v":1},5]"#,
            E::NotAnObject {
                index: 1,
                found: "a number"
            },
            ["record 1 is a number", "not a JSON object"]
        ),
        refused!(
            "a record that is an array",
            r#"[[{"n":"a","v":1}]]"#,
            E::NotAnObject {
                index: 0,
                found: "an array"
            },
            ["record 0 is an array"]
        ),
        refused!(
            "a record that is null",
            r#"[{"n":"a","v":1},{"n":"b","v":1},null]"#,
            E::NotAnObject {
                index: 2,
                found: "null"
            },
            ["record 2 is null"]
        ),
        refused!(
            "a record that is a string",
            r#"["a"]"#,
            E::NotAnObject {
                index: 0,
                found: "a string"
            },
            ["record 0 is a string"]
        ),
        refused!(
            "a field twice",
            r#"[{"n":"a","v":1},{"n":"b","v":1,"v":2}]"#,
            E::DuplicateField { index: 1, field } if field == "v",
            ["record 1", "field \"v\"", "more than once"]
        ),
        // ---- must understand, types, version ----------------------------------------------------
        refused!(
            "a must-understand field",
            r#"[{"n":"a","v":1},{"n":"b","v":2,"foo_":1}]"#,
            E::MustUnderstand { index: 1, field } if field == "foo_",
            ["record 1", "field \"foo_\"", "must be understood"]
        ),
        refused!(
            "a must-understand field in a base-only record",
            r#"[{"bn":"a/","bx_":"y"},{"n":"b","v":2}]"#,
            E::MustUnderstand { index: 0, field } if field == "bx_",
            ["record 0", "\"bx_\""]
        ),
        refused!(
            "v a string",
            r#"[{"n":"a","v":"12"}]"#,
            E::WrongType {
                index: 0,
                field: "v",
                expected: "a number",
                found: "a string"
            },
            ["record 0", "field \"v\" must be a number, not a string"]
        ),
        refused!(
            "vs a number",
            r#"[{"n":"a","vs":12}]"#,
            E::WrongType {
                index: 0,
                field: "vs",
                ..
            },
            ["record 0", "field \"vs\" must be a string, not a number"]
        ),
        refused!(
            "vb a string",
            r#"[{"n":"a","vb":"true"}]"#,
            E::WrongType {
                index: 0,
                field: "vb",
                ..
            },
            [
                "record 0",
                "field \"vb\" must be true or false, not a string"
            ]
        ),
        refused!(
            "vd a number",
            r#"[{"n":"a","vd":1}]"#,
            E::WrongType {
                index: 0,
                field: "vd",
                ..
            },
            ["record 0", "field \"vd\" must be a string"]
        ),
        refused!(
            "n a number",
            r#"[{"n":1,"v":1}]"#,
            E::WrongType {
                index: 0,
                field: "n",
                ..
            },
            ["record 0", "field \"n\" must be a string"]
        ),
        refused!(
            "bn an array",
            r#"[{"n":"a","v":1},{"bn":["a"],"n":"a","v":1}]"#,
            E::WrongType {
                index: 1,
                field: "bn",
                found: "an array",
                ..
            },
            ["record 1", "field \"bn\" must be a string, not an array"]
        ),
        refused!(
            "u a boolean",
            r#"[{"n":"a","u":true,"v":1}]"#,
            E::WrongType {
                index: 0,
                field: "u",
                ..
            },
            ["record 0", "field \"u\" must be a string, not a boolean"]
        ),
        refused!(
            "bu null",
            r#"[{"bu":null,"n":"a","v":1}]"#,
            E::WrongType {
                index: 0,
                field: "bu",
                found: "null",
                ..
            },
            ["record 0", "field \"bu\" must be a string, not null"]
        ),
        refused!(
            "t a string",
            r#"[{"n":"a","v":1,"t":"2026-11-22T09:00:00Z"}]"#,
            E::WrongType {
                index: 0,
                field: "t",
                ..
            },
            ["record 0", "field \"t\" must be a number"]
        ),
        refused!(
            "bt a string",
            r#"[{"bt":"1795000000","n":"a","v":1}]"#,
            E::WrongType {
                index: 0,
                field: "bt",
                ..
            },
            ["record 0", "field \"bt\" must be a number"]
        ),
        refused!(
            "ut an object",
            r#"[{"n":"a","v":1,"ut":{}}]"#,
            E::WrongType {
                index: 0,
                field: "ut",
                found: "an object",
                ..
            },
            ["record 0", "field \"ut\" must be a number, not an object"]
        ),
        refused!(
            "bv a string",
            r#"[{"bv":"1","n":"a","v":1}]"#,
            E::WrongType {
                index: 0,
                field: "bv",
                ..
            },
            ["record 0", "field \"bv\" must be a number"]
        ),
        refused!(
            "bs a boolean",
            r#"[{"bs":false,"n":"a","v":1}]"#,
            E::WrongType {
                index: 0,
                field: "bs",
                ..
            },
            ["record 0", "field \"bs\" must be a number"]
        ),
        refused!(
            "s a string",
            r#"[{"n":"a","s":"1"}]"#,
            E::WrongType {
                index: 0,
                field: "s",
                ..
            },
            ["record 0", "field \"s\" must be a number"]
        ),
        refused!(
            "bver a string",
            r#"[{"bver":"10","n":"a","v":1}]"#,
            E::WrongType {
                index: 0,
                field: "bver",
                ..
            },
            [
                "record 0",
                "field \"bver\" must be a positive integer, not a string"
            ]
        ),
        refused!(
            "bver a fraction",
            r#"[{"bver":10.5,"n":"a","v":1}]"#,
            E::InvalidField {
                index: 0,
                field: "bver",
                ..
            },
            ["record 0", "field \"bver\" is 10.5", "positive integer"]
        ),
        refused!(
            "bver written as a float",
            r#"[{"bver":10.0,"n":"a","v":1}]"#,
            E::InvalidField {
                index: 0,
                field: "bver",
                ..
            },
            ["record 0", "field \"bver\"", "positive integer"]
        ),
        refused!(
            "bver 0",
            r#"[{"bver":0,"n":"a","v":1}]"#,
            E::InvalidField {
                index: 0,
                field: "bver",
                ..
            },
            ["record 0", "field \"bver\" is 0", "positive integer"]
        ),
        refused!(
            "bver negative",
            r#"[{"bver":-10,"n":"a","v":1}]"#,
            E::InvalidField {
                index: 0,
                field: "bver",
                ..
            },
            ["record 0", "field \"bver\" is -10"]
        ),
        refused!(
            "bver 11",
            r#"[{"bver":11,"n":"a","v":1}]"#,
            E::UnsupportedVersion {
                index: 0,
                version: 11
            },
            ["record 0", "field \"bver\" is 11", "up to 10"]
        ),
        refused!(
            "bver 11 in a later, base-only record",
            r#"[{"n":"a","v":1},{"bver":11},{"n":"a","v":1}]"#,
            E::UnsupportedVersion {
                index: 1,
                version: 11
            },
            ["record 1", "\"bver\" is 11"]
        ),
        refused!(
            "a version change within the pack",
            r#"[{"bver":10,"n":"a","v":1},{"bver":5,"n":"b","v":1}]"#,
            E::MixedVersions {
                index: 1,
                version: 5,
                pack: 10
            },
            [
                "record 1",
                "field \"bver\" is 5",
                "version 10",
                "one version"
            ]
        ),
        refused!(
            "a version after records of the default version",
            r#"[{"n":"a","v":1},{"bver":9,"n":"b","v":1}]"#,
            E::MixedVersions {
                index: 1,
                version: 9,
                pack: 10
            },
            ["record 1", "\"bver\" is 9"]
        ),
        // ---- names -------------------------------------------------------------------------------
        refused!(
            "no name at all",
            r#"[{"v":1}]"#,
            E::InvalidName { index: 0, .. },
            ["record 0", "name \"\"", "is empty", "\"n\"", "\"bn\""]
        ),
        refused!(
            "empty n and bn",
            r#"[{"n":"a","v":1},{"bn":"","n":"","v":1}]"#,
            E::InvalidName { index: 1, .. },
            ["record 1", "is empty"]
        ),
        refused!(
            "a name starting with -",
            r#"[{"n":"-a","v":1}]"#,
            E::InvalidName { index: 0, name, .. } if name == "-a",
            ["record 0", "name \"-a\"", "must start with a letter or a digit"]
        ),
        refused!(
            "a name starting with / from n after an empty bn",
            r#"[{"bn":"","n":"/a","v":1}]"#,
            E::InvalidName { index: 0, .. },
            ["record 0", "starts with '/'"]
        ),
        refused!(
            "a space",
            r#"[{"bn":"dev/","n":"a b","v":1}]"#,
            E::InvalidName { index: 0, name, .. } if name == "dev/a b",
            ["record 0", "name \"dev/a b\"", "contains ' '", "A-Z a-z 0-9 - : . / _"]
        ),
        refused!(
            "a letter outside ASCII",
            r#"[{"n":"brașov","v":1}]"#,
            E::InvalidName { index: 0, .. },
            ["record 0", "contains 'ș'"]
        ),
        refused!(
            "a URL with brackets (an early draft's example)",
            r#"[{"bn":"http://[2001:db8::2]/","n":"temperature","u":"Cel","v":27.2}]"#,
            E::InvalidName { index: 0, .. },
            ["record 0", "contains '['"]
        ),
        refused!(
            "a bad base name shows in the record that uses it",
            r#"[{"bn":"a b/"},{"n":"x","v":1}]"#,
            E::InvalidName { index: 1, .. },
            ["record 1", "(\"bn\" + \"n\")", "contains ' '"]
        ),
        refused!(
            "a name longer than MAX_NAME_LEN",
            format!(
                r#"[{{"bn":"{}","n":"bc","v":1}}]"#,
                "a".repeat(MAX_NAME_LEN - 1)
            ),
            E::InvalidName { index: 0, .. },
            ["record 0", "1025 bytes", "at most 1024", "aaa…"]
        ),
        // ---- values ------------------------------------------------------------------------------
        refused!(
            "v and vs",
            r#"[{"n":"a","v":1},{"n":"b","v":1,"vs":"x"}]"#,
            E::SeveralValues {
                index: 1,
                first: "v",
                second: "vs"
            },
            ["record 1", "\"v\" and \"vs\"", "exactly one value"]
        ),
        refused!(
            "vb and vd, with a sum",
            r#"[{"n":"a","vb":true,"vd":"AQ","s":1}]"#,
            E::SeveralValues {
                index: 0,
                first: "vb",
                second: "vd"
            },
            ["record 0", "\"vb\" and \"vd\""]
        ),
        refused!(
            "no value and no sum",
            r#"[{"n":"a","v":1},{"n":"b","u":"V","t":-1}]"#,
            E::NoValue { index: 1 },
            ["record 1", "no value", "\"v\"", "\"s\""]
        ),
        refused!(
            "a name only, after a base-only record",
            r#"[{"bn":"dev/"},{"n":"x"}]"#,
            E::NoValue { index: 1 },
            ["record 1", "no value"]
        ),
        refused!(
            "an empty record",
            r#"[{"n":"a","v":1},{}]"#,
            E::NoValue { index: 1 },
            ["record 1", "no value"]
        ),
        refused!(
            "unknown fields only",
            r#"[{"foo":1}]"#,
            E::NoValue { index: 0 },
            ["record 0", "no value"]
        ),
        refused!(
            "bv + v overflows",
            r#"[{"bv":1e308,"n":"a","v":1e308}]"#,
            E::InvalidField {
                index: 0,
                field: "v",
                ..
            },
            [
                "record 0",
                "field \"v\"",
                "\"bv\" + \"v\" = inf",
                "not a finite number"
            ]
        ),
        refused!(
            "bs + s overflows",
            r#"[{"bs":-1e308,"n":"a","s":-1e308}]"#,
            E::InvalidField {
                index: 0,
                field: "s",
                ..
            },
            ["record 0", "field \"s\"", "-inf", "not a finite number"]
        ),
        refused!(
            "vd with padding",
            r#"[{"n":"a","vd":"aGk="}]"#,
            E::InvalidField {
                index: 0,
                field: "vd",
                ..
            },
            ["record 0", "field \"vd\"", "padding"]
        ),
        refused!(
            "vd in standard base64",
            r#"[{"n":"a","vd":"a+b/"}]"#,
            E::InvalidField {
                index: 0,
                field: "vd",
                ..
            },
            ["record 0", "field \"vd\" is not base64url"]
        ),
        refused!(
            "vd of an impossible length",
            r#"[{"n":"a","vd":"aGkgC"}]"#,
            E::InvalidField {
                index: 0,
                field: "vd",
                ..
            },
            ["record 0", "field \"vd\" is not base64url", "length"]
        ),
        refused!(
            "u longer than MAX_UNIT_LEN",
            format!(
                r#"[{{"n":"a","u":"{}","v":1}}]"#,
                "u".repeat(MAX_UNIT_LEN + 1)
            ),
            E::InvalidField {
                index: 0,
                field: "u",
                ..
            },
            ["record 0", "field \"u\"", "65 bytes", "at most 64"]
        ),
        refused!(
            "bu longer than MAX_UNIT_LEN",
            format!(
                r#"[{{"bu":"{}"}},{{"n":"a","v":1}}]"#,
                "u".repeat(MAX_UNIT_LEN + 1)
            ),
            E::InvalidField {
                index: 1,
                field: "bu",
                ..
            },
            ["record 1", "field \"bu\"", "65 bytes"]
        ),
        // ---- times -------------------------------------------------------------------------------
        refused!(
            "the year 10000",
            r#"[{"n":"a","v":1,"t":253402300800}]"#,
            E::TimeOutOfRange { index: 0, .. },
            [
                "record 0",
                "time (\"bt\" + \"t\")",
                "253402300800 seconds since 1970",
                "1970 to 9999"
            ]
        ),
        refused!(
            "an absurd base time",
            r#"[{"n":"a","v":1},{"bt":1e300,"n":"a","v":1}]"#,
            E::TimeOutOfRange { index: 1, .. },
            ["record 1", "1e300 seconds since 1970"]
        ),
        refused!(
            "bt + t overflows",
            r#"[{"bt":1.7e308,"n":"a","v":1,"t":1.7e308}]"#,
            E::TimeOutOfRange { index: 0, .. },
            ["record 0", "inf seconds"]
        ),
        refused!(
            "relative to before 1970",
            r#"[{"n":"a","v":1,"t":-2e9}]"#,
            E::TimeOutOfRange { index: 0, .. },
            ["record 0", "-2000000000 seconds from now", "1970 to 9999"]
        ),
        refused!(
            "relative, absurdly far back",
            r#"[{"n":"a","v":1,"t":-1e300}]"#,
            E::TimeOutOfRange { index: 0, .. },
            ["record 0", "-1e300 seconds from now"]
        ),
    ]);
}

#[test]
fn error_texts_read_as_dead_letter_reasons() {
    let reason = |pack: &str| {
        parse_json(pack.as_bytes(), now())
            .expect_err("the pack is refused")
            .to_string()
    };
    assert_eq!(
        reason(r#"[{"n":"a","v":1},{"n":"b","v":"1"}]"#),
        "record 1: field \"v\" must be a number, not a string"
    );
    assert_eq!(
        reason(r#"[{"n":"a","v":1e400}]"#),
        "record 0, field \"v\": not valid JSON: number out of range at line 1 column 19"
    );
    assert_eq!(
        reason(r#"[{"n":"a b","v":1}]"#),
        "record 0: name \"a b\" (\"bn\" + \"n\") contains ' ', and a name holds only A-Z a-z 0-9 - \
         : . / _"
    );
    let long_field = format!(r#"[{{"n":"a","v":1,"{}_":1}}]"#, "x".repeat(1000));
    assert!(
        reason(&long_field).len() < 200,
        "a sender's long label is cut in the reason: {}",
        reason(&long_field)
    );
}

/// Every prefix of every example is refused, never accepted half-read, and never panics.
#[test]
fn truncated_packs_are_refused_without_panicking() {
    for pack in [
        EX_5_1_2_TIMED,
        EX_5_1_5,
        EX_5_1_6,
        EX_5_1_7_THERMOSTAT,
        r#"[{"bn":"tc-eroilor-e/","bt":1795000000,"n":"count","u":"count","v":12}]"#,
    ] {
        let pack = pack.as_bytes();
        for end in 0..pack.len() {
            let prefix = &pack[..end];
            let outcome = catch_unwind(|| parse_json(prefix, now()));
            let Ok(outcome) = outcome else {
                panic!("{:?}: parsing panicked", String::from_utf8_lossy(prefix));
            };
            assert!(
                outcome.is_err(),
                "{:?} is accepted",
                String::from_utf8_lossy(prefix)
            );
        }
    }
}

// ---- record indexes ----------------------------------------------------------------------------

#[test]
fn each_record_knows_its_place_in_the_pack() {
    // The first record only sets base fields; the two measurements are records 1 and 2.
    let records = parse_json(
        br#"[{"bn":"a/","bt":1795000000},{"n":"x","v":1},{"n":"y","v":2}]"#,
        now(),
    )
    .expect("accepted");
    let indexes: Vec<usize> = records.iter().map(|r| r.index).collect();
    assert_eq!(indexes, [1, 2]);
}

// ---- CBOR (RFC 8428 §6) ------------------------------------------------------------------------

mod cbor {
    use ciborium::Value as C;

    use super::*;
    use protocol::senml::{is_cbor, parse_cbor};

    fn encode(v: &C) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::ser::into_writer(v, &mut out).expect("encodes");
        out
    }

    fn int(i: i64) -> C {
        C::Integer(i.into())
    }

    fn text(s: &str) -> C {
        C::Text(s.into())
    }

    /// Dispecer's traffic counter pack, with the integer labels of RFC 8428 table 4.
    fn traffic_pack() -> C {
        C::Array(vec![
            C::Map(vec![
                (int(-2), text("tc-eroilor-e/")),
                (int(-3), int(1_795_000_000)),
                (int(0), text("count")),
                (int(1), text("count")),
                (int(2), int(12)),
            ]),
            C::Map(vec![
                (int(0), text("speed")),
                (int(1), text("km/h")),
                (int(2), C::Float(43.2)),
            ]),
            C::Map(vec![
                (int(0), text("occupancy")),
                (int(1), text("%")),
                (int(2), C::Float(18.5)),
            ]),
        ])
    }

    #[test]
    fn a_cbor_pack_resolves_as_its_json_twin() {
        let bytes = encode(&traffic_pack());
        assert!(is_cbor(&bytes));
        assert!(!is_cbor(b"[{\"n\":\"x\",\"v\":1}]"));
        assert!(!is_cbor(b"  ["));
        let from_cbor = parse_cbor(&bytes, now()).expect("accepted");
        let from_json = parse_json(
            br#"[{"bn":"tc-eroilor-e/","bt":1795000000,"n":"count","u":"count","v":12},{"n":"speed","u":"km/h","v":43.2},{"n":"occupancy","u":"%","v":18.5}]"#,
            now(),
        )
        .expect("accepted");
        assert_eq!(from_cbor, from_json);
        assert_eq!(from_cbor.len(), 3);
    }

    #[test]
    fn data_values_are_byte_strings_kept_as_base64url() {
        let bytes = encode(&C::Array(vec![C::Map(vec![
            (int(0), text("blob")),
            (int(8), C::Bytes(vec![0xfb, 0xff, 0x01])),
        ])]));
        let records = parse_cbor(&bytes, now()).expect("accepted");
        assert_eq!(records[0].value, Some(SenmlValue::Data("-_8B".into())));
    }

    #[test]
    fn bad_cbor_is_refused_with_the_record_and_the_reason() {
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "not CBOR at all",
                vec![0x9f, 0xff, 0xff, 0x00],
                "not a SenML CBOR pack",
            ),
            (
                "truncated",
                encode(&traffic_pack())[..20].to_vec(),
                "not a SenML CBOR pack",
            ),
            (
                "a map, not an array",
                encode(&C::Map(vec![])),
                "not an array",
            ),
            (
                "a record that is a number",
                encode(&C::Array(vec![int(3)])),
                "record 0 is an integer",
            ),
            (
                "a label twice",
                encode(&C::Array(vec![C::Map(vec![
                    (int(0), text("x")),
                    (int(2), int(1)),
                    (int(2), int(2)),
                ])])),
                "record 0: field \"v\" appears more than once",
            ),
            (
                "an infinite value",
                encode(&C::Array(vec![C::Map(vec![
                    (int(0), text("x")),
                    (int(2), C::Float(f64::INFINITY)),
                ])])),
                "not a finite number",
            ),
            (
                "vd that is text",
                encode(&C::Array(vec![C::Map(vec![
                    (int(0), text("x")),
                    (int(8), text("AAAA")),
                ])])),
                "must be a byte string",
            ),
            (
                "a string value where a number goes",
                encode(&C::Array(vec![C::Map(vec![
                    (int(0), text("x")),
                    (int(2), text("fast")),
                ])])),
                "record 0: field \"v\" must be",
            ),
            ("empty pack", encode(&C::Array(vec![])), "empty"),
        ];
        for (name, bytes, words) in cases {
            match parse_cbor(&bytes, now()) {
                Ok(r) => panic!("{name}: accepted as {r:?}"),
                Err(e) => assert!(e.to_string().contains(words), "{name}: {e}"),
            }
        }
        let big = vec![0x80; MAX_PAYLOAD + 1];
        assert!(matches!(
            parse_cbor(&big, now()),
            Err(SenmlError::TooLarge { .. })
        ));
    }

    #[test]
    fn deeply_nested_cbor_is_refused_without_overflowing_the_stack() {
        let mut bytes = vec![0x81; 100_000];
        bytes.push(0x01);
        assert!(parse_cbor(&bytes, now()).is_err());
    }
}
