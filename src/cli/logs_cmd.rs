//! `upkeep logs JOB [KEY=VALUE]... [-n N] [-f]`: the last lines of a job's
//! log, and with `-f` what follows, across rotations. The daemon says
//! where the file is; the client reads it.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{out, Prog};
use crate::control::{client, valid_assignment, Command, Response};
use crate::paths;

pub(crate) fn run(prog: &Prog, args: Vec<OsString>) -> i32 {
    let mut job = None;
    let mut env = Vec::new();
    let mut lines = 10usize;
    let mut follow = false;
    let mut socket = paths::default_socket();
    let mut parser = lexopt::Parser::from_args(args);
    loop {
        use lexopt::prelude::*;
        match parser.next() {
            Ok(None) => break,
            Ok(Some(Short('f') | Long("follow"))) => follow = true,
            Ok(Some(Short('n') | Long("lines"))) => {
                match parser.value().map(|v| v.to_string_lossy().parse::<usize>()) {
                    Ok(Ok(n)) => lines = n,
                    _ => return prog.usage_error("-n takes a number of lines"),
                }
            }
            Ok(Some(Long("socket"))) => match parser.value() {
                Ok(v) => socket = v.into(),
                Err(e) => return prog.usage_error(e),
            },
            Ok(Some(Value(v))) => {
                let v = v.to_string_lossy().into_owned();
                if job.is_none() {
                    job = Some(v);
                } else if valid_assignment(&v) {
                    env.push(v);
                } else {
                    prog.error("Env must be KEY=VALUE pairs");
                    return 1;
                }
            }
            Ok(Some(other)) => return prog.usage_error(other.unexpected()),
            Err(e) => return prog.usage_error(e),
        }
    }
    let Some(job) = job else {
        return prog.usage_error("missing job name");
    };
    let path = match client::call(
        &socket,
        Command::LogPath {
            job: job.clone(),
            env,
        },
    ) {
        Ok(Response::Path { path }) => PathBuf::from(path),
        Ok(Response::Error { message }) => {
            prog.error(message);
            return 1;
        }
        Ok(_) => {
            prog.error("unexpected answer from the daemon");
            return 1;
        }
        Err(e) => {
            prog.error(e);
            return 1;
        }
    };
    let mut file = match File::open(&path) {
        Ok(f) => Some(f),
        Err(_) if follow => None,
        Err(e) => {
            prog.error(format!(
                "{}: {} (the job has written nothing yet?)",
                path.display(),
                crate::confdir::io_message(&e)
            ));
            return 1;
        }
    };
    if let Some(f) = &mut file {
        if let Err(e) = print_tail(f, lines) {
            prog.error(format!("{}: {e}", path.display()));
            return 1;
        }
    }
    if !follow {
        return 0;
    }
    follow_file(&path, file)
}

/// Prints the last `n` lines, reading backwards from the end.
fn print_tail(f: &mut File, n: usize) -> std::io::Result<()> {
    let len = f.seek(SeekFrom::End(0))?;
    let mut start = len;
    let mut newlines = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    // A final newline ends the last line; it does not start one.
    let mut skip_last = true;
    'outer: while start > 0 && n > 0 {
        let take = chunk.len().min(start as usize);
        start -= take as u64;
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut chunk[..take])?;
        for i in (0..take).rev() {
            if chunk[i] == b'\n' {
                if skip_last && start + i as u64 == len - 1 {
                    skip_last = false;
                    continue;
                }
                newlines += 1;
                if newlines == n {
                    start += i as u64 + 1;
                    break 'outer;
                }
            }
        }
    }
    if n == 0 {
        start = len;
    }
    f.seek(SeekFrom::Start(start))?;
    copy_out(f)?;
    Ok(())
}

fn copy_out(f: &mut File) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
        out(&String::from_utf8_lossy(&buf[..n]));
    }
}

/// Follows the file like `tail -F`: when it is rotated away or recreated,
/// the rest of the old one is printed, then the new one from its start.
fn follow_file(path: &Path, mut file: Option<File>) -> i32 {
    loop {
        if let Some(f) = &mut file {
            let _ = copy_out(f);
        }
        std::thread::sleep(Duration::from_millis(200));
        let replaced = match (&file, std::fs::metadata(path)) {
            (Some(f), Ok(now)) => f
                .metadata()
                .map(|m| (m.dev(), m.ino()) != (now.dev(), now.ino()))
                .unwrap_or(true),
            (None, Ok(_)) => true,
            (_, Err(_)) => false,
        };
        if replaced {
            if let Some(f) = &mut file {
                let _ = copy_out(f);
            }
            file = File::open(path).ok();
        } else if let Some(f) = &mut file {
            // Truncated in place: start again from the top.
            let pos = f.stream_position().unwrap_or(0);
            if f.metadata().map(|m| m.len() < pos).unwrap_or(false) {
                let _ = f.seek(SeekFrom::Start(0));
            }
        }
    }
}
