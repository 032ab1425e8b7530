//! The vectorised paths against the plain reference, under every instruction set this
//! CPU runs (`poolgrad::simd::available`): rows long enough for the channels-first
//! runs (strides 1, 2 — the phase-split copy — and 3, chunk remainders, edges), rows too
//! short for runs (interleaved plane groups of 16, and partial groups), and channel
//! counts that give the channels-last chunks and their remainders. Bitwise, with ties,
//! NaN and infinities in the data.

use poolgrad::simd::{available, with_isa};
use poolgrad::{reference, AvgPool, Layout, LpPool, MaxPool, Padding, PoolGeometry, Pooling, Shape, Tensor};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Request {
    shape: Shape,
    layout: Layout,
    geometry: PoolGeometry,
}

/// Rank 1–3, last dim 16–90 (channels-first runs of 16+ outputs), 1–40 channels
/// (channels-last chunks of 16 and remainders).
fn request() -> impl Strategy<Value = Request> {
    (1..=3usize)
        .prop_flat_map(|rank| {
            (
                1..=2usize,
                1..=40usize,
                prop::collection::vec(1..=6usize, rank - 1),
                16..=90usize,
                prop::collection::vec(1..=5usize, rank),
                prop::collection::vec(1..=3usize, rank),
                prop::collection::vec(1..=2usize, rank),
                prop::collection::vec(0..=2usize, 2 * rank),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
            )
        })
        .prop_map(|(n, c, outer, width, kernel, stride, dilation, pads, explicit, ceil, last)| {
            let rank = kernel.len();
            let mut spatial = outer;
            spatial.push(width);
            let padding = if explicit {
                Padding::Explicit { begin: pads[..rank].to_vec(), end: pads[rank..].to_vec() }
            } else {
                Padding::Symmetric(pads[..rank].iter().zip(&kernel).map(|(p, k)| p % (k / 2 + 1)).collect())
            };
            Request {
                // Channels-first: up to 40 planes, so groups of 16 planes and partial groups.
                shape: Shape::new(n, if last { c } else { 1 + c / 2 }, &spatial),
                layout: if last { Layout::ChannelsLast } else { Layout::ChannelsFirst },
                geometry: PoolGeometry::new(&kernel)
                    .stride(&stride)
                    .dilation(&dilation)
                    .padding(padding)
                    .ceil_mode(ceil),
            }
        })
}

/// Small integers (many ties), with NaN and infinities sprinkled in when `specials`.
fn values(len: usize, seed: u64, specials: bool) -> Vec<f32> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            match (s >> 33) % 50 {
                0 if specials => f32::NAN,
                1 if specials => f32::INFINITY,
                2 if specials => f32::NEG_INFINITY,
                3 => -0.0,
                r => (r % 7) as f32 - 3.0 + ((s >> 20) % 4) as f32 * 0.1,
            }
        })
        .collect()
}

/// The compact (1-byte) argmax state under `isa`: same values, taps naming the
/// reference's indices, and the same backward as the indices give. Skipped (an error
/// checked) when a window has more than 256 taps.
fn check_compact(
    pool: &MaxPool,
    x: &Tensor<f32>,
    want: &Tensor<f32>,
    want_idx: &Tensor<i64>,
    isa: poolgrad::simd::Isa,
) -> Result<(), TestCaseError> {
    let compact = match with_isa(isa, || pool.forward_compact(&x.view())) {
        Ok(c) => c,
        Err(e) => {
            prop_assert!(e.to_string().contains("at most 256"), "{e}");
            return Ok(());
        }
    };
    prop_assert!(same_bits(compact.output.data(), want.data()), "compact {}", isa.name());
    let idx = pool.compact_to_indices(x.shape(), &compact.taps.view()).unwrap();
    prop_assert_eq!(idx.data(), want_idx.data(), "compact taps {}", isa.name());
    let g = Tensor::new(values(want.data().len(), 99, false), want.shape().clone(), want.layout()).unwrap();
    let a = with_isa(isa, || pool.backward_compact(x.shape(), &g.view(), &compact.taps.view())).unwrap();
    let b = pool.backward_with_indices(x.shape(), &g.view(), &want_idx.view()).unwrap();
    prop_assert!(same_bits(a.data(), b.data()), "compact backward {}", isa.name());
    Ok(())
}

/// Max pooling of a random input under every instruction set: values and indices equal
/// to the reference's, and the compact state consistent with them.
fn check_max(req: &Request, seed: u64, specials: bool) -> Result<(), TestCaseError> {
    let x = Tensor::new(values(req.shape.numel().unwrap(), seed, specials), req.shape.clone(), req.layout).unwrap();
    let Ok((want, want_idx)) = reference::max_pool(&x.view(), &req.geometry) else { return Ok(()) };
    for isa in available() {
        let pool = MaxPool::new(req.geometry.clone());
        let got = with_isa(isa, || pool.forward_with_indices(&x.view())).unwrap();
        prop_assert!(same_bits(got.output.data(), want.data()), "{}", isa.name());
        prop_assert_eq!(got.indices.data(), want_idx.data(), "{}", isa.name());
        check_compact(&pool, &x, &want, &want_idx, isa)?;
    }
    Ok(())
}

/// An average pooling result not summed in window order (see
/// `AvgPool::sums_in_window_order`) against the exact means, computed by the reference
/// in f64: within `(n + rank + 1) · ε · Σ|x| / divisor` for windows of at most `n` taps
/// (one rounding per addition and per division). Non-finite means must match in kind.
fn check_avg_bound(
    x: &Tensor<f32>,
    geometry: &PoolGeometry,
    include: bool,
    divisor: Option<usize>,
    got: &Tensor<f32>,
) -> Result<(), TestCaseError> {
    let wide = |f: fn(f32) -> f64| Tensor::new(x.data().iter().map(|&v| f(v)).collect(), x.shape().clone(), x.layout());
    let exact = reference::avg_pool(&wide(f64::from).unwrap().view(), geometry, include, divisor).unwrap();
    let magnitude =
        reference::avg_pool(&wide(|v| f64::from(v.abs())).unwrap().view(), geometry, include, divisor).unwrap();
    // Each window's valid taps: the sum of ones, divided by 1.
    let taps = reference::avg_pool(&wide(|_| 1.0).unwrap().view(), geometry, include, Some(1)).unwrap();
    let rank = x.shape().spatial.len() as f64;
    for (((&g, &e), &m), &n) in got.data().iter().zip(exact.data()).zip(magnitude.data()).zip(taps.data()) {
        let (g, bound) = (f64::from(g), (n + rank + 1.0) * f64::from(f32::EPSILON) * m);
        let ok =
            if e.is_finite() && m.is_finite() { (g - e).abs() <= bound } else { (g.is_nan() && e.is_nan()) || g == e };
        prop_assert!(ok, "mean {g} vs exact {e}: over the bound {bound} ({n} taps, Σ|x|/divisor {m})");
    }
    Ok(())
}

/// An average pooling gradient not summed in output order against the exact one, the
/// reference's backward in f64: within `(n + rank + 1) · ε · Σ|share|` for a cell with `n`
/// covering windows (the shares themselves rounded once to f32).
fn check_avg_grad_bound(
    x: &Tensor<f32>,
    g: &Tensor<f32>,
    geometry: &PoolGeometry,
    include: bool,
    divisor: Option<usize>,
    got: &Tensor<f32>,
) -> Result<(), TestCaseError> {
    let wide = |t: &Tensor<f32>, f: fn(f32) -> f64| {
        Tensor::new(t.data().iter().map(|&v| f(v)).collect(), t.shape().clone(), t.layout()).unwrap()
    };
    let x64 = wide(x, f64::from);
    let backward = |g: &Tensor<f64>, divisor| {
        reference::avg_pool_backward(&x64.view(), &g.view(), geometry, include, divisor).unwrap()
    };
    let exact = backward(&wide(g, f64::from), divisor);
    let magnitude = backward(&wide(g, |v| f64::from(v.abs())), divisor);
    // Each cell's covering windows: the backward of ones, divided by 1.
    let covering = backward(&wide(g, |_| 1.0), Some(1));
    let rank = x.shape().spatial.len() as f64;
    for (((&v, &e), &m), &n) in got.data().iter().zip(exact.data()).zip(magnitude.data()).zip(covering.data()) {
        let (v, bound) = (f64::from(v), (n + rank + 1.0) * f64::from(f32::EPSILON) * m);
        let ok = if e.is_finite() { (v - e).abs() <= bound } else { (v.is_nan() && e.is_nan()) || v == e };
        prop_assert!(ok, "gradient {v} vs exact {e}: over the bound {bound} ({n} windows, Σ|share| {m})");
    }
    Ok(())
}

fn same_bits<T: poolgrad::Element>(a: &[T], b: &[T]) -> bool {
    // Widening to f64 is exact, signs of zero included, so equal f64 bits are equal bits.
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| x.to_f64().to_bits() == y.to_f64().to_bits() || (x.is_nan() && y.is_nan()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, max_shrink_iters: 256, ..ProptestConfig::default() })]

    #[test]
    fn max_forward_every_isa(req in request(), seed in any::<u64>(), specials in any::<bool>()) {
        check_max(&req, seed, specials)?;
    }

    #[test]
    fn avg_forward_every_isa(
        req in request(), seed in any::<u64>(), include in any::<bool>(), divisor in prop::option::of(1..10usize),
        specials in any::<bool>(),
    ) {
        let x = Tensor::new(values(req.shape.numel().unwrap(), seed, specials), req.shape.clone(), req.layout).unwrap();
        let Ok(want) = reference::avg_pool(&x.view(), &req.geometry, include, divisor) else { return Ok(()) };
        let g = Tensor::new(values(want.data().len(), seed ^ 7, specials), want.shape().clone(), req.layout).unwrap();
        let want_gx = reference::avg_pool_backward(&x.view(), &g.view(), &req.geometry, include, divisor).unwrap();
        for isa in available() {
            let pool = AvgPool::new(req.geometry.clone()).count_include_pad(include).divisor_override(divisor);
            let got = with_isa(isa, || pool.forward(&x.view())).unwrap();
            if pool.sums_in_window_order(x.shape(), req.layout).unwrap() {
                prop_assert!(same_bits(got.data(), want.data()), "{}", isa.name());
            } else {
                check_avg_bound(&x, &req.geometry, include, divisor, &got)?;
            }
            let gx = with_isa(isa, || pool.backward(&x.view(), &g.view())).unwrap();
            if pool.sums_in_window_order(x.shape(), req.layout).unwrap() {
                prop_assert!(same_bits(gx.data(), want_gx.data()), "backward {}", isa.name());
            } else {
                check_avg_grad_bound(&x, &g, &req.geometry, include, divisor, &gx)?;
            }
        }
    }

    /// Adaptive windows that tile the input evenly take the run path too. Average:
    /// the kernel divides one dim at a time as PyTorch does, the reference by the
    /// window size at once, so they agree to rounding; every build agrees bitwise with
    /// the portable one.
    #[test]
    fn adaptive_every_isa(
        req in request(), seed in any::<u64>(), divisors in prop::collection::vec(1..=4usize, 3), max in any::<bool>(),
    ) {
        let x = Tensor::new(values(req.shape.numel().unwrap(), seed, true), req.shape.clone(), req.layout).unwrap();
        // Output sizes that divide the input when possible (the regular run), else not.
        let output: Vec<usize> = req.shape.spatial.iter().zip(&divisors).map(|(&i, &d)| (i / d).max(1)).collect();
        let (want, want_idx) = reference::adaptive_pool(&x.view(), &output, max).unwrap();
        let portable = with_isa(poolgrad::simd::Isa::Portable, || AvgPool::adaptive(&output).forward(&x.view())).unwrap();
        for isa in available() {
            if max {
                let pool = MaxPool::adaptive(&output);
                let got = with_isa(isa, || pool.forward_with_indices(&x.view())).unwrap();
                prop_assert!(same_bits(got.output.data(), want.data()), "{}", isa.name());
                prop_assert_eq!(got.indices.data(), want_idx.data(), "{}", isa.name());
                check_compact(&pool, &x, &want, &want_idx, isa)?;
            } else {
                let got = with_isa(isa, || AvgPool::adaptive(&output).forward(&x.view())).unwrap();
                prop_assert!(same_bits(got.data(), portable.data()), "{}", isa.name());
                let close = got.data().iter().zip(want.data()).all(|(a, b)| {
                    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-6 * a.abs().max(1.0)
                });
                prop_assert!(close, "{} vs reference", isa.name());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 60, max_shrink_iters: 256, ..ProptestConfig::default() })]

    /// Global pooling: channels-first planes go through the interleaved plane groups.
    #[test]
    fn global_every_isa(req in request(), seed in any::<u64>()) {
        let x = Tensor::new(values(req.shape.numel().unwrap(), seed, true), req.shape.clone(), req.layout).unwrap();
        let (want, want_idx) = reference::adaptive_pool(&x.view(), &[1], true).unwrap();
        let (want_sum, _) = reference::adaptive_pool(&x.view(), &[1], false).unwrap();
        let portable = with_isa(poolgrad::simd::Isa::Portable, || AvgPool::global().forward(&x.view())).unwrap();
        for isa in available() {
            let got = with_isa(isa, || MaxPool::global().forward_with_indices(&x.view())).unwrap();
            prop_assert!(same_bits(got.output.data(), want.data()), "{}", isa.name());
            prop_assert_eq!(got.indices.data(), want_idx.data(), "{}", isa.name());
            check_compact(&MaxPool::global(), &x, &want, &want_idx, isa)?;
            let avg = with_isa(isa, || AvgPool::global().forward(&x.view())).unwrap();
            prop_assert!(same_bits(avg.data(), portable.data()), "{}", isa.name());
            let close = avg.data().iter().zip(want_sum.data()).all(|(a, b)| {
                (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-5 * a.abs().max(1.0)
            });
            prop_assert!(close, "{} vs reference", isa.name());
        }
    }
}

