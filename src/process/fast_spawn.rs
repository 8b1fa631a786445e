//! The common case, spawned with posix_spawn(3): a job that changes no
//! user, group, root directory, resource limit, priority or OOM score.
//! glibc's posix_spawn shares the daemon's memory with the child until the
//! exec (CLONE_VM | CLONE_VFORK), where fork() copies the page tables and
//! then takes a copy-on-write fault for each page the daemon touches next;
//! on the machine of `bench/RESULTS.md` that halves the cost of a spawn.
//!
//! What the slow path does in its `pre_exec`, this one asks of posix_spawn:
//! a new session (`POSIX_SPAWN_SETSID`), an empty signal mask, default
//! dispositions, stdin from /dev/null, stdout and stderr to the capture,
//! the working directory (`addchdir_np`). The umask and the open-files limit
//! the child inherits are the daemon's, set for the moment of the spawn
//! (the daemon is single-threaded, so no one else sees them).

use std::ffi::CString;
use std::os::fd::AsRawFd;

use nix::errno::Errno;

use super::Output;

/// Why the fast path did not spawn: a message in Upstart's words, or a
/// case the slow path handles better.
pub enum Refused {
    Error(String),
    /// `ENOEXEC`: execvp(3) runs such a file with /bin/sh; the slow path
    /// (std's exec) does that.
    TrySlowPath(Output),
}

/// The directories execvp(3) looks in, in order, with the job's `PATH`
/// (an empty entry is the working directory).
pub(super) fn search_dirs(env: &[(String, String)]) -> impl Iterator<Item = &str> {
    env.iter()
        .find(|(k, _)| k == "PATH")
        .map_or("/usr/local/bin:/usr/bin:/bin", |(_, v)| v.as_str())
        .split(':')
        .map(|dir| if dir.is_empty() { "." } else { dir })
}

/// `argv[0]` as execvp(3) finds it, with the job's `PATH`.
fn resolve(program: &str, env: &[(String, String)]) -> Result<CString, String> {
    let not_found = || {
        format!(
            "unable to execute: {}",
            super::errno_text(Errno::ENOENT as i32)
        )
    };
    if program.contains('/') {
        return CString::new(program).map_err(|_| not_found());
    }
    let mut denied = false;
    for dir in search_dirs(env) {
        let candidate = format!("{dir}/{program}");
        let Ok(c) = CString::new(candidate.as_str()) else {
            continue;
        };
        let Ok(meta) = std::fs::metadata(&candidate) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        // SAFETY: access(2) with a NUL-terminated path.
        if unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 {
            return Ok(c);
        }
        denied = true;
    }
    if denied {
        Err(format!(
            "unable to execute: {}",
            super::errno_text(Errno::EACCES as i32)
        ))
    } else {
        Err(not_found())
    }
}

fn cstrings<'a>(items: impl Iterator<Item = &'a str>) -> Result<Vec<CString>, String> {
    items
        .map(|s| CString::new(s).map_err(|_| "unable to execute: NUL in an argument".to_string()))
        .collect()
}

