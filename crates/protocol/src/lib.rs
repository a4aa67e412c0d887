//! Dispecer's wire formats, version 1: MQTT topics and payloads, HTTP and WebSocket JSON.
//!
//! Boundary: every type here is a wire shape, converted by hand to and from `model`, so a change
//! of the domain never silently changes what senders and dashboards see. Parsing outside input
//! never panics: every refusal is a [`WireError`] whose text is the reason a sender reads.

pub mod action;
pub mod cap;
pub mod capout;
pub mod city;
pub mod derived;
pub mod error;
pub mod inbound;
pub mod incident;
pub mod open311;
pub mod reports;
pub mod senml;
pub mod stream;
pub mod topics;
pub mod traffic;
pub mod warning;

pub use error::WireError;
