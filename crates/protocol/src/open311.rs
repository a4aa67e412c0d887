//! Open311 GeoReport v2 on the wire: the documents of `/open311/v2/` in JSON and XML, and the
//! form of `POST requests`, turned into a citizen report (the GeoJSON Feature of
//! [`crate::inbound::citizen_report`]) so that a request filed through Open311 takes exactly the
//! journey of one published over MQTT.
//!
//! Personal data: the form's `email`, `phone`, `first_name` and `last_name` become the report's
//! `contact` (stored apart, never shown here); no document of this module carries them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use quick_xml::escape::escape;
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::inbound::MAX_DESCRIPTION;

/// The two formats, chosen by the path's suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.json`.
    Json,
    /// `.xml` (the specification's required format).
    Xml,
}

impl Format {
    /// Splits `name.json` / `name.xml` into the name and its format; `None` for another suffix.
    pub fn split(file: &str) -> Option<(&str, Format)> {
        if let Some(stem) = file.strip_suffix(".json") {
            Some((stem, Format::Json))
        } else {
            file.strip_suffix(".xml").map(|stem| (stem, Format::Xml))
        }
    }

    /// The guess for an error answer: JSON if the path says so, XML (the default) otherwise.
    pub fn of_path(path: &str) -> Format {
        if path.ends_with(".json") {
            Format::Json
        } else {
            Format::Xml
        }
    }

    /// The media type of answers in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json; charset=utf-8",
            Format::Xml => "text/xml; charset=utf-8",
        }
    }
}

/// A date-time as Open311 writes it: W3C / ISO 8601 with a time zone, whole seconds.
pub fn datetime(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// One `{code, description}` of an error array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Error {
    /// The HTTP status it was answered with.
    pub code: u16,
    /// What is wrong.
    pub description: String,
}

/// `GET services`: one service (a category of the city).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    /// Category id.
    pub service_code: String,
    /// Its name in the city's default language.
    pub service_name: String,
    /// Its name in the other language(s).
    pub description: String,
    /// Whether `services/{code}` defines attributes.
    pub metadata: bool,
    /// `realtime`: a request id is answered at once.
    #[serde(rename = "type")]
    pub kind: String,
    /// Comma-separated words to find it by.
    pub keywords: String,
    /// The category's family (water, power, road, …).
    pub group: String,
}

/// One value of a list attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttributeValue {
    /// What is sent.
    pub key: String,
    /// What is shown.
    pub name: String,
}

/// An attribute of a service (`services/{code}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attribute {
    /// True: the citizen gives a value (false would be information only).
    pub variable: bool,
    /// Sent as `attribute[code]`.
    pub code: String,
    /// `string`, `number`, `datetime`, `text`, `singlevaluelist` or `multivaluelist`.
    pub datatype: String,
    /// Whether a request without it is refused.
    pub required: bool,
    /// How to write the value.
    pub datatype_description: String,
    /// Order in a form.
    pub order: u32,
    /// The question.
    pub description: String,
    /// Values of a list attribute; empty otherwise.
    pub values: Vec<AttributeValue>,
}

/// `GET services/{code}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceDefinition {
    /// Category id.
    pub service_code: String,
    /// Its attributes.
    pub attributes: Vec<Attribute>,
}

/// The attribute every service has: when the citizen saw the problem (the report's
/// `reported_at`; default the time it arrives).
pub const OBSERVED_AT: &str = "observed_at";

/// The attributes of every service.
pub fn attributes() -> Vec<Attribute> {
    vec![Attribute {
        variable: true,
        code: OBSERVED_AT.into(),
        datatype: "datetime".into(),
        required: false,
        datatype_description: "ISO 8601 date-time with a time zone, e.g. \
                               2026-11-22T10:00:00+02:00; not in the future; default: now"
            .into(),
        order: 1,
        description: "Când ați observat problema? / When did you see the problem?".into(),
        values: Vec::new(),
    }]
}

