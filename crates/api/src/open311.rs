//! Open311 GeoReport v2 at `/open311/v2/`: `discovery`, `services`, `services/{code}`,
//! `POST requests`, `GET requests`, `requests/{id}` and `tokens/{token}`, each in `.json` and
//! `.xml` (wire types in `protocol::open311`).
//!
//! A request filed here becomes a citizen report (the same GeoJSON Feature as on the MQTT topic),
//! parsed by the same `protocol::inbound::citizen_report` and taken by the same engine; the answer
//! comes after commit. Its id is a digest of the form, the key and the day, so a client's retry
//! files nothing new. Errors are the specification's arrays: 404 unknown resource, 403 missing or
//! bad `api_key`, 400 anything else (503 while the store is down).
//!
//! `GET requests` answers the newest first, by default those received in the last 90 days and at
//! most 1000 of them (the specification's defaults); the common extension `page` (from 1) and
//! `page_size` (1 to 1000, default 1000) pages through the same list. A `service_request_id` list
//! overrides every other parameter, paging included.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use engine::feeds::FeedOutcome;
use engine::{EngineError, IngestOutcome};
use model::{City, IncidentStatus};
use protocol::open311::{
    self, datetime, Created, Discovery, Document, Endpoint, Error, FormError, Format, RequestForm,
    Service, ServiceDefinition, ServiceRequest, TokenAnswer,
};
use store::{CitizenRequest, NewDeadLetter, RequestFilter};

use crate::ingest::Scope;
use crate::AppState;

/// Largest `POST requests` body, in bytes.
pub const MAX_BODY: usize = 64 * 1024;
/// Most requests one `GET requests` answers (the specification's default cap).
const MAX_REQUESTS: u32 = 1000;
/// The longest span of `start_date`..`end_date`, and the default window.
const WINDOW: Duration = Duration::days(90);
/// The feed that counts requests filed here.
const FEED: &str = "citizen:open311";

/// An Open311 error answer.
#[derive(Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    description: String,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, description: impl Into<String>) -> Self {
        Refusal {
            status,
            description: description.into(),
        }
    }
    /// The same refusal as `application/problem+json`, for the REST API.
    pub(crate) fn into_problem(self) -> crate::Problem {
        match self.status {
            StatusCode::SERVICE_UNAVAILABLE => crate::Problem::unavailable(self.description),
            StatusCode::INTERNAL_SERVER_ERROR => crate::Problem::internal(self.description),
            StatusCode::NOT_FOUND => crate::Problem::not_found(self.description),
            StatusCode::FORBIDDEN => crate::Problem::forbidden(self.description),
            _ => crate::Problem::bad_request(self.description),
        }
    }
    fn bad(description: impl Into<String>) -> Self {
        Refusal::new(StatusCode::BAD_REQUEST, description)
    }
    fn not_found(description: impl Into<String>) -> Self {
        Refusal::new(StatusCode::NOT_FOUND, description)
    }
    fn in_format(self, format: Format) -> Response {
        let errors = vec![Error {
            code: self.status.as_u16(),
            description: self.description,
        }];
        answer(self.status, format, &errors)
    }
}

impl From<store::StoreError> for Refusal {
    fn from(e: store::StoreError) -> Self {
        match e {
            store::StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "open311: store unavailable");
                Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the service is unavailable; try again shortly",
                )
            }
            other => {
                tracing::error!(error = %other, "open311: internal error");
                Refusal::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the server failed to answer; the error was logged",
                )
            }
        }
    }
}

fn answer(status: StatusCode, format: Format, doc: &dyn Document) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, format.content_type())],
        doc.render(format),
    )
        .into_response()
}

/// `name.json` / `name.xml`, or a 404 in the format the path suggests.
fn split(file: &str) -> Result<(&str, Format), Refusal> {
    Format::split(file).ok_or_else(|| {
        Refusal::not_found(format!(
            "{file:?}: the format is chosen by the suffix, .xml or .json"
        ))
    })
}

fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, Refusal> {
    serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| Refusal::bad(format!("the query string is malformed: {e}")))
}

