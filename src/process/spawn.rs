//! Spawning a job's process: the command line (Upstart's shell rule), the
//! child's set-up in one `pre_exec` (session, limits, umask, nice, oom
//! score, chroot, chdir, groups, gid, uid), and Upstart's error texts. Jobs
//! that change none of user, group, root, limits, priority or OOM score go
//! the faster way of `fast_spawn.rs`.

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command as StdCommand, Stdio};

use nix::errno::Errno;
use nix::sys::resource::{setrlimit, Resource as Rlimit};
use nix::unistd::{self, Gid, Group, Uid, User};

use super::fast_spawn::Refused;
use super::Output;
use crate::conf::{Command, JobClass, Resource};

/// Upstart sends `exec` lines with any of these through `/bin/sh -e -c`.
const SHELL_CHARS: &[char] = &[
    '~', '`', '!', '$', '^', '&', '*', '(', ')', '=', '|', '\\', '{', '}', '[', ']', ';', '"',
    '\'', '<', '>', '?',
];

/// Longest script passed to the shell (one argument may not exceed 128 KiB).
pub const MAX_SCRIPT_BYTES: usize = 128 * 1024 - 1;

/// The argv for a job command, as Upstart builds it.
pub fn argv(cmd: &Command) -> Result<Vec<String>, String> {
    let sh = |script: String| {
        vec![
            "/bin/sh".into(),
            "-e".into(),
            "-c".into(),
            script,
            "/bin/sh".into(),
        ]
    };
    match cmd {
        Command::Exec(line) => {
            if line.contains(SHELL_CHARS) {
                Ok(sh(format!("exec {line}")))
            } else {
                let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
                if words.is_empty() {
                    return Err("unable to execute: empty command".into());
                }
                Ok(words)
            }
        }
        Command::Script(body) => {
            if body.len() > MAX_SCRIPT_BYTES {
                return Err(format!(
                    "unable to execute: script longer than {} bytes",
                    MAX_SCRIPT_BYTES
                ));
            }
            Ok(sh(body.clone()))
        }
    }
}

/// Everything needed to spawn one process of a job.
pub struct SpawnSpec<'a> {
    pub class: &'a JobClass,
    pub command: &'a Command,
    /// The whole environment, `KEY=VALUE`.
    pub env: &'a [(String, String)],
    pub output: Output,
    /// Working directory when the job sets none (`/` for a system daemon).
    pub default_dir: Option<&'a str>,
    /// The open-files limit the daemon started with, given back to jobs.
    pub original_nofile: Option<(u64, u64)>,
    /// The `cgroup.procs` of each group the process joins, first thing in
    /// the child (so it never runs outside them).
    pub join: Option<&'a crate::cgroup::groups::Join>,
    /// What the process asks of AppArmor (`super::apparmor`).
    pub apparmor: super::apparmor::Confinement,
}

/// Steps of the child's set-up, to name what failed.
#[derive(Clone, Copy)]
#[repr(i32)]
pub(super) enum Stage {
    Setsid = 1,
    Rlimit = 2,
    Nice = 3,
    Oom = 4,
    Chroot = 5,
    Chdir = 6,
    Groups = 7,
    Setgid = 8,
    Setuid = 9,
    Cgroup = 10,
    AppArmor = 11,
}

/// `pre_exec` can only hand an errno back to the parent: the stage (and,
/// for limits, which resource) ride in the high bits; Linux errno values
/// are below 256.
pub(super) fn staged(stage: Stage, e: Errno) -> io::Error {
    staged_with(stage, 0, e)
}

fn staged_with(stage: Stage, extra: u8, e: Errno) -> io::Error {
    io::Error::from_raw_os_error(
        ((stage as i32) << 16) | (i32::from(extra) << 8) | ((e as i32) & 0xff),
    )
}

