//! Simulators of a city: a living stream of citizen reports and utility events, seeded so that
//! the same seed gives the same stream; scenarios with known outcomes; recording and replaying
//! a broker's traffic; load at a given rate.
//!
//! Boundary: simulators speak only the public wire protocol (MQTT topics and payloads of
//! `protocol`); they never call the engine or the store (the scenario replay tests do, as
//! dev-dependencies).

pub mod generator;
pub mod live;
pub mod load;
pub mod mqtt;
pub mod record;
pub mod scenario;
pub mod traffic;
pub mod wire;
