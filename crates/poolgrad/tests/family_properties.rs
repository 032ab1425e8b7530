//! Property tests for the rest of the family: adaptive and global pooling and ONNX LP
//! against the plain reference, gradcheck for every differentiable operator, double
//! backward against directional finite differences, fractional max pooling against a
//! brute-force maximum, unpooling's adjointness, and the half types against f32.

use poolgrad::geometry::fractional_starts;
use poolgrad::{
    f16, gradcheck, reference, AvgPool, Element, FractionalMaxPool, Layout, LpFormula, LpPool, MaxPool, MaxUnpool,
    PoolGeometry, Pooling, Result, Shape, Tensor, TensorView,
};
use proptest::prelude::*;

fn layout(last: bool) -> Layout {
    if last {
        Layout::ChannelsLast
    } else {
        Layout::ChannelsFirst
    }
}

/// Distinct values (no ties within 2ε), shuffled, in [lo, lo + 0.01·n).
fn distinct(n: usize, seed: u64, lo: f64) -> Vec<f64> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut s = seed | 1;
    for i in (1..n).rev() {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        order.swap(i, (s >> 33) as usize % (i + 1));
    }
    order.iter().map(|&v| lo + v as f64 * 0.01).collect()
}

fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y || (x - y).abs() <= tol * (1.0 + y.abs()))
}

/// LP's `double_backward_input(x, g, v)` against `(b(x + εv) − b(x − εv)) / 2ε`, with
/// `b` the backward for the grad-output `g`.
fn check_lp_hessian(op: &LpPool, x: &Tensor<f64>, seed: u64) -> Result<f64> {
    let out_shape = op.output_shape(x.shape())?;
    let g = Tensor::new(distinct(out_shape.numel()?, seed ^ 11, -0.7), out_shape, x.layout())?;
    let v = Tensor::new(distinct(x.data().len(), seed ^ 5, -0.5), x.shape().clone(), x.layout())?;
    let hv = op.double_backward_input(&x.view(), &g.view(), &v.view())?;
    let eps = 1e-6;
    let shifted = |sign: f64| -> Result<Tensor<f64>> {
        let data: Vec<f64> = x.data().iter().zip(v.data()).map(|(a, b)| a + sign * eps * b).collect();
        op.backward(&Tensor::new(data, x.shape().clone(), x.layout())?.view(), &g.view())
    };
    let (up, down) = (shifted(1.0)?, shifted(-1.0)?);
    Ok(hv
        .data()
        .iter()
        .zip(up.data().iter().zip(down.data()))
        .map(|(h, (u, d))| (h - (u - d) / (2.0 * eps)).abs())
        .fold(0.0, f64::max))
}

/// `double_backward(x, v)` against `(f(x + εv) − f(x − εv)) / 2ε`.
fn check_double_backward<P: Pooling>(op: &P, x: &Tensor<f64>, seed: u64) -> Result<f64> {
    let v = Tensor::new(distinct(x.data().len(), seed ^ 5, -0.5), x.shape().clone(), x.layout())?;
    let jv = op.double_backward(&x.view(), &v.view())?;
    let eps = 1e-6;
    let shifted = |sign: f64| -> Result<Tensor<f64>> {
        let data: Vec<f64> = x.data().iter().zip(v.data()).map(|(a, b)| a + sign * eps * b).collect();
        op.forward(&Tensor::new(data, x.shape().clone(), x.layout())?.view())
    };
    let (up, down) = (shifted(1.0)?, shifted(-1.0)?);
    Ok(jv
        .data()
        .iter()
        .zip(up.data().iter().zip(down.data()))
        .map(|(j, (u, d))| (j - (u - d) / (2.0 * eps)).abs())
        .fold(0.0, f64::max))
}

