//! Who may define a job: a job file, the target of a symlinked one, and
//! every directory above them up to `/` must belong to root or to the
//! daemon's user and be writable by no one else (as sshd treats
//! `authorized_keys`), or any local user who can change the file could run
//! a command with the daemon's authority.
//!
//! Two things are allowed besides: a sticky directory of root's (`/tmp`),
//! where no one can replace another's entries; and a file or directory
//! writable by its group when that group is the daemon's user's own
//! private group (named after it, with no other member), as a user whose
//! umask is 002 makes them.
//!
//! An `env-file` ([`Trust::for_env_file`]) is held to the same rule, with
//! the job's user as a third owner it may have and root's group as one that
//! may write it: its values reach a job's processes (an `LD_PRELOAD` in a
//! root job's file is root's).

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Remembers the verdict on each directory within one scan.
#[derive(Debug)]
pub struct Trust {
    uid: u32,
    /// Besides root and `uid`, who may own what is checked (the job's
    /// user, for an env file).
    also: Option<u32>,
    /// Root's group may write what is checked (an env file).
    root_group: bool,
    /// What the checked file is for, and is called, in messages.
    purpose: &'static str,
    file: &'static str,
    dirs: HashMap<PathBuf, Result<(), String>>,
    private_groups: HashMap<u32, bool>,
}

impl Trust {
    /// For a daemon (or `check-config`) running as this process's user.
    pub fn for_this_user() -> Trust {
        Trust::new(crate::process::euid())
    }

    pub fn new(uid: u32) -> Trust {
        Trust {
            uid,
            also: None,
            root_group: false,
            purpose: "define a job",
            file: "job file",
            dirs: HashMap::new(),
            private_groups: HashMap::new(),
        }
    }

    /// For an env file of a job run as `job_uid` (`None`: the daemon's
    /// user), read by a daemon running as `uid`.
    pub fn for_env_file(uid: u32, job_uid: Option<u32>) -> Trust {
        Trust {
            also: job_uid,
            root_group: true,
            purpose: "set a job's environment",
            file: "env file",
            ..Trust::new(uid)
        }
    }

    /// Why `meta` (of `path`) may not hold or be the checked file, if it
    /// may not.
    fn verdict(&mut self, path: &Path, meta: &fs::Metadata, what: &str) -> Result<(), String> {
        let (owner, mode) = (meta.uid(), meta.mode() & 0o7777);
        if owner != 0 && owner != self.uid && Some(owner) != self.also {
            let who = match self.also {
                Some(j) if j != self.uid && j != 0 => format!(
                    "not root, the daemon's user ({}) or the job's ({j})",
                    self.uid
                ),
                _ => format!("neither root nor the daemon's user ({})", self.uid),
            };
            return Err(format!(
                "{what} {} is owned by uid {owner}, {who}: another user could change it, so it may not {} (chown it to root)",
                path.display(),
                self.purpose
            ));
        }
        let sticky_root = mode & 0o1000 != 0 && owner == 0 && meta.is_dir();
        let group_ok = mode & 0o020 == 0
            || (self.root_group && meta.gid() == 0)
            || self.private_group(meta.gid());
        if (mode & 0o002 != 0 && !sticky_root) || (mode & 0o020 != 0 && !group_ok && !sticky_root) {
            return Err(format!(
                "{what} {} is writable by other users (mode {mode:04o}): another user could change it, so it may not {} (chmod go-w it)",
                path.display(),
                self.purpose
            ));
        }
        Ok(())
    }

    /// Whether `gid` is the daemon's user's private group.
    fn private_group(&mut self, gid: u32) -> bool {
        let uid = self.uid;
        *self.private_groups.entry(gid).or_insert_with(|| {
            let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .ok()
                .flatten();
            let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
                .ok()
                .flatten();
            match (user, group) {
                (Some(u), Some(g)) => {
                    u.gid.as_raw() == gid && g.name == u.name && g.mem.iter().all(|m| *m == u.name)
                }
                _ => false,
            }
        })
    }

    /// Checks a directory and each one above it.
    fn chain(&mut self, dir: &Path) -> Result<(), String> {
        if let Some(v) = self.dirs.get(dir) {
            return v.clone();
        }
        let v = match fs::metadata(dir) {
            Err(e) => Err(format!(
                "{}: {}",
                dir.display(),
                crate::process::io_text(&e)
            )),
            Ok(meta) => self.verdict(dir, &meta, "directory").and_then(|()| {
                match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                    Some(up) if up != dir => self.chain(up),
                    _ => Ok(()),
                }
            }),
        };
        self.dirs.insert(dir.to_path_buf(), v.clone());
        v
    }

    /// Checks the directories a job file is reached through and lives in:
    /// those above the path as written, and, when it is a symlink, those
    /// above its target.
    pub fn check_dirs(&mut self, path: &Path) -> Result<(), String> {
        self.check_dirs_of(path, None)
    }

    /// [`Trust::check_dirs`], told whether `path` is a symlink when that
    /// is known (a scan saw it), which saves an lstat.
    pub fn check_dirs_of(&mut self, path: &Path, link: Option<bool>) -> Result<(), String> {
        let absolute = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| format!("{}: {}", path.display(), crate::process::io_text(&e)))?
                .join(path)
        };
        if let Some(dir) = absolute.parent() {
            self.chain(dir)?;
        }
        let link = link.unwrap_or_else(|| {
            fs::symlink_metadata(&absolute).is_ok_and(|m| m.file_type().is_symlink())
        });
        if link {
            let target = fs::canonicalize(&absolute)
                .map_err(|e| format!("{}: {}", path.display(), crate::process::io_text(&e)))?;
            if let Some(dir) = target.parent() {
                self.chain(dir)?;
            }
        }
        Ok(())
    }

    /// Checks the file itself, as opened.
    pub fn check_file(&mut self, path: &Path, meta: &fs::Metadata) -> Result<(), String> {
        let file = self.file;
        self.verdict(path, meta, file)
    }
}
