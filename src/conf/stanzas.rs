//! Every stanza a job file may hold, as the documentation states it: its
//! syntax, its default, an example, and whether it is an upkeep extension.
//! `upkeep-job(5)` is made from this table, and a test checks that it
//! names exactly the stanzas the parser's table (`parse.rs`) takes and that
//! every example parses.

/// One stanza, for the manual.
#[derive(Debug)]
pub struct StanzaDoc {
    /// The first word, as the parser's table matches it.
    pub word: &'static str,
    /// Each form it takes.
    pub syntax: &'static [&'static str],
    /// What it does.
    pub summary: &'static str,
    /// What a job without it gets.
    pub default: &'static str,
    /// A line (or block) that uses it.
    pub example: &'static str,
    /// Not in Upstart 1.13: upkeep's own (the whole stanza, or the forms
    /// named in `summary`).
    pub extension: Extension,
}

/// Whether a stanza is Upstart's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    Upstart,
    /// upkeep's own stanza.
    Upkeep,
    /// Upstart's stanza with a form of upkeep's added.
    UpkeepForm(&'static str),
}

const HOOK: &str = "a hook: pre-start runs before the main process, post-start once it has started, pre-stop before it is stopped, post-stop after it ended; the job waits for its hooks, and a failing pre-start fails the start";

