//! `upkeep logs JOB [KEY=VALUE]... [-n N] [-f]`: the last lines of a job's
//! log, and with `-f` what follows, across rotations. The daemon opens the
//! file and passes the descriptor over the socket (for root, the daemon's
//! user and the job's own user); the client never opens a log by its path,
//! where a planted link could send it elsewhere. On a terminal, control
//! characters are shown escaped.

use std::fs::File;
use std::io::{IsTerminal, Read, Seek, SeekFrom};
use std::time::Duration;

use super::{out, Call};
use crate::control::{client, valid_assignment, Command, Response};

pub(super) fn run(call: &Call) -> i32 {
    let (prog, args) = (call.prog, &call.args);
    let follow = args.flag("follow");
    let lines = match args
        .value("lines")
        .map(|v| v.to_string_lossy().parse::<usize>())
    {
        None => 10,
        Some(Ok(n)) => n,
        Some(Err(_)) => return prog.usage_error("-n takes a number of lines"),
    };
    let socket = args.socket();
    let mut positional = args
        .positional
        .iter()
        .map(|v| v.to_string_lossy().into_owned());
    let job = positional.next();
    let mut env = Vec::new();
    for v in positional {
        if !valid_assignment(&v) {
            prog.error("Env must be KEY=VALUE pairs");
            return 1;
        }
        env.push(v);
    }
    let Some(job) = job else {
        return prog.usage_error("missing job name");
    };
    let ask = || {
        client::call_with_fd(
            &socket,
            Command::LogOpen {
                job: job.clone(),
                instance: None,
                env: env.clone(),
            },
        )
    };
    let terminal = std::io::stdout().is_terminal();
    let mut file = match ask() {
        Ok((Response::Log { .. }, Some(fd))) => Some(File::from(fd)),
        Ok((Response::Error { message }, _))
            if follow && message.ends_with("written nothing yet") =>
        {
            None
        }
        Ok((Response::Error { message }, _)) => {
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
    if let Some(f) = &mut file {
        if let Err(e) = print_tail(f, lines, terminal) {
            prog.error(format!("{job}: {e}"));
            return 1;
        }
    }
    if !follow {
        return 0;
    }
    follow_file(ask, file, terminal)
}

/// Prints the last `n` lines.
fn print_tail(f: &mut File, n: usize, terminal: bool) -> std::io::Result<()> {
    let start = crate::log::read::tail_start(f, n)?;
    f.seek(SeekFrom::Start(start))?;
    copy_out(f, terminal)?;
    Ok(())
}

fn copy_out(f: &mut File, terminal: bool) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
        let text = String::from_utf8_lossy(&buf[..n]);
        if terminal {
            out(&escape_controls(&text));
        } else {
            out(&text);
        }
    }
}

/// What a job wrote, made harmless for a terminal (as `journalctl` does): a
/// job running as another user must not drive the reader's terminal with
/// escape sequences. Control characters other than tab and newline are
/// shown as `\xNN` (`\u{NN}` for the C1 controls).
pub(crate) fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if (0x80..0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// Follows the log like `tail -F`: every 200 ms it asks the daemon for the
/// log again; when that is another file (rotated, recreated), the rest of
/// the old one is printed, then the new one from its start.
fn follow_file<F>(ask: F, mut file: Option<File>, terminal: bool) -> i32
where
    F: Fn() -> Result<(Response, Option<std::os::fd::OwnedFd>), String>,
{
    loop {
        if let Some(f) = &mut file {
            let _ = copy_out(f, terminal);
        }
        std::thread::sleep(Duration::from_millis(200));
        let now = match ask() {
            Ok((Response::Log { .. }, Some(fd))) => Some(File::from(fd)),
            _ => None,
        };
        let Some(now) = now else { continue };
        if let crate::log::read::Next::Switch = crate::log::read::next(file.as_mut(), &now) {
            if let Some(f) = &mut file {
                let _ = copy_out(f, terminal);
            }
            file = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn control_characters_are_shown_not_sent() {
        assert_eq!(
            escape_controls("a\x1b]0;owned\x07b\tc\n"),
            "a\\x1b]0;owned\\x07b\tc\n"
        );
        assert_eq!(escape_controls("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(escape_controls("plain ünïcode\n"), "plain ünïcode\n");
    }
}
