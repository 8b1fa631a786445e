//! Properties of the parser:
//! * any bytes: no panic, and every error points inside the input;
//! * any job: its printed form parses back to the same job;
//! * any text that parses: print → parse gives the same job again.

use proptest::prelude::*;
use upkeep::conf::{
    parse_job, print::to_job_file, Cgroup, Command, Console, Expect, JobClass, Limit, LogCapture,
    LogPeriod, NormalExit, ProcessType, Resource, RespawnLimit,
};
use upkeep::event::{EventExpr, EventMatch};

fn word() -> impl Strategy<Value = String> {
    // Anything printable but newline, including quotes, backslashes, `#`,
    // blanks and parentheses, which the printer must quote.
    "[ -~\t\u{e9}]{1,12}"
}

fn opt_word() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(word())
}

fn event_match() -> impl Strategy<Value = EventMatch> {
    (
        prop_oneof![word(), Just("and".to_string()), Just("or".to_string())],
        proptest::collection::vec("[ -<>-~]{1,6}", 0..3),
        proptest::collection::vec(
            (
                "[A-Z_]{1,5}",
                prop_oneof![Just("="), Just("!=")],
                "[ -~]{0,6}",
            ),
            0..3,
        ),
    )
        .prop_map(|(name, positional, named)| {
            let mut args = positional;
            args.extend(named.into_iter().map(|(k, op, v)| format!("{k}{op}{v}")));
            EventMatch { name, args }
        })
}

fn event_expr() -> impl Strategy<Value = EventExpr> {
    event_match()
        .prop_map(EventExpr::Match)
        .prop_recursive(4, 16, 2, |inner| {
            (inner.clone(), inner, any::<bool>()).prop_map(|(l, r, is_and)| {
                if is_and {
                    EventExpr::And(Box::new(l), Box::new(r))
                } else {
                    EventExpr::Or(Box::new(l), Box::new(r))
                }
            })
        })
}

fn command() -> impl Strategy<Value = Command> {
    let exec =
        r#"[a-z/]{1,8}( ([a-z0-9=._/$-]{1,8}|"[a-z #']{0,8}"|'[a-z #"]{0,8}'|\\#|\\\\)){0,4}"#
            .prop_map(Command::Exec);
    // Body lines never start with a blank (the printer relies on the first
    // line having no indentation to strip), may be empty, and hold anything
    // else, shell quotes and comments included.
    let line = prop_oneof![Just(String::new()), "[a-z#\"'\\\\$(][ -~\t]{0,12}"];
    let script = proptest::collection::vec(line, 0..5)
        .prop_map(|lines| Command::Script(lines.iter().map(|l| format!("{l}\n")).collect()))
        .prop_filter("no terminator line", |c| match c {
            Command::Script(b) => !b.lines().any(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.len() >= 2 && w[0] == "end" && w[1].starts_with("script")
            }),
            Command::Exec(_) => true,
        });
    prop_oneof![exec, script]
}

prop_compose! {
    /// The first half of a job (split in two: one strategy for every field
    /// makes a type whose frames overflow a test thread's stack).
    fn job_head()(
        texts in (opt_word(), opt_word(), opt_word(), opt_word()),
        instance in prop_oneof![Just(String::new()), word()],
        start_on in proptest::option::of(event_expr()),
        stop_on in proptest::option::of(event_expr()),
        emits in proptest::collection::vec(word(), 0..3),
        processes in proptest::array::uniform5(proptest::option::of(command())),
        flags in (any::<bool>(), any::<bool>(), any::<bool>()),
        limit in prop_oneof![Just((0u32, 0u32)), (0u32..1000, 1u32..1000)],
        normal_exit in proptest::collection::vec(prop_oneof![
            (0u32..400).prop_map(NormalExit::Status),
            prop_oneof![Just(1), Just(2), Just(9), Just(15), Just(17), Just(31)].prop_map(NormalExit::Signal),
        ], 0..4),
                expect in prop_oneof![Just(Expect::None), Just(Expect::Fork), Just(Expect::Daemon), Just(Expect::Stop), Just(Expect::Notify)],
        env in proptest::collection::vec(word(), 0..4),
        export in proptest::collection::vec("[A-Z_]{1,6}", 0..3),
    ) -> JobClass {
        let mut j = JobClass::new("t");
        (j.description, j.author, j.version, j.usage) = texts;
        j.instance = instance;
        j.start_on = start_on;
        j.stop_on = stop_on;
        j.emits = emits;
        for (t, cmd) in ProcessType::ALL.into_iter().zip(processes) {
            j.set_process(t, cmd);
        }
        (j.task, j.respawn, j.debug) = flags;
        j.respawn_limit = RespawnLimit { count: limit.0, interval_secs: limit.1 };
        j.normal_exit = normal_exit;
        j.expect = expect;
        j.env = env;
        j.export = export;
        j
    }
}

