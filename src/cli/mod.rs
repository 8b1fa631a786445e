//! The command line: one binary, many names.
//!
//! `upkeep COMMAND …` and `initctl COMMAND …` take the same commands; under
//! the names `start`, `stop`, `restart`, `reload` and `status` the binary
//! is that command (`argv[0]` decides, as with Upstart's links to
//! `initctl`).
//!
//! Exit codes: 0 success, 1 the operation failed (or found problems),
//! 2 usage error or a command that is not built yet.

pub mod args;
mod check_config;
mod daemon_cmd;
mod env_cmd;
mod job_cmds;
mod json;
mod logs_cmd;
mod monitor_cmd;
mod select;
mod show_config;
mod top_cmd;
mod web_cmd;

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::Path;

pub use crate::VERSION;
use args::{Args, Opt, SOCKET};

/// Exit code for a bad command line.
pub const EXIT_USAGE: i32 = 2;

/// What every command's exit status means, as `--help` and the man pages
/// say it.
pub const EXIT_STATUS: &str = "  0  success
  1  the operation failed: a job failed to start or stop, an event failed,
     check-config found problems, the daemon is not running or refused
  2  a usage error, or a command that is not built yet
";

/// The environment variable clients read, as help says it.
pub const SOCKET_ENV: &str =
    "UPKEEP_SOCKET  the daemon's socket, when --socket is not given (set for every job)";

/// One command: its name, its arguments, one line of help, its options,
/// and what runs it. The table drives dispatch, `--help`, and the options
/// each command accepts ([`args`]); it is public so that man pages and
/// shell completions are made from it too.
pub struct CommandInfo {
    pub name: &'static str,
    /// The arguments that are not options (`JOB [KEY=VALUE]...`).
    pub args: &'static str,
    pub summary: &'static str,
    pub options: &'static [Opt],
    run: fn(&Call) -> i32,
}

impl CommandInfo {
    /// `start JOB [KEY=VALUE]... [OPTIONS]`.
    pub fn usage(&self) -> String {
        let mut u = self.name.to_string();
        for part in [
            self.args,
            if self.options.is_empty() {
                ""
            } else {
                "[OPTIONS]"
            },
        ] {
            if !part.is_empty() {
                u.push(' ');
                u.push_str(part);
            }
        }
        u
    }

    /// Whether the command talks to the daemon: it takes the clients'
    /// `--socket` (the daemon's own says where to listen).
    pub fn talks_to_daemon(&self) -> bool {
        self.options.contains(&SOCKET)
    }

    /// The command's `--help`, for the program as invoked: `upkeep start`,
    /// `initctl start`, or `start` itself under its Upstart link name.
    pub fn help(&self, invoked: &str) -> String {
        let usage = if invoked == self.name {
            self.usage()
        } else {
            format!("{invoked} {}", self.usage())
        };
        let mut s = format!("Usage: {usage}\n{}\n", self.summary);
        if !self.options.is_empty() {
            s.push_str("\nOptions:\n");
            let width = self.options.iter().map(|o| o.shown().len()).max();
            let width = width.unwrap_or(0) + 2;
            for o in self.options {
                s.push_str(&format!("  {:<width$}{}\n", o.shown(), o.help));
            }
        }
        if self.talks_to_daemon() {
            s.push_str(&format!("\nEnvironment:\n  {SOCKET_ENV}\n"));
        }
        s.push_str(&format!("\nExit status:\n{EXIT_STATUS}"));
        s
    }
}

/// One run of a command: the program as invoked, the command, its
/// arguments parsed against its options.
pub(crate) struct Call<'a> {
    pub prog: &'a Prog,
    pub invoked: &'a str,
    pub name: &'static str,
    pub args: Args,
}

const fn flag(long: &'static str, short: Option<char>, help: &'static str) -> Opt {
    Opt {
        long,
        short,
        value: None,
        help,
    }
}

const fn valued(
    long: &'static str,
    short: Option<char>,
    value: &'static str,
    help: &'static str,
) -> Opt {
    Opt {
        long,
        short,
        value: Some(value),
        help,
    }
}

const NO_WAIT: Opt = flag(
    "no-wait",
    Some('n'),
    "answer at once instead of waiting until the job gets there",
);
const JSON: Opt = flag("json", None, "print the daemon's answer as JSON");
const QUIET: Opt = flag("quiet", Some('q'), "print nothing but errors");
const GLOBAL: Opt = flag(
    "global",
    Some('g'),
    "act on the global table, also inside a job",
);
const CONF_DIR: Opt = valued(
    "conf-dir",
    None,
    "DIR",
    "read job files from DIR (repeatable; default /etc/init for root, else ~/.config/upkeep/init)",
);

