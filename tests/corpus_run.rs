//! Real job files from `shared/corpus/upstart/`, byte for byte, running the
//! programs Debian and PyPI ship, under a root daemon: each reaches
//! `start/running` (or finishes, for a task), answers as its program
//! should, and stops with nothing left behind.
//!
//! These tests set up what each job expects on the machine (files in /etc,
//! a user, links in /usr/local) and take it away again, so they run only in
//! CI (`CI` set) or when asked (`UPKEEP_SYSTEM_TESTS=1`), as root, and show
//! as ignored otherwise; under CI a missing program is a failure. `.ci/run` installs the programs: nginx,
//! redis-server, memcached, supervisor, stunnel4, and a venv with gunicorn
//! (`UPKEEP_E2E_VENV`, `/opt/upkeep-e2e/venv` by default).

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::daemon::{alive, Daemon, DEADLINE};
use common::runner::{need_corpus, need_e2e_venv, need_program, need_system_tests, Missing};

/// One job at a time: several use the same system paths and ports.
static MACHINE: Mutex<()> = Mutex::new(());

/// The corpus file's bytes, once this machine may and can run it.
fn corpus_job(file: &str, programs: &[&str]) -> Result<String, Missing> {
    need_system_tests()?;
    let dir = need_corpus()?;
    for p in programs {
        need_program(p)?;
    }
    Ok(fs::read_to_string(dir.join(file)).expect("corpus file"))
}

/// What a test put on the machine; taken away when dropped, last first.
#[derive(Default)]
struct Setup {
    made: Vec<PathBuf>,
}

impl Setup {
    fn file(&mut self, path: &str, text: &str) -> &mut Self {
        let p = PathBuf::from(path);
        self.dirs(p.parent().unwrap());
        assert!(!p.exists(), "{path} is already there; not touching it");
        fs::write(&p, text).unwrap();
        self.made.push(p);
        self
    }

    fn link(&mut self, path: &str, target: &Path) -> &mut Self {
        let p = PathBuf::from(path);
        self.dirs(p.parent().unwrap());
        assert!(
            p.symlink_metadata().is_err(),
            "{path} is already there; not touching it"
        );
        std::os::unix::fs::symlink(target, &p).unwrap();
        self.made.push(p);
        self
    }

    fn dirs(&mut self, dir: &Path) {
        if dir.exists() {
            return;
        }
        self.dirs(dir.parent().unwrap());
        fs::create_dir(dir).unwrap();
        self.made.push(dir.to_path_buf());
    }

    /// The binary under Upstart's command names, where jobs' PATH finds it.
    fn commands(&mut self, names: &[&str]) -> &mut Self {
        for n in names {
            self.link(&format!("/usr/local/sbin/{n}"), &common::upkeep_bin());
        }
        self
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        for p in self.made.iter().rev() {
            if p.is_dir() && !p.is_symlink() {
                let _ = fs::remove_dir_all(p);
            } else {
                let _ = fs::remove_file(p);
            }
        }
    }
}

