//! Property tests: the kernels against the plain reference implementation on random
//! configurations (1 to 5 spatial dims, both layouts, every padding mode), gradcheck
//! on random configurations, and algebraic properties of the backward.

use poolgrad::{
    gradcheck, reference, AvgPool, Layout, MaxPool, Padding, PoolError, PoolGeometry, Pooling, Shape, Tensor,
};
use proptest::prelude::*;

/// A random pooling request: shape, layout and geometry (possibly invalid).
#[derive(Debug, Clone)]
struct Request {
    shape: Shape,
    layout: Layout,
    geometry: PoolGeometry,
}

fn request(max_rank: usize) -> impl Strategy<Value = Request> {
    (1..=max_rank)
        .prop_flat_map(|rank| {
            let side = if rank >= 4 { 1..=4usize } else { 1..=7usize };
            (
                1..=2usize,
                1..=3usize,
                prop::collection::vec(side, rank),
                prop::collection::vec(1..=4usize, rank),
                prop::collection::vec(1..=3usize, rank),
                prop::collection::vec(1..=2usize, rank),
                prop::collection::vec(0..=3usize, 2 * rank),
                0..6u8,
                any::<bool>(),
                any::<bool>(),
            )
        })
        .prop_map(|(n, c, spatial, kernel, stride, dilation, pads, mode, ceil, last)| {
            let rank = spatial.len();
            let padding = match mode {
                0 => Padding::None,
                // PyTorch-style symmetric padding, at most half the kernel.
                1 | 2 => Padding::Symmetric(pads[..rank].iter().zip(&kernel).map(|(p, k)| p % (k / 2 + 1)).collect()),
                // ONNX-style begin/end pads, possibly wider than the kernel.
                3 => Padding::Explicit { begin: pads[..rank].to_vec(), end: pads[rank..].to_vec() },
                4 => Padding::SameUpper,
                _ => Padding::SameLower,
            };
            let same = mode >= 4;
            Request {
                shape: Shape::new(n, c, &spatial),
                layout: if last { Layout::ChannelsLast } else { Layout::ChannelsFirst },
                geometry: PoolGeometry::new(&kernel)
                    .stride(&stride)
                    .dilation(&dilation)
                    .padding(padding)
                    .ceil_mode(ceil && !same),
            }
        })
}

/// Input values: small integers (many ties), with NaN and infinities sprinkled in.
fn values(len: usize, seed: u64, specials: bool) -> Vec<f64> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let r = (s >> 33) % 40;
            match r {
                0 if specials => f64::NAN,
                1 if specials => f64::INFINITY,
                2 if specials => f64::NEG_INFINITY,
                _ => (r % 6) as f64 - 2.0,
            }
        })
        .collect()
}

