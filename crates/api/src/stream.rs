//! `GET /api/v1/stream`: every incident change, live, as JSON text frames.
//!
//! A client first gets a snapshot of the open incidents, then one frame per change. A client that
//! falls behind (the update broadcast overflowed for it) gets a fresh snapshot instead of being
//! cut off; one that stops reading for [`SEND_TIMEOUT`] is closed, so a stuck client never holds
//! memory or slows the others.

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::RecvError;

use engine::UpdateKind;
use protocol::incident::{IncidentCollection, IncidentFeature};
use protocol::stream::{Change, StreamFrame};

use crate::AppState;

/// How long one frame may take to leave before the client is considered gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a ping goes out, so that a half-open connection is noticed by both ends.
const PING_EVERY: Duration = Duration::from_secs(20);

/// Every incident change, live, over a WebSocket (a snapshot first).
#[utoipa::path(get, path = "/api/v1/stream", tag = "incidents", responses(
    (status = 101, description = "Switching to the WebSocket protocol; frames are JSON `snapshot` and `incident`"),
    (status = 400, description = "Not a WebSocket upgrade request", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
))]
pub async fn upgrade(
    State(state): State<AppState>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match ws {
        Ok(ws) => ws.on_upgrade(move |socket| client(socket, state)),
        Err(e) => crate::Problem::bad_request(format!(
            "a WebSocket upgrade request is required: {}",
            e.body_text()
        ))
        .into_response(),
    }
}

async fn snapshot(state: &AppState) -> Option<StreamFrame> {
    let open = state.engine.open_incidents().await.ok()?;
    Some(StreamFrame::Snapshot {
        incidents: IncidentCollection::new(open.iter().map(|i| i.as_ref())),
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

async fn client(mut socket: WebSocket, state: AppState) {
    // Subscribe before the snapshot so no change falls between the two.
    let mut updates = state.engine.subscribe();
    let Some(first) = snapshot(&state).await else {
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
                    Ok(u) => StreamFrame::Incident {
                        change: match u.kind { UpdateKind::Opened => Change::Opened, UpdateKind::Updated => Change::Updated },
                        incident: Box::new(IncidentFeature::from(u.incident.as_ref())),
                    },
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "websocket client fell behind; sending a snapshot");
                        match snapshot(&state).await { Some(s) => s, None => break }
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
