//! The daemon's parts tested without a process: the job table and the
//! event bus (with the clients' waiters and the shutdown order) wired the
//! way the conductor wires them, over a fake system ([`FakeSys`]) whose
//! processes are numbers and whose signals are records.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use nix::errno::Errno;

use super::clients::{Clients, News, WaitKind, Waiter};
use super::events::{EventBus, Finished, Hold, Next};
use super::jobs::{Effect, JobTable, Launch};
use super::shutdown::Shutdown;
use super::Key;
use crate::conf::{parse_job, ProcessType};
use crate::control::Response;
use crate::job::{self, Exit, Goal, Input, Instance, State};
use crate::process::sys::Sys;
use crate::process::tree::Orphan;
use crate::process::Ended;

/// A reap with no CPU time used.
fn ended(pid: i32, exit: Exit) -> Ended {
    Ended {
        pid,
        exit,
        cpu: Duration::ZERO,
    }
}

type Alive = Rc<RefCell<BTreeMap<i32, (i32, u64)>>>;

/// The system, faked: live processes by group, and what was signalled.
#[derive(Default)]
struct FakeSys {
    /// pid → (pgid, start time); shared with the world's spawner.
    alive: Alive,
    /// Children of the daemon that a job left (re-parented), by key.
    orphans: Vec<(Key, Orphan)>,
    /// Children with no job identity at all.
    anonymous: Vec<Orphan>,
    /// (target: -pgid for a group, pid otherwise; signal).
    signals: Vec<(i32, i32)>,
    /// Env files by path: their text, or why they cannot be read (none:
    /// missing); shared with the test.
    env_files: Rc<RefCell<BTreeMap<String, Result<String, String>>>>,
    /// Why cgroups are not managed (none: they are, with no group file).
    no_groups: Option<String>,
    /// The OOM kills each instance's group counts.
    oom: BTreeMap<Key, u64>,
    /// Signals sent to whole groups, and groups removed.
    group_signals: Vec<(Key, i32)>,
    released: Vec<Key>,
}

impl Sys for FakeSys {
    fn kill_group(&mut self, pgid: i32, signal: i32) -> Result<(), Errno> {
        self.signals.push((-pgid, signal));
        if self.alive.borrow().values().any(|&(g, _)| g == pgid) {
            Ok(())
        } else {
            Err(Errno::ESRCH)
        }
    }

    fn kill_pid(&mut self, pid: i32, signal: i32) -> Result<(), Errno> {
        self.signals.push((pid, signal));
        Ok(())
    }

    fn group_is_empty(&mut self, pgid: i32) -> bool {
        !self.alive.borrow().values().any(|&(g, _)| g == pgid)
    }

    fn orphans_of_job(
        &mut self,
        job: &str,
        instance: &str,
        known: &dyn Fn(i32) -> bool,
    ) -> Vec<Orphan> {
        self.orphans
            .iter()
            .filter(|(k, o)| k.0 == job && k.1 == instance && !known(o.pid))
            .map(|(_, o)| *o)
            .collect()
    }

    fn anonymous_orphans(&mut self, known: &dyn Fn(i32) -> bool) -> Vec<Orphan> {
        self.anonymous
            .iter()
            .filter(|o| !known(o.pid))
            .copied()
            .collect()
    }

    fn pgid_of(&mut self, pid: i32) -> Option<i32> {
        self.alive.borrow().get(&pid).map(|&(g, _)| g)
    }

    fn start_time(&mut self, pid: i32) -> Option<u64> {
        self.alive.borrow().get(&pid).map(|&(_, s)| s)
    }

    fn read_env_file(
        &mut self,
        path: &std::path::Path,
        _job_uid: Option<u32>,
    ) -> Result<Option<Vec<u8>>, String> {
        match self.env_files.borrow().get(path.to_str().unwrap_or("")) {
            None => Ok(None),
            Some(Ok(text)) => Ok(Some(text.clone().into_bytes())),
            Some(Err(e)) => Err(e.clone()),
        }
    }

    fn join_group(
        &mut self,
        _key: &Key,
        class: &crate::conf::JobClass,
        _env: &[String],
    ) -> Result<Option<crate::cgroup::groups::Join>, String> {
        match &self.no_groups {
            Some(why) if crate::cgroup::limits::asks(class) => Err(format!(
                "Job cannot be started as cgroup manager not available: {} ({why})",
                class.name
            )),
            _ => Ok(None),
        }
    }

    fn group_populated(&mut self, _key: &Key) -> Option<bool> {
        None
    }

    fn kill_members(&mut self, key: &Key, signal: i32) -> bool {
        self.group_signals.push((key.clone(), signal));
        false
    }

    fn release_group(&mut self, key: &Key) -> bool {
        self.released.push(key.clone());
        true
    }

    fn oom_kills(&mut self, key: &Key) -> u64 {
        self.oom.get(key).copied().unwrap_or(0)
    }
}

