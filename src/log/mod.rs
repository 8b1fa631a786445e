//! Log files: a job's output appended to `LOGDIR/NAME.log`, rotated by
//! size and by day, old files compressed, and nothing lost silently.
//!
//! A [`LogFile`] is opened on the first output, appended to, and checked
//! before each write: if the file was deleted or moved away (an external
//! logrotate), it is created again. Bytes that cannot be written (full
//! disk, file-size limit, unwritable dir) are counted and dropped, never
//! buffered without bound and never allowed to stall the job; once writing
//! works again, a line says how many were lost.
//!
//! Rotation renames `NAME.log` to `NAME.log.1` after shifting the older
//! files up (`NAME.log.2.gz` … up to `keep`); the file that becomes
//! `NAME.log.2` is compressed by a helper process (the daemon's loop never
//! compresses). While a compression is running, a rotation that falls due
//! waits for it, and the file goes on growing meanwhile. Rotation happens
//! at a line boundary, so no line is split across two files.

pub mod dir;
pub mod format;
pub mod gzip;
mod name;
pub mod read;

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::rc::Rc;

use crate::conf::{LogPeriod, LogSettings};
pub use dir::LogDir;
pub use name::{capped, escape, file_name};

/// The log dir, shared by every log file in it.
pub type SharedDir = Rc<RefCell<LogDir>>;

/// How a log file is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Rotate at this size in bytes; 0: never by size.
    pub size: u64,
    /// Rotated files kept.
    pub keep: u32,
    pub daily: bool,
    pub compress: bool,
    /// Each line starts with the time it was read (`log timestamps yes`).
    pub timestamps: bool,
}

/// Ubuntu's logrotate setting users know (daily, keep 7), plus a size cap
/// so a runaway writer cannot fill the disk before midnight.
pub const DEFAULT_POLICY: Policy = Policy {
    size: 100 << 20,
    keep: 7,
    daily: true,
    compress: true,
    timestamps: false,
};

impl Policy {
    /// A job's `log` stanzas over these defaults.
    pub fn with(self, s: &LogSettings) -> Policy {
        Policy {
            size: s.size.unwrap_or(self.size),
            keep: s.keep.unwrap_or(self.keep),
            daily: s.rotate.map_or(self.daily, |r| r == LogPeriod::Daily),
            compress: s.compress.unwrap_or(self.compress),
            timestamps: s.timestamps.unwrap_or(self.timestamps),
        }
    }
}

/// A compression the daemon should start (out of its loop): gzip the file
/// `name` of the log dir into `name.gz`, then remove it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compress {
    pub name: String,
}

/// `NAME.log.N` or `NAME.log.N.gz`.
fn numbered(base: &str, n: u32, gz: bool) -> String {
    if gz {
        format!("{base}.{n}.gz")
    } else {
        format!("{base}.{n}")
    }
}

/// The renames (and removals) of one rotation, oldest first: what was
/// `.keep` goes, every `.i` becomes `.i+1`, the live file becomes `.1`.
/// Pure, for tests; [`LogFile::rotate`] carries it out.
pub fn rotation_plan(base: &str, keep: u32) -> (Vec<String>, Vec<(String, String)>) {
    let mut remove = Vec::new();
    let mut renames = Vec::new();
    if keep == 0 {
        remove.push(base.to_string());
        return (remove, renames);
    }
    remove.push(numbered(base, keep, false));
    remove.push(numbered(base, keep, true));
    for i in (1..keep).rev() {
        for gz in [false, true] {
            renames.push((numbered(base, i, gz), numbered(base, i + 1, gz)));
        }
    }
    renames.push((base.to_string(), numbered(base, 1, false)));
    (remove, renames)
}

