//! Every MaxPool and AveragePool case of the ONNX operator test suite
//! (`../shared/conformance/onnx`), through the library, indices included.

mod common;

use common::{assert_close, read_npy, shared_dir};
use poolgrad::{
    indices_to_onnx, reference, AvgPool, Layout, MaxPool, Padding, PoolGeometry, Pooling, Shape, StorageOrder, Tensor,
};
use serde_json::Value;

fn ints(v: Option<&Value>) -> Option<Vec<usize>> {
    v.map(|a| a.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect())
}

/// ONNX attributes → our geometry (ONNX defaults: stride 1, no pads, floor).
fn geometry(attrs: &Value, rank: usize) -> PoolGeometry {
    let kernel = ints(attrs.get("kernel_shape")).unwrap();
    let mut g = PoolGeometry::new(&kernel)
        .stride(&ints(attrs.get("strides")).unwrap_or(vec![1; rank]))
        .dilation(&ints(attrs.get("dilations")).unwrap_or(vec![1; rank]))
        .ceil_mode(attrs.get("ceil_mode").and_then(Value::as_i64) == Some(1));
    g.padding = match attrs.get("auto_pad").and_then(Value::as_str).unwrap_or("NOTSET") {
        "SAME_UPPER" => Padding::SameUpper,
        "SAME_LOWER" => Padding::SameLower,
        "VALID" => Padding::Valid,
        "NOTSET" => match ints(attrs.get("pads")) {
            Some(p) => Padding::Explicit { begin: p[..rank].to_vec(), end: p[rank..].to_vec() },
            None => Padding::None,
        },
        other => panic!("auto_pad {other}"),
    };
    g
}

/// Runs one case in `T`, checking forward values, indices and the backward against the
/// plain reference.
fn run_case<T: poolgrad::Element + Into<f64>>(case: &Value, convert: impl Fn(f64) -> T) -> (usize, bool) {
    let dir = shared_dir().join("conformance/onnx").join(case["id"].as_str().unwrap());
    let x = read_npy(&dir.join(case["inputs"][0]["file"].as_str().unwrap()));
    let outputs = case["outputs"].as_array().unwrap();
    let y = read_npy(&dir.join(outputs[0]["file"].as_str().unwrap()));
    let shape = Shape::from_dims(&x.shape, Layout::ChannelsFirst).unwrap();
    let attrs = &case["attributes"];
    let g = geometry(attrs, shape.spatial.len());
    let input = Tensor::new(x.data.iter().map(|&v| convert(v)).collect(), shape.clone(), Layout::ChannelsFirst).unwrap();
    let id = case["id"].as_str().unwrap();
    let to_f64 = |t: &Tensor<T>| t.data().iter().map(|&v| v.into()).collect::<Vec<f64>>();
    // A grad-output with distinct values, to check the backward against the reference.
    let out_shape = Shape::from_dims(&y.shape, Layout::ChannelsFirst).unwrap();
    let grad = Tensor::new(
        (0..out_shape.numel().unwrap()).map(|i| convert(((i * 7919) % 97) as f64 / 8.0 - 6.0)).collect(),
        out_shape.clone(),
        Layout::ChannelsFirst,
    )
    .unwrap();
    match case["op_type"].as_str().unwrap() {
        "MaxPool" => {
            let pool = MaxPool::new(g.clone());
            let out = pool.forward_with_indices(&input.view()).unwrap();
            assert_eq!(out.output.dims(), y.shape, "{id}: output shape");
            assert_close(id, &to_f64(&out.output), &y.data, 0.0);
            if let Some(z) = outputs.get(1) {
                let z = read_npy(&dir.join(z["file"].as_str().unwrap()));
                let order = match attrs.get("storage_order").and_then(Value::as_i64) {
                    Some(1) => StorageOrder::ColumnMajor,
                    _ => StorageOrder::RowMajor,
                };
                let onnx = indices_to_onnx(&out.indices.view(), &shape.spatial, order).unwrap();
                assert_eq!(onnx.data(), &z.ints[..], "{id}: indices");
            }
            let gx = pool.backward_with_indices(&shape, &grad.view(), &out.indices.view()).unwrap();
            let want = reference::max_pool_backward(&input.view(), &grad.view(), &g).unwrap();
            assert_eq!(gx, want, "{id}: backward");
            (1, outputs.len() > 1)
        }
        "AveragePool" => {
            let include = attrs.get("count_include_pad").and_then(Value::as_i64) == Some(1);
            let pool = AvgPool::new(g.clone()).count_include_pad(include);
            let out = pool.forward(&input.view()).unwrap();
            assert_eq!(out.dims(), y.shape, "{id}: output shape");
            // A few ONNX cases store hand-written expectations rounded to 4 decimals.
            let rounded = y.data.iter().all(|v| ((v * 1e4).round() - v * 1e4).abs() < 1e-2);
            assert_close(id, &to_f64(&out), &y.data, if rounded { 1e-4 } else { 1e-6 });
            let gx = pool.backward(&input.view(), &grad.view()).unwrap();
            let want = reference::avg_pool_backward(&input.view(), &grad.view(), &g, include, None).unwrap();
            assert_eq!(gx, want, "{id}: backward");
            (1, false)
        }
        _ => (0, false),
    }
}

#[test]
fn every_onnx_maxpool_and_averagepool_case_passes() {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(shared_dir().join("conformance/onnx/manifest.json")).unwrap()).unwrap();
    let cases = manifest["cases"].as_array().unwrap();
    let (mut ran, mut with_indices, mut other_ops) = (0, 0, vec![]);
    for case in cases {
        let op = case["op_type"].as_str().unwrap();
        if op != "MaxPool" && op != "AveragePool" {
            other_ops.push(case["id"].as_str().unwrap().to_string());
            continue;
        }
        let x = read_npy(&shared_dir().join("conformance/onnx").join(case["id"].as_str().unwrap()).join("input_0.npy"));
        let (n, idx) = match x.descr.as_str() {
            "<f4" => run_case::<f32>(case, |v| v as f32),
            // uint8 values are exact in f64, and max pooling only compares and copies them.
            "<f8" | "|u1" => run_case::<f64>(case, |v| v),
            other => panic!("{}: dtype {other}", case["id"]),
        };
        ran += n;
        with_indices += idx as usize;
    }
    println!("ONNX conformance: {ran} MaxPool/AveragePool cases passed ({with_indices} with indices); other ops not run here: {other_ops:?}");
    assert_eq!(ran + other_ops.len(), cases.len());
    assert_eq!(ran, 52, "every MaxPool (27) and AveragePool (25) case must run");
    assert_eq!(with_indices, 2);
}
