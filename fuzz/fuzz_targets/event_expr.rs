#![no_main]
// The checks live in upkeep::fuzzing, so that tests/fuzz_seeds.rs replays
// the seeds through the same code.
libfuzzer_sys::fuzz_target!(|data: &[u8]| upkeep::fuzzing::event_expr(data));