/// One log file and what is known about it.
#[derive(Debug)]
pub struct LogFile {
    dir: SharedDir,
    /// Its name in the log dir.
    pub name: String,
    /// Its path, for messages.
    pub path: PathBuf,
    file: Option<File>,
    /// (dev, ino) of the open file, to notice it being replaced.
    ident: (u64, u64),
    size: u64,
    /// The last byte written ends a line (or nothing was written): a
    /// rotation may happen now.
    at_line_end: bool,
    dropped: u64,
    why_dropped: Option<String>,
    /// Bytes of output written to the file, in all (for the job's costs).
    pub written: u64,
    /// Bytes of output dropped, in all (reported or not).
    pub lost: u64,
    pub policy: Policy,
    /// A compression of this log's `.2` is running.
    pub compressing: bool,
    rotate_due: bool,
    /// The last error reported (reported once until writing works again).
    pub last_error: Option<String>,
}

impl LogFile {
    pub fn new(dir: SharedDir, name: String, policy: Policy) -> LogFile {
        let path = dir.borrow().path.join(&name);
        LogFile {
            dir,
            name,
            path,
            file: None,
            ident: (0, 0),
            size: 0,
            at_line_end: true,
            dropped: 0,
            why_dropped: None,
            written: 0,
            lost: 0,
            policy,
            compressing: false,
            rotate_due: false,
            last_error: None,
        }
    }

    /// Bytes dropped and not yet reported in the file.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Why the bytes were dropped (reported with the count).
    pub fn why_dropped(&self) -> Option<&str> {
        self.why_dropped.as_deref()
    }

    /// Whether a rotation waits for a running compression.
    pub fn rotate_due(&self) -> bool {
        self.rotate_due
    }

    /// A log carried across the daemon's re-exec: opened again lazily, with
    /// what it had dropped, and the rotation it had waiting.
    pub fn carried(
        dir: SharedDir,
        name: String,
        policy: Policy,
        dropped: u64,
        why_dropped: Option<String>,
        compressing: bool,
        rotate_due: bool,
    ) -> LogFile {
        LogFile {
            dropped,
            why_dropped,
            compressing,
            rotate_due,
            ..LogFile::new(dir, name, policy)
        }
    }

    fn open(&mut self) -> io::Result<()> {
        let f = self.dir.borrow_mut().open_append(&self.name)?;
        let m = f.metadata()?;
        self.ident = (m.dev(), m.ino());
        self.size = m.len();
        self.at_line_end = m.len() == 0 || last_byte_is_newline(&f, m.len());
        self.file = Some(f);
        Ok(())
    }

    /// Closes the file; the next write opens the path again (SIGUSR1,
    /// `reopen-logs`, after an external rotation).
    pub fn reopen(&mut self) {
        self.file = None;
    }

    /// Whether the open file is still the one at its name.
    fn still_ours(&self) -> bool {
        let Some(f) = &self.file else { return false };
        let at_name = self.dir.borrow_mut().identity(&self.name);
        dir::same_file(f, at_name) && at_name == Some(self.ident)
    }

    /// Ends a line left unfinished (a process that died in mid-line), so
    /// that the next process's first line starts on a line of its own.
    pub fn end_line(&mut self) -> Option<Compress> {
        if self.at_line_end {
            return None;
        }
        self.write(b"\n")
    }

    /// Appends bytes as they come, each line stamped with the time when
    /// the policy says so; returns a compression to start, if a rotation
    /// made one.
    pub fn write(&mut self, data: &[u8]) -> Option<Compress> {
        if !self.policy.timestamps {
            return self.write_lines(data);
        }
        let stamp = format!("{} ", format::rfc3339(std::time::SystemTime::now()));
        let stamped = stamp_lines(data, self.at_line_end, stamp.as_bytes());
        self.write_lines(&stamped)
    }

