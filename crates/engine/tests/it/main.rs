//! The engine's integration tests: the lifecycle through [`Engine::act`], and escalation of
//! missed deadlines, also across a restart on the same SQLite file; fusion across sources.

mod batch;
mod fusion;
mod lifecycle;
mod merge;
mod routing;
mod traffic;
mod warnings;
