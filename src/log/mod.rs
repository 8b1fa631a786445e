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

pub mod gzip;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::conf::{LogPeriod, LogSettings};

/// How a log file is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Rotate at this size in bytes; 0: never by size.
    pub size: u64,
    /// Rotated files kept.
    pub keep: u32,
    pub daily: bool,
    pub compress: bool,
}

/// Ubuntu's logrotate setting users know (daily, keep 7), plus a size cap
/// so a runaway writer cannot fill the disk before midnight.
pub const DEFAULT_POLICY: Policy = Policy {
    size: 100 << 20,
    keep: 7,
    daily: true,
    compress: true,
};

impl Policy {
    /// A job's `log` stanzas over these defaults.
    pub fn with(self, s: &LogSettings) -> Policy {
        Policy {
            size: s.size.unwrap_or(self.size),
            keep: s.keep.unwrap_or(self.keep),
            daily: s.rotate.map_or(self.daily, |r| r == LogPeriod::Daily),
            compress: s.compress.unwrap_or(self.compress),
        }
    }
}

/// A compression the daemon should start (out of its loop): gzip `path`
/// into `path.gz`, then remove `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compress {
    pub path: PathBuf,
}

/// `NAME.log.N` or `NAME.log.N.gz`.
fn numbered(base: &Path, n: u32, gz: bool) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(format!(".{n}"));
    if gz {
        s.push(".gz");
    }
    PathBuf::from(s)
}

/// The renames (and removals) of one rotation, oldest first: what was
/// `.keep` goes, every `.i` becomes `.i+1`, the live file becomes `.1`.
/// Pure, for tests; [`LogFile::rotate`] carries it out.
pub fn rotation_plan(base: &Path, keep: u32) -> (Vec<PathBuf>, Vec<(PathBuf, PathBuf)>) {
    let mut remove = Vec::new();
    let mut renames = Vec::new();
    if keep == 0 {
        remove.push(base.to_path_buf());
        return (remove, renames);
    }
    remove.push(numbered(base, keep, false));
    remove.push(numbered(base, keep, true));
    for i in (1..keep).rev() {
        for gz in [false, true] {
            renames.push((numbered(base, i, gz), numbered(base, i + 1, gz)));
        }
    }
    renames.push((base.to_path_buf(), numbered(base, 1, false)));
    (remove, renames)
}

/// One log file and what is known about it.
#[derive(Debug)]
pub struct LogFile {
    pub path: PathBuf,
    file: Option<File>,
    /// (dev, ino) of the open file, to notice it being replaced.
    ident: (u64, u64),
    size: u64,
    dropped: u64,
    why_dropped: Option<String>,
    pub policy: Policy,
    /// A compression of this log's `.2` is running.
    pub compressing: bool,
    rotate_due: bool,
    /// The last error reported (reported once until writing works again).
    pub last_error: Option<String>,
}

impl LogFile {
    pub fn new(path: PathBuf, policy: Policy) -> LogFile {
        LogFile {
            path,
            file: None,
            ident: (0, 0),
            size: 0,
            dropped: 0,
            why_dropped: None,
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
        path: PathBuf,
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
            ..LogFile::new(path, policy)
        }
    }

