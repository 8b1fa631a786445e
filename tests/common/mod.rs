//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod daemon;

use std::path::PathBuf;

/// `shared/corpus/upstart`, beside the checkout. Other projects' files are
/// read from there at test time, never copied into this repository.
///
/// Returns `None` (and says so) when it is absent, as in a user's fresh
/// clone; under CI (`CI` set) its absence is a failure, so that CI can
/// never pass by skipping.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("UPKEEP_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
        .join("corpus/upstart");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{}: missing, and CI must run the corpus tests",
            dir.display()
        );
    }
    eprintln!(
        "skipped: {} not found (set UPKEEP_SHARED to the shared/ dir)",
        dir.display()
    );
    None
}

/// Every `.conf` file of the corpus, sorted.
pub fn corpus_files() -> Vec<PathBuf> {
    let Some(dir) = corpus_dir() else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read corpus dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    files
}

/// The built `upkeep` binary.
pub fn upkeep_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_upkeep"))
}
