//! `upkeep web`: the gateway. A separate process, a client of the daemon's
//! control socket with exactly the authority of its own uid, that serves a
//! dashboard, a JSON API, an event stream and Prometheus metrics over HTTP
//! (`docs/http.md`). No daemon module imports this one: the daemon has no
//! HTTP server.
//!
//! Threads: the main thread accepts; each connection gets a thread of its
//! own, at most [`MAX_CONNECTIONS`] at once (one more is answered 503 and
//! closed); one thread holds the daemon's monitor subscription for every
//! event-stream reader ([`hub`]).

pub mod api;
pub mod auth;
pub mod http;
pub mod hub;
pub mod logs;
pub mod metrics;
pub mod page;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The default listen address: a loopback port that is not in
/// `/etc/services`, not in Prometheus' 9090–9999, and none of the ports
/// development servers take (3000, 5000, 8000, 8080, 8888).
pub const DEFAULT_PORT: u16 = 7654;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 128;

/// Where the gateway listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Listen {
    /// `ADDR:PORT` (numeric, or `localhost:PORT`) or `unix:PATH`.
    pub fn parse(s: &str) -> Result<Listen, String> {
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err("unix: needs a path".into());
            }
            return Ok(Listen::Unix(PathBuf::from(p)));
        }
        if let Some(port) = s.strip_prefix("localhost:") {
            let port: u16 = port
                .parse()
                .map_err(|_| format!("{s}: not a port number"))?;
            return Ok(Listen::Tcp(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                port,
            )));
        }
        s.parse::<SocketAddr>().map(Listen::Tcp).map_err(|_| {
            format!("{s}: not ADDR:PORT with a numeric address (names are not looked up), nor unix:PATH")
        })
    }

    pub fn is_loopback(&self) -> bool {
        match self {
            Listen::Tcp(a) => a.ip().is_loopback(),
            Listen::Unix(_) => true,
        }
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(a) => write!(f, "http://{a}/"),
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// The gateway's settings, from its command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: Listen,
    pub token_file: Option<PathBuf>,
    pub read_only: bool,
    pub allow_hosts: Vec<String>,
    pub socket: PathBuf,
}

/// What every connection thread shares.
pub struct Shared {
    pub socket: PathBuf,
    /// The bearer token, when there is one.
    pub token: Option<Vec<u8>>,
    /// Actions (POST) are served: a token, and not `--read-only`.
    pub acting: bool,
    /// `Host` values a request may carry.
    pub hosts: Vec<String>,
    pub failures: Mutex<auth::Failures>,
    pub hub: hub::Hub,
}

/// Checks the settings, binds, and serves until killed. Returns the exit
/// status for a gateway that could not start.
pub fn run(opts: Options, say: &dyn Fn(&str)) -> i32 {
    let token = match &opts.token_file {
        Some(p) => match auth::read_token(p, crate::process::euid()) {
            Ok(t) => Some(t),
            Err(e) => {
                say(&format!("refusing to start: token file {e}"));
                return 1;
            }
        },
        None => None,
    };
    if !opts.listen.is_loopback() && token.is_none() && !opts.read_only {
        say(&format!(
            "refusing to start: {} is not a loopback address; give --token-file (actions need its token) or --read-only",
            opts.listen
        ));
        return 1;
    }
    let acting = token.is_some() && !opts.read_only;
    let mode = if acting {
        "actions need the token"
    } else {
        "read-only"
    };
    let shared = |listen: &Listen| {
        Arc::new(Shared {
            socket: opts.socket.clone(),
            token: token.clone(),
            acting,
            hosts: allowed_hosts(listen, &opts.allow_hosts),
            failures: Mutex::new(auth::Failures::default()),
            hub: hub::Hub::new(opts.socket.clone()),
        })
    };
    match &opts.listen {
        Listen::Tcp(addr) => {
            let listener = match TcpListener::bind(addr) {
                Ok(l) => l,
                Err(e) => {
                    say(&format!(
                        "unable to listen on {addr}: {}",
                        crate::process::io_text(&e)
                    ));
                    return 1;
                }
            };
            // The port the kernel chose, for `:0`.
            let bound = listener.local_addr().unwrap_or(*addr);
            if !addr.ip().is_loopback() {
                say(&format!(
                    "warning: http://{bound}/ is plain HTTP on a non-loopback address: the token crosses the network in clear text; put a TLS proxy in front (docs/http.md)"
                ));
            }
            say(&format!("serving http://{bound}/ ({mode})"));
            serve(&shared(&Listen::Tcp(bound)), || {
                listener
                    .accept()
                    .map(|(s, a)| (Conn::Tcp(s), a.to_string()))
            });
        }
        Listen::Unix(path) => {
            let listener = match bind_unix(path) {
                Ok(l) => l,
                Err(e) => {
                    say(&format!("unable to listen on {}: {e}", path.display()));
                    return 1;
                }
            };
            say(&format!("serving unix:{} ({mode})", path.display()));
            serve(&shared(&opts.listen), || {
                listener
                    .accept()
                    .map(|(s, _)| (Conn::Unix(s), "unix".to_string()))
            });
        }
    }
    1
}

