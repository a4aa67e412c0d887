//! SenML packs in JSON (RFC 8428, `application/senml+json`), parsed into resolved records.
//!
//! A pack is a JSON array of records. The base fields `bn`, `bt`, `bu`, `bv`, `bs` and `bver`
//! apply to their record and to every record after it until another record sets them again; a
//! resolved [`Record`] carries the result:
//!
//! - name = `bn` + `n`: not empty, starting with a letter or digit, made only of `A-Z a-z 0-9 - :
//!   . / _` (§4.5.1);
//! - unit = `u`, else `bu`;
//! - value = exactly one of `v` (plus `bv`), `vs`, `vb` or `vd` (base64url text, kept encoded),
//!   which may be absent only when the record has a sum `s` (§4.2);
//! - sum = `s` + `bs`, present when either is (§4.5.4);
//! - time = `bt` + `t` (each 0 when absent): below 2^28 it is seconds relative to `now` (0 is
//!   "now", negative is in the past), from 2^28 on it is Unix time (§4.5.3). Times are rounded
//!   to the microsecond (a double near today's Unix time is precise to about 0.2 µs) and must fall
//!   in the years 1970 to 9999.
//!
//! A record with base fields only (like the first record of RFC 8428 §5.1.7) sets them for the
//! records after it and resolves to nothing; a pack must still resolve to at least one record.
//! Fields whose label ends with `_` must be understood (§4.4) and are refused; other unknown
//! fields are ignored. A `bver` above 10 is refused, and all records of a pack have one version.
//! Records keep their order in the pack.
//!
//! Dispecer's traffic counters send packs such as:
//!
//! ```json
//! [{"bn": "tc-eroilor-e/", "bt": 1795000000, "n": "count", "u": "count", "v": 12},
//!  {"n": "speed", "u": "km/h", "v": 43.2},
//!  {"n": "occupancy", "u": "%", "v": 18.5}]
//! ```
//!
//! Every refusal is a [`SenmlError`] whose text names the record (counted from 0) and the field,
//! worded for the dead-letter reason. Parsing never panics, and never builds more than
//! [`MAX_RECORDS`] records of names up to [`MAX_NAME_LEN`] bytes and units up to
//! [`MAX_UNIT_LEN`] bytes from a payload of at most [`MAX_PAYLOAD`] bytes.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Most records accepted in one pack.
pub const MAX_RECORDS: usize = 10_000;

/// Largest pack accepted, in bytes (1 MiB), checked before parsing.
pub const MAX_PAYLOAD: usize = 1024 * 1024;

/// Longest resolved name (`bn` + `n`) accepted, in bytes.
pub const MAX_NAME_LEN: usize = 1024;

/// Longest unit (`u` or `bu`) accepted, in bytes.
pub const MAX_UNIT_LEN: usize = 64;

/// The SenML version this parser implements (RFC 8428); the default of `bver`.
pub const VERSION: u64 = 10;

/// Times below this many seconds are relative to "now" (RFC 8428 §4.5.3).
const RELATIVE_LIMIT: f64 = 268_435_456.0; // 2^28

/// Unix time of 10000-01-01T00:00:00Z: resolved times must come before it.
const YEAR_10000: i64 = 253_402_300_800;

/// Beyond this many seconds (about 31 700 years) a time is refused before any arithmetic.
const SECONDS_LIMIT: f64 = 1.0e12;

/// A record's value.
#[derive(Debug, Clone, PartialEq)]
pub enum SenmlValue {
    /// `v` (plus `bv`).
    Number(f64),
    /// `vs`.
    String(String),
    /// `vb`.
    Bool(bool),
    /// `vd`: base64url without padding, as sent (not decoded).
    Data(String),
}

/// A resolved record: the pack's base fields applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Its place in the pack, from 0, counting records that only set base fields.
    pub index: usize,
    /// `bn` + `n`.
    pub name: String,
    /// `u`, else `bu`.
    pub unit: Option<String>,
    /// `v` + `bv`, or `vs`, `vb`, `vd`; absent only when the record has a sum.
    pub value: Option<SenmlValue>,
    /// `s` + `bs`, when either is present.
    pub sum: Option<f64>,
    /// `bt` + `t`: relative to `now` below 2^28 seconds, Unix time from there on.
    pub time: DateTime<Utc>,
    /// `ut`: seconds before the sensor's next update at the latest.
    pub update_time: Option<f64>,
}