const JOB_ARGS: &str = "JOB [KEY=VALUE]...";
const NONE: &str = "";

/// Every command, in the order `--help` lists them.
pub const COMMANDS: &[CommandInfo] = &[
    CommandInfo {
        name: "daemon",
        args: NONE,
        summary: "run the supervisor in the foreground",
        options: daemon_cmd::OPTIONS,
        run: daemon_cmd::run,
    },
    CommandInfo {
        name: "start",
        args: JOB_ARGS,
        summary: "start a job and wait until it runs",
        options: &[NO_WAIT, JSON, QUIET, SOCKET],
        run: job_cmds::run,
    },
    CommandInfo {
        name: "stop",
        args: JOB_ARGS,
        summary: "stop a job and wait until it stopped",
        options: &[NO_WAIT, JSON, QUIET, SOCKET],
        run: job_cmds::run,
    },
    CommandInfo {
        name: "restart",
        args: JOB_ARGS,
        summary: "restart a job with its job file as it is now",
        options: &[NO_WAIT, JSON, QUIET, SOCKET],
        run: job_cmds::run,
    },
    CommandInfo {
        name: "reload",
        args: JOB_ARGS,
        summary: "send a job its reload signal (SIGHUP)",
        options: &[QUIET, SOCKET],
        run: job_cmds::run,
    },
    CommandInfo {
        name: "status",
        args: JOB_ARGS,
        summary: "show a job's goal, state and processes",
        options: &[JSON, QUIET, SOCKET],
        run: job_cmds::run,
    },
    CommandInfo {
        name: "list",
        args: NONE,
        summary: "show every job",
        options: &[
            JSON,
            flag(
                "costs",
                None,
                "with --json: what each instance costs now (processes, CPU, memory, descriptors, log bytes), read from /proc",
            ),
            QUIET,
            SOCKET,
        ],
        run: job_cmds::run,
    },
    CommandInfo {
        name: "monitor",
        args: "[JOB]...",
        summary: "show what happens as it happens (events, state changes, exits, respawns, failures, reloads), of the named jobs or of all",
        options: &[
            flag("json", None, "print one JSON object a line, as docs/json.md describes"),
            SOCKET,
        ],
        run: monitor_cmd::run,
    },
    CommandInfo {
        name: "top",
        args: NONE,
        summary: "what each running job costs (CPU, memory, descriptors, log), heaviest first; on a terminal, drawn again until Ctrl-C",
        options: &[
            valued("sort", Some('s'), "cpu|memory", "order by CPU (the default) or memory (PSS, else RSS)"),
            valued("interval", Some('d'), "SECS", "on a terminal, draw again every SECS seconds (default 2)"),
            flag("json", None, "print one JSON object a job, once"),
            SOCKET,
        ],
        run: top_cmd::run,
    },
    CommandInfo {
        name: "web",
        args: NONE,
        summary: "serve a live dashboard, a JSON API and Prometheus metrics over HTTP (docs/http.md), as a client of the daemon",
        options: &[
            valued("listen", None, "ADDR:PORT|unix:PATH", "where to listen (default 127.0.0.1:7654; a numeric address, localhost, or a Unix socket made 0600)"),
            valued("token-file", None, "FILE", "the bearer token for logs and actions: a file of the gateway's user, mode 0600, at least 32 random bytes (default: none, and the gateway is read-only)"),
            flag("read-only", None, "serve no actions, even with a token"),
            valued("allow-host", None, "NAME", "also answer requests whose Host is NAME (a proxy's name; repeatable; default: only the listen address and localhost)"),
            SOCKET,
        ],
        run: web_cmd::run,
    },
    CommandInfo {
        name: "emit",
        args: "EVENT [KEY=VALUE]...",
        summary: "emit an event and wait until every job it started or stopped got there",
        options: &[NO_WAIT, QUIET, SOCKET],
        run: job_cmds::run,
    },
    CommandInfo {
        name: "reload-configuration",
        args: NONE,
        summary: "rescan the conf dirs",
        options: &[QUIET, SOCKET],
        run: job_cmds::run,
    },
    CommandInfo {
        name: "re-exec",
        args: NONE,
        summary: "replace the daemon's image with its binary as it is now, keeping every job running (telinit u)",
        options: &[QUIET, SOCKET],
        run: job_cmds::run,
    },
    CommandInfo {
        name: "reopen-logs",
        args: NONE,
        summary: "open every log file again (after an external logrotate; as SIGUSR1)",
        options: &[QUIET, SOCKET],
        run: job_cmds::run,
    },
    CommandInfo {
        name: "list-env",
        args: NONE,
        summary: "list the job environment table, sorted: the global one (outside a job, or with --global), or, inside a job, its instance's own",
        options: &[GLOBAL, SOCKET],
        run: env_cmd::run,
    },
    CommandInfo {
        name: "get-env",
        args: "NAME",
        summary: "print a variable's value from the job environment table (the global one, or inside a job its instance's own)",
        options: &[GLOBAL, SOCKET],
        run: env_cmd::run,
    },
    CommandInfo {
        name: "set-env",
        args: "KEY[=VALUE]",
        summary: "set a variable in the job environment table: the global one is the base of every job started afterwards (below its env stanzas); inside a job, its instance's own reaches its later processes. KEY alone takes this command's own value of KEY",
        options: &[
            flag("retain", Some('r'), "keep the value of a variable already set"),
            GLOBAL,
            SOCKET,
        ],
        run: env_cmd::run,
    },
    CommandInfo {
        name: "unset-env",
        args: "NAME",
        summary: "remove a variable from the job environment table (the global one, or inside a job its instance's own)",
        options: &[GLOBAL, SOCKET],
        run: env_cmd::run,
    },
    CommandInfo {
        name: "reset-env",
        args: NONE,
        summary: "empty the global job environment table; inside a job, return its instance's own to what it was started with",
        options: &[GLOBAL, SOCKET],
        run: env_cmd::run,
    },
    CommandInfo {
        name: "log-priority",
        args: "[PRIORITY]",
        summary: "print the daemon's log priority, or set it: info (or debug) logs every goal and state change and every event, as -v; message is the default",
        options: &[SOCKET],
        run: env_cmd::run,
    },
    CommandInfo {
        name: "logs",
        args: JOB_ARGS,
        summary: "show a job's log",
        options: &[
            valued("lines", Some('n'), "N", "show the last N lines (default 10)"),
            flag("follow", Some('f'), "then show what the job writes, across rotations"),
            SOCKET,
        ],
        run: logs_cmd::run,
    },
    CommandInfo {
        name: "check-config",
        args: "[PATH|JOB]...",
        summary: "check job files offline: syntax, and events no job emits",
        options: &[
            CONF_DIR,
            valued(
                "ignore-events",
                Some('i'),
                "EVENT,...",
                "events emitted by something other than a job (not reported)",
            ),
            flag(
                "warn",
                Some('w'),
                "report every unknown job and event, also in an expression another branch of an 'or' can satisfy (default: only expressions nothing can satisfy)",
            ),
        ],
        run: check_config::run,
    },
    CommandInfo {
        name: "show-config",
        args: "[PATH|JOB]...",
        summary: "print jobs in full, normalised job-file syntax",
        options: &[
            CONF_DIR,
            JSON,
            flag("enumerate", Some('e'), "list each job's events: what it emits, starts on, stops on"),
        ],
        run: show_config::run,
    },
    CommandInfo {
        name: "version",
        args: NONE,
        summary: "print the version",
        options: &[
            flag(
                "handover-formats",
                None,
                "print the re-exec handover formats this binary reads and writes, and, if a daemon answers, the one it writes (an upgrade may re-exec a daemon only if the new binary reads its format)",
            ),
            SOCKET,
        ],
        run: version,
    },
];

