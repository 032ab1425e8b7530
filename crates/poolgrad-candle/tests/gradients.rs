//! Gradients through candle's autograd with poolgrad's ops: equal to poolgrad's own and
//! to PyTorch's fixtures, on strided views too, second order included; and candle's own
//! pooling gradients, documented where they are wrong.

use candle_core::{DType, Device, Module, Result, Tensor, Var};
use poolgrad::{AvgPool, Layout, LpPool, MaxPool, Padding, PoolGeometry, Pooling, Shape};
use poolgrad_candle::Pool;

mod common;
use common::values;

/// poolgrad's own forward and input gradient for an input and a grad-output.
type Expected = Box<dyn Fn(&poolgrad::TensorView<'_, f64>, &poolgrad::TensorView<'_, f64>) -> (Vec<f64>, Vec<f64>)>;

/// `(name, candle pool, poolgrad op, input dims)` covering every operator and geometry option.
fn cases() -> Vec<(&'static str, Pool, Expected, Vec<usize>)> {
    fn run<P: Pooling + 'static>(p: P) -> Expected {
        Box::new(move |x, g| (p.forward(x).unwrap().into_data(), p.backward(x, g).unwrap().into_data()))
    }
    let g3 = PoolGeometry::new(&[3]).stride(&[2]).padding(Padding::Symmetric(vec![1]));
    vec![
        ("max 3x3 s2 p1", Pool::max(&[3]).stride(&[2]).padding(&[1]), run(MaxPool::new(g3.clone())), vec![2, 3, 7, 6]),
        (
            "avg 3x3 s2 p1 exclude pad",
            Pool::avg(&[3]).stride(&[2]).padding(&[1]).count_include_pad(false),
            run(AvgPool::new(g3.clone()).count_include_pad(false)),
            vec![2, 3, 7, 6],
        ),
        (
            "avg ceil divisor override",
            Pool::avg(&[2, 3]).stride(&[2]).ceil_mode(true).divisor_override(5),
            run(AvgPool::new(PoolGeometry::new(&[2, 3]).stride(&[2]).ceil_mode(true)).divisor_override(Some(5))),
            vec![1, 2, 7, 8],
        ),
        (
            "max dilation ceil 1-D",
            Pool::max(&[3]).stride(&[2]).dilation(&[2]).ceil_mode(true),
            run(MaxPool::new(PoolGeometry::new(&[3]).stride(&[2]).dilation(&[2]).ceil_mode(true))),
            vec![2, 2, 11],
        ),
        (
            "avg 3-D",
            Pool::avg(&[2]).stride(&[1]),
            run(AvgPool::new(PoolGeometry::new(&[2]).stride(&[1]))),
            vec![1, 2, 3, 4, 5],
        ),
        ("lp p=2", Pool::lp(2.0, &[2]), run(LpPool::new(PoolGeometry::new(&[2]), 2.0)), vec![2, 2, 6, 6]),
        ("adaptive max", Pool::adaptive_max(&[3, 4]), run(MaxPool::adaptive(&[3, 4])), vec![2, 2, 7, 9]),
        ("adaptive avg 1-D", Pool::adaptive_avg(&[4]), run(AvgPool::adaptive(&[4])), vec![2, 3, 10]),
        ("global max", Pool::global_max(), run(MaxPool::global()), vec![2, 3, 5, 4]),
        ("global avg", Pool::global_avg(), run(AvgPool::global()), vec![2, 3, 5, 4]),
    ]
}

