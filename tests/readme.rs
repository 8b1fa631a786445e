//! The promises the README's "Developing" section makes about the test
//! suite itself: what CI may leave ignored, what CI runs, and that no test
//! passes without having run.

mod common;

use std::fs;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The test files (`tests/*.rs`), as (name, text).
fn test_files() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = fs::read_dir(root().join("tests"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn the_kernel_features_ci_may_lack_are_the_readmes_list() {
    let readme = read("README.md");
    let start = readme
        .find("<!-- ci-lacks -->")
        .expect("the list's start marker");
    let end = readme
        .find("<!-- /ci-lacks -->")
        .expect("the list's end marker");
    let listed: Vec<&str> = readme[start..end]
        .lines()
        .skip(1)
        .filter_map(|l| l.strip_prefix("* "))
        .filter(|l| *l != "none today")
        .collect();
    let code: Vec<&str> = common::runner::CI_LACKS.iter().map(|k| k.name()).collect();
    assert_eq!(
        listed, code,
        "README.md's list and CI_LACKS in tests/common/runner.rs differ"
    );
}

#[test]
fn ci_runs_exactly_the_readmes_test_command() {
    let readme = read("README.md");
    let first_screen = &readme[..readme.find("\n## ").unwrap()];
    assert!(
        first_screen.contains("\ncargo test --locked\n"),
        "the first screen's test command"
    );
    let ci = read(".ci/run");
    let last = ci.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
    assert_eq!(last, "cargo test --locked", ".ci/run must end with it");
}

#[test]
fn no_test_says_skipped_and_passes() {
    for (name, text) in test_files() {
        for (i, line) in text.lines().enumerate() {
            let l = line.trim_start();
            let prints = l.starts_with("eprintln!(") || l.starts_with("println!(");
            assert!(
                !(prints && l.to_lowercase().contains("skip")),
                "tests/{name}.rs:{}: a test that skips must end as ignored, through tests/common/runner.rs",
                i + 1
            );
        }
    }
}

#[test]
fn every_runner_file_is_a_harness_false_test() {
    let manifest = read("Cargo.toml");
    let harness_false: Vec<String> = manifest
        .split("[[test]]")
        .skip(1)
        .filter(|t| t.contains("harness = false"))
        .filter_map(|t| {
            let l = t.lines().find(|l| l.starts_with("name = "))?;
            Some(
                l.trim_start_matches("name = ")
                    .trim_matches('"')
                    .to_string(),
            )
        })
        .collect();
    for (name, text) in test_files() {
        let uses_runner = text.contains("\ntests![");
        assert_eq!(
            uses_runner,
            harness_false.contains(&name),
            "tests/{name}.rs: a file that ends with tests![…] needs `harness = false` in Cargo.toml, and only such a file"
        );
        if uses_runner {
            assert!(
                !text.contains("#[test]"),
                "tests/{name}.rs: #[test] does not run under harness = false"
            );
        }
    }
}