/// Spawns `argv` with `env`; returns the child's pid.
pub fn spawn(
    argv: &[String],
    env: &[(String, String)],
    output: Output,
    chdir: Option<&str>,
    umask: u32,
    nofile: Option<(u64, u64)>,
) -> Result<i32, Refused> {
    // The open-files limit is given back by lowering the daemon's own soft
    // limit for the spawn; that works only under the same hard limit.
    let mut old_nofile = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    if let Some((_, hard)) = nofile {
        // SAFETY: getrlimit(2) into a valid struct.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old_nofile) } != 0
            || old_nofile.rlim_max != hard
        {
            return Err(Refused::TrySlowPath(output));
        }
    }
    let path = resolve(&argv[0], env).map_err(Refused::Error)?;
    if let Some(dir) = chdir {
        // posix_spawn names no stage when it fails: look first, so that a
        // missing directory is reported as one (a race is reported as an
        // exec failure, no worse).
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Refused::Error(format!(
                    "unable to change working directory: {}",
                    super::errno_text(Errno::ENOTDIR as i32)
                )))
            }
            Err(e) => {
                let errno = Errno::from_raw(e.raw_os_error().unwrap_or(libc::ENOENT));
                return Err(Refused::Error(format!(
                    "unable to change working directory: {}",
                    super::errno_text(errno as i32)
                )));
            }
        }
    }
    let c_argv = cstrings(argv.iter().map(String::as_str)).map_err(Refused::Error)?;
    let pairs: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let c_env = cstrings(pairs.iter().map(String::as_str)).map_err(Refused::Error)?;
    let c_dir = chdir
        .map(CString::new)
        .transpose()
        .map_err(|_| Refused::Error("unable to change working directory: invalid path".into()))?;
    let mut argv_ptrs: Vec<*mut libc::c_char> =
        c_argv.iter().map(|c| c.as_ptr() as *mut _).collect();
    argv_ptrs.push(std::ptr::null_mut());
    let mut env_ptrs: Vec<*mut libc::c_char> = c_env.iter().map(|c| c.as_ptr() as *mut _).collect();
    env_ptrs.push(std::ptr::null_mut());

    let out_fd = match &output {
        Output::File(fd) => Some(fd.as_raw_fd()),
        _ => None,
    };
    let mut pid: libc::pid_t = 0;
    // SAFETY: every pointer handed to the posix_spawn family points into
    // data that lives until the end of this block (the CStrings and vectors
    // above, the attr and file-actions objects initialised here and
    // destroyed below); the umask and rlimit calls change only this
    // process's own settings and are restored before the block ends.
    let r = unsafe {
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        let mut fa: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        libc::posix_spawnattr_init(&mut attr);
        libc::posix_spawn_file_actions_init(&mut fa);
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigdelset(&mut all, libc::SIGKILL);
        libc::sigdelset(&mut all, libc::SIGSTOP);
        // glibc's sigfillset leaves out its two internal signals (32, 33),
        // and posix_spawn sets those to SIG_IGN in the child, which would
        // survive the exec: set their bits by hand so they get SIG_DFL.
        let word_bits = 8 * std::mem::size_of::<libc::c_ulong>();
        let words = std::slice::from_raw_parts_mut(
            (&mut all as *mut libc::sigset_t).cast::<libc::c_ulong>(),
            std::mem::size_of::<libc::sigset_t>() / std::mem::size_of::<libc::c_ulong>(),
        );
        for sig in [32usize, 33] {
            let bit = sig - 1;
            words[bit / word_bits] |= 1 << (bit % word_bits);
        }
        libc::posix_spawnattr_setsigmask(&mut attr, &none);
        libc::posix_spawnattr_setsigdefault(&mut attr, &all);
        libc::posix_spawnattr_setflags(
            &mut attr,
            libc::POSIX_SPAWN_SETSID
                | libc::POSIX_SPAWN_SETSIGMASK as libc::c_short
                | libc::POSIX_SPAWN_SETSIGDEF as libc::c_short,
        );
        libc::posix_spawn_file_actions_addopen(
            &mut fa,
            0,
            c"/dev/null".as_ptr(),
            libc::O_RDONLY,
            0,
        );
        match out_fd {
            Some(fd) => {
                libc::posix_spawn_file_actions_adddup2(&mut fa, fd, 1);
                libc::posix_spawn_file_actions_adddup2(&mut fa, fd, 2);
            }
            None if matches!(output, Output::Null) => {
                libc::posix_spawn_file_actions_addopen(
                    &mut fa,
                    1,
                    c"/dev/null".as_ptr(),
                    libc::O_WRONLY,
                    0,
                );
                libc::posix_spawn_file_actions_adddup2(&mut fa, 1, 2);
            }
            None => {}
        }
        if let Some(dir) = &c_dir {
            libc::posix_spawn_file_actions_addchdir_np(&mut fa, dir.as_ptr());
        }
        let old_umask = libc::umask(umask as libc::mode_t);
        let lowered = match nofile {
            Some((soft, hard)) => {
                libc::setrlimit(
                    libc::RLIMIT_NOFILE,
                    &libc::rlimit {
                        rlim_cur: soft,
                        rlim_max: hard,
                    },
                ) == 0
            }
            None => false,
        };
        let r = libc::posix_spawn(
            &mut pid,
            path.as_ptr(),
            &fa,
            &attr,
            argv_ptrs.as_ptr(),
            env_ptrs.as_ptr(),
        );
        if lowered {
            libc::setrlimit(libc::RLIMIT_NOFILE, &old_nofile);
        }
        libc::umask(old_umask);
        libc::posix_spawn_file_actions_destroy(&mut fa);
        libc::posix_spawnattr_destroy(&mut attr);
        r
    };
    match r {
        0 => Ok(pid),
        libc::ENOEXEC => Err(Refused::TrySlowPath(output)),
        e => {
            let errno = Errno::from_raw(e);
            Err(Refused::Error(match errno {
                Errno::EAGAIN | Errno::ENOMEM => {
                    format!("unable to fork: {}", super::errno_text(errno as i32))
                }
                _ => format!("unable to execute: {}", super::errno_text(errno as i32)),
            }))
        }
    }
}
