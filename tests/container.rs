//! `examples/container` under a real container engine: Debian's podman
//! with runc (as CI's machine runs it: cgroupfs, no network, limits that
//! may be set), the image built offline from `Containerfile.local` (no
//! registry is reachable: the context holds the static binary and the
//! jobs' programs with their libraries). upkeep is the container's PID 1.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::podman::{podman_ok, Container};
use common::runner::{need_artifact, need_program, need_system_tests, Missing};
use serde_json::Value;

/// A program and the libraries it loads, copied into `root` at their paths
/// (a symlink's target is copied under the link's name).
fn stage_program(root: &Path, program: &str) {
    let mut files = BTreeSet::from([PathBuf::from(program)]);
    let ldd = Command::new("ldd").arg(program).output().unwrap();
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or
        // `/lib64/ld-linux-x86-64.so.2 (0x…)`.
        let path = line.split("=>").last().unwrap().split_whitespace().next();
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            files.insert(PathBuf::from(p));
        }
    }
    for f in files {
        let dest = root.join(f.strip_prefix("/").unwrap());
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::copy(&f, &dest).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
}

/// An image, removed when dropped (whatever the test's outcome).
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = common::podman::podman(&["rmi", "-f", &self.0]);
    }
}

/// The example's image, built from `Containerfile.local`.
fn build_image(dir: &Path, bin: &Path) -> Image {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/container");
    let ctx = dir.join("context");
    fs::create_dir_all(ctx.join("init")).unwrap();
    for f in ["Containerfile.local", "app.env"] {
        fs::copy(example.join(f), ctx.join(f)).unwrap();
    }
    for e in fs::read_dir(example.join("init")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), ctx.join("init").join(e.file_name())).unwrap();
    }
    fs::copy(bin, ctx.join("upkeep")).unwrap();
    let rootfs = ctx.join("rootfs");
    for p in ["/bin/sh", "/bin/sleep"] {
        stage_program(&rootfs, p);
    }
    // The dirs a read-only root gets tmpfs mounts on take these modes.
    for (d, mode) in [
        ("tmp", 0o1777),
        ("var/tmp", 0o1777),
        ("run", 0o755),
        ("var/log", 0o755),
    ] {
        let p = rootfs.join(d);
        fs::create_dir_all(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }
    let image = format!("localhost/upkeep-example-test:{}", std::process::id());
    podman_ok(&[
        "build",
        "--format",
        "docker",
        "-f",
        ctx.join("Containerfile.local").to_str().unwrap(),
        "-t",
        &image,
        ctx.to_str().unwrap(),
    ]);
    Image(image)
}

/// `podman exec` of upkeep in `c` (as `user`, when given).
fn upkeep_in(c: &Container, user: Option<&str>, args: &[&str]) -> String {
    let mut a = vec!["exec"];
    if let Some(u) = user {
        a.extend(["--user", u]);
    }
    a.extend([c.id.as_str(), "/usr/local/bin/upkeep"]);
    a.extend_from_slice(args);
    podman_ok(&a)
}

/// Each line as JSON (every line of a `--log-format json` daemon is).
fn json_lines(logs: &str) -> Vec<Value> {
    logs.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect()
}

/// The `line`s of `job`'s output, in order.
fn job_lines(logs: &str, job: &str) -> Vec<String> {
    json_lines(logs)
        .into_iter()
        .filter(|v| v["job"] == job)
        .map(|v| v["line"].as_str().unwrap().to_string())
        .collect()
}

/// Where the daemon's message starting with `start` is among `lines`.
fn said(lines: &[Value], start: &str) -> usize {
    lines
        .iter()
        .position(|v| {
            v["source"] == "upkeep" && v["message"].as_str().is_some_and(|m| m.starts_with(start))
        })
        .unwrap_or_else(|| panic!("the daemon never said {start}"))
}