/// Large contiguous windows (the range-maximum table path): 1-D and 2-D, channels-first,
/// kernels up to 17 (dilation 1), any stride, padding and ceil mode, short and long rows.
fn large_windows() -> impl Strategy<Value = Request> {
    (1..=2usize)
        .prop_flat_map(|rank| {
            (
                prop::collection::vec(1..=40usize, rank),
                prop::collection::vec(1..=17usize, rank),
                prop::collection::vec(1..=3usize, rank),
                prop::collection::vec(0..=8usize, rank),
                any::<bool>(),
                1..=20usize,
            )
        })
        .prop_map(|(mut spatial, kernel, stride, pads, ceil, planes)| {
            let rank = kernel.len();
            if rank == 1 {
                spatial[0] *= 20;
            }
            Request {
                shape: Shape::new(1, planes, &spatial),
                layout: Layout::ChannelsFirst,
                geometry: PoolGeometry::new(&kernel)
                    .stride(&stride)
                    .padding(Padding::Symmetric(pads.iter().zip(&kernel).map(|(p, k)| p % (k / 2 + 1)).collect()))
                    .ceil_mode(ceil),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, max_shrink_iters: 256, ..ProptestConfig::default() })]

    #[test]
    fn max_large_windows_every_isa(req in large_windows(), seed in any::<u64>(), specials in any::<bool>()) {
        check_max(&req, seed, specials)?;
    }
}

/// The range-maximum path's compact taps on planes 2^16 or more cells along a side,
/// where the argmax's row and column do not fit 16 bits each and the taps come by
/// division (`sparse::plane`), and just under that, where they are packed: 1-D rows of
/// 65 535 and 70 000 cells, and a 2-D plane 65 540 rows high.
#[test]
fn max_large_windows_past_16_bit_sides() {
    let requests = [
        (vec![65_535], vec![17], vec![1], vec![8], false),
        (vec![70_000], vec![17], vec![1], vec![8], false),
        (vec![70_000], vec![31], vec![3], vec![5], true),
        (vec![65_540, 2], vec![17, 2], vec![1, 1], vec![8, 0], false),
    ];
    for (seed, (spatial, kernel, stride, pads, ceil)) in requests.into_iter().enumerate() {
        let req = Request {
            shape: Shape::new(1, 2, &spatial),
            layout: Layout::ChannelsFirst,
            geometry: PoolGeometry::new(&kernel).stride(&stride).padding(Padding::Symmetric(pads)).ceil_mode(ceil),
        };
        check_max(&req, seed as u64, seed % 2 == 1).unwrap_or_else(|e| panic!("{:?}: {e}", req.shape));
    }
}

/// Windows large enough for the separable path (one dim at a time): 2-D and 3-D, both
/// layouts (channels-first planes without long rows are interleaved 16 at a time),
/// kernels up to 13 with stride 1 (the SPPF case), dilation, padding, ceil mode, 1–40
/// channels (chunk remainders, and too few channels for the path), 2-D planes up to 24
/// cells a side.
fn separable_windows() -> impl Strategy<Value = Request> {
    (2..=3usize)
        .prop_flat_map(|rank| {
            (
                prop::collection::vec(1..=24usize, rank),
                prop::collection::vec(1..=13usize, rank),
                prop::collection::vec(1..=2usize, rank),
                prop::collection::vec(1..=2usize, rank),
                prop::collection::vec(0..=6usize, 2 * rank),
                any::<bool>(),
                any::<bool>(),
                1..=40usize,
            )
        })
        .prop_map(|(spatial, kernel, stride, dilation, pads, ceil, last, channels)| {
            let rank = kernel.len();
            let kernel: Vec<usize> = kernel.iter().map(|&k| if rank == 3 { k.min(5) } else { k }).collect();
            // 2-D planes up to 24 wide, so 13-tap windows have complete runs too.
            let spatial: Vec<usize> = spatial.iter().map(|&n| if rank == 3 { n.min(14) } else { n }).collect();
            let stride: Vec<usize> = stride.iter().map(|&s| if ceil { s } else { s.min(1) }).collect();
            let begin = pads[..rank].iter().zip(&kernel).map(|(p, k)| p % (k / 2 + 1)).collect();
            let end = pads[rank..].iter().zip(&kernel).map(|(p, k)| p % (k / 2 + 1)).collect();
            Request {
                shape: Shape::new(1, channels, &spatial),
                layout: if last { Layout::ChannelsLast } else { Layout::ChannelsFirst },
                geometry: PoolGeometry::new(&kernel)
                    .stride(&stride)
                    .dilation(&dilation)
                    .padding(Padding::Explicit { begin, end })
                    .ceil_mode(ceil),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, max_shrink_iters: 256, ..ProptestConfig::default() })]

    /// Average pooling over the same large windows: summed one dim at a time where
    /// `sums_in_window_order` says so, the same bits under every instruction set and
    /// thread count and in both layouts, within the summation bound of the exact means
    /// and gradients; elsewhere the reference's bits.
    #[test]
    fn avg_separable_windows_every_isa(
        req in separable_windows(), seed in any::<u64>(), include in any::<bool>(), divisor in prop::option::of(1..10usize),
    ) {
        let x = Tensor::new(real_values(req.shape.numel().unwrap(), seed), req.shape.clone(), req.layout).unwrap();
        let Ok(want) = reference::avg_pool(&x.view(), &req.geometry, include, divisor) else { return Ok(()) };
        let pool = AvgPool::new(req.geometry.clone()).count_include_pad(include).divisor_override(divisor);
        let first = with_isa(poolgrad::simd::Isa::Portable, || pool.forward(&x.view())).unwrap();
        for isa in available() {
            for threads in [1, 2] {
                let threads = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let got = threads.install(|| with_isa(isa, || pool.forward(&x.view()))).unwrap();
                prop_assert!(same_bits(got.data(), first.data()), "{} differs", isa.name());
            }
        }
        if pool.sums_in_window_order(x.shape(), req.layout).unwrap() {
            prop_assert!(same_bits(first.data(), want.data()), "in window order, not the reference's bits");
        } else {
            check_avg_bound(&x, &req.geometry, include, divisor, &first)?;
        }
        // The other layout sums in the same order: the same bits, transposed.
        let other = if req.layout == Layout::ChannelsLast { Layout::ChannelsFirst } else { Layout::ChannelsLast };
        let (c, cells) = (req.shape.channels, req.shape.spatial.iter().product::<usize>());
        let moved = |data: &[f32], from_last: bool| -> Vec<f32> {
            (0..c * cells).map(|i| if from_last { data[(i % cells) * c + i / cells] } else { data[(i % c) * cells + i / c] }).collect()
        };
        let x_other = Tensor::new(moved(x.data(), req.layout == Layout::ChannelsLast), req.shape.clone(), other).unwrap();
        let y_other = pool.forward(&x_other.view()).unwrap();
        let out_cells = first.data().len() / c;
        let back: Vec<f32> = (0..c * out_cells)
            .map(|i| if other == Layout::ChannelsLast { y_other.data()[(i % out_cells) * c + i / out_cells] } else { y_other.data()[(i % c) * out_cells + i / c] })
            .collect();
        let g = Tensor::new(real_values(want.data().len(), seed ^ 7), want.shape().clone(), req.layout).unwrap();
        let want_gx = reference::avg_pool_backward(&x.view(), &g.view(), &req.geometry, include, divisor).unwrap();
        // One window over every cell of the plane: channels-first sums each plane with 16
        // partial sums (global pooling's path), so only the bound holds between layouts.
        let whole_plane = out_cells == 1 && want_gx.data().iter().all(|&v| v != 0.0);
        prop_assert!(whole_plane || same_bits(&back, first.data()), "the layouts differ");
        let gx = pool.backward(&x.view(), &g.view()).unwrap();
        for isa in available() {
            let again = with_isa(isa, || pool.backward(&x.view(), &g.view())).unwrap();
            prop_assert!(same_bits(again.data(), gx.data()), "backward {} differs", isa.name());
        }
        if pool.sums_in_window_order(x.shape(), req.layout).unwrap() {
            prop_assert!(same_bits(gx.data(), want_gx.data()), "backward");
        } else {
            check_avg_grad_bound(&x, &g, &req.geometry, include, divisor, &gx)?;
        }
    }

    #[test]
    fn max_separable_windows_every_isa(req in separable_windows(), seed in any::<u64>(), specials in any::<bool>()) {
        check_max(&req, seed, specials)?;
    }
}

/// Channels-last 5x5 stride-1 windows over a plane large enough for the separable max
/// path (40x40 or more; smaller planes take the direct scan) and with long rows: the
/// row-at-a-time version then keeps fewer lanes than the block has in its ring of row
/// maxima (1 MiB: 5 rows x 700 outputs x 8 bytes leave room for 32 of 48 or 40 lanes), so
/// it goes over the block in two passes, the second a partial chunk.
#[test]
fn max_rows_of_many_lanes_in_several_passes() {
    for (channels, specials) in [(48, false), (48, true), (40, false)] {
        let geometry = PoolGeometry::new(&[5, 5]).stride(&[1, 1]).padding(Padding::Symmetric(vec![2, 2]));
        let req = Request { shape: Shape::new(1, channels, &[40, 700]), layout: Layout::ChannelsLast, geometry };
        check_max(&req, channels as u64, specials).unwrap();
    }
}

