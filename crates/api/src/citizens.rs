//! The citizens' page's API: `POST /api/v1/reports` (multipart: a report with an optional photo),
//! `GET /api/v1/public/reports/{code}` (its status by tracking code), `GET
//! /api/v1/public/incidents` (the public map) and, for staff only, `GET
//! /api/v1/reports/{code}/photo`.
//!
//! A report filed here takes the journey of an Open311 request and an MQTT report
//! ([`crate::open311::file_report`]): the same parser, engine and commit before the answer. The
//! form's `id` (chosen once per form by the page) makes a retry harmless. The photo is stripped
//! of its metadata ([`crate::photo`]) before it is stored. Public answers carry no description,
//! contact or photo.

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::Json;
use chrono::Utc;
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use model::{IncidentStatus, Language};
use protocol::incident::{timestamp, PointGeometry};
use store::{IncidentFilter, Photo, Role};

use crate::accounts::{reader, Caller};
use crate::ingest::Scope;
use crate::photo::{strip, MAX_PHOTO};
use crate::{AppState, Problem};

/// Largest request body: the photo and the fields.
pub const MAX_BODY: usize = MAX_PHOTO + 64 * 1024;
/// The feed that counts reports filed through the page.
const FEED: &str = "citizen:web";
/// The event id prefix of reports filed here (after `citizen:`).
const PREFIX: &str = "web-";

/// The form of `POST /api/v1/reports` (multipart/form-data).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // describes the form for the document; the handler reads the parts
pub struct ReportForm {
    /// Chosen once per form by the client (8 to 64 letters, digits or `-`): a retry with the same
    /// id files nothing new.
    #[schema(pattern = "^[A-Za-z0-9-]{8,64}$")]
    id: String,
    /// Category id.
    category: String,
    /// Latitude, degrees.
    lat: f64,
    /// Longitude, degrees.
    lon: f64,
    /// What is wrong (at most 4000 characters).
    description: Option<String>,
    /// Contact: name (personal data, shown to staff only).
    name: Option<String>,
    /// Contact: e-mail.
    email: Option<String>,
    /// Contact: phone.
    phone: Option<String>,
    /// A JPEG or PNG photo, at most 5 MB; its metadata is removed before storage.
    #[schema(value_type = Option<String>, format = Binary)]
    photo: Option<Vec<u8>>,
}

/// The answer to a filed report.
#[derive(Debug, Serialize, ToSchema)]
pub struct Filed {
    /// The tracking code (also the Open311 `service_request_id`).
    pub tracking_code: String,
    /// Whether a photo was stored with it.
    pub photo: bool,
}

/// A report's status, for anyone who has its code: nothing personal.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicReport {
    /// The tracking code.
    pub tracking_code: String,
    /// Category id.
    pub category: String,
    /// `open` or `closed`.
    pub status: String,
    /// Dispecer's state (`assigned`, `acknowledged`, `in_progress`, `resolved`, …).
    pub state: String,
    /// The agency responsible, in Romanian and English.
    pub agency: protocol::city::Names,
    /// RFC 3339.
    pub received_at: String,
    /// RFC 3339: the incident's last change.
    pub updated_at: String,
    /// RFC 3339: when it is due to be resolved, while open.
    pub expected_at: Option<String>,
}

/// An open incident on the public map: nothing personal, no free text.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicIncidentProperties {
    /// Category id.
    pub category: String,
    /// Dispecer's state.
    pub status: String,
    /// RFC 3339.
    pub opened_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// A GeoJSON Feature of the public map.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicIncident {
    /// Always `Feature`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Where.
    pub geometry: PointGeometry,
    /// What.
    pub properties: PublicIncidentProperties,
}

/// The public map: open incidents.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicIncidents {
    /// Always `FeatureCollection`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The open incidents.
    pub features: Vec<PublicIncident>,
}