/// A service request (a citizen's report) as Open311 shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceRequest {
    /// The report's id (also the citizens' tracking code).
    pub service_request_id: String,
    /// `open` or `closed`.
    pub status: String,
    /// Dispecer's own state, in words.
    pub status_notes: String,
    /// The category's name.
    pub service_name: String,
    /// The category id.
    pub service_code: String,
    /// What the citizen wrote.
    pub description: Option<String>,
    /// The agency responsible for its incident.
    pub agency_responsible: String,
    /// A notice for the citizen.
    pub service_notice: Option<String>,
    /// When it arrived.
    pub requested_datetime: String,
    /// When its incident last changed.
    pub updated_datetime: String,
    /// When its incident is due to be resolved.
    pub expected_datetime: Option<String>,
    /// The address the citizen gave.
    pub address: Option<String>,
    /// Not used (no address registry).
    pub address_id: Option<String>,
    /// Not used.
    pub zipcode: Option<String>,
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub long: f64,
    /// A picture's address, as the citizen's app gave it.
    pub media_url: Option<String>,
}

/// The answer to `POST requests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Created {
    /// The new request's id.
    pub service_request_id: String,
    /// A notice for the citizen.
    pub service_notice: String,
    /// Not used: no accounts for citizens.
    pub account_id: Option<String>,
}

/// The answer to `GET tokens/{token}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenAnswer {
    /// The request the token became.
    pub service_request_id: String,
    /// The token asked about.
    pub token: String,
}

/// `GET discovery`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Discovery {
    /// When this document last changed.
    pub changeset: String,
    /// Whom to ask.
    pub contact: String,
    /// How to get an `api_key`.
    pub key_service: String,
    /// This endpoint.
    pub endpoints: Vec<Endpoint>,
}

/// One endpoint of the discovery document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// `http://wiki.open311.org/GeoReport_v2`.
    pub specification: String,
    /// The base URL.
    pub url: String,
    /// When it last changed.
    pub changeset: String,
    /// `production`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Media types offered.
    pub formats: Vec<String>,
}

/// Renders a document: JSON with serde, XML by the specification's element names.
pub trait Document {
    /// As JSON.
    fn json(&self) -> Value;
    /// As XML, with the declaration.
    fn xml(&self) -> String;
    /// In `format`.
    fn render(&self, format: Format) -> String {
        match format {
            Format::Json => self.json().to_string(),
            Format::Xml => self.xml(),
        }
    }
}

const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>";

/// Writes `<name>text</name>` (escaped), or `<name/>` for nothing.
fn element(out: &mut String, name: &str, text: Option<&str>) {
    match text {
        Some(t) if !t.is_empty() => {
            let _ = write!(out, "<{name}>{}</{name}>", escape(t));
        }
        _ => {
            let _ = write!(out, "<{name}/>");
        }
    }
}

