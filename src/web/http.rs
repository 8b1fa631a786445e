//! HTTP/1.1 for the gateway, bounded everywhere: one request a connection,
//! its head parsed by `httparse` (no hand-written parsing) once it is
//! whole, at most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] headers, read
//! within [`HEAD_TIME`] however slowly the bytes come; a body only with a
//! `Content-Length` of at most [`MAX_BODY`]. Every response carries the
//! security headers and `Connection: close`.
//!
//! Why not a server crate: tiny_http 0.12 (the plain choice) reads a header
//! line of any length into memory (its issue #56, open since 2015), grows
//! its thread pool without bound, and has no timeout for a slow client;
//! each is a promise this gateway makes. What is left once parsing is
//! httparse's is small: accept, a thread a connection under a cap, and
//! writing a status line and headers.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

/// The request head's cap (line and headers).
pub const MAX_HEAD: usize = 16 * 1024;
/// At most this many headers.
pub const MAX_HEADERS: usize = 64;
/// A request body's cap (POSTs carry at most a few `KEY=VALUE`s).
pub const MAX_BODY: usize = 64 * 1024;
/// The whole head must come within this (a slow client is cut off).
pub const HEAD_TIME: Duration = Duration::from_secs(10);

/// The headers every response carries.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "Content-Security-Policy",
        "default-src 'self'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
];

/// A request, as much of it as the gateway looks at.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// The path, percent-decoded segment by segment by the router.
    pub path: String,
    /// The query string, undecoded (after `?`).
    pub query: String,
    pub host: Option<String>,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

impl Request {
    /// The query's values for `key`, percent-decoded.
    pub fn query_values(&self, key: &str) -> Vec<String> {
        self.query
            .split('&')
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (decode(k)? == key).then(|| decode(v)).flatten()
            })
            .collect()
    }

    pub fn query_value(&self, key: &str) -> Option<String> {
        self.query_values(key).into_iter().next()
    }
}

/// Why a request could not be read: the status to answer with, if any
/// (a connection that went away or ran out of time gets none).
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    Answer(u16, &'static str),
    Gone,
}

/// Reads one request from `conn`, whose read timeout this sets as the
/// deadlines go.
pub fn read_request<S: Read + TimeoutSet>(conn: &mut S) -> Result<Request, ReadError> {
    let deadline = Instant::now() + HEAD_TIME;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadError::Gone);
        }
        conn.set_timeout(Some(left)).map_err(|_| ReadError::Gone)?;
        let room = (MAX_HEAD + 1 - buf.len()).min(chunk.len());
        let n = match conn.read(&mut chunk[..room]) {
            Ok(0) => return Err(ReadError::Gone),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(ReadError::Gone),
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let head = head_of(&req)?;
                let rest = buf[len..].to_vec();
                return read_body(conn, head, rest, deadline);
            }
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err(ReadError::Answer(431, "request head too large"))
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => {
                return Err(ReadError::Answer(431, "too many headers"))
            }
            Err(_) => return Err(ReadError::Answer(400, "malformed request")),
        }
    }
}

/// What `read_request` needs of a connection besides reading.
pub trait TimeoutSet {
    fn set_timeout(&mut self, t: Option<Duration>) -> io::Result<()>;
}

impl TimeoutSet for std::net::TcpStream {
    fn set_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(t)
    }
}

impl TimeoutSet for std::os::unix::net::UnixStream {
    fn set_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(t)
    }
}

struct Head {
    req: Request,
    length: usize,
}

