//! upkeep: Upstart's job files and commands, as a single-binary process
//! supervisor. See `ARCHITECTURE.md` for the map of the rooms.

pub mod cli;
pub mod conf;
pub mod confdir;
pub mod control;
pub mod daemon;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod job;
pub mod log;
pub mod paths;
pub mod process;
