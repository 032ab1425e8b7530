//! cargo fuzz target: see `poolgrad_fuzzing::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| poolgrad_fuzzing::run(data));
