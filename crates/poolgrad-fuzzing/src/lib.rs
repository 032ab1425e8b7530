//! The fuzz targets' bodies, as ordinary functions: `fuzz/` (cargo fuzz, nightly) calls
//! them with libFuzzer's inputs, and this crate's `tests/replay.rs` (stable, in
//! `cargo test`) replays every committed corpus file through them.
//!
//! Each function takes arbitrary bytes and panics only when poolgrad breaks a promise:
//! a panic inside poolgrad, a wrong answer, an output file left after a failure.
//!
//! ```
//! poolgrad_fuzzing::npy(b"\x93NUMPY\x01\x00garbage");
//! poolgrad_fuzzing::differential(&[3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]);
//! poolgrad_fuzzing::candle(&[2, 7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5, 9]);
//! ```

use poolgrad::simd::{available, with_isa};
use poolgrad::{reference, AvgPool, Layout, LpFormula, LpPool, MaxPool, Padding, PoolGeometry, Pooling, Shape, Tensor};

/// Reads the bytes as a `.npy` file: an array or an error, never a panic; an array holds
/// exactly the elements its shape says.
pub fn npy(data: &[u8]) {
    if let Ok(array) = poolgrad_cli::npy::parse(data, "fuzz input") {
        let numel: usize = array.dims.iter().product();
        assert_eq!(array.data.element_count(), numel, "shape {:?}", array.dims);
        assert!(numel.saturating_mul(array.data.item_size()) <= data.len(), "more data than bytes");
    }
}

/// A byte reader that yields defaults once the input runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    /// A value in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.byte() as usize % (hi - lo + 1)
    }

    /// A list of one value or one per dim.
    fn list(&mut self, rank: usize, lo: usize, hi: usize) -> Vec<usize> {
        let n = if self.byte().is_multiple_of(2) { 1 } else { rank };
        (0..n).map(|_| self.range(lo, hi)).collect()
    }
}

/// The values the differential target draws from: ties, signs, zeros of both signs,
/// infinities and NaN.
const PALETTE: [f64; 12] =
    [0.0, -0.0, 1.0, -1.0, 2.0, 2.0, -3.5, 0.25, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 7.0];

/// The run request: a command line and a small input, through the same code path as
/// `poolgrad run` (parse, validate, compute, write into a temporary folder). It must end
/// in correct outputs or one clear error with no output file left.
pub fn run(data: &[u8]) {
    let mut b = Bytes(data);
    let rank = b.range(1, 3);
    let mut dims = vec![b.range(1, 2), b.range(1, 3)];
    dims.extend((0..rank).map(|_| b.range(1, 6)));
    let numel: usize = dims.iter().product();
    let values: Vec<f32> = (0..numel).map(|_| PALETTE[b.byte() as usize % PALETTE.len()] as f32).collect();
    // The rest of the bytes are the flags, split at NUL bytes.
    let text = String::from_utf8_lossy(b.0);
    let flags: Vec<&str> = text.split('\0').filter(|s| !s.is_empty()).take(24).collect();
    // Files are this target's to name: a fuzzed path could point anywhere.
    const FILE_FLAGS: [&str; 5] = ["--input", "--output", "--indices", "--grad-output", "--grad-input"];
    if flags.iter().any(|f| f.contains(['/', '\\']) || FILE_FLAGS.iter().any(|p| f.starts_with(p))) {
        return;
    }
    let with_indices = flags.first().is_some_and(|f| f.len() % 2 == 0);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let input = dir.path().join("x.npy");
    let mut bytes = Vec::new();
    {
        use npyz::WriterBuilder;
        let shape: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
        let mut w =
            npyz::WriteOptions::<f32>::new().default_dtype().shape(&shape).writer(&mut bytes).begin_nd().unwrap();
        w.extend(values.iter().copied()).unwrap();
        w.finish().unwrap();
    }
    std::fs::write(&input, &bytes).unwrap();
    let output = dir.path().join("y.npy");
    let mut args: Vec<String> = vec!["poolgrad".into(), "run".into(), "--input".into(), input.display().to_string()];
    args.extend(["--output".into(), output.display().to_string()]);
    args.extend(flags.iter().map(|s| s.to_string()));
    if with_indices {
        args.extend(["--indices".into(), dir.path().join("i.npy").display().to_string()]);
    }
    // A grad-output shaped like the input: right for shape-keeping requests, else the
    // error path (which must leave no file).
    let grad_output = dir.path().join("gy.npy");
    std::fs::write(&grad_output, &bytes).unwrap();
    args.extend(["--grad-output".into(), grad_output.display().to_string()]);
    args.extend(["--grad-input".into(), dir.path().join("gx.npy").display().to_string()]);
    let Ok(cli) = <poolgrad_cli::Cli as clap::Parser>::try_parse_from(&args) else { return };
    let before: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    match poolgrad_cli::execute(&cli) {
        Ok(()) => {
            assert!(output.exists(), "no output written: {args:?}");
            assert!(dir.path().join("gx.npy").exists(), "no gradient written: {args:?}");
        }
        Err(e) => {
            let line = poolgrad_cli::error_line(&e);
            assert_eq!(line.lines().count(), 1, "{line}");
            let after: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(before.len(), after.len(), "{args:?}: a failure left files: {after:?}");
        }
    }
}

