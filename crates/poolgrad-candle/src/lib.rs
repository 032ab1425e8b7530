//! # poolgrad-candle
//!
//! [poolgrad]'s exact pooling as [candle](candle_core) ops: max, average, LP,
//! adaptive and global pooling in 1-D, 2-D and 3-D (any rank, in fact), with every
//! geometry option — stride, padding, dilation, ceil mode, `count_include_pad`,
//! `divisor_override` — in f32, f64, f16 and bf16 on the CPU. The backward is poolgrad's,
//! so `loss.backward()` through these ops is right in every configuration: overlapping
//! windows accumulate, ties go to the first maximum, padding gets nothing. The backward
//! op has a backward of its own, so second-order gradients work where candle composes
//! them.
//!
//! ```
//! use candle_core::{Device, Module, Tensor, Var};
//! use poolgrad_candle::Pool;
//!
//! let x = Var::from_tensor(&Tensor::arange(0f32, 25., &Device::Cpu)?.reshape((1, 1, 5, 5))?)?;
//! // ResNet's stem pool: 3x3 windows, stride 2, padding 1 (candle's own backward refuses it).
//! let y = Pool::max(&[3]).stride(&[2]).padding(&[1]).forward(x.as_tensor())?;
//! assert_eq!(y.dims(), &[1, 1, 3, 3]);
//! let grads = y.sum_all()?.backward()?;
//! let gx = grads.get(&x).unwrap().flatten_all()?.to_vec1::<f32>()?;
//! // Each of the 9 outputs sends its gradient to exactly one input cell.
//! assert_eq!(gx.iter().sum::<f32>(), 9.0);
//! assert_eq!(gx[6], 1.0); // x[1][1] is the maximum of window (0, 0) only
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, Layout as CandleLayout, Module, Result, Shape as CandleShape, Tensor,
};
use poolgrad::{AvgPool, Element, Layout, LpPool, MaxPool, Operator, Padding, PoolGeometry, Pooling, Shape};

/// A pooling layer for candle tensors. Build it, then `x.apply(&pool)` or
/// `pool.forward(&x)`.
///
/// Per-dim parameters take one value (every spatial dim) or one per dim, as in PyTorch.
/// Inputs are `(N, C, d1, ..., dk)` (or `(N, d1, ..., dk, C)` after
/// [`Pool::channels_last`]); any strided view candle produces is accepted (it is made
/// contiguous first, through candle's differentiable `contiguous`).
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    op: Operator,
    layout: Layout,
}

impl Pool {
    /// Max pooling with this kernel size (PyTorch `max_pool{1,2,3}d`).
    pub fn max(kernel_size: &[usize]) -> Self {
        Pool { op: Operator::Max(MaxPool::new(PoolGeometry::new(kernel_size))), layout: Layout::ChannelsFirst }
    }

    /// Average pooling with this kernel size (PyTorch `avg_pool{1,2,3}d`).
    pub fn avg(kernel_size: &[usize]) -> Self {
        Pool { op: Operator::Avg(AvgPool::new(PoolGeometry::new(kernel_size))), layout: Layout::ChannelsFirst }
    }

    /// LP pooling of power `p` (PyTorch `lp_pool{1,2,3}d`; ONNX's formula with padding or
    /// dilation, see [`poolgrad::LpFormula`]).
    pub fn lp(p: f64, kernel_size: &[usize]) -> Self {
        Pool { op: Operator::Lp(LpPool::new(PoolGeometry::new(kernel_size), p)), layout: Layout::ChannelsFirst }
    }

    /// Adaptive max pooling to `output_size`.
    pub fn adaptive_max(output_size: &[usize]) -> Self {
        Pool { op: Operator::Max(MaxPool::adaptive(output_size)), layout: Layout::ChannelsFirst }
    }

    /// Adaptive average pooling to `output_size`.
    pub fn adaptive_avg(output_size: &[usize]) -> Self {
        Pool { op: Operator::Avg(AvgPool::adaptive(output_size)), layout: Layout::ChannelsFirst }
    }

    /// Global max pooling (spatial dims kept with size 1).
    pub fn global_max() -> Self {
        Pool { op: Operator::Max(MaxPool::global()), layout: Layout::ChannelsFirst }
    }

