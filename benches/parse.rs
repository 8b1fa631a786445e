//! Parse every file of the Upstart corpus 1,000 times (`cargo bench --bench
//! parse`). A plain timing loop: no benchmark framework is needed for one
//! number, and the last line printed is what `bench/run` reports.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

const ROUNDS: usize = 1000;

fn main() {
    let dir = std::env::var_os("UPKEEP_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
        .join("corpus/upstart");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "conf" || e == "override")
        })
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    let bytes: usize = files.iter().map(|(_, t)| t.len()).sum();
    // One round untimed, so that the first touch of the data is not counted.
    for (name, text) in &files {
        let _ = black_box(upkeep::conf::parse_job(name, text));
    }
    let t0 = Instant::now();
    for _ in 0..ROUNDS {
        for (name, text) in &files {
            let _ = black_box(upkeep::conf::parse_job(black_box(name), black_box(text)));
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let parses = (files.len() * ROUNDS) as f64;
    println!(
        "{} corpus files × {ROUNDS} in {secs:.2} s: {:.1} µs per file, {:.0} MiB/s",
        files.len(),
        secs * 1e6 / parses,
        (bytes * ROUNDS) as f64 / secs / (1 << 20) as f64
    );
}
