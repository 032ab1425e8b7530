//! One number for a list parameter means that number in every spatial dim: for every
//! operator and every list parameter (kernel, stride, padding, pads, dilation, output
//! size), in 2-D and 3-D and both layouts, `[v]` gives results bitwise equal to
//! `[v, v]` / `[v, v, v]`: forward, indices, backward and double backward.
//!
//! (The bug this pins: LP pooling scaled by the kernel list's product as written, 2 for
//! `kernel_size=2` in 2-D instead of 4.)

use poolgrad::{
    AvgPool, FractionalMaxPool, Layout, LpFormula, LpPool, MaxPool, MaxUnpool, Padding, PoolGeometry, Pooling, Shape,
    Tensor,
};

/// The list parameters of the regular geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Param {
    Kernel,
    Stride,
    Padding,
    Pads,
    Dilation,
}

/// The value of each list parameter in every dim.
struct Values {
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
    /// Whether the padding is written as ONNX pads instead of symmetric padding.
    pads: bool,
}

/// The geometry with every list parameter written per dim, except `one`, written once.
fn geometry(v: &Values, rank: usize, one: Param, ceil: bool) -> PoolGeometry {
    let list = |p: Param, value: usize| if p == one { vec![value] } else { vec![value; rank] };
    let padding = if v.pads {
        Padding::Explicit { begin: list(Param::Pads, v.pad), end: list(Param::Pads, v.pad) }
    } else {
        Padding::Symmetric(list(Param::Padding, v.pad))
    };
    PoolGeometry::new(&list(Param::Kernel, v.kernel))
        .stride(&list(Param::Stride, v.stride))
        .dilation(&list(Param::Dilation, v.dilation))
        .padding(padding)
        .ceil_mode(ceil)
}

/// An input of distinct values with some ties and signs, in `layout`.
fn input(shape: &Shape, layout: Layout, salt: u64) -> Tensor<f64> {
    let n = shape.numel().unwrap();
    let data = (0..n as u64)
        .map(|i| {
            let h = (i.wrapping_mul(2654435761) ^ salt.wrapping_mul(40503)) % 97;
            (h as f64 - 40.0) * 0.125
        })
        .collect();
    Tensor::new(data, shape.clone(), layout).unwrap()
}

fn bits(t: &Tensor<f64>) -> Vec<u64> {
    t.data().iter().map(|v| v.to_bits()).collect()
}

/// Everything a differentiable operator computes, as bits: forward, backward, double
/// backward, for one input, grad-output and grad-grad-input.
fn pooling_outputs<P: Pooling>(pool: &P, x: &Tensor<f64>) -> Vec<Vec<u64>> {
    let y = pool.forward(&x.view()).unwrap();
    let g = input(y.shape(), x.layout(), 7);
    let ggx = input(x.shape(), x.layout(), 11);
    vec![
        bits(&y),
        bits(&pool.backward(&x.view(), &g.view()).unwrap()),
        bits(&pool.double_backward(&x.view(), &ggx.view()).unwrap()),
    ]
}

fn max_outputs(pool: &MaxPool, x: &Tensor<f64>) -> Vec<Vec<u64>> {
    let y = pool.forward_with_indices(&x.view()).unwrap();
    let g = input(y.output.shape(), x.layout(), 5);
    let mut out = pooling_outputs(pool, x);
    out.push(y.indices.data().iter().map(|&i| i as u64).collect());
    out.push(bits(&pool.backward_with_indices(x.shape(), &g.view(), &y.indices.view()).unwrap()));
    // The compact state (or its refusal, for windows over 256 taps) agrees too.
    out.push(match pool.forward_compact(&x.view()) {
        Ok(compact) => compact.taps.data().iter().map(|&t| t as u64).collect(),
        Err(e) => e.to_string().bytes().map(u64::from).collect(),
    });
    out
}

fn lp_outputs(pool: &LpPool, x: &Tensor<f64>) -> Vec<Vec<u64>> {
    let mut out = pooling_outputs(pool, x);
    let y = pool.forward(&x.view()).unwrap();
    let g = input(y.shape(), x.layout(), 3);
    let ggx = input(x.shape(), x.layout(), 13);
    out.push(bits(&pool.double_backward_input(&x.view(), &g.view(), &ggx.view()).unwrap()));
    out
}

