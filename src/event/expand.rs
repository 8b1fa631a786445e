//! Upstart's variable expansion (reference 6.1), used for instance names
//! and event-match patterns: `$NAME`, `${NAME}`, `${NAME-default}`,
//! `${NAME:-default}`, `${NAME+alt}`, `${NAME:+alt}`, `${}` for a
//! literal `$`, and indirect names (`${$NAME}`, `${${NAME}}`), with
//! Upstart's `environ_expand` rules. Pure.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    UnknownParameter(String),
    /// A braced name that, once expanded, is not a variable name.
    IllegalParameter(String),
    MismatchedBraces,
    ExpectedOperator,
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpandError::UnknownParameter(n) => write!(f, "Unknown parameter: {n}"),
            ExpandError::IllegalParameter(n) => write!(f, "Illegal parameter: {n}"),
            ExpandError::MismatchedBraces => f.write_str("Mismatched braces"),
            ExpandError::ExpectedOperator => f.write_str("Expected operator"),
        }
    }
}

/// Looks `name` up in `KEY=VALUE` entries; the last one wins.
pub fn lookup<'a>(env: &'a [String], name: &str) -> Option<&'a str> {
    env.iter().rev().find_map(|e| {
        let (k, v) = e.split_once('=')?;
        (k == name).then_some(v)
    })
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn is_valid_name(name: &str) -> bool {
    name.starts_with(is_name_start) && name.chars().all(is_name_char)
}

/// Expands `template` against `env` (`KEY=VALUE` entries), as Upstart's
/// `environ_expand` does: a braced name is itself expanded first (so
/// `${$NAME}` and `${${NAME}}` look up the variable `NAME` names), and a
/// default or alternative is expanded whether or not it is used. A value
/// substituted is never expanded again.
pub fn expand(template: &str, env: &[String]) -> Result<String, ExpandError> {
    let chars: Vec<char> = template.chars().collect();
    let mut pos = 0;
    expand_until(&chars, &mut pos, env, &[])
}

/// Expands from `pos` up to the first character of `stop` that is in the
/// template itself (not in a value), or its end; `pos` is left there.
fn expand_until(
    t: &[char],
    pos: &mut usize,
    env: &[String],
    stop: &[char],
) -> Result<String, ExpandError> {
    let mut out = String::new();
    while let Some(&c) = t.get(*pos) {
        if stop.contains(&c) {
            break;
        }
        *pos += 1;
        if c != '$' {
            out.push(c);
            continue;
        }
        match t.get(*pos) {
            Some(&n) if is_name_start(n) => {
                let start = *pos;
                while t.get(*pos).copied().is_some_and(is_name_char) {
                    *pos += 1;
                }
                let name: String = t[start..*pos].iter().collect();
                match lookup(env, &name) {
                    Some(v) => out.push_str(v),
                    None => return Err(ExpandError::UnknownParameter(name)),
                }
            }
            // `${}`: a literal `$`.
            Some('{') if t.get(*pos + 1) == Some(&'}') => {
                *pos += 2;
                out.push('$');
            }
            Some('{') => {
                *pos += 1;
                out.push_str(&braced(t, pos, env)?);
            }
            // A lone `$` is itself.
            _ => out.push('$'),
        }
    }
    Ok(out)
}

/// `${NAME[op word]}` with `pos` just inside the brace; leaves `pos` past
/// the closing one.
fn braced(t: &[char], pos: &mut usize, env: &[String]) -> Result<String, ExpandError> {
    let name = expand_until(t, pos, env, &['}', ':', '-', '+'])?;
    if !is_valid_name(&name) {
        return Err(ExpandError::IllegalParameter(name));
    }
    // (default?, also when empty?)
    let op = match (t.get(*pos), t.get(*pos + 1)) {
        (Some(':'), Some(&o @ ('-' | '+'))) => {
            *pos += 2;
            Some((o == '-', true))
        }
        (Some(&o @ ('-' | '+')), _) => {
            *pos += 1;
            Some((o == '-', false))
        }
        (Some('}') | None, _) => None,
        _ => return Err(ExpandError::ExpectedOperator),
    };
    let word = expand_until(t, pos, env, &['}'])?;
    if t.get(*pos) != Some(&'}') {
        return Err(ExpandError::MismatchedBraces);
    }
    *pos += 1;
    let value = lookup(env, &name);
    Ok(match op {
        None => value
            .ok_or(ExpandError::UnknownParameter(name))?
            .to_string(),
        Some((default, also_empty)) => {
            let set = value.is_some_and(|v| !(also_empty && v.is_empty()));
            match (default, set) {
                (true, true) => value.unwrap_or_default().to_string(),
                (true, false) | (false, true) => word,
                (false, false) => String::new(),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<String> {
        ["A=1", "B=", "app=web", "index=3", "INTERFACE=eth0", "A=2"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn table() {
        let ok: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("$A", "2"),
            ("${A}x", "2x"),
            ("${app}-${index}", "web-3"),
            ("${C-dflt}", "dflt"),
            ("${B-dflt}", ""),
            ("${B:-dflt}", "dflt"),
            ("${A:+alt}", "alt"),
            ("${C:+alt}", ""),
            ("${cluster:-ceph}/$index", "ceph/3"),
            (
                "$UPSTART_JOB${INTERFACE:+/}${INTERFACE:-}"
                    .replace("$UPSTART_JOB", "j")
                    .leak(),
                "j/eth0",
            ),
            ("${}", "$"),
            ("a$", "a$"),
            ("$1", "$1"),
        ];
        for &(t, want) in ok {
            assert_eq!(expand(t, &env()).as_deref(), Ok(want), "template {t:?}");
        }
        assert_eq!(
            expand("$NOPE", &env()),
            Err(ExpandError::UnknownParameter("NOPE".into()))
        );
        assert_eq!(expand("${A", &env()), Err(ExpandError::MismatchedBraces));
        assert_eq!(
            expand("${A?x}", &env()),
            Err(ExpandError::IllegalParameter("A?x".into()))
        );
        assert_eq!(expand("${A:x}", &env()), Err(ExpandError::ExpectedOperator));
    }

    #[test]
    fn indirect_names_as_upstarts_environ_expand() {
        let env: Vec<String> = [
            "WHICH=app",
            "REF=WHICH",
            "app=web",
            "EMPTY=",
            "DFLT=fallback",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let ok: &[(&str, &str)] = &[
            ("${$WHICH}", "web"),
            ("${${WHICH}}", "web"),
            ("${${$REF}}", "web"),
            ("x${$WHICH}y", "xweby"),
            ("${NOPE:-$DFLT}", "fallback"),
            ("${NOPE:-${$WHICH}}", "web"),
            ("${EMPTY:-${${REF}}}", "app"),
            ("${$WHICH:+set}", "set"),
            ("${app-a+b:c}", "web"),
            // A value is not expanded again.
            ("${NOPE-$}", "$"),
        ];
        for &(t, want) in ok {
            assert_eq!(expand(t, &env).as_deref(), Ok(want), "template {t:?}");
        }
        // The default is expanded even when the value is set.
        assert_eq!(
            expand("${app:-$NOPE}", &env),
            Err(ExpandError::UnknownParameter("NOPE".into()))
        );
        // The expanded name must be a name.
        assert_eq!(
            expand("${$EMPTY}", &env),
            Err(ExpandError::IllegalParameter(String::new()))
        );
        assert_eq!(
            expand("${$NOPE}", &env),
            Err(ExpandError::UnknownParameter("NOPE".into()))
        );
    }
}
