//! The name of a job instance's log file: one function, injective, so that
//! two jobs never share a file (the cgroups layer uses the same escaping
//! for group names).
//!
//! * A job with no instance whose name is made only of `[A-Za-z0-9._+,:=-]`
//!   keeps Upstart's name: `JOB.log` (`rc-sysinit.log`).
//! * Every other name is escaped: each byte outside that set becomes `%XX`
//!   (two upper-case hex digits), and an instance is joined with `%%`:
//!   `ESC(JOB).log` or `ESC(JOB)%%ESC(INSTANCE).log`. An escaped name always
//!   holds a `%`, which no kept name does, and `%%` appears only as the
//!   separator (an escape's `%` is followed by two hex digits), so the
//!   mapping is one to one and can be read back.
//! * A name that would be longer than a file name may be (255 bytes) is cut
//!   to 200 bytes and ended with `%~` and 16 hex digits of a 64-bit FNV-1a
//!   hash of the whole escaped name (stable across releases).
//!
//! `/` never survives, so no name reaches outside the log dir; `@` never
//! survives either, so no job's log is the daemon's own `upkeep@daemon.log`.

/// The bytes a name keeps as they are.
fn kept(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b',' | b':' | b'=' | b'-')
}

/// Percent-escapes every byte outside the kept set.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if kept(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The most bytes of a file name.
const MAX_NAME: usize = 255;

/// The log file of a job instance, in the log dir.
pub fn file_name(job: &str, instance: &str) -> String {
    let stem = if instance.is_empty() {
        escape(job)
    } else {
        format!("{}%%{}", escape(job), escape(instance))
    };
    capped(&stem, ".log")
}

/// `stem` then `suffix`, as a file name may hold it: when longer than
/// 255 bytes, `stem` (escaped, so ASCII) is cut to 200 bytes and ended with
/// `%~` and 16 hex digits of its FNV-1a hash (stable across releases).
pub fn capped(stem: &str, suffix: &str) -> String {
    if stem.len() + suffix.len() <= MAX_NAME {
        return format!("{stem}{suffix}");
    }
    format!("{}%~{:016x}{suffix}", &stem[..200], fnv1a(stem.as_bytes()))
}

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_keep_upstarts_form() {
        assert_eq!(file_name("web", ""), "web.log");
        assert_eq!(file_name("rc-sysinit", ""), "rc-sysinit.log");
        assert_eq!(file_name("a.b_c+d,e:f=g", ""), "a.b_c+d,e:f=g.log");
    }

    #[test]
    fn every_other_name_is_escaped_and_none_collide() {
        let cases = [
            ("web/api", ""),
            ("web_api", ""),
            ("x-y", ""),
            ("x", "y"),
            ("x", "(y)"),
            ("i", "/"),
            ("i", " "),
            ("i", "%2F"),
            ("i%2F", ""),
            ("a%%b", ""),
            ("a", "b"),
            ("upkeep@daemon", ""),
            ("..", ""),
            ("x", "../../etc/passwd"),
            ("x", "\n\0"),
        ];
        let names: Vec<String> = cases.iter().map(|(j, i)| file_name(j, i)).collect();
        for (a, na) in cases.iter().zip(&names) {
            assert!(
                !na.contains('/') && !na.contains('\0') && !na.contains('@'),
                "{na}"
            );
            for (b, nb) in cases.iter().zip(&names) {
                if a != b {
                    assert_ne!(na, nb, "{a:?} and {b:?}");
                }
            }
        }
        assert_eq!(file_name("web/api", ""), "web%2Fapi.log");
        assert_eq!(file_name("x", "(y)"), "x%%%28y%29.log");
        assert_ne!(file_name("upkeep@daemon", ""), "upkeep@daemon.log");
    }

    #[test]
    fn long_names_are_cut_with_a_hash() {
        let long = "w".repeat(300);
        let a = file_name(&long, "1");
        let b = file_name(&long, "2");
        assert!(a.len() <= MAX_NAME && b.len() <= MAX_NAME);
        assert_ne!(a, b);
        assert!(a.contains("%~"));
    }
}
