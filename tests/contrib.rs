//! The systemd units in `contrib/` pass `systemd-analyze verify` (with
//! ExecStart pointed at the built binary). Ignored, with the reason, where
//! systemd-analyze is missing; CI's machines have it.

mod common;

use std::process::Command;

use common::runner::{need_program, Missing};

fn verify(unit: &str, user: bool) -> Result<(), Missing> {
    let analyze = need_program("systemd-analyze")?;
    let probe = Command::new(&analyze).arg("--version").output();
    if !probe.is_ok_and(|p| p.status.success()) {
        return Err(Missing::new(
            "needs systemd-analyze, which does not run here",
        ));
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
    Ok(())
}

fn the_system_unit_verifies() -> Result<(), Missing> {
    verify("upkeep.service", false)
}

fn the_user_unit_verifies() -> Result<(), Missing> {
    verify("upkeep-user.service", true)
}

tests![the_system_unit_verifies, the_user_unit_verifies];
