//! Spawning with clone3(2): the child shares the daemon's memory until it
//! execs (`CLONE_VM | CLONE_VFORK`, as glibc's posix_spawn does) and, with
//! `CLONE_INTO_CGROUP`, is born in its job's v2 group.
//!
//! Two costs of the fork path go: fork(2) copies the daemon's page tables
//! and unmaps them again at the exec, a cost that grows with the daemon
//! (10,000 jobs: a third of a mass start's time in `copy_page_range`); and
//! a process that joins its group by writing `cgroup.procs` after the fork
//! is *migrated*, which takes the kernel's cgroup lock for writing and
//! waits for an RCU grace period (milliseconds, and the p99 of a respawn).
//! glibc 2.36 offers neither for a child that must also change its user,
//! limits or root (posix_spawn has no such attributes, and no cgroup before
//! glibc 2.41), so the system call is made here.
//!
//! The child runs [`child_main`] on a stack of its own (mapped once a
//! thread, used by one child at a time: the thread waits until the child
//! has exec'd or exited). It makes only system calls on data the
//! parent prepared; it reports failure by writing the staged error into
//! memory the parent reads once it resumes. All signals are blocked across
//! the clone, so no handler of the daemon's can run on the child's stack
//! before the child resets them, and the child changes its ids by raw
//! system calls (glibc's wrappers would signal the daemon's threads, in a
//! process that has any). Where clone3 is refused (a kernel before
//! 5.7, a seccomp filter) or on another architecture, the caller's fork
//! path runs instead, and it is not tried again.
//!
//! A third cost grows with the daemon too: a child gets a copy of the
//! daemon's descriptor table (a pty and a log file for each `console log`
//! job: 3,000 jobs, 6,000 descriptors), and its exec closes every one of
//! them again. So the parent points a few low descriptors held for the
//! purpose ([`Slots`]) at what the child needs, the child shares the
//! daemon's table (`CLONE_FILES`), and its first act is
//! `close_range(past the slots, ~0, CLOSE_RANGE_UNSHARE)`: a table of its
//! own with only the descriptors below. A kernel that cannot (before 5.9)
//! makes the child say so before it touches anything, and the spawn is
//! made again with a copied table, as it is from then on.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::spawn::Setup;
use super::Output;

/// What became of the spawn.
pub(super) enum Spawned {
    Pid(i32),
    /// The child could not be set up or exec'd: the staged error.
    Failed(io::Error),
    /// clone3 is not available here: use the fork path.
    Unavailable,
}

static UNAVAILABLE: AtomicBool = AtomicBool::new(false);
thread_local! {
    /// This thread's child stack (the daemon has one thread; tests more,
    /// and two children must never share a stack).
    static STACK: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}
const STACK_SIZE: usize = 256 * 1024;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// How many descriptors a child can need from the parent: its output and
/// the `cgroup.procs` files it writes (the v2 group's, and one a v1
/// hierarchy); a child that needs more gets a copy of the whole table.
const SLOTS: usize = 4;
/// Left in [`Ctx::error`] by a child whose kernel would not unshare its
/// descriptor table: it did nothing else, and the spawn is made again.
const NO_UNSHARE: i32 = i32::MAX;

/// Low descriptors held on `/dev/null` (close-on-exec) while no spawn uses
/// them, made at the first spawn, while the daemon's table is still small.
enum Slots {
    Untried,
    Ready {
        null: OwnedFd,
        fds: Vec<OwnedFd>,
    },
    /// The kernel cannot unshare a table with close_range, or the slots
    /// could not be made: every child gets a copy.
    Unavailable,
}

static SLOTS_HELD: Mutex<Slots> = Mutex::new(Slots::Untried);

impl Slots {
    fn make() -> Slots {
        // SAFETY: open(2) and fcntl(F_DUPFD_CLOEXEC) make new descriptors
        // that are owned here from then on.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if null < 0 {
                return Slots::Unavailable;
            }
            let null = OwnedFd::from_raw_fd(null);
            let mut fds = Vec::with_capacity(SLOTS);
            for _ in 0..SLOTS {
                let fd = libc::fcntl(null.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3);
                if fd < 0 {
                    return Slots::Unavailable;
                }
                fds.push(OwnedFd::from_raw_fd(fd));
            }
            Slots::Ready { null, fds }
        }
    }
}

