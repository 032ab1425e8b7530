mod common;
use common::*;
use poolgrad::{Layout, MaxPool, Operator, Padding, PoolGeometry, Pooling, Shape, TensorView};
use poolgrad_burn::functional;

#[test]
fn smoke() {
    let op = Operator::Max(MaxPool::new(PoolGeometry::new(&[3]).stride(&[2]).padding(Padding::Symmetric(vec![1]))));
    for (name, device) in devices() {
        let dims = [2, 3, 7, 6];
        let xd = values(252, 7);
        let x = tensor::<4>(xd.clone(), &dims, &device).require_grad();
        let y = functional::pool(x.clone(), &op, Layout::ChannelsFirst).unwrap();
        let g = tensor::<4>(values(y.shape().num_elements(), 3), &y.dims(), &device);
        let gd = to_f64(g.clone());
        let grads = (y.clone() * g).sum().backward();
        let gx = to_f64(x.grad(&grads).unwrap());
        let xv = TensorView::new(&xd, Shape::from_dims(&dims, Layout::ChannelsFirst).unwrap(), Layout::ChannelsFirst)
            .unwrap();
        let ys = Shape::from_dims(&y.dims(), Layout::ChannelsFirst).unwrap();
        let gv = TensorView::new(&gd, ys, Layout::ChannelsFirst).unwrap();
        assert_eq!(to_f64(y), op.forward(&xv).unwrap().into_data(), "{name}");
        assert_eq!(gx, op.backward(&xv, &gv).unwrap().into_data(), "{name}");
    }
}
