//! poolgrad against an oracle that shares no code with it: max, average and LP pooling
//! (both formulas) and adaptive average pooling written here from their definitions —
//! PyTorch's output-size formula and ceil rule, the divisor rules, `(K · avg(x^p))^(1/p)`
//! and `(Σ |x|^p)^(1/p)` — with the parameters taken as the caller writes them (one
//! number or one per dim, expanded here) and its own index arithmetic for both layouts.
//! Nothing from `poolgrad::geometry` or `poolgrad::reference` is used, so a misreading in
//! those (a kernel volume from the list as written, a divisor off by the padding) cannot
//! be shared by the check.
//!
//! Max pooling is compared bitwise (values, indices, gradients); sums within
//! `4 · n · ε · Σ|terms|` of the oracle's (the order of additions is not the promise).

use poolgrad::{AvgPool, Layout, LpFormula, LpPool, MaxPool, Padding, PoolGeometry, Pooling, Shape, Tensor};
use proptest::prelude::*;

/// A request as a user writes it: lists of one or `rank` values.
#[derive(Debug, Clone)]
struct Raw {
    batch: usize,
    channels: usize,
    spatial: Vec<usize>,
    kernel: Vec<usize>,
    stride: Vec<usize>,
    dilation: Vec<usize>,
    /// `None`: no padding; `Some((begin, end, symmetric))`.
    pads: Option<(Vec<usize>, Vec<usize>, bool)>,
    ceil: bool,
    channels_last: bool,
}

/// One number for every dim, or one per dim: the oracle's own expansion.
fn at(list: &[usize], d: usize) -> usize {
    if list.len() == 1 {
        list[0]
    } else {
        list[d]
    }
}

/// The oracle's geometry of one dim: input, kernel, stride, dilation, pads, output.
#[derive(Debug, Clone, Copy)]
struct Dim {
    input: i64,
    kernel: i64,
    stride: i64,
    dilation: i64,
    begin: i64,
    end: i64,
    output: i64,
}

impl Raw {
    fn rank(&self) -> usize {
        self.spatial.len()
    }

    /// PyTorch's (and ONNX's) output size: `⌊(I + pb + pe − d·(k − 1) − 1 [+ s − 1]) / s⌋ + 1`,
    /// minus one in ceil mode when the last window would start past the input and the begin
    /// padding. `None` when some dim has no output.
    fn dims(&self) -> Option<Vec<Dim>> {
        (0..self.rank())
            .map(|d| {
                let (begin, end) = match &self.pads {
                    None => (0, 0),
                    Some((b, e, _)) => (at(b, d) as i64, at(e, d) as i64),
                };
                let (input, kernel, stride, dilation) = (
                    self.spatial[d] as i64,
                    at(&self.kernel, d) as i64,
                    at(&self.stride, d) as i64,
                    at(&self.dilation, d) as i64,
                );
                let span = input + begin + end - dilation * (kernel - 1) - 1 + if self.ceil { stride - 1 } else { 0 };
                let mut output = span.div_euclid(stride) + 1;
                if self.ceil && output >= 1 && (output - 1) * stride >= input + begin {
                    output -= 1;
                }
                (output >= 1).then_some(Dim { input, kernel, stride, dilation, begin, end, output })
            })
            .collect()
    }

    fn geometry(&self) -> PoolGeometry {
        let g = PoolGeometry::new(&self.kernel).stride(&self.stride).dilation(&self.dilation).ceil_mode(self.ceil);
        match &self.pads {
            None => g,
            Some((b, _, true)) => g.padding(Padding::Symmetric(b.clone())),
            Some((b, e, false)) => g.padding(Padding::Explicit { begin: b.clone(), end: e.clone() }),
        }
    }

    fn layout(&self) -> Layout {
        if self.channels_last {
            Layout::ChannelsLast
        } else {
            Layout::ChannelsFirst
        }
    }
}

/// The offset of (n, c, flat spatial s) in a tensor of `planes` = (batch, channels, volume).
fn offset(channels_last: bool, channels: usize, volume: usize, n: usize, c: usize, s: usize) -> usize {
    if channels_last {
        (n * volume + s) * channels + c
    } else {
        (n * channels + c) * volume + s
    }
}

