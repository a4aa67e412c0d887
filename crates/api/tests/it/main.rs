//! The API's integration tests: the router over a real engine and an in-memory SQLite store,
//! driven as an HTTP client would.

mod actions;
