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

use super::Key;

pub(super) const SIGNALS: Token = Token(0);
pub(super) const LISTENER: Token = Token(1);
pub(super) const INOTIFY: Token = Token(2);
const FIRST_TOKEN: usize = 3;
/// The private listener (`SOCKET.priv`); far from the client tokens, which
/// an image of the first handover format numbered from 3.
pub(super) const PRIV_LISTENER: Token = Token(usize::MAX - 1);

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
    /// When the daemon started (a re-exec carries it across).
    pub epoch: Instant,
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
            epoch: Instant::now(),
        })
    }

    /// Serves the private socket too, when there is one (a socket path
    /// too long for it gives none, as `why` says).
    pub fn listen_private(
        &mut self,
        l: Result<mio::net::UnixListener, String>,
        dlog: &super::output::DaemonLog,
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

    /// The next token to give out (for the handover), and setting it.
    pub fn next_token(&self) -> usize {
        self.next_token.get()
    }

    pub fn set_next_token(&self, t: usize) {
        self.next_token.set(t);
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
    /// `busy` (output is waiting to be read), or for ever.
    pub fn wait(&mut self, events: &mut Events, busy: bool) -> io::Result<()> {
        let timeout = if busy {
            Some(Duration::ZERO)
        } else {
            self.timers
                .borrow()
                .peek()
                .map(|Reverse((at, ..))| at.saturating_duration_since(Instant::now()))
        };
        self.poll.poll(events, timeout)
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

    /// The instance timers, each as (key, generation, due since the epoch).
    pub fn instance_timers(&self) -> Vec<(Key, u64, Duration)> {
        self.timers
            .borrow()
            .iter()
            .filter_map(|Reverse((at, _, t))| match t {
                Timer::Instance(key, gen) => {
                    Some((key.clone(), *gen, at.saturating_duration_since(self.epoch)))
                }
                _ => None,
            })
            .collect()
    }

    /// Monotonic time since the daemon started.
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }
}