/// Names under which the binary is one command (Upstart's links to initctl).
pub const LINK_NAMES: &[&str] = &["start", "stop", "restart", "reload", "status"];

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

/// The program name as invoked, for messages (`initctl: …`), and the
/// help a usage error points at (`upkeep start --help`).
pub(crate) struct Prog {
    name: String,
    help: String,
}

impl Prog {
    fn new(name: &str) -> Prog {
        Prog {
            name: name.to_string(),
            help: format!("{name} --help"),
        }
    }

    /// The same program, running one command.
    fn for_command(&self, invoked: &str, command: &str) -> Prog {
        let help = if invoked == command {
            format!("{invoked} --help")
        } else {
            format!("{invoked} {command} --help")
        };
        Prog {
            name: self.name.clone(),
            help,
        }
    }

    pub fn error(&self, msg: impl std::fmt::Display) {
        eprintln!("{}: {msg}", self.name);
    }

    pub fn usage_error(&self, msg: impl std::fmt::Display) -> i32 {
        eprintln!("{}: {msg}", self.name);
        eprintln!("Try '{}' for more information.", self.help);
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
        return run(&Prog::new(&invoked), &invoked, &invoked, args);
    }
    if invoked == "telinit" {
        return telinit(&Prog::new(&invoked), args);
    }
    let prog = Prog::new(&invoked);
    let mut rest = args.into_iter();
    // `upkeep --socket PATH COMMAND …`: options before the command go
    // after it, where the command's own table parses them (a command that
    // does not talk to the daemon refuses `--socket`).
    let mut leading = Vec::new();
    let first = loop {
        match rest.next() {
            Some(a) if a == "--socket" => match rest.next() {
                Some(v) => leading.extend([a, v]),
                None => return prog.usage_error("--socket: missing PATH"),
            },
            Some(a) if a.to_str().is_some_and(|s| s.starts_with("--socket=")) => leading.push(a),
            other => break other,
        }
    };
    let Some(first) = first else {
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
        Some(cmd) => run(
            &prog,
            &invoked,
            cmd,
            leading.into_iter().chain(rest).collect(),
        ),
        None => prog.usage_error(format!("unknown command: {}", first.to_string_lossy())),
    }
}

