//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of the REST API, generated from the
//! handlers' `#[utoipa::path]` attributes and the wire types' `ToSchema` derives (utoipa).
//!
//! The bodies that handlers build with `serde_json::json!` are described by the schema-only types
//! below; schemathesis (`tests/e2e/tests/it/schemathesis.rs`) checks every answer against them.
//! **Invariant:** every `/api/v1` route of [`crate::router`] is in the document (a unit test
//! below reads the router's source and compares).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// An error, `application/problem+json` (RFC 9457).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDoc {
    /// Always `about:blank`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the status.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong, for a person.
    pub detail: String,
}

/// `POST /api/v1/session`'s body: exactly these two fields.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginDoc {
    /// The user's name.
    pub username: String,
    /// The password.
    pub password: String,
}

/// Who is logged in (`GET|POST /api/v1/session`).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDoc {
    /// The user's name.
    pub username: String,
    /// `operator`, `supervisor`, `agency` or `admin`.
    pub role: String,
    /// The agency of an agency user.
    pub agency: Option<String>,
    /// The token every request made with the session cookie that changes something sends back
    /// in `X-CSRF-Token`.
    pub csrf: String,
    /// When the session ends (RFC 3339).
    pub expires_at: String,
}

/// `GET /api/v1/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` (otherwise the answer is a 503 problem).
    pub status: String,
    /// `sqlite`, `postgres` or `timescaledb`.
    pub store: String,
    /// Events recorded since start.
    pub events: u64,
    /// Incidents opened since start.
    pub incidents_opened: u64,
    /// Events that joined an open incident.
    pub reports_joined: u64,
    /// Redeliveries recognised.
    pub duplicates: u64,
    /// Events, actions and escalations not taken because the store failed.
    pub store_errors: u64,
    /// Actions accepted.
    pub actions: u64,
    /// Deadlines missed and escalated.
    pub escalations: u64,
    /// Cluster mode only (`null` otherwise): this instance's part.
    pub cluster: Option<ClusterHealth>,
}

/// An instance of a cluster, in `GET /api/v1/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterHealth {
    /// `--instance-id`.
    pub instance: String,
    /// `leader` (its engine decides) or `follower` (its share goes to the leader's engine
    /// through the inbox; actions and HTTP ingest are forwarded to the leader).
    pub role: String,
    /// The leader's HTTP base URL, as last known (`null` on the leader itself until a follower
    /// looks, or while no one leads).
    pub leader: Option<String>,
    /// Messages this instance accepted as a follower and put into the inbox.
    pub inbox_queued: u64,
    /// Messages this instance took from the inbox as the leader.
    pub inbox_drained: u64,
}

/// An event that contributed to an incident.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEvent {
    /// Event id.
    pub id: String,
    /// Source label.
    pub source: String,
    /// RFC 3339.
    pub received_at: String,
}

/// One entry of an incident's timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineItem {
    /// RFC 3339.
    pub at: String,
    /// `opened`, `joined`, an action's name, `escalated`, `linked` (by `system`: an incident
    /// nearby explains this one, `detail.to`; see the incident's `explained_by`), …
    pub kind: String,
    /// Who caused it (`system` for the engine's own decisions: escalations, links, reports
    /// absorbed by a declared outage area; `system:traffic` for congestion detected on the
    /// traffic counters).
    pub actor: String,
    /// Why.
    pub reason: Option<String>,
    /// State before.
    pub from: Option<String>,
    /// State after.
    pub to: Option<String>,
    /// Particulars (a JSON object).
    pub detail: serde_json::Value,
}

/// `GET /api/v1/incidents/{id}/timeline`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Timeline {
    /// Incident id.
    pub incident: String,
    /// Its events, oldest first.
    pub events: Vec<TimelineEvent>,
    /// Its timeline, oldest first.
    pub timeline: Vec<TimelineItem>,
}

