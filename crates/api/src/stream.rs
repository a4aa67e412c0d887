//! `GET /api/v1/stream`: every incident change, live, as JSON text frames.
//!
//! A client first gets a snapshot of the open incidents, then one frame per change. A client that
//! falls behind (the update broadcast overflowed for it) gets a fresh snapshot instead of being
//! cut off; one that stops reading for [`SEND_TIMEOUT`] is closed, so a stuck client never holds
//! memory or slows the others.
//!
//! A client may narrow what it hears with query parameters (`bbox`, `agency`, `categories`,
//! `status`; [`StreamQuery`]), checked before the upgrade (400 naming the parameter). The stream
//! needs a session or a dispatcher's or agency's token (401 before the upgrade otherwise); an
//! agency's user or token hears only of the incidents its agency is responsible for or informed
//! of, whatever it asks for: the two combine in a [`StreamFilter`]. The snapshot is filtered too, and a client hears once, marked
//! `left_filter`, of an incident a change takes out of its filter (reassigned away, moved out of
//! the box, no longer open with `status=open`), so that it can drop it.

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use std::collections::HashSet;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::RecvError;

use engine::UpdateKind;
use model::{AgencyId, CategoryId, City, Incident, IncidentId};
use protocol::incident::{IncidentCollection, IncidentFeature};
use protocol::stream::{Change, EscalationDto, StreamFrame};

use crate::AppState;

/// How long one frame may take to leave before the client is considered gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a ping goes out, so that a half-open connection is noticed by both ends.
const PING_EVERY: Duration = Duration::from_secs(20);

/// The stream's filters; all optional. Incidents match all of those given.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// `minLon,minLat,maxLon,maxLat` in degrees (WGS 84): incidents whose place lies in the box,
    /// edges included. A minimum above its maximum, a value out of range or not a number is
    /// refused.
    bbox: Option<String>,
    /// Agency id: incidents that agency is responsible for or is informed of. An agency's user
    /// or token is limited to its own agency's incidents whatever this says (the two combine).
    agency: Option<String>,
    /// Comma-separated category ids: incidents of these categories.
    categories: Option<String>,
    /// `all` (the default: every change of a matching incident, including it being resolved,
    /// closed or rejected) or `open` (open incidents only: one leaving the open states is dropped
    /// like one leaving the box).
    #[param(pattern = "^(open|all)$")]
    status: Option<String>,
}

/// A refused stream filter: says which parameter and why.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FilterError {
    /// `bbox` is malformed, out of range or inverted.
    #[error("bbox {given:?}: {problem}")]
    Bbox {
        /// What was given.
        given: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// `agency` names no agency of the city.
    #[error("agency {0:?} is not one of this city's")]
    UnknownAgency(String),
    /// `categories` names a category the city does not have (or is empty).
    #[error("categories: {0:?} is not one of this city's categories")]
    UnknownCategory(String),
    /// `status` is neither `open` nor `all`.
    #[error("status {0:?} must be open or all")]
    Status(String),
}

/// Which incidents one client hears of: the caller's restriction (an agency's user or token: the
/// incidents its agency is responsible for or informed of, which no parameter can widen) and the
/// filters it asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamFilter {
    /// An agency's user's or token's own agency: only the incidents it is responsible for or
    /// informed of.
    restricted_to: Option<AgencyId>,
    /// `[min_lon, min_lat, max_lon, max_lat]`.
    bbox: Option<[f64; 4]>,
    /// Responsible for or informed of.
    agency: Option<AgencyId>,
    /// Any of these categories.
    categories: Option<HashSet<CategoryId>>,
    /// Open incidents only.
    open_only: bool,
}

