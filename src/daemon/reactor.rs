//! The reactor: epoll (through mio), the signalfd, the listening sockets,
//! the tokens that name every descriptor in the loop, and the timer heap
//! whose nearest deadline is the wait's timeout.
//!
//! Parts register their descriptors and arm timers through a shared borrow
//! (`&Reactor`): tokens and timers sit in cells, so that the conductor can
//! lend the reactor to a part for one call without lending itself.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::signalfd::SignalFd;
use serde::{Deserialize, Serialize};

use super::output::DaemonLog;
use super::Key;

pub(super) const SIGNALS: Token = Token(0);
pub(super) const LISTENER: Token = Token(1);
pub(super) const INOTIFY: Token = Token(2);
const FIRST_TOKEN: usize = 3;
/// The private listener (`SOCKET.priv`); far from the client tokens, which
/// an image of the first handover format numbered from 3.
pub(super) const PRIV_LISTENER: Token = Token(usize::MAX - 1);
/// The job groups' inotify descriptor (`cgroup.events` changed).
pub(super) const CGROUPS: Token = Token(usize::MAX - 2);

/// The reactor in the re-exec format.
#[derive(Serialize, Deserialize)]
pub(super) struct Saved {
    /// The monotonic clock when this was written, and the reactor's clock
    /// then: the new image's epoch is the old one's.
    written_mono_ns: u64,
    age: Duration,
    next_token: usize,
    /// Instance timers: key, generation, due (since the epoch).
    timers: Vec<(Key, u64, Duration)>,
}

/// What a timer is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    /// An instance's timer, valid while its generation is `gen`.
    Instance(Key, u64),
    /// Rescan the conf dirs after a burst of changes.
    Rescan,
    /// Rotate the logs that rotate daily (local midnight).
    Daily,
    /// During a shutdown: see whether an instance on its way down is held
    /// up by one of its hooks.
    ShutdownHook(Key),
    /// Whether a control client has sent a whole request in time.
    ClientIdle(usize),
    /// Try again to write the state file.
    StateRetry,
    /// An instance's probe of a role: its next try, or the deadline of the
    /// one in flight; valid while the probe's generation is the last.
    Probe(Key, crate::conf::health::Role, u64),
}

pub(super) struct Reactor {
    poll: Poll,
    pub signals: SignalFd,
    pub listener: mio::net::UnixListener,
    /// `SOCKET.priv`: root and the daemon's user, never locked out.
    pub priv_listener: Option<mio::net::UnixListener>,
    timers: RefCell<BinaryHeap<Reverse<(Instant, u64, Timer)>>>,
    timer_seq: Cell<u64>,
    /// Tokens for clients, output readers and the like, never reused.
    next_token: Cell<usize>,
    /// The zero of the clock: the monotonic clock's own (boot), so that a
    /// time a dead predecessor recorded, before this daemon started, is
    /// still a time of this clock (a re-exec carries it across).
    epoch: Instant,
}

