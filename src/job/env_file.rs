//! The `env-file` format, as a pure function of the file's bytes: one
//! `KEY=VALUE` a line, with no expansion of any kind.
//!
//! * blank lines and lines whose first non-blank character is `#` are
//!   skipped; a line may start with `export ` (as a shell would source it);
//! * `KEY` matches `[A-Za-z_][A-Za-z0-9_]*`, and `=` follows it at once;
//! * a value in single quotes is taken as it is; in double quotes, `\"` and
//!   `\\` are the only escapes (any other `\` is itself); after the closing
//!   quote only blanks or a `#` comment may follow; a quoted value ends on
//!   its line;
//! * an unquoted value is the rest of the line without its trailing blanks
//!   (`#`, `$`, quotes inside it are themselves);
//! * `$` is never expanded; the last value of a repeated key wins.

/// The values of a job's env files, read through `sys` in order (a later
/// file's value wins), or why they cannot be (`env-file PATH:LINE: …`).
pub fn read_all(
    files: &[crate::conf::EnvFile],
    job_uid: Option<u32>,
    sys: &mut dyn crate::process::sys::Sys,
) -> Result<Vec<(String, String)>, String> {
    let mut vars: Vec<(String, String)> = Vec::new();
    for f in files {
        let text = match sys.read_env_file(std::path::Path::new(&f.path), job_uid) {
            Ok(Some(text)) => text,
            Ok(None) if f.optional => continue,
            Ok(None) => return Err(format!("env-file {}: no such file", f.path)),
            Err(e) => return Err(format!("env-file {e}")),
        };
        let read =
            parse(&text).map_err(|b| format!("env-file {}:{}: {}", f.path, b.line, b.message))?;
        for (k, v) in read {
            vars.retain(|(ek, _)| *ek != k);
            vars.push((k, v));
        }
    }
    Ok(vars)
}

/// A bad line: its number (from 1) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    pub message: String,
}

/// The variables of an env file, in the order their keys first appear, or
/// the first bad line.
pub fn parse(text: &[u8]) -> Result<Vec<(String, String)>, BadLine> {
    let mut vars: Vec<(String, String)> = Vec::new();
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let bad = |message: &str| BadLine {
            line: i + 1,
            message: message.to_string(),
        };
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw).map_err(|_| bad("not UTF-8 text"))?;
        if line.contains('\0') {
            return Err(bad("a NUL byte"));
        }
        let line = line.trim_start_matches([' ', '\t']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = match line.strip_prefix("export") {
            Some(rest) if rest.starts_with([' ', '\t']) => rest.trim_start_matches([' ', '\t']),
            _ => line,
        };
        let Some((key, rest)) = line.split_once('=') else {
            return Err(bad("expected KEY=VALUE"));
        };
        if !valid_key(key) {
            return Err(bad(&format!(
                "not a variable name: {key:?} (letters, digits and _, not starting with a digit)"
            )));
        }
        let value = value(rest).map_err(|m| bad(&m))?;
        match vars.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => vars.push((key.to_string(), value)),
        }
    }
    Ok(vars)
}

/// Whether `key` may name a variable: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The value after `=`.
fn value(rest: &str) -> Result<String, String> {
    let (quote, body) = match rest.chars().next() {
        Some(q @ ('\'' | '"')) => (q, &rest[1..]),
        _ => return Ok(rest.trim_end_matches([' ', '\t']).to_string()),
    };
    let mut out = String::new();
    let mut chars = body.char_indices();
    let end = loop {
        let Some((at, c)) = chars.next() else {
            return Err(format!("no closing {quote} on this line"));
        };
        match c {
            c if c == quote => break at + 1,
            '\\' if quote == '"' => match chars.clone().next() {
                Some((_, n @ ('"' | '\\'))) => {
                    chars.next();
                    out.push(n);
                }
                _ => out.push('\\'),
            },
            c => out.push(c),
        }
    };
    let after = body[end..].trim_start_matches([' ', '\t']);
    if !after.is_empty() && !after.starts_with('#') {
        return Err(format!(
            "text after the closing {quote}: {after:?} (quote the whole value)"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Vec<(String, String)> {
        parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
    }

    fn bad(text: &str) -> BadLine {
        parse(text.as_bytes()).expect_err(text)
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn plain_lines_comments_and_export() {
        let text =
            "# a comment\n\n  A=1\nexport B=two words  \n\texport\tC=\r\n  # indented comment\n";
        assert_eq!(
            ok(text),
            pairs(&[("A", "1"), ("B", "two words"), ("C", "")])
        );
    }

    #[test]
    fn nothing_is_expanded() {
        assert_eq!(
            ok("A=$HOME\nB=\"${HOME} \\$x\"\nC='$(id)'\nD=`id`\n"),
            pairs(&[
                ("A", "$HOME"),
                ("B", "${HOME} \\$x"),
                ("C", "$(id)"),
                ("D", "`id`")
            ])
        );
    }

    #[test]
    fn single_and_double_quotes() {
        assert_eq!(
            ok("A='a \"b\" \\n # c'\nB=\"say \\\"hi\\\" \\\\ \\n 'x'\"  # why\nC=\"\"\nD=a'b\"c\n"),
            pairs(&[
                ("A", "a \"b\" \\n # c"),
                ("B", "say \"hi\" \\ \\n 'x'"),
                ("C", ""),
                ("D", "a'b\"c"),
            ])
        );
    }

    #[test]
    fn a_hash_inside_an_unquoted_value_is_itself() {
        assert_eq!(
            ok("URL=http://x/#top\n"),
            pairs(&[("URL", "http://x/#top")])
        );
    }

    #[test]
    fn the_last_value_of_a_repeated_key_wins() {
        assert_eq!(ok("A=1\nB=2\nA=3\n"), pairs(&[("A", "3"), ("B", "2")]));
    }

    #[test]
    fn bad_lines_are_named_by_number() {
        let e = bad("A=1\n\nnot a pair\n");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("KEY=VALUE"), "{e:?}");
        assert_eq!(bad("A=1\n1X=2\n").line, 2);
        assert_eq!(bad("A B=1\n").line, 1);
        assert_eq!(bad("A =1\n").line, 1);
        assert_eq!(bad("=1\n").line, 1);
        assert!(bad("A='open\nB=1\n").message.contains("closing '"));
        assert!(bad("A=\"x\" y\n").message.contains("after the closing"));
        assert!(bad("A='it''s'\n").message.contains("after the closing"));
        assert_eq!(parse(b"A=1\nB=\xff\n").unwrap_err().line, 2);
        assert_eq!(parse(b"A=x\0y\n").unwrap_err().line, 1);
        assert_eq!(bad("exportA\n").line, 1);
    }

    #[test]
    fn keys() {
        for k in ["A", "_", "a_1", "_X9"] {
            assert!(valid_key(k), "{k}");
        }
        for k in ["", "1A", "A-B", "A.B", "É"] {
            assert!(!valid_key(k), "{k}");
        }
    }
}