/// Why a SenML pack was refused; the text is the dead-letter reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SenmlError {
    /// Larger than [`MAX_PAYLOAD`].
    #[error("payload of {size} bytes is larger than the {limit} bytes accepted for a SenML pack")]
    TooLarge {
        /// Size received.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// Not UTF-8.
    #[error("payload is not UTF-8: {0}")]
    NotUtf8(String),
    /// Not JSON, outside any record.
    #[error("payload is not valid JSON: {0}")]
    NotJson(String),
    /// Not CBOR, or CBOR that SenML does not allow (RFC 8428 §6).
    #[error("payload is not a SenML CBOR pack: {0}")]
    NotCbor(String),
    /// Valid JSON, but not an array.
    #[error("payload is {0}, not a SenML pack (a JSON array of records)")]
    NotAPack(&'static str),
    /// `[]`.
    #[error("the SenML pack is empty: it needs at least one record")]
    Empty,
    /// Every record only sets base fields.
    #[error("the SenML pack has no measurement: its records only set base fields")]
    OnlyBaseFields,
    /// More than [`MAX_RECORDS`].
    #[error("the SenML pack has more than {limit} records")]
    TooManyRecords {
        /// Limit.
        limit: usize,
    },
    /// Invalid JSON inside a record (a number too large for a double, say).
    #[error("record {index}{}: not valid JSON: {reason}", in_field(.field.as_deref()))]
    InvalidJson {
        /// Record, from 0.
        index: usize,
        /// The field being read, when known.
        field: Option<String>,
        /// serde_json's words.
        reason: String,
    },
    /// An element of the pack that is not an object.
    #[error("record {index} is {found}, not a JSON object")]
    NotAnObject {
        /// Record, from 0.
        index: usize,
        /// What it is.
        found: &'static str,
    },
    /// The same label twice in one record.
    #[error("record {index}: field {:?} appears more than once", excerpt(.field))]
    DuplicateField {
        /// Record, from 0.
        index: usize,
        /// Label.
        field: String,
    },
    /// A label ending with `_`, which must be understood, and is not.
    #[error(
        "record {index}: field {:?} ends with \"_\", so it must be understood, and it is not a \
         field this receiver knows",
        excerpt(.field)
    )]
    MustUnderstand {
        /// Record, from 0.
        index: usize,
        /// Label.
        field: String,
    },
    /// A field of the wrong JSON type.
    #[error("record {index}: field {field:?} must be {expected}, not {found}")]
    WrongType {
        /// Record, from 0.
        index: usize,
        /// Label.
        field: &'static str,
        /// The type it must have.
        expected: &'static str,
        /// The type it has.
        found: &'static str,
    },
    /// A field of the right type with an invalid value.
    #[error("record {index}: field {field:?} {reason}")]
    InvalidField {
        /// Record, from 0.
        index: usize,
        /// Label.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// `bver` newer than RFC 8428.
    #[error(
        "record {index}: field \"bver\" is {version}, and only SenML versions up to {VERSION} are \
         understood"
    )]
    UnsupportedVersion {
        /// Record, from 0.
        index: usize,
        /// Version asked for.
        version: u64,
    },
    /// A `bver` that differs from the pack's version so far.
    #[error(
        "record {index}: field \"bver\" is {version}, but the records before it are of version \
         {pack}: all records of a pack have one version"
    )]
    MixedVersions {
        /// Record, from 0.
        index: usize,
        /// Version of this record.
        version: u64,
        /// Version of the records before.
        pack: u64,
    },
    /// The resolved name breaks RFC 8428 §4.5.1.
    #[error("record {index}: name {:?} (\"bn\" + \"n\") {reason}", excerpt(.name))]
    InvalidName {
        /// Record, from 0.
        index: usize,
        /// Resolved name (its first 65 characters at most).
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// More than one of `v`, `vs`, `vb`, `vd`.
    #[error(
        "record {index}: fields {first:?} and {second:?} are both present, and a record has exactly \
         one value (\"v\", \"vs\", \"vb\" or \"vd\")"
    )]
    SeveralValues {
        /// Record, from 0.
        index: usize,
        /// One value field.
        first: &'static str,
        /// Another.
        second: &'static str,
    },
    /// None of `v`, `vs`, `vb`, `vd`, `s`.
    #[error(
        "record {index}: no value: a record needs one of the fields \"v\", \"vs\", \"vb\", \"vd\", \
         or a sum \"s\""
    )]
    NoValue {
        /// Record, from 0.
        index: usize,
    },
    /// `bt` + `t` outside the years 1970 to 9999.
    #[error(
        "record {index}: time (\"bt\" + \"t\") of {} seconds {} outside the years 1970 to 9999",
        number(*.seconds),
        if *.seconds < RELATIVE_LIMIT { "from now is" } else { "since 1970 is" }
    )]
    TimeOutOfRange {
        /// Record, from 0.
        index: usize,
        /// `bt` + `t`.
        seconds: f64,
    },
}