/// The parts, wired as the conductor wires them, with spawns that only
/// hand out pids.
struct World {
    jobs: JobTable,
    bus: EventBus,
    clients: Clients,
    shutdown: Shutdown,
    sys: FakeSys,
    now: Duration,
    next_pid: i32,
    /// Armed instance timers: (key, generation).
    timers: Vec<(Key, u64)>,
    log: Vec<String>,
    /// Events emitted, as `NAME VAR=…`, in order.
    emitted: Vec<String>,
    /// Answers to clients: (client, answer).
    replies: Vec<(usize, Response)>,
    /// Processes spawned, in order: (job, process).
    spawned: Vec<(String, ProcessType)>,
    /// The environment of each process spawned, in the same order.
    envs: Vec<Vec<(String, String)>>,
    /// What the subscribers were told (while `jobs.watched`).
    news: Vec<News>,
}

impl World {
    fn new(files: &[(&str, &str)]) -> World {
        let mut w = World {
            jobs: JobTable::new(job::env::Base::default(), true),
            bus: EventBus::default(),
            clients: Clients::new(0, None),
            shutdown: Shutdown::new(None),
            sys: FakeSys::default(),
            now: Duration::from_secs(100),
            next_pid: 100,
            timers: Vec::new(),
            log: Vec::new(),
            emitted: Vec::new(),
            replies: Vec::new(),
            spawned: Vec::new(),
            envs: Vec::new(),
            news: Vec::new(),
        };
        for (name, text) in files {
            let class = Rc::new(parse_job(name, text.as_bytes()).expect("job parses"));
            let fin = w.bus.set_start_matcher(None, &class);
            w.finish(fin);
            w.jobs.classes.insert(name.to_string(), class);
        }
        w
    }

    fn key(job: &str) -> Key {
        crate::job::key(job, "")
    }

    fn drive(&mut self, key: &Key, input: Input) -> Result<(), job::Refusal> {
        let (next_pid, spawned, envs) = (&mut self.next_pid, &mut self.spawned, &mut self.envs);
        let alive = &self.sys.alive;
        let alive = alive.clone();
        let mut spawn = |launch: Launch| {
            *next_pid += 1;
            // Every job process leads a group of its own.
            alive
                .borrow_mut()
                .insert(*next_pid, (*next_pid, *next_pid as u64));
            spawned.push((launch.class.name.clone(), launch.process));
            envs.push(launch.env.clone());
            Ok(*next_pid)
        };
        let now = self.now;
        let effects = self
            .jobs
            .drive(key, input, &|| now, &mut self.sys, &mut spawn)?;
        for effect in effects {
            match effect {
                Effect::Log(m) => self.log.push(m),
                Effect::News(n) => self.news.push(n),
                Effect::Probe(_) | Effect::StopProbes => {}
                Effect::Timer { gen, .. } => self.timers.push((key.clone(), gen)),
                Effect::Emit {
                    name,
                    env,
                    blocking,
                } => {
                    self.emit(name, env, blocking.then(|| key.clone()), None);
                }
                Effect::Destroyed(inst) => {
                    let fin = self.bus.instance_gone(key, inst.failed.is_some());
                    self.finish(fin);
                    let answers = self.clients.answers_for_gone(&inst);
                    self.replies.extend(answers);
                }
            }
        }
        let fin = self
            .bus
            .check_blocked(key, self.jobs.instances.get(key).map(|i| &**i));
        self.finish(fin);
        if let Some(inst) = self.jobs.instances.get(key) {
            let jobs = &self.jobs;
            let now = self.now;
            let answers = self.clients.answers_for(inst, &|i| jobs.status_of(i, now));
            self.replies.extend(answers);
        }
        Ok(())
    }

    fn emit(
        &mut self,
        name: &str,
        env: Vec<String>,
        origin: Option<Key>,
        emitter: Option<usize>,
    ) -> u64 {
        let id = self.bus.emit(name, env, origin, emitter);
        self.emitted.push(self.bus.describe(id));
        id
    }

    fn finish(&mut self, fin: Vec<Finished>) {
        for f in fin {
            if let Some(id) = f.emitted {
                self.emitted.push(self.bus.describe(id));
            }
            for c in f.emitters {
                let resp = if f.failed {
                    Response::Error {
                        message: "Event failed".into(),
                    }
                } else {
                    Response::ok(vec![])
                };
                self.replies.push((c, resp));
            }
        }
    }

    /// Carries out what the bus decides, as the conductor does.
    fn settle(&mut self) {
        while let Some(next) = self.bus.next(&self.jobs) {
            match next {
                Next::Done(key) => {
                    let _ = self.drive(&key, Input::EventDone);
                }
                Next::Stop(key, env) => {
                    let _ = self.drive(&key, Input::Stop(env));
                }
                Next::Start(s) => {
                    let key = std::rc::Rc::new((s.class.name.clone(), String::new()));
                    let wanted = self
                        .jobs
                        .instances
                        .get(&key)
                        .is_some_and(|i| i.goal != Goal::Stop);
                    if !wanted {
                        if !self.jobs.instances.contains_key(&key) {
                            let inst = Instance::new(&s.class.name, "", s.class.clone(), vec![]);
                            self.bus.add_instance(&key, &inst.class);
                            self.jobs.add_instance(key.clone(), inst);
                        }
                        self.bus.hold_for(&key, &s.contributing, Hold::Started);
                        let _ = self.drive(&key, Input::Start(s.env));
                    }
                }
                Next::Finished(fin) => self.finish(fin),
            }
        }
    }

