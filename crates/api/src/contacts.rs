//! `GET /api/v1/incidents/{id}/contacts`: the contact details citizens left with their reports of
//! an incident. Personal data: only the dispatch center's operators (an `operator` token) and the
//! agency the incident is assigned to (its `agency:{id}` token) may read it, and every reading is
//! logged with who read it. People's sessions likewise: operators, supervisors and admins, and an
//! agency user for its agency's incidents.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use model::IncidentId;

use store::Role;

use crate::accounts::{reader, Caller};
use crate::ingest::Scope;
use crate::problem::Problem;
use crate::AppState;

/// Contact details citizens left with an incident's reports (operators and the agency responsible).
#[utoipa::path(get, path = "/api/v1/incidents/{id}/contacts", tag = "incidents", operation_id = "contacts",
    params(("id" = String, Path, description = "Incident id")),
    security(("api_token" = []), ("session" = [])), responses(
    (status = 200, description = "The contacts", body = crate::openapi::Contacts),
    (status = 401, description = "No or a bad API token", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 403, description = "The token may not read contacts of this incident", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 404, description = "No such incident", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 503, description = "The store is unavailable", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
pub async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, Problem> {
    let caller = reader(&state, &headers).await?;
    let id = IncidentId::new(id);
    let incident = state
        .store
        .incident(&id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no incident {}", id.as_str())))?;
    let reader = match &caller {
        Caller::Token(Scope::Operator, prefix) => format!("operator:{prefix}"),
        Caller::Token(Scope::Agency(agency), _) if agency.as_str() == incident.agency.as_str() => {
            format!("agency:{agency}")
        }
        Caller::Session(s) => match (s.role, s.agency.as_deref()) {
            (Role::Operator | Role::Supervisor | Role::Admin, _) => format!("user:{}", s.username),
            (Role::Agency, Some(a)) if a == incident.agency.as_str() => {
                format!("user:{}", s.username)
            }
            (Role::Agency, _) => {
                return Err(Problem::forbidden(format!(
                    "incident {} is assigned to {}, not to this user's agency",
                    id.as_str(),
                    incident.agency.as_str()
                )))
            }
        },
        Caller::Token(Scope::Agency(agency), _) => {
            return Err(Problem::forbidden(format!(
                "incident {} is assigned to {}, not to {agency}",
                id.as_str(),
                incident.agency.as_str()
            )))
        }
        _ => {
            return Err(Problem::forbidden(
                "citizens' contact details are shown only to operators and to the agency \
                 responsible",
            ))
        }
    };
    let contacts = state.store.contacts_of_incident(&id).await?;
    tracing::info!(
        incident = id.as_str(),
        reader = %reader,
        contacts = contacts.len(),
        "citizens' contact details read"
    );
    Ok(Json(json!({
        "incident": id.as_str(),
        "contacts": contacts.iter().map(|c| json!({
            "report": c.event_id,
            "name": c.name,
            "email": c.email,
            "phone": c.phone,
            "received_at": c.received_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        })).collect::<Vec<_>>(),
    })))
}
