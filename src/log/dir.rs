//! The log directory, held open: every file in it is opened, renamed and
//! removed relative to this descriptor, never through a path that another
//! user could redirect.
//!
//! The rules (`docs/security.md`, "Log dir"):
//! * the dir must belong to the daemon's user or root and not be writable
//!   by group or others, unless it is sticky and root's (`/tmp`-like):
//!   then it is *shared*, and the daemon uses only files it owns;
//! * a file is opened with `O_NOFOLLOW` (a symlink is never followed) and
//!   `O_NONBLOCK` (a FIFO never blocks the loop), then checked with
//!   `fstat`: a regular file of the daemon's user with one link, or it is
//!   refused;
//! * new files are made with `O_EXCL` where the name may be taken (the
//!   compressor's temporary file), and modes are set on descriptors.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

/// An open log directory and who may own files in it.
#[derive(Debug)]
pub struct LogDir {
    pub path: PathBuf,
    fd: Option<OwnedFd>,
    /// Why the dir could not be opened (every write is then dropped with
    /// this reason, until it can be).
    error: Option<String>,
    /// The daemon's uid: the only owner of files the daemon uses.
    uid: u32,
}

/// Why a directory may not hold the daemon's logs (or `None`).
pub fn untrusted(path: &Path, st: &FileStat, uid: u32) -> Option<String> {
    let mode = st.st_mode & 0o7777;
    let owner = st.st_uid;
    if owner != uid && owner != 0 {
        return Some(format!(
            "{}: owned by uid {owner}, not by the daemon's user ({uid}) or root; refusing to keep logs there (choose another --log-dir)",
            path.display()
        ));
    }
    let sticky = mode & 0o1000 != 0;
    if mode & 0o022 != 0 && !(sticky && owner == 0) {
        return Some(format!(
            "{}: mode {mode:04o}, writable by other users; refusing to keep logs there (chmod go-w it, or choose another --log-dir)",
            path.display()
        ));
    }
    None
}

impl LogDir {
    /// Opens (making it if missing, mode 0755) the log dir. A dir that
    /// other users may write is refused (`Err`); one that cannot be opened
    /// now gives a `LogDir` that drops every write with the reason.
    pub fn open(path: &Path, uid: u32) -> Result<LogDir, String> {
        let mut d = LogDir {
            path: path.to_path_buf(),
            fd: None,
            error: None,
            uid,
        };
        d.reopen()?;
        Ok(d)
    }

    /// A log dir that is never opened (tests of the pure parts).
    pub fn closed(path: &Path) -> LogDir {
        LogDir {
            path: path.to_path_buf(),
            fd: None,
            error: Some("no log dir".into()),
            uid: crate::process::euid(),
        }
    }

