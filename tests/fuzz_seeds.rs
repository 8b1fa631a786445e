//! Every seed of the fuzz targets (`fuzz/seeds/`) and every file of the
//! Upstart corpus, replayed through the fuzz targets' checks
//! (`upkeep::fuzzing`): what a fuzzer starts from, and what it once found,
//! stays passing in every `cargo test`.

mod common;

use common::runner::{need_corpus_files, Missing};

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

fn job_file_seeds() {
    replay("job_file", seeds("job_file"), upkeep::fuzzing::job_file);
}

fn job_file_check_on_the_whole_corpus() -> Result<(), Missing> {
    let inputs = need_corpus_files()?
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    replay("job_file", inputs, upkeep::fuzzing::job_file);
    Ok(())
}

fn event_expr_seeds() {
    replay(
        "event_expr",
        seeds("event_expr"),
        upkeep::fuzzing::event_expr,
    );
}

/// Every corpus file's `start on` / `stop on` text, as the target sees it.
fn event_expr_check_on_the_corpus_expressions() -> Result<(), Missing> {
    let mut inputs = Vec::new();
    for p in need_corpus_files()? {
        if let Ok(job) = upkeep::conf::parse_job("c", &std::fs::read(&p).unwrap()) {
            for on in [&job.start_on, &job.stop_on].into_iter().flatten() {
                inputs.push((p.display().to_string(), on.bracketed().into_bytes()));
            }
        }
    }
    assert!(inputs.len() > 100, "{} expressions", inputs.len());
    replay("event_expr", inputs, upkeep::fuzzing::event_expr);
    Ok(())
}

fn control_request_seeds() {
    replay(
        "control_request",
        seeds("control_request"),
        upkeep::fuzzing::control_request,
    );
}

tests![
    job_file_seeds,
    job_file_check_on_the_whole_corpus,
    event_expr_seeds,
    event_expr_check_on_the_corpus_expressions,
    control_request_seeds,
];
