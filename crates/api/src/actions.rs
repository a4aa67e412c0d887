//! `POST /api/v1/incidents/{id}/actions`: people and agencies move an incident along its
//! lifecycle (`model::lifecycle`), with a reason that the timeline keeps.
//!
//! Body: `{"action": "acknowledge", "reason": "…", "agency": "…"}`; operators also merge
//! (`{"action": "merge", "into": "{incident}"}`), unmerge, and split a report out
//! (`{"action": "split", "event": "{event id}"}`) (see `protocol::action`).
//! Authorised by a Bearer API token: scope `operator` may act on any incident (actor
//! `operator:{token prefix}`), scope `agency:{id}` only on incidents assigned to that agency
//! (actor `agency:{id}`); other tokens get 403. Or by a person's session cookie (with its
//! `X-CSRF-Token`; see `accounts.rs`): operators, supervisors and admins act on any incident,
//! an agency user only on its agency's (actor `user:{name}` for both).
//!
//! Public warnings (operators, supervisors and admins, or an `operator` token; never an agency):
//! `{"action": "publish_warning", "headline": {"ro", "en"}, "instruction": {"ro", "en"},
//! "area"?: GeoJSON}`, `update_warning`, `cancel_warning` (see `protocol::warning`); answered
//! 201 with the version issued (`Location`: its CAP document), 409 when the incident's warning
//! refuses (already active, none active, incident no longer open).
//!
//! Answers: 200 with the incident (GeoJSON Feature) once the action is durable; 400 bad body;
//! 401 no or bad token or session; 403 a session request without its CSRF token; 403 token not allowed (or incident not the agency's); 404 unknown
//! incident; 409 the action is not allowed in the incident's state (the detail names both
//! states), or a merge/split the incidents refuse (a merge into a closed incident, a split of an
//! incident's only report); 503 the store is unavailable.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use engine::{ActionRequest, EngineError, WarningRequest};
use model::IncidentId;
use protocol::action::{action_request, MAX_PAYLOAD};
use protocol::incident::IncidentFeature;

use store::Role;

use crate::accounts::{caller, Caller};
use crate::ingest::Scope;
use crate::{AppState, Problem};

/// Largest request body, in bytes.
pub const MAX_BODY: usize = MAX_PAYLOAD;

/// `POST /api/v1/incidents/{id}/actions`.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/actions", tag = "incidents", operation_id = "act",
    params(("id" = String, Path, description = "Incident id")),
    request_body(content = crate::openapi::ActionBody, content_type = "application/json"),
    security(("api_token" = []), ("session" = [])), responses(
    (status = 200, description = "The incident after the action, once durable", body = protocol::incident::IncidentFeature, content_type = "application/geo+json"),
    (status = 201, description = "A public warning's version issued (publish_warning, update_warning, cancel_warning), once durable; Location: its CAP document", body = protocol::warning::WarningJsonOut),
    (status = 400, description = "The body is not a valid action", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 401, description = "No or a bad API token", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 403, description = "The token may not act on this incident", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 404, description = "No such incident", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 409, description = "The action is not allowed in the incident's state", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 413, description = "The body is too large", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 503, description = "The store is unavailable", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
pub async fn act(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    match act_inner(&state, id, &headers, raw).await {
        Ok(r) => r.into_response(),
        Err(p) => p.into_response(),
    }
}

async fn act_inner(
    state: &AppState,
    id: String,
    headers: &HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let (actor, as_agency) = match caller(state, headers).await? {
        Caller::Token(Scope::Operator, prefix) => (format!("operator:{prefix}"), None),
        Caller::Token(Scope::Agency(agency), _) => {
            (format!("agency:{agency}"), Some(agency.as_str().into()))
        }
        Caller::Token(other, _) => {
            return Err(Problem::forbidden(format!(
                "this token may {}, not act on incidents",
                other.allows()
            )))
        }
        Caller::Session(s) => match (s.role, s.agency) {
            (Role::Agency, Some(agency)) => {
                (format!("user:{}", s.username), Some(agency.as_str().into()))
            }
            (Role::Agency, None) => {
                return Err(Problem::forbidden("this agency user has no agency"));
            }
            (Role::Operator | Role::Supervisor | Role::Admin, _) => {
                (format!("user:{}", s.username), None)
            }
        },
    };
    let raw = raw.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::too_large(format!("the body is larger than {MAX_BODY} bytes"))
        } else {
            Problem::bad_request(e.body_text())
        }
    })?;
    if protocol::warning::is_warning_action(&raw) {
        if as_agency.is_some() {
            return Err(Problem::forbidden(
                "only operators, supervisors and admins publish public warnings, not agencies",
            ));
        }
        let command = protocol::warning::warning_request(&raw, state.engine.city().city())
            .map_err(|e| Problem::bad_request(e.to_string()))?;
        let request = WarningRequest {
            incident: IncidentId::new(id),
            op: command.op,
            actor,
            reason: command.reason,
        };
        let version = state.engine.warn(request).await.map_err(problem)?;
        let body = crate::warnings::json_of(&crate::warnings::publisher(state, headers), &version);
        let location = body.cap.clone();
        return Ok((
            StatusCode::CREATED,
            [(header::LOCATION, location)],
            Json(body),
        )
            .into_response());
    }
    let command = action_request(&raw, state.engine.city().city())
        .map_err(|e| Problem::bad_request(e.to_string()))?;
    let request = ActionRequest {
        incident: IncidentId::new(id),
        action: command.action,
        actor,
        reason: command.reason,
        as_agency,
        request_id: None,
    };
    let incident = state.engine.act(request).await.map_err(problem)?;
    Ok((
        [(header::CONTENT_TYPE, "application/geo+json")],
        Json(IncidentFeature::from(incident.as_ref())),
    )
        .into_response())
}

/// The answer to an engine refusal.
fn problem(e: EngineError) -> Problem {
    match e {
        EngineError::NotFound(id) => Problem::not_found(format!("no incident {:?}", id.as_str())),
        e @ EngineError::Transition(_) => Problem::conflict(e.to_string()),
        e @ EngineError::NotAssignedTo { .. } => Problem::forbidden(e.to_string()),
        e @ EngineError::UnknownAgency(_) => Problem::bad_request(e.to_string()),
        e @ EngineError::RequestIdReused { .. } => Problem::conflict(e.to_string()),
        e @ EngineError::Conflict(_) => Problem::conflict(e.to_string()),
        e @ EngineError::Warning(_) => Problem::conflict(e.to_string()),
        e @ EngineError::OperatorsOnly(_) => Problem::forbidden(e.to_string()),
        EngineError::Store(e) => e.into(),
        e @ (EngineError::Stopped | EngineError::NotLeader) => Problem::unavailable(e.to_string()),
        e @ (EngineError::UnknownCategory(_) | EngineError::Refused(_)) => Problem::internal(e),
    }
}