/// The `Host` values a request may carry: the listen address itself,
/// `localhost:PORT`, and each `--allow-host` name (alone or with the port).
pub fn allowed_hosts(listen: &Listen, allow: &[String]) -> Vec<String> {
    let mut hosts = Vec::new();
    match listen {
        Listen::Tcp(a) => {
            hosts.push(a.to_string());
            hosts.push(format!("localhost:{}", a.port()));
            for h in allow {
                hosts.push(h.clone());
                hosts.push(format!("{h}:{}", a.port()));
            }
        }
        Listen::Unix(_) => {
            hosts.push("localhost".into());
            hosts.extend(allow.iter().cloned());
        }
    }
    hosts
}

/// Binds a Unix socket at `path`, mode 0600: a socket already there is
/// replaced only if it is this user's; anything else stays and is an
/// error.
fn bind_unix(path: &Path) -> Result<UnixListener, String> {
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.file_type().is_socket() || m.uid() != crate::process::euid() {
            return Err("something else is there (not a socket of this user)".into());
        }
        std::fs::remove_file(path).map_err(|e| crate::process::io_text(&e))?;
    }
    // Created with no access for others from the start.
    let old = set_umask(0o177);
    let l = UnixListener::bind(path);
    set_umask(old);
    let l = l.map_err(|e| crate::process::io_text(&e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| crate::process::io_text(&e))?;
    Ok(l)
}

fn set_umask(mask: u32) -> u32 {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask)).bits()
}

/// A client connection, TCP or Unix.
pub enum Conn {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl std::io::Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl http::TimeoutSet for Conn {
    fn set_timeout(&mut self, t: Option<Duration>) -> std::io::Result<()> {
        match self {
            Conn::Tcp(s) => s.set_read_timeout(t),
            Conn::Unix(s) => s.set_read_timeout(t),
        }
    }
}

impl std::os::fd::AsFd for Conn {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Conn::Tcp(s) => s.as_fd(),
            Conn::Unix(s) => s.as_fd(),
        }
    }
}

impl Conn {
    fn set_write_timeout(&self, t: Option<Duration>) {
        let _ = match self {
            Conn::Tcp(s) => s.set_write_timeout(t),
            Conn::Unix(s) => s.set_write_timeout(t),
        };
    }
}

/// A slow reader of a response is cut off after this long without progress.
const WRITE_TIME: Duration = Duration::from_secs(10);

fn serve(shared: &Arc<Shared>, accept: impl Fn() -> std::io::Result<(Conn, String)>) {
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let (mut conn, peer) = match accept() {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors, say: wait a moment, not spin.
                eprintln!("upkeep web: accept: {}", crate::process::io_text(&e));
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        conn.set_write_timeout(Some(WRITE_TIME));
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            conn.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = http::Response::error(503, "too many connections").write_to(&mut conn);
            continue;
        }
        let shared = shared.clone();
        let active2 = active.clone();
        let spawned = std::thread::Builder::new()
            .name("conn".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                api::handle(&shared, conn, &peer);
                active2.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