    fn write_lines(&mut self, mut data: &[u8]) -> Option<Compress> {
        let mut compress = None;
        while !data.is_empty() {
            let cap = self.policy.size;
            let over = cap > 0 && self.size >= cap;
            if over && self.compressing {
                self.rotate_due = true;
            }
            if (over || self.rotate_due) && !self.compressing {
                // A rotation that fell due before these bytes (a compression
                // ended, midnight) happens before them, if the file ends a
                // line.
                if self.rotate_due && self.at_line_end {
                    compress = compress.or(self.rotate());
                    continue;
                }
                // Rotate at a line boundary: finish the current line first.
                match data.iter().position(|&b| b == b'\n') {
                    Some(nl) => {
                        self.append(&data[..=nl]);
                        data = &data[nl + 1..];
                        compress = compress.or(self.rotate());
                        continue;
                    }
                    None if cap > 0 && self.size >= cap.saturating_mul(2) => {
                        // A line longer than twice the cap: split it after
                        // all, so that no file grows without bound.
                        compress = compress.or(self.rotate());
                    }
                    None => {}
                }
            }
            // Not over yet, but this write would take the file over the
            // cap: fill it to the first line end past the cap, rotate, and
            // go on with the rest, so that files stay near the cap however
            // large the writes are.
            if cap > 0 && !self.compressing && self.size + data.len() as u64 > cap {
                let room = cap.saturating_sub(self.size) as usize;
                let from = room.saturating_sub(1).min(data.len());
                if let Some(off) = data[from..].iter().position(|&b| b == b'\n') {
                    let nl = from + off;
                    self.append(&data[..=nl]);
                    data = &data[nl + 1..];
                    compress = compress.or(self.rotate());
                    continue;
                }
            }
            self.append(data);
            break;
        }
        compress
    }

    fn append(&mut self, data: &[u8]) {
        if self.file.is_some() && !self.still_ours() {
            self.file = None;
        }
        if self.file.is_none() {
            if let Err(e) = self.open() {
                self.drop_bytes(data.len(), &e);
                return;
            }
        }
        if self.dropped > 0 {
            let why = self.why_dropped.take().unwrap_or_default();
            let line = format!(
                "{}[upkeep: {} bytes of output were lost: {why}]\n",
                if self.at_line_end { "" } else { "\n" },
                self.dropped
            );
            self.dropped = 0;
            if let Err(e) = self.raw_write(line.as_bytes()) {
                self.dropped += data.len() as u64;
                self.lost += data.len() as u64;
                self.why_dropped = Some(crate::process::io_text(&e));
                self.file = None;
                return;
            }
        }
        if let Err(e) = self.raw_write(data) {
            self.drop_bytes(data.len(), &e);
            self.file = None;
        } else {
            self.written += data.len() as u64;
            self.last_error = None;
        }
    }

    fn raw_write(&mut self, data: &[u8]) -> io::Result<()> {
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        f.write_all(data)?;
        self.size += data.len() as u64;
        if let Some(&last) = data.last() {
            self.at_line_end = last == b'\n';
        }
        Ok(())
    }

    fn drop_bytes(&mut self, n: usize, e: &io::Error) {
        self.dropped += n as u64;
        self.lost += n as u64;
        let msg = crate::process::io_text(e);
        self.why_dropped = Some(msg.clone());
        if self.last_error.is_none() {
            self.last_error = Some(msg);
        }
    }

    /// Rotates now if the file ends a line, else at the next line end (or,
    /// while a compression runs, once it is done).
    pub fn rotate(&mut self) -> Option<Compress> {
        if self.compressing || !self.at_line_end {
            self.rotate_due = true;
            return None;
        }
        self.rotate_due = false;
        self.file = None;
        let mut dir = self.dir.borrow_mut();
        if !dir.exists(&self.name) {
            self.size = 0;
            return None; // nothing written since the last rotation
        }
        // Only the files that exist are shifted: find how far they go
        // (they are numbered without gaps), so that a large `keep` costs
        // nothing.
        let base = self.name.clone();
        let mut exists = |n: u32| {
            dir.exists(&numbered(&base, n, false)) || dir.exists(&numbered(&base, n, true))
        };
        let mut highest = 0;
        while highest < self.policy.keep && exists(highest + 1) {
            highest += 1;
        }
        let keep = self.policy.keep.min(highest + 1);
        let (remove, renames) = rotation_plan(&base, keep);
        if keep == self.policy.keep {
            for p in remove {
                let _ = dir.remove(&p);
            }
        }
        for (from, to) in renames {
            if dir.exists(&from) {
                let _ = dir.rename(&from, &to);
            }
        }
        self.size = 0;
        let second = numbered(&base, 2, false);
        if self.policy.compress && self.policy.keep >= 2 && dir.exists(&second) {
            self.compressing = true;
            return Some(Compress { name: second });
        }
        None
    }

