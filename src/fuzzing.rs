//! What the fuzz targets (`fuzz/`) check, one function per target, kept
//! here so that `tests/fuzz_seeds.rs` replays every seed through the same
//! code in ordinary `cargo test` runs. Each function panics on a broken
//! invariant; any input that returns is a pass.

use crate::conf::{parse_job, print::to_job_file};

/// Job files: no panic; every error points inside the text; a file that
/// parses prints back to text that parses to the same job.
pub fn job_file(data: &[u8]) {
    match parse_job("fuzz", data) {
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in errors {
                assert!(e.offset <= data.len(), "error offset past the end: {e:?}");
            }
        }
        Ok(job) => {
            let printed = to_job_file(&job);
            let again = parse_job("fuzz", printed.as_bytes());
            assert_eq!(again, Ok(job), "printed:\n{printed}");
        }
    }
}

/// `start on` / `stop on` expressions: no panic; an expression that parses
/// prints (as job files and `show-config` print it) to one that parses to
/// the same tree. (The fully bracketed form is for reading only: a long
/// left-associative chain gains a parenthesis per operator there, and may
/// pass the nesting limit; the fuzzer found that.)
pub fn event_expr(data: &[u8]) {
    let mut text = b"start on ".to_vec();
    text.extend_from_slice(data);
    let Ok(job) = parse_job("fuzz", &text) else {
        return;
    };
    let Some(on) = job.start_on.as_ref() else {
        return;
    };
    let printed = format!("start on {on}\n");
    let again = parse_job("fuzz", printed.as_bytes()).expect("printed expression parses");
    assert_eq!(again.start_on.as_ref(), Some(on), "printed: {printed}");
}

/// Control requests: no panic; a request that decodes encodes to one that
/// decodes to the same request.
pub fn control_request(data: &[u8]) {
    if let Ok(req) = crate::control::decode_request(data) {
        let line = serde_json::to_vec(&req).expect("requests encode");
        let again = crate::control::decode_request(&line).expect("encoded request decodes");
        assert_eq!(again, req);
    }
}
