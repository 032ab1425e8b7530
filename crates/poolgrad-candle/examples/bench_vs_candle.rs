//! Forward and backward through candle: poolgrad's ops against candle's own
//! `max_pool2d` / `avg_pool2d`, on the configurations candle supports (kernel = stride).
//!
//! `cargo run --release --example bench_vs_candle -p poolgrad-candle` prints medians and
//! ratios measured in one run (the machine is shared: compare ratios, not absolutes).
//! "backward" times `(y · g).sum().backward()` from a precomputed forward, so both sides
//! pay the same multiply and sum. A second table times poolgrad-candle's ops alone
//! against the library's own calls on the same data (`-- --op-alone`: only that one).

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

/// Medians of `a` and `b` timed in turn, so that the machine's drift meets both alike.
fn interleaved_medians(
    mut a: impl FnMut() -> Result<()>,
    mut b: impl FnMut() -> Result<()>,
    runs: usize,
) -> Result<(f64, f64)> {
    let (mut ta, mut tb) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    a()?;
    b()?;
    for _ in 0..runs {
        for (f, t) in [(&mut a as &mut dyn FnMut() -> Result<()>, &mut ta), (&mut b, &mut tb)] {
            let s = Instant::now();
            f()?;
            t.push(s.elapsed().as_secs_f64());
        }
    }
    ta.sort_by(f64::total_cmp);
    tb.sort_by(f64::total_cmp);
    Ok((ta[runs / 2], tb[runs / 2]))
}

fn main() -> Result<()> {
    let dev = Device::Cpu;
    let runs = 15;
    if std::env::args().any(|a| a == "--op-alone") {
        return op_alone(&dev, runs);
    }
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
    op_alone(&dev, runs)
}

/// poolgrad-candle's ops alone against the library's own calls on the same data: the
/// forward, and the backward op (`Pool::backward` with a grad-output of ones; it
/// recomputes max pooling's argmax, as the library's `Pooling::backward` does). Then the
/// whole backward step `y.backward()`, which adds candle's own seed and accumulation.
fn op_alone(dev: &Device, runs: usize) -> Result<()> {
    use poolgrad::Pooling;
    println!();
    println!("{:<34} {:>9} {:>12} {:>12} {:>8}", "op alone", "pass", "library", "via candle", "ratio");
    let cases =
        [(32usize, 64usize, 56usize, 56usize), (8, 256, 28, 28)].into_iter().flat_map(|d| [(d, true), (d, false)]);
    for (dims, max) in cases {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., dims, dev)?)?;
        let pool = if max { Pool::max(&[2]) } else { Pool::avg(&[2]) };
        let geometry = poolgrad::PoolGeometry::new(&[2, 2]);
        let op: poolgrad::Operator =
            if max { poolgrad::MaxPool::new(geometry).into() } else { poolgrad::AvgPool::new(geometry).into() };
        let data = x.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        let shape = poolgrad::Shape::new(dims.0, dims.1, &[dims.2, dims.3]);
        let view = poolgrad::TensorView::new(&data, shape, poolgrad::Layout::ChannelsFirst)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let lib = |e: poolgrad::PoolError| candle_core::Error::Msg(e.to_string());
        let y_lib = op.forward(&view).map_err(lib)?;
        let ones = vec![1f32; y_lib.data().len()];
        let g =
            poolgrad::TensorView::new(&ones, y_lib.shape().clone(), poolgrad::Layout::ChannelsFirst).map_err(lib)?;
        let (fwd_lib, fwd_candle) = interleaved_medians(
            || op.forward(&view).map(drop).map_err(lib),
            || pool.forward(x.as_tensor()).map(drop),
            runs,
        )?;
        let y = pool.forward(x.as_tensor())?;
        let ones_y = y.ones_like()?;
        let (bwd_lib, bwd_op) = interleaved_medians(
            || op.backward(&view, &g).map(drop).map_err(lib),
            || pool.backward(x.as_tensor(), &ones_y).map(drop),
            runs,
        )?;
        let step = median(|| y.backward().map(drop), runs)?;
        // What candle's backprop itself adds around the op: the root's ones, and the
        // gradient accumulated into a fresh zero tensor (`or_insert` + `add`).
        let gx = x.as_tensor().ones_like()?;
        let seed = median(|| y.ones_like().map(drop), runs)?;
        let accumulate = median(|| x.as_tensor().zeros_like()?.add(&gx).map(drop), runs)?;
        let name = format!("{} 2x2 s2, {}x{}x{}x{}", if max { "max" } else { "avg" }, dims.0, dims.1, dims.2, dims.3);
        for (pass, l, c) in [("forward", fwd_lib, fwd_candle), ("backward", bwd_lib, bwd_op)] {
            println!("{name:<34} {pass:>9} {:>10.2}ms {:>10.2}ms {:>7.2}x", l * 1e3, c * 1e3, c / l);
        }
        println!(
            "{:<34} {:>9} {:>10}   {:>8.2}ms   (candle's seed {:.2}ms + accumulation {:.2}ms)",
            "",
            "step",
            "",
            step * 1e3,
            seed * 1e3,
            accumulate * 1e3,
        );
    }
    Ok(())
}
