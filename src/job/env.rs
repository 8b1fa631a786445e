//! The environment of a job's processes (reference 6.3), as a pure
//! function of what the daemon started with and what the instance holds.
//!
//! Lowest precedence first: the base (a system daemon's fixed `PATH` and
//! its `TERM`; a per-user daemon's own environment, less what is meant for
//! upkeep alone), the global table (`set-env --global`), the job's `env`
//! stanzas (`env FOO` takes the daemon's
//! `FOO`), the variables the instance was started with (events, `start
//! KEY=VALUE`), for pre-stop and post-stop the stop's, then `UPSTART_JOB`,
//! `UPSTART_INSTANCE` and `UPKEEP_SOCKET`, which nothing overrides.

use crate::conf::ProcessType;

use super::Instance;

/// What every job's environment starts from: fixed when the daemon starts.
#[derive(Debug, Clone, Default)]
pub struct Base {
    /// A system daemon (root): `PATH` is set, only `TERM` is passed.
    pub system: bool,
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
    pub fn of_this_process(system: bool, socket: &std::path::Path) -> Base {
        Base {
            system,
            daemon: std::env::vars().collect(),
            socket: socket.to_str().map(str::to_string),
            table: Vec::new(),
        }
    }

    fn daemon_var(&self, key: &str) -> Option<&str> {
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
    if base.system {
        set(
            &mut env,
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
        if let Some(term) = base.daemon_var("TERM") {
            set(&mut env, "TERM", term);
        }
    } else {
        for (k, v) in &base.daemon {
            if !k.starts_with("UPKEEP_")
                && k != "NOTIFY_SOCKET"
                && k != "LISTEN_FDS"
                && k != "LISTEN_PID"
            {
                set(&mut env, k, v);
            }
        }
        if !env.iter().any(|(k, _)| k == "PATH") {
            set(&mut env, "PATH", "/usr/local/bin:/usr/bin:/bin");
        }
    }
    for (k, v) in &base.table {
        set(&mut env, k, v);
    }
    for e in &inst.class.env {
        match e.split_once('=') {
            Some((k, v)) => set(&mut env, k, v),
            None => match base.daemon_var(e) {
                Some(v) => set(&mut env, e, v),
                None => env.retain(|(k, _)| k != e),
            },
        }
    }
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
            daemon: vec![
                ("TERM".into(), "xterm".into()),
                ("HOME".into(), "/root".into()),
                ("FOO".into(), "from-daemon".into()),
                ("UPKEEP_REEXEC".into(), "9".into()),
                ("NOTIFY_SOCKET".into(), "/run/systemd/notify".into()),
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
}