fn run(prog: &Prog, invoked: &str, command: &str, args: Vec<OsString>) -> i32 {
    let Some(info) = COMMANDS.iter().find(|c| c.name == command) else {
        return prog.usage_error(format!("unknown command: {command}"));
    };
    if args.iter().any(|a| a == "--help" || a == "-h") {
        out(&info.help(invoked));
        return 0;
    }
    let prog = &prog.for_command(invoked, command);
    match Args::parse(info.options, args) {
        Ok(args) => (info.run)(&Call {
            prog,
            invoked,
            name: info.name,
            args,
        }),
        Err(e) => prog.usage_error(e),
    }
}

fn version(call: &Call) -> i32 {
    if let Some(extra) = call.args.positional.first() {
        return call.prog.usage_error(format!(
            "version takes no arguments: {}",
            extra.to_string_lossy()
        ));
    }
    if call.args.flag("handover-formats") {
        return handover_formats(call);
    }
    if call.invoked == "initctl" {
        out(&format!("init (upkeep {VERSION})\n"));
    } else {
        out(&format!("upkeep {VERSION}\n"));
    }
    0
}

/// `version --handover-formats`: `reads 1 2`, `writes 2`, then
/// `daemon 2` when a daemon answers (what an upgrade's `postinst` needs to
/// decide whether a `re-exec` keeps the jobs). Exit 1 if a daemon answers
/// but does not say.
fn handover_formats(call: &Call) -> i32 {
    let reads: Vec<String> = crate::daemon::HANDOVER_READS
        .iter()
        .map(u32::to_string)
        .collect();
    let mut text = format!(
        "reads {}\nwrites {}\n",
        reads.join(" "),
        crate::daemon::HANDOVER_WRITES
    );
    let socket = call.args.socket();
    let code = match crate::control::client::call(&socket, crate::control::Command::Version) {
        Ok(crate::control::Response::Version {
            handover_format, ..
        }) => {
            text.push_str(&format!("daemon {handover_format}\n"));
            0
        }
        Ok(_) => {
            call.prog.error(format!(
                "the daemon on {} does not say which handover format it writes (it is older than this command)",
                socket.display()
            ));
            1
        }
        // No daemon: nothing to hand over.
        Err(_) => 0,
    };
    out(&text);
    code
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
        s.push_str(&format!("  {:<22} {}\n", c.name, c.summary));
    }
    s.push_str(&format!(
        "\nOptions, before or after the command:\n  {:<13}  {}\n  \
         {:<13}  this help; after a command, that command's arguments and options\n\
         \nEnvironment:\n  {SOCKET_ENV}\n\
         \nExit status:\n{EXIT_STATUS}\
         \nRun '{invoked} COMMAND --help' for a command's arguments.\n\
         Under the names start, stop, restart, reload and status the binary is that command;\n\
         under the name initctl it takes the same commands as upkeep; as telinit, 'telinit u' re-execs the daemon.\n",
        SOCKET.shown().trim_start(),
        SOCKET.help,
        "-h, --help"
    ));
    s
}