/// Parses a SenML JSON pack into resolved records, in the pack's order. Relative times are taken
/// from `now`, normally when the pack was received.
pub fn parse_json(payload: &[u8], now: DateTime<Utc>) -> Result<Vec<Record>, SenmlError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(SenmlError::TooLarge {
            size: payload.len(),
            limit: MAX_PAYLOAD,
        });
    }
    let text = std::str::from_utf8(payload).map_err(|e| SenmlError::NotUtf8(e.to_string()))?;
    resolve_pack(&read_pack(text)?, now)
}

/// Whether `payload` looks like a CBOR pack rather than JSON: its first byte is a CBOR array
/// header (major type 4), which no JSON text starts with.
pub fn is_cbor(payload: &[u8]) -> bool {
    payload.first().is_some_and(|b| b >> 5 == 4)
}

/// Parses a SenML CBOR pack (RFC 8428 §6, `application/senml+cbor`) into resolved records,
/// exactly as [`parse_json`] does the JSON one. The labels are the integers of the RFC's table 4
/// (`bn` = -2, `n` = 0, `v` = 2, …; text labels are read as in JSON), `vd` is a byte string
/// (kept as base64url text like the JSON form), and numbers must be finite.
pub fn parse_cbor(payload: &[u8], now: DateTime<Utc>) -> Result<Vec<Record>, SenmlError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(SenmlError::TooLarge {
            size: payload.len(),
            limit: MAX_PAYLOAD,
        });
    }
    let raw: Vec<RawRecord<'static>> = cbor::read_pack(payload)?
        .into_iter()
        .map(RawRecord::from_map)
        .collect();
    resolve_pack(&raw, now)
}

