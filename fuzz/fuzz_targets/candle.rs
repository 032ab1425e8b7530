//! cargo fuzz target: see `poolgrad_fuzzing::candle`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| poolgrad_fuzzing::candle(data));
