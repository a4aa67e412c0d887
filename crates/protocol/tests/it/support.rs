//! What the tables share: the city, a fixed clock, payload builders and the table runner.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use model::{City, Event};
use protocol::WireError;

/// The Brașov demo city, loaded once per test binary.
pub fn brasov() -> &'static City {
    static CITY: OnceLock<City> = OnceLock::new();
    CITY.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cities/brasov");
        city::load(&dir).unwrap_or_else(|e| panic!("the Brașov demo city must load: {e}"))
    })
}

/// When every payload of the tables is received: 2026-11-22 11:00 in Brașov.
pub fn received_at() -> DateTime<Utc> {
    utc("2026-11-22T09:00:00Z")
}

/// An RFC 3339 instant, for expectations.
pub fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is a valid test instant: {e}"))
        .with_timezone(&Utc)
}

/// The `properties` object of a Feature payload.
pub fn props(feature: &mut Value) -> &mut Map<String, Value> {
    feature
        .get_mut("properties")
        .and_then(Value::as_object_mut)
        .expect("the base payload has properties")
}

/// The top-level object of a payload.
pub fn object(feature: &mut Value) -> &mut Map<String, Value> {
    feature
        .as_object_mut()
        .expect("the base payload is an object")
}

/// `base`, changed by `edit`, as payload bytes.
pub fn edited(base: &Value, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = base.clone();
    edit(&mut v);
    serde_json::to_vec(&v).expect("a JSON value serialises")
}

/// `base` with an extra property `padding` that makes the payload exactly `size` bytes long.
pub fn padded_to(base: &Value, size: usize) -> Vec<u8> {
    let empty = edited(base, |v| {
        props(v).insert("padding".into(), Value::String(String::new()));
    });
    let missing = size
        .checked_sub(empty.len())
        .expect("the base payload is smaller than the size asked");
    let payload = edited(base, |v| {
        props(v).insert("padding".into(), Value::String("x".repeat(missing)));
    });
    assert_eq!(payload.len(), size);
    payload
}

/// What must come of a payload.
pub enum Expect {
    /// An event, checked by the function (which panics on a mismatch).
    Accepted(fn(&Event)),
    /// A refusal of the variant matched by `is`, whose text contains every one of `words`.
    Refused {
        is: fn(&WireError) -> bool,
        pattern: &'static str,
        words: Vec<String>,
    },
}

/// One row of a table.
pub struct Case {
    pub name: &'static str,
    pub payload: Vec<u8>,
    pub expect: Expect,
}

/// A row whose payload must give an event that passes `check`.
pub fn accepted(name: &'static str, payload: Vec<u8>, check: fn(&Event)) -> Case {
    Case {
        name,
        payload,
        expect: Expect::Accepted(check),
    }
}

/// A row whose payload must be refused with a `WireError` matching the pattern, whose text
/// contains every word.
macro_rules! refused {
    ($name:expr, $payload:expr, $pattern:pat $(if $guard:expr)?, [$($word:expr),+ $(,)?]) => {
        $crate::support::Case {
            name: $name,
            payload: $payload,
            expect: $crate::support::Expect::Refused {
                is: |e| matches!(e, $pattern $(if $guard)?),
                pattern: stringify!($pattern $(if $guard)?),
                words: vec![$(String::from($word)),+],
            },
        }
    };
}
pub(crate) use refused;

/// Runs every row through `parse` and fails once, listing every row that went wrong. A panic
/// while parsing is a failure of its own: parsing outside input never panics.
pub fn run(cases: Vec<Case>, parse: impl Fn(&[u8]) -> Result<Event, WireError>) {
    let total = cases.len();
    let mut failures = Vec::new();
    for case in cases {
        let Ok(outcome) = catch_unwind(AssertUnwindSafe(|| parse(&case.payload))) else {
            failures.push(format!("{}: parsing panicked", case.name));
            continue;
        };
        match (&case.expect, outcome) {
            (Expect::Accepted(check), Ok(event)) => {
                if catch_unwind(AssertUnwindSafe(|| check(&event))).is_err() {
                    failures.push(format!(
                        "{}: accepted, but {event:?} is not as expected (see the panic above)",
                        case.name
                    ));
                }
            }
            (Expect::Accepted(_), Err(e)) => {
                failures.push(format!("{}: refused with {e:?} ({e})", case.name));
            }
            (Expect::Refused { pattern, .. }, Ok(event)) => {
                failures.push(format!(
                    "{}: accepted as {event:?}, expected {pattern}",
                    case.name
                ));
            }
            (Expect::Refused { is, pattern, words }, Err(e)) => {
                let text = e.to_string();
                if !is(&e) {
                    failures.push(format!(
                        "{}: refused with {e:?}, expected {pattern}",
                        case.name
                    ));
                }
                for word in words.iter().filter(|w| !text.contains(w.as_str())) {
                    failures.push(format!(
                        "{}: the text {text:?} does not contain {word:?}",
                        case.name
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