/// Resolves the records of a pack read from JSON or CBOR.
fn resolve_pack(raw: &[RawRecord<'_>], now: DateTime<Utc>) -> Result<Vec<Record>, SenmlError> {
    if raw.is_empty() {
        return Err(SenmlError::Empty);
    }
    let mut base = Base::default();
    let mut records = Vec::with_capacity(raw.len());
    for (index, fields) in raw.iter().enumerate() {
        let fields = Fields { index, raw: fields };
        if let Some(record) = resolve(&fields, &mut base, now)? {
            records.push(record);
        }
    }
    if records.is_empty() {
        return Err(SenmlError::OnlyBaseFields);
    }
    Ok(records)
}

// ---- resolving ---------------------------------------------------------------------------------

/// The base fields in force.
#[derive(Debug, Default)]
struct Base {
    name: String,
    time: f64,
    unit: Option<String>,
    value: Option<f64>,
    sum: Option<f64>,
    /// The pack's version, once a record has been read.
    version: Option<u64>,
}

/// Labels of the regular fields: a record with none of them only sets base fields.
const REGULAR: [&str; 9] = ["n", "u", "v", "vs", "vb", "vd", "s", "t", "ut"];

/// Labels of the base fields.
const BASE: [&str; 6] = ["bn", "bt", "bu", "bv", "bs", "bver"];

/// Applies one record's base fields to `base`, and resolves the record unless it has only base
/// fields.
fn resolve(
    f: &Fields<'_>,
    base: &mut Base,
    now: DateTime<Utc>,
) -> Result<Option<Record>, SenmlError> {
    let index = f.index;
    if let Some(label) = &f.raw.must_understand {
        return Err(SenmlError::MustUnderstand {
            index,
            field: label.clone().into_owned(),
        });
    }

    // Every known field is type-checked first, so that the first problem reported is a field's.
    let bn = f.string("bn")?;
    let bt = f.number("bt")?;
    let bu = f.string("bu")?;
    let bv = f.number("bv")?;
    let bs = f.number("bs")?;
    let bver = f.version()?;
    let n = f.string("n")?;
    let u = f.string("u")?;
    let v = f.number("v")?;
    let vs = f.string("vs")?;
    let vb = f.boolean("vb")?;
    let vd = f.string("vd")?;
    let s = f.number("s")?;
    let t = f.number("t")?;
    let ut = f.number("ut")?;

    let version = bver.unwrap_or(VERSION);
    match base.version {
        None => base.version = Some(version),
        Some(pack) if bver.is_some_and(|v| v != pack) => {
            return Err(SenmlError::MixedVersions {
                index,
                version,
                pack,
            })
        }
        Some(_) => {}
    }
    if let Some(bn) = bn {
        base.name = bn.to_owned();
    }
    if let Some(bt) = bt {
        base.time = bt;
    }
    if let Some(bu) = bu {
        base.unit = Some(bu.to_owned());
    }
    if let Some(bv) = bv {
        base.value = Some(bv);
    }
    if let Some(bs) = bs {
        base.sum = Some(bs);
    }

    if !REGULAR.iter().any(|label| f.has(label)) {
        if BASE.iter().any(|label| f.has(label)) {
            return Ok(None);
        }
        return Err(SenmlError::NoValue { index });
    }

    let name = name(index, &base.name, n.unwrap_or(""))?;

    let unit = match u.or(base.unit.as_deref()) {
        Some(unit) if unit.len() > MAX_UNIT_LEN => {
            return Err(SenmlError::InvalidField {
                index,
                field: if u.is_some() { "u" } else { "bu" },
                reason: format!(
                    "is {} bytes long, and a unit has at most {MAX_UNIT_LEN}",
                    unit.len()
                ),
            })
        }
        other => other.map(str::to_owned),
    };

    let present: Vec<&'static str> = ["v", "vs", "vb", "vd"]
        .into_iter()
        .filter(|label| f.has(label))
        .collect();
    if let [first, second, ..] = present[..] {
        return Err(SenmlError::SeveralValues {
            index,
            first,
            second,
        });
    }
    let value = if let Some(v) = v {
        Some(SenmlValue::Number(f.finite(
            "v",
            v + base.value.unwrap_or(0.0),
            "\"bv\" + \"v\"",
        )?))
    } else if let Some(vs) = vs {
        Some(SenmlValue::String(vs.to_owned()))
    } else if let Some(vb) = vb {
        Some(SenmlValue::Bool(vb))
    } else if let Some(vd) = vd {
        if let Some(reason) = base64url_problem(vd) {
            return Err(SenmlError::InvalidField {
                index,
                field: "vd",
                reason: reason.to_owned(),
            });
        }
        Some(SenmlValue::Data(vd.to_owned()))
    } else {
        None
    };
    if value.is_none() && s.is_none() {
        return Err(SenmlError::NoValue { index });
    }

    let sum = match (s, base.sum) {
        (None, None) => None,
        (s, bs) => Some(f.finite("s", s.unwrap_or(0.0) + bs.unwrap_or(0.0), "\"bs\" + \"s\"")?),
    };

    let seconds = base.time + t.unwrap_or(0.0);
    let time = time(seconds, now).ok_or(SenmlError::TimeOutOfRange { index, seconds })?;

    Ok(Some(Record {
        index,
        name,
        unit,
        value,
        sum,
        time,
        update_time: ut,
    }))
}

/// `bn` + `n`, checked against RFC 8428 §4.5.1 before it is built.
fn name(index: usize, bn: &str, n: &str) -> Result<String, SenmlError> {
    let invalid = |reason: String| {
        // Enough for the message's excerpt, never the whole of a long name.
        let name: String = bn.chars().chain(n.chars()).take(65).collect();
        SenmlError::InvalidName {
            index,
            name,
            reason,
        }
    };
    let len = bn.len() + n.len();
    if len > MAX_NAME_LEN {
        return Err(invalid(format!(
            "is {len} bytes long, and a name has at most {MAX_NAME_LEN}"
        )));
    }
    let mut chars = bn.chars().chain(n.chars());
    match chars.next() {
        None => {
            return Err(invalid(
                "is empty: a record needs a name \"n\", a base name \"bn\", or both".into(),
            ))
        }
        Some(c) if !c.is_ascii_alphanumeric() => {
            return Err(invalid(format!(
                "starts with {c:?}, and a name must start with a letter or a digit"
            )))
        }
        Some(_) => {}
    }
    if let Some(c) = chars.find(|c| !valid_name_char(*c)) {
        return Err(invalid(format!(
            "contains {c:?}, and a name holds only A-Z a-z 0-9 - : . / _"
        )));
    }
    Ok(format!("{bn}{n}"))
}

fn valid_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.' | '/' | '_')
}

/// Why `vd` is not base64url without padding (RFC 4648 §5), if it is not.
fn base64url_problem(vd: &str) -> Option<&'static str> {
    if vd.contains('=') {
        Some("is base64url with padding, and SenML data values omit the padding")
    } else if !vd
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Some("is not base64url: only A-Z a-z 0-9 - _ may appear")
    } else if vd.len() % 4 == 1 {
        Some("is not base64url: no bytes encode to a length of 4k + 1 characters")
    } else {
        None
    }
}

/// The instant `seconds` stands for: relative to `now` below 2^28, Unix time from there on;
/// rounded to the microsecond; `None` outside the years 1970 to 9999.
fn time(seconds: f64, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if !seconds.is_finite() || seconds.abs() > SECONDS_LIMIT {
        return None;
    }
    // |micros| <= 1e18 < i64::MAX, so the cast is exact.
    let delta = TimeDelta::microseconds((seconds * 1e6).round() as i64);
    let origin = if seconds < RELATIVE_LIMIT {
        now
    } else {
        DateTime::UNIX_EPOCH
    };
    origin
        .checked_add_signed(delta)
        .filter(|t| (0..YEAR_10000).contains(&t.timestamp()))
}