impl Reactor {
    /// epoll with the signalfd and the public listener in it.
    pub fn new(signals: SignalFd, mut listener: mio::net::UnixListener) -> Result<Reactor, String> {
        let poll = Poll::new().map_err(|e| format!("unable to create epoll: {e}"))?;
        poll.registry()
            .register(
                &mut SourceFd(&signals.as_raw_fd()),
                SIGNALS,
                Interest::READABLE,
            )
            .map_err(|e| format!("unable to watch signals: {e}"))?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| format!("unable to watch the socket: {e}"))?;
        Ok(Reactor {
            poll,
            signals,
            listener,
            priv_listener: None,
            timers: RefCell::new(BinaryHeap::new()),
            timer_seq: Cell::new(0),
            next_token: Cell::new(FIRST_TOKEN),
            epoch: monotonic_zero(),
        })
    }

    /// Serves the private socket too, when there is one (a socket path
    /// too long for it gives none, as `why` says).
    pub fn listen_private(
        &mut self,
        l: Result<mio::net::UnixListener, String>,
        dlog: &DaemonLog,
    ) -> Result<(), String> {
        let mut l = match l {
            Ok(l) => l,
            Err(why) => {
                dlog.log(&format!(
                    "{why}; root and the daemon's user share the public socket"
                ));
                return Ok(());
            }
        };
        self.poll
            .registry()
            .register(&mut l, PRIV_LISTENER, Interest::READABLE)
            .map_err(|e| format!("unable to watch the private socket: {e}"))?;
        self.priv_listener = Some(l);
        Ok(())
    }

    /// A token never given out before.
    pub fn token(&self) -> usize {
        let t = self.next_token.get();
        self.next_token.set(t + 1);
        t
    }

    /// Watches a raw descriptor under `token`.
    pub fn register_fd(&self, fd: RawFd, token: usize, interest: Interest) -> io::Result<()> {
        self.poll
            .registry()
            .register(&mut SourceFd(&fd), Token(token), interest)
    }

    pub fn deregister_fd(&self, fd: RawFd) {
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
    }

    /// Watches a mio source (a client's stream) under `token`.
    pub fn register(
        &self,
        source: &mut impl mio::event::Source,
        token: usize,
        interest: Interest,
    ) -> io::Result<()> {
        self.poll
            .registry()
            .register(source, Token(token), interest)
    }

    pub fn reregister(
        &self,
        source: &mut impl mio::event::Source,
        token: usize,
        interest: Interest,
    ) -> io::Result<()> {
        self.poll
            .registry()
            .reregister(source, Token(token), interest)
    }

    pub fn deregister(&self, source: &mut impl mio::event::Source) {
        let _ = self.poll.registry().deregister(source);
    }

    /// Arms a timer `after` from now.
    pub fn arm(&self, after: Duration, timer: Timer) {
        let seq = self.timer_seq.get() + 1;
        self.timer_seq.set(seq);
        self.timers
            .borrow_mut()
            .push(Reverse((Instant::now() + after, seq, timer)));
    }

    /// Waits for events: until the nearest timer, or not at all when
    /// `busy` (output is waiting to be read), or for ever. False if the
    /// wait failed (said in the daemon's log unless a signal cut it short).
    pub fn wait(&mut self, events: &mut Events, busy: bool, dlog: &DaemonLog) -> bool {
        let timeout = if busy {
            Some(Duration::ZERO)
        } else {
            self.timers
                .borrow()
                .peek()
                .map(|Reverse((at, ..))| at.saturating_duration_since(Instant::now()))
        };
        match self.poll.poll(events, timeout) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => false,
            Err(e) => {
                dlog.log(&format!("epoll: {e}"));
                false
            }
        }
    }

    /// Drops the timers at the head of the heap that `stale` says no longer
    /// matter (an instance's timers once the instance is gone), so that
    /// they wake no one: called before each wait, it reaches each such
    /// timer once it is the nearest.
    pub fn drop_stale(&self, stale: impl Fn(&Timer) -> bool) {
        let mut timers = self.timers.borrow_mut();
        while timers.peek().is_some_and(|Reverse((_, _, t))| stale(t)) {
            timers.pop();
        }
    }

    /// The next timer that is due, if any.
    pub fn due(&self) -> Option<Timer> {
        let now = Instant::now();
        let mut timers = self.timers.borrow_mut();
        match timers.peek() {
            Some(Reverse((at, _, _))) if *at <= now => timers.pop().map(|Reverse((_, _, t))| t),
            _ => None,
        }
    }

    /// The re-exec form: the clock, the tokens and the instance timers
    /// (every other timer is the new image's own to arm).
    pub fn saved(&self) -> Saved {
        let timers = self.timers.borrow();
        let instance_timers = timers.iter().filter_map(|Reverse((at, _, t))| match t {
            Timer::Instance(key, gen) => {
                Some((key.clone(), *gen, at.saturating_duration_since(self.epoch)))
            }
            _ => None,
        });
        Saved {
            written_mono_ns: crate::process::handover::monotonic_ns(),
            age: self.now(),
            next_token: self.next_token.get(),
            timers: instance_timers.collect(),
        }
    }

    /// The old image's clock (the time the exec took added), tokens and
    /// timers.
    pub fn restore(&mut self, saved: Saved) {
        let gap = crate::process::handover::monotonic_ns().saturating_sub(saved.written_mono_ns);
        let age = saved.age + Duration::from_nanos(gap);
        self.epoch = Instant::now().checked_sub(age).unwrap_or(self.epoch);
        self.next_token.set(saved.next_token);
        let now = self.now();
        for (key, gen, due) in saved.timers {
            self.arm(due.saturating_sub(now), Timer::Instance(key, gen));
        }
    }

    /// Arms the daily rotation for the next local midnight.
    pub fn arm_daily(&self) {
        let now = std::time::SystemTime::now();
        let next = crate::process::time::next_local_midnight(now);
        let after = next
            .duration_since(now)
            .unwrap_or(Duration::from_secs(86_400));
        self.arm(after, Timer::Daily);
    }

    /// The signals that arrived (their numbers), in order; a signalfd
    /// that fails is said in the daemon's log.
    pub fn signals(&mut self, dlog: &DaemonLog) -> Vec<i32> {
        let mut out = Vec::new();
        loop {
            match self.signals.read_signal() {
                Ok(Some(info)) => out.push(info.ssi_signo as i32),
                Ok(None) => return out,
                Err(e) => {
                    dlog.log(&format!("signalfd: {e}"));
                    return out;
                }
            }
        }
    }

    /// Monotonic time since the clock's zero (boot).
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }
}

/// The instant the monotonic clock reads zero (boot), or now if it cannot
/// be read.
fn monotonic_zero() -> Instant {
    let now = Instant::now();
    let since = Duration::from_nanos(crate::process::handover::monotonic_ns());
    now.checked_sub(since).unwrap_or(now)
}
