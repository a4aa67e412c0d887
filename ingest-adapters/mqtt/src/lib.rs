//! MQTT adapters (rumqttc): citizen reports in with manual acks after commit, incidents out to agencies.
