//! Every case of `shared/docs/upstart-parse-cases.md`, as a table.
//!
//! Each case is one assertion: the parsed value (only what differs from the
//! defaults is set on the expected job), or the first error as
//! `LINE: MESSAGE`, as Upstart reports it.

use upkeep::conf::{
    line_col, parse_job, parse_override, Cgroup, Command, Console, Expect, JobClass, Limit,
    NormalExit, ProcessType, Resource, RespawnLimit,
};
use upkeep::event::{EventExpr, EventMatch};

type Edit = fn(&mut JobClass);

#[track_caller]
fn parse(text: &str) -> JobClass {
    match parse_job("t", text.as_bytes()) {
        Ok(j) => j,
        Err(e) => panic!("{text:?} should parse, got {e:?}"),
    }
}

/// Asserts that `text` parses to the defaults changed by `edit`.
#[track_caller]
fn ok(text: &str, edit: Edit) {
    let mut want = JobClass::new("t");
    edit(&mut want);
    assert_eq!(parse(text), want, "job file {text:?}");
}

/// Asserts that the first error of `text` is `want` (`"LINE: MESSAGE"`).
#[track_caller]
fn err(text: &str, want: &str) {
    match parse_job("t", text.as_bytes()) {
        Ok(j) => panic!("{text:?} should fail with {want:?}, parsed to {j:?}"),
        Err(errors) => {
            let first = &errors[0];
            let (line, _) = line_col(text.as_bytes(), first.offset);
            assert_eq!(format!("{line}: {}", first.kind), want, "job file {text:?}");
        }
    }
}

fn m(name: &str, args: &[&str]) -> EventExpr {
    EventExpr::Match(EventMatch {
        name: name.to_string(),
        args: args.iter().map(|s| s.to_string()).collect(),
    })
}
fn and(l: EventExpr, r: EventExpr) -> EventExpr {
    EventExpr::And(Box::new(l), Box::new(r))
}
fn or(l: EventExpr, r: EventExpr) -> EventExpr {
    EventExpr::Or(Box::new(l), Box::new(r))
}
fn exec(cmd: &str) -> Option<Command> {
    Some(Command::Exec(cmd.to_string()))
}
fn script(body: &str) -> Option<Command> {
    Some(Command::Script(body.to_string()))
}
fn main_of(text: &str) -> Option<Command> {
    parse(text).process(ProcessType::Main).cloned()
}
fn start_on(text: &str) -> Option<EventExpr> {
    parse(text).start_on
}

// ---------------------------------------------------------------- A. lexical

#[test]
fn a_lexical_rules() {
    ok("", |_| {}); // A1
    ok(
        "# leading comment\n\n    # indented comment\nexec /bin/true   # trailing comment\n",
        |j| j.set_process(ProcessType::Main, exec("/bin/true")),
    ); // A2
    err("description \"svc\"\nexce /bin/true\n", "2: Unknown stanza"); // A3
    err("Exec /bin/true\n", "1: Unknown stanza"); // A4
    err("\"task\"\n", "1: Unknown stanza");
    ok("   task\r\n", |j| j.task = true); // A5
    assert_eq!(
        main_of("exec /usr/bin/daemon \\\n        --foreground\n"),
        exec("/usr/bin/daemon --foreground")
    ); // A6
    ok("description \"first line\n      second line\"\n", |j| {
        j.description = Some("first line second line".into())
    }); // A7
    ok("env GREETING=\"hello world\"\n", |j| {
        j.env = vec!["GREETING=hello world".into()]
    }); // A8
    ok("description \"say \\\"hi\\\"\"\n", |j| {
        j.description = Some("say \\\"hi\\\"".into())
    });
    ok("chdir /srv/my\\ app\n", |j| {
        j.chdir = Some("/srv/my app".into())
    });
    err("description \"\"\n", "1: Expected token"); // A9
    err("exec # nothing\n", "1: Expected token");
    err("description \"oops\n", "2: Unterminated quoted string"); // A10
    err("exec /bin/foo \\", "1: Trailing slash in file");
    err(
        "description \"x\"\nscript\n  echo hi\nend script\nnice 40\n",
        "5: Illegal nice value, expected -20 to 19",
    ); // A11
}

// ------------------------------------------------------- B. exec and script

