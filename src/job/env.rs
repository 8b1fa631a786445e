//! The environment of a job's processes (reference 6.3), as a pure
//! function of what the daemon started with and what the instance holds.
//!
//! Lowest precedence first:
//!
//! 1. upkeep's `PATH` (a system daemon's fixed one, with the `sbin`s) and
//!    the daemon's `TERM`;
//! 2. the daemon's own environment when it passes it (a per-user daemon,
//!    and in init mode unless `--clean-env`; its `PATH` replaces 1's), else
//!    the variables `--pass-env` names; never what is meant for upkeep
//!    alone ([`meant_for_upkeep`]);
//! 3. the global table (`set-env --global`);
//! 4. the job's `env` stanzas (`env FOO` takes the daemon's `FOO`);
//! 5. its `env-file`s, in order (the values last read);
//! 6. the variables the instance was started with (events, with
//!    `UPSTART_EVENTS`; `start KEY=VALUE`), and for pre-stop and post-stop
//!    the stop's;
//! 7. `UPSTART_JOB`, `UPSTART_INSTANCE` and `UPKEEP_SOCKET` (and
//!    `NOTIFY_SOCKET`, set at spawn for `expect notify`), which nothing
//!    overrides; `UPSTART_EVENTS` comes only from 6.

use crate::conf::ProcessType;

use super::Instance;

/// Whether a variable of the daemon's own environment is meant for upkeep
/// alone, and so never passed to a job: what a re-exec, systemd or a
/// container manager gave the daemon (a job could otherwise tell the
/// manager `READY=1` in upkeep's name).
pub fn meant_for_upkeep(name: &str) -> bool {
    name == "NOTIFY_SOCKET"
        || name == "INVOCATION_ID"
        || name == "JOURNAL_STREAM"
        || name.starts_with("LISTEN_")
        || name.starts_with("UPSTART_")
        || (name.starts_with("UPKEEP_") && name != "UPKEEP_SOCKET")
}

/// Whether `--pass-env` patterns (`NAME`, or `PREFIX*`) take `name`.
pub fn passes(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => p == name,
    })
}

/// What every job's environment starts from: fixed when the daemon starts.
#[derive(Debug, Clone, Default)]
pub struct Base {
    /// A system daemon (root): its `PATH` has the `sbin`s.
    pub system: bool,
    /// The daemon's own environment is passed (a per-user daemon, or init
    /// mode without `--clean-env`).
    pub pass_all: bool,
    /// `--pass-env`: what else is passed (`NAME` or `PREFIX*`).
    pub pass: Vec<String>,
    /// The daemon's own environment.
    pub daemon: Vec<(String, String)>,
    /// The daemon's socket, as `UPKEEP_SOCKET` (so that `initctl` in a job's
    /// script reaches the daemon that runs it).
    pub socket: Option<String>,
    /// The global table of `set-env --global`, in the order set (a name at
    /// most once): above the base, below everything of the job's own.
    pub table: Vec<(String, String)>,
}

impl Base {
    /// The base of the daemon running in this process.
    pub fn of_this_process(
        system: bool,
        (pass_all, pass): (bool, Vec<String>),
        socket: &std::path::Path,
    ) -> Base {
        Base {
            system,
            pass_all,
            pass,
            daemon: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            socket: socket.to_str().map(str::to_string),
            table: Vec::new(),
        }
    }

