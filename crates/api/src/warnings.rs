//! Public warnings, for anyone (no authentication, no personal data: the texts are the
//! operator's, the place a district's name and an area):
//!
//! - `GET /api/v1/public/warnings`: the active warnings and those cancelled in the last
//!   [`RECENT_CANCELS_DAYS`] days, as JSON, for the dashboards (the console's popup, the
//!   citizens' map);
//! - `GET /api/v1/public/warnings.atom`: the same as an Atom 1.0 feed, each entry linking to
//!   its CAP document (`application/atom+xml`);
//! - `GET /api/v1/public/warnings/{identifier}.xml`: one version's OASIS CAP 1.2 document
//!   (`application/cap+xml`), written from the stored version (`protocol::capout`), so it is
//!   the same every time it is asked.
//!
//! Operators publish, update and cancel warnings through the incident's actions
//! (`actions.rs`: `publish_warning`, `update_warning`, `cancel_warning`).

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{Duration, Utc};

use model::warning::WarningVersion;
use model::{IncidentId, Localized};
use protocol::capout::{self, FeedEntry, Publisher, Subject, ATOM_MEDIA_TYPE, CAP_MEDIA_TYPE};
use protocol::warning::{area_json, LocalizedJson, WarningJsonOut};

use crate::{AppState, Problem};

/// How long a cancelled warning stays in the feed and the list, in days.
pub const RECENT_CANCELS_DAYS: i64 = 7;

/// Who publishes: the city, and the public address (the configured one, else the address the
/// request came to).
pub fn publisher(state: &AppState, headers: &HeaderMap) -> Publisher {
    let city = state.engine.city().city();
    let public_url = match &state.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| {
                    !h.is_empty()
                        && h.chars()
                            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
                })
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    };
    Publisher {
        city: city.id.clone(),
        sender: format!("dispecer.{}", city.id),
        sender_name: Localized {
            ro: format!("Dispeceratul tehnic integrat {}", city.name.ro),
            en: format!("{} integrated technical dispatch", city.name.en),
        },
        public_url,
    }
}

/// The dashboards' JSON of `version`.
pub fn json_of(publisher: &Publisher, version: &WarningVersion) -> WarningJsonOut {
    let identifier = publisher.identifier(version.incident.as_str(), version.seq);
    let (area, radius_m) = area_json(&version.area);
    WarningJsonOut {
        cap: publisher.document_url(&identifier),
        identifier,
        incident: version.incident.to_string(),
        seq: version.seq,
        msg_type: version.message.as_str().to_owned(),
        active: version.message != model::WarningMessage::Cancel,
        sent: capout::cap_time(version.sent).to_rfc3339(),
        headline: LocalizedJson::from(&version.text.headline),
        instruction: LocalizedJson::from(&version.text.instruction),
        area,
        radius_m,
    }
}

/// The warnings listed: active, or cancelled recently; newest first.
async fn current(state: &AppState) -> Result<Vec<WarningVersion>, Problem> {
    let since = Utc::now() - Duration::days(RECENT_CANCELS_DAYS);
    Ok(state.store.current_warnings(since).await?)
}

/// The active public warnings, and those cancelled in the last 7 days (newest first).
#[utoipa::path(get, path = "/api/v1/public/warnings", tag = "public", responses(
    (status = 200, description = "The warnings", body = Vec<protocol::warning::WarningJsonOut>),
    (status = 503, description = "The store is unavailable", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    let publisher = publisher(&state, &headers);
    let list: Vec<WarningJsonOut> = current(&state)
        .await?
        .iter()
        .map(|v| json_of(&publisher, v))
        .collect();
    Ok(Json(list))
}