    /// Global average pooling (spatial dims kept with size 1).
    pub fn global_avg() -> Self {
        Pool { op: Operator::Avg(AvgPool::global()), layout: Layout::ChannelsFirst }
    }

    fn geometry(mut self, edit: impl FnOnce(PoolGeometry) -> PoolGeometry) -> Self {
        self.op = self.op.with_geometry(edit);
        self
    }

    /// Sets the stride (default: the kernel size). No effect on adaptive and global pooling.
    pub fn stride(self, stride: &[usize]) -> Self {
        self.geometry(|g| g.stride(stride))
    }

    /// Sets symmetric padding.
    pub fn padding(self, padding: &[usize]) -> Self {
        self.geometry(|g| g.padding(Padding::Symmetric(padding.to_vec())))
    }

    /// Sets begin and end padding per dim (ONNX `pads`).
    pub fn pads(self, begin: &[usize], end: &[usize]) -> Self {
        self.geometry(|g| g.padding(Padding::Explicit { begin: begin.to_vec(), end: end.to_vec() }))
    }

    /// Sets the dilation.
    pub fn dilation(self, dilation: &[usize]) -> Self {
        self.geometry(|g| g.dilation(dilation))
    }

    /// Sets ceil mode.
    pub fn ceil_mode(self, ceil: bool) -> Self {
        self.geometry(|g| g.ceil_mode(ceil))
    }

    /// Average pooling: whether padding counts in the divisor (default `true`).
    pub fn count_include_pad(mut self, yes: bool) -> Self {
        if let Operator::Avg(p) = &mut self.op {
            p.count_include_pad = yes;
        }
        self
    }

    /// Average pooling: divide every window by `divisor`.
    pub fn divisor_override(mut self, divisor: usize) -> Self {
        if let Operator::Avg(p) = &mut self.op {
            p.divisor_override = Some(divisor);
        }
        self
    }

    /// Tensors are `(N, d1, ..., dk, C)`.
    pub fn channels_last(mut self) -> Self {
        self.layout = Layout::ChannelsLast;
        self
    }
}

impl Module for Pool {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        xs.contiguous()?.apply_op1(Forward(self.clone()))
    }
}

impl Pool {
    /// The gradient with respect to the input, `grad_output` given: the op that
    /// `loss.backward()` runs for this layer, callable on its own (PyTorch's
    /// `max_pool2d_with_indices_backward` / `avg_pool2d_backward`). Max pooling
    /// recomputes the argmax from `xs` with the forward's rule. Differentiable again
    /// (second order), as in autograd.
    ///
    /// ```
    /// use candle_core::{Device, Module, Tensor};
    /// use poolgrad_candle::Pool;
    ///
    /// let x = Tensor::new(&[[[[1f32, 5., 2., 0.], [3., 4., 8., 8.]]]], &Device::Cpu)?;
    /// let pool = Pool::max(&[2]);
    /// let g = Tensor::new(&[[[[10f32, 20.]]]], &Device::Cpu)?;
    /// let gx = pool.backward(&x, &g)?;
    /// // Each window's gradient goes to its first maximum.
    /// assert_eq!(gx.flatten_all()?.to_vec1::<f32>()?, [0., 10., 0., 0., 0., 0., 20., 0.]);
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn backward(&self, xs: &Tensor, grad_output: &Tensor) -> Result<Tensor> {
        xs.contiguous()?.apply_op2(&grad_output.contiguous()?, Backward(self.clone()))
    }
}

/// `poolgrad_candle::max_pool2d(&x, 3, 2, 1)`: PyTorch's `max_pool2d(x, 3, 2, 1)`.
pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    Pool::max(&[kernel]).stride(&[stride]).padding(&[padding]).forward(x)
}

/// `poolgrad_candle::avg_pool2d(&x, 3, 2, 1)`: PyTorch's `avg_pool2d(x, 3, 2, 1)`.
pub fn avg_pool2d(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    Pool::avg(&[kernel]).stride(&[stride]).padding(&[padding]).forward(x)
}

fn err(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("poolgrad: {e}"))
}

/// A contiguous slice of a storage (the ops make their inputs contiguous first).
fn contiguous<'a, T>(data: &'a [T], layout: &CandleLayout) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => Err(err("expected a contiguous tensor")),
    }
}

