//! Regression benchmarks of the kernels (divan): the workloads at batch 4, both
//! layouts, forward and backward, under each instruction set this CPU runs, and the
//! stride-1 max pooling kernel-size sweep. Outputs are allocated in each run, as users
//! call the API.
//!
//! `cargo bench -p poolgrad` runs them all, `cargo bench -p poolgrad -- max_forward` a
//! subset. For comparisons against PyTorch use `bench/compare_torch.py`, which runs the
//! CLI's `bench`.

use divan::Bencher;
use poolgrad::simd::{available, with_isa, Isa};
use poolgrad::{AvgPool, Layout, MaxPool, Padding, PoolGeometry, Pooling, Shape, Tensor};
use std::fmt;

fn main() {
    divan::main();
}

/// One benchmark case: a workload in a layout under an instruction set.
#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    shape: &'static [usize],
    kernel: usize,
    stride: usize,
    padding: usize,
    layout: Layout,
    isa: Isa,
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.name, self.layout.name(), self.isa.name())
    }
}

type Workload = (&'static str, &'static [usize], usize, usize, usize);

const MAX_WORKLOADS: &[Workload] = &[
    ("W1_stem_k3s2p1", &[4, 64, 112, 112], 3, 2, 1),
    ("W2_vgg_k2s2", &[4, 128, 56, 56], 2, 2, 0),
    ("W5_1d_k3s2p1", &[4, 256, 4096], 3, 2, 1),
    ("W6_3d_k2s2", &[1, 32, 32, 64, 64], 2, 2, 0),
];

const AVG_WORKLOADS: &[Workload] =
    &[("W3_inception_k3s1p1", &[4, 192, 28, 28], 3, 1, 1), ("W7_k2s2", &[4, 128, 56, 56], 2, 2, 0)];

fn cases(workloads: &[Workload]) -> Vec<Case> {
    let mut cases = Vec::new();
    for &(name, shape, kernel, stride, padding) in workloads {
        for layout in [Layout::ChannelsFirst, Layout::ChannelsLast] {
            for isa in available() {
                cases.push(Case { name, shape, kernel, stride, padding, layout, isa });
            }
        }
    }
    cases
}

fn max_cases() -> Vec<Case> {
    cases(MAX_WORKLOADS)
}

fn avg_cases() -> Vec<Case> {
    cases(AVG_WORKLOADS)
}

/// Random values in [-0.5, 0.5) (never zeros).
fn input(case: &Case) -> Tensor<f32> {
    let shape = Shape::new(case.shape[0], case.shape[1], &case.shape[2..]);
    let n = shape.numel().unwrap();
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let data = (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5 + 1e-7
        })
        .collect();
    Tensor::new(data, shape, case.layout).unwrap()
}

fn geometry(case: &Case) -> PoolGeometry {
    let rank = case.shape.len() - 2;
    PoolGeometry::new(&vec![case.kernel; rank])
        .stride(&vec![case.stride; rank])
        .padding(Padding::Symmetric(vec![case.padding; rank]))
}

#[divan::bench(args = max_cases())]
fn max_forward(bencher: Bencher, case: Case) {
    let (x, pool) = (input(&case), MaxPool::new(geometry(&case)));
    bencher.bench_local(|| with_isa(case.isa, || pool.forward_with_indices(&x.view()).unwrap()));
}

#[divan::bench(args = max_cases())]
fn max_backward(bencher: Bencher, case: Case) {
    let (x, pool) = (input(&case), MaxPool::new(geometry(&case)));
    let y = pool.forward_with_indices(&x.view()).unwrap();
    let g = y.output.clone();
    bencher.bench_local(|| {
        with_isa(case.isa, || pool.backward_with_indices(x.shape(), &g.view(), &y.indices.view()).unwrap())
    });
}

#[divan::bench(args = avg_cases())]
fn avg_forward(bencher: Bencher, case: Case) {
    let (x, pool) = (input(&case), AvgPool::new(geometry(&case)).count_include_pad(false));
    bencher.bench_local(|| with_isa(case.isa, || pool.forward(&x.view()).unwrap()));
}

#[divan::bench(args = avg_cases())]
fn avg_backward(bencher: Bencher, case: Case) {
    let (x, pool) = (input(&case), AvgPool::new(geometry(&case)).count_include_pad(false));
    let g = pool.forward(&x.view()).unwrap();
    bencher.bench_local(|| with_isa(case.isa, || pool.backward(&x.view(), &g.view()).unwrap()));
}

#[divan::bench(args = [1usize, 2])]
fn global_avg_forward(bencher: Bencher, layout: usize) {
    let layout = if layout == 1 { Layout::ChannelsFirst } else { Layout::ChannelsLast };
    let case = Case {
        name: "W4",
        shape: &[4, 2048, 7, 7],
        kernel: 1,
        stride: 1,
        padding: 0,
        layout,
        isa: poolgrad::simd::detected(),
    };
    let x = input(&case);
    bencher.bench_local(|| AvgPool::global().forward(&x.view()).unwrap());
}

/// Stride-1 max pooling, "same" padding, growing kernels on a 4x64x56x56 channels-first
/// input: the cost per output should not grow with the kernel.
#[divan::bench(args = [3usize, 5, 7, 9, 15])]
fn max_stride1_kernel_sweep(bencher: Bencher, kernel: usize) {
    let case = Case {
        name: "sweep",
        shape: &[4, 64, 56, 56],
        kernel,
        stride: 1,
        padding: kernel / 2,
        layout: Layout::ChannelsFirst,
        isa: poolgrad::simd::detected(),
    };
    let (x, pool) = (input(&case), MaxPool::new(geometry(&case)));
    bencher.bench_local(|| pool.forward_with_indices(&x.view()).unwrap());
}
