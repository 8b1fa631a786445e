//! The runner of the test files whose tests need something a machine may
//! lack: root, `../shared`, the end-to-end venv, a program on `PATH`, a
//! kernel feature.
//!
//! Such a file sets `harness = false` in `Cargo.toml` and ends with
//! [`tests!`](crate::tests) naming its tests. A test is a plain function
//! returning `()` or `Result<(), Missing>`; it asks for what it needs with
//! the `need_*` functions below when it runs, and `?` ends it there:
//!
//! ```ignore
//! fn setuid_drops_privileges() -> Result<(), Missing> {
//!     need_root()?;
//!     …
//!     Ok(())
//! }
//! tests![setuid_drops_privileges];
//! ```
//!
//! A test whose precondition is missing is reported as ignored, with its
//! reason, and counted in the summary (libtest-mimic's
//! `Completion::ignored_with`): it never passes without having run. Under
//! CI (`CI` set to anything but `false` or `0`) a missing precondition is a
//! failure instead, unless it is a kernel feature that CI's machine lacks
//! ([`CI_LACKS`], which the README's "Developing" section lists).
//!
//! A function of a test file that is not named in `tests!` is dead code,
//! which `cargo clippy -- -D warnings` refuses: a test cannot be forgotten.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// What a test needs and this machine lacks, said in words.
#[derive(Debug)]
pub struct Missing {
    reason: String,
    kernel: Option<Kernel>,
}

impl Missing {
    pub fn new(reason: impl Into<String>) -> Missing {
        Missing {
            reason: reason.into(),
            kernel: None,
        }
    }
}

/// Kernel features (or kernel permissions) a test may need: what no
/// package install gives a machine that lacks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// A new PID namespace (`unshare --pid`).
    PidNamespace,
    /// A bind mount (`mount --bind`).
    BindMount,
    /// cgroup v2's `memory.high` (a v2 memory controller).
    MemoryHigh,
    /// An IO weight: cgroup v2's `io.weight`, or v1's `blkio.weight`
    /// (which needs the BFQ scheduler).
    IoWeight,
    /// AppArmor enabled in the kernel.
    AppArmor,
}

impl Kernel {
    /// The name the README's list uses.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::PidNamespace => "a new PID namespace (unshare --pid)",
            Kernel::BindMount => "a bind mount (mount --bind)",
            Kernel::MemoryHigh => "cgroup v2's memory controller (memory.high)",
            Kernel::IoWeight => "an IO weight (cgroup v2's io.weight or v1's blkio.weight)",
            Kernel::AppArmor => "AppArmor enabled in the kernel",
        }
    }
}

/// The kernel features CI's machine lacks: the only reasons for which a
/// test may be ignored under CI. Each is listed in the README's
/// "Developing" section (`tests/readme.rs` checks it).
pub const CI_LACKS: &[Kernel] = &[Kernel::MemoryHigh, Kernel::IoWeight, Kernel::AppArmor];

/// Whether this run is CI's, where nothing may be skipped unseen.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// What a test function returns: `()`, or `Err(Missing)` when it could not
/// run here.
pub trait Outcome {
    fn into_result(self) -> Result<(), Missing>;
}

impl Outcome for () {
    fn into_result(self) -> Result<(), Missing> {
        Ok(())
    }
}

impl Outcome for Result<(), Missing> {
    fn into_result(self) -> Result<(), Missing> {
        self
    }
}

/// One test: run it, and turn a missing precondition into "ignored" (or,
/// under CI, into a failure).
pub fn trial<T: Outcome + 'static>(name: &'static str, test: fn() -> T) -> Trial {
    Trial::ignorable_test(name, move || match test().into_result() {
        Ok(()) => Ok(Completion::Completed),
        Err(missing) => judge(missing),
    })
}

fn judge(missing: Missing) -> Result<Completion, Failed> {
    let allowed = missing.kernel.is_some_and(|k| CI_LACKS.contains(&k));
    if under_ci() && !allowed {
        return Err(format!("CI runs every test, but this one {}", missing.reason).into());
    }
    Ok(Completion::ignored_with(missing.reason))
}

/// Runs the trials as `cargo test` runs tests (same arguments, same
/// summary).
pub fn run(trials: Vec<Trial>) -> ExitCode {
    libtest_mimic::run(&Arguments::from_args(), trials).exit_code()
}

