//! The compression helper: `upkeep __gzip NAME`, with the log dir open on
//! its standard input, gzips the file NAME of that dir into NAME.gz and
//! removes NAME. It runs as a child process so that the daemon's loop
//! never spends time compressing, and it runs as the daemon's user (root,
//! often) in a dir another user may share: it never resolves a path. Every
//! file is opened relative to the dir's descriptor without following a
//! link, the file it compresses must be a regular file of its own user
//! with one link (the file the daemon rotated, not one planted or swapped
//! in), the temporary file is made with `O_EXCL`, and modes are set on
//! descriptors.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::{AsFd, BorrowedFd};

use flate2::write::GzEncoder;
use flate2::Compression;
use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fchmod, fstat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};

use super::dir::check_stat;

/// Compresses `name` to `name.gz` in `dir` (through a temporary name, so a
/// half-written `.gz` never appears), then removes `name`.
pub fn compress_in(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    if name.is_empty() || name.contains('/') {
        return Err(io::Error::other("not a log file name"));
    }
    let st = fstat(dir).map_err(io::Error::from)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(io::Error::other("standard input is not the log dir"));
    }
    let me = crate::process::euid();
    let input = openat(
        dir,
        name,
        OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)?;
    let st = fstat(input.as_fd()).map_err(io::Error::from)?;
    check_stat(&st, me, name)?;
    let gz = format!("{name}.gz");
    let tmp = format!("{name}.gz.tmp");
    // What is at the temporary name is a leftover or a plant: it goes
    // (removing a link never touches its target), and the file is made
    // new, never opened through whatever was there.
    let _ = unlinkat(dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
    let out = openat(
        dir,
        tmp.as_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(io::Error::from)?;
    fchmod(out.as_fd(), Mode::from_bits_truncate(st.st_mode & 0o777)).map_err(io::Error::from)?;
    let mut input = File::from(input);
    let mut enc = GzEncoder::new(BufWriter::new(File::from(out)), Compression::default());
    io::copy(&mut input, &mut enc)?;
    let mut w = enc.finish()?;
    w.flush()?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    renameat(dir, tmp.as_str(), dir, gz.as_str()).map_err(io::Error::from)?;
    unlinkat(dir, name, UnlinkatFlags::NoRemoveDir).map_err(io::Error::from)?;
    Ok(())
}

/// `upkeep __gzip NAME`: the log dir is the standard input.
pub fn helper_main(name: &str) -> io::Result<()> {
    compress_in(io::stdin().as_fd(), name)
}
