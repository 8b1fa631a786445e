//! State-machine tests, without processes: a small simulated world answers
//! the machine's actions.

use super::*;
use crate::conf::parse_job;

/// A world that answers spawns with new pids and records everything.
struct Sim {
    class: Rc<JobClass>,
    inst: Instance,
    now: Duration,
    next_pid: Pid,
    log: Vec<Action>,
    /// Answer blocking events at once.
    auto_events: bool,
}

impl Sim {
    fn new(job_file: &str) -> Sim {
        let class = Rc::new(parse_job("j", job_file.as_bytes()).expect("test job parses"));
        Sim {
            inst: Instance::new("j", "", class.clone(), Vec::new()),
            class,
            now: Duration::from_secs(1000),
            next_pid: 100,
            log: Vec::new(),
            auto_events: true,
        }
    }

    /// Feeds an input, then answers spawns (and, if auto, events) until the
    /// machine waits on something else. Returns every action seen.
    fn feed(&mut self, input: Input) -> Result<Vec<Action>, Refusal> {
        let mut all = Vec::new();
        let mut pending = vec![input];
        while let Some(i) = pending.pop() {
            let actions = self.inst.step(&self.class, self.now, i)?;
            for a in &actions {
                match a {
                    Action::Spawn(p) => {
                        self.next_pid += 1;
                        pending.push(Input::Spawned {
                            process: *p,
                            pid: self.next_pid,
                        });
                    }
                    Action::Emit { blocking: true, .. } if self.auto_events => {
                        pending.push(Input::EventDone)
                    }
                    _ => {}
                }
            }
            all.extend(actions);
        }
        self.log.extend(all.clone());
        Ok(all)
    }

    fn ok(&mut self, input: Input) -> Vec<Action> {
        self.feed(input).expect("input accepted")
    }

    fn at(&self) -> (Goal, State) {
        (self.inst.goal, self.inst.state)
    }

    fn pid(&self, p: ProcessType) -> Pid {
        self.inst
            .pid(p)
            .unwrap_or_else(|| panic!("no {} process", p.name()))
    }

    fn exit(&mut self, p: ProcessType, status: Exit) -> Vec<Action> {
        let pid = self.pid(p);
        self.ok(Input::Exited {
            pid,
            status,
            group_empty: true,
        })
    }

    fn events(actions: &[Action]) -> Vec<&'static str> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Emit { event, .. } => Some(event.name()),
                _ => None,
            })
            .collect()
    }
}

const SERVICE: &str = "respawn\nexec /bin/daemon\n";
const HOOKS: &str = "pre-start exec /bin/pre\npost-start exec /bin/post\npre-stop exec /bin/prestop\npost-stop exec /bin/poststop\nexec /bin/main\n";

#[test]
fn start_runs_a_service_through_to_running() {
    let mut s = Sim::new(SERVICE);
    let a = s.ok(Input::Start(vec![]));
    assert_eq!(s.at(), (Goal::Start, State::Running));
    assert_eq!(Sim::events(&a), ["starting", "started"]);
    assert!(a.contains(&Action::Spawn(ProcessType::Main)));
    assert_eq!(s.feed(Input::Start(vec![])), Err(Refusal::AlreadyRunning));
}

#[test]
fn hooks_run_in_order_and_are_waited_for() {
    let mut s = Sim::new(HOOKS);
    s.ok(Input::Start(vec![]));
    assert_eq!(s.at(), (Goal::Start, State::PreStart));
    s.exit(ProcessType::PreStart, Exit::Code(0));
    assert_eq!(s.at(), (Goal::Start, State::PostStart));
    assert!(s.inst.pid(ProcessType::Main).is_some());
    s.exit(ProcessType::PostStart, Exit::Code(0));
    assert_eq!(s.at(), (Goal::Start, State::Running));
    s.ok(Input::Stop(vec![]));
    assert_eq!(s.at(), (Goal::Stop, State::PreStop));
    let a = s.exit(ProcessType::PreStop, Exit::Code(1)); // ignored failure
    assert_eq!(s.at(), (Goal::Stop, State::Killed));
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::KillGroup { signal: 15, .. })));
    s.exit(ProcessType::Main, Exit::Signal(15));
    assert_eq!(s.at(), (Goal::Stop, State::PostStop));
    let a = s.exit(ProcessType::PostStop, Exit::Code(0));
    assert_eq!(s.at(), (Goal::Stop, State::Waiting));
    assert_eq!(Sim::events(&a), ["stopped"]);
    assert!(a.contains(&Action::Destroy));
    assert_eq!(s.inst.failed, None);
}

#[test]
fn failed_pre_start_fails_the_job_but_post_stop_runs() {
    let mut s = Sim::new(HOOKS);
    s.ok(Input::Start(vec![]));
    s.exit(ProcessType::PreStart, Exit::Code(3));
    assert_eq!(s.at(), (Goal::Stop, State::PostStop));
    assert_eq!(
        s.inst.failed,
        Some(Failure {
            process: FailedProcess::Process(ProcessType::PreStart),
            exit: Some(Exit::Code(3))
        })
    );
    assert!(s.inst.pid(ProcessType::Main).is_none(), "main never ran");
    s.exit(ProcessType::PostStop, Exit::Code(0));
    assert_eq!(s.at().1, State::Waiting);
}

#[test]
fn respawn_is_immediate_and_limited() {
    let mut s = Sim::new("respawn\nrespawn limit 2 60\nexec /bin/d\n");
    s.ok(Input::Start(vec![]));
    for round in 0..2 {
        let a = s.exit(ProcessType::Main, Exit::Code(1));
        assert_eq!(s.at(), (Goal::Start, State::Running), "round {round}");
        assert_eq!(Sim::events(&a), ["stopping", "starting", "started"]);
        assert!(!a
            .iter()
            .any(|a| matches!(a, Action::ArmTimer { .. } | Action::KillGroup { .. })));
    }
    let a = s.exit(ProcessType::Main, Exit::Code(1));
    assert!(a.contains(&Action::Log("j respawning too fast, stopped".into())));
    assert_eq!(s.at(), (Goal::Stop, State::Waiting));
    assert_eq!(
        s.inst.failed,
        Some(Failure {
            process: FailedProcess::Respawn,
            exit: None
        })
    );
}