/// A message that could not be accepted.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetter {
    /// Row id.
    pub id: i64,
    /// RFC 3339.
    pub received_at: String,
    /// `mqtt` or `http`.
    pub channel: String,
    /// Topic or path.
    pub topic: String,
    /// Why it was refused.
    pub reason: String,
    /// The payload (lossy UTF-8, at most 64 KiB).
    pub payload: String,
}

/// `GET /api/v1/dead-letters`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetters {
    /// Newest first.
    pub dead_letters: Vec<DeadLetter>,
}

/// One bucket of a sensor's metric.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadingBucket {
    /// Start of the bucket, RFC 3339.
    pub t: String,
    /// Mean.
    pub avg: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
    /// Readings in the bucket.
    pub n: i64,
}

/// `GET /api/v1/sensors/{id}/readings`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SensorReadings {
    /// Sensor id.
    pub sensor: String,
    /// Its name.
    pub name: String,
    /// Its free-flow speed, km/h (the baseline).
    pub free_flow_speed_kmh: f64,
    /// RFC 3339.
    pub from: String,
    /// RFC 3339.
    pub to: String,
    /// `raw`, `1m`, `15m` or `1h`.
    pub step: String,
    /// Buckets per metric.
    pub series: BTreeMap<String, Vec<ReadingBucket>>,
}

/// One inbound feed's counters.
#[derive(Debug, Serialize, ToSchema)]
pub struct Feed {
    /// Feed name, e.g. `utility:apa-brasov`.
    pub feed: String,
    /// Messages received.
    pub received: u64,
    /// Accepted.
    pub accepted: u64,
    /// Refused.
    pub rejected: u64,
    /// Redeliveries.
    pub duplicates: u64,
    /// RFC 3339.
    pub last_seen: Option<String>,
    /// Seconds since the last message.
    pub silent_for_s: Option<i64>,
    /// Delay of the last message, seconds.
    pub last_lag_s: Option<f64>,
}

/// `GET /api/v1/feeds`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Feeds {
    /// Every feed seen since start (in cluster mode: by any instance since its start, each
    /// feed's counts summed over the instances).
    pub feeds: Vec<Feed>,
}

/// A citizen's contact details.
#[derive(Debug, Serialize, ToSchema)]
pub struct Contact {
    /// The report (event id).
    pub report: String,
    /// Name.
    pub name: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// RFC 3339.
    pub received_at: String,
}

/// `GET /api/v1/incidents/{id}/contacts`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Contacts {
    /// Incident id.
    pub incident: String,
    /// Contacts left with its reports.
    pub contacts: Vec<Contact>,
}

/// The body of `POST /api/v1/incidents/{id}/actions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionBody {
    /// `assign`, `acknowledge`, `start`, `resolve`, `close`, `reject`, `duplicate`, `reopen`,
    /// `note`, or (operators) `merge`, `unmerge`, `split`.
    pub action: String,
    /// Why (required with `note`), at most 2000 characters.
    pub reason: Option<String>,
    /// The agency (with `assign` only).
    pub agency: Option<String>,
}

/// The outcome of one feature of `POST /api/v1/events`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventResult {
    /// Position in the request.
    pub index: usize,
    /// `accepted`, `duplicate` or `rejected`.
    pub status: String,
    /// The incident it opened, joined or updated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /api/v1/events`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsAccepted {
    /// Features accepted.
    pub accepted: u64,
    /// Features seen before.
    pub duplicates: u64,
    /// Features refused (a FeatureCollection only; a single refused Feature is a 400).
    pub rejected: u64,
    /// One per feature.
    pub results: Vec<EventResult>,
}

/// `POST /api/v1/readings`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadingsAccepted {
    /// Readings in the pack.
    pub readings: u64,
    /// Readings not seen before.
    pub new: u64,
}

/// The Bearer scheme of API tokens (`dispecer token create`) and people's session cookie.
struct BearerTokens;

