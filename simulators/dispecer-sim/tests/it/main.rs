//! Integration tests of `dispecer-sim`: scenario replays through the real engine; record and
//! replay through a real broker.

mod broker;
mod replay;
