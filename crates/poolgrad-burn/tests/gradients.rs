//! Every layer of `poolgrad_burn::modules`, on `Flex` and `NdArray` with autodiff:
//! the forward and the gradient of `sum(y · g)` from burn's `backward()` equal the
//! library's own forward and backward bit for bit — 1-D to 4-D, both layouts, every
//! geometry option, f64, f32, f16 and bf16, strided views. The expected operators are
//! built here from the library's types, not taken from the layers.

mod common;

use burn::tensor::{DType, Device, Tensor, TensorData};
use common::{devices, values};
use poolgrad::{
    AvgPool, FractionalMaxPool, Layout, LpPool, MaxPool, MaxUnpool, Operator, Padding, PoolError, PoolGeometry,
    Pooling, Shape, TensorView,
};
use poolgrad_burn::modules::*;

fn data<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().convert::<f64>().try_into_vec::<f64>().unwrap()
}

/// Bit for bit (NaN included).
fn assert_same(what: &str, got: &[f64], want: &[f64]) {
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(got), bits(want), "{what}: got {got:?}, want {want:?}");
}

/// The library's forward and backward on the host, in f64 or through `T`.
fn expected(op: &Operator, layout: Layout, dims: &[usize], x: &[f64], g: &[f64], dtype: DType) -> (Vec<f64>, Vec<f64>) {
    fn run<T: poolgrad::Element>(
        op: &Operator,
        layout: Layout,
        dims: &[usize],
        x: &[f64],
        g: &[f64],
    ) -> (Vec<f64>, Vec<f64>) {
        let shape = Shape::from_dims(dims, layout).unwrap();
        let out = op.output_shape(&shape).unwrap();
        let (x, g): (Vec<T>, Vec<T>) =
            (x.iter().map(|&v| T::from_f64(v)).collect(), g.iter().map(|&v| T::from_f64(v)).collect());
        let xv = TensorView::new(&x, shape, layout).unwrap();
        let gv = TensorView::new(&g, out, layout).unwrap();
        let f = |t: poolgrad::Tensor<T>| t.data().iter().map(|v| v.to_f64()).collect();
        (f(op.forward(&xv).unwrap()), f(op.backward(&xv, &gv).unwrap()))
    }
    match dtype {
        DType::F64 => run::<f64>(op, layout, dims, x, g),
        DType::F32 => run::<f32>(op, layout, dims, x, g),
        DType::F16 => run::<poolgrad::f16>(op, layout, dims, x, g),
        DType::BF16 => run::<poolgrad::bf16>(op, layout, dims, x, g),
        d => panic!("{d:?}"),
    }
}

/// Runs `forward` on every device and dtype and compares with the library.
fn check<const D: usize>(
    name: &str,
    dims: [usize; D],
    layout: Layout,
    want: &Operator,
    forward: impl Fn(Tensor<D>) -> Result<Tensor<D>, PoolError>,
) {
    let n: usize = dims.iter().product();
    let xs = values(n, 7);
    let mut runs: Vec<(&str, Device, DType)> = devices().into_iter().map(|(b, d)| (b, d, DType::F64)).collect();
    let flex = Device::flex().autodiff();
    runs.extend([("flex", flex.clone(), DType::F32), ("flex", flex.clone(), DType::F16), ("flex", flex, DType::BF16)]);
    for (backend, device, dtype) in runs {
        let label = format!("{name} ({backend}, {dtype:?})");
        let x = Tensor::<D>::from_data(TensorData::new(xs.clone(), dims), (&device, dtype)).require_grad();
        let y = forward(x.clone()).unwrap_or_else(|e| panic!("{label}: {e}"));
        let gs = values(y.shape().num_elements(), 3);
        let g = Tensor::<D>::from_data(TensorData::new(gs.clone(), y.dims()), (&device, dtype));
        let grads = (y.clone() * g).sum().backward();
        // The library's result for the same rounded inputs.
        let (xr, gr) = (data(x.clone()), data(Tensor::<D>::from_data(TensorData::new(gs, y.dims()), (&device, dtype))));
        let (want_y, want_gx) = expected(want, layout, &dims, &xr, &gr, dtype);
        assert_same(&format!("{label}: forward"), &data(y), &want_y);
        assert_same(&format!("{label}: gradient"), &data(x.grad(&grads).expect("a gradient")), &want_gx);
    }
}