/// One output window: its taps in row-major window order, each `Some(flat input cell)`
/// inside the input, and how many taps lie in the input or its padding (not the ceil
/// overhang).
struct Window {
    cells: Vec<Option<usize>>,
    padded: usize,
}

fn windows(dims: &[Dim]) -> Vec<Window> {
    let out_volume: i64 = dims.iter().map(|d| d.output).product();
    let kernel_volume: i64 = dims.iter().map(|d| d.kernel).product();
    (0..out_volume)
        .map(|o| {
            // Row-major output coordinates.
            let mut rest = o;
            let mut out_coord = vec![0; dims.len()];
            for d in (0..dims.len()).rev() {
                out_coord[d] = rest % dims[d].output;
                rest /= dims[d].output;
            }
            let mut cells = vec![];
            let mut padded = 0;
            for t in 0..kernel_volume {
                let mut rest = t;
                let mut tap = vec![0; dims.len()];
                for d in (0..dims.len()).rev() {
                    tap[d] = rest % dims[d].kernel;
                    rest /= dims[d].kernel;
                }
                let coords: Vec<i64> = (0..dims.len())
                    .map(|d| out_coord[d] * dims[d].stride - dims[d].begin + tap[d] * dims[d].dilation)
                    .collect();
                if coords.iter().zip(dims).all(|(&x, d)| x < d.input + d.end) {
                    padded += 1;
                }
                let inside = coords.iter().zip(dims).all(|(&x, d)| x >= 0 && x < d.input);
                cells
                    .push(inside.then(|| coords.iter().zip(dims).fold(0, |flat, (&x, d)| flat * d.input + x) as usize));
            }
            Window { cells, padded }
        })
        .collect()
}

/// What the oracle computes for a request: output, indices (max), input gradient.
struct Expected {
    output: Vec<f64>,
    indices: Vec<i64>,
    grad_input: Vec<f64>,
    /// Per output: the bound on its rounding error; per input cell likewise.
    output_bound: Vec<f64>,
    grad_bound: Vec<f64>,
}

enum Reduction {
    Max,
    Avg { include_pad: bool, divisor: Option<usize> },
    LpTorch(f64),
    LpOnnx(f64),
}