impl Modify for BearerTokens {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token made by `dispecer token create`; its scope decides what \
                         it may do.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::accounts::COOKIE,
                "A person's session, from POST /api/v1/session; a request that changes \
                 something also sends the session's CSRF token in X-CSRF-Token.",
            ))),
        );
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Dispecer",
        description = "REST API of Dispecer, an integrated technical dispatch center. Errors are \
                       application/problem+json (RFC 9457).",
        license(name = "EUPL-1.2", identifier = "EUPL-1.2")
    ),
    paths(
        crate::health,
        crate::city,
        crate::incidents::list,
        crate::incidents::one,
        crate::incidents::timeline,
        crate::contacts::list,
        crate::actions::act,
        crate::incidents::dead_letters,
        crate::sensors::readings,
        crate::metrics::feeds,
        crate::ingest::events,
        crate::ingest::readings,
        crate::stream::upgrade,
        crate::citizens::file,
        crate::citizens::status,
        crate::citizens::public_incidents,
        crate::citizens::photo,
        crate::accounts::login,
        crate::accounts::whoami,
        crate::accounts::logout,
        crate::reports::routing_overrides,
        crate::warnings::list,
        crate::warnings::atom,
        crate::warnings::document,
        document,
    ),
    modifiers(&BearerTokens)
)]
pub struct ApiDoc;

