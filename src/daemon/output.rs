//! Job output in the daemon: reading each job process's pty or pipe as
//! the loop says it is readable, and handing the bytes to the job's
//! [`LogFile`] (and, with `--log-to-stdout`, to the daemon's stdout, each
//! line prefixed with the job's name).
//!
//! Reading never waits: a reader drains at most [`READ_BUDGET`] bytes per
//! turn of the loop and is then put back in line, so one job writing
//! without pause cannot starve the others or the control socket.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use mio::unix::SourceFd;
use mio::{Interest, Token};

use super::Daemon;
use crate::conf::{Console, JobClass, LogCapture};
use crate::log::{Compress, LogFile};
use crate::process::{self, capture};

/// Bytes read from one job per turn of the loop before others get theirs.
pub const READ_BUDGET: usize = 1 << 20;

pub(super) struct Reader {
    pub(super) file: File,
    /// The log file (its name in LOGDIR) the output goes to.
    pub(super) log: String,
    /// For `--log-to-stdout`: the prefix, and an unfinished line.
    pub(super) label: String,
    pub(super) partial: Vec<u8>,
}

/// What `spawn` needs for a job's output, and what to register after.
pub(super) struct Capture {
    pub output: process::Output,
    pub reader: Option<(OwnedFd, String, String)>,
}

impl Daemon {
    /// Sets up where a job process's output goes.
    pub(super) fn capture_for(
        &mut self,
        class: &JobClass,
        log_name: String,
        label: String,
    ) -> Result<Capture, String> {
        match class.console {
            Console::None => {
                return Ok(Capture {
                    output: process::Output::Null,
                    reader: None,
                })
            }
            Console::Output | Console::Owner => {
                return Ok(Capture {
                    output: process::Output::Inherit,
                    reader: None,
                })
            }
            Console::Log => {}
        }
        let policy = self.log_policy.with(&class.log);
        let dir = self.log_dir.clone();
        self.logs
            .entry(log_name.clone())
            .or_insert_with(|| LogFile::new(dir, log_name.clone(), policy))
            .policy = policy;
        // Two descriptors per job in the end (its pty or pipe, and its log
        // file), with the reserve kept.
        if !capture::room_for(2) {
            return Err(format!(
                "unable to capture output: {} (the last {} descriptors are kept for the state file and root's requests)",
                process::errno_text(libc::EMFILE),
                capture::RESERVED_FDS
            ));
        }
        let want_pty = class.log.capture.unwrap_or(LogCapture::Pty) == LogCapture::Pty;
        let pair = if want_pty {
            capture::pty().or_else(|e| {
                self.log(&format!(
                    "{label}: unable to create a pty ({e}); using a pipe"
                ));
                capture::pipe()
            })
        } else {
            capture::pipe()
        };
        match pair {
            Ok((read, write)) => Ok(Capture {
                output: process::Output::File(write),
                reader: Some((read, log_name, label)),
            }),
            // Out of descriptors, say: the process is not started rather
            // than started with its output thrown away.
            Err(e) => Err(format!(
                "unable to capture output: {}",
                process::io_text(&e)
            )),
        }
    }

