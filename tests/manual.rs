//! The man pages and shell completions in `dist/` are what the command
//! and stanza tables make (`UPKEEP_BLESS=1 cargo test --test manual`
//! rewrites them), they render, and they work: the stanza table names
//! exactly the stanzas the parser takes, every example parses, and bash
//! completes commands, options and the running daemon's jobs.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::daemon::Daemon;
use common::runner::{need_program, Missing};
use common::upkeep_bin;
use upkeep::cli::COMMANDS;
use upkeep::conf::stanzas::STANZAS;

fn dist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dist")
}

fn the_files_in_dist_are_what_the_tables_make() -> Result<(), Missing> {
    let bless = std::env::var_os("UPKEEP_BLESS").is_some();
    let mut stale = Vec::new();
    for (rel, text) in upkeep::manual::files() {
        let path = dist().join(rel);
        if bless {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, &text).unwrap();
        } else if fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(rel);
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} differ from what the tables make: run UPKEEP_BLESS=1 cargo test --test manual"
    );
    Ok(())
}

fn the_stanza_table_is_the_parsers() -> Result<(), Missing> {
    // The parser's table: the arms of `stanza_body`'s match.
    let src = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/conf/parse.rs"))
        .unwrap();
    let body = src
        .split("fn stanza_body(")
        .nth(1)
        .and_then(|s| s.split("\n}\n").next())
        .expect("stanza_body in parse.rs");
    let mut parsed: Vec<String> = body
        .lines()
        .filter_map(|l| l.strip_prefix("        \""))
        .flat_map(|l| {
            let arms = l.split(" =>").next().unwrap_or("");
            format!("\"{arms}")
                .split(" | ")
                .map(|w| w.trim_matches('"').to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    parsed.sort();
    let mut documented: Vec<String> = STANZAS.iter().map(|s| s.word.to_string()).collect();
    documented.sort();
    assert_eq!(
        documented, parsed,
        "conf::stanzas::STANZAS and parse.rs's table"
    );
    for st in STANZAS {
        let text = format!("{}\n", st.example);
        let job = upkeep::conf::parse_job("t", text.as_bytes())
            .unwrap_or_else(|e| panic!("{}: its example {:?} fails: {e:?}", st.word, st.example));
        let shown = upkeep::conf::print::to_job_file(&job);
        let first = st.example.split_whitespace().next().unwrap();
        assert!(
            st.word == "manual" || shown.contains(first),
            "{}: {shown}",
            st.word
        );
    }
    Ok(())
}

fn the_man_pages_render_without_warnings() -> Result<(), Missing> {
    need_program("/usr/bin/man")?;
    need_program("/usr/bin/groff")?;
    for page in ["upkeep.8", "initctl.8", "upkeep-job.5"] {
        let path = dist().join("man").join(page);
        let o = Command::new("man")
            .args(["--warnings=all", "-l"])
            .arg(&path)
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        let warnings = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{page}: {warnings}");
        assert!(warnings.trim().is_empty(), "{page}: {warnings}");
        match page {
            "upkeep.8" => {
                for c in COMMANDS {
                    assert!(text.contains(&c.usage()), "{page} lacks {}", c.usage());
                    for o in c.options {
                        assert!(
                            text.contains(&format!("--{}", o.long)),
                            "{page}: --{}",
                            o.long
                        );
                    }
                }
                for want in ["EXIT STATUS", "UPKEEP_SOCKET", "/etc/init"] {
                    assert!(text.contains(want), "{page}: {want}");
                }
            }
            "upkeep-job.5" => {
                for st in STANZAS {
                    assert!(text.contains(st.syntax[0]), "{page}: {}", st.syntax[0]);
                }
                assert!(text.contains("ready timeout SECONDS (upkeep)"), "{text}");
            }
            _ => {}
        }
    }
    Ok(())
}

/// What bash completes for `words` (the last one being completed).
fn bash_complete(socket: &Path, words: &[&str]) -> Vec<String> {
    let bin_dir = upkeep_bin().parent().unwrap().to_path_buf();
    let script = format!(
        "source {}\nCOMP_WORDS=({})\nCOMP_CWORD={}\n_upkeep\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        dist().join("completions/upkeep.bash").display(),
        words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" "),
        words.len() - 1
    );
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = Command::new("bash")
        .args(["-c", &script])
        .env("PATH", path)
        .env("UPKEEP_SOCKET", socket)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

fn bash_completes_commands_options_and_the_daemons_jobs() -> Result<(), Missing> {
    need_program("/bin/bash")?;
    let d = Daemon::with_jobs(&[
        ("web", "exec sleep 1000\n"),
        ("worker", "exec sleep 1000\n"),
    ]);
    let s = &d.socket;
    assert_eq!(
        bash_complete(s, &["upkeep", "st"]),
        ["start", "status", "stop"]
    );
    assert_eq!(bash_complete(s, &["upkeep", "start", "--n"]), ["--no-wait"]);
    assert_eq!(
        bash_complete(s, &["upkeep", "start", "w"]),
        ["web", "worker"]
    );
    assert_eq!(bash_complete(s, &["initctl", "stop", "we"]), ["web"]);
    assert_eq!(bash_complete(s, &["status", "wo"]), ["worker"]);
    assert_eq!(bash_complete(s, &["upkeep", "logs", "--l"]), ["--lines"]);
    // Not a job: list takes no argument.
    assert!(bash_complete(s, &["upkeep", "list", "w"]).is_empty());
    Ok(())
}

/// `SHELL -n FILE`: the file parses.
fn parses(shell: &str, file: &str) -> Result<(), Missing> {
    need_program(shell)?;
    let o = Command::new(shell)
        .arg("-n")
        .arg(dist().join("completions").join(file))
        .output()
        .unwrap();
    assert!(o.status.success(), "{shell} -n {file}: {o:?}");
    Ok(())
}

fn the_bash_completion_parses() -> Result<(), Missing> {
    parses("/bin/bash", "upkeep.bash")
}

fn the_zsh_completion_parses() -> Result<(), Missing> {
    parses("/usr/bin/zsh", "_upkeep")
}

fn the_fish_completion_parses() -> Result<(), Missing> {
    parses("/usr/bin/fish", "upkeep.fish")
}

tests![
    the_files_in_dist_are_what_the_tables_make,
    the_stanza_table_is_the_parsers,
    the_man_pages_render_without_warnings,
    bash_completes_commands_options_and_the_daemons_jobs,
    the_bash_completion_parses,
    the_zsh_completion_parses,
    the_fish_completion_parses,
];