#[test]
fn b_main_process() {
    assert_eq!(
        main_of("exec /sbin/daemon -d \"foo\"\n"),
        exec("/sbin/daemon -d \"foo\"")
    ); // B1
    assert_eq!(
        main_of("exec /bin/one\nexec /bin/two --x\n"),
        exec("/bin/two --x")
    ); // B2
    assert_eq!(
        main_of("exec /bin/one\nscript\n    echo hi\nend script\n"),
        script("echo hi\n")
    );
    assert_eq!(
        main_of("script\n  echo hi\nend script\nexec /bin/two\n"),
        exec("/bin/two")
    );
    err("exec\n", "1: Expected token"); // B3
    err("script now\n  echo\nend script\n", "1: Unexpected token");
    assert_eq!(
        main_of("script # main\n  echo\nend script\n"),
        script("echo\n")
    );
    assert_eq!(
        main_of("exec /bin/echo \"a # b\" # real comment\n"),
        exec("/bin/echo \"a # b\"")
    ); // B4
    assert_eq!(main_of("exec /bin/echo a\\#b\n"), exec("/bin/echo a\\#b"));
    assert_eq!(
        main_of("script\n    echo one\n    echo two\nend script\n"),
        script("echo one\necho two\n")
    ); // B5
    assert_eq!(
        main_of("script\n    if true; then\n        echo yes\n    fi\nend script\n"),
        script("if true; then\n    echo yes\nfi\n")
    ); // B6
    assert_eq!(
        main_of("script\n  echo a\n\n  echo b\nend script\n"),
        script("  echo a\n\n  echo b\n")
    ); // B7
    assert_eq!(
        main_of("script\n  echo a\n   end    script   # done\n"),
        script("echo a\n")
    ); // B8
    assert_eq!(main_of("script\necho\nend script"), script("echo\n"));
    err("script\necho hi\nendscript\n", "4: Unterminated block"); // B9
    assert_eq!(
        main_of("script\n  # shell comment\n  echo \"unbalanced\nend script\n"),
        script("# shell comment\necho \"unbalanced\n")
    ); // B10
    assert_eq!(main_of("script\nend script\n"), script("")); // B11
    err("script\n  echo hi\n", "3: Unterminated block"); // B12
                                                         // A word after `script` is the error, on its own line, before the
                                                         // block's missing end (Upstart's stanza_script checks it first).
    err("script foo\n  echo hi\n", "1: Unexpected token");
    err("pre-start script x\n  echo hi\n", "1: Unexpected token");
    err("script foo\n  echo hi\nend script\n", "1: Unexpected token");
}

// ------------------------------------------------------------- C. the hooks

#[test]
fn c_hooks() {
    ok("pre-start exec /bin/mkdir -p /run/svc\n", |j| {
        j.set_process(ProcessType::PreStart, exec("/bin/mkdir -p /run/svc"))
    }); // C1
    ok(
        "post-stop script\n    rm -f /run/svc/pid\nend script\n",
        |j| j.set_process(ProcessType::PostStop, script("rm -f /run/svc/pid\n")),
    ); // C2
    ok(
        "pre-stop script\n    echo first\nend script\npre-stop exec /bin/second\n",
        |j| j.set_process(ProcessType::PreStop, exec("/bin/second")),
    ); // C3
    err("pre-start\n", "1: Expected token"); // C4
    err("pre-stop exec\n", "1: Expected token");
    err("post-start foo\n", "1: Unknown stanza");
    err("pre-start EXEC /bin/x\n", "1: Unknown stanza");
    err("post-stop script now\nend script\n", "1: Unexpected token");
    ok(
        "pre-start exec /sbin/ifup -a\npost-stop exec /sbin/ifdown -a\n",
        |j| {
            j.set_process(ProcessType::PreStart, exec("/sbin/ifup -a"));
            j.set_process(ProcessType::PostStop, exec("/sbin/ifdown -a"));
        },
    ); // C5
}

// -------------------------------------------------------- D. start/stop on

#[test]
fn d_event_expressions() {
    assert_eq!(start_on("start on startup\n"), Some(m("startup", &[]))); // D1
    assert_eq!(
        start_on("start on net-device-up IFACE=eth0\n"),
        Some(m("net-device-up", &["IFACE=eth0"]))
    ); // D2
    assert_eq!(
        start_on("start on runlevel [2345] PREVLEVEL!=N\n"),
        Some(m("runlevel", &["[2345]", "PREVLEVEL!=N"]))
    ); // D3
    assert_eq!(
        start_on("start on custom MSG=\"hello world\"\n"),
        Some(m("custom", &["MSG=hello world"]))
    ); // D4
    assert_eq!(
        start_on("start on device-added DEVPATH=/dev/tty*\n"),
        Some(m("device-added", &["DEVPATH=/dev/tty*"]))
    );
    assert_eq!(
        start_on("start on a or b\n"),
        Some(or(m("a", &[]), m("b", &[])))
    ); // D5
    assert_eq!(
        start_on("start on a or b and c\n"),
        Some(and(or(m("a", &[]), m("b", &[])), m("c", &[])))
    ); // D6
    assert_eq!(
        start_on("start on a and (b or c)\n"),
        Some(and(m("a", &[]), or(m("b", &[]), m("c", &[]))))
    ); // D7
    let d8 =
        "start on (local-filesystems   # disks\n          and net-device-up IFACE!=lo)\ntask\n";
    let j = parse(d8);
    assert_eq!(
        j.start_on,
        Some(and(
            m("local-filesystems", &[]),
            m("net-device-up", &["IFACE!=lo"])
        ))
    ); // D8
    assert!(j.task, "parsing continues at line 3");
    err("start on a\n    or b\n", "2: Unknown stanza"); // D9
    assert_eq!(
        start_on("start on a \\\n    or b\n"),
        Some(or(m("a", &[]), m("b", &[])))
    ); // D10
    assert_eq!(start_on("start on a or b\nstart on c\n"), Some(m("c", &[]))); // D11
    err("start\n", "1: Expected token"); // D12
    err("start on\n", "1: Expected token");
    err("start foo\n", "1: Unknown stanza"); // D13
    err("start on(a)\n", "1: Unknown stanza");
    for t in [
        "start on or foo\n",
        "start on foo or\n",
        "start on foo and or bar\n",
        "start on foo or (and bar)\n",
        "start on foo or (bar and)\n",
    ] {
        err(t, "1: Expected event"); // D14
    }
    err("start on foo or bar)\n", "1: Mismatched parentheses"); // D15
    err("start on foo or (bar\n", "2: Mismatched parentheses");
    err("start on foo (bar or baz)\n", "1: Expected operator"); // D16
    err("start on (foo or bar) baz\n", "1: Expected operator");
    err(
        "start on my-event A=1 two\n",
        "1: Expected variable name before value",
    ); // D17
    assert_eq!(start_on("start on \"and\"\n"), Some(m("and", &[]))); // D18
    assert_eq!(start_on("start on a AND b\n"), Some(m("a", &["AND", "b"])));
    assert_eq!(
        parse("stop on runlevel [016]\n").stop_on,
        Some(m("runlevel", &["[016]"]))
    ); // D19
    err("stop on foo or\n", "1: Expected event");
    err("stop foo\n", "1: Unknown stanza");
}

