//! Output: the daemon's own log ([`DaemonLog`]) and its jobs' output
//! ([`Output`]): each job process's pty or pipe read as the loop says it
//! is readable, the bytes handed to the job's [`LogFile`] (and, with
//! `--log-to-stdout`, to the daemon's stdout, each line prefixed with the
//! job's name), rotated files compressed by a helper process.
//!
//! Reading never waits: a reader drains at most [`READ_BUDGET`] bytes per
//! turn of the loop and is then put back in line, so one job writing
//! without pause cannot starve the others or the control socket.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use mio::Interest;
use serde::{Deserialize, Serialize};

use super::jobs::Launch;
use super::reactor::Reactor;
use super::setup::Host;
use crate::conf::{Console, JobClass, LogCapture};
use crate::log::format::{self, Format};
use crate::log::{Compress, LogFile, Policy, SharedDir};
use crate::process::{self, capture};

/// Bytes read from one job per turn of the loop before others get theirs.
pub const READ_BUDGET: usize = 1 << 20;

/// The daemon's own log file in LOGDIR. Job log names never contain `@`,
/// so no job's log can take this name.
pub const DAEMON_LOG: &str = "upkeep@daemon.log";

/// The daemon's own messages: to its stderr, and to its log file in LOGDIR
/// with a time stamp. Every part may write to it through a shared borrow.
pub(super) struct DaemonLog {
    file: RefCell<LogFile>,
    /// A rotation made inside `log()` (which cannot start a helper), to
    /// compress at the end of the loop turn.
    rotated: RefCell<Option<Compress>>,
    /// `-v`: every goal and state change, every event.
    pub verbose: bool,
}

impl DaemonLog {
    pub fn new(dir: SharedDir, policy: Policy, verbose: bool) -> DaemonLog {
        DaemonLog {
            file: RefCell::new(LogFile::new(dir, DAEMON_LOG.to_string(), policy)),
            rotated: RefCell::new(None),
            verbose,
        }
    }

    pub fn log(&self, msg: &str) {
        format::say(msg);
        let line = format!(
            "{} {msg}\n",
            process::time::timestamp(std::time::SystemTime::now())
        );
        if let Ok(mut l) = self.file.try_borrow_mut() {
            if let Some(c) = l.write(line.as_bytes()) {
                *self.rotated.borrow_mut() = Some(c);
            }
        }
    }

    /// A rotation the last messages made, to compress now.
    pub fn take_rotated(&self) -> Option<Compress> {
        self.rotated.borrow_mut().take()
    }
}

struct Reader {
    file: File,
    /// The log file (its name in LOGDIR) the output goes to.
    log: String,
    /// For `--log-to-stdout`: whose lines they are, and an unfinished
    /// line.
    whose: Whose,
    partial: Vec<u8>,
}

/// Whose output a reader carries: the plain format's prefix (`web (a)`),
/// and the job and instance for the JSON format.
#[derive(Debug, Clone)]
pub(super) struct Whose {
    pub label: String,
    pub job: String,
    pub instance: String,
}

/// What `spawn` needs for a job's output, and what to register after.
pub(super) struct Capture {
    pub output: process::Output,
    pub reader: Option<(OwnedFd, String, Whose)>,
}

/// Opens the log dir (refused when others can write it) and the daemon's
/// own log in it.
pub(super) fn open(cfg: &super::Config, uid: u32) -> Result<(SharedDir, DaemonLog), String> {
    let dir = crate::log::LogDir::open(&cfg.log_dir, uid)?;
    let dir = std::rc::Rc::new(RefCell::new(dir));
    let dlog = DaemonLog::new(dir.clone(), cfg.log_policy, cfg.verbose);
    Ok((dir, dlog))
}

/// The jobs' output: their log files, the readers of their ptys and pipes,
/// and the compression helpers running.
pub(super) struct Output {
    logs: HashMap<String, LogFile>,
    /// The log dir, held open: every log file is reached through it.
    pub dir: SharedDir,
    readers: HashMap<usize, Reader>,
    /// The buffer every read of job output goes through, made once: a
    /// fresh 64 KiB one for each wake-up (one a line, for a program that
    /// writes line by line) cost more than the bytes it carried.
    read_buf: Vec<u8>,
    /// Compression helpers running, by pid: which log they work for.
    compressors: HashMap<i32, String>,
    policy: Policy,
    /// Job output is copied to stdout too, in this format.
    to_stdout: Option<Format>,
    /// Readers that used up their budget with more to read.
    more: Vec<usize>,
}