fn shapes() -> Vec<(Shape, Layout)> {
    let mut v = vec![];
    for layout in [Layout::ChannelsFirst, Layout::ChannelsLast] {
        v.push((Shape::new(2, 3, &[9, 7]), layout));
        v.push((Shape::new(1, 2, &[7, 5, 9]), layout));
    }
    v
}

/// Runs `outputs` for the geometry written per dim and with each parameter written once,
/// and asserts they agree bitwise (and that the check sees real data).
fn check_regular(
    name: &str,
    params: &[Param],
    v: &Values,
    outputs: impl Fn(PoolGeometry, &Tensor<f64>) -> Vec<Vec<u64>>,
) {
    for (shape, layout) in shapes() {
        let rank = shape.spatial.len();
        let x = input(&shape, layout, 1);
        for ceil in [false, true] {
            let list = |value: usize| vec![value; rank];
            let padding = if v.pads {
                Padding::Explicit { begin: list(v.pad), end: list(v.pad) }
            } else {
                Padding::Symmetric(list(v.pad))
            };
            let per_dim = PoolGeometry::new(&list(v.kernel))
                .stride(&list(v.stride))
                .dilation(&list(v.dilation))
                .padding(padding)
                .ceil_mode(ceil);
            let baseline = outputs(per_dim, &x);
            assert!(baseline.iter().all(|o| !o.is_empty()), "{name}: empty output");
            for &p in params {
                let once = outputs(geometry(v, rank, p, ceil), &x);
                assert_eq!(once, baseline, "{name} {rank}-D {layout:?} ceil {ceil}: {p:?} written once");
            }
        }
    }
}

const REGULAR: Values = Values { kernel: 3, stride: 2, pad: 1, dilation: 2, pads: false };
const ONNX_PADS: Values = Values { kernel: 3, stride: 2, pad: 1, dilation: 2, pads: true };
const PLAIN: Values = Values { kernel: 2, stride: 3, pad: 0, dilation: 1, pads: false };

#[test]
fn max_pooling() {
    let params = [Param::Kernel, Param::Stride, Param::Padding, Param::Dilation];
    check_regular("max", &params, &REGULAR, |g, x| max_outputs(&MaxPool::new(g), x));
    let params = [Param::Kernel, Param::Stride, Param::Pads, Param::Dilation];
    check_regular("max (pads)", &params, &ONNX_PADS, |g, x| max_outputs(&MaxPool::new(g), x));
}

#[test]
fn average_pooling() {
    let params = [Param::Kernel, Param::Stride, Param::Padding, Param::Dilation];
    for include in [true, false] {
        check_regular("avg", &params, &REGULAR, |g, x| pooling_outputs(&AvgPool::new(g).count_include_pad(include), x));
    }
    let params = [Param::Kernel, Param::Stride, Param::Pads, Param::Dilation];
    check_regular("avg (pads)", &params, &ONNX_PADS, |g, x| pooling_outputs(&AvgPool::new(g), x));
}

#[test]
fn lp_pooling_pytorch_formula() {
    // PyTorch's formula: no padding, no dilation; positive inputs keep x^p real.
    let params = [Param::Kernel, Param::Stride];
    for p in [2.0, 3.0, 1.5] {
        check_regular("lp torch", &params, &PLAIN, |g, x| {
            let positive =
                Tensor::new(x.data().iter().map(|v| v.abs() + 0.5).collect(), x.shape().clone(), x.layout()).unwrap();
            lp_outputs(&LpPool::new(g, p).formula(LpFormula::PyTorch), &positive)
        });
    }
}

#[test]
fn lp_pooling_onnx_formula() {
    let params = [Param::Kernel, Param::Stride, Param::Padding, Param::Dilation];
    for p in [2.0, 3.0] {
        check_regular("lp onnx", &params, &REGULAR, |g, x| lp_outputs(&LpPool::new(g, p).formula(LpFormula::Onnx), x));
        let params = [Param::Kernel, Param::Stride, Param::Pads, Param::Dilation];
        check_regular("lp onnx (pads)", &params, &ONNX_PADS, |g, x| {
            lp_outputs(&LpPool::new(g, p).formula(LpFormula::Onnx), x)
        });
    }
}

