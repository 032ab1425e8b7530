//! Through candle too, one number for a list parameter means that number in every spatial
//! dim: each builder with one list parameter written once gives, bitwise, the forward and
//! the autograd gradient of the same pool with every list written per dim (2-D and 3-D,
//! both layouts). Second order: `second_order.rs`.

use candle_core::{Device, Module, Result, Tensor, Var};
use poolgrad_candle::Pool;

mod common;
use common::values;

/// A pool builder from its list parameters (each written as given).
type Build = fn(&Lists) -> Pool;

struct Lists {
    kernel: Vec<usize>,
    stride: Vec<usize>,
    padding: Vec<usize>,
    dilation: Vec<usize>,
    output: Vec<usize>,
}

/// Forward values and the gradient of `Σ w ⊙ pool(x)` w.r.t. `x`, as bits.
fn outputs(pool: &Pool, dims: &[usize], channels_last: bool) -> Result<(Vec<u64>, Vec<u64>)> {
    let n: usize = dims.iter().product();
    let data: Vec<f64> = values(n, 3).iter().map(|v| v.abs() + 0.25).collect();
    let x = Var::from_vec(data, dims, &Device::Cpu)?;
    let pool = if channels_last { pool.clone().channels_last() } else { pool.clone() };
    let y = pool.forward(x.as_tensor())?;
    let w = Tensor::from_vec(values(y.elem_count(), 5), y.dims(), &Device::Cpu)?;
    let gx = (&y * &w)?.sum_all()?.backward()?.get(&x).expect("gradient").clone();
    let bits = |t: &Tensor| -> Result<Vec<u64>> {
        Ok(t.flatten_all()?.to_vec1::<f64>()?.iter().map(|v| v.to_bits()).collect())
    };
    Ok((bits(&y)?, bits(&gx)?))
}

#[test]
fn one_number_means_every_dim_through_candle() -> Result<()> {
    let builders: [(&str, Build, &[&str]); 7] = [
        (
            "max",
            |l| Pool::max(&l.kernel).stride(&l.stride).padding(&l.padding).dilation(&l.dilation).ceil_mode(true),
            &["kernel", "stride", "padding", "dilation"],
        ),
        (
            "avg",
            |l| Pool::avg(&l.kernel).stride(&l.stride).padding(&l.padding).count_include_pad(false),
            &["kernel", "stride", "padding"],
        ),
        (
            "avg pads",
            |l| Pool::avg(&l.kernel).stride(&l.stride).pads(&l.padding, &l.padding),
            &["kernel", "stride", "padding"],
        ),
        ("lp torch", |l| Pool::lp(2.0, &l.kernel).stride(&l.stride), &["kernel", "stride"]),
        (
            "lp onnx",
            |l| Pool::lp(3.0, &l.kernel).stride(&l.stride).padding(&l.padding).dilation(&l.dilation),
            &["kernel", "stride", "padding", "dilation"],
        ),
        ("adaptive max", |l| Pool::adaptive_max(&l.output), &["output"]),
        ("adaptive avg", |l| Pool::adaptive_avg(&l.output), &["output"]),
    ];
    for dims in [vec![2usize, 3, 9, 7], vec![1, 2, 7, 5, 9]] {
        let rank = dims.len() - 2;
        for channels_last in [false, true] {
            let physical = if channels_last {
                let mut d = vec![dims[0]];
                d.extend(&dims[2..]);
                d.push(dims[1]);
                d
            } else {
                dims.clone()
            };
            for (name, build, params) in builders {
                let lists = |once: &str| {
                    let list = |param: &str, v: usize| if param == once { vec![v] } else { vec![v; rank] };
                    Lists {
                        kernel: list("kernel", 3),
                        stride: list("stride", 2),
                        padding: list("padding", 1),
                        dilation: list("dilation", 2),
                        output: list("output", 3),
                    }
                };
                let baseline = outputs(&build(&lists("")), &physical, channels_last)?;
                assert!(!baseline.0.is_empty() && !baseline.1.is_empty());
                for param in params {
                    let once = outputs(&build(&lists(param)), &physical, channels_last)?;
                    assert!(once == baseline, "{name} {rank}-D channels_last {channels_last}: {param} written once");
                }
            }
        }
    }
    Ok(())
}