#[test]
fn respawn_window_is_fixed_from_the_first_respawn() {
    let mut s = Sim::new("respawn\nrespawn limit 1 5\nexec /bin/d\n");
    s.ok(Input::Start(vec![]));
    s.exit(ProcessType::Main, Exit::Code(1)); // window opens, count 1
    s.now += Duration::from_secs(5);
    s.exit(ProcessType::Main, Exit::Code(1)); // new window
    assert_eq!(s.at(), (Goal::Start, State::Running));
    s.now += Duration::from_secs(4);
    s.exit(ProcessType::Main, Exit::Code(1)); // count 2 > 1
    assert_eq!(s.at(), (Goal::Stop, State::Waiting));
}

#[test]
fn exit_zero_of_a_respawning_service_respawns_unless_normal() {
    let mut s = Sim::new(SERVICE);
    s.ok(Input::Start(vec![]));
    s.exit(ProcessType::Main, Exit::Code(0));
    assert_eq!(s.at(), (Goal::Start, State::Running));
    let mut s = Sim::new("respawn\nnormal exit 0 TERM\nexec /bin/d\n");
    s.ok(Input::Start(vec![]));
    s.exit(ProcessType::Main, Exit::Signal(15));
    assert_eq!(s.at(), (Goal::Stop, State::Waiting));
    assert_eq!(s.inst.failed, None);
}

#[test]
fn a_service_without_respawn_that_fails_records_main() {
    let mut s = Sim::new("exec /bin/d\n");
    s.ok(Input::Start(vec![]));
    let a = s.exit(ProcessType::Main, Exit::Signal(9));
    assert_eq!(s.at(), (Goal::Stop, State::Waiting));
    let fail = Some(Failure {
        process: FailedProcess::Process(ProcessType::Main),
        exit: Some(Exit::Signal(9)),
    });
    assert_eq!(s.inst.failed, fail);
    assert!(a.contains(&Action::Emit {
        event: JobEvent::Stopped,
        blocking: false,
        failure: fail.clone(),
        respawn_exit: None,
    }));
}

#[test]
fn tasks_finish_and_exit_zero_never_fails() {
    let mut s = Sim::new("task\nrespawn\nexec /bin/t\n");
    s.ok(Input::Start(vec![]));
    s.exit(ProcessType::Main, Exit::Code(0));
    assert_eq!(s.at(), (Goal::Stop, State::Waiting));
    assert_eq!(s.inst.failed, None);
    let mut s = Sim::new("task\npre-start exec /bin/p\n");
    s.ok(Input::Start(vec![]));
    s.exit(ProcessType::PreStart, Exit::Code(0));
    assert_eq!(
        s.at(),
        (Goal::Stop, State::Waiting),
        "a task with no main is done once started"
    );
}

#[test]
fn kill_timeout_sends_sigkill_and_waits_for_the_group() {
    let mut s = Sim::new("kill timeout 3\nexec /bin/stubborn\n");
    s.ok(Input::Start(vec![]));
    let pid = s.pid(ProcessType::Main);
    let a = s.ok(Input::Stop(vec![]));
    let gen = a
        .iter()
        .find_map(|a| match a {
            Action::ArmTimer { gen, after } => {
                assert_eq!(*after, Duration::from_secs(3));
                Some(*gen)
            }
            _ => None,
        })
        .expect("kill timer armed");
    assert_eq!(s.at(), (Goal::Stop, State::Killed));
    let a = s.ok(Input::Timer { gen });
    assert!(a.contains(&Action::KillGroup {
        pgid: pid,
        signal: 9
    }));
    // The main process dies but a child of it lingers in the group.
    s.ok(Input::Exited {
        pid,
        status: Exit::Signal(9),
        group_empty: false,
    });
    assert_eq!(s.at(), (Goal::Stop, State::Killed));
    s.ok(Input::GroupEmpty);
    assert_eq!(s.at(), (Goal::Stop, State::Waiting));
    // A stale timer is ignored.
    assert_eq!(s.ok(Input::Timer { gen }), vec![]);
}

#[test]
fn leftovers_of_a_dead_main_are_killed_before_the_respawn() {
    let mut s = Sim::new(SERVICE);
    s.ok(Input::Start(vec![]));
    let pid = s.pid(ProcessType::Main);
    let a = s.ok(Input::Exited {
        pid,
        status: Exit::Code(1),
        group_empty: false,
    });
    assert!(a.contains(&Action::KillGroup {
        pgid: pid,
        signal: 15
    }));
    assert_eq!(s.at(), (Goal::Start, State::Killed));
    assert!(
        !a.contains(&Action::Spawn(ProcessType::Main)),
        "no respawn while the group lives"
    );
    let a = s.ok(Input::GroupEmpty);
    assert!(a.contains(&Action::Spawn(ProcessType::Main)));
    assert_eq!(s.at(), (Goal::Start, State::Running));
}

#[test]
fn unlimited_respawn_backs_off_quick_crashes_only() {
    let mut s = Sim::new("respawn\nrespawn limit unlimited\nexec /bin/crash\n");
    s.ok(Input::Start(vec![]));
    let mut delays = Vec::new();
    for _ in 0..8 {
        let a = s.exit(ProcessType::Main, Exit::Code(1));
        let (gen, after) = a
            .iter()
            .find_map(|a| match a {
                Action::ArmTimer { gen, after } => Some((*gen, *after)),
                _ => None,
            })
            .expect("a quick crash is delayed");
        assert_eq!(s.at(), (Goal::Start, State::PostStop));
        delays.push(after.as_millis());
        s.ok(Input::Timer { gen });
        assert_eq!(s.at(), (Goal::Start, State::Running));
    }
    assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    // A process that lived over a second is respawned at once and resets it.
    s.now += Duration::from_secs(2);
    let a = s.exit(ProcessType::Main, Exit::Code(1));
    assert!(!a.iter().any(|a| matches!(a, Action::ArmTimer { .. })));
    assert_eq!(s.at(), (Goal::Start, State::Running));
    let a = s.exit(ProcessType::Main, Exit::Code(1));
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::ArmTimer { after, .. } if after.as_millis() == 100)));
    // Stop during the delay: no respawn.
    s.ok(Input::Stop(vec![]));
    assert_eq!(s.at(), (Goal::Stop, State::Waiting));
}

