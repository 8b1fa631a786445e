//! The command line: one binary, many names.
//!
//! `upkeep COMMAND …` and `initctl COMMAND …` take the same commands; under
//! the names `start`, `stop`, `restart`, `reload` and `status` the binary
//! is that command (`argv[0]` decides, as with Upstart's links to
//! `initctl`).
//!
//! Exit codes: 0 success, 1 the operation failed (or found problems),
//! 2 usage error or a command that is not built yet.

mod check_config;
mod daemon_cmd;
mod job_cmds;
mod json;
mod logs_cmd;
mod select;
mod show_config;

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::Path;

pub use crate::VERSION;

/// Exit code for a bad command line.
pub const EXIT_USAGE: i32 = 2;

/// One command: its name, whether it is built, and one line of help.
struct CommandInfo {
    name: &'static str,
    built: bool,
    usage: &'static str,
    summary: &'static str,
}

const COMMANDS: &[CommandInfo] = &[
    CommandInfo {
        name: "daemon",
        built: true,
        usage: "daemon [--conf-dir DIR]... [--log-dir DIR] [--socket PATH] [--runlevel N] [--init] [--exit-with JOB] [--log-*] [-v]",
        summary: "run the supervisor in the foreground",
    },
    CommandInfo {
        name: "start",
        built: true,
        usage: "start JOB [KEY=VALUE]... [--no-wait]",
        summary: "start a job and wait until it runs",
    },
    CommandInfo {
        name: "stop",
        built: true,
        usage: "stop JOB [KEY=VALUE]... [--no-wait]",
        summary: "stop a job and wait until it stopped",
    },
    CommandInfo {
        name: "restart",
        built: true,
        usage: "restart JOB [KEY=VALUE]...",
        summary: "restart a job with its job file as it is now",
    },
    CommandInfo {
        name: "reload",
        built: true,
        usage: "reload JOB [KEY=VALUE]...",
        summary: "send a job its reload signal (SIGHUP)",
    },
    CommandInfo {
        name: "status",
        built: true,
        usage: "status JOB [KEY=VALUE]... [--json]",
        summary: "show a job's goal, state and processes",
    },
    CommandInfo {
        name: "list",
        built: true,
        usage: "list [--json]",
        summary: "show every job",
    },
    CommandInfo {
        name: "emit",
        built: true,
        usage: "emit EVENT [KEY=VALUE]... [--no-wait]",
        summary: "emit an event",
    },
    CommandInfo {
        name: "reload-configuration",
        built: true,
        usage: "reload-configuration",
        summary: "rescan the conf dirs",
    },
    CommandInfo {
        name: "re-exec",
        built: true,
        usage: "re-exec [--socket PATH]",
        summary: "replace the daemon's image with its binary as it is now, keeping every job running (telinit u)",
    },
    CommandInfo {
        name: "reopen-logs",
        built: true,
        usage: "reopen-logs",
        summary: "open every log file again (after an external logrotate; as SIGUSR1)",
    },
    CommandInfo {
        name: "logs",
        built: true,
        usage: "logs JOB [-n N] [-f]",
        summary: "show a job's log",
    },
    CommandInfo {
        name: "check-config",
        built: true,
        usage: "check-config [--conf-dir DIR]... [-i EVENT,...] [PATH|JOB]...",
        summary: "check job files offline: syntax, and events no job emits",
    },
    CommandInfo {
        name: "show-config",
        built: true,
        usage: "show-config [--conf-dir DIR]... [--json] [PATH|JOB]...",
        summary: "print jobs in full, normalised job-file syntax",
    },
    CommandInfo {
        name: "version",
        built: true,
        usage: "version",
        summary: "print the version",
    },
];

/// Names under which the binary is one command.
const LINK_NAMES: &[&str] = &["start", "stop", "restart", "reload", "status"];