pub(super) fn describe(err: &io::Error) -> String {
    let code = err.raw_os_error().unwrap_or(0);
    let (stage, extra, errno) = (code >> 16, (code >> 8) & 0xff, Errno::from_raw(code & 0xff));
    let resource = Resource::ALL.get(extra as usize).map_or("?", |r| r.name());
    let why = super::errno_text(errno as i32);
    match stage {
        1 => format!("unable to create session: {why}"),
        2 => format!("unable to set \"{resource}\" resource limit: {why}"),
        3 => format!("unable to set priority: {why}"),
        4 => format!("unable to set oom adjustment: {why}"),
        5 => format!("unable to change root directory: {why}"),
        6 => format!("unable to change working directory: {why}"),
        7 => format!("unable to set supplementary groups: {why}"),
        8 => format!("unable to setgid: {why}"),
        9 => format!("unable to setuid: {why}"),
        10 => format!("unable to join the job's cgroup: {why}"),
        11 => format!("unable to switch to the AppArmor profile: {why}"),
        _ => match err.raw_os_error() {
            // fork(2) itself failed: the user's process limit, or memory.
            Some(libc::EAGAIN | libc::ENOMEM) => format!("unable to fork: {why}"),
            Some(_) => format!("unable to execute: {why}"),
            None => format!("unable to execute: {err}"),
        },
    }
}

fn rlimit_of(r: Resource) -> Rlimit {
    match r {
        Resource::As => Rlimit::RLIMIT_AS,
        Resource::Core => Rlimit::RLIMIT_CORE,
        Resource::Cpu => Rlimit::RLIMIT_CPU,
        Resource::Data => Rlimit::RLIMIT_DATA,
        Resource::Fsize => Rlimit::RLIMIT_FSIZE,
        Resource::Memlock => Rlimit::RLIMIT_MEMLOCK,
        Resource::Msgqueue => Rlimit::RLIMIT_MSGQUEUE,
        Resource::Nice => Rlimit::RLIMIT_NICE,
        Resource::Nofile => Rlimit::RLIMIT_NOFILE,
        Resource::Nproc => Rlimit::RLIMIT_NPROC,
        Resource::Rss => Rlimit::RLIMIT_RSS,
        Resource::Rtprio => Rlimit::RLIMIT_RTPRIO,
        Resource::Sigpending => Rlimit::RLIMIT_SIGPENDING,
        Resource::Stack => Rlimit::RLIMIT_STACK,
    }
}

