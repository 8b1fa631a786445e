//! Watching the conf dirs with inotify: every dir walked, and the targets
//! of symlinked job files with their dirs. The loop only learns *that*
//! something changed; it then rescans everything (debounced), which is
//! simple and always right, an overflow of the kernel's queue included.

use std::collections::{BTreeSet, HashMap};
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use super::reactor::{Reactor, Timer};

pub(super) struct Watcher {
    /// None where inotify was refused: nothing is watched.
    inotify: Option<Inotify>,
    by_path: HashMap<PathBuf, WatchDescriptor>,
    /// Ancestors of conf dirs that do not exist yet, watched only for the
    /// name on the way to the conf dir appearing (so that other files
    /// coming and going in, say, a home directory wake nothing).
    awaiting: HashMap<PathBuf, (WatchDescriptor, std::ffi::OsString)>,
    /// A rescan is due (its timer armed).
    pub rescan_armed: bool,
}

/// How long a burst of conf-dir changes may go on before one rescan.
const RESCAN_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

/// For an ancestor of a missing conf dir: a name appearing in it, or the
/// ancestor itself going.
fn awaiting_flags() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
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
    /// A watcher in the loop; one that watches nothing (said in the
    /// daemon's log) where inotify is refused.
    pub fn start(reactor: &Reactor, dlog: &super::output::DaemonLog) -> Watcher {
        let said = |e: String| dlog.log(&format!("unable to watch configuration directories: {e}"));
        let flags = InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC;
        let inotify = match Inotify::init(flags) {
            Ok(i) => {
                let fd = i.as_fd().as_raw_fd();
                match reactor.register_fd(fd, super::reactor::INOTIFY.0, mio::Interest::READABLE) {
                    Ok(()) => Some(i),
                    Err(e) => {
                        said(e.to_string());
                        None
                    }
                }
            }
            Err(e) => {
                said(crate::process::errno_text(e as i32));
                None
            }
        };
        Watcher {
            inotify,
            by_path: HashMap::new(),
            awaiting: HashMap::new(),
            rescan_armed: false,
        }
    }

    /// Watches exactly `want`, and the ancestors of the `missing` conf
    /// dirs, from now on. Returns what could not be watched, as messages.
    pub fn update(
        &mut self,
        want: &BTreeSet<PathBuf>,
        missing: &[crate::confdir::Missing],
        reactor: &Reactor,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        // An ancestor that is itself watched in full needs no other watch
        // (and one inode has one mask).
        let missing: Vec<_> = missing
            .iter()
            .filter(|m| !want.contains(&m.ancestor))
            .cloned()
            .collect();
        // A missing conf dir's ancestor newly watched: what appeared
        // between the scan and the watch is seen by one more scan.
        if self.await_ancestors(&missing) {
            self.arm_rescan(reactor);
        }
        let Some(inotify) = &self.inotify else {
            return problems;
        };
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
                    let _ = inotify.rm_watch(wd);
                }
            }
        }
        for path in want {
            if self.by_path.contains_key(path) {
                continue;
            }
            match inotify.add_watch(path, flags()) {
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

    /// Watches the ancestors of missing conf dirs (and no other);
    /// true if one is newly watched.
    fn await_ancestors(&mut self, missing: &[crate::confdir::Missing]) -> bool {
        let Some(inotify) = &self.inotify else {
            return false;
        };
        let stale: Vec<PathBuf> = self
            .awaiting
            .keys()
            .filter(|p| !missing.iter().any(|m| m.ancestor == **p))
            .cloned()
            .collect();
        for path in stale {
            if let Some((wd, _)) = self.awaiting.remove(&path) {
                let _ = inotify.rm_watch(wd);
            }
        }
        let mut anew = false;
        for m in missing {
            if self.awaiting.contains_key(&m.ancestor) {
                continue;
            }
            // A failure here leaves the dir unwatched: a rescan
            // (reload-configuration, SIGHUP) still finds it.
            if let Ok(wd) = inotify.add_watch(&m.ancestor, awaiting_flags()) {
                self.awaiting
                    .insert(m.ancestor.clone(), (wd, m.child.clone()));
                anew = true;
            }
        }
        anew
    }

    /// Something changed in a conf dir: a rescan once the burst is over.
    pub fn on_change(&mut self, reactor: &Reactor) {
        if self.drain() {
            self.arm_rescan(reactor);
        }
    }

    /// Arms the rescan, unless it is armed.
    pub fn arm_rescan(&mut self, reactor: &Reactor) {
        if !self.rescan_armed {
            self.rescan_armed = true;
            reactor.arm(RESCAN_DELAY, Timer::Rescan);
        }
    }

    /// The rescan's timer fired (said with `-v`).
    pub fn rescan_due(&mut self, dlog: &super::output::DaemonLog) {
        self.rescan_armed = false;
        if dlog.verbose {
            dlog.log("conf dirs changed: rescanning");
        }
    }

    /// Reads every pending event; true if anything may have changed.
    fn drain(&mut self) -> bool {
        let mut changed = false;
        let Some(inotify) = &self.inotify else {
            return false;
        };
        loop {
            match inotify.read_events() {
                Ok(events) if events.is_empty() => break,
                Ok(events) => {
                    for ev in events {
                        if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                            // The watched thing is gone: forget it, so the
                            // next rescan watches whatever replaced it.
                            self.by_path.retain(|_, wd| *wd != ev.wd);
                            self.awaiting.retain(|_, (wd, _)| *wd != ev.wd);
                            changed = true;
                            continue;
                        }
                        // In an awaited ancestor only the name on the way
                        // to the conf dir matters.
                        let other_name = self.awaiting.values().any(|(wd, child)| {
                            *wd == ev.wd && ev.name.as_deref() != Some(child.as_os_str())
                        });
                        if !other_name {
                            changed = true;
                        }
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
