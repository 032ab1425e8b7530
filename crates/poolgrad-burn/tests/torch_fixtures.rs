//! Every PyTorch fixture of the library (`crates/poolgrad/tests/fixtures`, written by
//! `tools/gen_fixtures.py` with PyTorch) through burn: tensors on `Flex` and `NdArray`
//! with autodiff, forward through `poolgrad_burn::functional`, the input gradient from
//! `loss.backward()`, and the double backward by differentiating the backward function
//! (a gradient-penalty loss `sum(ggx · ∂L/∂x)`), against PyTorch's numbers.

mod common;

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use poolgrad::{AvgPool, FractionalMaxPool, Layout, LpPool, MaxPool, MaxUnpool, Operator, Padding, PoolGeometry};
use poolgrad_burn::functional;
use serde_json::Value;

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| match x.as_str() {
            Some("nan") => f64::NAN,
            Some("inf") => f64::INFINITY,
            Some("-inf") => f64::NEG_INFINITY,
            Some(other) => panic!("bad float {other}"),
            None => x.as_f64().unwrap(),
        })
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect()
}

/// `|got − want| <= rel · max(1, |want|)`, NaN equal to NaN, infinities equal.
fn assert_close(what: &str, got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= rel * w.abs().max(1.0);
        assert!(ok, "{what}: element {i}: got {g}, want {w} (rel tol {rel})");
    }
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().convert::<f64>().try_into_vec::<f64>().unwrap()
}

/// The library's operator a fixture case describes (PyTorch's parameters, as written).
fn operator(case: &Value) -> Operator {
    let geometry = || {
        let mut g = PoolGeometry::new(&usizes(&case["kernel"])).stride(&usizes(&case["stride"]));
        if let Some(p) = case.get("padding") {
            g = g.padding(Padding::Symmetric(usizes(p)));
        }
        if let Some(d) = case.get("dilation") {
            g = g.dilation(&usizes(d));
        }
        g.ceil_mode(case["ceil_mode"].as_bool().unwrap_or(false))
    };
    match case["op"].as_str().unwrap() {
        "max" => Operator::Max(MaxPool::new(geometry())),
        "adaptive_max" => Operator::Max(MaxPool::adaptive(&usizes(&case["output_size"]))),
        "avg" => Operator::Avg(
            AvgPool::new(geometry())
                .count_include_pad(case["count_include_pad"].as_bool().unwrap())
                .divisor_override(case["divisor_override"].as_u64().map(|d| d as usize)),
        ),
        "adaptive_avg" => Operator::Avg(AvgPool::adaptive(&usizes(&case["output_size"]))),
        "lp" => {
            let p = match &case["norm_type"] {
                Value::String(s) if s == "inf" => f64::INFINITY,
                v => v.as_f64().unwrap(),
            };
            Operator::Lp(LpPool::new(geometry(), p))
        }
        op => panic!("not a pooling operator: {op}"),
    }
}

struct Tol {
    exact: f64,
    approx: f64,
}