/// Runs `f` on the storage's element type (f32, f64, f16, bf16).
macro_rules! dispatch {
    ($storage:expr, $layout:expr, |$data:ident| $body:expr) => {
        match $storage {
            CpuStorage::F32(v) => {
                let $data = contiguous(v, $layout)?;
                $body
            }
            CpuStorage::F64(v) => {
                let $data = contiguous(v, $layout)?;
                $body
            }
            CpuStorage::F16(v) => {
                let $data = contiguous(v, $layout)?;
                $body
            }
            CpuStorage::BF16(v) => {
                let $data = contiguous(v, $layout)?;
                $body
            }
            other => Err(err(format!("dtype {:?} is not supported (f32, f64, f16, bf16)", other.dtype()))),
        }
    };
}

/// Runs `f` on two storages of the same element type (f32, f64, f16, bf16).
macro_rules! dispatch2 {
    ($what:literal, ($s1:expr, $l1:expr), ($s2:expr, $l2:expr), |$a:ident, $b:ident| $body:expr) => {
        match ($s1, $s2) {
            (CpuStorage::F32(x), CpuStorage::F32(y)) => {
                let ($a, $b) = (contiguous(x, $l1)?, contiguous(y, $l2)?);
                $body
            }
            (CpuStorage::F64(x), CpuStorage::F64(y)) => {
                let ($a, $b) = (contiguous(x, $l1)?, contiguous(y, $l2)?);
                $body
            }
            (CpuStorage::F16(x), CpuStorage::F16(y)) => {
                let ($a, $b) = (contiguous(x, $l1)?, contiguous(y, $l2)?);
                $body
            }
            (CpuStorage::BF16(x), CpuStorage::BF16(y)) => {
                let ($a, $b) = (contiguous(x, $l1)?, contiguous(y, $l2)?);
                $body
            }
            (a, b) => Err(err(format!(
                concat!($what, ": dtypes {:?} and {:?} (f32, f64, f16, bf16, matching)"),
                a.dtype(),
                b.dtype()
            ))),
        }
    };
}

/// Moves a poolgrad result into candle storage.
trait Store: Element {
    fn store(v: Vec<Self>) -> CpuStorage;
}

impl Store for f32 {
    fn store(v: Vec<Self>) -> CpuStorage {
        CpuStorage::F32(v)
    }
}
impl Store for f64 {
    fn store(v: Vec<Self>) -> CpuStorage {
        CpuStorage::F64(v)
    }
}
impl Store for poolgrad::f16 {
    fn store(v: Vec<Self>) -> CpuStorage {
        CpuStorage::F16(v)
    }
}
impl Store for poolgrad::bf16 {
    fn store(v: Vec<Self>) -> CpuStorage {
        CpuStorage::BF16(v)
    }
}

impl Pool {
    fn shape(&self, dims: &[usize]) -> Result<Shape> {
        Shape::from_dims(dims, self.layout).map_err(err)
    }

    fn run_forward<T: Store>(&self, x: &[T], dims: &[usize]) -> Result<(CpuStorage, CandleShape)> {
        let x = poolgrad::TensorView::new(x, self.shape(dims)?, self.layout).map_err(err)?;
        let y = self.op.forward(&x).map_err(err)?;
        let out = CandleShape::from(y.dims());
        Ok((T::store(y.into_data()), out))
    }

    fn run_backward<T: Store>(
        &self,
        x: &[T],
        dims: &[usize],
        g: &[T],
        g_dims: &[usize],
    ) -> Result<(CpuStorage, CandleShape)> {
        let x = poolgrad::TensorView::new(x, self.shape(dims)?, self.layout).map_err(err)?;
        let g = poolgrad::TensorView::new(g, self.shape(g_dims)?, self.layout).map_err(err)?;
        let gx = self.op.backward(&x, &g).map_err(err)?;
        Ok((T::store(gx.into_data()), CandleShape::from(dims)))
    }

    fn run_double_backward<T: Store>(&self, x: &[T], dims: &[usize], v: &[T]) -> Result<(CpuStorage, CandleShape)> {
        let shape = self.shape(dims)?;
        let x = poolgrad::TensorView::new(x, shape.clone(), self.layout).map_err(err)?;
        let v = poolgrad::TensorView::new(v, shape, self.layout).map_err(err)?;
        let jv = self.op.double_backward(&x, &v).map_err(err)?;
        let out = CandleShape::from(jv.dims());
        Ok((T::store(jv.into_data()), out))
    }
}

