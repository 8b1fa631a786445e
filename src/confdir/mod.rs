//! Conf dirs: which files are jobs, what they are called, which override
//! goes with which `.conf`, and reading them safely.
//!
//! This is the I/O shell around the pure `conf` parser. Rules (Upstart's,
//! section 1 of the reference):
//!
//! * a file is a job if its last extension is `.conf` (an override if it is
//!   `.override`) and the part before it is not empty;
//! * directories are walked recursively; `DIR/web/api.conf` is job
//!   `web/api`; hidden, backup, editor-swap, version-control and package
//!   manager names are skipped;
//! * symlinks are followed (a loop or a dangling link is reported, never
//!   followed forever);
//! * when two dirs define a job, the first dir wins; an override is looked
//!   for in the dirs in order, up to and including the dir of the `.conf`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::conf::{self, line_col, JobClass};

pub mod trust;
pub use trust::Trust;

/// Job files bigger than this are refused unread (real ones are a few KiB).
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Directory nesting deeper than this is not walked.
pub const MAX_DEPTH: usize = 32;

/// A problem with one file, for people: `PATH:LINE:COL: message`, or
/// `PATH: message` when it is not about a place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    pub position: Option<(usize, usize)>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => {
                write!(f, "{}:{line}:{col}: {}", self.path.display(), self.message)
            }
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl Diagnostic {
    fn file(path: &Path, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            path: path.to_path_buf(),
            position: None,
            message: message.into(),
        }
    }

    fn parse(path: &Path, text: &[u8], e: &conf::ParseError) -> Diagnostic {
        Diagnostic {
            path: path.to_path_buf(),
            position: Some(line_col(text, e.offset)),
            message: e.kind.to_string(),
        }
    }
}

/// The files that make up one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFiles {
    pub name: String,
    pub conf: PathBuf,
    pub override_file: Option<PathBuf>,
}

/// What a scan of the conf dirs found.
#[derive(Debug, Default)]
pub struct Scan {
    /// By job name.
    pub jobs: BTreeMap<String, JobFiles>,
    /// Files and dirs that could not be looked at.
    pub problems: Vec<Diagnostic>,
    /// What to watch for changes: every dir walked, and for each job file
    /// that is a symlink, its target and the target's dir (editors save by
    /// renaming a new file over the old one).
    pub watch: BTreeSet<PathBuf>,
    /// Conf dirs that do not exist (yet), each with the nearest ancestor
    /// that does: watching it tells when the dir appears.
    pub missing: Vec<Missing>,
    /// What the walk saw of each job file (through a symlink, its target).
    pub stamps: HashMap<PathBuf, Stamp>,
}

/// What a file's metadata says of its contents and of who may change it:
/// a file with the same stamp as when it was last read has the same bytes
/// and the same trust, unless it was changed within the timestamps'
/// granularity of the read ([`Stamp::settled`]). Every change of contents,
/// owner or mode moves the ctime (which no one can set back), and a file
/// replaced by another has another inode: the device, inode and ctime
/// tell every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    /// Nanoseconds since the epoch.
    ctime: i64,
    /// The name is a symlink (the rest is its target's).
    pub link: bool,
}

impl Stamp {
    pub fn of(m: &fs::Metadata, link: bool) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            ctime: m
                .ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(m.ctime_nsec()),
            link,
        }
    }

    /// Whether the file last changed (contents, owner or mode) at least 2 s
    /// before `now` (seconds since the epoch): a later change then moves
    /// its ctime even on a filesystem with one-second timestamps. A file
    /// changed more recently is read again each time (git's "racily
    /// clean" rule).
    pub fn settled(&self, now: i64) -> bool {
        self.ctime.div_euclid(1_000_000_000) + 2 <= now
    }
}

/// A conf dir that does not exist, and where it will appear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub dir: PathBuf,
    /// The nearest existing ancestor directory.
    pub ancestor: PathBuf,
    /// The name under `ancestor` on the way to `dir`.
    pub child: std::ffi::OsString,
}