fn valid_client_id(id: &str) -> bool {
    (8..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// File a citizen's report (the citizens' page).
#[utoipa::path(post, path = "/api/v1/reports", tag = "citizens",
    request_body(content = ReportForm, content_type = "multipart/form-data"),
    responses(
    (status = 200, description = "Filed and durable; the tracking code", body = Filed),
    (status = 400, description = "A field is missing or wrong", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 413, description = "The photo or the body is too large", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 415, description = "The photo is not a JPEG or PNG image", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 429, description = "Too many reports from this client address; see Retry-After", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 503, description = "The store is unavailable", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
pub async fn file(
    State(state): State<AppState>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Json<Filed>, Problem> {
    let mut form = form.map_err(|e| Problem::bad_request(e.body_text()))?;
    let mut fields: Map<String, Value> = Map::new();
    let mut photo: Option<Vec<u8>> = None;
    while let Some(field) = form.next_field().await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            Problem::too_large(format!("the form is larger than {MAX_BODY} bytes"))
        } else {
            Problem::bad_request(e.body_text())
        }
    })? {
        let name = field.name().unwrap_or("").to_owned();
        let bytes = field.bytes().await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Problem::too_large(format!("the form is larger than {MAX_BODY} bytes"))
            } else {
                Problem::bad_request(e.body_text())
            }
        })?;
        match name.as_str() {
            "photo" if bytes.is_empty() => {}
            "photo" if photo.is_some() => return Err(Problem::bad_request("one photo at most")),
            "photo" => photo = Some(bytes.to_vec()),
            "id" | "category" | "lat" | "lon" | "description" | "name" | "email" | "phone" => {
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| Problem::bad_request(format!("{name} is not UTF-8 text")))?;
                if fields.insert(name.clone(), Value::String(text)).is_some() {
                    return Err(Problem::bad_request(format!("{name} given twice")));
                }
            }
            other => {
                return Err(Problem::bad_request(format!(
                    "unknown field {other:?} (expected id, category, lat, lon, description, \
                     name, email, phone, photo)"
                )))
            }
        }
    }
    let text = |name: &str| fields.get(name).and_then(Value::as_str).map(str::trim);
    let id = text("id").ok_or_else(|| Problem::bad_request("id is required"))?;
    if !valid_client_id(id) {
        return Err(Problem::bad_request(
            "id must be 8 to 64 letters, digits or '-'",
        ));
    }
    let degrees = |name: &str| -> Result<f64, Problem> {
        text(name)
            .ok_or_else(|| Problem::bad_request(format!("{name} is required")))?
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| Problem::bad_request(format!("{name} must be a number of degrees")))
    };
    let (lat, lon) = (degrees("lat")?, degrees("lon")?);
    let photo = match photo {
        None => None,
        Some(p) if p.len() > MAX_PHOTO => {
            return Err(Problem::too_large(format!(
                "the photo is {} bytes; at most {MAX_PHOTO}",
                p.len()
            )))
        }
        Some(p) => {
            let (data, mime) = strip(&p).map_err(|e| match e {
                crate::photo::PhotoError::Unsupported => {
                    Problem::unsupported_media_type(e.to_string())
                }
                other => Problem::bad_request(other.to_string()),
            })?;
            Some(Photo {
                content_type: mime.to_owned(),
                data,
            })
        }
    };
    let code = format!("{PREFIX}{id}");
    let mut props = Map::new();
    props.insert("id".into(), json!(code));
    props.insert(
        "category".into(),
        json!(text("category").unwrap_or_default()),
    );
    let now = Utc::now();
    props.insert("reported_at".into(), json!(timestamp(now)));
    props.insert("channel".into(), json!("web"));
    if let Some(d) = text("description").filter(|d| !d.is_empty()) {
        props.insert("description".into(), json!(d));
    }
    let mut contact = Map::new();
    for f in ["name", "email", "phone"] {
        if let Some(v) = text(f).filter(|v| !v.is_empty()) {
            contact.insert(f.into(), json!(v));
        }
    }
    if !contact.is_empty() {
        props.insert("contact".into(), Value::Object(contact));
    }
    let report = json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": props});
    crate::open311::file_report(
        &state,
        report.to_string().as_bytes(),
        FEED,
        "/api/v1/reports",
        now,
    )
    .await
    .map_err(|r| r.into_problem())?;
    let has_photo = photo.is_some();
    if let Some(photo) = photo {
        state
            .store
            .record_photo(&format!("citizen:{code}"), &photo, now)
            .await?;
    }
    Ok(Json(Filed {
        tracking_code: code,
        photo: has_photo,
    }))
}

