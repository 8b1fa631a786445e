//! The real job files of `shared/corpus/upstart`: all parse, as they do
//! under Upstart, except `075-httpcache.conf`, which Upstart rejects too.

mod common;

use common::runner::{need_corpus, need_corpus_files, Missing};
use upkeep::conf::{line_col, parse_job, print::to_job_file};

fn every_corpus_file_parses_as_upstart_does() -> Result<(), Missing> {
    let files = need_corpus_files()?;
    assert!(files.len() >= 140, "corpus has {} files", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read(path).unwrap();
        let name = path.file_stem().unwrap().to_str().unwrap();
        let result = parse_job(name, &text);
        if name == "075-httpcache" {
            let errors = result.expect_err("075 must be rejected, as Upstart rejects it");
            let (line, _) = line_col(&text, errors[0].offset);
            assert_eq!(format!("{line}: {}", errors[0].kind), "15: Unknown stanza");
            continue;
        }
        if let Err(errors) = result {
            let (line, col) = line_col(&text, errors[0].offset);
            failures.push(format!(
                "{}:{line}:{col}: {}",
                path.display(),
                errors[0].kind
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "corpus files that should parse:\n{}",
        failures.join("\n")
    );
    Ok(())
}

fn every_corpus_job_prints_back_to_itself() -> Result<(), Missing> {
    for path in need_corpus_files()? {
        let text = std::fs::read(&path).unwrap();
        let Ok(job) = parse_job("j", &text) else {
            continue;
        };
        let printed = to_job_file(&job);
        let again = parse_job("j", printed.as_bytes()).unwrap_or_else(|e| {
            panic!(
                "{}: printed form does not parse: {e:?}\n{printed}",
                path.display()
            )
        });
        assert_eq!(
            again,
            job,
            "{}: printed form differs:\n{printed}",
            path.display()
        );
    }
    Ok(())
}

fn corpus_overrides_apply_over_their_confs() -> Result<(), Missing> {
    let dir = need_corpus()?;
    let conf = std::fs::read(dir.join("003-buildbotvm.conf")).unwrap();
    let over = std::fs::read(dir.join("004-buildbotvm-override.conf")).unwrap();
    let base = parse_job("buildbotvm", &conf).unwrap();
    let merged = upkeep::conf::parse_override(&base, &over).unwrap();
    assert_ne!(merged, base, "the override changes the job");
    Ok(())
}

tests![
    every_corpus_file_parses_as_upstart_does,
    every_corpus_job_prints_back_to_itself,
    corpus_overrides_apply_over_their_confs,
];
