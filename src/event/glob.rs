//! Shell glob matching as `fnmatch(3)` with no flags: `*`, `?`, `[...]`
//! (with `!` or `^` negation and ranges), and `\` quoting the next
//! character. `/` and leading dots are not special.
//!
//! The matcher backtracks only to the last `*`, so it runs in
//! O(pattern × text) at worst and never recurses.

/// Does `text` match the glob `pattern`?
pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None; // (pattern after '*', text position)
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi + 1, ti));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                '[' => {
                    if let Some((hit, next)) = class(&p, pi, t[ti]) {
                        if hit {
                            pi = next;
                            ti += 1;
                            continue;
                        }
                    } else if t[ti] == '[' {
                        // An unclosed '[' is an ordinary character.
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
                '\\' if pi + 1 < p.len() => {
                    if p[pi + 1] == t[ti] {
                        pi += 2;
                        ti += 1;
                        continue;
                    }
                }
                c => {
                    if c == t[ti] {
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, st)) => {
                pi = sp;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the bracket expression at `p[start]` (`[`).
/// Returns whether it matched and the index after the `]`, or `None` if
/// the bracket is not closed.
fn class(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let &lo = p.get(i)?;
        if lo == ']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        let lo = if lo == '\\' {
            i += 1;
            *p.get(i)?
        } else {
            lo
        };
        i += 1;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&h| h != ']') {
            let hi = p[i + 1];
            i += 2;
            if lo <= c && c <= hi {
                hit = true;
            }
        } else if lo == c {
            hit = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn table() {
        let cases: &[(&str, &str, bool)] = &[
            ("startup", "startup", true),
            ("startup", "startups", false),
            ("*", "", true),
            ("*-device-added", "net-device-added", true),
            ("*-device-added", "net-device-removed", false),
            (":sys:*", ":sys:foo", true),
            ("[2345]", "2", true),
            ("[2345]", "6", false),
            ("[!2345]", "6", true),
            ("[!2345]", "3", false),
            ("[S016]", "S", true),
            ("?*", "", false),
            ("?*", "TERM", true),
            ("/dev/tty*", "/dev/tty1", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("[a-c]x", "bx", true),
            ("[a-c]x", "dx", false),
            ("[]]", "]", true),
            ("[", "[", true),
            ("\\*", "*", true),
            ("\\*", "a", false),
        ];
        for &(p, t, want) in cases {
            assert_eq!(matches(p, t), want, "pattern {p:?} text {t:?}");
        }
    }

    #[test]
    fn pathological_patterns_are_fast() {
        let p = "*a".repeat(50) + "b";
        let t = "a".repeat(5000);
        assert!(!matches(&p, &t));
    }
}