#[test]
fn restart_takes_the_latest_definition() {
    let mut s = Sim::new(SERVICE);
    s.ok(Input::Start(vec![]));
    let newer = Rc::new(parse_job("j", b"respawn\nexec /bin/newer\n").unwrap());
    s.class = newer.clone();
    let a = s.ok(Input::Restart);
    let pid = s.pid(ProcessType::Main);
    s.ok(Input::Exited {
        pid,
        status: Exit::Signal(15),
        group_empty: true,
    });
    assert_eq!(s.at(), (Goal::Start, State::Running));
    assert!(Rc::ptr_eq(&s.inst.class, &newer));
    assert_eq!(Sim::events(&a), ["stopping"]);
    assert_eq!(
        Sim::events(&s.log[s.log.len() - 3..]),
        ["starting", "started"]
    );
}

#[test]
fn stop_during_pre_start_waits_for_it_then_runs_post_stop() {
    let mut s = Sim::new(HOOKS);
    s.ok(Input::Start(vec![]));
    s.ok(Input::Stop(vec![]));
    assert_eq!(
        s.at(),
        (Goal::Stop, State::PreStart),
        "pre-start is not killed"
    );
    s.exit(ProcessType::PreStart, Exit::Code(0));
    assert_eq!(s.at(), (Goal::Stop, State::PostStop));
    assert!(s.inst.pid(ProcessType::Main).is_none());
}

#[test]
fn start_during_pre_stop_cancels_the_stop() {
    let mut s = Sim::new(HOOKS);
    s.ok(Input::Start(vec![]));
    s.exit(ProcessType::PreStart, Exit::Code(0));
    s.exit(ProcessType::PostStart, Exit::Code(0));
    s.ok(Input::Stop(vec![]));
    assert_eq!(s.at().1, State::PreStop);
    s.ok(Input::Start(vec![]));
    let a = s.exit(ProcessType::PreStop, Exit::Code(0));
    assert_eq!(s.at(), (Goal::Start, State::Running));
    assert!(
        Sim::events(&a).is_empty(),
        "no started event when a stop is cancelled"
    );
}

#[test]
fn spawn_failures() {
    let mut s = Sim::new(HOOKS);
    s.inst
        .step(&s.class.clone(), s.now, Input::Start(vec![]))
        .unwrap();
    s.ok(Input::EventDone);
    assert_eq!(s.at().1, State::PreStart);
    let pid = s.pid(ProcessType::PreStart);
    s.ok(Input::Exited {
        pid,
        status: Exit::Code(0),
        group_empty: true,
    });
    // Main was spawned by the sim; fail the post-start spawn instead.
    let mut s = Sim::new("post-start exec /x\nexec /bin/main\n");
    s.auto_events = true;
    s.inst
        .step(&s.class.clone(), s.now, Input::Start(vec![]))
        .unwrap();
    let a = s
        .inst
        .step(&s.class.clone(), s.now, Input::EventDone)
        .unwrap();
    assert_eq!(a, vec![Action::Spawn(ProcessType::Main)]);
    let a = s
        .inst
        .step(
            &s.class.clone(),
            s.now,
            Input::Spawned {
                process: ProcessType::Main,
                pid: 7,
            },
        )
        .unwrap();
    assert_eq!(a, vec![Action::Spawn(ProcessType::PostStart)]);
    let a = s
        .inst
        .step(
            &s.class.clone(),
            s.now,
            Input::SpawnFailed {
                process: ProcessType::PostStart,
                error: "x".into(),
            },
        )
        .unwrap();
    assert_eq!(
        s.at(),
        (Goal::Start, State::Running),
        "a post-start spawn failure is ignored: {a:?}"
    );
    // A main spawn failure fails the job.
    let mut s = Sim::new("exec /nonexistent\n");
    s.inst
        .step(&s.class.clone(), s.now, Input::Start(vec![]))
        .unwrap();
    s.inst
        .step(&s.class.clone(), s.now, Input::EventDone)
        .unwrap();
    let a = s
        .inst
        .step(
            &s.class.clone(),
            s.now,
            Input::SpawnFailed {
                process: ProcessType::Main,
                error: "unable to execute: No such file or directory".into(),
            },
        )
        .unwrap();
    assert!(a.contains(&Action::Log(
        "Failed to spawn j main process: unable to execute: No such file or directory".into()
    )));
    assert_eq!(
        s.inst.failed,
        Some(Failure {
            process: FailedProcess::Process(ProcessType::Main),
            exit: None
        })
    );
    assert_eq!(s.at(), (Goal::Stop, State::Stopping));
}

// ------------------------------------------------------------------------
// Every (state, input) pair, as a table.

/// The inputs of the table, in column order.
#[derive(Debug, Clone, Copy)]
enum Col {
    Start,
    Stop,
    Restart,
    /// A `Spawned` nobody asked for.
    StraySpawned,
    /// A `SpawnFailed` nobody asked for.
    StraySpawnFailed,
    /// The main process exits with status 1 (its group empty).
    ExitMain,
    /// The hook of the current state (or an unknown pid) exits 0.
    ExitHook,
    GroupEmpty,
    EventDone,
    /// The instance's current timer fires.
    Timer,
    /// The main process stopped itself (`expect stop`'s SIGSTOP).
    StoppedItself,
    /// `READY=1` (`expect notify`).
    Ready,
    /// `MAINPID=` names another process.
    MainPid,
    /// The main process leads a group of its own now.
    Regrouped,
    /// The main process forked and left a child (`expect fork`).
    Forked,
    /// The `health ready` probe succeeded.
    ProbeReady,
    /// The `health alive` probe failed its threshold.
    Unhealthy,
    /// The OOM killer acted in the instance's cgroup (it moves nothing).
    OomKilled,
}