#[test]
fn compact_state_rejects_bad_input() {
    let x =
        Tensor::new((0..400).map(|v| v as f32).collect(), Shape::new(1, 1, &[20, 20]), Layout::ChannelsFirst).unwrap();
    // 17x17 = 289 taps: more than one byte can number.
    let big = MaxPool::new(PoolGeometry::new(&[17, 17]));
    assert!(big.forward_compact(&x.view()).unwrap_err().to_string().contains("at most 256"));
    // A tap beyond its window is an error naming it, not a panic.
    let pool = MaxPool::new(PoolGeometry::new(&[2, 2]).stride(&[2, 2]));
    let y = pool.forward_compact(&x.view()).unwrap();
    let mut taps = y.taps.data().to_vec();
    taps[3] = 4;
    let taps = Tensor::new(taps, y.taps.shape().clone(), Layout::ChannelsFirst).unwrap();
    let g = y.output.clone();
    let e = pool.backward_compact(x.shape(), &g.view(), &taps.view()).unwrap_err();
    assert!(matches!(e, poolgrad::PoolError::InvalidTap { tap: 4, position: 3, window_taps: 4 }), "{e}");
    assert!(pool.compact_to_indices(x.shape(), &taps.view()).is_err());
    // Windows clipped by the padding have fewer taps: the corner's 2x2, the top edge's
    // 2x3, the interior's 3x3; 1-D windows likewise.
    for (geometry, shape, position, tap, window_taps) in [
        (PoolGeometry::new(&[3, 3]).stride(&[1, 1]).padding(Padding::Symmetric(vec![1, 1])), vec![20, 20], 0, 4, 4),
        (PoolGeometry::new(&[3, 3]).stride(&[1, 1]).padding(Padding::Symmetric(vec![1, 1])), vec![20, 20], 5, 6, 6),
        (PoolGeometry::new(&[3, 3]).stride(&[1, 1]).padding(Padding::Symmetric(vec![1, 1])), vec![20, 20], 45, 9, 9),
        (PoolGeometry::new(&[3]).stride(&[2]).padding(Padding::Symmetric(vec![1])), vec![400], 0, 2, 2),
        (PoolGeometry::new(&[3]).stride(&[2]).padding(Padding::Symmetric(vec![1])), vec![400], 7, 3, 3),
    ] {
        let x = Tensor::new(x.data().to_vec(), Shape::new(1, 1, &shape), Layout::ChannelsFirst).unwrap();
        let pool = MaxPool::new(geometry);
        let y = pool.forward_compact(&x.view()).unwrap();
        let mut taps = y.taps.data().to_vec();
        taps[position] = tap;
        let taps = Tensor::new(taps, y.taps.shape().clone(), Layout::ChannelsFirst).unwrap();
        let e = pool.backward_compact(x.shape(), &y.output.view(), &taps.view()).unwrap_err();
        let want = poolgrad::PoolError::InvalidTap { tap, position, window_taps };
        assert_eq!(e.to_string(), want.to_string());
        // One tap less is the window's last tap: no error.
        let mut taps = taps.data().to_vec();
        taps[position] = tap - 1;
        let taps = Tensor::new(taps, y.taps.shape().clone(), Layout::ChannelsFirst).unwrap();
        pool.backward_compact(x.shape(), &y.output.view(), &taps.view()).unwrap();
    }
    // The state is one byte per output.
    assert_eq!(std::mem::size_of_val(y.taps.data()), y.output.data().len());
}

/// The channels-last max backward from the compact state checks a position's taps
/// against its window all at once: an error still names the first bad tap in array
/// order, for windows clipped by the padding too, with a tap table per position (many
/// channels) and without one (fewer channels than a quarter of the window's taps).
#[test]
fn channels_last_compact_state_names_the_first_bad_tap() {
    let geometry = PoolGeometry::new(&[3, 3]).stride(&[1, 1]).padding(Padding::Symmetric(vec![1, 1]));
    let pool = MaxPool::new(geometry);
    for channels in [2usize, 5, 64] {
        let shape = Shape::new(2, channels, &[12, 12]);
        let x = Tensor::new(values(2 * channels * 144, 3, false), shape.clone(), Layout::ChannelsLast).unwrap();
        let y = pool.forward_compact(&x.view()).unwrap();
        let image = 144 * channels;
        // Output (row 0, column 0) has a 2x2 window, (0, 5) a 2x3 one, (5, 5) 3x3; the
        // second image's bad tap comes later in the array than the first's.
        for (position, tap, window_taps) in [(0usize, 4u8, 4usize), (5, 6, 6), (65, 9, 9)] {
            let p = image + position * channels + channels - 1;
            let mut taps = y.taps.data().to_vec();
            taps[p] = tap;
            taps[image + (position + 1) * channels] = 200;
            let bad = Tensor::new(taps.clone(), y.taps.shape().clone(), Layout::ChannelsLast).unwrap();
            let e = pool.backward_compact(x.shape(), &y.output.view(), &bad.view()).unwrap_err();
            let want = poolgrad::PoolError::InvalidTap { tap, position: p, window_taps };
            assert_eq!(e.to_string(), want.to_string(), "{channels} channels, output {position}");
            // The window's last tap is no error.
            taps[p] = tap - 1;
            taps[image + (position + 1) * channels] = 0;
            let good = Tensor::new(taps, y.taps.shape().clone(), Layout::ChannelsLast).unwrap();
            pool.backward_compact(x.shape(), &y.output.view(), &good.view()).unwrap();
        }
    }
}

/// Channels-first planes take their max backward four at a time on some CPUs, their
/// additions interleaved: an error still names the first bad index or tap in array order, not the
/// first the interleaving meets (plane 2's output 0 before plane 1's output 30 here),
/// and planes left over after the last group of four go one at a time. Elsewhere each
/// plane is a parallel job, and the first bad plane's error must win whichever job fails
/// first: on 1, 2 and 4 threads, ten times each (on 2 threads plane 2's error came
/// back in a CI run, from the job that reached its bad tap first).
#[test]
fn stepped_planes_report_the_first_bad_state_in_order() {
    for threads in [1, 2, 4] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        for _ in 0..10 {
            pool.install(check_first_bad_state_in_order);
        }
    }
}

fn check_first_bad_state_in_order() {
    // 40x40, 3x3 stride 1: a window table over 32 KiB, so the compact state's cells are
    // computed, not looked up.
    let geometry = PoolGeometry::new(&[3, 3]).stride(&[1, 1]).padding(Padding::Symmetric(vec![1, 1]));
    let pool = MaxPool::new(geometry);
    for channels in [4, 6] {
        let shape = Shape::new(1, channels, &[40, 40]);
        let x = Tensor::new(values(channels * 1600, 7, false), shape.clone(), Layout::ChannelsFirst).unwrap();
        let forward = pool.forward_with_indices(&x.view()).unwrap();
        let (y, indices) = (forward.output, forward.indices);
        let plane = 1600;
        for (bad_plane, bad_output) in [(1usize, 30usize), (channels - 1, 5)] {
            let mut bad = indices.data().to_vec();
            bad[2 * plane] = 1600;
            bad[bad_plane * plane + bad_output] = -2;
            let (first, index) = if bad_plane < 2 { (bad_plane * plane + bad_output, -2) } else { (2 * plane, 1600) };
            let bad = Tensor::new(bad, y.shape().clone(), Layout::ChannelsFirst).unwrap();
            let e = pool.backward_with_indices(x.shape(), &y.view(), &bad.view()).unwrap_err();
            let want = poolgrad::PoolError::InvalidIndex { index, position: first, plane_size: plane };
            assert_eq!(e.to_string(), want.to_string(), "{channels} channels, bad plane {bad_plane}");
        }
        let compact = pool.forward_compact(&x.view()).unwrap();
        let mut taps = compact.taps.data().to_vec();
        taps[2 * plane + 41] = 9;
        taps[plane + 70] = 200;
        let taps = Tensor::new(taps, compact.taps.shape().clone(), Layout::ChannelsFirst).unwrap();
        let e = pool.backward_compact(x.shape(), &y.view(), &taps.view()).unwrap_err();
        let want = poolgrad::PoolError::InvalidTap { tap: 200, position: plane + 70, window_taps: 9 };
        assert_eq!(e.to_string(), want.to_string(), "{channels} channels");
    }
}

#[test]
fn this_cpu_runs_at_least_the_portable_build() {
    let isas = available();
    assert_eq!(isas[0], poolgrad::simd::Isa::Portable);
    // On x86-64 CI machines AVX2 is there; say which builds these tests covered.
    eprintln!("instruction sets tested: {:?}", isas.iter().map(|i| i.name()).collect::<Vec<_>>());
}

/// Real-valued data of mixed signs and magnitudes (no ties, no specials).
fn real_values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let unit = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            unit * [1.0f32, 1e3, 1e-3, 7.0][(s >> 20) as usize % 4]
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 80, max_shrink_iters: 256, ..ProptestConfig::default() })]

    /// Channels-first planes reduced to one value (global average pooling, and adaptive
    /// or regular windows covering the whole plane) are summed with partial sums, not in
    /// the plain loop's order. Their promise: the same bits for every thread count and
    /// instruction set, and within `(n + rank + 1) · eps · Σ|x| / N` of the exact mean
    /// (n cells, N the divisor, one rounding per addition and per division), the exact
    /// mean computed here in f64. The backward, a fill, stays bitwise the reference's.
    #[test]
    fn whole_plane_means_within_the_summation_bound(
        spatial in prop::collection::vec(1..=40usize, 1..=3), planes in 1..=20usize, seed in any::<u64>(), how in 0..3usize,
    ) {
        let shape = Shape::new(1, planes, &spatial);
        let x = Tensor::new(real_values(shape.numel().unwrap(), seed), shape.clone(), Layout::ChannelsFirst).unwrap();
        let pool = match how {
            0 => AvgPool::global(),
            1 => AvgPool::adaptive(&[1]),
            _ => AvgPool::new(PoolGeometry::new(&spatial)),
        };
        let n: usize = spatial.iter().product();
        let first = with_isa(poolgrad::simd::Isa::Portable, || pool.forward(&x.view())).unwrap();
        for isa in available() {
            for threads in [1, 2] {
                let threads = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let got = threads.install(|| with_isa(isa, || pool.forward(&x.view()))).unwrap();
                prop_assert!(same_bits(got.data(), first.data()), "{} differs", isa.name());
            }
        }
        for (plane, &mean) in x.data().chunks_exact(n).zip(first.data()) {
            let exact = plane.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            let magnitude = plane.iter().map(|&v| (v as f64).abs()).sum::<f64>() / n as f64;
            let bound = (n + spatial.len() + 1) as f64 * f32::EPSILON as f64 * magnitude;
            prop_assert!(
                (mean as f64 - exact).abs() <= bound,
                "mean {mean} vs exact {exact}: error {} over the bound {bound}", (mean as f64 - exact).abs()
            );
        }
        // Channels-last sums each channel over the cells in order: the plain loop's bits
        // (one channel is the channels-first memory, and sums as such).
        let nxc: Vec<f32> = (0..n).flat_map(|cell| (0..planes).map(move |p| (p, cell))).map(|(p, cell)| x.data()[p * n + cell]).collect();
        let nxc = Tensor::new(nxc, shape.clone(), Layout::ChannelsLast).unwrap();
        // PyTorch's divisors: adaptive (and global) windows divide one dim at a time,
        // regular ones by the window size at once.
        let divide = |sum: f32| if how == 2 { sum / n as f32 } else { spatial.iter().fold(sum, |s, &d| s / d as f32) };
        let want: Vec<f32> = if planes == 1 { first.data().to_vec() } else { x.data().chunks_exact(n).map(|plane| divide(plane.iter().fold(0.0f32, |a, &v| a + v))).collect() };
        for isa in available() {
            let got = with_isa(isa, || pool.forward(&nxc.view())).unwrap();
            prop_assert!(same_bits(got.data(), &want), "channels-last {}", isa.name());
        }
        let g = Tensor::new(real_values(planes, seed ^ 1), first.shape().clone(), Layout::ChannelsFirst).unwrap();
        let gx = pool.backward(&x.view(), &g.view()).unwrap();
        let want_gx: Vec<f32> = g.data().iter().flat_map(|&v| {
            std::iter::repeat_n(0.0f32 + divide(v), n)
        }).collect();
        prop_assert!(same_bits(gx.data(), &want_gx), "backward");
    }
}

