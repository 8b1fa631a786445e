//! Man pages in roff (man(7) macros).

use crate::cli::args::SOCKET;
use crate::cli::{CommandInfo, COMMANDS, EXIT_STATUS, LINK_NAMES};
use crate::conf::stanzas::{Extension, STANZAS};
use crate::VERSION;

/// Text made safe for roff: backslashes and minus signs escaped, and no
/// line that starts with a control character.
fn esc(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    s.lines()
        .map(|l| {
            if l.starts_with(['.', '\'']) {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn header(name: &str, section: u8, title: &str, summary: &str) -> String {
    format!(
        ".TH {} {section} \"\" \"upkeep {VERSION}\" \"{title}\"\n.SH NAME\n{} \\- {}\n",
        name.to_uppercase(),
        esc(name),
        esc(summary)
    )
}

/// A section of paragraphs (escaped here).
fn section(title: &str, paragraphs: &[&str]) -> String {
    let text: Vec<String> = paragraphs.iter().map(|p| esc(p)).collect();
    format!(".SH {title}\n{}\n", text.join("\n.PP\n"))
}

/// One command: its usage line, what it does, and each option.
fn command(out: &mut String, prog: &str, c: &CommandInfo) {
    let usage = if prog == c.name {
        c.usage()
    } else {
        format!("{prog} {}", c.usage())
    };
    out.push_str(&format!(".TP\n.B {}\n{}\n", esc(&usage), esc(c.summary)));
    if !c.options.is_empty() {
        out.push_str(".RS\n");
        for o in c.options {
            out.push_str(&format!(
                ".TP\n.B {}\n{}\n",
                esc(o.shown().trim_start()),
                esc(o.help)
            ));
        }
        out.push_str(".RE\n");
    }
}

fn exit_status(out: &mut String) {
    out.push_str(".SH EXIT STATUS\n");
    let mut lines = EXIT_STATUS.lines().peekable();
    while let Some(l) = lines.next() {
        let l = l.trim_start();
        let (code, text) = l.split_once("  ").unwrap_or((l, ""));
        let mut text = text.trim().to_string();
        // Continuation lines (indented further, no code of their own).
        while let Some(next) = lines.peek() {
            let t = next.trim_start();
            if t.starts_with(|c: char| c.is_ascii_digit()) {
                break;
            }
            text.push(' ');
            text.push_str(t);
            lines.next();
        }
        out.push_str(&format!(".TP\n.B {code}\n{}\n", esc(&text)));
    }
}

fn environment(out: &mut String) {
    out.push_str(&format!(
        ".SH ENVIRONMENT\n.TP\n.B UPKEEP_SOCKET\n{}\n",
        esc("the daemon's socket, when --socket is not given; every job's processes have it")
    ));
    out.push_str(&format!(
        ".TP
.B UPKEEP_RUN_DIR
{}
",
        esc("when neither --socket nor UPKEEP_SOCKET is given, the socket is DIR/upkeep.sock (and a daemon without --run-dir keeps its logs in DIR/log)")
    ));
}

fn files(out: &mut String) {
    out.push_str(".SH FILES\n");
    for (path, what) in [
        ("/etc/init/NAME.conf", "job files of a root daemon (NAME.override beside one is applied over it)"),
        ("~/.config/upkeep/init/NAME.conf", "job files of a user's daemon ($XDG_CONFIG_HOME/upkeep/init)"),
        ("/var/log/upkeep/", "a root daemon's logs, one file per job instance ($XDG_STATE_HOME/upkeep/log for a user)"),
        ("/run/upkeep/upkeep.sock", "a root daemon's control socket ($XDG_RUNTIME_DIR/upkeep.sock for a user); SOCKET.priv is root's and the daemon user's, SOCKET.state the state file, SOCKET.lock who holds the socket dir"),
        ("/tmp/upkeep-UID/", "the socket (and, for a container init, the logs) of a user without $XDG_RUNTIME_DIR, or of a non-root container init that cannot write /run/upkeep and /var/log/upkeep; a 0700 dir the daemon must own"),
    ] {
        out.push_str(&format!(".TP\n.I {}\n{}\n", esc(path), esc(what)));
    }
}

/// `upkeep(8)`: every command, its options, the environment, the exit
/// codes and the files.
pub fn upkeep_8() -> String {
    let mut s = header(
        "upkeep",
        8,
        "System Administration",
        "Upstart's job files and commands, as a single-binary process supervisor",
    );
    s.push_str(&format!(
        ".SH SYNOPSIS\n.B upkeep\n[\\fB{}\\fR \\fIPATH\\fR]\n\\fICOMMAND\\fR [\\fIARGS\\fR]...\n",
        esc("--socket")
    ));
    s.push_str(&section(
        "DESCRIPTION",
        &[
            "upkeep keeps programs running. It reads Upstart job files (see upkeep-job(5)) from its conf dirs, starts jobs when their events happen, respawns them, logs their output, and stops them in order. `upkeep daemon` is the supervisor; the other commands talk to it through its socket.",
            "Run as root it supervises the machine's jobs from /etc/init; run as an ordinary user, that user's jobs from ~/.config/upkeep/init. As a container's PID 1 it also reaps orphans and copies job output to its stdout.",
            &format!(
                "The binary is also initctl(8), and under the names {} that command, as Upstart's links to initctl were.",
                LINK_NAMES.join(", ")
            ),
        ],
    ));
    s.push_str(&format!(
        ".SH OPTIONS\n.TP\n.B {}\n{}\n.TP\n.B {}\n{}\n",
        esc(&format!("--socket {}", SOCKET.value.unwrap_or("PATH"))),
        esc(&format!("{}; before or after the command", SOCKET.help)),
        esc("-h, --help"),
        esc("a summary of the commands; after a command, that command's arguments and options")
    ));
    s.push_str(".SH COMMANDS\n");
    for c in COMMANDS {
        command(&mut s, "upkeep", c);
    }
    environment(&mut s);
    exit_status(&mut s);
    files(&mut s);
    s.push_str(&format!(
        ".SH SEE ALSO\n.BR initctl (8),\n.BR upkeep\\-job (5)\n.PP\n{}\n",
        esc("The README, the architecture and the threat model: /usr/share/doc/upkeep/")
    ));
    s
}

/// `initctl(8)`: upkeep's commands under Upstart's names.
pub fn initctl_8() -> String {
    let mut s = header(
        "initctl",
        8,
        "System Administration",
        "control the upkeep daemon with Upstart's commands",
    );
    s.push_str(".SH SYNOPSIS\n.B initctl\n\\fICOMMAND\\fR [\\fIARGS\\fR]...\n");
    for link in LINK_NAMES {
        s.push_str(&format!(
            ".br\n.B {link}\n\\fIJOB\\fR [\\fIKEY=VALUE\\fR]...\n"
        ));
    }
    s.push_str(".br\n.B telinit u\n");
    s.push_str(&section(
        "DESCRIPTION",
        &["initctl is upkeep(8) under Upstart's name: it takes the same commands, options and arguments, so scripts written for Upstart's initctl keep working. Under the names of Upstart's links to initctl, the binary is that one command; as telinit, `telinit u` re-executes the daemon (runlevel changes are not built)."],
    ));
    s.push_str(".SH COMMANDS\n");
    for c in COMMANDS {
        command(&mut s, "initctl", c);
    }
    s.push_str(".SH LINK NAMES\n");
    for link in LINK_NAMES {
        if let Some(c) = COMMANDS.iter().find(|c| c.name == *link) {
            command(&mut s, link, c);
        }
    }
    environment(&mut s);
    exit_status(&mut s);
    s.push_str(".SH SEE ALSO\n.BR upkeep (8),\n.BR upkeep\\-job (5)\n");
    s
}

/// `upkeep-job(5)`: the job file, every stanza with its default and an
/// example, upkeep's extensions marked.
pub fn job_5() -> String {
    let mut s = header(
        "upkeep-job",
        5,
        "File Formats",
        "upkeep job files (Upstart's job configuration)",
    );
    s.push_str(&format!(
        ".SH SYNOPSIS\n.I /etc/init/NAME.conf\n.br\n.I /etc/init/NAME.override\n.br\n.I {}\n",
        esc("~/.config/upkeep/init/NAME.conf")
    ));
    s.push_str(&section(
        "DESCRIPTION",
        &[
            "A job file defines one job, named by its path under the conf dir without .conf (DIR/web/api.conf is web/api). It is a list of stanzas, one per line; a line ending in a backslash goes on on the next; # starts a comment; words may be quoted with \" or '. NAME.override beside NAME.conf is applied over it, stanza by stanza. upkeep reads Upstart 1.x job files unchanged, with Upstart's defaults.",
            "A job file, and every directory above it, must belong to root or to the daemon's user and be writable by no one else, or it defines no job.",
            "Stanzas marked (upkeep) are upkeep's extensions; Upstart does not know them. upkeep check-config reports every error as PATH:LINE:COL: message.",
        ],
    ));
    s.push_str(".SH STANZAS\n");
    for st in STANZAS {
        let mark = match st.extension {
            Extension::Upstart => String::new(),
            Extension::Upkeep => " (upkeep)".to_string(),
            Extension::UpkeepForm(form) => format!(" ({form}: upkeep)"),
        };
        let syntax: Vec<String> = st.syntax.iter().map(|l| esc(l)).collect();
        s.push_str(&format!(
            ".PP\n.B {}{}\n",
            syntax.join("\n.br\n.B "),
            esc(&mark)
        ));
        s.push_str(&format!(
            ".RS\n{}.\n.br\nDefault: {}.\n.PP\nExample:\n.nf\n{}\n.fi\n.RE\n",
            esc(st.summary),
            esc(st.default),
            esc(st.example)
        ));
    }
    s.push_str(&format!(
        ".SH EXAMPLE\n.nf\n{}\n.fi\n",
        esc("# /etc/init/web.conf\ndescription \"the web app\"\nstart on started redis\nstop on stopping redis\nrespawn\nsetuid www-data\nchdir /srv/stack/app\nenv GREETING=hello\nexec /srv/stack/venv/bin/gunicorn -b 127.0.0.1:18000 app:app")
    ));
    s.push_str(".SH SEE ALSO\n.BR upkeep (8),\n.BR initctl (8)\n");
    s
}