/// Checks `jurisdiction_id` (optional: this endpoint serves one city) and refuses parameters the
/// resource does not take.
fn check_params(pairs: &[(String, String)], city: &City, allowed: &[&str]) -> Result<(), Refusal> {
    for (name, value) in pairs {
        if name == "jurisdiction_id" {
            if value != &city.id {
                return Err(Refusal::bad(format!(
                    "jurisdiction_id {value:?} is not served here (this endpoint serves {:?})",
                    city.id
                )));
            }
        } else if name != "api_key" && !allowed.contains(&name.as_str()) {
            return Err(Refusal::bad(format!("unknown parameter {name:?}")));
        }
    }
    Ok(())
}

fn services(city: &City) -> Vec<Service> {
    let lang = city.default_language;
    city.categories
        .iter()
        .map(|c| {
            let others: Vec<&str> = city
                .languages
                .iter()
                .filter(|l| **l != lang)
                .map(|l| c.name.get(*l))
                .collect();
            let mut keywords = vec![c.id.as_str().replace('_', " "), c.family.clone()];
            keywords.extend([c.name.ro.clone(), c.name.en.clone()]);
            Service {
                service_code: c.id.to_string(),
                service_name: c.name.get(lang).to_owned(),
                description: others.join(" / "),
                metadata: true,
                kind: "realtime".into(),
                keywords: keywords.join(","),
                group: c.family.clone(),
            }
        })
        .collect()
}

/// Our state in words, for `status_notes`.
fn notes(status: IncidentStatus) -> &'static str {
    match status {
        IncidentStatus::New => "new: received, not yet given to an agency",
        IncidentStatus::Assigned => "assigned: given to the agency responsible",
        IncidentStatus::Acknowledged => "acknowledged: the agency responsible has taken it",
        IncidentStatus::InProgress => "in_progress: the agency is working on it",
        IncidentStatus::Resolved => "resolved: the agency reports it fixed",
        IncidentStatus::Closed => "closed: fixed and closed",
        IncidentStatus::Rejected => "rejected: not a problem the city can act on",
        IncidentStatus::Duplicate => "duplicate: the same problem is followed in another report",
        IncidentStatus::Reopened => "reopened: it was reported fixed, then found not to be",
    }
}

/// A stored report as a service request (nothing personal: contacts are not read here).
pub(crate) fn service_request(city: &City, r: &CitizenRequest) -> ServiceRequest {
    let lang = city.default_language;
    let props: Value = serde_json::from_str::<Value>(&r.payload)
        .ok()
        .and_then(|v| v.get("properties").cloned())
        .unwrap_or(Value::Null);
    let text = |name: &str| props.get(name).and_then(Value::as_str).map(str::to_owned);
    let incident = &r.incident;
    let open = incident.status.is_open();
    ServiceRequest {
        service_request_id: r.id.clone(),
        status: if open { "open" } else { "closed" }.into(),
        status_notes: notes(incident.status).into(),
        service_name: city
            .category(&r.category)
            .map(|c| c.name.get(lang).to_owned())
            .unwrap_or_else(|| r.category.clone()),
        service_code: r.category.clone(),
        description: text("description"),
        agency_responsible: city
            .agency(incident.agency.as_str())
            .map(|a| a.name.get(lang).to_owned())
            .unwrap_or_else(|| incident.agency.to_string()),
        service_notice: None,
        requested_datetime: datetime(r.received_at),
        updated_datetime: datetime(incident.updated_at.max(r.received_at)),
        expected_datetime: incident.sla.resolve_due.filter(|_| open).map(datetime),
        address: text("address"),
        address_id: None,
        zipcode: None,
        lat: r.lat,
        long: r.lon,
        media_url: text("media_url"),
    }
}

/// `GET /open311/v2/{discovery|services|requests}.{fmt}`.
pub async fn get_top(
    State(state): State<AppState>,
    Path(file): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (stem, format) = match split(&file) {
        Ok(s) => s,
        Err(r) => return r.in_format(Format::Xml),
    };
    let result = match stem {
        "discovery" => discovery(&state, query.as_deref(), &headers, format),
        "services" => list_services(&state, query.as_deref(), format),
        "requests" => list_requests(&state, query.as_deref(), format).await,
        _ => Err(Refusal::not_found(format!("no resource {file:?}"))),
    };
    result.unwrap_or_else(|r| r.in_format(format))
}

