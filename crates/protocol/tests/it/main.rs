//! The protocol's integration tests: outside input parsed against the Brașov demo city, and the
//! JSON shapes Dispecer sends.
//!
//! Inbound parsing is tested with tables: one payload per row, and what must come of it (an event
//! with these fields, or a refusal of this `WireError` variant whose text names the problem).

mod actions;
mod cap_event;
mod citizen;
mod outbound;
mod support;
mod utility;