    /// The daemon's own `key`, unless it is meant for upkeep alone.
    fn daemon_var(&self, key: &str) -> Option<&str> {
        if meant_for_upkeep(key) {
            return None;
        }
        self.daemon
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The environment of one process of `inst` (`None`: the job's, as its
/// events export it); pre-stop and post-stop also get the stop's variables.
pub fn for_process(
    inst: &Instance,
    process: Option<ProcessType>,
    base: &Base,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: &str, v: &str| {
        env.retain(|(ek, _)| ek != k);
        env.push((k.to_string(), v.to_string()));
    };
    // 1. upkeep's PATH and the daemon's TERM.
    let path = if base.system {
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    } else {
        "/usr/local/bin:/usr/bin:/bin"
    };
    set(&mut env, "PATH", path);
    if let Some(term) = base.daemon_var("TERM") {
        set(&mut env, "TERM", term);
    }
    // 2. The daemon's own environment, or what --pass-env names.
    for (k, v) in &base.daemon {
        if (base.pass_all || passes(&base.pass, k)) && !meant_for_upkeep(k) {
            set(&mut env, k, v);
        }
    }
    // 3. The global table.
    for (k, v) in &base.table {
        set(&mut env, k, v);
    }
    // 4. The env stanzas.
    for e in &inst.class.env {
        match e.split_once('=') {
            Some((k, v)) => set(&mut env, k, v),
            None => match base.daemon_var(e) {
                Some(v) => set(&mut env, e, v),
                None => env.retain(|(k, _)| k != e),
            },
        }
    }
    // 5. The env files' values.
    for (k, v) in inst.env_file.iter().flatten() {
        set(&mut env, k, v);
    }
    // Only the events that started the instance say UPSTART_EVENTS.
    env.retain(|(k, _)| k != "UPSTART_EVENTS");
    // 6. Events and start variables.
    for e in &inst.env {
        if let Some((k, v)) = e.split_once('=') {
            set(&mut env, k, v);
        }
    }
    if matches!(process, Some(ProcessType::PreStop | ProcessType::PostStop)) {
        for e in &inst.stop_env {
            if let Some((k, v)) = e.split_once('=') {
                set(&mut env, k, v);
            }
        }
    }
    // 7. Who it is; only the spawn says NOTIFY_SOCKET (`expect notify`).
    env.retain(|(k, _)| k != "NOTIFY_SOCKET");
    set(&mut env, "UPSTART_JOB", &inst.job);
    set(&mut env, "UPSTART_INSTANCE", &inst.name);
    if let Some(socket) = &base.socket {
        set(&mut env, "UPKEEP_SOCKET", socket);
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    fn inst(stanzas: &str, env: &[&str]) -> Instance {
        let class = crate::conf::parse_job("j", stanzas.as_bytes()).unwrap();
        let mut i = Instance::new(
            "j",
            "",
            Rc::new(class),
            env.iter().map(|s| s.to_string()).collect(),
        );
        i.stop_env = vec!["STOPPED_BY=x".into()];
        i
    }

    fn base(system: bool) -> Base {
        Base {
            system,
            pass_all: !system,
            pass: Vec::new(),
            daemon: vec![
                ("TERM".into(), "xterm".into()),
                ("HOME".into(), "/root".into()),
                ("FOO".into(), "from-daemon".into()),
                ("UPKEEP_REEXEC".into(), "9".into()),
                ("NOTIFY_SOCKET".into(), "/run/systemd/notify".into()),
                ("LISTEN_FDS".into(), "3".into()),
                ("INVOCATION_ID".into(), "abc".into()),
                ("JOURNAL_STREAM".into(), "8:9".into()),
                ("UPSTART_EVENTS".into(), "forged".into()),
                ("UPKEEP_SOCKET".into(), "/elsewhere".into()),
                ("APP_MODE".into(), "prod".into()),
                ("APP_KEY".into(), "k".into()),
            ],
            socket: Some("/run/upkeep/upkeep.sock".into()),
            table: Vec::new(),
        }
    }

    #[test]
    fn the_global_table_is_above_the_base_and_below_the_job() {
        let mut b = base(true);
        b.table = vec![
            ("TERM".into(), "vt100".into()),
            ("FOO".into(), "table".into()),
            ("BAR".into(), "table".into()),
        ];
        let env = for_process(&inst("env FOO=stanza\n", &["BAR=start"]), None, &b);
        let get = |k: &str| env.iter().find(|(ek, _)| ek == k).map(|(_, v)| v.as_str());
        assert_eq!(get("TERM"), Some("vt100"));
        assert_eq!(get("FOO"), Some("stanza"));
        assert_eq!(get("BAR"), Some("start"));
        assert!(get("PATH").is_some());
    }

    fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(ek, _)| ek == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn each_layer_overrides_the_one_below_and_identity_overrides_all() {
        let i = inst(
            "env FOO\nenv A=stanza\nenv UPSTART_JOB=forged\nexec true\n",
            &["A=event", "UPSTART_INSTANCE=forged"],
        );
        let env = for_process(&i, Some(ProcessType::Main), &base(true));
        assert_eq!(
            get(&env, "PATH"),
            Some("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        );
        assert_eq!(get(&env, "TERM"), Some("xterm"));
        assert_eq!(
            get(&env, "HOME"),
            None,
            "a system job gets no daemon variable but TERM"
        );
        assert_eq!(
            get(&env, "FOO"),
            Some("from-daemon"),
            "`env FOO` takes the daemon's"
        );
        assert_eq!(get(&env, "A"), Some("event"));
        assert_eq!(get(&env, "UPSTART_JOB"), Some("j"));
        assert_eq!(get(&env, "UPSTART_INSTANCE"), Some(""));
        assert_eq!(get(&env, "UPKEEP_SOCKET"), Some("/run/upkeep/upkeep.sock"));
        assert_eq!(
            get(&env, "STOPPED_BY"),
            None,
            "only for pre-stop and post-stop"
        );
        let stop = for_process(&i, Some(ProcessType::PostStop), &base(true));
        assert_eq!(get(&stop, "STOPPED_BY"), Some("x"));
    }

    #[test]
    fn a_user_daemon_passes_its_environment_but_what_is_upkeeps_alone() {
        let i = inst("exec true\n", &[]);
        let env = for_process(&i, None, &base(false));
        assert_eq!(get(&env, "HOME"), Some("/root"));
        assert_eq!(get(&env, "UPKEEP_REEXEC"), None);
        assert_eq!(get(&env, "NOTIFY_SOCKET"), None);
        assert_eq!(get(&env, "PATH"), Some("/usr/local/bin:/usr/bin:/bin"));
    }

    /// Every variable of the daemon's that is meant for upkeep alone.
    const UPKEEPS: &[&str] = &[
        "UPKEEP_REEXEC",
        "NOTIFY_SOCKET",
        "LISTEN_FDS",
        "INVOCATION_ID",
        "JOURNAL_STREAM",
        "UPSTART_EVENTS",
    ];

    #[test]
    fn init_mode_passes_the_daemons_environment_but_what_is_upkeeps_alone() {
        let mut b = base(true);
        b.pass_all = true;
        b.daemon.push(("PATH".into(), "/app/bin:/bin".into()));
        let env = for_process(&inst("exec true\n", &[]), None, &b);
        assert_eq!(get(&env, "HOME"), Some("/root"));
        assert_eq!(get(&env, "APP_MODE"), Some("prod"));
        assert_eq!(
            get(&env, "PATH"),
            Some("/app/bin:/bin"),
            "the daemon's PATH replaces upkeep's"
        );
        for k in UPKEEPS {
            assert_eq!(get(&env, k), None, "{k}");
        }
        assert_eq!(get(&env, "UPKEEP_SOCKET"), Some("/run/upkeep/upkeep.sock"));
        // `env NOTIFY_SOCKET` takes nothing of the daemon's either.
        let stanzas = "env NOTIFY_SOCKET\nenv LISTEN_FDS\nexec true\n";
        let env = for_process(&inst(stanzas, &[]), None, &b);
        assert_eq!(get(&env, "NOTIFY_SOCKET"), None);
        assert_eq!(get(&env, "LISTEN_FDS"), None);
    }

    #[test]
    fn pass_env_takes_names_and_prefixes_only() {
        let mut b = base(true);
        b.pass = vec![
            "HOME".into(),
            "APP_*".into(),
            "NOTIFY_*".into(),
            "LISTEN_*".into(),
        ];
        let env = for_process(&inst("exec true\n", &[]), None, &b);
        assert_eq!(get(&env, "HOME"), Some("/root"));
        assert_eq!(get(&env, "APP_MODE"), Some("prod"));
        assert_eq!(get(&env, "APP_KEY"), Some("k"));
        assert_eq!(get(&env, "FOO"), None);
        assert_eq!(get(&env, "NOTIFY_SOCKET"), None, "never, even when named");
        assert_eq!(get(&env, "LISTEN_FDS"), None);
        assert!(passes(&["A*".into()], "AB") && !passes(&["A".into()], "AB"));
    }

    #[test]
    fn the_env_files_sit_between_the_stanzas_and_the_events() {
        let mut b = base(true);
        b.pass_all = true;
        b.table = vec![("T".into(), "table".into())];
        let mut i = inst(
            "env S=stanza\nenv F=stanza\nexec true\n",
            &[
                "E=event",
                "UPSTART_EVENTS=started db",
                "NOTIFY_SOCKET=/forged",
            ],
        );
        i.env_file = Some(vec![
            ("APP_MODE".into(), "file".into()),
            ("T".into(), "file".into()),
            ("F".into(), "file".into()),
            ("E".into(), "file".into()),
            ("UPSTART_JOB".into(), "forged".into()),
        ]);
        let env = for_process(&i, Some(ProcessType::Main), &b);
        assert_eq!(get(&env, "APP_MODE"), Some("file"), "over the daemon's");
        assert_eq!(get(&env, "T"), Some("file"), "over the table");
        assert_eq!(get(&env, "S"), Some("stanza"));
        assert_eq!(get(&env, "F"), Some("file"), "over the stanza");
        assert_eq!(get(&env, "E"), Some("event"), "under the events");
        assert_eq!(get(&env, "UPSTART_EVENTS"), Some("started db"));
        assert_eq!(get(&env, "UPSTART_JOB"), Some("j"));
        assert_eq!(
            get(&env, "NOTIFY_SOCKET"),
            None,
            "only expect notify's spawn sets it"
        );
        // A file cannot say which events started the job.
        i.env = Vec::new();
        i.env_file = Some(vec![("UPSTART_EVENTS".into(), "forged".into())]);
        let env = for_process(&i, Some(ProcessType::Main), &b);
        assert_eq!(get(&env, "UPSTART_EVENTS"), None);
    }
}