fn discovery(
    state: &AppState,
    query: Option<&str>,
    headers: &HeaderMap,
    format: Format,
) -> Result<Response, Refusal> {
    let city = state.engine.city().city();
    check_params(&query_pairs(query)?, city, &[])?;
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let changeset = "2026-11-29T00:00:00Z".to_owned();
    let doc = Discovery {
        changeset: changeset.clone(),
        contact: format!(
            "{}: the dispatch center",
            city.name.get(city.default_language)
        ),
        key_service: "An api_key is made by the city's administrator: \
                      dispecer token create --citizens-app"
            .into(),
        endpoints: vec![Endpoint {
            specification: "http://wiki.open311.org/GeoReport_v2".into(),
            url: format!("http://{host}/open311/v2"),
            changeset,
            kind: "production".into(),
            formats: vec!["text/xml".into(), "application/json".into()],
        }],
    };
    Ok(answer(StatusCode::OK, format, &doc))
}

fn list_services(
    state: &AppState,
    query: Option<&str>,
    format: Format,
) -> Result<Response, Refusal> {
    let city = state.engine.city().city();
    check_params(&query_pairs(query)?, city, &[])?;
    Ok(answer(StatusCode::OK, format, &services(city)))
}

fn parse_date(name: &str, text: &str) -> Result<DateTime<Utc>, Refusal> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            Refusal::bad(format!(
                "{name} {text:?} is not a W3C date-time with a time zone \
                 (e.g. 2026-11-22T10:00:00+02:00)"
            ))
        })
}

/// A `page` or `page_size`: a whole number from 1 to `max`.
fn paging(name: &str, text: Option<&str>, max: u32) -> Result<Option<u32>, Refusal> {
    text.map(|t| {
        t.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                Refusal::bad(format!(
                    "{name} {t:?} must be a whole number from 1 to {max}"
                ))
            })
    })
    .transpose()
}

async fn list_requests(
    state: &AppState,
    query: Option<&str>,
    format: Format,
) -> Result<Response, Refusal> {
    let city = state.engine.city().city();
    let pairs = query_pairs(query)?;
    check_params(
        &pairs,
        city,
        &[
            "service_request_id",
            "service_code",
            "start_date",
            "end_date",
            "status",
            "page",
            "page_size",
        ],
    )?;
    let param = |name: &str| -> Result<Option<&str>, Refusal> {
        let mut values = pairs.iter().filter(|(n, _)| n == name);
        let first = values.next().map(|(_, v)| v.as_str());
        if values.next().is_some() {
            return Err(Refusal::bad(format!("{name} given twice")));
        }
        Ok(first)
    };
    let mut filter = RequestFilter {
        limit: MAX_REQUESTS,
        ..RequestFilter::default()
    };
    // The common `page`/`page_size` extension: pages of the same newest-first list, 1-based.
    let page = paging("page", param("page")?, u32::MAX)?.unwrap_or(1);
    let page_size = paging("page_size", param("page_size")?, MAX_REQUESTS)?;
    if let Some(ids) = param("service_request_id")? {
        // The list overrides every other parameter.
        filter.ids = ids
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .map(str::to_owned)
            .collect();
        if filter.ids.is_empty() || filter.ids.len() > MAX_REQUESTS as usize {
            return Err(Refusal::bad(format!(
                "service_request_id must list 1 to {MAX_REQUESTS} ids, comma-separated"
            )));
        }
    } else {
        if let Some(code) = param("service_code")? {
            if city.category(code).is_none() {
                return Err(Refusal::bad(format!(
                    "service_code {code:?} is not a service here"
                )));
            }
            filter.category = Some(code.to_owned());
        }
        let start = param("start_date")?
            .map(|t| parse_date("start_date", t))
            .transpose()?;
        let end = param("end_date")?
            .map(|t| parse_date("end_date", t))
            .transpose()?;
        let (from, to) = match (start, end) {
            (Some(s), Some(e)) => (s, e),
            (Some(s), None) => (s, s + WINDOW),
            (None, Some(e)) => (e - WINDOW, e),
            (None, None) => {
                let now = Utc::now();
                (now - WINDOW, now)
            }
        };
        if from > to {
            return Err(Refusal::bad("start_date must not be after end_date"));
        }
        if to - from > WINDOW {
            return Err(Refusal::bad(
                "start_date and end_date may be at most 90 days apart",
            ));
        }
        filter.from = Some(from);
        filter.to = Some(to);
        if let Some(size) = page_size {
            filter.limit = size;
        }
        filter.offset = (page - 1)
            .checked_mul(filter.limit)
            .ok_or_else(|| Refusal::bad(format!("page {page} is beyond any list of requests")))?;
        if let Some(status) = param("status")? {
            for s in status.split(',').map(str::trim) {
                let open = match s {
                    "open" => true,
                    "closed" => false,
                    other => {
                        return Err(Refusal::bad(format!(
                            "status {other:?} must be open or closed"
                        )))
                    }
                };
                filter.statuses.extend(
                    IncidentStatus::ALL
                        .into_iter()
                        .filter(|st| st.is_open() == open),
                );
            }
        }
    }
    let found = state.store.citizen_requests(&filter).await?;
    let doc: Vec<ServiceRequest> = found.iter().map(|r| service_request(city, r)).collect();
    Ok(answer(StatusCode::OK, format, &doc))
}

