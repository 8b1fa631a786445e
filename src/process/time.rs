//! Local time, for daily rotation and the daemon log's time stamps.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn local_tm(secs: i64) -> libc::tm {
    // SAFETY: localtime_r writes only into `tm`, which we own; a zeroed tm
    // is a valid value of the plain-data struct.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        let t: libc::time_t = secs as libc::time_t;
        libc::localtime_r(&t, &mut tm);
        tm
    }
}

/// The next local midnight after `now` (DST changes included: mktime
/// normalises the day after into local time).
pub fn next_local_midnight(now: SystemTime) -> SystemTime {
    let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let mut tm = local_tm(secs);
    tm.tm_mday += 1;
    tm.tm_hour = 0;
    tm.tm_min = 0;
    tm.tm_sec = 0;
    tm.tm_isdst = -1;
    // SAFETY: mktime reads and normalises the tm we own.
    let t = unsafe { libc::mktime(&mut tm) };
    if t <= secs as libc::time_t {
        return now + Duration::from_secs(86_400);
    }
    UNIX_EPOCH + Duration::from_secs(t as u64)
}

/// `2026-11-25 14:30:01`, local time.
pub fn timestamp(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let tm = local_tm(secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// The time since the epoch now (zero before 1970).
pub fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Ignores SIGXFSZ in the daemon, so that a file-size limit makes a log
/// write fail (and be counted) instead of killing the daemon. Jobs get
/// the default back (their signals are reset before exec).
pub fn ignore_sigxfsz() {
    // SAFETY: setting a signal's disposition to SIG_IGN has no memory
    // effects and no handler to run.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midnight_is_ahead_and_within_a_day() {
        let now = SystemTime::now();
        let m = next_local_midnight(now);
        let ahead = m.duration_since(now).unwrap();
        assert!(
            ahead > Duration::ZERO && ahead <= Duration::from_secs(25 * 3600),
            "{ahead:?}"
        );
        assert!(timestamp(m).ends_with("00:00:00"), "{}", timestamp(m));
    }
}
