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

/// What `check-config` and `show-config` share: the conf dirs (`--conf-dir
/// DIR`, the defaults when none is given) and the `PATH|JOB` targets.
pub(crate) fn conf_args(args: &super::args::Args) -> (Vec<PathBuf>, Vec<OsString>) {
    let mut conf_dirs: Vec<PathBuf> = args.values("conf-dir").map(PathBuf::from).collect();
    if conf_dirs.is_empty() {
        conf_dirs = crate::paths::default_conf_dirs();
    }
    (conf_dirs, args.positional.clone())
}
