//! Wire formats of Dispecer (MQTT payloads, HTTP/WebSocket JSON), versioned, converted by hand to the model.
