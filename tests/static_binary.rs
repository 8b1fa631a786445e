//! The static release binary (`dist/build-static`, named by
//! `UPKEEP_STATIC_BIN`) runs where nothing else is: in a `FROM scratch`
//! container (a `podman import`ed root holding only the binary and a job
//! file) and in a bare Debian (`debootstrap --variant=minbase`), each time
//! `upkeep version` and a daemon with a job. Needs root, podman with runc,
//! debootstrap and Debian's mirror.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::DEADLINE;
use common::podman::{podman, podman_ok, RUN};
use common::runner::{need_artifact, need_program, need_system_tests, Missing};

fn prerequisites() -> Result<std::path::PathBuf, Missing> {
    need_system_tests()?;
    need_program("/usr/bin/podman")?;
    need_program("/usr/sbin/runc")?;
    let bin = need_artifact("UPKEEP_STATIC_BIN", "the static binary (dist/build-static)")?;
    let ldd = Command::new("ldd").arg(&bin).output().unwrap();
    let said = String::from_utf8_lossy(&ldd.stdout) + String::from_utf8_lossy(&ldd.stderr);
    assert!(
        said.contains("statically linked") || said.contains("not a dynamic executable"),
        "{}: {said}",
        bin.display()
    );
    Ok(bin)
}

/// Runs `prog daemon` detached in the image or root, waits until `status
/// JOB` says `want` and the container's output (job output, as PID 1
/// copies it) has `output`, then stops it: the daemon exits 0.
fn daemon_runs_a_job(
    target: &[&str],
    prog: &str,
    job: &str,
    want: &str,
    output: &str,
    check: impl Fn(&str, &str),
) {
    let mut args = RUN.to_vec();
    args.push("-d");
    args.extend_from_slice(target);
    args.extend([prog, "daemon"]);
    let id = podman_ok(&args).trim().to_string();
    let deadline = Instant::now() + DEADLINE;
    let (status, logs) = loop {
        let o = podman(&["exec", &id, prog, "status", job]);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let logs = podman(&["logs", &id]);
        let logs = String::from_utf8_lossy(&logs.stdout).into_owned()
            + &String::from_utf8_lossy(&logs.stderr);
        if (text.starts_with(want) && logs.contains(output)) || Instant::now() > deadline {
            break (text, logs);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Checked while it runs; the container goes whatever the check says.
    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if status.starts_with(want) {
            check(&id, &status);
        }
    }));
    podman_ok(&["stop", "-t", "20", &id]);
    let code = podman_ok(&["wait", &id]);
    podman_ok(&["rm", &id]);
    if let Err(panic) = checked {
        std::panic::resume_unwind(panic);
    }
    assert!(status.starts_with(want), "{status}; logs: {logs}");
    assert!(logs.contains(output), "{output:?} not in: {logs}");
    assert_eq!(code.trim(), "0", "the daemon's exit status; logs: {logs:?}");
}

fn it_runs_in_an_empty_scratch_root() -> Result<(), Missing> {
    let bin = prerequisites()?;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("etc/init")).unwrap();
    fs::copy(&bin, root.join("upkeep")).unwrap();
    // Nothing else in the image, so the job runs upkeep itself.
    fs::write(
        root.join("etc/init/hello.conf"),
        "start on startup\nexec /upkeep version\n",
    )
    .unwrap();
    let tar = dir.path().join("root.tar");
    let o = Command::new("tar")
        .args([
            "-C",
            root.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let image = format!("localhost/upkeep-static-test:{}", std::process::id());
    podman_ok(&["import", tar.to_str().unwrap(), &image]);
    let v = env!("CARGO_PKG_VERSION");
    let mut args = RUN.to_vec();
    args.extend(["--rm", &image, "/upkeep", "version"]);
    assert_eq!(podman_ok(&args), format!("upkeep {v}\n"));
    // As the container's PID 1: the job ran (its output reached the log),
    // and stopped as a service whose main process ended does.
    daemon_runs_a_job(
        &[&image],
        "/upkeep",
        "hello",
        "hello stop/waiting",
        &format!("hello: upkeep {v}"),
        |_, _| {},
    );
    podman_ok(&["rmi", &image]);
    Ok(())
}

fn it_runs_in_a_minbase_debian() -> Result<(), Missing> {
    let bin = prerequisites()?;
    need_program("/usr/sbin/debootstrap")?;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("minbase");
    let o = Command::new("debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(&root)
        .arg("http://deb.debian.org/debian")
        .output()
        .unwrap();
    assert!(o.status.success(), "debootstrap: {o:?}");
    let dest = root.join("usr/local/bin/upkeep");
    fs::copy(&bin, &dest).unwrap();
    fs::create_dir_all(root.join("etc/init")).unwrap();
    fs::write(
        root.join("etc/init/hello.conf"),
        // setuid: the static binary still finds users (glibc's files
        // lookup is built in).
        "start on runlevel [2345]\nsetuid nobody\nexec /bin/sleep 1000\n",
    )
    .unwrap();
    let root_arg = root.to_str().unwrap();
    let v = env!("CARGO_PKG_VERSION");
    let mut args = RUN.to_vec();
    args.extend(["--rm", "--rootfs", root_arg, "upkeep", "version"]);
    assert_eq!(podman_ok(&args), format!("upkeep {v}\n"));
    daemon_runs_a_job(
        &["--rootfs", root_arg],
        "upkeep",
        "hello",
        "hello start/running, process ",
        "upkeep: listening on /run/upkeep/upkeep.sock",
        |id, status| {
            let pid = status.trim().rsplit(' ').next().unwrap();
            let proc_status = podman_ok(&["exec", id, "cat", &format!("/proc/{pid}/status")]);
            let uid = proc_status.lines().find(|l| l.starts_with("Uid:")).unwrap();
            assert!(uid.contains("\t65534\t"), "{uid}");
        },
    );
    assert!(Path::new(&dest).exists());
    Ok(())
}

tests![
    it_runs_in_an_empty_scratch_root,
    it_runs_in_a_minbase_debian
];