    fn open(&mut self) -> io::Result<()> {
        let f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY)
            .open(&self.path)?;
        let m = f.metadata()?;
        self.ident = (m.dev(), m.ino());
        self.size = m.len();
        self.file = Some(f);
        Ok(())
    }

    /// Closes the file; the next write opens the path again (SIGUSR1,
    /// `reopen-logs`, after an external rotation).
    pub fn reopen(&mut self) {
        self.file = None;
    }

    /// Whether the open file is still the one at `path`.
    fn still_ours(&self) -> bool {
        let Some(f) = &self.file else { return false };
        match (f.metadata(), fs::symlink_metadata(&self.path)) {
            (Ok(open), Ok(at_path)) => {
                open.nlink() > 0 && (at_path.dev(), at_path.ino()) == self.ident
            }
            _ => false,
        }
    }

    /// Appends bytes as they come; returns a compression to start, if a
    /// rotation made one.
    pub fn write(&mut self, mut data: &[u8]) -> Option<Compress> {
        let mut compress = None;
        while !data.is_empty() {
            let cap = self.policy.size;
            let over = cap > 0 && self.size >= cap;
            if over && self.compressing {
                self.rotate_due = true;
            }
            if (over || self.rotate_due) && !self.compressing {
                // Rotate at a line boundary: finish the current line first.
                match data.iter().position(|&b| b == b'\n') {
                    Some(nl) => {
                        self.append(&data[..=nl]);
                        data = &data[nl + 1..];
                        compress = compress.or(self.rotate());
                        continue;
                    }
                    None if cap > 0 && self.size >= cap.saturating_mul(2) => {
                        // A line longer than the cap: split it after all.
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
                "[upkeep: {} bytes of output were lost: {why}]\n",
                self.dropped
            );
            self.dropped = 0;
            if let Err(e) = self.raw_write(line.as_bytes()) {
                self.dropped += data.len() as u64;
                self.why_dropped = Some(crate::confdir::io_message(&e));
                self.file = None;
                return;
            }
        }
        if let Err(e) = self.raw_write(data) {
            self.drop_bytes(data.len(), &e);
            self.file = None;
        } else {
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
        Ok(())
    }

    fn drop_bytes(&mut self, n: usize, e: &io::Error) {
        self.dropped += n as u64;
        let msg = crate::confdir::io_message(e);
        self.why_dropped = Some(msg.clone());
        if self.last_error.is_none() {
            self.last_error = Some(msg);
        }
    }

    /// Rotates now (or, while a compression runs, as soon as it is done).
    pub fn rotate(&mut self) -> Option<Compress> {
        if self.compressing {
            self.rotate_due = true;
            return None;
        }
        self.rotate_due = false;
        self.file = None;
        if fs::symlink_metadata(&self.path).is_err() {
            return None; // nothing written since the last rotation
        }
        // Only the files that exist are shifted: find how far they go
        // (they are numbered without gaps), so that a large `keep` costs
        // nothing.
        let exists = |n: u32| {
            fs::symlink_metadata(numbered(&self.path, n, false)).is_ok()
                || fs::symlink_metadata(numbered(&self.path, n, true)).is_ok()
        };
        let mut highest = 0;
        while highest < self.policy.keep && exists(highest + 1) {
            highest += 1;
        }
        let keep = self.policy.keep.min(highest + 1);
        let (remove, renames) = rotation_plan(&self.path, keep);
        if keep == self.policy.keep {
            for p in remove {
                let _ = fs::remove_file(p);
            }
        }
        for (from, to) in renames {
            if fs::symlink_metadata(&from).is_ok() {
                let _ = fs::rename(&from, &to);
            }
        }
        self.size = 0;
        let second = numbered(&self.path, 2, false);
        if self.policy.compress && self.policy.keep >= 2 && fs::symlink_metadata(&second).is_ok() {
            self.compressing = true;
            return Some(Compress { path: second });
        }
        None
    }

    /// The helper finished compressing; a rotation that fell due meanwhile
    /// happens now.
    pub fn compression_done(&mut self) -> Option<Compress> {
        self.compressing = false;
        if self.rotate_due {
            return self.rotate();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rotation_plan_shifts_oldest_first() {
        let (remove, renames) = rotation_plan(Path::new("/l/web.log"), 3);
        let s = |p: &PathBuf| p.display().to_string();
        assert_eq!(
            remove.iter().map(s).collect::<Vec<_>>(),
            ["/l/web.log.3", "/l/web.log.3.gz"]
        );
        let r: Vec<(String, String)> = renames.iter().map(|(a, b)| (s(a), s(b))).collect();
        assert_eq!(
            r,
            [
                ("/l/web.log.2".into(), "/l/web.log.3".into()),
                ("/l/web.log.2.gz".into(), "/l/web.log.3.gz".into()),
                ("/l/web.log.1".into(), "/l/web.log.2".into()),
                ("/l/web.log.1.gz".into(), "/l/web.log.2.gz".into()),
                ("/l/web.log".into(), "/l/web.log.1".into()),
            ]
        );
        let (remove, renames) = rotation_plan(Path::new("/l/x.log"), 0);
        assert_eq!(remove, [PathBuf::from("/l/x.log")]);
        assert!(renames.is_empty());
    }

    #[test]
    fn writes_rotate_at_line_boundaries_and_count_what_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.log");
        let mut log = LogFile::new(
            path.clone(),
            Policy {
                size: 10,
                keep: 5,
                daily: false,
                compress: false,
            },
        );
        assert!(log.write(b"0123456789").is_none());
        log.write(b"abc\ndef\n");
        assert_eq!(fs::read_to_string(&path).unwrap(), "def\n");
        assert_eq!(
            fs::read_to_string(numbered(&path, 1, false)).unwrap(),
            "0123456789abc\n"
        );
        // Deleted under our feet: recreated.
        fs::remove_file(&path).unwrap();
        log.write(b"after\n");
        assert_eq!(fs::read_to_string(&path).unwrap(), "after\n");
        // An unwritable place: counted, then reported once writing works.
        let mut bad = LogFile::new(dir.path().join("no/such/dir/x.log"), DEFAULT_POLICY);
        bad.write(b"lost\n");
        assert_eq!(bad.dropped(), 5);
        fs::create_dir_all(dir.path().join("no/such/dir")).unwrap();
        bad.write(b"kept\n");
        let text = fs::read_to_string(dir.path().join("no/such/dir/x.log")).unwrap();
        assert_eq!(
            text,
            "[upkeep: 5 bytes of output were lost: No such file or directory]\nkept\n"
        );
    }

    #[test]
    fn compression_defers_the_next_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut log = LogFile::new(
            path.clone(),
            Policy {
                size: 4,
                keep: 9,
                daily: false,
                compress: true,
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
        assert_eq!(c.path, numbered(&path, 2, false));
        assert_eq!(log.write(b"cccc\n"), None, "no rotation while compressing");
        assert_eq!(log.write(b"z\n"), None, "deferred while compressing");
        assert_eq!(fs::read_to_string(&path).unwrap(), "cccc\nz\n");
        let c = log.compression_done().expect("the deferred rotation runs");
        assert_eq!(c.path, numbered(&path, 2, false));
        assert_eq!(
            fs::read_to_string(numbered(&path, 1, false)).unwrap(),
            "cccc\nz\n"
        );
        assert_eq!(
            fs::read_to_string(numbered(&path, 2, false)).unwrap(),
            "x\nbbbb\n"
        );
        assert_eq!(
            fs::read_to_string(numbered(&path, 3, false)).unwrap(),
            "aaaa\n"
        );
    }

    #[test]
    fn keep_limits_the_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.log");
        let mut log = LogFile::new(
            path.clone(),
            Policy {
                size: 2,
                keep: 2,
                daily: false,
                compress: false,
            },
        );
        for i in 0..6 {
            log.write(format!("{i}\n").as_bytes());
        }
        // Each file reaches the cap, then takes the next line and rotates.
        assert_eq!(
            fs::read_to_string(numbered(&path, 1, false)).unwrap(),
            "4\n5\n"
        );
        assert_eq!(
            fs::read_to_string(numbered(&path, 2, false)).unwrap(),
            "2\n3\n"
        );
        assert!(
            !numbered(&path, 3, false).exists(),
            "keep 2: the oldest went"
        );
    }
}
