//! Every case of the ONNX pooling test suite (`../shared/conformance/onnx`): MaxPool
//! (indices and uint8 included), AveragePool, LpPool, GlobalMaxPool, GlobalAveragePool
//! and MaxUnpool, through the library.

mod common;

use common::{assert_close, read_npy, shared_dir};
use poolgrad::{
    indices_to_onnx, reference, AvgPool, Layout, LpFormula, LpPool, MaxPool, MaxUnpool, Padding, PoolGeometry, Pooling,
    Shape, StorageOrder, Tensor,
};
use serde_json::Value;

fn ints(v: Option<&Value>) -> Option<Vec<usize>> {
    v.map(|a| a.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect())
}

/// ONNX attributes → our geometry (ONNX defaults: stride 1, no pads, floor).
fn geometry(attrs: &Value, rank: usize) -> PoolGeometry {
    let kernel = ints(attrs.get("kernel_shape")).unwrap();
    let g = PoolGeometry::new(&kernel)
        .stride(&ints(attrs.get("strides")).unwrap_or(vec![1; rank]))
        .dilation(&ints(attrs.get("dilations")).unwrap_or(vec![1; rank]))
        .ceil_mode(attrs.get("ceil_mode").and_then(Value::as_i64) == Some(1));
    let padding = match attrs.get("auto_pad").and_then(Value::as_str).unwrap_or("NOTSET") {
        "SAME_UPPER" => Padding::SameUpper,
        "SAME_LOWER" => Padding::SameLower,
        "VALID" => Padding::Valid,
        "NOTSET" => match ints(attrs.get("pads")) {
            Some(p) => Padding::Explicit { begin: p[..rank].to_vec(), end: p[rank..].to_vec() },
            None => Padding::None,
        },
        other => panic!("auto_pad {other}"),
    };
    g.padding(padding)
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
    let input =
        Tensor::new(x.data.iter().map(|&v| convert(v)).collect(), shape.clone(), Layout::ChannelsFirst).unwrap();
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
        "LpPool" => {
            let p = attrs.get("p").and_then(Value::as_i64).unwrap_or(2) as f64;
            let pool = LpPool::new(g.clone(), p).formula(LpFormula::Onnx);
            let out = pool.forward(&input.view()).unwrap();
            assert_eq!(out.dims(), y.shape, "{id}: output shape");
            assert_close(id, &to_f64(&out), &y.data, 1e-5);
            (1, false)
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
fn every_onnx_pooling_case_passes() {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(shared_dir().join("conformance/onnx/manifest.json")).unwrap()).unwrap();
    let cases = manifest["cases"].as_array().unwrap();
    let (mut ran, mut with_indices, mut other_ops) = (0, 0, 0);
    for case in cases {
        let op = case["op_type"].as_str().unwrap();
        let dir = shared_dir().join("conformance/onnx").join(case["id"].as_str().unwrap());
        let x = read_npy(&dir.join("input_0.npy"));
        match op {
            "GlobalMaxPool" | "GlobalAveragePool" | "MaxUnpool" => {
                other_ops += run_other(case, op, &dir);
                continue;
            }
            _ => {}
        }
        let (n, idx) = match x.descr.as_str() {
            "<f4" => run_case::<f32>(case, |v| v as f32),
            "<f8" => run_case::<f64>(case, |v| v),
            "|u1" => {
                // Integers run natively through the max forward.
                let shape = Shape::from_dims(&x.shape, Layout::ChannelsFirst).unwrap();
                let input =
                    Tensor::new(x.ints.iter().map(|&v| v as u8).collect(), shape.clone(), Layout::ChannelsFirst)
                        .unwrap();
                let out = MaxPool::new(geometry(&case["attributes"], shape.spatial.len()))
                    .forward_with_indices(&input.view())
                    .unwrap();
                let y = read_npy(&dir.join("output_0.npy"));
                assert_eq!(out.output.dims(), y.shape);
                assert_eq!(out.output.data().iter().map(|&v| v as i64).collect::<Vec<_>>(), y.ints, "uint8 max");
                (1, false)
            }
            other => panic!("{}: dtype {other}", case["id"]),
        };
        ran += n;
        with_indices += idx as usize;
    }
    println!("ONNX conformance: {} of {} cases passed ({with_indices} with indices)", ran + other_ops, cases.len());
    assert_eq!(ran + other_ops, cases.len(), "every case must run");
    assert_eq!(with_indices, 2);
}

/// Global pooling and max unpooling, which take no window attributes.
fn run_other(case: &Value, op: &str, dir: &std::path::Path) -> usize {
    let id = case["id"].as_str().unwrap();
    let inputs = case["inputs"].as_array().unwrap();
    let x = read_npy(&dir.join(inputs[0]["file"].as_str().unwrap()));
    let y = read_npy(&dir.join(case["outputs"][0]["file"].as_str().unwrap()));
    assert_eq!(x.descr, "<f4", "{id}");
    let shape = Shape::from_dims(&x.shape, Layout::ChannelsFirst).unwrap();
    let input = Tensor::new(x.data.iter().map(|&v| v as f32).collect(), shape.clone(), Layout::ChannelsFirst).unwrap();
    let out = match op {
        "GlobalMaxPool" => MaxPool::global().forward(&input.view()).unwrap(),
        "GlobalAveragePool" => AvgPool::global().forward(&input.view()).unwrap(),
        _ => {
            let attrs = &case["attributes"];
            let rank = shape.spatial.len();
            let unpool = MaxUnpool::new(&ints(attrs.get("kernel_shape")).unwrap())
                .stride(&ints(attrs.get("strides")).unwrap_or(vec![1; rank]));
            let unpool = match ints(attrs.get("pads")) {
                Some(p) => unpool.pads(&p[..rank], &p[rank..]),
                None => unpool,
            };
            let idx = read_npy(&dir.join(inputs[1]["file"].as_str().unwrap()));
            let idx = Tensor::new(idx.ints, shape.clone(), Layout::ChannelsFirst).unwrap();
            let output_shape = inputs.get(2).map(|f| {
                read_npy(&dir.join(f["file"].as_str().unwrap())).ints.iter().map(|&v| v as usize).collect::<Vec<_>>()
            });
            unpool.forward_onnx(&input.view(), &idx.view(), output_shape.as_deref()).unwrap()
        }
    };
    assert_eq!(out.dims(), y.shape, "{id}: output shape");
    assert_close(id, &out.data().iter().map(|&v| v as f64).collect::<Vec<_>>(), &y.data, 1e-6);
    1
}
