//! The rest of the family against PyTorch (fixtures from `tools/gen_fixtures.py`):
//! adaptive max/avg (output sizes that do not divide or exceed the input), global, LP
//! (p = 1, 2, 3, 1.5, inf), max unpool, fractional max with given samples, double
//! backward, and f16/bf16 against PyTorch's own half-precision results.

mod common;

use common::assert_close;
use poolgrad::{
    bf16, f16, AvgPool, Element, FractionalMaxPool, Layout, LpPool, MaxPool, MaxUnpool, Padding, PoolGeometry, Pooling,
    Shape, Tensor,
};
use serde_json::Value;

use common::{json_floats as floats, json_usizes as usizes};

fn ints(v: &Value) -> Vec<i64> {
    v.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect()
}

/// Tolerances, relative: `exact` for ops that only select and copy (or sum in PyTorch's
/// order), `approx` where PyTorch's composite or vectorised math may round differently.
struct Tol {
    exact: f64,
    approx: f64,
}

fn check<T: Element>(case: &Value, tol: &Tol) {
    let name = case["name"].as_str().unwrap();
    let layout: Layout = case["layout"].as_str().unwrap().parse().unwrap();
    let x_shape = Shape::from_dims(&usizes(&case["x_shape"]), layout).unwrap();
    let y_shape = Shape::from_dims(&usizes(&case["y_shape"]), layout).unwrap();
    let tensor = |key: &str, shape: &Shape| {
        Tensor::new(floats(&case[key]).into_iter().map(T::from_f64).collect(), shape.clone(), layout).unwrap()
    };
    let x = tensor("x", &x_shape);
    let g = tensor("grad_output", &y_shape);
    let f64s = |t: &Tensor<T>| t.data().iter().map(|v| v.to_f64()).collect::<Vec<f64>>();
    let (want_y, want_gx) = (floats(&case["y"]), floats(&case["grad_input"]));
    let double =
        case.get("grad_grad_input").map(|_| (tensor("grad_grad_input", &x_shape), floats(&case["grad_grad_output"])));
    let label = |what: &str| format!("{name}: {what}");
    let geometry = || {
        let mut geometry = PoolGeometry::new(&usizes(&case["kernel"])).stride(&usizes(&case["stride"]));
        if let Some(p) = case.get("padding") {
            geometry = geometry.padding(Padding::Symmetric(usizes(p)));
        }
        if let Some(d) = case.get("dilation") {
            geometry = geometry.dilation(&usizes(d));
        }
        geometry.ceil_mode(case["ceil_mode"].as_bool().unwrap_or(false))
    };
    match case["op"].as_str().unwrap() {
        op @ ("adaptive_max" | "max") => {
            let pool =
                if op == "max" { MaxPool::new(geometry()) } else { MaxPool::adaptive(&usizes(&case["output_size"])) };
            let out = pool.forward_with_indices(&x.view()).unwrap();
            assert_eq!(out.output.shape(), &y_shape, "{name}");
            assert_close(&label("output"), &f64s(&out.output), &want_y, 0.0);
            assert_eq!(out.indices.data(), &ints(&case["indices"])[..], "{name}: indices");
            let gx = pool.backward_with_indices(&x_shape, &g.view(), &out.indices.view()).unwrap();
            assert_close(&label("grad_input"), &f64s(&gx), &want_gx, tol.exact);
            if let Some((ggx, want)) = &double {
                assert_close(
                    &label("double backward"),
                    &f64s(&pool.double_backward(&x.view(), &ggx.view()).unwrap()),
                    want,
                    0.0,
                );
            }
        }
        op @ ("adaptive_avg" | "avg") => {
            let pool = if op == "avg" {
                AvgPool::new(geometry())
                    .count_include_pad(case["count_include_pad"].as_bool().unwrap())
                    .divisor_override(case["divisor_override"].as_u64().map(|d| d as usize))
            } else {
                AvgPool::adaptive(&usizes(&case["output_size"]))
            };
            // PyTorch reduces a 1x1 adaptive output with `mean` (a vectorised, reordered
            // sum), so adaptive avg agrees to rounding, regular avg bitwise.
            let t = if op == "avg" { tol.exact } else { tol.approx };
            let y = pool.forward(&x.view()).unwrap();
            assert_eq!(y.shape(), &y_shape, "{name}");
            assert_close(&label("output"), &f64s(&y), &want_y, t);
            assert_close(&label("grad_input"), &f64s(&pool.backward(&x.view(), &g.view()).unwrap()), &want_gx, t);
            if let Some((ggx, want)) = &double {
                assert_close(
                    &label("double backward"),
                    &f64s(&pool.double_backward(&x.view(), &ggx.view()).unwrap()),
                    want,
                    t,
                );
            }
        }
        "lp" => {
            let p = match &case["norm_type"] {
                Value::String(s) if s == "inf" => f64::INFINITY,
                v => v.as_f64().unwrap(),
            };
            let pool = LpPool::new(geometry(), p);
            let y = pool.forward(&x.view()).unwrap();
            assert_eq!(y.shape(), &y_shape, "{name}");
            assert_close(&label("output"), &f64s(&y), &want_y, tol.approx);
            assert_close(
                &label("grad_input"),
                &f64s(&pool.backward(&x.view(), &g.view()).unwrap()),
                &want_gx,
                tol.approx,
            );
            if let Some((ggx, want)) = &double {
                assert_close(
                    &label("double backward"),
                    &f64s(&pool.double_backward(&x.view(), &ggx.view()).unwrap()),
                    want,
                    tol.approx,
                );
                if case.get("double_backward_input").is_some() {
                    let got = pool.double_backward_input(&x.view(), &g.view(), &ggx.view()).unwrap();
                    // Second derivatives amplify PyTorch's intermediate roundings: 10x looser.
                    assert_close(
                        &label("double backward, input part"),
                        &f64s(&got),
                        &floats(&case["double_backward_input"]),
                        10.0 * tol.approx,
                    );
                }
            }
        }
        "unpool" => {
            let unpool = MaxUnpool::new(&usizes(&case["kernel"]))
                .stride(&usizes(&case["stride"]))
                .padding(&usizes(&case["padding"]));
            let size = case["output_size"].as_array().map(|_| usizes(&case["output_size"]));
            let idx = Tensor::new(ints(&case["unpool_indices"]), x_shape.clone(), layout).unwrap();
            let y = unpool.forward(&x.view(), &idx.view(), size.as_deref()).unwrap();
            assert_eq!(y.shape(), &y_shape, "{name}");
            assert_close(&label("output"), &f64s(&y), &want_y, 0.0);
            assert_close(&label("grad_input"), &f64s(&unpool.backward(&g.view(), &idx.view()).unwrap()), &want_gx, 0.0);
            if let Some((ggx, want)) = &double {
                let ggy = unpool.double_backward(&ggx.view(), &idx.view(), size.as_deref()).unwrap();
                assert_close(&label("double backward"), &f64s(&ggy), want, 0.0);
            }
        }
        "fractional_max" => {
            let pool = FractionalMaxPool::new(&usizes(&case["kernel"]), &usizes(&case["output_size"]));
            let samples: Vec<T> = floats(&case["samples"]).into_iter().map(T::from_f64).collect();
            let out = pool.forward_with_indices(&x.view(), &samples).unwrap();
            assert_eq!(out.output.shape(), &y_shape, "{name}");
            assert_close(&label("output"), &f64s(&out.output), &want_y, 0.0);
            assert_eq!(out.indices.data(), &ints(&case["indices"])[..], "{name}: indices");
            let gx = pool.backward_with_indices(&x_shape, &g.view(), &out.indices.view()).unwrap();
            assert_close(&label("grad_input"), &f64s(&gx), &want_gx, 0.0);
            if let Some((ggx, want)) = &double {
                let ggy = pool.double_backward_with_indices(&ggx.view(), &out.indices.view()).unwrap();
                assert_close(&label("double backward"), &f64s(&ggy), want, 0.0);
            }
        }
        op => panic!("{name}: unknown op {op}"),
    }
}

