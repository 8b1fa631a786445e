//! The client side: one request, one response, over the daemon's socket
//! (and, for `monitor`, the stream that follows the answer).

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use super::{Command, Request, Response, PROTOCOL_VERSION};

/// `SOCKET.priv`, the daemon's private socket, beside the public one.
fn priv_path(socket: &Path) -> std::path::PathBuf {
    let mut s = socket.as_os_str().to_owned();
    s.push(".priv");
    s.into()
}

/// Connects to the daemon: its private socket first (only root and the
/// daemon's user can; no flood of the public one reaches it), then the
/// public one. Before anything is sent, the peer is checked: a daemon of
/// root or of the calling user, or, for a root client, of the user who
/// owns the socket's directory when no one else can write it. So no other
/// user can pose as the daemon and be sent `start JOB KEY=VALUE`.
fn connect(socket: &Path) -> Result<UnixStream, String> {
    let stream = match UnixStream::connect(priv_path(socket)) {
        Ok(s) => s,
        Err(_) => UnixStream::connect(socket).map_err(|e| {
            format!(
                "unable to connect to the upkeep daemon at {}: {} (is `upkeep daemon` running? --socket or UPKEEP_SOCKET name another)",
                socket.display(),
                crate::process::io_text(&e)
            )
        })?,
    };
    let peer = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| {
            format!(
                "{}: unable to tell who serves it: {}",
                socket.display(),
                crate::process::errno_text(e as i32)
            )
        })?
        .uid();
    let me = crate::process::euid();
    if peer == 0 || peer == me {
        return Ok(stream);
    }
    let dir = socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir_ok = std::fs::metadata(dir).is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == peer && m.mode() & 0o022 == 0
    });
    if me == 0 && dir_ok {
        return Ok(stream);
    }
    Err(format!(
        "{}: served by uid {peer}, neither root nor you{}; not talking to it (--socket or UPKEEP_SOCKET choose another daemon)",
        socket.display(),
        if me == 0 {
            ", nor the owner of a directory only it can write"
        } else {
            ""
        }
    ))
}

fn connect_and_send(socket: &Path, command: Command) -> Result<UnixStream, String> {
    let mut stream = connect(socket)?;
    let req = Request {
        v: PROTOCOL_VERSION,
        command,
    };
    let mut line = serde_json::to_vec(&req).map_err(|e| e.to_string())?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .map_err(|e| format!("unable to send to the daemon: {e}"))?;
    Ok(stream)
}

fn decode(answer: &[u8]) -> Result<Response, String> {
    if answer.is_empty() {
        return Err("the daemon closed the connection without answering".into());
    }
    serde_json::from_slice(answer).map_err(|e| format!("unreadable answer from the daemon: {e}"))
}

/// Sends `command` and waits for the answer (which, for `start` and `stop`
/// without `--no-wait`, comes when the job got there).
pub fn call(socket: &Path, command: Command) -> Result<Response, String> {
    let stream = connect_and_send(socket, command)?;
    let mut reader = BufReader::new(stream);
    let mut answer = Vec::new();
    reader
        .read_until(b'\n', &mut answer)
        .map_err(|e| format!("unable to read the daemon's answer: {e}"))?;
    decode(&answer)
}

/// Like [`call`], for an answer that carries a descriptor (`log-open`).
pub fn call_with_fd(
    socket: &Path,
    command: Command,
) -> Result<(Response, Option<OwnedFd>), String> {
    let stream = connect_and_send(socket, command)?;
    let mut answer = Vec::new();
    let mut fd = None;
    let mut buf = [0u8; 4096];
    while !answer.contains(&b'\n') {
        let (n, fds) = crate::process::recv_with_fds(stream.as_fd(), &mut buf)
            .map_err(|e| format!("unable to read the daemon's answer: {e}"))?;
        if fd.is_none() {
            fd = fds.into_iter().next();
        }
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    Ok((decode(&answer)?, fd))
}

/// Sends a subscription (`monitor`) and reads its answer; on `ok`, the
/// stream the entries follow on, one JSON object a line.
pub fn subscribe(socket: &Path, command: Command) -> Result<BufReader<UnixStream>, String> {
    let stream = connect_and_send(socket, command)?;
    let mut reader = BufReader::new(stream);
    let mut answer = Vec::new();
    reader
        .read_until(b'\n', &mut answer)
        .map_err(|e| format!("unable to read the daemon's answer: {e}"))?;
    match decode(&answer)? {
        Response::Ok { .. } => Ok(reader),
        Response::Error { message } => Err(message),
        _ => Err("unexpected answer from the daemon".into()),
    }
}