    /// Starts reading a job process's output.
    pub(super) fn add_reader(&mut self, fd: OwnedFd, log: String, label: String) {
        let token = self.next_token;
        self.next_token += 1;
        let raw = fd.as_raw_fd();
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut SourceFd(&raw), Token(token), Interest::READABLE)
        {
            self.log(&format!("{label}: unable to watch output: {e}"));
            return;
        }
        self.readers.insert(
            token,
            Reader {
                file: File::from(fd),
                log,
                label,
                partial: Vec::new(),
            },
        );
    }

    /// Reads what a job wrote, up to the budget.
    pub(super) fn on_output(&mut self, token: usize) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        loop {
            let Some(r) = self.readers.get_mut(&token) else {
                return;
            };
            match r.file.read(&mut buf) {
                Ok(0) => break self.close_reader(token),
                Ok(n) => {
                    total += n;
                    let log = r.log.clone();
                    if self.log_to_stdout {
                        echo(r, &buf[..n]);
                    }
                    self.write_log(&log, &buf[..n]);
                    if total >= READ_BUDGET {
                        // More may be waiting: come back after the others.
                        if !self.more_output.contains(&token) {
                            self.more_output.push(token);
                        }
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // EIO: every writer of the pty is gone.
                Err(_) => break self.close_reader(token),
            }
        }
    }

    fn close_reader(&mut self, token: usize) {
        if let Some(mut r) = self.readers.remove(&token) {
            let raw = r.file.as_raw_fd();
            let _ = self.poll.registry().deregister(&mut SourceFd(&raw));
            if self.log_to_stdout && !r.partial.is_empty() {
                r.partial.push(b'\n');
                echo(&mut r, &[]);
            }
            let still_used = self.readers.values().any(|o| o.log == r.log);
            if !still_used {
                // A line the process left unfinished is ended, so the next
                // run's first line is a line of its own; then the file is
                // closed until the next output (rotation state stays).
                let mut compress = None;
                if let Some(l) = self.logs.get_mut(&r.log) {
                    compress = l.end_line();
                    l.reopen();
                }
                if let Some(c) = compress {
                    self.start_compression(&r.log, c);
                }
            }
        }
    }

    pub(super) fn write_log(&mut self, name: &str, data: &[u8]) {
        let Some(log) = self.logs.get_mut(name) else {
            return;
        };
        let had_error = log.last_error.is_some();
        let compress = log.write(data);
        let new_error = if had_error {
            None
        } else {
            log.last_error.clone()
        };
        let path = log.path.clone();
        if let Some(e) = new_error {
            self.log(&format!(
                "{}: unable to write: {e}; output is counted and dropped until it works again",
                path.display()
            ));
        }
        if let Some(c) = compress {
            self.start_compression(name, c);
        }
    }

    /// Gzips a rotated file in a helper process, out of the loop.
    pub(super) fn start_compression(&mut self, name: &str, c: Compress) {
        let started = {
            let dir = self.log_dir.borrow();
            match dir.fd() {
                Some(fd) => crate::process::spawn_gzip(fd, &c.name),
                None => Err(io::Error::other("the log dir is not open")),
            }
        };
        match started {
            Ok(pid) => {
                self.compressors.insert(pid, name.to_string());
            }
            Err(e) => {
                let path = self.log_dir.borrow().path.join(&c.name);
                self.log(&format!(
                    "{}: unable to start compressing: {e}",
                    path.display()
                ));
                self.compression_finished_for(name);
            }
        }
    }

    /// A reaped pid that was a compression helper: its log may rotate now.
    pub(super) fn compression_finished(&mut self, pid: i32) -> bool {
        let Some(name) = self.compressors.remove(&pid) else {
            return false;
        };
        self.compression_finished_for(&name);
        true
    }

    fn compression_finished_for(&mut self, name: &str) {
        let next = if name == super::DAEMON_LOG {
            self.daemon_log.borrow_mut().compression_done()
        } else {
            self.logs.get_mut(name).and_then(|l| l.compression_done())
        };
        if let Some(c) = next {
            self.start_compression(name, c);
        }
    }

    /// The daily rotation, at local midnight.
    pub(super) fn rotate_daily(&mut self) {
        let names: Vec<String> = self
            .logs
            .iter()
            .filter(|(_, l)| l.policy.daily)
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            let c = self.logs.get_mut(&name).and_then(|l| l.rotate());
            if let Some(c) = c {
                self.start_compression(&name, c);
            }
        }
        let c = self.daemon_log.borrow_mut().rotate();
        if let Some(c) = c {
            self.start_compression(super::DAEMON_LOG, c);
        }
    }

    /// SIGUSR1 / `reopen-logs`: every log file is opened again on its next
    /// write (after an external logrotate moved them).
    pub(super) fn reopen_logs(&mut self) {
        for l in self.logs.values_mut() {
            l.reopen();
        }
        self.daemon_log.borrow_mut().reopen();
    }
}

/// Copies output to the daemon's stdout, one whole line at a time, each
/// prefixed with the job's name.
fn echo(r: &mut Reader, data: &[u8]) {
    r.partial.extend_from_slice(data);
    let Some(last_nl) = r.partial.iter().rposition(|&b| b == b'\n') else {
        if r.partial.len() > 64 * 1024 {
            r.partial.push(b'\n');
            return echo(r, &[]);
        }
        return;
    };
    let mut out = Vec::with_capacity(last_nl + 64);
    for line in r.partial[..=last_nl].split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(r.label.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(line);
    }
    r.partial.drain(..=last_nl);
    let _ = io::stdout().lock().write_all(&out);
}

/// Keeps the reader map's type in one place.
pub(super) type Readers = HashMap<usize, Reader>;
