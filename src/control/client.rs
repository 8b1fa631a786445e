//! The client side: one request, one response, over the daemon's socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use super::{Command, Request, Response, PROTOCOL_VERSION};

/// Sends `command` and waits for the answer (which, for `start` and `stop`
/// without `--no-wait`, comes when the job got there).
pub fn call(socket: &Path, command: Command) -> Result<Response, String> {
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        format!(
            "unable to connect to the upkeep daemon at {}: {} (is `upkeep daemon` running? --socket or UPKEEP_SOCKET name another)",
            socket.display(),
            crate::confdir::io_message(&e)
        )
    })?;
    let req = Request {
        v: PROTOCOL_VERSION,
        command,
    };
    let mut line = serde_json::to_vec(&req).map_err(|e| e.to_string())?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .map_err(|e| format!("unable to send to the daemon: {e}"))?;
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    reader
        .read_line(&mut answer)
        .map_err(|e| format!("unable to read the daemon's answer: {e}"))?;
    if answer.is_empty() {
        return Err("the daemon closed the connection without answering".into());
    }
    serde_json::from_str(&answer).map_err(|e| format!("unreadable answer from the daemon: {e}"))
}