impl StreamFilter {
    /// The filter a client asked for, checked against `city`; `restricted_to` is the caller's
    /// own agency when the caller is an agency user.
    pub fn parse(
        query: &StreamQuery,
        city: &City,
        restricted_to: Option<AgencyId>,
    ) -> Result<Self, FilterError> {
        let bbox = query.bbox.as_deref().map(parse_bbox).transpose()?;
        let agency = match query.agency.as_deref() {
            None => None,
            Some(a) if city.agency(a).is_some() => Some(AgencyId::from(a)),
            Some(a) => return Err(FilterError::UnknownAgency(a.into())),
        };
        let categories = match query.categories.as_deref() {
            None => None,
            Some(list) => {
                let mut set = HashSet::new();
                for c in list.split(',') {
                    let c = c.trim();
                    if city.category(c).is_none() {
                        return Err(FilterError::UnknownCategory(c.into()));
                    }
                    set.insert(CategoryId::from(c));
                }
                Some(set)
            }
        };
        let open_only = match query.status.as_deref() {
            None | Some("all") => false,
            Some("open") => true,
            Some(other) => return Err(FilterError::Status(other.into())),
        };
        Ok(StreamFilter {
            restricted_to,
            bbox,
            agency,
            categories,
            open_only,
        })
    }

    /// Whether `incident`, as it is now, is one this client hears of.
    pub fn matches(&self, incident: &Incident) -> bool {
        if self
            .restricted_to
            .as_ref()
            .is_some_and(|own| !incident.concerns(own))
        {
            return false;
        }
        if let Some([min_lon, min_lat, max_lon, max_lat]) = self.bbox {
            let (lon, lat) = (incident.location.x(), incident.location.y());
            if !(min_lon <= lon && lon <= max_lon && min_lat <= lat && lat <= max_lat) {
                return false;
            }
        }
        if self
            .agency
            .as_ref()
            .is_some_and(|agency| !incident.concerns(agency))
        {
            return false;
        }
        if self
            .categories
            .as_ref()
            .is_some_and(|set| !set.contains(&incident.category))
        {
            return false;
        }
        !self.open_only || incident.status.is_open()
    }
}

fn parse_bbox(text: &str) -> Result<[f64; 4], FilterError> {
    let bad = |problem| FilterError::Bbox {
        given: text.into(),
        problem,
    };
    let parts: Vec<f64> = text
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad("must be four numbers minLon,minLat,maxLon,maxLat"))?;
    let [min_lon, min_lat, max_lon, max_lat]: [f64; 4] = parts
        .try_into()
        .map_err(|_| bad("must be four numbers minLon,minLat,maxLon,maxLat"))?;
    if !(model::geometry::valid_position(min_lon, min_lat)
        && model::geometry::valid_position(max_lon, max_lat))
    {
        return Err(bad(
            "longitudes must lie in -180..180 and latitudes in -90..90",
        ));
    }
    if min_lon > max_lon || min_lat > max_lat {
        return Err(bad("a minimum is above its maximum"));
    }
    Ok([min_lon, min_lat, max_lon, max_lat])
}

/// Every incident change, live, over a WebSocket (a snapshot first), filtered by the query's
/// parameters; an agency's user or token gets the incidents its agency is responsible for or
/// informed of only. An incident that a change takes out of the filter comes once more, marked
/// `left_filter`, so the client drops it.
#[utoipa::path(get, path = "/api/v1/stream", tag = "incidents", params(StreamQuery),
    security(("api_token" = []), ("session" = [])), responses(
    (status = 101, description = "Switching to the WebSocket protocol; frames are JSON `snapshot` and `incident` (`left_filter: true` when a change takes the incident out of the filter)"),
    (status = 400, description = "Not a WebSocket upgrade request, or a filter is malformed or names nothing in this city (the detail names the parameter)", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 401, description = "No session and no API token", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 403, description = "The token may not read incidents", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 503, description = "Too many live clients; see Retry-After", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // Who asks, then the parameters, all before the upgrade: a refusal is an HTTP answer the
    // client sees.
    let viewer = match crate::accounts::viewer(&state, &headers).await {
        Ok(v) => v,
        Err(p) => return p.into_response(),
    };
    let query = match query {
        Ok(Query(q)) => q,
        Err(e) => return crate::Problem::bad_request(e.body_text()).into_response(),
    };
    // An agency's user or token gets its agency's incidents only.
    let only = viewer.agency().cloned();
    let filter = match StreamFilter::parse(&query, state.engine.city().city(), only) {
        Ok(f) => f,
        Err(e) => return crate::Problem::bad_request(e.to_string()).into_response(),
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return crate::Problem::bad_request(format!(
                "a WebSocket upgrade request is required: {}",
                e.body_text()
            ))
            .into_response()
        }
    };
    let Some(slot) = state.limiter.stream_slot() else {
        return crate::limits::stream_full(state.limiter.limits.max_stream_clients);
    };
    ws.on_upgrade(move |socket| async move {
        client(socket, state, filter).await;
        // The client's place is free again only once its socket is done.
        drop(slot);
    })
}