/// Spawns the process; returns its pid, or Upstart's description of what
/// went wrong. Never waits for the child (the daemon's reaper does).
pub fn spawn(spec: SpawnSpec) -> Result<i32, String> {
    let class = spec.class;
    let mut argv = argv(spec.command)?;
    // `apparmor load`: the parser runs first, in the process itself, and
    // the switch (if any) is asked for after it.
    let mut switch = spec.apparmor.switch;
    if let Some(profile) = &spec.apparmor.load {
        let name = switch
            .take()
            .map(|r| r.to_string_lossy().trim_start_matches("exec ").to_string());
        argv = super::apparmor::load_then(profile, name.as_deref(), argv);
    }

    // Look users and groups up here, in the parent: after fork only
    // system calls are made.
    let user = match &class.setuid {
        Some(name) => Some(
            User::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| "unable to find setuid user".to_string())?,
        ),
        None => None,
    };
    let gid: Option<Gid> = match &class.setgid {
        Some(name) => Some(
            Group::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| "unable to find setgid group".to_string())?
                .gid,
        ),
        None => user.as_ref().map(|u| u.gid),
    };
    let uid: Option<Uid> = user.as_ref().map(|u| u.uid);
    let running_as_root = unistd::geteuid().is_root();
    // Supplementary groups: the target user's, when root can set them.
    let groups: Option<Vec<Gid>> = match (&user, running_as_root) {
        (Some(u), true) => {
            let cname = CString::new(u.name.as_str())
                .map_err(|_| "unable to find setuid user".to_string())?;
            Some(
                unistd::getgrouplist(&cname, gid.unwrap_or(u.gid)).map_err(|e| {
                    format!("unable to get groups: {}", super::errno_text(e as i32))
                })?,
            )
        }
        (None, true) if gid.is_some() => Some(vec![gid.unwrap_or(Gid::from_raw(0))]),
        _ => None,
    };

    let mut limits: Vec<(Resource, u64, u64)> = Vec::new();
    if let Some((soft, hard)) = spec.original_nofile {
        if !class.limits.contains_key(&Resource::Nofile) {
            limits.push((Resource::Nofile, soft, hard));
        }
    }
    for (res, lim) in &class.limits {
        let v = |x: Option<u64>| x.unwrap_or(libc::RLIM_INFINITY);
        limits.push((*res, v(lim.soft), v(lim.hard)));
    }

    let chroot = class
        .chroot
        .as_ref()
        .map(|d| CString::new(d.as_str()))
        .transpose()
        .map_err(|_| "unable to change root directory: invalid path".to_string())?;
    let chdir = class
        .chdir
        .as_deref()
        .or(spec.default_dir)
        .map(CString::new)
        .transpose()
        .map_err(|_| "unable to change working directory: invalid path".to_string())?;
    let umask = class.umask;
    let nice = class.nice;
    let oom = class.oom_score;

    // Nothing to change but the session, signals, stdio, directory, umask
    // and open-files limit: posix_spawn does it all, faster.
    let mut output = spec.output;
    if uid.is_none()
        && gid.is_none()
        && groups.is_none()
        && chroot.is_none()
        && nice.is_none()
        && oom == 0
        && class.limits.is_empty()
        && spec.join.is_none()
        && switch.is_none()
    {
        let dir = class.chdir.as_deref().or(spec.default_dir);
        match super::fast_spawn::spawn(&argv, spec.env, output, dir, umask, spec.original_nofile) {
            Ok(pid) => return Ok(pid),
            Err(Refused::Error(e)) => return Err(e),
            Err(Refused::TrySlowPath(back)) => output = back,
        }
    }

    let v2_dir = spec
        .join
        .and_then(|j| j.dir.as_ref())
        .map(|d| d.as_raw_fd());
    let setup = Setup {
        join: spec
            .join
            .map(|j| j.procs.iter().map(|fd| fd.as_raw_fd()).collect())
            .unwrap_or_default(),
        v2_first: v2_dir.is_some(),
        switch,
        limits,
        umask,
        nice,
        oom,
        chroot,
        chdir,
        groups,
        gid,
        uid,
    };
    match super::clone3::spawn(&argv, spec.env, &output, v2_dir, &setup) {
        super::clone3::Spawned::Pid(pid) => return Ok(pid),
        super::clone3::Spawned::Failed(code) => return Err(describe(&code)),
        super::clone3::Spawned::Unavailable => {}
    }

    let mut cmd = StdCommand::new(&argv[0]);
    cmd.args(&argv[1..]);
    cmd.env_clear();
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
    cmd.stdin(Stdio::null());
    match output {
        Output::Null => {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        Output::Inherit => {
            cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
        }
        Output::File(fd) => {
            let dup = fd
                .try_clone()
                .map_err(|e| format!("unable to open log: {e}"))?;
            cmd.stdout(Stdio::from(fd)).stderr(Stdio::from(dup));
        }
    }
    // SAFETY: the closure runs in the child between fork and exec. The
    // daemon is single-threaded, so no lock can be held by another thread;
    // `apply` makes only system calls and reads data prepared above.
    unsafe {
        cmd.pre_exec(move || setup.apply(false));
    }
    match cmd.spawn() {
        Ok(child) => Ok(child.id() as i32),
        Err(e) => Err(describe(&e)),
    }
}

/// What the child does between fork and exec, prepared in the parent:
/// after the fork only system calls are made (no allocation, no lock), so
/// the same steps serve a forked child and one that shares the daemon's
/// memory (`clone3.rs`).
pub(super) struct Setup {
    /// The `cgroup.procs` of each group the process joins.
    join: Vec<i32>,
    /// The first of `join` is the v2 group's, skipped when the process was
    /// cloned into that group.
    v2_first: bool,
    switch: Option<CString>,
    limits: Vec<(Resource, u64, u64)>,
    umask: u32,
    nice: Option<i32>,
    oom: i32,
    chroot: Option<CString>,
    chdir: Option<CString>,
    groups: Option<Vec<Gid>>,
    gid: Option<Gid>,
    uid: Option<Uid>,
}

impl Setup {
    /// The child's steps, in order; `cloned_into_v2`: the process was
    /// created in its v2 group already. The error names the stage.
    pub(super) fn apply(&self, cloned_into_v2: bool) -> io::Result<()> {
        self.apply_joining(self.to_join(cloned_into_v2))
    }

    /// The `cgroup.procs` descriptors the child writes itself: all but the
    /// v2 group's when it was cloned into that group.
    pub(super) fn to_join(&self, cloned_into_v2: bool) -> &[i32] {
        let skip = usize::from(cloned_into_v2 && self.v2_first);
        &self.join[skip..]
    }