// ----------------------------------------------------------------- E. manual

#[test]
fn e_manual() {
    ok("start on startup\nmanual\n", |_| {}); // E1
    assert_eq!(
        start_on("manual\nstart on startup\n"),
        Some(m("startup", &[]))
    ); // E2
    ok("manual # disabled\n", |_| {});
    err("manual foo\n", "1: Unknown stanza"); // E3
    ok("manual task\n", |j| j.task = true);
}

// ------------------------------------------------ F. task, respawn, limits

#[test]
fn f_task_and_respawn() {
    ok("task\ntask\n", |j| j.task = true); // F1
    err("task now\n", "1: Unexpected token");
    ok("respawn # restart when job dies\n", |j| j.respawn = true); // F2
    ok("respawn limit 3 60\n", |j| {
        j.respawn_limit = RespawnLimit {
            count: 3,
            interval_secs: 60,
        }
    }); // F3
    ok("respawn\nrespawn limit 3 60\n", |j| {
        j.respawn = true;
        j.respawn_limit = RespawnLimit {
            count: 3,
            interval_secs: 60,
        };
    }); // F4
    ok("respawn limit unlimited\n", |j| {
        j.respawn_limit = RespawnLimit {
            count: 0,
            interval_secs: 0,
        }
    }); // F5
    let j = parse("respawn limit 0 10\n");
    assert_eq!(
        j.respawn_limit,
        RespawnLimit {
            count: 0,
            interval_secs: 10
        }
    );
    assert!(j.respawn_limit.is_unlimited());
    ok("respawn limit 5 60\nrespawn limit 10 120\n", |j| {
        j.respawn_limit = RespawnLimit {
            count: 10,
            interval_secs: 120,
        }
    }); // F6
    err("respawn limit 10\n", "1: Expected token"); // F7
    err("respawn limit\n", "1: Expected token");
    for t in [
        "respawn limit ten 5\n",
        "respawn limit -1 5\n",
        "respawn limit UNLIMITED\n",
    ] {
        err(t, "1: Illegal limit, expected 'unlimited' or integer"); // F8
    }
    for t in [
        "respawn limit 10 5s\n",
        "respawn limit 10 -5\n",
        "respawn limit 10 99999999999999999999\n",
    ] {
        err(t, "1: Illegal interval, expected number of seconds"); // F9
    }
    err("respawn limit 1 2 3\n", "1: Unexpected token"); // F10
    err("respawn forever\n", "1: Unknown stanza");
}

// ------------------------------------------------------------ G. normal exit

#[test]
fn g_normal_exit() {
    use NormalExit::{Signal, Status};
    ok("normal exit 0\n", |j| j.normal_exit = vec![Status(0)]); // G1
    ok("normal exit 0 1 TERM SIGHUP\n", |j| {
        j.normal_exit = vec![Status(0), Status(1), Signal(15), Signal(1)]
    }); // G2
    ok("normal exit 2\nnormal exit 3 4\nnormal exit QUIT\n", |j| {
        j.normal_exit = vec![Status(2), Status(3), Status(4), Signal(3)]
    }); // G3
    ok("normal exit 300\n", |j| j.normal_exit = vec![Status(300)]);
    err("normal exit\n", "1: Expected token"); // G4
    err("normal\n", "1: Expected token");
    err("normal exits 0\n", "1: Unknown stanza");
    for t in ["normal exit -1\n", "normal exit 2x\n", "normal exit term\n"] {
        err(t, "1: Illegal exit status, expected integer"); // G5
    }
}