#[test]
fn gradients_equal_poolgrads_own() -> Result<()> {
    let dev = Device::Cpu;
    for (name, pool, reference, dims) in cases() {
        let n: usize = dims.iter().product();
        let data = values(n, 7);
        let x = Var::from_vec(data.clone(), dims.as_slice(), &dev)?;
        let y = pool.forward(x.as_tensor())?;
        let g = Tensor::from_vec(values(y.elem_count(), 3), y.dims(), &dev)?;
        let grads = (&y * &g)?.sum_all()?.backward()?;
        let gx = grads.get(&x).expect("a gradient").flatten_all()?.to_vec1::<f64>()?;
        let shape = Shape::from_dims(&dims, Layout::ChannelsFirst).unwrap();
        let xv = poolgrad::TensorView::new(&data, shape, Layout::ChannelsFirst).unwrap();
        let gd = g.flatten_all()?.to_vec1::<f64>()?;
        let out_shape = Shape::from_dims(y.dims(), Layout::ChannelsFirst).unwrap();
        let gv = poolgrad::TensorView::new(&gd, out_shape, Layout::ChannelsFirst).unwrap();
        let (want_y, want_gx) = reference(&xv, &gv);
        assert_eq!(y.flatten_all()?.to_vec1::<f64>()?, want_y, "{name}: forward");
        assert_eq!(gx, want_gx, "{name}: gradient");
        // The backward op called on its own, the grad-output a strided (transposed) view.
        let g_strided = g.transpose(0, 1)?.contiguous()?.transpose(0, 1)?;
        let direct = pool.backward(x.as_tensor(), &g_strided)?.flatten_all()?.to_vec1::<f64>()?;
        assert_eq!(direct, want_gx, "{name}: Pool::backward");
    }
    Ok(())
}

#[test]
fn strided_views_channels_last_and_half_types() -> Result<()> {
    let dev = Device::Cpu;
    // A transposed (non-contiguous) view: the gradient reaches the base tensor transposed.
    let base = Var::from_vec(values(2 * 3 * 6 * 7, 5), (2, 3, 6, 7), &dev)?;
    let view = base.as_tensor().transpose(2, 3)?; // (2, 3, 7, 6), strided
    let pool = Pool::max(&[3]).stride(&[2]).padding(&[1]);
    let y = pool.forward(&view)?;
    let grads = y.sum_all()?.backward()?;
    let got = grads.get(&base).expect("gradient").transpose(2, 3)?.contiguous()?;
    let x = Var::from_tensor(&view.contiguous()?)?;
    let want = pool.forward(x.as_tensor())?.sum_all()?.backward()?.get(&x).expect("gradient").clone();
    assert_eq!(got.flatten_all()?.to_vec1::<f64>()?, want.flatten_all()?.to_vec1::<f64>()?);
    // Channels last: the same numbers, permuted.
    let nxc = Var::from_tensor(&x.as_tensor().permute((0, 2, 3, 1))?.contiguous()?)?;
    let y_last = pool.clone().channels_last().forward(nxc.as_tensor())?;
    let y_first = pool.forward(x.as_tensor())?;
    assert_eq!(
        y_last.permute((0, 3, 1, 2))?.flatten_all()?.to_vec1::<f64>()?,
        y_first.flatten_all()?.to_vec1::<f64>()?
    );
    // f16 and bf16: the forward is f32's rounded once (sums run in f32); the gradient of
    // a 2x2 average is exactly 1/4 on the cells the windows cover (row 6 is dropped).
    let x32 = x.as_tensor().to_dtype(DType::F32)?;
    let covered: Vec<f64> = (0..2 * 3 * 7 * 6).map(|i| if (i / 6) % 7 == 6 { 0.0 } else { 0.25 }).collect();
    for dtype in [DType::F16, DType::BF16] {
        let xh = Var::from_tensor(&x32.to_dtype(dtype)?)?;
        let yh = Pool::avg(&[2]).forward(xh.as_tensor())?;
        let want = Pool::avg(&[2]).forward(&xh.as_tensor().to_dtype(DType::F32)?)?.to_dtype(dtype)?;
        assert_eq!(
            yh.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?,
            want.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?
        );
        let gh = yh.sum_all()?.backward()?.get(&xh).expect("gradient").to_dtype(DType::F64)?;
        assert_eq!(gh.flatten_all()?.to_vec1::<f64>()?, covered, "{dtype:?}");
    }
    Ok(())
}