/// Labels of the fields this parser knows, in the order of [`RawRecord::fields`].
const KNOWN: [&str; 15] = [
    "bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut",
];

/// A known field's value as read, kept as far as the resolver needs it: a string borrowed from
/// the payload where it has no escapes, a number as JSON gave it, and only the kind of anything
/// else (for the wrong-type message).
#[derive(Debug, Clone, PartialEq)]
enum Scalar<'a> {
    Str(Cow<'a, str>),
    Num(Number),
    Bool(bool),
    /// `null`, an array or an object: what [`kind`] calls it.
    Other(&'static str),
}

impl Scalar<'_> {
    /// From a JSON value (the CBOR reader's).
    fn from_value(value: Value) -> Scalar<'static> {
        match value {
            Value::String(s) => Scalar::Str(Cow::Owned(s)),
            Value::Number(n) => Scalar::Num(n),
            Value::Bool(b) => Scalar::Bool(b),
            other => Scalar::Other(kind(&other)),
        }
    }

    /// Its JSON type, for messages.
    fn kind(&self) -> &'static str {
        match self {
            Scalar::Str(_) => "a string",
            Scalar::Num(_) => "a number",
            Scalar::Bool(_) => "a boolean",
            Scalar::Other(kind) => kind,
        }
    }
}

/// One record as read, before its type checks: the known fields (at their place in [`KNOWN`])
/// and, of the other labels, the first ending with `_` in byte order (which a map of the
/// labels would list first). Unknown fields' values are read, checked as JSON, and dropped.
#[derive(Debug, Default)]
struct RawRecord<'a> {
    fields: [Option<Scalar<'a>>; KNOWN.len()],
    must_understand: Option<Cow<'a, str>>,
}

impl<'a> RawRecord<'a> {
    /// Notes an unknown label.
    // A `Cow`, not a `&str`: kept, it is cloned as it came (borrowed from the payload: no copy).
    #[allow(clippy::ptr_arg)]
    fn unknown(&mut self, label: &Cow<'a, str>) {
        if label.ends_with('_')
            && self
                .must_understand
                .as_ref()
                .is_none_or(|first| **label < **first)
        {
            self.must_understand = Some(label.clone());
        }
    }

    /// From the fields of a CBOR record, labelled as in JSON.
    fn from_map(map: Map<String, Value>) -> RawRecord<'static> {
        let mut raw = RawRecord::default();
        for (label, value) in map {
            match KNOWN.iter().position(|k| *k == label) {
                Some(i) => raw.fields[i] = Some(Scalar::from_value(value)),
                None => raw.unknown(&Cow::Owned(label)),
            }
        }
        raw
    }
}

/// The fields of one record, typed on demand.
struct Fields<'a> {
    index: usize,
    raw: &'a RawRecord<'a>,
}

impl Fields<'_> {
    fn get(&self, field: &str) -> Option<&Scalar<'_>> {
        let i = KNOWN.iter().position(|k| *k == field)?;
        self.raw.fields[i].as_ref()
    }

    /// Whether the record has the known field `field`.
    fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    fn wrong(&self, field: &'static str, expected: &'static str, found: &Scalar<'_>) -> SenmlError {
        SenmlError::WrongType {
            index: self.index,
            field,
            expected,
            found: found.kind(),
        }
    }

    fn string(&self, field: &'static str) -> Result<Option<&str>, SenmlError> {
        match self.get(field) {
            None => Ok(None),
            Some(Scalar::Str(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong(field, "a string", other)),
        }
    }

    fn number(&self, field: &'static str) -> Result<Option<f64>, SenmlError> {
        match self.get(field) {
            None => Ok(None),
            Some(Scalar::Num(n)) => match n.as_f64() {
                Some(x) => self.finite(field, x, "the number").map(Some),
                None => Err(self.invalid(field, format!("is {n}, not a double"))),
            },
            Some(other) => Err(self.wrong(field, "a number", other)),
        }
    }

    fn boolean(&self, field: &'static str) -> Result<Option<bool>, SenmlError> {
        match self.get(field) {
            None => Ok(None),
            Some(Scalar::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong(field, "true or false", other)),
        }
    }

    /// `bver`: a positive integer, at most [`VERSION`].
    fn version(&self) -> Result<Option<u64>, SenmlError> {
        let field = "bver";
        match self.get(field) {
            None => Ok(None),
            Some(Scalar::Num(n)) => match n.as_u64() {
                Some(0) | None => Err(self.invalid(
                    field,
                    format!("is {n}, and a version is a positive integer"),
                )),
                Some(version) if version > VERSION => Err(SenmlError::UnsupportedVersion {
                    index: self.index,
                    version,
                }),
                Some(version) => Ok(Some(version)),
            },
            Some(other) => Err(self.wrong(field, "a positive integer", other)),
        }
    }

    fn invalid(&self, field: &'static str, reason: String) -> SenmlError {
        SenmlError::InvalidField {
            index: self.index,
            field,
            reason,
        }
    }

    /// `x`, refused when it is not finite (`what` says how it was computed).
    fn finite(&self, field: &'static str, x: f64, what: &str) -> Result<f64, SenmlError> {
        if x.is_finite() {
            Ok(x)
        } else {
            Err(self.invalid(
                field,
                format!("gives {what} = {x}, which is not a finite number"),
            ))
        }
    }
}

