//! Upstart's variable expansion (reference 6.1), used for instance names
//! and event-match patterns: `$NAME`, `${NAME}`, `${NAME-default}`,
//! `${NAME:-default}`, `${NAME+alt}`, `${NAME:+alt}`, and `${}` for a
//! literal `$`. Pure.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    UnknownParameter(String),
    MismatchedBraces,
    ExpectedOperator,
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpandError::UnknownParameter(n) => write!(f, "Unknown parameter: {n}"),
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

/// Expands `template` against `env` (`KEY=VALUE` entries).
pub fn expand(template: &str, env: &[String]) -> Result<String, ExpandError> {
    let chars: Vec<char> = template.chars().collect();
    let mut out = String::with_capacity(template.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '$' {
            out.push(c);
            i += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('{') => {
                // Find the matching close brace (nesting allowed in values).
                let mut depth = 0;
                let mut j = i + 1;
                let close = loop {
                    match chars.get(j) {
                        None => return Err(ExpandError::MismatchedBraces),
                        Some('{') => depth += 1,
                        Some('}') => {
                            depth -= 1;
                            if depth == 0 {
                                break j;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                };
                let inner: String = chars[i + 2..close].iter().collect();
                out.push_str(&expand_braced(&inner, env)?);
                i = close + 1;
            }
            Some(&n) if is_name_start(n) => {
                let mut j = i + 1;
                while j < chars.len() && is_name_char(chars[j]) {
                    j += 1;
                }
                let name: String = chars[i + 1..j].iter().collect();
                match lookup(env, &name) {
                    Some(v) => out.push_str(v),
                    None => return Err(ExpandError::UnknownParameter(name)),
                }
                i = j;
            }
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    Ok(out)
}

fn expand_braced(inner: &str, env: &[String]) -> Result<String, ExpandError> {
    if inner.is_empty() {
        return Ok("$".to_string());
    }
    let name_len = inner
        .char_indices()
        .find(|&(_, c)| !is_name_char(c))
        .map_or(inner.len(), |(i, _)| i);
    let (name, rest) = inner.split_at(name_len);
    if name.is_empty() || !name.starts_with(is_name_start) {
        return Err(ExpandError::ExpectedOperator);
    }
    let value = lookup(env, name);
    let (colon, rest) = match rest.strip_prefix(':') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let set = match value {
        Some(v) => !(colon && v.is_empty()),
        None => false,
    };
    if rest.is_empty() && !colon {
        return value
            .map(str::to_string)
            .ok_or_else(|| ExpandError::UnknownParameter(name.to_string()));
    }
    if let Some(word) = rest.strip_prefix('-') {
        return if set {
            Ok(value.unwrap_or("").to_string())
        } else {
            expand(word, env)
        };
    }
    if let Some(word) = rest.strip_prefix('+') {
        return if set {
            expand(word, env)
        } else {
            Ok(String::new())
        };
    }
    Err(ExpandError::ExpectedOperator)
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
        assert_eq!(expand("${A?x}", &env()), Err(ExpandError::ExpectedOperator));
    }
}