fn the_example_runs_under_podman_as_pid_1() -> Result<(), Missing> {
    need_system_tests()?;
    need_program("/usr/bin/podman")?;
    need_program("/usr/sbin/runc")?;
    let bin = need_artifact("UPKEEP_STATIC_BIN", "the static binary (dist/build-static)")?;
    let dir = tempfile::tempdir().unwrap();
    let image = build_image(dir.path(), &bin);

    // The container's environment and the env file reach the app; the
    // migration ran first; every line is JSON. (Job lines come from one pty
    // each, so their order across jobs is the order the daemon read them:
    // what happened first is told by the daemon's own events, one stream.)
    let mut c = Container::run(&["-e", "FOO=bar"], &image.0, &["--verbose"]);
    let logs = c.wait_logs("the app and the worker up", |l| {
        l.contains("app up:") && l.contains("worker up") && l.contains("event started JOB=worker")
    });
    let app = job_lines(&logs, "app");
    assert_eq!(
        app,
        ["app up: GREETING=hello from the env file FOO=bar"],
        "{logs}"
    );
    assert_eq!(
        job_lines(&logs, "migrate"),
        ["migrating postgres://db/app to the latest schema"]
    );
    let lines = json_lines(&logs);
    assert!(
        said(&lines, "event stopped JOB=migrate") < said(&lines, "event starting JOB=app"),
        "{logs}"
    );
    assert!(lines.iter().any(|v| v["source"] == "upkeep"), "{logs}");
    assert!(upkeep_in(&c, None, &["status", "app"]).starts_with("app start/running"));
    // The image's healthcheck asks upkeep whether the app runs.
    podman_ok(&["healthcheck", "run", &c.id]);
    // `podman stop`: the worker stops before the app, and upkeep exits 0.
    let code = c.stop();
    let logs = c.logs();
    let lines = json_lines(&logs);
    assert!(
        said(&lines, "event stopped JOB=worker") < said(&lines, "event stopped JOB=app"),
        "{logs}"
    );
    for (job, line) in [("worker", "worker stopping"), ("app", "app stopping")] {
        assert!(job_lines(&logs, job).iter().any(|l| l == line), "{logs}");
    }
    assert_eq!(code, 0, "{logs}");
    drop(c);

    // --exit-with: the container ends with that job's exit status.
    let failing = dir.path().join("failing.conf");
    fs::write(&failing, "start on started app\nexec sh -c 'exit 3'\n").unwrap();
    let mount = format!("{}:/etc/init/failing.conf:ro", failing.display());
    let c = Container::run(&["-v", &mount], &image.0, &["--exit-with", "failing"]);
    let code = c.wait();
    assert_eq!(code, 3, "{}", c.logs());
    drop(c);

    // A read-only root and a non-root user, with a run dir and without.
    for (env, socket) in [
        (
            Some("UPKEEP_RUN_DIR=/tmp/run-app"),
            "/tmp/run-app/upkeep.sock",
        ),
        (None, "/tmp/upkeep-1000/upkeep.sock"),
    ] {
        let mut opts = vec!["--read-only", "--user", "1000:1000"];
        if let Some(e) = env {
            opts.extend(["-e", e]);
        }
        let mut c = Container::run(&opts, &image.0, &[]);
        let logs = c.wait_logs("the worker up and the daemon listening", |l| {
            l.contains("worker up") && l.contains("listening on")
        });
        assert!(logs.contains(&format!("listening on {socket}")), "{logs}");
        assert!(
            upkeep_in(&c, Some("1000:1000"), &["status", "worker"])
                .starts_with("worker start/running"),
            "{logs}"
        );
        assert_eq!(c.stop(), 0, "{}", c.logs());
    }
    Ok(())
}

/// The Kubernetes release the manifest is checked against.
const KUBERNETES: &str = "1.34.0";

fn the_readmes_pod_manifest_passes_kubernetes_validate() -> Result<(), Missing> {
    let venv = common::runner::need_e2e_venv()?;
    let validate = venv.join("bin/kubernetes-validate");
    if !validate.exists() {
        return Err(Missing::new(format!(
            "needs kubernetes-validate in the end-to-end venv ({}; .ci/run installs it)",
            validate.display()
        )));
    }
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("```yaml\napiVersion: v1\nkind: Pod\n")
        .expect("the Pod manifest in the README")
        + "```yaml\n".len();
    let manifest = &readme[start..start + readme[start..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pod.yaml");
    fs::write(&file, manifest).unwrap();
    let check = |text: &str| {
        fs::write(&file, text).unwrap();
        let o = Command::new(&validate)
            .args(["--strict", "-k", KUBERNETES])
            .arg(&file)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&o.stdout) + String::from_utf8_lossy(&o.stderr);
        (o.status.success(), said.into_owned())
    };
    let (ok, said) = check(manifest);
    assert!(
        ok && said.contains("passed for resource pod/upkeep-example"),
        "{said}"
    );
    // Strict: a field Kubernetes does not know fails (so the check checks).
    let (ok, said) = check(&manifest.replace(
        "periodSeconds: 5",
        "periodSeconds: 5\n        everySeconds: 5",
    ));
    assert!(!ok, "an unknown field passed: {said}");
    // The probes ask what the gateway serves, with a Host it accepts.
    for want in [
        "path: /readyz?job=app",
        "path: /healthz",
        "value: localhost:7654",
        "containerPort: 7654",
    ] {
        assert!(manifest.contains(want), "{want}");
    }
    Ok(())
}

tests![
    the_example_runs_under_podman_as_pid_1,
    the_readmes_pod_manifest_passes_kubernetes_validate,
];