/// Differential: a small random request through the library's fast paths under every
/// instruction set this CPU runs, and through `poolgrad::reference`. Max pooling agrees
/// bitwise (values, indices, gradient), average pooling bitwise, ONNX LP within rounding;
/// an invalid request is an error on both sides.
pub fn differential(data: &[u8]) {
    let mut b = Bytes(data);
    let rank = b.range(1, 4);
    let spatial: Vec<usize> = (0..rank).map(|_| b.range(1, if rank == 4 { 4 } else { 7 })).collect();
    let shape = Shape::new(b.range(1, 2), b.range(1, 17), &spatial);
    let layout = if b.byte() % 2 == 0 { Layout::ChannelsFirst } else { Layout::ChannelsLast };
    let kernel = b.list(rank, 1, 5);
    let stride = b.list(rank, 1, 3);
    let dilation = b.list(rank, 1, 2);
    let padding = match b.byte() % 5 {
        0 => Padding::None,
        1 => Padding::Symmetric(b.list(rank, 0, 2)),
        2 => Padding::Explicit { begin: b.list(rank, 0, 3), end: b.list(rank, 0, 3) },
        3 => Padding::SameUpper,
        _ => Padding::SameLower,
    };
    let same = matches!(padding, Padding::SameUpper | Padding::SameLower);
    let ceil = !same && b.byte() % 2 == 0;
    let geometry = PoolGeometry::new(&kernel).stride(&stride).dilation(&dilation).padding(padding).ceil_mode(ceil);
    let op = b.byte() % 4;
    let include_pad = b.byte() % 2 == 0;
    let divisor = if b.byte() % 4 == 0 { Some(b.range(1, 9)) } else { None };
    let n = match shape.numel() {
        Ok(n) => n,
        Err(_) => return,
    };
    let output = b.list(rank, 1, 9);
    let values: Vec<f64> = (0..n).map(|_| PALETTE[b.byte() as usize % PALETTE.len()]).collect();
    let x = Tensor::new(values, shape.clone(), layout).unwrap();
    for isa in available() {
        with_isa(isa, || match op {
            0 => {
                let pool = MaxPool::new(geometry.clone());
                match (pool.forward_with_indices(&x.view()), reference::max_pool(&x.view(), &geometry)) {
                    (Ok(got), Ok((y, idx))) => {
                        assert!(same_bits(got.output.data(), y.data()), "{isa:?} max values");
                        assert_eq!(got.indices.data(), idx.data(), "{isa:?} max indices");
                        let g = Tensor::new(
                            (0..y.data().len()).map(|i| (i % 7) as f64 - 3.0).collect(),
                            y.shape().clone(),
                            layout,
                        )
                        .unwrap();
                        let gx = pool.backward_with_indices(x.shape(), &g.view(), &got.indices.view()).unwrap();
                        let want = reference::max_pool_backward(&x.view(), &g.view(), &geometry).unwrap();
                        assert!(same_bits(gx.data(), want.data()), "{isa:?} max gradient");
                        if let Ok(compact) = pool.forward_compact(&x.view()) {
                            let idx = pool.compact_to_indices(x.shape(), &compact.taps.view()).unwrap();
                            assert_eq!(idx.data(), got.indices.data(), "{isa:?} compact state");
                            let gx = pool.backward_compact(x.shape(), &g.view(), &compact.taps.view()).unwrap();
                            assert!(same_bits(gx.data(), want.data()), "{isa:?} max gradient from compact taps");
                        }
                    }
                    (Err(a), Err(b)) => assert_eq!(a, b),
                    (a, b) => panic!("{isa:?}: kernel {:?} vs reference {:?}", a.err(), b.err()),
                }
            }
            1 => {
                let pool = AvgPool::new(geometry.clone()).count_include_pad(include_pad).divisor_override(divisor);
                let want = reference::avg_pool(&x.view(), &geometry, include_pad, divisor);
                match (pool.forward(&x.view()), want) {
                    (Ok(y), Ok(want)) => {
                        // The palette's sums are exact in f64 in any order, so even windows
                        // summed one dim at a time (`sums_in_window_order` false) give these bits.
                        assert!(same_bits(y.data(), want.data()), "{isa:?} avg values");
                        let g = Tensor::new(
                            (0..y.data().len()).map(|i| (i % 5) as f64 * 0.5).collect(),
                            y.shape().clone(),
                            layout,
                        )
                        .unwrap();
                        let gx = pool.backward(&x.view(), &g.view()).unwrap();
                        let want = reference::avg_pool_backward(&x.view(), &g.view(), &geometry, include_pad, divisor)
                            .unwrap();
                        if pool.sums_in_window_order(x.shape(), layout).unwrap() {
                            assert!(same_bits(gx.data(), want.data()), "{isa:?} avg gradient");
                        } else {
                            // Shares (g / divisor) are inexact, and added one dim at a time:
                            // within (n + rank + 1)·ε·Σ|shares| for n <= 5^4 covering windows;
                            // g >= 0 here, so Σ|shares| is the gradient itself.
                            let bound = 700.0 * f64::EPSILON;
                            for (a, w) in gx.data().iter().zip(want.data()) {
                                assert!((a - w).abs() <= bound * w.abs(), "{isa:?} avg gradient {a} vs {w}");
                            }
                        }
                    }
                    (Err(a), Err(b)) => assert_eq!(a, b),
                    (a, b) => panic!("{isa:?}: kernel {:?} vs reference {:?}", a.err(), b.err()),
                }
            }
            2 => {
                let pool = LpPool::new(geometry.clone(), 2.0).formula(LpFormula::Onnx);
                match (pool.forward(&x.view()), reference::lp_pool_onnx(&x.view(), &geometry, 2.0)) {
                    (Ok(y), Ok(want)) => {
                        for (a, w) in y.data().iter().zip(want.data()) {
                            let ok = a == w || (a.is_nan() && w.is_nan()) || (a - w).abs() <= 1e-12 * w.abs();
                            assert!(ok, "{isa:?} lp: {a} vs {w}");
                        }
                        // The backward runs and keeps the input's shape.
                        let g = Tensor::new(vec![1.0; y.data().len()], y.shape().clone(), layout).unwrap();
                        assert_eq!(pool.backward(&x.view(), &g.view()).unwrap().shape(), x.shape());
                    }
                    (Err(_), Err(_)) => {}
                    (a, b) => panic!("{isa:?}: kernel {:?} vs reference {:?}", a.err(), b.err()),
                }
            }
            _ => {
                for max in [true, false] {
                    let got = if max {
                        MaxPool::adaptive(&output).forward_with_indices(&x.view()).map(|o| (o.output, Some(o.indices)))
                    } else {
                        AvgPool::adaptive(&output).forward(&x.view()).map(|y| (y, None))
                    };
                    let want = reference::adaptive_pool(&x.view(), &output, max);
                    match (got, want) {
                        (Ok((y, idx)), Ok((want_y, want_idx))) => {
                            // Max selects (bitwise); the average divides per dim as PyTorch
                            // does, the reference once: equal within rounding.
                            let close = y.data().iter().zip(want_y.data()).all(|(a, w)| {
                                a.to_bits() == w.to_bits()
                                    || (a.is_nan() && w.is_nan())
                                    || (!max && (a - w).abs() <= 1e-14 * w.abs())
                            });
                            assert!(close && y.data().len() == want_y.data().len(), "{isa:?} adaptive (max {max})");
                            if let Some(idx) = idx {
                                assert_eq!(idx.data(), want_idx.data(), "{isa:?} adaptive indices");
                            }
                        }
                        (Err(_), Err(_)) => {}
                        (a, b) => panic!("{isa:?}: adaptive kernel {:?} vs reference {:?}", a.err(), b.err()),
                    }
                }
            }
        });
    }
    // Fractional max pooling and max unpooling, chosen by a byte after the values (older
    // corpus files end before it and keep their meaning).
    match b.byte() % 3 {
        1 if (2..=3).contains(&rank) => {
            let samples: Vec<f64> =
                (0..shape.batch * shape.channels * rank).map(|_| f64::from(b.byte()) / 256.0).collect();
            fractional_differential(&x, &kernel, &output, &samples);
        }
        2 => unpool_differential(&x, &geometry, &kernel, &stride),
        _ => {}
    }
}

