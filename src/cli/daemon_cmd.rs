//! `upkeep daemon [--conf-dir DIR]... [--log-dir DIR] [--socket PATH]`

use std::ffi::OsString;
use std::path::PathBuf;

use super::Prog;
use crate::daemon::{self, Config};
use crate::paths;

pub(crate) fn run(prog: &Prog, args: Vec<OsString>) -> i32 {
    let mut conf_dirs: Vec<PathBuf> = Vec::new();
    let mut log_dir: Option<PathBuf> = None;
    let mut socket: Option<PathBuf> = None;
    let mut runlevel = "2".to_string();
    let mut verbose = false;
    let mut log_policy = crate::log::DEFAULT_POLICY;
    let mut log_to_stdout = false;
    let mut init = false;
    let mut exit_with: Option<String> = None;
    let mut parser = lexopt::Parser::from_args(args);
    loop {
        use lexopt::prelude::*;
        let arg = match parser.next() {
            Ok(None) => break,
            Ok(Some(a)) => a,
            Err(e) => return prog.usage_error(e),
        };
        let value = |parser: &mut lexopt::Parser| parser.value().map(PathBuf::from);
        let r = match arg {
            Long("conf-dir") => value(&mut parser).map(|v| conf_dirs.push(v)),
            Long("log-dir") => value(&mut parser).map(|v| log_dir = Some(v)),
            Long("socket") => value(&mut parser).map(|v| socket = Some(v)),
            Long("runlevel") => match parser.value().map(|v| v.to_string_lossy().into_owned()) {
                Ok(v) if v.len() == 1 && "0123456Ss".contains(v.as_str()) => {
                    runlevel = v.to_uppercase();
                    Ok(())
                }
                Ok(v) => return prog.usage_error(format!("--runlevel: not a runlevel: {v}")),
                Err(e) => Err(e),
            },
            Short('v') | Long("verbose") => {
                verbose = true;
                Ok(())
            }
            Long("log-to-stdout") => {
                log_to_stdout = true;
                Ok(())
            }
            Long("init") => {
                init = true;
                Ok(())
            }
            Long("exit-with") => parser
                .value()
                .map(|v| exit_with = Some(v.to_string_lossy().into_owned())),
            Long("log-size") | Long("log-keep") | Long("log-rotate") | Long("log-compress") => {
                let name = match &arg {
                    Long(n) => n.to_string(),
                    _ => String::new(),
                };
                let v = match parser.value() {
                    Ok(v) => v.to_string_lossy().into_owned(),
                    Err(e) => return prog.usage_error(e),
                };
                // The same words as the `log` stanza, so one parser says
                // what is valid.
                let stanza = format!("log {} {v}\n", name.trim_start_matches("log-"));
                match crate::conf::parse_job("flags", stanza.as_bytes()) {
                    Ok(j) => {
                        log_policy = log_policy.with(&j.log);
                        Ok(())
                    }
                    Err(_) => return prog.usage_error(format!("--{name}: not a valid value: {v}")),
                }
            }
            other => return prog.usage_error(other.unexpected()),
        };
        if let Err(e) = r {
            return prog.usage_error(e);
        }
    }
    let cfg = Config {
        conf_dirs: if conf_dirs.is_empty() {
            paths::default_conf_dirs()
        } else {
            conf_dirs
        },
        log_dir: log_dir.unwrap_or_else(paths::default_log_dir),
        // Absolute, because jobs that `chdir` are told it (UPKEEP_SOCKET).
        socket: socket
            .map(|s| std::path::absolute(&s).unwrap_or(s))
            .unwrap_or_else(paths::default_socket),
        runlevel,
        verbose,
        log_policy,
        // As a container's PID 1, job output also goes to stdout, for
        // `docker logs`.
        log_to_stdout: log_to_stdout || init || std::process::id() == 1,
        exit_with,
    };
    daemon::run(cfg)
}