fn symmetric(kernel: &[usize], stride: &[usize], padding: &[usize]) -> PoolGeometry {
    PoolGeometry::new(kernel).stride(stride).padding(Padding::Symmetric(padding.to_vec()))
}

#[test]
fn max_pooling_layers() {
    let (cf, cl) = (Layout::ChannelsFirst, Layout::ChannelsLast);
    let g = symmetric(&[3], &[2], &[1]).dilation(&[2]).ceil_mode(true);
    let layer = MaxPool1dConfig::new([3]).with_strides([2]).with_padding(PoolPadding::Explicit([1])).with_dilation([2]);
    let layer = layer.with_ceil_mode(true).init();
    check("max 1-D dilated ceil", [2, 3, 11], cf, &Operator::Max(MaxPool::new(g)), |x| layer.forward(x));
    let layer = MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).with_padding(PoolPadding::Explicit([1, 1])).init();
    let want = Operator::Max(MaxPool::new(symmetric(&[3, 3], &[2, 2], &[1, 1])));
    check("max 2-D 3x3 s2 p1", [2, 3, 7, 6], cf, &want, |x| layer.forward(x));
    let layer =
        MaxPool2dConfig::new([3, 2]).with_strides([1, 2]).with_padding(PoolPadding::SameLower).with_layout(cl).init();
    let want = Operator::Max(MaxPool::new(PoolGeometry::new(&[3, 2]).stride(&[1, 2]).padding(Padding::SameLower)));
    check("max 2-D SAME_LOWER channels-last", [2, 5, 5, 3], cl, &want, |x| layer.forward(x));
    let layer = MaxPool3dConfig::new([2, 2, 2]).with_strides([1, 1, 1]).init();
    let want = Operator::Max(MaxPool::new(PoolGeometry::new(&[2, 2, 2]).stride(&[1, 1, 1])));
    check("max 3-D overlapping", [1, 2, 3, 4, 5], cf, &want, |x| layer.forward(x));
    let layer = MaxPoolConfig::<4>::new([2, 2, 2, 2]).with_layout(cl).init();
    check("max 4-D spatial", [1, 2, 4, 3, 4, 2], cl, &Operator::Max(MaxPool::new(PoolGeometry::new(&[2; 4]))), |x| {
        layer.forward(x)
    });
}

#[test]
fn average_pooling_layers() {
    let (cf, cl) = (Layout::ChannelsFirst, Layout::ChannelsLast);
    let layer = AvgPool2dConfig::new([3, 3])
        .with_strides([2, 2])
        .with_padding(PoolPadding::Explicit([1, 1]))
        .with_count_include_pad(false)
        .init();
    let want = Operator::Avg(AvgPool::new(symmetric(&[3, 3], &[2, 2], &[1, 1])).count_include_pad(false));
    check("avg 3x3 s2 p1 exclude pad", [2, 3, 7, 6], cf, &want, |x| layer.forward(x));
    let pads = PoolPadding::Pads { begin: [1, 0], end: [0, 1] };
    let layer = AvgPool2dConfig::new([2, 2]).with_padding(pads).with_count_include_pad(false).with_layout(cl).init();
    let padding = Padding::Explicit { begin: vec![1, 0], end: vec![0, 1] };
    let want = Operator::Avg(AvgPool::new(PoolGeometry::new(&[2, 2]).padding(padding)).count_include_pad(false));
    check("avg asymmetric pads exclude pad channels-last", [2, 5, 4, 3], cl, &want, |x| layer.forward(x));
    let layer = AvgPool2dConfig::new([2, 3]).with_strides([2, 2]).with_ceil_mode(true).with_divisor_override(Some(5));
    let layer = layer.init();
    let want = Operator::Avg(
        AvgPool::new(PoolGeometry::new(&[2, 3]).stride(&[2, 2]).ceil_mode(true)).divisor_override(Some(5)),
    );
    check("avg ceil divisor override", [1, 2, 7, 8], cf, &want, |x| layer.forward(x));
    let layer = AvgPool1dConfig::new([3]).with_strides([1]).with_dilation([2]).with_padding(PoolPadding::SameUpper);
    let layer = layer.init();
    let want =
        Operator::Avg(AvgPool::new(PoolGeometry::new(&[3]).stride(&[1]).dilation(&[2]).padding(Padding::SameUpper)));
    check("avg 1-D dilated SAME_UPPER", [2, 2, 9], cf, &want, |x| layer.forward(x));
    let layer = AvgPool3dConfig::new([2, 2, 2]).with_strides([1, 2, 1]).init();
    let want = Operator::Avg(AvgPool::new(PoolGeometry::new(&[2, 2, 2]).stride(&[1, 2, 1])));
    check("avg 3-D", [1, 2, 3, 4, 5], cf, &want, |x| layer.forward(x));
}

