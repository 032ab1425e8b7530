//! Helpers shared by the integration tests.

/// Deterministic values in [-5, 5), two decimals.
pub fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) % 1000) as f64 / 100.0 - 5.0
        })
        .collect()
}
