//! Which jobs a command is about: the jobs of the conf dirs, and the
//! `PATH|JOB` arguments (a job file, a dir of job files, or a job name).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::confdir::{self, Diagnostic, Loaded};

pub(crate) struct Selection {
    /// Every job known: the conf dirs' and the ones named by path.
    pub universe: BTreeMap<String, Loaded>,
    /// The jobs to report on, sorted by name.
    pub selected: Vec<String>,
    /// Files and dirs that could not be looked at.
    pub problems: Vec<Diagnostic>,
    /// `JOB` arguments that name no job.
    pub unknown: Vec<String>,
}

pub(crate) fn select(conf_dirs: &[PathBuf], targets: &[OsString]) -> Selection {
    let scan = confdir::scan(conf_dirs);
    let mut sel = Selection {
        universe: BTreeMap::new(),
        selected: Vec::new(),
        problems: Vec::new(),
        unknown: Vec::new(),
    };
    if targets.is_empty() {
        sel.problems.extend(scan.problems.iter().cloned());
    }
    for (name, files) in &scan.jobs {
        sel.universe.insert(name.clone(), confdir::load(files));
    }
    if targets.is_empty() {
        sel.selected = sel.universe.keys().cloned().collect();
        return sel;
    }
    for t in targets {
        let path = Path::new(t);
        if path.is_dir() {
            let dir_scan = confdir::scan(&[path.to_path_buf()]);
            sel.problems.extend(dir_scan.problems);
            for (name, files) in dir_scan.jobs {
                sel.universe.insert(name.clone(), confdir::load(&files));
                sel.selected.push(name);
            }
        } else if path.exists() || t.to_string_lossy().contains('/') {
            match confdir::files_for_path(path) {
                Some(files) => {
                    let name = files.name.clone();
                    sel.universe.insert(name.clone(), confdir::load(&files));
                    sel.selected.push(name);
                }
                None => sel.unknown.push(t.to_string_lossy().into_owned()),
            }
        } else {
            let name = t.to_string_lossy().into_owned();
            if sel.universe.contains_key(&name) {
                sel.selected.push(name);
            } else {
                sel.unknown.push(name);
            }
        }
    }
    sel.selected.sort();
    sel.selected.dedup();
    sel
}

/// An option other than the shared ones, for the command to take.
pub(crate) enum Opt {
    Short(char),
    Long(String),
}

impl Opt {
    fn shown(&self) -> String {
        match self {
            Opt::Short(c) => format!("-{c}"),
            Opt::Long(l) => format!("--{l}"),
        }
    }
}

/// Parses what `check-config` and `show-config` share (`--conf-dir DIR`,
/// and `PATH|JOB` targets); `extra` takes each other option (and may read
/// its value), and returns false for one it does not know. Returns the conf
/// dirs (the defaults when none is given) and the targets, or the exit
/// code of a usage error.
pub(crate) fn parse_conf_args(
    prog: &super::Prog,
    args: Vec<OsString>,
    mut extra: impl FnMut(&Opt, &mut lexopt::Parser) -> Result<bool, lexopt::Error>,
) -> Result<(Vec<PathBuf>, Vec<OsString>), i32> {
    let mut conf_dirs: Vec<PathBuf> = Vec::new();
    let mut targets: Vec<OsString> = Vec::new();
    let mut parser = lexopt::Parser::from_args(args);
    loop {
        use lexopt::prelude::*;
        let opt = match parser.next() {
            Ok(None) => break,
            Ok(Some(Long("conf-dir"))) => {
                match parser.value() {
                    Ok(v) => conf_dirs.push(v.into()),
                    Err(e) => return Err(prog.usage_error(e)),
                }
                continue;
            }
            Ok(Some(Value(v))) => {
                targets.push(v);
                continue;
            }
            Ok(Some(Short(c))) => Opt::Short(c),
            Ok(Some(Long(l))) => Opt::Long(l.to_string()),
            Err(e) => return Err(prog.usage_error(e)),
        };
        match extra(&opt, &mut parser) {
            Ok(true) => {}
            Ok(false) => return Err(prog.usage_error(format!("invalid option '{}'", opt.shown()))),
            Err(e) => return Err(prog.usage_error(e)),
        }
    }
    if conf_dirs.is_empty() {
        conf_dirs = crate::paths::default_conf_dirs();
    }
    Ok((conf_dirs, targets))
}