/// `GET /open311/v2/services/{code}.{fmt}`.
pub async fn service_definition(
    State(state): State<AppState>,
    Path(file): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let (code, format) = match split(&file) {
        Ok(s) => s,
        Err(r) => return r.in_format(Format::Xml),
    };
    let city = state.engine.city().city();
    let result = query_pairs(query.as_deref())
        .and_then(|p| check_params(&p, city, &[]))
        .and_then(|()| {
            city.category(code)
                .map(|c| ServiceDefinition {
                    service_code: c.id.to_string(),
                    attributes: open311::attributes(),
                })
                .ok_or_else(|| Refusal::not_found(format!("no service {code:?}")))
        });
    match result {
        Ok(doc) => answer(StatusCode::OK, format, &doc),
        Err(r) => r.in_format(format),
    }
}

/// `GET /open311/v2/requests/{id}.{fmt}`.
pub async fn request(
    State(state): State<AppState>,
    Path(file): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let (id, format) = match split(&file) {
        Ok(s) => s,
        Err(r) => return r.in_format(Format::Xml),
    };
    let city = state.engine.city().city();
    let result = async {
        check_params(&query_pairs(query.as_deref())?, city, &[])?;
        let found = state
            .store
            .citizen_request(id)
            .await?
            .ok_or_else(|| Refusal::not_found(format!("no service request {id:?}")))?;
        Ok::<_, Refusal>(vec![service_request(city, &found)])
    }
    .await;
    match result {
        Ok(doc) => answer(StatusCode::OK, format, &doc),
        Err(r) => r.in_format(format),
    }
}

/// `GET /open311/v2/tokens/{token}.{fmt}`: requests are committed before they are answered, so a
/// token is never needed; the request id works as its own token.
pub async fn token(
    State(state): State<AppState>,
    Path(file): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let (token, format) = match split(&file) {
        Ok(s) => s,
        Err(r) => return r.in_format(Format::Xml),
    };
    let city = state.engine.city().city();
    let result = async {
        check_params(&query_pairs(query.as_deref())?, city, &[])?;
        let found = state
            .store
            .citizen_request(token)
            .await?
            .ok_or_else(|| Refusal::not_found(format!("no token {token:?}")))?;
        Ok::<_, Refusal>(vec![TokenAnswer {
            service_request_id: found.id,
            token: token.to_owned(),
        }])
    }
    .await;
    match result {
        Ok(doc) => answer(StatusCode::OK, format, &doc),
        Err(r) => r.in_format(format),
    }
}

/// `POST /open311/v2/requests.{fmt}` (form-encoded).
pub async fn post_top(
    State(state): State<AppState>,
    Path(file): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (stem, format) = match split(&file) {
        Ok(s) => s,
        Err(r) => return r.in_format(Format::Xml),
    };
    if stem != "requests" {
        return Refusal::not_found(format!("nothing to POST at {file:?}")).in_format(format);
    }
    match create(&state, &headers, body).await {
        Ok(created) => answer(StatusCode::OK, format, &vec![created]),
        Err(r) => r.in_format(format),
    }
}

