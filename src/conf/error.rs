//! Parse errors: what went wrong, and where (a byte offset into the file).
//!
//! The messages are Upstart's own wording (libnih's and `init/errors.h`), so
//! people who know Upstart recognise them; upkeep adds the column and a few
//! messages of its own for input Upstart never guarded against.

use std::fmt;

/// One parse error at a byte offset of the parsed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset into the text; always `<= text.len()`.
    pub offset: usize,
    pub kind: ErrorKind,
}

impl ParseError {
    pub fn new(offset: usize, kind: ErrorKind) -> Self {
        ParseError { offset, kind }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    // libnih's messages.
    ExpectedToken,
    UnexpectedToken,
    UnknownStanza,
    UnterminatedQuote,
    UnterminatedBlock,
    TrailingSlash,
    // Upstart's messages.
    IllegalInterval,
    IllegalExit,
    IllegalSignal,
    IllegalUmask,
    IllegalNice,
    IllegalOom,
    IllegalOomScore,
    IllegalLimit,
    ExpectedEvent,
    ExpectedOperator,
    ExpectedVariable,
    MismatchedParens,
    // upkeep's own guards against hostile input.
    InvalidUtf8,
    NulByte,
    TooDeep {
        limit: usize,
    },
    TooManyEvents {
        limit: usize,
    },
    TooManyErrors {
        limit: usize,
    },
    IllegalLogValue,
    /// A `health` stanza's value, with what was expected.
    IllegalHealth(&'static str),
    /// A cgroup limit's value (`memory max`, `cpu quota`, …), with what
    /// was expected.
    IllegalCgroupLimit(&'static str),
    IllegalEnvFile,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ErrorKind::*;
        match self {
            ExpectedToken => f.write_str("Expected token"),
            UnexpectedToken => f.write_str("Unexpected token"),
            UnknownStanza => f.write_str("Unknown stanza"),
            UnterminatedQuote => f.write_str("Unterminated quoted string"),
            UnterminatedBlock => f.write_str("Unterminated block"),
            TrailingSlash => f.write_str("Trailing slash in file"),
            IllegalInterval => f.write_str("Illegal interval, expected number of seconds"),
            IllegalExit => f.write_str("Illegal exit status, expected integer"),
            IllegalSignal => f.write_str("Illegal signal status, expected integer"),
            IllegalUmask => f.write_str("Illegal file creation mask, expected octal integer"),
            IllegalNice => f.write_str("Illegal nice value, expected -20 to 19"),
            IllegalOom => f.write_str("Illegal oom adjustment, expected -16 to 15 or 'never'"),
            IllegalOomScore => {
                f.write_str("Illegal oom score adjustment, expected -999 to 1000 or 'never'")
            }
            IllegalLimit => f.write_str("Illegal limit, expected 'unlimited' or integer"),
            ExpectedEvent => f.write_str("Expected event"),
            ExpectedOperator => f.write_str("Expected operator"),
            ExpectedVariable => f.write_str("Expected variable name before value"),
            MismatchedParens => f.write_str("Mismatched parentheses"),
            InvalidUtf8 => f.write_str("Invalid UTF-8: a job file must be UTF-8 text"),
            NulByte => f.write_str("NUL byte: a job file must be text"),
            TooDeep { limit } => write!(f, "Parentheses nested too deeply (the limit is {limit})"),
            TooManyEvents { limit } => {
                write!(f, "Expression too long (the limit is {limit} events)")
            }
            IllegalHealth(why) => write!(f, "Illegal health probe: {why}"),
            IllegalCgroupLimit(why) => write!(f, "Illegal limit: {why}"),
            TooManyErrors { limit } => write!(f, "Too many errors (stopped after {limit})"),
            IllegalEnvFile => f.write_str(
                "Illegal env-file, expected an absolute path (or -PATH when the file may be missing)",
            ),
            IllegalLogValue => f.write_str(
                "Illegal log setting, expected pty, pipe, size SIZE, keep N, rotate daily|never, compress yes|no or timestamps yes|no",
            ),
        }
    }
}

/// Line and column (both 1-based; the column counts characters) of a byte
/// offset. An offset at the very end of the text is the position just past
/// the last character, which is where "ran out of input" errors point.
pub fn line_col(text: &[u8], offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    // Count characters, not bytes: continuation bytes of UTF-8 are 0b10xxxxxx.
    let col = 1 + before[line_start..]
        .iter()
        .filter(|&&b| (b & 0xC0) != 0x80)
        .count();
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_lines_and_characters() {
        let t = "ab\ncé d\n".as_bytes();
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 2), (1, 3));
        assert_eq!(line_col(t, 3), (2, 1));
        // 'c' 'é'(2 bytes) ' ' -> 'd' is the 4th character.
        assert_eq!(line_col(t, 7), (2, 4));
        assert_eq!(line_col(t, t.len()), (3, 1));
        assert_eq!(line_col(t, 999), (3, 1));
    }
}
