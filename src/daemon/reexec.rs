//! `re-exec` (Upstart's `telinit u`): the daemon replaces its own image
//! with its binary as it is on disk now, keeping every job running with
//! its pid, its state and its output.
//!
//! The old image writes its whole state (the [`Handover`]: this envelope,
//! with each part's saved form flattened into it) to a memfd, clears
//! close-on-exec on the descriptors the state names (the lock, the
//! listeners, each control client, each job's pty or pipe, each notify
//! socket) and calls `execve` with its original argv and
//! `UPKEEP_REEXEC=FD`. Its pid does not change, so every job stays its
//! child, the subreaper setting stays, and signals that arrive meanwhile
//! stay pending until the new image's signalfd reads them. Output a job
//! writes meanwhile waits in its pty or pipe.
//!
//! The new image finds `UPKEEP_REEXEC`, adopts the descriptors the state
//! names (and nothing else), restores every part, marks every descriptor
//! close-on-exec again, rescans the conf dirs, and answers whoever asked.
//! If it cannot read the state, it starts as after a crash (`mod.rs`). If
//! `execve` fails (the binary is gone), the old image goes on.
//!
//! This is a wire format between two images, possibly of two releases (an
//! API boundary): every field a later release adds has a default, and
//! `FORMAT` changes only when an old image's state can no longer be read.

use std::collections::HashSet;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use serde::{Deserialize, Serialize};

use super::{clients, events, jobs, notify, output, reactor, setup, Config, Daemon, Key};
use crate::control::Response;
use crate::process::handover;
pub(super) use blob::{Blob, Span};

/// The variable that carries the state's descriptor into the new image.
pub const ENV: &str = "UPKEEP_REEXEC";

/// The handover format this release writes.
///
/// * 1: the first release with re-exec; client buffers and partial output
///   lines as JSON arrays of numbers.
/// * 2: the lock is the socket directory's descriptor; the private socket
///   (`priv_listener_fd`); byte buffers go raw after the JSON document (a
///   newline, then the bytes each `[offset, length]` names).
pub const FORMAT: u32 = 2;
/// The formats this release reads.
pub const READS: &[u32] = &[1, 2];

#[derive(Serialize, Deserialize)]
struct Handover {
    format: u32,
    /// The release that wrote it, for messages.
    writer: String,
    lock_fd: RawFd,
    listener_fd: RawFd,
    /// `SOCKET.priv` (format 2; an image of format 1 had none).
    #[serde(default)]
    priv_listener_fd: Option<RawFd>,
    original_nofile: Option<(u64, u64)>,
    rescan_armed: bool,
    #[serde(flatten)]
    reactor: reactor::Saved,
    #[serde(flatten)]
    jobs: jobs::Saved,
    #[serde(flatten)]
    bus: events::Saved,
    #[serde(flatten)]
    clients: clients::Saved,
    #[serde(flatten)]
    output: output::Saved,
    #[serde(flatten)]
    notify: notify::Saved,
    /// The probes' counters (absent before `health`).
    #[serde(default)]
    probes: Vec<super::probes::SavedRun>,
}

impl Handover {
    /// Every descriptor the state names: what must stay open across the
    /// exec.
    fn descriptors(&self) -> Vec<RawFd> {
        let mut fds = vec![self.lock_fd, self.listener_fd];
        fds.extend(self.priv_listener_fd);
        fds.extend(clients::Clients::descriptors(&self.clients));
        fds.extend(output::Output::descriptors(&self.output));
        fds.extend(notify::Notify::descriptors(&self.notify));
        fds
    }
}

