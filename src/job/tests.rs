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
    let a = s.ok(Input::Start);
    assert_eq!(s.at(), (Goal::Start, State::Running));
    assert_eq!(Sim::events(&a), ["starting", "started"]);
    assert!(a.contains(&Action::Spawn(ProcessType::Main)));
    assert_eq!(s.feed(Input::Start), Err(Refusal::AlreadyRunning));
}

#[test]
fn hooks_run_in_order_and_are_waited_for() {
    let mut s = Sim::new(HOOKS);
    s.ok(Input::Start);
    assert_eq!(s.at(), (Goal::Start, State::PreStart));
    s.exit(ProcessType::PreStart, Exit::Code(0));
    assert_eq!(s.at(), (Goal::Start, State::PostStart));
    assert!(s.inst.pid(ProcessType::Main).is_some());
    s.exit(ProcessType::PostStart, Exit::Code(0));
    assert_eq!(s.at(), (Goal::Start, State::Running));
    s.ok(Input::Stop);
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
    s.ok(Input::Start);
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
    s.ok(Input::Start);
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
    s.ok(Input::Start);
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
    s.ok(Input::Start);
    s.exit(ProcessType::Main, Exit::Code(0));
    assert_eq!(s.at(), (Goal::Start, State::Running));
    let mut s = Sim::new("respawn\nnormal exit 0 TERM\nexec /bin/d\n");
    s.ok(Input::Start);
    s.exit(ProcessType::Main, Exit::Signal(15));
    assert_eq!(s.at(), (Goal::Stop, State::Waiting));
    assert_eq!(s.inst.failed, None);
}

#[test]
fn a_service_without_respawn_that_fails_records_main() {
    let mut s = Sim::new("exec /bin/d\n");
    s.ok(Input::Start);
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
        failure: fail.clone()
    }));
}

#[test]
fn tasks_finish_and_exit_zero_never_fails() {
    let mut s = Sim::new("task\nrespawn\nexec /bin/t\n");
    s.ok(Input::Start);
    s.exit(ProcessType::Main, Exit::Code(0));
    assert_eq!(s.at(), (Goal::Stop, State::Waiting));
    assert_eq!(s.inst.failed, None);
    let mut s = Sim::new("task\npre-start exec /bin/p\n");
    s.ok(Input::Start);
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
    s.ok(Input::Start);
    let pid = s.pid(ProcessType::Main);
    let a = s.ok(Input::Stop);
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
    s.ok(Input::Start);
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
    s.ok(Input::Start);
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
    s.ok(Input::Stop);
    assert_eq!(s.at(), (Goal::Stop, State::Waiting));
}

#[test]
fn restart_takes_the_latest_definition() {
    let mut s = Sim::new(SERVICE);
    s.ok(Input::Start);
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
    s.ok(Input::Start);
    s.ok(Input::Stop);
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
    s.ok(Input::Start);
    s.exit(ProcessType::PreStart, Exit::Code(0));
    s.exit(ProcessType::PostStart, Exit::Code(0));
    s.ok(Input::Stop);
    assert_eq!(s.at().1, State::PreStop);
    s.ok(Input::Start);
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
    s.inst.step(&s.class.clone(), s.now, Input::Start).unwrap();
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
    s.inst.step(&s.class.clone(), s.now, Input::Start).unwrap();
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
    s.inst.step(&s.class.clone(), s.now, Input::Start).unwrap();
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