fn oracle(raw: &Raw, dims: &[Dim], x: &[f64], g: &[f64], reduction: &Reduction) -> Expected {
    let (n_b, n_c) = (raw.batch, raw.channels);
    let in_volume: usize = raw.spatial.iter().product();
    let out_volume: usize = dims.iter().map(|d| d.output as usize).product();
    let kernel_volume: f64 = dims.iter().map(|d| d.kernel as f64).product();
    let wins = windows(dims);
    let size = n_b * n_c * out_volume;
    let mut e = Expected {
        output: vec![0.0; size],
        indices: vec![-1; size],
        grad_input: vec![0.0; n_b * n_c * in_volume],
        output_bound: vec![0.0; size],
        grad_bound: vec![0.0; n_b * n_c * in_volume],
    };
    let eps = f64::EPSILON;
    for n in 0..n_b {
        for c in 0..n_c {
            let xi = |s: usize| offset(raw.channels_last, n_c, in_volume, n, c, s);
            for (o, w) in wins.iter().enumerate() {
                let yo = offset(raw.channels_last, n_c, out_volume, n, c, o);
                let valid: Vec<usize> = w.cells.iter().flatten().copied().collect();
                let taps = valid.len() as f64;
                match reduction {
                    Reduction::Max => {
                        let mut best: Option<(f64, usize)> = None;
                        for &s in &valid {
                            let v = x[xi(s)];
                            if best.is_none_or(|(b, _)| v > b || v.is_nan()) {
                                best = Some((v, s));
                            }
                        }
                        e.output[yo] = best.map_or(f64::NEG_INFINITY, |b| b.0);
                        e.indices[yo] = best.map_or(-1, |b| b.1 as i64);
                        if let Some((_, s)) = best {
                            e.grad_input[xi(s)] += g[yo];
                        }
                    }
                    Reduction::Avg { include_pad, divisor } => {
                        let div = match divisor {
                            Some(d) => *d as f64,
                            None if *include_pad => w.padded as f64,
                            None => taps,
                        };
                        if valid.is_empty() {
                            continue;
                        }
                        let sum: f64 = valid.iter().map(|&s| x[xi(s)]).sum();
                        let abs: f64 = valid.iter().map(|&s| x[xi(s)].abs()).sum();
                        e.output[yo] = sum / div;
                        e.output_bound[yo] = 4.0 * (taps + 1.0) * eps * abs / div;
                        for &s in &valid {
                            e.grad_input[xi(s)] += g[yo] / div;
                            e.grad_bound[xi(s)] += 4.0 * eps * (g[yo] / div).abs();
                        }
                    }
                    Reduction::LpTorch(p) | Reduction::LpOnnx(p) => {
                        let torch = matches!(reduction, Reduction::LpTorch(_));
                        let power = |v: f64| if torch { v.powf(*p) } else { v.abs().powf(*p) };
                        let sum: f64 = valid.iter().map(|&s| power(x[xi(s)])).sum();
                        // PyTorch: K · avg_pool(x^p), the average's divisor clipped to the
                        // input in ceil mode (no padding here), K the full kernel volume.
                        let scale = if torch { kernel_volume / w.padded as f64 } else { 1.0 };
                        let y = (scale * sum).powf(1.0 / p);
                        e.output[yo] = y;
                        e.output_bound[yo] = 16.0 * (taps + 2.0) * eps * y.abs();
                        if sum != 0.0 {
                            for &s in &valid {
                                let v = x[xi(s)];
                                let sign = if v == 0.0 { 0.0 } else { v.signum() };
                                let dpower = if torch { v.powf(p - 1.0) } else { v.abs().powf(p - 1.0) * sign };
                                let grad = g[yo] * scale * (scale * sum).powf(1.0 / p - 1.0) * dpower;
                                e.grad_input[xi(s)] += grad;
                                e.grad_bound[xi(s)] += 16.0 * (taps + 2.0) * eps * grad.abs();
                            }
                        }
                    }
                }
            }
        }
    }
    e
}

fn values(len: usize, seed: u64, positive: bool) -> Vec<f64> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let v = ((s >> 33) % 61) as f64 * 0.25 - 7.5;
            if positive {
                v.abs() + 0.25
            } else {
                v
            }
        })
        .collect()
}

fn within(what: &str, got: &[f64], want: &[f64], bound: &[f64]) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len(), "{}: length", what);
    for i in 0..got.len() {
        let ok = got[i] == want[i] || (got[i] - want[i]).abs() <= bound[i] || (got[i].is_nan() && want[i].is_nan());
        prop_assert!(ok, "{}: element {}: got {}, oracle {} (bound {})", what, i, got[i], want[i], bound[i]);
    }
    Ok(())
}

/// A list of one value (every dim) or one per dim.
fn list(rank: usize, values: impl Strategy<Value = usize> + Clone) -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![prop::collection::vec(values.clone(), 1), prop::collection::vec(values, rank)]
}

fn raw(padding: bool, dilation: bool) -> impl Strategy<Value = Raw> {
    (1..=3usize)
        .prop_flat_map(move |rank| {
            let pads = if padding {
                (list(rank, 0..=2usize), list(rank, 0..=2usize), any::<bool>()).prop_map(Some).boxed()
            } else {
                Just(None).boxed()
            };
            (
                (1..=2usize, 1..=3usize, prop::collection::vec(1..=7usize, rank)),
                list(rank, 1..=4usize),
                list(rank, 1..=3usize),
                list(rank, if dilation { 1..=2usize } else { 1..=1 }),
                pads,
                any::<bool>(),
                any::<bool>(),
            )
        })
        .prop_map(|((batch, channels, spatial), kernel, stride, dilation, pads, ceil, channels_last)| Raw {
            batch,
            channels,
            spatial,
            kernel,
            stride,
            dilation,
            // Symmetric padding takes the begins as the pads of both ends.
            pads: pads.map(|(b, e, symmetric)| if symmetric { (b.clone(), b, true) } else { (b, e, false) }),
            ceil,
            channels_last,
        })
}

