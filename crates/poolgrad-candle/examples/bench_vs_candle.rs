//! Forward and backward through candle: poolgrad's ops against candle's own
//! `max_pool2d` / `avg_pool2d`, on the configurations candle supports (kernel = stride).
//!
//! `cargo run --release --example bench_vs_candle -p poolgrad-candle` prints medians and
//! ratios measured in one run (the machine is shared: compare ratios, not absolutes).
//! "backward" times `(y · g).sum().backward()` from a precomputed forward, so both sides
//! pay the same multiply and sum.

use candle_core::{Device, Module, Result, Tensor, Var};
use poolgrad_candle::Pool;
use std::time::Instant;

fn median(mut f: impl FnMut() -> Result<()>, runs: usize) -> Result<f64> {
    f()?;
    let mut t = Vec::with_capacity(runs);
    for _ in 0..runs {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed().as_secs_f64());
    }
    t.sort_by(f64::total_cmp);
    Ok(t[runs / 2])
}

fn main() -> Result<()> {
    let dev = Device::Cpu;
    let runs = 15;
    println!("{:<34} {:>9} {:>12} {:>12} {:>8}", "workload", "pass", "candle", "poolgrad", "speedup");
    for (name, dims, max) in [
        ("max 2x2 s2, 32x64x56x56", (32usize, 64usize, 56usize, 56usize), true),
        ("avg 2x2 s2, 32x64x56x56", (32, 64, 56, 56), false),
        ("max 2x2 s2, 8x256x28x28", (8, 256, 28, 28), true),
        ("avg 2x2 s2, 8x256x28x28", (8, 256, 28, 28), false),
    ] {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., dims, &dev)?)?;
        let pool = if max { Pool::max(&[2]) } else { Pool::avg(&[2]) };
        let theirs = |t: &Tensor| if max { t.max_pool2d(2) } else { t.avg_pool2d(2) };
        let fwd_candle = median(|| theirs(x.as_tensor()).map(drop), runs)?;
        let fwd_ours = median(|| pool.forward(x.as_tensor()).map(drop), runs)?;
        let (y_c, y_o) = (theirs(x.as_tensor())?, pool.forward(x.as_tensor())?);
        let g = Tensor::randn(0f32, 1., y_o.dims(), &dev)?;
        let bwd_candle = median(|| (&y_c * &g)?.sum_all()?.backward().map(drop), runs)?;
        let bwd_ours = median(|| (&y_o * &g)?.sum_all()?.backward().map(drop), runs)?;
        for (pass, c, o) in [("forward", fwd_candle, fwd_ours), ("backward", bwd_candle, bwd_ours)] {
            println!("{name:<34} {pass:>9} {:>10.2}ms {:>10.2}ms {:>7.2}x", c * 1e3, o * 1e3, c / o);
        }
    }
    Ok(())
}