/// Global average pooling of channels-first f16 and bf16 planes (summed with partial
/// sums, as f32 planes are): the same bits under every instruction set and thread count,
/// and the f32 means of the widened values, rounded once; the backward's shares bitwise.
/// Planes with and without a partial chunk of 16, NaN and infinities (a 16-bit NaN mean
/// is the canonical NaN).
#[test]
fn whole_plane_means_in_16_bit_types() {
    fn check<T: poolgrad::Element>(from_f32: fn(f32) -> T, to_f32: fn(T) -> f32) {
        for (i, spatial) in
            [&[7usize, 7][..], &[1, 1], &[3, 5], &[4, 4], &[40, 40], &[300], &[17]].into_iter().enumerate()
        {
            let shape = Shape::new(3, 19, spatial);
            let data: Vec<T> = values(shape.numel().unwrap(), 90 + i as u64, true).into_iter().map(from_f32).collect();
            let wide: Vec<f32> = data.iter().map(|&v| to_f32(v)).collect();
            let x = Tensor::new(data, shape.clone(), Layout::ChannelsFirst).unwrap();
            let x32 = Tensor::new(wide, shape.clone(), Layout::ChannelsFirst).unwrap();
            let pool = AvgPool::global();
            let means32 = with_isa(poolgrad::simd::Isa::Portable, || pool.forward(&x32.view())).unwrap();
            // The f32 path keeps whichever NaN its additions keep; 16-bit means the
            // canonical one.
            let want: Vec<T> =
                means32.data().iter().map(|&m| from_f32(if m.is_nan() { f32::NAN } else { m })).collect();
            // Channels-last: each channel's cells added in order, as f32 does (a NaN mean
            // may be another NaN there).
            let n: usize = spatial.iter().product();
            // Channels 19 at a time: `nxc[(b * n + cell) * 19 + c] = ncx[(b * 19 + c) * n + cell]`.
            let nxc_of = |k: usize| (k / 19 / n) * 19 * n + (k % 19) * n + (k / 19) % n;
            let x_nxc = Tensor::new(
                (0..x.data().len()).map(|k| x.data()[nxc_of(k)]).collect(),
                shape.clone(),
                Layout::ChannelsLast,
            )
            .unwrap();
            let x32_nxc = Tensor::new(
                (0..x32.data().len()).map(|k| x32.data()[nxc_of(k)]).collect(),
                shape.clone(),
                Layout::ChannelsLast,
            )
            .unwrap();
            let means_nxc: Vec<T> =
                pool.forward(&x32_nxc.view()).unwrap().data().iter().map(|&m| from_f32(m)).collect();
            for isa in available() {
                let got = with_isa(isa, || pool.forward(&x_nxc.view())).unwrap();
                let same = got.data().iter().zip(&means_nxc).all(|(&a, &b)| {
                    let (a, b) = (to_f32(a), to_f32(b));
                    a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan()
                });
                assert!(same, "channels-last {} {spatial:?} {}", T::NAME, isa.name());
            }
            // The backward: every cell of a plane `0 + g / h / w` (global pooling divides
            // one dim at a time), rounded to `T` once, -0 turned +0.
            let grads: Vec<T> = values(3 * 19, 95 + i as u64, true).into_iter().map(from_f32).collect();
            let g = Tensor::new(grads.clone(), means32.shape().clone(), Layout::ChannelsFirst).unwrap();
            let want_grad: Vec<T> = grads
                .iter()
                .flat_map(|&gv| {
                    let share = from_f32(spatial.iter().fold(to_f32(gv), |s, &d| s / d as f32));
                    std::iter::repeat_n(if to_f32(share) == 0.0 { from_f32(0.0) } else { share }, n)
                })
                .collect();
            let bits = |v: &[T]| v.iter().map(|&v| to_f32(v).to_bits()).collect::<Vec<_>>();
            for isa in available() {
                for threads in [1, 2] {
                    let threads = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                    let got = threads.install(|| with_isa(isa, || pool.forward(&x.view()))).unwrap();
                    assert_eq!(bits(got.data()), bits(&want), "{} {spatial:?} {}", T::NAME, isa.name());
                    let got = threads.install(|| with_isa(isa, || pool.backward(&x.view(), &g.view()))).unwrap();
                    assert_eq!(bits(got.data()), bits(&want_grad), "backward {} {spatial:?} {}", T::NAME, isa.name());
                }
            }
        }
    }
    check(poolgrad::f16::from_f32, poolgrad::f16::to_f32);
    check(poolgrad::bf16::from_f32, poolgrad::bf16::to_f32);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 60, max_shrink_iters: 256, ..ProptestConfig::default() })]

    /// The `*_into` variants write every element of caller-owned buffers: into buffers
    /// full of NaN (and stale indices), reused twice, they give the allocating calls' bits.
    #[test]
    fn caller_owned_buffers_are_fully_overwritten(req in request(), seed in any::<u64>(), include in any::<bool>()) {
        let x = Tensor::new(values(req.shape.numel().unwrap(), seed, true), req.shape.clone(), req.layout).unwrap();
        let max = MaxPool::new(req.geometry.clone());
        let avg = AvgPool::new(req.geometry.clone()).count_include_pad(include);
        let out_shape = match max.output_shape(x.shape()) {
            Ok(shape) => shape,
            Err(e) => {
                // A geometry the allocating call refuses is refused the same way.
                let into = max.forward_with_indices_into(&x.view(), &mut [], &mut []).unwrap_err();
                prop_assert_eq!(into.to_string(), e.to_string());
                return Ok(());
            }
        };
        let (n_in, n_out) = (req.shape.numel().unwrap(), out_shape.numel().unwrap());
        let g = Tensor::new(values(n_out, seed ^ 7, false), out_shape.clone(), req.layout).unwrap();
        let (mut y, mut idx, mut taps, mut gx) = (vec![f32::NAN; n_out], vec![-5i64; n_out], vec![255u8; n_out], vec![f32::NAN; n_in]);
        let want = max.forward_with_indices(&x.view()).unwrap();
        let want_gx = max.backward_with_indices(x.shape(), &g.view(), &want.indices.view()).unwrap();
        for _ in 0..2 {
            prop_assert_eq!(max.forward_with_indices_into(&x.view(), &mut y, &mut idx).unwrap(), out_shape.clone());
            prop_assert!(same_bits(&y, want.output.data()));
            prop_assert_eq!(&idx[..], want.indices.data());
            max.backward_with_indices_into(x.shape(), &g.view(), &want.indices.view(), &mut gx).unwrap();
            prop_assert!(same_bits(&gx, want_gx.data()));
            gx.fill(f32::NAN);
        }
        if let Ok(compact) = max.forward_compact(&x.view()) {
            y.fill(f32::NAN);
            max.forward_compact_into(&x.view(), &mut y, &mut taps).unwrap();
            prop_assert!(same_bits(&y, compact.output.data()));
            prop_assert_eq!(&taps[..], compact.taps.data());
            max.backward_compact_into(x.shape(), &g.view(), &compact.taps.view(), &mut gx).unwrap();
            prop_assert!(same_bits(&gx, want_gx.data()));
        }
        y.fill(f32::NAN);
        gx.fill(f32::NAN);
        avg.forward_into(&x.view(), &mut y).unwrap();
        prop_assert!(same_bits(&y, avg.forward(&x.view()).unwrap().data()));
        avg.backward_into(x.shape(), &g.view(), &mut gx).unwrap();
        prop_assert!(same_bits(&gx, avg.backward(&x.view(), &g.view()).unwrap().data()));
        // LP pooling: PyTorch's formula where the geometry allows it, ONNX's elsewhere, and
        // p = ∞ (PyTorch's only: refused for padded or dilated windows, the same way).
        for p in [2.0, 3.5, f64::INFINITY] {
            let lp = LpPool::new(req.geometry.clone(), p);
            y.fill(f32::NAN);
            match lp.forward(&x.view()) {
                Ok(want_y) => {
                    prop_assert_eq!(lp.forward_into(&x.view(), &mut y).unwrap(), out_shape.clone());
                    prop_assert!(same_bits(&y, want_y.data()), "LP p = {} forward", p);
                    gx.fill(f32::NAN);
                    lp.backward_into(&x.view(), &g.view(), &mut gx).unwrap();
                    prop_assert!(same_bits(&gx, lp.backward(&x.view(), &g.view()).unwrap().data()), "LP p = {} backward", p);
                }
                Err(e) => prop_assert_eq!(lp.forward_into(&x.view(), &mut y).unwrap_err().to_string(), e.to_string()),
            }
        }
        // A buffer one element short or long is an error naming it, and is left alone.
        let mut short = vec![1.0f32; n_out - 1];
        let e = avg.forward_into(&x.view(), &mut short).unwrap_err().to_string();
        prop_assert!(e.contains("output") && e.contains(&format!("{}", n_out - 1)), "{e}");
        prop_assert!(short.iter().all(|&v| v == 1.0));
        let mut long = vec![0.0f32; n_in + 1];
        let e = max.backward_with_indices_into(x.shape(), &g.view(), &want.indices.view(), &mut long).unwrap_err();
        prop_assert!(e.to_string().contains("grad_input"), "{e}");
    }
}

/// Channels-last inputs big enough that each image's outputs are split into several
/// parallel blocks of whole output positions (written in order into fresh buffers):
/// values, indices and compact taps as the reference's, through the allocating calls
/// and the `*_into` calls on buffers full of NaN / garbage.
#[test]
fn channels_last_images_split_into_blocks() {
    // 64+ channels with windows that read the input about once take the tap-at-a-time
    // loops; fewer channels or overlapping windows the chunked ones.
    let max_cases: [(&[usize], PoolGeometry); 5] = [
        (&[2, 64, 64, 64], PoolGeometry::new(&[2, 2])),
        (&[1, 80, 17, 17], PoolGeometry::new(&[2, 2]).padding(Padding::Symmetric(vec![1, 1])).ceil_mode(true)),
        (&[2, 72, 48, 48], PoolGeometry::new(&[2, 2])),
        (
            &[1, 40, 63, 63],
            PoolGeometry::new(&[3, 3]).stride(&[2, 2]).padding(Padding::Symmetric(vec![1, 1])).ceil_mode(true),
        ),
        (&[1, 32, 16, 32, 32], PoolGeometry::new(&[2, 2, 2])),
    ];
    for (i, (dims, geometry)) in max_cases.into_iter().enumerate() {
        let req = Request { shape: Shape::new(dims[0], dims[1], &dims[2..]), layout: Layout::ChannelsLast, geometry };
        check_max(&req, i as u64, true).unwrap();
        let x = Tensor::new(values(req.shape.numel().unwrap(), i as u64, true), req.shape.clone(), req.layout).unwrap();
        let (want, want_idx) = reference::max_pool(&x.view(), &req.geometry).unwrap();
        let pool = MaxPool::new(req.geometry.clone());
        let (mut y, mut idx) = (vec![f32::NAN; want.data().len()], vec![-7i64; want.data().len()]);
        pool.forward_with_indices_into(&x.view(), &mut y, &mut idx).unwrap();
        assert!(same_bits(&y, want.data()), "case {i} into");
        assert_eq!(idx, want_idx.data(), "case {i} into");
    }
    // Windows wholly in the padding (ONNX pads as wide as the kernel) on the tap-at-a-time
    // loop: the lowest value and index -1 (compact: tap 0).
    let geometry = PoolGeometry::new(&[2, 2]).padding(Padding::Explicit { begin: vec![2, 0], end: vec![0, 2] });
    let req = Request { shape: Shape::new(1, 64, &[6, 6]), layout: Layout::ChannelsLast, geometry };
    let x = Tensor::new(values(req.shape.numel().unwrap(), 9, true), req.shape.clone(), req.layout).unwrap();
    let (_, want_idx) = reference::max_pool(&x.view(), &req.geometry).unwrap();
    assert!(want_idx.data().contains(&-1), "the case has empty windows");
    check_max(&req, 9, true).unwrap();
    let avg_cases: [(&[usize], PoolGeometry, bool); 3] = [
        (&[2, 128, 56, 56], PoolGeometry::new(&[2, 2]), true),
        (&[1, 80, 17, 17], PoolGeometry::new(&[2, 2]).padding(Padding::Symmetric(vec![1, 1])).ceil_mode(true), false),
        (&[1, 72, 40, 40], PoolGeometry::new(&[3, 3]).stride(&[1, 1]).padding(Padding::Symmetric(vec![1, 1])), false),
    ];
    for (i, (dims, geometry, include)) in avg_cases.into_iter().enumerate() {
        let shape = Shape::new(dims[0], dims[1], &dims[2..]);
        let x =
            Tensor::new(real_values(shape.numel().unwrap(), i as u64), shape.clone(), Layout::ChannelsLast).unwrap();
        let want = reference::avg_pool(&x.view(), &geometry, include, None).unwrap();
        let pool = AvgPool::new(geometry).count_include_pad(include);
        assert!(pool.sums_in_window_order(&shape, Layout::ChannelsLast).unwrap());
        for isa in available() {
            let got = with_isa(isa, || pool.forward(&x.view())).unwrap();
            assert!(same_bits(got.data(), want.data()), "avg case {i} {}", isa.name());
        }
        let mut y = vec![f32::NAN; want.data().len()];
        pool.forward_into(&x.view(), &mut y).unwrap();
        assert!(same_bits(&y, want.data()), "avg case {i} into");
    }
}