fn shape(raw: &Raw, spatial: &[usize]) -> Shape {
    Shape::new(raw.batch, raw.channels, spatial)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn max_pooling_equals_the_oracle(raw in raw(true, true), seed in any::<u64>()) {
        let x_shape = shape(&raw, &raw.spatial);
        let x = Tensor::new(values(x_shape.numel().unwrap(), seed, false), x_shape.clone(), raw.layout()).unwrap();
        let pool = MaxPool::new(raw.geometry());
        let Some(dims) = raw.dims() else {
            prop_assert!(pool.forward_with_indices(&x.view()).is_err(), "the oracle has no output: {:?}", raw);
            return Ok(());
        };
        let got = pool.forward_with_indices(&x.view()).unwrap();
        let g = values(got.output.data().len(), seed ^ 1, false);
        let want = oracle(&raw, &dims, x.data(), &g, &Reduction::Max);
        prop_assert_eq!(got.output.shape(), &shape(&raw, &dims.iter().map(|d| d.output as usize).collect::<Vec<_>>()));
        prop_assert_eq!(got.output.data(), &want.output[..]);
        prop_assert_eq!(got.indices.data(), &want.indices[..]);
        let g = Tensor::new(g, got.output.shape().clone(), raw.layout()).unwrap();
        let gx = pool.backward_with_indices(&x_shape, &g.view(), &got.indices.view()).unwrap();
        prop_assert_eq!(gx.data(), &want.grad_input[..]);
    }

    #[test]
    fn average_pooling_equals_the_oracle(
        raw in raw(true, true),
        include_pad in any::<bool>(),
        divisor in prop::option::of(1..=7usize),
        seed in any::<u64>(),
    ) {
        let x_shape = shape(&raw, &raw.spatial);
        let x = Tensor::new(values(x_shape.numel().unwrap(), seed, false), x_shape.clone(), raw.layout()).unwrap();
        let pool = AvgPool::new(raw.geometry()).count_include_pad(include_pad).divisor_override(divisor);
        let Some(dims) = raw.dims() else {
            prop_assert!(pool.forward(&x.view()).is_err(), "the oracle has no output: {:?}", raw);
            return Ok(());
        };
        let y = pool.forward(&x.view()).unwrap();
        let g = values(y.data().len(), seed ^ 1, false);
        let want = oracle(&raw, &dims, x.data(), &g, &Reduction::Avg { include_pad, divisor });
        within("output", y.data(), &want.output, &want.output_bound)?;
        let g = Tensor::new(g, y.shape().clone(), raw.layout()).unwrap();
        within("grad_input", pool.backward(&x.view(), &g.view()).unwrap().data(), &want.grad_input, &want.grad_bound)?;
    }

    #[test]
    fn lp_pooling_equals_the_oracle(
        raw in raw(false, false),
        onnx_geometry in raw(true, true),
        p in prop::sample::select(vec![1.0, 2.0, 3.0, 1.5]),
        seed in any::<u64>(),
    ) {
        // PyTorch's formula on PyTorch's geometry (no padding, no dilation), positive inputs;
        // ONNX's on any geometry and signed inputs.
        for (raw, formula, positive) in [(raw, LpFormula::PyTorch, true), (onnx_geometry, LpFormula::Onnx, false)] {
            let x_shape = shape(&raw, &raw.spatial);
            let x = Tensor::new(values(x_shape.numel().unwrap(), seed, positive), x_shape.clone(), raw.layout()).unwrap();
            let pool = LpPool::new(raw.geometry(), p).formula(formula);
            let Some(dims) = raw.dims() else {
                prop_assert!(pool.forward(&x.view()).is_err(), "the oracle has no output: {:?}", raw);
                continue;
            };
            let y = pool.forward(&x.view()).unwrap();
            let g = values(y.data().len(), seed ^ 1, false);
            let reduction = if formula == LpFormula::PyTorch { Reduction::LpTorch(p) } else { Reduction::LpOnnx(p) };
            let want = oracle(&raw, &dims, x.data(), &g, &reduction);
            within(&format!("{formula:?} output"), y.data(), &want.output, &want.output_bound)?;
            let g = Tensor::new(g, y.shape().clone(), raw.layout()).unwrap();
            let gx = pool.backward(&x.view(), &g.view()).unwrap();
            within(&format!("{formula:?} grad_input"), gx.data(), &want.grad_input, &want.grad_bound)?;
        }
    }

    #[test]
    fn adaptive_average_pooling_equals_the_oracle(
        raw in raw(false, false),
        output in prop::collection::vec(1..=9usize, 1..=3),
        seed in any::<u64>(),
    ) {
        let rank = raw.rank();
        let output: Vec<usize> = if output.len() == 1 { output } else { (0..rank).map(|d| output[d % output.len()]).collect() };
        let x_shape = shape(&raw, &raw.spatial);
        let x = Tensor::new(values(x_shape.numel().unwrap(), seed, false), x_shape.clone(), raw.layout()).unwrap();
        let y = AvgPool::adaptive(&output).forward(&x.view()).unwrap();
        // Window i of a dim: [⌊i·I/O⌋, ⌈(i+1)·I/O⌉); the mean over the box of windows.
        let sizes: Vec<usize> = (0..rank).map(|d| at(&output, d)).collect();
        prop_assert_eq!(y.shape(), &shape(&raw, &sizes));
        let out_volume: usize = sizes.iter().product();
        let in_volume: usize = raw.spatial.iter().product();
        for n in 0..raw.batch {
            for c in 0..raw.channels {
                for o in 0..out_volume {
                    let mut rest = o;
                    let mut ranges = vec![(0, 0); rank];
                    for d in (0..rank).rev() {
                        let (i, input, out) = (rest % sizes[d], raw.spatial[d], sizes[d]);
                        rest /= sizes[d];
                        ranges[d] = (i * input / out, ((i + 1) * input).div_ceil(out));
                    }
                    let (mut sum, mut abs, mut count) = (0.0, 0.0, 0usize);
                    for s in 0..in_volume {
                        let mut rest = s;
                        let mut inside = true;
                        for d in (0..rank).rev() {
                            let coord = rest % raw.spatial[d];
                            rest /= raw.spatial[d];
                            inside &= coord >= ranges[d].0 && coord < ranges[d].1;
                        }
                        if inside {
                            let v = x.data()[offset(raw.channels_last, raw.channels, in_volume, n, c, s)];
                            sum += v;
                            abs += v.abs();
                            count += 1;
                        }
                    }
                    let want = sum / count as f64;
                    let got = y.data()[offset(raw.channels_last, raw.channels, out_volume, n, c, o)];
                    prop_assert!((got - want).abs() <= 4.0 * (count as f64 + rank as f64) * f64::EPSILON * abs / count as f64,
                        "output {}: got {}, oracle {}", o, got, want);
                }
            }
        }
    }
}