impl Missing {
    /// `dir`'s nearest existing ancestor, if `dir` itself is missing.
    fn of(dir: &Path) -> Option<Missing> {
        let abs = std::path::absolute(dir).ok()?;
        let mut child = None;
        for a in abs.ancestors() {
            if a.is_dir() {
                return Some(Missing {
                    dir: dir.to_path_buf(),
                    ancestor: a.to_path_buf(),
                    child: child?,
                });
            }
            child = a.file_name().map(|n| n.to_os_string());
        }
        None
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Conf,
    Override,
}

/// Splits `name.conf` / `name.override`; `None` for anything else.
fn job_file_kind(file_name: &str) -> Option<(&str, Kind)> {
    if let Some(stem) = file_name.strip_suffix(".conf") {
        return (!stem.is_empty()).then_some((stem, Kind::Conf));
    }
    if let Some(stem) = file_name.strip_suffix(".override") {
        return (!stem.is_empty()).then_some((stem, Kind::Override));
    }
    None
}

/// Directory names a conf dir walk skips (libnih's `nih_file_ignore`).
pub fn is_ignored(name: &str) -> bool {
    const VCS: &[&str] = &[
        "CVS",
        "RCS",
        "SCCS",
        ".git",
        ".svn",
        ".hg",
        ".bzr",
        "_darcs",
        ".arch-ids",
        "{arch}",
    ];
    name.starts_with('.')
        || name.ends_with('~')
        || name.ends_with(".bak")
        || name.ends_with(".BAK")
        || name.ends_with(".swp")
        || name.ends_with(".swo")
        || name.ends_with(".swn")
        || name.starts_with(".#")
        || VCS.contains(&name)
        || name.contains(".dpkg-")
        || name.ends_with(".rpmsave")
        || name.ends_with(".rpmorig")
        || name.ends_with(".rpmnew")
}

/// Per dir: job name → (.conf path, .override path).
type DirFiles = BTreeMap<String, (Option<PathBuf>, Option<PathBuf>)>;

/// Walks every conf dir and pairs the files into jobs.
pub fn scan(dirs: &[PathBuf]) -> Scan {
    let mut scan = Scan::default();
    let per_dir: Vec<DirFiles> = dirs.iter().map(|d| walk(d, &mut scan)).collect();
    for (i, files) in per_dir.iter().enumerate() {
        for (name, (conf, _)) in files {
            let Some(conf) = conf else { continue };
            if scan.jobs.contains_key(name) {
                continue; // an earlier dir owns the name
            }
            // The first override in dir order, up to this conf's dir.
            let override_file = per_dir[..=i]
                .iter()
                .find_map(|f| f.get(name).and_then(|(_, o)| o.clone()));
            scan.jobs.insert(
                name.clone(),
                JobFiles {
                    name: name.clone(),
                    conf: conf.clone(),
                    override_file,
                },
            );
        }
    }
    scan
}

/// One conf dir's job files; what could not be read goes to
/// `scan.problems`, what to watch to `scan.watch`, and a dir that does not
/// exist (not even as a dangling link) to `scan.missing`.
fn walk(root: &Path, scan: &mut Scan) -> DirFiles {
    let (problems, watch) = (&mut scan.problems, &mut scan.watch);
    let stamps = &mut scan.stamps;
    let mut files = DirFiles::new();
    let mut seen_dirs: HashSet<(u64, u64)> = HashSet::new();
    match fs::metadata(root) {
        Ok(m) if m.is_dir() => {
            seen_dirs.insert((m.dev(), m.ino()));
        }
        Ok(_) => {
            problems.push(Diagnostic::file(root, "not a directory"));
            return files;
        }
        Err(e) => {
            problems.push(Diagnostic::file(root, crate::process::io_text(&e)));
            if e.kind() == io::ErrorKind::NotFound && fs::symlink_metadata(root).is_err() {
                scan.missing.extend(Missing::of(root));
            }
            return files;
        }
    }
    // (dir, its name prefix relative to root, depth)
    let mut stack: Vec<(PathBuf, String, usize)> = vec![(root.to_path_buf(), String::new(), 0)];
    while let Some((dir, prefix, depth)) = stack.pop() {
        watch.insert(dir.clone());
        let entries = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) => {
                problems.push(Diagnostic::file(&dir, crate::process::io_text(&e)));
                continue;
            }
        };
        // (name, path, a symlink?): the entry's type comes with it from
        // readdir (d_type) on every common filesystem, saving an lstat.
        let mut names: Vec<(String, PathBuf, bool)> = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => match entry.file_name().into_string() {
                    Ok(n) => {
                        let link = entry.file_type().map_or(true, |t| t.is_symlink());
                        names.push((n, entry.path(), link));
                    }
                    Err(raw) => problems.push(Diagnostic::file(
                        &dir.join(raw),
                        "file name is not UTF-8; skipped",
                    )),
                },
                Err(e) => problems.push(Diagnostic::file(&dir, crate::process::io_text(&e))),
            }
        }
        names.sort();
        for (name, path, link) in names {
            // Emacs lock files (`.#web.conf`) are never jobs; other hidden
            // files can be (`.foo.conf` is job `.foo`), hidden dirs are not.
            if name.starts_with(".#") {
                continue;
            }
            let kind = job_file_kind(&name);
            if kind.is_none() && is_ignored(&name) {
                continue;
            }
            if kind.is_some() && link {
                watch_link_target(&path, watch);
            }
            let meta = match fs::metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    // Dangling links, loops, permissions: say so only for
                    // names that would have been jobs.
                    if kind.is_some() {
                        problems.push(Diagnostic::file(&path, link_message(&path, &e)));
                    }
                    continue;
                }
            };
            if meta.is_dir() {
                if is_ignored(&name) {
                    continue;
                }
                if depth + 1 > MAX_DEPTH {
                    problems.push(Diagnostic::file(
                        &path,
                        format!("directories nested deeper than {MAX_DEPTH}; not walked"),
                    ));
                } else if seen_dirs.insert((meta.dev(), meta.ino())) {
                    stack.push((path, format!("{prefix}{name}/"), depth + 1));
                } else {
                    problems.push(Diagnostic::file(
                        &path,
                        "directory already walked (a symlink loop?); skipped",
                    ));
                }
                continue;
            }
            let Some((stem, kind)) = kind else { continue };
            if !meta.is_file() {
                problems.push(Diagnostic::file(&path, "not a regular file; skipped"));
                continue;
            }
            stamps.insert(path.clone(), Stamp::of(&meta, link));
            let slot = files.entry(format!("{prefix}{stem}")).or_default();
            match kind {
                Kind::Conf => slot.0 = Some(path),
                Kind::Override => slot.1 = Some(path),
            }
        }
    }
    files
}

