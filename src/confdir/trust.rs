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

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Remembers the verdict on each directory within one scan.
#[derive(Debug)]
pub struct Trust {
    uid: u32,
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
            dirs: HashMap::new(),
            private_groups: HashMap::new(),
        }
    }

    /// Why `meta` (of `path`) may not hold or be a job file, if it may not.
    fn verdict(&mut self, path: &Path, meta: &fs::Metadata, what: &str) -> Result<(), String> {
        let (owner, mode) = (meta.uid(), meta.mode() & 0o7777);
        if owner != 0 && owner != self.uid {
            return Err(format!(
                "{what} {} is owned by uid {owner}, neither root nor the daemon's user ({}): another user could change it, so it may not define a job (chown it to root)",
                path.display(),
                self.uid
            ));
        }
        let sticky_root = mode & 0o1000 != 0 && owner == 0 && meta.is_dir();
        let group_ok = mode & 0o020 == 0 || self.private_group(meta.gid());
        if (mode & 0o002 != 0 && !sticky_root) || (mode & 0o020 != 0 && !group_ok && !sticky_root) {
            return Err(format!(
                "{what} {} is writable by other users (mode {mode:04o}): another user could change it, so it may not define a job (chmod go-w it)",
                path.display()
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
        if fs::symlink_metadata(&absolute).is_ok_and(|m| m.file_type().is_symlink()) {
            let target = fs::canonicalize(&absolute)
                .map_err(|e| format!("{}: {}", path.display(), crate::process::io_text(&e)))?;
            if let Some(dir) = target.parent() {
                self.chain(dir)?;
            }
        }
        Ok(())
    }

    /// Checks the job file itself, as opened.
    pub fn check_file(&mut self, path: &Path, meta: &fs::Metadata) -> Result<(), String> {
        self.verdict(path, meta, "job file")
    }
}