/// The column of an input: a match with no wildcard, so that an input
/// added to the machine does not compile until the table has its column.
fn col_of(input: &Input) -> Col {
    match input {
        Input::Start(_) => Col::Start,
        Input::Stop(_) => Col::Stop,
        Input::Restart => Col::Restart,
        Input::Spawned { .. } => Col::StraySpawned,
        Input::SpawnFailed { .. } => Col::StraySpawnFailed,
        Input::Exited { .. } => Col::ExitMain,
        Input::GroupEmpty => Col::GroupEmpty,
        Input::EventDone => Col::EventDone,
        Input::StoppedItself { .. } => Col::StoppedItself,
        Input::Ready => Col::Ready,
        Input::MainPid { .. } => Col::MainPid,
        Input::Regrouped { .. } => Col::Regrouped,
        Input::Forked { .. } => Col::Forked,
        Input::Timer { .. } => Col::Timer,
        Input::ProbeReady => Col::ProbeReady,
        Input::Unhealthy { .. } => Col::Unhealthy,
        Input::OomKilled { .. } => Col::OomKilled,
    }
}

const COLS: [Col; 18] = [
    Col::Start,
    Col::Stop,
    Col::Restart,
    Col::StraySpawned,
    Col::StraySpawnFailed,
    Col::ExitMain,
    Col::ExitHook,
    Col::GroupEmpty,
    Col::EventDone,
    Col::Timer,
    Col::StoppedItself,
    Col::Ready,
    Col::MainPid,
    Col::Regrouped,
    Col::Forked,
    Col::ProbeReady,
    Col::Unhealthy,
    Col::OomKilled,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Refused(Refusal),
    At(Goal, State),
}

/// Drives a job with every hook into `state`; events are answered by hand.
fn into_state(state: State) -> Sim {
    let mut s = Sim::new(HOOKS);
    s.auto_events = false;
    let s_ = &mut s;
    let go = |s: &mut Sim, i: Input| {
        s.ok(i);
    };
    if state == State::Waiting {
        return s;
    }
    go(s_, Input::Start(vec![])); // starting
    if state == State::Starting {
        return s;
    }
    if state == State::Spawned {
        // Spawned is transient: stop answering spawns just before main's.
        let class = s.class.clone();
        s.inst.step(&class, s.now, Input::EventDone).unwrap();
        s.inst
            .step(
                &class,
                s.now,
                Input::Spawned {
                    process: ProcessType::PreStart,
                    pid: 50,
                },
            )
            .unwrap();
        let a = s
            .inst
            .step(
                &class,
                s.now,
                Input::Exited {
                    pid: 50,
                    status: Exit::Code(0),
                    group_empty: true,
                },
            )
            .unwrap();
        assert_eq!(a.last(), Some(&Action::Spawn(ProcessType::Main)));
        assert_eq!(s.at(), (Goal::Start, State::Spawned));
        return s;
    }
    go(s_, Input::EventDone); // pre-start
    if state == State::PreStart {
        return s;
    }
    let pre = s.pid(ProcessType::PreStart);
    go(
        &mut s,
        Input::Exited {
            pid: pre,
            status: Exit::Code(0),
            group_empty: true,
        },
    ); // post-start
    if state == State::PostStart {
        return s;
    }
    let post = s.pid(ProcessType::PostStart);
    go(
        &mut s,
        Input::Exited {
            pid: post,
            status: Exit::Code(0),
            group_empty: true,
        },
    ); // running
    if state == State::Running {
        return s;
    }
    go(&mut s, Input::Stop(vec![])); // pre-stop
    if state == State::PreStop {
        return s;
    }
    let ps = s.pid(ProcessType::PreStop);
    go(
        &mut s,
        Input::Exited {
            pid: ps,
            status: Exit::Code(0),
            group_empty: true,
        },
    ); // stopping
    if state == State::Stopping {
        return s;
    }
    go(&mut s, Input::EventDone); // killed
    if state == State::Killed {
        return s;
    }
    let main = s.pid(ProcessType::Main);
    go(
        &mut s,
        Input::Exited {
            pid: main,
            status: Exit::Signal(15),
            group_empty: true,
        },
    ); // post-stop
    assert_eq!(s.at().1, State::PostStop);
    s
}

fn hook_of(state: State) -> Option<ProcessType> {
    match state {
        State::PreStart => Some(ProcessType::PreStart),
        State::PostStart => Some(ProcessType::PostStart),
        State::PreStop => Some(ProcessType::PreStop),
        State::PostStop => Some(ProcessType::PostStop),
        _ => None,
    }
}

fn apply(s: &mut Sim, col: Col) -> Result<Vec<Action>, Refusal> {
    let state = s.inst.state;
    let input = match col {
        Col::Start => Input::Start(vec![]),
        Col::Stop => Input::Stop(vec![]),
        Col::Restart => Input::Restart,
        Col::StraySpawned => Input::Spawned {
            process: ProcessType::PreStop,
            pid: 4242,
        },
        Col::StraySpawnFailed => Input::SpawnFailed {
            process: ProcessType::PostStop,
            error: "stray".into(),
        },
        Col::ExitMain => {
            let pid = s.inst.pid(ProcessType::Main).unwrap_or(9999);
            Input::Exited {
                pid,
                status: Exit::Code(1),
                group_empty: true,
            }
        }
        Col::ExitHook => {
            let pid = hook_of(state).and_then(|h| s.inst.pid(h)).unwrap_or(9998);
            Input::Exited {
                pid,
                status: Exit::Code(0),
                group_empty: true,
            }
        }
        Col::GroupEmpty => Input::GroupEmpty,
        Col::EventDone => Input::EventDone,
        Col::Timer => Input::Timer {
            gen: s.inst.timer_gen,
        },
        Col::StoppedItself => Input::StoppedItself {
            pid: s.inst.pid(ProcessType::Main).unwrap_or(9997),
        },
        Col::Ready => Input::Ready,
        Col::MainPid => Input::MainPid {
            pid: 4343,
            pgid: 4343,
        },
        Col::Regrouped => Input::Regrouped { pgid: 4444 },
        Col::Forked => Input::Forked {
            pid: 4545,
            pgid: 4545,
            hops: 1,
        },
        Col::ProbeReady => Input::ProbeReady,
        Col::Unhealthy => Input::Unhealthy {
            error: "3 failures: connection refused".into(),
        },
        Col::OomKilled => Input::OomKilled {
            message: "killed by the kernel's OOM killer".into(),
        },
    };
    let back = col_of(&input);
    assert!(
        matches!((col, back), (Col::ExitHook, Col::ExitMain)) || back as u8 == col as u8,
        "{col:?} feeds {input:?}"
    );
    s.feed(input)
}