/// What a client has been shown, so that it hears once of an incident that leaves its filter
/// (a reassignment away from an agency user's agency, a move out of the box, …) and can drop it.
#[derive(Debug, Default)]
struct Visible(HashSet<IncidentId>);

/// What to send a client about one change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// It matches the filter: the change.
    Show,
    /// It matched until this change: the change, marked `left_filter`.
    Leaves,
    /// Nothing.
    Skip,
}

impl Visible {
    /// What a client with `filter` is sent about `incident`'s change; remembers what it saw.
    fn admit(&mut self, filter: &StreamFilter, incident: &Incident) -> Verdict {
        if filter.matches(incident) {
            self.0.insert(incident.id.clone());
            Verdict::Show
        } else if self.0.remove(&incident.id) {
            Verdict::Leaves
        } else {
            Verdict::Skip
        }
    }
}

async fn snapshot(
    state: &AppState,
    filter: &StreamFilter,
    visible: &mut Visible,
) -> Option<StreamFrame> {
    let open = state.engine.open_incidents().await.ok()?;
    visible.0.clear();
    let shown: Vec<_> = open
        .iter()
        .filter(|i| visible.admit(filter, i) == Verdict::Show)
        .collect();
    Some(StreamFrame::Snapshot {
        incidents: IncidentCollection::new(shown.into_iter().map(|i| i.as_ref())),
    })
}

async fn send(socket: &mut WebSocket, frame: &StreamFrame) -> bool {
    let Ok(text) = serde_json::to_string(frame) else {
        return false;
    };
    matches!(
        tokio::time::timeout(
            SEND_TIMEOUT,
            socket.send(Message::Text(Utf8Bytes::from(text)))
        )
        .await,
        Ok(Ok(()))
    )
}