/// The kernel's `struct clone_args` (version 2, with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Everything the child reads, and the one thing it writes.
struct Ctx<'a> {
    setup: &'a Setup,
    /// Descriptor for stdout and stderr; -1: /dev/null; -2: inherited.
    out: i32,
    /// The `cgroup.procs` descriptors the child writes
    /// ([`Setup::apply_joining`]).
    join: &'a [i32],
    /// Non-zero: the child shares the parent's descriptor table and first
    /// unshares it, keeping only the descriptors below this one.
    unshare_from: u32,
    /// Tests only: the child acts as a kernel that cannot unshare.
    refuse_unshare: bool,
    /// Where execvp(3) would look, in its order.
    candidates: &'a [CString],
    argv: &'a [*const libc::c_char],
    /// `/bin/sh FILE ARGS…` for a file without a `#!` (ENOEXEC), as
    /// execvp runs it; slot 1 is filled in by the child.
    sh_argv: *mut *const libc::c_char,
    envp: &'a [*const libc::c_char],
    /// Written by the child before it exits: the staged error.
    error: i32,
}

/// The stack the children run on (mapped once, a guard page below it).
fn stack() -> Option<usize> {
    let have = STACK.with(std::cell::Cell::get);
    if have != 0 {
        return Some(have);
    }
    // SAFETY: an anonymous private mapping, owned by this module for the
    // life of the process; mprotect of its own first page.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            STACK_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return None;
        }
        libc::mprotect(p, 4096, libc::PROT_NONE);
        STACK.with(|s| s.set(p as usize));
        Some(p as usize)
    }
}

/// Where execvp(3) would look for `program` with the job's `PATH`.
fn candidates(program: &str, env: &[(String, String)]) -> Option<Vec<CString>> {
    if program.contains('/') {
        return Some(vec![CString::new(program).ok()?]);
    }
    super::fast_spawn::search_dirs(env)
        .map(|dir| CString::new(format!("{dir}/{program}")).ok())
        .collect()
}

/// Spawns `argv` with `env` and `output`, set up as `setup` says, into the
/// v2 group whose directory is `v2_dir` (if any).
pub(super) fn spawn(
    argv: &[String],
    env: &[(String, String)],
    output: &Output,
    v2_dir: Option<i32>,
    setup: &Setup,
) -> Spawned {
    spawn_sharing(argv, env, output, v2_dir, setup, true)
}