#[test]
fn every_state_and_input() {
    use Goal::{Start as S, Stop as X};
    use State::*;
    use Want::{At, Refused};
    let running = Refused(Refusal::AlreadyRunning);
    let stopped = Refused(Refusal::AlreadyStopped);
    // Columns: Start, Stop, Restart, StraySpawned, StraySpawnFailed,
    //          ExitMain, ExitHook, GroupEmpty, EventDone, Timer,
    //          StoppedItself, Ready, MainPid, Regrouped, Forked, ProbeReady,
    //          Unhealthy, OomKilled. A job with `expect none` and no `health` waits
    //          for none of the last seven: they move nothing (the `expect`
    //          and `health` tests below give them their effect; Unhealthy
    //          in running sends the kill signal, and the state stays
    //          running until the main process exits).
    let table: [(State, [Want; 18]); 10] = [
        (
            Waiting,
            [
                At(S, Starting),
                stopped,
                stopped,
                At(X, Waiting),
                At(X, Waiting),
                At(X, Waiting),
                At(X, Waiting),
                At(X, Waiting),
                At(X, Waiting),
                At(X, Waiting),
                At(X, Waiting),
                At(X, Waiting),
                At(X, Waiting),
                At(X, Waiting),
                At(X, Waiting),
                At(X, Waiting),
                At(X, Waiting),
                At(X, Waiting),
            ],
        ),
        (
            Starting,
            [
                running,
                At(X, Starting),
                At(X, Starting),
                At(S, Starting),
                At(S, Starting),
                At(S, Starting),
                At(S, Starting),
                At(S, Starting),
                At(S, PreStart),
                At(S, Starting),
                At(S, Starting),
                At(S, Starting),
                At(S, Starting),
                At(S, Starting),
                At(S, Starting),
                At(S, Starting),
                At(S, Starting),
                At(S, Starting),
            ],
        ),
        (
            PreStart,
            [
                running,
                At(X, PreStart),
                At(X, PreStart),
                At(S, PreStart),
                At(S, PreStart),
                At(S, PreStart),
                At(S, PostStart),
                At(S, PreStart),
                At(S, PreStart),
                At(S, PreStart),
                At(S, PreStart),
                At(S, PreStart),
                At(S, PreStart),
                At(S, PreStart),
                At(S, PreStart),
                At(S, PreStart),
                At(S, PreStart),
                At(S, PreStart),
            ],
        ),
        (
            Spawned,
            [
                running,
                At(X, Spawned),
                At(X, Spawned),
                At(S, Spawned),
                At(S, Spawned),
                At(S, Spawned),
                At(S, Spawned),
                At(S, Spawned),
                At(S, Spawned),
                At(S, Spawned),
                At(S, Spawned),
                At(S, Spawned),
                At(S, Spawned),
                At(S, Spawned),
                At(S, Spawned),
                At(S, Spawned),
                At(S, Spawned),
                At(S, Spawned),
            ],
        ),
        (
            PostStart,
            [
                running,
                At(X, PostStart),
                At(X, PostStart),
                At(S, PostStart),
                At(S, PostStart),
                At(X, PostStart),
                At(S, Running),
                At(S, PostStart),
                At(S, PostStart),
                At(S, PostStart),
                At(S, PostStart),
                At(S, PostStart),
                At(S, PostStart),
                At(S, PostStart),
                At(S, PostStart),
                At(S, PostStart),
                At(S, PostStart),
                At(S, PostStart),
            ],
        ),
        (
            Running,
            [
                running,
                At(X, PreStop),
                At(X, PreStop),
                At(S, Running),
                At(S, Running),
                At(X, Stopping),
                At(S, Running),
                At(S, Running),
                At(S, Running),
                At(S, Running),
                At(S, Running),
                At(S, Running),
                At(S, Running),
                At(S, Running),
                At(S, Running),
                At(S, Running),
                At(S, Running),
                At(S, Running),
            ],
        ),
        (
            PreStop,
            [
                At(S, PreStop),
                stopped,
                stopped,
                At(X, PreStop),
                At(X, PreStop),
                At(X, PreStop),
                At(X, Stopping),
                At(X, PreStop),
                At(X, PreStop),
                At(X, PreStop),
                At(X, PreStop),
                At(X, PreStop),
                At(X, PreStop),
                At(X, PreStop),
                At(X, PreStop),
                At(X, PreStop),
                At(X, PreStop),
                At(X, PreStop),
            ],
        ),
        (
            Stopping,
            [
                At(S, Stopping),
                stopped,
                stopped,
                At(X, Stopping),
                At(X, Stopping),
                At(X, Stopping),
                At(X, Stopping),
                At(X, Stopping),
                At(X, Killed),
                At(X, Stopping),
                At(X, Stopping),
                At(X, Stopping),
                At(X, Stopping),
                At(X, Stopping),
                At(X, Stopping),
                At(X, Stopping),
                At(X, Stopping),
                At(X, Stopping),
            ],
        ),
        (
            Killed,
            [
                At(S, Killed),
                stopped,
                stopped,
                At(X, Killed),
                At(X, Killed),
                At(X, PostStop),
                At(X, Killed),
                At(X, Killed),
                At(X, Killed),
                At(X, Killed),
                At(X, Killed),
                At(X, Killed),
                At(X, Killed),
                At(X, Killed),
                At(X, Killed),
                At(X, Killed),
                At(X, Killed),
                At(X, Killed),
            ],
        ),
        (
            PostStop,
            [
                At(S, PostStop),
                stopped,
                stopped,
                At(X, PostStop),
                At(X, PostStop),
                At(X, PostStop),
                At(X, Waiting),
                At(X, PostStop),
                At(X, PostStop),
                At(X, PostStop),
                At(X, PostStop),
                At(X, PostStop),
                At(X, PostStop),
                At(X, PostStop),
                At(X, PostStop),
                At(X, PostStop),
                At(X, PostStop),
                At(X, PostStop),
            ],
        ),
    ];
    for (state, wants) in table {
        for (col, want) in COLS.iter().zip(wants) {
            let mut s = into_state(state);
            assert_eq!(s.at().1, state, "setup of {state:?}");
            let got = match apply(&mut s, *col) {
                Err(r) => Refused(r),
                Ok(_) => At(s.inst.goal, s.inst.state),
            };
            assert_eq!(got, want, "{state:?} + {col:?}");
        }
    }
}

