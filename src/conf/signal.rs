//! Signal names as job files write them (Upstart's table, from libnih's
//! `nih/signal.c`): `TERM` or `SIGTERM`, upper case only. The numbers are
//! Linux's (x86, ARM, RISC-V and the other "generic" architectures).

const NAMES: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// `TERM` or `SIGTERM` → 15. Names only; numbers are not accepted here.
pub fn from_name(s: &str) -> Option<i32> {
    let bare = s.strip_prefix("SIG").unwrap_or(s);
    NAMES.iter().find(|(n, _)| *n == bare).map(|&(_, v)| v)
}

/// A signal as `kill signal` takes it: a name, or a non-negative decimal
/// number up to `i32::MAX`.
pub fn parse(s: &str) -> Option<i32> {
    from_name(s).or_else(|| parse_decimal_i32(s))
}

/// 15 → `TERM` (the first name of a number); `None` for numbers with no name.
pub fn name(sig: i32) -> Option<&'static str> {
    NAMES.iter().find(|&&(_, v)| v == sig).map(|&(n, _)| n)
}

/// A signal written so that [`parse`] reads it back: its name, or its number.
pub fn display(sig: i32) -> String {
    name(sig).map_or_else(|| sig.to_string(), str::to_string)
}

/// A whole-token non-negative decimal integer (no sign), at most `i32::MAX`.
pub(crate) fn parse_decimal_i32(s: &str) -> Option<i32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i32>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("INT"), Some(2));
        assert_eq!(parse("SIGQUIT"), Some(3));
        assert_eq!(parse("10"), Some(10));
        assert_eq!(parse("term"), None);
        assert_eq!(parse("RTMIN+1"), None);
        assert_eq!(parse("-1"), None);
        assert_eq!(parse("99999999999"), None);
        assert_eq!(display(15), "TERM");
        assert_eq!(display(6), "ABRT");
        assert_eq!(display(40), "40");
        assert_eq!(from_name("10"), None);
    }
}
