//! Watching the conf dirs with inotify: every dir walked, and the targets
//! of symlinked job files with their dirs. The loop only learns *that*
//! something changed; it then rescans everything (debounced), which is
//! simple and always right, an overflow of the kernel's queue included.

use std::collections::{BTreeSet, HashMap};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

pub(super) struct Watcher {
    inotify: Inotify,
    by_path: HashMap<PathBuf, WatchDescriptor>,
}

fn flags() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
}

impl Watcher {
    pub fn new() -> Result<Watcher, String> {
        let inotify =
            Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).map_err(|e| {
                format!(
                    "unable to watch configuration directories: {}",
                    crate::process::errno_text(e as i32)
                )
            })?;
        Ok(Watcher {
            inotify,
            by_path: HashMap::new(),
        })
    }

    /// A watcher in the loop, or none (said) where inotify is refused.
    pub fn start(
        reactor: &super::reactor::Reactor,
        dlog: &super::output::DaemonLog,
    ) -> Option<Watcher> {
        let w = Watcher::new().map_err(|msg| dlog.log(&msg)).ok()?;
        match reactor.register_fd(w.fd(), super::reactor::INOTIFY.0, mio::Interest::READABLE) {
            Ok(()) => Some(w),
            Err(e) => {
                dlog.log(&format!("unable to watch configuration directories: {e}"));
                None
            }
        }
    }

    pub fn fd(&self) -> RawFd {
        self.inotify.as_fd().as_raw_fd()
    }

    /// Watches exactly `want` from now on; returns what could not be
    /// watched, as messages.
    pub fn update(&mut self, want: &BTreeSet<PathBuf>) -> Vec<String> {
        let mut problems = Vec::new();
        let stale: Vec<PathBuf> = self
            .by_path
            .keys()
            .filter(|p| !want.contains(*p))
            .cloned()
            .collect();
        for path in stale {
            if let Some(wd) = self.by_path.remove(&path) {
                // Two paths to one inode share a descriptor: keep it while
                // another path still wants it.
                if !self.by_path.values().any(|w| *w == wd) {
                    let _ = self.inotify.rm_watch(wd);
                }
            }
        }
        for path in want {
            if self.by_path.contains_key(path) {
                continue;
            }
            match self.inotify.add_watch(path, flags()) {
                Ok(wd) => {
                    self.by_path.insert(path.clone(), wd);
                }
                Err(Errno::ENOENT) => {}
                Err(e) => problems.push(format!(
                    "{}: unable to watch for changes: {}",
                    path.display(),
                    crate::process::errno_text(e as i32)
                )),
            }
        }
        problems
    }

    /// Reads every pending event; true if anything may have changed.
    pub fn drain(&mut self) -> bool {
        let mut changed = false;
        loop {
            match self.inotify.read_events() {
                Ok(events) if events.is_empty() => break,
                Ok(events) => {
                    for ev in events {
                        if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                            // The watched thing is gone: forget it, so the
                            // next rescan watches whatever replaced it.
                            self.by_path.retain(|_, wd| *wd != ev.wd);
                        }
                        changed = true;
                    }
                }
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(_) => {
                    changed = true;
                    break;
                }
            }
        }
        changed
    }
}
