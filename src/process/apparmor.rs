//! Upstart's `apparmor` stanzas: `apparmor switch NAME` puts the main
//! process under profile NAME at its exec (the request is written to
//! `/proc/self/attr/apparmor/exec`, or `/proc/self/attr/exec` on older
//! kernels, between fork and exec; a failure fails the spawn), and
//! `apparmor load PROFILE` runs `apparmor_parser -r -W PROFILE` before the
//! start's first process, which fails with the parser. Where AppArmor is
//! not enabled, a job with either stanza does not start: the daemon never
//! runs unconfined what asked to be confined.

use std::ffi::CString;

use crate::conf::{JobClass, ProcessType};

/// Where the kernel says whether AppArmor is on.
const ENABLED: &str = "/sys/module/apparmor/parameters/enabled";

/// Whether AppArmor is enabled on this machine.
pub fn enabled() -> bool {
    std::fs::read_to_string(ENABLED).is_ok_and(|s| s.trim() == "Y")
        && std::path::Path::new("/sys/kernel/security/apparmor").is_dir()
}

/// Why a job with this stanza cannot run here.
pub fn absent(stanza: &str, value: &str) -> String {
    format!(
        "apparmor {stanza} {value}: AppArmor is not enabled on this machine ({ENABLED} does not say Y), and the job is not run unconfined"
    )
}

/// What one process of a job asks of AppArmor.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Confinement {
    /// The profile to switch to at exec (the main process only).
    pub switch: Option<CString>,
    /// The profile file to load first (the start's first process only).
    pub load: Option<String>,
}

/// What `process` of `class` asks, its names expanded with the process's
/// environment (`KEY=VALUE`); or why it cannot run.
pub fn for_process(
    class: &JobClass,
    process: ProcessType,
    env: &[String],
    first_of_start: bool,
) -> Result<Confinement, String> {
    let expand =
        |v: &str| crate::event::expand::expand(v, env).map_err(|e| format!("apparmor: {v}: {e}"));
    let mut c = Confinement::default();
    if let Some(name) = &class.apparmor_switch {
        if process == ProcessType::Main {
            let name = expand(name)?;
            c.switch = Some(
                CString::new(format!("exec {name}"))
                    .map_err(|_| format!("apparmor switch {name}: a NUL byte"))?,
            );
        }
    }
    if let Some(profile) = &class.apparmor_load {
        if first_of_start {
            c.load = Some(expand(profile)?);
        }
    }
    let asks = class.apparmor_switch.is_some() || class.apparmor_load.is_some();
    if asks && !enabled() {
        let (stanza, value) = match (&class.apparmor_switch, &class.apparmor_load) {
            (Some(n), _) => ("switch", n),
            (None, Some(p)) => ("load", p),
            (None, None) => unreachable!("asks"),
        };
        return Err(absent(stanza, value));
    }
    Ok(c)
}

/// The command line that loads `profile` with `apparmor_parser`, then
/// (when `switch` is set) asks for that profile at the next exec, then
/// execs `argv`: the start's first process, which fails with the parser.
pub fn load_then(profile: &str, switch: Option<&str>, argv: Vec<String>) -> Vec<String> {
    let script = "apparmor_parser -r -W -- \"$1\" || exit $?\n\
                  s=$2; shift 2\n\
                  if [ -n \"$s\" ]; then\n\
                  printf 'exec %s' \"$s\" 2>/dev/null > /proc/self/attr/apparmor/exec || printf 'exec %s' \"$s\" > /proc/self/attr/exec || exit 126\n\
                  fi\n\
                  exec \"$@\"";
    let mut v = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        script.to_string(),
        "upkeep-apparmor".to_string(),
        profile.to_string(),
        switch.unwrap_or("").to_string(),
    ];
    v.extend(argv);
    v
}

/// Writes the exec request (`exec NAME`) between fork and exec: the new
/// interface first, the old one where the kernel lacks it.
pub fn request_exec_profile(request: &CString) -> Result<(), nix::errno::Errno> {
    let bytes = request.as_bytes();
    let mut last = nix::errno::Errno::ENOENT;
    for path in [c"/proc/self/attr/apparmor/exec", c"/proc/self/attr/exec"] {
        // SAFETY: a NUL-terminated literal path; the descriptor is closed
        // below; `bytes` is a valid buffer of its length.
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                last = nix::errno::Errno::last();
                continue;
            }
            let n = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
            let err = nix::errno::Errno::last();
            libc::close(fd);
            if n == bytes.len() as isize {
                return Ok(());
            }
            return Err(err);
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_runs_the_parser_then_the_command() {
        let v = load_then("/etc/apparmor.d/x", Some("x"), vec!["/bin/true".into()]);
        assert_eq!(v[0], "/bin/sh");
        assert_eq!(
            &v[3..],
            ["upkeep-apparmor", "/etc/apparmor.d/x", "x", "/bin/true"]
        );
        // Run it with a parser that fails: the command never runs.
        let dir = tempfile::tempdir().unwrap();
        let parser = dir.path().join("apparmor_parser");
        std::fs::write(&parser, "#!/bin/sh\necho \"parser $*\"\nexit 3\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&parser, std::fs::Permissions::from_mode(0o755)).unwrap();
        let v = load_then("/p", None, vec!["echo".into(), "ran".into()]);
        let out = std::process::Command::new(&v[0])
            .args(&v[1..])
            .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "parser -r -W -- /p\n");
        // A parser that works: the command runs, with its arguments.
        std::fs::write(&parser, "#!/bin/sh\nexit 0\n").unwrap();
        let out = std::process::Command::new(&v[0])
            .args(&v[1..])
            .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");
    }
}