/// Overlapping channels-last windows over 64+ channels: the forward sums 64 `f32`
/// channels at a time in registers, then 16, then one (`f64` 16, then one; `f16` and
/// `bf16` widen each tap as they add it under AVX-512, and go through a widened copy
/// under the others). Bitwise the reference's in all four types, under every instruction
/// set, with NaN and infinities.
#[test]
fn avg_overlapping_windows_over_many_channels() {
    let cases: [(usize, &[usize], PoolGeometry); 4] = [
        (192, &[9, 9], PoolGeometry::new(&[3, 3]).stride(&[1, 1]).padding(Padding::Symmetric(vec![1, 1]))),
        (
            150,
            &[8, 7],
            PoolGeometry::new(&[3, 2]).stride(&[2, 1]).padding(Padding::Symmetric(vec![1, 1])).ceil_mode(true),
        ),
        (136, &[21], PoolGeometry::new(&[5]).stride(&[2]).dilation(&[2]).padding(Padding::Symmetric(vec![2]))),
        (81, &[4, 5, 5], PoolGeometry::new(&[2, 3, 3]).stride(&[1, 2, 1])),
    ];
    for (i, (channels, spatial, geometry)) in cases.into_iter().enumerate() {
        let shape = Shape::new(2, channels, spatial);
        let data = values(shape.numel().unwrap(), 40 + i as u64, true);
        let x = Tensor::new(data.clone(), shape.clone(), Layout::ChannelsLast).unwrap();
        let x64 =
            Tensor::new(data.iter().map(|&v| f64::from(v)).collect(), shape.clone(), Layout::ChannelsLast).unwrap();
        let halves = data.iter().map(|&v| poolgrad::f16::from_f32(v)).collect();
        let x16 = Tensor::new(halves, shape.clone(), Layout::ChannelsLast).unwrap();
        let brains = data.iter().map(|&v| poolgrad::bf16::from_f32(v)).collect();
        let x_bf16 = Tensor::new(brains, shape.clone(), Layout::ChannelsLast).unwrap();
        for (include, divisor) in [(true, None), (false, None), (false, Some(7))] {
            let pool = AvgPool::new(geometry.clone()).count_include_pad(include).divisor_override(divisor);
            assert!(pool.sums_in_window_order(&shape, Layout::ChannelsLast).unwrap(), "case {i}");
            let want = reference::avg_pool(&x.view(), &geometry, include, divisor).unwrap();
            let want64 = reference::avg_pool(&x64.view(), &geometry, include, divisor).unwrap();
            let want16 = reference::avg_pool(&x16.view(), &geometry, include, divisor).unwrap();
            let want_bf16 = reference::avg_pool(&x_bf16.view(), &geometry, include, divisor).unwrap();
            for isa in available() {
                let got = with_isa(isa, || pool.forward(&x.view())).unwrap();
                assert!(same_bits(got.data(), want.data()), "case {i} {include} {divisor:?} {}", isa.name());
                let got64 = with_isa(isa, || pool.forward(&x64.view())).unwrap();
                assert!(same_bits(got64.data(), want64.data()), "f64 case {i} {include} {divisor:?} {}", isa.name());
                let got16 = with_isa(isa, || pool.forward(&x16.view())).unwrap();
                assert!(same_bits(got16.data(), want16.data()), "f16 case {i} {include} {divisor:?} {}", isa.name());
                let got_bf16 = with_isa(isa, || pool.forward(&x_bf16.view())).unwrap();
                let name = isa.name();
                assert!(same_bits(got_bf16.data(), want_bf16.data()), "bf16 case {i} {include} {divisor:?} {name}");
            }
        }
    }
}

/// The channels-last f16 average backward over channels in multiples of 32, which adds
/// in f16 itself where the CPU has AVX-512 FP16 (192 lanes at a time, then 32): bitwise
/// the reference's (each addition rounded to f16) under every instruction set, with NaN
/// and infinities in the gradient.
#[test]
fn f16_avg_backward_over_many_channels() {
    let cases: [(usize, &[usize], PoolGeometry); 3] = [
        (192, &[9, 9], PoolGeometry::new(&[3, 3]).stride(&[1, 1]).padding(Padding::Symmetric(vec![1, 1]))),
        (
            256,
            &[8, 7],
            PoolGeometry::new(&[3, 2]).stride(&[2, 1]).padding(Padding::Symmetric(vec![1, 1])).ceil_mode(true),
        ),
        (96, &[21], PoolGeometry::new(&[5]).stride(&[2]).dilation(&[2]).padding(Padding::Symmetric(vec![2]))),
    ];
    for (i, (channels, spatial, geometry)) in cases.into_iter().enumerate() {
        let shape = Shape::new(2, channels, spatial);
        let to_half = |v: Vec<f32>| v.into_iter().map(poolgrad::f16::from_f32).collect::<Vec<_>>();
        let x = Tensor::new(
            to_half(values(shape.numel().unwrap(), 50 + i as u64, false)),
            shape.clone(),
            Layout::ChannelsLast,
        )
        .unwrap();
        for (include, divisor) in [(true, None), (false, None), (false, Some(7))] {
            let pool = AvgPool::new(geometry.clone()).count_include_pad(include).divisor_override(divisor);
            let y_shape = pool.forward(&x.view()).unwrap().shape().clone();
            let grads = to_half(values(y_shape.numel().unwrap(), 60 + i as u64, true));
            let g = Tensor::new(grads, y_shape, Layout::ChannelsLast).unwrap();
            let want = reference::avg_pool_backward(&x.view(), &g.view(), &geometry, include, divisor).unwrap();
            for isa in available() {
                let got = with_isa(isa, || pool.backward(&x.view(), &g.view())).unwrap();
                assert!(same_bits(got.data(), want.data()), "case {i} {include} {divisor:?} {}", isa.name());
            }
        }
    }
}

/// The channels-first average forward and backward of stride-1 windows, which sum a
/// plane with zero borders as a stencil (`kernels/stencil.rs`; the 16-bit forwards on a
/// widened copy): bitwise the reference's in all four types under every instruction set,
/// with NaN, infinities and -0 in the input and the gradient.
/// 1-D and 2-D, rows shorter than a vector, of a whole vector and longer with a
/// remainder; square and oblong windows; no, symmetric, one-sided and the largest
/// padding; ceil mode; both counts and a fixed divisor.
#[test]
fn avg_of_stride_1_windows_channels_first() {
    let one_sided = |begin: Vec<usize>, end: Vec<usize>| Padding::Explicit { begin, end };
    let cases: Vec<(&[usize], PoolGeometry)> = vec![
        (&[28, 28], PoolGeometry::new(&[3, 3]).padding(Padding::Symmetric(vec![1, 1]))),
        (&[7, 16], PoolGeometry::new(&[3, 3])),
        (&[9, 37], PoolGeometry::new(&[5, 3]).padding(Padding::Symmetric(vec![2, 1])).ceil_mode(true)),
        (&[6, 5], PoolGeometry::new(&[2, 4]).padding(one_sided(vec![1, 0], vec![0, 3]))),
        (&[40], PoolGeometry::new(&[4]).padding(Padding::Symmetric(vec![2]))),
        (&[3, 33], PoolGeometry::new(&[1, 7]).padding(Padding::Symmetric(vec![0, 3]))),
    ];
    for (i, (spatial, geometry)) in cases.into_iter().enumerate() {
        let geometry = geometry.stride(&vec![1; spatial.len()]);
        // 19 planes: a batch of 2 with 3 channels ... and odd plane counts per thread.
        let shape = Shape::new(2, 19, spatial);
        check_avg_bits_in_every_type(&shape, &geometry, (70 + i as u64, 80 + i as u64), &format!("case {i}"));
    }
}

/// The channels-first average backward of windows that cover each cell at most once
/// (`kernels::window::Tiling`: 2x2 stride 2 and the like), which writes each cell's one
/// share, or 0, row by row: bitwise the reference's in all four types under every
/// instruction set, with NaN, infinities and -0 in the gradient (a -0 share gives +0, as
/// the reference's sum from zero does). Windows that tile the row evenly, with gaps
/// between them (stride above the kernel), dilated; partial border windows (padding, ceil
/// mode); rows no window covers; 1-D to 3-D; both counts and a fixed divisor. Rows of 16
/// cells or more (narrower ones take the gather).
#[test]
fn avg_backward_of_tiling_windows_channels_first() {
    let cases: Vec<(&[usize], PoolGeometry)> = vec![
        (&[28, 28], PoolGeometry::new(&[2, 2]).stride(&[2, 2])),
        (&[7, 19], PoolGeometry::new(&[2, 2]).stride(&[2, 2]).ceil_mode(true)),
        (&[9, 37], PoolGeometry::new(&[2, 2]).stride(&[2, 2]).padding(Padding::Symmetric(vec![1, 1]))),
        (&[10, 35], PoolGeometry::new(&[3, 3]).stride(&[3, 3]).ceil_mode(true)),
        (&[9, 40], PoolGeometry::new(&[2, 3]).stride(&[3, 4])),
        (&[8, 41], PoolGeometry::new(&[2, 2]).stride(&[4, 4]).dilation(&[2, 2])),
        (&[64], PoolGeometry::new(&[4]).stride(&[4]).padding(Padding::Symmetric(vec![2]))),
        (&[4, 6, 34], PoolGeometry::new(&[2, 3, 2]).stride(&[2, 3, 2])),
        (&[5, 33], PoolGeometry::new(&[1, 2]).stride(&[2, 2])),
    ];
    for (i, (spatial, geometry)) in cases.into_iter().enumerate() {
        // 19 planes: odd plane counts per thread.
        let shape = Shape::new(1, 19, spatial);
        check_avg_bits_in_every_type(&shape, &geometry, (90 + i as u64, 100 + i as u64), &format!("case {i}"));
    }
}

/// The bf16 stencil backward rounds its sums by Veltkamp's split where a plane's shares
/// allow it (`convert::in_bf16_split_range`) and by integer arithmetic elsewhere: planes
/// of ordinary gradients (the split), of gradients near the least normal `bf16` (shares
/// and sums subnormal), near the largest (sums that overflow), and of ordinary ones with
/// a single tiny or huge value, each bitwise the reference's under every instruction set.
#[test]
fn bf16_stride_1_backward_at_the_range_ends() {
    let geometry = PoolGeometry::new(&[3, 3]).stride(&[1, 1]).padding(Padding::Symmetric(vec![1, 1]));
    let shape = Shape::new(1, 6, &[20, 21]);
    let plane = 20 * 21;
    let x = Tensor::new(vec![poolgrad::bf16::ZERO; 6 * plane], shape.clone(), Layout::ChannelsFirst).unwrap();
    let ordinary = values(6 * plane, 7, false);
    let scales = [1.0, 2f32.powi(-124), 2f32.powi(125), 1.0, 1.0, 2f32.powi(-100)];
    let mut grads: Vec<f32> = ordinary.iter().enumerate().map(|(i, &v)| v * scales[i / plane]).collect();
    grads[3 * plane + 17] = 3.0e-39;
    grads[4 * plane + 200] = 3.0e38;
    let grads: Vec<poolgrad::bf16> = grads.iter().map(|&v| poolgrad::bf16::from_f32(v)).collect();
    let g = Tensor::new(grads, shape.clone(), Layout::ChannelsFirst).unwrap();
    for include in [true, false] {
        let pool = AvgPool::new(geometry.clone()).count_include_pad(include);
        let want = reference::avg_pool_backward(&x.view(), &g.view(), &geometry, include, None).unwrap();
        for isa in available() {
            let got = with_isa(isa, || pool.backward(&x.view(), &g.view())).unwrap();
            for (p, (got, want)) in got.data().chunks(plane).zip(want.data().chunks(plane)).enumerate() {
                assert!(same_bits(got, want), "plane {p}, count_include_pad {include}, {}", isa.name());
            }
        }
    }
}

