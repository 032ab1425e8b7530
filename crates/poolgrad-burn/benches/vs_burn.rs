//! poolgrad's layers against burn's own pooling, on the same backend, shape and dtype
//! (divan): `cargo bench -p poolgrad-burn --bench vs_burn`.
//!
//! Two configurations burn has (max 3x3 stride 2 padding 1, the ResNet stem pool; and
//! average 2x2 stride 2) on an 8x64x56x56 f32 tensor, on burn-flex and burn-ndarray:
//! - `inference`: the forward on the plain backend;
//! - `training`: the forward on `Autodiff` over that backend and the backward of
//!   `sum(y)`, up to the input's gradient (what a training step spends on the layer).
//!
//! Each case is named `backend/op/implementation`, so the two implementations of a
//! configuration sit side by side. Inputs are made once per case, outside the timing.

use burn::tensor::module::{avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};
use burn::tensor::{Device, Distribution, Tensor};
use divan::Bencher;
use poolgrad_burn::modules::{AvgPool2dConfig, MaxPool2dConfig, PoolPadding};
use std::fmt;

fn main() {
    divan::main();
}

const SHAPE: [usize; 4] = [8, 64, 56, 56];

#[derive(Clone, Copy)]
enum Backend {
    Flex,
    NdArray,
}

#[derive(Clone, Copy)]
enum Op {
    /// Max 3x3, stride 2, padding 1.
    MaxStem,
    /// Average 2x2, stride 2.
    Avg2,
}

#[derive(Clone, Copy)]
enum Implementation {
    Poolgrad,
    Burn,
}

#[derive(Clone, Copy)]
struct Case(Backend, Op, Implementation);

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = match self.0 {
            Backend::Flex => "flex",
            Backend::NdArray => "ndarray",
        };
        let op = match self.1 {
            Op::MaxStem => "max_k3s2p1",
            Op::Avg2 => "avg_k2s2",
        };
        let implementation = match self.2 {
            Implementation::Poolgrad => "poolgrad",
            Implementation::Burn => "burn",
        };
        write!(f, "{backend}/{op}/{implementation}")
    }
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for backend in [Backend::Flex, Backend::NdArray] {
        for op in [Op::MaxStem, Op::Avg2] {
            for implementation in [Implementation::Poolgrad, Implementation::Burn] {
                cases.push(Case(backend, op, implementation));
            }
        }
    }
    cases
}

#[allow(deprecated)] // burn-ndarray: deprecated upstream, still one of burn's CPU backends.
fn device(backend: Backend) -> Device {
    match backend {
        Backend::Flex => Device::flex(),
        Backend::NdArray => Device::ndarray(),
    }
}

/// The case's layer applied to `x`.
fn apply(case: Case, x: Tensor<4>) -> Tensor<4> {
    match (case.1, case.2) {
        (Op::MaxStem, Implementation::Poolgrad) => MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_padding(PoolPadding::Explicit([1, 1]))
            .init()
            .forward(x)
            .expect("a valid configuration"),
        (Op::MaxStem, Implementation::Burn) => {
            max_pool2d(x, MaxPoolOptions::new([3, 3]).with_stride([2, 2]).with_padding([1, 1]))
        }
        (Op::Avg2, Implementation::Poolgrad) => {
            AvgPool2dConfig::new([2, 2]).init().forward(x).expect("a valid configuration")
        }
        (Op::Avg2, Implementation::Burn) => avg_pool2d(x, AvgPoolOptions::new([2, 2])),
    }
}

fn random(device: &Device) -> Tensor<4> {
    Tensor::random(SHAPE, Distribution::Normal(0.0, 1.0), device)
}

#[divan::bench(args = cases(), sample_count = 15)]
fn inference(bencher: Bencher, case: Case) {
    let x = random(&device(case.0));
    bencher.bench_local(|| {
        let y = apply(case, x.clone());
        // Reading one value forces the computation on backends that defer it.
        divan::black_box(y.slice([0..1, 0..1, 0..1, 0..1]).into_scalar::<f32>())
    });
}

#[divan::bench(args = cases(), sample_count = 15)]
fn training(bencher: Bencher, case: Case) {
    let device = device(case.0).autodiff();
    let x = random(&device);
    bencher.bench_local(|| {
        let x = x.clone().require_grad();
        let grads = apply(case, x.clone()).sum().backward();
        let gx = x.grad(&grads).expect("the input's gradient");
        divan::black_box(gx.slice([0..1, 0..1, 0..1, 0..1]).into_scalar::<f32>())
    });
}
