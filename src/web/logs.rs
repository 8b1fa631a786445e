//! A job's log through the gateway: the daemon opens the file with the
//! gateway's authority and passes the descriptor (the gateway never opens
//! a log by its path); the last lines are sent, and with `follow=1` what
//! is written after, across rotations: inotify on the descriptor says when
//! the file grew or was moved away, and then the daemon is asked for the
//! file again.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::http::Response;
use super::Conn;
use crate::control::{client, Command, Response as Answer};

/// `lines=` at most.
pub const MAX_LINES: usize = 10_000;
/// Logs followed at once.
pub const MAX_FOLLOWERS: usize = 32;
/// How long a follower waits for the file to change before it asks the
/// daemon whether the log is another file now (and sends a keep-alive).
const RECHECK_MS: u16 = 5_000;

static FOLLOWERS: AtomicUsize = AtomicUsize::new(0);

/// An open log, to send.
pub struct Follow {
    socket: PathBuf,
    job: String,
    instance: Option<String>,
    file: Option<File>,
    /// Where the tail starts.
    start: u64,
    follow: bool,
}

fn ask(socket: &Path, job: &str, instance: Option<&str>) -> Result<Option<File>, Response> {
    let command = Command::LogOpen {
        job: job.to_string(),
        instance: instance.map(str::to_string),
        env: Vec::new(),
    };
    match client::call_with_fd(socket, command) {
        Ok((Answer::Log { .. }, Some(fd))) => Ok(Some(File::from(fd))),
        Ok((Answer::Error { message }, _)) if message.ends_with("written nothing yet") => Ok(None),
        Ok((Answer::Error { message }, _)) => Err(super::api::daemon_error(&message)),
        Ok(_) => Err(Response::error(502, "unexpected answer from the daemon")),
        Err(e) => Err(Response::error(502, &e)),
    }
}

/// Asks the daemon for the log, and finds where its last `lines` lines
/// start.
pub fn open(
    socket: &Path,
    job: &str,
    instance: Option<&str>,
    lines: usize,
    follow: bool,
) -> Result<Follow, Response> {
    if follow && FOLLOWERS.load(Ordering::SeqCst) >= MAX_FOLLOWERS {
        return Err(Response::error(503, "too many logs followed"));
    }
    let mut file = ask(socket, job, instance)?;
    let start = match &mut file {
        Some(f) => crate::log::read::tail_start(f, lines)
            .map_err(|e| Response::error(500, &e.to_string()))?,
        None => 0,
    };
    Ok(Follow {
        socket: socket.to_path_buf(),
        job: job.to_string(),
        instance: instance.map(str::to_string),
        file,
        start,
        follow,
    })
}

/// Copies what `f` has from where it is; false once the reader is gone.
fn copy(f: &mut File, conn: &mut Conn) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => return true,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return false;
                }
            }
        }
    }
}

impl Follow {
    /// Sends the tail, then (following) what comes, until the reader goes.
    pub fn serve(mut self, mut conn: Conn) {
        if !self.follow {
            let mut body = Vec::new();
            if let Some(f) = &mut self.file {
                let _ = f.seek(SeekFrom::Start(self.start));
                let _ = f.read_to_end(&mut body);
            }
            let _ = Response::new(200, "text/plain; charset=utf-8", body).write_to(&mut conn);
            return;
        }
        FOLLOWERS.fetch_add(1, Ordering::SeqCst);
        let head = Response::new(200, "text/plain; charset=utf-8", Vec::new()).head(None);
        if conn.write_all(&head).is_ok() {
            if let Some(f) = &mut self.file {
                let _ = f.seek(SeekFrom::Start(self.start));
            }
            self.follow_on(&mut conn);
        }
        FOLLOWERS.fetch_sub(1, Ordering::SeqCst);
    }

    fn follow_on(&mut self, conn: &mut Conn) {
        loop {
            if let Some(f) = &mut self.file {
                if !copy(f, conn) {
                    return;
                }
            }
            match wait_change(self.file.as_ref(), conn) {
                // Copied at the top.
                Change::Grew => continue,
                Change::Gone => return,
                // Moved, removed, or a while without news: which file is
                // the log now?
                Change::Recheck => {}
            }
            let now = match ask(&self.socket, &self.job, self.instance.as_deref()) {
                Ok(f) => f,
                Err(_) => return,
            };
            let Some(now) = now else {
                continue;
            };
            if let crate::log::read::Next::Switch = crate::log::read::next(self.file.as_mut(), &now)
            {
                if let Some(f) = &mut self.file {
                    if !copy(f, conn) {
                        return;
                    }
                }
                self.file = Some(now);
            }
        }
    }
}

enum Change {
    Grew,
    Recheck,
    Gone,
}

/// Waits until `f` is written to, or is moved, removed or changed in its
/// attributes, or [`RECHECK_MS`] pass; or the reader hangs up (it sends
/// nothing after its request, so anything from it ends the stream).
fn wait_change(f: Option<&File>, conn: &Conn) -> Change {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mask = AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_ATTRIB;
    let ino = f.and_then(|f| {
        let ino = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).ok()?;
        let path = format!("/proc/self/fd/{}", f.as_raw_fd());
        ino.add_watch(path.as_str(), mask).ok()?;
        Some(ino)
    });
    if let Some(f) = f {
        // Written between the last copy and the watch: no need to wait.
        if let (Ok(m), Ok(pos)) = (f.metadata(), (&*f).stream_position()) {
            if m.len() > pos {
                return Change::Grew;
            }
        }
    }
    let peer = PollFlags::POLLIN;
    let mut fds = vec![PollFd::new(conn.as_fd(), peer)];
    if let Some(i) = &ino {
        fds.push(PollFd::new(i.as_fd(), PollFlags::POLLIN));
    }
    match poll(&mut fds, PollTimeout::from(RECHECK_MS)) {
        Ok(n) if n > 0 => {}
        _ => return Change::Recheck,
    }
    if fds[0].revents().is_some_and(|r| !r.is_empty()) {
        return Change::Gone;
    }
    match ino.map(|i| i.read_events()) {
        Some(Ok(evs)) if evs.iter().all(|e| e.mask == AddWatchFlags::IN_MODIFY) => Change::Grew,
        _ => Change::Recheck,
    }
}