// --------------------------------------------------------------- H. instance

#[test]
fn h_instance() {
    ok("instance $TTY\n", |j| j.instance = "$TTY".into()); // H1
    ok("instance \"${IFACE}-${ADDR}\"\n", |j| {
        j.instance = "${IFACE}-${ADDR}".into()
    });
    ok("instance $A\ninstance $B\n", |j| j.instance = "$B".into()); // H2
    err("instance $A $B\n", "1: Unexpected token"); // H3
    err("instance\n", "1: Expected token");
}

// --------------------------------------------------------- I. env and export

#[test]
fn i_env_and_export() {
    ok("env LANG=C\n", |j| j.env = vec!["LANG=C".into()]); // I1
    ok("env MSG=\"hello world\"\n", |j| {
        j.env = vec!["MSG=hello world".into()]
    });
    ok("env \"MSG=hello world\"\n", |j| {
        j.env = vec!["MSG=hello world".into()]
    });
    err("env MSG=hello world\n", "1: Unexpected token"); // I2
    ok("env A=1\nenv B=2\nenv A=3\n", |j| {
        j.env = vec!["A=1".into(), "B=2".into(), "A=3".into()]
    }); // I3
    ok("env HOME\n", |j| j.env = vec!["HOME".into()]); // I4
    ok("env A=$B\n", |j| j.env = vec!["A=$B".into()]);
    ok("env K=\n", |j| j.env = vec!["K=".into()]);
    err("env\n", "1: Expected token"); // I5
    err("export\n", "1: Expected token");
    ok("export A B\nexport C\n", |j| {
        j.export = vec!["A".into(), "B".into(), "C".into()]
    }); // I6
}

// ----------------------------------------------------------------- J. expect

#[test]
fn j_expect() {
    ok("expect fork\n", |j| j.expect = Expect::Fork); // J1
    ok("expect daemon\n", |j| j.expect = Expect::Daemon);
    ok("expect stop\n", |j| j.expect = Expect::Stop);
    ok("expect none\n", |_| {});
    ok("expect \"daemon\"\n", |j| j.expect = Expect::Daemon);
    ok("expect stop\nexpect none\n", |_| {}); // J2
    err("expect\n", "1: Expected token"); // J3
    err("expect forks\n", "1: Unknown stanza");
    err("expect fork now\n", "1: Unexpected token");
}

// --------------------------------------------------------- K. kill and reload

#[test]
fn k_kill_and_reload() {
    ok("kill timeout 30\n", |j| j.kill_timeout_secs = 30); // K1
    ok("kill timeout 0\n", |j| j.kill_timeout_secs = 0);
    ok("kill signal INT\n", |j| j.kill_signal = 2); // K2
    ok("kill signal SIGQUIT\n", |j| j.kill_signal = 3);
    ok("kill signal 10\n", |j| j.kill_signal = 10);
    ok("kill signal INT\nkill signal TERM\n", |_| {}); // K3
    for t in [
        "kill signal int\n",
        "kill signal RTMIN+1\n",
        "reload signal foo\n",
    ] {
        err(t, "1: Illegal signal status, expected integer"); // K4
    }
    for t in ["kill timeout -1\n", "kill timeout 5s\n"] {
        err(t, "1: Illegal interval, expected number of seconds"); // K5
    }
    err("kill\n", "1: Expected token"); // K6
    err("kill now\n", "1: Unknown stanza");
    err("kill timeout\n", "1: Expected token");
    err("kill signal TERM now\n", "1: Unexpected token");
    ok("reload signal USR1\n", |j| j.reload_signal = 10); // K7
    err("reload\n", "1: Expected token"); // K8
    err("reload signal\n", "1: Expected token");
    err("reload sig HUP\n", "1: Unknown stanza");
}

// ---------------------------------------------------------------- L. console

#[test]
fn l_console() {
    ok("console none\n", |j| j.console = Console::None); // L1
    ok("console log\n", |_| {});
    ok("console output\n", |j| j.console = Console::Output);
    ok("console owner\n", |j| j.console = Console::Owner);
    ok("console output\nconsole owner\n", |j| {
        j.console = Console::Owner
    });
    err("console\n", "1: Expected token"); // L2
    err("console syslog\n", "1: Unknown stanza");
    err("console Log\n", "1: Unknown stanza");
    err("console log now\n", "1: Unexpected token");
}

// ------------------------------------------------------ M. umask, nice, oom

