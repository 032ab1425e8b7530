//! cargo fuzz target: see `poolgrad_fuzzing::differential`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| poolgrad_fuzzing::differential(data));
