//! Who may do what through the gateway: the bearer token (read from a file
//! only the gateway's user can read), compared in constant time, and a
//! limit on failed checks for each remote address.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

/// A token must have at least this many bytes.
pub const MIN_TOKEN: usize = 32;

/// Reads the token file: a regular file (not a link) owned by `uid`, that
/// no group or other user can read or write, holding one token of at
/// least [`MIN_TOKEN`] printable bytes (a final newline is not part of
/// it). Anything else is refused with the reason.
pub fn read_token(path: &Path, uid: u32) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("{shown}: {}", crate::process::io_text(&e)))?;
    let m = f
        .metadata()
        .map_err(|e| format!("{shown}: {}", crate::process::io_text(&e)))?;
    if !m.file_type().is_file() {
        return Err(format!("{shown}: not a regular file"));
    }
    if m.uid() != uid {
        return Err(format!(
            "{shown}: owned by uid {}, not by the gateway's uid {uid}",
            m.uid()
        ));
    }
    if m.mode() & 0o077 != 0 {
        return Err(format!(
            "{shown}: mode {:04o}; a token file must be 0600 (no access for group or others)",
            m.mode() & 0o7777
        ));
    }
    let mut text = Vec::new();
    f.by_ref()
        .take(4097)
        .read_to_end(&mut text)
        .map_err(|e| format!("{shown}: {}", crate::process::io_text(&e)))?;
    if text.len() > 4096 {
        return Err(format!("{shown}: more than 4096 bytes"));
    }
    while text.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        text.pop();
    }
    if text.iter().any(|b| !b.is_ascii_graphic()) {
        return Err(format!(
            "{shown}: a token is one line of printable characters, no spaces"
        ));
    }
    if text.len() < MIN_TOKEN {
        return Err(format!(
            "{shown}: the token has {} bytes; it needs at least {MIN_TOKEN} random ones (head -c 32 /dev/urandom | base64 > FILE)",
            text.len()
        ));
    }
    Ok(text)
}

/// Whether `given` equals `token`, in a time that depends only on their
/// lengths (so a guess learns nothing from how long the answer took).
pub fn same(token: &[u8], given: &[u8]) -> bool {
    let mut diff = u8::from(token.len() != given.len());
    for (i, t) in token.iter().enumerate() {
        diff |= t ^ given.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// The token of an `Authorization: Bearer TOKEN` header.
pub fn bearer(header: Option<&str>) -> Option<&[u8]> {
    let h = header?;
    let (scheme, token) = h.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().as_bytes())
}

/// Failed token checks allowed per address per window.
pub const FAILURES_ALLOWED: u32 = 10;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most (the oldest window goes first).
const MAX_ADDRESSES: usize = 4096;

/// Failed token checks, counted per remote address in fixed windows.
#[derive(Default)]
pub struct Failures {
    by_addr: HashMap<String, (Instant, u32)>,
}

impl Failures {
    /// Whether `addr` may try a token now.
    pub fn allowed(&mut self, addr: &str, now: Instant) -> bool {
        match self.by_addr.get(addr) {
            Some((since, n)) if now.duration_since(*since) < FAILURE_WINDOW => {
                *n < FAILURES_ALLOWED
            }
            _ => true,
        }
    }

    /// A failed check from `addr`.
    pub fn failed(&mut self, addr: &str, now: Instant) {
        if self.by_addr.len() >= MAX_ADDRESSES && !self.by_addr.contains_key(addr) {
            self.by_addr
                .retain(|_, (since, _)| now.duration_since(*since) < FAILURE_WINDOW);
            if self.by_addr.len() >= MAX_ADDRESSES {
                if let Some(oldest) = self
                    .by_addr
                    .iter()
                    .min_by_key(|(_, (since, _))| *since)
                    .map(|(k, _)| k.clone())
                {
                    self.by_addr.remove(&oldest);
                }
            }
        }
        let e = self.by_addr.entry(addr.to_string()).or_insert((now, 0));
        if now.duration_since(e.0) >= FAILURE_WINDOW {
            *e = (now, 0);
        }
        e.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abcdef", b"abcdef"));
        assert!(!same(b"abcdef", b"abcdeg"));
        assert!(!same(b"abcdef", b"abcde"));
        assert!(!same(b"abcdef", b"abcdefg"));
        assert!(!same(b"abc", b""));
        assert_eq!(bearer(Some("Bearer xyz")), Some(&b"xyz"[..]));
        assert_eq!(bearer(Some("bearer  xyz ")), Some(&b"xyz"[..]));
        assert_eq!(bearer(Some("Basic xyz")), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn a_token_file_must_be_private_and_long() {
        let dir = tempfile::tempdir().unwrap();
        let uid = crate::process::euid();
        let p = dir.path().join("token");
        std::fs::write(&p, format!("{}\n", "k".repeat(40))).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token(&p, uid).unwrap(), "k".repeat(40).as_bytes());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(read_token(&p, uid).unwrap_err().contains("mode 0640"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read_token(&p, uid + 1)
            .unwrap_err()
            .contains("owned by uid"));
        std::fs::write(&p, "short").unwrap();
        assert!(read_token(&p, uid).unwrap_err().contains("at least 32"));
        std::fs::write(&p, format!("{} {}", "a".repeat(20), "b".repeat(20))).unwrap();
        assert!(read_token(&p, uid).unwrap_err().contains("no spaces"));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(read_token(&link, uid).is_err());
    }

    #[test]
    fn failed_checks_are_limited_per_address() {
        let mut f = Failures::default();
        let t = Instant::now();
        for _ in 0..FAILURES_ALLOWED {
            assert!(f.allowed("1.2.3.4", t));
            f.failed("1.2.3.4", t);
        }
        assert!(!f.allowed("1.2.3.4", t));
        assert!(f.allowed("5.6.7.8", t));
        assert!(f.allowed("1.2.3.4", t + FAILURE_WINDOW));
    }
}
