//! The Dispecer server binary: CLI, configuration, signals, wiring, embedded MQTT broker.