/// Sends `request` and reads the answer: to the end for HTTP/1.0, the
/// first read otherwise (redis and memcached keep the connection open).
fn ask(port: u16, request: &[u8]) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(DEADLINE))?;
    s.write_all(request)?;
    let mut buf = Vec::new();
    if request.starts_with(b"GET ") {
        s.read_to_end(&mut buf)?;
    } else {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Asks until the answer starts with `want` (a service may still be
/// binding its port when its job is reported running).
fn wait_answer(port: u16, request: &[u8], want: &str) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let last = match ask(port, request) {
            Ok(a) if a.starts_with(want) => return a,
            Ok(a) => a,
            Err(e) => e.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "port {port} never answered {want:?}: {last}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

const HTTP: &[u8] = b"GET / HTTP/1.0\r\n\r\n";

/// Every process in the group of the job's main process, and the daemon's
/// other children: what must all be gone after `stop`.
fn processes_of(d: &Daemon, job: &str) -> Vec<i32> {
    let pgid = d.main_pid(job).expect("a main process");
    let mut pids = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // SAFETY: getpgid(2) on any pid only reads.
        if unsafe { libc::getpgid(pid) } == pgid || parent_of(pid) == Some(d.pid() as i32) {
            pids.push(pid);
        }
    }
    pids
}

fn parent_of(pid: i32) -> Option<i32> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// How `stop` ends.
enum Stop {
    Clean,
    /// The job's own post-stop fails (as it did under Upstart): `stop`
    /// says so, and the job is down all the same.
    PostStopFails,
}

/// Starts `job` (it may have started already on a boot event), waits for
/// it to run, runs `check`, stops it, and checks that nothing is left.
fn run_and_stop(d: &Daemon, job: &str, stop: Stop, check: impl Fn(&Daemon)) {
    let out = d.ctl(&["start", job]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || text.contains("Job is already running"),
        "start {job}: {text}\n{}",
        d.log_lines().join("\n")
    );
    d.wait_status_text(job, "running", |t| t.contains("start/running, process "));
    check(d);
    let pids = processes_of(d, job);
    match stop {
        Stop::Clean => {
            let out = d.ok(&["stop", job]);
            assert!(out.starts_with(&format!("{job} stop/waiting\n")), "{out}");
        }
        Stop::PostStopFails => {
            let err = d.fails(&["stop", job]);
            assert!(
                err.contains(
                    "Job failed while stopping: post-stop process terminated with status 1"
                ),
                "{err}"
            );
            let status = d.ok(&["status", job]);
            assert!(
                status.starts_with(&format!("{job} stop/waiting\n")),
                "{status}"
            );
        }
    }
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left: Vec<i32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left after stop: {left:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn daemon(name: &str, text: &str) -> Daemon {
    Daemon::builder().run_as_root().job(name, text).start()
}

fn redis_061_through_su_with_oom_never() -> Result<(), Missing> {
    let job = corpus_job("061-redis.conf", &["/usr/bin/redis-server", "/usr/bin/su"])?;
    let _lock = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = Setup::default();
    // The job was written for a layout with redis in /usr/sbin.
    s.link("/usr/sbin/redis-server", Path::new("/usr/bin/redis-server"));
    s.file(
        "/etc/redis/redgate.conf",
        "bind 127.0.0.1\nport 16391\ndaemonize no\nlogfile \"\"\nsave \"\"\ndir /var/lib/redis\n",
    );
    let d = daemon("redis", &job);
    run_and_stop(&d, "redis", Stop::Clean, |d| {
        wait_answer(16391, b"PING\r\n", "+PONG");
        let pid = d.main_pid("redis").unwrap();
        let oom = fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap();
        // Lowering takes CAP_SYS_RESOURCE, which a container's root may
        // lack; then the job runs with the score it inherited.
        let status = fs::read_to_string("/proc/self/status").unwrap();
        let caps = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .unwrap();
        if u64::from_str_radix(caps.trim(), 16).unwrap() & (1 << 24) != 0 {
            assert_eq!(oom.trim(), "-1000", "oom never");
        } else {
            let inherited = fs::read_to_string(format!("/proc/{}/oom_score_adj", d.pid())).unwrap();
            assert_eq!(
                oom.trim(),
                inherited.trim(),
                "the daemon's score, inherited"
            );
        }
        d.wait_log_file("redis.log", "Ready to accept connections");
    });
    Ok(())
}

fn nginx_050_in_the_foreground() -> Result<(), Missing> {
    let job = corpus_job("050-nginx-minimal.conf", &["/usr/sbin/nginx"])?;
    let _lock = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = Setup::default();
    s.link("/opt/nginx/sbin/nginx", Path::new("/usr/sbin/nginx"));
    let d = daemon("nginx", &job);
    run_and_stop(&d, "nginx", Stop::Clean, |_| {
        wait_answer(80, HTTP, "HTTP/1.1 ");
    });
    Ok(())
}

fn nginx_058_expect_fork_and_a_post_stop() -> Result<(), Missing> {
    let job = corpus_job("058-nginx-obsqure.conf", &["/usr/sbin/nginx"])?;
    let _lock = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let d = daemon("nginx", &job);
    run_and_stop(&d, "nginx", Stop::PostStopFails, |d| {
        wait_answer(80, HTTP, "HTTP/1.1 ");
        // The main process is nginx's master, not the process that forked.
        let pid = d.main_pid("nginx").unwrap();
        let cmd = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(cmd.starts_with("nginx: master process"), "{cmd}");
    });
    Ok(())
}

fn nginx_006_pre_stop_asks_initctl_for_its_own_pid() -> Result<(), Missing> {
    let job = corpus_job("006-nginx-anrdaemon.conf", &["/usr/sbin/nginx"])?;
    let _lock = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = Setup::default();
    s.commands(&["initctl"]);
    // The job runs nginx with `-p /etc/nginx`, as nginx.org's packages lay
    // it out: Debian's module paths are relative to that prefix.
    if !Path::new("/etc/nginx/modules").exists() {
        s.link("/etc/nginx/modules", Path::new("/usr/lib/nginx/modules"));
    }
    let d = daemon("nginx", &job);
    run_and_stop(&d, "nginx", Stop::Clean, |_| {
        wait_answer(80, HTTP, "HTTP/1.1 ");
    });
    // The pre-stop found the pid with `initctl status nginx` and signalled
    // it: it failed otherwise, and the failure would be logged.
    d.wait_log("nginx pre-stop process");
    assert!(
        !d.log_lines()
            .iter()
            .any(|l| l.contains("pre-stop process") && l.contains("terminated")),
        "{}",
        d.log_lines().join("\n")
    );
    Ok(())
}

fn nginx_045_post_stop_uses_start_stop_daemon() -> Result<(), Missing> {
    let job = corpus_job(
        "045-nginx-hobson.conf",
        &["/usr/sbin/nginx", "/usr/sbin/start-stop-daemon"],
    )?;
    let _lock = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let d = daemon("nginx", &job);
    run_and_stop(&d, "nginx", Stop::PostStopFails, |_| {
        wait_answer(80, HTTP, "HTTP/1.1 ");
    });
    d.wait_log("nginx post-stop process");
    Ok(())
}

fn memcached_091_an_instance_through_a_double_forking_script() -> Result<(), Missing> {
    let job = corpus_job(
        "091-memcached-server.conf",
        &[
            "/usr/bin/memcached",
            "/usr/share/memcached/scripts/start-memcached",
        ],
    )?;
    let _lock = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let d = daemon("memcached-server", &job);
    run_and_stop(&d, "memcached-server", Stop::Clean, |d| {
        wait_answer(11211, b"version\r\n", "VERSION ");
        let pid = d.main_pid("memcached-server").unwrap();
        let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert_eq!(
            exe,
            Path::new("/usr/bin/memcached"),
            "expect daemon follows"
        );
    });
    Ok(())
}

fn supervisord_140_a_supervisor_under_upkeep() -> Result<(), Missing> {
    let job = corpus_job("140-supervisor.conf", &["/usr/bin/supervisord"])?;
    let _lock = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = Setup::default();
    s.link("/usr/local/bin/supervisord", Path::new("/usr/bin/supervisord"))
        .file(
            "/etc/supervisord.conf",
            "[supervisord]\nnodaemon=true\nlogfile=/dev/null\nlogfile_maxbytes=0\npidfile=/run/upkeep-test-supervisord.pid\n\n\
             [unix_http_server]\nfile=/run/upkeep-test-supervisor.sock\n\n\
             [rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n\
             [supervisorctl]\nserverurl=unix:///run/upkeep-test-supervisor.sock\n\n\
             [program:sleeper]\ncommand=/bin/sleep 1000\n",
        );
    let d = daemon("supervisor", &job);
    run_and_stop(&d, "supervisor", Stop::Clean, |_| {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let out = std::process::Command::new("supervisorctl")
                .args(["-c", "/etc/supervisord.conf", "status", "sleeper"])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&out.stdout).contains("RUNNING") {
                break;
            }
            assert!(Instant::now() < deadline, "supervisord's program never ran");
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    Ok(())
}

fn stunnel_001_console_log() -> Result<(), Missing> {
    let job = corpus_job("001-stunnel-kmru.conf", &["/usr/bin/stunnel4"])?;
    let _lock = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = Setup::default();
    s.file(
        "/etc/stunnel/km-ru-smtps.init",
        "foreground = yes\npid =\n\n[smtps]\nclient = yes\naccept = 127.0.0.1:16465\nconnect = 127.0.0.1:16466\n",
    );
    let d = daemon("stunnel", &job);
    run_and_stop(&d, "stunnel", Stop::Clean, |d| {
        let deadline = Instant::now() + DEADLINE;
        while TcpStream::connect(("127.0.0.1", 16465)).is_err() {
            assert!(Instant::now() < deadline, "stunnel never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        d.wait_log_file("stunnel.log", "Configuration successful");
    });
    Ok(())
}

fn gunicorn_029_a_script_that_sources_a_virtualenv_as_its_user() -> Result<(), Missing> {
    need_system_tests()?;
    let venv = need_e2e_venv()?;
    let gunicorn = venv.join("bin/gunicorn");
    let job = corpus_job(
        "029-gunicorn-cssmatic.conf",
        &[gunicorn.to_str().unwrap(), "/usr/sbin/useradd"],
    )?;
    let _lock = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    if nix::unistd::User::from_name("cssmatic")
        .ok()
        .flatten()
        .is_none()
    {
        let ok = std::process::Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--home-dir",
                "/home/cssmatic",
                "cssmatic",
            ])
            .status()
            .unwrap();
        assert!(ok.success(), "useradd cssmatic");
    }
    let mut s = Setup::default();
    s.link("/home/cssmatic/.virtualenvs/cssmatic", &venv).file(
        "/home/cssmatic/www/cssmatic/main.py",
        "def app(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b'cssmatic\\n']\n",
    );
    let d = daemon("cssmatic", &job);
    run_and_stop(&d, "cssmatic", Stop::Clean, |d| {
        let page = wait_answer(8008, HTTP, "HTTP/1.0 200");
        assert!(page.ends_with("cssmatic\n"), "{page}");
        // Eight workers and their master, as the user the job names.
        let pid = d.main_pid("cssmatic").unwrap();
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid = nix::unistd::User::from_name("cssmatic")
            .unwrap()
            .unwrap()
            .uid;
        assert!(
            status.contains(&format!("Uid:\t{uid}\t")),
            "setuid cssmatic: {status}"
        );
        d.wait_log_file("cssmatic.log", "Booting worker");
    });
    Ok(())
}

fn wait_for_state_121_starts_what_it_waits_for_and_is_stopped_by_it() -> Result<(), Missing> {
    let job = corpus_job("121-wait-for-state.conf", &[])?;
    let _lock = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = Setup::default();
    s.commands(&["start", "status"]);
    let d = Daemon::builder()
        .run_as_root()
        .job("wait-for-state", &job)
        .job("svc", "exec sleep 1000\n")
        .start();
    // The task asks `status svc`, runs `start svc`, and is stopped by its
    // own `stop on started $WAIT_FOR`: a finished task, not a failed one.
    let out = d.ok(&["start", "wait-for-state", "WAITER=me", "WAIT_FOR=svc"]);
    // A finished task prints `JOB stop/waiting` (reference 9.2).
    assert_eq!(out, "wait-for-state stop/waiting\n");
    assert!(d
        .ok(&["status", "svc"])
        .starts_with("svc start/running, process "));
    d.ok(&["stop", "svc"]);
    Ok(())
}

tests![
    redis_061_through_su_with_oom_never,
    nginx_050_in_the_foreground,
    nginx_058_expect_fork_and_a_post_stop,
    nginx_006_pre_stop_asks_initctl_for_its_own_pid,
    nginx_045_post_stop_uses_start_stop_daemon,
    memcached_091_an_instance_through_a_double_forking_script,
    supervisord_140_a_supervisor_under_upkeep,
    stunnel_001_console_log,
    gunicorn_029_a_script_that_sources_a_virtualenv_as_its_user,
    wait_for_state_121_starts_what_it_waits_for_and_is_stopped_by_it,
];
