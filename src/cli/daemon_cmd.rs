//! `upkeep daemon [--conf-dir DIR]... [--log-dir DIR] [--socket PATH]`

use std::path::PathBuf;

use super::args::Opt;
use super::{flag, valued, Call, CONF_DIR};
use crate::daemon::{self, Config};
use crate::paths;

pub(super) const OPTIONS: &[Opt] = &[
    CONF_DIR,
    valued(
        "log-dir",
        None,
        "DIR",
        "write logs to DIR (default /var/log/upkeep for root, else ~/.local/state/upkeep/log)",
    ),
    valued(
        "socket",
        None,
        "PATH",
        "listen on PATH (default /run/upkeep/upkeep.sock for root, else $XDG_RUNTIME_DIR/upkeep.sock)",
    ),
    valued("run-dir", None, "DIR", "keep the socket, lock and state in DIR and the logs in DIR/log, unless --socket or --log-dir say otherwise (default: $UPKEEP_RUN_DIR, else per mode: see upkeep(8), FILES)"),
    valued("runlevel", None, "N", "the runlevel the boot events announce (default 2)"),
    flag("init", None, "behave as a container's first process though not PID 1 (job output to stdout too; default: only as PID 1)"),
    flag("forward-hup", None, "pass SIGHUP on to the jobs' main processes, as SIGUSR2 and SIGWINCH always are, instead of reloading the configuration (default: SIGHUP reloads)"),
    flag("no-cgroups", None, "run jobs in the daemon's own cgroup, as on a system without cgroups: no group a job, stops by process group, and any cgroup stanza or limit refused (default: as root, or with a delegated subtree, every job instance in a group of its own; docs/cgroups.md)"),
    valued("exit-with", None, "JOB", "when JOB fails, stop everything and exit with its status (default: none, the daemon runs on)"),
    flag("clean-env", None, "in init mode, pass jobs no variable of the daemon's own environment but what --pass-env names (default: init mode passes all but those meant for upkeep; a per-user daemon passes all, a root daemon outside init mode none)"),
    valued("pass-env", None, "NAME|PREFIX*", "also pass the daemon's variable NAME (or every one starting with PREFIX) to jobs; repeatable (default: none)"),
    flag("log-to-stdout", None, "copy every job's output to stdout, prefixed with its name"),
    valued("log-format", None, "plain|json", "json: job lines on stdout and the daemon's messages on stderr as one JSON object a line (time, job, instance, line; docs/json.md) (default plain)"),
    valued("log-size", None, "SIZE", "rotate a log at SIZE (K, M, G; unlimited or 0: never by size; default 100M)"),
    valued("log-keep", None, "N", "keep N rotated logs (default 7)"),
    valued("log-rotate", None, "daily|never", "daily: also rotate every log at local midnight (default daily)"),
    valued("log-compress", None, "yes|no", "gzip rotated logs (default yes)"),
    valued("log-timestamps", None, "yes|no", "start each line in a log file with the time it was read, in UTC (default no)"),
    valued("control-group", None, "GROUP", "members of GROUP (a name or a number) change jobs and read logs as the daemon's user may, so an acting `upkeep web` need not be root (default: none)"),
    flag("verbose", Some('v'), "log every event and every goal and state change"),
];

pub(super) fn run(call: &Call) -> i32 {
    let (prog, args) = (call.prog, &call.args);
    if let Some(extra) = args.positional.first() {
        return prog.usage_error(format!("unexpected argument '{}'", extra.to_string_lossy()));
    }
    let text = |v: &std::ffi::OsString| v.to_string_lossy().into_owned();
    let mut runlevel = "2".to_string();
    if let Some(v) = args.value("runlevel").map(text) {
        if v.len() != 1 || !"0123456Ss".contains(v.as_str()) {
            return prog.usage_error(format!("--runlevel: not a runlevel: {v}"));
        }
        runlevel = v.to_uppercase();
    }
    let mut log_policy = crate::log::DEFAULT_POLICY;
    for (name, v) in args.given().filter(|(n, _)| {
        [
            "log-size",
            "log-keep",
            "log-rotate",
            "log-compress",
            "log-timestamps",
        ]
        .contains(n)
    }) {
        let (name, v) = (name, text(v));
        // The same words as the `log` stanza, so one parser says what is
        // valid.
        let stanza = format!("log {} {v}\n", name.trim_start_matches("log-"));
        match crate::conf::parse_job("flags", stanza.as_bytes()) {
            Ok(j) => log_policy = log_policy.with(&j.log),
            Err(_) => return prog.usage_error(format!("--{name}: not a valid value: {v}")),
        }
    }
    let conf_dirs: Vec<PathBuf> = args.values("conf-dir").map(PathBuf::from).collect();
    let log_dir = args.value("log-dir").map(PathBuf::from);
    let socket = args.value("socket").map(PathBuf::from);
    let (verbose, init) = (args.flag("verbose"), args.flag("init"));
    let log_to_stdout = args.flag("log-to-stdout");
    let exit_with = args.value("exit-with").map(text);
    let control_gid = match args.value("control-group").map(text) {
        None => None,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => match nix::unistd::Group::from_name(&g) {
                Ok(Some(group)) => Some(group.gid.as_raw()),
                _ => return prog.usage_error(format!("--control-group: no such group: {g}")),
            },
        },
    };
    let pass_env: Vec<String> = args.values("pass-env").map(text).collect();
    let pattern_ok = |p: &str| match p.strip_suffix('*') {
        Some(prefix) => crate::job::env_file::valid_key(&format!("{prefix}_")),
        None => crate::job::env_file::valid_key(p),
    };
    if let Some(bad) = pass_env.iter().find(|p| !pattern_ok(p)) {
        return prog.usage_error(format!("--pass-env: not a variable name or PREFIX*: {bad}"));
    }
    let log_format = match args.value("log-format").map(text) {
        None => crate::log::format::Format::Plain,
        Some(v) => match crate::log::format::Format::parse(&v) {
            Some(f) => f,
            None => return prog.usage_error(format!("--log-format: plain or json, not {v}")),
        },
    };
    let init = init || std::process::id() == 1;
    let system = crate::process::euid() == 0;
    let run_dir = match args.value("run-dir").map(PathBuf::from) {
        Some(d) => Some(std::path::absolute(&d).unwrap_or(d)),
        None => paths::run_dir_from_env(),
    };
    let cfg = Config {
        conf_dirs: if conf_dirs.is_empty() {
            paths::daemon_conf_dirs(init)
        } else {
            conf_dirs
        },
        log_dir: log_dir.unwrap_or_else(|| paths::daemon_log_dir(init, run_dir.as_deref())),
        // Absolute, because jobs that `chdir` are told it (UPKEEP_SOCKET).
        socket: socket
            .map(|s| std::path::absolute(&s).unwrap_or(s))
            .unwrap_or_else(|| paths::daemon_socket(init, run_dir.as_deref())),
        runlevel,
        verbose,
        log_policy,
        // As a container's PID 1, job output also goes to stdout, for
        // `docker logs`.
        log_to_stdout: log_to_stdout || init,
        exit_with,
        control_gid,
        pass_all_env: (init || !system) && !args.flag("clean-env"),
        pass_env,
        log_format,
        forward_hup: args.flag("forward-hup"),
        no_cgroups: args.flag("no-cgroups"),
    };
    daemon::run(cfg)
}