    /// `start JOB` as a client would give it (client 1 waits).
    fn start(&mut self, job: &str) -> Result<(), job::Refusal> {
        let key = Self::key(job);
        if !self.jobs.instances.contains_key(&key) {
            let class = self.jobs.classes[job].clone();
            let inst = Instance::new(job, "", class, vec![]);
            self.bus.add_instance(&key, &inst.class);
            self.jobs.add_instance(key.clone(), inst);
        }
        let r = self.drive(&key, Input::Start(vec![]));
        self.settle();
        r
    }

    fn stop(&mut self, job: &str) -> Result<(), job::Refusal> {
        let r = self.drive(&Self::key(job), Input::Stop(vec![]));
        self.settle();
        r
    }

    /// The live process `p` of `job` ends with `status` (its group with
    /// it), as the reaper reports it.
    fn exits(&mut self, job: &str, p: ProcessType, status: Exit) {
        let key = Self::key(job);
        let pid = self.jobs.instances[&key].pid(p).expect("a live process");
        self.sys.alive.borrow_mut().remove(&pid);
        for (k, input) in self
            .jobs
            .reaped(ended(pid, status), &mut self.sys, &|_| false)
        {
            let _ = self.drive(&k, input);
        }
        for (k, input) in self.jobs.after_reap(&mut self.sys, &|_| false) {
            let _ = self.drive(&k, input);
        }
        self.settle();
    }

    /// Every process that a stop's signals reach ends (by that signal).
    fn signals_end_the_processes(&mut self, job: &str) {
        let key = Self::key(job);
        let Some(inst) = self.jobs.instances.get(&key) else {
            return;
        };
        if let Some(pid) = inst.pid(ProcessType::Main) {
            let hit = self.sys.signals.iter().any(|&(t, _)| t == -pid || t == pid);
            if hit {
                self.exits(job, ProcessType::Main, Exit::Signal(15));
            }
        }
    }

    /// The latest timer armed for `job` fires.
    fn fire(&mut self, job: &str) {
        let key = Self::key(job);
        let i = self
            .timers
            .iter()
            .rposition(|(k, _)| *k == key)
            .expect("a timer armed");
        let (key, gen) = self.timers.remove(i);
        if let Some(input) = self.jobs.fork_timer(&key) {
            let _ = self.drive(&key, input);
        }
        if self.jobs.instances.contains_key(&key) {
            let _ = self.drive(&key, Input::Timer { gen });
        }
        self.settle();
    }

    fn at(&self, job: &str) -> (Goal, State) {
        match self.jobs.instances.get(&Self::key(job)) {
            Some(i) => (i.goal, i.state),
            None => (Goal::Stop, State::Waiting),
        }
    }

    fn running(&self, job: &str) -> bool {
        self.at(job) == (Goal::Start, State::Running)
    }

    fn main(&self, job: &str) -> Option<i32> {
        self.jobs
            .instances
            .get(&Self::key(job))?
            .pid(ProcessType::Main)
    }
}

const SVC: &str = "exec /svc\n";

#[test]
fn a_start_runs_a_job_through_its_events_to_running() {
    let mut w = World::new(&[("web", SVC)]);
    w.start("web").unwrap();
    assert!(w.running("web"));
    assert_eq!(w.spawned, [("web".to_string(), ProcessType::Main)]);
    assert_eq!(
        w.emitted,
        ["starting JOB=web INSTANCE=", "started JOB=web INSTANCE="]
    );
    assert_eq!(w.start("web"), Err(job::Refusal::AlreadyRunning));
}