/// Writes a flat JSON object's fields as elements, in the order given.
fn fields(out: &mut String, value: &Value, order: &[&str]) {
    for name in order {
        let text = match value.get(*name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
        element(out, name, text.as_deref());
    }
}

fn to_value<T: Serialize>(t: &T) -> Value {
    // Plain structs of strings, numbers and booleans always serialise.
    serde_json::to_value(t).unwrap_or(Value::Null)
}

impl Document for Vec<Error> {
    fn json(&self) -> Value {
        to_value(self)
    }
    fn xml(&self) -> String {
        let mut out = format!("{DECLARATION}<errors>");
        for e in self {
            out.push_str("<error>");
            element(&mut out, "code", Some(&e.code.to_string()));
            element(&mut out, "description", Some(&e.description));
            out.push_str("</error>");
        }
        out.push_str("</errors>");
        out
    }
}

impl Document for Vec<Service> {
    fn json(&self) -> Value {
        to_value(self)
    }
    fn xml(&self) -> String {
        let mut out = format!("{DECLARATION}<services>");
        for s in self {
            out.push_str("<service>");
            fields(
                &mut out,
                &to_value(s),
                &[
                    "service_code",
                    "service_name",
                    "description",
                    "metadata",
                    "type",
                    "keywords",
                    "group",
                ],
            );
            out.push_str("</service>");
        }
        out.push_str("</services>");
        out
    }
}

impl Document for ServiceDefinition {
    fn json(&self) -> Value {
        to_value(self)
    }
    fn xml(&self) -> String {
        let mut out = format!("{DECLARATION}<service_definition>");
        element(&mut out, "service_code", Some(&self.service_code));
        out.push_str("<attributes>");
        for a in &self.attributes {
            out.push_str("<attribute>");
            fields(
                &mut out,
                &to_value(a),
                &[
                    "variable",
                    "code",
                    "datatype",
                    "required",
                    "datatype_description",
                    "order",
                    "description",
                ],
            );
            if a.values.is_empty() {
                out.push_str("<values/>");
            } else {
                out.push_str("<values>");
                for v in &a.values {
                    out.push_str("<value>");
                    element(&mut out, "key", Some(&v.key));
                    element(&mut out, "name", Some(&v.name));
                    out.push_str("</value>");
                }
                out.push_str("</values>");
            }
            out.push_str("</attribute>");
        }
        out.push_str("</attributes></service_definition>");
        out
    }
}

const REQUEST_FIELDS: [&str; 17] = [
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
];

fn requests_xml<T: Serialize>(items: &[T], order: &[&str]) -> String {
    let mut out = format!("{DECLARATION}<service_requests>");
    for item in items {
        out.push_str("<request>");
        fields(&mut out, &to_value(item), order);
        out.push_str("</request>");
    }
    out.push_str("</service_requests>");
    out
}

impl Document for Vec<ServiceRequest> {
    fn json(&self) -> Value {
        to_value(self)
    }
    fn xml(&self) -> String {
        requests_xml(self, &REQUEST_FIELDS)
    }
}

impl Document for Vec<Created> {
    fn json(&self) -> Value {
        to_value(self)
    }
    fn xml(&self) -> String {
        requests_xml(
            self,
            &["service_request_id", "service_notice", "account_id"],
        )
    }
}

impl Document for Vec<TokenAnswer> {
    fn json(&self) -> Value {
        to_value(self)
    }
    fn xml(&self) -> String {
        requests_xml(self, &["service_request_id", "token"])
    }
}

impl Document for Discovery {
    fn json(&self) -> Value {
        to_value(self)
    }
    fn xml(&self) -> String {
        let mut out = format!("{DECLARATION}<discovery>");
        fields(
            &mut out,
            &to_value(self),
            &["changeset", "contact", "key_service"],
        );
        out.push_str("<endpoints>");
        for e in &self.endpoints {
            out.push_str("<endpoint>");
            fields(
                &mut out,
                &to_value(e),
                &["specification", "url", "changeset", "type"],
            );
            out.push_str("<formats>");
            for f in &e.formats {
                element(&mut out, "format", Some(f));
            }
            out.push_str("</formats></endpoint>");
        }
        out.push_str("</endpoints></discovery>");
        out
    }
}

/// Why a `POST requests` form is refused (a 400, except [`FormError::NoKey`], a 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// No `api_key`.
    #[error("api_key is required")]
    NoKey,
    /// The body is not `application/x-www-form-urlencoded`.
    #[error("the form is malformed: {0}")]
    Malformed(String),
    /// A field is missing.
    #[error("{0} is required")]
    Missing(&'static str),
    /// A field is malformed.
    #[error("{name}: {reason}")]
    Invalid {
        /// Which.
        name: String,
        /// Why.
        reason: String,
    },
}

/// Longest value of any form field other than `description`, in characters.
const MAX_FIELD: usize = 2000;

/// A `POST requests` form, checked for what Open311 itself requires; the rest (category known,
/// place inside the city, contact details well formed) is checked by
/// [`crate::inbound::citizen_report`] on the report this becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestForm {
    /// `api_key`.
    pub api_key: String,
    /// `jurisdiction_id`, if sent.
    pub jurisdiction_id: Option<String>,
    /// `service_code`.
    pub service_code: String,
    /// The other fields, by name (`attribute[code]` under its own name), api_key left out.
    fields: BTreeMap<String, String>,
    /// `attribute[code]` values.
    attributes: BTreeMap<String, String>,
    lat: f64,
    long: f64,
}

