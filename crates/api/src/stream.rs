//! `GET /api/v1/stream`: every incident change, live, as JSON text frames.
//!
//! A client first gets a snapshot of the open incidents, then one frame per change. A client that
//! falls behind (the update broadcast overflowed for it) gets a fresh snapshot instead of being
//! cut off; one that stops reading for [`SEND_TIMEOUT`] is closed, so a stuck client never holds
//! memory or slows the others. An agency user's session (cookie) sees its agency's incidents
//! only, and hears once of one that leaves its agency.

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use std::collections::HashSet;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::RecvError;

use engine::UpdateKind;
use model::{AgencyId, Incident, IncidentId};
use protocol::incident::{IncidentCollection, IncidentFeature};
use protocol::stream::{Change, EscalationDto, StreamFrame};

use crate::AppState;

/// How long one frame may take to leave before the client is considered gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a ping goes out, so that a half-open connection is noticed by both ends.
const PING_EVERY: Duration = Duration::from_secs(20);

/// Every incident change, live, over a WebSocket (a snapshot first); an agency user's session
/// gets its agency's incidents only.
#[utoipa::path(get, path = "/api/v1/stream", tag = "incidents", responses(
    (status = 101, description = "Switching to the WebSocket protocol; frames are JSON `snapshot` and `incident`"),
    (status = 400, description = "Not a WebSocket upgrade request", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
    (status = 503, description = "Too many live clients; see Retry-After", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
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
    // An agency user's session gets its agency's incidents only.
    let only = match crate::accounts::agency_restriction(&state, &headers).await {
        Ok(only) => only.map(|a| AgencyId::from(a.as_str())),
        Err(p) => return p.into_response(),
    };
    ws.on_upgrade(move |socket| async move {
        client(socket, state, only).await;
        // The client's place is free again only once its socket is done.
        drop(slot);
    })
}

/// What an agency-limited client has been shown: it also hears of an incident that leaves its
/// agency (a reassignment), once, so that the console can drop it.
#[derive(Debug, Default)]
struct Visible(HashSet<IncidentId>);

impl Visible {
    /// Whether `incident` goes to a client limited to `only`, and remembers what it saw.
    fn admit(&mut self, only: Option<&AgencyId>, incident: &Incident) -> bool {
        let Some(only) = only else { return true };
        if &incident.agency == only {
            self.0.insert(incident.id.clone());
            true
        } else {
            self.0.remove(&incident.id)
        }
    }
}

async fn snapshot(
    state: &AppState,
    only: Option<&AgencyId>,
    visible: &mut Visible,
) -> Option<StreamFrame> {
    let open = state.engine.open_incidents().await.ok()?;
    visible.0.clear();
    let shown: Vec<_> = open.iter().filter(|i| visible.admit(only, i)).collect();
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

async fn client(mut socket: WebSocket, state: AppState, only: Option<AgencyId>) {
    // Subscribe before the snapshot so no change falls between the two.
    let mut updates = state.engine.subscribe();
    let mut visible = Visible::default();
    let Some(first) = snapshot(&state, only.as_ref(), &mut visible).await else {
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
                    Ok(u) if !visible.admit(only.as_ref(), &u.incident) => continue,
                    Ok(u) => StreamFrame::Incident {
                        change: match u.kind { UpdateKind::Opened => Change::Opened, UpdateKind::Updated => Change::Updated },
                        incident: Box::new(IncidentFeature::from(u.incident.as_ref())),
                        escalation: u.escalation.map(|e| EscalationDto::new(&e, &u.incident)),
                    },
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "websocket client fell behind; sending a snapshot");
                        match snapshot(&state, only.as_ref(), &mut visible).await { Some(s) => s, None => break }
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