/// Writes to stdout; a closed pipe (`upkeep list | head -1`) ends the
/// program quietly with success, as ripgrep does.
pub(crate) fn out(s: &str) {
    let mut stdout = io::stdout().lock();
    if let Err(e) = stdout.write_all(s.as_bytes()).and_then(|_| stdout.flush()) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("upkeep: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// The program name as invoked, for messages (`initctl: …`).
pub(crate) struct Prog(pub String);

impl Prog {
    pub fn error(&self, msg: impl std::fmt::Display) {
        eprintln!("{}: {msg}", self.0);
    }

    pub fn usage_error(&self, msg: impl std::fmt::Display) -> i32 {
        eprintln!("{}: {msg}", self.0);
        eprintln!("Try '{} --help' for more information.", self.0);
        EXIT_USAGE
    }
}

pub fn main() -> i32 {
    let mut argv = std::env::args_os();
    let argv0 = argv.next().unwrap_or_default();
    let invoked = Path::new(&argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("upkeep")
        .to_string();
    let args: Vec<OsString> = argv.collect();
    if LINK_NAMES.contains(&invoked.as_str()) {
        return run(&Prog(invoked.clone()), &invoked, &invoked, args);
    }
    if invoked == "telinit" {
        return telinit(&Prog(invoked.clone()), args);
    }
    let prog = Prog(invoked.clone());
    let mut rest = args.into_iter();
    let Some(first) = rest.next() else {
        eprint!("{}", help(&invoked));
        return EXIT_USAGE;
    };
    match first.to_str() {
        Some("-h") | Some("--help") | Some("help") => {
            out(&help(&invoked));
            0
        }
        Some("-V") | Some("--version") => run(&prog, &invoked, "version", Vec::new()),
        // The daemon's compression helper (not a user command).
        Some("__gzip") => match rest.next() {
            Some(name) => match crate::log::gzip::helper_main(&name.to_string_lossy()) {
                Ok(()) => 0,
                Err(e) => {
                    prog.error(format!(
                        "{}: unable to compress: {}",
                        name.to_string_lossy(),
                        crate::process::io_text(&e)
                    ));
                    1
                }
            },
            None => EXIT_USAGE,
        },
        Some(cmd) => run(&prog, &invoked, cmd, rest.collect()),
        None => prog.usage_error(format!("unknown command: {}", first.to_string_lossy())),
    }
}

fn run(prog: &Prog, invoked: &str, command: &str, args: Vec<OsString>) -> i32 {
    let Some(info) = COMMANDS.iter().find(|c| c.name == command) else {
        return prog.usage_error(format!("unknown command: {command}"));
    };
    if args.iter().any(|a| a == "--help" || a == "-h") {
        out(&format!(
            "Usage: {} {}\n{}\n",
            invoked, info.usage, info.summary
        ));
        return 0;
    }
    match command {
        "check-config" => check_config::run(prog, args),
        "daemon" => daemon_cmd::run(prog, args),
        "start"
        | "stop"
        | "restart"
        | "reload"
        | "status"
        | "list"
        | "emit"
        | "reload-configuration"
        | "reopen-logs"
        | "re-exec" => job_cmds::run(prog, command, args),
        "logs" => logs_cmd::run(prog, args),
        "show-config" => show_config::run(prog, args),
        "version" => {
            if invoked == "initctl" {
                out(&format!("init (upkeep {VERSION})\n"));
            } else {
                out(&format!("upkeep {VERSION}\n"));
            }
            0
        }
        _ => {
            debug_assert!(!info.built);
            prog.error(format!("'{command}' is not built yet in upkeep {VERSION}"));
            EXIT_USAGE
        }
    }
}

/// `telinit u` (or `U`): the daemon re-executes itself, as Upstart's did.
/// A runlevel change is not built: upkeep is not the machine's init.
fn telinit(prog: &Prog, args: Vec<OsString>) -> i32 {
    let mut it = args.into_iter();
    match it.next().as_ref().and_then(|a| a.to_str()) {
        Some("u" | "U") => run(prog, "telinit", "re-exec", it.collect()),
        Some("-h" | "--help") => {
            out("Usage: telinit u\nre-execute the daemon with its binary as it is now\n");
            0
        }
        Some(other) => {
            prog.error(format!(
                "'telinit {other}' is not built yet in upkeep {VERSION}: only 'telinit u' is"
            ));
            EXIT_USAGE
        }
        None => prog.usage_error("missing argument (only 'u' is built)"),
    }
}

fn help(invoked: &str) -> String {
    let mut s = format!(
        "upkeep {VERSION}: Upstart's job files and commands, as a single-binary supervisor.\n\n\
         Usage: {invoked} COMMAND [ARGS]...\n\nCommands:\n"
    );
    for c in COMMANDS {
        let note = if c.built { "" } else { " (not built yet)" };
        s.push_str(&format!("  {:<22} {}{}\n", c.name, c.summary, note));
    }
    s.push_str(&format!(
        "\nRun '{invoked} COMMAND --help' for a command's arguments.\n\
         Under the names start, stop, restart, reload and status the binary is that command;\n\
         under the name initctl it takes the same commands as upkeep; as telinit, 'telinit u' re-execs the daemon.\n"
    ));
    s
}