/// Checks every case of a fixture file; returns the case count per op.
fn check_file(file: &str) -> (Value, std::collections::BTreeMap<String, usize>) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(file);
    let fixtures: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut counts = std::collections::BTreeMap::new();
    for case in fixtures["cases"].as_array().unwrap() {
        match case["dtype"].as_str().unwrap() {
            "float32" => check::<f32>(case, &Tol { exact: 0.0, approx: 2e-6 }),
            "float64" => check::<f64>(case, &Tol { exact: 0.0, approx: 1e-13 }),
            // Half precision: PyTorch rounds the same way (f32 sums, one rounding), so
            // selections and avg are exact; see the test's notes for any tolerance.
            "float16" => check::<f16>(case, &Tol { exact: 0.0, approx: 1e-3 }),
            "bfloat16" => check::<bf16>(case, &Tol { exact: 0.0, approx: 8e-3 }),
            d => panic!("dtype {d}"),
        }
        *counts.entry(case["op"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    (fixtures, counts)
}

#[test]
fn matches_pytorch_on_the_whole_family() {
    let (fixtures, counts) = check_file("torch_family.json");
    println!("PyTorch {}: {} family cases passed: {counts:?}", fixtures["torch"], counts.values().sum::<usize>());
    assert_eq!(counts.values().sum::<usize>(), 112);
}

/// Every op with its list parameters written as one number, as PyTorch users write them
/// (`lp_pool2d(x, 2, 2)`, `max_pool3d(x, 2, 1, 0, 2)`, `adaptive_avg_pool3d(x, 2)`, ...),
/// passed to poolgrad as written.
#[test]
fn matches_pytorch_with_one_number_per_list() {
    let (fixtures, counts) = check_file("torch_one_number.json");
    println!("PyTorch {}: {} one-number cases passed: {counts:?}", fixtures["torch"], counts.values().sum::<usize>());
    assert_eq!(counts.values().sum::<usize>(), 50);
    for op in ["lp", "max", "avg", "adaptive_max", "adaptive_avg", "fractional_max", "unpool"] {
        assert!(counts.contains_key(op), "no {op} case");
    }
}