/// Spatial shapes; 4-D ones stay small (gradcheck runs two forwards per element).
fn spatial(rank: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<usize>> {
    rank.prop_flat_map(|r| prop::collection::vec(1..=(if r >= 4 { 3usize } else { 7 }), r))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, max_shrink_iters: 256, ..ProptestConfig::default() })]

    #[test]
    fn adaptive_matches_reference(sp in spatial(1..=4), out in prop::collection::vec(1..=8usize, 4), c in 1..=3usize, last in any::<bool>(), seed in any::<u64>()) {
        let shape = Shape::new(2, c, &sp);
        let out = &out[..sp.len()];
        let x = Tensor::new(distinct(shape.numel().unwrap(), seed, -1.0), shape, layout(last)).unwrap();
        let (want_max, want_idx) = reference::adaptive_pool(&x.view(), out, true).unwrap();
        let got = MaxPool::adaptive(out).forward_with_indices(&x.view()).unwrap();
        prop_assert_eq!(got.output.data(), want_max.data());
        prop_assert_eq!(got.indices.data(), want_idx.data());
        let (want_avg, _) = reference::adaptive_pool(&x.view(), out, false).unwrap();
        // poolgrad divides per dim as PyTorch does; the reference divides once.
        prop_assert!(close(AvgPool::adaptive(out).forward(&x.view()).unwrap().data(), want_avg.data(), 1e-14));
        let global = AvgPool::global().forward(&x.view()).unwrap();
        let (want_global, _) = reference::adaptive_pool(&x.view(), &[1], false).unwrap();
        prop_assert!(close(global.data(), want_global.data(), 1e-14));
        for op in [MaxPool::adaptive(out), MaxPool::global()] {
            prop_assert!(gradcheck(&op, &x.view(), 1e-6).unwrap().max_abs_error < 1e-6);
            prop_assert!(check_double_backward(&op, &x, seed).unwrap() < 1e-6);
        }
        for op in [AvgPool::adaptive(out), AvgPool::global()] {
            prop_assert!(gradcheck(&op, &x.view(), 1e-6).unwrap().max_abs_error < 1e-6);
            prop_assert!(check_double_backward(&op, &x, seed).unwrap() < 1e-6);
        }
    }

    #[test]
    fn lp_matches_reference_and_gradcheck(
        sp in spatial(1..=3), k in 1..=3usize, s in 1..=2usize, pad in 0..=2usize, dil in 1..=2usize,
        p in prop::sample::select(vec![1.0, 2.0, 3.0, 1.5, 4.0]), last in any::<bool>(), seed in any::<u64>(),
    ) {
        let shape = Shape::new(1, 2, &sp);
        let geometry = PoolGeometry::new(&[k]).stride(&[s]).dilation(&[dil]).padding(poolgrad::Padding::Symmetric(vec![pad]));
        // Values away from 0 (|x|^p is not smooth there for p < 2) and of both signs.
        let data: Vec<f64> = distinct(shape.numel().unwrap(), seed, 0.3).iter().enumerate().map(|(i, v)| if i % 3 == 0 { -v } else { *v }).collect();
        let x = Tensor::new(data, shape, layout(last)).unwrap();
        let onnx = LpPool::new(geometry.clone(), p).formula(LpFormula::Onnx);
        if let Ok(y) = onnx.forward(&x.view()) {
            let want = reference::lp_pool_onnx(&x.view(), &geometry, p).unwrap();
            prop_assert!(close(y.data(), want.data(), 1e-12));
            if y.data().iter().all(|v| *v > 0.0) {
                let r = gradcheck(&onnx, &x.view(), 1e-7).unwrap();
                prop_assert!(r.max_abs_error < 1e-5, "{:?}", r);
                prop_assert!(check_double_backward(&onnx, &x, seed).unwrap() < 1e-5);
                prop_assert!(check_lp_hessian(&onnx, &x, seed).unwrap() < 1e-4);
            }
        }
        // PyTorch's formula (no padding, no dilation) on positive inputs.
        let torch = LpPool::new(PoolGeometry::new(&[k]).stride(&[s]), p).formula(LpFormula::PyTorch);
        let positive = Tensor::new(x.data().iter().map(|v| v.abs()).collect(), x.shape().clone(), x.layout()).unwrap();
        if torch.forward(&positive.view()).is_ok() {
            let r = gradcheck(&torch, &positive.view(), 1e-7).unwrap();
            prop_assert!(r.max_abs_error < 1e-5, "{:?}", r);
            prop_assert!(check_double_backward(&torch, &positive, seed).unwrap() < 1e-5);
            prop_assert!(check_lp_hessian(&torch, &positive, seed).unwrap() < 1e-4);
        }
    }

    #[test]
    fn fractional_is_the_max_over_its_windows(
        sp in prop::collection::vec(3..=9usize, 2..=3), k in 1..=3usize, o in 1..=4usize, last in any::<bool>(), seed in any::<u64>(),
    ) {
        let rank = sp.len();
        prop_assume!(sp.iter().all(|&i| o + k - 1 <= i));
        let shape = Shape::new(2, 2, &sp);
        let x = Tensor::new(distinct(shape.numel().unwrap(), seed, -1.0), shape.clone(), layout(last)).unwrap();
        let samples: Vec<f64> = distinct(4 * rank, seed ^ 9, 0.0).iter().map(|v| v.fract()).collect();
        let pool = FractionalMaxPool::new(&[k], &[o]);
        let out = pool.forward_with_indices(&x.view(), &samples).unwrap();
        // Brute force: each plane's windows from its samples, the maximum over each.
        let plane: usize = sp.iter().product();
        let out_plane = o.pow(rank as u32);
        for n in 0..2 {
            for c in 0..2 {
                let u = &samples[(n * 2 + c) * rank..][..rank];
                let starts: Vec<Vec<usize>> = (0..rank)
                    .map(|d| fractional_starts(sp[d], o, k, if rank == 2 { u[rank - 1 - d] } else { u[d] }).unwrap())
                    .collect();
                for q in 0..out_plane {
                    let mut oi = vec![0; rank];
                    let mut r = q;
                    for d in (0..rank).rev() { oi[d] = r % o; r /= o; }
                    let mut best = (f64::NEG_INFINITY, -1i64);
                    for t in 0..k.pow(rank as u32) {
                        let mut r = t;
                        let mut cell = 0;
                        let mut taps = vec![0; rank];
                        for d in (0..rank).rev() { taps[d] = r % k; r /= k; }
                        for d in 0..rank { cell = cell * sp[d] + starts[d][oi[d]] + taps[d]; }
                        let at = match x.layout() { Layout::ChannelsFirst => (n * 2 + c) * plane + cell, Layout::ChannelsLast => (n * plane + cell) * 2 + c };
                        if x.data()[at] > best.0 { best = (x.data()[at], cell as i64); }
                    }
                    let at = match x.layout() { Layout::ChannelsFirst => (n * 2 + c) * out_plane + q, Layout::ChannelsLast => (n * out_plane + q) * 2 + c };
                    prop_assert_eq!((out.output.data()[at], out.indices.data()[at]), best);
                }
            }
        }
        // Gradient: central differences through a wrapper with the samples fixed.
        let op = WithSamples { pool, samples };
        prop_assert!(gradcheck(&op, &x.view(), 1e-6).unwrap().max_abs_error < 1e-6);
        prop_assert!(check_double_backward(&op, &x, seed).unwrap() < 1e-6);
    }

    #[test]
    fn unpool_backward_is_its_adjoint(sp in prop::collection::vec(2..=8usize, 1..=3), k in 1..=3usize, last in any::<bool>(), seed in any::<u64>()) {
        let shape = Shape::new(2, 3, &sp);
        prop_assume!(sp.iter().all(|&i| i >= k));
        let x0 = Tensor::new(distinct(shape.numel().unwrap(), seed, -1.0), shape, layout(last)).unwrap();
        let pooled = MaxPool::new(PoolGeometry::new(&[k])).forward_with_indices(&x0.view()).unwrap();
        let unpool = MaxUnpool::new(&[k]);
        let v = Tensor::new(distinct(pooled.output.data().len(), seed ^ 3, -2.0), pooled.output.shape().clone(), x0.layout()).unwrap();
        let size = x0.shape().spatial.clone();
        let y = unpool.forward(&v.view(), &pooled.indices.view(), Some(&size)).unwrap();
        let g = Tensor::new(distinct(y.data().len(), seed ^ 4, -3.0), y.shape().clone(), x0.layout()).unwrap();
        let gv = unpool.backward(&g.view(), &pooled.indices.view()).unwrap();
        let lhs: f64 = y.data().iter().zip(g.data()).map(|(a, b)| a * b).sum();
        let rhs: f64 = v.data().iter().zip(gv.data()).map(|(a, b)| a * b).sum();
        prop_assert!((lhs - rhs).abs() <= 1e-9 * (1.0 + lhs.abs()));
        // Unique indices (stride = kernel): the double backward is the forward.
        prop_assert_eq!(unpool.double_backward(&v.view(), &pooled.indices.view(), Some(&size)).unwrap(), y);
    }

    /// The half types compute what f32 computes, rounded once (sums run in f32).
    #[test]
    fn f16_is_f32_rounded_once(sp in spatial(1..=3), k in 1..=3usize, s in 1..=2usize, last in any::<bool>(), seed in any::<u64>()) {
        let shape = Shape::new(2, 2, &sp);
        let halves: Vec<f16> = distinct(shape.numel().unwrap(), seed, -1.0).iter().map(|&v| f16::from_f64(v)).collect();
        let singles: Vec<f32> = halves.iter().map(|v| v.to_f32()).collect();
        let xh = Tensor::new(halves, shape.clone(), layout(last)).unwrap();
        let xs = Tensor::new(singles, shape, layout(last)).unwrap();
        let geometry = PoolGeometry::new(&[k]).stride(&[s]);
        let avg = AvgPool::new(geometry.clone());
        if let (Ok(h), Ok(f)) = (avg.forward(&xh.view()), avg.forward(&xs.view())) {
            let rounded: Vec<f16> = f.data().iter().map(|&v| f16::from_f32(v)).collect();
            prop_assert_eq!(h.data(), &rounded[..]);
            let max = MaxPool::new(geometry);
            let (mh, mf) = (max.forward_with_indices(&xh.view()).unwrap(), max.forward_with_indices(&xs.view()).unwrap());
            prop_assert_eq!(mh.indices, mf.indices);
        }
    }
}