/// For a job file that is a symlink: its target and the target's dir, so
/// that an edit on either side is noticed (for a dangling link, the dir its
/// target would be in, for when the target appears).
fn watch_link_target(path: &Path, watch: &mut BTreeSet<PathBuf>) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if !meta.file_type().is_symlink() {
        return;
    }
    match fs::canonicalize(path) {
        Ok(target) => {
            if let Some(dir) = target.parent() {
                watch.insert(dir.to_path_buf());
            }
            watch.insert(target);
        }
        Err(_) => {
            let target_dir = fs::read_link(path)
                .ok()
                .and_then(|link| path.parent().map(|d| d.join(link)))
                .and_then(|t| t.parent().map(Path::to_path_buf));
            if let Some(dir) = target_dir.filter(|d| d.is_dir()) {
                watch.insert(dir);
            }
        }
    }
}

fn link_message(path: &Path, e: &io::Error) -> String {
    let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if is_link && e.kind() == io::ErrorKind::NotFound {
        return "dangling symlink; skipped".to_string();
    }
    if e.raw_os_error() == Some(libc::ELOOP) {
        return "symlink loop; skipped".to_string();
    }
    format!("{}; skipped", crate::process::io_text(e))
}

/// Reads a job file: a regular file of at most [`MAX_FILE_BYTES`], without
/// blocking on a FIFO or device that has taken its name, that no user but
/// root and the daemon's can change ([`Trust`]).
pub fn read_job_file(path: &Path) -> Result<Vec<u8>, Diagnostic> {
    read_trusted_file(path, &mut Trust::for_this_user())
}

fn read_trusted_file(path: &Path, trust: &mut Trust) -> Result<Vec<u8>, Diagnostic> {
    read_checked(path, trust, MAX_FILE_BYTES).map_err(|u| match u {
        Unread::Untrusted(why) | Unread::Other(why) => Diagnostic::file(path, why),
        Unread::TooLarge(len) => too_large(path, len),
    })
}

/// Why a file upkeep reads as it reads job files was not read.
enum Unread {
    /// [`Trust`] refused it (the message names the path).
    Untrusted(String),
    /// It could not be opened or read, or is no regular file.
    Other(String),
    /// More bytes than the caller takes.
    TooLarge(u64),
}

/// Reads a file as job files are read: the directories above it (and
/// above a symlink's target) checked by `trust`, opened without blocking
/// on a FIFO or device that has taken its name, a regular file that
/// `trust` accepts as opened, at most `max` bytes.
fn read_checked(path: &Path, trust: &mut Trust, max: u64) -> Result<Vec<u8>, Unread> {
    let io = |e: &io::Error| Unread::Other(crate::process::io_text(e));
    trust.check_dirs(path).map_err(Unread::Untrusted)?;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| io(&e))?;
    let meta = file.metadata().map_err(|e| io(&e))?;
    if meta.is_dir() {
        return Err(Unread::Other("is a directory".into()));
    }
    if !meta.is_file() {
        return Err(Unread::Other("not a regular file".into()));
    }
    if meta.len() > max {
        return Err(Unread::TooLarge(meta.len()));
    }
    trust.check_file(path, &meta).map_err(Unread::Untrusted)?;
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io(&e))?;
    if buf.len() as u64 > max {
        return Err(Unread::TooLarge(buf.len() as u64));
    }
    Ok(buf)
}