impl Output {
    pub fn new(dir: SharedDir, policy: Policy, to_stdout: Option<Format>) -> Output {
        Output {
            logs: HashMap::new(),
            dir,
            readers: HashMap::new(),
            compressors: HashMap::new(),
            read_buf: vec![0u8; 64 * 1024],
            policy,
            to_stdout,
            more: Vec::new(),
        }
    }

    pub fn is_reader(&self, token: usize) -> bool {
        self.readers.contains_key(&token)
    }

    pub fn is_compressor(&self, pid: i32) -> bool {
        self.compressors.contains_key(&pid)
    }

    /// Sets up where a job process's output goes.
    fn capture_for(
        &mut self,
        class: &JobClass,
        log_name: String,
        whose: Whose,
        dlog: &DaemonLog,
    ) -> Result<Capture, String> {
        let label = &whose.label;
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
        let policy = self.policy.with(&class.log);
        let dir = self.dir.clone();
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
                dlog.log(&format!(
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
                reader: Some((read, log_name, whose)),
            }),
            // Out of descriptors, say: the process is not started rather
            // than started with its output thrown away.
            Err(e) => Err(format!(
                "unable to capture output: {}",
                process::io_text(&e)
            )),
        }
    }

    /// Spawns a job's process with its output captured; returns its pid.
    pub fn spawn(
        &mut self,
        job: Launch,
        host: &Host,
        reactor: &Reactor,
        dlog: &DaemonLog,
    ) -> Result<i32, String> {
        let command = match &job.command {
            Some(c) => c,
            None => job.class.process(job.process).ok_or("no such process")?,
        };
        let whose = Whose {
            label: job.label,
            job: job.class.name.clone(),
            instance: job.instance,
        };
        // A health probe's command is not the job's process: no profile.
        let apparmor = if job.command.is_some() {
            Default::default()
        } else {
            let env: Vec<String> = job.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let first = job.process == crate::conf::ProcessType::PreStart
                || (job.process == crate::conf::ProcessType::Main
                    && job
                        .class
                        .process(crate::conf::ProcessType::PreStart)
                        .is_none());
            process::apparmor::for_process(&job.class, job.process, &env, first)?
        };
        let capture = self.capture_for(&job.class, job.log_name, whose, dlog)?;
        let pid = process::spawn::spawn(process::spawn::SpawnSpec {
            class: &job.class,
            command,
            env: &job.env,
            output: capture.output,
            // A system daemon's jobs start in `/` unless they say.
            default_dir: host.system.then_some("/"),
            original_nofile: host.original_nofile,
            join: job.join.as_ref(),
            apparmor,
        })?;
        if let Some((fd, log, whose)) = capture.reader {
            self.add_reader(reactor, fd, log, whose, dlog);
        }
        Ok(pid)
    }

    /// Starts reading a job process's output.
    fn add_reader(
        &mut self,
        reactor: &Reactor,
        fd: OwnedFd,
        log: String,
        whose: Whose,
        dlog: &DaemonLog,
    ) {
        let token = reactor.token();
        if let Err(e) = reactor.register_fd(fd.as_raw_fd(), token, Interest::READABLE) {
            dlog.log(&format!("{}: unable to watch output: {e}", whose.label));
            return;
        }
        self.readers.insert(
            token,
            Reader {
                file: File::from(fd),
                log,
                whose,
                partial: Vec::new(),
            },
        );
    }

    /// Reads what a job wrote, up to the budget.
    /// Whether a reader has more to read (the loop then does not wait).
    pub fn is_busy(&self) -> bool {
        !self.more.is_empty()
    }

    /// Reads on from the readers that used up their budget last turn.
    pub fn read_more(&mut self, reactor: &Reactor, dlog: &DaemonLog) {
        for t in std::mem::take(&mut self.more) {
            self.on_output(t, reactor, dlog);
        }
    }

    /// A rotation of the daemon's own log is compressed.
    pub fn compress_daemon_log(&mut self, dlog: &DaemonLog) {
        if let Some(c) = dlog.take_rotated() {
            self.start_compression(DAEMON_LOG, c, dlog);
        }
    }

    pub fn on_output(&mut self, token: usize, reactor: &Reactor, dlog: &DaemonLog) {
        let mut buf = std::mem::take(&mut self.read_buf);
        self.read_into(token, reactor, dlog, &mut buf);
        self.read_buf = buf;
    }

    fn read_into(&mut self, token: usize, reactor: &Reactor, dlog: &DaemonLog, buf: &mut [u8]) {
        let mut total = 0;
        loop {
            let Some(r) = self.readers.get_mut(&token) else {
                return;
            };
            match r.file.read(buf) {
                Ok(0) => break self.close_reader(token, reactor, dlog),
                Ok(n) => {
                    total += n;
                    let log = r.log.clone();
                    if let Some(format) = self.to_stdout {
                        echo(r, &buf[..n], format);
                    }
                    self.write_log(&log, &buf[..n], dlog);
                    if total >= READ_BUDGET {
                        // More may be waiting: come back after the others.
                        if !self.more.contains(&token) {
                            self.more.push(token);
                        }
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // EIO: every writer of the pty is gone.
                Err(_) => break self.close_reader(token, reactor, dlog),
            }
        }
    }

    fn close_reader(&mut self, token: usize, reactor: &Reactor, dlog: &DaemonLog) {
        if let Some(mut r) = self.readers.remove(&token) {
            reactor.deregister_fd(r.file.as_raw_fd());
            if let (Some(format), false) = (self.to_stdout, r.partial.is_empty()) {
                r.partial.push(b'\n');
                echo(&mut r, &[], format);
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
                    self.start_compression(&r.log, c, dlog);
                }
            }
        }
    }

    fn write_log(&mut self, name: &str, data: &[u8], dlog: &DaemonLog) {
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
        if let Some(e) = new_error {
            dlog.log(&format!(
                "{}: unable to write: {e}; output is counted and dropped until it works again",
                log.path.display()
            ));
        }
        if let Some(c) = compress {
            self.start_compression(name, c, dlog);
        }
    }

    /// Gzips a rotated file in a helper process, out of the loop.
    pub fn start_compression(&mut self, name: &str, c: Compress, dlog: &DaemonLog) {
        let started = {
            let dir = self.dir.borrow();
            match dir.fd() {
                Some(fd) => process::spawn_gzip(fd, &c.name),
                None => Err(io::Error::other("the log dir is not open")),
            }
        };
        match started {
            Ok(pid) => {
                self.compressors.insert(pid, name.to_string());
            }
            Err(e) => {
                let path = self.dir.borrow().path.join(&c.name);
                dlog.log(&format!(
                    "{}: unable to start compressing: {e}",
                    path.display()
                ));
                self.compression_finished_for(name, dlog);
            }
        }
    }

    /// A reaped pid that was a compression helper: its log may rotate now.
    pub fn compression_finished(&mut self, pid: i32, dlog: &DaemonLog) -> bool {
        let Some(name) = self.compressors.remove(&pid) else {
            return false;
        };
        self.compression_finished_for(&name, dlog);
        true
    }

    fn compression_finished_for(&mut self, name: &str, dlog: &DaemonLog) {
        let next = if name == DAEMON_LOG {
            dlog.file.borrow_mut().compression_done()
        } else {
            self.logs.get_mut(name).and_then(|l| l.compression_done())
        };
        if let Some(c) = next {
            self.start_compression(name, c, dlog);
        }
    }

    /// The daily rotation, at local midnight.
    pub fn rotate_daily(&mut self, dlog: &DaemonLog) {
        let names: Vec<String> = self
            .logs
            .iter()
            .filter(|(_, l)| l.policy.daily)
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            let c = self.logs.get_mut(&name).and_then(|l| l.rotate());
            if let Some(c) = c {
                self.start_compression(&name, c, dlog);
            }
        }
        let c = dlog.file.borrow_mut().rotate();
        if let Some(c) = c {
            self.start_compression(DAEMON_LOG, c, dlog);
        }
    }

    /// SIGUSR1 / `reopen-logs`: every log file is opened again on its next
    /// write (after an external logrotate moved them).
    pub fn reopen_logs(&mut self, dlog: &DaemonLog) {
        for l in self.logs.values_mut() {
            l.reopen();
        }
        dlog.file.borrow_mut().reopen();
    }

    /// A job's log opened for reading (`log-open`), through the log dir's
    /// descriptor and its checks.
    /// (bytes written, bytes dropped) of a log since the daemon started
    /// (carried across re-exec).
    pub fn totals(&self, name: &str) -> (u64, u64) {
        self.logs.get(name).map_or((0, 0), |l| (l.written, l.lost))
    }

    pub fn open_for_reading(&self, name: &str) -> io::Result<File> {
        self.dir.borrow_mut().open_read(name)
    }

    /// What a re-exec hands across of this part.
    pub fn saved(&self, blob: &mut super::reexec::Blob) -> Saved {
        Saved {
            compressors: self
                .compressors
                .iter()
                .map(|(&p, l)| (p, l.clone()))
                .collect(),
            readers: self
                .readers
                .iter()
                .map(|(&token, r)| SavedReader {
                    token,
                    fd: r.file.as_raw_fd(),
                    log: r.log.clone(),
                    label: r.whose.label.clone(),
                    job: Some(r.whose.job.clone()),
                    instance: r.whose.instance.clone(),
                    partial: Vec::new(),
                    partial_at: blob.put(&r.partial),
                })
                .collect(),
            logs: self
                .logs
                .iter()
                .map(|(name, l)| SavedLog {
                    name: name.clone(),
                    path: l.path.clone(),
                    size: l.policy.size,
                    keep: l.policy.keep,
                    daily: l.policy.daily,
                    compress: l.policy.compress,
                    timestamps: l.policy.timestamps,
                    dropped: l.dropped(),
                    why_dropped: l.why_dropped().map(str::to_string),
                    compressing: l.compressing,
                    rotate_due: l.rotate_due(),
                    written: l.written,
                    lost: l.lost,
                })
                .collect(),
        }
    }

    /// This part as a previous image left it; `adopt` takes each
    /// descriptor the state names.
    pub fn restore(
        &mut self,
        s: Saved,
        blob: &super::reexec::Blob,
        reactor: &Reactor,
        adopt: &mut dyn FnMut(RawFd) -> Result<OwnedFd, String>,
    ) -> Result<(), String> {
        self.compressors = s.compressors.into_iter().collect();
        for l in s.logs {
            let policy = Policy {
                size: l.size,
                keep: l.keep,
                daily: l.daily,
                compress: l.compress,
                timestamps: l.timestamps,
            };
            let mut log = LogFile::carried(
                self.dir.clone(),
                l.name.clone(),
                policy,
                l.dropped,
                l.why_dropped,
                l.compressing,
                l.rotate_due,
            );
            (log.written, log.lost) = (l.written, l.lost);
            self.logs.insert(l.name, log);
        }
        for r in s.readers {
            let file = File::from(adopt(r.fd)?);
            reactor
                .register_fd(file.as_raw_fd(), r.token, Interest::READABLE)
                .map_err(|e| format!("{}: output: {e}", r.label))?;
            // An image from before the JSON format knew only the label.
            let whose = Whose {
                job: r.job.unwrap_or_else(|| r.label.clone()),
                instance: r.instance,
                label: r.label,
            };
            // Whatever waits in it is read on the first turn.
            self.more.push(r.token);
            self.readers.insert(
                r.token,
                Reader {
                    file,
                    log: r.log,
                    whose,
                    partial: blob.get(r.partial_at, r.partial)?,
                },
            );
        }
        Ok(())
    }

    /// The descriptors this part hands across a re-exec.
    pub fn descriptors(s: &Saved) -> impl Iterator<Item = RawFd> + '_ {
        s.readers.iter().map(|r| r.fd)
    }
}