prop_compose! {
    fn job_class()(
        head in job_head().boxed(),
        ids in (opt_word(), opt_word(), opt_word(), opt_word()),
        umask in 0u32..0o1000,
        nice in proptest::option::of(-20i32..20),
        oom_score in -1000i32..1001,
        limits in proptest::collection::btree_map(
            proptest::sample::select(Resource::ALL.to_vec()),
            (proptest::option::of(any::<u64>()), proptest::option::of(any::<u64>()))
                .prop_map(|(soft, hard)| Limit { soft, hard }),
            0..3),
        console in prop_oneof![Just(Console::None), Just(Console::Log), Just(Console::Output), Just(Console::Owner)],
        signals in (0i32..70, 0u32..100_000, 0i32..70),
                apparmor in (opt_word(), opt_word()),
        ready in proptest::option::of(0u32..100_000),
        log in (
            proptest::option::of(prop_oneof![Just(LogCapture::Pty), Just(LogCapture::Pipe)]),
            proptest::option::of(any::<u64>()),
            proptest::option::of(0u32..100_000),
            proptest::option::of(prop_oneof![Just(LogPeriod::Daily), Just(LogPeriod::Never)]),
            proptest::option::of(any::<bool>()),
        ),
        cgroups in proptest::collection::vec(("[a-z]{1,6}", prop_oneof![Just("$UPSTART_CGROUP".to_string()), word()],
            proptest::collection::btree_map("[a-z_.]{1,6}", word(), 0..3)), 0..3),
    ) -> JobClass {
        let mut j = head;
        (j.setuid, j.setgid, j.chroot, j.chdir) = ids;
        j.umask = umask;
        j.nice = nice;
        j.oom_score = oom_score;
        j.limits = limits;
        j.console = console;
        (j.kill_signal, j.kill_timeout_secs, j.reload_signal) = signals;
        (j.apparmor_load, j.apparmor_switch) = apparmor;
                (j.log.capture, j.log.size, j.log.keep, j.log.rotate, j.log.compress) = log;
        j.ready_timeout_secs = ready;
        // Distinct controller/name pairs, as the parser's merging makes them.
        let mut seen = std::collections::HashSet::new();
        j.cgroups = cgroups
            .into_iter()
            .filter(|(c, n, _)| seen.insert((c.clone(), n.clone())))
            .map(|(controller, name, settings)| Cgroup { controller, name, settings: settings.into_iter().collect() })
            .collect();
        j
    }
}

/// Job-file-like text: real stanza shapes, mangled.
fn job_text() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        Just("exec /bin/x -a \"b c\"\n".to_string()),
        Just("script\n  echo \"$X\" # hi\n\n  end scriptx\nend script\n".to_string()),
        Just("start on (a and\n  b) or c X=1\n".to_string()),
        Just("stop on runlevel [!2345]\n".to_string()),
        Just("env A=\"x y\"\n".to_string()),
        Just("respawn\nrespawn limit 3 60\n".to_string()),
        Just("manual\n".to_string()),
        Just("limit nofile 10 unlimited\n".to_string()),
        Just("description 'it''s'\n".to_string()),
        Just("normal exit 0 TERM\n".to_string()),
        Just("pre-start script\n\techo\nend script\n".to_string()),
        "[ -~\t\n\\\\\"'#()]{0,30}",
    ];
    proptest::collection::vec(fragment, 0..8).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_errors_point_inside(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Err(errors) = parse_job("t", &bytes) {
            prop_assert!(!errors.is_empty());
            for e in errors {
                prop_assert!(e.offset <= bytes.len(), "{e:?} outside {} bytes", bytes.len());
            }
        }
    }

    #[test]
    fn job_like_text_never_panics_and_round_trips(text in job_text()) {
        match parse_job("t", text.as_bytes()) {
            Err(errors) => for e in errors {
                prop_assert!(e.offset <= text.len());
            },
            Ok(job) => {
                let printed = to_job_file(&job);
                let again = parse_job("t", printed.as_bytes());
                prop_assert_eq!(again, Ok(job), "printed:\n{}", printed);
            }
        }
    }

    #[test]
    fn printed_jobs_parse_back_to_themselves(job in job_class()) {
        let printed = to_job_file(&job);
        let again = parse_job("t", printed.as_bytes());
        prop_assert_eq!(again, Ok(job), "printed:\n{}", printed);
    }
}