    /// [`Setup::apply`], writing the group files `join` ([`Setup::to_join`]'s,
    /// or the same files moved to other descriptors by the parent).
    pub(super) fn apply_joining(&self, join: &[i32]) -> io::Result<()> {
        // Into the job's groups before anything else: "0" is the writer
        // itself.
        for &fd in join {
            // SAFETY: write(2) of a one-byte literal to a descriptor the
            // parent opened and keeps open until the spawn returns.
            if unsafe { libc::write(fd, c"0".as_ptr().cast(), 1) } != 1 {
                return Err(staged(Stage::Cgroup, Errno::last()));
            }
        }
        close_inherited_fds();
        reset_signals();
        unistd::setsid().map_err(|e| staged(Stage::Setsid, e))?;
        // As Upstart: the profile is asked for first, applied at exec.
        if let Some(request) = &self.switch {
            super::apparmor::request_exec_profile(request)
                .map_err(|e| staged(Stage::AppArmor, e))?;
        }
        for &(res, soft, hard) in &self.limits {
            if let Err(e) = setrlimit(rlimit_of(res), soft, hard) {
                let idx = Resource::ALL.iter().position(|&r| r == res).unwrap_or(0);
                return Err(staged_with(Stage::Rlimit, idx as u8, e));
            }
        }
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
            self.umask as libc::mode_t,
        ));
        if let Some(n) = self.nice {
            // SAFETY: setpriority(2) on this process only.
            if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, n) } != 0 {
                return Err(staged(Stage::Nice, Errno::last()));
            }
        }
        if self.oom != 0 {
            match write_oom_score(self.oom) {
                // Lowering the score takes CAP_SYS_RESOURCE, which a
                // container's root often lacks: the job runs with the
                // score it has, as systemd's OOMScoreAdjust= does,
                // rather than not at all (Upstart refused to spawn).
                Err(Errno::EACCES | Errno::EPERM) => {}
                r => r.map_err(|e| staged(Stage::Oom, e))?,
            }
        }
        if let Some(root) = &self.chroot {
            unistd::chroot(root.as_c_str()).map_err(|e| staged(Stage::Chroot, e))?;
            if self.chdir.is_none() {
                unistd::chdir(c"/").map_err(|e| staged(Stage::Chroot, e))?;
            }
        }
        if let Some(dir) = &self.chdir {
            unistd::chdir(dir.as_c_str()).map_err(|e| staged(Stage::Chdir, e))?;
        }
        // The raw system calls, not glibc's wrappers: in a process with
        // threads the wrappers make every thread change its ids too
        // (signalling them), and a child that shares the daemon's memory
        // would find the daemon's threads in glibc's list. The kernel
        // changes the ids of the calling thread, the child's only one.
        if let Some(groups) = &self.groups {
            // SAFETY: setgroups(2) with the length and pointer of a live
            // slice of gid_t.
            let r = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
            if r != 0 {
                return Err(staged(Stage::Groups, Errno::last()));
            }
        }
        if let Some(g) = self.gid {
            // SAFETY: setgid(2) of this process.
            if unsafe { libc::syscall(libc::SYS_setgid, g.as_raw()) } != 0 {
                return Err(staged(Stage::Setgid, Errno::last()));
            }
        }
        if let Some(u) = self.uid {
            // SAFETY: setuid(2) of this process.
            if unsafe { libc::syscall(libc::SYS_setuid, u.as_raw()) } != 0 {
                return Err(staged(Stage::Setuid, Errno::last()));
            }
        }
        Ok(())
    }
}

