//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod daemon;
pub mod podman;
pub mod runner;
pub mod web;

use std::path::PathBuf;

/// The built `upkeep` binary.
pub fn upkeep_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_upkeep"))
}