#[test]
fn matches_pytorch_fixtures() -> Result<()> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../poolgrad/tests/fixtures/torch_pooling.json");
    let fixtures: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let floats = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| match x.as_str() {
                Some("nan") => f64::NAN,
                Some("inf") => f64::INFINITY,
                Some("-inf") => f64::NEG_INFINITY,
                _ => x.as_f64().unwrap(),
            })
            .collect()
    };
    let usizes = |v: &serde_json::Value| -> Vec<usize> {
        v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()
    };
    let same =
        |a: &[f64], b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y || (x.is_nan() && y.is_nan()));
    let mut checked = 0;
    for case in fixtures["cases"].as_array().unwrap() {
        if case["dtype"] != "float64" {
            continue;
        }
        let mut pool =
            if case["op"] == "max" { Pool::max(&usizes(&case["kernel"])) } else { Pool::avg(&usizes(&case["kernel"])) };
        pool = pool
            .stride(&usizes(&case["stride"]))
            .padding(&usizes(&case["padding"]))
            .ceil_mode(case["ceil_mode"].as_bool().unwrap());
        if case["op"] == "max" {
            pool = pool.dilation(&usizes(&case["dilation"]));
        } else {
            pool = pool.count_include_pad(case["count_include_pad"].as_bool().unwrap());
            if let Some(d) = case["divisor_override"].as_u64() {
                pool = pool.divisor_override(d as usize);
            }
        }
        if case["layout"] == "nxc" {
            pool = pool.channels_last();
        }
        let x = Var::from_vec(floats(&case["x"]), usizes(&case["x_shape"]).as_slice(), &Device::Cpu)?;
        let y = pool.forward(x.as_tensor())?;
        let g = Tensor::from_vec(floats(&case["grad_output"]), y.dims(), &Device::Cpu)?;
        let gx = (&y * &g)?.sum_all()?.backward()?.get(&x).expect("gradient").flatten_all()?.to_vec1::<f64>()?;
        let name = case["name"].as_str().unwrap();
        assert!(same(&y.flatten_all()?.to_vec1::<f64>()?, &floats(&case["y"])), "{name}: forward");
        // NaN inputs make y * g NaN in the loss, which is fine: the gradient routes g.
        assert!(same(&gx, &floats(&case["grad_input"])), "{name}: gradient");
        checked += 1;
    }
    assert_eq!(checked, 74);
    Ok(())
}

/// candle's own pooling (candle-core 0.11), measured: kept as a test so the difference
/// stays visible. If candle fixes these, this test fails and the README should change.
#[test]
fn candles_own_pooling_gradients_are_wrong() -> Result<()> {
    let dev = Device::Cpu;
    let data: Vec<f32> = (0..25).map(|v| ((v * 7) % 25) as f32).collect();
    let x = Var::from_vec(data, (1, 1, 5, 5), &dev)?;
    // Max pooling 2x2, stride 2: the right gradient puts 1 at each window's maximum.
    let right = Pool::max(&[2]).forward(x.as_tensor())?.sum_all()?.backward()?.get(&x).expect("gradient").clone();
    let candle = x.as_tensor().max_pool2d(2)?.sum_all()?.backward()?.get(&x).expect("gradient").clone();
    let (right, candle) = (right.flatten_all()?.to_vec1::<f32>()?, candle.flatten_all()?.to_vec1::<f32>()?);
    assert_eq!(right.iter().sum::<f32>(), 4.0);
    // candle 0.11.1: a single cell receives 1/4; three of the four window maxima get nothing.
    let mut measured = vec![0.0f32; 25];
    measured[6] = 0.25;
    assert_eq!(candle, measured, "candle's max-pool gradient changed: update the README");
    assert_ne!(candle, right);
    // Average pooling 2x2 on a 5x5 input: row 4 and column 4 are dropped by the forward
    // and must get no gradient.
    let candle_avg = x.as_tensor().avg_pool2d(2)?.sum_all()?.backward()?.get(&x).expect("gradient").clone();
    let right_avg = Pool::avg(&[2]).forward(x.as_tensor())?.sum_all()?.backward()?.get(&x).expect("gradient").clone();
    let (ca, ra) = (candle_avg.flatten_all()?.to_vec1::<f32>()?, right_avg.flatten_all()?.to_vec1::<f32>()?);
    assert_eq!(ra[4], 0.0);
    // candle 0.11.1: 1/4 everywhere, the dropped row and column included.
    assert_eq!(ca, vec![0.25f32; 25], "candle's avg-pool gradient changed: update the README");
    // Overlapping windows (3x3, stride 2): candle's backward refuses.
    let y = x.as_tensor().max_pool2d_with_stride(3, 2)?;
    assert!(
        y.sum_all()?.backward().is_err(),
        "candle's max-pool backward now accepts stride != kernel: update the README"
    );
    Ok(())
}
