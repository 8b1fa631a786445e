//! The Debian package, for real, on this machine: lintian finds no error;
//! `dpkg -i` installs it (warning about job files other packages own in
//! /etc/init); the commands, man pages and Upstart names work; a daemon
//! runs from the installed files; an upgrade re-execs it with its jobs
//! kept; `dpkg -P` leaves nothing behind. Needs root, CI (or
//! `UPKEEP_SYSTEM_TESTS=1`: it installs into /usr and /etc), and the .deb
//! `.ci/run` builds (`UPKEEP_DEB`).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::daemon::DEADLINE;
use common::runner::{need_artifact, need_program, need_system_tests, Missing};

const JOB: &str = "upkeep-pkg-test";
const FOREIGN: &str = "upkeep-test-foreign";

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .env_remove("UPKEEP_SOCKET")
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

fn ok(cmd: &str, args: &[&str]) -> String {
    let o = run(cmd, args);
    assert!(o.status.success(), "{cmd} {args:?}: {o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn installed(pkg: &str) -> bool {
    run("dpkg-query", &["-W", "-f=${Status}", pkg])
        .stdout
        .starts_with(b"install ok installed")
}

/// Everything on the machine that could be the package's: names with
/// `upkeep` in them under the system's dirs, and the Upstart names.
fn traces() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for root in [
        "/usr",
        "/etc",
        "/var/lib/dpkg/info",
        "/var/log",
        "/run",
        "/var/lib/systemd",
    ] {
        let o = Command::new("find")
            .args([
                root,
                "-xdev",
                "(",
                "-name",
                "*upkeep*",
                "-o",
                "-path",
                "/etc/init",
                ")",
            ])
            .output()
            .unwrap();
        found.extend(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(PathBuf::from)
                // The test's own dummy package is gone by then.
                .filter(|p| !p.to_string_lossy().contains(FOREIGN)),
        );
    }
    found.sort();
    found
}

/// (pid, command line, descriptor target) of every open descriptor whose
/// target names `what`: who keeps a lock or a file alive.
fn holders(what: &str) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for proc_entry in fs::read_dir("/proc").unwrap().flatten() {
        let pid = proc_entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = fs::read_dir(proc_entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let target = fs::read_link(fd.path()).unwrap_or_default();
            let target = target.to_string_lossy().into_owned();
            if target.contains(what) {
                let cmd = fs::read(proc_entry.path().join("cmdline")).unwrap_or_default();
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                found.push((pid.clone(), cmd, target));
            }
        }
    }
    found
}

/// A package that owns a job file in /etc/init, as packages of Upstart's
/// days did.
fn foreign_package(dir: &Path) -> PathBuf {
    let root = dir.join("foreign");
    fs::create_dir_all(root.join("DEBIAN")).unwrap();
    fs::create_dir_all(root.join("etc/init")).unwrap();
    fs::write(
        root.join("DEBIAN/control"),
        format!("Package: {FOREIGN}\nVersion: 1.0\nArchitecture: all\nMaintainer: test <test@example.org>\nDescription: a job file of Upstart's days\n"),
    )
    .unwrap();
    fs::write(root.join("etc/init/foreign-svc.conf"), "exec sleep 1000\n").unwrap();
    let deb = dir.join("foreign.deb");
    ok(
        "dpkg-deb",
        &[
            "--build",
            "--root-owner-group",
            root.to_str().unwrap(),
            deb.to_str().unwrap(),
        ],
    );
    deb
}

