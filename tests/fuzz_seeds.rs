//! Every seed of the fuzz targets (`fuzz/seeds/`) and every file of the
//! Upstart corpus, replayed through the fuzz targets' checks
//! (`upkeep::fuzzing`): what a fuzzer starts from, and what it once found,
//! stays passing in every `cargo test`.

mod common;

use std::path::Path;

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    assert!(!out.is_empty(), "{}: no seeds", dir.display());
    out.sort();
    out
}

fn replay(target: &str, inputs: Vec<(String, Vec<u8>)>, check: fn(&[u8])) {
    for (name, data) in inputs {
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("{target}: {name} breaks the check");
        }
    }
}

#[test]
fn job_file_seeds_and_the_whole_corpus() {
    let mut inputs = seeds("job_file");
    for p in common::corpus_files() {
        inputs.push((p.display().to_string(), std::fs::read(&p).unwrap()));
    }
    replay("job_file", inputs, upkeep::fuzzing::job_file);
}

#[test]
fn event_expr_seeds_and_the_corpus_expressions() {
    let mut inputs = seeds("event_expr");
    // Every corpus file's `start on` / `stop on` text, as the target sees it.
    for p in common::corpus_files() {
        if let Ok(job) = upkeep::conf::parse_job("c", &std::fs::read(&p).unwrap()) {
            for on in [&job.start_on, &job.stop_on].into_iter().flatten() {
                inputs.push((p.display().to_string(), on.bracketed().into_bytes()));
            }
        }
    }
    replay("event_expr", inputs, upkeep::fuzzing::event_expr);
}

#[test]
fn control_request_seeds() {
    replay(
        "control_request",
        seeds("control_request"),
        upkeep::fuzzing::control_request,
    );
}
