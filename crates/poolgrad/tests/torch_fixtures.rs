//! poolgrad against PyTorch's own results (fixtures written by `tools/gen_fixtures.py`):
//! forward values, argmax indices and input gradients across 1-D/2-D/3-D, both layouts,
//! f32 and f64, ceil-mode edge cases, ties, NaN and infinities.

mod common;

use common::assert_close;
use poolgrad::{AvgPool, Element, Layout, MaxPool, Padding, PoolGeometry, Shape, Tensor};
use serde_json::Value;

use common::{json_floats as floats, json_usizes as usizes};

/// Runs one case in `T`, demanding bitwise equality with PyTorch (same taps, same
/// summation order, same divisor).
fn check<T: Element + Into<f64>>(case: &Value, from: impl Fn(f64) -> T) {
    let name = case["name"].as_str().unwrap();
    let layout: Layout = case["layout"].as_str().unwrap().parse().unwrap();
    let x_shape = Shape::from_dims(&usizes(&case["x_shape"]), layout).unwrap();
    let y_shape = Shape::from_dims(&usizes(&case["y_shape"]), layout).unwrap();
    let x = Tensor::new(floats(&case["x"]).into_iter().map(&from).collect(), x_shape.clone(), layout).unwrap();
    let g =
        Tensor::new(floats(&case["grad_output"]).into_iter().map(&from).collect(), y_shape.clone(), layout).unwrap();
    let geometry = PoolGeometry::new(&usizes(&case["kernel"]))
        .stride(&usizes(&case["stride"]))
        .padding(Padding::Symmetric(usizes(&case["padding"])))
        .dilation(&usizes(&case["dilation"]))
        .ceil_mode(case["ceil_mode"].as_bool().unwrap());
    let f64s = |t: &Tensor<T>| t.data().iter().map(|&v| v.into()).collect::<Vec<f64>>();
    let (want_y, want_gx) = (floats(&case["y"]), floats(&case["grad_input"]));
    match case["op"].as_str().unwrap() {
        "max" => {
            let pool = MaxPool::new(geometry);
            let out = pool.forward_with_indices(&x.view()).unwrap();
            assert_eq!(out.output.shape(), &y_shape, "{name}: shape");
            assert_close(&format!("{name}: output"), &f64s(&out.output), &want_y, 0.0);
            let want_idx: Vec<i64> = case["indices"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
            assert_eq!(out.indices.data(), &want_idx[..], "{name}: indices");
            let gx = pool.backward_with_indices(&x_shape, &g.view(), &out.indices.view()).unwrap();
            assert_close(&format!("{name}: grad_input"), &f64s(&gx), &want_gx, 0.0);
            // The backward without saved indices recomputes the same argmax.
            use poolgrad::Pooling;
            assert_eq!(pool.backward(&x.view(), &g.view()).unwrap(), gx, "{name}: backward from input");
        }
        "avg" => {
            let pool = AvgPool::new(geometry)
                .count_include_pad(case["count_include_pad"].as_bool().unwrap())
                .divisor_override(case["divisor_override"].as_u64().map(|d| d as usize));
            let y = pool.forward_values(&x.view()).unwrap();
            assert_eq!(y.shape(), &y_shape, "{name}: shape");
            assert_close(&format!("{name}: output"), &f64s(&y), &want_y, 0.0);
            let gx = pool.backward_from_shape(&x_shape, &g.view()).unwrap();
            assert_close(&format!("{name}: grad_input"), &f64s(&gx), &want_gx, 0.0);
        }
        op => panic!("{name}: unknown op {op}"),
    }
}

#[test]
fn matches_pytorch_on_every_fixture() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_pooling.json");
    let fixtures: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let cases = fixtures["cases"].as_array().unwrap();
    for case in cases {
        match case["dtype"].as_str().unwrap() {
            "float32" => check::<f32>(case, |v| v as f32),
            "float64" => check::<f64>(case, |v| v),
            d => panic!("dtype {d}"),
        }
    }
    println!("PyTorch {}: {} cases bitwise identical", fixtures["torch"], cases.len());
    assert_eq!(cases.len(), 148);
}