#[test]
fn m_umask_nice_oom() {
    ok("umask 007\n", |j| j.umask = 0o007); // M1
    ok("umask 0777\n", |j| j.umask = 0o777);
    for t in ["umask 1000\n", "umask 8\n", "umask -1\n"] {
        err(t, "1: Illegal file creation mask, expected octal integer"); // M2
    }
    err("umask\n", "1: Expected token");
    ok("nice -5\n", |j| j.nice = Some(-5)); // M3
    ok("nice +5\n", |j| j.nice = Some(5));
    ok("nice 19\n", |j| j.nice = Some(19));
    for t in ["nice 20\n", "nice -21\n", "nice 1.5\n"] {
        err(t, "1: Illegal nice value, expected -20 to 19");
    }
    ok("oom score 500\n", |j| j.oom_score = 500); // M4
    ok("oom score -1000\n", |j| j.oom_score = -1000);
    ok("oom score never\n", |j| j.oom_score = -1000);
    err(
        "oom score 1001\n",
        "1: Illegal oom score adjustment, expected -999 to 1000 or 'never'",
    );
    ok("oom 15\n", |j| j.oom_score = 1000); // M5
    ok("oom 10\n", |j| j.oom_score = 666);
    ok("oom -10\n", |j| j.oom_score = -588);
    ok("oom -17\n", |j| j.oom_score = -1000);
    ok("oom never\n", |j| j.oom_score = -1000);
    err(
        "oom 16\n",
        "1: Illegal oom adjustment, expected -16 to 15 or 'never'",
    );
    ok("oom -10\noom score 10\n", |j| j.oom_score = 10); // M6
    ok("oom score -10\noom 10\n", |j| j.oom_score = 666);
    err("oom\n", "1: Expected token"); // M7
    err("oom score\n", "1: Expected token");
    err("oom score 500 now\n", "1: Unexpected token");
    err(
        "oom Score 5\n",
        "1: Illegal oom adjustment, expected -16 to 15 or 'never'",
    );
}

// ------------------------------------------------------------------ N. limit

#[test]
fn n_limit() {
    let lim = |soft, hard| Limit { soft, hard };
    ok("limit nofile 1024 4096\n", |j| {
        j.limits.insert(
            Resource::Nofile,
            Limit {
                soft: Some(1024),
                hard: Some(4096),
            },
        );
    }); // N1
    assert_eq!(
        parse("limit core unlimited unlimited\n").limits[&Resource::Core],
        lim(None, None)
    );
    assert_eq!(
        parse("limit as 100 200\n").limits[&Resource::As],
        lim(Some(100), Some(200))
    );
    let j = parse("limit nofile 10 20\nlimit nproc 5 5\nlimit nofile 30 40\n"); // N2
    assert_eq!(j.limits.len(), 2);
    assert_eq!(j.limits[&Resource::Nofile], lim(Some(30), Some(40)));
    assert_eq!(j.limits[&Resource::Nproc], lim(Some(5), Some(5)));
    for t in ["limit nofile 1024\n", "limit nofile\n", "limit\n"] {
        err(t, "1: Expected token"); // N3
    }
    err("limit files 1 2\n", "1: Unknown stanza");
    for t in [
        "limit nofile lots 10\n",
        "limit nofile 10 99999999999999999999\n",
    ] {
        err(t, "1: Illegal limit, expected 'unlimited' or integer"); // N4
    }
    err("limit nofile 1 2 3\n", "1: Unexpected token");
    // N5: Upstart wrapped -1 to "unlimited"; upkeep says it is not a limit.
    err(
        "limit nofile -1 10\n",
        "1: Illegal limit, expected 'unlimited' or integer",
    );
}

// ------------------------------------------------ O. text and path stanzas

#[test]
fn o_text_and_paths() {
    ok("description \"Web server\"\n", |j| {
        j.description = Some("Web server".into())
    }); // O1
    ok("description a\ndescription b\nauthor x\nauthor y\n", |j| {
        j.description = Some("b".into());
        j.author = Some("y".into());
    });
    ok("version \"1.2-3\"\n", |j| j.version = Some("1.2-3".into()));
    ok("usage \"tty DEV=ttyX\"\n", |j| {
        j.usage = Some("tty DEV=ttyX".into())
    });
    err("description Web server\n", "1: Unexpected token"); // O2
    err("usage tty DEV=ttyX\n", "1: Unexpected token");
    err("author\n", "1: Expected token");
    ok("chdir \"/srv/my app\"\n", |j| {
        j.chdir = Some("/srv/my app".into())
    }); // O3
    ok("chroot /srv/jail\n", |j| {
        j.chroot = Some("/srv/jail".into())
    });
    err("chdir /a /b\n", "1: Unexpected token");
    err("chroot\n", "1: Expected token");
    ok("setuid www-data\n", |j| j.setuid = Some("www-data".into())); // O4
    ok("setgid adm\n", |j| j.setgid = Some("adm".into()));
    err("setuid\n", "1: Expected token");
    err("setuid a b\n", "1: Unexpected token");
    ok("emits foo bar-*\nemits baz\n", |j| {
        j.emits = vec!["foo".into(), "bar-*".into(), "baz".into()]
    }); // O5
    err("emits\n", "1: Expected token");
}

// --------------------------------------------------- P. apparmor and cgroup