/// Every stanza, in the order the manual lists them.
pub const STANZAS: &[StanzaDoc] = &[
    StanzaDoc {
        word: "exec",
        syntax: &["exec COMMAND [ARG]..."],
        summary: "the main process: run COMMAND directly, or through /bin/sh -e when it holds shell characters (quotes, $, redirections, =, ...)",
        default: "none: a job without a main process only runs its hooks",
        example: "exec /usr/sbin/nginx -g 'daemon off;'",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "script",
        syntax: &["script", "  SHELL LINES...", "end script"],
        summary: "the main process as a /bin/sh -e script",
        default: "none",
        example: "script\n  . /etc/default/web\n  exec gunicorn app:app\nend script",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "pre-start",
        syntax: &["pre-start exec COMMAND", "pre-start script ... end script"],
        summary: HOOK,
        default: "none",
        example: "pre-start exec /usr/sbin/nginx -t -q",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "post-start",
        syntax: &["post-start exec COMMAND", "post-start script ... end script"],
        summary: HOOK,
        default: "none",
        example: "post-start exec /usr/local/bin/wait-for-port 8080",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "pre-stop",
        syntax: &["pre-stop exec COMMAND", "pre-stop script ... end script"],
        summary: HOOK,
        default: "none",
        example: "pre-stop exec /usr/bin/redis-cli -p 16390 save",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "post-stop",
        syntax: &["post-stop exec COMMAND", "post-stop script ... end script"],
        summary: HOOK,
        default: "none",
        example: "post-stop exec rm -f /run/web.pid",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "start",
        syntax: &["start on EVENT [VALUE]... [KEY=VALUE]... [and|or EVENT ...]"],
        summary: "start the job when the events happen; and/or of equal precedence, left to right, parentheses group; values may be globs",
        default: "none: only a start command starts the job",
        example: "start on started redis and net-device-up IFACE!=lo",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "stop",
        syntax: &["stop on EVENT ..."],
        summary: "stop the job when the events happen (same syntax as start on)",
        default: "none: only a stop command stops the job",
        example: "stop on stopping redis or runlevel [016]",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "manual",
        syntax: &["manual"],
        summary: "forget the start on read so far (an override file's way to keep a job from starting by itself)",
        default: "off",
        example: "manual",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "task",
        syntax: &["task"],
        summary: "the job is a task: start waits until it has finished, and it is not respawned once it exits normally",
        default: "a service (start returns once it runs)",
        example: "task",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "respawn",
        syntax: &["respawn", "respawn limit COUNT INTERVAL", "respawn limit unlimited"],
        summary: "start the main process again when it ends other than by a stop; more than COUNT respawns within INTERVAL seconds stop the job",
        default: "no respawn; limit 10 5",
        example: "respawn\nrespawn limit 5 60",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "normal",
        syntax: &["normal exit STATUS|SIGNAL..."],
        summary: "exit statuses and signals that count as a normal end (not respawned, not a failure)",
        default: "none: for a task, exit 0 only",
        example: "normal exit 0 2 TERM",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "instance",
        syntax: &["instance NAME"],
        summary: "run one instance per distinct expansion of NAME ($VAR from the start command or the event)",
        default: "one instance",
        example: "instance $PORT",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "env",
        syntax: &["env KEY=VALUE", "env KEY"],
        summary: "set KEY in the job's environment (no expansion); KEY alone takes the daemon's value",
        default: "PATH and TERM of the daemon, UPSTART_JOB, UPSTART_INSTANCE, UPKEEP_SOCKET",
        example: "env GREETING=\"hello from upkeep\"",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "export",
        syntax: &["export KEY..."],
        summary: "add KEY=value to the job's starting, started, stopping and stopped events",
        default: "none",
        example: "export PORT",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "expect",
        syntax: &["expect fork|daemon|stop|notify|none"],
        summary: "how the main process says it is ready: fork (forks once; the child is the job), daemon (forks twice), stop (raises SIGSTOP), notify (sends READY=1 to $NOTIFY_SOCKET, as sd_notify(3))",
        default: "none: ready once started",
        example: "expect notify",
        extension: Extension::UpkeepForm("notify"),
    },
    StanzaDoc {
        word: "ready",
        syntax: &["ready timeout SECONDS"],
        summary: "how long expect notify waits for READY=1 before the start fails",
        default: "90",
        example: "ready timeout 30",
        extension: Extension::Upkeep,
    },
    StanzaDoc {
        word: "health",
        syntax: &[
            "health ready|alive exec COMMAND",
            "health ready|alive tcp IP:PORT",
            "health ready|alive http://IP:PORT/PATH [host NAME] [status LOW-HIGH]",
            "health ready|alive [initial-delay SECONDS] [period SECONDS] [timeout SECONDS] [failure-threshold N] [success-threshold N]",
        ],
        summary: "probes of whether the service answers. ready: the job is started (and started emitted) only after the probe first succeeds, within the ready timeout; alive: after failure-threshold failures in a row the main process is stopped and respawned (a job without respawn stops, failed). A probe line sets the role's probe with the default settings; a settings line, after it, changes them (Kubernetes' meanings; seconds may have decimals). An exec probe runs as the job's processes do (user, environment, directory; output to the job's log), succeeds with status 0, is killed at its timeout, and never runs twice at once. Addresses are numeric or localhost:PORT, never looked up; http is plain HTTP, a status in the range (default 200-399) is a success, a redirect outside it a failure, a response head over 8 KiB a failure. healthy and unhealthy (JOB, INSTANCE, ERROR) are emitted as events",
        default: "none; settings: initial-delay 0, period 10, timeout 1, failure-threshold 3, success-threshold 1",
        example: "health ready http://127.0.0.1:8000/healthz\nhealth alive tcp 127.0.0.1:8000\nhealth alive period 5 timeout 2 failure-threshold 3",
        extension: Extension::Upkeep,
    },
    StanzaDoc {
        word: "kill",
        syntax: &["kill signal SIGNAL", "kill timeout SECONDS"],
        summary: "the signal a stop sends, and how long before SIGKILL follows",
        default: "SIGTERM; 5",
        example: "kill signal INT\nkill timeout 30",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "reload",
        syntax: &["reload signal SIGNAL"],
        summary: "the signal the reload command sends",
        default: "SIGHUP",
        example: "reload signal USR1",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "console",
        syntax: &["console log|output|owner|none"],
        summary: "where the job's output goes: its log file, the daemon's stdout and stderr (output and owner), or nowhere",
        default: "log",
        example: "console log",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "log",
        syntax: &[
            "log size SIZE",
            "log keep N",
            "log rotate daily|never",
            "log compress yes|no",
            "log pty|pipe",
        ],
        summary: "the job's log: rotate at SIZE (K, M, G; unlimited), keep N rotated files, rotate at midnight, gzip them; capture through a pseudo-terminal (line by line) or a pipe",
        default: "the daemon's --log-* options (100M, 7, daily, yes); pty",
        example: "log size 10M\nlog keep 3",
        extension: Extension::Upkeep,
    },
    StanzaDoc {
        word: "umask",
        syntax: &["umask MASK"],
        summary: "the file mode creation mask of every process (octal)",
        default: "022",
        example: "umask 027",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "nice",
        syntax: &["nice N"],
        summary: "the scheduling priority, -20 to 19",
        default: "the daemon's",
        example: "nice 10",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "oom",
        syntax: &["oom score N|never", "oom N|never"],
        summary: "the OOM killer's score adjustment, -1000 to 1000 (never: -1000); the second form is Upstart's older one",
        default: "0 (unchanged)",
        example: "oom score -500",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "limit",
        syntax: &["limit RESOURCE SOFT|unlimited HARD|unlimited"],
        summary: "a resource limit (core, cpu, data, fsize, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, sigpending, stack, ...)",
        default: "the daemon's limits",
        example: "limit nofile 65536 65536",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "chroot",
        syntax: &["chroot DIR"],
        summary: "run every process with DIR as its root",
        default: "none",
        example: "chroot /srv/jail",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "chdir",
        syntax: &["chdir DIR"],
        summary: "run every process in DIR",
        default: "/",
        example: "chdir /srv/stack/app",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "setuid",
        syntax: &["setuid USER"],
        summary: "run every process as USER (and its group, and its supplementary groups when the daemon is root)",
        default: "the daemon's user",
        example: "setuid www-data",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "setgid",
        syntax: &["setgid GROUP"],
        summary: "run every process with GROUP as its group",
        default: "setuid's user's group, else the daemon's",
        example: "setgid www-data",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "emits",
        syntax: &["emits EVENT..."],
        summary: "the events the job emits (for check-config; globs allowed)",
        default: "none",
        example: "emits web-ready",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "description",
        syntax: &["description TEXT"],
        summary: "what the job is, for people",
        default: "none",
        example: "description \"the queue worker\"",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "author",
        syntax: &["author TEXT"],
        summary: "who wrote the job",
        default: "none",
        example: "author \"Ops <ops@example.com>\"",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "version",
        syntax: &["version TEXT"],
        summary: "the job's version, for people",
        default: "none",
        example: "version 1.2",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "usage",
        syntax: &["usage TEXT"],
        summary: "how to start the job (its KEY=VALUE arguments), for people",
        default: "none",
        example: "usage \"start web PORT=N\"",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "apparmor",
        syntax: &["apparmor load PROFILE", "apparmor switch NAME"],
        summary: "load an AppArmor profile before the job starts, or switch the main process to one",
        default: "none",
        example: "apparmor switch /usr/sbin/nginx",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "cgroup",
        syntax: &["cgroup CONTROLLER [NAME] [KEY VALUE]"],
        summary: "put the job's processes in a control group, with a setting",
        default: "none",
        example: "cgroup memory $UPSTART_CGROUP memory.limit_in_bytes 52428800",
        extension: Extension::Upstart,
    },
    StanzaDoc {
        word: "debug",
        syntax: &["debug"],
        summary: "accepted for Upstart's files; Upstart stopped the process before exec for a debugger only at its debug log level",
        default: "off",
        example: "debug",
        extension: Extension::Upstart,
    },
];
