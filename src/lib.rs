//! upkeep: Upstart's job files and commands, as a single-binary process
//! supervisor. See `ARCHITECTURE.md` for the map of the rooms.
//!
//! `unsafe` is refused everywhere but in `process/`, the one room that
//! makes raw system calls, and there every block must say why it is sound.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

/// This release's version (the daemon's handover names its writer by it).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub mod cgroup;
pub mod cli;
pub mod conf;
pub mod confdir;
pub mod control;
pub mod daemon;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub mod job;
pub mod log;
pub mod manual;
pub mod paths;
#[allow(unsafe_code)]
pub mod process;
pub mod web;