/// The document for `city`, as JSON: the code's document with the city's own ids (categories,
/// agencies) as the enumerations of the parameters and bodies that take them, so that a client
/// (and schemathesis) knows which values exist.
pub fn json(city: &model::City) -> Vec<u8> {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
    let categories: Vec<Value> = city
        .categories
        .iter()
        .map(|c| Value::from(c.id.as_str()))
        .collect();
    let agencies: Vec<Value> = city
        .agencies
        .iter()
        .map(|a| Value::from(a.id.as_str()))
        .collect();
    if let Some(params) = doc
        .pointer_mut("/paths/~1api~1v1~1incidents/get/parameters")
        .and_then(Value::as_array_mut)
    {
        for p in params {
            let name = p["name"].as_str().unwrap_or("").to_owned();
            match name.as_str() {
                "category" => p["schema"] = json!({"type": "string", "enum": categories}),
                "agency" => p["schema"] = json!({"type": "string", "enum": agencies}),
                "status" => {
                    let names: Vec<&str> = std::iter::once("open")
                        .chain(model::IncidentStatus::ALL.iter().map(|s| s.as_str()))
                        .collect();
                    let one = format!("({})", names.join("|"));
                    p["schema"] = json!({"type": "string", "pattern": format!("^{one}(,{one})*$")});
                }
                "bbox" => {
                    let lon = json!({"type": "number", "minimum": -180, "maximum": 180});
                    let lat = json!({"type": "number", "minimum": -90, "maximum": 90});
                    p["schema"] = json!({"type": "array", "prefixItems": [lon, lat, lon, lat],
                        "minItems": 4, "maxItems": 4, "items": false});
                    p["style"] = json!("form");
                    p["explode"] = json!(false);
                }
                _ => {}
            }
        }
    }
    let sensors: Vec<Value> = city
        .sensors
        .iter()
        .map(|s| Value::from(s.id.as_str()))
        .collect();
    if let Some(p) = doc.pointer_mut("/paths/~1api~1v1~1sensors~1{id}~1readings/get/parameters/0") {
        p["schema"] = json!({"type": "string", "enum": sensors});
    }
    // The citizens' form: the city's categories, a place inside its bounds.
    if let Some(form) = doc.pointer_mut("/components/schemas/ReportForm/properties") {
        let [west, south, east, north] = [
            city.bounds.min().x,
            city.bounds.min().y,
            city.bounds.max().x,
            city.bounds.max().y,
        ];
        form["category"] = json!({"type": "string", "enum": categories.clone()});
        form["lat"] = json!({"type": "number", "minimum": south, "maximum": north});
        form["lon"] = json!({"type": "number", "minimum": west, "maximum": east});
    }
    // Links: the incidents a list or an ingest returns are the ones the other operations take.
    let link = |operation: &str, expression: &str| json!({"operationId": operation, "parameters": {"id": expression}});
    let follow = |expression: &str| {
        json!({
            "incident": link("one", expression),
            "timeline": link("timeline", expression),
            "contacts": link("contacts", expression),
            "act": link("act", expression),
        })
    };
    if let Some(r) = doc.pointer_mut("/paths/~1api~1v1~1incidents/get/responses/200") {
        r["links"] = follow("$response.body#/features/0/id");
    }
    if let Some(r) = doc.pointer_mut("/paths/~1api~1v1~1events/post/responses/200") {
        r["links"] = follow("$response.body#/results/0/incident");
    }
    let others: Vec<&str> = [
        "acknowledge",
        "start",
        "resolve",
        "close",
        "reject",
        "duplicate",
        "reopen",
        "unmerge",
    ]
    .to_vec();
    let reason = json!({"type": ["string", "null"], "maxLength": 2000});
    let text = |max: usize| {
        let one = json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": "\\S"});
        json!({"type": "object", "additionalProperties": false, "required": ["ro", "en"],
               "properties": {"ro": one, "en": one}})
    };
    let headline = text(protocol::warning::MAX_HEADLINE);
    let instruction = text(protocol::warning::MAX_INSTRUCTION);
    let area = json!({"description": "GeoJSON Polygon or MultiPolygon (closed rings, [longitude, \
                       latitude], inside the city), or a Point with radius_m; default: the \
                       incident's area or a 500 m circle around it", "type": "object",
                       "required": ["type", "coordinates"],
                       "properties": {"type": {"enum": ["Polygon", "MultiPolygon", "Point"]},
                                      "coordinates": {"type": "array"}}});
    let radius = json!({"type": "number", "minimum": protocol::warning::RADIUS_M.0,
                        "maximum": protocol::warning::RADIUS_M.1});
    doc["components"]["schemas"]["ActionBody"] = json!({
        "description": "An action: `assign` names the agency; `note` needs a reason; `merge` \
                        names the incident to merge `into`, `split` the `event` to take out; the \
                        others take an optional reason.",
        "oneOf": [
            {"type": "object", "additionalProperties": false, "required": ["action", "agency"],
             "properties": {"action": {"const": "assign"}, "agency": {"type": "string", "enum": agencies},
                            "reason": reason}},
            {"type": "object", "additionalProperties": false, "required": ["action", "reason"],
             "properties": {"action": {"const": "note"},
                            "reason": {"type": "string", "maxLength": 2000, "pattern": "\\S"}}},
            {"type": "object", "additionalProperties": false, "required": ["action", "into"],
             "properties": {"action": {"const": "merge"}, "into": {"type": "string", "minLength": 1},
                            "reason": reason}},
            {"type": "object", "additionalProperties": false, "required": ["action", "event"],
             "properties": {"action": {"const": "split"}, "event": {"type": "string", "minLength": 1},
                            "reason": reason}},
            {"type": "object", "additionalProperties": false, "required": ["action"],
             "properties": {"action": {"type": "string", "enum": others}, "reason": reason}},
            {"type": "object", "additionalProperties": false,
             "required": ["action", "headline", "instruction"],
             "dependentRequired": {"radius_m": ["area"]},
             "properties": {"action": {"const": "publish_warning"}, "headline": headline,
                            "instruction": instruction, "area": area, "radius_m": radius,
                            "reason": reason}},
            {"type": "object", "additionalProperties": false, "required": ["action"],
             "anyOf": [{"required": ["headline", "instruction"]}, {"required": ["area"]}],
             "dependentRequired": {"headline": ["instruction"], "instruction": ["headline"],
                                   "radius_m": ["area"]},
             "properties": {"action": {"const": "update_warning"}, "headline": headline,
                            "instruction": instruction, "area": area, "radius_m": radius,
                            "reason": reason}},
            {"type": "object", "additionalProperties": false, "required": ["action"],
             "properties": {"action": {"const": "cancel_warning"}, "reason": reason}},
        ]
    });
    // Serialising plain data cannot fail; an empty body would show at once.
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// The OpenAPI document of this API.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub async fn document(State(state): State<crate::AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi_document.as_ref().clone(),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    fn doc() -> Value {
        let city = city::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../cities/brasov"
        )))
        .expect("the demo city");
        serde_json::from_slice(&super::json(&city)).expect("the document is JSON")
    }

    /// `(METHOD, path)` of every `.route("/api/v1/…", method(…))` in the router's source.
    fn routes_in_source() -> BTreeSet<(String, String)> {
        let source = include_str!("lib.rs");
        let mut out = BTreeSet::new();
        for (i, _) in source.match_indices(".route(") {
            let rest = &source[i + ".route(".len()..];
            let Some(start) = rest.find('"') else {
                continue;
            };
            let Some(len) = rest[start + 1..].find('"') else {
                continue;
            };
            let path = &rest[start + 1..start + 1 + len];
            if !path.starts_with("/api/v1/") {
                continue;
            }
            // The method routers chained after the path: get(…), post(…).layer(…).post(…), …
            let end = rest.find("\n        .route(").unwrap_or(rest.len());
            let call = &rest[start + 1 + len..end];
            for method in ["get", "post", "put", "patch", "delete"] {
                let found = call.match_indices(&format!("{method}(")).any(|(j, _)| {
                    j == 0 || !call[..j].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                });
                if found {
                    out.insert((method.to_owned(), path.to_owned()));
                }
            }
        }
        out
    }

    #[test]
    fn every_api_route_is_documented() {
        let doc = doc();
        let routes = routes_in_source();
        assert!(routes.len() >= 13, "too few routes found: {routes:?}");
        let paths = doc["paths"].as_object().expect("paths");
        for (method, path) in &routes {
            assert!(
                paths.get(path).and_then(|p| p.get(method)).is_some(),
                "{method} {path} is in the router but not in the OpenAPI document"
            );
        }
        for (path, item) in paths {
            for method in item.as_object().expect("path item").keys() {
                assert!(
                    routes.contains(&(method.clone(), path.clone())),
                    "{method} {path} is documented but not routed"
                );
            }
        }
    }

    #[test]
    fn document_is_valid_openapi_3_1() {
        let doc = doc();
        let meta: Value =
            serde_json::from_str(include_str!("../tests/data/oas-3.1-schema.json")).expect("JSON");
        let validator = jsonschema::draft202012::new(&meta).expect("the OpenAPI 3.1 schema");
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "not valid OpenAPI 3.1: {errors:#?}");
        // And the check can fail: a path item with an unknown field is refused.
        let mut broken = doc.clone();
        broken["paths"]["/api/v1/health"]["get"]["responses"] = Value::String("none".into());
        assert!(!validator.is_valid(&broken));
    }

    #[test]
    fn document_is_openapi_3_1_with_bearer_tokens_and_problems() {
        let doc = doc();
        assert!(doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")));
        assert_eq!(
            doc["components"]["securitySchemes"]["api_token"]["scheme"],
            "bearer"
        );
        let act = &doc["paths"]["/api/v1/incidents/{id}/actions"]["post"];
        assert!(act["security"].as_array().is_some_and(|s| !s.is_empty()));
        assert!(act["responses"]["409"]["content"]["application/problem+json"].is_object());
        assert_eq!(
            doc["components"]["securitySchemes"]["session"]["in"],
            "cookie"
        );
        // Every operation but the public ones says who may call it and answers 401.
        let public = |method: &str, path: &str| {
            path.starts_with("/api/v1/public/")
                || ["/api/v1/health", "/api/v1/city", "/api/v1/openapi.json"].contains(&path)
                || (method == "post" && ["/api/v1/session", "/api/v1/reports"].contains(&path))
        };
        let mut checked = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                if public(method, path) {
                    assert!(op.get("security").is_none(), "{method} {path} is public");
                    continue;
                }
                assert!(
                    op["security"].as_array().is_some_and(|s| !s.is_empty()),
                    "{method} {path} declares no security"
                );
                assert!(
                    op["responses"]["401"].is_object(),
                    "{method} {path} declares no 401"
                );
                checked += 1;
            }
        }
        assert!(checked >= 14, "only {checked} protected operations");
    }
}