/// The same package under a later version: an upgrade.
fn later_version(deb: &Path, dir: &Path) -> PathBuf {
    let x = dir.join("later");
    ok(
        "dpkg-deb",
        &["-R", deb.to_str().unwrap(), x.to_str().unwrap()],
    );
    let control = x.join("DEBIAN/control");
    let text = fs::read_to_string(&control).unwrap();
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .unwrap()
        .to_string();
    fs::write(
        &control,
        text.replace(
            &format!("Version: {version}"),
            &format!("Version: {version}+upgrade"),
        ),
    )
    .unwrap();
    let out = dir.join("later.deb");
    ok(
        "dpkg-deb",
        &[
            "--build",
            "--root-owner-group",
            x.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    out
}

fn status_pid(job: &str) -> Option<i32> {
    let o = run("/usr/bin/upkeep", &["status", job, "--json"]);
    if !o.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
    v["processes"][0]["pid"].as_i64().map(|p| p as i32)
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The installed daemon, stopped (SIGTERM) when dropped.
struct Supervisor(Option<Child>);

impl Supervisor {
    /// SIGTERM, and whether it then exited 0.
    fn stop(&mut self) -> bool {
        let Some(mut child) = self.0.take() else {
            return false;
        };
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().is_ok_and(|s| s.success())
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop();
    }
}

fn the_package_installs_works_upgrades_and_purges_without_a_trace() -> Result<(), Missing> {
    need_system_tests()?;
    let deb = need_artifact("UPKEEP_DEB", "the .deb (cargo deb --no-build)")?;
    for p in ["/usr/bin/dpkg", "/usr/bin/lintian", "/usr/bin/man"] {
        need_program(p)?;
    }
    assert!(
        !installed("upkeep"),
        "a package named upkeep is installed already; this test installs and purges its own"
    );
    let before = traces();
    let tmp = tempfile::tempdir().unwrap();

    // lintian: no error (warnings are printed, not failed on).
    let o = run("lintian", &["--fail-on", "error", deb.to_str().unwrap()]);
    assert!(o.status.success(), "lintian: {o:?}");

    // A job file another package owns is named at install.
    ok(
        "dpkg",
        &["-i", foreign_package(tmp.path()).to_str().unwrap()],
    );
    let o = run("dpkg", &["-i", deb.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{o:?}");
    assert!(
        said.contains(&format!(
            "/etc/init/foreign-svc.conf belongs to package {FOREIGN}"
        )),
        "{said}"
    );
    ok("dpkg", &["-P", FOREIGN]);

    // The commands, the Upstart names, the man pages, the unit (not
    // enabled).
    let v = env!("CARGO_PKG_VERSION");
    assert_eq!(ok("upkeep", &["version"]), format!("upkeep {v}\n"));
    assert_eq!(
        ok("/usr/lib/upkeep/bin/initctl", &["version"]),
        format!("init (upkeep {v})\n")
    );
    assert!(ok("/usr/lib/upkeep/bin/status", &["--help"]).starts_with("Usage: status JOB"));
    for page in [
        "man8/upkeep.8.gz",
        "man8/initctl.8.gz",
        "man5/upkeep-job.5.gz",
    ] {
        let path = format!("/usr/share/man/{page}");
        let o = Command::new("man")
            .args(["--warnings=all", "-l", &path])
            .env("MANPAGER", "cat")
            .output()
            .unwrap();
        assert!(o.status.success() && o.stderr.is_empty(), "{page}: {o:?}");
        assert!(o.stdout.len() > 1000, "{page}: {o:?}");
    }
    let unit = fs::read_to_string("/usr/lib/systemd/system/upkeep.service").unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/upkeep daemon"), "{unit}");
    assert!(!Path::new("/etc/systemd/system/multi-user.target.wants/upkeep.service").exists());

    // A daemon from the installed files, with a job. (Purging the other
    // package took the /etc/init it owned; the daemon would wait for it.)
    fs::create_dir_all("/etc/init").unwrap();
    fs::write(
        format!("/etc/init/{JOB}.conf"),
        "start on runlevel [2345]\nexec sleep 1000\n",
    )
    .unwrap();
    let log = fs::File::create(tmp.path().join("daemon.log")).unwrap();
    let mut daemon = Supervisor(Some(
        // As the package's unit starts it.
        Command::new("/usr/bin/upkeep")
            .args(["daemon", "--control-group", "upkeep"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    ));
    wait_for("the job running", || status_pid(JOB).is_some());
    let pid = status_pid(JOB).unwrap();

    // The web gateway: its user in the control group, its token only it
    // reads, its job installed and not started; started, it reads a root
    // job's log through the daemon's control group.
    let user = ok("id", &["upkeep-web"]);
    assert!(user.contains("(upkeep)"), "{user}");
    let token = fs::metadata("/etc/upkeep/web.token").unwrap();
    {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(token.mode() & 0o777, 0o600);
        assert_eq!(
            Some(token.uid()),
            ok("id", &["-u", "upkeep-web"]).trim().parse().ok()
        );
    }
    assert!(unit.contains("--control-group upkeep"), "{unit}");
    assert!(ok("upkeep", &["status", "upkeep-web"]).starts_with("upkeep-web stop/waiting"));
    ok("upkeep", &["start", "upkeep-web"]);
    let secret = fs::read_to_string("/etc/upkeep/web.token").unwrap();
    let get = |path: &str| -> String {
        let try_get = || -> Option<String> {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect("127.0.0.1:7654").ok()?;
            s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
            let req = format!(
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:7654\r\nAuthorization: Bearer {}\r\n\r\n",
                secret.trim()
            );
            s.write_all(req.as_bytes()).ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).ok()?;
            Some(out)
        };
        try_get().unwrap_or_default()
    };
    wait_for("the gateway serving", || {
        get("/healthz").starts_with("HTTP/1.1 200")
    });
    let log = get(&format!("/api/v1/jobs/{JOB}/log"));
    assert!(log.starts_with("HTTP/1.1 "), "{log}");
    assert!(
        !log.contains("permission"),
        "the control group reads root's logs: {log}"
    );
    ok("upkeep", &["stop", "upkeep-web"]);

    // An upgrade re-execs it: the job keeps its process.
    let o = run(
        "dpkg",
        &["-i", later_version(&deb, tmp.path()).to_str().unwrap()],
    );
    let said = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{o:?}");
    assert!(
        said.contains("the running daemon now runs the new binary"),
        "{said}"
    );
    assert_eq!(status_pid(JOB), Some(pid));
    let daemon_log = fs::read_to_string(tmp.path().join("daemon.log")).unwrap();
    assert!(daemon_log.contains("re-executed as upkeep"), "{daemon_log}");

    // Stopped, then purged: nothing of it is left.
    assert!(daemon.stop(), "the daemon's exit on SIGTERM");
    fs::remove_file(format!("/etc/init/{JOB}.conf")).unwrap();
    let purge = run("dpkg", &["-P", "upkeep"]);
    assert!(purge.status.success(), "{purge:?}");
    assert!(!installed("upkeep"));
    let left = traces();
    assert_eq!(
        left,
        before,
        "what the package left; processes with something of it open: {:?}; the purge said: {}; the daemon said: {}",
        holders("upkeep"),
        String::from_utf8_lossy(&purge.stderr),
        fs::read_to_string(tmp.path().join("daemon.log")).unwrap_or_default()
    );
    Ok(())
}

tests![the_package_installs_works_upgrades_and_purges_without_a_trace];
