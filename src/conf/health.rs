//! upkeep's `health` stanza (an extension): probes that say whether a
//! job's service answers, in two roles.
//!
//! ```text
//! health ready http://127.0.0.1:8000/healthz          # started only once it answers
//! health alive tcp 127.0.0.1:6379                     # restarted when it stops answering
//! health alive period 5 timeout 2 failure-threshold 3
//! health alive exec redis-cli ping
//! ```
//!
//! A probe line (`health ROLE exec|tcp|http …`) sets the role's probe, with
//! the default settings; a settings line (`health ROLE SETTING VALUE…`)
//! changes the settings of the role's probe, so it comes after it. The
//! settings have Kubernetes' meanings: `initial-delay`, `period` and
//! `timeout` in seconds (decimals allowed), `failure-threshold` and
//! `success-threshold` counts. Addresses are numeric (`IP:PORT`,
//! `[IPv6]:PORT`) or `localhost:PORT` (127.0.0.1): a name is never looked
//! up, which would block the daemon.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// A job's probes (none by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Started (and `started` emitted) only after it first succeeds.
    /// (Boxed, as `alive`: most jobs have no probe, and 10,000 job
    /// definitions each carrying two empty probes inline cost 2 MiB.)
    pub ready: Option<Box<Probe>>,
    /// Stopped and respawned after `failure_threshold` failures in a row.
    pub alive: Option<Box<Probe>>,
}

impl Health {
    pub fn is_empty(&self) -> bool {
        self.ready.is_none() && self.alive.is_none()
    }
}

/// The two roles, as the stanza names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Ready,
    Alive,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Ready => "ready",
            Role::Alive => "alive",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        match name {
            "ready" => Some(Role::Ready),
            "alive" => Some(Role::Alive),
            _ => None,
        }
    }
}

impl Health {
    /// The probe of a role.
    pub fn probe(&self, role: Role) -> Option<&Probe> {
        match role {
            Role::Ready => self.ready.as_deref(),
            Role::Alive => self.alive.as_deref(),
        }
    }
}

/// One probe and when it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub check: Check,
    /// Before the first try, after the main process started (ms).
    pub initial_delay_ms: u64,
    /// Between the starts of two tries (ms).
    pub period_ms: u64,
    /// A try that has not succeeded by then has failed (ms).
    pub timeout_ms: u64,
    /// Failures in a row that make it fail.
    pub failure_threshold: u32,
    /// Successes in a row that make it succeed again.
    pub success_threshold: u32,
}

impl Probe {
    /// A probe with Kubernetes' default settings.
    pub fn new(check: Check) -> Probe {
        Probe {
            check,
            initial_delay_ms: 0,
            period_ms: 10_000,
            timeout_ms: 1_000,
            failure_threshold: 3,
            success_threshold: 1,
        }
    }
}

/// What a try does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Runs a command (as the job's processes run, by Upstart's shell
    /// rule); success is exit status 0.
    Exec(String),
    /// Connects; success is an accepted connection.
    Tcp(SocketAddr),
    /// `GET PATH` over plain HTTP; success is a status in the range.
    Http {
        addr: SocketAddr,
        path: String,
        /// The `Host` header (default: the address as written).
        host: Option<String>,
        /// The accepted status codes, inclusive.
        status: (u16, u16),
    },
}

impl Check {
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Exec(_) => "exec",
            Check::Tcp(_) => "tcp",
            Check::Http { .. } => "http",
        }
    }
}

/// The status codes an HTTP probe accepts unless it says.
pub const DEFAULT_STATUS: (u16, u16) = (200, 399);

/// Why a value was refused, for the parse error.
pub type Refused = &'static str;

/// `127.0.0.1:8000`, `[::1]:8000`, `localhost:8000` (127.0.0.1).
pub fn parse_addr(s: &str) -> Result<SocketAddr, Refused> {
    if let Some(port) = s.strip_prefix("localhost:") {
        let port: u16 = port.parse().map_err(|_| "expected a port number")?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    s.parse::<SocketAddr>().map_err(|_| {
        "expected a numeric IP:PORT, [IPv6]:PORT or localhost:PORT (names are never looked up)"
    })
}

/// `http://ADDR/PATH` (the path defaults to `/`).
pub fn parse_url(s: &str) -> Result<(SocketAddr, String), Refused> {
    let rest = s
        .strip_prefix("http://")
        .ok_or("expected http://IP:PORT/PATH (plain HTTP; https is not supported)")?;
    let (addr, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("the path may hold no blank or control character");
    }
    Ok((parse_addr(addr)?, path.to_string()))
}

/// `200-399`, or one code `204`.
pub fn parse_status(s: &str) -> Result<(u16, u16), Refused> {
    let code = |t: &str| {
        t.parse::<u16>()
            .ok()
            .filter(|c| (100..=599).contains(c))
            .ok_or("expected a status code from 100 to 599, or a range LOW-HIGH")
    };
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (code(a)?, code(b)?),
        None => (code(s)?, code(s)?),
    };
    if lo > hi {
        return Err("the range's low end is above its high end");
    }
    Ok((lo, hi))
}