#[test]
fn news_is_made_only_while_someone_watches_and_in_order() {
    let mut w = World::new(&[("web", "respawn\nexec /svc\n")]);
    w.start("web").unwrap();
    assert!(w.news.is_empty(), "nobody watches: {:?}", w.news);
    w.stop("web").unwrap();
    w.exits("web", ProcessType::Main, Exit::Signal(libc::SIGTERM));
    w.jobs.watched = true;
    w.start("web").unwrap();
    let states: Vec<(&str, &str)> = w
        .news
        .iter()
        .filter_map(|n| match n {
            News::State { from, to, .. } => Some((*from, *to)),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        [
            ("waiting", "starting"),
            ("starting", "spawned"),
            ("spawned", "running")
        ]
    );
    w.news.clear();
    w.exits("web", ProcessType::Main, Exit::Code(3));
    let key = std::rc::Rc::new(("web".to_string(), String::new()));
    assert!(matches!(
        &w.news[0],
        News::Exit { key: k, process: "main", exit: Exit::Code(3), .. } if *k == key
    ));
    assert!(w
        .news
        .iter()
        .any(|n| matches!(n, News::Respawn { respawns: 1, .. })));
}

#[test]
fn an_event_is_held_until_the_job_it_started_runs() {
    let mut w = World::new(&[("db", "start on go\npre-start exec /check\nexec /db\n")]);
    let go = w.emit("go", vec![], None, Some(7));
    w.settle();
    // The pre-start runs: `go` is held, its emitter not answered yet.
    assert_eq!(w.at("db"), (Goal::Start, State::PreStart));
    assert!(w.bus.pending(go));
    assert!(w.replies.is_empty());
    w.exits("db", ProcessType::PreStart, Exit::Code(0));
    assert!(w.running("db"));
    assert!(!w.bus.pending(go));
    assert_eq!(w.replies, [(7, Response::ok(vec![]))]);
}

#[test]
fn an_event_that_started_a_task_finishes_with_the_task() {
    let mut w = World::new(&[("t", "start on go\ntask\nexec /t\n")]);
    let go = w.emit("go", vec![], None, Some(3));
    w.settle();
    assert!(w.bus.pending(go), "the task runs");
    w.exits("t", ProcessType::Main, Exit::Code(0));
    assert!(!w.bus.pending(go));
    assert_eq!(w.at("t"), (Goal::Stop, State::Waiting));
    assert_eq!(w.replies, [(3, Response::ok(vec![]))]);
}

#[test]
fn a_failed_start_fails_the_event_and_emits_its_failed_event() {
    let mut w = World::new(&[("t", "start on go\ntask\nexec /t\n")]);
    w.emit("go", vec!["X=1".into()], None, Some(3));
    w.settle();
    w.exits("t", ProcessType::Main, Exit::Code(2));
    assert_eq!(
        w.replies,
        [(
            3,
            Response::Error {
                message: "Event failed".into()
            }
        )]
    );
    assert!(
        w.emitted.contains(&"go/failed X=1".to_string()),
        "{:?}",
        w.emitted
    );
}

#[test]
fn start_on_started_a_and_started_b_waits_for_both() {
    let mut w = World::new(&[
        ("a", SVC),
        ("b", SVC),
        ("both", "start on started a and started b\nexec /both\n"),
    ]);
    assert_eq!(
        w.bus.waiting_for("both").as_deref(),
        Some("started a and started b")
    );
    w.start("a").unwrap();
    assert!(!w.running("both"));
    assert_eq!(w.bus.waiting_for("both").as_deref(), Some("started b"));
    w.start("b").unwrap();
    assert!(w.running("both"));
    let env = &w.jobs.instances[&World::key("both")].env;
    assert!(
        env.contains(&"UPSTART_EVENTS=started started".to_string()),
        "{env:?}"
    );
}

#[test]
fn start_on_started_a_or_started_b_takes_either() {
    let mut w = World::new(&[
        ("a", SVC),
        ("b", SVC),
        ("either", "start on started a or started b\nexec /e\n"),
    ]);
    w.start("b").unwrap();
    assert!(w.running("either"));
}

#[test]
fn stop_on_stopping_db_stops_the_app_first_and_db_waits() {
    let mut w = World::new(&[
        ("db", SVC),
        (
            "app",
            "start on started db\nstop on stopping db\nexec /app\n",
        ),
    ]);
    w.start("db").unwrap();
    assert!(w.running("app"));
    w.stop("db").unwrap();
    // db's `stopping` is held by app's stop: db waits in `stopping`.
    assert_eq!(w.at("db"), (Goal::Stop, State::Stopping));
    assert_eq!(w.at("app").0, Goal::Stop);
    assert_eq!(w.at("app").1, State::Killed);
    w.signals_end_the_processes("app");
    assert_eq!(w.at("app"), (Goal::Stop, State::Waiting));
    // Now db goes on.
    assert_eq!(w.at("db"), (Goal::Stop, State::Killed));
    w.signals_end_the_processes("db");
    assert_eq!(w.at("db"), (Goal::Stop, State::Waiting));
}

#[test]
fn the_stop_events_variables_reach_the_stop_environment() {
    let mut w = World::new(&[(
        "web",
        "stop on halt MODE=*\npost-stop exec /after\nexec /web\n",
    )]);
    w.start("web").unwrap();
    w.emit("halt", vec!["MODE=fast".into()], None, None);
    w.settle();
    let inst = &w.jobs.instances[&World::key("web")];
    assert_eq!(inst.stop_env, ["MODE=fast", "UPSTART_STOP_EVENTS=halt"]);
}

#[test]
fn a_job_with_start_and_stop_on_the_same_event_is_restarted_by_it() {
    let mut w = World::new(&[("r", "start on kick\nstop on kick\nexec /r\n")]);
    w.emit("kick", vec![], None, None);
    w.settle();
    assert!(w.running("r"));
    let first = w.main("r");
    w.emit("kick", vec![], None, None);
    w.settle();
    assert_eq!(w.at("r").0, Goal::Start, "stopped, and wanted again");
    w.signals_end_the_processes("r");
    assert!(w.running("r"));
    assert_ne!(w.main("r"), first);
}

#[test]
fn waiters_are_answered_when_the_job_runs() {
    let mut w = World::new(&[("web", "pre-start exec /p\nexec /web\n")]);
    w.clients.waiters.push(Waiter {
        client: 9,
        key: World::key("web"),
        kind: WaitKind::Start,
    });
    w.start("web").unwrap();
    assert!(w.replies.is_empty(), "pre-start still runs");
    w.exits("web", ProcessType::PreStart, Exit::Code(0));
    assert_eq!(w.replies.len(), 1);
    let (client, Response::Ok { instances, .. }) = &w.replies[0] else {
        panic!("{:?}", w.replies);
    };
    assert_eq!((*client, instances[0].state.as_str()), (9, "running"));
    assert!(w.clients.waiters.is_empty());
}

#[test]
fn a_waiter_on_a_failed_start_gets_the_reason() {
    let mut w = World::new(&[("web", "pre-start exec /p\nexec /web\n")]);
    w.clients.waiters.push(Waiter {
        client: 4,
        key: World::key("web"),
        kind: WaitKind::Start,
    });
    w.start("web").unwrap();
    w.exits("web", ProcessType::PreStart, Exit::Code(1));
    assert_eq!(
        w.replies,
        [(
            4,
            Response::Error {
                message: "Job failed to start: pre-start process terminated with status 1".into()
            }
        )]
    );
}

#[test]
fn a_stop_waiter_is_answered_once_the_job_is_gone() {
    let mut w = World::new(&[("web", SVC)]);
    w.start("web").unwrap();
    w.clients.waiters.push(Waiter {
        client: 5,
        key: World::key("web"),
        kind: WaitKind::Stop,
    });
    w.stop("web").unwrap();
    assert!(w.replies.is_empty());
    w.signals_end_the_processes("web");
    assert_eq!(w.replies.len(), 1);
    assert!(matches!(&w.replies[0], (5, Response::Ok { .. })));
}

#[test]
fn a_stop_sends_the_kill_signal_then_sigkill_after_the_kill_timeout() {
    let mut w = World::new(&[("stubborn", "kill timeout 3\nexec /s\n")]);
    w.start("stubborn").unwrap();
    let pid = w.main("stubborn").unwrap();
    w.stop("stubborn").unwrap();
    assert_eq!(w.sys.signals.last(), Some(&(-pid, libc::SIGTERM)));
    assert_eq!(w.at("stubborn").1, State::Killed);
    w.fire("stubborn");
    assert_eq!(w.sys.signals.last(), Some(&(-pid, libc::SIGKILL)));
    w.exits("stubborn", ProcessType::Main, Exit::Signal(9));
    assert_eq!(w.at("stubborn"), (Goal::Stop, State::Waiting));
}

#[test]
fn processes_that_left_the_group_get_the_signal_too() {
    let mut w = World::new(&[("web", SVC)]);
    w.start("web").unwrap();
    let escaped = Orphan {
        pid: 900,
        pgid: 900,
        sid: 900,
        start: 1,
    };
    w.sys.orphans.push((World::key("web"), escaped));
    w.stop("web").unwrap();
    assert!(
        w.sys.signals.contains(&(900, libc::SIGTERM)),
        "{:?}",
        w.sys.signals
    );
}

#[test]
fn a_respawn_follows_the_death_of_the_main_process() {
    let mut w = World::new(&[("crashy", "respawn\nexec /c\n")]);
    w.start("crashy").unwrap();
    let first = w.main("crashy").unwrap();
    w.exits("crashy", ProcessType::Main, Exit::Signal(9));
    assert!(w.running("crashy"));
    assert_ne!(w.main("crashy"), Some(first));
    assert_eq!(w.jobs.instances[&World::key("crashy")].respawns, 1);
}

/// The value of `key` in the environment of the `n`th process spawned.
fn env_of(w: &World, n: usize, key: &str) -> Option<String> {
    w.envs[n]
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

#[test]
fn env_files_are_read_at_each_start_and_a_respawn_keeps_the_last_good_values() {
    let mut w = World::new(&[(
        "app",
        "respawn\nenv-file /etc/app.env\nenv-file -/etc/app.local\npre-start exec /p\nexec /c\n",
    )]);
    let files = w.sys.env_files.clone();
    let put = |path: &str, read: Result<&str, &str>| {
        let read = read.map(str::to_string).map_err(str::to_string);
        files.borrow_mut().insert(path.to_string(), read);
    };
    let logged = |w: &World, needle: &str| {
        assert!(
            w.log.iter().any(|l| l.contains(needle)),
            "{needle}: {:?}",
            w.log
        );
    };
    // A first start without the file fails, naming it.
    w.start("app").unwrap();
    assert_eq!(w.at("app"), (Goal::Stop, State::Waiting));
    assert!(w.spawned.is_empty());
    logged(&w, "env-file /etc/app.env: no such file");
    // A malformed one names its line.
    put("/etc/app.env", Ok("A=1\nbad line\n"));
    w.start("app").unwrap();
    logged(&w, "env-file /etc/app.env:2: expected KEY=VALUE");
    // Read once a start, before pre-start; the optional file may be missing.
    put("/etc/app.env", Ok("A=1\nB=file\n"));
    w.start("app").unwrap();
    assert_eq!(w.spawned.len(), 1);
    w.exits("app", ProcessType::PreStart, Exit::Code(0));
    assert!(w.running("app"));
    assert_eq!(env_of(&w, 0, "A").as_deref(), Some("1"));
    assert_eq!(env_of(&w, 1, "B").as_deref(), Some("file"));
    // A respawn reads again: a change is taken, a later file wins.
    put("/etc/app.env", Ok("A=2\nB=file\n"));
    put("/etc/app.local", Ok("B=local\n"));
    let respawn = |w: &mut World| {
        w.exits("app", ProcessType::Main, Exit::Code(1));
        w.exits("app", ProcessType::PreStart, Exit::Code(0));
        assert!(w.running("app"));
        w.envs.len() - 1
    };
    let main = respawn(&mut w);
    assert_eq!(env_of(&w, main, "A").as_deref(), Some("2"));
    assert_eq!(env_of(&w, main, "B").as_deref(), Some("local"));
    // A respawn that finds the file broken keeps the last good values.
    put("/etc/app.env", Err("/etc/app.env: not a regular file"));
    let main = respawn(&mut w);
    assert_eq!(env_of(&w, main, "A").as_deref(), Some("2"));
    logged(&w, "not a regular file; the values last read are kept");
}

#[test]
fn the_respawn_limit_stops_a_crash_loop() {
    let mut w = World::new(&[("crashy", "respawn\nrespawn limit 3 60\nexec /c\n")]);
    w.start("crashy").unwrap();
    for _ in 0..4 {
        w.exits("crashy", ProcessType::Main, Exit::Code(1));
    }
    assert_eq!(w.at("crashy"), (Goal::Stop, State::Waiting));
    assert!(
        w.log
            .iter()
            .any(|l| l == "crashy respawning too fast, stopped"),
        "{:?}",
        w.log
    );
    assert_eq!(w.spawned.len(), 4, "one start and three respawns");
}

#[test]
fn expect_fork_follows_the_child_a_daemonizing_program_leaves() {
    let mut w = World::new(&[("d", "expect fork\nexec /d\n")]);
    w.start("d").unwrap();
    assert_eq!(w.at("d"), (Goal::Start, State::Spawned));
    let parent = w.main("d").unwrap();
    let child = Orphan {
        pid: 555,
        pgid: 555,
        sid: 555,
        start: 2,
    };
    w.sys.alive.borrow_mut().insert(555, (555, 2));
    w.sys.orphans.push((World::key("d"), child));
    w.exits("d", ProcessType::Main, Exit::Code(0));
    assert!(w.running("d"));
    assert_eq!(w.main("d"), Some(555));
    assert_ne!(Some(parent), w.main("d"));
}

#[test]
fn expect_fork_waits_for_a_child_not_there_yet_then_follows_it() {
    let mut w = World::new(&[("d", "expect fork\nexec /d\n")]);
    w.start("d").unwrap();
    w.exits("d", ProcessType::Main, Exit::Code(0));
    // Nothing to follow yet: the exit is held, the job still spawned.
    assert_eq!(w.at("d"), (Goal::Start, State::Spawned));
    assert!(w.jobs.pending_exit.contains_key(&World::key("d")));
    w.sys.alive.borrow_mut().insert(556, (556, 3));
    w.sys.orphans.push((
        World::key("d"),
        Orphan {
            pid: 556,
            pgid: 556,
            sid: 556,
            start: 3,
        },
    ));
    for (k, input) in w.jobs.after_reap(&mut w.sys, &|_| false) {
        let _ = w.drive(&k, input);
    }
    assert!(w.running("d"));
    assert_eq!(w.main("d"), Some(556));
}

#[test]
fn a_fork_that_never_comes_is_a_real_exit_when_the_timer_runs_out() {
    let mut w = World::new(&[("d", "expect fork\nkill timeout 2\nexec /d\n")]);
    w.start("d").unwrap();
    w.exits("d", ProcessType::Main, Exit::Code(0));
    w.fire("d");
    assert_eq!(w.at("d"), (Goal::Stop, State::Waiting));
}

#[test]
fn the_daemons_own_helpers_are_never_taken_for_a_forked_child() {
    let mut w = World::new(&[("d", "expect fork\nexec /d\n")]);
    w.start("d").unwrap();
    let pid = w.main("d").unwrap();
    w.sys.alive.borrow_mut().remove(&pid);
    w.sys.anonymous.push(Orphan {
        pid: 777,
        pgid: 1,
        sid: 1,
        start: u64::MAX,
    });
    let helper = |p: i32| p == 777;
    let inputs = w
        .jobs
        .reaped(ended(pid, Exit::Code(0)), &mut w.sys, &helper);
    assert!(inputs.is_empty(), "the compressor is not followed");
    assert!(w.jobs.pending_exit.contains_key(&World::key("d")));
}

#[test]
fn an_instance_gone_releases_what_it_held() {
    let mut w = World::new(&[("t", "start on go\ntask\nexec /t\n")]);
    let go = w.emit("go", vec![], None, None);
    w.settle();
    assert!(w.bus.pending(go));
    w.stop("t").unwrap();
    w.signals_end_the_processes("t");
    assert!(!w.bus.pending(go), "released when the instance went");
}

#[test]
fn an_edit_that_keeps_start_on_keeps_what_it_matched() {
    let mut w = World::new(&[
        ("a", SVC),
        ("b", SVC),
        ("both", "start on started a and started b\nexec /x\n"),
    ]);
    w.start("a").unwrap();
    let old = w.jobs.classes["both"].clone();
    let same = Rc::new(parse_job("both", b"start on started a and started b\nexec /y\n").unwrap());
    w.bus.set_start_matcher(Some(&old), &same);
    assert_eq!(w.bus.waiting_for("both").as_deref(), Some("started b"));
    let changed = Rc::new(parse_job("both", b"start on started b\nexec /y\n").unwrap());
    w.bus.set_start_matcher(Some(&same), &changed);
    assert_eq!(w.bus.waiting_for("both").as_deref(), Some("started b"));
    assert!(!w.bus.start_matcher("both").unwrap().is_partial());
}

#[test]
fn a_shutdown_stops_jobs_in_the_reverse_of_their_running_order() {
    let mut w = World::new(&[("a", SVC), ("b", SVC), ("c", SVC)]);
    for j in ["a", "b", "c"] {
        w.start(j).unwrap();
    }
    let mut order = Vec::new();
    let reactor = test_reactor();
    while let Some(key) = w.shutdown.next_to_stop(&w.jobs, false, &reactor) {
        order.push(key.0.clone());
        w.stop(&key.0).unwrap();
        w.signals_end_the_processes(&key.0);
    }
    assert_eq!(order, ["c", "b", "a"]);
}

#[test]
fn a_hung_hook_at_shutdown_gets_the_kill_signal_then_sigkill() {
    let mut w = World::new(&[("h", "kill timeout 5\npre-stop exec /hang\nexec /h\n")]);
    w.start("h").unwrap();
    w.stop("h").unwrap();
    let key = World::key("h");
    let hook = w.jobs.instances[&key].pid(ProcessType::PreStop).unwrap();
    let dlog_dir = std::rc::Rc::new(std::cell::RefCell::new(crate::log::LogDir::closed(
        std::path::Path::new("/nonexistent"),
    )));
    let dlog = super::output::DaemonLog::new(dlog_dir, crate::log::DEFAULT_POLICY, false);
    let reactor = test_reactor();
    w.shutdown.watch_hook(&key, &w.jobs, &reactor);
    w.shutdown
        .check_hook(key.clone(), &w.jobs, &mut w.sys, &dlog, &reactor);
    assert_eq!(w.sys.signals.last(), Some(&(-hook, libc::SIGTERM)));
    w.shutdown
        .check_hook(key, &w.jobs, &mut w.sys, &dlog, &reactor);
    assert_eq!(w.sys.signals.last(), Some(&(-hook, libc::SIGKILL)));
}

/// A reactor on a socket of its own (no process; epoll and a signalfd).
fn test_reactor() -> super::reactor::Reactor {
    let dir = tempfile::tempdir().unwrap();
    let listener = mio::net::UnixListener::bind(dir.path().join("s")).unwrap();
    let mask = nix::sys::signal::SigSet::empty();
    let sfd = nix::sys::signalfd::SignalFd::new(&mask).unwrap();
    super::reactor::Reactor::new(sfd, listener).unwrap()
}

#[test]
fn the_exit_with_job_failing_sets_the_exit_status() {
    let mut w = World::new(&[("main", "exec /m\n")]);
    w.shutdown = Shutdown::new(Some("main".into()));
    w.start("main").unwrap();
    w.exits("main", ProcessType::Main, Exit::Code(7));
    // The instance is gone; its last state is what the conductor passes.
    let mut inst = Instance::new("main", "", w.jobs.classes["main"].clone(), vec![]);
    inst.failed = Some(job::Failure {
        process: job::FailedProcess::Process(ProcessType::Main),
        exit: Some(Exit::Code(7)),
    });
    inst.last_exit = Some(Exit::Code(7));
    let why = w.shutdown.exit_with_failed(&inst).unwrap();
    assert!(why.contains("(--exit-with), exit status 7"), "{why}");
    assert_eq!(w.shutdown.exit_code, 7);
}

/// An OOM kill in a job's group, told when its main process dies by
/// SIGKILL: the `oom-killed` event, the respawn said with its cause; a
/// second SIGKILL with no new kill is no OOM. At rest, the group goes.
#[test]
fn an_oom_kill_is_told_once_and_the_job_respawns() {
    let mut w = World::new(&[("eat", "memory max 50M\nrespawn\nexec eat\n")]);
    w.start("eat").unwrap();
    let key = World::key("eat");
    w.sys.oom.insert(key.clone(), 1);
    w.exits("eat", ProcessType::Main, Exit::Signal(libc::SIGKILL));
    assert!(
        w.emitted
            .iter()
            .any(|e| e == "oom-killed JOB=eat INSTANCE="),
        "{:?}",
        w.emitted
    );
    assert!(
        w.log.iter().any(|l| {
            l
            == "eat main process killed by the kernel's OOM killer (memory max 50 MiB), respawning"
        }),
        "{:?}",
        w.log
    );
    assert_eq!(w.jobs.instances[&key].state, State::Running);
    w.exits("eat", ProcessType::Main, Exit::Signal(libc::SIGKILL));
    let told = w
        .emitted
        .iter()
        .filter(|e| e.starts_with("oom-killed"))
        .count();
    assert_eq!(told, 1, "{:?}", w.emitted);
    w.stop("eat").unwrap();
    w.signals_end_the_processes("eat");
    assert!(w.sys.group_signals.contains(&(key.clone(), libc::SIGTERM)));
    assert_eq!(w.sys.released, vec![key]);
}

/// Without a cgroup manager, a job that asks for a group fails its start
/// with Upstart's words and the reason; one that asks none starts.
#[test]
fn no_cgroup_manager_refuses_only_the_jobs_that_ask() {
    let mut w = World::new(&[("cg", "cgroup memory\nexec x\n"), ("plain", "exec y\n")]);
    w.sys.no_groups = Some("no permission".into());
    w.start("cg").unwrap();
    assert!(
        w.log.iter().any(|l| l
            .contains("Job cannot be started as cgroup manager not available: cg (no permission)")),
        "{:?}",
        w.log
    );
    assert!(!w.jobs.instances.contains_key(&World::key("cg")));
    w.start("plain").unwrap();
    assert_eq!(w.jobs.instances[&World::key("plain")].state, State::Running);
}

/// A rescan skips the files whose stamps it has seen settle, and reads
/// again every one that changed since: an edit of the same size, an
/// override added, edited and removed, a file made broken.
#[test]
fn a_rescan_reads_again_every_file_that_changed_since_it_was_cached() {
    let dir = tempfile::tempdir().expect("dir");
    let dirs = vec![dir.path().to_path_buf()];
    let conf = dir.path().join("web.conf");
    let later = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64
            + 10
    };
    let mut jobs = JobTable::new(job::env::Base::default(), true);
    let exec = |jobs: &JobTable| match jobs.classes["web"].process(ProcessType::Main) {
        Some(crate::conf::Command::Exec(e)) => e.clone(),
        other => panic!("{other:?}"),
    };
    std::fs::write(&conf, "exec /bin/aaa\n").expect("write");
    assert_eq!(jobs.reload_at(&dirs, later()).changed.len(), 1);
    // Cached (settled, as `later` says): nothing changed, nothing new.
    assert!(jobs.reload_at(&dirs, later()).changed.is_empty());
    assert_eq!(exec(&jobs), "/bin/aaa");
    // The same size, another text: its ctime moved, so it is read again.
    std::fs::write(&conf, "exec /bin/bbb\n").expect("write");
    assert_eq!(jobs.reload_at(&dirs, later()).changed.len(), 1);
    assert_eq!(exec(&jobs), "/bin/bbb");
    let over = dir.path().join("web.override");
    std::fs::write(&over, "exec /bin/ccc\n").expect("write");
    jobs.reload_at(&dirs, later());
    assert_eq!(exec(&jobs), "/bin/ccc");
    std::fs::write(&over, "exec /bin/ddd\n").expect("write");
    jobs.reload_at(&dirs, later());
    assert_eq!(exec(&jobs), "/bin/ddd");
    std::fs::remove_file(&over).expect("rm");
    jobs.reload_at(&dirs, later());
    assert_eq!(exec(&jobs), "/bin/bbb");
    // Broken: said on every rescan, the last good definition kept.
    std::fs::write(&conf, "exec\n").expect("write");
    for _ in 0..2 {
        let r = jobs.reload_at(&dirs, later());
        assert!(
            r.logs.iter().any(|l| l.contains("keeping the last good")),
            "{:?}",
            r.logs
        );
    }
    std::fs::remove_file(&conf).expect("rm");
    assert_eq!(jobs.reload_at(&dirs, later()).gone, vec!["web".to_string()]);
}