#[test]
fn spawned_answers_move_main_on() {
    let mut s = into_state(State::Spawned);
    s.ok(Input::Spawned {
        process: ProcessType::Main,
        pid: 77,
    });
    assert_eq!(s.at(), (Goal::Start, State::PostStart));
    let mut s = into_state(State::Spawned);
    s.ok(Input::SpawnFailed {
        process: ProcessType::Main,
        error: "x".into(),
    });
    assert_eq!(s.at(), (Goal::Stop, State::Stopping));
    let mut s = into_state(State::Killed);
    let a = apply(&mut s, Col::Timer).unwrap();
    assert!(
        a.iter()
            .any(|a| matches!(a, Action::KillGroup { signal: 9, .. })),
        "{a:?}"
    );
}

// ------------------------------------------------------------------------
// Random input sequences keep the invariants.

mod properties {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Start,
        Stop,
        Restart,
        /// The main process dies with this status (its group with it, or not).
        MainDies(i32, bool),
        /// The running hook exits with this status.
        HookExits(i32),
        /// A lingering group empties.
        GroupGone,
        EventDone,
        FireTimer,
        /// Time passes (ms).
        Wait(u64),
        /// The next spawn fails.
        FailNextSpawn,
        /// The main process forks (`expect fork/daemon`): its child takes
        /// over, one or two hops away.
        Forks(u8),
        /// The main process stops itself (`expect stop`).
        StopsItself,
        /// `READY=1` (`expect notify`).
        SaysReady,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            Just(Step::Start),
            Just(Step::Stop),
            Just(Step::Restart),
            (prop_oneof![Just(0), Just(1), Just(137)], any::<bool>())
                .prop_map(|(c, g)| Step::MainDies(c, g)),
            prop_oneof![Just(0), Just(1)].prop_map(Step::HookExits),
            Just(Step::GroupGone),
            Just(Step::EventDone),
            Just(Step::FireTimer),
            (0u64..3000).prop_map(Step::Wait),
            Just(Step::FailNextSpawn),
            (1u8..3).prop_map(Step::Forks),
            Just(Step::StopsItself),
            Just(Step::SaysReady),
        ]
    }

    fn job_file() -> impl Strategy<Value = String> {
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            prop_oneof![
                Just(""),
                Just("respawn limit unlimited\n"),
                Just("respawn limit 2 10\n")
            ],
            any::<bool>(),
            prop_oneof![
                Just(""),
                Just("expect fork\n"),
                Just("expect daemon\n"),
                Just("expect stop\n"),
                Just("expect notify\n"),
            ],
        )
            .prop_map(|(respawn, task, pre, post, limit, main, expect)| {
                let mut s = String::new();
                s.push_str(expect);
                if respawn {
                    s.push_str("respawn\n");
                }
                if task {
                    s.push_str("task\n");
                }
                s.push_str(limit);
                if pre {
                    s.push_str("pre-start exec /p\npost-stop exec /q\n");
                }
                if post {
                    s.push_str("post-start exec /r\npre-stop exec /s\n");
                }
                if main {
                    s.push_str("exec /main\n");
                }
                s
            })
    }

    /// The world: live processes, pending timers, a failing-spawn switch.
    struct World {
        class: Rc<JobClass>,
        inst: Instance,
        now: Duration,
        next_pid: Pid,
        live_main: Option<Pid>,
        lingering: bool,
        timers: Vec<u64>,
        fail_next: bool,
        destroyed: bool,
    }

    impl World {
        fn feed(&mut self, input: Input) -> Result<(), TestCaseError> {
            let mut queue = vec![input];
            while let Some(i) = queue.pop() {
                if self.destroyed {
                    return Ok(());
                }
                let Ok(actions) = self.inst.step(&self.class, self.now, i) else {
                    continue;
                };
                let kills = actions
                    .iter()
                    .filter(|a| matches!(a, Action::KillGroup { signal, .. } if *signal != 9))
                    .count();
                let timers = actions
                    .iter()
                    .filter(|a| matches!(a, Action::ArmTimer { .. }))
                    .count();
                prop_assert!(
                    kills == 0 || timers > 0,
                    "a kill signal without a timer: {actions:?}"
                );
                for a in actions {
                    match a {
                        Action::Spawn(p) => {
                            if p == ProcessType::Main {
                                prop_assert!(self.live_main.is_none(), "a second main process");
                                prop_assert!(
                                    !self.lingering,
                                    "main respawned while its old group lives"
                                );
                            }
                            if std::mem::take(&mut self.fail_next) {
                                queue.push(Input::SpawnFailed {
                                    process: p,
                                    error: "test".into(),
                                });
                            } else {
                                self.next_pid += 1;
                                if p == ProcessType::Main {
                                    self.live_main = Some(self.next_pid);
                                }
                                queue.push(Input::Spawned {
                                    process: p,
                                    pid: self.next_pid,
                                });
                            }
                        }
                        Action::ArmTimer { gen, .. } => self.timers.push(gen),
                        Action::Destroy => self.destroyed = true,
                        _ => {}
                    }
                }
            }
            Ok(())
        }

        fn run(&mut self, s: &Step) -> Result<(), TestCaseError> {
            match s {
                Step::Start => self.feed(Input::Start(vec![])),
                Step::Stop => self.feed(Input::Stop(vec![])),
                Step::Restart => self.feed(Input::Restart),
                Step::MainDies(code, group) => {
                    if let Some(pid) = self.live_main.take() {
                        self.lingering = !group;
                        let status = if *code == 137 {
                            Exit::Signal(9)
                        } else {
                            Exit::Code(*code)
                        };
                        self.feed(Input::Exited {
                            pid,
                            status,
                            group_empty: *group,
                        })?;
                    }
                    Ok(())
                }
                Step::HookExits(code) => {
                    for p in [
                        ProcessType::PreStart,
                        ProcessType::PostStart,
                        ProcessType::PreStop,
                        ProcessType::PostStop,
                    ] {
                        if let Some(pid) = self.inst.pid(p) {
                            return self.feed(Input::Exited {
                                pid,
                                status: Exit::Code(*code),
                                group_empty: true,
                            });
                        }
                    }
                    Ok(())
                }
                Step::GroupGone => {
                    if self.lingering {
                        self.lingering = false;
                        self.feed(Input::GroupEmpty)?;
                    }
                    Ok(())
                }
                Step::EventDone => self.feed(Input::EventDone),
                Step::FireTimer => match self.timers.pop() {
                    Some(gen) => self.feed(Input::Timer { gen }),
                    None => Ok(()),
                },
                Step::Wait(ms) => {
                    self.now += Duration::from_millis(*ms);
                    Ok(())
                }
                Step::FailNextSpawn => {
                    self.fail_next = true;
                    Ok(())
                }
                Step::Forks(hops) => {
                    // The daemon says Forked only for a job that waits for
                    // a fork, once its process has exited and left a child.
                    if self.live_main.is_some() && matches!(self.inst.waiting, Waiting::Fork(_)) {
                        self.next_pid += 1;
                        let child = self.next_pid;
                        self.live_main = Some(child);
                        self.feed(Input::Forked {
                            pid: child,
                            pgid: child,
                            hops: *hops,
                        })?;
                    }
                    Ok(())
                }
                Step::StopsItself => match self.live_main {
                    Some(pid) => self.feed(Input::StoppedItself { pid }),
                    None => Ok(()),
                },
                Step::SaysReady => self.feed(Input::Ready),
            }
        }

        /// Lets the world answer everything (processes die when killed,
        /// hooks finish, events finish, timers fire) until it is quiet.
        fn settle(&mut self) -> Result<(), TestCaseError> {
            for _ in 0..200 {
                if self.destroyed {
                    return Ok(());
                }
                let before = (self.inst.goal, self.inst.state, self.inst.waiting);
                match self.inst.waiting {
                    Waiting::Event => self.feed(Input::EventDone)?,
                    Waiting::Exit(p) => {
                        let pid = self.inst.pid(p).expect("waited-for process is live");
                        self.feed(Input::Exited {
                            pid,
                            status: Exit::Code(0),
                            group_empty: true,
                        })?;
                    }
                    Waiting::Kill | Waiting::Delay | Waiting::Unhealthy => {
                        if let Some(pid) = self.live_main.take() {
                            self.feed(Input::Exited {
                                pid,
                                status: Exit::Signal(15),
                                group_empty: true,
                            })?;
                        } else if self.lingering {
                            self.lingering = false;
                            self.feed(Input::GroupEmpty)?;
                        } else if let Some(gen) = self.timers.pop() {
                            self.feed(Input::Timer { gen })?;
                        }
                    }
                    Waiting::Fork(_) | Waiting::Stop | Waiting::Ready | Waiting::Probe => {
                        // The program never forks: the fork timer runs out.
                        if let Some(gen) = self.timers.pop() {
                            self.feed(Input::Timer { gen })?;
                        }
                    }
                    Waiting::Spawn(_) => prop_assert!(false, "a spawn left unanswered"),
                    Waiting::Nothing => {
                        if self.inst.state == State::Running && self.inst.goal == Goal::Start {
                            return Ok(()); // at rest, running
                        }
                        if self.lingering && self.live_main.is_none() {
                            self.lingering = false;
                            self.feed(Input::GroupEmpty)?;
                        }
                    }
                }
                if (self.inst.goal, self.inst.state, self.inst.waiting) == before
                    && self.timers.is_empty()
                    && !self.lingering
                {
                    break;
                }
            }
            Ok(())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

        #[test]
        fn random_inputs_keep_the_invariants(file in job_file(), steps in proptest::collection::vec(step(), 0..40), end_with_stop in any::<bool>()) {
            let class = Rc::new(parse_job("j", file.as_bytes()).unwrap());
            let mut w = World {
                inst: Instance::new("j", "", class.clone(), Vec::new()),
                class,
                now: Duration::from_secs(100),
                next_pid: 10,
                live_main: None,
                lingering: false,
                timers: Vec::new(),
                fail_next: false,
                destroyed: false,
            };
            for s in &steps {
                w.run(s)?;
                if w.destroyed {
                    w.inst = Instance::new("j", "", w.class.clone(), Vec::new());
                    w.destroyed = false;
                    w.live_main = None;
                    w.lingering = false;
                    w.timers.clear();
                }
            }
            if end_with_stop {
                let _ = w.feed(Input::Stop(vec![]));
            }
            w.settle()?;
            // The goal is reached, or the job is back at rest with the
            // failure recorded.
            if w.destroyed {
                prop_assert_eq!(w.inst.state, State::Waiting);
            } else if w.inst.goal == Goal::Start {
                prop_assert_eq!(w.inst.state, State::Running, "goal start but {:?}/{:?}", w.inst.state, w.inst.waiting);
            } else {
                prop_assert_eq!(w.inst.state, State::Waiting, "goal stop but {:?}/{:?}", w.inst.state, w.inst.waiting);
            }
            if w.inst.state == State::Running {
                prop_assert!(w.inst.class.process(ProcessType::Main).is_none() || w.live_main.is_some() || w.inst.pid(ProcessType::Main).is_some());
            }
        }
    }
}