fn parse_degrees(name: &str, text: &str, limit: f64) -> Result<f64, FormError> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && v.abs() <= limit)
        .ok_or_else(|| FormError::Invalid {
            name: name.into(),
            reason: format!("{text:?} is not a number of degrees between -{limit} and {limit}"),
        })
}

impl RequestForm {
    /// Decodes and checks the body of a `POST requests` (`application/x-www-form-urlencoded`).
    /// A pure function of the bytes: the fuzz target `open311_form` calls it as the server does.
    pub fn from_body(body: &[u8]) -> Result<RequestForm, FormError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_bytes(body).map_err(|e| FormError::Malformed(e.to_string()))?;
        RequestForm::parse(pairs)
    }

    /// Checks the decoded pairs of an `application/x-www-form-urlencoded` body.
    pub fn parse(pairs: Vec<(String, String)>) -> Result<RequestForm, FormError> {
        let known = [
            "jurisdiction_id",
            "service_code",
            "lat",
            "long",
            "address_string",
            "address_id",
            "email",
            "device_id",
            "account_id",
            "first_name",
            "last_name",
            "phone",
            "description",
            "media_url",
        ];
        let mut api_key = None;
        let mut fields = BTreeMap::new();
        let mut attributes = BTreeMap::new();
        for (name, value) in pairs {
            let limit = if name == "description" {
                MAX_DESCRIPTION
            } else {
                MAX_FIELD
            };
            if value.chars().count() > limit {
                return Err(FormError::Invalid {
                    name,
                    reason: format!("longer than {limit} characters"),
                });
            }
            if name == "api_key" {
                api_key = Some(value);
            } else if let Some(code) = name
                .strip_prefix("attribute[")
                .and_then(|rest| rest.strip_suffix(']').or_else(|| rest.strip_suffix("][]")))
            {
                if code != OBSERVED_AT {
                    return Err(FormError::Invalid {
                        name: name.clone(),
                        reason: format!("no attribute {code:?} (the attributes: {OBSERVED_AT})"),
                    });
                }
                if attributes.insert(code.to_owned(), value).is_some() {
                    return Err(FormError::Invalid {
                        name,
                        reason: "given twice".into(),
                    });
                }
            } else if known.contains(&name.as_str()) {
                if fields.insert(name.clone(), value).is_some() {
                    return Err(FormError::Invalid {
                        name,
                        reason: "given twice".into(),
                    });
                }
            } else {
                return Err(FormError::Invalid {
                    name,
                    reason: "not a field of POST requests".into(),
                });
            }
        }
        let api_key = api_key
            .filter(|k| !k.trim().is_empty())
            .ok_or(FormError::NoKey)?;
        let service_code = fields
            .get("service_code")
            .filter(|c| !c.trim().is_empty())
            .cloned()
            .ok_or(FormError::Missing("service_code"))?;
        let (lat, long) = match (fields.get("lat"), fields.get("long")) {
            (Some(lat), Some(long)) => (
                parse_degrees("lat", lat, 90.0)?,
                parse_degrees("long", long, 180.0)?,
            ),
            (None, None) => {
                // The specification also allows address_string or address_id alone; with no
                // address registry or geocoder here, neither can place a report.
                let given = ["address_string", "address_id"]
                    .into_iter()
                    .find(|f| fields.get(*f).is_some_and(|v| !v.trim().is_empty()));
                return Err(FormError::Invalid {
                    name: given.unwrap_or("lat").into(),
                    reason: match given {
                        Some(f) => format!(
                            "lat and long are required: this endpoint cannot look up a place \
                             from {f} (no address registry or geocoder); send lat and long, and \
                             address_string beside them is kept as the request's address"
                        ),
                        None => "lat and long are required (the location of the problem)".into(),
                    },
                });
            }
            (Some(_), None) => return Err(FormError::Missing("long")),
            (None, Some(_)) => return Err(FormError::Missing("lat")),
        };
        if let Some(t) = attributes.get(OBSERVED_AT) {
            if DateTime::parse_from_rfc3339(t.trim()).is_err() {
                return Err(FormError::Invalid {
                    name: format!("attribute[{OBSERVED_AT}]"),
                    reason: format!("{t:?} is not an ISO 8601 date-time with a time zone"),
                });
            }
        }
        if let Some(url) = fields.get("media_url") {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(FormError::Invalid {
                    name: "media_url".into(),
                    reason: "must be an http or https URL".into(),
                });
            }
        }
        Ok(RequestForm {
            api_key,
            jurisdiction_id: fields.get("jurisdiction_id").cloned(),
            service_code,
            fields,
            attributes,
            lat,
            long,
        })
    }

    /// The report's id: the same form through the same key on the same day is the same report
    /// (a client's retry files nothing new), so the request id is a digest of them.
    pub fn request_id(&self, key_hash: &str, day: chrono::NaiveDate) -> String {
        let mut h = Sha256::new();
        h.update(key_hash.as_bytes());
        h.update(day.to_string().as_bytes());
        for (map, tag) in [(&self.fields, "f"), (&self.attributes, "a")] {
            for (k, v) in map {
                for part in [tag, k.as_str(), v.as_str()] {
                    h.update((part.len() as u64).to_le_bytes());
                    h.update(part.as_bytes());
                }
            }
        }
        let digest = h.finalize();
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("o311-{hex}")
    }

    /// The citizen report (GeoJSON Feature) this request becomes, with `id` and the time it
    /// arrived (`observed_at` when given).
    pub fn report(&self, id: &str, received_at: DateTime<Utc>) -> Value {
        let mut props = Map::new();
        props.insert("id".into(), json!(id));
        props.insert("category".into(), json!(self.service_code));
        let reported = self
            .attributes
            .get(OBSERVED_AT)
            .cloned()
            .unwrap_or_else(|| received_at.to_rfc3339_opts(SecondsFormat::Millis, true));
        props.insert("reported_at".into(), json!(reported));
        if let Some(d) = self
            .fields
            .get("description")
            .filter(|d| !d.trim().is_empty())
        {
            props.insert("description".into(), json!(d));
        }
        if let Some(a) = self
            .fields
            .get("address_string")
            .filter(|a| !a.trim().is_empty())
        {
            props.insert("address".into(), json!(a));
        }
        if let Some(m) = self.fields.get("media_url") {
            props.insert("media_url".into(), json!(m));
        }
        props.insert("channel".into(), json!("open311"));
        let name = [self.fields.get("first_name"), self.fields.get("last_name")]
            .into_iter()
            .flatten()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let mut contact = Map::new();
        if !name.is_empty() {
            contact.insert("name".into(), json!(name));
        }
        for f in ["email", "phone"] {
            if let Some(v) = self.fields.get(f).filter(|v| !v.trim().is_empty()) {
                contact.insert(f.into(), json!(v.trim()));
            }
        }
        if !contact.is_empty() {
            props.insert("contact".into(), Value::Object(contact));
        }
        json!({
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [self.long, self.lat]},
            "properties": props,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_form_becomes_a_citizen_report_without_its_key() {
        let form = RequestForm::parse(pairs(&[
            ("api_key", "k"),
            ("service_code", "pothole"),
            ("lat", "45.6419"),
            ("long", "25.5887"),
            ("description", "Groapă"),
            ("first_name", "Ana"),
            ("last_name", "Pop"),
            ("email", "ana@example.org"),
            ("attribute[observed_at]", "2026-11-22T10:00:00+02:00"),
        ]))
        .expect("valid");
        let report = form.report("o311-1", Utc::now());
        assert_eq!(report["geometry"]["coordinates"], json!([25.5887, 45.6419]));
        assert_eq!(
            report["properties"]["reported_at"],
            "2026-11-22T10:00:00+02:00"
        );
        assert_eq!(report["properties"]["contact"]["name"], "Ana Pop");
        assert!(!report.to_string().contains("\"k\""));
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).expect("date");
        assert_eq!(form.request_id("h", day), form.request_id("h", day));
        assert_ne!(form.request_id("h", day), form.request_id("other", day));
    }

    #[test]
    fn forms_are_refused_with_the_reason() {
        let base = [
            ("service_code", "pothole"),
            ("lat", "45.6"),
            ("long", "25.6"),
        ];
        assert_eq!(
            RequestForm::parse(pairs(&base)),
            Err(FormError::NoKey),
            "no api_key"
        );
        let mut no_place = pairs(&[("api_key", "k"), ("service_code", "pothole")]);
        assert!(RequestForm::parse(no_place.clone()).is_err());
        no_place.push(("lat".into(), "91".into()));
        no_place.push(("long".into(), "25".into()));
        assert!(RequestForm::parse(no_place).is_err());
        let mut unknown = pairs(&base);
        unknown.push(("api_key".into(), "k".into()));
        unknown.push(("attribute[colour]".into(), "red".into()));
        assert!(RequestForm::parse(unknown).is_err());
        let mut long = pairs(&base);
        long.push(("api_key".into(), "k".into()));
        long.push(("description".into(), "x".repeat(MAX_DESCRIPTION + 1)));
        assert!(RequestForm::parse(long).is_err());
    }

    #[test]
    fn an_address_alone_is_refused_naming_it_and_kept_beside_a_position() {
        for field in ["address_string", "address_id"] {
            let err = RequestForm::parse(pairs(&[
                ("api_key", "k"),
                ("service_code", "pothole"),
                (field, "Strada Republicii 10"),
            ]))
            .expect_err("no position");
            let FormError::Invalid { name, reason } = &err else {
                panic!("{err:?}");
            };
            assert_eq!(name, field);
            assert!(reason.starts_with("lat and long are required"), "{reason}");
            assert!(reason.contains("geocoder"), "{reason}");
        }
        let err = RequestForm::parse(pairs(&[("api_key", "k"), ("service_code", "pothole")]))
            .expect_err("no position");
        assert_eq!(
            err.to_string(),
            "lat: lat and long are required (the location of the problem)"
        );
        let form = RequestForm::parse(pairs(&[
            ("api_key", "k"),
            ("service_code", "pothole"),
            ("lat", "45.6419"),
            ("long", "25.5887"),
            ("address_string", "Strada Republicii 10"),
        ]))
        .expect("valid");
        let report = form.report("o311-1", Utc::now());
        assert_eq!(report["properties"]["address"], "Strada Republicii 10");
        assert_eq!(
            report["geometry"]["coordinates"],
            serde_json::json!([25.5887, 45.6419])
        );
    }

    #[test]
    fn a_body_is_decoded_then_checked() {
        let form = RequestForm::from_body(
            b"api_key=k&service_code=pothole&lat=45.64&long=25.59&description=Groap%C4%83+mare",
        );
        let report = form.map(|f| f.report("o311-1", Utc::now()));
        assert_eq!(
            report
                .as_ref()
                .ok()
                .map(|r| r["properties"]["description"].clone()),
            Some(json!("Groapă mare")),
            "{report:?}"
        );
        // Bytes that are not UTF-8 are decoded as U+FFFD (the service code is then unknown).
        assert_eq!(
            RequestForm::from_body(b"api_key=k&service_code=%FF&lat=1&long=2")
                .map(|f| f.service_code),
            Ok("\u{fffd}".to_owned())
        );
        assert_eq!(
            RequestForm::from_body(b"service_code=pothole&lat=1&long=2"),
            Err(FormError::NoKey)
        );
    }

    #[test]
    fn xml_is_escaped_and_empty_fields_are_empty_elements() {
        let errors = vec![Error {
            code: 400,
            description: "a <b> & \"c\"".into(),
        }];
        assert_eq!(
            errors.xml(),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><errors><error><code>400</code>\
             <description>a &lt;b&gt; &amp; &quot;c&quot;</description></error></errors>"
        );
        let created = vec![Created {
            service_request_id: "o311-1".into(),
            service_notice: "n".into(),
            account_id: None,
        }];
        assert!(created.xml().contains("<account_id/>"));
        assert_eq!(created.json()[0]["service_request_id"], "o311-1");
    }
}