#[test]
fn p_apparmor_and_cgroup() {
    ok("apparmor load /etc/apparmor.d/usr.sbin.foo\n", |j| {
        j.apparmor_load = Some("/etc/apparmor.d/usr.sbin.foo".into())
    }); // P1
    ok("apparmor switch /usr/sbin/foo\n", |j| {
        j.apparmor_switch = Some("/usr/sbin/foo".into())
    });
    err("apparmor\n", "1: Expected token"); // P2
    err("apparmor load\n", "1: Expected token");
    err("apparmor foo\n", "1: Unknown stanza");
    err("apparmor switch x y\n", "1: Unexpected token");
    let cg = |c: &str, n: &str, s: &[(&str, &str)]| Cgroup {
        controller: c.into(),
        name: n.into(),
        settings: s
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    assert_eq!(
        parse("cgroup memory\n").cgroups,
        vec![cg("memory", "$UPSTART_CGROUP", &[])]
    ); // P3
    assert_eq!(
        parse("cgroup cpu \"a b\"\n").cgroups,
        vec![cg("cpu", "a b", &[])]
    );
    assert_eq!(
        parse("cgroup memory limit_in_bytes 52428800\n").cgroups,
        vec![cg(
            "memory",
            "$UPSTART_CGROUP",
            &[("limit_in_bytes", "52428800")]
        )]
    );
    assert_eq!(
        parse("cgroup blkio slowio throttle.write_bps_device \"8:16 1048576\"\n").cgroups,
        vec![cg(
            "blkio",
            "slowio",
            &[("throttle.write_bps_device", "8:16 1048576")]
        )]
    );
    err("cgroup\n", "1: Expected token"); // P4
    err("cgroup a b c d e\n", "1: Unexpected token");
    assert_eq!(
        parse("cgroup memory\ncgroup memory\n").cgroups,
        vec![cg("memory", "$UPSTART_CGROUP", &[])]
    );
    assert_eq!(
        parse("cgroup memory a 1\ncgroup memory b 2\ncgroup memory a 3\n").cgroups,
        vec![cg("memory", "$UPSTART_CGROUP", &[("a", "3"), ("b", "2")])]
    );
}

/// upkeep's direct limits (an extension): each value checked, errors at
/// the value's column, and printed back as read.
#[test]
fn cgroup_limit_stanzas() {
    let j = parse(
        "memory max 50M\nmemory high 1G\ncpu quota 150%\ncpu weight 200\ntasks max 64\nio weight 50\n",
    );
    let l = &j.cgroup_limits;
    assert_eq!(l.memory_max, Some(50 << 20));
    assert_eq!(l.memory_high, Some(1 << 30));
    assert_eq!(l.cpu_quota_percent, Some(150));
    assert_eq!(l.cpu_weight, Some(200));
    assert_eq!(l.tasks_max, Some(64));
    assert_eq!(l.io_weight, Some(50));
    let printed = upkeep::conf::print::to_job_file(&j);
    for line in ["memory max 52428800", "cpu quota 150%", "io weight 50"] {
        assert!(printed.contains(line), "{printed}");
    }
    assert_eq!(parse(&printed).cgroup_limits, j.cgroup_limits);
    // The error names the value's column, and what was expected.
    let err = |text: &str, want: &str| {
        let errors = parse_job("t", text.as_bytes()).expect_err(text);
        let (line, col) = line_col(text.as_bytes(), errors[0].offset);
        let got = format!("{line}:{col}: {}", errors[0].kind);
        assert!(got.starts_with(want), "{text:?}: {got}");
    };
    err(
        "memory max lots\n",
        "1:12: Illegal limit: expected a size in bytes",
    );
    err("memory max 0\n", "1:12: Illegal limit");
    err("memory low 5M\n", "1:8: Unknown stanza");
    err(
        "cpu quota 50\n",
        "1:11: Illegal limit: expected a percentage",
    );
    err(
        "cpu weight 0\n",
        "1:12: Illegal limit: expected a weight from 1 to 10000",
    );
    err("io weight 10001\n", "1:11: Illegal limit");
    err(
        "tasks max -1\n",
        "1:11: Illegal limit: expected a number of tasks",
    );
    err("tasks max 5 6\n", "1:13: Unexpected token");
    err("memory\n", "1:7: Expected token");
}

// ---------------------------------------------------------- Q. overrides

fn with_override(conf: &str, over: &str) -> Result<JobClass, String> {
    let base = parse_job("t", conf.as_bytes()).map_err(|e| format!("conf: {e:?}"))?;
    parse_override(&base, over.as_bytes()).map_err(|e| {
        let (line, _) = line_col(over.as_bytes(), e[0].offset);
        format!("{line}: {}", e[0].kind)
    })
}

#[test]
fn q_overrides() {
    let j = with_override("start on runlevel [2345]\nexec /bin/d\n", "manual\n").unwrap(); // Q1
    assert_eq!(j.start_on, None);
    assert_eq!(j.process(ProcessType::Main).cloned(), exec("/bin/d"));
    let j = with_override("env A=1\nnormal exit 1\n", "env A=2\nnormal exit 2\n").unwrap(); // Q2
    assert_eq!(j.env, vec!["A=1".to_string(), "A=2".to_string()]);
    assert_eq!(
        j.normal_exit,
        vec![NormalExit::Status(1), NormalExit::Status(2)]
    );
    let j = with_override(
        "exec /bin/a\nconsole log\n",
        "script\n  /bin/b\nend script\nconsole none\n",
    )
    .unwrap(); // Q3
    assert_eq!(j.process(ProcessType::Main).cloned(), script("/bin/b\n"));
    assert_eq!(j.console, Console::None);
    let j = with_override("respawn\n", "respawn limit 2 10\n").unwrap();
    assert!(j.respawn);
    assert_eq!(
        j.respawn_limit,
        RespawnLimit {
            count: 2,
            interval_secs: 10
        }
    );
    // Q4 (an override with no conf) is a conf-dir rule: tests/conf_dirs.rs.
    // Q5: the override's error is reported, and none of it applies.
    assert_eq!(
        with_override("exec /bin/x\n", "nice 5\nbogus\n"),
        Err("2: Unknown stanza".into())
    );
    // Q6: an invalid conf defines no job, whatever the override.
    assert!(parse_job("t", b"exce /bin/x\n").is_err());
}

// ------------------------------------------- upkeep: every error, in order

#[test]
fn every_error_is_reported_in_file_order() {
    let text = "exce /bin/x\nnice 40\ndescription \"ok\"\nstart on foo or\nkill signal nope\nscript bad\n  echo\nend script\ntask\n";
    let errors = parse_job("t", text.as_bytes()).unwrap_err();
    let got: Vec<String> = errors
        .iter()
        .map(|e| {
            let (l, c) = line_col(text.as_bytes(), e.offset);
            format!("{l}:{c}: {}", e.kind)
        })
        .collect();
    assert_eq!(
        got,
        vec![
            "1:1: Unknown stanza",
            "2:6: Illegal nice value, expected -20 to 19",
            "4:14: Expected event",
            "5:13: Illegal signal status, expected integer",
            "6:8: Unexpected token",
        ]
    );
}

// ------------------------------------------- upkeep's `env-file` extension

#[test]
fn env_file_stanzas() {
    fn f(path: &str, optional: bool) -> upkeep::conf::EnvFile {
        upkeep::conf::EnvFile {
            path: path.into(),
            optional,
        }
    }
    ok("env-file /etc/default/web\n", |j| {
        j.env_files = vec![f("/etc/default/web", false)]
    });
    ok("env-file /a\nenv-file -/b\n", |j| {
        j.env_files = vec![f("/a", false), f("/b", true)]
    });
    ok("env-file \"/with space\"\n", |j| {
        j.env_files = vec![f("/with space", false)]
    });
    let illegal =
        "1: Illegal env-file, expected an absolute path (or -PATH when the file may be missing)";
    for t in [
        "env-file relative\n",
        "env-file -relative\n",
        "env-file -\n",
    ] {
        err(t, illegal);
    }
    err("env-file\n", "1: Expected token");
    err("env-file /a /b\n", "1: Unexpected token");
}

// ------------------------------------------- upkeep's `log` extension

#[test]
fn log_extension_stanzas() {
    use upkeep::conf::{LogCapture, LogPeriod};
    ok("log pipe\n", |j| j.log.capture = Some(LogCapture::Pipe));
    ok("log pty\n", |j| j.log.capture = Some(LogCapture::Pty));
    ok("log size 100M\n", |j| j.log.size = Some(100 << 20));
    ok("log size 512k\n", |j| j.log.size = Some(512 << 10));
    ok("log size 123\n", |j| j.log.size = Some(123));
    ok("log size unlimited\n", |j| j.log.size = Some(0));
    ok("log keep 30\n", |j| j.log.keep = Some(30));
    ok("log rotate daily\n", |j| {
        j.log.rotate = Some(LogPeriod::Daily)
    });
    ok("log rotate never\n", |j| {
        j.log.rotate = Some(LogPeriod::Never)
    });
    ok("log compress no\n", |j| j.log.compress = Some(false));
    ok("log timestamps yes\n", |j| j.log.timestamps = Some(true));
    ok("log keep 3\nlog keep 4\n", |j| j.log.keep = Some(4));
    let illegal = "1: Illegal log setting, expected pty, pipe, size SIZE, keep N, rotate daily|never, compress yes|no or timestamps yes|no";
    for t in [
        "log size lots\n",
        "log size -1M\n",
        "log keep x\n",
        "log rotate hourly\n",
        "log compress maybe\n",
        "log timestamps always\n",
        "log size 99999999999999G\n",
    ] {
        err(t, illegal);
    }
    err("log\n", "1: Expected token");
    err("log files\n", "1: Unknown stanza");
    err("log pipe now\n", "1: Unexpected token");
    err("log size\n", "1: Expected token");
}

#[test]
fn readiness_extension_stanzas() {
    ok("expect notify\n", |j| j.expect = Expect::Notify);
    ok("ready timeout 30\n", |j| j.ready_timeout_secs = Some(30));
    err("ready timeout\n", "1: Expected token");
    err(
        "ready timeout soon\n",
        "1: Illegal interval, expected number of seconds",
    );
    err("ready now\n", "1: Unknown stanza");
    err("ready timeout 3 4\n", "1: Unexpected token");
}

// ------------------------------------------- upkeep's `health` extension

#[test]
fn health_extension_stanzas() {
    use upkeep::conf::health::{Check, Probe};
    fn addr(s: &str) -> std::net::SocketAddr {
        s.parse().unwrap()
    }
    ok("health alive tcp 127.0.0.1:6379\n", |j| {
        j.health.alive = Some(Box::new(Probe::new(Check::Tcp(addr("127.0.0.1:6379")))))
    });
    ok("health ready tcp localhost:80\n", |j| {
        j.health.ready = Some(Box::new(Probe::new(Check::Tcp(addr("127.0.0.1:80")))))
    });
    ok("health alive exec redis-cli -p 6379 ping\n", |j| {
        j.health.alive = Some(Box::new(Probe::new(Check::Exec(
            "redis-cli -p 6379 ping".into(),
        ))))
    });
    ok(
        "health ready http://[::1]:8000/healthz host app.local status 200-204\n",
        |j| {
            j.health.ready = Some(Box::new(Probe::new(Check::Http {
                addr: addr("[::1]:8000"),
                path: "/healthz".into(),
                host: Some("app.local".into()),
                status: (200, 204),
            })))
        },
    );
    // Settings follow their probe; a new probe line starts from the
    // defaults again.
    ok(
        "health alive http://127.0.0.1:80\nhealth alive period 0.5 timeout 2\nhealth alive failure-threshold 5 success-threshold 2 initial-delay 1.25\n",
        |j| {
            let mut p = Probe::new(Check::Http {
                addr: addr("127.0.0.1:80"),
                path: "/".into(),
                host: None,
                status: (200, 399),
            });
            p.period_ms = 500;
            p.timeout_ms = 2000;
            p.failure_threshold = 5;
            p.success_threshold = 2;
            p.initial_delay_ms = 1250;
            j.health.alive = Some(Box::new(p));
        },
    );
    ok(
        "health alive tcp 127.0.0.1:1\nhealth alive period 3\nhealth alive tcp 127.0.0.1:2\n",
        |j| j.health.alive = Some(Box::new(Probe::new(Check::Tcp(addr("127.0.0.1:2"))))),
    );
    let illegal = |why: &str| format!("1: Illegal health probe: {why}");
    err(
        "health alive tcp db.local:5432\n",
        &illegal(
            "expected a numeric IP:PORT, [IPv6]:PORT or localhost:PORT (names are never looked up)",
        ),
    );
    err(
        "health ready https://127.0.0.1:443/\n",
        &illegal("expected http://IP:PORT/PATH (plain HTTP; https is not supported)"),
    );
    err(
        "health ready period 5\n",
        &illegal("expected exec, tcp or http://…; a settings line comes after its role's probe"),
    );
    err(
        "health alive tcp 127.0.0.1:1\nhealth alive period soon\n",
        "2: Illegal health probe: expected a number of seconds (decimals allowed), at most 86400",
    );
    err(
        "health alive tcp 127.0.0.1:1\nhealth alive failure-threshold 0\n",
        "2: Illegal health probe: expected a count from 1 to 1000",
    );
    err(
        "health alive tcp 127.0.0.1:1\nhealth alive every 5\n",
        "2: Illegal health probe: expected initial-delay, period, timeout, failure-threshold or success-threshold",
    );
    err(
        "health alive http://127.0.0.1:80/ status 500-200\n",
        &illegal("the range's low end is above its high end"),
    );
    err(
        "health alive http://127.0.0.1:80/ colour red\n",
        &illegal("expected host NAME or status LOW-HIGH"),
    );
    err("health sometimes tcp 127.0.0.1:1\n", "1: Unknown stanza");
    err("health alive\n", "1: Expected token");
    err("health alive tcp 127.0.0.1:1 now\n", "1: Unexpected token");
    err(
        "health alive tcp 127.0.0.1:1\nhealth alive period\n",
        "2: Expected token",
    );
    // show-config's text parses back to the same job.
    let text = "health ready http://127.0.0.1:8000/x host h status 204\nhealth ready period 0.25\nhealth alive exec pg_isready -q\nexec sleep 1\n";
    let job = parse(text);
    let printed = upkeep::conf::print::to_job_file(&job);
    assert!(
        printed.contains("health ready http://127.0.0.1:8000/x host h status 204-204\n"),
        "{printed}"
    );
    assert_eq!(parse(&printed), job, "{printed}");
}
