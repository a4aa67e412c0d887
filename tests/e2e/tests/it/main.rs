//! End-to-end tests: one binary, modules per story.

#![allow(clippy::unwrap_used)] // tests: a failure should stop the test loudly

mod accounts;
mod agency_updates;
mod authz;
mod browser;
mod browser_journey;
mod citizen_page;
mod cluster;
mod cluster_tls;
mod congestion;
mod console;
mod console_map;
mod disk_full;
mod gdpr;
mod http_ingest;
mod ingest;
mod journey;
mod limits;
mod mqtt_auth;
mod open311;
mod reliability;
mod scenario;
mod schemathesis;
mod slow_client;
mod stream_filters;
mod tls;
mod warnings;
