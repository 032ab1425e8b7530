//! Helpers shared by the integration tests.
#![allow(dead_code)]

use burn::tensor::{DType, Device, Tensor, TensorData};

/// Deterministic values in [-5, 5), two decimals.
pub fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) % 1000) as f64 / 100.0 - 5.0
        })
        .collect()
}

/// The CPU devices poolgrad-burn supports, with autodiff.
pub fn devices() -> Vec<(&'static str, Device)> {
    #[allow(deprecated)] // burn-ndarray: deprecated upstream, still a burn CPU backend.
    let ndarray = Device::ndarray().autodiff();
    vec![("flex", Device::flex().autodiff()), ("ndarray", ndarray)]
}

/// An f64 tensor of these dims and values.
pub fn tensor<const D: usize>(data: Vec<f64>, dims: &[usize], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(data, dims.to_vec()), (device, DType::F64))
}

/// A tensor's values as f64.
pub fn to_f64<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().convert::<f64>().try_into_vec::<f64>().unwrap()
}