/// Marks every descriptor above stderr close-on-exec, so a job gets only
/// its stdio: descriptors the daemon inherited from whoever started it (a
/// build tool's jobserver pipe, a terminal) must not leak into jobs and keep
/// pipes or files open behind everyone's back. Close-on-exec rather than
/// closed, because std's exec-error pipe must live until the exec. The
/// daemon does it to itself once at start (for the posix_spawn path), and
/// the slow path again in each child.
pub fn close_inherited_fds() {
    // SAFETY: close_range(2) and fcntl(2) only change this process's
    // descriptor flags (in the daemon at start, or in a child before exec).
    unsafe {
        if libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) == 0
        {
            return;
        }
        // Kernels before 5.11: one fcntl per possible descriptor.
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur.min(1 << 16) as i32
        } else {
            1024
        };
        for fd in 3..max {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// Gives the child default signal dispositions and an empty mask: the
/// daemon blocks the signals it reads from its signalfd, and whoever
/// started the daemon may have ignored some (a shell's `&` ignores SIGINT
/// and SIGQUIT); neither must leak into jobs.
pub(super) fn reset_signals() {
    // SAFETY: called in the child between fork and exec; sigemptyset,
    // sigprocmask and rt_sigaction(2) (with a struct laid out as the
    // kernel's, no handler) only change this process's own signal state.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        // The raw system call: glibc's signal() refuses its two internal
        // signals (32, 33), which a parent's posix_spawn leaves ignored.
        #[repr(C)]
        struct KernelSigaction {
            handler: libc::sighandler_t,
            flags: libc::c_ulong,
            restorer: usize,
            mask: u64,
        }
        let dfl = KernelSigaction {
            handler: libc::SIG_DFL,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        for sig in 1..=64 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    &dfl as *const KernelSigaction,
                    std::ptr::null_mut::<KernelSigaction>(),
                    8usize,
                );
            }
        }
    }
}