#[test]
fn adaptive_pooling() {
    for (shape, layout) in shapes() {
        let rank = shape.spatial.len();
        let x = input(&shape, layout, 2);
        for size in [1, 3, 5] {
            let (once, per_dim) = (vec![size], vec![size; rank]);
            assert_eq!(
                max_outputs(&MaxPool::adaptive(&once), &x),
                max_outputs(&MaxPool::adaptive(&per_dim), &x),
                "adaptive max {rank}-D {layout:?} output size {size}"
            );
            assert_eq!(
                pooling_outputs(&AvgPool::adaptive(&once), &x),
                pooling_outputs(&AvgPool::adaptive(&per_dim), &x),
                "adaptive avg {rank}-D {layout:?} output size {size}"
            );
        }
    }
}

fn fractional_outputs(pool: &FractionalMaxPool, x: &Tensor<f64>) -> Vec<Vec<u64>> {
    let rank = x.shape().spatial.len();
    let planes = x.shape().batch * x.shape().channels;
    let samples: Vec<f64> = (0..planes * rank).map(|i| (i as f64 * 0.37) % 1.0).collect();
    let y = pool.forward_with_indices(&x.view(), &samples).unwrap();
    let g = input(y.output.shape(), x.layout(), 9);
    let ggx = input(x.shape(), x.layout(), 17);
    vec![
        bits(&y.output),
        y.indices.data().iter().map(|&i| i as u64).collect(),
        bits(&pool.backward_with_indices(x.shape(), &g.view(), &y.indices.view()).unwrap()),
        bits(&pool.double_backward_with_indices(&ggx.view(), &y.indices.view()).unwrap()),
    ]
}

#[test]
fn fractional_max_pooling() {
    for (shape, layout) in shapes() {
        let rank = shape.spatial.len();
        let x = input(&shape, layout, 4);
        let (k, o) = (2, 4);
        let baseline = fractional_outputs(&FractionalMaxPool::new(&vec![k; rank], &vec![o; rank]), &x);
        let kernel_once = fractional_outputs(&FractionalMaxPool::new(&[k], &vec![o; rank]), &x);
        let output_once = fractional_outputs(&FractionalMaxPool::new(&vec![k; rank], &[o]), &x);
        assert_eq!(kernel_once, baseline, "fractional {rank}-D {layout:?}: kernel written once");
        assert_eq!(output_once, baseline, "fractional {rank}-D {layout:?}: output size written once");
    }
}

#[test]
fn max_unpooling() {
    for (shape, layout) in shapes() {
        let rank = shape.spatial.len();
        let x = input(&shape, layout, 6);
        let pooled = MaxPool::new(PoolGeometry::new(&[3]).stride(&[2]).padding(Padding::Symmetric(vec![1])))
            .forward_with_indices(&x.view())
            .unwrap();
        let outputs = |unpool: MaxUnpool, size: Option<&[usize]>| {
            let y = unpool.forward(&pooled.output.view(), &pooled.indices.view(), size).unwrap();
            let g = input(y.shape(), layout, 21);
            vec![
                bits(&y),
                bits(&unpool.backward(&g.view(), &pooled.indices.view()).unwrap()),
                bits(&unpool.double_backward(&pooled.output.view(), &pooled.indices.view(), size).unwrap()),
            ]
        };
        let (k, s, p) = (vec![3; rank], vec![2; rank], vec![1; rank]);
        let baseline = outputs(MaxUnpool::new(&k).stride(&s).padding(&p), None);
        let cases = [
            ("kernel", MaxUnpool::new(&[3]).stride(&s).padding(&p)),
            ("stride", MaxUnpool::new(&k).stride(&[2]).padding(&p)),
            ("padding", MaxUnpool::new(&k).stride(&s).padding(&[1])),
            ("pads", MaxUnpool::new(&k).stride(&s).pads(&[1], &[1])),
        ];
        for (what, unpool) in cases {
            assert_eq!(outputs(unpool, None), baseline, "unpool {rank}-D {layout:?}: {what} written once");
        }
        let size = shape.spatial[0] + 1;
        let sized = outputs(MaxUnpool::new(&k).stride(&s).padding(&p), Some(&vec![size; rank]));
        let once = outputs(MaxUnpool::new(&k).stride(&s).padding(&p), Some(&[size]));
        assert_eq!(once, sized, "unpool {rank}-D {layout:?}: output size written once");
    }
}
