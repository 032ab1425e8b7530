//! Second-order gradients through candle with poolgrad's ops. candle detaches the
//! gradients it returns unless `CANDLE_GRAD_DO_NOT_DETACH` is set, so this test runs in
//! its own process (its own test binary) with that variable set.

use candle_core::{Device, Module, Result, Tensor, Var};
use poolgrad::{AvgPool, Layout, LpPool, MaxPool, Padding, PoolGeometry, Pooling, Shape};
use poolgrad_candle::Pool;

mod common;
use common::values;

#[test]
fn second_order_through_candle() -> Result<()> {
    // L1 = Σ w ⊙ pool(x); gx = ∂L1/∂x = Jᵀ w; L2 = Σ v ⊙ gx; ∂L2/∂w = J v (double backward).
    // Read once per thread by candle, before its first backward; this binary has no other test.
    std::env::set_var("CANDLE_GRAD_DO_NOT_DETACH", "1");
    let dev = Device::Cpu;
    for (pool, op) in [
        (Pool::max(&[3]).stride(&[2]).padding(&[1]), 0),
        (Pool::avg(&[3]).stride(&[1]).padding(&[1]), 1),
        (Pool::lp(2.0, &[2]), 2),
        // The kernel written per dim gives the same second order as written once.
        (Pool::lp(2.0, &[2, 2]), 2),
    ] {
        let dims = [1usize, 2, 6, 6];
        let data: Vec<f64> = values(72, 9).iter().map(|v| v.abs() + 0.5).collect();
        let x = Var::from_vec(data.clone(), dims.as_slice(), &dev)?;
        let y = pool.forward(x.as_tensor())?;
        let w = Var::from_vec(values(y.elem_count(), 4), y.dims(), &dev)?;
        let gx = (&y * w.as_tensor())?.sum_all()?.backward()?.get(&x).expect("gradient").clone();
        let v = Tensor::from_vec(values(72, 8), dims.as_slice(), &dev)?;
        let grads = (&gx * &v)?.sum_all()?.backward()?;
        let dw = grads.get(&w).expect("second-order gradient").flatten_all()?.to_vec1::<f64>()?;
        let shape = Shape::new(1, 2, &[6, 6]);
        let xv = poolgrad::TensorView::new(&data, shape.clone(), Layout::ChannelsFirst).unwrap();
        let vd = v.flatten_all()?.to_vec1::<f64>()?;
        let vv = poolgrad::TensorView::new(&vd, shape, Layout::ChannelsFirst).unwrap();
        let g3 = PoolGeometry::new(&[3]).padding(Padding::Symmetric(vec![1]));
        let want = match op {
            0 => MaxPool::new(g3.stride(&[2])).double_backward(&xv, &vv).unwrap(),
            1 => AvgPool::new(g3.stride(&[1])).double_backward(&xv, &vv).unwrap(),
            _ => LpPool::new(PoolGeometry::new(&[2]), 2.0).double_backward(&xv, &vv).unwrap(),
        };
        assert_eq!(dw, want.data(), "op {op}");
        if op == 2 {
            // LP's backward depends on x: ∂L2/∂x is poolgrad's Hessian-vector product.
            let dx = grads.get(&x).expect("second-order gradient w.r.t. x").flatten_all()?.to_vec1::<f64>()?;
            let wd = w.as_tensor().flatten_all()?.to_vec1::<f64>()?;
            let wv = poolgrad::TensorView::new(&wd, Shape::new(1, 2, &[3, 3]), Layout::ChannelsFirst).unwrap();
            let hv = LpPool::new(PoolGeometry::new(&[2]), 2.0).double_backward_input(&xv, &wv, &vv).unwrap();
            assert_eq!(dx, hv.data());
        }
    }
    Ok(())
}
