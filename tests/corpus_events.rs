//! The `start on` / `stop on` expressions of the real corpus, and the
//! corpus jobs that upkeep's boot sequence starts.

mod common;

use common::runner::{need_corpus, need_corpus_files, Missing};

use std::rc::Rc;

use upkeep::conf::{parse_job, JobClass};
use upkeep::event::expand::expand;
use upkeep::event::matcher::{EventRef, Matcher};
use upkeep::event::EventExpr;

type StatsRow = (&'static str, String, Vec<String>);

/// `STATS.md`'s tables: (start/stop, expression as written collapsed on one
/// line, the example files).
fn stats_rows() -> Result<Vec<StatsRow>, Missing> {
    let dir = need_corpus()?;
    let text = std::fs::read_to_string(dir.join("STATS.md")).unwrap();
    let mut rows = Vec::new();
    let mut section = "";
    for line in text.lines() {
        if line.starts_with("### `start on`") {
            section = "start";
        } else if line.starts_with("### `stop on`") {
            section = "stop";
        } else if line.starts_with("### ") {
            section = "";
        }
        if section.is_empty() || !line.starts_with("| ") {
            continue;
        }
        let cells: Vec<&str> = line.split(" | ").collect();
        if cells.len() < 3 || !cells[1].starts_with('`') {
            continue;
        }
        let expr = cells[1].trim_matches('`').to_string();
        let files: Vec<String> = cells[2]
            .split(',')
            .map(|f| {
                f.trim()
                    .trim_end_matches(" |")
                    .trim_end_matches('|')
                    .trim()
                    .trim_matches('`')
                    .trim_end_matches('…')
                    .trim()
            })
            .filter(|f| f.len() == 3 && f.chars().all(|c| c.is_ascii_digit()))
            .map(str::to_string)
            .collect();
        rows.push((section, expr, files));
    }
    Ok(rows)
}

fn corpus_job(number: &str) -> (String, JobClass) {
    let dir = need_corpus().unwrap();
    let path = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(&format!("{number}-"))
        })
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let job = parse_job("j", text.as_bytes()).unwrap();
    (text, job)
}

fn every_corpus_expression_parses_into_the_same_tree_as_its_one_line_form() -> Result<(), Missing> {
    let rows = stats_rows()?;
    assert!(rows.len() >= 100, "{} rows read from STATS.md", rows.len());
    let mut checked = 0;
    for (kind, expr, files) in rows {
        let want: EventExpr = parse_job("j", format!("{kind} on {expr}\n").as_bytes())
            .unwrap_or_else(|e| panic!("{kind} on {expr}: {e:?}"))
            .start_on
            .or_else(|| {
                parse_job("j", format!("{kind} on {expr}\n").as_bytes())
                    .unwrap()
                    .stop_on
            })
            .unwrap();
        for f in files {
            if f == "075" {
                continue; // rejected by Upstart too (no job)
            }
            let (text, job) = corpus_job(&f);
            let got = if kind == "start" {
                job.start_on
            } else {
                job.stop_on
            };
            let got = got.unwrap_or_else(|| panic!("{f}: no {kind} on"));
            let lines = text
                .lines()
                .filter(|l| l.trim_start().starts_with(&format!("{kind} on")))
                .count();
            if lines > 1 && got != want {
                continue; // several `stop on` lines: the last wins (047, 134)
            }
            assert_eq!(got, want, "{f}: `{kind} on {expr}`");
            checked += 1;
        }
    }
    assert!(checked >= 130, "only {checked} expressions checked");
    Ok(())
}

/// The boot sequence, as the daemon emits it (with one interface besides
/// lo, or none).
fn boot_with(other_iface: bool) -> Vec<(&'static str, Vec<String>)> {
    let mut b = boot();
    if !other_iface {
        b.remove(6);
    }
    b
}

fn boot() -> Vec<(&'static str, Vec<String>)> {
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        ("startup", v(&[])),
        ("filesystem", v(&[])),
        ("local-filesystems", v(&[])),
        ("remote-filesystems", v(&[])),
        ("virtual-filesystems", v(&[])),
        (
            "net-device-up",
            v(&["IFACE=lo", "LOGICAL=lo", "ADDRFAM=inet", "METHOD=loopback"]),
        ),
        (
            "net-device-up",
            v(&[
                "IFACE=eth0",
                "LOGICAL=eth0",
                "ADDRFAM=inet",
                "METHOD=manual",
            ]),
        ),
        ("static-network-up", v(&[])),
        ("runlevel", v(&["RUNLEVEL=2", "PREVLEVEL=N"])),
    ]
}