/// A report's status by its tracking code (nothing personal).
#[utoipa::path(get, path = "/api/v1/public/reports/{code}", tag = "citizens",
    params(("code" = String, Path, description = "Tracking code")), responses(
    (status = 200, description = "The report's status", body = PublicReport),
    (status = 404, description = "No report with this code", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 503, description = "The store is unavailable", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
pub async fn status(
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Result<Json<PublicReport>, Problem> {
    let found = state
        .store
        .citizen_request(&code)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no report with the code {code:?}")))?;
    let city = state.engine.city().city();
    let incident = &found.incident;
    let open = incident.status.is_open();
    let agency = city.agency(incident.agency.as_str());
    let name = |lang: Language| {
        agency
            .map(|a| a.name.get(lang).to_owned())
            .unwrap_or_else(|| incident.agency.to_string())
    };
    Ok(Json(PublicReport {
        tracking_code: found.id.clone(),
        category: found.category.clone(),
        status: if open { "open" } else { "closed" }.into(),
        state: incident.status.as_str().into(),
        agency: protocol::city::Names {
            ro: name(Language::Ro),
            en: name(Language::En),
        },
        received_at: timestamp(found.received_at),
        updated_at: timestamp(incident.updated_at.max(found.received_at)),
        expected_at: incident.sla.resolve_due.filter(|_| open).map(timestamp),
    }))
}

/// The open incidents for the public map (category, state, place, times; nothing else).
#[utoipa::path(get, path = "/api/v1/public/incidents", tag = "citizens", responses(
    (status = 200, description = "Open incidents", body = PublicIncidents, content_type = "application/geo+json"),
    (status = 503, description = "The store is unavailable", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
pub async fn public_incidents(State(state): State<AppState>) -> Result<impl IntoResponse, Problem> {
    let filter = IncidentFilter {
        statuses: IncidentStatus::ALL
            .into_iter()
            .filter(|s| s.is_open())
            .collect(),
        ..IncidentFilter::default()
    };
    let incidents = state.store.incidents(&filter).await?;
    let doc = PublicIncidents {
        kind: "FeatureCollection".into(),
        features: incidents
            .iter()
            .map(|i| PublicIncident {
                kind: "Feature".into(),
                geometry: PointGeometry::new(i.location.x(), i.location.y()),
                properties: PublicIncidentProperties {
                    category: i.category.to_string(),
                    status: i.status.as_str().into(),
                    opened_at: timestamp(i.opened_at),
                    updated_at: timestamp(i.updated_at),
                },
            })
            .collect(),
    };
    Ok(([(header::CONTENT_TYPE, "application/geo+json")], Json(doc)))
}

/// A report's photo: staff only (an operator's token or an operator's, supervisor's or admin's
/// session; the token or a user of the agency its incident is assigned to).
#[utoipa::path(get, path = "/api/v1/reports/{code}/photo", tag = "citizens",
    params(("code" = String, Path, description = "Tracking code")),
    security(("api_token" = []), ("session" = [])), responses(
    (status = 200, description = "The photo, without metadata", content_type = "image/jpeg"),
    (status = 401, description = "No or a bad API token, and no session", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 403, description = "The token or the user may not see this photo", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 404, description = "No such report or no photo", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 503, description = "The store is unavailable", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
pub async fn photo(
    State(state): State<AppState>,
    Path(code): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    let caller = reader(&state, &headers).await?;
    let found = state
        .store
        .citizen_request(&code)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no report with the code {code:?}")))?;
    let responsible = found.incident.agency.as_str();
    match caller {
        Caller::Token(Scope::Operator, _) => {}
        Caller::Token(Scope::Agency(a), _) if a == responsible => {}
        Caller::Session(s)
            if matches!(s.role, Role::Operator | Role::Supervisor | Role::Admin)
                || (s.role == Role::Agency && s.agency.as_deref() == Some(responsible)) => {}
        _ => {
            return Err(Problem::forbidden(
                "citizens' photos are shown only to operators and to the agency responsible",
            ))
        }
    }
    let photo = state
        .store
        .photo(&format!("citizen:{code}"))
        .await?
        .ok_or_else(|| Problem::not_found(format!("report {code:?} has no photo")))?;
    Ok((
        [
            (header::CONTENT_TYPE, photo.content_type),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
        ],
        photo.data,
    ))
}