fn head_of(req: &httparse::Request) -> Result<Head, ReadError> {
    let method = req.method.unwrap_or_default().to_string();
    let target = req.path.unwrap_or_default();
    if !target.starts_with('/') {
        return Err(ReadError::Answer(400, "the request target must be a path"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut out = Request {
        method,
        path: path.to_string(),
        query: query.to_string(),
        ..Request::default()
    };
    let mut length = 0usize;
    for h in req.headers.iter() {
        let value = || String::from_utf8_lossy(h.value).trim().to_string();
        if h.name.eq_ignore_ascii_case("host") {
            if out.host.is_some() {
                return Err(ReadError::Answer(400, "more than one Host header"));
            }
            out.host = Some(value());
        } else if h.name.eq_ignore_ascii_case("authorization") {
            out.authorization = Some(value());
        } else if h.name.eq_ignore_ascii_case("content-length") {
            length = value()
                .parse()
                .map_err(|_| ReadError::Answer(400, "bad Content-Length"))?;
            if length > MAX_BODY {
                return Err(ReadError::Answer(413, "request body too large"));
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(ReadError::Answer(411, "a body needs a Content-Length"));
        }
    }
    Ok(Head { req: out, length })
}

fn read_body<S: Read + TimeoutSet>(
    conn: &mut S,
    head: Head,
    mut body: Vec<u8>,
    deadline: Instant,
) -> Result<Request, ReadError> {
    let mut req = head.req;
    if body.len() > head.length {
        body.truncate(head.length);
    }
    let mut chunk = [0u8; 4096];
    while body.len() < head.length {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadError::Gone);
        }
        conn.set_timeout(Some(left)).map_err(|_| ReadError::Gone)?;
        let want = (head.length - body.len()).min(chunk.len());
        match conn.read(&mut chunk[..want]) {
            Ok(0) => return Err(ReadError::Gone),
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(ReadError::Gone),
        }
    }
    req.body = body;
    Ok(req)
}

/// Percent-decoding (`+` stays itself: it is a path and a query of this
/// gateway's own links, not a form). `None` for a bad escape or bytes that
/// are not UTF-8.
pub fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A response to write.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn json(status: u16, v: &serde_json::Value) -> Response {
        let mut body = serde_json::to_vec_pretty(v).unwrap_or_default();
        body.push(b'\n');
        Response::new(status, "application/json", body)
    }

    /// An error as JSON: `{"error": "..."}`.
    pub fn error(status: u16, message: &str) -> Response {
        Response::json(status, &serde_json::json!({ "error": message }))
    }

    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// The head: status line, content type and length (none for a stream),
    /// the security headers, then this response's own.
    pub fn head(&self, length: Option<usize>) -> Vec<u8> {
        let mut h = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type
        );
        if let Some(n) = length {
            h.push_str(&format!("Content-Length: {n}\r\n"));
        }
        for (k, v) in SECURITY_HEADERS {
            h.push_str(&format!("{k}: {v}\r\n"));
        }
        for (k, v) in &self.headers {
            h.push_str(&format!("{k}: {v}\r\n"));
        }
        h.push_str("\r\n");
        h.into_bytes()
    }

    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        let mut all = self.head(Some(self.body.len()));
        all.extend_from_slice(&self.body);
        w.write_all(&all)?;
        w.flush()
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection made of chunks, read one a call.
    struct Chunks(Vec<Vec<u8>>);

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let c = &mut self.0[0];
            let n = c.len().min(buf.len());
            buf[..n].copy_from_slice(&c[..n]);
            c.drain(..n);
            if c.is_empty() {
                self.0.remove(0);
            }
            Ok(n)
        }
    }

    impl TimeoutSet for Chunks {
        fn set_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
            Ok(())
        }
    }

    fn read(chunks: &[&[u8]]) -> Result<Request, ReadError> {
        read_request(&mut Chunks(chunks.iter().map(|c| c.to_vec()).collect()))
    }

    #[test]
    fn a_request_in_pieces_is_read_whole() {
        let r = read(&[
            b"POST /api/v1/jobs/web/st",
            b"op?x=1 HTTP/1.1\r\nHost: localhost:7654\r\nAuthorization: Bearer abc\r\n",
            b"Content-Length: 5\r\n\r\nA=",
            b"1&2",
        ])
        .unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/api/v1/jobs/web/stop");
        assert_eq!(r.query, "x=1");
        assert_eq!(r.host.as_deref(), Some("localhost:7654"));
        assert_eq!(r.authorization.as_deref(), Some("Bearer abc"));
        assert_eq!(r.body, b"A=1&2");
    }

    #[test]
    fn oversize_heads_bodies_and_bad_requests_are_refused() {
        let long = vec![b'a'; MAX_HEAD + 10];
        let mut head = b"GET /".to_vec();
        head.extend_from_slice(&long);
        assert_eq!(
            read(&[&head]).unwrap_err(),
            ReadError::Answer(431, "request head too large")
        );
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..MAX_HEADERS + 1 {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(
            read(&[&many]).unwrap_err(),
            ReadError::Answer(431, "too many headers")
        );
        let big = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert_eq!(
            read(&[big.as_bytes()]).unwrap_err(),
            ReadError::Answer(413, "request body too large")
        );
        assert_eq!(
            read(&[b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"]).unwrap_err(),
            ReadError::Answer(400, "more than one Host header")
        );
        assert_eq!(
            read(&[b"GET http://evil/ HTTP/1.1\r\n\r\n"]).unwrap_err(),
            ReadError::Answer(400, "the request target must be a path")
        );
        assert_eq!(
            read(&[b"GET / HTTP/1.1\r\nHo"]).unwrap_err(),
            ReadError::Gone
        );
    }

    #[test]
    fn query_values_are_decoded() {
        let r = Request {
            query: "job=a%20b&job=c&lines=5&bad=%zz".into(),
            ..Request::default()
        };
        assert_eq!(r.query_values("job"), ["a b", "c"]);
        assert_eq!(r.query_value("lines").as_deref(), Some("5"));
        assert_eq!(r.query_value("bad"), None);
        assert_eq!(decode("%3Cimg%3E").as_deref(), Some("<img>"));
    }

    #[test]
    fn every_response_carries_the_security_headers() {
        let head = String::from_utf8(Response::new(404, "text/plain", "x").head(Some(1))).unwrap();
        assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(head
            .contains("Content-Security-Policy: default-src 'self'; frame-ancestors 'none'\r\n"));
        assert!(head.contains("X-Content-Type-Options: nosniff\r\n"));
        assert!(!head.contains("Access-Control"));
    }
}