/// The `f32` channels-last average forward over an input that starts on a cache line,
/// with whole cache lines of channels per pixel (16, 48 and 192 channels), which runs
/// under AVX-512 where the CPU has it at full width: bitwise the reference's under every
/// instruction set, and the same with the input one value off the line (AVX2 loops).
#[test]
fn avg_channels_last_forward_over_whole_cache_lines() {
    let geometries = [
        PoolGeometry::new(&[3, 3]).stride(&[1, 1]).padding(Padding::Symmetric(vec![1, 1])),
        PoolGeometry::new(&[2, 2]).stride(&[2, 2]),
        PoolGeometry::new(&[3, 3]).stride(&[2, 2]).padding(Padding::Symmetric(vec![1, 1])).ceil_mode(true),
    ];
    for (channels, geometry) in [16usize, 48, 192].into_iter().zip(geometries) {
        let shape = Shape::new(2, channels, &[9, 10]);
        let data = values(shape.numel().unwrap(), channels as u64, true);
        let mut aligned = poolgrad::aligned::AlignedBuffer::<f32>::zeroed(data.len() + 1).unwrap();
        for include in [true, false] {
            let pool = AvgPool::new(geometry.clone()).count_include_pad(include);
            for offset in [0, 1] {
                aligned[offset..][..data.len()].copy_from_slice(&data);
                let x =
                    poolgrad::TensorView::new(&aligned[offset..][..data.len()], shape.clone(), Layout::ChannelsLast)
                        .unwrap();
                let want = reference::avg_pool(&x, &geometry, include, None).unwrap();
                for isa in available() {
                    let got = with_isa(isa, || pool.forward(&x)).unwrap();
                    let case = format!("{channels} channels, offset {offset}, {include}, {}", isa.name());
                    assert!(same_bits(got.data(), want.data()), "{case}");
                }
            }
        }
    }
}

/// The average forward and backward under every instruction set, bitwise against the
/// reference's.
/// [`check_avg_bits`] of `geometry` over channels-first planes of `shape` in `f32`, `f64`,
/// `f16` and `bf16`, for both counts and a fixed divisor: the input and the gradient from
/// [`values`] with NaN, infinities and -0 (`seeds`: theirs), each summed in window order.
fn check_avg_bits_in_every_type(shape: &Shape, geometry: &PoolGeometry, seeds: (u64, u64), case: &str) {
    let data = values(shape.numel().unwrap(), seeds.0, true);
    for (include, divisor) in [(true, None), (false, None), (false, Some(7))] {
        let pool = AvgPool::new(geometry.clone()).count_include_pad(include).divisor_override(divisor);
        let x = Tensor::new(data.clone(), shape.clone(), Layout::ChannelsFirst).unwrap();
        let y_shape = pool.forward(&x.view()).unwrap().shape().clone();
        let grads = values(y_shape.numel().unwrap(), seeds.1, true);
        let g = Tensor::new(grads.clone(), y_shape.clone(), Layout::ChannelsFirst).unwrap();
        let case = format!("{case} {include} {divisor:?}");
        assert!(pool.sums_in_window_order(shape, Layout::ChannelsFirst).unwrap(), "{case}");
        check_avg_bits(&pool, geometry, &x, &g, include, divisor, &case);
        let wide = |v: &[f32]| v.iter().map(|&v| f64::from(v)).collect::<Vec<_>>();
        let x64 = Tensor::new(wide(&data), shape.clone(), Layout::ChannelsFirst).unwrap();
        let g64 = Tensor::new(wide(&grads), y_shape.clone(), Layout::ChannelsFirst).unwrap();
        check_avg_bits(&pool, geometry, &x64, &g64, include, divisor, &format!("f64 {case}"));
        let half = |v: &[f32]| v.iter().map(|&v| poolgrad::f16::from_f32(v)).collect::<Vec<_>>();
        let x16 = Tensor::new(half(&data), shape.clone(), Layout::ChannelsFirst).unwrap();
        let g16 = Tensor::new(half(&grads), y_shape.clone(), Layout::ChannelsFirst).unwrap();
        check_avg_bits(&pool, geometry, &x16, &g16, include, divisor, &format!("f16 {case}"));
        let brain = |v: &[f32]| v.iter().map(|&v| poolgrad::bf16::from_f32(v)).collect::<Vec<_>>();
        let x_bf16 = Tensor::new(brain(&data), shape.clone(), Layout::ChannelsFirst).unwrap();
        let g_bf16 = Tensor::new(brain(&grads), y_shape, Layout::ChannelsFirst).unwrap();
        check_avg_bits(&pool, geometry, &x_bf16, &g_bf16, include, divisor, &format!("bf16 {case}"));
    }
}

fn check_avg_bits<T: poolgrad::Element>(
    pool: &AvgPool,
    geometry: &PoolGeometry,
    x: &Tensor<T>,
    g: &Tensor<T>,
    include: bool,
    divisor: Option<usize>,
    case: &str,
) {
    let want = reference::avg_pool(&x.view(), geometry, include, divisor).unwrap();
    let want_grad = reference::avg_pool_backward(&x.view(), &g.view(), geometry, include, divisor).unwrap();
    for isa in available() {
        let got = with_isa(isa, || pool.forward(&x.view())).unwrap();
        assert!(same_bits(got.data(), want.data()), "forward {case} {}", isa.name());
        let got = with_isa(isa, || pool.backward(&x.view(), &g.view())).unwrap();
        assert!(same_bits(got.data(), want_grad.data()), "backward {case} {}", isa.name());
    }
}

/// Large windows over more channels than one pass of the row sums holds: the channels go
/// in groups (the last one with a partial chunk), within the summation bound of the exact
/// means and gradients, the same bits under every instruction set and as the
/// channels-first layout's; f16 the same bits under every instruction set.
#[test]
fn many_channels_sum_by_dim_in_groups() {
    let geometry = PoolGeometry::new(&[13, 13]).stride(&[1, 1]).padding(Padding::Symmetric(vec![6, 6]));
    // 300 channels of 8x200 split 160 + 140: the second group's zero margins lie where
    // the first group's shares were.
    for (channels, spatial, include) in
        [(1100usize, [20usize, 20usize], true), (700, [9, 26], false), (300, [8, 200], true)]
    {
        let shape = Shape::new(1, channels, &spatial);
        let x = Tensor::new(real_values(shape.numel().unwrap(), channels as u64), shape.clone(), Layout::ChannelsLast)
            .unwrap();
        let pool = AvgPool::new(geometry.clone()).count_include_pad(include);
        assert!(!pool.sums_in_window_order(&shape, Layout::ChannelsLast).unwrap());
        let got = pool.forward(&x.view()).unwrap();
        check_avg_bound(&x, &geometry, include, None, &got).unwrap();
        for isa in available() {
            let again = with_isa(isa, || pool.forward(&x.view())).unwrap();
            assert!(same_bits(again.data(), got.data()), "{channels} channels, {}", isa.name());
        }
        let cells = spatial.iter().product::<usize>();
        let first: Vec<f32> = (0..channels * cells).map(|i| x.data()[(i % cells) * channels + i / cells]).collect();
        let x_first = Tensor::new(first, shape.clone(), Layout::ChannelsFirst).unwrap();
        let y_first = pool.forward(&x_first.view()).unwrap();
        let out_cells = got.data().len() / channels;
        let back: Vec<f32> =
            (0..channels * out_cells).map(|i| y_first.data()[(i % channels) * out_cells + i / channels]).collect();
        assert!(same_bits(&back, got.data()), "{channels} channels: the layouts differ");
        let g = Tensor::new(real_values(got.data().len(), 3), got.shape().clone(), Layout::ChannelsLast).unwrap();
        let gx = pool.backward(&x.view(), &g.view()).unwrap();
        check_avg_grad_bound(&x, &g, &geometry, include, None, &gx).unwrap();
        for isa in available() {
            let again = with_isa(isa, || pool.backward(&x.view(), &g.view())).unwrap();
            assert!(same_bits(again.data(), gx.data()), "{channels} channels, backward {}", isa.name());
        }
        let g_first: Vec<f32> =
            (0..channels * out_cells).map(|i| g.data()[(i % out_cells) * channels + i / out_cells]).collect();
        let g_first = Tensor::new(g_first, y_first.shape().clone(), Layout::ChannelsFirst).unwrap();
        let gx_first = pool.backward(&x_first.view(), &g_first.view()).unwrap();
        let back: Vec<f32> =
            (0..channels * cells).map(|i| gx_first.data()[(i % channels) * cells + i / channels]).collect();
        assert!(same_bits(&back, gx.data()), "{channels} channels: the layouts' gradients differ");
        let half = |t: &Tensor<f32>| {
            let data = t.data().iter().map(|&v| poolgrad::f16::from_f32(v)).collect();
            Tensor::new(data, t.shape().clone(), t.layout()).unwrap()
        };
        let (x16, g16) = (half(&x), half(&g));
        let portable = |f: &dyn Fn() -> Vec<poolgrad::f16>| with_isa(poolgrad::simd::Isa::Portable, f);
        let y16 = portable(&|| pool.forward(&x16.view()).unwrap().into_data());
        let gx16 = portable(&|| pool.backward(&x16.view(), &g16.view()).unwrap().into_data());
        for isa in available() {
            let y = with_isa(isa, || pool.forward(&x16.view())).unwrap();
            let gx = with_isa(isa, || pool.backward(&x16.view(), &g16.view())).unwrap();
            assert!(y.data().iter().zip(&y16).all(|(a, b)| a.to_bits() == b.to_bits()), "f16 {}", isa.name());
            assert!(gx.data().iter().zip(&gx16).all(|(a, b)| a.to_bits() == b.to_bits()), "f16 {}", isa.name());
        }
    }
}

/// The average backward of `T` (a 16-bit type) under every instruction set: bitwise the
/// portable build's, and the reference's where the kernel adds in window order.
fn check_half_avg_backward<T: poolgrad::Element>(
    req: &Request,
    seed: u64,
    include: bool,
    half: impl Fn(f32) -> T,
) -> Result<(), TestCaseError> {
    let to_half = |v: Vec<f32>| v.into_iter().map(&half).collect::<Vec<T>>();
    let x =
        Tensor::new(to_half(values(req.shape.numel().unwrap(), seed, false)), req.shape.clone(), req.layout).unwrap();
    let Ok(y) = reference::avg_pool(&x.view(), &req.geometry, include, None) else { return Ok(()) };
    let g = Tensor::new(to_half(values(y.data().len(), seed ^ 7, false)), y.shape().clone(), req.layout).unwrap();
    let pool = AvgPool::new(req.geometry.clone()).count_include_pad(include);
    let bits = |t: &Tensor<T>| t.data().iter().map(|v| v.to_f64().to_bits()).collect::<Vec<u64>>();
    let portable = with_isa(poolgrad::simd::Isa::Portable, || pool.backward(&x.view(), &g.view())).unwrap();
    if pool.sums_in_window_order(x.shape(), req.layout).unwrap() {
        let want = reference::avg_pool_backward(&x.view(), &g.view(), &req.geometry, include, None).unwrap();
        prop_assert_eq!(bits(&portable), bits(&want));
    }
    for isa in available() {
        let gx = with_isa(isa, || pool.backward(&x.view(), &g.view())).unwrap();
        prop_assert_eq!(bits(&gx), bits(&portable), "{}", isa.name());
    }
    Ok(())
}