fn same_bits(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, max_shrink_iters: 256, ..ProptestConfig::default() })]

    #[test]
    fn max_pool_matches_reference(req in request(5), seed in any::<u64>(), specials in any::<bool>()) {
        let x = Tensor::new(values(req.shape.numel().unwrap(), seed, specials), req.shape.clone(), req.layout).unwrap();
        let pool = MaxPool::new(req.geometry.clone());
        let got = pool.forward_with_indices(&x.view());
        let want = reference::max_pool(&x.view(), &req.geometry);
        match (got, want) {
            (Ok(got), Ok((y, idx))) => {
                prop_assert!(same_bits(got.output.data(), y.data()));
                prop_assert_eq!(got.indices.data(), idx.data());
                let g = Tensor::new(values(y.data().len(), seed ^ 7, false), y.shape().clone(), req.layout).unwrap();
                let gx = pool.backward_with_indices(x.shape(), &g.view(), &got.indices.view()).unwrap();
                let want_gx = reference::max_pool_backward(&x.view(), &g.view(), &req.geometry).unwrap();
                prop_assert!(same_bits(gx.data(), want_gx.data()));
            }
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (a, b) => prop_assert!(false, "kernel {:?} vs reference {:?}", a.err(), b.err()),
        }
    }

    #[test]
    fn avg_pool_matches_reference(
        req in request(5), seed in any::<u64>(), include in any::<bool>(), divisor in prop::option::of(1..10usize),
        specials in any::<bool>(),
    ) {
        let x = Tensor::new(values(req.shape.numel().unwrap(), seed, specials), req.shape.clone(), req.layout).unwrap();
        let pool = AvgPool::new(req.geometry.clone()).count_include_pad(include).divisor_override(divisor);
        match (pool.forward(&x.view()), reference::avg_pool(&x.view(), &req.geometry, include, divisor)) {
            (Ok(y), Ok(want)) => {
                prop_assert!(same_bits(y.data(), want.data()));
                let g = Tensor::new(values(y.data().len(), seed ^ 7, false), y.shape().clone(), req.layout).unwrap();
                let gx = pool.backward(&x.view(), &g.view()).unwrap();
                let want_gx = reference::avg_pool_backward(&x.view(), &g.view(), &req.geometry, include, divisor).unwrap();
                prop_assert!(same_bits(gx.data(), want_gx.data()));
            }
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (a, b) => prop_assert!(false, "kernel {:?} vs reference {:?}", a.err(), b.err()),
        }
    }

    /// Both layouts compute the same thing: transposing the input transposes the result.
    #[test]
    fn layouts_agree(req in request(3), seed in any::<u64>()) {
        let first = Tensor::new(values(req.shape.numel().unwrap(), seed, true), req.shape.clone(), Layout::ChannelsFirst).unwrap();
        let last = Tensor::new(to_channels_last(first.data(), &req.shape), req.shape.clone(), Layout::ChannelsLast).unwrap();
        let pool = MaxPool::new(req.geometry.clone());
        if let (Ok(a), Ok(b)) = (pool.forward_with_indices(&first.view()), pool.forward_with_indices(&last.view())) {
            prop_assert!(same_bits(&to_channels_last(a.output.data(), a.output.shape()), b.output.data()));
            let ia: Vec<f64> = a.indices.data().iter().map(|&i| i as f64).collect();
            let ib: Vec<f64> = b.indices.data().iter().map(|&i| i as f64).collect();
            prop_assert!(same_bits(&to_channels_last(&ia, a.indices.shape()), &ib));
        }
    }

    /// Central differences agree with the backward wherever the function is smooth.
    #[test]
    fn gradcheck_random_configurations(req in request(3), seed in any::<u64>(), include in any::<bool>()) {
        // Distinct values 0.01 apart: no ties within 2·eps, so max is differentiable.
        let n = req.shape.numel().unwrap();
        let mut order: Vec<usize> = (0..n).collect();
        let mut s = seed;
        for i in (1..n).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (s >> 33) as usize % (i + 1));
        }
        let x = Tensor::new(order.iter().map(|&v| v as f64 * 0.01 - 1.0).collect(), req.shape.clone(), req.layout).unwrap();
        let max = MaxPool::new(req.geometry.clone());
        if let Ok(y) = max.forward(&x.view()) {
            // Windows with no input cell output -inf: the loss is not finite there.
            if y.data().iter().all(|v| v.is_finite()) {
                let report = gradcheck(&max, &x.view(), 1e-6).unwrap();
                prop_assert!(report.max_abs_error < 1e-6, "max: {:?}", report);
            }
            let avg = AvgPool::new(req.geometry.clone()).count_include_pad(include);
            let report = gradcheck(&avg, &x.view(), 1e-6).unwrap();
            prop_assert!(report.max_abs_error < 1e-6, "avg: {:?}", report);
        }
    }

    /// Max backward conserves gradient: every output's δ lands on exactly one input
    /// cell (windows with no input cell excepted), so the sums agree.
    #[test]
    fn max_backward_conserves_gradient(req in request(4), seed in any::<u64>()) {
        let x = Tensor::new(values(req.shape.numel().unwrap(), seed, true), req.shape.clone(), req.layout).unwrap();
        let pool = MaxPool::new(req.geometry.clone());
        if let Ok(out) = pool.forward_with_indices(&x.view()) {
            let g: Vec<f64> = (0..out.output.data().len()).map(|i| (i % 5) as f64 + 1.0).collect();
            let routed: f64 = g.iter().zip(out.indices.data()).filter(|(_, &i)| i >= 0).map(|(v, _)| v).sum();
            let g = Tensor::new(g, out.output.shape().clone(), req.layout).unwrap();
            let gx = pool.backward_with_indices(x.shape(), &g.view(), &out.indices.view()).unwrap();
            prop_assert_eq!(gx.data().iter().sum::<f64>(), routed);
        }
    }

    /// Average pooling's backward is its adjoint: ⟨A x, g⟩ = ⟨x, Aᵀ g⟩.
    #[test]
    fn avg_backward_is_the_adjoint(req in request(4), seed in any::<u64>(), include in any::<bool>()) {
        let x = Tensor::new(values(req.shape.numel().unwrap(), seed, false), req.shape.clone(), req.layout).unwrap();
        let pool = AvgPool::new(req.geometry.clone()).count_include_pad(include);
        if let Ok(y) = pool.forward(&x.view()) {
            let g = Tensor::new(values(y.data().len(), seed ^ 3, false), y.shape().clone(), req.layout).unwrap();
            let gx = pool.backward(&x.view(), &g.view()).unwrap();
            let lhs: f64 = y.data().iter().zip(g.data()).map(|(a, b)| a * b).sum();
            let rhs: f64 = x.data().iter().zip(gx.data()).map(|(a, b)| a * b).sum();
            prop_assert!((lhs - rhs).abs() <= 1e-9 * (1.0 + lhs.abs()), "{} vs {}", lhs, rhs);
        }
    }

    /// No input, however odd, makes the library panic: it answers Ok or a typed error.
    #[test]
    fn never_panics(
        spatial in prop::collection::vec(0..6usize, 0..4),
        kernel in prop::collection::vec(0..8usize, 0..4),
        stride in prop::collection::vec(0..4usize, 0..4),
        pads in prop::collection::vec(0..9usize, 0..8),
        len_delta in 0..3usize,
        ceil in any::<bool>(),
    ) {
        let shape = Shape::new(1, 2, &spatial);
        let len = shape.numel().unwrap_or(0) + len_delta;
        let data = vec![1.0f32; len];
        let padding = Padding::Explicit { begin: pads.iter().step_by(2).copied().collect(), end: pads.iter().skip(1).step_by(2).copied().collect() };
        let geometry = PoolGeometry::new(&kernel).stride(&stride).padding(padding).ceil_mode(ceil);
        if let Ok(x) = poolgrad::TensorView::new(&data, shape, Layout::ChannelsLast) {
            let _ = MaxPool::new(geometry.clone()).forward_with_indices(&x);
            let _ = AvgPool::new(geometry).forward(&x);
        }
    }
}