#[test]
fn a_followed_daemon_that_leaves_its_group_is_signalled_in_its_new_one() {
    let mut s = Sim::new("expect fork\nexec d\n");
    s.ok(Input::Start(vec![]));
    assert_eq!(s.inst.waiting, Waiting::Fork(1));
    // Followed while still in the group of the process that forked it...
    s.ok(Input::Forked {
        pid: 200,
        pgid: 101,
        hops: 1,
    });
    assert_eq!(s.inst.state, State::Running);
    // ...then it called setsid.
    s.ok(Input::Regrouped { pgid: 200 });
    let acts = s.ok(Input::Stop(vec![]));
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::KillGroup { pgid: 200, .. })),
        "{acts:?}"
    );
}

// ------------------------------------------- health probes

fn timer_of(actions: &[Action]) -> Option<(u64, Duration)> {
    actions.iter().rev().find_map(|a| match a {
        Action::ArmTimer { gen, after } => Some((*gen, *after)),
        _ => None,
    })
}

#[test]
fn a_ready_probe_holds_the_start_in_spawned_until_it_passes() {
    let mut s = Sim::new("health ready tcp 127.0.0.1:5432\nready timeout 30\nexec /bin/db\n");
    let a = s.ok(Input::Start(vec![]));
    assert_eq!(s.at(), (Goal::Start, State::Spawned));
    assert_eq!(s.inst.waiting, Waiting::Probe);
    assert!(a.contains(&Action::Probe(Role::Ready)), "{a:?}");
    assert!(!Sim::events(&a).contains(&"started"));
    assert_eq!(timer_of(&a).map(|t| t.1), Some(Duration::from_secs(30)));
    let a = s.ok(Input::ProbeReady);
    assert_eq!(s.at(), (Goal::Start, State::Running));
    assert_eq!(Sim::events(&a), ["started"]);
    // A main process started again must prove itself again.
    s.exit(ProcessType::Main, Exit::Code(1));
    assert_eq!(s.at(), (Goal::Stop, State::Waiting));
    s.ok(Input::Start(vec![]));
    assert_eq!(s.inst.waiting, Waiting::Probe);
}

