//! Upstart's lexical rules (libnih's `nih/config.c`), as a cursor over the
//! bytes of one job file.
//!
//! * Whitespace is space, tab and carriage return; a newline ends a stanza
//!   unless it is quoted, escaped with a backslash, or (for `start on` /
//!   `stop on`) inside parentheses.
//! * `#` starts a comment outside quotes.
//! * *Argument mode* ([`Lexer::next_arg`]) splits on whitespace and removes
//!   quotes; *command mode* ([`Lexer::command`]) keeps the rest of the line
//!   verbatim; *block mode* ([`Lexer::block`]) reads a `script … end script`
//!   body.
//!
//! Every function is linear in the bytes it looks at; none allocates more
//! than the token it returns.

use super::error::{ErrorKind, ParseError};

/// Whitespace inside a line (newline is not whitespace: it ends stanzas).
pub const WS: &[u8] = b" \t\r";
/// Argument delimiters: comment, newline, whitespace.
pub const CNLWS: &[u8] = b"#\n \t\r";
/// Command delimiters: comment and newline only.
pub const CNL: &[u8] = b"#\n";
/// Event-expression delimiters: parentheses too.
pub const PCNLWS: &[u8] = b"()#\n \t\r";

pub type Result<T> = std::result::Result<T, ParseError>;

/// A token and where it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub start: usize,
}

pub struct Lexer<'a> {
    src: &'a [u8],
    pub pos: usize,
}

fn is_ws(b: u8) -> bool {
    WS.contains(&b)
}

