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