/// Copies output to the daemon's stdout, one whole line at a time, each
/// prefixed with the job's name (or as a JSON object).
fn echo(r: &mut Reader, data: &[u8], format: Format) {
    r.partial.extend_from_slice(data);
    let Some(last_nl) = r.partial.iter().rposition(|&b| b == b'\n') else {
        if r.partial.len() > 64 * 1024 {
            r.partial.push(b'\n');
            return echo(r, &[], format);
        }
        return;
    };
    let mut out = Vec::with_capacity(last_nl + 64);
    let now = std::time::SystemTime::now();
    let w = &r.whose;
    for line in r.partial[..=last_nl].split_inclusive(|&b| b == b'\n') {
        format::job_line(format, now, (&w.label, &w.job, &w.instance), line, &mut out);
    }
    r.partial.drain(..=last_nl);
    let _ = io::stdout().lock().write_all(&out);
}

/// This part in the re-exec format (flattened into the handover).
#[derive(Serialize, Deserialize)]
pub(super) struct Saved {
    compressors: Vec<(i32, String)>,
    readers: Vec<SavedReader>,
    logs: Vec<SavedLog>,
}

#[derive(Serialize, Deserialize)]
struct SavedReader {
    token: usize,
    fd: RawFd,
    log: String,
    label: String,
    /// The job and instance (absent in an image from before them).
    #[serde(default)]
    job: Option<String>,
    #[serde(default)]
    instance: String,
    /// Format 1 only: the unfinished line as numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    partial: Vec<u8>,
    /// Format 2: the unfinished line, in the bytes after the document.
    #[serde(default)]
    partial_at: Option<super::reexec::Span>,
}

#[derive(Serialize, Deserialize)]
struct SavedLog {
    name: String,
    path: PathBuf,
    size: u64,
    keep: u32,
    daily: bool,
    compress: bool,
    /// Absent before `log timestamps` existed.
    #[serde(default)]
    timestamps: bool,
    dropped: u64,
    why_dropped: Option<String>,
    compressing: bool,
    rotate_due: bool,
    /// The log totals of the costs (absent from what older daemons wrote).
    #[serde(default)]
    written: u64,
    #[serde(default)]
    lost: u64,
}