/// [`spawn`]; `may_share`: the child may share the table and unshare it.
fn spawn_sharing(
    argv: &[String],
    env: &[(String, String)],
    output: &Output,
    v2_dir: Option<i32>,
    setup: &Setup,
    may_share: bool,
) -> Spawned {
    if !cfg!(target_arch = "x86_64") || UNAVAILABLE.load(Ordering::Relaxed) || tests::forced() {
        return Spawned::Unavailable;
    }
    let Some(stack) = stack() else {
        return Spawned::Unavailable;
    };
    let nul = || io::Error::from_raw_os_error(libc::EINVAL);
    let Some(candidates) = candidates(&argv[0], env) else {
        return Spawned::Failed(nul());
    };
    let Ok(c_argv) = argv
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return Spawned::Failed(nul());
    };
    let Ok(c_env) = env
        .iter()
        .map(|(k, v)| CString::new(format!("{k}={v}")))
        .collect::<Result<Vec<_>, _>>()
    else {
        return Spawned::Failed(nul());
    };
    let mut argv_ptrs: Vec<*const libc::c_char> = c_argv.iter().map(|c| c.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut sh_ptrs: Vec<*const libc::c_char> = vec![c"/bin/sh".as_ptr(), std::ptr::null()];
    sh_ptrs.extend(c_argv[1..].iter().map(|c| c.as_ptr()));
    sh_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = c_env.iter().map(|c| c.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    let out = match output {
        Output::Null => -1,
        Output::Inherit => -2,
        Output::File(fd) => fd.as_raw_fd(),
    };
    // What the child needs from the parent's table, moved to the slots
    // (held until the child has exec'd, and put back on /dev/null after).
    let mut held = SLOTS_HELD.lock().unwrap_or_else(|e| e.into_inner());
    if matches!(*held, Slots::Untried) {
        *held = Slots::make();
    }
    let wanted: Vec<i32> = (out >= 0)
        .then_some(out)
        .into_iter()
        .chain(setup.to_join(v2_dir.is_some()).iter().copied())
        .collect();
    let mut moved: Vec<i32> = Vec::new();
    if let (Slots::Ready { fds, .. }, true) = (&*held, may_share) {
        if wanted.len() <= fds.len() {
            for (&from, slot) in wanted.iter().zip(fds) {
                // SAFETY: dup2(2) onto a descriptor this module owns; the
                // lock is held, so no other spawn uses it meanwhile.
                if unsafe { libc::dup2(from, slot.as_raw_fd()) } < 0 {
                    break;
                }
                moved.push(slot.as_raw_fd());
            }
        }
    }
    let share = may_share && moved.len() == wanted.len() && matches!(*held, Slots::Ready { .. });
    let (out, join) = if share && out >= 0 {
        (moved[0], &moved[1..])
    } else if share {
        (out, &moved[..])
    } else {
        (out, setup.to_join(v2_dir.is_some()))
    };
    let mut ctx = Ctx {
        setup,
        out,
        join,
        refuse_unshare: tests::refuse_unshare(),
        unshare_from: if share {
            moved.iter().max().map_or(3, |&m| m as u32 + 1)
        } else {
            0
        },
        candidates: &candidates,
        argv: &argv_ptrs,
        sh_argv: sh_ptrs.as_mut_ptr(),
        envp: &env_ptrs,
        error: 0,
    };
    let mut args = CloneArgs {
        flags: (libc::CLONE_VM | libc::CLONE_VFORK) as u64
            | if share { libc::CLONE_FILES as u64 } else { 0 },
        exit_signal: libc::SIGCHLD as u64,
        stack: stack as u64,
        stack_size: STACK_SIZE as u64,
        ..Default::default()
    };
    if let Some(fd) = v2_dir {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: every signal is blocked for the clone and the mask restored
    // after; `ctx` and what it points to live until the child has exec'd
    // or exited (CLONE_VFORK suspends this process until then); the child
    // runs on the module's own stack and never returns into this frame.
    let (ret, error) = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let ret = raw_clone3(&mut args, &mut ctx);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        (ret, std::ptr::read_volatile(&ctx.error))
    };
    if let Slots::Ready { null, .. } = &*held {
        for &slot in &moved {
            // SAFETY: dup3(2) of this module's /dev/null onto its own slot,
            // which lets go of the child's descriptor.
            unsafe { libc::dup3(null.as_raw_fd(), slot, libc::O_CLOEXEC) };
        }
    }
    if ret < 0 {
        let errno = -ret as i32;
        return match errno {
            libc::ENOSYS | libc::EPERM | libc::EINVAL | libc::E2BIG => {
                UNAVAILABLE.store(true, Ordering::Relaxed);
                Spawned::Unavailable
            }
            libc::EAGAIN | libc::ENOMEM => Spawned::Failed(io::Error::from_raw_os_error(errno)),
            // The group refused the process (a group with controllers
            // enabled below it, or no permission): as the write would.
            _ => Spawned::Failed(super::spawn::staged(
                super::spawn::Stage::Cgroup,
                nix::errno::Errno::from_raw(errno),
            )),
        };
    }
    let pid = ret as i32;
    if error == NO_UNSHARE {
        // SAFETY: as below, for the child that just exited.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        if !tests::refuse_unshare() {
            *held = Slots::Unavailable;
        }
        drop(held);
        tests::refused();
        return spawn_sharing(argv, env, output, v2_dir, setup, false);
    }
    if error != 0 {
        // SAFETY: waitpid(2) for the child that just exited, so it does
        // not linger as a zombie nobody reaps for the daemon.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        return Spawned::Failed(io::Error::from_raw_os_error(error));
    }
    Spawned::Pid(pid)
}