/// The largest env file read.
pub const MAX_ENV_FILE_BYTES: u64 = 64 << 10;

/// Reads an `env-file` as a job file is read (`read_checked`, with
/// [`Trust::for_env_file`]), at most [`MAX_ENV_FILE_BYTES`]; `None` when
/// there is no such file.
pub fn read_env_file(path: &Path, trust: &mut Trust) -> Result<Option<Vec<u8>>, String> {
    if let Err(e) = fs::symlink_metadata(path) {
        if e.kind() == io::ErrorKind::NotFound {
            return Ok(None);
        }
    }
    read_checked(path, trust, MAX_ENV_FILE_BYTES)
        .map(Some)
        .map_err(|u| match u {
            Unread::Untrusted(why) => why,
            Unread::Other(why) => format!("{}: {why}", path.display()),
            Unread::TooLarge(len) => format!(
                "{}: {len} bytes, more than an env file may have ({MAX_ENV_FILE_BYTES})",
                path.display()
            ),
        })
}

fn too_large(path: &Path, len: u64) -> Diagnostic {
    Diagnostic::file(
        path,
        format!("file too large ({len} bytes; a job file may have at most {MAX_FILE_BYTES})"),
    )
}

/// A job read and parsed from its files.
#[derive(Debug)]
pub struct Loaded {
    pub files: JobFiles,
    /// `None` when the `.conf` could not be read or has errors.
    pub job: Option<JobClass>,
    /// Every problem found, in file order (the `.conf`'s, then the override's).
    pub diagnostics: Vec<Diagnostic>,
}

/// Reads and parses a job's `.conf`, then applies its override (all or
/// nothing: an override with errors is reported and left out).
pub fn load(files: &JobFiles) -> Loaded {
    load_with(files, &mut Trust::for_this_user())
}

/// [`load`], with the verdicts on directories kept across the jobs of one
/// scan.
pub fn load_with(files: &JobFiles, trust: &mut Trust) -> Loaded {
    let mut diagnostics = Vec::new();
    let job = match read_trusted_file(&files.conf, trust) {
        Err(d) => {
            diagnostics.push(d);
            None
        }
        Ok(text) => match conf::parse_job(&files.name, &text) {
            Err(errs) => {
                diagnostics.extend(
                    errs.iter()
                        .map(|e| Diagnostic::parse(&files.conf, &text, e)),
                );
                None
            }
            Ok(job) => Some(job),
        },
    };
    let job = match (job, &files.override_file) {
        (Some(job), Some(path)) => match read_trusted_file(path, trust) {
            Err(d) => {
                diagnostics.push(d);
                Some(job)
            }
            Ok(text) => match conf::parse_override(&job, &text) {
                Ok(merged) => Some(merged),
                Err(errs) => {
                    diagnostics.extend(errs.iter().map(|e| Diagnostic::parse(path, &text, e)));
                    Some(job)
                }
            },
        },
        (job, _) => job,
    };
    Loaded {
        files: files.clone(),
        job,
        diagnostics,
    }
}

/// The job files for a path given on the command line: `x.conf` (with the
/// `x.override` beside it, if any) or `x.override` (with its `x.conf`).
pub fn files_for_path(path: &Path) -> Option<JobFiles> {
    let file_name = path.file_name()?.to_str()?;
    let (stem, kind) = job_file_kind(file_name).unwrap_or((file_name, Kind::Conf));
    let sibling = |ext: &str| path.with_file_name(format!("{stem}.{ext}"));
    let (conf, override_file) = match kind {
        Kind::Conf => {
            let o = sibling("override");
            (path.to_path_buf(), o.is_file().then_some(o))
        }
        Kind::Override => (sibling("conf"), Some(path.to_path_buf())),
    };
    Some(JobFiles {
        name: stem.to_string(),
        conf,
        override_file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_file_names() {
        assert!(matches!(
            job_file_kind("ssh.conf"),
            Some(("ssh", Kind::Conf))
        ));
        assert!(matches!(
            job_file_kind(".foo.conf"),
            Some((".foo", Kind::Conf))
        ));
        assert!(matches!(
            job_file_kind("x.override"),
            Some(("x", Kind::Override))
        ));
        assert!(job_file_kind(".conf").is_none());
        assert!(job_file_kind("x.conf.bak").is_none());
        assert!(job_file_kind("x.CONF").is_none());
        assert!(is_ignored("x.conf~"));
        assert!(is_ignored(".git"));
        assert!(is_ignored("x.conf.dpkg-old"));
        assert!(!is_ignored("web"));
    }
}