async fn create(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Created, Refusal> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Refusal::bad(format!("the body is larger than {MAX_BODY} bytes"))
        } else {
            Refusal::bad(e.body_text())
        }
    })?;
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
        .unwrap_or(false);
    if !form_type {
        return Err(Refusal::bad(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let form = RequestForm::from_body(&body).map_err(|e| match e {
        FormError::NoKey => Refusal::new(StatusCode::FORBIDDEN, e.to_string()),
        other => Refusal::bad(other.to_string()),
    })?;
    let key_hash = store::hash_token(&form.api_key);
    let scope = state.store.token_scope(&key_hash).await?;
    if !matches!(
        scope.as_deref().and_then(Scope::parse),
        Some(Scope::CitizensApp)
    ) {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "api_key is not valid for filing requests (unknown, revoked, or not a citizens' \
             app's key)",
        ));
    }
    let city = state.engine.city().city();
    if let Some(j) = &form.jurisdiction_id {
        if j != &city.id {
            return Err(Refusal::bad(format!(
                "jurisdiction_id {j:?} is not served here (this endpoint serves {:?})",
                city.id
            )));
        }
    }
    if city.category(&form.service_code).is_none() {
        return Err(Refusal::bad(format!(
            "service_code {:?} is not a service here",
            form.service_code
        )));
    }
    let now = Utc::now();
    let id = form.request_id(&key_hash, now.date_naive());
    let report = form.report(&id, now).to_string();
    file_report(state, report.as_bytes(), FEED, "/open311/v2/requests", now).await?;
    Ok(Created {
        service_request_id: id,
        service_notice: "Sesizarea a fost înregistrată. / The report was recorded.".into(),
        account_id: None,
    })
}

/// Files a citizen report (the GeoJSON Feature of the MQTT topic) through the same parser and
/// engine as the MQTT adapter, and returns only once it is durable. A report seen before is
/// accepted again without effect. Refusals are dead-lettered with their reason.
pub(crate) async fn file_report(
    state: &AppState,
    report: &[u8],
    feed: &str,
    path: &str,
    now: DateTime<Utc>,
) -> Result<IngestOutcome, Refusal> {
    let city = state.engine.city().city();
    let refusal = match protocol::inbound::citizen_report(report, city, now) {
        Ok(event) => match state.engine.ingest(event).await {
            Ok(outcome) => {
                let counted = if matches!(outcome, IngestOutcome::Duplicate) {
                    FeedOutcome::Duplicate
                } else {
                    FeedOutcome::Accepted
                };
                state.engine.feeds().record(feed, counted, now, Some(now));
                return Ok(outcome);
            }
            Err(EngineError::Refused(reason)) => reason,
            Err(e @ EngineError::UnknownCategory(_)) => e.to_string(),
            Err(e) => {
                tracing::warn!(error = %e, "citizen report not taken");
                return Err(Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the report could not be stored now; send it again shortly",
                ));
            }
        },
        Err(e) => e.to_string(),
    };
    state
        .engine
        .feeds()
        .record(feed, FeedOutcome::Rejected, now, None);
    // The logged payload must not keep the citizen's contact details: only the reason and the
    // path are kept for a refused report.
    state
        .store
        .record_dead_letter(&NewDeadLetter {
            received_at: now,
            channel: "http".into(),
            topic: path.to_owned(),
            payload: Vec::new(),
            reason: refusal.clone(),
        })
        .await?;
    Err(Refusal::bad(refusal))
}

/// A write refused by the rate limiter: 429 in the format the path suggests.
pub(crate) fn too_many(path: &str, description: String) -> Response {
    Refusal::new(StatusCode::TOO_MANY_REQUESTS, description).in_format(Format::of_path(path))
}

/// Anything else under `/open311/`: a 404 in the format the path suggests.
pub async fn not_found(uri: Uri) -> Response {
    Refusal::not_found(format!("no Open311 resource at {}", uri.path()))
        .in_format(Format::of_path(uri.path()))
}