#[test]
fn onnx_lp_gradient_at_zero_is_zero_for_p_1() {
    // d|x|/dx at x = ±0 is the subgradient 0 (PyTorch's sgn), whatever the zero's sign bit;
    // the oracle test found poolgrad giving ±1 there.
    let x = Tensor::new(vec![0.0f64, -0.0, 2.0, -3.0], Shape::new(1, 1, &[4]), Layout::ChannelsFirst).unwrap();
    let pool = LpPool::new(PoolGeometry::new(&[2]), 1.0).formula(LpFormula::Onnx);
    let g = Tensor::new(vec![1.0, 1.0], Shape::new(1, 1, &[2]), Layout::ChannelsFirst).unwrap();
    assert_eq!(pool.backward(&x.view(), &g.view()).unwrap().data(), &[0.0, 0.0, 1.0, -1.0]);
    let v = Tensor::new(vec![1.0, 1.0, 1.0, 1.0], Shape::new(1, 1, &[4]), Layout::ChannelsFirst).unwrap();
    assert_eq!(pool.double_backward(&x.view(), &v.view()).unwrap().data(), &[0.0, 0.0]);
    assert_eq!(pool.double_backward_input(&x.view(), &g.view(), &v.view()).unwrap().data(), &[0.0; 4]);
}