#[test]
fn lp_adaptive_and_global_layers() {
    let (cf, cl) = (Layout::ChannelsFirst, Layout::ChannelsLast);
    let layer = LpPool2dConfig::new(2.0, [2, 2]).init();
    check("lp p=2", [2, 2, 6, 6], cf, &Operator::Lp(LpPool::new(PoolGeometry::new(&[2, 2]), 2.0)), |x| {
        layer.forward(x)
    });
    let layer = LpPool1dConfig::new(3.0, [3]).with_strides([2]).with_ceil_mode(true).with_layout(cl).init();
    let want = Operator::Lp(LpPool::new(PoolGeometry::new(&[3]).stride(&[2]).ceil_mode(true), 3.0));
    check("lp p=3 ceil channels-last", [2, 8, 3], cl, &want, |x| layer.forward(x));
    let layer = LpPool2dConfig::new(2.0, [3, 3]).with_padding(PoolPadding::Explicit([1, 1])).init();
    let want = Operator::Lp(LpPool::new(symmetric(&[3, 3], &[3, 3], &[1, 1]), 2.0));
    check("lp padded (ONNX formula)", [1, 2, 7, 7], cf, &want, |x| layer.forward(x));
    let layer = AdaptiveMaxPool2dConfig::new([3, 4]).init();
    check("adaptive max", [2, 2, 7, 9], cf, &Operator::Max(MaxPool::adaptive(&[3, 4])), |x| layer.forward(x));
    let layer = AdaptiveAvgPool3dConfig::new([2, 3, 2]).with_layout(cl).init();
    let want = Operator::Avg(AvgPool::adaptive(&[2, 3, 2]));
    check("adaptive avg 3-D channels-last", [1, 3, 5, 4, 2], cl, &want, |x| layer.forward(x));
    let layer = AdaptiveAvgPool1dConfig::new([4]).init();
    check("adaptive avg 1-D", [2, 3, 10], cf, &Operator::Avg(AvgPool::adaptive(&[4])), |x| layer.forward(x));
    let layer = GlobalPool::max(cf);
    check("global max 2-D", [2, 3, 5, 4], cf, &Operator::Max(MaxPool::global()), |x| layer.forward(x));
    let layer = GlobalPool::avg(cl);
    check("global avg 3-D channels-last", [2, 3, 4, 2, 3], cl, &Operator::Avg(AvgPool::global()), |x| layer.forward(x));
}

