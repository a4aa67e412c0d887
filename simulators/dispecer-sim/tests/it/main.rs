//! Integration tests of `dispecer-sim`: scenario replays through the real engine.

mod replay;