/// Corpus jobs whose `start on` the boot events alone satisfy (and whose
/// instance name they give).
const STARTED_AT_BOOT: &[&str] = &[
    "001", "002", "006", "010", "012", "013", "015", "016", "018", "019", "026", "027", "028",
    "030", "032", "034", "036", "037", "038", "039", "042", "043", "044", "048", "049", "050",
    "051", "052", "053", "054", "056", "057", "058", "059", "062", "069", "070", "071", "072",
    "073", "074", "076", "079", "081", "082", "084", "085", "087", "088", "089", "090", "092",
    "094", "095", "096", "097", "098", "099", "100", "101", "102", "104", "106", "107", "110",
    "112", "113", "120", "122", "123", "126", "133", "137", "140", "141", "146",
];

fn started_by_boot(job: &JobClass) -> bool {
    started_by(job, &boot())
}

fn started_by(job: &JobClass, events: &[(&'static str, Vec<String>)]) -> bool {
    let Some(expr) = &job.start_on else {
        return false;
    };
    let mut m = Matcher::new(expr);
    let vars: Vec<String> = job
        .env
        .iter()
        .filter(|e| e.contains('='))
        .cloned()
        .collect();
    let mut env = Vec::new();
    for (i, (name, ev)) in events.iter().enumerate() {
        m.offer(
            &EventRef {
                id: i as u64,
                name,
                env: ev,
            },
            &vars,
        );
        if m.is_true() {
            env = m
                .contributing()
                .iter()
                .flat_map(|&id| events[id as usize].1.clone())
                .collect();
            break;
        }
    }
    if !m.is_true() {
        return false;
    }
    let mut scope = vars;
    scope.extend(env);
    job.instance.is_empty() || expand(&job.instance, &scope).is_ok()
}

fn corpus_numbers() -> Result<Vec<(String, std::path::PathBuf)>, Missing> {
    Ok(need_corpus_files()?
        .into_iter()
        .map(|p| (p.file_name().unwrap().to_str().unwrap()[..3].to_string(), p))
        .collect())
}

fn the_listed_corpus_jobs_are_the_ones_the_boot_events_start() -> Result<(), Missing> {
    let files = corpus_numbers()?;
    let mut computed = Vec::new();
    for (n, path) in &files {
        let Ok(job) = parse_job("j", &std::fs::read(path).unwrap()) else {
            continue;
        };
        if started_by_boot(&job) {
            computed.push(n.clone());
        }
    }
    assert_eq!(computed, STARTED_AT_BOOT, "update STARTED_AT_BOOT");
    Ok(())
}

fn the_daemon_starts_them_at_boot() -> Result<(), Missing> {
    let files = corpus_numbers()?;
    // Each listed job with its start conditions as written, but `exec
    // sleep` for its processes: this is about what starts them, and the
    // corpus's own programs (network and disk tools) are not for a test
    // machine.
    // Jobs that need an interface besides lo are expected only where one
    // is up (the daemon announces the interfaces it finds).
    let other_iface = common::daemon::other_interface_up();
    let mut b = common::daemon::Daemon::builder();
    let mut names = Vec::new();
    for (n, path) in &files {
        if !STARTED_AT_BOOT.contains(&n.as_str()) {
            continue;
        }
        let job = parse_job("j", &std::fs::read(path).unwrap()).unwrap();
        if !started_by(&job, &boot_with(other_iface)) {
            continue;
        }
        let mut safe = JobClass::new("j");
        safe.start_on = job.start_on.clone();
        safe.env = job.env.clone();
        safe.instance = job.instance.clone();
        safe.task = job.task;
        safe.set_process(
            upkeep::conf::ProcessType::Main,
            Some(upkeep::conf::Command::Exec("/bin/sleep 1000".into())),
        );
        let name = format!("c{n}");
        b = b.job(&name, &upkeep::conf::print::to_job_file(&Rc::new(safe)));
        names.push(name);
    }
    let d = b.start();
    for name in &names {
        d.wait_log(&format!("{name} goal changed from stop to start"));
    }
    let list = d.ok(&["list"]);
    for name in &names {
        assert!(
            list.lines()
                .any(|l| l.starts_with(name.as_str()) && l.contains("start/running")),
            "{name} not running:\n{list}"
        );
    }
    Ok(())
}

tests![
    every_corpus_expression_parses_into_the_same_tree_as_its_one_line_form,
    the_listed_corpus_jobs_are_the_ones_the_boot_events_start,
    the_daemon_starts_them_at_boot,
];
