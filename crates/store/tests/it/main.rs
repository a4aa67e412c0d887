//! The store's integration tests: one storage story, run against every backend.
//!
//! SQLite runs anywhere. PostgreSQL and TimescaleDB need a TimescaleDB server whose admin URL is
//! in `DISPECER_TEST_PG_URL` (`scripts/test.sh` starts one and sets it); each test creates its own
//! database there and drops it at the end.

mod accounts;
mod feed_counters;
mod fencing;
mod fixtures;
mod postgres;
mod sqlite;
mod story;