    fn reopen(&mut self) -> Result<(), String> {
        if !self.path.exists() {
            let _ = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&self.path);
        }
        match nix::fcntl::open(
            &self.path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => {
                let st = fstat(fd.as_fd()).map_err(|e| {
                    format!(
                        "{}: {}",
                        self.path.display(),
                        crate::process::errno_text(e as i32)
                    )
                })?;
                if let Some(why) = untrusted(&self.path, &st, self.uid) {
                    return Err(why);
                }
                self.fd = Some(fd);
                self.error = None;
            }
            Err(e) => {
                self.fd = None;
                self.error = Some(format!(
                    "{}: {}",
                    self.path.display(),
                    crate::process::errno_text(e as i32)
                ));
            }
        }
        Ok(())
    }

    /// The descriptor (for the compression helper).
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|f| f.as_fd())
    }

    fn dirfd(&mut self) -> io::Result<BorrowedFd<'_>> {
        // Deleted and made again under us (say, by hand): open the new one.
        let gone = self
            .fd
            .as_ref()
            .is_none_or(|fd| fstat(fd.as_fd()).is_ok_and(|st| st.st_nlink == 0));
        if gone {
            if let Err(why) = self.reopen() {
                self.error = Some(why);
                self.fd = None;
            }
        }
        match &self.fd {
            Some(fd) => Ok(fd.as_fd()),
            None => Err(io::Error::other(
                self.error.clone().unwrap_or_else(|| "no log dir".into()),
            )),
        }
    }

    /// Checks that an open file is one the daemon may use.
    fn check(&self, file: &OwnedFd, name: &str) -> io::Result<()> {
        let st = fstat(file.as_fd()).map_err(io::Error::from)?;
        check_stat(&st, self.uid, name)
    }

    /// Opens `name` for appending, making it (mode 0640) if missing.
    pub fn open_append(&mut self, name: &str) -> io::Result<File> {
        let dir = self.dirfd()?;
        let fd = openat(
            dir,
            name,
            OFlag::O_WRONLY
                | OFlag::O_APPEND
                | OFlag::O_CREAT
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o640),
        )
        .map_err(|e| nofollow_error(e, name))?;
        self.check(&fd, name)?;
        Ok(File::from(fd))
    }

    /// Opens `name` to read (for `upkeep logs`, through the socket).
    pub fn open_read(&mut self, name: &str) -> io::Result<File> {
        let dir = self.dirfd()?;
        let fd = openat(
            dir,
            name,
            OFlag::O_RDONLY
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| nofollow_error(e, name))?;
        self.check(&fd, name)?;
        Ok(File::from(fd))
    }

    /// (dev, ino) of what is at `name` now, without following a link.
    pub fn identity(&mut self, name: &str) -> Option<(u64, u64)> {
        let dir = self.dirfd().ok()?;
        let st = fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).ok()?;
        Some((st.st_dev, st.st_ino))
    }

    /// Whether something is at `name`.
    pub fn exists(&mut self, name: &str) -> bool {
        self.identity(name).is_some()
    }

    /// Whether `name` is a regular file of the daemon's (what it may
    /// rename or remove).
    fn ours(&mut self, name: &str) -> bool {
        let uid = self.uid;
        let Ok(dir) = self.dirfd() else {
            return false;
        };
        fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
            .is_ok_and(|st| check_stat(&st, uid, name).is_ok())
    }

    /// Renames one of the daemon's files (nothing else is touched).
    pub fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        if !self.ours(from) {
            return Err(io::Error::other(format!(
                "{from}: not a file of the daemon's"
            )));
        }
        let dir = self.dirfd()?;
        renameat(dir, from, dir, to).map_err(io::Error::from)
    }

    /// Removes one of the daemon's files (or a link planted at a name the
    /// daemon uses: removing a link never touches what it points to).
    pub fn remove(&mut self, name: &str) -> io::Result<()> {
        let uid = self.uid;
        let dir = self.dirfd()?;
        let st = fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)?;
        let is_link =
            SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFLNK;
        if !is_link && check_stat(&st, uid, name).is_err() {
            return Err(io::Error::other(format!(
                "{name}: not a file of the daemon's"
            )));
        }
        unlinkat(dir, name, UnlinkatFlags::NoRemoveDir).map_err(io::Error::from)
    }
}

/// A regular file, of `uid`, with one link: a file the daemon made.
pub fn check_stat(st: &FileStat, uid: u32, name: &str) -> io::Result<()> {
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    if kind != SFlag::S_IFREG {
        return Err(io::Error::other(format!("{name}: not a regular file")));
    }
    if st.st_uid != uid {
        return Err(io::Error::other(format!(
            "{name}: owned by uid {}, not by the daemon's user ({uid})",
            st.st_uid
        )));
    }
    if st.st_nlink > 1 {
        return Err(io::Error::other(format!(
            "{name}: has {} links; the daemon's files have one",
            st.st_nlink
        )));
    }
    Ok(())
}

fn nofollow_error(e: Errno, name: &str) -> io::Error {
    match e {
        // O_NOFOLLOW on a symlink.
        Errno::ELOOP => io::Error::other(format!("{name}: a symbolic link; never followed")),
        // A FIFO without a reader, opened for writing without blocking.
        Errno::ENXIO => io::Error::other(format!("{name}: not a regular file")),
        e => io::Error::from(e),
    }
}

/// Whether the file at `path` (already open as `file`) has been replaced.
pub fn same_file(file: &File, identity: Option<(u64, u64)>) -> bool {
    match (file.metadata(), identity) {
        (Ok(m), Some(id)) => m.nlink() > 0 && (m.dev(), m.ino()) == id,
        _ => false,
    }
}