/// Reorders channels-first data (N, C, S) to channels-last (N, S, C).
fn to_channels_last(data: &[f64], shape: &Shape) -> Vec<f64> {
    let plane: usize = shape.spatial.iter().product();
    let mut out = vec![0.0; data.len()];
    for n in 0..shape.batch {
        for c in 0..shape.channels {
            for s in 0..plane {
                out[(n * plane + s) * shape.channels + c] = data[(n * shape.channels + c) * plane + s];
            }
        }
    }
    out
}

#[test]
fn huge_shapes_are_errors_not_overflows() {
    let shape = Shape::new(usize::MAX, 2, &[4, 4]);
    assert!(matches!(shape.numel(), Err(PoolError::Overflow { .. })));
    let data = [0.0f32; 4];
    assert!(poolgrad::TensorView::new(&data, shape, Layout::ChannelsFirst).is_err());
    let pool = MaxPool::new(PoolGeometry::new(&[2]));
    assert!(pool.output_shape(&Shape::new(1 << 40, 1 << 40, &[1 << 20, 2])).is_err());
}

#[test]
fn bad_indices_are_errors() {
    let pool = MaxPool::new(PoolGeometry::new(&[2]));
    let x_shape = Shape::new(1, 1, &[4]);
    let g = Tensor::new(vec![1.0f32, 1.0], Shape::new(1, 1, &[2]), Layout::ChannelsFirst).unwrap();
    let idx = Tensor::new(vec![0i64, 9], Shape::new(1, 1, &[2]), Layout::ChannelsFirst).unwrap();
    let err = pool.backward_with_indices(&x_shape, &g.view(), &idx.view()).unwrap_err();
    assert!(err.to_string().contains("invalid max index 9"), "{err}");
    // Channels-last: -1 moves nothing; a bad index names its flat position.
    let cl = Layout::ChannelsLast;
    let g = Tensor::new(vec![1.0f32, 2.0, 3.0, 4.0], Shape::new(1, 2, &[2]), cl).unwrap();
    let x_shape = Shape::new(1, 2, &[4]);
    let idx = Tensor::new(vec![0i64, -1, 3, 2], Shape::new(1, 2, &[2]), cl).unwrap();
    let grad = pool.backward_with_indices(&x_shape, &g.view(), &idx.view()).unwrap();
    // (position, channel) pairs: (0, 0) = 1, (3, 0) = 3, (2, 1) = 4.
    assert_eq!(grad.data(), [1.0, 0.0, 0.0, 0.0, 0.0, 4.0, 3.0, 0.0]);
    for (bad, position) in [([0i64, -1, 4, 2], 2), ([0, -5, 3, 2], 1), ([0, -1, 3, 8], 3)] {
        let idx = Tensor::new(bad.to_vec(), Shape::new(1, 2, &[2]), cl).unwrap();
        let err = pool.backward_with_indices(&x_shape, &g.view(), &idx.view()).unwrap_err();
        let expected = PoolError::InvalidIndex { index: bad[position], position, plane_size: 4 };
        assert_eq!(err.to_string(), expected.to_string());
    }
    let x_shape = Shape::new(1, 1, &[4]);
    let wrong = Tensor::new(vec![1.0f32; 3], Shape::new(1, 1, &[3]), Layout::ChannelsFirst).unwrap();
    let err = pool.backward_with_indices(&x_shape, &wrong.view(), &idx.view()).unwrap_err();
    assert!(matches!(err, PoolError::ShapeMismatch { what: "grad_output", .. }), "{err}");
}