/// Seconds, decimals allowed (`0.5`, `10`), in ms; at most a day.
pub fn parse_secs(s: &str) -> Result<u64, Refused> {
    const BAD: Refused = "expected a number of seconds (decimals allowed), at most 86400";
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || !all_digits(whole)
        || !all_digits(frac)
        || frac.len() > 3
        || whole.len() > 5
    {
        return Err(BAD);
    }
    let ms = whole.parse::<u64>().map_err(|_| BAD)? * 1000
        + format!("{frac:0<3}").parse::<u64>().map_err(|_| BAD)?;
    if ms > 86_400_000 {
        return Err(BAD);
    }
    Ok(ms)
}

/// A threshold: 1 to 1000.
pub fn parse_count(s: &str) -> Result<u32, Refused> {
    s.parse::<u32>()
        .ok()
        .filter(|n| (1..=1000).contains(n))
        .ok_or("expected a count from 1 to 1000")
}

/// Milliseconds as the stanza writes seconds: `10`, `0.5`, `1.25`.
pub fn secs_text(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}", ms / 1000)
    } else {
        let s = format!("{}.{:03}", ms / 1000, ms % 1000);
        s.trim_end_matches('0').to_string()
    }
}

/// A probe's line, as `show-config` prints it.
pub fn check_text(check: &Check) -> String {
    match check {
        Check::Exec(cmd) => format!("exec {cmd}"),
        Check::Tcp(addr) => format!("tcp {addr}"),
        Check::Http {
            addr,
            path,
            host,
            status,
        } => {
            let mut s = format!("http://{addr}{path}");
            if let Some(h) = host {
                s.push_str(&format!(" host {h}"));
            }
            if *status != DEFAULT_STATUS {
                s.push_str(&format!(" status {}-{}", status.0, status.1));
            }
            s
        }
    }
}

/// A probe's settings line, as `show-config` prints it.
pub fn settings_text(p: &Probe) -> String {
    format!(
        "initial-delay {} period {} timeout {} failure-threshold {} success-threshold {}",
        secs_text(p.initial_delay_ms),
        secs_text(p.period_ms),
        secs_text(p.timeout_ms),
        p.failure_threshold,
        p.success_threshold
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_numeric() {
        assert_eq!(parse_addr("127.0.0.1:80").unwrap().port(), 80);
        assert_eq!(
            parse_addr("localhost:6379").unwrap().to_string(),
            "127.0.0.1:6379"
        );
        assert!(parse_addr("[::1]:80").unwrap().is_ipv6());
        assert!(parse_addr("example.org:80").is_err());
        assert!(parse_addr("127.0.0.1").is_err());
    }

    #[test]
    fn urls_statuses_and_seconds() {
        let (a, p) = parse_url("http://127.0.0.1:8000/healthz?x=1").unwrap();
        assert_eq!((a.port(), p.as_str()), (8000, "/healthz?x=1"));
        assert_eq!(parse_url("http://localhost:81").unwrap().1, "/");
        assert!(parse_url("https://127.0.0.1:443/").is_err());
        assert_eq!(parse_status("200-299"), Ok((200, 299)));
        assert_eq!(parse_status("204"), Ok((204, 204)));
        assert!(parse_status("299-200").is_err());
        assert!(parse_status("99").is_err());
        assert_eq!(parse_secs("0.5"), Ok(500));
        assert_eq!(parse_secs("10"), Ok(10_000));
        assert_eq!(parse_secs("1.25"), Ok(1250));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("1.2345").is_err());
        assert!(parse_secs("86401").is_err());
        assert!(parse_secs(".5").is_err());
        assert_eq!(secs_text(1250), "1.25");
        assert_eq!(secs_text(10_000), "10");
        assert_eq!(secs_text(500), "0.5");
    }
}