/// Splits what a previous image wrote: the JSON document, then (format 2)
/// a newline and the raw bytes. Pure, for the fixtures' test.
fn parse_state(data: &[u8]) -> Result<(Handover, Blob), String> {
    let mut docs = serde_json::Deserializer::from_slice(data).into_iter::<Handover>();
    let h = match docs.next() {
        Some(h) => h.map_err(|e| format!("state: {e}"))?,
        None => return Err("state: empty".into()),
    };
    let end = docs.byte_offset();
    let blob = match data[end..].iter().position(|&b| b == b'\n') {
        Some(nl) => data[end + nl + 1..].to_vec(),
        None => Vec::new(),
    };
    if !READS.contains(&h.format) {
        return Err(format!(
            "state format {} (written by upkeep {}) is not one this release reads ({READS:?})",
            h.format, h.writer
        ));
    }
    Ok((h, Blob(blob)))
}

impl Daemon {
    /// Carries out the `re-exec` requests of this loop turn. Returns only
    /// if the exec failed; then the requests are answered with the error.
    pub(super) fn reexec(&mut self) {
        let requests = std::mem::take(&mut self.clients.reexec);
        let failed = |d: &mut Daemon, msg: String| {
            d.dlog.log(&msg);
            let resp = Response::Error { message: msg };
            for &c in &requests {
                d.clients.reply(c, &resp, &d.reactor);
            }
        };
        if self.shutdown.active {
            return failed(self, "The daemon is shutting down".into());
        }
        let Some(exe) = self.host.exe.clone() else {
            return failed(
                self,
                "unable to re-exec: the daemon's own binary was not known at start".into(),
            );
        };
        let mut blob = Blob::default();
        let bus = &self.bus;
        let state = Handover {
            format: FORMAT,
            writer: crate::VERSION.into(),
            lock_fd: self.host.lock.fd(),
            listener_fd: self.reactor.listener.as_raw_fd(),
            priv_listener_fd: self.reactor.priv_listener.as_ref().map(|l| l.as_raw_fd()),
            original_nofile: self.host.original_nofile,
            rescan_armed: self.watcher.rescan_armed,
            reactor: self.reactor.saved(),
            jobs: self.jobs.saved(&|k| bus.stop_held(k)),
            bus: self.bus.saved(),
            clients: self.clients.saved(&requests, &mut blob),
            output: self.output.saved(&mut blob),
            notify: self.notify.saved(),
            probes: self.probes.saved(),
        };
        let mut data = match serde_json::to_vec(&state) {
            Ok(d) => d,
            Err(e) => return failed(self, format!("unable to re-exec: state: {e}")),
        };
        data.push(b'\n');
        data.extend_from_slice(&blob.0);
        let memfd = match handover::state_memfd(&data) {
            Ok(f) => f,
            Err(e) => return failed(self, format!("unable to re-exec: memfd: {e}")),
        };
        let mut kept = state.descriptors();
        kept.push(memfd.as_raw_fd());
        if let Some(e) = kept
            .iter()
            .find_map(|&fd| handover::keep_across_exec(fd).err())
        {
            crate::process::spawn::close_inherited_fds();
            return failed(self, format!("unable to re-exec: {e}"));
        }
        let (n, p) = (self.jobs.instances.len(), self.jobs.pids.len());
        self.dlog.log(&format!(
            "re-executing {} ({n} job instance{}, {p} process{} kept)",
            exe.display(),
            if n == 1 { "" } else { "s" },
            if p == 1 { "" } else { "es" },
        ));
        let err = handover::exec(
            &exe,
            &self.host.argv,
            &[(ENV, memfd.as_raw_fd().to_string())],
        );
        // Still here: nothing was replaced. Every descriptor is ours again.
        crate::process::spawn::close_inherited_fds();
        drop(memfd);
        failed(self, format!("unable to re-exec {}: {err}", exe.display()));
    }

