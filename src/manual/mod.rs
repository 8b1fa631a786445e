//! The manual, made from the tables the code runs on, so that it cannot
//! drift from them: `upkeep(8)` and `initctl(8)` from the command table
//! (`cli::COMMANDS`), `upkeep-job(5)` from the stanza table
//! (`conf::stanzas::STANZAS`), and the bash, zsh and fish completions from
//! the command table; the package's systemd unit from
//! `contrib/upkeep.service` and its changelog from the crate's version. The files live in `dist/` (the package
//! installs them); `tests/manual.rs` checks that they are what these functions make
//! (`UPKEEP_BLESS=1` rewrites them).

mod completions;
mod man;

pub use completions::{bash, fish, zsh};
pub use man::{initctl_8, job_5, upkeep_8};

/// Every generated file: (path under `dist/`, text).
pub fn files() -> Vec<(&'static str, String)> {
    vec![
        ("man/upkeep.8", upkeep_8()),
        ("man/initctl.8", initctl_8()),
        ("man/upkeep-job.5", job_5()),
        ("completions/upkeep.bash", bash()),
        ("completions/_upkeep", zsh()),
        ("completions/upkeep.fish", fish()),
        ("debian/upkeep.service", systemd_unit()),
        ("debian/changelog", debian_changelog()),
    ]
}

/// The package's `changelog.Debian`: this version's entry, so that the
/// package's version and the crate's cannot differ.
pub fn debian_changelog() -> String {
    format!(
        "upkeep ({}-1) unstable; urgency=medium\n\n  \
         * upkeep {}: the supervisor, man pages upkeep(8), initctl(8) and\n    \
         upkeep-job(5), bash, zsh and fish completions, a systemd unit\n    \
         (installed, not enabled) and Upstart's command names under\n    \
         /usr/lib/upkeep/bin. The changes: README.md in this directory.\n\n \
         -- upkeep developers <upkeep@example.org>  Fri, 04 Dec 2026 12:00:00 +0000\n",
        crate::VERSION,
        crate::VERSION
    )
}

/// The package's systemd unit: `contrib/upkeep.service` with the binary
/// where the package puts it, and the control group the package makes
/// (`upkeep`, with the `upkeep-web` user in it: docs/http.md).
pub fn systemd_unit() -> String {
    let contrib = include_str!("../../contrib/upkeep.service");
    let body: String = contrib
        .lines()
        .skip_while(|l| l.starts_with('#'))
        .map(|l| {
            let l = l.replace(
                "ExecStart=/usr/local/bin/upkeep daemon",
                "ExecStart=/usr/bin/upkeep daemon --control-group upkeep",
            );
            format!("{l}\n")
        })
        .collect();
    format!(
        "# upkeep as the machine's supervisor, as the package installs it (made from\n\
         # contrib/upkeep.service). Installed, not enabled: /etc/init may still hold\n\
         # other packages' jobs from Upstart's days. Enable it with\n\
         #   systemctl enable --now upkeep\n\
         # Members of the group upkeep (the user upkeep-web, whose gateway job is\n\
         # /etc/init/upkeep-web.conf) change jobs and read logs as root may.\n{body}"
    )
}