#[test]
fn a_ready_probe_that_never_passes_fails_the_start_at_the_ready_timeout() {
    let mut s = Sim::new("health ready tcp 127.0.0.1:5432\nready timeout 10\nexec /bin/db\n");
    let a = s.ok(Input::Start(vec![]));
    let (gen, _) = timer_of(&a).unwrap();
    let a = s.ok(Input::Timer { gen });
    assert_eq!(s.at(), (Goal::Stop, State::Killed));
    assert!(a.contains(&Action::StopProbes), "{a:?}");
    let why = s.inst.why.clone().unwrap();
    assert_eq!(why.reason, Reason::ReadyTimeout);
    assert_eq!(
        why.message,
        "main process not ready within 10 s (health ready probe)"
    );
}

#[test]
fn after_expect_notify_the_ready_probe_gets_what_is_left_of_the_timeout() {
    let mut s =
        Sim::new("expect notify\nhealth ready tcp 127.0.0.1:1\nready timeout 30\nexec /bin/db\n");
    s.ok(Input::Start(vec![]));
    assert_eq!(s.inst.waiting, Waiting::Ready);
    s.now += Duration::from_secs(12);
    let a = s.ok(Input::Ready);
    assert_eq!(s.inst.waiting, Waiting::Probe);
    assert_eq!(timer_of(&a).map(|t| t.1), Some(Duration::from_secs(18)));
}

#[test]
fn an_unhealthy_service_is_killed_and_respawned_even_with_a_normal_exit() {
    let mut s =
        Sim::new("respawn\nnormal exit 0 TERM\nhealth alive tcp 127.0.0.1:80\nexec /bin/web\n");
    let a = s.ok(Input::Start(vec![]));
    assert!(a.contains(&Action::Probe(Role::Alive)), "{a:?}");
    let main = s.pid(ProcessType::Main);
    let a = s.ok(Input::Unhealthy {
        error: "3 failures: connection refused".into(),
    });
    assert!(
        a.contains(&Action::KillGroup {
            pgid: main,
            signal: 15
        }),
        "{a:?}"
    );
    assert!(a.contains(&Action::StopProbes));
    assert_eq!(s.at(), (Goal::Start, State::Running));
    // Still alive at the kill timeout: SIGKILL.
    let (gen, after) = timer_of(&a).unwrap();
    assert_eq!(after, Duration::from_secs(5));
    let a = s.ok(Input::Timer { gen });
    assert!(
        a.contains(&Action::KillGroup {
            pgid: main,
            signal: 9
        }),
        "{a:?}"
    );
    // Its exit (TERM is a normal exit here) is respawned all the same.
    s.exit(ProcessType::Main, Exit::Signal(15));
    assert_eq!(s.at(), (Goal::Start, State::Running));
    assert_eq!(s.inst.respawns, 1);
    assert_ne!(s.pid(ProcessType::Main), main);
    // Unhealthy while not running (or twice) does nothing.
    s.ok(Input::Stop(vec![]));
    let a = s.ok(Input::Unhealthy { error: "x".into() });
    assert!(a.is_empty(), "{a:?}");
}

#[test]
fn an_unhealthy_job_without_respawn_stops_failed() {
    let mut s = Sim::new("health alive tcp 127.0.0.1:80\nexec /bin/web\n");
    s.ok(Input::Start(vec![]));
    s.ok(Input::Unhealthy {
        error: "3 failures: HTTP status 500".into(),
    });
    let a = s.exit(ProcessType::Main, Exit::Signal(15));
    assert_eq!(s.at(), (Goal::Stop, State::Waiting));
    let why = s.inst.why.clone().unwrap();
    assert_eq!(why.reason, Reason::Unhealthy);
    assert_eq!(why.message, "unhealthy: 3 failures: HTTP status 500");
    let stopped = a.iter().find_map(|a| match a {
        Action::Emit {
            event: JobEvent::Stopped,
            failure,
            ..
        } => Some(failure.clone()),
        _ => None,
    });
    assert!(stopped.unwrap().is_some(), "stopped carries the failure");
}