async fn client(mut socket: WebSocket, state: AppState, filter: StreamFilter) {
    // Subscribe before the snapshot so no change falls between the two.
    let mut updates = state.engine.subscribe();
    let mut visible = Visible::default();
    let Some(first) = snapshot(&state, &filter, &mut visible).await else {
        return;
    };
    if !send(&mut socket, &first).await {
        return;
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ping.tick() => {
                let sent = tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Ping(Default::default()))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    break;
                }
            }
            () = state.shutdown.cancelled() => {
                let _ = socket.send(Message::Close(None)).await;
                break;
            }
            update = updates.recv() => {
                let frame = match update {
                    Ok(u) => {
                        let left_filter = match visible.admit(&filter, &u.incident) {
                            Verdict::Skip => continue,
                            Verdict::Show => false,
                            Verdict::Leaves => true,
                        };
                        StreamFrame::Incident {
                            change: match u.kind { UpdateKind::Opened => Change::Opened, UpdateKind::Updated => Change::Updated },
                            incident: Box::new(IncidentFeature::from(u.incident.as_ref())),
                            escalation: u.escalation.map(|e| EscalationDto::new(&e, &u.incident)),
                            left_filter,
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "websocket client fell behind; sending a snapshot");
                        match snapshot(&state, &filter, &mut visible).await { Some(s) => s, None => break }
                    }
                    Err(RecvError::Closed) => break,
                };
                if !send(&mut socket, &frame).await {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                // Clients have nothing to say yet; pings are answered by axum.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use geo::Point;
    use model::routing::{InformRule, Informed, RouteCandidate, RoutingDecision, RoutingRule};
    use model::{IncidentStatus, Severity, SlaClock};

    use super::*;

    fn city() -> City {
        city::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../cities/brasov"
        )))
        .expect("the demo city")
    }

    fn query(pairs: &[(&str, &str)]) -> StreamQuery {
        let text = serde_urlencoded::to_string(pairs).expect("encodes");
        serde_urlencoded::from_str(&text).expect("a query")
    }

    fn filter(pairs: &[(&str, &str)], restricted_to: Option<&str>) -> StreamFilter {
        StreamFilter::parse(&query(pairs), &city(), restricted_to.map(AgencyId::from))
            .expect("a valid filter")
    }

    fn incident(id: &str, category: &str, agency: &str, lon: f64, lat: f64) -> Incident {
        let at = Utc
            .with_ymd_and_hms(2026, 11, 29, 12, 0, 0)
            .single()
            .expect("a valid time");
        Incident {
            id: id.into(),
            category: category.into(),
            severity: Severity::Moderate,
            status: IncidentStatus::Assigned,
            location: Point::new(lon, lat),
            area: None,
            district: None,
            agency: agency.into(),
            routing: RoutingDecision {
                chosen: RouteCandidate {
                    agency: agency.into(),
                    rule: RoutingRule::Fallback,
                    area: None,
                },
                alternatives: vec![],
                informed: vec![],
            },
            report_count: 1,
            description: None,
            external_ref: None,
            opened_at: at,
            updated_at: at,
            sla: SlaClock::default(),
            merged_into: None,
            explained_by: Vec::new(),
        }
    }

    #[test]
    fn bad_parameters_are_refused_naming_the_parameter() {
        let city = city();
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("bbox", "25.6,45.7,25.5,45.6")], "bbox"),
            (&[("bbox", "25.5,45.7,25.6,45.6")], "bbox"),
            (&[("bbox", "25.5,45.6,25.6")], "bbox"),
            (&[("bbox", "25.5,45.6,25.6,north")], "bbox"),
            (&[("bbox", "25.5,45.6,190,45.7")], "bbox"),
            (&[("bbox", "25.5,-91,25.6,45.7")], "bbox"),
            (&[("bbox", "NaN,45.6,25.6,45.7")], "bbox"),
            (&[("categories", "pothole,volcano")], "categories"),
            (&[("categories", "")], "categories"),
            (&[("agency", "nasa")], "agency"),
            (&[("status", "closed")], "status"),
        ];
        for (pairs, parameter) in cases {
            let err = StreamFilter::parse(&query(pairs), &city, None)
                .expect_err(&format!("{pairs:?} must be refused"));
            assert!(
                err.to_string().starts_with(parameter),
                "{pairs:?}: {err} should name {parameter}"
            );
        }
        assert!(
            serde_urlencoded::from_str::<StreamQuery>("colour=red").is_err(),
            "an unknown parameter is refused"
        );
    }

    #[test]
    fn each_filter_admits_what_it_names() {
        let pothole = incident("a", "pothole", "domeniu-public", 25.59, 45.64);
        let mut leak = incident("b", "water_leak", "apa-brasov", 25.60, 45.65);
        leak.routing.informed.push(Informed {
            agency: "politia-rutiera".into(),
            rule: InformRule::CategoryKind,
            area: None,
        });
        let far = incident("c", "pothole", "domeniu-public", 25.70, 45.70);
        let mut resolved = incident("d", "pothole", "domeniu-public", 25.59, 45.64);
        resolved.status = IncidentStatus::Resolved;
        let all = [&pothole, &leak, &far, &resolved];
        // (filter, restriction, which of a, b, c, d it admits)
        type Row<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, &'a str);
        let table: &[Row] = &[
            (&[], None, "abcd"),
            (&[("bbox", "25.5,45.6,25.65,45.66")], None, "abd"),
            // Edges are inside.
            (&[("bbox", "25.59,45.64,25.60,45.65")], None, "abd"),
            (&[("agency", "apa-brasov")], None, "b"),
            // Informed counts.
            (&[("agency", "politia-rutiera")], None, "b"),
            (&[("agency", "domeniu-public")], None, "acd"),
            (&[("categories", "water_leak,fallen_tree")], None, "b"),
            (&[("categories", "pothole")], None, "acd"),
            (&[("status", "open")], None, "abc"),
            (&[("status", "all")], None, "abcd"),
            (
                &[
                    ("categories", "pothole"),
                    ("bbox", "25.5,45.6,25.65,45.66"),
                    ("status", "open"),
                ],
                None,
                "a",
            ),
            // An agency user never sees past its agency, whatever it asks for.
            (&[], Some("apa-brasov"), "b"),
            (&[("agency", "domeniu-public")], Some("apa-brasov"), ""),
            (&[("categories", "pothole")], Some("apa-brasov"), ""),
            (&[("agency", "politia-rutiera")], Some("apa-brasov"), "b"),
            // An agency informed of an incident hears of it too.
            (&[], Some("politia-rutiera"), "b"),
            (&[("agency", "apa-brasov")], Some("politia-rutiera"), "b"),
            (&[], Some("isu-brasov"), ""),
        ];
        for (pairs, restriction, expected) in table {
            let f = filter(pairs, *restriction);
            let got: String = all
                .iter()
                .filter(|i| f.matches(i))
                .map(|i| i.id.as_str())
                .collect();
            assert_eq!(&got, expected, "{pairs:?} restricted to {restriction:?}");
        }
    }

    #[test]
    fn an_incident_leaving_the_filter_is_sent_once_then_no_more() {
        let f = filter(&[("bbox", "25.5,45.6,25.65,45.66")], None);
        let mut visible = Visible::default();
        let mut i = incident("a", "pothole", "domeniu-public", 25.59, 45.64);
        assert_eq!(visible.admit(&f, &i), Verdict::Show);
        i.location = Point::new(25.70, 45.70);
        assert_eq!(visible.admit(&f, &i), Verdict::Leaves);
        assert_eq!(visible.admit(&f, &i), Verdict::Skip);
        // It comes back.
        i.location = Point::new(25.60, 45.65);
        assert_eq!(visible.admit(&f, &i), Verdict::Show);
        // Never seen, never matching: nothing at all.
        let other = incident("z", "pothole", "domeniu-public", 25.80, 45.80);
        assert_eq!(visible.admit(&f, &other), Verdict::Skip);
    }

    #[test]
    fn a_reassignment_away_from_an_agency_user_is_sent_once() {
        let f = filter(&[], Some("domeniu-public"));
        let mut visible = Visible::default();
        let mut i = incident("a", "pothole", "domeniu-public", 25.59, 45.64);
        assert_eq!(visible.admit(&f, &i), Verdict::Show);
        i.agency = "apa-brasov".into();
        assert_eq!(visible.admit(&f, &i), Verdict::Leaves);
        assert_eq!(visible.admit(&f, &i), Verdict::Skip);
    }

    #[test]
    fn with_status_open_a_resolved_incident_leaves() {
        let f = filter(&[("status", "open")], None);
        let mut visible = Visible::default();
        let mut i = incident("a", "pothole", "domeniu-public", 25.59, 45.64);
        assert_eq!(visible.admit(&f, &i), Verdict::Show);
        i.status = IncidentStatus::Resolved;
        assert_eq!(visible.admit(&f, &i), Verdict::Leaves);
        let all = filter(&[], None);
        let mut visible = Visible::default();
        i.status = IncidentStatus::Assigned;
        assert_eq!(visible.admit(&all, &i), Verdict::Show);
        i.status = IncidentStatus::Resolved;
        assert_eq!(visible.admit(&all, &i), Verdict::Show);
    }
}
