//! The systemd units in `contrib/` pass `systemd-analyze verify` (with
//! ExecStart pointed at the built binary). Skipped where systemd-analyze is
//! missing; CI's machines have it.

mod common;

use std::process::Command;

fn verify(unit: &str, user: bool) {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    };
    if !probe.status.success() {
        eprintln!("skipped: systemd-analyze does not run here");
        return;
    }
    let text =
        std::fs::read_to_string(format!("{}/contrib/{unit}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let text = text.replace(
        "/usr/local/bin/upkeep",
        common::upkeep_bin().to_str().unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(if user { "upkeep.service" } else { unit });
    std::fs::write(&path, text).unwrap();
    let mut cmd = Command::new("systemd-analyze");
    if user {
        // A user manager needs a runtime dir, even offline.
        cmd.arg("--user").env("XDG_RUNTIME_DIR", dir.path());
    }
    let o = cmd
        .arg("verify")
        .arg(&path)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    // Only complaints about our own file count (not about units of the
    // machine it runs on).
    let ours: Vec<&str> = err.lines().filter(|l| l.contains("upkeep")).collect();
    assert!(o.status.success() && ours.is_empty(), "{unit}: {err}");
}

#[test]
fn the_system_unit_verifies() {
    verify("upkeep.service", false);
}

#[test]
fn the_user_unit_verifies() {
    verify("upkeep-user.service", true);
}