/// The JSON type of `v`, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Sender-chosen text in a message, cut to 64 characters.
fn excerpt(s: &str) -> String {
    let mut chars = s.chars();
    let mut out: String = chars.by_ref().take(64).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

/// `, field "x"` when the field is known.
fn in_field(field: Option<&str>) -> String {
    field.map_or_else(String::new, |f| format!(", field {:?}", excerpt(f)))
}

/// A number for a message: plain when short, in scientific notation when huge.
fn number(x: f64) -> String {
    if x.abs() < 1e15 {
        x.to_string()
    } else {
        format!("{x:e}")
    }
}

// ---- reading the JSON --------------------------------------------------------------------------

/// Where the reader is, so that a JSON error names the record and field, and the refusal a
/// visitor found (serde only carries text through its errors).
#[derive(Debug, Default)]
struct Tracker<'de> {
    record: Cell<Option<usize>>,
    field: RefCell<Option<Cow<'de, str>>>,
    refusal: RefCell<Option<SenmlError>>,
}

impl Tracker<'_> {
    fn refuse<E: de::Error, T>(&self, refusal: SenmlError) -> Result<T, E> {
        let text = refusal.to_string();
        *self.refusal.borrow_mut() = Some(refusal);
        Err(E::custom(text))
    }
}

/// Reads the pack into its records' fields, refusing what is not an array of at most
/// [`MAX_RECORDS`] objects without duplicate labels. Labels and strings without escapes are
/// borrowed from `text`.
fn read_pack(text: &str) -> Result<Vec<RawRecord<'_>>, SenmlError> {
    let tracker = Tracker::default();
    let mut de = serde_json::Deserializer::from_str(text);
    let read = serde::Deserializer::deserialize_any(&mut de, PackVisitor(&tracker))
        .and_then(|records| de.end().map(|()| records));
    read.map_err(|e| {
        if let Some(refusal) = tracker.refusal.take() {
            return refusal;
        }
        match tracker.record.get() {
            Some(index) => SenmlError::InvalidJson {
                index,
                field: tracker.field.take().map(Cow::into_owned),
                reason: e.to_string(),
            },
            None => SenmlError::NotJson(e.to_string()),
        }
    })
}

/// Implements the visitor methods of JSON scalars as refusals.
macro_rules! refuse_scalars {
    () => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            self.refuse("a boolean")
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            self.refuse("a number")
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            self.refuse("a number")
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            self.refuse("a number")
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            self.refuse("a string")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            self.refuse("null")
        }
    };
}

/// The pack: an array of records.
struct PackVisitor<'t, 'de>(&'t Tracker<'de>);

impl PackVisitor<'_, '_> {
    fn refuse<E: de::Error, T>(&self, found: &'static str) -> Result<T, E> {
        self.0.refuse(SenmlError::NotAPack(found))
    }
}

impl<'de> Visitor<'de> for PackVisitor<'_, 'de> {
    type Value = Vec<RawRecord<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a SenML pack (a JSON array of records)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let tracker = self.0;
        let mut records = Vec::new();
        loop {
            let index = records.len();
            tracker.record.set(Some(index));
            if index == MAX_RECORDS {
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return tracker.refuse(SenmlError::TooManyRecords { limit: MAX_RECORDS });
                }
                break;
            }
            match seq.next_element_seed(RecordSeed { tracker, index })? {
                Some(record) => records.push(record),
                None => break,
            }
        }
        tracker.record.set(None);
        Ok(records)
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        self.refuse("an object")
    }

    refuse_scalars!();
}

/// One record: a JSON object.
struct RecordSeed<'t, 'de> {
    tracker: &'t Tracker<'de>,
    index: usize,
}