/// The average forward of `T` (a 16-bit type, widened to f32 in bulk) under every
/// instruction set: bitwise the reference's where the kernel adds in window order, and
/// the portable build's everywhere.
fn check_half_avg_forward<T: poolgrad::Element>(
    req: &Request,
    seed: u64,
    include: bool,
    half: impl Fn(f32) -> T,
    specials: bool,
) -> Result<(), TestCaseError> {
    let data = values(req.shape.numel().unwrap(), seed, specials).into_iter().map(&half).collect();
    let x = Tensor::new(data, req.shape.clone(), req.layout).unwrap();
    let Ok(want) = reference::avg_pool(&x.view(), &req.geometry, include, None) else { return Ok(()) };
    let pool = AvgPool::new(req.geometry.clone()).count_include_pad(include);
    // Bits, with every NaN alike (as `same_bits`): which NaN an addition keeps is the
    // compiler's choice of operand order.
    let bits = |t: &Tensor<T>| {
        t.data().iter().map(|v| if v.is_nan() { u64::MAX } else { v.to_f64().to_bits() }).collect::<Vec<u64>>()
    };
    let portable = with_isa(poolgrad::simd::Isa::Portable, || pool.forward(&x.view())).unwrap();
    if pool.sums_in_window_order(x.shape(), req.layout).unwrap() {
        prop_assert_eq!(bits(&portable), bits(&want));
    }
    for isa in available() {
        let y = with_isa(isa, || pool.forward(&x.view())).unwrap();
        prop_assert_eq!(bits(&y), bits(&portable), "{}", isa.name());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 60, max_shrink_iters: 256, ..ProptestConfig::default() })]

    /// f16 and bf16 take AVX-512 in the average backward's gather where the CPU has it,
    /// and add with the CPU's f16 conversions where it has them.
    #[test]
    fn half_avg_backward_every_isa(req in request(), seed in any::<u64>(), include in any::<bool>()) {
        check_half_avg_backward(&req, seed, include, poolgrad::f16::from_f32)?;
        check_half_avg_backward(&req, seed, include, poolgrad::bf16::from_f32)?;
    }

    /// f16 and bf16 forwards run the f32 kernels on a widened copy.
    #[test]
    fn half_avg_forward_every_isa(req in request(), seed in any::<u64>(), include in any::<bool>()) {
        check_half_avg_forward(&req, seed, include, poolgrad::f16::from_f32, false)?;
        check_half_avg_forward(&req, seed, include, poolgrad::bf16::from_f32, false)?;
    }

    /// f16 and bf16 channels-last forwards over 64+ channels whose windows read each cell
    /// once (kernel = stride) add the taps tap by tap, widening as they read (f16 with the
    /// CPU's conversions where it has them), and round the means in bulk: the
    /// reference's bits, NaN and infinities included, for channel counts that do and do
    /// not fill whole vectors.
    #[test]
    fn half_avg_forward_read_once_channels_last(
        (req, include) in read_once_channels_last(),
        seed in any::<u64>(),
    ) {
        check_half_avg_forward(&req, seed, include, poolgrad::f16::from_f32, true)?;
        check_half_avg_forward(&req, seed, include, poolgrad::bf16::from_f32, true)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 128, ..ProptestConfig::default() })]

    /// f16 and bf16 channels-last 2-D windows large enough to be summed one dim at a time,
    /// a row at a time, widen each input row once as they go: the bits of the f32
    /// forward of the widened input, rounded once (the f32 path is checked against the
    /// reference within its bound elsewhere), NaN and infinities included, under every
    /// instruction set.
    #[test]
    fn half_avg_forward_by_rows_matches_the_widened_forward(
        (req, include) in summed_by_rows(),
        seed in any::<u64>(),
    ) {
        check_half_avg_forward_against_f32(&req, seed, include, poolgrad::f16::from_f32)?;
        check_half_avg_forward_against_f32(&req, seed, include, poolgrad::bf16::from_f32)?;
    }
}

fn check_half_avg_forward_against_f32<T: poolgrad::Element<Acc = f32>>(
    req: &Request,
    seed: u64,
    include: bool,
    half: impl Fn(f32) -> T,
) -> Result<(), TestCaseError> {
    let halves: Vec<T> = values(req.shape.numel().unwrap(), seed, true).into_iter().map(&half).collect();
    let wide: Vec<f32> = halves.iter().map(|v| v.to_acc()).collect();
    let x = Tensor::new(halves, req.shape.clone(), req.layout).unwrap();
    let wide = Tensor::new(wide, req.shape.clone(), req.layout).unwrap();
    let pool = AvgPool::new(req.geometry.clone()).count_include_pad(include);
    prop_assert!(!pool.sums_in_window_order(x.shape(), req.layout).unwrap(), "not summed one dim at a time");
    // Bits of the widened values, every NaN alike (see `check_half_avg_forward`).
    let bits = |v: f32| if v.is_nan() { u32::MAX } else { v.to_bits() };
    // The f32 means, each rounded once to `T`.
    let want: Vec<u32> =
        pool.forward(&wide.view()).unwrap().data().iter().map(|&w| bits(T::from_acc(w).to_acc())).collect();
    for isa in available() {
        let y = with_isa(isa, || pool.forward(&x.view())).unwrap();
        let got: Vec<u32> = y.data().iter().map(|v| bits(v.to_acc())).collect();
        prop_assert_eq!(&got, &want, "{}", isa.name());
    }
    Ok(())
}

/// Channels-last 2-D inputs of 8–40 channels, 24–32 cells a side, under stride-1
/// windows of 7x7 to 11x11 padded by half the kernel (summed one dim at a time, a row at
/// a time); or of 750–800 channels under 11x11 windows, more than one group of lanes
/// fits the ring of row sums.
fn summed_by_rows() -> impl Strategy<Value = (Request, bool)> {
    let few = (1..=2usize, 8..=40usize, 24..=32usize, 24..=32usize, 7..=11usize, 7..=11usize, any::<bool>());
    let many =
        (Just(1usize), 750..=800usize, Just(24usize), Just(32usize), Just(11usize), Just(11usize), any::<bool>());
    prop_oneof![3 => few, 1 => many].prop_map(|(n, c, h, w, kh, kw, include)| {
        let padding = Padding::Symmetric(vec![kh / 2, kw / 2]);
        let geometry = PoolGeometry::new(&[kh, kw]).stride(&[1, 1]).padding(padding);
        (Request { shape: Shape::new(n, c, &[h, w]), layout: Layout::ChannelsLast, geometry }, include)
    })
}

/// Channels-last inputs of 64–140 channels under non-overlapping windows (kernel =
/// stride, 1–3 per dim, padding up to half the kernel, floor or ceil mode), rank 1–2,
/// with `count_include_pad` either way.
fn read_once_channels_last() -> impl Strategy<Value = (Request, bool)> {
    (1..=2usize)
        .prop_flat_map(|rank| {
            (
                1..=2usize,
                64..=140usize,
                prop::collection::vec(1..=9usize, rank),
                prop::collection::vec(1..=3usize, rank),
                prop::collection::vec(0..=1usize, rank),
                any::<bool>(),
                any::<bool>(),
            )
        })
        .prop_map(|(n, c, spatial, kernel, pads, ceil, include)| {
            let padding = pads.iter().zip(&kernel).map(|(p, k)| p * (k / 2)).collect();
            let geometry =
                PoolGeometry::new(&kernel).stride(&kernel).padding(Padding::Symmetric(padding)).ceil_mode(ceil);
            (Request { shape: Shape::new(n, c, &spatial), layout: Layout::ChannelsLast, geometry }, include)
        })
}

/// The max backward of `f16` and `bf16` from compact taps and from indices, both
/// layouts: 2x2 and 3x3 windows at their own stride (channels-first from taps: the tiled
/// path, which writes `0 + δ` from the bits; from indices, windows that hardly overlap
/// take `Element::accumulate`), a 3-D 2x2x2 one, overlapping 3x3 stride-2 windows
/// (from taps: along the window table) and 3x3 stride-1 windows over 40x40 (from taps:
/// cells computed from them; `f16` adds with the CPU's conversions). Bitwise the reference backward's under every instruction set, with -0, NaN and
/// infinities among the gradients.
#[test]
fn max_backward_in_16_bit_types() {
    fn check<T: poolgrad::Element>(from_f32: fn(f32) -> T, name: &str) {
        let cases: [(&[usize], PoolGeometry); 5] = [
            (&[12, 10], PoolGeometry::new(&[2, 2]).stride(&[2, 2])),
            (&[9, 13], PoolGeometry::new(&[3, 3]).stride(&[3, 3]).ceil_mode(true)),
            (&[4, 6, 8], PoolGeometry::new(&[2, 2, 2]).stride(&[2, 2, 2])),
            (&[11, 9], PoolGeometry::new(&[3, 3]).stride(&[2, 2]).padding(Padding::Symmetric(vec![1, 1]))),
            // A window table too large to read (channels-first: cells computed from taps).
            (&[40, 40], PoolGeometry::new(&[3, 3]).stride(&[1, 1]).padding(Padding::Symmetric(vec![1, 1]))),
        ];
        for (i, (spatial, geometry)) in cases.into_iter().enumerate() {
            for layout in [Layout::ChannelsFirst, Layout::ChannelsLast] {
                let shape = Shape::new(2, 3, spatial);
                let x: Vec<T> = values(shape.numel().unwrap(), 70 + i as u64, true).into_iter().map(from_f32).collect();
                let x = Tensor::new(x, shape.clone(), layout).unwrap();
                let pool = MaxPool::new(geometry.clone());
                let (y, indices) = reference::max_pool(&x.view(), &geometry).unwrap();
                let g: Vec<T> = values(y.data().len(), 80 + i as u64, true).into_iter().map(from_f32).collect();
                let g = Tensor::new(g, y.shape().clone(), layout).unwrap();
                let negative_zero = g.data().iter().any(|v| v.to_f64() == 0.0 && v.to_f64().is_sign_negative());
                assert!(negative_zero, "case {i} has no -0 gradient");
                let want = reference::max_pool_backward(&x.view(), &g.view(), &geometry).unwrap();
                for isa in available() {
                    let case = format!("{name} case {i} {layout:?} {}", isa.name());
                    let compact = with_isa(isa, || pool.forward_compact(&x.view())).unwrap();
                    let got = with_isa(isa, || pool.backward_compact(&shape, &g.view(), &compact.taps.view())).unwrap();
                    assert!(same_bits(got.data(), want.data()), "{case} from taps");
                    let got = with_isa(isa, || pool.backward_with_indices(&shape, &g.view(), &indices.view())).unwrap();
                    assert!(same_bits(got.data(), want.data()), "{case} from indices");
                }
            }
        }
    }
    check(poolgrad::f16::from_f32, "f16");
    check(poolgrad::bf16::from_f32, "bf16");
}

