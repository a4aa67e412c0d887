//! The HTTP API (axum): REST under /api/v1, the WebSocket stream and the dashboards.