/// Fractional max pooling with fixed samples, as a [`Pooling`] for gradcheck.
struct WithSamples {
    pool: FractionalMaxPool,
    samples: Vec<f64>,
}

impl Pooling for WithSamples {
    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        self.pool.output_shape(input)
    }
    fn forward<T: Element>(&self, x: &TensorView<'_, T>) -> Result<Tensor<T>> {
        let samples: Vec<T> = self.samples.iter().map(|&v| T::from_f64(v)).collect();
        Ok(self.pool.forward_with_indices(x, &samples)?.output)
    }
    fn backward<T: Element>(&self, x: &TensorView<'_, T>, g: &TensorView<'_, T>) -> Result<Tensor<T>> {
        let samples: Vec<T> = self.samples.iter().map(|&v| T::from_f64(v)).collect();
        let out = self.pool.forward_with_indices(x, &samples)?;
        self.pool.backward_with_indices(x.shape(), g, &out.indices.view())
    }
    fn double_backward<T: Element>(&self, x: &TensorView<'_, T>, v: &TensorView<'_, T>) -> Result<Tensor<T>> {
        let samples: Vec<T> = self.samples.iter().map(|&v| T::from_f64(v)).collect();
        let out = self.pool.forward_with_indices(x, &samples)?;
        self.pool.double_backward_with_indices(v, &out.indices.view())
    }
}