/// The public warnings as an Atom 1.0 feed: one entry per warning (its latest version), linking
/// to its CAP 1.2 document.
#[utoipa::path(get, path = "/api/v1/public/warnings.atom", tag = "public", responses(
    (status = 200, description = "The Atom feed", body = String, content_type = "application/atom+xml"),
    (status = 503, description = "The store is unavailable", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
pub async fn atom(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    let publisher = publisher(&state, &headers);
    let versions = current(&state).await?;
    let entries: Vec<FeedEntry> = versions
        .iter()
        .map(|v| FeedEntry {
            identifier: publisher.identifier(v.incident.as_str(), v.seq),
            headline: v.text.headline.clone(),
            instruction: v.text.instruction.clone(),
            msg_type: match v.message {
                model::WarningMessage::Alert => protocol::cap::MsgType::Alert,
                model::WarningMessage::Update => protocol::cap::MsgType::Update,
                model::WarningMessage::Cancel => protocol::cap::MsgType::Cancel,
            },
            sent: v.sent,
        })
        .collect();
    let updated = versions
        .iter()
        .map(|v| v.sent)
        .max()
        .unwrap_or_else(Utc::now);
    let title = Localized {
        ro: format!(
            "Avertizări publice — {}",
            state.engine.city().city().name.ro
        ),
        en: format!("Public warnings — {}", state.engine.city().city().name.en),
    };
    let feed = capout::atom(&publisher, &title, &entries, updated).map_err(Problem::internal)?;
    Ok(([(header::CONTENT_TYPE, ATOM_MEDIA_TYPE)], feed))
}

/// The incident and version number of a CAP identifier of this city.
fn parse_identifier<'a>(publisher: &Publisher, file: &'a str) -> Option<(&'a str, u32)> {
    let id = file.strip_suffix(".xml")?;
    let rest = id.strip_prefix(&format!("dispecer-{}-", publisher.city))?;
    let (incident, seq) = rest.rsplit_once('-')?;
    Some((incident, seq.parse().ok()?)).filter(|(i, _)| !i.is_empty())
}

/// One version of a public warning as an OASIS CAP 1.2 document.
#[utoipa::path(get, path = "/api/v1/public/warnings/{file}", tag = "public",
    params(("file" = String, Path, description = "The version's CAP identifier followed by `.xml`, e.g. `dispecer-brasov-{incident}-1.xml`")),
    responses(
    (status = 200, description = "The CAP 1.2 document", body = String, content_type = "application/cap+xml"),
    (status = 404, description = "No such warning", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 503, description = "The store is unavailable", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
pub async fn document(
    State(state): State<AppState>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    let publisher = publisher(&state, &headers);
    let not_found = || Problem::not_found(format!("no public warning {file:?}"));
    let (incident, seq) = parse_identifier(&publisher, &file).ok_or_else(not_found)?;
    let incident = IncidentId::new(incident);
    let history = state.store.warnings_of(&incident).await?;
    let at = history
        .iter()
        .position(|v| v.seq == seq)
        .ok_or_else(not_found)?;
    let subject = subject(&state, &history[at]).await?;
    let alert = capout::alert(&publisher, &history[at], &history[..at], &subject);
    let xml = capout::write(&alert).map_err(Problem::internal)?;
    Ok(([(header::CONTENT_TYPE, CAP_MEDIA_TYPE)], xml))
}

/// What `version` is about: its category, and the incident's district (else the city).
async fn subject(state: &AppState, version: &WarningVersion) -> Result<Subject, Problem> {
    let city = state.engine.city().city();
    let district = state
        .store
        .incident(&version.incident)
        .await?
        .and_then(|i| i.district)
        .and_then(|d| city.district(d.as_str()).map(|d| d.name.clone()));
    let area_desc = match district {
        Some(name) => Localized {
            ro: format!("{name}, {}", city.name.ro),
            en: format!("{name}, {}", city.name.en),
        },
        None => city.name.clone(),
    };
    Ok(match city.category(version.category.as_str()) {
        Some(c) => Subject::new(c, area_desc),
        // A category the city no longer has: its id, and CAP's "Other".
        None => Subject {
            event: Localized {
                ro: version.category.to_string(),
                en: version.category.to_string(),
            },
            family: "other".into(),
            area_desc,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_parse_back_to_incident_and_version() {
        let p = Publisher {
            city: "brasov".into(),
            sender: "dispecer.brasov".into(),
            sender_name: Localized {
                ro: "a".into(),
                en: "b".into(),
            },
            public_url: "http://x".into(),
        };
        let id = "0193a4b2-1c2d-7e8f-9a0b-1c2d3e4f5a6b";
        let file = format!("{}.xml", p.identifier(id, 12));
        assert_eq!(parse_identifier(&p, &file), Some((id, 12)));
        for bad in [
            "dispecer-brasov-x-1",
            "dispecer-cluj-x-1.xml",
            "dispecer-brasov-x-one.xml",
            "dispecer-brasov--1.xml",
            "dispecer-brasov-1.xml",
        ] {
            assert_eq!(parse_identifier(&p, bad), None, "{bad}");
        }
    }
}