    /// The helper finished compressing; a rotation that fell due meanwhile
    /// happens now if the file ends a line, else at the next line end.
    pub fn compression_done(&mut self) -> Option<Compress> {
        self.compressing = false;
        if self.rotate_due {
            return self.rotate();
        }
        None
    }
}

/// Whether an open file's last byte is a newline.
fn last_byte_is_newline(f: &File, len: u64) -> bool {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 1];
    f.read_at(&mut b, len - 1)
        .is_ok_and(|n| n == 1 && b[0] == b'\n')
}

/// `data` with `stamp` before each line that starts in it (the first one
/// too when `at_line_start`).
fn stamp_lines(data: &[u8], at_line_start: bool, stamp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 2 * stamp.len());
    let mut start = at_line_start;
    for piece in data.split_inclusive(|&b| b == b'\n') {
        if start {
            out.extend_from_slice(stamp);
        }
        out.extend_from_slice(piece);
        start = piece.ends_with(b"\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    fn dir_of(path: &Path) -> SharedDir {
        Rc::new(RefCell::new(
            LogDir::open(path, crate::process::euid()).unwrap(),
        ))
    }

    #[test]
    fn stamps_go_before_each_line_that_starts() {
        assert_eq!(stamp_lines(b"a\nb\n", true, b"T "), b"T a\nT b\n");
        assert_eq!(stamp_lines(b"rest\nnext", false, b"T "), b"rest\nT next");
        assert_eq!(stamp_lines(b"\n", false, b"T "), b"\n");
        assert_eq!(stamp_lines(b"", true, b"T "), b"");
    }

    #[test]
    fn the_rotation_plan_shifts_oldest_first() {
        let (remove, renames) = rotation_plan("web.log", 3);
        assert_eq!(remove, ["web.log.3", "web.log.3.gz"]);
        let r: Vec<(&str, &str)> = renames
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert_eq!(
            r,
            [
                ("web.log.2", "web.log.3"),
                ("web.log.2.gz", "web.log.3.gz"),
                ("web.log.1", "web.log.2"),
                ("web.log.1.gz", "web.log.2.gz"),
                ("web.log", "web.log.1"),
            ]
        );
        let (remove, renames) = rotation_plan("x.log", 0);
        assert_eq!(remove, ["x.log"]);
        assert!(renames.is_empty());
    }

    #[test]
    fn writes_rotate_at_line_boundaries_and_count_what_is_lost() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = dir_of(tmp.path());
        let path = tmp.path().join("j.log");
        let mut log = LogFile::new(
            dir.clone(),
            "j.log".into(),
            Policy {
                size: 10,
                keep: 5,
                daily: false,
                compress: false,
                timestamps: false,
            },
        );
        assert!(log.write(b"0123456789").is_none());
        log.write(b"abc\ndef\n");
        assert_eq!(fs::read_to_string(&path).unwrap(), "def\n");
        assert_eq!(
            fs::read_to_string(tmp.path().join("j.log.1")).unwrap(),
            "0123456789abc\n"
        );
        // Deleted under our feet: recreated.
        fs::remove_file(&path).unwrap();
        log.write(b"after\n");
        assert_eq!(fs::read_to_string(&path).unwrap(), "after\n");
        // An unwritable place: counted, then reported once writing works.
        let sub = tmp.path().join("sub");
        fs::create_dir(&sub).unwrap();
        let mut bad = LogFile::new(dir_of(&sub), "x.log".into(), DEFAULT_POLICY);
        fs::create_dir(sub.join("x.log")).unwrap();
        bad.write(b"lost\n");
        assert_eq!(bad.dropped(), 5);
        fs::remove_dir(sub.join("x.log")).unwrap();
        bad.write(b"kept\n");
        let text = fs::read_to_string(sub.join("x.log")).unwrap();
        assert!(
            text.starts_with("[upkeep: 5 bytes of output were lost: "),
            "{text}"
        );
        assert!(text.ends_with("]\nkept\n"), "{text}");
    }

    #[test]
    fn compression_defers_the_next_rotation() {
        let tmp = tempfile::tempdir().unwrap();
        let path = |n: &str| tmp.path().join(n);
        let mut log = LogFile::new(
            dir_of(tmp.path()),
            "c.log".into(),
            Policy {
                size: 4,
                keep: 9,
                daily: false,
                compress: true,
                timestamps: false,
            },
        );
        assert_eq!(
            log.write(b"aaaa\n"),
            None,
            "the first rotation has no .2 to compress"
        );
        assert_eq!(log.write(b"x\n"), None);
        let c = log
            .write(b"bbbb\n")
            .expect("the old .1 becomes .2, to compress");
        assert_eq!(c.name, "c.log.2");
        assert_eq!(log.write(b"cccc\n"), None, "no rotation while compressing");
        assert_eq!(log.write(b"z\n"), None, "deferred while compressing");
        assert_eq!(fs::read_to_string(path("c.log")).unwrap(), "cccc\nz\n");
        let c = log.compression_done().expect("the deferred rotation runs");
        assert_eq!(c.name, "c.log.2");
        assert_eq!(fs::read_to_string(path("c.log.1")).unwrap(), "cccc\nz\n");
        assert_eq!(fs::read_to_string(path("c.log.2")).unwrap(), "x\nbbbb\n");
        assert_eq!(fs::read_to_string(path("c.log.3")).unwrap(), "aaaa\n");
    }

    /// A compression that finishes while the file ends in mid-line does
    /// not split the line: the rotation waits for its end.
    #[test]
    fn a_finished_compression_rotates_only_at_a_line_end() {
        let tmp = tempfile::tempdir().unwrap();
        let path = |n: &str| tmp.path().join(n);
        let mut log = LogFile::new(
            dir_of(tmp.path()),
            "l.log".into(),
            Policy {
                size: 4,
                keep: 9,
                daily: false,
                compress: true,
                timestamps: false,
            },
        );
        log.write(b"aaaa\n");
        assert!(log.write(b"bbbb\n").is_some(), "compressing .2");
        log.write(b"cccc\n");
        log.write(b"dddd\n");
        log.write(b"half a l");
        assert_eq!(log.compression_done(), None, "not in mid-line");
        assert!(log.rotate_due());
        assert!(log.write(b"ine\nnext\n").is_some());
        assert_eq!(
            fs::read_to_string(path("l.log.1")).unwrap(),
            "cccc\ndddd\nhalf a line\n"
        );
        assert_eq!(fs::read_to_string(path("l.log")).unwrap(), "next\n");
    }

    #[test]
    fn keep_limits_the_rotated_files() {
        let tmp = tempfile::tempdir().unwrap();
        let path = |n: &str| tmp.path().join(n);
        let mut log = LogFile::new(
            dir_of(tmp.path()),
            "k.log".into(),
            Policy {
                size: 2,
                keep: 2,
                daily: false,
                compress: false,
                timestamps: false,
            },
        );
        for i in 0..6 {
            log.write(format!("{i}\n").as_bytes());
        }
        // Each file reaches the cap, then takes the next line and rotates.
        assert_eq!(fs::read_to_string(path("k.log.1")).unwrap(), "4\n5\n");
        assert_eq!(fs::read_to_string(path("k.log.2")).unwrap(), "2\n3\n");
        assert!(!path("k.log.3").exists(), "keep 2: the oldest went");
    }

    #[test]
    fn a_symlink_or_a_fifo_at_the_name_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let secret = tmp.path().join("secret");
        fs::write(&secret, "root only\n").unwrap();
        std::os::unix::fs::symlink(&secret, tmp.path().join("s.log")).unwrap();
        let dir = dir_of(tmp.path());
        let mut log = LogFile::new(dir.clone(), "s.log".into(), DEFAULT_POLICY);
        log.write(b"x\n");
        assert_eq!(log.dropped(), 2);
        assert_eq!(fs::read_to_string(&secret).unwrap(), "root only\n");
        nix::unistd::mkfifo(
            &tmp.path().join("f.log"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let mut log = LogFile::new(dir, "f.log".into(), DEFAULT_POLICY);
        log.write(b"y\n");
        assert_eq!(log.dropped(), 2);
    }
}