/// The channels-last max backward from indices and from compact taps in `f32` and `f64`
/// (AVX-512 gathers and scatters of 8 lanes, four vectors at a time, on full-width
/// CPUs) under every instruction set, bitwise against the reference and against a plain
/// scatter written here: channel counts of one vector, of groups with a vector or
/// single lanes after them, overlapping (stride-1) and tiling windows, `-1` indices
/// skipped, and a bad index inside a group reported at its own position.
#[test]
fn channels_last_max_backward_along_indices() {
    /// `grad[n][index][c] += g[n][o][c]` output by output, channel by channel, for 2
    /// images of 90 cells.
    fn plain_scatter<T: poolgrad::Element>(channels: usize, g: &[T], indices: &[i64]) -> Vec<T> {
        let per_image = g.len() / 2;
        let mut grad = vec![T::zero(); 2 * 90 * channels];
        for (p, (&v, &i)) in g.iter().zip(indices).enumerate() {
            let (n, c) = (p / per_image, p % channels);
            if i >= 0 {
                let cell = &mut grad[(n * 90 + i as usize) * channels + c];
                *cell = cell.add(v);
            }
        }
        grad
    }
    fn check<T: poolgrad::Element>(from_f32: fn(f32) -> T, name: &str) {
        let geometries = [
            PoolGeometry::new(&[5, 5]).stride(&[1, 1]).padding(Padding::Symmetric(vec![2, 2])),
            PoolGeometry::new(&[2, 2]).stride(&[2, 2]),
        ];
        for (gi, geometry) in geometries.into_iter().enumerate() {
            let pool = MaxPool::new(geometry.clone());
            for channels in [8, 37, 40, 96] {
                let case = format!("{name} geometry {gi} {channels} channels");
                let shape = Shape::new(2, channels, &[9, 10]);
                let x: Vec<T> =
                    values(shape.numel().unwrap(), channels as u64, true).into_iter().map(from_f32).collect();
                let x = Tensor::new(x, shape.clone(), Layout::ChannelsLast).unwrap();
                let (y, indices) = reference::max_pool(&x.view(), &geometry).unwrap();
                let g: Vec<T> = values(y.data().len(), 3, false).into_iter().map(from_f32).collect();
                let g = Tensor::new(g, y.shape().clone(), Layout::ChannelsLast).unwrap();
                let want = reference::max_pool_backward(&x.view(), &g.view(), &geometry).unwrap();
                let plain = plain_scatter(channels, g.data(), indices.data());
                assert!(same_bits(&plain, want.data()), "{case}: the plain scatter");
                // Some windows' indices -1 (as an unpooled or empty window has): skipped.
                let mut skipping = indices.data().to_vec();
                for i in (3..skipping.len()).step_by(11) {
                    skipping[i] = -1;
                }
                let want_skipping = plain_scatter(channels, g.data(), &skipping);
                let skipping = Tensor::new(skipping, indices.shape().clone(), Layout::ChannelsLast).unwrap();
                // A bad index in the middle of the second output's lanes, another after it.
                let mut bad = indices.data().to_vec();
                let position = channels + channels / 2 + 1;
                bad[position] = 90;
                bad[position + 2 * channels] = -7;
                let bad = Tensor::new(bad, indices.shape().clone(), Layout::ChannelsLast).unwrap();
                let want_error = poolgrad::PoolError::InvalidIndex { index: 90, position, plane_size: 90 };
                for isa in available() {
                    let run = |indices: &Tensor<i64>| {
                        with_isa(isa, || pool.backward_with_indices(&shape, &g.view(), &indices.view()))
                    };
                    let compact = pool.forward_compact(&x.view()).unwrap();
                    let from_taps = with_isa(isa, || pool.backward_compact(&shape, &g.view(), &compact.taps.view()));
                    let isa = isa.name();
                    assert!(same_bits(from_taps.unwrap().data(), want.data()), "{case} {isa}: from taps");
                    assert!(same_bits(run(&indices).unwrap().data(), want.data()), "{case} {isa}");
                    assert!(same_bits(run(&skipping).unwrap().data(), &want_skipping), "{case} {isa}: -1 skipped");
                    assert_eq!(run(&bad).unwrap_err().to_string(), want_error.to_string(), "{case} {isa}");
                }
            }
        }
    }
    check(|v| v, "f32");
    check(f64::from, "f64");
}

/// The channels-first max backward of windows whose consecutive outputs often name the
/// same cell (stride-1 windows 7 or more wide), which takes its outputs two at a time:
/// bitwise the reference backward's in all four types under every instruction set, from
/// indices and from compact taps, with ties, NaN, infinities and -0 in the input and the
/// gradients (a sum that depends on its order shows up in the bits). Then, against a
/// plain scatter written here, indices chosen to make runs of one, two and more outputs
/// on one cell, a cell coming back after another, `-1` in the middle of a plane (from
/// there the outputs go one at a time), and a bad index after it reported at its place.
#[test]
fn max_backward_along_runs_of_one_cell() {
    fn plain_scatter<T: poolgrad::Element>(plane: usize, g: &[T], indices: &[i64], planes: usize) -> Vec<T> {
        let outputs = g.len() / planes;
        let mut grad = vec![T::zero(); planes * plane];
        for (o, (&v, &i)) in g.iter().zip(indices).enumerate() {
            if i >= 0 {
                let cell = &mut grad[(o / outputs) * plane + i as usize];
                *cell = cell.add(v);
            }
        }
        grad
    }
    fn check<T: poolgrad::Element>(from_f32: fn(f32) -> T, name: &str) {
        let same =
            |k: usize| PoolGeometry::new(&[k, k]).stride(&[1, 1]).padding(Padding::Symmetric(vec![k / 2, k / 2]));
        let cases: [(&[usize], PoolGeometry); 5] = [
            (&[9, 23], same(7)),
            (&[12, 17], same(9)),
            (&[15, 14], same(13)),
            (&[41], PoolGeometry::new(&[9]).stride(&[1]).padding(Padding::Symmetric(vec![3]))),
            (
                &[10, 40],
                PoolGeometry::new(&[3, 8])
                    .stride(&[1, 1])
                    .dilation(&[1, 2])
                    .padding(Padding::Symmetric(vec![1, 4]))
                    .ceil_mode(true),
            ),
        ];
        for (i, (spatial, geometry)) in cases.into_iter().enumerate() {
            let case = format!("{name} case {i}");
            let shape = Shape::new(2, 3, spatial);
            let plane: usize = spatial.iter().product();
            let x: Vec<T> = values(shape.numel().unwrap(), 90 + i as u64, true).into_iter().map(from_f32).collect();
            let x = Tensor::new(x, shape.clone(), Layout::ChannelsFirst).unwrap();
            let pool = MaxPool::new(geometry.clone());
            let (y, indices) = reference::max_pool(&x.view(), &geometry).unwrap();
            let g: Vec<T> = values(y.data().len(), 100 + i as u64, true).into_iter().map(from_f32).collect();
            let g = Tensor::new(g, y.shape().clone(), Layout::ChannelsFirst).unwrap();
            let want = reference::max_pool_backward(&x.view(), &g.view(), &geometry).unwrap();
            let planes = shape.numel().unwrap() / plane;
            assert!(same_bits(&plain_scatter(plane, g.data(), indices.data(), planes), want.data()), "{case}: plain");
            // Runs of every length up to 5 on one cell, cells coming back, a -1 and then
            // a bad index in the second plane.
            let outputs = y.data().len() / planes;
            let mut made = Vec::with_capacity(y.data().len());
            for run in 0.. {
                if made.len() >= y.data().len() {
                    break;
                }
                // Every third run goes back to the cell two runs before.
                let cell = if run % 3 == 2 { (run - 2) * 7 % plane } else { run * 7 % plane };
                made.extend(std::iter::repeat_n(cell as i64, 1 + run % 5));
            }
            made.truncate(y.data().len());
            let mut with_bad = made.clone();
            made[outputs + 7] = -1;
            with_bad[outputs + 7] = -1;
            with_bad[outputs + 12] = plane as i64;
            let want_made = plain_scatter(plane, g.data(), &made, planes);
            let made = Tensor::new(made, indices.shape().clone(), Layout::ChannelsFirst).unwrap();
            let with_bad = Tensor::new(with_bad, indices.shape().clone(), Layout::ChannelsFirst).unwrap();
            let want_error =
                poolgrad::PoolError::InvalidIndex { index: plane as i64, position: outputs + 12, plane_size: plane };
            for isa in available() {
                let case = format!("{case} {}", isa.name());
                let from = |indices: &Tensor<i64>| {
                    with_isa(isa, || pool.backward_with_indices(&shape, &g.view(), &indices.view()))
                };
                assert!(same_bits(from(&indices).unwrap().data(), want.data()), "{case}: from indices");
                let compact = with_isa(isa, || pool.forward_compact(&x.view())).unwrap();
                let got = with_isa(isa, || pool.backward_compact(&shape, &g.view(), &compact.taps.view())).unwrap();
                assert!(same_bits(got.data(), want.data()), "{case}: from taps");
                assert!(same_bits(from(&made).unwrap().data(), &want_made), "{case}: made runs");
                assert_eq!(from(&with_bad).unwrap_err().to_string(), want_error.to_string(), "{case}: bad index");
            }
        }
    }
    check(|v| v, "f32");
    check(f64::from, "f64");
    check(poolgrad::f16::from_f32, "f16");
    check(poolgrad::bf16::from_f32, "bf16");
}

/// The channels-first max backward from compact taps of small stride-1 windows (the
/// gather of `kernels::tap_gather` under AVX-512, the scatter elsewhere) against a plain
/// scatter written here along the reference's indices, bitwise, under every
/// instruction set: square and oblong windows, even and odd, padded evenly, unevenly
/// and not at all, 1-D and 2-D, rows narrower than a vector, of exactly one, and of
/// several with a partial last one; "same" planes under 32 columns (the flat layout,
/// whose vectors run across rows). Many ties (cells that take several gradients) and
/// gradients of very different sizes, so a sum in another order gives other bits.
#[test]
fn compact_backward_of_small_stride_1_windows() {
    let stride_1 = |k: &[usize]| PoolGeometry::new(k).stride(&vec![1; k.len()]);
    let symmetric = |k: &[usize], p: &[usize]| stride_1(k).padding(Padding::Symmetric(p.to_vec()));
    let explicit = |k: &[usize], begin: &[usize], end: &[usize]| {
        stride_1(k).padding(Padding::Explicit { begin: begin.to_vec(), end: end.to_vec() })
    };
    let cases = [
        (symmetric(&[3, 3], &[1, 1]), vec![9, 40]),
        (symmetric(&[5, 5], &[2, 2]), vec![12, 64]),
        (symmetric(&[5, 5], &[0, 0]), vec![8, 65]),
        (symmetric(&[3, 5], &[1, 2]), vec![6, 150]),
        (symmetric(&[2, 2], &[0, 0]), vec![5, 7]),
        (explicit(&[4, 4], &[1, 0], &[2, 3]), vec![7, 70]),
        (symmetric(&[5], &[2]), vec![200]),
        (symmetric(&[1, 5], &[0, 2]), vec![3, 33]),
        // "Same" planes under 32 columns: the flat layout, vectors across rows, the
        // last one partial (400 = 6 · 64 + 16 cells, 169, 49, 196, 99, 250, 80, 30).
        (symmetric(&[5, 5], &[2, 2]), vec![20, 20]),
        (symmetric(&[5, 5], &[2, 2]), vec![13, 13]),
        (symmetric(&[3, 3], &[1, 1]), vec![7, 7]),
        (symmetric(&[3, 3], &[1, 1]), vec![14, 14]),
        (explicit(&[4, 4], &[1, 2], &[2, 1]), vec![9, 11]),
        (symmetric(&[3, 5], &[1, 2]), vec![10, 25]),
        (symmetric(&[1, 5], &[0, 2]), vec![4, 20]),
        (symmetric(&[5], &[2]), vec![30]),
    ];
    for (case, (geometry, spatial)) in cases.into_iter().enumerate() {
        // Gradients far apart in size, so that a sum in another order has other bits.
        check_compact_backward::<f32>(case, &geometry, &spatial, 1e8);
        check_compact_backward::<f64>(case, &geometry, &spatial, 1e17);
    }
}

/// [`compact_backward_of_small_stride_1_windows`] in `F`: the backward from compact
/// taps, under every instruction set, against the gradients added in output order
/// along the reference's indices (`big`: the largest gradient, beyond `F`'s exact
/// integers).
fn check_compact_backward<F: poolgrad::Element + std::ops::Add<Output = F>>(
    case: usize,
    geometry: &PoolGeometry,
    spatial: &[usize],
    big: f64,
) {
    let shape = Shape::new(2, 3, spatial);
    let numel = shape.numel().unwrap();
    let x = values(numel, case as u64, false).into_iter().map(|v| F::from_f64(f64::from(v))).collect();
    let x = Tensor::new(x, shape.clone(), Layout::ChannelsFirst).unwrap();
    let (y, indices) = reference::max_pool(&x.view(), geometry).unwrap();
    let mut s = 7 + case as u64;
    let scales = [big, -big, 1.0, -0.75, 3e-3, 0.5];
    let grads: Vec<F> = (0..y.data().len())
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            F::from_f64(scales[(s >> 33) as usize % scales.len()] * (1.0 + ((s >> 20) % 8) as f64 / 8.0))
        })
        .collect();
    let (plane, outputs) = (numel / 6, y.data().len() / 6);
    let mut want = vec![F::zero(); numel];
    for p in 0..6 {
        for o in 0..outputs {
            let i = indices.data()[p * outputs + o];
            let cell = &mut want[p * plane + i as usize];
            *cell = *cell + grads[p * outputs + o];
        }
    }
    let g = Tensor::new(grads, y.shape().clone(), Layout::ChannelsFirst).unwrap();
    let pool = MaxPool::new(geometry.clone());
    let compact = pool.forward_compact(&x.view()).unwrap();
    for isa in available() {
        let got = with_isa(isa, || pool.backward_compact(&shape, &g.view(), &compact.taps.view())).unwrap();
        assert!(same_bits(got.data(), &want), "case {case} {} {}", std::any::type_name::<F>(), isa.name());
    }
}