impl<'a> Lexer<'a> {
    /// `src` must be valid UTF-8 (the caller checks): tokens are built by
    /// dropping and inserting ASCII bytes only, so they stay valid UTF-8.
    pub fn new(src: &'a [u8]) -> Self {
        Lexer { src, pos: 0 }
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    pub fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    pub fn err(&self, kind: ErrorKind) -> ParseError {
        ParseError::new(self.pos.min(self.src.len()), kind)
    }

    /// True when there is a token here: not at the end, a comment or a newline.
    pub fn has_token(&self) -> bool {
        matches!(self.peek(), Some(b) if b != b'#' && b != b'\n')
    }

    /// Skips blanks only.
    pub fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b) if is_ws(b)) {
            self.pos += 1;
        }
    }

    /// Skips blanks and backslash-newline continuations.
    pub fn skip_ws_and_continuations(&mut self) {
        loop {
            match self.peek() {
                Some(b) if is_ws(b) => self.pos += 1,
                Some(b'\\') if self.src.get(self.pos + 1) == Some(&b'\n') => self.pos += 2,
                _ => break,
            }
        }
    }

    /// Skips to just past the next newline (or to the end).
    pub fn next_line(&mut self) {
        match self.src[self.pos.min(self.src.len())..]
            .iter()
            .position(|&b| b == b'\n')
        {
            Some(i) => self.pos += i + 1,
            None => self.pos = self.src.len(),
        }
    }

    /// Expects the end of the stanza: only a comment may follow.
    pub fn end_of_stanza(&mut self) -> Result<()> {
        if self.has_token() {
            return Err(self.err(ErrorKind::UnexpectedToken));
        }
        self.next_line();
        Ok(())
    }

    /// Reads one token up to an unquoted, unescaped byte of `delim`.
    ///
    /// With `dequote`, quote characters are removed, `\\` becomes `\`, and a
    /// backslash before a blank keeps the blank in the token; a backslash
    /// before anything else is kept with it (so `\"` is two characters and
    /// does not open or close a quote). Without `dequote`, every byte is kept
    /// as written. In both modes a backslash-newline, or a newline inside
    /// quotes, becomes one space together with the blanks around it, and
    /// blanks at the end of the token are dropped.
    pub fn token(&mut self, delim: &[u8], dequote: bool) -> Result<Token> {
        let src = self.src;
        let start = self.pos;
        let mut out: Vec<u8> = Vec::new();
        let mut ws_from: Option<usize> = None; // start of pending blanks
        let mut folded_newline = false;
        let mut quote: Option<u8> = None;
        let mut p = self.pos;

        // Pending blanks are written out when the next kept byte arrives:
        // verbatim, or as a single space if a newline was folded among them.
        fn flush(
            out: &mut Vec<u8>,
            src: &[u8],
            ws_from: &mut Option<usize>,
            p: usize,
            nl: &mut bool,
        ) {
            if *nl {
                out.push(b' ');
                *nl = false;
            } else if let Some(from) = *ws_from {
                out.extend_from_slice(&src[from..p]);
            }
            *ws_from = None;
        }

        while p < src.len() {
            let c = src[p];
            if c == b'\\' {
                let Some(&n) = src.get(p + 1) else {
                    self.pos = src.len();
                    return Err(ParseError::new(p, ErrorKind::TrailingSlash));
                };
                if n == b'\n' {
                    folded_newline = true;
                    ws_from.get_or_insert(p);
                    p += 2;
                    continue;
                }
                flush(&mut out, src, &mut ws_from, p, &mut folded_newline);
                if dequote && (n == b' ' || n == b'\t') {
                    out.push(n);
                } else if dequote && n == b'\\' {
                    out.push(b'\\');
                } else {
                    out.push(b'\\');
                    out.push(n);
                }
                p += 2;
                continue;
            }
            if let Some(q) = quote {
                if c == q {
                    quote = None;
                    flush(&mut out, src, &mut ws_from, p, &mut folded_newline);
                    if !dequote {
                        out.push(c);
                    }
                } else if c == b'\n' {
                    folded_newline = true;
                    ws_from.get_or_insert(p);
                } else if is_ws(c) {
                    ws_from.get_or_insert(p);
                } else {
                    flush(&mut out, src, &mut ws_from, p, &mut folded_newline);
                    out.push(c);
                }
                p += 1;
                continue;
            }
            if c == b'"' || c == b'\'' {
                quote = Some(c);
                flush(&mut out, src, &mut ws_from, p, &mut folded_newline);
                if !dequote {
                    out.push(c);
                }
            } else if delim.contains(&c) {
                break;
            } else if is_ws(c) {
                ws_from.get_or_insert(p);
            } else {
                flush(&mut out, src, &mut ws_from, p, &mut folded_newline);
                out.push(c);
            }
            p += 1;
        }
        self.pos = p;
        if quote.is_some() {
            return Err(ParseError::new(src.len(), ErrorKind::UnterminatedQuote));
        }
        // Only ASCII bytes were dropped or inserted, so this cannot fail on
        // UTF-8 input; be defensive anyway rather than panic.
        let text = String::from_utf8(out).map_err(|e| {
            ParseError::new(start + e.utf8_error().valid_up_to(), ErrorKind::InvalidUtf8)
        })?;
        Ok(Token { text, start })
    }

    /// A token that must not be empty, followed by blanks (skipped).
    pub fn next_token(&mut self, delim: &[u8], dequote: bool) -> Result<Token> {
        let tok = self.token(delim, dequote)?;
        if tok.text.is_empty() {
            return Err(ParseError::new(tok.start, ErrorKind::ExpectedToken));
        }
        self.skip_ws_and_continuations();
        Ok(tok)
    }

    /// A de-quoted argument (argument mode).
    pub fn next_arg(&mut self) -> Result<Token> {
        self.next_token(CNLWS, true)
    }

    /// A raw (not de-quoted) word, as stanza names and sub-keywords are read.
    pub fn next_word(&mut self) -> Result<Token> {
        self.next_token(CNLWS, false)
    }

    /// All remaining arguments of the stanza (at least one), then its end.
    pub fn args(&mut self) -> Result<Vec<Token>> {
        let mut args = Vec::new();
        if !self.has_token() {
            return Err(self.err(ErrorKind::ExpectedToken));
        }
        while self.has_token() {
            args.push(self.next_arg()?);
        }
        self.next_line();
        Ok(args)
    }

    /// The rest of the line as a command, kept verbatim (command mode).
    pub fn command(&mut self) -> Result<Token> {
        if !self.has_token() {
            return Err(self.err(ErrorKind::ExpectedToken));
        }
        let tok = self.token(CNL, false)?;
        // The token stops at a comment, a newline or the end: skip to the
        // next line.
        self.next_line();
        Ok(tok)
    }

    /// Is the line starting at `p` an `end script` terminator? If so,
    /// returns the offset just past it.
    fn block_end(&self, mut p: usize, kind: &[u8]) -> Option<usize> {
        let src = self.src;
        while p < src.len() && is_ws(src[p]) {
            p += 1;
        }
        if !src[p..].starts_with(b"end") {
            return None;
        }
        p += 3;
        if !matches!(src.get(p), Some(&b) if is_ws(b)) {
            return None;
        }
        while p < src.len() && is_ws(src[p]) {
            p += 1;
        }
        if !src[p..].starts_with(kind) {
            return None;
        }
        p += kind.len();
        while p < src.len() && is_ws(src[p]) {
            p += 1;
        }
        if src.get(p) == Some(&b'#') {
            while p < src.len() && src[p] != b'\n' {
                p += 1;
            }
        }
        match src.get(p) {
            None => Some(p),
            Some(b'\n') => Some(p + 1),
            Some(_) => None,
        }
    }

    /// A `script` body, from the current position (the start of the line
    /// after the opening stanza) to its `end script` line.
    ///
    /// The indentation the lines share is removed: the leading blanks of the
    /// first line, cut down to the prefix every later line repeats byte for
    /// byte. Each body line keeps its newline.
    pub fn block(&mut self, kind: &[u8]) -> Result<String> {
        let src = self.src;
        let body_start = self.pos;
        let mut p = self.pos;
        let mut indent: Option<usize> = None;
        let body_end;
        loop {
            if let Some(after) = self.block_end(p, kind) {
                body_end = p;
                p = after;
                break;
            }
            let line_start = p;
            match indent {
                None => {
                    while p < src.len() && is_ws(src[p]) {
                        p += 1;
                    }
                    indent = Some(p - line_start);
                }
                Some(n) => {
                    let mut k = 0;
                    while k < n && p < src.len() && src[body_start + k] == src[p] {
                        p += 1;
                        k += 1;
                    }
                    indent = Some(k);
                }
            }
            match src[p..].iter().position(|&b| b == b'\n') {
                Some(i) => p += i + 1,
                None => p = src.len(),
            }
            if p >= src.len() {
                self.pos = src.len();
                return Err(ParseError::new(src.len(), ErrorKind::UnterminatedBlock));
            }
        }
        self.pos = p;
        let indent = indent.unwrap_or(0);
        let mut body = Vec::with_capacity(body_end - body_start);
        for line in src[body_start..body_end].split_inclusive(|&b| b == b'\n') {
            body.extend_from_slice(&line[indent.min(line.len())..]);
        }
        String::from_utf8(body).map_err(|_| ParseError::new(body_start, ErrorKind::InvalidUtf8))
    }

    /// After an error: skips the rest of the stanza that began at `from`,
    /// honouring quotes, backslashes and comments, and (for event
    /// expressions) newlines inside parentheses.
    pub fn recover(&mut self, from: usize, parens: bool) {
        let src = self.src;
        let mut p = from;
        let mut quote: Option<u8> = None;
        let mut depth: usize = 0;
        while p < src.len() {
            let c = src[p];
            match quote {
                Some(q) => {
                    if c == b'\\' {
                        p += 1;
                    } else if c == q {
                        quote = None;
                    }
                }
                None => match c {
                    b'\\' => p += 1,
                    b'"' | b'\'' => quote = Some(c),
                    b'(' if parens => depth += 1,
                    b')' if parens => depth = depth.saturating_sub(1),
                    b'#' => {
                        while p < src.len() && src[p] != b'\n' {
                            p += 1;
                        }
                        continue;
                    }
                    b'\n' if depth == 0 => {
                        p += 1;
                        break;
                    }
                    _ => {}
                },
            }
            p += 1;
        }
        self.pos = p.min(src.len()).max(self.pos.min(src.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg(s: &str) -> String {
        Lexer::new(s.as_bytes()).next_arg().unwrap().text
    }

    fn cmd(s: &str) -> String {
        Lexer::new(s.as_bytes()).command().unwrap().text
    }

    #[test]
    fn arguments_are_dequoted() {
        assert_eq!(arg("GREETING=\"hello world\"\n"), "GREETING=hello world");
        assert_eq!(arg("a\"b c\"d"), "ab cd");
        assert_eq!(arg("'it\"s'"), "it\"s");
        assert_eq!(arg(r#""say \"hi\"""#), r#"say \"hi\""#);
        assert_eq!(arg(r"/srv/my\ app"), "/srv/my app");
        assert_eq!(arg(r"a\\b"), r"a\b");
        assert_eq!(arg(r"a\#b"), r"a\#b");
        assert_eq!(
            arg("\"first line\n      second line\""),
            "first line second line"
        );
        assert_eq!(arg("\" a \""), " a ");
        assert_eq!(arg("a\\\nb"), "a b");
    }

    #[test]
    fn commands_are_verbatim() {
        assert_eq!(
            cmd("/sbin/daemon -d \"foo\"   # c"),
            "/sbin/daemon -d \"foo\""
        );
        assert_eq!(cmd("/bin/echo \"a # b\" # real"), "/bin/echo \"a # b\"");
        assert_eq!(cmd(r"/bin/echo a\#b"), r"/bin/echo a\#b");
        assert_eq!(
            cmd("/usr/bin/daemon \\\n        --foreground\n"),
            "/usr/bin/daemon --foreground"
        );
        assert_eq!(cmd("foo\r\n"), "foo");
    }

    #[test]
    fn errors_at_end_of_input() {
        let e = Lexer::new(b"\"oops\n").next_arg().unwrap_err();
        assert_eq!(e, ParseError::new(6, ErrorKind::UnterminatedQuote));
        let e = Lexer::new(b"foo \\").command().unwrap_err();
        assert_eq!(e.kind, ErrorKind::TrailingSlash);
        let e = Lexer::new(b"\"\"").next_arg().unwrap_err();
        assert_eq!(e, ParseError::new(0, ErrorKind::ExpectedToken));
    }

    #[test]
    fn blocks_strip_shared_indentation() {
        let mut l = Lexer::new(b"    if true; then\n        echo yes\n    fi\nend script\nnext");
        assert_eq!(
            l.block(b"script").unwrap(),
            "if true; then\n    echo yes\nfi\n"
        );
        assert_eq!(
            &b"next"[..],
            &b"    if true; then\n        echo yes\n    fi\nend script\nnext"[l.pos..]
        );
        let mut l = Lexer::new(b"  echo a\n\n  echo b\nend script\n");
        assert_eq!(l.block(b"script").unwrap(), "  echo a\n\n  echo b\n");
        let mut l = Lexer::new(b"echo\nend script");
        assert_eq!(l.block(b"script").unwrap(), "echo\n");
        let mut l = Lexer::new(b"echo hi\nendscript\n");
        assert_eq!(
            l.block(b"script").unwrap_err().kind,
            ErrorKind::UnterminatedBlock
        );
    }
}