/// Writes `/proc/self/oom_score_adj` with raw system calls.
fn write_oom_score(score: i32) -> Result<(), Errno> {
    let mut buf = [0u8; 16];
    let s = {
        use std::io::Write;
        let mut cur = io::Cursor::new(&mut buf[..]);
        let _ = write!(cur, "{score}");
        let n = cur.position() as usize;
        &buf[..n]
    };
    // SAFETY: a NUL-terminated literal path; the fd is closed below.
    let fd = unsafe {
        libc::open(
            c"/proc/self/oom_score_adj".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `s` is a valid buffer of s.len() bytes; fd is open.
    let n = unsafe { libc::write(fd, s.as_ptr().cast(), s.len()) };
    let err = Errno::last();
    // SAFETY: fd was opened above and is closed once.
    unsafe { libc::close(fd) };
    if n < 0 {
        return Err(err);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstart_shell_rule() {
        let e = |s: &str| argv(&Command::Exec(s.into())).unwrap();
        assert_eq!(e("/bin/sleep  10"), ["/bin/sleep", "10"]);
        assert_eq!(
            e("foo --opt=1"),
            ["/bin/sh", "-e", "-c", "exec foo --opt=1", "/bin/sh"]
        );
        assert_eq!(
            e("echo $HOME"),
            ["/bin/sh", "-e", "-c", "exec echo $HOME", "/bin/sh"]
        );
        let s = argv(&Command::Script("echo a\necho b\n".into())).unwrap();
        assert_eq!(s, ["/bin/sh", "-e", "-c", "echo a\necho b\n", "/bin/sh"]);
    }

    /// Spawns `exec` of a job with `stanzas` (a `nice`, so never the
    /// posix_spawn path) and returns its exit status and output.
    fn run(
        stanzas: &str,
        exec: &str,
        env: &[(&str, &str)],
        fork: bool,
    ) -> Result<(i32, String), String> {
        if fork {
            super::super::clone3::tests::force_fork();
        }
        let text = format!("nice 5\n{stanzas}exec {exec}\n");
        let class = crate::conf::parse_job("t", text.as_bytes()).expect("job");
        let command = Command::Exec(exec.into());
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (read, write) = nix::unistd::pipe().expect("pipe");
        let pid = spawn(SpawnSpec {
            class: &class,
            command: &command,
            env: &env,
            output: Output::File(write),
            default_dir: Some("/"),
            original_nofile: None,
            join: None,
            apparmor: Default::default(),
        })?;
        let mut out = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(read), &mut out).expect("read");
        let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).expect("wait");
        match status {
            nix::sys::wait::WaitStatus::Exited(_, code) => Ok((code, out)),
            other => panic!("{other:?}"),
        }
    }

    fn both(check: impl Fn(bool) + Sync) {
        for fork in [false, true] {
            std::thread::scope(|s| {
                s.spawn(|| check(fork)).join().expect("check");
            });
        }
    }

    /// The child has its stdin, stdout and stderr and nothing else of this
    /// process (here a descriptor left without close-on-exec): when it
    /// shared the table and unshared it, when its kernel would not unshare
    /// (the spawn made again with a copied table), and on the fork path.
    #[test]
    fn the_child_has_only_its_three_descriptors_on_every_path() {
        let leak = nix::fcntl::open(
            "/dev/null",
            nix::fcntl::OFlag::O_RDONLY,
            nix::sys::stat::Mode::empty(),
        )
        .expect("open");
        for (refuse, fork) in [(false, false), (true, false), (false, true)] {
            std::thread::scope(|s| {
                s.spawn(|| {
                    if refuse {
                        super::super::clone3::tests::force_refusal();
                    }
                    // ls's own: 3, the directory it reads.
                    let ls = "/bin/ls /proc/self/fd";
                    let (code, out) = run("", ls, &[], fork).expect("spawn");
                    assert_eq!((code, out.as_str()), (0, "0\n1\n2\n3\n"), "{refuse} {fork}");
                    let refusals = super::super::clone3::tests::refusals();
                    assert_eq!(refusals, u32::from(refuse));
                })
                .join()
                .expect("check");
            });
        }
        drop(leak);
    }

    #[test]
    fn the_child_gets_its_settings_environment_and_output() {
        both(|fork| {
            let (code, out) = run(
                "umask 077\nchdir /tmp\n",
                "/bin/sh -c 'echo $FOO $(umask) $(pwd) $(nice); exit 3'",
                &[("FOO", "bar"), ("PATH", "/usr/bin:/bin")],
                fork,
            )
            .expect("spawn");
            assert_eq!(
                (code, out.as_str()),
                (3, "bar 0077 /tmp 5\n"),
                "fork path: {fork}"
            );
        });
    }

    #[test]
    fn the_program_is_found_on_the_jobs_path_and_a_script_without_hash_bang_runs_with_sh() {
        both(|fork| {
            let dir = tempfile::tempdir().expect("dir");
            let script = dir.path().join("plain");
            // Written by another process: a descriptor open for writing in
            // this one could leak into another test's fork (ETXTBSY).
            let made = std::process::Command::new("/bin/sh")
                .args([
                    "-c",
                    "printf 'echo from-sh \"$@\"\\n' > \"$1\"; chmod 755 \"$1\"",
                    "sh",
                ])
                .arg(&script)
                .status()
                .expect("sh");
            assert!(made.success());
            let path = format!("/nonexistent:{}", dir.path().display());
            let (code, out) = run("", "plain a b", &[("PATH", &path)], fork).expect("spawn");
            assert_eq!(
                (code, out.as_str()),
                (0, "from-sh a b\n"),
                "fork path: {fork}"
            );
        });
    }

    /// The ids change by raw system calls, also in this process of many
    /// threads (the test harness's) where glibc's wrappers would signal
    /// every thread; without root, the change is refused and said so.
    #[test]
    fn the_child_takes_the_jobs_user_and_group() {
        both(|fork| {
            let got = run(
                "setuid nobody\nsetgid nogroup\n",
                "/bin/sh -c 'id -u; id -g'",
                &[],
                fork,
            );
            let Ok((code, out)) = got else {
                assert!(!unistd::geteuid().is_root(), "{got:?}");
                assert_eq!(
                    got.unwrap_err(),
                    "unable to setgid: Operation not permitted"
                );
                return;
            };
            let nobody = User::from_name("nobody").unwrap().unwrap().uid.as_raw();
            let nogroup = Group::from_name("nogroup").unwrap().unwrap().gid.as_raw();
            assert_eq!(
                (code, out),
                (0, format!("{nobody}\n{nogroup}\n")),
                "fork path: {fork}"
            );
        });
    }

    #[test]
    fn failures_are_told_in_upstarts_words() {
        both(|fork| {
            let missing = run("", "no-such-program-here", &[("PATH", "/bin")], fork);
            assert_eq!(
                missing.unwrap_err(),
                "unable to execute: No such file or directory",
                "fork path: {fork}"
            );
            let dir = run("chdir /no/such/dir\n", "/bin/true", &[], fork);
            assert_eq!(
                dir.unwrap_err(),
                "unable to change working directory: No such file or directory",
                "fork path: {fork}"
            );
        });
    }
}