fn check<const D: usize>(case: &Value, device: &Device, dtype: DType, tol: &Tol) {
    let name = format!("{} on {device:?}", case["name"].as_str().unwrap());
    let layout: Layout = case["layout"].as_str().unwrap().parse().unwrap();
    let (x_dims, y_dims) = (usizes(&case["x_shape"]), usizes(&case["y_shape"]));
    let tensor = |key: &str, dims: &[usize]| {
        Tensor::<D>::from_data(TensorData::new(floats(&case[key]), dims.to_vec()), (device, dtype)).require_grad()
    };
    let index_tensor = |key: &str, dims: &[usize]| {
        Tensor::<D, Int>::from_data(TensorData::new(ints(&case[key]), dims.to_vec()), device)
    };
    let x = tensor("x", &x_dims);
    let g = tensor("grad_output", &y_dims);
    let op_name = case["op"].as_str().unwrap();
    // Selections and plain sums are exact; PyTorch's adaptive average, LP and half-type
    // math may round differently.
    let t = match op_name {
        "max" | "adaptive_max" | "avg" | "unpool" | "fractional_max" => tol.exact,
        _ => tol.approx,
    };
    let (y, indices) = match op_name {
        "max" | "adaptive_max" => {
            let (y, i) = functional::max_pool_with_indices(x.clone(), &operator(case), layout).unwrap();
            (y, Some(i))
        }
        "fractional_max" => {
            let pool = FractionalMaxPool::new(&usizes(&case["kernel"]), &usizes(&case["output_size"]));
            let k = x_dims.len() - 2;
            let samples = Tensor::<3>::from_data(
                TensorData::new(
                    floats(&case["samples"]),
                    vec![x_dims[0], floats(&case["samples"]).len() / (x_dims[0] * k), k],
                ),
                (device, dtype),
            );
            let (y, i) = functional::fractional_max_pool(x.clone(), samples, &pool, layout).unwrap();
            (y, Some(i))
        }
        "unpool" => {
            let unpool = MaxUnpool::new(&usizes(&case["kernel"]))
                .stride(&usizes(&case["stride"]))
                .padding(&usizes(&case["padding"]));
            let size = case["output_size"].as_array().map(|_| usizes(&case["output_size"]));
            let i = index_tensor("unpool_indices", &x_dims);
            (functional::max_unpool(x.clone(), i.clone(), &unpool, size.as_deref(), layout).unwrap(), Some(i))
        }
        _ => (functional::pool(x.clone(), &operator(case), layout).unwrap(), None),
    };
    assert_eq!(y.dims().to_vec(), y_dims, "{name}: output shape");
    assert_close(&format!("{name}: output"), &values(y.clone()), &floats(&case["y"]), t);
    if let (Some(i), Some(want)) = (&indices, case.get("indices")) {
        assert_eq!(
            values(i.clone().float()),
            ints(want).iter().map(|&v| v as f64).collect::<Vec<_>>(),
            "{name}: indices"
        );
    }
    let grads = (y * g.clone().detach()).sum().backward();
    let gx = x.grad(&grads).expect("an input gradient");
    assert_close(&format!("{name}: grad_input"), &values(gx), &floats(&case["grad_input"]), t);

    let Some(ggx_values) = case.get("grad_grad_input") else { return };
    // The double backward: differentiate the backward function itself.
    let ggx = Tensor::<D>::from_data(TensorData::new(floats(ggx_values), x_dims.clone()), (device, dtype));
    let (x, g) = (tensor("x", &x_dims), tensor("grad_output", &y_dims));
    let gx = match op_name {
        "fractional_max" => {
            functional::scatter_add(g.clone(), indices.unwrap(), x_dims_array(&x_dims), layout).unwrap()
        }
        "unpool" => {
            // The unpooling's input is x (narrow); its backward is a gather from g (wide).
            let ggx = Tensor::<D>::from_data(TensorData::new(floats(ggx_values), x_dims.clone()), (device, dtype));
            let gathered = functional::gather(g.clone(), indices.unwrap(), layout).unwrap();
            let grads = (gathered * ggx).sum().backward();
            let ggy = g.grad(&grads).expect("a grad-output gradient");
            assert_close(&format!("{name}: double backward"), &values(ggy), &floats(&case["grad_grad_output"]), t);
            return;
        }
        _ => functional::pool_backward(x.clone(), g.clone(), &operator(case), layout).unwrap(),
    };
    let grads = (gx * ggx).sum().backward();
    let ggy = g.grad(&grads).expect("a grad-output gradient");
    assert_close(&format!("{name}: double backward"), &values(ggy), &floats(&case["grad_grad_output"]), t);
    if let Some(want) = case.get("double_backward_input") {
        let hv = x.grad(&grads).expect("an input part");
        // Second derivatives amplify PyTorch's intermediate roundings: 10x looser.
        assert_close(&format!("{name}: double backward, input part"), &values(hv), &floats(want), 10.0 * tol.approx);
    }
}

fn x_dims_array<const D: usize>(dims: &[usize]) -> [usize; D] {
    dims.try_into().expect("rank")
}

/// Checks every case of a fixture file on both backends; returns how many ran.
fn check_file(file: &str) -> usize {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../poolgrad/tests/fixtures").join(file);
    let fixtures: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut checked = 0;
    for case in fixtures["cases"].as_array().unwrap() {
        let (dtype, tol, half) = match case["dtype"].as_str().unwrap() {
            "float32" => (DType::F32, Tol { exact: 0.0, approx: 2e-6 }, false),
            "float64" => (DType::F64, Tol { exact: 0.0, approx: 1e-13 }, false),
            "float16" => (DType::F16, Tol { exact: 0.0, approx: 1e-3 }, true),
            "bfloat16" => (DType::BF16, Tol { exact: 0.0, approx: 8e-3 }, true),
            d => panic!("dtype {d}"),
        };
        for (backend, device) in common::devices() {
            // burn-ndarray holds f32 and f64 only.
            if half && backend == "ndarray" {
                continue;
            }
            match usizes(&case["x_shape"]).len() {
                3 => check::<3>(case, &device, dtype, &tol),
                4 => check::<4>(case, &device, dtype, &tol),
                5 => check::<5>(case, &device, dtype, &tol),
                r => panic!("rank {r}"),
            }
            checked += 1;
        }
    }
    checked
}

#[test]
fn max_and_avg_pooling_match_pytorch() {
    // 148 cases (1-D to 3-D, both layouts, every geometry option, ties, NaN), 2 backends.
    assert_eq!(check_file("torch_pooling.json"), 2 * 148);
}

#[test]
fn the_whole_family_matches_pytorch() {
    // 112 cases: adaptive, global, LP, unpool, fractional, double backward; the 12 f16/bf16
    // cases on Flex only.
    assert_eq!(check_file("torch_family.json"), 2 * 112 - 12);
}

#[test]
fn one_number_lists_match_pytorch() {
    assert_eq!(check_file("torch_one_number.json"), 2 * 50);
}
