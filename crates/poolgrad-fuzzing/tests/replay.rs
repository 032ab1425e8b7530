//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/`) and every crash
//! regression (`fuzz/regressions/<target>/`) through the target functions, so CI keeps
//! checking what the fuzzer found, on stable Rust.

use std::path::PathBuf;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut count = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else { continue };
        let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{target}: {} fails", file.display());
            count += 1;
        }
    }
    println!("{target}: replayed {count} inputs");
    count
}

#[test]
fn npy_corpus() {
    assert!(replay("npy", poolgrad_fuzzing::npy) > 0, "the npy corpus is committed");
}

#[test]
fn run_corpus() {
    assert!(replay("run", poolgrad_fuzzing::run) > 0, "the run corpus is committed");
}

#[test]
fn differential_corpus() {
    assert!(replay("differential", poolgrad_fuzzing::differential) > 0, "the differential corpus is committed");
}

#[test]
fn candle_corpus() {
    assert!(replay("candle", poolgrad_fuzzing::candle) > 0, "the candle corpus is committed");
}

/// Seeded pseudo-random inputs long enough to reach every branch of the differential
/// target (fractional and unpooling checks come after the values), so CI runs them even
/// where the committed corpus predates them.
#[test]
fn differential_on_generated_inputs() {
    let mut state = 0x2026_1202_u64;
    for len in (0..240).map(|i| 40 + i * 3) {
        let data: Vec<u8> = (0..len)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (state >> 56) as u8
            })
            .collect();
        let outcome = std::panic::catch_unwind(|| poolgrad_fuzzing::differential(&data));
        assert!(outcome.is_ok(), "generated input of {len} bytes fails: {data:?}");
    }
}
