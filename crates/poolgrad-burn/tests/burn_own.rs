//! burn's own pooling (burn 0.22.1), measured: kept as tests so the differences stay
//! visible. If burn changes, a test here fails and README's burn section should change.

use burn::nn::pool::{AvgPool2dConfig as BurnAvgPool2dConfig, MaxPool2dConfig as BurnMaxPool2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::{Device, Tensor, TensorData};
use poolgrad_burn::modules::{AvgPool2dConfig, MaxPool2dConfig, PoolPadding};

fn data<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

#[allow(deprecated)] // burn-ndarray: deprecated upstream, still a burn CPU backend.
fn ndarray() -> Device {
    Device::ndarray()
}

#[test]
fn burn_ndarray_max_pooling_drops_nan() {
    // One NaN per 2x2 window in a 2x4 input.
    let x = [1.0, f32::NAN, 3.0, 4.0, 5.0, 6.0, f32::NAN, 2.0];
    let pool = BurnMaxPool2dConfig::new([2, 2]).init();
    let on =
        |device: &Device| data(pool.forward(Tensor::<4>::from_data(TensorData::new(x.to_vec(), [1, 1, 2, 4]), device)));
    // PyTorch (and poolgrad): NaN wins its window.
    let ours = data(
        MaxPool2dConfig::new([2, 2])
            .init()
            .forward(Tensor::<4>::from_data(TensorData::new(x.to_vec(), [1, 1, 2, 4]), &ndarray()))
            .unwrap(),
    );
    assert!(ours.iter().all(|v| v.is_nan()), "{ours:?}");
    // burn-ndarray 0.22.1: `val > max` never takes a NaN.
    assert_eq!(on(&ndarray()), vec![6.0, 4.0], "burn-ndarray's NaN rule changed: update the README");
    // burn-flex 0.22.1 propagates it, as PyTorch.
    assert!(on(&Device::flex()).iter().all(|v| v.is_nan()), "burn-flex's NaN rule changed: update the README");
}

#[test]
fn burn_nn_average_pooling_with_asymmetric_padding() {
    // 2x2 windows, stride 1, one padding row on top only, count_include_pad = false: the
    // padding row must not count, so a tensor of ones pools to ones. burn #5450 (burn-nn
    // padded with zeros first and counted them) is fixed in 0.22.1: both agree.
    let x = || Tensor::<4>::ones([1, 1, 3, 3], &Device::flex());
    let burn = BurnAvgPool2dConfig::new([2, 2])
        .with_strides([1, 1])
        .with_padding(PaddingConfig2d::Explicit(1, 0, 0, 0))
        .with_count_include_pad(false)
        .init();
    let ours = AvgPool2dConfig::new([2, 2])
        .with_strides([1, 1])
        .with_padding(PoolPadding::Pads { begin: [1, 0], end: [0, 0] })
        .with_count_include_pad(false)
        .init();
    let (b, o) = (data(burn.forward(x())), data(ours.forward(x()).unwrap()));
    assert_eq!(o, vec![1.0; 6]);
    assert_eq!(b, o, "burn-nn's asymmetric count_include_pad changed: update the README");
}

#[test]
fn burn_has_no_second_order_through_its_own_max_pooling() {
    // burn's autodiff device is first-order: asking twice gives the same device, and a
    // gradient comes back as a plain tensor, outside the graph.
    let device = Device::flex().autodiff();
    assert_eq!(device.clone().autodiff(), device);
    let x = Tensor::<4>::from_data(TensorData::new((0..16).map(|v| v as f32).collect(), [1, 1, 4, 4]), &device)
        .require_grad();
    let y = burn::tensor::module::max_pool2d(x.clone(), burn::tensor::ops::MaxPoolOptions::new([2, 2]));
    let grads = y.sum().backward();
    let gx = x.grad(&grads).unwrap();
    assert!(!gx.is_require_grad(), "burn's gradients now carry a graph: update the README");
}