/// Where cell `s` of plane `(n, c)` sits in a tensor's data.
fn position(shape: &Shape, layout: Layout, n: usize, c: usize, s: usize) -> usize {
    let volume: usize = shape.spatial.iter().product();
    match layout {
        Layout::ChannelsFirst => (n * shape.channels + c) * volume + s,
        Layout::ChannelsLast => (n * volume + s) * shape.channels + c,
    }
}

/// Every (n, c, s) of a shape's planes, in plane order.
fn cells(shape: &Shape) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    let volume: usize = shape.spatial.iter().product();
    (0..shape.batch).flat_map(move |n| (0..shape.channels).flat_map(move |c| (0..volume).map(move |s| (n, c, s))))
}

fn same_bits(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

/// Fractional max pooling under every instruction set: the same bits everywhere, every
/// output the input cell its index names, and the backward of ones a count per cell.
fn fractional_differential(x: &Tensor<f64>, kernel: &[usize], output: &[usize], samples: &[f64]) {
    let pool = poolgrad::FractionalMaxPool::new(kernel, output);
    let runs: Vec<_> =
        available().into_iter().map(|isa| with_isa(isa, || pool.forward_with_indices(&x.view(), samples))).collect();
    let Ok(first) = &runs[0] else {
        assert!(runs.iter().all(|r| r.as_ref().err() == runs[0].as_ref().err()), "fractional errors differ");
        return;
    };
    for run in &runs[1..] {
        let run = run.as_ref().expect("fractional: an error under one instruction set only");
        assert!(same_bits(run.output.data(), first.output.data()), "fractional values differ between ISAs");
        assert_eq!(run.indices.data(), first.indices.data(), "fractional indices differ between ISAs");
    }
    let (layout, y_shape) = (x.layout(), first.output.shape());
    let mut counts = vec![0.0; x.data().len()];
    for (n, c, s) in cells(y_shape) {
        let o = position(y_shape, layout, n, c, s);
        let i = first.indices.data()[o];
        let at = position(x.shape(), layout, n, c, usize::try_from(i).expect("a fractional window is never empty"));
        assert!(same_bits(&[first.output.data()[o]], &[x.data()[at]]), "fractional output {o} is not x at its index");
        counts[at] += 1.0;
    }
    let ones = Tensor::new(vec![1.0; first.output.data().len()], y_shape.clone(), layout).unwrap();
    let gx = pool.backward_with_indices(x.shape(), &ones.view(), &first.indices.view()).unwrap();
    assert_eq!(gx.data(), &counts[..], "fractional backward of ones");
}

/// Max unpooling of a max pooling's output to the input's size, against a plain loop
/// (the last value in output order wins a repeated index; index -1 writes nothing), and
/// its backward against a plain gather, under every instruction set.
fn unpool_differential(x: &Tensor<f64>, geometry: &PoolGeometry, kernel: &[usize], stride: &[usize]) {
    let Ok(pooled) = MaxPool::new(geometry.clone()).forward_with_indices(&x.view()) else { return };
    let (layout, y, idx) = (x.layout(), &pooled.output, &pooled.indices);
    let unpool = poolgrad::MaxUnpool::new(kernel).stride(stride);
    let spatial = x.shape().spatial.clone();
    let mut want = vec![0.0; x.data().len()];
    let mut gathered = vec![0.0; y.data().len()];
    let g: Vec<f64> = (0..x.data().len()).map(|i| (i % 5) as f64 - 2.0).collect();
    for (n, c, s) in cells(y.shape()) {
        let o = position(y.shape(), layout, n, c, s);
        if let Ok(i) = usize::try_from(idx.data()[o]) {
            let at = position(x.shape(), layout, n, c, i);
            want[at] = y.data()[o];
            gathered[o] = g[at];
        }
    }
    let g = Tensor::new(g, x.shape().clone(), layout).unwrap();
    for isa in available() {
        with_isa(isa, || {
            let z = unpool.forward(&y.view(), &idx.view(), Some(&spatial)).unwrap();
            assert!(same_bits(z.data(), &want), "{isa:?} unpool");
            let back = unpool.backward(&g.view(), &idx.view()).unwrap();
            assert!(same_bits(back.data(), &gathered), "{isa:?} unpool backward");
        });
    }
}

/// Differential through candle: a small random request through poolgrad-candle's ops
/// (forward, and the gradient of `sum(y · g)` through candle's autograd), on a
/// contiguous tensor or on a strided view (narrowed, transposed), against
/// `poolgrad::reference`. Max and average pooling agree bitwise (values and gradient),
/// adaptive average and LP within rounding of the library; an invalid request is an
/// error on both sides.
pub fn candle(data: &[u8]) {
    use candle_core::{Device, Module, Tensor as CandleTensor, Var};
    use poolgrad_candle::Pool;

    let mut b = Bytes(data);
    let rank = b.range(1, 3);
    let spatial: Vec<usize> = (0..rank).map(|_| b.range(1, 6)).collect();
    let shape = Shape::new(b.range(1, 2), b.range(1, 5), &spatial);
    let layout = if b.byte() % 2 == 0 { Layout::ChannelsFirst } else { Layout::ChannelsLast };
    let kernel = b.list(rank, 1, 4);
    let stride = b.list(rank, 1, 3);
    let dilation = b.list(rank, 1, 2);
    let padding = b.list(rank, 0, 2);
    let explicit = b.byte() % 3 == 0;
    let (begin, end) = (b.list(rank, 0, 2), b.list(rank, 0, 2));
    let ceil = b.byte() % 2 == 0;
    let include_pad = b.byte() % 2 == 0;
    let divisor = if b.byte() % 4 == 0 { Some(b.range(1, 9)) } else { None };
    let op = b.byte() % 5;
    let view = b.byte() % 3;
    let output = b.list(rank, 1, 5);
    let Ok(n) = shape.numel() else { return };
    let values: Vec<f64> = (0..n).map(|_| PALETTE[b.byte() as usize % PALETTE.len()]).collect();

    // The same request, as the library's geometry and as candle's builder.
    let padding_mode = if explicit {
        Padding::Explicit { begin: begin.clone(), end: end.clone() }
    } else {
        Padding::Symmetric(padding.clone())
    };
    let geometry = PoolGeometry::new(&kernel).stride(&stride).dilation(&dilation).padding(padding_mode).ceil_mode(ceil);
    let regular = |pool: Pool| {
        let pool = pool.stride(&stride).dilation(&dilation).ceil_mode(ceil);
        if explicit {
            pool.pads(&begin, &end)
        } else {
            pool.padding(&padding)
        }
    };
    let mut pool = match op {
        0 => regular(Pool::max(&kernel)),
        1 => {
            let pool = regular(Pool::avg(&kernel)).count_include_pad(include_pad);
            match divisor {
                Some(d) => pool.divisor_override(d),
                None => pool,
            }
        }
        2 => regular(Pool::lp(2.0, &kernel)),
        3 => Pool::adaptive_max(&output),
        _ => Pool::adaptive_avg(&output),
    };
    if layout == Layout::ChannelsLast {
        pool = pool.channels_last();
    }

    // The input as candle holds it: contiguous, a narrowed slice of a wider tensor, or
    // the transpose of a tensor stored with its first two dims swapped.
    let dims = shape.dims(layout);
    let device = Device::Cpu;
    let x = Tensor::new(values.clone(), shape.clone(), layout).unwrap();
    let var = match view {
        0 => Var::from_vec(values, dims.as_slice(), &device).unwrap(),
        1 => {
            let last = dims.len() - 1;
            let mut wide_dims = dims.clone();
            wide_dims[last] += 2;
            let wide = CandleTensor::full(f64::NAN, wide_dims.as_slice(), &device).unwrap();
            let inner = CandleTensor::from_vec(values, dims.as_slice(), &device).unwrap();
            let wide = wide.slice_assign(&ranges(&dims, 1), &inner).unwrap();
            Var::from_tensor(&wide).unwrap()
        }
        _ => {
            let inner = CandleTensor::from_vec(values, dims.as_slice(), &device).unwrap();
            Var::from_tensor(&inner.transpose(0, 1).unwrap().contiguous().unwrap()).unwrap()
        }
    };
    let input = match view {
        0 => var.as_tensor().clone(),
        1 => var.as_tensor().narrow(dims.len() - 1, 1, dims[dims.len() - 1]).unwrap(),
        _ => var.as_tensor().transpose(0, 1).unwrap(),
    };
    assert_eq!(input.dims(), dims.as_slice());

    // The reference's forward, and its gradient for a grad-output made from the output's shape.
    let gy_for = |y: &Tensor<f64>| {
        let values = (0..y.data().len()).map(|i| (i % 7) as f64 * 0.5 - 1.5).collect();
        Tensor::new(values, y.shape().clone(), layout).unwrap()
    };
    let xv = x.view();
    let want: poolgrad::Result<(Tensor<f64>, Tensor<f64>)> = match op {
        0 => reference::max_pool(&xv, &geometry).and_then(|(y, _)| {
            let gx = reference::max_pool_backward(&xv, &gy_for(&y).view(), &geometry)?;
            Ok((y, gx))
        }),
        1 => reference::avg_pool(&xv, &geometry, include_pad, divisor).and_then(|y| {
            let gx = reference::avg_pool_backward(&xv, &gy_for(&y).view(), &geometry, include_pad, divisor)?;
            Ok((y, gx))
        }),
        // LP and adaptive pooling's gradients: the library's own (the reference has none).
        2 => {
            let lp = LpPool::new(geometry.clone(), 2.0);
            lp.forward(&xv).and_then(|y| {
                let gx = lp.backward(&xv, &gy_for(&y).view())?;
                Ok((y, gx))
            })
        }
        _ => {
            let max = op == 3;
            let pool = if max {
                poolgrad::Operator::Max(MaxPool::adaptive(&output))
            } else {
                poolgrad::Operator::Avg(AvgPool::adaptive(&output))
            };
            reference::adaptive_pool(&xv, &output, max).and_then(|(y, _)| {
                let gx = pool.backward(&xv, &gy_for(&y).view())?;
                Ok((y, gx))
            })
        }
    };
    let got = pool.forward(&input);
    let (want_y, want_gx) = match (got.as_ref(), want) {
        (Ok(_), Ok(want)) => want,
        (Err(_), Err(_)) => return,
        (a, b) => panic!("candle {:?} vs reference {:?}", a.as_ref().err(), b.err()),
    };
    let y = got.unwrap();
    assert_eq!(y.dims(), want_y.dims().as_slice(), "output shape");
    let exact = op <= 1 || op == 3;
    let close = |a: &[f64], w: &[f64], what: &str| {
        assert_eq!(a.len(), w.len(), "{what} length");
        for (a, w) in a.iter().zip(w) {
            let ok = a.to_bits() == w.to_bits()
                || (a.is_nan() && w.is_nan())
                || (!exact && (a - w).abs() <= 1e-12 * w.abs().max(1e-300));
            assert!(ok, "{what}: {a} vs {w} (op {op}, view {view})");
        }
    };
    // The palette's sums are exact in any order, so the forward is bitwise even where the
    // library sums large windows one dim at a time; their gradients (inexact shares) are
    // within the summation bound, here against the gradient of |g|.
    let avg_in_order = op != 1
        || AvgPool::new(geometry.clone())
            .count_include_pad(include_pad)
            .divisor_override(divisor)
            .sums_in_window_order(&shape, layout)
            .unwrap();
    close(&y.flatten_all().unwrap().to_vec1::<f64>().unwrap(), want_y.data(), "forward");

    // The gradient of sum(y · g) through candle's autograd.
    let gy = gy_for(&want_y);
    let g = CandleTensor::from_vec(gy.data().to_vec(), y.dims(), &device).unwrap();
    let grads = (y * g).unwrap().sum_all().unwrap().backward().unwrap();
    let gx = grads.get(var.as_tensor()).expect("a gradient for the input");
    let gx = match view {
        0 => gx.clone(),
        1 => gx.narrow(dims.len() - 1, 1, dims[dims.len() - 1]).unwrap(),
        _ => gx.transpose(0, 1).unwrap(),
    };
    let gx = gx.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    if avg_in_order {
        close(&gx, want_gx.data(), "gradient");
    } else {
        let abs = Tensor::new(gy.data().iter().map(|v| v.abs()).collect(), gy.shape().clone(), layout).unwrap();
        let magnitude = reference::avg_pool_backward(&xv, &abs.view(), &geometry, include_pad, divisor).unwrap();
        for ((a, w), m) in gx.iter().zip(want_gx.data()).zip(magnitude.data()) {
            // (n + rank + 1)·ε·Σ|shares| for n <= 4^3 covering windows.
            assert!((a - w).abs() <= 100.0 * f64::EPSILON * m, "gradient: {a} vs {w} (view {view})");
        }
    }
}

/// `offset..offset + d` for every dim: where a narrowed last dim sits in a wider tensor.
fn ranges(dims: &[usize], offset: usize) -> Vec<std::ops::Range<usize>> {
    let last = dims.len() - 1;
    dims.iter().enumerate().map(|(i, &d)| if i == last { offset..offset + d } else { 0..d }).collect()
}