/// clone3 with a child that calls [`child_main`] on its new stack.
#[cfg(target_arch = "x86_64")]
unsafe fn raw_clone3(args: *mut CloneArgs, ctx: *mut Ctx) -> isize {
    let ret: isize;
    // SAFETY (the caller's): `args` describes a valid stack; in the child
    // (rax 0) the stack pointer is the new stack's top, 16-byte aligned,
    // and `call` leaves it as a function entry expects; rbp is cleared so
    // no unwinder walks into the parent's frames; child_main never
    // returns. The parent only gets rax back.
    std::arch::asm!(
        "syscall",
        "test rax, rax",
        "jnz 2f",
        "xor ebp, ebp",
        "mov rdi, r12",
        "call {entry}",
        "ud2",
        "2:",
        entry = sym child_main,
        inlateout("rax") libc::SYS_clone3 as isize => ret,
        in("rdi") args,
        in("rsi") std::mem::size_of::<CloneArgs>(),
        in("r12") ctx,
        lateout("rcx") _,
        lateout("r11") _,
        options(nostack),
    );
    ret
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn raw_clone3(_args: *mut CloneArgs, _ctx: *mut Ctx) -> isize {
    -(libc::ENOSYS as isize)
}

/// The child: stdio, the set-up, the exec; on failure the staged error is
/// left in `ctx` and the child exits.
extern "C" fn child_main(ctx: *mut Ctx) -> ! {
    // SAFETY: `ctx` is the parent's, alive and untouched while the parent
    // is suspended; every call below is a system call on descriptors and
    // strings the parent prepared, with no allocation.
    unsafe {
        let ctx = &mut *ctx;
        // Sharing the parent's table: nothing may touch it. A table of
        // its own first, with only the descriptors below the slots'.
        if ctx.unshare_from != 0
            && (ctx.refuse_unshare
                || libc::syscall(
                    libc::SYS_close_range,
                    ctx.unshare_from,
                    libc::c_uint::MAX,
                    libc::CLOSE_RANGE_UNSHARE,
                ) != 0)
        {
            std::ptr::write_volatile(&mut ctx.error, NO_UNSHARE);
            libc::_exit(127)
        }
        let code = match prepare(ctx) {
            Err(e) => e.raw_os_error().unwrap_or(libc::EINVAL),
            Ok(()) => exec(ctx),
        };
        std::ptr::write_volatile(&mut ctx.error, code.max(1));
        libc::_exit(127)
    }
}

/// stdin from /dev/null, stdout and stderr to the capture, then the job's
/// set-up.
unsafe fn prepare(ctx: &Ctx) -> io::Result<()> {
    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
    if null < 0 {
        return Err(io::Error::last_os_error());
    }
    let out = match ctx.out {
        -1 => null,
        -2 => -2,
        fd => fd,
    };
    for (from, to) in [(null, 0), (out, 1), (out, 2)] {
        if from == -2 {
            continue;
        }
        if from == to {
            libc::fcntl(to, libc::F_SETFD, 0);
        } else if libc::dup2(from, to) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    if null > 2 {
        libc::close(null);
    }
    ctx.setup.apply_joining(ctx.join)
}

/// execvp(3)'s search over the prepared candidates; returns the errno it
/// would (EACCES if any candidate was not executable, else the last).
unsafe fn exec(ctx: &Ctx) -> i32 {
    let mut denied = false;
    let mut last = libc::ENOENT;
    for path in ctx.candidates {
        libc::execve(path.as_ptr(), ctx.argv.as_ptr(), ctx.envp.as_ptr());
        let e = *libc::__errno_location();
        match e {
            libc::ENOEXEC => {
                *ctx.sh_argv.add(1) = path.as_ptr();
                libc::execve(c"/bin/sh".as_ptr(), ctx.sh_argv, ctx.envp.as_ptr());
                return *libc::__errno_location();
            }
            libc::EACCES => denied = true,
            libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
            _ => return e,
        }
        last = e;
    }
    if denied {
        libc::EACCES
    } else {
        last
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::cell::Cell;

    thread_local! {
        static FORK: Cell<bool> = const { Cell::new(false) };
        static REFUSE: Cell<bool> = const { Cell::new(false) };
        static REFUSALS: Cell<u32> = const { Cell::new(0) };
    }

    /// This test thread's spawns take the fork path.
    pub fn force_fork() {
        FORK.with(|f| f.set(true));
    }

    pub fn forced() -> bool {
        FORK.with(Cell::get)
    }

    /// This test thread's children act as on a kernel that cannot unshare
    /// a descriptor table (the other threads' keep sharing).
    pub fn force_refusal() {
        REFUSE.with(|f| f.set(true));
    }

    pub fn refuse_unshare() -> bool {
        REFUSE.with(Cell::get)
    }

    pub fn refused() {
        REFUSALS.with(|n| n.set(n.get() + 1));
    }

    /// How many of this thread's spawns were made again with a copy.
    pub fn refusals() -> u32 {
        REFUSALS.with(Cell::get)
    }
}

#[cfg(not(test))]
mod tests {
    pub fn forced() -> bool {
        false
    }

    pub fn refuse_unshare() -> bool {
        false
    }

    pub fn refused() {}
}