impl RecordSeed<'_, '_> {
    fn refuse<E: de::Error, T>(&self, found: &'static str) -> Result<T, E> {
        self.tracker.refuse(SenmlError::NotAnObject {
            index: self.index,
            found,
        })
    }
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, 'de> {
    type Value = RawRecord<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_, 'de> {
    type Value = RawRecord<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a SenML record (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let tracker = self.tracker;
        let mut raw = RawRecord::default();
        // Unknown labels seen, for duplicates (made at the first one; most packs have none).
        let mut unknown: Option<HashSet<Cow<'de, str>>> = None;
        loop {
            *tracker.field.borrow_mut() = None;
            let Some(label) = map.next_key_seed(Text)? else {
                break;
            };
            *tracker.field.borrow_mut() = Some(label.clone());
            let duplicate = match KNOWN.iter().position(|k| *k == label) {
                Some(i) => {
                    let value = map.next_value_seed(ScalarSeed)?;
                    raw.fields[i].replace(value).is_some()
                }
                None => {
                    map.next_value_seed(Skip)?;
                    raw.unknown(&label);
                    !unknown
                        .get_or_insert_with(HashSet::new)
                        .insert(label.clone())
                }
            };
            if duplicate {
                return tracker.refuse(SenmlError::DuplicateField {
                    index: self.index,
                    field: label.into_owned(),
                });
            }
        }
        Ok(raw)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        self.refuse("an array")
    }

    refuse_scalars!();
}

/// A label or string: borrowed from the payload unless it has escapes.
struct Text;

impl<'de> DeserializeSeed<'de> for Text {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Text {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s))
    }
}

/// A known field's value. Read as `serde_json::Value` reads one (`deserialize_any`, so the same
/// JSON is refused with the same words), keeping no more than a [`Scalar`].
struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Scalar<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Num(n.into()))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Scalar::Num(n.into()))
    }

    fn visit_f64<E: de::Error>(self, x: f64) -> Result<Self::Value, E> {
        // As serde_json's Value: a double that is no JSON number is null.
        Ok(Number::from_f64(x).map_or(Scalar::Other("null"), Scalar::Num))
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(s)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Other("null"))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Other("null"))
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Skip.visit_seq(seq).map(|()| Scalar::Other("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Skip.visit_map(map).map(|()| Scalar::Other("an object"))
    }
}

/// Any JSON value, read in full as `serde_json::Value` reads one (`deserialize_any`: numbers out
/// of a double's range and nesting beyond serde_json's limit are refused alike) and dropped.
/// `serde::de::IgnoredAny` would skip numbers without reading them.
struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Text)?.is_some() {
            map.next_value_seed(Skip)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000, 0).expect("a valid instant")
    }

    #[test]
    fn times_are_rounded_to_the_microsecond() {
        let t = time(1.276_020_076_001e9, now()).expect("in range");
        assert_eq!(t.timestamp(), 1_276_020_076);
        assert_eq!(t.timestamp_subsec_nanos(), 1_000_000);
        let t = time(-0.000_000_4, now()).expect("in range");
        assert_eq!(t, now(), "0.4 µs rounds to nothing");
    }

    #[test]
    fn relative_below_two_to_the_28() {
        let before = time(RELATIVE_LIMIT - 1.0, now()).expect("in range");
        assert_eq!(before, now() + TimeDelta::seconds(268_435_455));
        let at = time(RELATIVE_LIMIT, now()).expect("in range");
        assert_eq!(at.timestamp(), 268_435_456);
        let long_ago = time(-1.0e9, now()).expect("in range");
        assert_eq!(long_ago, now() - TimeDelta::seconds(1_000_000_000));
    }

    #[test]
    fn time_range_is_1970_to_9999() {
        assert!(time(YEAR_10000 as f64 - 0.5, now()).is_some());
        assert!(time(YEAR_10000 as f64, now()).is_none());
        assert!(time(-(now().timestamp() as f64), now()).is_some());
        assert!(time(-(now().timestamp() as f64) - 1.0, now()).is_none());
        assert!(time(f64::INFINITY, now()).is_none());
        assert!(time(f64::NAN, now()).is_none());
        assert!(time(-1.0e300, now()).is_none());
    }

    #[test]
    fn excerpts_are_short() {
        assert_eq!(excerpt("abc"), "abc");
        assert_eq!(excerpt(&"ă".repeat(100)).chars().count(), 65);
    }
}

// ---- reading the CBOR --------------------------------------------------------------------------

mod cbor {
    //! RFC 8428 §6: the CBOR form of a pack, read into the same fields as the JSON one.

    use base64::Engine as _;
    use ciborium::Value as Cbor;
    use serde_json::{Map, Number, Value};

    use super::{excerpt, SenmlError, MAX_RECORDS};

    /// RFC 8428 table 4: CBOR labels of the SenML fields.
    const LABELS: [(i128, &str); 15] = [
        (-1, "bver"),
        (-2, "bn"),
        (-3, "bt"),
        (-4, "bu"),
        (-5, "bv"),
        (-6, "bs"),
        (0, "n"),
        (1, "u"),
        (2, "v"),
        (3, "vs"),
        (4, "vb"),
        (5, "s"),
        (6, "t"),
        (7, "ut"),
        (8, "vd"),
    ];