    /// The daemon as the previous image left it, if this process is a
    /// re-exec and the state reads. If it does not, whatever was handed
    /// across goes, the lock with it; the state file then names the old
    /// image's job processes, which a fresh start stops before it starts.
    pub(super) fn resumed(cfg: &Config) -> Option<Daemon> {
        let fd = handover::handed_over(ENV)?;
        match fd.and_then(|fd| Daemon::resume(cfg.clone(), fd)) {
            Ok(d) => Some(d),
            Err(msg) => {
                crate::log::format::say(&format!(
                    "unable to resume after re-exec: {msg}; stopping what the previous image ran and starting afresh"
                ));
                handover::close_inherited();
                None
            }
        }
    }

    /// The new image: the daemon as the previous one left it.
    fn resume(cfg: Config, state_fd: RawFd) -> Result<Daemon, String> {
        let data = handover::read_state(state_fd).map_err(|e| format!("state: {e}"))?;
        let (h, blob) = parse_state(&data)?;
        // Descriptors adopted from the state, each number once.
        let mut taken = HashSet::new();
        let mut adopt = |fd: RawFd| -> Result<OwnedFd, String> {
            if !taken.insert(fd) {
                return Err(format!("descriptor {fd} is named twice"));
            }
            handover::adopt(fd).map_err(|e| e.to_string())
        };
        let lock = setup::Lock::adopt(adopt(h.lock_fd)?, &cfg.socket)?;
        let listener = |fd: OwnedFd| -> Result<mio::net::UnixListener, String> {
            let l = std::os::unix::net::UnixListener::from(fd);
            l.set_nonblocking(true)
                .map_err(|e| format!("listener: {e}"))?;
            Ok(mio::net::UnixListener::from_std(l))
        };
        let public = listener(adopt(h.listener_fd)?)?;
        let private = match h.priv_listener_fd {
            Some(fd) => listener(adopt(fd)?),
            // An image of format 1 had none: the socket is made now.
            None => setup::bind_private(&cfg.socket),
        };
        let host = setup::Host::new(cfg, lock, h.original_nofile);
        let mut d = Daemon::bare(host, (public, private))?;
        d.reactor.restore(h.reactor);
        let stop_held = h.jobs.stop_held();
        d.jobs.restore(h.jobs)?;
        let held = |k: &Key| stop_held.get(k).cloned();
        d.bus
            .restore(h.bus, &d.jobs.classes, &d.jobs.instances, &held)?;
        let answer = d
            .clients
            .restore(h.clients, &blob, &d.reactor, &mut adopt)?;
        d.output.restore(h.output, &blob, &d.reactor, &mut adopt)?;
        d.notify.restore(h.notify, &d.reactor, &mut adopt)?;
        // Everything handed across is adopted: from here on, no descriptor
        // of the daemon reaches a job or a later image unasked.
        crate::process::spawn::close_inherited_fds();
        d.notify.rewatch_aliens(&d.jobs, &d.reactor);
        d.groups_after_reexec();
        let insts = &d.jobs.instances;
        let probe_of = |k: &Key, role| insts.get(k)?.class.health.probe(role).cloned();
        d.probes.restore(h.probes, &probe_of, &d.reactor);
        // The conf dirs as they are now: changed jobs take effect at their
        // next start, as they would have in the old image.
        d.reload_configuration();
        d.reactor.arm_daily();
        if h.rescan_armed {
            d.watcher.arm_rescan(&d.reactor);
        }
        // Anything that ended during the exec is reaped on the first turn
        // (its SIGCHLD stayed pending); the state file is rewritten.
        d.clients.accept_stalled = true;
        d.jobs.dirty = true;
        let (n, p) = (d.jobs.instances.len(), d.jobs.pids.len());
        d.dlog.log(&format!(
            "re-executed as upkeep {} (state of upkeep {}): {n} job instance{} and {p} process{} kept",
            crate::VERSION,
            h.writer,
            if n == 1 { "" } else { "s" },
            if p == 1 { "" } else { "es" },
        ));
        for c in answer {
            let resp = Response::ok(Vec::new());
            d.clients.reply(c, &resp, &d.reactor);
        }
        Ok(d)
    }
}

mod blob;
#[cfg(test)]
mod tests;
