//! Simulators: a living city over MQTT, seeded.