    /// Reads the pack into its records' fields, labelled as in JSON.
    pub(super) fn read_pack(payload: &[u8]) -> Result<Vec<Map<String, Value>>, SenmlError> {
        let mut reader = std::io::Cursor::new(payload);
        let value: Cbor = ciborium::de::from_reader(&mut reader)
            .map_err(|e| SenmlError::NotCbor(e.to_string()))?;
        let rest = payload.len() as u64 - reader.position().min(payload.len() as u64);
        if rest > 0 {
            return Err(SenmlError::NotCbor(format!(
                "{rest} bytes follow the pack's array"
            )));
        }
        let Cbor::Array(records) = value else {
            return Err(SenmlError::NotCbor(format!(
                "it is {}, not an array of records",
                kind(&value)
            )));
        };
        if records.len() > MAX_RECORDS {
            return Err(SenmlError::TooManyRecords { limit: MAX_RECORDS });
        }
        records
            .into_iter()
            .enumerate()
            .map(|(index, record)| read_record(index, record))
            .collect()
    }

    fn read_record(index: usize, record: Cbor) -> Result<Map<String, Value>, SenmlError> {
        let Cbor::Map(entries) = record else {
            return Err(SenmlError::NotAnObject {
                index,
                found: kind(&record),
            });
        };
        let mut fields = Map::new();
        for (key, value) in entries {
            let label = match key {
                Cbor::Integer(i) => {
                    let i = i128::from(i);
                    match LABELS.iter().find(|(l, _)| *l == i) {
                        Some((_, name)) => (*name).to_owned(),
                        // An unknown integer label: ignored, as an unknown JSON field is.
                        None => format!("#{i}"),
                    }
                }
                Cbor::Text(t) => t,
                other => {
                    return Err(SenmlError::NotCbor(format!(
                        "record {index}: a label is {}, not an integer or a text string",
                        kind(&other)
                    )))
                }
            };
            let value = if label == "vd" {
                match value {
                    Cbor::Bytes(b) => {
                        Value::String(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
                    }
                    other => {
                        return Err(SenmlError::NotCbor(format!(
                            "record {index}: field \"vd\" must be a byte string, not {}",
                            kind(&other)
                        )))
                    }
                }
            } else {
                json(index, &label, value)?
            };
            if fields.insert(label.clone(), value).is_some() {
                return Err(SenmlError::DuplicateField {
                    index,
                    field: label,
                });
            }
        }
        Ok(fields)
    }

    /// The JSON value a CBOR value stands for in a SenML field.
    fn json(index: usize, label: &str, value: Cbor) -> Result<Value, SenmlError> {
        let refuse = |what: String| {
            SenmlError::NotCbor(format!("record {index}: field {:?} {what}", excerpt(label)))
        };
        Ok(match value {
            Cbor::Null => Value::Null,
            Cbor::Bool(b) => Value::Bool(b),
            Cbor::Text(t) => Value::String(t),
            Cbor::Integer(i) => {
                let i = i128::from(i);
                if let Ok(n) = i64::try_from(i) {
                    Value::Number(n.into())
                } else if let Ok(n) = u64::try_from(i) {
                    Value::Number(n.into())
                } else {
                    return Err(refuse(format!("is {i}, beyond a 64-bit integer")));
                }
            }
            Cbor::Float(f) => Value::Number(
                Number::from_f64(f)
                    .ok_or_else(|| refuse(format!("is {f}, not a finite number")))?,
            ),
            Cbor::Array(items) => Value::Array(
                items
                    .into_iter()
                    .map(|v| json(index, label, v))
                    .collect::<Result<_, _>>()?,
            ),
            Cbor::Map(entries) => {
                let mut map = Map::new();
                for (k, v) in entries {
                    let Cbor::Text(k) = k else {
                        return Err(refuse("holds a map with a label that is not text".into()));
                    };
                    map.insert(k, json(index, label, v)?);
                }
                Value::Object(map)
            }
            other => {
                return Err(refuse(format!(
                    "is {}, which SenML does not use",
                    kind(&other)
                )))
            }
        })
    }

    fn kind(v: &Cbor) -> &'static str {
        match v {
            Cbor::Integer(_) => "an integer",
            Cbor::Bytes(_) => "a byte string",
            Cbor::Float(_) => "a float",
            Cbor::Text(_) => "a text string",
            Cbor::Bool(_) => "a boolean",
            Cbor::Null => "null",
            Cbor::Tag(..) => "a tagged value",
            Cbor::Array(_) => "an array",
            Cbor::Map(_) => "a map",
            _ => "an unknown CBOR value",
        }
    }
}