/// The forward op.
struct Forward(Pool);

impl CustomOp1 for Forward {
    fn name(&self) -> &'static str {
        "poolgrad-pool"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &CandleLayout) -> Result<(CpuStorage, CandleShape)> {
        dispatch!(storage, layout, |x| self.0.run_forward(x, layout.dims()))
    }

    /// poolgrad's exact backward, as an op with a backward of its own.
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.0.backward(arg, grad_res)?))
    }
}

/// The backward op: `(x, grad_output) -> grad_input`.
struct Backward(Pool);

impl CustomOp2 for Backward {
    fn name(&self) -> &'static str {
        "poolgrad-pool-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &CandleLayout,
        s2: &CpuStorage,
        l2: &CandleLayout,
    ) -> Result<(CpuStorage, CandleShape)> {
        dispatch2!("backward", (s1, l1), (s2, l2), |x, g| self.0.run_backward(x, l1.dims(), g, l2.dims()))
    }

    /// Second order: w.r.t. the grad-output, the forward's directional derivative
    /// (poolgrad's double backward); w.r.t. the input, zero for max and average pooling
    /// (piecewise linear / linear) and LP's Hessian-vector product otherwise.
    fn bwd(
        &self,
        arg1: &Tensor,
        arg2: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let v = grad_res.contiguous()?;
        let d_grad_output = arg1.apply_op2_no_bwd(&v, &DoubleBackward(self.0.clone()))?;
        let d_input = match &self.0.op {
            Operator::Lp(_) => {
                let packed = Tensor::cat(&[&arg2.flatten_all()?, &v.flatten_all()?], 0)?;
                Some(arg1.apply_op2_no_bwd(&packed, &LpHessian(self.0.clone(), arg2.dims().to_vec()))?)
            }
            _ => None,
        };
        Ok((d_input, Some(d_grad_output)))
    }
}

/// `(x, v) -> J·v`, the forward's directional derivative.
struct DoubleBackward(Pool);

impl CustomOp2 for DoubleBackward {
    fn name(&self) -> &'static str {
        "poolgrad-pool-double-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &CandleLayout,
        s2: &CpuStorage,
        l2: &CandleLayout,
    ) -> Result<(CpuStorage, CandleShape)> {
        dispatch2!("double backward", (s1, l1), (s2, l2), |x, v| self.0.run_double_backward(x, l1.dims(), v))
    }
}

/// LP's `(x, [grad_output ; v]) -> H·v` (the two packed in one flat tensor, the first
/// `grad_output_dims` worth being the grad-output).
struct LpHessian(Pool, Vec<usize>);

impl CustomOp2 for LpHessian {
    fn name(&self) -> &'static str {
        "poolgrad-lp-hessian"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &CandleLayout,
        s2: &CpuStorage,
        l2: &CandleLayout,
    ) -> Result<(CpuStorage, CandleShape)> {
        fn run<T: Store>(
            pool: &Pool,
            g_dims: &[usize],
            x: &[T],
            dims: &[usize],
            packed: &[T],
        ) -> Result<(CpuStorage, CandleShape)> {
            let Operator::Lp(lp) = &pool.op else { return Err(err("LP Hessian of a non-LP pool")) };
            let n: usize = g_dims.iter().product();
            if packed.len() != n + x.len() {
                return Err(err("LP Hessian: packed grad-output and direction have the wrong length"));
            }
            let shape = pool.shape(dims)?;
            let xv = poolgrad::TensorView::new(x, shape.clone(), pool.layout).map_err(err)?;
            let g = poolgrad::TensorView::new(&packed[..n], pool.shape(g_dims)?, pool.layout).map_err(err)?;
            let v = poolgrad::TensorView::new(&packed[n..], shape, pool.layout).map_err(err)?;
            let hv = lp.double_backward_input(&xv, &g, &v).map_err(err)?;
            Ok((T::store(hv.into_data()), CandleShape::from(dims)))
        }
        dispatch2!("LP Hessian", (s1, l1), (s2, l2), |x, p| run(&self.0, &self.1, x, l1.dims(), p))
    }
}

/// The README's Rust examples (poolgrad's and this crate's) run as doctests here, where
/// both crates are in reach, so the front door stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