#[test]
fn fractional_max_pooling_and_unpooling() {
    let layout = Layout::ChannelsFirst;
    for (backend, device) in devices() {
        let dims = [2, 3, 9, 8];
        let xs = values(dims.iter().product(), 11);
        let x = Tensor::<4>::from_data(TensorData::new(xs.clone(), dims), (&device, DType::F64)).require_grad();
        let us: Vec<f64> = (0..12).map(|i| (i as f64 * 0.37) % 1.0).collect();
        let samples = Tensor::<3>::from_data(TensorData::new(us.clone(), [2, 3, 2]), (&device, DType::F64));
        let layer = FractionalMaxPool2dConfig::new([2, 2], FractionalOutput::Size([5, 4])).init();
        let (y, indices) = layer.forward_with_samples(x.clone(), samples).unwrap();
        let pool = FractionalMaxPool::new(&[2, 2], &[5, 4]);
        let xv = TensorView::new(&xs, Shape::from_dims(&dims, layout).unwrap(), layout).unwrap();
        let want = pool.forward_with_indices(&xv, &us).unwrap();
        assert_eq!(data(y.clone()), want.output.data(), "{backend}: fractional forward");
        assert_eq!(data(indices.clone().float()), want.indices.data().iter().map(|&i| i as f64).collect::<Vec<_>>());
        let gs = values(y.shape().num_elements(), 5);
        let g = Tensor::<4>::from_data(TensorData::new(gs.clone(), y.dims()), (&device, DType::F64));
        let grads = (y * g).sum().backward();
        let gv = TensorView::new(&gs, want.output.shape().clone(), layout).unwrap();
        let want_gx = pool.backward_with_indices(xv.shape(), &gv, &want.indices.view()).unwrap();
        assert_eq!(data(x.grad(&grads).unwrap()), want_gx.data(), "{backend}: fractional gradient");

        // Unpooling the fractional pool's output with its indices.
        let narrow =
            Tensor::<4>::from_data(TensorData::new(want.output.data().to_vec(), [2, 3, 5, 4]), (&device, DType::F64))
                .require_grad();
        let unpool = MaxUnpool2dConfig::new([2, 2]).init();
        let wide = unpool.forward(narrow.clone(), indices, Some([9, 8])).unwrap();
        let ws = values(wide.shape().num_elements(), 9);
        let w = Tensor::<4>::from_data(TensorData::new(ws.clone(), wide.dims()), (&device, DType::F64));
        let grads = (wide.clone() * w).sum().backward();
        let lib = MaxUnpool::new(&[2, 2]);
        let want_wide = lib.forward(&want.output.view(), &want.indices.view(), Some(&[9, 8])).unwrap();
        assert_eq!(data(wide), want_wide.data(), "{backend}: unpool forward");
        let wv = TensorView::new(&ws, want_wide.shape().clone(), layout).unwrap();
        let want_g = lib.backward(&wv, &want.indices.view()).unwrap();
        assert_eq!(data(narrow.grad(&grads).unwrap()), want_g.data(), "{backend}: unpool gradient");
    }
}

#[test]
fn max_pool_indices_feed_unpooling_as_in_pytorch() {
    // SegNet's pattern: pool with indices, unpool to the input's size.
    for (backend, device) in devices() {
        // Distinct, non-zero values: one maximum per window.
        let distinct: Vec<f64> = (0..216).map(|i| ((i * 37) % 216) as f64 + 1.0).collect();
        let x = Tensor::<4>::from_data(TensorData::new(distinct, [2, 3, 6, 6]), (&device, DType::F64));
        let (y, indices) = MaxPool2dConfig::new([2, 2]).init().forward_with_indices(x.clone()).unwrap();
        let back = MaxUnpool2dConfig::new([2, 2]).init().forward(y.clone(), indices, None).unwrap();
        assert_eq!(back.dims(), [2, 3, 6, 6]);
        // Every kept cell is its window's maximum in place, the rest zero.
        let (xs, bs) = (data(x), data(back));
        assert_eq!(bs.iter().filter(|v| **v != 0.0).count(), 2 * 3 * 9, "{backend}");
        assert!(bs.iter().zip(&xs).all(|(b, x)| *b == 0.0 || b == x), "{backend}");
    }
}