/// The `main` of a test file: runs the named tests.
#[macro_export]
macro_rules! tests {
    ($($name:ident),* $(,)?) => {
        fn main() -> std::process::ExitCode {
            common::runner::run(vec![$(common::runner::trial(stringify!($name), $name)),*])
        }
    };
}

// ------------------------------------------------------------ preconditions

/// The test runs as root.
pub fn need_root() -> Result<(), Missing> {
    if upkeep::process::euid() == 0 {
        return Ok(());
    }
    Err(Missing::new(
        "needs root (run the suite as root, as CI does)",
    ))
}

/// `shared/` beside the checkout, or where `UPKEEP_SHARED` says.
pub fn need_shared() -> Result<PathBuf, Missing> {
    let dir = std::env::var_os("UPKEEP_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    if dir.join("corpus/upstart").is_dir() {
        return Ok(dir);
    }
    Err(Missing::new(format!(
        "needs the shared corpus: {} is missing; set UPKEEP_SHARED to the shared/ dir",
        dir.join("corpus/upstart").display()
    )))
}

/// `shared/corpus/upstart`: other projects' job files, read at test time,
/// never copied into this repository.
pub fn need_corpus() -> Result<PathBuf, Missing> {
    Ok(need_shared()?.join("corpus/upstart"))
}

/// Every `.conf` file of the corpus, sorted.
pub fn need_corpus_files() -> Result<Vec<PathBuf>, Missing> {
    let dir = need_corpus()?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read corpus dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    Ok(files)
}

/// The end-to-end venv with gunicorn and redis-py (`UPKEEP_E2E_VENV`,
/// `/opt/upkeep-e2e/venv` by default; `.ci/run` makes it).
pub fn need_e2e_venv() -> Result<PathBuf, Missing> {
    let venv = std::env::var_os("UPKEEP_E2E_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/upkeep-e2e/venv"));
    let ok = Command::new(venv.join("bin/python"))
        .args(["-c", "import gunicorn, redis"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Ok(venv);
    }
    Err(Missing::new(format!(
        "needs the end-to-end venv with gunicorn and redis-py at {} (set UPKEEP_E2E_VENV; .ci/run makes it)",
        venv.display()
    )))
}

/// A program, by absolute path or on `PATH`.
pub fn need_program(name: &str) -> Result<PathBuf, Missing> {
    let found = if name.contains('/') {
        Some(PathBuf::from(name)).filter(|p| is_executable(p))
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(name))
                .find(|p| is_executable(p))
        })
    };
    found.ok_or_else(|| Missing::new(format!("needs {name}, which is not installed")))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Tests that change the machine (files in `/etc`, users, links in
/// `/usr/local`) and put it back: they run as root under CI, or when
/// asked with `UPKEEP_SYSTEM_TESTS=1`.
pub fn need_system_tests() -> Result<(), Missing> {
    need_root()?;
    if under_ci() || std::env::var_os("UPKEEP_SYSTEM_TESTS").is_some_and(|v| v == "1") {
        return Ok(());
    }
    Err(Missing::new(
        "changes the machine: runs as root under CI or with UPKEEP_SYSTEM_TESTS=1",
    ))
}

/// A kernel feature, as `probe` finds it on this machine.
pub fn need_kernel(feature: Kernel, probe: impl FnOnce() -> bool) -> Result<(), Missing> {
    if probe() {
        return Ok(());
    }
    Err(Missing {
        reason: format!("needs {}, which this machine refuses", feature.name()),
        kernel: Some(feature),
    })
}

/// A built artifact that `.ci/run` makes once and names in the environment
/// (`UPKEEP_DEB`: the .deb; `UPKEEP_STATIC_BIN`: the static binary;
/// `UPKEEP_BIN`: the release binary).
pub fn need_artifact(var: &str, what: &str) -> Result<PathBuf, Missing> {
    match std::env::var_os(var).map(PathBuf::from) {
        Some(p) if p.is_file() => Ok(p),
        Some(p) => Err(Missing::new(format!(
            "needs {what}: {var} names {}, which is not a file",
            p.display()
        ))),
        None => Err(Missing::new(format!(
            "needs {what}, named by {var} (.ci/run builds it; see the README's \"Install\")"
        ))),
    }
}