#[test]
fn strided_views_are_read_in_logical_order() {
    for (backend, device) in devices() {
        let base =
            Tensor::<4>::from_data(TensorData::new(values(2 * 3 * 5 * 7, 2), [2, 3, 5, 7]), (&device, DType::F64));
        let view = base.clone().swap_dims(2, 3); // (2, 3, 7, 5), not contiguous
        let copy = Tensor::<4>::from_data(view.clone().into_data(), (&device, DType::F64));
        let layer = MaxPool2dConfig::new([3, 2]).with_strides([1, 1]).init();
        assert_eq!(data(layer.forward(view).unwrap()), data(layer.forward(copy).unwrap()), "{backend}");
    }
}

#[test]
fn bad_requests_are_errors_not_panics() {
    let device = Device::flex();
    let x = Tensor::<4>::ones([1, 1, 4, 4], &device);
    let too_big = MaxPool2dConfig::new([5, 5]).init().forward(x.clone()).unwrap_err();
    assert!(too_big.to_string().contains("output would be empty"), "{too_big}");
    let rank = MaxPool2dConfig::new([2, 2]).init().forward(Tensor::<3>::ones([1, 1, 4], &device)).unwrap_err();
    assert!(rank.to_string().contains("a 2-D pooling layer takes tensors of 4 dims"), "{rank}");
    let zero = AvgPool2dConfig::new([2, 2]).with_divisor_override(Some(0)).init().forward(x.clone()).unwrap_err();
    assert!(zero.to_string().contains("divisor_override"), "{zero}");
    let stride = MaxPool2dConfig::new([2, 2]).with_strides([0, 1]).init().forward(x.clone()).unwrap_err();
    assert!(stride.to_string().contains("stride"), "{stride}");
    // Indices outside the output's plane.
    let indices = burn::tensor::Tensor::<4, burn::tensor::Int>::from_data(
        TensorData::new(vec![0i64, 1, 2, 99], [1, 1, 2, 2]),
        &device,
    );
    let unpool = MaxUnpool2dConfig::new([2, 2]).init();
    let bad = unpool.forward(Tensor::<4>::ones([1, 1, 2, 2], &device), indices, None).unwrap_err();
    assert!(bad.to_string().contains("99"), "{bad}");
    // Samples outside [0, 1), and of the wrong shape.
    let layer = FractionalMaxPool2dConfig::new([2, 2], FractionalOutput::Size([2, 2])).init();
    let samples = Tensor::<3>::from_data(TensorData::new(vec![0.5f32, 1.5], [1, 1, 2]), &device);
    let bad = layer.forward_with_samples(x.clone(), samples).unwrap_err();
    assert!(bad.to_string().contains("1.5 is not in [0, 1)"), "{bad}");
    let samples = Tensor::<3>::from_data(TensorData::new(vec![0.5f32; 3], [1, 1, 3]), &device);
    assert!(matches!(layer.forward_with_samples(x.clone(), samples), Err(PoolError::ShapeMismatch { .. })));
    let ratio = FractionalMaxPool2dConfig::new([2, 2], FractionalOutput::Ratio([0.5, 1.0])).init().forward(x.clone());
    assert!(ratio.unwrap_err().to_string().contains("output_ratio"));
    // A gradient of the wrong shape.
    let op = Operator::Max(MaxPool::new(PoolGeometry::new(&[2])));
    let bad = poolgrad_burn::functional::pool_backward(x.clone(), x, &op, Layout::ChannelsFirst).unwrap_err();
    assert!(matches!(bad, PoolError::ShapeMismatch { what: "grad_output", .. }), "{bad}");
}

#[test]
fn fractional_layer_draws_fresh_windows_within_the_input() {
    let device = Device::flex();
    let x = Tensor::<4>::from_data(TensorData::new((0..100).map(|v| v as f32).collect(), [1, 1, 10, 10]), &device);
    let layer = FractionalMaxPool2dConfig::new([2, 2], FractionalOutput::Ratio([0.5, 0.5])).init();
    let (y, indices) = layer.forward(x).unwrap();
    assert_eq!(y.dims(), [1, 1, 5, 5]);
    // x[i] = i, so each output is its own index.
    assert_eq!(data(y), data(indices.float()));
}
